// Conversations: the list with unread counts and last messages, history search across all
// conversations and rooms, the stream frames that keep them current (messages, offline
// messages and their acknowledgement, receipts, typing), and desktop notifications (never in
// Do Not Disturb).

import { get, post, qs } from "./api.js";
import { avatar, inDnd } from "./presence.js";
import { displayName, emit, on, store } from "./state.js";
import { debounce, field, fmtTime, formDialog, guard, h, mount, onInput, perFrame, toast } from "./util.js";

/** Starts (or reuses) the 1:1 with `username` and opens it. */
export async function openChatWith(username) {
  await guard(async () => {
    const c = await post("/api/v1/conversations", { participants: [username] });
    upsert(c);
    location.hash = `#/c/${c.id}`;
  });
}

/** Adds or replaces a conversation in the store. */
export function upsert(c) {
  const old = store.conversations.get(c.id);
  if (old && !c.last_message && old.last_message) c.last_message = old.last_message;
  store.conversations.set(c.id, c);
  ensurePeople(c.participants);
  emit("conversations");
}

/** Loads the most recent conversations. */
export async function loadConversations() {
  const r = await get("/api/v1/conversations?limit=100");
  store.conversations.clear();
  for (const c of r.conversations) store.conversations.set(c.id, c);
  await ensurePeople(r.conversations.flatMap((c) => c.participants));
  emit("conversations");
}

let asking = new Set();

/** Fetches the presence of people not seen yet (participants who are not contacts). */
export async function ensurePeople(names) {
  const missing = [...new Set(names)].filter((n) => !store.people.has(n) && n !== store.me?.username && !asking.has(n));
  if (!missing.length) return;
  missing.forEach((n) => asking.add(n));
  try {
    for (let i = 0; i < missing.length; i += 200) {
      const r = await get(`/api/v1/presence${qs({ users: missing.slice(i, i + 200).join(",") })}`);
      for (const p of r.presence) store.people.set(p.username, p);
    }
    emit("people");
  } catch { /* names stay as usernames */ } finally {
    missing.forEach((n) => asking.delete(n));
  }
}

/** The others in a conversation. */
export function others(c) {
  return c.participants.filter((u) => u !== store.me.username);
}

/** A conversation's title: the other participants' names. */
export function title(c) {
  const names = others(c).map(displayName);
  if (!names.length) return "Just you";
  return names.length > 3 ? `${names.slice(0, 3).join(", ")} +${names.length - 3}` : names.join(", ");
}

/** Total unread messages. */
export function totalUnread() {
  let n = 0;
  for (const c of store.conversations.values()) n += c.unread || 0;
  return n;
}

function isOpen(id) {
  return store.view?.kind === "conversation" && store.view.id === id;
}

/** The conversations pane: history search and the list. */
export function conversationsPane() {
  const search = h("input", { type: "search", id: "history-search", class: "search", placeholder: "Search messages", "aria-label": "Search message history" });
  const results = h("div", { class: "search-results", id: "history-results" });
  const list = h("ul", { class: "conv-list", id: "conversation-list" });
  const pane = h("div", { class: "pane-body" },
    h("div", { class: "pane-tools" }, search,
      h("button", { class: "icon-btn", type: "button", id: "new-conversation", title: "New group conversation", "aria-label": "New group conversation", onclick: newConversation }, "+")),
    results, list);

  const render = () => {
    const convs = [...store.conversations.values()].filter((c) => c.active || c.last_message)
      .sort((a, b) => (b.last_message?.id || b.created_at) - (a.last_message?.id || a.created_at));
    mount(list, convs.length ? convs.map(convRow) : h("p", { class: "empty" }, "No conversations yet. Pick a contact to start one."));
  };
  const runSearch = debounce(async () => {
    const q = search.value.trim();
    if (!q) { mount(results); return; }
    const r = await guard(() => get(`/api/v1/search${qs({ q, limit: 50 })}`));
    if (!r || search.value.trim() !== q) return;
    mount(results, h("h3", { class: "section-title" }, `${r.messages.length} result${r.messages.length === 1 ? "" : "s"}`),
      h("ul", { class: "hits" }, r.messages.map((m) => h("li", {},
        h("a", { class: "hit", href: m.room ? `#/r/${m.room}` : `#/c/${m.conversation}`, dataset: { message: m.id } },
          h("span", { class: "hit-head" }, h("b", {}, displayName(m.from)), " ", h("time", {}, fmtTime(m.at))),
          h("span", { class: "hit-text", dir: "auto" }, m.text || ""))))));
  }, 250);
  onInput(search, runSearch);
  const later = perFrame(render);
  on("conversations", later);
  on("people", later);
  on("presence", later);
  render();
  return pane;
}

/** Starts a conversation with several people: contacts ticked, plus usernames typed. */
function newConversation() {
  const people = [...store.contacts.values()].map((c) => c.presence).sort((a, b) => a.display_name.localeCompare(b.display_name));
  return formDialog("New conversation", () => [
    people.length ? h("fieldset", { class: "checks" }, h("legend", {}, "Contacts"),
      people.map((p) => h("label", { class: "check" }, h("input", { type: "checkbox", name: "who", value: p.username }), " ", p.display_name))) : null,
    field("Others (usernames, comma-separated)", h("input", { name: "extra", autocomplete: "off" })),
  ], async (form) => {
    const picked = [...form.querySelectorAll("input[name=who]:checked")].map((i) => i.value);
    const extra = form.extra.value.split(",").map((u) => u.trim().toLowerCase()).filter(Boolean);
    const participants = [...new Set([...picked, ...extra])];
    if (!participants.length) throw new Error("Pick at least one person.");
    const c = await post("/api/v1/conversations", { participants });
    upsert(c);
    location.hash = `#/c/${c.id}`;
  }, "Start");
}

function convRow(c) {
  const other = others(c);
  const p = other.length === 1 ? store.people.get(other[0]) || { username: other[0], display_name: other[0] } : null;
  const last = c.last_message;
  const snippet = !last ? "" : last.kind === "text" ? `${last.from === store.me.username ? "You: " : ""}${last.deleted_at ? "(deleted)" : last.text || (last.attachments?.length ? "📎 file" : "")}`
    : `${displayName(last.user)} ${last.kind === "joined" ? "joined" : "left"}`;
  return h("li", {},
    h("a", { class: `conv${isOpen(c.id) ? " current" : ""}${c.unread ? " unread" : ""}`, href: `#/c/${c.id}`, dataset: { conversation: c.id } },
      p ? avatar(p) : h("span", { class: "avatar md group-avatar", "aria-hidden": "true" }, h("span", { class: "initials" }, String(other.length + 1))),
      h("span", { class: "conv-text" },
        h("span", { class: "conv-title", dir: "auto" }, title(c)),
        h("span", { class: "conv-snippet", dir: "auto" }, snippet)),
      h("span", { class: "conv-meta" },
        last ? h("time", {}, fmtTime(last.at)) : null,
        c.unread ? h("span", { class: "badge", "aria-label": `${c.unread} unread` }, String(c.unread)) : null)));
}

/** Handles the stream's IM frames. */
export function wireConversations(stream) {
  // The server keeps every message in the recipient's queue until a device acknowledges it,
  // so live messages are acknowledged as well as offline ones: the newest id received, at most
  // once per 300 ms (also while messages keep coming). Per sign-in: this stream's user only.
  let receivedMax = 0;
  let ackTimer = null;
  const ackReceived = () => {
    if (ackTimer) return;
    ackTimer = setTimeout(() => {
      ackTimer = null;
      if (store.stream === stream && stream.connected) stream.request("im.ack", { upto: receivedMax }).catch(() => {});
    }, 300);
  };
  stream.on("hello", (f) => {
    if (f.offline > 0) toast(`${f.offline} message${f.offline === 1 ? "" : "s"} arrived while you were offline`);
    loadConversations().catch(() => {});
  });
  stream.on("im.conversation", (f) => upsert(f.conversation));
  stream.on("im.message", (f) => {
    const m = f.message;
    let c = store.conversations.get(m.conversation);
    if (f.offline || m.from !== store.me.username) { receivedMax = Math.max(receivedMax, m.id); ackReceived(); }
    if (!c) {
      guard(async () => upsert(await get(`/api/v1/conversations/${m.conversation}`)));
      emit("message", m);
      maybeNotify(m);
      return;
    }
    if (c.last_message && c.last_message.id >= m.id && !f.offline) return;
    if (!c.last_message || c.last_message.id < m.id) c.last_message = m;
    if (m.from !== store.me.username && m.kind === "text" && !(isOpen(c.id) && document.visibilityState === "visible") && m.id > (c.read_upto || 0)) {
      c.unread = (c.unread || 0) + 1;
    }
    emit("message", m);
    emit("conversations");
    maybeNotify(m);
  });
  stream.on("im.read", (f) => {
    const c = store.conversations.get(f.conversation);
    if (f.user === store.me.username && c) {
      c.read_upto = Math.max(c.read_upto || 0, f.upto);
      if (typeof f.unread === "number") c.unread = f.unread;
      emit("conversations");
    }
    emit("receipt", f);
  });
  stream.on("im.delivered", (f) => emit("delivered", f));
  stream.on("message.changed", (f) => {
    const m = f.message;
    const c = m.conversation && store.conversations.get(m.conversation);
    if (c?.last_message?.id === m.id) { c.last_message = m; emit("conversations"); }
    emit("changed", m);
  });
  stream.on("mention", (f) => {
    const m = f.message;
    if (m.room && !(store.view?.kind === "room" && store.view.id === m.room)) toast(`${displayName(m.from)} mentioned you in a room`);
    // A conversation's message notifies by itself (im.message), unless the conversation is muted.
    if (m.room || store.conversations.get(m.conversation)?.muted) notifyMention(m);
  });
  stream.on("im.typing", (f) => emit("typing", f));
}

/** Marks conversation `id` read up to its newest message. */
export async function markRead(id, upto) {
  const c = store.conversations.get(id);
  if (!c || !upto || upto <= (c.read_upto || 0) || !store.stream?.connected) return;
  c.read_upto = upto;
  try {
    const r = await store.stream.request("im.read", { conversation: id, upto });
    c.unread = r.unread;
  } catch { c.unread = 0; }
  emit("conversations");
}

/** Asks for permission to show desktop notifications (after a click, as browsers require). */
export function askNotificationPermission() {
  if ("Notification" in window && Notification.permission === "default") Notification.requestPermission().catch(() => {});
}

function notifyMention(m) {
  if (inDnd() || !("Notification" in window) || Notification.permission !== "granted") return;
  if (document.visibilityState === "visible" && document.hasFocus()) return;
  const n = new Notification(`${displayName(m.from)} mentioned you`, { body: (m.text || "").slice(0, 200), tag: `halo-m${m.id}`, icon: "favicon.svg" });
  n.onclick = () => { window.focus(); location.hash = m.room ? `#/r/${m.room}` : `#/c/${m.conversation}`; n.close(); };
}

function maybeNotify(m) {
  if (m.from === store.me.username || m.kind !== "text" || inDnd()) return;
  // Muted: no notification (a mention still comes, as its own event).
  if (store.conversations.get(m.conversation)?.muted) return;
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  if (document.visibilityState === "visible" && document.hasFocus() && isOpen(m.conversation)) return;
  const n = new Notification(displayName(m.from), { body: (m.text || "📎").slice(0, 200), tag: `halo-c${m.conversation}`, icon: "favicon.svg" });
  n.onclick = () => { window.focus(); location.hash = `#/c/${m.conversation}`; n.close(); };
}
