/* Knowledge base page: drag-and-drop upload of several files, each with its own row and progress.
   Without this script the form still uploads the chosen files in one plain POST.
   - Files are checked here first against the limits the page states in data attributes (type,
     size per file, documents and storage left on the plan) and refused in plain words; the server
     checks the same again.
   - Each accepted file is sent in its own request, so its row shows its own upload progress.
   - Once a file has arrived, the documents table is refreshed (htmx) and its row there follows
     parse, chunk and embed until ready; the table polls only while something is unfinished. */
(function () {
  "use strict";

  function humanSize(bytes) {
    var units = ["KB", "MB", "GB", "TB"];
    if (bytes < 1024) return bytes + (bytes === 1 ? " byte" : " bytes");
    var value = bytes, unit = "";
    for (var i = 0; i < units.length && value >= 1024; i++) { value /= 1024; unit = units[i]; }
    return value.toFixed(1) + " " + unit;
  }

  function limitOrNull(value) { return value === "" || value === undefined ? null : Number(value); }

  function init(form) {
    var input = form.querySelector("input[type=file]");
    var zone = form.querySelector(".dropzone");
    var queue = document.getElementById("upload-queue");
    var token = form.querySelector("input[name=csrfmiddlewaretoken]").value;
    var maxFile = Number(form.dataset.maxFileBytes);
    var documentsLeft = limitOrNull(form.dataset.documentsLeft);
    var storageLeft = limitOrNull(form.dataset.storageLeft);
    var allowed = form.dataset.allowedExtensions.split(",");
    var typesLabel = form.dataset.allowedTypes;
    form.classList.add("js-enabled");

    function refusal(file) {
      var name = file.name.toLowerCase();
      if (!allowed.some(function (ext) { return name.endsWith(ext); })) {
        return "“" + file.name + "” is not a supported type. Upload " + typesLabel + " files.";
      }
      if (file.size === 0) return "“" + file.name + "” is empty. Upload a document with some content.";
      if (file.size > maxFile) {
        return "“" + file.name + "” is " + humanSize(file.size) + "; your plan allows " + humanSize(maxFile) +
          " per file. Split it or upgrade your plan on the Billing page.";
      }
      if (documentsLeft !== null && documentsLeft < 1) {
        return "Your plan has no documents left, so “" + file.name + "” was not uploaded. Delete documents or upgrade your plan.";
      }
      if (storageLeft !== null && file.size > storageLeft) {
        return "“" + file.name + "” is " + humanSize(file.size) + " but only " + humanSize(storageLeft) +
          " of storage is left on your plan. Delete documents or upgrade your plan.";
      }
      return null;
    }

    function row(file) {
      var item = document.createElement("li");
      item.className = "upload-item";
      item.dataset.file = file.name;
      var name = document.createElement("span");
      name.className = "upload-name";
      name.textContent = file.name;
      var size = document.createElement("span");
      size.className = "muted small";
      size.textContent = humanSize(file.size);
      var bar = document.createElement("div");
      bar.className = "progress";
      var progress = document.createElement("progress");
      progress.max = 100; progress.value = 0;
      progress.setAttribute("aria-label", "Uploading " + file.name);
      var label = document.createElement("span");
      label.className = "progress-label";
      label.textContent = "Waiting";
      bar.append(progress, label);
      var message = document.createElement("p");
      message.className = "upload-message";
      item.append(name, size, bar, message);
      queue.prepend(item);
      return {
        item: item,
        progress: function (percent, text) { progress.value = percent; label.textContent = text; },
        refuse: function (text) { item.classList.add("is-refused"); bar.hidden = true; message.textContent = text; }
      };
    }

    function refreshDocuments() {
      var table = document.getElementById("documents");
      if (!table || !window.htmx) return Promise.resolve();
      return window.htmx.ajax("GET", table.dataset.refreshUrl, { target: "#documents", swap: "outerHTML" });
    }

    function upload(file, view) {
      var data = new FormData();
      data.append("csrfmiddlewaretoken", token);
      data.append("file", file);
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.setRequestHeader("X-CSRFToken", token);
      xhr.upload.addEventListener("progress", function (event) {
        if (event.lengthComputable) {
          var percent = Math.round((event.loaded / event.total) * 100);
          view.progress(percent, "Uploading " + percent + "%");
        }
      });
      xhr.addEventListener("load", function () {
        var body = null;
        try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
        if (xhr.status >= 200 && xhr.status < 300 && body && body.document) {
          view.progress(100, "Uploaded; processing");
          // The document's own row in the table takes over from here.
          refreshDocuments().then(function () { view.item.remove(); });
        } else {
          view.refuse(body && body.error ? body.error.message : "The upload failed (" + xhr.status + "). Try again.");
        }
      });
      xhr.addEventListener("error", function () { view.refuse("The upload was interrupted. Check your connection and try again."); });
      xhr.send(data);
    }

    function accept(files) {
      Array.prototype.forEach.call(files, function (file) {
        var view = row(file);
        var reason = refusal(file);
        if (reason) { view.refuse(reason); return; }
        if (documentsLeft !== null) documentsLeft -= 1;
        if (storageLeft !== null) storageLeft -= file.size;
        upload(file, view);
      });
    }

    input.addEventListener("change", function () {
      if (input.files.length) accept(input.files);
      input.value = "";
    });
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (input.files.length) accept(input.files);
      input.value = "";
    });
    ["dragenter", "dragover"].forEach(function (type) {
      zone.addEventListener(type, function (event) { event.preventDefault(); zone.classList.add("is-dragover"); });
    });
    ["dragleave", "drop"].forEach(function (type) {
      zone.addEventListener(type, function (event) { event.preventDefault(); zone.classList.remove("is-dragover"); });
    });
    zone.addEventListener("drop", function (event) {
      if (event.dataTransfer && event.dataTransfer.files.length) accept(event.dataTransfer.files);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-upload]").forEach(init);
  });
})();
