//! `halo plugin …`: plugin administration through the admin REST API, plus `new` and `pack`,
//! which work locally.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use anyhow::Context;
use halo_client::segment;
use serde_json::Value;

use crate::admin::connect;
use crate::cli::{PluginArgs, PluginCommand};

/// A string field of a plugin's answer, safe to print: plugins write manifests, state ids,
/// log lines and error texts, so control characters (ESC, OSC, newlines, C1) are escaped.
fn s(v: &Value) -> std::borrow::Cow<'_, str> {
    halo_plugin_host::cap::log::escape_controls(crate::admin::s(v))
}

pub fn main(args: PluginArgs) -> anyhow::Result<()> {
    let json_out = args.client.json;
    match args.command {
        PluginCommand::New { name, kind, dir, sdk } => {
            return scaffold(&name, &kind, dir.as_deref(), sdk.as_deref(), json_out);
        }
        PluginCommand::Sdk { dir } => {
            let sdk = crate::sdk::export(&dir)?;
            if json_out {
                println!(
                    "{}",
                    serde_json::json!({"sdk": sdk.display().to_string(), "wit": dir.join("wit").display().to_string()})
                );
            } else {
                println!("wrote {} and {}", sdk.display(), dir.join("wit").display());
            }
            return Ok(());
        }
        PluginCommand::Pack { file, manifest, output } => {
            let component = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let manifest = std::fs::read(&manifest).with_context(|| format!("reading {}", manifest.display()))?;
            let packed = halo_plugin_host::pack(&component, &manifest)?;
            std::fs::write(&output, packed).with_context(|| format!("writing {}", output.display()))?;
            if json_out {
                println!("{}", serde_json::json!({"wrote": output.display().to_string()}));
            } else {
                println!("wrote {}", output.display());
            }
            return Ok(());
        }
        _ => {}
    }
    let client = connect(&args.client)?;
    let path = |name: &str| format!("/api/v1/admin/plugins/{}", segment(name));
    let show = |v: &Value| {
        if json_out {
            println!("{v}");
        } else {
            print_info(v);
        }
    };
    match args.command {
        PluginCommand::Install { file, grants, yes, plugin_config, disabled } => {
            let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let inspection = client
                .call_bytes("POST", "/api/v1/admin/plugins/inspect", bytes.clone(), "application/wasm")?
                .unwrap_or_default();
            let manifest = &inspection["manifest"];
            eprintln!(
                "{} {} ({}, built against {})",
                s(&manifest["name"]),
                s(&manifest["version"]),
                s(&manifest["kind"]),
                s(&manifest["api"])
            );
            if !s(&manifest["description"]).is_empty() {
                eprintln!("  {}", s(&manifest["description"]));
            }
            let requested: Vec<String> = strings(&manifest["capabilities"]);
            let grants = decide_grants(&requested, grants, yes)?;
            let mut query = format!("/api/v1/admin/plugins?grant={}&enabled={}", grant_query(&grants), !disabled);
            if let Some(cfg) = plugin_config {
                let values = serde_json::to_string(&read_config_file(&cfg)?)?;
                query.push_str(&format!("&config={}", segment(&values)));
            }
            let info = client.call_bytes("POST", &query, bytes, "application/wasm")?.unwrap_or_default();
            show(&info);
        }
        PluginCommand::List => {
            let list = client.call_json("GET", "/api/v1/admin/plugins", None)?;
            if json_out {
                println!("{list}");
            } else {
                println!("{:<20} {:<10} {:<16} {:<10} GRANTS", "NAME", "VERSION", "KIND", "STATE");
                for p in list["plugins"].as_array().cloned().unwrap_or_default() {
                    println!(
                        "{:<20} {:<10} {:<16} {:<10} {}",
                        s(&p["name"]),
                        s(&p["version"]),
                        s(&p["kind"]),
                        state(&p),
                        strings(&p["granted"]).join(",")
                    );
                }
            }
        }
        PluginCommand::Info { name } => show(&client.call_json("GET", &path(&name), None)?),
        PluginCommand::Enable { name } => show(&client.call_json("POST", &format!("{}/enable", path(&name)), None)?),
        PluginCommand::Disable { name } => {
            show(&client.call_json("POST", &format!("{}/disable", path(&name)), None)?)
        }
        PluginCommand::Config { name, values } => {
            let config = match values.as_slice() {
                [one] if !one.contains('=') => read_config_file(Path::new(one))?,
                pairs => pairs
                    .iter()
                    .map(|p| {
                        p.split_once('=')
                            .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
                            .with_context(|| format!("{p:?} is not key=value"))
                    })
                    .collect::<anyhow::Result<_>>()?,
            };
            show(&client.call_json("PUT", &format!("{}/config", path(&name)), Some(&serde_json::to_value(config)?))?);
        }
        PluginCommand::Upgrade { name, file, grants, yes } => {
            let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let inspection = client
                .call_bytes("POST", "/api/v1/admin/plugins/inspect", bytes.clone(), "application/wasm")?
                .unwrap_or_default();
            let requested = strings(&inspection["manifest"]["capabilities"]);
            let query = if yes || !grants.is_empty() {
                format!("{}?grant={}", path(&name), grant_query(&decide_grants(&requested, grants, yes)?))
            } else {
                path(&name)
            };
            let result = client.call_bytes("PUT", &query, bytes, "application/wasm")?.unwrap_or_default();
            if json_out {
                println!("{result}");
                return Ok(());
            }
            for c in strings(&result["added_capabilities"]) {
                eprintln!("  + asks for {c} (not granted unless you pass --grant {c})");
            }
            for c in strings(&result["removed_capabilities"]) {
                eprintln!("  - no longer asks for {c}");
            }
            show(&result["plugin"]);
        }
        PluginCommand::Limits { name, values, reset } => {
            let body = if reset {
                Value::Null
            } else {
                let current = client.call_json("GET", &path(&name), None)?;
                let mut limits = current["limits"].clone();
                for pair in &values {
                    let (k, v) = pair.split_once('=').with_context(|| format!("{pair:?} is not key=value"))?;
                    anyhow::ensure!(limits.get(k).is_some(), "unknown limit {k:?}");
                    limits[k] = match v.parse::<u64>() {
                        Ok(n) => Value::from(n),
                        Err(_) => Value::from(v),
                    };
                }
                limits
            };
            show(&client.call_json("PUT", &format!("{}/limits", path(&name)), Some(&body))?);
        }
        PluginCommand::Grant { name, grants } => {
            let body = serde_json::json!({"grant": grants, "revoke": []});
            show(&client.call_json("POST", &format!("{}/grants", path(&name)), Some(&body))?);
        }
        PluginCommand::Revoke { name, grants } => {
            let body = serde_json::json!({"grant": [], "revoke": grants});
            show(&client.call_json("POST", &format!("{}/grants", path(&name)), Some(&body))?);
        }
        PluginCommand::Remove { name } => {
            client.call("DELETE", &path(&name), None)?;
            if json_out {
                println!("{}", serde_json::json!({"removed": name}));
            } else {
                println!("removed {name}");
            }
        }
        PluginCommand::Logs { name } => {
            let logs = client.call_json("GET", &format!("{}/logs", path(&name)), None)?;
            if json_out {
                println!("{logs}");
                return Ok(());
            }
            for l in logs["lines"].as_array().cloned().unwrap_or_default() {
                println!("{} {:<5} {}", l["at_ms"], s(&l["level"]), s(&l["message"]));
            }
            if logs["dropped"].as_u64().unwrap_or(0) > 0 {
                println!("({} lines dropped by the flood limit)", logs["dropped"]);
            }
        }
        PluginCommand::New { .. } | PluginCommand::Pack { .. } | PluginCommand::Sdk { .. } => {}
    }
    Ok(())
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(|t| halo_plugin_host::cap::log::escape_controls(t).into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn state(p: &Value) -> String {
    if !p["load_error"].is_null() {
        "broken".into()
    } else if !p["status"]["disabled"].is_null() || p["enabled"] == false {
        "disabled".into()
    } else {
        "enabled".into()
    }
}

/// Deny by default: `--yes` grants all requested; `--grant` grants those; on a terminal each
/// requested capability is asked about; otherwise nothing is granted.
/// Capabilities whose grant carries a value the admin chooses (`dir:/path`, `http:host:port`).
const PARAMETERISED: [(&str, &str); 2] = [("dir", "a directory, e.g. /var/lib/halo/archive"), ("http", "a host:port")];

/// Grants as the `grant` query value: each percent-encoded, comma-separated.
fn grant_query(grants: &[String]) -> String {
    grants.iter().map(|g| segment(g)).collect::<Vec<_>>().join(",")
}

fn capability(grant: &str) -> &str {
    grant.split_once(':').map_or(grant, |(name, _)| name)
}

fn decide_grants(requested: &[String], given: Vec<String>, yes: bool) -> anyhow::Result<Vec<String>> {
    if requested.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(extra) = given.iter().find(|g| !requested.iter().any(|r| r == capability(g))) {
        anyhow::bail!("the plugin does not ask for {extra:?}; it asks for: {}", requested.join(", "));
    }
    let value_of = |c: &str| PARAMETERISED.iter().find(|(p, _)| *p == c).map(|(_, what)| *what);
    if let Some(bare) = given.iter().find(|g| !g.contains(':') && value_of(g).is_some()) {
        anyhow::bail!("--grant {bare} needs {}: --grant {bare}:VALUE", value_of(bare).unwrap_or("a value"));
    }
    if yes {
        let mut out = Vec::new();
        for c in requested {
            match (given.iter().find(|g| capability(g) == c), value_of(c)) {
                (Some(g), _) => out.push(g.clone()),
                (None, Some(what)) => anyhow::bail!(
                    "{c} needs {what}: add --grant {c}:VALUE (or leave it out of --yes by listing grants)"
                ),
                (None, None) => out.push(c.clone()),
            }
        }
        return Ok(out);
    }
    if !given.is_empty() {
        return Ok(given);
    }
    if !std::io::stdin().is_terminal() {
        eprintln!("  asks for: {} — nothing granted (pass --grant or --yes)", requested.join(", "));
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for c in requested {
        match value_of(c) {
            Some(what) => eprint!("  grant {c}? enter {what} (empty: no) "),
            None => eprint!("  grant {c}? [y/N] "),
        }
        std::io::stderr().flush()?;
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        let answer = line.trim();
        match value_of(c) {
            Some(_) if !answer.is_empty() => out.push(format!("{c}:{answer}")),
            None if answer.eq_ignore_ascii_case("y") => out.push(c.clone()),
            _ => {}
        }
    }
    Ok(out)
}

fn read_config_file(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let table: toml::Table = toml::from_str(&text).with_context(|| format!("in {}", path.display()))?;
    Ok(table
        .into_iter()
        .map(|(k, v)| {
            (
                k,
                match v {
                    toml::Value::String(s) => s,
                    other => other.to_string(),
                },
            )
        })
        .collect())
}

fn print_info(p: &Value) {
    println!("{} {} — {}", s(&p["name"]), s(&p["version"]), state(p));
    if !s(&p["description"]).is_empty() {
        println!("  {}", s(&p["description"]));
    }
    println!("  kind         {} ({})", s(&p["kind"]), s(&p["api"]));
    println!("  asks for     {}", strings(&p["requested"]).join(", "));
    println!("  granted      {}", strings(&p["granted"]).join(", "));
    if let Some(cfg) = p["config"].as_object() {
        for (k, v) in cfg {
            println!("  config       {} = {}", halo_plugin_host::cap::log::escape_controls(k), s(v));
        }
    }
    for st in p["states"].as_array().cloned().unwrap_or_default() {
        println!("  state        {} ({})", s(&st["id"]), st["availability"]);
    }
    if p["status"]["disabled"].is_string() {
        println!("  disabled     {}", s(&p["status"]["disabled"]));
    }
    if p["status"]["throttled"].is_string() {
        println!("  throttled    {}", s(&p["status"]["throttled"]));
    }
    if p["load_error"].is_string() {
        println!("  load error   {}", s(&p["load_error"]));
    }
    let st = &p["status"];
    if st.is_object() {
        println!(
            "  calls {} · errors {} · traps {} · throttled {} · memory {} bytes",
            st["calls"], st["errors"], st["traps"], st["throttled_calls"], st["memory_bytes"]
        );
        println!(
            "  guest time   {} ms in this CPU window ({} ms since loaded)",
            st["cpu_window_ms"], st["cpu_total_ms"]
        );
    }
    println!("  sha256       {}", s(&p["sha256"]));
}

fn scaffold(name: &str, kind: &str, dir: Option<&Path>, sdk: Option<&Path>, json_out: bool) -> anyhow::Result<()> {
    let ok = !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    anyhow::ensure!(ok, "plugin names are a-z, 0-9 and -");
    anyhow::ensure!(
        matches!(kind, "presence-states" | "archive-sink" | "federation-adapter"),
        "kind {kind:?}: this Halo scaffolds presence-states, archive-sink and federation-adapter plugins"
    );
    let dir = dir.map_or_else(|| Path::new(name).to_owned(), Path::to_owned);
    anyhow::ensure!(!dir.exists(), "{} exists already", dir.display());
    std::fs::create_dir_all(dir.join("src"))?;
    // Without --sdk, the SDK this binary ships is vendored into the project: it then builds
    // with nothing but the Rust toolchain and the crates.io dependencies the SDK names.
    let source = match sdk {
        Some(p) => {
            format!("path = {:?}", std::fs::canonicalize(p).with_context(|| format!("{} not found", p.display()))?)
        }
        None => {
            crate::sdk::export(&dir.join("vendor"))?;
            "path = \"vendor/halo-sdk\"".to_owned()
        }
    };
    let features = match kind {
        "archive-sink" => "default-features = false, features = [\"archive-sink\"]",
        "federation-adapter" => "default-features = false, features = [\"federation\"]",
        _ => "",
    };
    let sdk_dep = format!("halo-sdk = {{ {source}{}{features} }}", if features.is_empty() { "" } else { ", " });
    let ident: String = name
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
{sdk_dep}

[profile.release]
opt-level = "s"
lto = true
strip = true

# Its own workspace, so it builds wherever it is created (the vendored SDK is a dependency,
# not a member).
[workspace]
exclude = ["vendor"]
"#
        ),
    )?;
    let lib = match kind {
        "archive-sink" => sink_template(name, &ident),
        "federation-adapter" => adapter_template(name, &ident),
        _ => presence_template(name, &ident),
    };
    std::fs::write(dir.join("src/lib.rs"), lib)?;
    std::fs::write(dir.join(".gitignore"), "/target\n")?;
    if json_out {
        println!("{}", serde_json::json!({"created": dir.display().to_string()}));
        return Ok(());
    }
    println!("created {} — build it with:", dir.display());
    println!("  cargo build --release --target wasm32-wasip2 --manifest-path {}/Cargo.toml", dir.display());
    println!(
        "then: halo plugin install {}/target/wasm32-wasip2/release/{}.wasm",
        dir.display(),
        name.replace('-', "_")
    );
    Ok(())
}

fn presence_template(name: &str, ident: &str) -> String {
    format!(
        r##"//! `{name}`: a Halo presence-states plugin.

use halo_sdk::{{Host, PresenceInput, PresencePlugin, Published, StateDef}};

halo_sdk::manifest!(
    r#"{{"name": "{name}", "version": "0.1.0", "kind": "presence-states", "api": "halo:plugin@0.1.0",
  "description": "Describe what {name} does.",
  "capabilities": [],
  "config": {{"label": {{"type": "string", "default": "Focusing", "description": "Label of the state"}}}}}}"#
);

/// The plugin.
pub struct {ident};

impl PresencePlugin for {ident} {{
    fn states(host: &dyn Host) -> Vec<StateDef> {{
        let label = host.config("label").unwrap_or_else(|| "Focusing".into());
        vec![StateDef {{ id: "{name}".into(), labels: vec![("en".into(), label)], availability: 6500, colour: "#8e44ad".into() }}]
    }}

    fn derive(_host: &dyn Host, _input: &PresenceInput) -> Option<Published> {{
        None
    }}
}}

halo_sdk::presence_plugin!({ident});

#[cfg(test)]
mod tests {{
    use halo_sdk::testing::TestHost;

    use super::*;

    #[test]
    fn defines_its_state() {{
        let host = TestHost::new().with_config("label", "Heads down");
        assert_eq!({ident}::states(&host)[0].labels[0].1, "Heads down");
    }}
}}
"##
    )
}

fn sink_template(name: &str, ident: &str) -> String {
    format!(
        r##"//! `{name}`: a Halo archive sink. It receives the compliance archive's records in id
//! order, in batches, at least once; return `Ok(())` only once they are stored durably.

use halo_sdk::{{ArchiveRecord, ArchiveSink, Host, Level, SinkError}};

halo_sdk::manifest!(
    r#"{{"name": "{name}", "version": "0.1.0", "kind": "archive-sink", "api": "halo:plugin@0.1.1",
  "description": "Describe where {name} sends the archive.",
  "capabilities": [],
  "config": {{"max_batch": {{"type": "integer", "default": "500", "description": "Refuse larger batches (example)"}}}}}}"#
);

/// The sink.
pub struct {ident};

impl ArchiveSink for {ident} {{
    fn deliver(host: &dyn Host, batch: &[ArchiveRecord]) -> Result<(), SinkError> {{
        let max: usize = host.config("max_batch").and_then(|v| v.parse().ok()).unwrap_or(500);
        if batch.len() > max {{
            return Err(SinkError::Retry(format!("batch of {{}} over {{max}}", batch.len())));
        }}
        // Store `record.json` (one JSON line per record) somewhere durable; skip ids you have.
        host.log(Level::Info, &format!("stored {{}} records", batch.len()));
        Ok(())
    }}
}}

halo_sdk::archive_sink!({ident});

#[cfg(test)]
mod tests {{
    use halo_sdk::testing::TestHost;

    use super::*;

    #[test]
    fn refuses_oversized_batches() {{
        let host = TestHost::new().with_config("max_batch", "0");
        let record = ArchiveRecord {{
            id: 1,
            at_ms: 0,
            event: halo_sdk::ArchiveEvent::Message,
            conversation: Some(1),
            room: None,
            from: "alice".into(),
            user: None,
            participants: vec!["alice".into()],
            external: false,
            text: Some("hi".into()),
            format: Some("plain".into()),
            json: "{{}}".into(),
        }};
        assert!(matches!({ident}::deliver(&host, &[record]), Err(SinkError::Retry(_))));
    }}
}}
"##
    )
}

fn adapter_template(name: &str, ident: &str) -> String {
    format!(
        r##"//! `{name}`: a Halo federation adapter for a made-up line protocol (replace it with yours).
//! The host owns the connection; this code only turns inputs into actions (sans-IO).
//!
//! The protocol: we send `HELLO <secret>`, the gateway answers `WELCOME`; then
//! `MSG <from> <to> <text>` lines go both ways.

use std::cell::RefCell;

use halo_sdk::{{Action, FederationAdapter, Host, Input, LinkSpec, Message, Rejection}};

halo_sdk::manifest!(
    r#"{{"name": "{name}", "version": "0.1.0", "kind": "federation-adapter", "api": "halo:plugin@0.1.4",
  "description": "Describe the network {name} connects to.",
  "capabilities": ["net"],
  "config": {{
    "server_host": {{"type": "string", "default": "127.0.0.1", "description": "The gateway's address"}},
    "server_port": {{"type": "integer", "default": "7000", "description": "The gateway's port (grant net:host:port)"}},
    "secret": {{"type": "string", "required": true, "description": "Shared secret"}}
  }}}}"#
);

thread_local! {{
    /// Bytes received and not yet a whole line.
    static BUFFER: RefCell<Vec<u8>> = const {{ RefCell::new(Vec::new()) }};
}}

/// Longest line accepted from the gateway.
const MAX_LINE: usize = 64 * 1024;

/// The adapter.
pub struct {ident};

impl FederationAdapter for {ident} {{
    fn start(host: &dyn Host) -> Vec<Action> {{
        BUFFER.with(|b| b.borrow_mut().clear());
        let host_name = host.config("server_host").unwrap_or_else(|| "127.0.0.1".into());
        let port = host.config("server_port").and_then(|p| p.parse().ok()).unwrap_or(7000);
        vec![Action::Open(LinkSpec {{ id: 1, host: host_name, port, tls_name: None }}), Action::Routing(false)]
    }}

    fn handle(host: &dyn Host, input: Input) -> Vec<Action> {{
        match input {{
            Input::Connected(link) => {{
                let secret = host.config("secret").unwrap_or_default();
                vec![Action::Send(link, format!("HELLO {{secret}}\n").into_bytes())]
            }}
            Input::Data(_, bytes) => lines(&bytes).into_iter().flat_map(|l| on_line(&l)).collect(),
            Input::Closed(..) => {{
                BUFFER.with(|b| b.borrow_mut().clear());
                vec![Action::Routing(false)]
            }}
            Input::Message(m) => vec![Action::Send(1, format!("MSG {{}} {{}} {{}}\n", m.from, m.to, m.text.replace('\n', " ")).into_bytes())],
            // Timers, presence, subscriptions, group traffic, and what server-side protocols
            // use (accepted links, TLS, SRV answers): nothing here. Newer WIT versions may add
            // inputs.
            _ => vec![],
        }}
    }}
}}

/// Whole lines out of what arrived (a line longer than `MAX_LINE` is dropped).
fn lines(bytes: &[u8]) -> Vec<String> {{
    BUFFER.with(|b| {{
        let mut buf = b.borrow_mut();
        buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(end) = buf.iter().position(|c| *c == b'\n') {{
            let line: Vec<u8> = buf.drain(..=end).collect();
            out.push(String::from_utf8_lossy(&line[..end]).into_owned());
        }}
        if buf.len() > MAX_LINE {{
            buf.clear();
        }}
        out
    }})
}}

fn on_line(line: &str) -> Vec<Action> {{
    let mut parts = line.splitn(4, ' ');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {{
        (Some("WELCOME"), ..) => vec![Action::Routing(true)],
        (Some("MSG"), Some(from), Some(to), Some(text)) if from.contains('@') => {{
            vec![Action::DeliverMessage(Message {{ from: from.into(), to: to.into(), text: text.into(), id: None }})]
        }}
        _ => vec![Action::Reject(Rejection {{ domain: None, reason: format!("unexpected line: {{}}", line.chars().take(80).collect::<String>()) }})],
    }}
}}

halo_sdk::federation_adapter!({ident});

#[cfg(test)]
mod tests {{
    use halo_sdk::testing::{{AdapterHarness, TestHost}};

    use super::*;

    #[test]
    fn greets_routes_and_carries_messages_both_ways() {{
        let mut h = AdapterHarness::<{ident}>::new(TestHost::new().with_config("secret", "s3cret"));
        h.start();
        h.connected(1);
        assert_eq!(h.sent_text(1), "HELLO s3cret\n");
        h.data(1, b"WELC");
        assert!(!h.routing());
        h.data(1, b"OME\n");
        assert!(h.routing());
        h.message("alice", "bob@example.org", "hi");
        assert_eq!(h.sent_text(1), "MSG alice bob@example.org hi\n");
        h.data(1, b"MSG bob@example.org alice hello there\n");
        assert_eq!(h.delivered_messages()[0].text, "hello there");
        h.data(1, b"NONSENSE\n");
        assert_eq!(h.rejections().len(), 1);
        h.closed(1, "reset");
        assert!(!h.routing());
    }}
}}
"##
    )
}
