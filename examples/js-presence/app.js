// A Halo presence plugin in JavaScript: "Quiet hours" (Do Not Disturb band) for signed-in
// users during the hours given by the `start_minute` and `end_minute` config (minutes after
// midnight, in the UTC offset `utc_offset_hours`), unless they set a state by hand.
//
// Built with componentize-js against wit/v0.1.0 (the `presence-states` world); `halo plugin
// pack` adds manifest.json. WIT names become camelCase, records plain objects, `option<T>` a
// value or `undefined`, enums strings, and `u64` a BigInt (`input.nowMs`).

import { get } from "halo:plugin/config@0.1.0";
import { log } from "halo:plugin/log@0.1.0";

const QUIET = "quiet-hours";
const AVAILABILITY = 9500; // the Do Not Disturb band: contacts outside the Workgroup wait

function number(key, fallback) {
  const v = Number.parseInt(get(key) ?? "", 10);
  return Number.isNaN(v) ? fallback : v;
}

/** The states this plugin adds. */
export function states() {
  return [
    {
      id: QUIET,
      labels: [{ lang: "en", text: get("label") ?? "Quiet hours" }],
      availability: AVAILABILITY,
      colour: "#5b2c6f",
    },
  ];
}

/** Quiet hours for a signed-in user with no manual state; `undefined` keeps the built-in one. */
export function derive(input) {
  try {
    if (input.manual !== undefined || input.endpoints.length === 0) {
      return undefined;
    }
    const offset = number("utc_offset_hours", 0);
    const minute = Number(((input.nowMs / 60000n) + BigInt(offset * 60)) % 1440n + 1440n) % 1440;
    const start = number("start_minute", 22 * 60);
    const end = number("end_minute", 7 * 60);
    // A window may wrap midnight (22:00-07:00).
    const inside = start <= end ? start <= minute && minute < end : minute >= start || minute < end;
    return inside ? { availability: AVAILABILITY, activity: undefined, custom: QUIET } : undefined;
  } catch (e) {
    // Report, never throw: an uncaught exception traps, and traps count against the plugin.
    log("error", `derive failed: ${e}`);
    return undefined;
  }
}

/** Re-derive every signed-in user each minute (the window opens and closes with the clock). */
export function tickSeconds() {
  return 60;
}
