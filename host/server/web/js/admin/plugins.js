// Admin › Plugins: install (inspect first: the requested capabilities, each granted only if
// ticked), enable / disable, the config form generated from the plugin's schema, upgrade with
// the permission diff, logs, health and per-plugin metrics, remove.

import { api, del, get, post, put, qs } from "../api.js";
import { confirmDialog, dialog, field, formDialog, guard, h, mount, toast } from "../util.js";

const CAPABILITY_TEXT = {
  kv: "key-value storage of its own (up to its quota)",
  log: "write to its log",
  config: "read its configuration",
};

const capText = (c) => CAPABILITY_TEXT[c] || c;
const fmtBytes = (n) => (n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(0)} KiB` : `${n} B`);

/** Renders the section into `root`. */
export function render(root) {
  const list = h("div", { class: "plugin-list", id: "plugin-list" });
  const upload = h("input", { type: "file", id: "plugin-file", accept: ".wasm,application/wasm", class: "file-input" });
  upload.addEventListener("change", () => {
    const file = upload.files?.[0];
    upload.value = "";
    if (file) install(file).then(reload);
  });

  const reload = async () => {
    const r = await guard(() => get("/api/v1/admin/plugins"));
    if (!r) return;
    mount(list, r.plugins.length ? r.plugins.map((p) => card(p, reload)) : h("p", { class: "empty" }, "No plugins installed."));
  };

  mount(root,
    h("div", { class: "admin-tools" }, h("h3", {}, "Plugins"),
      h("label", { class: "btn primary file-btn", id: "install-plugin" }, "Install plugin…", upload)),
    h("p", { class: "hint" }, "Plugins are WebAssembly components. Before installing, Halo shows what a plugin asks for; it gets only what you grant."),
    list);
  reload();
}

async function install(file) {
  const bytes = await file.arrayBuffer();
  const info = await guard(() => api("POST", "/api/v1/admin/plugins/inspect", bytes, "application/wasm"));
  if (!info) return;
  const m = info.manifest;
  if (info.installed) {
    toast(`${m.name} is installed already: use Upgrade on its card.`, "error");
    return;
  }
  await formDialog(`Install ${m.name} ${m.version}`, () => [
    h("p", {}, m.description || ""),
    h("dl", { class: "facts" }, h("dt", {}, "Kind"), h("dd", {}, m.kind), h("dt", {}, "API"), h("dd", {}, m.api), h("dt", {}, "SHA-256"), h("dd", { class: "mono" }, info.sha256.slice(0, 16) + "…")),
    grantChoices(m.capabilities, []),
    h("label", { class: "check" }, h("input", { type: "checkbox", name: "enabled", checked: true }), " Enable it now"),
  ], async (form) => {
    const grant = granted(form);
    const p = await api("POST", `/api/v1/admin/plugins${qs({ grant: grant.join(","), enabled: form.enabled.checked })}`, bytes, "application/wasm");
    toast(`${p.name} ${p.version} installed${p.enabled ? " and enabled" : ""}`);
  }, "Install");
}

function grantChoices(requested, already, added = []) {
  if (!requested.length) return h("p", { class: "hint", id: "plugin-capabilities" }, "It asks for no capabilities beyond its log and config.");
  return h("fieldset", { class: "checks", id: "plugin-capabilities" }, h("legend", {}, "It asks for these capabilities — grant:"),
    requested.map((c) => h("label", {}, h("input", { type: "checkbox", name: `cap-${c}`, dataset: { cap: c }, checked: already.includes(c) }), " ",
      h("b", {}, c), ` — ${capText(c)}`, added.includes(c) ? h("span", { class: "tag warn" }, "new") : null)));
}

function granted(form) {
  return [...form.querySelectorAll("input[data-cap]")].filter((i) => i.checked).map((i) => i.dataset.cap);
}

function card(p, reload) {
  const s = p.status || {};
  const action = (label, fn, cls = "btn small", data = {}) => h("button", { class: cls, type: "button", dataset: data, onclick: () => guard(fn).then(reload) }, label);
  const state = p.load_error ? h("span", { class: "tag danger" }, "Failed to load")
    : p.enabled ? (s.disabled ? h("span", { class: "tag warn" }, `Disabled: ${s.disabled}`) : h("span", { class: "tag ok" }, "Enabled"))
      : h("span", { class: "tag" }, "Disabled");
  const upgradeInput = h("input", { type: "file", accept: ".wasm,application/wasm", class: "file-input" });
  upgradeInput.addEventListener("change", () => {
    const f = upgradeInput.files?.[0];
    upgradeInput.value = "";
    if (f) upgrade(p, f).then(reload);
  });
  return h("article", { class: "plugin-card", dataset: { plugin: p.name, enabled: String(p.enabled) } },
    h("header", {}, h("h4", {}, p.name, " ", h("span", { class: "muted" }, p.version)), state),
    h("p", {}, p.description),
    p.load_error ? h("p", { class: "form-error" }, p.load_error) : null,
    h("dl", { class: "facts" },
      h("dt", {}, "Kind"), h("dd", {}, `${p.kind} (${p.api})`),
      h("dt", {}, "Capabilities"), h("dd", {}, p.requested.length ? p.requested.map((c) => `${c}${p.granted.includes(c) ? " ✓" : " (denied)"}`).join(", ") : "none"),
      h("dt", {}, "Calls"), h("dd", { class: "metrics" }, `${s.calls ?? 0} calls · ${s.errors ?? 0} errors · ${s.traps ?? 0} traps · ${fmtBytes(s.memory_bytes ?? 0)} memory`),
      p.states?.length ? [h("dt", {}, "States"), h("dd", {}, p.states.map((st) => h("span", { class: "state-chip" }, h("span", { class: "dot", style: { "--c": st.colour } }), st.labels?.en || st.id)))] : null),
    h("div", { class: "card-actions" },
      p.enabled ? action("Disable", () => post(`/api/v1/admin/plugins/${p.name}/disable`), "btn small", { action: "disable" })
        : action("Enable", () => post(`/api/v1/admin/plugins/${p.name}/enable`), "btn small primary", { action: "enable" }),
      h("button", { class: "btn small", type: "button", dataset: { action: "config" }, onclick: () => configure(p).then(reload) }, "Configure"),
      h("label", { class: "btn small file-btn" }, "Upgrade…", upgradeInput),
      h("button", { class: "btn small", type: "button", dataset: { action: "logs" }, onclick: () => logs(p) }, "Logs"),
      h("button", { class: "btn small danger", type: "button", dataset: { action: "remove" }, onclick: async () => {
        if (await confirmDialog(`Remove ${p.name}?`, "Its configuration and storage are deleted.", "Remove")) await guard(() => del(`/api/v1/admin/plugins/${p.name}`));
        reload();
      } }, "Remove")));
}

/** The config form, generated from the schema: a checkbox for booleans, a number field for
 * integers, a text area for long or JSON strings. */
function configure(p) {
  const schema = p.schema || {};
  const keys = Object.keys(schema);
  return formDialog(`Configure ${p.name}`, () => keys.length ? keys.map((k) => {
    const f = schema[k];
    const value = p.config[k] ?? f.default ?? "";
    let input;
    if (f.type === "boolean") input = h("input", { type: "checkbox", name: k, checked: value === "true" });
    else if (f.type === "integer") input = h("input", { type: "number", step: 1, name: k, value, required: f.required });
    else if (value.length > 40 || /^[[{]/.test(value)) input = h("textarea", { name: k, rows: 5, class: "mono", value, required: f.required });
    else input = h("input", { name: k, value, required: f.required });
    return h("label", { class: "field", dataset: { key: k } }, h("span", {}, k, f.description ? h("small", {}, ` — ${f.description}`) : null), input);
  }) : h("p", {}, "This plugin has no settings."), async (form) => {
    const config = {};
    for (const k of keys) {
      const el = form.elements[k];
      config[k] = schema[k].type === "boolean" ? String(el.checked) : el.value;
      // A JSON value (by its description or its default) is checked here, so a typo is shown
      // in the dialog instead of being saved and turning up only in the plugin's log.
      if (isJsonField(schema[k]) && config[k].trim()) {
        try { JSON.parse(config[k]); } catch (e) {
          el.focus();
          throw new Error(`${k} is not valid JSON: ${e.message}`);
        }
      }
    }
    await put(`/api/v1/admin/plugins/${p.name}/config`, config);
    toast(`${p.name} configured`);
  });
}

/** Whether a config field holds JSON: its description says so, or its default is a JSON
 * list or object. */
function isJsonField(f) {
  if (/^JSON\b/.test(f.description || "")) return true;
  return /^\s*[[{]/.test(f.default || "");
}

async function upgrade(p, file) {
  const bytes = await file.arrayBuffer();
  const info = await guard(() => api("POST", "/api/v1/admin/plugins/inspect", bytes, "application/wasm"));
  if (!info) return;
  const m = info.manifest;
  if (m.name !== p.name) { toast(`That component is ${m.name}, not ${p.name}.`, "error"); return; }
  const added = m.capabilities.filter((c) => !p.requested.includes(c));
  const removed = p.requested.filter((c) => !m.capabilities.includes(c));
  await formDialog(`Upgrade ${p.name} ${p.version} → ${m.version}`, () => [
    h("div", { class: "diff" },
      added.length ? h("p", {}, "Newly requested: ", h("b", {}, added.join(", "))) : h("p", {}, "No new capabilities requested."),
      removed.length ? h("p", {}, "No longer requested: ", removed.join(", ")) : null),
    grantChoices(m.capabilities, p.granted.filter((c) => m.capabilities.includes(c)), added),
  ], async (form) => {
    const r = await api("PUT", `/api/v1/admin/plugins/${p.name}?grant=${encodeURIComponent(granted(form).join(","))}`, bytes, "application/wasm");
    toast(`${p.name} upgraded to ${r.plugin.version}`);
  }, "Upgrade");
}

async function logs(p) {
  const r = await guard(() => get(`/api/v1/admin/plugins/${p.name}/logs`));
  if (!r) return;
  dialog(`${p.name} log`, h("div", { class: "form" },
    r.dropped ? h("p", { class: "hint" }, `${r.dropped} lines dropped by the flood limit.`) : null,
    h("pre", { class: "log" }, r.lines.length ? r.lines.map((l) => `${new Date(l.at_ms).toISOString()} ${l.level.toUpperCase().padEnd(5)} ${l.message}\n`).join("") : "No log lines.")));
}
