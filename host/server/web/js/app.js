// Entry point: sign in (the session token is kept in localStorage, so a reload stays signed
// in), the shell (sidebar with my presence and the Contacts / Chats / Rooms / Admin tabs, the
// main pane), the hash router (#/c/<id>, #/r/<id>, #/admin/<section>) and sign out.

import { get, post, setToken, token, whenUnauthorized } from "./api.js";
import { clearOutbox, conversationView, wireOutbox } from "./chatview.js";
import { contactsPane, loadContacts, wireContacts } from "./contacts.js";
import { askNotificationPermission, conversationsPane, loadConversations, openChatWith, totalUnread, wireConversations } from "./conversations.js";
import { loadMyPresence, loadStates, myCard, startIdleDetection } from "./presence.js";
import { loadRooms, roomView, roomsPane, wireRooms } from "./rooms.js";
import { emit, hasRole, on, resetStore, store } from "./state.js";
import { Stream } from "./stream.js";
import { h, mount, perFrame, toast } from "./util.js";

const root = document.getElementById("app");

/** Whether the signed-in user may open the console (admins, compliance officers); its code
 * (js/admin/) is loaded only then. */
const canAdmin = () => hasRole("admin") || hasRole("compliance");

/** The console showing `section`, loaded on demand; returns {el, dispose}. */
function lazyAdminView(section) {
  const el = h("div", { class: "admin-host" }, h("p", { class: "empty" }, "Loading…"));
  let inner = null;
  let gone = false;
  import("./admin/console.js").then(({ adminView }) => {
    if (gone) return;
    inner = adminView(section);
    el.replaceWith(inner.el);
  }).catch((e) => mount(el, h("p", { class: "form-error" }, `The console could not be loaded: ${e.message}`)));
  return { el, dispose: () => { gone = true; inner?.dispose(); } };
}
let stopIdle = () => {};
let current = { dispose() {} };

function signInView(message) {
  const error = h("p", { class: "form-error", id: "login-error", role: "alert" }, message || "");
  const user = h("input", { id: "login-username", name: "username", autocomplete: "username", required: true, autocapitalize: "none", spellcheck: "false" });
  const pass = h("input", { id: "login-password", name: "password", type: "password", autocomplete: "current-password", required: true });
  const button = h("button", { class: "btn primary wide", type: "submit", id: "login-submit" }, "Sign in");
  const form = h("form", { class: "login-card", "aria-label": "Sign in" },
    h("div", { class: "logo", "aria-hidden": "true" }, h("span", { class: "logo-ring" }), h("span", { class: "logo-dot" })),
    h("h1", {}, "Halo"),
    h("p", { class: "muted" }, "Sign in to chat and see who is available."),
    h("label", { class: "field" }, h("span", {}, "Username"), user),
    h("label", { class: "field" }, h("span", {}, "Password"), pass),
    error, button);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.textContent = "";
    button.disabled = true;
    try {
      const r = await post("/api/v1/login", { username: user.value.trim(), password: pass.value });
      setToken(r.token);
      askNotificationPermission();
      await start();
    } catch (err) {
      error.textContent = err.message;
      button.disabled = false;
      pass.select();
    }
  });
  mount(root, h("main", { class: "login" }, form));
  user.focus();
}

async function signOut(message) {
  const s = store.stream;
  if (s) s.stop();
  if (token() && !message) await post("/api/v1/logout").catch(() => {});
  stopIdle();
  window.onhashchange = null;
  history.replaceState(null, "", location.pathname);
  current.dispose();
  current = { dispose() {} };
  setToken(null);
  clearOutbox();
  resetStore();
  document.title = "Halo";
  signInView(message);
}

async function start() {
  mount(root, h("div", { class: "loading" }, "Loading…"));
  try {
    store.me = await get("/api/v1/me");
    await Promise.all([loadStates(), loadMyPresence(), loadContacts(), loadConversations(), loadRooms()]);
  } catch (e) {
    if (!token()) return;
    if (e.status === 401) { signOut("Your session ended. Please sign in again."); return; }
    mount(root, h("main", { class: "login" }, h("div", { class: "login-card" }, h("h1", {}, "Halo"), h("p", { class: "form-error" }, e.message),
      h("button", { class: "btn primary", type: "button", onclick: start }, "Try again"))));
    return;
  }
  const stream = new Stream(token(), { onEnded: (msg, warn) => (warn ? toast(warn, "error") : signOut(msg)) });
  store.stream = stream;
  wireContacts(stream);
  wireConversations(stream);
  wireRooms(stream);
  wireOutbox(stream);
  stream.on("presence.states", () => loadStates().catch(() => {}));
  shell(stream);
  stream.connect();
  stopIdle = startIdleDetection();
}

function shell(stream) {
  const tabs = [
    { id: "contacts", label: "Contacts", pane: () => contactsPane(openChatWith) },
    { id: "chats", label: "Chats", pane: conversationsPane },
    { id: "rooms", label: "Rooms", pane: roomsPane, onShow: () => loadRooms().catch(() => {}) },
  ];
  // A WAI-ARIA tablist: each tab controls its panel; only the selected tab is in the Tab
  // order, and the arrow keys (Home, End) move between tabs and select them.
  const panels = new Map(tabs.map((t) => [t.id, h("div", { class: "tab-panel", role: "tabpanel", id: `panel-${t.id}`, "aria-labelledby": `tab-${t.id}`, hidden: true })]));
  const filled = new Set();
  const paneBox = h("div", { class: "pane" }, [...panels.values()]);
  const tabBar = h("div", { class: "tabs", role: "tablist", "aria-label": "Sidebar" });
  let active = localStorage.getItem("halo.tab") || "contacts";
  const unread = h("span", { class: "badge", id: "unread-total", hidden: true });
  const roomsUnread = h("span", { class: "badge", id: "rooms-unread", hidden: true });

  const show = (id) => {
    active = tabs.some((t) => t.id === id) ? id : "contacts";
    localStorage.setItem("halo.tab", active);
    for (const t of tabs) {
      const panel = panels.get(t.id);
      if (!filled.has(t.id) && t.id === active) { filled.add(t.id); panel.append(t.pane()); }
      panel.hidden = t.id !== active;
    }
    tabs.find((t) => t.id === active)?.onShow?.();
    tabBar.querySelectorAll("[role=tab]").forEach((b) => {
      const selected = b.dataset.tab === active;
      b.setAttribute("aria-selected", String(selected));
      b.tabIndex = selected ? 0 : -1;
    });
  };
  tabBar.append(...tabs.map((t) => h("button", { type: "button", role: "tab", id: `tab-${t.id}`, "aria-controls": `panel-${t.id}`, dataset: { tab: t.id }, onclick: () => show(t.id) }, t.label, t.id === "chats" ? unread : t.id === "rooms" ? roomsUnread : null)));
  tabBar.addEventListener("keydown", (e) => {
    const i = tabs.findIndex((t) => t.id === active);
    const to = { ArrowRight: i + 1, ArrowLeft: i - 1 + tabs.length, Home: 0, End: tabs.length - 1 }[e.key];
    if (to === undefined) return;
    e.preventDefault();
    const next = tabs[to % tabs.length];
    show(next.id);
    document.getElementById(`tab-${next.id}`)?.focus();
  });

  const conn = h("span", { class: "conn", id: "connection" }, "Connecting…");
  stream.on("open", () => { conn.textContent = ""; conn.classList.remove("down"); });
  stream.on("close", () => { conn.textContent = "Reconnecting…"; conn.classList.add("down"); });

  const main = h("main", { class: "main", id: "main" });
  const layout = h("div", { class: "shell" },
    h("aside", { class: "sidebar", "aria-label": "Contacts and conversations" },
      h("div", { class: "brand" },
        h("span", { class: "brand-name" }, h("span", { class: "logo-dot small", "aria-hidden": "true" }), "Halo"), conn,
        canAdmin() ? h("a", { class: "btn small ghost", href: "#/admin/", id: "open-admin" }, hasRole("admin") ? "Admin" : "Compliance") : null,
        h("button", { class: "btn small ghost", type: "button", id: "sign-out", onclick: () => signOut() }, "Sign out")),
      myCard(), tabBar, paneBox),
    main);
  mount(root, layout);
  show(active);

  const updateUnread = () => {
    const n = totalUnread();
    unread.hidden = !n;
    unread.textContent = String(n);
    document.title = n ? `(${n}) Halo` : "Halo";
  };
  on("conversations", perFrame(updateUnread));
  updateUnread();
  // Rooms with posts not read, not muted and not being read: the Rooms tab's badge.
  const updateRoomsUnread = () => {
    const open = store.view?.kind === "room" ? store.view.id : null;
    const n = [...store.rooms.values()].filter((r) => r.my_role && r.unread && !r.muted && r.id !== open).reduce((a, r) => a + r.unread, 0);
    roomsUnread.hidden = !n;
    roomsUnread.textContent = String(n);
    roomsUnread.setAttribute("aria-label", `${n} unread in rooms`);
  };
  on("rooms", perFrame(updateRoomsUnread));
  loadRooms().catch(() => {});

  const route = () => {
    current.dispose();
    const [, kind, arg] = location.hash.split("/");
    let view = null;
    if (kind === "c" && Number(arg)) { store.view = { kind: "conversation", id: Number(arg) }; view = conversationView(Number(arg)); }
    else if (kind === "r" && Number(arg)) { store.view = { kind: "room", id: Number(arg) }; view = roomView(Number(arg)); }
    else if (kind === "admin" && canAdmin()) { store.view = { kind: "admin", id: arg }; view = lazyAdminView(arg); }
    else { store.view = null; }
    current = view || { dispose() {} };
    emit("rooms"); // the room being read shows no unread badge
    layout.classList.toggle("has-view", Boolean(view));
    mount(main, view ? view.el : welcome());
    updateUnread();
    document.querySelectorAll(".conv.current, .room-row.current").forEach((a) => a.classList.remove("current"));
    document.querySelector(`[data-conversation="${store.view?.kind === "conversation" ? store.view.id : ""}"].conv, [href="${location.hash}"].room-row`)?.classList.add("current");
  };
  window.onhashchange = route;
  route();
}

function welcome() {
  return h("div", { class: "welcome" },
    h("div", { class: "logo big", "aria-hidden": "true" }, h("span", { class: "logo-ring" }), h("span", { class: "logo-dot" })),
    h("h2", {}, `Hello, ${store.me.display_name}`),
    h("p", { class: "muted" }, "Pick a contact to start a conversation, or open a room."));
}

whenUnauthorized(() => { if (store.me) signOut("Your session ended. Please sign in again."); });
if (token()) start(); else signInView();
