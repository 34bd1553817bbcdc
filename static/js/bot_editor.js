/* The model chain editor, improved when JavaScript runs (the form works without it):
   - each row shows only the fields its provider uses, and only that provider's models;
   - htmx swaps a failed Test connection (400, 429) into the row too, not only a success. */
(function () {
  "use strict";
  var CATALOG = { openai: "OpenAI", anthropic: "Anthropic" };

  function field(row, name) {
    return row.querySelector("[name$='-" + name + "']");
  }

  function wrapper(input) {
    return input ? input.closest(".form-row") : null;
  }

  function show(input, visible) {
    var box = wrapper(input);
    if (box) box.classList.toggle("is-hidden", !visible);
  }

  function sync(row) {
    var provider = field(row, "provider");
    if (!provider) return;
    var kind = provider.value;
    var model = field(row, "model");
    show(model, kind in CATALOG);
    show(field(row, "model_name"), kind === "openai_compatible");
    show(field(row, "base_url"), kind === "openai_compatible");
    if (!model || !(kind in CATALOG)) return;
    var groups = model.querySelectorAll("optgroup");
    var firstVisible = null;
    groups.forEach(function (group) {
      var mine = group.label === CATALOG[kind];
      group.hidden = !mine;
      group.disabled = !mine;
      if (mine && !firstVisible) firstVisible = group.querySelector("option");
    });
    var selected = model.selectedOptions[0];
    if ((!selected || selected.parentElement.hidden) && firstVisible) model.value = firstVisible.value;
  }

  function init(root) {
    root.querySelectorAll("[data-chain-row]").forEach(sync);
  }

  document.addEventListener("change", function (event) {
    if (event.target.matches("[name$='-provider']")) {
      var row = event.target.closest("[data-chain-row]");
      if (row) sync(row);
    }
  });
  document.addEventListener("DOMContentLoaded", function () { init(document); });
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    if (target && target.classList.contains("test-result") && [400, 429].indexOf(event.detail.xhr.status) !== -1) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
})();
