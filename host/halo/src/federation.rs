//! `halo federation …`: federation rules and state over the REST API.

use halo_client::segment;
use serde_json::{Value, json};

use crate::admin::connect;
use crate::cli::{FederationArgs, FederationCommand};

pub fn main(args: FederationArgs) -> anyhow::Result<()> {
    let client = connect(&args.client)?;
    let path = |d: &str| format!("/api/v1/admin/federation/domains/{}", segment(d));
    let overview = match args.command {
        FederationCommand::Status => client.call_json("GET", "/api/v1/admin/federation", None)?,
        FederationCommand::Allow { domain, adapter, url, secret, ca } => {
            if adapter.is_none() && url.is_none() {
                anyhow::bail!(
                    "say how {domain} is reached: --adapter <plugin> or --url https://peer:port --secret ..."
                );
            }
            // The server opens the CA file: a relative path means one from here, not from
            // the server's working directory.
            let ca = match ca {
                Some(p) => {
                    Some(std::path::absolute(&p).map_err(|e| anyhow::anyhow!("--ca {p}: {e}"))?.display().to_string())
                }
                None => None,
            };
            let body = json!({"adapter": adapter, "url": url, "secret": secret, "ca": ca});
            client.call_json("PUT", &path(&domain), Some(&body))?
        }
        FederationCommand::Block { domain } => {
            client.call_json("PUT", &path(&domain), Some(&json!({"access": "block"})))?
        }
        FederationCommand::Remove { domain } => {
            client.call("DELETE", &path(&domain), None)?;
            println!("{domain}: rule removed");
            return Ok(());
        }
    };
    if args.client.json {
        println!("{}", serde_json::to_string_pretty(&overview).unwrap_or_default());
    } else {
        print(&overview);
    }
    Ok(())
}

fn print(o: &Value) {
    let s = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    println!("this server: {}", o["domain"].as_str().unwrap_or("(no [federation] domain set)"));
    let domains = o["domains"].as_array().cloned().unwrap_or_default();
    if domains.is_empty() {
        println!("no federated domains: `halo federation allow <domain> --adapter xmpp` adds one");
    }
    for d in domains {
        let via = match (d["adapter"].as_str(), d["url"].as_str()) {
            (Some(a), _) => format!("adapter {a}"),
            (_, Some(u)) => format!("Halo peer {u}"),
            _ => "-".to_owned(),
        };
        let st = &d["status"];
        let mut line = format!(
            "{:<24} {:<6} {:<40} queued {:<5} link {}",
            s(&d["domain"]),
            s(&d["access"]),
            via,
            d["queued"].as_u64().unwrap_or(0),
            st["state"].as_str().unwrap_or("-"),
        );
        if let Some(b) = st["breaker"].as_str().filter(|b| *b != "closed") {
            line.push_str(&format!(" ({b}, {} failures)", st["failures"].as_u64().unwrap_or(0)));
        }
        if st.is_object() {
            let n = |k: &str| st[k].as_u64().unwrap_or(0);
            line.push_str(&format!(" sent {} received {} rejected {}", n("sent"), n("received"), n("rejected")));
        }
        if let Some(e) = st["last_error"].as_str() {
            line.push_str(&format!("\n{:>26}last error: {e}", ""));
        }
        println!("{line}");
    }
    // Refusals by the sender's domain, including domains with no rule (a stranger knocking).
    let rejected: Vec<String> = o["rejected"]
        .as_object()
        .map(|m| m.iter().map(|(d, n)| format!("{d} ({})", n.as_u64().unwrap_or(0))).collect())
        .unwrap_or_default();
    if !rejected.is_empty() {
        println!("refused remote traffic from: {}", rejected.join(", "));
    }
}
