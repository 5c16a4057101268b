// The JavaScript example's unit tests: the real component (target/js-quiet-hours.raw.wasm,
// from `npm run build`), turned into a Node.js module by jco (`npm test` transpiles it) with
// its Halo imports answered by test/host.js. `cargo xtask test` runs them.
import assert from "node:assert/strict";
import { beforeEach, test } from "node:test";

import { state } from "./host.js";
import { derive, states, tickSeconds } from "../target/transpiled/js-quiet-hours.raw.js";

const NOON = 1_796_212_800_000n; // 2026-12-02 12:00 UTC
const NIGHT = NOON + 11n * 3_600_000n; // 23:00 UTC

function input(nowMs, fields = {}) {
  return {
    user: "alice",
    manual: undefined,
    endpoints: [{ id: 1n, state: "active", sinceMs: nowMs }],
    calendar: undefined,
    phone: undefined,
    nowMs,
    builtin: { availability: 3500, activity: undefined, custom: undefined },
    ...fields,
  };
}

beforeEach(() => {
  state.config = {};
  state.logs = [];
});

test("one state, labelled from the config, in the Do Not Disturb band", () => {
  state.config = { label: "Heads down" };
  const [s] = states();
  assert.equal(s.id, "quiet-hours");
  assert.deepEqual(s.labels, [{ lang: "en", text: "Heads down" }]);
  assert.ok(s.availability >= 9000 && s.availability < 12000);
});

test("quiet at night, across midnight, not at noon", () => {
  assert.equal(derive(input(NIGHT))?.custom, "quiet-hours");
  assert.equal(derive(input(NOON)), undefined);
  state.config = { utc_offset_hours: "11" }; // 12:00 UTC is 23:00 local
  assert.equal(derive(input(NOON))?.custom, "quiet-hours");
});

test("a manual state or no device is left alone", () => {
  const manual = { availability: 3500, activity: undefined, custom: undefined, untilMs: undefined };
  assert.equal(derive(input(NIGHT, { manual })), undefined);
  assert.equal(derive(input(NIGHT, { endpoints: [] })), undefined);
});

test("a window over the whole day; a tick a minute", () => {
  state.config = { start_minute: "0", end_minute: "1440" };
  assert.equal(derive(input(NOON))?.availability, 9500);
  assert.equal(tickSeconds(), 60);
});

test("numbers that do not parse fall back to the defaults, nothing is thrown", () => {
  state.config = { start_minute: "ten", utc_offset_hours: "" };
  assert.equal(derive(input(NIGHT))?.custom, "quiet-hours");
  assert.deepEqual(state.logs, []);
});
