// Persistent chat rooms: browse and search, join, create, read and post with older posts
// loading as you scroll up, members, and the topic (managers edit it).

import { get, patch, post, put, qs } from "./api.js";
import { ensurePeople } from "./conversations.js";
import { displayName, emit, on, store } from "./state.js";
import { MAX_MESSAGE_BYTES } from "./chatview.js";
import { MessageList } from "./messagelist.js";
import { attachControls, composerExtras, messageBody } from "./msgparts.js";
import { dialog, field, fmtTime, formDialog, guard, h, mount, onInput, perFrame, randomId, toast, utf8Length } from "./util.js";

const PAGE = 50;

/** One post's element: a text post as a bubble with its author, a join or leave as a line;
 * `actions` ({onReply}) gives text posts their menu (members). */
export function renderPost(m, actions = null) {
  return m.kind === "text"
    ? h("div", { class: `msg${m.from === store.me.username ? " mine" : ""}`, dataset: { id: m.id } },
      h("div", { class: "msg-from", dir: "auto" }, displayName(m.from)), messageBody(m, actions), h("div", { class: "msg-meta" }, h("time", {}, fmtTime(m.at))))
    : h("div", { class: "system", dataset: { id: m.id } }, h("span", { dir: "auto" }, displayName(m.user)), ` ${m.kind === "joined" ? "joined" : "left"} · ${fmtTime(m.at)}`);
}

const isOpen = (id) => store.view?.kind === "room" && store.view.id === id;

function upsertRoom(r) {
  store.rooms.set(r.id, r);
  emit("rooms");
  return r;
}

/** Loads the rooms the user can see. */
export async function loadRooms() {
  const r = await get("/api/v1/rooms");
  store.rooms.clear();
  r.rooms.forEach((x) => store.rooms.set(x.id, x));
  emit("rooms");
}

/** Keeps rooms current from the stream. */
export function wireRooms(stream) {
  stream.on("room.updated", (f) => upsertRoom(f.room));
  stream.on("room.message", (f) => {
    const room = store.rooms.get(f.message.room);
    if (room && !isOpen(room.id) && f.message.from !== store.me.username && f.message.kind === "text") { room.unread = (room.unread || 0) + 1; emit("rooms"); }
    emit("room.message", f.message);
  });
  stream.on("message.changed", (f) => { if (f.message.room) emit("room.changed", f.message); });
}

/** The rooms pane: search, "new room", mine first, then the others. */
export function roomsPane() {
  const search = h("input", { type: "search", class: "search", id: "room-search", placeholder: "Find a room", "aria-label": "Find a room" });
  const list = h("div", { id: "room-list" });
  const render = () => {
    const q = search.value.trim().toLowerCase();
    const all = [...store.rooms.values()].filter((r) => !q || r.name.toLowerCase().includes(q) || r.topic.toLowerCase().includes(q));
    const mine = all.filter((r) => r.my_role).sort((a, b) => a.name.localeCompare(b.name));
    const rest = all.filter((r) => !r.my_role).sort((a, b) => a.name.localeCompare(b.name));
    const row = (r) => h("li", {}, h("a", { class: `room-row${store.view?.kind === "room" && store.view.id === r.id ? " current" : ""}`, href: `#/r/${r.id}`, dataset: { room: r.name } },
      h("span", { class: "room-icon", "aria-hidden": "true" }, "#"),
      h("span", { class: "conv-text" }, h("span", { class: "conv-title", dir: "auto" }, r.name), h("span", { class: "conv-snippet", dir: "auto" }, r.topic || r.description || r.privacy)),
      // The room being read has nothing unread, whatever an answer still in flight said.
      r.unread && !isOpen(r.id) ? h("span", { class: "badge", "aria-label": `${r.unread} unread` }, String(r.unread)) : null));
    mount(list,
      h("h3", { class: "section-title" }, "My rooms"),
      mine.length ? h("ul", { class: "conv-list" }, mine.map(row)) : h("p", { class: "empty" }, "You are in no room yet."),
      h("h3", { class: "section-title" }, "Browse"),
      rest.length ? h("ul", { class: "conv-list" }, rest.map(row)) : h("p", { class: "empty" }, "No other rooms."));
  };
  onInput(search, render);
  on("rooms", render);
  render();
  return h("div", { class: "pane-body" },
    h("div", { class: "pane-tools" }, search, h("button", { class: "icon-btn", type: "button", id: "new-room", title: "New room", "aria-label": "New room", onclick: createRoom }, "+")),
    list);
}

function createRoom() {
  return formDialog("New room", () => [
    field("Name", h("input", { name: "name", required: true, maxlength: 64 })),
    field("Topic", h("input", { name: "topic", maxlength: 200 })),
    field("Description", h("textarea", { name: "description", rows: 2 })),
    field("Who can find and read it", h("select", { name: "privacy" },
      h("option", { value: "open" }, "Open: anyone finds, reads and joins it"),
      h("option", { value: "closed" }, "Closed: anyone finds it, members read it"),
      h("option", { value: "secret" }, "Secret: only members see it"))),
  ], async (form) => {
    const r = upsertRoom(await post("/api/v1/rooms", { name: form.name.value, topic: form.topic.value, description: form.description.value, privacy: form.privacy.value }));
    location.hash = `#/r/${r.id}`;
  }, "Create");
}

/** The view of room `id`; returns {el, dispose}. */
export function roomView(id) {
  const header = h("header", { class: "main-head" });
  const scroller = h("div", { class: "messages", id: "room-messages", tabindex: "0", role: "log", "aria-live": "polite", "aria-relevant": "additions", "aria-label": "Posts" });
  const input = h("textarea", { class: "composer-input", id: "room-composer", rows: 1, placeholder: "Post to the room", "aria-label": "Post" });
  const extrasBar = h("div", { class: "composer-extras", hidden: true });
  const extras = composerExtras(extrasBar);
  const composer = h("form", { class: "composer" }, extrasBar, input, h("button", { class: "btn primary", type: "submit" }, "Post"));
  const footer = h("div", { class: "room-foot" });
  const el = h("section", { class: "chat room", dataset: { room: id } }, header, scroller, footer);
  composer.insertBefore(h("span", { class: "attach-box" }, attachControls(el, extras)), input);
  const actions = { onReply: (m) => { extras.replyTo(m); input.focus(); } };
  const render = (m) => renderPost(m, room()?.my_role ? actions : null);
  const room = () => store.rooms.get(id);

  const renderHeader = () => {
    const r = room();
    if (!r) return;
    const manager = r.my_role === "manager";
    mount(header,
      h("a", { class: "icon-btn back", href: "#/", "aria-label": "Back" }, "‹"),
      h("span", { class: "room-icon big", "aria-hidden": "true" }, "#"),
      h("div", { class: "head-text" }, h("h2", { dir: "auto" }, r.name), h("div", { class: "head-sub", id: "room-topic", dir: "auto" }, r.topic || "No topic")),
      h("div", { class: "head-actions" },
        manager ? h("button", { class: "btn small", type: "button", id: "edit-topic", onclick: editTopic }, "Edit topic") : null,
        r.members ? h("button", { class: "btn small", type: "button", id: "room-members", onclick: showMembers }, `Members (${r.members.length})`) : null,
        r.my_role ? h("button", { class: "btn small", type: "button", id: "mute-room", "aria-pressed": String(Boolean(r.muted)), onclick: toggleMute }, r.muted ? "Unmute" : "Mute") : null,
        r.my_role ? h("button", { class: "btn small", type: "button", onclick: leave }, "Leave") : null));
    mount(footer, r.my_role ? composer
      : r.privacy === "open" ? h("div", { class: "join-bar" }, "You are reading this room.", h("button", { class: "btn primary", type: "button", id: "join-room", onclick: join }, "Join"))
        : h("div", { class: "join-bar" }, "Only members can read and post here; a manager adds people."));
  };

  const loadOlder = async () => {
    const r = room();
    if (!r || (!r.my_role && r.privacy !== "open")) return;
    try {
      const page = await get(`/api/v1/rooms/${id}/messages${qs({ before: list.oldest(), limit: PAGE })}`);
      await ensurePeople(page.messages.map((m) => m.from));
      list.addOlder(page.messages, page.messages.length < PAGE);
    } catch (e) { toast(e.message, "error"); }
  };

  // The read marker follows what reached the page, at most one request at a time.
  let marked = 0;
  let marking = false;
  const markRead = () => {
    const r = room();
    const last = list.newest();
    if (!r?.my_role || !last || last <= marked || marking) return;
    marking = true;
    marked = last;
    put(`/api/v1/rooms/${id}/read`, { upto: last }).then(upsertRoom).catch(() => { marked = 0; })
      .finally(() => { marking = false; if (list.newest() > marked) markRead(); });
  };
  const list = new MessageList(scroller, { render, loadOlder, afterFlush: markRead, empty: "No posts yet." });

  input.addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); composer.requestSubmit(); } });
  composer.addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (extras.busy()) { toast("Wait for the files to finish uploading.", "error"); return; }
    if (!text && !extras.hasFiles()) return;
    if (utf8Length(text) > MAX_MESSAGE_BYTES) { toast(`Posts can be at most ${MAX_MESSAGE_BYTES / 1024} KB.`, "error"); return; }
    // The text leaves the box only once the server accepted it.
    await guard(async () => {
      const r = await store.stream.request("room.post", { room: id, text, key: randomId(), ...extras.take() });
      if (input.value.trim() === text) input.value = "";
      list.add([r.message]);
      list.scrollDown();
    });
  });

  async function toggleMute() {
    await guard(async () => {
      const r = await put(`/api/v1/rooms/${id}/mute`, { muted: !room().muted });
      room().muted = r.muted;
      emit("rooms");
    });
  }
  async function join() {
    // A member's read marker starts at the join: what was read before joining is read.
    await guard(async () => { upsertRoom(await post(`/api/v1/rooms/${id}/join`)); await list.more(); markRead(); });
  }
  async function leave() {
    await guard(async () => { await post(`/api/v1/rooms/${id}/leave`); upsertRoom(await get(`/api/v1/rooms/${id}`)); });
  }
  function editTopic() {
    const r = room();
    formDialog("Room topic", () => [field("Topic", h("input", { name: "topic", value: r.topic, maxlength: 200 })), field("Description", h("textarea", { name: "description", rows: 3, value: r.description }))],
      async (form) => upsertRoom(await patch(`/api/v1/rooms/${id}`, { topic: form.topic.value, description: form.description.value })));
  }
  function showMembers() {
    const r = room();
    const manager = r.my_role === "manager";
    dialog(`Members of ${r.name}`, () => {
      const list = h("ul", { class: "members" }, r.members.map((m) => h("li", {}, h("span", {}, displayName(m.username)), h("span", { class: "tag" }, m.role))));
      const add = manager ? h("form", { class: "inline-form" }, h("input", { name: "user", placeholder: "Username to add", "aria-label": "Username to add", required: true }), h("button", { class: "btn", type: "submit" }, "Add")) : null;
      add?.addEventListener("submit", async (e) => {
        e.preventDefault();
        await guard(async () => { upsertRoom(await put(`/api/v1/rooms/${id}/members/${encodeURIComponent(add.user.value.trim().toLowerCase())}`, { role: "member" })); toast("Member added"); add.user.value = ""; });
      });
      return h("div", { class: "form" }, list, add);
    });
  }

  const offs = [
    on("rooms", () => { renderHeader(); }),
    on("room.message", (m) => { if (m.room === id) list.add([m]); }),
    on("room.changed", (m) => { if (m.room === id) list.updateMessage(m.id, m); }),
    on("people", perFrame(() => list.refresh())),
  ];

  (async () => {
    if (!room()) {
      try { upsertRoom(await get(`/api/v1/rooms/${id}`)); } catch (e) { list.showError(e.message); return; }
    }
    renderHeader();
    const r = room();
    if (!r?.my_role && r?.privacy !== "open") list.showError("Only members can read the posts of this room.");
    await list.more();
    list.scrollDown();
    markRead();
  })();
  renderHeader();

  return { el, dispose: () => { list.dispose(); offs.forEach((off) => off()); } };
}
