// The admin console: a nav of sections, each its own module exporting `render(container)`.
// Each section names the role that may open it, and the nav shows only those the signed-in
// user holds (a compliance officer sees Compliance search, not Users). Adding a section
// is one entry here and one module beside this file.

import { hasRole } from "../state.js";
import { h, mount } from "../util.js";
import * as archiving from "./archiving.js";
import * as compliance from "./compliance.js";
import * as federation from "./federation.js";
import * as plugins from "./plugins.js";
import * as pool from "./pool.js";
import * as users from "./users.js";

/** The sections, in nav order: id (the URL's `#/admin/<id>`), label, role, module. */
export const SECTIONS = [
  { id: "users", label: "Users", role: "admin", module: users },
  { id: "plugins", label: "Plugins", role: "admin", module: plugins },
  { id: "archiving", label: "Archiving", role: "admin", module: archiving },
  { id: "federation", label: "Federation", role: "admin", module: federation },
  { id: "pool", label: "Pool", role: "admin", module: pool },
  { id: "compliance", label: "Compliance search", role: "compliance", module: compliance },
];

/** Whether the signed-in user may open some section. */
export function canAdmin() {
  return SECTIONS.some((s) => hasRole(s.role));
}

/** The console's entry: the first section the signed-in user may open (or null). */
export function firstSection() {
  return SECTIONS.find((s) => hasRole(s.role))?.id ?? null;
}

/** The console showing `sectionId`; returns {el, dispose}. */
export function adminView(sectionId) {
  const allowed = SECTIONS.filter((s) => hasRole(s.role));
  const current = allowed.find((s) => s.id === sectionId) || allowed[0];
  const body = h("div", { class: "admin-body" });
  const el = h("section", { class: "admin" },
    h("header", { class: "main-head" },
      h("a", { class: "icon-btn back", href: "#/", "aria-label": "Back" }, "‹"),
      h("div", { class: "head-text" }, h("h2", {}, hasRole("admin") ? "Administration" : "Compliance")),
      h("nav", { class: "admin-nav", "aria-label": "Admin sections" },
        allowed.map((s) => h("a", { href: `#/admin/${s.id}`, class: s === current ? "current" : "", "aria-current": s === current ? "page" : null, dataset: { section: s.id } }, s.label)))),
    body);
  let dispose = () => {};
  if (current) dispose = current.module.render(body) || dispose;
  else mount(body, h("p", { class: "empty" }, "You have no administrative role."));
  return { el, dispose };
}
