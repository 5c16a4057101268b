// Admin › Archiving (admin role): the global and per-user archiving policies, the settings
// (fail closed, thresholds, retention), the archive's status and "Purge now"
// (docs/archiving.md). Admins manage the policy but read no records here.

import { del, get, post, put, qs } from "../api.js";
import { confirmDialog, debounce, field, formDialog, guard, h, mount, onInput, toast } from "../util.js";
import { fmtDateTime, statusPanel } from "./archive-status.js";

/** What a policy archives, in words. */
export function describe(p) {
  if (p.internal && p.external) return "Internal and external";
  if (p.internal) return "Internal only";
  if (p.external) return "External only";
  return "Off";
}

const check = (name, label, checked, id) => h("label", { class: "check" }, h("input", { type: "checkbox", name, id, checked }), " ", label);

const policyChecks = (p) => [
  check("internal", "Internal conversations and rooms (only this server's users)", p.internal),
  check("external", "External conversations (a federated participant)", p.external),
];

const policyOf = (form) => ({ internal: form.internal.checked, external: form.external.checked });

/** Renders the section into `root`. */
export function render(root) {
  const globalForm = h("form", { class: "panel-form", id: "archive-global" });
  const users = h("tbody");
  const settingsForm = h("form", { class: "panel-form", id: "archive-settings" });
  const report = h("p", { class: "hint", id: "purge-report", role: "status" });
  const status = statusPanel();

  const showPolicy = (view) => {
    mount(globalForm,
      h("p", {}, "Applies to everyone without a policy of their own: ",
        h("b", { id: "archive-global-summary" }, describe(view.global))),
      check("internal", "Archive internal conversations and rooms", view.global.internal, "archive-global-internal"),
      check("external", "Archive external conversations (federated participants)", view.global.external, "archive-global-external"),
      h("div", {}, h("button", { class: "btn primary", type: "submit", id: "archive-global-save" }, "Save global policy")));
    const entries = Object.entries(view.users);
    mount(users, entries.length ? entries.map(([user, p]) => h("tr", { dataset: { user } },
      h("td", {}, h("b", {}, user)),
      h("td", {}, describe(p)),
      h("td", { class: "actions" },
        h("button", { class: "btn small", type: "button", dataset: { action: "change" }, onclick: () => editUser(user, p) }, "Change"),
        h("button", { class: "btn small danger", type: "button", dataset: { action: "remove" }, onclick: () => removeUser(user) }, "Remove"))))
      : h("tr", {}, h("td", { colspan: 3, class: "muted" }, "No per-user policies: the global policy applies to everyone.")));
  };

  const loadPolicy = async () => {
    const view = await guard(() => get("/api/v1/admin/archive/policy"));
    if (view) showPolicy(view);
  };

  globalForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const view = await guard(() => put("/api/v1/admin/archive/policy", { global: policyOf(globalForm) }));
    if (!view) return;
    showPolicy(view);
    toast(`Global archiving policy saved: ${describe(view.global).toLowerCase()}`);
    status.refresh();
  });

  function editUser(user, p) {
    const list = h("datalist", { id: "archive-user-options" });
    formDialog(user ? `Archiving policy of ${user}` : "Per-user archiving policy", () => {
      const input = h("input", { name: "user", id: "archive-user", required: true, autocomplete: "off", list: "archive-user-options", value: user || "", readonly: Boolean(user), placeholder: "Username" });
      // The picker: directory matches as the admin types.
      onInput(input, debounce(async () => {
        const q = input.value.trim();
        if (!q || user) return;
        const r = await get(`/api/v1/directory${qs({ q })}`).catch(() => null);
        if (r) mount(list, r.people.map((x) => h("option", { value: x.username }, x.display_name)));
      }, 200));
      return [
        field("User", input), list,
        h("p", { class: "hint" }, "A user's own policy wins over the global one; it covers their conversations both ways."),
        h("fieldset", { class: "checks" }, h("legend", {}, "Archive"), policyChecks(p || { internal: true, external: true })),
      ];
    }, async (form) => {
      const name = form.user.value.trim();
      const view = await put(`/api/v1/admin/archive/policy/${encodeURIComponent(name)}`, policyOf(form));
      showPolicy(view);
      toast(`Archiving policy of ${name} saved`);
    });
  }

  async function removeUser(user) {
    if (!await confirmDialog(`Remove the policy of ${user}?`, "The global policy applies to them again.", "Remove")) return;
    const view = await guard(() => del(`/api/v1/admin/archive/policy/${encodeURIComponent(user)}`));
    if (view) { showPolicy(view); toast(`Policy of ${user} removed`); }
  }

  const showSettings = (s) => mount(settingsForm,
    check("block_on_failure", "Fail closed: refuse messages of archived users while archiving is failing", s.block_on_failure, "archive-block"),
    h("div", { class: "form-grid" },
      field("A sink failing this long counts as failing (seconds)", h("input", { type: "number", name: "block_after_secs", min: 1, step: 1, required: true, value: s.block_after_secs })),
      field("A sink this many records behind counts as failing", h("input", { type: "number", name: "block_backlog", min: 1, step: 1, required: true, value: s.block_backlog })),
      field("Keep records for (days; 0: for ever)", h("input", { type: "number", name: "keep_days", id: "archive-keep-days", min: 0, max: 36500, step: 1, required: true, value: s.keep_days }))),
    h("div", {}, h("button", { class: "btn primary", type: "submit", id: "archive-settings-save" }, "Save settings")));

  settingsForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = settingsForm;
    const body = { block_on_failure: f.block_on_failure.checked, block_after_secs: Number(f.block_after_secs.value), block_backlog: Number(f.block_backlog.value), keep_days: Number(f.keep_days.value) };
    const s = await guard(() => put("/api/v1/admin/archive/settings", body));
    if (!s) return;
    showSettings(s);
    toast("Archiving settings saved");
    status.refresh();
  });

  const hours = h("input", { type: "number", id: "purge-hours", min: 0, step: 1, placeholder: "keep_days", "aria-label": "Purge records older than (hours)" });
  async function purge() {
    const n = hours.value.trim();
    const what = n ? `records older than ${n} hours` : "records older than the retention period";
    if (!await confirmDialog("Purge the archive now?", `This removes ${what} that every sink has stored. It cannot be undone.`, "Purge")) return;
    const r = await guard(() => post("/api/v1/admin/archive/purge", n ? { older_than_hours: Number(n) } : {}));
    if (!r) return;
    mount(report, r.before == null ? "Nothing purged: records are kept for ever (set a retention period or give hours)."
      : `${r.purged} records purged, ${r.held} held back for sinks that have not stored them yet (cutoff ${fmtDateTime(r.before)}).`);
    status.refresh();
  }

  mount(root,
    h("h3", {}, "Archiving"),
    h("p", { class: "hint" }, "Compliance archiving keeps the IM of archived users where they cannot touch it; compliance officers search and export it."),
    h("section", { class: "panel", "aria-label": "Global policy" }, h("h4", {}, "Global policy"), globalForm),
    h("section", { class: "panel", "aria-label": "Per-user policies" },
      h("div", { class: "admin-tools" }, h("h4", {}, "Per-user policies"),
        h("button", { class: "btn small", type: "button", id: "archive-add-user", onclick: () => editUser(null, null) }, "Add user policy")),
      h("div", { class: "table-wrap" }, h("table", { class: "table", id: "archive-users" },
        h("thead", {}, h("tr", {}, h("th", {}, "User"), h("th", {}, "Archived"), h("th", {}, ""))), users))),
    h("section", { class: "panel", "aria-label": "Settings" }, h("h4", {}, "Settings"), settingsForm),
    status,
    h("section", { class: "panel", "aria-label": "Retention" }, h("h4", {}, "Retention"),
      h("div", { class: "inline-form" }, hours,
        h("button", { class: "btn danger", type: "button", id: "purge-now", onclick: purge }, "Purge now")),
      h("p", { class: "hint" }, "Leave hours empty to apply the retention setting. Records a sink has not stored yet are held back."),
      report));
  loadPolicy();
  guard(() => get("/api/v1/admin/archive/settings")).then((s) => s && showSettings(s));
}
