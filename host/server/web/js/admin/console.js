// The admin console: a nav of sections, each its own module exporting `render(container)`.
// Each section names the role that may open it, and the nav shows only those the signed-in
// user holds (a compliance officer sees Compliance search, not Users). Adding a section
// is one entry here and one module beside this file. The console itself is loaded only when
// an admin or compliance officer opens it (app.js imports it dynamically), and each section's
// module only when it is shown, so other users never download any of it.

import { hasRole } from "../state.js";
import { h, mount } from "../util.js";

/** The sections, in nav order: id (the URL's `#/admin/<id>`), label, role, and the module
 * (loaded when first shown). */
export const SECTIONS = [
  { id: "users", label: "Users", role: "admin", load: () => import("./users.js") },
  { id: "plugins", label: "Plugins", role: "admin", load: () => import("./plugins.js") },
  { id: "archiving", label: "Archiving", role: "admin", load: () => import("./archiving.js") },
  { id: "federation", label: "Federation", role: "admin", load: () => import("./federation.js") },
  { id: "pool", label: "Pool", role: "admin", load: () => import("./pool.js") },
  { id: "compliance", label: "Compliance search", role: "compliance", load: () => import("./compliance.js") },
];

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
  let gone = false;
  if (current) {
    mount(body, h("p", { class: "empty" }, "Loading…"));
    current.load().then((module) => {
      if (gone) return;
      mount(body);
      dispose = module.render(body) || dispose;
    }).catch((e) => mount(body, h("p", { class: "form-error" }, `This section could not be loaded: ${e.message}`)));
  } else mount(body, h("p", { class: "empty" }, "You have no administrative role."));
  return { el, dispose: () => { gone = true; dispose(); } };
}
