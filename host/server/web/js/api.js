// The REST API (docs/api.md): every call sends the session's bearer token; an error answer
// becomes an ApiError carrying the server's message, which the views show as is.

const TOKEN_KEY = "halo.token";

/** An error answer: `status`, `code` (e.g. `conflict`) and the server's `message`. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

/** The stored session token, if signed in. */
export function token() {
  return localStorage.getItem(TOKEN_KEY);
}

/** Stores (or with null, forgets) the session token. */
export function setToken(t) {
  if (t) localStorage.setItem(TOKEN_KEY, t);
  else localStorage.removeItem(TOKEN_KEY);
}

let onUnauthorized = () => {};

/** What to do when the token is refused (expired, revoked): the app signs out. */
export function whenUnauthorized(fn) {
  onUnauthorized = fn;
}

/**
 * Sends `method path` with the token; `body` is sent as JSON, or as is when it is a
 * Blob/ArrayBuffer (with `contentType`). Resolves with the successful Response; an error
 * answer throws an ApiError with the server's message.
 */
async function send(method, path, body, contentType) {
  const headers = {};
  const t = token();
  if (t) headers.authorization = `Bearer ${t}`;
  let payload;
  if (body instanceof Blob || body instanceof ArrayBuffer) {
    payload = body;
    headers["content-type"] = contentType || "application/octet-stream";
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers["content-type"] = "application/json";
  }
  let resp;
  try {
    resp = await fetch(path, { method, headers, body: payload });
  } catch {
    throw new ApiError(0, "network", "The server cannot be reached. Check your connection.");
  }
  if (resp.ok) return resp;
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  const err = new ApiError(resp.status, data?.error, data?.message || retryText(resp) || text.trim());
  if (resp.status === 401 && data?.error === "unauthorized" && !path.endsWith("/login")) onUnauthorized(err);
  throw err;
}

/** Calls `method path` (see `send`). Resolves with the parsed JSON answer (null for 204). */
export async function api(method, path, body, contentType) {
  const resp = await send(method, path, body, contentType);
  if (resp.status === 204) return null;
  const text = await resp.text();
  try { return text ? JSON.parse(text) : null; } catch { return null; }
}

/** GETs `path` as a Blob (e.g. an export), with the token in the header, not the URL. */
export async function getBlob(path) {
  return (await send("GET", path)).blob();
}

function retryText(resp) {
  if (resp.status === 413) return "That is too large for the server.";
  const after = resp.headers.get("retry-after");
  return after ? `Too many attempts; try again in ${after} s.` : "";
}

/** Shorthands. */
export const get = (p) => api("GET", p);
export const post = (p, b) => api("POST", p, b ?? {});
export const patch = (p, b) => api("PATCH", p, b);
export const put = (p, b) => api("PUT", p, b ?? {});
export const del = (p) => api("DELETE", p);

/** A query string from an object, skipping empty values. */
export function qs(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}

/** The URL of a picture. Pictures are fetched without the token: anyone sees what External
 * contacts see, pictures included (docs/presence.md), and a token in a URL would end up in
 * logs and history. */
export function pictureUrl(path) {
  return path || null;
}
