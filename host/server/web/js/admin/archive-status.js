// The compliance archive's status (GET /api/v1/archive/status, admin or compliance), shown
// read-only by the Archiving and Compliance search sections: records kept, why messages are
// being refused (if they are), and each archive sink's cursor, backlog and health.

import { get } from "../api.js";
import { guard, h, mount } from "../util.js";

/** "3 h 20 min" for a number of seconds. */
export function fmtAge(secs) {
  if (secs < 60) return `${secs} s`;
  if (secs < 3600) return `${Math.floor(secs / 60)} min`;
  if (secs < 86400) return `${Math.floor(secs / 3600)} h ${Math.floor((secs % 3600) / 60)} min`;
  return `${Math.floor(secs / 86400)} d ${Math.floor((secs % 86400) / 3600)} h`;
}

/** A full local date and time, for the archive (where "today" is not enough). */
export function fmtDateTime(ms) {
  return new Date(ms).toLocaleString([], { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

const sinkRow = (s) => h("tr", { dataset: { sink: s.name } },
  h("td", {}, h("b", {}, s.name)),
  h("td", {}, s.enabled ? h("span", { class: "tag ok" }, "Enabled") : h("span", { class: "tag" }, "Disabled")),
  h("td", { class: "num" }, String(s.cursor)),
  h("td", { class: "num" }, String(s.depth)),
  h("td", {}, s.depth ? fmtAge(s.oldest_age_secs) : "—"),
  h("td", {}, s.failing_since ? h("span", { class: "tag danger" }, `Failing since ${fmtDateTime(s.failing_since)}`) : h("span", { class: "tag ok" }, "Healthy"),
    s.last_error ? h("div", { class: "muted sink-error" }, s.last_error) : null));

/** A status panel; `refresh()` on the returned element reloads it. */
export function statusPanel() {
  const body = h("div", { class: "archive-status-body" });
  const panel = h("section", { class: "panel", id: "archive-status", "aria-label": "Archive status" },
    h("div", { class: "admin-tools" }, h("h3", {}, "Status"),
      h("button", { class: "btn small", type: "button", id: "archive-status-refresh", onclick: () => panel.refresh() }, "Refresh")),
    body);
  panel.refresh = async () => {
    const st = await guard(() => get("/api/v1/archive/status"));
    if (!st) return;
    mount(body,
      st.blocking ? h("p", { class: "banner danger", id: "archive-blocking", role: "alert" },
        h("b", {}, "Messages of archived users are being refused: "), st.blocking) : null,
      h("p", {}, h("b", { id: "archive-records" }, String(st.records)), " records kept",
        h("span", { class: "muted" }, st.settings?.keep_days ? ` · kept ${st.settings.keep_days} days` : " · kept for ever",
          st.settings?.block_on_failure ? " · fail closed" : " · fail open")),
      st.sinks.length ? h("div", { class: "table-wrap" }, h("table", { class: "table", id: "archive-sinks" },
        h("thead", {}, h("tr", {}, ["Sink", "State", "Cursor", "Waiting", "Oldest waiting", "Health"].map((t) => h("th", {}, t)))),
        h("tbody", {}, st.sinks.map(sinkRow))))
        : h("p", { class: "hint" }, "No archive-sink plugins installed: the records are kept in the built-in archive only."));
  };
  panel.refresh();
  return panel;
}
