// A published app's chat bubble for another site's pages:
//   <script src="https://HOST/hub/apps/SLUG/widget.js" async></script>
// It adds a button at the bottom right that opens the app's page in an iframe (the page is
// served by the Hub, which holds the app's credentials; this script holds none). Optional
// attributes of the script tag: data-title (the button's label), data-open="true".
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !script.src) { return; }
  var page = script.src.replace(/\/widget\.js(?:[?#].*)?$/, "");
  var label = script.getAttribute("data-title") || "Chat";
  var openAtStart = script.getAttribute("data-open") === "true";

  function mount() {
    var frame = null;
    var button = document.createElement("button");
    button.type = "button";
    button.textContent = label;
    button.setAttribute("aria-expanded", "false");
    button.setAttribute("data-genai-app", "bubble");
    var s = button.style;
    s.position = "fixed"; s.right = "20px"; s.bottom = "20px"; s.zIndex = "2147483000";
    s.padding = "10px 18px"; s.borderRadius = "22px"; s.border = "0"; s.cursor = "pointer";
    s.background = "#0b57d0"; s.color = "#fff"; s.font = "600 15px system-ui, sans-serif";
    s.boxShadow = "0 2px 10px rgba(0,0,0,.25)";

    function toggle() {
      if (!frame) {
        frame = document.createElement("iframe");
        frame.src = page + "?embed=1";
        frame.title = label;
        frame.setAttribute("data-genai-app", "frame");
        var f = frame.style;
        f.position = "fixed"; f.right = "20px"; f.bottom = "72px"; f.zIndex = "2147483000";
        f.width = "min(380px, calc(100vw - 40px))"; f.height = "min(560px, calc(100vh - 100px))";
        f.border = "1px solid #d0d7de"; f.borderRadius = "10px"; f.background = "#fff";
        f.boxShadow = "0 4px 24px rgba(0,0,0,.25)";
        document.body.appendChild(frame);
      } else {
        frame.style.display = frame.style.display === "none" ? "block" : "none";
      }
      button.setAttribute("aria-expanded", frame.style.display === "none" ? "false" : "true");
    }

    button.addEventListener("click", toggle);
    document.body.appendChild(button);
    if (openAtStart) { toggle(); }
  }

  if (document.body) { mount(); } else { document.addEventListener("DOMContentLoaded", mount); }
})();
