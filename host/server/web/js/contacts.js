// The contacts list at a glance: groups (collapse, add, rename, move, delete), each contact
// with picture, presence dot, state text, note and location; directory search; add with an
// access level; change a contact's level or group; block and unblock; remove.

import { del, get, patch, post, put, qs } from "./api.js";
import { avatar, stateText } from "./presence.js";
import { emit, notePresence, on, store } from "./state.js";
import { debounce, field, formDialog, guard, h, menu, mount, onInput, perFrame, toast } from "./util.js";

/** Access levels, least to most trusted. */
export const LEVELS = [
  ["blocked", "Blocked"],
  ["external", "External contacts"],
  ["colleagues", "Colleagues"],
  ["workgroup", "Workgroup"],
  ["friends_and_family", "Friends and family"],
];
const levelLabel = (l) => (LEVELS.find(([k]) => k === l) || [l, l])[1];
const COLLAPSED_KEY = "halo.collapsed";

/** Applies a contact-list answer (`ContactsView`) to the store. */
export function applyContacts(view) {
  store.groups = view.groups;
  store.contacts.clear();
  for (const c of view.contacts) {
    store.contacts.set(c.presence.username, c);
    store.people.set(c.presence.username, c.presence);
  }
  emit("contacts");
}

/** Loads the contact list. */
export async function loadContacts() {
  applyContacts(await get("/api/v1/contacts"));
}

function collapsed() {
  try { return new Set(JSON.parse(localStorage.getItem(COLLAPSED_KEY) || "[]")); } catch { return new Set(); }
}

function toggleCollapsed(id) {
  const set = collapsed();
  if (set.has(id)) set.delete(id); else set.add(id);
  localStorage.setItem(COLLAPSED_KEY, JSON.stringify([...set]));
}

/** The contacts pane; `openChat(username)` starts or opens the 1:1. */
export function contactsPane(openChat) {
  const search = h("input", { type: "search", id: "people-search", class: "search", placeholder: "Find someone or search the directory", "aria-label": "Find people" });
  const list = h("div", { class: "contact-list", id: "contact-list" });
  const results = h("div", { class: "directory", id: "directory-results" });
  const pane = h("div", { class: "pane-body" },
    h("div", { class: "pane-tools" }, search,
      h("button", { class: "icon-btn", type: "button", title: "New group", "aria-label": "New group", id: "new-group", onclick: newGroup }, "+")),
    results, list);

  const render = () => {
    const q = search.value.trim().toLowerCase();
    const hidden = collapsed();
    const nodes = [];
    for (const g of store.groups) {
      const members = [...store.contacts.values()]
        .filter((c) => c.group === g.id)
        .filter((c) => !q || c.presence.username.includes(q) || c.presence.display_name.toLowerCase().includes(q))
        .sort((a, b) => (a.presence.availability ?? 99999) - (b.presence.availability ?? 99999) || a.presence.display_name.localeCompare(b.presence.display_name));
      const online = members.filter((c) => c.presence.state !== "offline" && c.presence.state !== "unknown").length;
      const isHidden = hidden.has(g.id) && !q;
      nodes.push(h("section", { class: "group", dataset: { group: g.id } },
        h("div", { class: "group-head" },
          h("button", { class: "group-toggle", type: "button", "aria-expanded": String(!isHidden), onclick: () => { toggleCollapsed(g.id); render(); } },
            h("span", { class: "chev", "aria-hidden": "true" }, isHidden ? "▸" : "▾"), h("span", { class: "group-name" }, g.name), h("span", { class: "count" }, `${online}/${members.length}`)),
          h("button", { class: "icon-btn small", type: "button", "aria-label": `Group ${g.name} options`, onclick: (e) => groupMenu(e.currentTarget, g) }, "⋯")),
        isHidden ? null : h("ul", { class: "contacts" }, members.map((c) => contactRow(c, openChat)))));
    }
    if (!store.contacts.size && !q) nodes.push(h("p", { class: "empty" }, "No contacts yet. Search the directory above to add people."));
    mount(list, nodes);
  };

  const lookup = debounce(async () => {
    const q = search.value.trim();
    if (q.length < 1) { mount(results); return; }
    // name@domain: a user of another server (federation); the server says if it federates.
    if (FEDERATED.test(q)) {
      const p = remotePerson(q.toLowerCase());
      mount(results, [h("h3", { class: "section-title" }, "Another server"),
        h("ul", { class: "contacts" }, directoryRow(p, openChat))]);
      return;
    }
    const r = await guard(() => get(`/api/v1/directory${qs({ q })}`));
    if (!r || search.value.trim() !== q) return;
    const others = r.people.filter((p) => p.username !== store.me.username);
    others.forEach((p) => { if (!store.contacts.has(p.username)) store.people.set(p.username, p); });
    hits = others.map((p) => p.username);
    hitsQuery = q;
    showHits();
  }, 250);
  // The directory's hits, drawn from the store: a contact's presence comes from the contact
  // list (what they let this user see, kept current by the stream), never from the
  // directory's answer, so a hit and the contact below it always show the same state.
  let hits = [];
  let hitsQuery = "";
  const showHits = () => {
    if (!search.value.trim() || FEDERATED.test(search.value.trim())) return;
    const people = hits.map((u) => store.contacts.get(u)?.presence || store.people.get(u)).filter(Boolean);
    mount(results, people.length ? [h("h3", { class: "section-title" }, "Directory"),
      h("ul", { class: "contacts" }, people.map((p) => directoryRow(p, openChat)))] : h("p", { class: "empty" }, `No one found for “${hitsQuery}”. Users of other servers are name@domain.`));
  };
  const laterHits = perFrame(showHits);
  // Only a changed query renders again: the `change` event that leaving the box fires (e.g. by
  // clicking a contact) must not replace the row being clicked.
  let query = "";
  onInput(search, () => {
    if (search.value === query) return;
    query = search.value;
    render();
    lookup();
  });
  search.addEventListener("keydown", (e) => { if (e.key === "Escape") { search.value = ""; query = ""; render(); mount(results); } });

  const later = perFrame(render);
  on("contacts", () => { render(); if (search.value.trim()) lookup(); });
  on("presence", (p) => {
    if (store.contacts.has(p.username)) later();
    if (hits.includes(p.username)) laterHits();
  });
  on("states", later);
  render();
  return pane;
}

function contactRow(c, openChat) {
  const p = c.presence;
  const open = () => openChat(p.username);
  return h("li", { class: "contact", dataset: { contact: p.username, state: p.state } },
    h("button", { class: "contact-main", type: "button", onclick: open, title: `Chat with ${p.display_name}` },
      avatar(p),
      h("span", { class: "contact-text" },
        h("span", { class: "contact-name", dir: "auto" }, p.display_name),
        h("span", { class: "contact-state", style: { "--c": p.colour } }, stateText(p),
          p.location ? [" · ", h("span", { class: "contact-location", dir: "auto" }, p.location)] : null),
        p.note ? h("span", { class: "contact-note", dir: "auto" }, p.note) : null)),
    h("button", { class: "icon-btn small", type: "button", "aria-label": `Options for ${p.display_name}`, dataset: { menuFor: p.username }, onclick: (e) => contactMenu(e.currentTarget, c) }, "⋯"));
}

/** A federated address: name@domain. */
const FEDERATED = /^[^@\s]+@[a-z0-9-]+(\.[a-z0-9-]+)+$/i;

/** How a user of another server shows before their server says anything. */
function remotePerson(address) {
  return { username: address, display_name: address, state: "unknown", label: "Presence unknown", colour: "#c8c6c4", title: "another server" };
}

function directoryRow(p, openChat) {
  const known = store.contacts.has(p.username);
  return h("li", { class: "contact", dataset: { directory: p.username } },
    h("button", { class: "contact-main", type: "button", onclick: () => openChat(p.username) },
      avatar(p),
      h("span", { class: "contact-text" }, h("span", { class: "contact-name", dir: "auto" }, p.display_name),
        h("span", { class: "contact-state" }, `${p.username}${p.title ? ` · ${p.title}` : ""}`))),
    known ? h("span", { class: "tag" }, "Contact")
      : h("button", { class: "btn small", type: "button", dataset: { add: p.username }, onclick: () => addContactDialog(p) }, "Add"));
}

function groupSelect(value) {
  return h("select", { name: "group" }, store.groups.map((g) => h("option", { value: g.id, selected: g.id === value }, g.name)));
}

function levelSelect(value) {
  return h("select", { name: "level" }, LEVELS.map(([k, label]) => h("option", { value: k, selected: k === value }, label)));
}

/** Asks for the group and access level, then adds `p` as a contact. */
export function addContactDialog(p) {
  const remote = p.username.includes("@");
  return formDialog(`Add ${p.display_name}`, () => [
    h("p", { class: "hint" }, "The access level decides what they see of your presence: Colleagues see your status, note and location; Workgroup also your mobile and meetings, and can reach you in Do Not Disturb."),
    ...(remote ? [h("p", { class: "hint" }, "They are on another server: they start at External (your availability only), and their server is asked for their presence.")] : []),
    field("Group", groupSelect(0)),
    field("Access level", levelSelect(remote ? "external" : "colleagues")),
  ], async (form) => {
    applyContacts(await post("/api/v1/contacts", { username: p.username, group: Number(form.group.value), level: form.level.value }));
    toast(`${p.display_name} added to your contacts`);
  }, "Add contact");
}

function contactMenu(anchor, c) {
  const p = c.presence;
  const blocked = c.level === "blocked";
  menu(anchor, [
    { label: `Access level: ${levelLabel(c.level)}…`, data: { action: "level" }, onclick: () => levelDialog(c) },
    { label: "Move to group…", data: { action: "move" }, onclick: () => moveDialog(c) },
    blocked ? { label: "Unblock", data: { action: "unblock" }, onclick: () => guard(async () => { await del(`/api/v1/me/blocked/${p.username}`); await loadContacts(); toast(`${p.display_name} unblocked`); }) }
      : { label: "Block", data: { action: "block" }, danger: true, onclick: () => guard(async () => { await put(`/api/v1/me/blocked/${p.username}`); await loadContacts(); toast(`${p.display_name} is blocked`); }) },
    "-",
    { label: "Remove from contacts", danger: true, data: { action: "remove" }, onclick: () => guard(async () => { await del(`/api/v1/contacts/${p.username}`); await loadContacts(); }) },
  ]);
}

function levelDialog(c) {
  return formDialog(`Access level for ${c.presence.display_name}`, () => field("Access level", levelSelect(c.level)),
    async (form) => applyContacts(await patch(`/api/v1/contacts/${c.presence.username}`, { level: form.level.value })));
}

function moveDialog(c) {
  return formDialog(`Move ${c.presence.display_name}`, () => field("Group", groupSelect(c.group)),
    async (form) => applyContacts(await patch(`/api/v1/contacts/${c.presence.username}`, { group: Number(form.group.value) })), "Move");
}

function newGroup() {
  return formDialog("New group", () => field("Name", h("input", { name: "name", required: true, maxlength: 64 })),
    async (form) => applyContacts(await post("/api/v1/contacts/groups", { name: form.name.value })), "Create");
}

function groupMenu(anchor, g) {
  const i = store.groups.findIndex((x) => x.id === g.id);
  const move = (position) => guard(async () => applyContacts(await patch(`/api/v1/contacts/groups/${g.id}`, { position })));
  const items = [
    { label: "Rename…", onclick: () => formDialog("Rename group", () => field("Name", h("input", { name: "name", required: true, maxlength: 64, value: g.name })),
      async (form) => applyContacts(await patch(`/api/v1/contacts/groups/${g.id}`, { name: form.name.value }))) },
  ];
  if (i > 0) items.push({ label: "Move up", onclick: () => move(i - 1) });
  if (i < store.groups.length - 1) items.push({ label: "Move down", onclick: () => move(i + 1) });
  if (g.id !== 0) {
    items.push("-", { label: "Delete group", danger: true, onclick: () => guard(async () => { await del(`/api/v1/contacts/groups/${g.id}`); await loadContacts(); }) });
  }
  menu(anchor, items);
}

/** Keeps contacts current from the stream's snapshot and presence frames. */
export function wireContacts(stream) {
  stream.on("presence.snapshot", (f) => {
    if (f.me) notePresence(f.me);
    for (const p of f.contacts || []) notePresence(p);
  });
  stream.on("presence", (f) => notePresence(f.presence));
  // Changed on another device (or this one): read the list again; changes that come while it
  // is read make one more read.
  let reading = false;
  let again = false;
  stream.on("contacts.changed", async () => {
    if (reading) { again = true; return; }
    reading = true;
    try {
      do { again = false; await loadContacts(); } while (again);
    } catch { /* the next change or reconnect reads it */ } finally { reading = false; }
  });
}
