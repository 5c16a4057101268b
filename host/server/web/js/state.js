// The client's state, filled from the REST API and kept current by stream frames, and a tiny
// event bus the views subscribe to ("contacts", "presence", "conversations", ...).

/** Everything the views show. */
export const store = {
  /** The signed-in account (GET /api/v1/me). */
  me: null,
  /** Own presence (as the owner sees it). */
  myPresence: null,
  /** Minutes without input before this tab reports Inactive. */
  idleMinutes: 5,
  /** The state catalog: built-in and custom states. */
  states: [],
  /** Contact groups in order. */
  groups: [],
  /** Contacts by username: {group, level, presence}. */
  contacts: new Map(),
  /** Everyone's latest known presence by username (contacts, directory hits, participants). */
  people: new Map(),
  /** Conversations by id. */
  conversations: new Map(),
  /** Rooms by id. */
  rooms: new Map(),
  /** The stream, once connected. */
  stream: null,
  /** What the main pane shows: {kind: "conversation"|"room"|"admin"|..., id}. */
  view: null,
};

const listeners = new Map();

/** Calls `fn(data)` whenever `event` is emitted; returns a function that unsubscribes. */
export function on(event, fn) {
  if (!listeners.has(event)) listeners.set(event, new Set());
  listeners.get(event).add(fn);
  return () => listeners.get(event).delete(fn);
}

/** Tells the subscribers of `event`. */
export function emit(event, data) {
  for (const fn of listeners.get(event) || []) {
    try { fn(data); } catch (e) { console.error(`listener of ${event}`, e); }
  }
}

/** Forgets everything (sign-out). */
export function resetStore() {
  Object.assign(store, {
    me: null, myPresence: null, idleMinutes: 5, states: [], groups: [], stream: null, view: null,
  });
  store.contacts.clear();
  store.people.clear();
  store.conversations.clear();
  store.rooms.clear();
  for (const set of listeners.values()) set.clear();
}

/** Records a presence seen anywhere and tells the views. */
export function notePresence(p) {
  if (!p?.username) return;
  store.people.set(p.username, p);
  const c = store.contacts.get(p.username);
  if (c) c.presence = p;
  if (store.me && p.username === store.me.username) store.myPresence = p;
  emit("presence", p);
}

/** The display name of `username`, as far as known. */
export function displayName(username) {
  if (store.me && username === store.me.username) return store.me.display_name;
  return store.people.get(username)?.display_name || username;
}

/** Whether the signed-in user has `role`. */
export function hasRole(role) {
  return Boolean(store.me?.roles?.includes(role));
}
