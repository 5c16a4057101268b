// The admin console (admin role): a nav of sections, each its own module exporting
// `render(container)`. Adding a section (archiving, federation, ...) is one entry here and one
// module beside this file; a section may require a role other than `admin` (e.g. `compliance`).

import { hasRole } from "../state.js";
import { h, mount } from "../util.js";
import * as plugins from "./plugins.js";
import * as users from "./users.js";

/** The sections, in nav order: id (the URL's `#/admin/<id>`), label, role, module. */
export const SECTIONS = [
  { id: "users", label: "Users", role: "admin", module: users },
  { id: "plugins", label: "Plugins", role: "admin", module: plugins },
];

/** Whether the signed-in user may open some section. */
export function canAdmin() {
  return SECTIONS.some((s) => hasRole(s.role));
}

/** The console showing `sectionId`; returns {el, dispose}. */
export function adminView(sectionId) {
  const allowed = SECTIONS.filter((s) => hasRole(s.role));
  const current = allowed.find((s) => s.id === sectionId) || allowed[0];
  const body = h("div", { class: "admin-body" });
  const el = h("section", { class: "admin" },
    h("header", { class: "main-head" },
      h("a", { class: "icon-btn back", href: "#/", "aria-label": "Back" }, "‹"),
      h("div", { class: "head-text" }, h("h2", {}, "Administration")),
      h("nav", { class: "admin-nav", "aria-label": "Admin sections" },
        allowed.map((s) => h("a", { href: `#/admin/${s.id}`, class: s === current ? "current" : "", "aria-current": s === current ? "page" : null, dataset: { section: s.id } }, s.label)))),
    body);
  let dispose = () => {};
  if (current) dispose = current.module.render(body) || dispose;
  else mount(body, h("p", { class: "empty" }, "You have no administrative role."));
  return { el, dispose };
}
