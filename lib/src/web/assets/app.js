// libci's web UI: its only script. Pages work without it; it adds live updates. A page whose
// <body> has data-live fetches itself again every few seconds while it is visible and swaps each
// element marked data-live-region (by id) for its fresh copy: the server renders the one HTML,
// there is no second template in JavaScript. A page that has not changed answers 304 (its
// ETag), so an idle poll costs the network almost nothing.
"use strict";

(function () {
  var body = document.body;
  if (!body || !body.hasAttribute("data-live")) {
    return;
  }
  var interval = 10000;
  var status = document.getElementById("live-status");
  var etag = null;

  function swap(html) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    var regions = document.querySelectorAll("[data-live-region]");
    for (var i = 0; i < regions.length; i++) {
      var fresh = doc.getElementById(regions[i].id);
      if (fresh) {
        regions[i].replaceWith(document.importNode(fresh, true));
      }
    }
  }

  function refresh() {
    if (document.hidden) {
      return;
    }
    var headers = { "X-Requested-With": "libci-live" };
    if (etag) {
      headers["If-None-Match"] = etag;
    }
    fetch(window.location.href, { credentials: "same-origin", cache: "no-store", headers: headers })
      .then(function (response) {
        if (response.status === 304) {
          return null;
        }
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        etag = response.headers.get("ETag");
        return response.text();
      })
      .then(function (html) {
        if (html !== null) {
          swap(html);
        }
        if (status) {
          status.textContent = "updated " + new Date().toLocaleTimeString();
        }
      })
      .catch(function (error) {
        if (status) {
          status.textContent = "live update failed: " + error.message;
        }
      });
  }

  window.setInterval(refresh, interval);
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) {
      refresh();
    }
  });
})();
