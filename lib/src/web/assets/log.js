// The build page's step logs: a running step's log goes on live over Server-Sent Events
// (GET .../events?format=html, lines the server rendered and escaped), and the page opens at
// the end of its focus step (the first failed one, or the running one). Without this script the
// page is the log as it was when loaded.
"use strict";

(function () {
  function lineElement(step, number, html) {
    var span = document.createElement("span");
    span.className = "l";
    span.id = "step-" + step + "-" + number;
    var link = document.createElement("a");
    link.className = "n";
    link.href = "#" + span.id;
    link.textContent = String(number);
    span.appendChild(link);
    // The server's HTML: escaped text in spans with class names only (web/ansi.h).
    span.insertAdjacentHTML("beforeend", html + "\n");
    return span;
  }

  function atBottom() {
    return window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
  }

  function follow(pre) {
    var step = pre.id.replace("log-", "");
    var partial = pre.querySelector(".partial");
    var source = new EventSource(pre.getAttribute("data-events") + "&from=" +
                                 encodeURIComponent(pre.getAttribute("data-from")));
    source.addEventListener("lines", function (event) {
      var stick = atBottom();
      var data = event.data.split("\n");
      var first = parseInt(data[0], 10);
      for (var i = 1; i < data.length; i++) {
        pre.insertBefore(lineElement(step, first + i - 1, data[i]), partial);
      }
      partial.innerHTML = "";
      if (stick) {
        window.scrollTo(0, document.body.scrollHeight);
      }
    });
    source.addEventListener("partial", function (event) {
      partial.innerHTML = event.data;
    });
    source.addEventListener("note", function (event) {
      var note = document.createElement("span");
      note.className = "note";
      note.textContent = "(" + event.data + ")\n";
      pre.insertBefore(note, partial);
    });
    source.addEventListener("end", function (event) {
      source.close();
      var result = document.querySelector('[data-step-result="' + step + '"]');
      if (result) {
        result.textContent = event.data;
        result.className = "result " + event.data;
      }
    });
  }

  var logs = document.querySelectorAll("pre.log[data-events]");
  for (var i = 0; i < logs.length; i++) {
    follow(logs[i]);
  }
  if (!window.location.hash) {
    var focus = document.querySelector("details[data-focus] pre.log");
    if (focus) {
      focus.scrollIntoView({ block: "end" });
    }
  }
})();
