// One open conversation: history with infinite scroll (older pages load as you scroll up),
// live messages, typing indicator, delivery and read receipts, adding a participant (a 1:1
// becomes a group), searching this conversation, and the composer.

import { get, qs } from "./api.js";
import { avatar, stateText } from "./presence.js";
import { ensurePeople, markRead, others, title, upsert } from "./conversations.js";
import { displayName, emit, on, store } from "./state.js";
import { debounce, dialog, fmtTime, guard, h, mount, onInput, randomId, toast } from "./util.js";

const PAGE = 50;

/** The view of conversation `id`; returns {el, dispose}. */
export function conversationView(id) {
  const c0 = store.conversations.get(id);
  const messages = new Map();
  const pending = new Map();
  const delivered = new Set();
  const readBy = new Map();
  const typing = new Map();
  let oldest = null;
  let complete = false;
  let loading = false;
  let disposed = false;

  const header = h("header", { class: "main-head" });
  const scroller = h("div", { class: "messages", id: "messages", tabindex: "0", "aria-label": "Messages", role: "log" });
  const typingLine = h("div", { class: "typing", id: "typing", "aria-live": "polite" });
  const input = h("textarea", { id: "composer", class: "composer-input", rows: 1, placeholder: "Type a message", "aria-label": "Message", maxlength: 16000 });
  const send = h("button", { class: "btn primary", type: "submit", id: "send" }, "Send");
  const composer = h("form", { class: "composer" }, input, send);
  const searchPanel = h("div", { class: "conv-search", hidden: true });
  const el = h("section", { class: "chat", dataset: { conversation: id } }, header, searchPanel, scroller, typingLine, composer);

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
        h("h2", { id: "chat-title" }, title(c)),
        h("div", { class: "head-sub" }, p ? [h("span", { class: "dot inline", style: { "--c": p.colour } }), stateText(p), p.note ? ` · ${p.note}` : ""]
          : rest.map((u, i) => [i ? ", " : "", h("span", { class: "dot inline", style: { "--c": store.people.get(u)?.colour || "#a19f9d" } }), displayName(u)]))),
      h("div", { class: "head-actions" },
        h("button", { class: "btn small", type: "button", id: "search-conversation", onclick: toggleSearch }, "Search"),
        c.active ? h("button", { class: "btn small", type: "button", id: "add-participant", onclick: addParticipant }, "Add people") : null));
  };

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

  const near = () => scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 120;
  const scrollDown = () => { scroller.scrollTop = scroller.scrollHeight; };

  const bubble = (m, status) => {
    if (m.kind !== "text") {
      return h("div", { class: "system", dataset: { id: m.id } }, `${displayName(m.user)} ${m.kind === "joined" ? "joined" : "left"} the conversation · ${fmtTime(m.at)}`);
    }
    const mine = m.from === store.me.username;
    const el = h("div", { class: `msg${mine ? " mine" : ""}${status === "failed" ? " failed" : ""}`, dataset: { id: m.id || "", key: m.key || "" } },
      mine ? null : h("div", { class: "msg-from" }, displayName(m.from)),
      h("div", { class: "msg-text" }, m.text),
      h("div", { class: "msg-meta" }, h("time", {}, m.at ? fmtTime(m.at) : ""), mine ? h("span", { class: "receipt" }, status || "") : null));
    if (mine) return el;
    return h("div", { class: "msg-row" }, avatar(store.people.get(m.from) || { username: m.from, display_name: m.from }, "sm"), el);
  };

  const receiptFor = (m) => {
    const rest = others(conv());
    if (!rest.length) return "Sent";
    const readers = rest.filter((u) => (readBy.get(u) || 0) >= m.id);
    if (readers.length === rest.length) return "Seen";
    if (readers.length) return `Seen by ${readers.map(displayName).join(", ")}`;
    return delivered.has(m.id) ? "Delivered" : "Sent";
  };

  const render = () => {
    const list = [...messages.values()].sort((a, b) => a.id - b.id);
    const lastMine = [...list].reverse().find((m) => m.from === store.me.username && m.kind === "text");
    const nodes = [];
    if (complete && list.length) nodes.push(h("div", { class: "system" }, "Start of the conversation"));
    let day = "";
    for (const m of list) {
      const d = new Date(m.at).toDateString();
      if (d !== day) { day = d; nodes.push(h("div", { class: "day" }, new Date(m.at).toLocaleDateString([], { weekday: "long", day: "numeric", month: "long" }))); }
      nodes.push(bubble(m, m === lastMine ? receiptFor(m) : ""));
    }
    for (const p of pending.values()) nodes.push(bubble(p.message, p.failed ? "failed" : "Sending…"));
    if (!nodes.length) nodes.push(h("p", { class: "empty" }, "Say hello!"));
    mount(scroller, nodes);
  };

  const readUpToLatest = () => {
    if (document.visibilityState !== "visible") return;
    const last = [...messages.keys()].reduce((a, b) => Math.max(a, b), 0);
    markRead(id, last);
  };

  const loadOlder = async () => {
    if (loading || complete) return;
    loading = true;
    const before = scroller.scrollHeight;
    const atTop = scroller.scrollTop;
    try {
      const r = await get(`/api/v1/conversations/${id}/messages${qs({ before: oldest, limit: PAGE })}`);
      for (const m of r.messages) messages.set(m.id, m);
      if (r.messages.length) oldest = r.messages[0].id;
      if (r.messages.length < PAGE) complete = true;
      await ensurePeople(r.messages.map((m) => m.from));
      render();
      if (oldest === r.messages[0]?.id && before) scroller.scrollTop = scroller.scrollHeight - before + atTop;
    } catch (e) { toast(e.message, "error"); } finally { loading = false; }
  };

  scroller.addEventListener("scroll", () => { if (scroller.scrollTop < 80) loadOlder(); });

  // Catches up with messages this endpoint was not sent (its own `im.add` joins, anything
  // missed while reconnecting): everything after the newest message shown.
  let catching = false;
  const catchUp = async () => {
    if (catching || oldest === null) return;
    catching = true;
    try {
      const newest = [...messages.keys()].reduce((a, b) => Math.max(a, b), 0);
      const r = await get(`/api/v1/conversations/${id}/messages${qs({ after: newest, limit: 200 })}`);
      const stick = near();
      for (const m of r.messages) messages.set(m.id, m);
      if (r.messages.length) { render(); if (stick) scrollDown(); readUpToLatest(); }
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
  composer.addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    input.style.height = "auto";
    typingSent = 0;
    const key = randomId();
    const message = { id: 0, conversation: id, from: store.me.username, kind: "text", text, key, at: Date.now() };
    pending.set(key, { message });
    render();
    scrollDown();
    try {
      const r = await store.stream.request("im.send", { conversation: id, text, key });
      pending.delete(key);
      messages.set(r.message.id, r.message);
      const c = conv();
      if (c && (!c.last_message || c.last_message.id < r.message.id)) { c.last_message = r.message; emit("conversations"); }
    } catch (err) {
      pending.get(key).failed = true;
      toast(err.message, "error");
    }
    render();
    scrollDown();
  });

  const offs = [
    on("message", (m) => {
      if (m.conversation !== id || messages.has(m.id)) return;
      const stick = near();
      messages.set(m.id, m);
      typing.delete(m.from);
      renderTyping();
      render();
      if (stick || m.from === store.me.username) scrollDown();
      readUpToLatest();
    }),
    on("delivered", (f) => { if (f.conversation === id) { delivered.add(f.message); render(); } }),
    on("receipt", (f) => { if (f.conversation === id && f.user !== store.me.username) { readBy.set(f.user, Math.max(readBy.get(f.user) || 0, f.upto)); render(); } }),
    on("typing", (f) => {
      if (f.conversation !== id) return;
      clearTimeout(typing.get(f.user));
      if (f.typing) typing.set(f.user, setTimeout(() => { typing.delete(f.user); renderTyping(); }, 8000));
      else typing.delete(f.user);
      renderTyping();
    }),
    on("conversations", () => {
      watch();
      renderHeader();
      const last = conv()?.last_message;
      if (last && !messages.has(last.id)) catchUp();
    }),
    on("presence", renderHeader),
    on("people", () => { renderHeader(); render(); }),
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
    } catch (e) { mount(scroller, h("p", { class: "empty" }, e.message)); return; }
    watch();
    renderHeader();
    await loadOlder();
    scrollDown();
    readUpToLatest();
    // Fill the screen so scrolling up is possible.
    while (!complete && scroller.scrollHeight <= scroller.clientHeight && !loading) await loadOlder();
    input.focus();
  };
  renderHeader();
  start();

  return {
    el,
    dispose() {
      disposed = true;
      offOpen?.();
      if (watched.length && store.stream?.connected) store.stream.request("presence.unsubscribe", { users: watched }).catch(() => {});
      offs.forEach((off) => off());
      document.removeEventListener("visibilitychange", onVisible);
      window.removeEventListener("focus", onVisible);
      for (const t of typing.values()) clearTimeout(t);
    },
  };
}
