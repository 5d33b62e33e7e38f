// The chat page: posts the conversation to the Hub (same origin, the session's CSRF token
// in a header, or a published app's token) and appends the streamed answer as it arrives.
// Model output is untrusted: it only ever becomes text nodes (textContent), never markup.
(function () {
  "use strict";
  var form = document.getElementById("chat-form");
  if (!form) { return; }
  var log = document.getElementById("chat-log");
  var input = document.getElementById("chat-input");
  var button = form.querySelector("button[type=submit]");
  var status = document.getElementById("chat-status");
  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.getAttribute("content") : "";
  var endpoint = form.getAttribute("action");
  // a published app's page: its app token instead of a session (no cookie is sent)
  var appToken = form.getAttribute("data-app-token");
  // the conversation lasts as long as the tab's session (sign-out clears it: hub.js)
  var storageKey = "genai-hub-chat:" + endpoint;
  var history = [];
  var shown = [];  // what the log shows: turns with their citations

  function save() {
    try { sessionStorage.setItem(storageKey, JSON.stringify(shown)); } catch (e) { /* full or off */ }
  }

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function bubble(role) {
    var box = element("div", "msg msg-" + role);
    box.appendChild(element("div", "who", role === "user" ? "You" : "Assistant"));
    var text = element("div", "text");
    box.appendChild(text);
    log.appendChild(box);
    return text;
  }

  function isWebLink(value) {
    return typeof value === "string" && /^https?:\/\//i.test(value);
  }

  function showCitations(box, citations) {
    var list = element("div", "citations");
    list.appendChild(element("div", "who", "Sources"));
    citations.forEach(function (c) {
      var item = element("details", "citation");
      var label = "[" + String(c.number) + "] " + String(c.label || c.title || c.source || "");
      item.appendChild(element("summary", "", label));
      if (isWebLink(c.source)) {
        var link = element("a", "", String(c.source));
        link.href = c.source;
        link.rel = "noopener noreferrer";
        item.appendChild(link);
      } else if (c.source) {
        item.appendChild(element("code", "", String(c.source)));
      }
      if (c.text) { item.appendChild(element("blockquote", "", String(c.text))); }
      list.appendChild(item);
    });
    box.appendChild(list);
  }

  async function readStream(response, out) {
    var reader = response.body.getReader();
    var decoder = new TextDecoder();
    var buffer = "";
    var answer = "";
    var citations = null;
    var pieces = 0;
    for (;;) {
      var step = await reader.read();
      if (step.done) { break; }
      buffer += decoder.decode(step.value, { stream: true }).replace(/\r\n/g, "\n");
      var cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        var event = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        event.split("\n").forEach(function (line) {
          if (line.indexOf("data:") !== 0) { return; }
          var data = line.slice(5).trim();
          if (!data || data === "[DONE]") { return; }
          var chunk;
          try { chunk = JSON.parse(data); } catch (e) { return; }
          if (chunk.error) { throw new Error(chunk.error.message || "the answer failed"); }
          var choice = chunk.choices && chunk.choices[0];
          var piece = choice && choice.delta && choice.delta.content;
          if (typeof piece === "string" && piece) {
            answer += piece;
            pieces += 1;
            out.appendChild(document.createTextNode(piece));
            out.parentNode.setAttribute("data-pieces", String(pieces));
          }
          if (Array.isArray(chunk.citations)) { citations = chunk.citations; }
          var ev = chunk.agent_event;
          if (ev && typeof ev === "object") {  // a hosted agent's tool call or result
            var note = element("div", "agent-event muted",
              String(ev.type || "event").replace("_", " ") + ": " + String(ev.name || ""));
            out.parentNode.insertBefore(note, out);
          }
        });
      }
    }
    return { answer: answer, citations: citations };
  }

  function thumbs(box, requestId) {
    var feedback = form.getAttribute("data-feedback");
    if (!requestId || !feedback) { return; }
    var bar = element("div", "thumbs");
    var said = element("span", "muted", "");
    [["up", "\uD83D\uDC4D", "Helpful"], ["down", "\uD83D\uDC4E", "Not helpful"]].forEach(function (t) {
      var b = element("button", "thumb", t[1]);
      b.type = "button";
      b.setAttribute("aria-label", t[2]);
      b.setAttribute("data-rating", t[0]);
      b.addEventListener("click", async function () {
        bar.querySelectorAll("button").forEach(function (x) { x.disabled = true; });
        try {
          var r = await fetch(feedback, {
            method: "POST",
            credentials: "same-origin",
            headers: { "content-type": "application/json", "accept": "application/json", "x-csrf-token": csrf },
            body: JSON.stringify({ request_id: requestId, rating: t[0] })
          });
          if (!r.ok) { throw await errorOf(r); }
          said.textContent = "Thanks for the feedback.";
          box.setAttribute("data-feedback", t[0]);
        } catch (error) {
          said.textContent = "Feedback failed: " + error.message;
          bar.querySelectorAll("button").forEach(function (x) { x.disabled = false; });
        }
      });
      bar.appendChild(b);
    });
    bar.appendChild(said);
    box.appendChild(bar);
  }

  async function errorOf(response) {
    var message = "HTTP " + response.status;
    try {
      var body = await response.json();
      if (body && body.error && body.error.message) { message = body.error.message; }
    } catch (e) { /* not JSON: keep the status */ }
    return new Error(message);
  }

  function restore() {
    var saved = [];
    try { saved = JSON.parse(sessionStorage.getItem(storageKey) || "[]"); } catch (e) { saved = []; }
    if (!Array.isArray(saved)) { return; }
    saved.forEach(function (turn) {
      if (!turn || (turn.role !== "user" && turn.role !== "assistant") || typeof turn.content !== "string") { return; }
      var text = bubble(turn.role);
      text.textContent = turn.content;
      if (turn.role === "assistant") {
        text.parentNode.setAttribute("data-restored", "true");
        if (Array.isArray(turn.citations) && turn.citations.length) { showCitations(text.parentNode, turn.citations); }
      }
      history.push({ role: turn.role, content: turn.content });
      shown.push(turn);
    });
  }

  restore();

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    var question = input.value.trim();
    if (!question) { return; }
    input.value = "";
    button.disabled = true;
    status.textContent = "Answering…";
    bubble("user").textContent = question;
    history.push({ role: "user", content: question });
    var out = bubble("assistant");
    out.parentNode.setAttribute("aria-busy", "true");
    try {
      var headers = { "content-type": "application/json", "accept": "text/event-stream, application/json" };
      if (appToken) { headers["x-app-token"] = appToken; } else { headers["x-csrf-token"] = csrf; }
      var response = await fetch(endpoint, {
        method: "POST",
        credentials: appToken ? "omit" : "same-origin",
        headers: headers,
        body: JSON.stringify({ messages: history })
      });
      if (!response.ok) { throw await errorOf(response); }
      var result = await readStream(response, out);
      history.push({ role: "assistant", content: result.answer });
      shown.push({ role: "user", content: question });
      shown.push({ role: "assistant", content: result.answer, citations: result.citations || [] });
      save();
      if (result.citations && result.citations.length) { showCitations(out.parentNode, result.citations); }
      thumbs(out.parentNode, response.headers.get("x-request-id"));
      out.parentNode.setAttribute("data-done", "true");
    } catch (error) {
      history.pop();
      out.parentNode.classList.add("msg-error");
      out.textContent = "Error: " + error.message;
      out.parentNode.setAttribute("data-done", "error");
    } finally {
      status.textContent = "";
      button.disabled = false;
      out.parentNode.removeAttribute("aria-busy");
      input.focus();
    }
  });
})();
