// Presence: avatars with their coloured dot, the "my presence" card (state picker with the
// built-in and custom states, note, location, picture), and idle detection reported as this
// endpoint's machine state (`presence.machine`), so the server aggregates it with the user's
// other devices.

import { api, get, patch, pictureUrl } from "./api.js";
import { emit, notePresence, on, store } from "./state.js";
import { guard, h, initials, menu, mount, toast } from "./util.js";

/** Built-in states offered in the picker, in Lync's order. */
const PICKABLE = ["available", "busy", "do-not-disturb", "be-right-back", "off-work", "away", "appear-offline"];

/** Loads the state catalog. */
export async function loadStates() {
  store.states = (await get("/api/v1/presence/states")).states;
  emit("states");
}

/** A state's label in the browser's language, falling back to English. */
export function stateLabel(s) {
  const lang = (navigator.language || "en").split("-")[0];
  return s.labels[lang] || s.labels.en || s.id;
}

/** The text shown for a presence: its label, plus "Out of office" when that applies. */
export function stateText(p) {
  if (!p) return "Unknown";
  if (p.custom_state) {
    const s = store.states.find((x) => x.id === p.custom_state);
    if (s) return stateLabel(s);
  }
  return p.label || "Unknown";
}

/** A round avatar (picture or initials) with the presence dot. */
export function avatar(p, size = "md") {
  const name = p?.display_name || p?.username || "?";
  const src = pictureUrl(p?.picture);
  return h("span", { class: `avatar ${size}`, dataset: { state: p?.state || "unknown" } },
    src ? h("img", { src, alt: "", loading: "lazy" }) : h("span", { class: "initials", "aria-hidden": "true" }, initials(name)),
    h("span", { class: "dot", style: { "--c": p?.colour || "#a19f9d" }, title: stateText(p) }));
}

/** A presence dot on its own (its shape shows the state too, see app.css). */
export function dot(p, cls = "dot") {
  return h("span", { class: cls, dataset: { state: p?.state || "unknown" }, style: { "--c": p?.colour || "#a19f9d" }, "aria-hidden": "true" });
}

/** The own-presence card at the top of the sidebar. */
export function myCard() {
  const card = h("section", { class: "me-card", "aria-label": "My presence" });
  const render = () => {
    const p = store.myPresence || { username: store.me.username, display_name: store.me.display_name };
    const file = h("input", { type: "file", id: "picture-file", accept: "image/png,image/jpeg,image/gif,image/webp", hidden: true, onchange: () => uploadPicture(file) });
    const pic = h("button", { class: "avatar-btn", type: "button", title: "Change picture", "aria-label": "Change picture", onclick: () => file.click() }, avatar(p, "lg"));
    const stateBtn = h("button", { class: "state-btn", id: "my-state", type: "button", "aria-haspopup": "menu", onclick: (e) => stateMenu(e.currentTarget) },
      dot(p), h("span", { class: "state-label" }, stateText(p)), h("span", { class: "caret", "aria-hidden": "true" }, "▾"));
    const note = h("input", { id: "my-note", dir: "auto", class: "inline-input", placeholder: "What's happening today?", value: p.note || "", maxlength: 500, "aria-label": "Note" });
    const location = h("input", { id: "my-location", class: "inline-input small", placeholder: "Set your location", value: p.location || "", maxlength: 100, "aria-label": "Location" });
    for (const [input, key] of [[note, "note"], [location, "location"]]) {
      const save = () => {
        if (input.value === ((store.myPresence || {})[key] || "")) return;
        guard(async () => { const r = await patch("/api/v1/me/presence", { [key]: input.value }); notePresence(r.presence); });
      };
      input.addEventListener("change", save);
      input.addEventListener("keydown", (e) => { if (e.key === "Enter") input.blur(); if (e.key === "Escape") { input.value = p[key] || ""; input.blur(); } });
    }
    const profile = h("button", { class: "link-btn", type: "button", id: "edit-profile", onclick: async () => (await import("./profile.js")).profileDialog() }, "Profile");
    mount(card, pic, file, h("div", { class: "me-text" }, h("div", { class: "me-name", dir: "auto" }, p.display_name, " ", profile), stateBtn, resetAfterSelect(), note, location));
  };
  render();
  on("presence", (p) => {
    if (p.username !== store.me.username) return;
    // Keep what the user is typing.
    if (card.contains(document.activeElement) && document.activeElement.tagName === "INPUT") {
      const d = card.querySelector(".state-btn .dot");
      d?.style.setProperty("--c", p.colour);
      if (d) d.dataset.state = p.state || "unknown";
      const l = card.querySelector(".state-label");
      if (l) l.textContent = stateText(p);
      return;
    }
    render();
  });
  on("states", render);
  return card;
}

function stateMenu(anchor) {
  const builtin = PICKABLE.map((id) => store.states.find((s) => s.id === id && !s.custom)).filter(Boolean);
  const custom = store.states.filter((s) => s.custom);
  const item = (s) => ({ label: stateLabel(s), dot: s.colour, data: { state: s.id }, onclick: () => setState(s.id) });
  const items = builtin.map(item);
  if (custom.length) items.push("-", ...custom.map(item));
  items.push("-", { label: "Reset status", data: { state: "reset" }, onclick: resetState });
  menu(anchor, items, "state-menu");
}

/** How long a state picked by hand lasts ("reset status after…"), in minutes; 0: until reset. */
const RESET_AFTER = [[0, "Until I change it"], [30, "For 30 minutes"], [60, "For 1 hour"], [120, "For 2 hours"], [240, "For 4 hours"], [-1, "Until the end of today"]];

function resetAfterSelect() {
  const sel = h("select", { id: "reset-after", class: "inline-input small", "aria-label": "Reset status after" },
    RESET_AFTER.map(([v, label]) => h("option", { value: String(v), selected: String(v) === (localStorage.getItem("halo.resetAfter") || "0") }, label)));
  sel.addEventListener("change", () => localStorage.setItem("halo.resetAfter", sel.value));
  return sel;
}

/** When a state set now ends, per the "reset status after…" choice (undefined: never). */
function resetUntil() {
  const v = Number(localStorage.getItem("halo.resetAfter") || 0);
  if (v > 0) return Date.now() + v * 60_000;
  if (v === -1) { const d = new Date(); d.setHours(23, 59, 59, 0); return d.getTime(); }
  return undefined;
}

async function setState(id) {
  await guard(async () => notePresence((await store.stream.request("presence.set", { state: id, until: resetUntil() })).presence));
}

async function resetState() {
  await guard(async () => notePresence((await store.stream.request("presence.reset")).presence));
}

function uploadPicture(input) {
  const file = input.files?.[0];
  if (!file) return;
  guard(async () => {
    const r = await api("PUT", "/api/v1/me/picture", file, file.type || "application/octet-stream");
    notePresence(r);
    toast("Picture updated");
  });
}

/** Whether the signed-in user is in Do Not Disturb (no desktop notifications then). */
export function inDnd() {
  return store.myPresence?.state === "do_not_disturb";
}

/**
 * Idle detection: no keyboard, pointer or focus activity for the user's idle timeout makes this
 * endpoint Inactive; twice that (or the tab hidden that long) makes it Away. Any activity
 * makes it Active again. The server aggregates the machine state with the user's other devices.
 */
export function startIdleDetection() {
  let last = Date.now();
  let reported = "active";
  const report = (state) => {
    if (state === reported || !store.stream?.connected) return;
    reported = state;
    store.stream.request("presence.machine", { state }).then((r) => notePresence(r.presence)).catch(() => { reported = ""; });
  };
  const active = () => { last = Date.now(); if (reported !== "active") report("active"); };
  const events = ["pointerdown", "pointermove", "keydown", "wheel", "touchstart", "focus"];
  for (const ev of events) window.addEventListener(ev, active, { passive: true });
  store.stream.on("open", () => { reported = "active"; last = Date.now(); });
  const timer = setInterval(() => {
    const idleMs = Date.now() - last;
    const limit = store.idleMinutes * 60_000;
    if (idleMs >= 2 * limit) report("away");
    else if (idleMs >= limit) report("inactive");
  }, 15_000);
  return () => {
    clearInterval(timer);
    for (const ev of events) window.removeEventListener(ev, active);
  };
}

/** Loads own presence settings (the idle timeout). */
export async function loadMyPresence() {
  const r = await get("/api/v1/me/presence");
  store.idleMinutes = r.idle_minutes || 5;
  notePresence(r.presence);
}
