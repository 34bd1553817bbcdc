/*! Chat widget panel. Loaded by embed.js on the first click; vanilla JS, no build step.
 * Safety: model output is turned into DOM nodes with createElement/createTextNode only,
 * never innerHTML. Markdown images become links and are never loaded; links are
 * http(s)/mailto only, with rel="noopener noreferrer" and target=_blank. */
(function (w, d) {
  "use strict";
  if (!w.ChatWidget || w.ChatWidget._panel) return;

  // ---------------------------------------------------------------- safe Markdown subset
  function el(tag, cls, text) {
    var e = d.createElement(tag);
    if (cls) e.className = cls;
    if (text != null && text !== "") e.textContent = text;
    return e;
  }

  function txt(parent, s) {
    if (s) parent.appendChild(d.createTextNode(s));
  }

  // Only absolute http(s) and mailto URLs survive; javascript:, data:, vbscript:, relative
  // and malformed URLs are dropped (their text stays, as plain text).
  function safeUrl(raw) {
    if (!raw) return null;
    var u;
    try { u = new URL(raw.trim()); } catch (e) { return null; }
    return /^(https?|mailto):$/.test(u.protocol) ? u.href : null;
  }

  function link(href, text) {
    var a = el("a", "", text);
    a.href = href;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    return a;
  }

  // code | image | link | bold | italic | bare URL | citation marker [n]
  var INLINE = new RegExp(
    "(`+)([^`][\\s\\S]*?)\\1" +
    "|!\\[([^\\]]*)\\]\\(\\s*<?([^()\\s>]*)>?(?:\\s+\"[^\"]*\")?\\s*\\)" +
    "|\\[([^\\]]+)\\]\\(\\s*<?([^()\\s>]*)>?(?:\\s+\"[^\"]*\")?\\s*\\)" +
    "|\\*\\*(?=\\S)([\\s\\S]*?\\S)\\*\\*|__(?=\\S)([\\s\\S]*?\\S)__" +
    "|\\*(?=[^\\s*])([^*]*?[^\\s*])\\*|\\b_(?=[^\\s_])([^_]*?[^\\s_])_\\b" +
    "|(https?:\\/\\/[^\\s<>()]*[^\\s<>().,;:!?'\"\\]])" +
    "|\\[(\\d{1,2})\\]"
  );

  function inline(parent, s, noLinks) {
    var m;
    while (s && (m = INLINE.exec(s))) {
      txt(parent, s.slice(0, m.index));
      if (m[1]) {
        parent.appendChild(el("code", "", m[2]));
      } else if (m[4] !== undefined && m[0].charAt(0) === "!") {
        // An image the model wrote: shown as a link the visitor may choose to open, never
        // fetched by the widget (that would leak the conversation to any host it names).
        var src = safeUrl(m[4]);
        var label = "Image: " + (m[3] || (src ? new URL(src).hostname : "")).trim();
        if (src && !noLinks) {
          var a = link(src, label);
          a.className = "cw-img";
          parent.appendChild(a);
        } else {
          txt(parent, "[" + label + "]");
        }
      } else if (m[5] !== undefined) {
        var href = safeUrl(m[6]);
        if (href && !noLinks) {
          var a2 = link(href, "");
          inline(a2, m[5], true);
          parent.appendChild(a2);
        } else {
          inline(parent, m[5], noLinks);
        }
      } else if (m[7] || m[8]) {
        var b = el("strong");
        inline(b, m[7] || m[8], noLinks);
        parent.appendChild(b);
      } else if (m[9] || m[10]) {
        var i = el("em");
        inline(i, m[9] || m[10], noLinks);
        parent.appendChild(i);
      } else if (m[11]) {
        var u = safeUrl(m[11]);
        if (u && !noLinks) parent.appendChild(link(u, m[11]));
        else txt(parent, m[11]);
      } else if (m[12]) {
        parent.appendChild(el("sup", "cw-ref", m[12]));
      }
      s = s.slice(m.index + m[0].length);
    }
    txt(parent, s);
  }

  function lines(parent, ls) {
    for (var i = 0; i < ls.length; i++) {
      if (i) parent.appendChild(el("br"));
      inline(parent, ls[i]);
    }
  }

  var LIST = /^\s{0,3}([-*+]|\d{1,9}[.)])\s+(.*)$/;

  // Blocks: fenced code, headings, lists, quotes, paragraphs. Anything else is text.
  function markdown(src) {
    var frag = d.createDocumentFragment();
    var ls = String(src == null ? "" : src).replace(/\r\n?/g, "\n").split("\n");
    var i = 0, m, buf;
    while (i < ls.length) {
      var line = ls[i];
      if (/^\s*$/.test(line)) { i++; continue; }
      if ((m = /^\s{0,3}(`{3,}|~{3,})/.exec(line))) {
        var fence = m[1];
        buf = [];
        for (i++; i < ls.length && ls[i].trim().indexOf(fence) !== 0; i++) buf.push(ls[i]);
        i++;
        var pre = el("pre");
        pre.appendChild(el("code", "", buf.join("\n")));
        frag.appendChild(pre);
      } else if ((m = /^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line))) {
        var h = el("p", "cw-h");
        inline(h, m[2]);
        frag.appendChild(h);
        i++;
      } else if (/^\s{0,3}>/.test(line)) {
        buf = [];
        for (; i < ls.length && /^\s{0,3}>/.test(ls[i]); i++) buf.push(ls[i].replace(/^\s{0,3}>\s?/, ""));
        var q = el("blockquote");
        lines(q, buf);
        frag.appendChild(q);
      } else if ((m = LIST.exec(line))) {
        var ordered = /\d/.test(m[1]);
        var list = el(ordered ? "ol" : "ul");
        if (ordered && parseInt(m[1], 10) !== 1) list.start = parseInt(m[1], 10);
        var li = null;
        for (; i < ls.length; i++) {
          var lm = LIST.exec(ls[i]);
          if (lm && /\d/.test(lm[1]) === ordered) {
            li = el("li");
            inline(li, lm[2]);
            list.appendChild(li);
          } else if (li && /^\s+\S/.test(ls[i])) {
            li.appendChild(el("br"));
            inline(li, ls[i].trim());
          } else break;
        }
        frag.appendChild(list);
      } else {
        buf = [];
        for (; i < ls.length && !/^\s*$/.test(ls[i]) && !/^\s{0,3}(`{3,}|~{3,}|#{1,6}\s|>)/.test(ls[i]) &&
          !(buf.length && LIST.test(ls[i])); i++) buf.push(ls[i]);
        var p = el("p");
        lines(p, buf);
        frag.appendChild(p);
      }
    }
    return frag;
  }

  // ---------------------------------------------------------------- friendly errors
  var ERRORS = {
    rate_limited: "You're sending messages a little fast. Please wait {s} and try again.",
    quota_exceeded: "This assistant has answered all the questions it can for now. Please try again later.",
    all_providers_failed: "Sorry, I can't answer right now. Please try again in a moment.",
    tenant_suspended: "Chat is unavailable right now.",
    message_too_long: "That message is too long. Please shorten it and send it again.",
    frame_too_large: "That message is too long. Please shorten it and send it again.",
    not_found: "That answer is no longer available.",
    answer_in_progress: "Please wait for the current answer, or stop it first.",
    server_busy: "Busy, retrying in {s}…",
  };

  function friendly(f) {
    var msg = ERRORS[f.code] || f.message || "Something went wrong. Please try again.";
    var s = Math.max(1, Math.ceil(+f.retry_after || 0));
    return msg.replace("{s}", f.retry_after ? s + (s === 1 ? " second" : " seconds") : "a moment");
  }

  // ---------------------------------------------------------------- icons
  var NS = "http://www.w3.org/2000/svg";
  var ICONS = {
    close: "M6 6l12 12M18 6L6 18",
    send: "M4 12l16-8-6 16-2-7-8-1z",
    stop: "M7 7h10v10H7z",
    plus: "M12 5v14M5 12h14",
    up: "M7 11v9H4v-9h3zm0 0l4-7a2 2 0 0 1 3 2l-1 4h5a2 2 0 0 1 2 2l-2 7a2 2 0 0 1-2 1H7",
    down: "M7 13V4H4v9h3zm0 0l4 7a2 2 0 0 0 3-2l-1-4h5a2 2 0 0 0 2-2l-2-7a2 2 0 0 0-2-1H7",
  };

  function icon(name) {
    var s = d.createElementNS(NS, "svg");
    s.setAttribute("viewBox", "0 0 24 24");
    s.setAttribute("aria-hidden", "true");
    s.setAttribute("focusable", "false");
    var p = d.createElementNS(NS, "path");
    p.setAttribute("d", ICONS[name]);
    s.appendChild(p);
    return s;
  }

  function button(cls, label, iconName, text) {
    var b = el("button", cls, text);
    b.type = "button";
    b.setAttribute("aria-label", label);
    b.title = label;
    if (iconName) b.insertBefore(icon(iconName), b.firstChild);
    return b;
  }

  var uid = 0;

  // ---------------------------------------------------------------- the panel
  function Panel(inst) {
    var self = this;
    self.inst = inst;
    self.msgs = {};
    self.outbox = [];
    self.attempt = 0;
    self.cur = null;
    self.pending = {};

    var css = el("link");
    css.rel = "stylesheet";
    css.href = inst.assets + "panel.css";
    self.ready = new Promise(function (res) { css.onload = css.onerror = res; });
    inst.root.appendChild(css);

    var root = (self.el = el("div", "cw-panel"));
    root.id = "cw-panel-" + ++uid;
    root.hidden = true;
    root.setAttribute("role", "dialog");
    inst.launcher.setAttribute("aria-controls", root.id);

    var head = (self.head = el("div", "cw-head"));
    self.titleEl = el("h2", "cw-title", inst.title);
    self.titleEl.id = root.id + "-t";
    root.setAttribute("aria-labelledby", self.titleEl.id);
    head.appendChild(self.titleEl);
    var fresh = button("cw-icon cw-new", "New conversation", "plus");
    fresh.addEventListener("click", function () { self.newConversation(); });
    var close = button("cw-icon cw-close", "Close chat", "close");
    close.addEventListener("click", function () { inst.hide(); inst.launcher.focus(); });
    head.appendChild(fresh);
    head.appendChild(close);

    self.status = el("div", "cw-status");
    self.status.setAttribute("role", "status");
    self.status.hidden = true;

    self.log = el("div", "cw-log");
    self.log.setAttribute("role", "log");
    self.log.setAttribute("aria-label", "Conversation");
    // The log itself is not live: streamed text would be read out token by token. Finished
    // sentences go to the visually hidden live region below instead.
    self.log.setAttribute("aria-live", "off");
    self.log.tabIndex = 0;
    self.live = el("div", "cw-sr");
    self.live.setAttribute("aria-live", "polite");
    self.live.setAttribute("aria-atomic", "false");

    var form = (self.form = el("form", "cw-form"));
    self.input = el("textarea", "cw-input");
    self.input.rows = 1;
    self.input.maxLength = 4000;
    self.input.placeholder = "Type your question…";
    self.input.setAttribute("aria-label", "Your message");
    self.send = button("cw-icon cw-send", "Send", "send");
    self.send.type = "submit";
    self.stopBtn = button("cw-icon cw-stop", "Stop generating", "stop");
    self.stopBtn.hidden = true;
    self.stopBtn.addEventListener("click", function () { self.stop(); });
    form.appendChild(self.input);
    form.appendChild(self.stopBtn);
    form.appendChild(self.send);
    form.addEventListener("submit", function (e) { e.preventDefault(); self.submit(); });
    self.input.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); self.submit(); }
    });
    self.input.addEventListener("input", function () { self.grow(); });
    root.addEventListener("keydown", function (e) {
      if (e.key === "Escape") { inst.hide(); inst.launcher.focus(); }
    });

    root.appendChild(head);
    root.appendChild(self.status);
    root.appendChild(self.log);
    root.appendChild(self.live);
    root.appendChild(form);
    var foot = el("div", "cw-foot", "Answers are generated by AI and may contain mistakes.");
    self.foot = foot;
    root.appendChild(foot);
    inst.wrap.appendChild(root);
    self.applyLook(inst.data.bot || {});
    self.render(inst.data);
    if ((inst.data.bot || {}).handoff) self.loadHandoff(inst.data.bot.handoff);
  }

  Panel.prototype = {
    // Everything the look decides. Called at mount, and again by the designer's live preview.
    applyLook: function (bot) {
      var self = this;
      var wg = bot.widget || {};
      self.el.setAttribute("data-scheme", /^(light|dark)$/.test(wg.scheme) ? wg.scheme : "auto");
      self.el.classList.toggle("cw-left", wg.position === "left");
      self.titleEl.textContent = self.inst.title;
      var avatar = safeUrl(wg.avatar_url);
      if (avatar && /^https?:/.test(avatar)) {
        if (!self.avatar) {
          self.avatar = el("img", "cw-avatar");
          self.avatar.alt = "";
          self.head.insertBefore(self.avatar, self.head.firstChild);
        }
        if (self.avatar.getAttribute("src") !== avatar) self.avatar.src = avatar;
      } else if (self.avatar) {
        self.head.removeChild(self.avatar);
        self.avatar = null;
      }
      // The "Powered by" line: the widget's session omits hide_powered_by unless the plan has custom branding.
      if (wg.hide_powered_by && self.powered) {
        self.foot.removeChild(self.powered);
        self.powered = null;
      } else if (!wg.hide_powered_by && !self.powered) {
        self.powered = self.foot.appendChild(el("span", "cw-powered", " Powered by Chatbot SaaS"));
      }
      if (self.welcome) self.welcome.setText(bot.welcome_message || "");
      // Redrawn only when they change: a redraw under the pointer would swallow a click (the
      // designer applies the look again when a field loses focus, which a click on a chip causes).
      if (self.chips && JSON.stringify(wg.suggested_questions || []) !== self.chipsKey) {
        self.drawChips(wg.suggested_questions);
      }
    },

    // Suggested questions: one button each, sent with a click (or Enter/Space from the keyboard).
    // Shown only until the conversation starts.
    drawChips: function (questions) {
      var self = this;
      if (self.chips && self.chips.parentNode) self.chips.parentNode.removeChild(self.chips);
      self.chipsKey = JSON.stringify(questions || []);
      self.chips = el("div", "cw-chips");
      self.chips.setAttribute("role", "group");
      self.chips.setAttribute("aria-label", "Suggested questions");
      (Array.isArray(questions) ? questions : []).slice(0, 6).forEach(function (q) {
        if (typeof q !== "string" || !q.trim()) return;
        var chip = el("button", "cw-chip", q.trim());
        chip.type = "button";
        chip.addEventListener("click", function () {
          if (self.cur || self.dead) return;
          self.input.value = chip.textContent;
          self.submit();
        });
        self.chips.appendChild(chip);
      });
      self.chips.hidden = !self.chips.childNodes.length;
      self.log.appendChild(self.chips);
    },

    hideChips: function () {
      if (this.chips && this.chips.parentNode) this.chips.parentNode.removeChild(this.chips);
      this.chips = null;
    },

    show: function () {
      var self = this;
      self.ready.then(function () {
        if (!self.inst.open) return;
        self.el.hidden = false;
        self.scroll();
        self.input.focus();
        self.connect();
      });
    },

    hide: function () { this.el.hidden = true; },

    unavailable: function (err) {
      this.dead = true;
      this.setStatus((err && err.code === "tenant_suspended" && err.message) || "Chat is unavailable right now.");
      this.input.disabled = this.send.disabled = true;
      if (this.ws) this.ws.close();
    },

    // A new identity or session: forget the socket and the log, draw the new history.
    restart: function (data) {
      this.dead = false;
      this.input.disabled = this.send.disabled = false;
      this.closeSocket();
      this.render(data);
      if (!this.el.hidden) this.connect();
    },

    render: function (data) {
      var self = this;
      self.log.textContent = "";
      self.msgs = {};
      self.cur = null;
      self.lastAgentId = 0;
      self.busy(false);
      var bot = data.bot || {};
      self.chips = null;
      // Always drawn (empty it hides itself), so the designer's preview can fill it in.
      self.welcome = self.bubble("assistant", "cw-welcome");
      self.welcome.setText(bot.welcome_message || "");
      var history = data.history || [];
      if (!history.length) self.drawChips((bot.widget || {}).suggested_questions);
      history.forEach(function (h) {
        if (h.role === "agent") return self.agentBubble(h.agent, h.content, h.id);
        var m = self.bubble(h.role === "user" ? "user" : "assistant");
        m.id = h.id;
        self.msgs[h.id] = m;
        m.setText(h.content || "");
        if (h.role !== "user") {
          if (h.citations && h.citations.length) m.setCitations(h.citations);
          if (h.status === "streaming") {
            // The answer was still streaming when the page went away: replay it whole.
            m.text = "";
            m.setText("");
            self.track(m, 0);
          } else m.finish(h.status, self);
        }
      });
    },

    // ------------------------------------------------------------ human handoff (handoff.js)
    loadHandoff: function (config) {
      var self = this;
      var s = d.createElement("script");
      s.src = self.inst.assets + "handoff.js";
      s.async = true;
      s.onload = function () {
        if (!w.ChatWidget._handoff) return;
        self.handoff = w.ChatWidget._handoff.attach(self, config);
        if (self.ws && self.ws.readyState === 1) self.handoff.opened();
      };
      (d.head || d.documentElement).appendChild(s);
    },

    // A team member's message, with their name: never streamed token by token, read out whole.
    agentBubble: function (name, text, id) {
      var m = this.bubble("agent");
      m.row.insertBefore(el("div", "cw-agent-name", name || "Agent"), m.body);
      m.body.textContent = text;
      if (id > this.lastAgentId) this.lastAgentId = id;
      this.live.appendChild(el("p", "", (name || "Agent") + ": " + text));
      while (this.live.childNodes.length > 4) this.live.removeChild(this.live.firstChild);
      this.scroll();
      return m;
    },

    // A person handles the conversation: the question was stored for them, no answer follows.
    onSent: function (f) {
      var p = this.pending[f.client_id];
      if (!p) return;
      delete this.pending[f.client_id];
      p.user.id = f.message_id;
      if (this.cur === p.answer) {
        this.cur = null;
        this.busy(false);
      }
      if (p.answer.row.parentNode) this.log.removeChild(p.answer.row);
    },

    // ------------------------------------------------------------ messages
    bubble: function (role, extra) {
      var self = this;
      var row = el("div", "cw-msg cw-" + role + (extra ? " " + extra : ""));
      var body = el("div", "cw-body");
      row.appendChild(body);
      self.log.appendChild(row);
      var m = {
        row: row, body: body, text: "", role: role, seq: 0, citations: [],
        setText: function (t) {
          m.text = t;
          if (m.raf) return;
          // Re-render at most once a frame: fast streams stay cheap.
          m.raf = (w.requestAnimationFrame || setTimeout)(function () {
            m.raf = 0;
            body.textContent = "";
            if (role === "user") body.textContent = m.text;
            else body.appendChild(markdown(m.text));
            self.scroll();
          });
        },
        setCitations: function (items) { m.citations = items || []; self.drawCitations(m); },
        finish: function (status, panel) { panel.finishMsg(m, status); },
      };
      self.scroll();
      return m;
    },

    drawCitations: function (m) {
      if (m.cites) m.row.removeChild(m.cites);
      m.cites = null;
      if (!m.citations.length) return;
      var box = el("div", "cw-cites");
      box.appendChild(el("div", "cw-cites-h", "Sources"));
      var ol = el("ol");
      m.citations.forEach(function (c, i) {
        var li = el("li", "cw-cite");
        var n = c.n || i + 1;
        li.appendChild(el("span", "cw-n", String(n)));
        var title = (c.title || "Source " + n) + (c.page ? ", p. " + c.page : "");
        var href = safeUrl(c.url);
        var label = href && /^https?:/.test(href) ? link(href, title) : el("button", "cw-cite-t", title);
        if (label.tagName === "BUTTON") label.type = "button";
        li.appendChild(label);
        if (c.snippet) {
          // Shown on hover and focus (CSS), and toggled by a tap on the number or title.
          var tip = el("span", "cw-snip", c.snippet);
          tip.id = "cw-s-" + ++uid;
          tip.setAttribute("role", "tooltip");
          label.setAttribute("aria-describedby", tip.id);
          li.appendChild(tip);
          li.addEventListener("click", function (e) {
            if (e.target.tagName !== "A") li.classList.toggle("cw-open");
          });
        }
        ol.appendChild(li);
      });
      box.appendChild(ol);
      m.cites = box;
      m.row.insertBefore(box, m.fb || null);
    },

    finishMsg: function (m, status) {
      var self = this;
      m.status = status;
      m.row.classList.remove("cw-streaming");
      m.row.setAttribute("aria-busy", "false");
      if (status === "failed") m.row.classList.add("cw-failed");
      if (status === "partial") m.row.classList.add("cw-partial");
      if (!m.id || m.fb || status === "failed" || !m.text) return;
      var fb = (m.fb = el("div", "cw-fb"));
      var up = button("cw-icon cw-up", "Helpful", "up");
      var down = button("cw-icon cw-down", "Not helpful", "down");
      var thanks = el("span", "cw-thanks");
      thanks.setAttribute("role", "status");
      var pick = function (value) {
        up.setAttribute("aria-pressed", String(value === "up"));
        down.setAttribute("aria-pressed", String(value === "down"));
        m.feedback = value;
        self.sendFrame({ type: "feedback", message_id: m.id, value: value });
        // An optional comment, offered once for either rating.
        if (!m.commentBox) self.commentBox(m, fb);
      };
      up.setAttribute("aria-pressed", "false");
      down.setAttribute("aria-pressed", "false");
      up.addEventListener("click", function () { pick("up"); });
      down.addEventListener("click", function () { pick("down"); });
      fb.appendChild(up);
      fb.appendChild(down);
      fb.appendChild(thanks);
      m.thanks = thanks;
      m.row.appendChild(fb);
    },

    commentBox: function (m, fb) {
      var self = this;
      var f = (m.commentBox = el("form", "cw-comment"));
      var ta = el("textarea", "cw-input");
      ta.rows = 2;
      ta.maxLength = 1000;
      ta.placeholder = "Tell us more (optional)";
      ta.setAttribute("aria-label", "Feedback comment (optional)");
      var ok = el("button", "cw-btn", "Send feedback");
      ok.type = "submit";
      f.appendChild(ta);
      f.appendChild(ok);
      f.addEventListener("submit", function (e) {
        e.preventDefault();
        var c = ta.value.trim();
        if (c) self.sendFrame({ type: "feedback", message_id: m.id, value: m.feedback, comment: c });
        fb.removeChild(f);
        m.thanks.textContent = "Thanks for your feedback!";
      });
      fb.appendChild(f);
    },

    scroll: function () { this.log.scrollTop = this.log.scrollHeight; },

    grow: function () {
      this.input.style.height = "auto";
      this.input.style.height = Math.min(this.input.scrollHeight, 120) + "px";
    },

    setStatus: function (text, kind) {
      this.status.textContent = text || "";
      this.status.hidden = !text;
      this.status.className = "cw-status" + (kind ? " cw-" + kind : "");
    },

    // Finished sentences of a streamed answer go to the live region, so a screen reader
    // reads whole sentences instead of token fragments.
    speak: function (m, final) {
      var said = m.said || 0;
      var rest = m.text.slice(said);
      var cut = final ? rest.length : Math.max(rest.lastIndexOf(". "), rest.lastIndexOf("\n"), rest.lastIndexOf("? "),
        rest.lastIndexOf("! ")) + 1;
      if (cut <= 0) return;
      var chunk = rest.slice(0, cut).replace(/[*_`#>[\]]/g, "").trim();
      m.said = said + cut;
      if (!chunk) return;
      this.live.appendChild(el("p", "", chunk));
      while (this.live.childNodes.length > 4) this.live.removeChild(this.live.firstChild);
    },

    busy: function (on) {
      this.stopBtn.hidden = !on;
      this.send.hidden = on;
      if (!on) this.untype();
    },

    untype: function () {
      var t = this.typing;
      this.typing = null;
      if (t && t.parentNode) t.parentNode.removeChild(t);
    },

    showTyping: function (m) {
      if (this.typing) return;
      var t = (this.typing = el("div", "cw-typing"));
      t.setAttribute("aria-label", "The assistant is typing");
      t.setAttribute("role", "img");
      for (var i = 0; i < 3; i++) t.appendChild(el("span"));
      m.row.appendChild(t);
      this.scroll();
    },

    track: function (m, seq) {
      this.cur = m;
      m.seq = seq;
      m.row.classList.add("cw-streaming");
      m.row.setAttribute("aria-busy", "true");
      this.busy(true);
      this.showTyping(m);
      if (m.id) this.msgs[m.id] = m;
    },

    submit: function () {
      var text = this.input.value.trim();
      if (!text || this.dead) return;
      if (this.cur) {
        this.setStatus("Please wait for the current answer, or stop it first.");
        return;
      }
      this.input.value = "";
      this.grow();
      this.setStatus("");
      this.hideChips();
      var clientId = "c" + Date.now().toString(36) + ++uid;
      var user = this.bubble("user");
      user.setText(text);
      var answer = this.bubble("assistant");
      answer.clientId = clientId;
      // One idempotency key per question: every resend of it (busy, dropped socket) joins or
      // replays the first answer instead of asking twice.
      var frame = { type: "message", text: text, client_id: clientId,
        idempotency_key: clientId + "-" + Math.random().toString(36).slice(2, 12) };
      this.pending[clientId] = { user: user, answer: answer, frame: frame };
      this.track(answer, 0);
      this.sendFrame(frame);
      this.inst.emit("message", { botId: this.inst.botId, role: "user", text: text });
    },

    stop: function () {
      var m = this.cur;
      if (!m) return;
      if (m.id) this.sendFrame({ type: "stop", message_id: m.id });
      else m.stopAsked = true;
    },

    newConversation: function () {
      var self = this;
      if (self.cur && self.cur.id) self.sendFrame({ type: "stop", message_id: self.cur.id });
      self.sendFrame({ type: "new_conversation" });
      self.render({ bot: self.inst.data.bot, history: [] });
      if (self.handoff) self.handoff.reset();
      self.pending = {};
      self.setStatus("");
      self.input.focus();
    },

    // ------------------------------------------------------------ socket
    sendFrame: function (f) {
      if (this.ws && this.ws.readyState === 1) this.put(f);
      else {
        this.outbox.push(f);
        this.connect();
      }
    },

    // Sends on the open socket, noting which socket carried a question (see opened()).
    put: function (f) {
      this.ws.send(JSON.stringify(f));
      if (f.type === "message" && this.pending[f.client_id]) this.pending[f.client_id].answer.gen = this.gen;
    },

    closeSocket: function () {
      var ws = this.ws;
      this.ws = null;
      clearTimeout(this.timer);
      if (ws) {
        ws.onclose = ws.onmessage = ws.onerror = null;
        try { ws.close(); } catch (e) { /* already closed */ }
      }
    },

    connect: function () {
      var self = this;
      if (self.ws || self.dead || self.connecting) return;
      self.connecting = true;
      self.inst.token().then(function (s) {
        self.connecting = false;
        if (self.ws || self.dead) return;
        var url = self.inst.api.replace(/^http/, "ws") + "/ws/widget/" + encodeURIComponent(self.inst.botId) +
          "/?token=" + encodeURIComponent(s.token);
        var ws = (self.ws = new WebSocket(url));
        self.gen = (self.gen || 0) + 1;
        ws.onopen = function () { self.opened(); };
        ws.onmessage = function (e) { self.frame(e.data); };
        ws.onclose = function (e) { self.closed(e.code); };
      }, function (err) {
        self.connecting = false;
        if (err && /^(bot_not_found|origin_not_allowed|tenant_suspended)$/.test(err.code)) self.inst.unavailable(err);
        else self.retry();
      });
    },

    opened: function () {
      this.attempt = 0;
      this.setStatus("");
      // An answer that was streaming when the connection dropped: ask for what we missed.
      var m = this.cur;
      if (m && m.id) this.put({ type: "resume", message_id: m.id, last_seq: m.seq });
      else if (m && m.gen) {
        // The question left on a socket that died before the answer started: we cannot know
        // its id to resume, so free the input and say so.
        this.cur = null;
        this.busy(false);
        if (m.row.parentNode) this.log.removeChild(m.row);
        this.pending = {};
        this.setStatus("The connection dropped before the answer started. Please ask again.", "error");
      }
      if (this.handoff) this.handoff.opened();
      var out = this.outbox;
      this.outbox = [];
      for (var i = 0; i < out.length; i++) this.put(out[i]);
    },

    // server_busy: nothing was stored; the same frame (same key) goes again after retry_after.
    busyRetry: function (f) {
      var self = this, p = self.pending[f.client_id];
      self.setStatus(friendly(f), "warn");
      clearTimeout(self.busyTimer);
      self.busyTimer = setTimeout(function () {
        if (self.pending[f.client_id] !== p || self.dead) return;
        self.setStatus("");
        self.sendFrame(p.frame);
      }, Math.max(1, +f.retry_after || 2) * 1000);
    },

    closed: function (code) {
      this.ws = null;
      if (code === 4404) return this.inst.unavailable({ code: "bot_not_found" });
      // 4403: the token expired or the origin changed; a fresh session tells which.
      if (code === 4403) this.inst.data.at = 0;
      this.retry();
    },

    retry: function () {
      var self = this;
      if (self.dead) return;
      // Exponential backoff with jitter, capped at 30 s.
      var delay = Math.min(30000, 500 * Math.pow(2, self.attempt++)) * (0.5 + Math.random() / 2);
      if (self.attempt > 1) self.setStatus("Connection lost. Reconnecting…", "warn");
      clearTimeout(self.timer);
      self.timer = setTimeout(function () { self.connect(); }, delay);
    },

    frame: function (raw) {
      var f;
      try { f = JSON.parse(raw); } catch (e) { return; }
      var m = f.message_id != null ? this.msgs[f.message_id] : null;
      switch (f.type) {
        case "start": return this.onStart(f);
        case "delta":
        case "reset":
        case "citations":
        case "end":
          if (!m) return;
          // seq numbers every frame of an answer: anything at or below what we have is a
          // duplicate from a resume and is ignored.
          if (f.seq != null) {
            if (f.seq <= m.seq) return;
            m.seq = f.seq;
          }
          return this["on_" + f.type](m, f);
        case "error": return this.onError(f, m);
        case "feedback_ok":
          if (m && m.thanks && !m.thanks.textContent) m.thanks.textContent = "Thanks for your feedback!";
          return;
        case "sent":
          this.onSent(f);
          if (this.handoff) this.handoff.frame(f);
          return;
        default:
          if (this.handoff) this.handoff.frame(f);
      }
    },

    onStart: function (f) {
      var p = this.pending[f.client_id];
      var m;
      if (p) {
        delete this.pending[f.client_id];
        p.user.id = f.user_message_id;
        m = p.answer;
      } else {
        m = this.bubble("assistant");
      }
      m.id = f.message_id;
      this.msgs[m.id] = m;
      this.track(m, 0);
      if (m.stopAsked) this.stop();
    },

    on_delta: function (m, f) {
      if (f.text) this.untype();
      m.setText(m.text + (f.text || ""));
      this.speak(m, false);
    },

    on_reset: function (m) {
      m.said = 0;
      m.setText("");
    },

    on_citations: function (m, f) { m.setCitations(f.items); },

    on_end: function (m, f) {
      if (typeof f.content === "string" && f.content) m.setText(f.content);
      // A settled answer replayed after the fact carries its citations in the end frame.
      if (f.citations && f.citations.length) m.setCitations(f.citations);
      else if (f.status === "failed" && !m.text) m.setText(ERRORS.all_providers_failed);
      this.speak(m, true);
      this.finishMsg(m, f.status || "complete");
      if (this.cur === m) {
        this.cur = null;
        this.busy(false);
      }
      this.inst.emit("message", {
        botId: this.inst.botId, role: "assistant", id: m.id, text: m.text, status: m.status,
        citations: m.citations,
      });
    },

    onError: function (f, m) {
      if (f.code === "token_expired") {
        this.inst.data.at = 0;
        return this.closeSocket(), this.connect();
      }
      if (f.code === "tenant_suspended") return this.inst.unavailable(f);
      if (f.code === "bad_frame" || f.code === "message_empty") return;
      if (f.code === "lead_invalid" && this.handoff && this.handoff.serverErrors(f)) return;
      if (f.code === "server_busy" && f.client_id && this.pending[f.client_id]) return this.busyRetry(f);
      this.setStatus(friendly(f), "error");
      // An error about the answer in flight ends it; the visitor can ask again.
      var cur = this.cur;
      if (cur && (!f.message_id || cur === m || !cur.id)) {
        this.cur = null;
        this.busy(false);
        if (!cur.id && !cur.text) this.log.removeChild(cur.row);
        else this.finishMsg(cur, "failed");
      }
    },
  };

  w.ChatWidget._panel = {
    mount: function (inst) { return new Panel(inst); },
    markdown: markdown,
    safeUrl: safeUrl,
  };
})(window, document);
