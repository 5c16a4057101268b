// A fake Halo host for the JavaScript example's tests: the plugin's imports
// (halo:plugin/config, log, kv) answer from here, with the server's rules.
export const state = { config: {}, logs: [], kv: new Map(), kvGranted: false };

export const config = {
  get: (key) => state.config[key],
  all: () => Object.entries(state.config),
};

export const log = {
  log: (level, message) => state.logs.push([level, message]),
};

export const kv = {
  get: (key) => {
    if (!state.kvGranted) throw { tag: "access-denied" };
    return state.kv.get(key);
  },
  set: (key, value) => {
    if (!state.kvGranted) throw { tag: "access-denied" };
    if (key.length > 256 || value.length > 65536) throw { tag: "too-large" };
    state.kv.set(key, value);
  },
  delete: (key) => {
    if (!state.kvGranted) throw { tag: "access-denied" };
    state.kv.delete(key);
  },
};

export const types = {};
