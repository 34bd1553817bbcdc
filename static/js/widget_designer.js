/* The widget designer's live preview (templates/bots/widget.html). The widget on the page is the
   real embed.js/panel, opened with a preview token; every change to a [data-look] field is applied
   at once through ChatWidget.preview(look), before saving. Without this script the form still saves. */
(function () {
  "use strict";

  function look(form) {
    var out = {};
    form.querySelectorAll("[data-look]").forEach(function (field) {
      var key = field.getAttribute("data-look");
      var value = field.value;
      if (key === "suggested_questions") {
        value = value.split("\n").map(function (q) { return q.trim(); }).filter(Boolean);
      }
      out[key] = value;
    });
    return out;
  }

  function start() {
    var form = document.getElementById("widget-form");
    if (!form || !window.ChatWidget || !window.ChatWidget.on) return false;
    var apply = function () { window.ChatWidget.preview(look(form)); };
    form.addEventListener("input", apply);
    form.addEventListener("change", apply);
    var ready = function () {
      apply();
      // Open the panel where there is room beside the form; on a phone it would cover the page.
      if (window.matchMedia("(min-width: 1100px)").matches) window.ChatWidget.open();
    };
    var widgets = window.ChatWidget._instances || [];
    if (widgets.length && widgets[0].state === "ready") ready();
    else window.ChatWidget.on("ready", ready);
    return true;
  }

  // embed.js loads async: wait for its API object.
  var tries = 0;
  (function wait() {
    if (!start() && tries++ < 100) setTimeout(wait, 50);
  })();
})();
