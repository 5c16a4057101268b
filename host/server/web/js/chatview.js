// One open conversation: history with infinite scroll (older pages load as you scroll up),
// live messages, typing indicator, delivery and read receipts, adding a participant (a 1:1
// becomes a group), searching this conversation, and the composer.

import { get, put, qs } from "./api.js";
import { avatar, dot, stateText } from "./presence.js";
import { ensurePeople, markRead, others, title, upsert } from "./conversations.js";
import { displayName, emit, on, store } from "./state.js";
import { MessageList } from "./messagelist.js";
import { attachControls, composerExtras, messageBody } from "./msgparts.js";
import { debounce, dialog, fmtTime, guard, h, mount, onInput, perFrame, randomId, toast, utf8Length } from "./util.js";

const PAGE = 50;
/** The server's limit for one message's text, in UTF-8 bytes (docs/protocol.md). */
export const MAX_MESSAGE_BYTES = 16384;

/**
 * One message's element: a text message as a bubble (with the sender's avatar and name when
 * it is someone else's), a join or leave as a system line. `pending` is an own message the
 * server has not accepted yet ({failed, error}); `onResend` sends it again.
 */
export function renderMessage(m, { pending = null, onResend = null, onReply = null } = {}) {
  if (m.kind !== "text") {
    return h("div", { class: "system", dataset: { id: m.id } }, h("span", { dir: "auto" }, displayName(m.user)), ` ${m.kind === "joined" ? "joined" : "left"} the conversation · ${fmtTime(m.at)}`);
  }
  const mine = m.from === store.me.username;
  const failed = pending?.failed;
  const status = !pending ? h("span", { class: "receipt" })
    : failed ? h("span", { class: "receipt failed-note" }, h("span", { "aria-hidden": "true" }, "⚠ "), pending.error ? `Failed: ${pending.error}` : "Failed — not sent",
      onResend ? h("button", { class: "link-btn resend", type: "button", onclick: onResend }, "Resend") : null)
      : h("span", { class: "receipt" }, "Sending…");
  const el = h("div", { class: `msg${mine ? " mine" : ""}${failed ? " failed" : ""}${pending && !failed ? " sending" : ""}`, dataset: { id: m.id || "", key: m.key || "" } },
    mine ? null : h("div", { class: "msg-from", dir: "auto" }, displayName(m.from)),
    messageBody(m, pending ? null : { onReply }),
    h("div", { class: "msg-meta" }, h("time", {}, m.at ? fmtTime(m.at) : ""), mine ? status : null));
  if (mine) return el;
  return h("div", { class: "msg-row" }, avatar(store.people.get(m.from) || { username: m.from, display_name: m.from }, "sm"), el);
}

/** Own messages the server has not accepted yet, by conversation id, then idempotency key
 * ({message, sending, failed, error}). They outlive the conversation's view: one that could
 * not reach the server stays as failed (with Resend) until it is sent, and goes out again by
 * itself when the stream reconnects, with the same key, so never twice. */
const outboxes = new Map();
/** The open conversation views' hooks, by conversation id: changed(p), accepted(p, message),
 * refused(p, error) -> handled. */
const views = new Map();

function outboxOf(id) {
  if (!outboxes.has(id)) outboxes.set(id, new Map());
  return outboxes.get(id);
}

/** Sends pending message `p` (again). */
async function deliver(p) {
  if (p.sending) return;
  const id = p.message.conversation;
  p.sending = true;
  p.failed = false;
  p.error = "";
  views.get(id)?.changed(p);
  try {
    const r = await store.stream.request("im.send", { conversation: id, text: p.message.text, key: p.message.key, ...(p.extras || {}) });
    outboxOf(id).delete(p.message.key);
    views.get(id)?.accepted(p, r.message);
    const c = store.conversations.get(id);
    if (c && (!c.last_message || c.last_message.id < r.message.id)) { c.last_message = r.message; emit("conversations"); }
  } catch (err) {
    p.sending = false;
    p.failed = true;
    if (err.code !== "closed") p.error = err.message;
    if (!(p.error && views.get(id)?.refused(p, err))) views.get(id)?.changed(p);
  }
}

/** Resends, whenever the stream (re)connects, what failed for want of a connection. */
export function wireOutbox(stream) {
  stream.on("open", () => {
    for (const box of outboxes.values()) for (const p of box.values()) if (p.failed && !p.error) deliver(p);
  });
}

/** Forgets the pending messages (sign-out). */
export function clearOutbox() {
  outboxes.clear();
  views.clear();
}

/** The view of conversation `id`; returns {el, dispose}. */
export function conversationView(id) {
  const c0 = store.conversations.get(id);
  const delivered = new Set();
  const readBy = new Map();
  const typing = new Map();
  let disposed = false;
  let started = false;

  const header = h("header", { class: "main-head" });
  const scroller = h("div", { class: "messages", id: "messages", tabindex: "0", "aria-label": "Messages", role: "log", "aria-live": "polite", "aria-relevant": "additions" });
  const typingLine = h("div", { class: "typing", id: "typing" });
  const input = h("textarea", { id: "composer", class: "composer-input", rows: 1, placeholder: "Type a message", "aria-label": "Message", dir: "auto", "aria-describedby": "composer-error" });
  const send = h("button", { class: "btn primary", type: "submit", id: "send" }, "Send");
  const composerError = h("p", { class: "composer-error", id: "composer-error", role: "alert", hidden: true });
  const extrasBar = h("div", { class: "composer-extras", hidden: true });
  const extras = composerExtras(extrasBar);
  const composer = h("form", { class: "composer" }, composerError, extrasBar, input, send);
  const searchPanel = h("div", { class: "conv-search", hidden: true });
  const el = h("section", { class: "chat", dataset: { conversation: id } }, header, searchPanel, scroller, typingLine, composer);
  composer.insertBefore(h("span", { class: "attach-box" }, attachControls(el, extras)), input);
  const onReply = (m) => { extras.replyTo(m); input.focus(); };

  const conv = () => store.conversations.get(id) || c0;

  const renderHeader = () => {
    const c = conv();
    if (!c) return;
    const rest = others(c);
    const p = rest.length === 1 ? store.people.get(rest[0]) : null;
    mount(header,
      h("a", { class: "icon-btn back", href: "#/", "aria-label": "Back" }, "‹"),
      p ? avatar(p) : null,
      h("div", { class: "head-text" },
        h("h2", { id: "chat-title", dir: "auto" }, title(c)),
        h("div", { class: "head-sub" }, p ? [dot(p, "dot inline"), stateText(p), p.note ? [" · ", h("bdi", {}, p.note)] : ""]
          : rest.map((u, i) => [i ? ", " : "", dot(store.people.get(u), "dot inline"), h("bdi", {}, displayName(u))]))),
      h("div", { class: "head-actions" },
        h("button", { class: "btn small", type: "button", id: "search-conversation", onclick: toggleSearch }, "Search"),
        h("button", { class: "btn small", type: "button", id: "mute-conversation", "aria-pressed": String(Boolean(c.muted)), onclick: toggleMute }, c.muted ? "Unmute" : "Mute"),
        c.active ? h("button", { class: "btn small", type: "button", id: "add-participant", onclick: addParticipant }, "Add people") : null));
  };

  async function toggleMute() {
    const c = conv();
    await guard(async () => {
      const r = await put(`/api/v1/conversations/${id}/mute`, { muted: !c.muted });
      c.muted = r.muted;
      emit("conversations");
    });
  }

  function toggleSearch() {
    searchPanel.hidden = !searchPanel.hidden;
    if (searchPanel.hidden) return;
    const q = h("input", { type: "search", class: "search", placeholder: "Search this conversation", "aria-label": "Search this conversation" });
    const out = h("ul", { class: "hits" });
    onInput(q, debounce(async () => {
      const text = q.value.trim();
      if (!text) { mount(out); return; }
      const r = await guard(() => get(`/api/v1/search${qs({ q: text, conversation: id })}`));
      if (r) mount(out, r.messages.length ? r.messages.map((m) => h("li", { class: "hit" }, h("span", { class: "hit-head" }, h("b", {}, displayName(m.from)), " ", fmtTime(m.at)), h("span", { class: "hit-text" }, m.text || "")))
        : h("li", { class: "empty" }, "Nothing found."));
    }, 250));
    mount(searchPanel, q, out);
    q.focus();
  }

  function addParticipant() {
    dialog("Add people", (close) => {
      const q = h("input", { type: "search", class: "search", id: "add-participant-search", placeholder: "Name or username", "aria-label": "Find people" });
      const out = h("ul", { class: "contacts", id: "add-participant-results" });
      const show = (people) => mount(out, people.filter((p) => !conv().participants.includes(p.username)).map((p) =>
        h("li", { class: "contact" }, h("button", { class: "contact-main", type: "button", dataset: { pick: p.username }, onclick: async () => {
          try {
            const r = await store.stream.request("im.add", { conversation: id, user: p.username });
            upsert(r.conversation);
            close(true);
            catchUp();
          } catch (e) { toast(e.message, "error"); }
        } }, avatar(p), h("span", { class: "contact-text" }, h("span", { class: "contact-name" }, p.display_name), h("span", { class: "contact-state" }, stateText(p)))))));
      show([...store.contacts.values()].map((c) => c.presence));
      onInput(q, debounce(async () => {
        const text = q.value.trim();
        if (!text) { show([...store.contacts.values()].map((c) => c.presence)); return; }
        const r = await guard(() => get(`/api/v1/directory${qs({ q: text })}`));
        if (r) show(r.people.filter((p) => p.username !== store.me.username));
      }, 200));
      return h("div", { class: "form" }, q, out);
    });
  }

  const updateReceipt = perFrame(() => {
    let mine = null;
    for (const m of list.newestFirst()) if (m.from === store.me.username && m.kind === "text") { mine = m; break; }
    const el = mine ? list.element(mine.id) : null;
    if (receiptEl && receiptEl !== el) { const r = receiptEl.querySelector(".receipt"); if (r) r.textContent = ""; }
    receiptEl = el;
    const r = el?.querySelector(".receipt");
    if (r) r.textContent = receiptFor(mine);
  });
  let receiptEl = null;

  const receiptFor = (m) => {
    const rest = others(conv());
    if (!rest.length) return "Sent";
    const readers = rest.filter((u) => (readBy.get(u) || 0) >= m.id);
    if (readers.length === rest.length) return "Seen";
    if (readers.length) return `Seen by ${readers.map(displayName).join(", ")}`;
    return delivered.has(m.id) ? "Delivered" : "Sent";
  };

  const readUpToLatest = () => {
    if (document.visibilityState !== "visible") return;
    markRead(id, list.newest());
  };

  const loadOlder = async () => {
    try {
      const r = await get(`/api/v1/conversations/${id}/messages${qs({ before: list.oldest(), limit: PAGE })}`);
      await ensurePeople(r.messages.map((m) => m.from));
      list.addOlder(r.messages, r.messages.length < PAGE);
    } catch (e) { toast(e.message, "error"); }
  };

  const list = new MessageList(scroller, {
    render: (m) => renderMessage(m, { onReply }),
    loadOlder,
    afterFlush: () => { updateReceipt(); readUpToLatest(); },
    empty: "Say hello!",
  });

  // Catches up with messages this endpoint was not sent (its own `im.add` joins, anything
  // missed while reconnecting): everything after the newest message shown.
  let catching = false;
  const catchUp = async () => {
    if (catching || !started) return;
    catching = true;
    try {
      const r = await get(`/api/v1/conversations/${id}/messages${qs({ after: list.newest(), limit: 200 })}`);
      list.add(r.messages);
    } catch { /* the next frame or reconnect tries again */ } finally { catching = false; }
  };

  // Typing: tell the others while keys are pressed; stop after 4 s without any.
  let typingSent = 0;
  const stopTyping = debounce(() => { if (typingSent) { typingSent = 0; store.stream?.request("im.typing", { conversation: id, typing: false }).catch(() => {}); } }, 4000);
  input.addEventListener("input", () => {
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
    if (!input.value.trim()) return;
    if (Date.now() - typingSent > 3000 && store.stream?.connected) {
      typingSent = Date.now();
      store.stream.request("im.typing", { conversation: id, typing: true }).catch(() => {});
    }
    stopTyping();
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); composer.requestSubmit(); }
  });
  // Sending (see `deliver`). The text is checked against the server's limit (in UTF-8 bytes)
  // first and stays in the box when it is over. A message the server refused goes back into
  // the box when the box is empty, else it stays as failed with the server's reason.
  const outbox = outboxOf(id);
  const showPending = (p) => list.setPending(p.message.key, renderMessage(p.message, { pending: p, onResend: () => deliver(p) }));
  const hooks = {
    changed: showPending,
    accepted: (p, message) => { list.dropPending(p.message.key); list.add([message]); },
    refused: (p, err) => {
      if (input.value.trim()) return false;
      outbox.delete(p.message.key);
      list.dropPending(p.message.key);
      input.value = p.message.text;
      showError(err.message);
      return true;
    },
  };
  views.set(id, hooks);
  for (const p of outbox.values()) showPending(p);
  const showError = (text) => {
    composerError.textContent = text;
    composerError.hidden = !text;
  };
  input.addEventListener("input", () => { if (!composerError.hidden && utf8Length(input.value) <= MAX_MESSAGE_BYTES) showError(""); });
  composer.addEventListener("submit", (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (extras.busy()) { showError("Wait for the files to finish uploading."); return; }
    if (!text && !extras.hasFiles()) return;
    const bytes = utf8Length(text);
    if (bytes > MAX_MESSAGE_BYTES) {
      showError(`This message is ${Math.ceil(bytes / 1024)} KB; messages can be at most ${MAX_MESSAGE_BYTES / 1024} KB. Shorten it or split it.`);
      return;
    }
    showError("");
    input.value = "";
    input.style.height = "auto";
    typingSent = 0;
    const key = randomId();
    const p = { message: { id: 0, conversation: id, from: store.me.username, kind: "text", text, key, at: Date.now() }, extras: extras.take() };
    outbox.set(key, p);
    deliver(p);
    list.scrollDown();
  });

  const offs = [
    on("message", (m) => {
      // Until the newest page is loaded, live and offline messages are left to it (offline
      // ones come oldest first and would otherwise start the view in the past); what comes
      // between that page and `started` is caught up right after.
      if (m.conversation !== id || list.has(m.id) || !started) return;
      list.add([m]);
      if (typing.delete(m.from)) renderTyping();
    }),
    on("changed", (m) => { if (m.conversation === id) list.updateMessage(m.id, m); }),
    on("delivered", (f) => { if (f.conversation === id) { delivered.add(f.message); updateReceipt(); } }),
    on("receipt", (f) => { if (f.conversation === id && f.user !== store.me.username) { readBy.set(f.user, Math.max(readBy.get(f.user) || 0, f.upto)); updateReceipt(); } }),
    on("typing", (f) => {
      if (f.conversation !== id) return;
      clearTimeout(typing.get(f.user));
      if (f.typing) typing.set(f.user, setTimeout(() => { typing.delete(f.user); renderTyping(); }, 8000));
      else typing.delete(f.user);
      renderTyping();
    }),
    on("conversations", perFrame(() => {
      if (disposed) return;
      watch();
      renderHeader();
      const last = conv()?.last_message;
      if (last && !list.has(last.id)) catchUp();
    })),
    on("presence", perFrame(renderHeader)),
    on("people", perFrame(() => { renderHeader(); list.refresh(); updateReceipt(); })),
  ];
  function renderTyping() {
    const names = [...typing.keys()].map(displayName);
    typingLine.textContent = names.length ? `${names.join(", ")} ${names.length === 1 ? "is" : "are"} typing…` : "";
  }
  const onVisible = () => readUpToLatest();
  const offOpen = store.stream?.on("open", () => { if (!disposed) { watched = []; watch(); catchUp(); } });
  document.addEventListener("visibilitychange", onVisible);
  window.addEventListener("focus", onVisible);

  // Live presence of participants who are not contacts (contacts' presence comes anyway).
  let watched = [];
  const watch = () => {
    const want = others(conv()).filter((u) => !store.contacts.has(u) && !watched.includes(u));
    if (!want.length || !store.stream?.connected) return;
    watched = watched.concat(want);
    store.stream.request("presence.subscribe", { users: want, ttl_secs: 3600 })
      .then((r) => r.presence.forEach((p) => store.people.set(p.username, p)))
      .then(() => emit("people"))
      .catch(() => { watched = watched.filter((u) => !want.includes(u)); });
  };

  const start = async () => {
    try {
      const c = await get(`/api/v1/conversations/${id}`);
      for (const [u, upto] of Object.entries(c.read_by || {})) readBy.set(u, Math.max(readBy.get(u) || 0, upto));
      delete c.read_by;
      upsert(c);
    } catch (e) { list.showError(e.message); return; }
    watch();
    renderHeader();
    await list.more();
    started = true;
    catchUp();
    list.scrollDown();
    readUpToLatest();
    // Fill the screen so scrolling up is possible.
    while (!disposed && !list.complete && scroller.scrollHeight <= scroller.clientHeight) await list.more();
    input.focus();
  };
  renderHeader();
  start();

  return {
    el,
    dispose() {
      disposed = true;
      if (views.get(id) === hooks) views.delete(id);
      list.dispose();
      offOpen?.();
      if (watched.length && store.stream?.connected) store.stream.request("presence.unsubscribe", { users: watched }).catch(() => {});
      offs.forEach((off) => off());
      document.removeEventListener("visibilitychange", onVisible);
      window.removeEventListener("focus", onVisible);
      for (const t of typing.values()) clearTimeout(t);
    },
  };
}
