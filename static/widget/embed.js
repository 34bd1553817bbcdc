/*! Chat widget loader. Vanilla JS, no dependencies, no build step.
 * <script src="https://HOST/static/widget/embed.js" data-bot="PUBLIC_ID" async></script>
 * It asks the server for a session, draws a launcher in a shadow root, and loads the
 * panel (panel.js + panel.css) on the first click. It never throws into the host page:
 * every failure ends in one console warning and a hidden launcher. */
(function (w, d) {
  "use strict";
  var t0 = w.performance && performance.now ? performance.now() : 0;
  var NS = "http://www.w3.org/2000/svg";
  var api = w.ChatWidget && w.ChatWidget._instances ? w.ChatWidget : null;
  var queued = w.ChatWidget && w.ChatWidget.q ? w.ChatWidget.q : [];

  function warn(msg) {
    try { console.warn("[chat widget] " + msg); } catch (e) { /* no console */ }
  }

  function store(key, value) {
    // localStorage throws in some sandboxed frames and private modes: the widget then
    // simply forgets the visitor between page loads.
    try {
      if (value === undefined) return w.localStorage.getItem(key);
      if (value === null) w.localStorage.removeItem(key);
      else w.localStorage.setItem(key, value);
    } catch (e) { return null; }
    return value;
  }

  function uuid() {
    if (w.crypto && crypto.randomUUID) return crypto.randomUUID();
    var b = new Uint8Array(16);
    crypto.getRandomValues(b);
    b[6] = (b[6] & 15) | 64; b[8] = (b[8] & 63) | 128;
    var h = "";
    for (var i = 0; i < 16; i++) h += (b[i] + 256).toString(16).slice(1) + ([3, 5, 7, 9].indexOf(i) >= 0 ? "-" : "");
    return h;
  }

  function el(tag, cls, text) {
    var e = d.createElement(tag);
    if (cls) e.className = cls;
    if (text) e.textContent = text;
    return e;
  }

  function svg(path) {
    var s = d.createElementNS(NS, "svg");
    s.setAttribute("viewBox", "0 0 24 24");
    s.setAttribute("aria-hidden", "true");
    s.setAttribute("focusable", "false");
    var p = d.createElementNS(NS, "path");
    p.setAttribute("d", path);
    s.appendChild(p);
    return s;
  }

  var ICON_CHAT = "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z";
  var ICON_CLOSE = "M6 6l12 12M18 6L6 18";

  // The launcher's own CSS. Constructed stylesheets are not blocked by a host page's CSP
  // (no 'unsafe-inline' needed); a <style> element is the fallback for old browsers.
  var STYLE =
    ":host{all:initial!important;display:block!important;position:static!important}" +
    ".cw-launch{position:fixed;z-index:var(--chat-widget-z,2147483000);bottom:var(--cw-bottom,20px);" +
    "right:20px;width:56px;height:56px;border-radius:50%;border:0;padding:0;margin:0;cursor:pointer;" +
    "background:var(--chat-widget-primary,var(--cw-bot-primary,#2563eb));color:var(--chat-widget-on-primary,#fff);" +
    "box-shadow:0 4px 14px rgba(0,0,0,.25);display:flex;align-items:center;justify-content:center;" +
    "transition:transform .15s ease}.cw-left .cw-launch{right:auto;left:20px}" +
    ".cw-launch:hover{transform:scale(1.06)}.cw-launch:focus-visible{outline:3px solid #fff;" +
    "box-shadow:0 0 0 6px var(--chat-widget-primary,var(--cw-bot-primary,#2563eb))}" +
    ".cw-launch svg{width:26px;height:26px;fill:none;stroke:currentColor;stroke-width:2;" +
    "stroke-linecap:round;stroke-linejoin:round}.cw-launch[hidden]{display:none}" +
    ".cw-launch.cw-labelled{width:auto;padding:0 20px 0 16px;border-radius:28px;gap:8px;" +
    "font:600 15px/1 system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif}" +
    ".cw-label{white-space:nowrap;max-width:240px;overflow:hidden;text-overflow:ellipsis}" +
    ".cw-launch[aria-expanded=true] .cw-label{display:none}" +
    "@media (prefers-reduced-motion:reduce){.cw-launch{transition:none}}";

  function adoptCss(root, css) {
    try {
      var sheet = new CSSStyleSheet();
      sheet.replaceSync(css);
      root.adoptedStyleSheets = [sheet];
    } catch (e) {
      root.appendChild(el("style", "", css));
    }
  }

  function ident(x) {
    return x && x.id ? { id: String(x.id), hmac: String(x.hmac || ""), name: x.name ? String(x.name) : "" } : null;
  }

  function Widget(script, index, identity) {
    var self = this;
    self.botId = script.getAttribute("data-bot");
    var src = new URL(script.src, d.baseURI);
    self.assets = new URL(".", src).href;
    self.api = (script.getAttribute("data-api") || src.origin).replace(/\/+$/, "");
    self.index = index;
    self.identity = ident(identity);
    // The dashboard's widget designer: a signed preview token instead of an allowed origin.
    self.previewToken = script.getAttribute("data-preview") || "";
    self.state = "loading";
    self.open = false;
    var vkey = "cw:" + self.botId + ":visitor";
    self.visitorId = store(vkey) || store(vkey, uuid());
    self.host = d.createElement("chat-widget");
    self.host.setAttribute("data-bot", self.botId);
    self.root = self.host.attachShadow({ mode: "open" });
    adoptCss(self.root, STYLE);
    self.wrap = el("div", "cw-wrap");
    if (index) self.wrap.style.setProperty("--cw-bottom", 20 + 72 * index + "px");
    self.launcher = el("button", "cw-launch");
    self.launcher.type = "button";
    self.launcher.hidden = true;
    self.launcher.setAttribute("aria-expanded", "false");
    self.launcher.setAttribute("aria-haspopup", "dialog");
    self.iconChat = svg(ICON_CHAT);
    self.iconClose = svg(ICON_CLOSE);
    self.launcher.appendChild(self.iconChat);
    self.label = el("span", "cw-label");
    self.label.hidden = true;
    self.launcher.appendChild(self.label);
    self.launcher.addEventListener("click", function () { self.toggle(); });
    self.wrap.appendChild(self.launcher);
    self.root.appendChild(self.wrap);
    (d.body || d.documentElement).appendChild(self.host);
    self.start();
  }

  Widget.prototype = {
    // POST /widget/<id>/session (docs/protocol.md §1). Resolves with the session or rejects
    // with {code, message}.
    session: function () {
      var self = this;
      var body = { visitor_id: self.visitorId };
      if (self.identity) body.identity = self.identity;
      if (self.previewToken) body.preview = self.previewToken;
      return fetch(self.api + "/widget/" + encodeURIComponent(self.botId) + "/session", {
        method: "POST",
        mode: "cors",
        credentials: "omit",
        // A JSON body sent as text/plain is a CORS "simple" request: no preflight round trip
        // before the launcher can appear. The server parses the body as JSON either way.
        headers: { "Content-Type": "text/plain;charset=UTF-8" },
        body: JSON.stringify(body),
      }).then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (j) {
          if (!r.ok || !j.token) throw (j && j.error) || { code: "http_" + r.status, message: "HTTP " + r.status };
          j.at = Date.now();
          self.data = j;
          return j;
        });
      });
    },

    start: function () {
      var self = this;
      self.session().then(function (s) {
        self.state = "ready";
        if (self.dirty) { self.dirty = false; return self.identify(self.identity); }
        self.theme(s.bot || {});
        self.launcher.hidden = false;
        mark("cw:launcher-visible");
        if (w.performance && performance.now) self.readyMs = performance.now() - t0;
        self.emit("ready", { botId: self.botId });
        if (self.wantOpen) self.show();
      }, function (err) { self.unavailable(err); });
    },

    unavailable: function (err) {
      this.state = "unavailable";
      this.launcher.hidden = true;
      if (this.panel) this.panel.unavailable(err);
      err = err || {};
      warn("chat unavailable for bot " + this.botId + ": " + (err.message || err.code || "network error") +
        (err.code ? " (" + err.code + ")" : ""));
      this.emit("unavailable", { botId: this.botId, code: err.code || "network_error" });
    },

    theme: function (bot) {
      var wg = bot.widget || {};
      var title = wg.title || bot.name || "Chat";
      this.title = title;
      this.launcher.setAttribute("aria-label", "Open chat: " + title);
      if (wg.primary_color && w.CSS && CSS.supports("color", wg.primary_color)) {
        this.host.style.setProperty("--cw-bot-primary", wg.primary_color);
      }
      this.wrap.className = "cw-wrap" + (wg.position === "left" ? " cw-left" : "");
      var label = typeof wg.launcher_label === "string" ? wg.launcher_label.trim() : "";
      this.label.textContent = label;
      this.label.hidden = !label;
      this.launcher.classList.toggle("cw-labelled", !!label);
    },

    // The designer's live preview: apply a look (bot.widget keys, plus welcome_message) now,
    // without a new session. Nothing is saved; a reload shows the saved look again.
    preview: function (look) {
      if (!this.data || !look) return;
      var bot = this.data.bot = this.data.bot || {};
      var wg = {};
      var k;
      for (k in bot.widget || {}) wg[k] = bot.widget[k];
      for (k in look) if (k !== "welcome_message") wg[k] = look[k];
      if (typeof look.welcome_message === "string") bot.welcome_message = look.welcome_message;
      bot.widget = wg;
      if (!(wg.primary_color && w.CSS && CSS.supports("color", wg.primary_color))) {
        this.host.style.removeProperty("--cw-bot-primary");
      }
      this.theme(bot);
      if (this.panel) this.panel.applyLook(bot);
    },

    toggle: function () { this.open ? this.hide() : this.show(); },

    show: function () {
      var self = this;
      if (self.state !== "ready") { self.wantOpen = self.state === "loading"; return; }
      self.open = true;
      self.launcher.setAttribute("aria-expanded", "true");
      self.launcher.setAttribute("aria-label", "Close chat: " + self.title);
      self.launcher.replaceChild(self.iconClose, self.iconChat);
      api._loadPanel(self.assets).then(function (panel) {
        if (!self.panel) self.panel = panel.mount(self);
        if (self.open) self.panel.show();
      }, function () {
        self.hide();
        warn("could not load the chat panel from " + self.assets);
      });
      self.emit("open", { botId: self.botId });
    },

    hide: function () {
      if (!this.open) return;
      this.open = false;
      this.launcher.setAttribute("aria-expanded", "false");
      this.launcher.setAttribute("aria-label", "Open chat: " + this.title);
      this.launcher.replaceChild(this.iconChat, this.iconClose);
      if (this.panel) this.panel.hide();
      this.emit("close", { botId: this.botId });
    },

    identify: function (identity) {
      var self = this;
      self.identity = ident(identity);
      if (self.state === "loading") { self.dirty = true; return; }
      // A new identity needs a new token (the token is bound to it) and may own another history.
      self.session().then(function (s) {
        self.state = "ready";
        self.theme(s.bot || {});
        self.launcher.hidden = false;
        if (self.panel) self.panel.restart(s);
        if (self.wantOpen) self.show();
      }, function (err) { self.unavailable(err); });
    },

    // A fresh token for reconnecting; reuses the current one while it has a minute left.
    token: function () {
      var s = this.data;
      if (s && Date.now() - s.at < ((s.expires_in || 900) - 60) * 1000) return Promise.resolve(s);
      return this.session();
    },

    // Through the shared API object: a second copy of this loader (two bots) keeps one
    // set of listeners and one panel script.
    emit: function (name, detail) { api._fire(name, detail); },
  };

  var listeners = {};
  function fire(name, detail) {
    (listeners[name] || []).slice().forEach(function (fn) {
      try { fn(detail); } catch (e) { setTimeout(function () { throw e; }); }
    });
  }

  function mark(name) {
    try { performance.mark(name); } catch (e) { /* no User Timing */ }
  }

  var panelPromise = null;
  function loadPanel(assets) {
    if (!panelPromise) {
      panelPromise = new Promise(function (resolve, reject) {
        var s = d.createElement("script");
        s.src = assets + "panel.js";
        s.async = true;
        s.onload = function () { w.ChatWidget._panel ? resolve(w.ChatWidget._panel) : reject(); };
        s.onerror = function () { panelPromise = null; reject(); };
        (d.head || d.documentElement).appendChild(s);
      });
    }
    return panelPromise;
  }

  function pick(botId) {
    var all = api._instances;
    if (!botId) return all[0];
    for (var i = 0; i < all.length; i++) if (all[i].botId === botId) return all[i];
  }

  function each(botId, fn) {
    api._instances.forEach(function (i) { if (!botId || i.botId === botId) fn(i); });
  }

  if (!api) {
    // The public API: window.ChatWidget.open(), .close(), .identify({id, hmac, name}),
    // .on('message', fn), .preview(look) (the dashboard's designer: try a look without saving). With several bots on a page, pass the bot id as the last argument.
    api = w.ChatWidget = {
      _instances: [],
      _loadPanel: loadPanel,
      _fire: fire,
      open: function (botId) { var i = pick(botId); if (i) i.show(); },
      close: function (botId) { each(botId, function (i) { i.hide(); }); },
      toggle: function (botId) { var i = pick(botId); if (i) i.toggle(); },
      preview: function (look, botId) { each(botId, function (i) { i.preview(look); }); },
      identify: function (identity, botId) {
        if (!botId) api._identity = identity;
        each(botId, function (i) { i.identify(identity); });
      },
      on: function (name, fn) { (listeners[name] = listeners[name] || []).push(fn); return api; },
      off: function (name, fn) {
        listeners[name] = (listeners[name] || []).filter(function (f) { return f !== fn; });
        return api;
      },
    };
  }

  function boot() {
    mark("cw:loader-start");
    var scripts = d.currentScript ? [d.currentScript] : d.querySelectorAll("script[data-bot]");
    for (var i = 0; i < scripts.length; i++) {
      var s = scripts[i];
      if (!s.getAttribute("data-bot") || s.getAttribute("data-cw") || !/embed\.js/.test(s.src)) continue;
      s.setAttribute("data-cw", "1");
      try {
        // identify() called before this loader arrived applies to its first session too.
        api._instances.push(new Widget(s, api._instances.length, api._identity));
      } catch (e) {
        warn("could not start: " + (e && e.message));
      }
    }
  }

  // identify() queued by a stub must reach the first session request.
  queued = queued.filter(function (c) {
    if (c[0] !== "identify") return true;
    api._identity = (c[1] || [])[0];
    return false;
  });
  boot();
  // Calls queued by a stub (`window.ChatWidget = {q: [...]}`) before the loader arrived.
  queued.forEach(function (c) { try { api[c[0]].apply(api, c[1] || []); } catch (e) { warn(e.message); } });
})(window, document);
