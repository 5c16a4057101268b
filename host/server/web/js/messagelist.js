// A list of messages (a conversation's or a room's) rendered incrementally: one message is one
// element built by the view's `render(msg)`; a new message is inserted, a changed one replaced,
// and nothing else is touched. Messages coming in a burst are queued and put on the page once
// per animation frame (at most BATCH per frame, the rest in the next ones), so the main thread
// never blocks for long. Only a window of at most `max` messages is in the DOM however long
// the history: scrolling up shows older ones (from memory, then from the server through
// `loadOlder`), dropping the newest from the page; scrolling back down brings them back.
// Own messages not yet accepted by the server ("pending", by idempotency key) stay at the end.

const BATCH = 20;
/** The most messages in the DOM at once (about ten nodes each). */
export const MAX_RENDERED = 150;
const CHUNK = 50;
const EDGE = 120;

/** The day of a time, as a key and as a label. */
const dayKey = (at) => new Date(at).toDateString();
const dayLabel = (at) => new Date(at).toLocaleDateString([], { weekday: "long", day: "numeric", month: "long" });

/** Sorted insertion of `id` into the ascending array `ids`; returns its index. */
function insertSorted(ids, id) {
  let lo = 0;
  let hi = ids.length;
  if (!hi || ids[hi - 1] < id) { ids.push(id); return hi; }
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (ids[mid] < id) lo = mid + 1; else hi = mid;
  }
  ids.splice(lo, 0, id);
  return lo;
}

/** The index of `id` in the ascending array `ids`, or -1. */
function indexOf(ids, id) {
  let lo = 0;
  let hi = ids.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (ids[mid] < id) lo = mid + 1; else hi = mid;
  }
  return ids[lo] === id ? lo : -1;
}

/** The messages of one view in `scroller`. */
export class MessageList {
  /**
   * `render(msg)` builds one message's element (it gets `data-id`); `loadOlder()` fetches an
   * older page from the server and gives it to `addOlder` (resolving when done);
   * `afterFlush()` runs after each batch reached the page (receipts, read markers);
   * `empty` is the text shown while there is nothing.
   */
  constructor(scroller, { render, loadOlder, afterFlush, empty = "", max = MAX_RENDERED }) {
    this.scroller = scroller;
    this.render = render;
    this.loadOlderFn = loadOlder;
    this.afterFlush = afterFlush || (() => {});
    this.emptyText = empty;
    this.max = max;
    /** Every message loaded, by id. */
    this.data = new Map();
    /** Their ids, ascending. */
    this.ids = [];
    /** The rendered window: the elements of the messages from loId to hiId, by id. */
    this.els = new Map();
    this.loId = null;
    this.hiId = null;
    /** Newer messages exist in memory below the window (the user scrolled up). */
    this.detached = false;
    /** The server has no older messages. */
    this.complete = false;
    this.queue = [];
    this.frame = 0;
    this.pending = new Map();
    this.days = new Map();
    this.start = null;
    this.emptyEl = null;
    this.loading = false;
    this.jump = document.createElement("button");
    this.jump.type = "button";
    this.jump.className = "btn small jump-latest";
    this.jump.textContent = "New messages ↓";
    this.jump.hidden = true;
    this.jump.addEventListener("click", () => this.toLatest());
    scroller.addEventListener("scroll", () => this.onScroll(), { passive: true });
    this.showEmpty();
  }

  /** Whether the view is scrolled to (near) its end. */
  atBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < EDGE;
  }

  /** Scrolls to the end. */
  scrollDown() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  /** The newest message id loaded (0 when none). */
  newest() {
    return this.ids.length ? this.ids[this.ids.length - 1] : 0;
  }

  /** The oldest message id loaded (null when none). */
  oldest() {
    return this.ids.length ? this.ids[0] : null;
  }

  /** A loaded message. */
  get(id) {
    return this.data.get(id);
  }

  /** Whether message `id` is loaded. */
  has(id) {
    return this.data.has(id);
  }

  /** Loaded messages, newest first (an iterator). */
  *newestFirst() {
    for (let i = this.ids.length - 1; i >= 0; i--) yield this.data.get(this.ids[i]);
  }

  /** The element of message `id`, when it is on the page. */
  element(id) {
    return this.els.get(id);
  }

  /** Adds messages (live, or a catch-up page): queued and rendered with the next frame. A
   * message already loaded is replaced when it differs. One older than everything loaded
   * (an offline copy coming late) is left to the pages loaded on scrolling up, so what is in
   * memory is always one unbroken stretch of the history. */
  add(msgs) {
    for (const m of msgs) {
      const old = this.data.get(m.id);
      if (old) {
        if (old !== m && JSON.stringify(old) !== JSON.stringify(m)) this.updateMessage(m.id, m);
        continue;
      }
      if (this.ids.length && m.id < this.ids[0] && !this.complete) continue;
      this.data.set(m.id, m);
      insertSorted(this.ids, m.id);
      this.queue.push(m.id);
    }
    this.schedule();
  }

  /** Replaces message `id` (an edit, a reaction…) with `msg`, and its element if shown. */
  updateMessage(id, msg) {
    if (!this.data.has(id)) return;
    this.data.set(id, msg);
    const el = this.els.get(id);
    if (!el) return;
    const fresh = this.render(msg);
    el.replaceWith(fresh);
    this.els.set(id, fresh);
    if (!this.refreshing) this.afterFlush();
  }

  /** Renders the shown messages again (names or pictures became known). */
  refresh() {
    this.refreshing = true;
    for (const id of [...this.els.keys()]) this.updateMessage(id, this.data.get(id));
    this.refreshing = false;
    this.afterFlush();
  }

  schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => { this.frame = 0; this.flush(); });
  }

  /** Puts up to BATCH queued messages on the page, then runs `afterFlush`. */
  flush() {
    if (!this.queue.length) return;
    const stick = this.atBottom();
    const batch = this.queue.splice(0, BATCH).sort((a, b) => a - b);
    if (this.queue.length) this.schedule();
    let added = 0;
    for (const id of batch) {
      if (!this.data.has(id) || this.els.has(id)) continue;
      if (this.loId === null) {
        this.loId = this.hiId = id;
      } else if (id < this.loId) {
        continue; // older than the window: shown when the user scrolls up to it
      } else if (id > this.hiId) {
        if (this.detached) continue;
        if (!stick && this.els.size >= this.max) { this.detach(); continue; }
        this.hiId = id;
      }
      this.place(id);
      added++;
    }
    if (!added) return;
    this.hideEmpty();
    if (stick) this.trimTop(false);
    this.fixDays();
    if (stick) this.scrollDown();
    this.afterFlush();
  }

  /** Newer messages stay in memory, below the window; a button jumps to them. */
  detach() {
    this.detached = true;
    this.jump.hidden = false;
    if (!this.jump.isConnected) this.scroller.append(this.jump);
  }

  /** Puts the element of message `id` (inside the window) at its place. */
  place(id) {
    const el = this.render(this.data.get(id));
    this.els.set(id, el);
    let next = null;
    for (let j = indexOf(this.ids, id) + 1; j < this.ids.length && this.ids[j] <= this.hiId; j++) {
      next = this.els.get(this.ids[j]);
      if (next) break;
    }
    this.scroller.insertBefore(el, next ? this.beforeDay(next) : this.firstPending());
  }

  /** The day divider before `el`, if any, else `el`. */
  beforeDay(el) {
    const prev = el.previousElementSibling;
    return prev?.classList.contains("day") ? prev : el;
  }

  firstPending() {
    for (const el of this.pending.values()) if (el.isConnected) return el;
    return this.jump.isConnected ? this.jump : null;
  }

  /** The window's range of indexes in `ids` ([-1, -2] when empty). */
  range() {
    if (this.loId === null) return [-1, -2];
    return [indexOf(this.ids, this.loId), indexOf(this.ids, this.hiId)];
  }

  /** One day divider before the first message of each day on the page, none elsewhere; the
   * "Start of the conversation" line when the oldest message is shown. */
  fixDays() {
    const used = new Set();
    let prev = "";
    const [lo, hi] = this.range();
    for (let i = Math.max(lo, 0); i <= hi; i++) {
      const el = this.els.get(this.ids[i]);
      if (!el) continue;
      const m = this.data.get(this.ids[i]);
      const day = dayKey(m.at);
      if (day === prev) continue;
      prev = day;
      used.add(day);
      let d = this.days.get(day);
      if (!d) {
        d = document.createElement("div");
        d.className = "day";
        d.textContent = dayLabel(m.at);
        this.days.set(day, d);
      }
      if (el.previousElementSibling !== d) this.scroller.insertBefore(d, el);
    }
    for (const [day, d] of this.days) if (!used.has(day)) { d.remove(); this.days.delete(day); }
    const showStart = this.complete && lo === 0;
    if (showStart && !this.start) {
      this.start = document.createElement("div");
      this.start.className = "system";
      this.start.textContent = "Start of the conversation";
    }
    if (showStart && this.scroller.firstElementChild !== this.start) this.scroller.prepend(this.start);
    if (!showStart) this.start?.remove();
  }

  /** Drops the oldest elements beyond `max`; keeps what the user sees in place when `keep`. */
  trimTop(keep) {
    const extra = this.els.size - this.max;
    if (extra <= 0) return;
    const before = keep ? this.scroller.scrollHeight : 0;
    const [lo] = this.range();
    for (let i = lo; i < lo + extra; i++) {
      this.els.get(this.ids[i])?.remove();
      this.els.delete(this.ids[i]);
    }
    this.loId = this.ids[lo + extra];
    this.fixDays();
    if (keep) this.scroller.scrollTop -= before - this.scroller.scrollHeight;
  }

  /** Drops the newest elements beyond `max` (the user reads older ones). */
  trimBottom() {
    const extra = this.els.size - this.max;
    if (extra <= 0) return;
    const [, hi] = this.range();
    for (let i = hi; i > hi - extra; i--) {
      this.els.get(this.ids[i])?.remove();
      this.els.delete(this.ids[i]);
    }
    this.hiId = this.ids[hi - extra];
    this.detach();
  }

  /** Adds an older page from the server and shows (part of) it above the window;
   * `complete` when the server has nothing older. */
  addOlder(msgs, complete) {
    for (const m of msgs) {
      if (this.data.has(m.id)) continue;
      this.data.set(m.id, m);
      insertSorted(this.ids, m.id);
    }
    if (complete) this.complete = true;
    this.showOlder();
  }

  /** Extends the window upwards by a chunk from memory, keeping the view in place. */
  showOlder() {
    if (!this.ids.length) { this.fixDays(); this.showEmpty(); return; }
    let [lo, hi] = this.range();
    if (this.loId === null) { lo = this.ids.length; hi = this.ids.length - 1; }
    const from = Math.max(0, lo - CHUNK);
    if (from === lo) { this.fixDays(); return; }
    const frag = document.createDocumentFragment();
    for (let i = from; i < lo; i++) {
      const el = this.render(this.data.get(this.ids[i]));
      this.els.set(this.ids[i], el);
      frag.append(el);
    }
    const first = this.loId !== null ? this.els.get(this.loId) : null;
    const y0 = first?.getBoundingClientRect().top;
    this.loId = this.ids[from];
    this.hiId = this.ids[Math.max(hi, lo - 1)];
    this.hideEmpty();
    this.scroller.insertBefore(frag, first ? this.beforeDay(first) : this.firstPending());
    this.trimBottom();
    this.fixDays();
    // What the user looked at stays where it was.
    if (first) this.scroller.scrollTop += first.getBoundingClientRect().top - y0;
    this.afterFlush();
  }

  /** Extends the window downwards by a chunk from memory (the user scrolls back down). */
  showNewer() {
    if (!this.detached) return;
    const [, hi] = this.range();
    const to = Math.min(this.ids.length, hi + 1 + CHUNK);
    const anchor = this.firstPending();
    for (let i = hi + 1; i < to; i++) {
      const el = this.render(this.data.get(this.ids[i]));
      this.els.set(this.ids[i], el);
      this.scroller.insertBefore(el, anchor);
    }
    this.hiId = this.ids[to - 1];
    if (to === this.ids.length) { this.detached = false; this.jump.hidden = true; this.jump.remove(); }
    this.trimTop(true);
    this.fixDays();
    this.afterFlush();
  }

  /** Jumps to the newest messages. */
  toLatest() {
    while (this.detached) this.showNewer();
    this.flush();
    this.scrollDown();
  }

  async onScroll() {
    if (this.scroller.scrollTop < 80) {
      const [lo] = this.range();
      if (lo > 0) this.showOlder();
      else await this.more();
    } else if (this.detached && this.atBottom()) {
      this.showNewer();
    }
  }

  /** Loads an older page through `loadOlder` unless one is loading or none is left. */
  async more() {
    if (this.complete || this.loading || !this.loadOlderFn) return;
    this.loading = true;
    try { await this.loadOlderFn(); } finally { this.loading = false; }
  }

  /** Shows an own message the server has not accepted yet (by its idempotency key). */
  setPending(key, el) {
    const old = this.pending.get(key);
    if (old) old.replaceWith(el);
    else this.scroller.insertBefore(el, this.jump.isConnected ? this.jump : null);
    this.pending.set(key, el);
    this.hideEmpty();
  }

  /** Forgets a pending message (accepted: it comes back through `add`). */
  dropPending(key) {
    this.pending.get(key)?.remove();
    this.pending.delete(key);
  }

  showEmpty() {
    if (this.ids.length || this.pending.size || !this.emptyText) return;
    if (!this.emptyEl) {
      this.emptyEl = document.createElement("p");
      this.emptyEl.className = "empty";
    }
    this.emptyEl.textContent = this.emptyText;
    this.scroller.replaceChildren(this.emptyEl);
  }

  hideEmpty() {
    this.emptyEl?.remove();
  }

  /** Shows a message instead of the list (e.g. an error loading it). */
  showError(text) {
    this.emptyText = text;
    this.showEmpty();
  }

  dispose() {
    if (this.frame) cancelAnimationFrame(this.frame);
  }
}
