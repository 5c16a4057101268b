// Admin › Users: the accounts, page by page, searchable; create, edit, disable / enable, reset
// a password, delete.

import { del, get, patch, post, put, qs } from "../api.js";
import { store } from "../state.js";
import { confirmDialog, debounce, field, formDialog, guard, h, mount, onInput, toast } from "../util.js";

/** Renders the section into `root`. */
export function render(root) {
  const table = h("tbody");
  const more = h("button", { class: "btn", type: "button", hidden: true }, "Load more");
  let next = null;

  const row = (u) => h("tr", { dataset: { user: u.username } },
    h("td", {}, h("b", {}, u.display_name), h("div", { class: "muted" }, u.username)),
    h("td", { class: "col-email" }, u.email || ""),
    h("td", {}, u.roles.filter((r) => r !== "user").join(", ") || "user"),
    h("td", {}, u.disabled ? h("span", { class: "tag danger" }, "Disabled") : h("span", { class: "tag ok" }, "Active")),
    h("td", { class: "actions" },
      h("button", { class: "btn small", type: "button", dataset: { action: "edit" }, onclick: () => edit(u) }, "Edit"),
      h("button", { class: "btn small", type: "button", dataset: { action: "password" }, onclick: () => resetPassword(u) }, "Reset password"),
      u.username === store.me.username ? null
        : h("button", { class: "btn small danger", type: "button", dataset: { action: "delete" }, onclick: () => remove(u) }, "Delete"),
      u.username === store.me.username ? null
        : h("button", { class: `btn small${u.disabled ? "" : " danger"}`, type: "button", dataset: { action: u.disabled ? "enable" : "disable" }, onclick: () => toggle(u) }, u.disabled ? "Enable" : "Disable")));

  const load = async (reset) => {
    const page = await guard(() => get(`/api/v1/users${qs({ after: reset ? null : next, limit: 100, q: search.value.trim() })}`));
    if (!page) return;
    if (reset) mount(table);
    table.append(...page.users.map(row));
    next = page.next;
    more.hidden = !next;
  };
  const reload = () => load(true);
  const search = h("input", { type: "search", class: "search", id: "user-search", placeholder: "Search name, e-mail, department", "aria-label": "Search users" });
  onInput(search, debounce(reload, 250));

  function edit(u) {
    const input = (name, label, type = "text") => field(label, h("input", { name, type, value: u[name] || "", maxlength: 200 }));
    formDialog(`Edit ${u.username}`, () => [
      input("display_name", "Display name"), input("email", "E-mail", "email"), input("title", "Title"), input("department", "Department"), input("phone", "Phone", "tel"),
      h("fieldset", { class: "checks" }, h("legend", {}, "Roles"),
        h("label", {}, h("input", { type: "checkbox", name: "admin", checked: u.roles.includes("admin") }), " Administrator"),
        h("label", {}, h("input", { type: "checkbox", name: "compliance", checked: u.roles.includes("compliance") }), " Compliance officer")),
    ], async (form) => {
      const body = { roles: ["admin", "compliance"].filter((r) => form[r].checked) };
      for (const k of ["display_name", "email", "title", "department", "phone"]) if (form[k].value !== (u[k] || "")) body[k] = form[k].value;
      await patch(`/api/v1/users/${u.username}`, body);
      toast(`${u.username} saved`);
      await reload();
    });
  }

  async function remove(u) {
    if (!await confirmDialog(`Delete ${u.username}?`, "The account and its sessions are deleted; the name is retired and cannot be given out again. Their messages stay for the others and for compliance.", "Delete")) return;
    await guard(async () => {
      await del(`/api/v1/users/${u.username}`);
      toast(`${u.username} deleted`);
      await reload();
    });
  }

  async function toggle(u) {
    await guard(async () => {
      await post(`/api/v1/users/${u.username}/${u.disabled ? "enable" : "disable"}`);
      toast(`${u.username} ${u.disabled ? "enabled" : "disabled"}`);
      await reload();
    });
  }

  function resetPassword(u) {
    formDialog(`New password for ${u.username}`, () => [
      h("p", { class: "hint" }, "Their sessions end; tell them the new password."),
      field("Password (at least 8 characters)", h("input", { name: "password", type: "password", required: true, minlength: 8, autocomplete: "new-password" })),
    ], async (form) => {
      await put(`/api/v1/users/${u.username}/password`, { password: form.password.value });
      toast(`Password of ${u.username} reset`);
    }, "Reset password");
  }

  function create() {
    formDialog("New user", () => [
      field("Username", h("input", { name: "username", id: "new-username", required: true, maxlength: 64, autocomplete: "off", pattern: "[a-zA-Z0-9][a-zA-Z0-9._\\-]*" })),
      field("Display name", h("input", { name: "display_name", id: "new-display-name", maxlength: 128 })),
      field("E-mail", h("input", { name: "email", type: "email" })),
      field("Password (at least 8 characters)", h("input", { name: "password", id: "new-password", type: "password", required: true, minlength: 8, autocomplete: "new-password" })),
      h("fieldset", { class: "checks" }, h("legend", {}, "Roles"),
        h("label", {}, h("input", { type: "checkbox", name: "admin" }), " Administrator"),
        h("label", {}, h("input", { type: "checkbox", name: "compliance" }), " Compliance officer")),
    ], async (form) => {
      const roles = ["admin", "compliance"].filter((r) => form[r].checked);
      const body = { username: form.username.value.trim(), password: form.password.value, roles };
      if (form.display_name.value.trim()) body.display_name = form.display_name.value.trim();
      if (form.email.value.trim()) body.email = form.email.value.trim();
      await post("/api/v1/users", body);
      toast(`User ${body.username} created`);
      await reload();
    }, "Create user");
  }

  more.addEventListener("click", () => load(false));
  mount(root,
    h("div", { class: "admin-tools" }, h("h3", {}, "Users"), search, h("button", { class: "btn primary", type: "button", id: "create-user", onclick: create }, "New user")),
    h("div", { class: "table-wrap" }, h("table", { class: "table cards", id: "users-table" },
      h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", { class: "col-email" }, "E-mail"), h("th", {}, "Roles"), h("th", {}, "Status"), h("th", {}, ""))),
      table)),
    more);
  reload();
}
