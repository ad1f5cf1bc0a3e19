// The build page's step logs: a running step's log goes on live over Server-Sent Events
// (GET .../events?format=html, lines the server rendered and escaped), and the page opens at
// the end of its focus step (the first failed one, or the running one). Each step's line count
// follows its live log; while the build runs, the page polls its JSON (GET /api/v1/builds/ID,
// every 3 s) for the header's result, the steps' results and the triggered builds' results, and
// offers a reload once the build has steps, triggered builds or results the page lacks. Without
// this script the page is the build as it was when loaded.
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

  function setResult(element, result) {
    if (element && element.textContent !== result) {
      element.textContent = result;
      element.className = "result " + result;
    }
  }

  function countLines(step, last) {
    var count = document.querySelector('[data-step-lines="' + step + '"]');
    if (count && last > parseInt(count.getAttribute("data-count"), 10)) {
      count.setAttribute("data-count", String(last));
      count.textContent = last + (last === 1 ? " line" : " lines");
    }
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
      countLines(step, first + data.length - 2);
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
      setResult(document.querySelector('[data-step-result="' + step + '"]'), event.data);
    });
  }

  // The build's JSON, polled while it runs (and once more after it ended).
  function watch(head) {
    var header = head.querySelector("[data-build-result]");
    var note = document.getElementById("live-note");
    function count(name) {
      return parseInt(head.getAttribute(name) || "0", 10);
    }
    function apply(build) {
      setResult(header, build.result);
      var steps = build.steps || [];
      for (var i = 0; i < steps.length; i++) {
        setResult(document.querySelector('[data-step-result="' + steps[i].number + '"]'),
                  steps[i].result);
      }
      var triggered = build.triggered || [];
      var started = 0;
      for (var j = 0; j < triggered.length; j++) {
        if (triggered[j].build) {
          started++;
          setResult(document.querySelector('[data-triggered-result="' + triggered[j].build +
                                           '"]'), triggered[j].result);
        }
      }
      var shown = document.querySelectorAll("[data-triggered-result]").length;
      var artifacts = build.artifacts ? build.artifacts.length : 0;
      if (note && (steps.length > count("data-steps") ||
                   triggered.length > count("data-triggered") || started > shown ||
                   artifacts > count("data-artifacts"))) {
        note.hidden = false;
      }
      return build.result === "running" ||
             triggered.some(function (t) { return !t.build || t.result === "running"; });
    }
    function poll() {
      fetch("/api/v1/builds/" + head.getAttribute("data-build"), { credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (build) {
          if (!build || apply(build)) {
            window.setTimeout(poll, 3000);
          }
        })
        .catch(function () { window.setTimeout(poll, 3000); });
    }
    var pending = header && header.textContent === "running";
    var waiting = document.querySelectorAll(".triggered .result.running").length > 0 ||
      document.querySelectorAll(".triggered li").length >
        document.querySelectorAll("[data-triggered-result]").length;
    if (pending || waiting) {
      window.setTimeout(poll, 3000);
    }
  }

  var head = document.getElementById("build-head");
  if (head && window.fetch) {
    watch(head);
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
