//! A plugin that misbehaves on purpose, for the host's tests. Config `mode`, applied in `derive`
//! (and in `states` when `when = states`): `loop`, `memory`, `trap`, `oversized`, `logflood`,
//! `kv` (writes past the quota), `slow` (busy for `ms` milliseconds, then answers nothing),
//! `offline` (answers availability `availability`, 18200 by default: the Offline band), `huge`
//! (answers an activity of `mb` MiB, 50 by default), `inject` (logs a line with a newline, a
//! forged server log line and terminal escape sequences), `none`.

use halo_sdk::{Host, Level, PresenceInput, PresencePlugin, Published, StateDef};

halo_sdk::manifest!(
    r#"{"name": "hostile", "version": "0.1.0", "kind": "presence-states", "api": "halo:plugin@0.1.0",
  "description": "Misbehaves on purpose (tests only).",
  "capabilities": ["kv"],
  "config": {
    "mode": {"type": "string", "default": "none", "description": "loop | memory | trap | oversized | logflood | kv | slow | offline | huge | inject | none"},
    "ms": {"type": "integer", "default": "30", "description": "how long `slow` keeps the CPU busy per call, milliseconds"},
    "when": {"type": "string", "default": "derive", "description": "derive | states"},
    "availability": {"type": "integer", "default": "18200", "description": "what `offline` answers"},
    "mb": {"type": "integer", "default": "50", "description": "the size of the activity `huge` answers, MiB"}
  }}"#
);

fn misbehave(host: &dyn Host) -> Option<Published> {
    match host.config("mode").as_deref() {
        Some("loop") => {
            let mut x: u64 = 0;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        Some("memory") => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(Vec::with_capacity(1 << 20));
                std::hint::black_box(&hoard);
            }
        }
        Some("trap") => panic!("hostile plugin panics on purpose"),
        Some("oversized") => Some(Published { availability: 6500, activity: Some("x".repeat(1 << 20)), custom: None }),
        Some("offline") => {
            let availability = host.config("availability").and_then(|v| v.parse().ok()).unwrap_or(18_200);
            Some(Published { availability, activity: None, custom: None })
        }
        Some("huge") => {
            let mb = host.config("mb").and_then(|v| v.parse::<usize>().ok()).unwrap_or(50);
            Some(Published { availability: 6500, activity: Some("x".repeat(mb << 20)), custom: None })
        }
        Some("inject") => {
            host.log(
                Level::Warn,
                "benign\n2026-12-05T09:00:00.000000Z  INFO halo::serve: forged line\u{1b}]0;pwned\u{7}\u{1b}[31mred\u{9b}2J",
            );
            None
        }
        Some("logflood") => {
            for i in 0..10_000 {
                host.log(Level::Info, &format!("flood line {i}"));
            }
            None
        }
        Some("kv") => {
            let big = vec![7u8; 60 * 1024];
            for i in 0..1000 {
                if let Err(e) = host.kv_set(&format!("k{i}"), &big) {
                    host.log(Level::Warn, &format!("kv refused after {i} writes: {e:?}"));
                    break;
                }
            }
            None
        }
        Some("slow") => {
            let ms = host.config("ms").and_then(|v| v.parse::<u64>().ok()).unwrap_or(30);
            let start = std::time::Instant::now();
            while start.elapsed() < std::time::Duration::from_millis(ms) {
                std::hint::black_box(());
            }
            None
        }
        _ => None,
    }
}

/// The plugin.
pub struct Hostile;

impl PresencePlugin for Hostile {
    fn states(host: &dyn Host) -> Vec<StateDef> {
        if host.config("when").as_deref() == Some("states") {
            misbehave(host);
        }
        vec![StateDef {
            id: "hostile".into(),
            labels: vec![("en".into(), "Hostile".into())],
            availability: 6500,
            colour: "#000000".into(),
        }]
    }

    fn derive(host: &dyn Host, _input: &PresenceInput) -> Option<Published> {
        misbehave(host)
    }
}

halo_sdk::presence_plugin!(Hostile);
