// The emoji picker, loaded the first time someone reacts: a grid of common emoji, and a box
// for any other.

import { h } from "./util.js";

const COMMON = ["👍", "👎", "😀", "😂", "🙂", "😉", "😍", "🤔", "😮", "😢", "😡", "🎉", "🙏", "👏", "💪", "🔥", "❤️", "💯", "✅", "❌", "👀", "🚀", "☕", "🍕", "👋", "🤝", "✨", "⚠️", "📌", "💡"];

/** Shows the picker under `anchor`; `pick(emoji)` gets the choice. */
export function emojiPicker(anchor, pick) {
  document.querySelectorAll(".emoji-picker").forEach((p) => p.remove());
  const close = () => { panel.remove(); document.removeEventListener("pointerdown", outside, true); };
  const choose = (e) => { close(); pick(e); };
  const other = h("input", { class: "emoji-other", "aria-label": "Another emoji", placeholder: "Other…", maxlength: 16 });
  other.addEventListener("keydown", (e) => { if (e.key === "Enter" && other.value.trim()) { e.preventDefault(); choose(other.value.trim()); } });
  const panel = h("div", { class: "emoji-picker menu", role: "dialog", "aria-label": "Pick an emoji" },
    h("div", { class: "emoji-grid" }, COMMON.map((e) => h("button", { type: "button", class: "emoji", "aria-label": e, onclick: () => choose(e) }, e))),
    other);
  panel.addEventListener("keydown", (e) => { if (e.key === "Escape") { close(); anchor.focus(); } });
  document.body.append(panel);
  const r = anchor.getBoundingClientRect();
  panel.style.top = `${Math.max(8, Math.min(r.bottom + 4, window.innerHeight - panel.offsetHeight - 8))}px`;
  panel.style.left = `${Math.max(8, Math.min(r.left, window.innerWidth - panel.offsetWidth - 8))}px`;
  const outside = (e) => { if (!panel.contains(e.target)) close(); };
  setTimeout(() => document.addEventListener("pointerdown", outside, true));
  panel.querySelector("button")?.focus();
}
