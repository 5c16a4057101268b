// What a message shows besides its sender and time, for conversations and rooms alike: its
// text with links, @mentions and a small safe markdown (**bold**, *italic*, `code`), the quote
// of what it replies to, its attachments (images previewed), "edited", a tombstone once
// deleted, its reactions, and the actions on it (react, reply, edit, delete).
// Everything is built from text nodes and elements: user text is never parsed as HTML.

import { token } from "./api.js";
import { displayName, emit, store } from "./state.js";
import { formDialog, guard, h, menu } from "./util.js";

/** Links, code, bold, italic and mentions, in that order of precedence. */
const TOKENS = /(https?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]])|`([^`\n]+)`|\*\*([^*\n]+)\*\*|(?:^|(?<=[\s(]))[*_]([^*_\n]+)[*_](?=$|[\s).,;:!?])|(?:^|(?<=[^\w.@-]))@([a-z0-9][a-z0-9._-]*[a-z0-9]|[a-z0-9])/gi;

/** The text as nodes: links open in a new tab, mentions of the reader stand out. */
export function richText(text) {
  const out = [];
  let at = 0;
  const me = store.me?.username;
  for (const m of text.matchAll(TOKENS)) {
    if (m.index > at) out.push(text.slice(at, m.index));
    const [all, url, code, bold, italic, mention] = m;
    if (url) out.push(h("a", { href: url, target: "_blank", rel: "noopener noreferrer nofollow" }, url));
    else if (code) out.push(h("code", {}, code));
    else if (bold) out.push(h("strong", {}, bold));
    else if (italic) out.push(h("em", {}, italic));
    else if (mention) out.push(h("span", { class: `mention${mention.toLowerCase() === me ? " me" : ""}` }, `@${mention}`));
    else out.push(all);
    at = m.index + all.length;
  }
  if (at < text.length) out.push(text.slice(at));
  return out;
}

/** A download URL for an attachment (the token in the query: `<img>` cannot send headers). */
export function attachmentUrl(id) {
  return `/api/v1/attachments/${encodeURIComponent(id)}?token=${encodeURIComponent(token() || "")}`;
}

const INLINE = ["image/png", "image/jpeg", "image/gif", "image/webp"];

function size(n) {
  return n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(0)} KB` : `${(n / 1048576).toFixed(1)} MB`;
}

/** A message's attachments: images as previews, other files as download links. */
function attachments(list) {
  if (!list?.length) return null;
  return h("div", { class: "msg-files" }, list.map((a) => INLINE.includes(a.mime)
    ? h("a", { class: "msg-image", href: attachmentUrl(a.id), target: "_blank", rel: "noopener" },
      h("img", { src: attachmentUrl(a.id), alt: a.name, loading: "lazy" }))
    : h("a", { class: "msg-file", href: attachmentUrl(a.id), download: a.name, rel: "noopener" },
      h("span", { "aria-hidden": "true" }, "📄 "), h("bdi", {}, a.name), ` · ${size(a.size)}`)));
}

/** Where a message is, as the stream's requests name it. */
export function where(m) {
  return m.room ? { room: m.room } : { conversation: m.conversation };
}

/** Sends a change to a message and shows its answer here (the server tells this user's other
 * devices, not the one that asked). */
async function change(type, m, fields = {}) {
  const r = await store.stream.request(type, { ...where(m), message: m.id, ...fields });
  emit(r.message.room ? "room.changed" : "changed", r.message);
  return r;
}

/** Adds or takes back the reader's `emoji` on `m`. */
export function react(m, emoji) {
  const mine = m.reactions?.some((r) => r.emoji === emoji && r.users.includes(store.me.username));
  return guard(() => change("message.react", m, { emoji, add: !mine }));
}

function reactions(m) {
  if (!m.reactions?.length) return null;
  return h("div", { class: "reactions" }, m.reactions.map((r) => {
    const mine = r.users.includes(store.me.username);
    return h("button", { type: "button", class: `reaction${mine ? " mine" : ""}`, title: r.users.map(displayName).join(", "),
      "aria-pressed": String(mine), "aria-label": `${r.emoji} ${r.count}`, onclick: () => react(m, r.emoji) }, `${r.emoji} ${r.count}`);
  }));
}

/** Opens the emoji picker (loaded on first use) at `anchor`; `pick(emoji)` gets the choice. */
export async function pickEmoji(anchor, pick) {
  const { emojiPicker } = await import("./emoji.js");
  emojiPicker(anchor, pick);
}

/** The body of text message `m`: quote, text, attachments, marks and reactions. `actions`
 * ({onReply}) adds the message's menu. */
export function messageBody(m, actions = null) {
  if (m.deleted_at) return [h("div", { class: "msg-text deleted" }, h("em", {}, "This message was deleted."))];
  const quote = m.quote
    ? h("blockquote", { class: "quote", dataset: { quote: m.quote.id } }, h("b", {}, displayName(m.quote.from)), " ",
      h("span", { dir: "auto" }, m.quote.text ?? "(deleted)"))
    : m.reply_to ? h("blockquote", { class: "quote" }, "Reply to an earlier message") : null;
  const mentioned = m.mentions?.includes(store.me?.username) && m.from !== store.me?.username;
  return [
    quote,
    m.text ? h("div", { class: `msg-text${mentioned ? " mentions-me" : ""}`, dir: "auto" }, richText(m.text)) : null,
    attachments(m.attachments),
    m.edited_at ? h("span", { class: "edited", title: new Date(m.edited_at).toLocaleString() }, "(edited)") : null,
    reactions(m),
    actions && m.id ? h("button", { type: "button", class: "msg-actions icon-btn", "aria-label": "Message actions", onclick: (e) => openActions(e.currentTarget, m, actions) }, "⋯") : null,
  ];
}

function openActions(anchor, m, { onReply }) {
  const mine = m.from === store.me.username;
  menu(anchor, [
    { label: "React…", data: { action: "react" }, onclick: () => pickEmoji(anchor, (emoji) => react(m, emoji)) },
    onReply ? { label: "Reply", data: { action: "reply" }, onclick: () => onReply(m) } : null,
    mine ? { label: "Edit", data: { action: "edit" }, onclick: () => editMessage(m) } : null,
    mine ? { label: "Delete", data: { action: "delete" }, danger: true, onclick: () => deleteMessage(m) } : null,
  ].filter(Boolean));
}

function editMessage(m) {
  formDialog("Edit message", () => h("textarea", { name: "text", class: "composer-input", rows: 4, value: m.text, "aria-label": "Message", dir: "auto", required: true }),
    async (form) => change("message.edit", m, { text: form.text.value.trim(), format: m.format || "plain" }));
}

function deleteMessage(m) {
  formDialog("Delete message", () => h("p", {}, "Delete this message for everyone? It shows as deleted."),
    async () => change("message.delete", m), "Delete");
}

/** The composer's extras: a reply bar and the files to send. `box` gets the bar; returns
 * {replyTo(m), files(), clear(), addFiles(fileList), take() -> {reply_to, attachments}}. */
export function composerExtras(bar, onChange = () => {}) {
  let reply = null;
  let files = [];
  const render = () => {
    bar.replaceChildren(
      reply ? h("div", { class: "reply-bar" }, "Replying to ", h("b", {}, displayName(reply.from)), ": ",
        h("span", { class: "reply-text", dir: "auto" }, (reply.text || "").slice(0, 120)),
        h("button", { type: "button", class: "icon-btn", "aria-label": "Cancel reply", onclick: () => { reply = null; render(); } }, "✕")) : null,
      ...files.map((f) => h("span", { class: "file-chip" }, f.uploading ? `Uploading ${f.name}…` : f.error ? `⚠ ${f.name}: ${f.error}` : `📎 ${f.name}`,
        h("button", { type: "button", class: "icon-btn", "aria-label": `Remove ${f.name}`, onclick: () => { files = files.filter((x) => x !== f); render(); } }, "✕"))));
    bar.hidden = !reply && !files.length;
    onChange();
  };
  render();
  return {
    replyTo(m) { reply = m; render(); },
    async addFiles(list) {
      for (const file of list) {
        const f = { name: file.name, uploading: true };
        files.push(f);
        render();
        try {
          const { uploadAttachment } = await import("./upload.js");
          const r = await uploadAttachment(file);
          Object.assign(f, { uploading: false, id: r.id });
        } catch (e) {
          Object.assign(f, { uploading: false, error: e.message });
        }
        render();
      }
    },
    busy: () => files.some((f) => f.uploading),
    hasFiles: () => files.some((f) => f.id),
    take() {
      const out = { reply_to: reply?.id, attachments: files.filter((f) => f.id).map((f) => f.id) };
      if (!out.reply_to) delete out.reply_to;
      if (!out.attachments.length) delete out.attachments;
      reply = null;
      files = [];
      render();
      return out;
    },
  };
}

/** An attach button and a drop target on `zone` feeding `extras`. */
export function attachControls(zone, extras) {
  const input = h("input", { type: "file", multiple: true, hidden: true, class: "attach-input", onchange: () => { extras.addFiles([...input.files]); input.value = ""; } });
  const button = h("button", { type: "button", class: "icon-btn attach", "aria-label": "Attach files", title: "Attach files", onclick: () => input.click() }, "📎");
  zone.addEventListener("dragover", (e) => { if (e.dataTransfer?.types?.includes("Files")) { e.preventDefault(); zone.classList.add("dropping"); } });
  zone.addEventListener("dragleave", () => zone.classList.remove("dropping"));
  zone.addEventListener("drop", (e) => {
    zone.classList.remove("dropping");
    if (!e.dataTransfer?.files?.length) return;
    e.preventDefault();
    extras.addFiles([...e.dataTransfer.files]);
  });
  return [input, button];
}
