// Admin › Federation (admin role): which domains federate and how (an adapter plugin or a
// Halo peer), blocked domains, and how each link is doing: state, circuit breaker, last
// error, traffic and what waits in its queue (docs/federation.md).

import { del, get, put } from "../api.js";
import { confirmDialog, field, formDialog, guard, h, mount, toast } from "../util.js";
import { fmtDateTime } from "./archive-status.js";

const stateTag = (st) => {
  if (!st) return h("span", { class: "tag" }, "—");
  const cls = st.state === "up" ? "ok" : st.breaker === "open" ? "danger" : "";
  const text = st.state === "up" ? "Up" : st.state === "disabled" ? "Adapter disabled" : st.breaker === "open" ? "Down (breaker open)" : "Down";
  return h("span", { class: `tag ${cls}` }, text);
};

const row = (d, edit, remove) => h("tr", { dataset: { domain: d.domain } },
  h("td", {}, h("b", {}, d.domain === "*" ? "* (every other domain)" : d.domain)),
  h("td", {}, d.access === "block" ? h("span", { class: "tag danger" }, "Blocked") : d.adapter ? `Adapter ${d.adapter}` : d.url ? `Halo peer ${d.url}` : "—"),
  h("td", {}, d.access === "block" ? "—" : stateTag(d.status),
    d.status?.last_error ? h("div", { class: "muted sink-error" }, d.status.last_error) : null,
    d.status?.retry_at ? h("div", { class: "muted" }, `Next try ${fmtDateTime(d.status.retry_at)}`) : null),
  h("td", { class: "num" }, String(d.queued)),
  h("td", { class: "num" }, d.status ? `${d.status.sent} / ${d.status.received} / ${d.status.rejected}` : "—"),
  h("td", { class: "actions" },
    h("button", { class: "btn small", type: "button", dataset: { action: "change" }, onclick: () => edit(d) }, "Change"),
    h("button", { class: "btn small danger", type: "button", dataset: { action: "remove" }, onclick: () => remove(d.domain) }, "Remove")));

/** Renders the section into `root`. */
export function render(root) {
  const rows = h("tbody");
  const me = h("p", { class: "hint", id: "federation-domain" });

  const show = (o) => {
    mount(me, o.domain ? ["This server is ", h("b", {}, o.domain), " to Halo peers."]
      : "No [federation] domain is set in halo.toml: Halo peers need one; adapters name their own.");
    mount(rows, o.domains.length ? o.domains.map((d) => row(d, edit, remove))
      : h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No federated domains: users of other servers cannot be reached.")));
  };
  const load = async () => {
    const o = await guard(() => get("/api/v1/admin/federation"));
    if (o) show(o);
  };

  function edit(d) {
    formDialog(d ? `Federation with ${d.domain}` : "Federate with a domain", () => {
      const how = h("select", { name: "how", id: "federation-how" },
        h("option", { value: "adapter", selected: !d || Boolean(d.adapter) }, "Through an adapter plugin (XMPP, gateways)"),
        h("option", { value: "halo", selected: Boolean(d?.url) }, "A Halo server (signed HTTPS)"),
        h("option", { value: "block", selected: d?.access === "block" }, "Blocked"));
      const adapter = field("Adapter plugin", h("input", { name: "adapter", id: "federation-adapter", value: d?.adapter || "xmpp", autocomplete: "off" }));
      const peer = h("div", {},
        field("Peer URL", h("input", { name: "url", id: "federation-url", value: d?.url || "", placeholder: "https://halo.example.org:5271" })),
        field("Shared secret (16 bytes or more)", h("input", { name: "secret", id: "federation-secret", type: "password", autocomplete: "new-password" })),
        field("CA certificate file on the server (optional)", h("input", { name: "ca", id: "federation-ca", placeholder: "/etc/halo/peer-ca.pem" })));
      const sync = () => {
        adapter.hidden = how.value !== "adapter";
        peer.hidden = how.value !== "halo";
      };
      how.addEventListener("change", sync);
      queueMicrotask(sync);
      return [
        field("Domain (or * for every domain without its own rule)", h("input", { name: "domain", id: "federation-domain-name", required: true, value: d?.domain || "", readonly: Boolean(d), placeholder: "example.org" })),
        field("How", how), adapter, peer,
      ];
    }, async (form) => {
      const domain = form.domain.value.trim();
      const body = form.how.value === "block" ? { access: "block" }
        : form.how.value === "halo" ? { url: form.url.value.trim(), secret: form.secret.value, ca: form.ca.value.trim() || null }
        : { adapter: form.adapter.value.trim() };
      show(await put(`/api/v1/admin/federation/domains/${encodeURIComponent(domain)}`, body));
      toast(form.how.value === "block" ? `${domain} blocked` : `${domain} federated`);
    });
  }

  async function remove(domain) {
    if (!await confirmDialog(`Remove the rule for ${domain}?`, "Its users can no longer be reached, and what waits for it is dropped.", "Remove")) return;
    const ok = await guard(() => del(`/api/v1/admin/federation/domains/${encodeURIComponent(domain)}`));
    if (ok !== undefined) { toast(`Rule for ${domain} removed`); load(); }
  }

  mount(root,
    h("h3", {}, "Federation"),
    h("p", { class: "hint" }, "Users of other servers are name@domain: your users add them as contacts, see their presence and chat 1:1."),
    me,
    h("section", { class: "panel", "aria-label": "Federated domains" },
      h("div", { class: "admin-tools" }, h("h4", {}, "Domains"),
        h("button", { class: "btn small", type: "button", id: "federation-refresh", onclick: load }, "Refresh"),
        h("button", { class: "btn small primary", type: "button", id: "federation-add", onclick: () => edit(null) }, "Add domain")),
      h("div", { class: "table-wrap" }, h("table", { class: "table", id: "federation-domains" },
        h("thead", {}, h("tr", {}, ["Domain", "Route", "Link", "Queued", "Sent / received / refused", ""].map((t) => h("th", {}, t)))),
        rows))));
  load();
}
