// Every signed-in page: signing out also forgets the chat conversations this tab kept.
(function () {
  "use strict";
  var form = document.querySelector("form.signout");
  if (!form) { return; }
  form.addEventListener("submit", function () {
    try { sessionStorage.clear(); } catch (e) { /* storage off: nothing kept */ }
  });
})();
