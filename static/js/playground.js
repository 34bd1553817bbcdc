// The playground: chat with a bot over /ws/playground/<workspace>/ (conversations/playground.py),
// with the widget's frames (docs/protocol.md): start, delta, reset, citations, end, error.
(function () {
  "use strict";
  const root = document.getElementById("playground");
  if (!root) return;
  const log = document.getElementById("chat-log");
  const form = document.getElementById("chat-form");
  const input = document.getElementById("chat-text");
  const sendButton = document.getElementById("chat-send");
  const stopButton = document.getElementById("chat-stop");
  const newButton = document.getElementById("playground-new");
  const status = document.getElementById("chat-status");
  const panel = document.getElementById("trace-panel");
  const pick = document.getElementById("playground-pick");
  let socket = null;
  let current = null; // the answer being streamed: {item, text, citations, foot, messageId, conversationId}
  let retries = 0;
  let clientId = 0;

  // Another bot or version reloads the page with that choice (the form also works without JS).
  pick.querySelector("#pick-bot").addEventListener("change", function () {
    pick.querySelector("#pick-version").disabled = true; // the new bot's published version
    pick.submit();
  });
  pick.querySelector("#pick-version").addEventListener("change", function () { pick.submit(); });

  function say(text) { status.textContent = text; }

  function setBusy(busy) {
    sendButton.disabled = busy || !socket || socket.readyState !== WebSocket.OPEN;
    newButton.disabled = busy || !socket || socket.readyState !== WebSocket.OPEN;
    stopButton.hidden = !busy;
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text) node.textContent = text;
    return node;
  }

  function addTurn(role, text) {
    const item = element("li", "turn turn-" + role);
    item.appendChild(element("span", "sr-only", role === "user" ? "You said:" : "The bot answered:"));
    const body = element("div", "turn-text", text);
    item.appendChild(body);
    log.appendChild(item);
    item.scrollIntoView({ block: "nearest" });
    return { item: item, text: body };
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + root.dataset.socketPath);
    socket.addEventListener("open", function () { retries = 0; say(""); setBusy(false); });
    socket.addEventListener("message", function (event) { onFrame(JSON.parse(event.data)); });
    socket.addEventListener("close", function (event) {
      if (current) finish("partial", null);
      setBusy(false);
      if (event.code === 4403 || event.code === 4404) return; // refused: its error frame said why
      retries += 1;
      say("Connection lost. Reconnecting… (the next message starts a new conversation)");
      setTimeout(connect, Math.min(10000, 500 * Math.pow(2, retries)));
    });
  }

  function onFrame(frame) {
    if (frame.type === "start" && current) {
      current.messageId = frame.message_id;
      current.conversationId = frame.conversation_id;
    } else if (frame.type === "delta" && current) {
      current.text.textContent += frame.text;
    } else if (frame.type === "reset" && current) {
      current.text.textContent = "";
    } else if (frame.type === "citations" && current) {
      showCitations(frame.items || []);
    } else if (frame.type === "end" && current) {
      if (typeof frame.content === "string" && frame.content) current.text.textContent = frame.content;
      finish(frame.status, frame.error);
    } else if (frame.type === "error") {
      onError(frame);
    } else if (frame.type === "conversation") {
      log.replaceChildren();
      panel.replaceChildren();
      say("New conversation: the bot remembers nothing from before.");
    }
  }

  function onError(frame) {
    if (current && current.messageId) return; // the `end` that follows settles the answer
    if (current) {
      current.item.remove(); // refused before an answer existed: nothing was stored
      current = null;
    }
    const note = addTurn("error", frame.message);
    note.item.setAttribute("role", "alert");
    setBusy(false);
  }

  function showCitations(items) {
    const list = element("ol", "citations");
    list.setAttribute("aria-label", "Sources");
    items.forEach(function (item) {
      const entry = element("li");
      const label = "[" + item.n + "] " + (item.title || "Source") + (item.page ? ", page " + item.page : "");
      if (item.url) {
        const link = element("a", "", label);
        link.href = item.url;
        entry.appendChild(link);
      } else {
        entry.textContent = label;
      }
      list.appendChild(entry);
    });
    current.item.appendChild(list);
  }

  function finish(outcome, error) {
    const answer = current;
    current = null;
    answer.item.setAttribute("aria-busy", "false");
    const foot = element("p", "turn-foot");
    if (outcome && outcome !== "complete") {
      foot.appendChild(element("span", "muted", outcome === "partial" ? "Stopped. " : "Failed" + (error ? ": " + error.message + " " : ". ")));
    }
    if (answer.messageId && answer.conversationId) {
      const url = root.dataset.traceBase + answer.conversationId + "/messages/" + answer.messageId + "/trace/";
      const link = element("a", "button secondary small", "Show trace");
      link.href = url;
      link.setAttribute("hx-get", url);
      link.setAttribute("hx-target", "#trace-panel");
      link.setAttribute("aria-controls", "trace-panel");
      foot.appendChild(link);
      if (window.htmx) window.htmx.process(link);
    }
    answer.item.appendChild(foot);
    setBusy(false);
    input.focus();
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    const text = input.value.trim();
    if (!text || current || !socket || socket.readyState !== WebSocket.OPEN) return;
    addTurn("user", text);
    current = addTurn("bot", "");
    current.item.setAttribute("aria-busy", "true");
    clientId += 1;
    socket.send(JSON.stringify({
      type: "message",
      text: text,
      bot_id: Number(root.dataset.botId),
      prompt_version: root.dataset.promptVersion ? Number(root.dataset.promptVersion) : null,
      client_id: clientId,
    }));
    input.value = "";
    setBusy(true);
  });

  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  stopButton.addEventListener("click", function () {
    if (current && current.messageId) socket.send(JSON.stringify({ type: "stop", message_id: current.messageId }));
  });

  newButton.addEventListener("click", function () {
    socket.send(JSON.stringify({ type: "new_conversation" }));
  });

  // The trace arrives in the panel below the chat: move focus there so keyboard and screen-reader
  // users land on it.
  panel.addEventListener("htmx:afterSwap", function () { panel.focus(); });

  connect();
})();
