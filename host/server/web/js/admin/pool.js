// Admin › Pool (admin role): the nodes of the pool this server belongs to (halo serve
// --cluster), their users and sockets, which node runs each presence group and the
// once-per-pool tasks, how far each node's IM log and the once-per-pool consumers are
// behind, and JetStream's health: each stream's and bucket's replicas, leader and replica
// lag (docs/pool.md). Refreshed every five seconds.

import { get } from "../api.js";
import { guard, h, mount } from "../util.js";
import { fmtDateTime } from "./archive-status.js";

const behind = (n) => n ? h("span", { class: "tag warn" }, `${n} behind`) : h("span", { class: "tag ok" }, "current");

// The followers of a node's log copy that are behind it ("search 3"), or "—".
const followers = (log) => {
  const late = Object.entries(log.followers || {}).filter(([, n]) => n > 0);
  return late.length ? late.map(([f, n]) => `${f} ${n}`).join(", ") : "—";
};

const nodeRow = (n, self) => h("tr", { dataset: { node: n.node } },
  h("td", {}, h("b", {}, n.node), n.node === self ? h("span", { class: "tag" }, "this node") : null),
  h("td", {}, n.http || "—"),
  h("td", { class: "num" }, String(n.users)),
  h("td", { class: "num" }, String(n.endpoints)),
  h("td", {}, n.groups.length ? n.groups.join(", ") : "—"),
  h("td", {}, n.tasks.length ? n.tasks.join(", ") : "—"),
  h("td", { class: "num" }, String(n.log ? n.log.applied : 0), " ", behind(n.log ? n.log.behind : 0)),
  h("td", {}, n.log ? followers(n.log) : "—"),
  h("td", {}, n.nats_server || "—"),
  h("td", {}, fmtDateTime(n.started_at)));

const consumerRow = (c) => h("tr", { dataset: { consumer: c.name } },
  h("td", {}, c.task),
  h("td", {}, h("b", {}, c.name), c.enabled ? null : h("span", { class: "tag" }, "disabled")),
  h("td", {}, c.node || h("span", { class: "tag warn" }, "moving")),
  h("td", { class: "num" }, String(c.cursor)),
  h("td", { class: "num" }, String(c.newest)),
  h("td", {}, behind(c.behind)));

const peer = (p) => p.offline ? h("span", { class: "tag danger" }, `${p.server} offline`)
  : p.current ? h("span", { class: "tag ok" }, p.server)
    : h("span", { class: "tag warn" }, `${p.server} ${p.lag} behind`);

const streamRow = (st) => h("tr", { dataset: { stream: st.name } },
  h("td", {}, st.name),
  h("td", { class: "num" }, `R${st.replicas}`),
  h("td", {}, st.leader || h("span", { class: "tag danger" }, "no leader")),
  h("td", { class: "num" }, String(st.messages)),
  h("td", { class: "num" }, `${Math.round(st.bytes / 1024)} KiB`),
  h("td", {}, st.peers.length ? st.peers.flatMap((p, i) => (i ? [" ", peer(p)] : [peer(p)])) : "—"));

const table = (id, heads, body) => h("div", { class: "table-wrap" }, h("table", { class: "table", id },
  h("thead", {}, h("tr", {}, heads.map((t) => h("th", {}, t)))), body));

/** Renders the section into `root`; returns its disposer. */
export function render(root) {
  const head = h("p", { class: "hint", id: "pool-summary" });
  const rows = h("tbody");
  const moving = h("p", { class: "muted", id: "pool-moving" });
  const consumers = h("tbody");
  const streams = h("tbody");
  const streamsNote = h("p", { class: "muted", id: "pool-streams-note" });
  const show = (s) => {
    if (!s.pooled) {
      mount(head, "This server is standalone: start it with halo serve --cluster nats://… to make it a pool member.");
      mount(rows, []);
      mount(moving, "");
      mount(consumers, []);
      mount(streams, []);
      mount(streamsNote, "");
      return;
    }
    const js = s.jetstream === "ok" ? h("span", { class: "tag ok" }, "JetStream ok") : h("span", { class: "tag danger" }, `JetStream: ${s.jetstream}`);
    mount(head, ["Pool ", h("b", {}, s.pool), ` seen from ${s.node}: ${s.nodes.length} node(s), R${s.replicas}, ${s.jetstream_streams} streams, ${Math.round(s.jetstream_bytes / 1024)} KiB, IM stream at ${s.im_last || 0} `, js]);
    mount(rows, s.nodes.map((n) => nodeRow(n, s.node)));
    mount(consumers, (s.consumers || []).map(consumerRow));
    mount(streams, (s.streams || []).map(streamRow));
    mount(streamsNote, s.streams_error ? `JetStream did not list the streams: ${s.streams_error}` : "");
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
    table("pool-nodes", ["Node", "Address", "Users", "Sockets", "Presence groups", "Tasks", "IM log", "Followers behind", "NATS server", "Started"], rows),
    moving,
    h("h4", {}, "Once-per-pool consumers"),
    table("pool-consumers", ["Task", "Consumer", "Node", "Cursor", "Newest record", "Lag"], consumers),
    h("h4", {}, "JetStream streams and buckets"),
    table("pool-streams", ["Stream", "Replicas", "Leader", "Messages", "Size", "Other replicas"], streams),
    streamsNote,
  ]);
  load();
  const timer = setInterval(load, 5000);
  return () => clearInterval(timer);
}
