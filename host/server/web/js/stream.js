// The WebSocket stream (docs/protocol.md): one socket is this tab's endpoint. Requests get an
// id and resolve with their `reply` (or reject with the `error`'s message); events go to the
// handlers registered with `on`. Reconnects with backoff after 1001/4001/4002 and network
// drops; a 4003 (session ended) or 4004 (account disabled) signs out.

import { randomId } from "./util.js";

const RETRY_CLOSES = new Set([1001, 1006, 4001, 4002]);

/** A stream error answer. */
export class StreamError extends Error {
  constructor(code, message) {
    super(message || code);
    this.code = code;
  }
}

/** The stream of one signed-in tab. */
export class Stream {
  constructor(token, { onEnded }) {
    this.token = token;
    this.onEnded = onEnded;
    this.handlers = new Map();
    this.pending = new Map();
    this.nextId = 1;
    this.backoff = 500;
    this.stopped = false;
    this.ws = null;
    this.endpoint = sessionStorage.getItem("halo.endpoint") || `web-${randomId().slice(0, 8)}`;
    sessionStorage.setItem("halo.endpoint", this.endpoint);
  }

  /** Registers `fn` for server frames of `type` ("*" for every frame, "open"/"close" for
   * the socket's state); returns a function that unregisters it. */
  on(type, fn) {
    if (!this.handlers.has(type)) this.handlers.set(type, []);
    const list = this.handlers.get(type);
    list.push(fn);
    return () => { const i = list.indexOf(fn); if (i >= 0) list.splice(i, 1); };
  }

  emit(type, frame) {
    for (const fn of this.handlers.get(type) || []) {
      try { fn(frame); } catch (e) { console.error(`handler for ${type}`, e); }
    }
  }

  /** Whether the socket is open. */
  get connected() {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  /** Opens the socket (again). */
  connect() {
    if (this.stopped) return;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const url = `${proto}//${location.host}/api/v1/stream?endpoint=${encodeURIComponent(this.endpoint)}` +
      `&token=${encodeURIComponent(this.token)}`;
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onopen = () => { this.backoff = 500; this.emit("open"); };
    ws.onmessage = (e) => {
      let frame;
      try { frame = JSON.parse(e.data); } catch { return; }
      if (frame.type === "reply" || frame.type === "error") {
        const p = this.pending.get(frame.id);
        if (!p) return;
        this.pending.delete(frame.id);
        if (frame.type === "reply") p.resolve(frame.result);
        else p.reject(new StreamError(frame.code, frame.message));
        return;
      }
      this.emit(frame.type, frame);
      this.emit("*", frame);
    };
    ws.onclose = (e) => {
      if (this.ws !== ws) return;
      for (const p of this.pending.values()) p.reject(new StreamError("closed", "The connection to the server was lost."));
      this.pending.clear();
      this.emit("close", e);
      if (this.stopped) return;
      if (e.code === 4003 || e.code === 4004) {
        this.stopped = true;
        this.onEnded(e.code === 4004 ? "Your account was disabled." : "Your session ended. Please sign in again.");
        return;
      }
      if (e.code === 4005) {
        this.stopped = true;
        this.onEnded(null, "Too many devices are connected for this account; close a tab and reload.");
        return;
      }
      if (RETRY_CLOSES.has(e.code) || e.code < 4000) {
        setTimeout(() => this.connect(), this.backoff);
        this.backoff = Math.min(this.backoff * 2, 15000);
      }
    };
  }

  /** Sends request `type` with `fields`; resolves with the reply's result. */
  request(type, fields = {}) {
    if (!this.connected) return Promise.reject(new StreamError("closed", "Not connected to the server; retrying…"));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.ws.send(JSON.stringify({ type, id, ...fields }));
    });
  }

  /** Closes for good (sign-out). */
  stop() {
    this.stopped = true;
    this.ws?.close(1000, "bye");
  }
}
