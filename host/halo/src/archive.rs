//! `halo archive …`: compliance archiving over the REST API.

use std::io::Write;

use anyhow::Context;
use halo_client::segment;
use serde_json::{Value, json};

use crate::admin::{connect, s};
use crate::cli::{ArchiveArgs, ArchiveCommand, ArchiveFilter, Scope};

pub fn main(args: ArchiveArgs) -> anyhow::Result<()> {
    let client = connect(&args.client)?;
    let json_out = args.client.json;
    let print = |v: &Value| println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    match args.command {
        ArchiveCommand::Policy => {
            let p = client.call_json("GET", "/api/v1/admin/archive/policy", None)?;
            if json_out {
                print(&p);
            } else {
                println!("global: {}", scope_of(&p["global"]));
                for (user, policy) in p["users"].as_object().into_iter().flatten() {
                    println!("{user}: {}", scope_of(policy));
                }
            }
        }
        ArchiveCommand::SetPolicy { scope, user } => {
            let (internal, external) = match scope {
                Scope::All => (true, true),
                Scope::Internal => (true, false),
                Scope::External => (false, true),
                Scope::Off => (false, false),
            };
            let policy = json!({"internal": internal, "external": external});
            match &user {
                Some(u) => {
                    client.call_json("PUT", &format!("/api/v1/admin/archive/policy/{}", segment(u)), Some(&policy))?
                }
                None => client.call_json("PUT", "/api/v1/admin/archive/policy", Some(&json!({"global": policy})))?,
            };
            println!("archiving for {}: {}", user.as_deref().unwrap_or("everyone without a policy"), scope_of(&policy));
        }
        ArchiveCommand::ClearPolicy { user } => {
            client.call("DELETE", &format!("/api/v1/admin/archive/policy/{}", segment(&user)), None)?;
            println!("{user} follows the global policy again");
        }
        ArchiveCommand::Settings { values } => {
            let mut settings = client.call_json("GET", "/api/v1/admin/archive/settings", None)?;
            if !values.is_empty() {
                for kv in &values {
                    let (k, v) = kv.split_once('=').with_context(|| format!("{kv:?}: use key=value"))?;
                    let value = match v {
                        "true" | "false" => json!(v == "true"),
                        n => json!(n.parse::<u64>().with_context(|| format!("{k}: {n:?} is not a number"))?),
                    };
                    settings[k.trim()] = value;
                }
                settings = client.call_json("PUT", "/api/v1/admin/archive/settings", Some(&settings))?;
            }
            print(&settings);
        }
        ArchiveCommand::Status => {
            let st = client.call_json("GET", "/api/v1/archive/status", None)?;
            if json_out {
                print(&st);
            } else {
                println!("records kept: {}", st["records"]);
                if let Some(b) = st["blocking"].as_str() {
                    println!("REFUSING messages of archived users: {b}");
                }
                for sink in st["sinks"].as_array().into_iter().flatten() {
                    let health = match sink["last_error"].as_str() {
                        Some(e) if sink["failing_since"].is_u64() => format!("failing: {e}"),
                        _ if sink["enabled"] == true => "ok".to_owned(),
                        _ => "disabled (holds retention)".to_owned(),
                    };
                    println!(
                        "sink {}: cursor {}, {} waiting (oldest {} s), {health}",
                        s(&sink["name"]),
                        sink["cursor"],
                        sink["depth"],
                        sink["oldest_age_secs"]
                    );
                }
            }
        }
        ArchiveCommand::Search(filter) => {
            let found = client.call_json("GET", &format!("/api/v1/archive/records?{}", query(&filter)?), None)?;
            if json_out {
                print(&found);
            } else {
                for r in found["records"].as_array().into_iter().flatten() {
                    let place = match r["conversation"].as_u64() {
                        Some(c) => format!("conversation {c}"),
                        None => format!("room {}", r["room"]),
                    };
                    let what = r["text"]
                        .as_str()
                        .map_or_else(|| format!("[{} {}]", s(&r["event"]), s(&r["user"])), |t| t.replace('\n', " "));
                    println!("{} {} {place} {}: {what}", r["id"], r["at"], s(&r["from"]));
                }
            }
        }
        ArchiveCommand::Export { filter, output } => {
            let path = format!("/api/v1/archive/export?{}", query(&filter)?);
            match output {
                Some(file) => {
                    let mut f = std::fs::File::create(&file).with_context(|| format!("creating {}", file.display()))?;
                    let n = client.download(&path, &mut f)?;
                    f.sync_all()?;
                    eprintln!("wrote {n} bytes to {}", file.display());
                }
                None => {
                    let mut out = std::io::stdout().lock();
                    client.download(&path, &mut out)?;
                    out.flush()?;
                }
            }
        }
        ArchiveCommand::Purge { older_than_hours } => {
            let body = older_than_hours.map(|h| json!({"older_than_hours": h}));
            let report = client.call_json("POST", "/api/v1/admin/archive/purge", body.as_ref())?;
            if json_out || report["before"].is_null() {
                print(&report);
            } else {
                println!(
                    "purged {} records; {} held for sinks that have not stored them",
                    report["purged"], report["held"]
                );
            }
        }
    }
    Ok(())
}

fn scope_of(p: &Value) -> &'static str {
    match (p["internal"] == true, p["external"] == true) {
        (true, true) => "all",
        (true, false) => "internal",
        (false, true) => "external",
        (false, false) => "off",
    }
}

/// The query string of a filter.
fn query(f: &ArchiveFilter) -> anyhow::Result<String> {
    let mut parts = Vec::new();
    let mut add = |k: &str, v: String| parts.push(format!("{k}={}", segment(&v)));
    if let Some(q) = &f.q {
        add("q", q.clone());
    }
    if let Some(u) = &f.user {
        add("user", u.clone());
    }
    if let Some(c) = f.conversation {
        add("conversation", c.to_string());
    }
    if let Some(r) = f.room {
        add("room", r.to_string());
    }
    if let Some(d) = &f.since {
        add("since", time(d)?.to_string());
    }
    if let Some(d) = &f.until {
        add("until", time(d)?.to_string());
    }
    if let Some(l) = f.limit {
        add("limit", l.to_string());
    }
    Ok(parts.join("&"))
}

/// `YYYY-MM-DD` (UTC midnight) or ms since the Unix epoch, as ms.
fn time(s: &str) -> anyhow::Result<u64> {
    if let Ok(ms) = s.parse::<u64>() {
        return Ok(ms);
    }
    let bad = || anyhow::anyhow!("{s:?}: use YYYY-MM-DD or ms since the Unix epoch");
    let mut it = s.split('-');
    let (y, m, d) = match (it.next(), it.next(), it.next(), it.next()) {
        (Some(y), Some(m), Some(d), None) => (
            y.parse::<i64>().map_err(|_| bad())?,
            m.parse::<i64>().map_err(|_| bad())?,
            d.parse::<i64>().map_err(|_| bad())?,
        ),
        _ => return Err(bad()),
    };
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || y < 1970 {
        return Err(bad());
    }
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(days as u64 * 86_400_000)
}

#[cfg(test)]
mod tests {
    use super::time;

    #[test]
    fn dates_are_utc_midnight() {
        assert_eq!(time("1970-01-01").ok(), Some(0));
        assert_eq!(time("2000-03-01").ok(), Some(951_868_800_000));
        assert_eq!(time("1795654631548").ok(), Some(1_795_654_631_548));
        assert!(time("2026-13-01").is_err() && time("yesterday").is_err());
    }
}
