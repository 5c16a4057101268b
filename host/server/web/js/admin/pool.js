// Admin › Pool (admin role): the nodes of the pool this server belongs to (halo serve
// --cluster), their users and sockets, which node runs each presence group and the
// once-per-pool tasks, and JetStream's health (docs/pool.md). Refreshed every five seconds.

import { get } from "../api.js";
import { guard, h, mount } from "../util.js";
import { fmtDateTime } from "./archive-status.js";

const nodeRow = (n, self) => h("tr", { dataset: { node: n.node } },
  h("td", {}, h("b", {}, n.node), n.node === self ? h("span", { class: "tag" }, "this node") : null),
  h("td", {}, n.http || "—"),
  h("td", { class: "num" }, String(n.users)),
  h("td", { class: "num" }, String(n.endpoints)),
  h("td", {}, n.groups.length ? n.groups.join(", ") : "—"),
  h("td", {}, n.tasks.length ? n.tasks.join(", ") : "—"),
  h("td", {}, n.nats_server || "—"),
  h("td", {}, fmtDateTime(n.started_at)));

/** Renders the section into `root`; returns its disposer. */
export function render(root) {
  const head = h("p", { class: "hint", id: "pool-summary" });
  const rows = h("tbody");
  const moving = h("p", { class: "muted", id: "pool-moving" });
  const show = (s) => {
    if (!s.pooled) {
      mount(head, "This server is standalone: start it with halo serve --cluster nats://… to make it a pool member.");
      mount(rows, []);
      mount(moving, "");
      return;
    }
    const js = s.jetstream === "ok" ? h("span", { class: "tag ok" }, "JetStream ok") : h("span", { class: "tag danger" }, `JetStream: ${s.jetstream}`);
    mount(head, ["Pool ", h("b", {}, s.pool), ` seen from ${s.node}: ${s.nodes.length} node(s), R${s.replicas}, ${s.jetstream_streams} streams, ${Math.round(s.jetstream_bytes / 1024)} KiB `, js]);
    mount(rows, s.nodes.map((n) => nodeRow(n, s.node)));
    const free = s.groups.filter((g) => g === null).length;
    mount(moving, free ? `${free} presence group(s) are moving to another node.` : `${s.groups.length} presence groups, each on one node.`);
  };
  const load = async () => {
    const s = await guard(() => get("/api/v1/admin/pool"));
    if (s) show(s);
  };
  mount(root, [
    h("h3", {}, "Pool"),
    head,
    h("div", { class: "table-wrap" }, h("table", { class: "table", id: "pool-nodes" },
      h("thead", {}, h("tr", {}, ["Node", "Address", "Users", "Sockets", "Presence groups", "Tasks", "NATS server", "Started"].map((t) => h("th", {}, t)))),
      rows)),
    moving,
  ]);
  load();
  const timer = setInterval(load, 5000);
  return () => clearInterval(timer);
}
