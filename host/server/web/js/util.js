// DOM and formatting helpers shared by every view. User data only ever reaches the page as
// text nodes or attribute values (never as HTML), so no message or name can inject markup.

/** Builds an element: h("button", {class: "x", onclick: fn}, "text", child, ...). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "style") for (const [p, val] of Object.entries(v)) el.style.setProperty(p, val);
    else if (k === "value") el.value = v;
    else if (k === "checked" || k === "disabled" || k === "selected" || k === "hidden") el[k] = Boolean(v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces an element's children. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** First element matching `sel` under `root` (default: the document). */
export const $ = (sel, root = document) => root.querySelector(sel);

/** Initials for an avatar without a picture. */
export function initials(name) {
  const parts = String(name || "?").trim().split(/[\s._-]+/).filter(Boolean);
  return ((parts[0]?.[0] || "?") + (parts.length > 1 ? parts[parts.length - 1][0] : "")).toUpperCase();
}

/** A time of day, or a date when not today. */
export function fmtTime(ms) {
  const d = new Date(ms);
  const now = new Date();
  if (d.toDateString() === now.toDateString()) return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return d.toLocaleDateString([], { day: "numeric", month: "short" }) + " " +
    d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

/** Calls `fn` once `ms` have passed without another call. */
export function debounce(fn, ms) {
  let t;
  return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
}

/** Wraps `fn` so that calls made before the next animation frame run it once, then. */
export function perFrame(fn) {
  let frame = 0;
  return () => {
    if (!frame) frame = requestAnimationFrame(() => { frame = 0; fn(); });
  };
}

/** The length of `text` in UTF-8 bytes (what the server's limits count). */
export function utf8Length(text) {
  return new TextEncoder().encode(text).length;
}

/** A random id (idempotency keys, endpoint names). */
export function randomId() {
  const b = new Uint8Array(9);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** Shows a short message at the bottom of the screen; errors stay longer. */
export function toast(text, kind = "info") {
  const box = document.getElementById("toasts");
  const t = h("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
  box.append(t);
  setTimeout(() => t.remove(), kind === "error" ? 8000 : 4000);
}

/** Runs an async action and shows its error message, if any, as a toast. */
export async function guard(fn) {
  try {
    return await fn();
  } catch (e) {
    toast(e.message || String(e), "error");
    return undefined;
  }
}

/**
 * A modal dialog (a real <dialog>, so focus and Escape work). `body` is a node or a function
 * `(close) => node`. Resolves with the value passed to `close`.
 */
export function dialog(title, body) {
  return new Promise((resolve) => {
    const dlg = h("dialog", { class: "dialog", "aria-label": title });
    let result;
    const close = (value) => { result = value; dlg.close(); };
    // However it closes (button, Escape, script), it goes away and the promise settles.
    dlg.addEventListener("close", () => { dlg.remove(); resolve(result); });
    const content = typeof body === "function" ? body(close) : body;
    dlg.append(
      h("header", { class: "dialog-head" }, h("h2", {}, title),
        h("button", { class: "icon-btn", type: "button", "aria-label": "Close", onclick: () => close(undefined) }, "✕")),
      content,
    );
    document.body.append(dlg);
    dlg.showModal();
    const first = dlg.querySelector("input, select, textarea");
    if (first) first.focus();
  });
}

/** A form in a dialog: `fields(form)` builds the inputs, `submit(form)` runs on submit and
 * closes the dialog unless it throws (its message is shown in the dialog). */
export function formDialog(title, fields, submit, submitLabel = "Save") {
  return dialog(title, (close) => {
    const error = h("p", { class: "form-error", role: "alert" });
    const form = h("form", { class: "form" });
    form.append(...[fields(form)].flat(), error,
      h("div", { class: "form-actions" },
        h("button", { type: "button", class: "btn", onclick: () => close(undefined) }, "Cancel"),
        h("button", { type: "submit", class: "btn primary" }, submitLabel)));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      error.textContent = "";
      try {
        close(await submit(form) ?? true);
      } catch (err) {
        error.textContent = err.message || String(err);
      }
    });
    return form;
  });
}

/** Asks for confirmation. */
export function confirmDialog(title, text, label = "OK") {
  return formDialog(title, () => h("p", {}, text), async () => true, label);
}

/** A labelled input for forms. */
export function field(label, input) {
  return h("label", { class: "field" }, h("span", {}, label), input);
}

/** A popup menu anchored at `anchor`: items are {label, onclick, dot?, danger?} or "-". */
export function menu(anchor, items, cls = "") {
  document.querySelectorAll(".menu").forEach((m) => m.remove());
  const m = h("div", { class: `menu ${cls}`, role: "menu" });
  for (const it of items) {
    if (it === "-") { m.append(h("hr")); continue; }
    m.append(h("button", {
      type: "button", role: "menuitem", class: it.danger ? "danger" : "", dataset: it.data || {},
      onclick: (e) => { e.stopPropagation(); m.remove(); it.onclick(); },
    }, it.dot ? h("span", { class: "dot", style: { "--c": it.dot } }) : null, it.label));
  }
  document.body.append(m);
  const r = anchor.getBoundingClientRect();
  const top = Math.min(r.bottom + 4, window.innerHeight - m.offsetHeight - 8);
  const left = Math.min(r.left, window.innerWidth - m.offsetWidth - 8);
  m.style.top = `${Math.max(8, top)}px`;
  m.style.left = `${Math.max(8, left)}px`;
  const off = (e) => {
    if (!m.contains(e.target)) { m.remove(); document.removeEventListener("pointerdown", off, true); }
  };
  setTimeout(() => document.addEventListener("pointerdown", off, true));
  m.addEventListener("keydown", (e) => {
    const buttons = [...m.querySelectorAll("button")];
    const i = buttons.indexOf(document.activeElement);
    if (e.key === "Escape") { m.remove(); anchor.focus(); }
    else if (e.key === "ArrowDown") { e.preventDefault(); buttons[(i + 1) % buttons.length]?.focus(); }
    else if (e.key === "ArrowUp") { e.preventDefault(); buttons[(i - 1 + buttons.length) % buttons.length]?.focus(); }
  });
  m.querySelector("button")?.focus();
  return m;
}

/** Calls `fn` when the user edits `el` (typing, pasting, clearing: `input` and `change`). */
export function onInput(el, fn) {
  el.addEventListener("input", fn);
  el.addEventListener("change", fn);
}
