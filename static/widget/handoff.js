/* Human handoff in the widget (docs/protocol.md, "Human handoff"): the "Talk to a person" button,
 * status lines, the lead form (checked here and again on the server), agent messages and typing.
 * Loaded by panel.js only for bots with handoff on. No dependencies; never throws into the page. */
(function (w, d) {
  "use strict";

  function el(tag, cls, text) {
    var e = d.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  var EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
  var PHONE = /^[0-9+().\- ]{4,40}$/;

  function Handoff(panel, config) {
    var self = this;
    self.panel = panel;
    self.config = config;
    self.withHuman = false;
    self.leadSent = false;

    self.line = el("div", "cw-handoff-line");
    self.line.setAttribute("role", "status");
    self.line.setAttribute("aria-live", "polite");
    self.line.hidden = true;

    self.ask = el("button", "cw-handoff-ask", "Talk to a person");
    self.ask.type = "button";
    self.ask.hidden = !config.on_request;
    self.ask.addEventListener("click", function () { self.request(); });

    panel.el.insertBefore(self.line, panel.log);
    panel.form.parentNode.insertBefore(self.ask, panel.form);

    var typingAt = 0;
    panel.input.addEventListener("input", function () {
      var now = Date.now();
      if (self.withHuman && now - typingAt > 2000) {
        typingAt = now;
        panel.sendFrame({ type: "typing", on: true });
      }
    });
    var lead = config.lead_form || {};
    if (lead.when === "before" && !self.storedLead()) self.showForm("form", "Before we start, tell us how to reach you.");
  }

  Handoff.prototype = {
    storedLead: function () {
      try { return w.localStorage.getItem("cw-lead-" + this.panel.inst.botId) === "1"; } catch (e) { return false; }
    },

    request: function () {
      this.ask.disabled = true;
      this.panel.sendFrame({ type: "handoff_request", page_url: String(w.location.href).slice(0, 500) });
    },

    status: function (text) {
      this.line.textContent = text || "";
      this.line.hidden = !text;
    },

    // ------------------------------------------------------------ frames from the server
    frame: function (f) {
      switch (f.type) {
        case "handoff": return this.onStatus(f);
        case "agent_message": return this.onAgent(f);
        case "typing": return this.onTyping(f);
        case "sent":
          this.panel.setStatus("");
          return;
        case "lead_ok":
          this.leadSent = true;
          try { w.localStorage.setItem("cw-lead-" + this.panel.inst.botId, "1"); } catch (e) { /* private mode */ }
          this.closeForm();
          this.status(this.away ? "Thanks! Our team will get back to you." : this.line.textContent);
          return;
      }
    },

    onStatus: function (f) {
      var lead = this.config.lead_form || {};
      this.away = f.status === "away" || f.status === "no_pickup";
      this.withHuman = f.status === "waiting" || f.status === "assigned";
      this.ask.hidden = this.withHuman || !this.config.on_request;
      this.ask.disabled = false;
      this.status(f.text);
      if (this.away) {
        this.showForm(f.status === "away" ? "outside_hours" : "no_pickup", "", true); // the status line says why
      } else if (f.status === "waiting" && lead.when === "handoff" && !this.leadSent && !this.storedLead()) {
        this.showForm("form", "While you wait, tell us how to reach you.");
      }
      if (f.status === "returned" || f.status === "closed") this.withHuman = false;
    },

    onAgent: function (f) {
      if (f.id <= this.panel.lastAgentId) return; // already shown (a sync after a live frame)
      this.untype();
      this.panel.agentBubble(f.agent, f.text, f.id);
    },

    onTyping: function (f) {
      if (f.from !== "agent") return;
      if (!f.on) return this.untype();
      if (this.typing) return;
      var t = (this.typing = el("div", "cw-msg cw-agent cw-agent-typing", "An agent is typing…"));
      this.panel.log.appendChild(t);
      this.panel.scroll();
      var self = this;
      clearTimeout(self.typingTimer);
      self.typingTimer = setTimeout(function () { self.untype(); }, 6000);
    },

    untype: function () {
      if (this.typing && this.typing.parentNode) this.typing.parentNode.removeChild(this.typing);
      this.typing = null;
    },

    // The socket opened: ask for the conversation's handoff state and what we missed.
    opened: function () {
      this.panel.put({ type: "handoff_sync", after_id: this.panel.lastAgentId });
    },

    // "New conversation": it starts with the assistant.
    reset: function () {
      this.withHuman = false;
      this.away = false;
      this.untype();
      this.closeForm();
      this.status("");
      this.ask.hidden = !this.config.on_request;
      this.ask.disabled = false;
    },

    // ------------------------------------------------------------ the lead form
    showForm: function (reason, intro, withQuestion) {
      var self = this;
      var spec = self.config.lead_form || { fields: [] };
      self.closeForm();
      var form = (self.formEl = el("form", "cw-lead"));
      form.noValidate = true;
      form.setAttribute("aria-label", "Your contact details");
      if (intro) form.appendChild(el("p", "cw-lead-intro", intro));
      var inputs = {};
      var fields = spec.fields.slice();
      if (withQuestion) fields.push({ key: "question", label: "Your question", type: "textarea", required: true, max_length: 2000 });
      fields.forEach(function (field, i) {
        var id = self.panel.el.id + "-lead-" + i;
        var row = el("div", "cw-lead-row");
        var label = el("label", "", field.label + (field.required ? " *" : ""));
        label.htmlFor = id;
        var input = el(field.type === "textarea" ? "textarea" : "input");
        if (field.type !== "textarea") input.type = field.type;
        input.id = id;
        input.name = field.key;
        input.maxLength = field.max_length;
        if (field.required) input.required = true;
        if (field.type === "email") input.autocomplete = "email";
        if (field.key === "name") input.autocomplete = "name";
        var err = el("p", "cw-lead-err");
        err.id = id + "-err";
        err.hidden = true;
        input.setAttribute("aria-describedby", err.id);
        row.appendChild(label);
        row.appendChild(input);
        row.appendChild(err);
        form.appendChild(row);
        inputs[field.key] = { input: input, err: err, field: field };
      });
      if (spec.consent_text) {
        var row = el("div", "cw-lead-row cw-lead-consent");
        var box = el("input");
        box.type = "checkbox";
        box.id = self.panel.el.id + "-lead-consent";
        var label = el("label", "", spec.consent_text);
        label.htmlFor = box.id;
        var err = el("p", "cw-lead-err");
        err.hidden = true;
        row.appendChild(box);
        row.appendChild(label);
        row.appendChild(err);
        form.appendChild(row);
        inputs.consent = { input: box, err: err, field: { key: "consent", required: true, type: "checkbox" } };
      }
      var send = el("button", "cw-lead-send", "Send");
      send.type = "submit";
      form.appendChild(send);
      form.addEventListener("submit", function (e) {
        e.preventDefault();
        var data = {};
        var first = null;
        Object.keys(inputs).forEach(function (k) {
          var it = inputs[k];
          var value = it.field.type === "checkbox" ? it.input.checked : it.input.value.trim();
          var problem = self.check(it.field, value);
          self.fieldError(it, problem);
          if (problem && !first) first = it.input;
          data[k] = value;
        });
        if (first) return first.focus();
        data.page_url = String(w.location.href).slice(0, 500);
        self.inputs = inputs;
        self.panel.sendFrame({ type: "lead", reason: reason, fields: data });
      });
      self.inputs = inputs;
      self.panel.log.appendChild(form);
      self.panel.scroll();
      var firstInput = form.querySelector("input, textarea");
      if (firstInput) firstInput.focus();
    },

    check: function (field, value) {
      if (field.type === "checkbox") return field.required && !value ? "Please give your consent." : "";
      if (!value) return field.required ? "This field is required." : "";
      if (field.max_length && value.length > field.max_length) return "At most " + field.max_length + " characters.";
      if (field.type === "email" && !EMAIL.test(value)) return "Enter a valid email address.";
      if (field.type === "tel" && !PHONE.test(value)) return "Enter a phone number.";
      return "";
    },

    fieldError: function (it, problem) {
      it.err.textContent = problem || "";
      it.err.hidden = !problem;
      if (problem) it.input.setAttribute("aria-invalid", "true");
      else it.input.removeAttribute("aria-invalid");
    },

    // The server refused the form: show its messages beside the fields.
    serverErrors: function (f) {
      var self = this;
      if (!self.inputs) return false;
      Object.keys(f.fields || {}).forEach(function (k) {
        if (self.inputs[k]) self.fieldError(self.inputs[k], f.fields[k].join(" "));
      });
      return true;
    },

    closeForm: function () {
      if (this.formEl && this.formEl.parentNode) this.formEl.parentNode.removeChild(this.formEl);
      this.formEl = null;
    },
  };

  w.ChatWidget = w.ChatWidget || {};
  w.ChatWidget._handoff = { attach: function (panel, config) { return new Handoff(panel, config); } };
})(window, document);
