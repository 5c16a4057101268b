// Compliance search (compliance role only; admins without it do not see it): search the
// compliance archive by words, user, conversation, room and date range, newest first; export
// the same filters as JSON Lines; the archive's status, read-only (docs/archiving.md).

import { get, getBlob, qs } from "../api.js";
import { displayName } from "../state.js";
import { field, guard, h, mount, toast } from "../util.js";
import { fmtDateTime, statusPanel } from "./archive-status.js";

const DAY = 86_400_000;

/** The query of the form: dates (UTC days) become ms; "until" includes its day. */
export function filters(form) {
  const day = (v) => (v ? Date.parse(`${v}T00:00:00Z`) : null);
  const until = day(form.until.value);
  return {
    q: form.q.value.trim(),
    user: form.user.value.trim(),
    conversation: form.conversation.value.trim(),
    room: form.room.value.trim(),
    since: day(form.since.value),
    until: until == null ? null : until + DAY,
  };
}

/** What happened, in words, for a record without text. */
function eventText(r) {
  const who = r.user ? displayName(r.user) : "";
  switch (r.event) {
    case "started": return `started the conversation with ${r.participants.map(displayName).join(", ")}`;
    case "joined": return r.user === r.from ? `${who} joined` : `added ${who}`;
    case "left": return r.user === r.from ? `${who} left` : `removed ${who}`;
    default: return r.event;
  }
}

const place = (r) => (r.room != null ? `Room ${r.room}` : `Conversation ${r.conversation}`);

const row = (r) => h("tr", { dataset: { record: r.id, event: r.event } },
  h("td", { class: "nowrap" }, h("time", { datetime: new Date(r.at).toISOString() }, fmtDateTime(r.at))),
  h("td", { class: "nowrap" }, place(r), r.external ? h("span", { class: "tag warn" }, "external") : null,
    h("div", { class: "muted" }, r.participants.join(", "))),
  h("td", {}, h("b", {}, r.from)),
  h("td", { class: "record-text" }, r.event === "message" ? r.text ?? "" : h("i", { class: "muted" }, eventText(r))));

/** Renders the section into `root`. */
export function render(root) {
  const results = h("tbody");
  const summary = h("p", { class: "hint", id: "compliance-summary", role: "status" });
  const input = (name, attrs = {}) => h("input", { name, id: `compliance-${name}`, autocomplete: "off", ...attrs });
  const exportBtn = h("button", { class: "btn", type: "button", id: "compliance-export", onclick: () => exportJsonl() }, "Export JSONL");
  const form = h("form", { class: "panel panel-form", id: "compliance-form", "aria-label": "Search the archive" },
    h("div", { class: "form-grid" },
      field("Words (all must match; \"a phrase\", -word)", input("q", { type: "search" })),
      field("User", input("user", { placeholder: "username" })),
      field("Conversation", input("conversation", { type: "number", min: 1, step: 1 })),
      field("Room", input("room", { type: "number", min: 1, step: 1 })),
      field("Since (UTC day)", input("since", { type: "date" })),
      field("Until (UTC day, included)", input("until", { type: "date" })),
      field("At most", input("limit", { type: "number", min: 1, max: 1000, step: 1, value: 100 }))),
    h("div", { class: "form-actions start" },
      h("button", { class: "btn primary", type: "submit", id: "compliance-search" }, "Search"), exportBtn));

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const r = await guard(() => get(`/api/v1/archive/records${qs({ ...filters(form), limit: form.limit.value })}`));
    if (!r) return;
    const records = [...r.records].sort((a, b) => b.at - a.at || b.id - a.id);
    mount(summary, records.length ? `${records.length} record${records.length === 1 ? "" : "s"}, newest first.` : "No records match.");
    mount(results, records.map(row));
  });

  async function exportJsonl() {
    exportBtn.disabled = true;
    try {
      const blob = await guard(() => getBlob(`/api/v1/archive/export${qs(filters(form))}`));
      if (!blob) return;
      // The token goes in a header, so the file is fetched here and saved from a blob: URL.
      const url = URL.createObjectURL(blob);
      const a = h("a", { href: url, download: `halo-archive-${new Date().toISOString().slice(0, 10)}.jsonl`, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
      const lines = (await blob.text()).split("\n").filter(Boolean).length;
      mount(summary, `Exported ${lines} record${lines === 1 ? "" : "s"} (${blob.size} bytes).`);
      toast("Archive export downloaded");
    } finally {
      exportBtn.disabled = false;
    }
  }

  mount(root,
    h("h3", {}, "Compliance search"),
    h("p", { class: "hint" }, "Every search and export is logged with your name."),
    form, summary,
    h("div", { class: "table-wrap" }, h("table", { class: "table", id: "compliance-results" },
      h("thead", {}, h("tr", {}, h("th", {}, "Time"), h("th", {}, "Where"), h("th", {}, "From"), h("th", {}, "Text or event"))),
      results)),
    statusPanel());
  form.q.focus();
}
