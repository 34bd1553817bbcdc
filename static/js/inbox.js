// The inbox's live parts: the lists refresh when a handoff changes, the open conversation shows
// the visitor's messages and typing, and replies go over the inbox socket (the form still posts
// without JavaScript). Protocol: conversations/inbox_consumer.py.
// A new waiting conversation also plays a short tone (Web Audio, no file) unless muted, counts in
// #inbox[data-alerts] and is announced in #inbox-alert. Browsers refuse audio before the first user
// gesture, so the audio context is made on the first click or key press; until then the alert is
// silent (the title badge and the announcement still show it).
(function () {
  "use strict";
  var root = document.getElementById("inbox");
  if (!root) return;
  var conversationId = root.dataset.conversationId ? parseInt(root.dataset.conversationId, 10) : null;
  var baseTitle = document.title;
  var ws = null;
  var pending = {};
  var seq = 0;
  var retry = 1000;
  var typingSent = 0;
  var MUTE_KEY = "inbox-muted";
  var audio = null;
  var known = null; // ids of the waiting conversations already alerted about

  function muted() {
    try { return window.localStorage.getItem(MUTE_KEY) === "1"; } catch (e) { return false; }
  }
  function unlockAudio() {
    var Ctx = window.AudioContext || window.webkitAudioContext;
    if (audio || !Ctx) return;
    try { audio = new Ctx(); } catch (e) { audio = null; }
  }
  function tone() {
    if (muted() || !audio) return false;
    try {
      if (audio.state === "suspended") audio.resume().catch(function () { /* still blocked: stay silent */ });
      var t = audio.currentTime;
      var osc = audio.createOscillator();
      var gain = audio.createGain();
      osc.type = "sine";
      osc.frequency.setValueAtTime(880, t);
      osc.frequency.setValueAtTime(660, t + 0.12);
      gain.gain.setValueAtTime(0.0001, t);
      gain.gain.exponentialRampToValueAtTime(0.2, t + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, t + 0.3);
      osc.connect(gain);
      gain.connect(audio.destination);
      osc.start(t);
      osc.stop(t + 0.32);
      return true;
    } catch (e) {
      return false;
    }
  }
  function bump(name) {
    root.dataset[name] = String(parseInt(root.dataset[name] || "0", 10) + 1);
  }
  function alertNew() {
    var lists = root.querySelector(".inbox-lists");
    if (!lists) return;
    var ids = (lists.dataset.waitingIds || "").split(/\s+/).filter(Boolean);
    if (known === null) { known = ids; return; } // the page's first list: nothing is new
    var fresh = ids.filter(function (id) { return known.indexOf(id) < 0; });
    known = ids;
    if (!fresh.length) return;
    bump("alerts");
    if (tone()) bump("tones");
    var say = document.getElementById("inbox-alert");
    if (say) say.textContent = fresh.length === 1 ? "A new visitor is waiting." : fresh.length + " new visitors are waiting.";
  }
  function bindMute() {
    var button = document.getElementById("inbox-mute");
    if (!button) return;
    button.hidden = false;
    button.setAttribute("aria-pressed", muted() ? "true" : "false");
    button.addEventListener("click", function () {
      var now = !muted();
      try { window.localStorage.setItem(MUTE_KEY, now ? "1" : "0"); } catch (e) { /* private mode: this page only */ }
      button.setAttribute("aria-pressed", now ? "true" : "false");
    });
  }

  function refreshList() {
    if (!root.dataset.listUrl || !window.htmx) return;
    window.htmx.ajax("GET", root.dataset.listUrl, { target: "#inbox-lists", swap: "innerHTML" }).then(function () {
      badge();
      alertNew();
    });
  }
  function refreshDetail() {
    if (!root.dataset.detailUrl || !window.htmx) return;
    window.htmx.ajax("GET", root.dataset.detailUrl, { target: "#inbox-conversation", swap: "innerHTML" }).then(bindReply);
  }
  function badge() {
    var lists = root.querySelector(".inbox-lists");
    var n = lists ? parseInt(lists.dataset.waiting || "0", 10) : 0;
    document.title = (n > 0 ? "(" + n + ") " : "") + baseTitle;
  }
  function append(role, who, text, id) {
    var log = document.getElementById("inbox-log");
    if (!log) return;
    if (id && log.querySelector('[data-id="' + id + '"]')) return;
    var empty = log.querySelector("li.muted");
    if (empty) log.removeChild(empty);
    var li = document.createElement("li");
    li.className = "inbox-msg inbox-" + role;
    if (id) li.dataset.id = id;
    var w = document.createElement("span");
    w.className = "inbox-who";
    w.textContent = who;
    var t = document.createElement("span");
    t.className = "inbox-text";
    t.textContent = text;
    li.appendChild(w);
    li.appendChild(t);
    log.appendChild(li);
    li.scrollIntoView({ block: "nearest" });
  }
  function showError(text) {
    var err = document.getElementById("inbox-error");
    if (!err) return;
    err.textContent = text;
    err.hidden = !text;
  }
  function send(frame) {
    if (ws && ws.readyState === 1) { ws.send(JSON.stringify(frame)); return true; }
    return false;
  }
  function onFrame(f) {
    if (f.type === "inbox_changed") {
      refreshList();
      if (conversationId === f.conversation_id) refreshDetail();
    } else if (f.type === "visitor_message") {
      append("user", "Visitor", f.text, f.id);
    } else if (f.type === "agent_message") {
      append("agent", f.agent, f.text, f.id);
    } else if (f.type === "typing" && f.from === "visitor") {
      var el = document.getElementById("inbox-typing");
      if (el) el.textContent = f.on ? "The visitor is typing…" : "";
    } else if (f.type === "reply_ok") {
      delete pending[f.client_id];
      var form = document.getElementById("inbox-reply");
      if (form) { form.querySelector("button").disabled = false; }
    } else if (f.type === "error") {
      if (f.client_id && pending[f.client_id]) {
        delete pending[f.client_id];
        showError("Not sent: " + f.message);
        var b = document.querySelector("#inbox-reply button");
        if (b) b.disabled = false;
      }
    }
  }
  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    ws = new WebSocket(scheme + location.host + root.dataset.socketPath);
    ws.onopen = function () {
      retry = 1000;
      var live = document.getElementById("inbox-live");
      if (live) live.hidden = false;
      if (conversationId) send({ type: "watch", conversation_id: conversationId });
    };
    ws.onmessage = function (e) {
      try { onFrame(JSON.parse(e.data)); } catch (err) { /* a malformed frame is ignored */ }
    };
    ws.onclose = function (e) {
      // A reply sent but not confirmed may or may not be stored: say so, and reload to see.
      Object.keys(pending).forEach(function (k) {
        showError("The connection dropped while sending. Check the transcript before sending again.");
        delete pending[k];
      });
      var b = document.querySelector("#inbox-reply button");
      if (b) b.disabled = false;
      if (e.code === 4404 || e.code === 4403) return;
      setTimeout(function () { connect(); if (conversationId) refreshDetail(); else refreshList(); }, retry);
      retry = Math.min(retry * 2, 15000);
    };
  }
  function bindReply() {
    var form = document.getElementById("inbox-reply");
    if (!form || form.dataset.bound) return;
    form.dataset.bound = "1";
    var text = form.querySelector("textarea");
    form.addEventListener("submit", function (e) {
      var value = text.value.trim();
      if (!value) return;
      var id = "r" + (++seq);
      if (!send({ type: "reply", conversation_id: conversationId, text: value, client_id: id })) return; // posts the form
      e.preventDefault();
      pending[id] = value;
      showError("");
      form.querySelector("button").disabled = true;
      text.value = "";
      send({ type: "typing", conversation_id: conversationId, on: false });
    });
    text.addEventListener("input", function () {
      var now = Date.now();
      if (now - typingSent > 2000) { typingSent = now; send({ type: "typing", conversation_id: conversationId, on: true }); }
    });
  }
  bindReply();
  bindMute();
  badge();
  alertNew();
  document.addEventListener("pointerdown", unlockAudio);
  document.addEventListener("keydown", unlockAudio);
  connect();
})();
