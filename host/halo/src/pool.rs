//! `halo pool status`: the pool as a node sees it, over the REST API.

use serde_json::Value;

use crate::admin::connect;
use crate::cli::{PoolArgs, PoolCommand};

pub fn main(args: PoolArgs) -> anyhow::Result<()> {
    let client = connect(&args.client)?;
    let status = match args.command {
        PoolCommand::Status => client.call_json("GET", "/api/v1/admin/pool", None)?,
    };
    if args.client.json {
        println!("{}", serde_json::to_string_pretty(&status).unwrap_or_default());
    } else {
        print(&status);
    }
    Ok(())
}

fn print(s: &Value) {
    if s["pooled"] != true {
        println!("standalone server: not a pool member (halo serve --cluster nats://… makes one)");
        return;
    }
    let str = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    let num = |v: &Value| v.as_u64().unwrap_or(0);
    let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
    println!(
        "pool {} seen from {}: JetStream {} ({} streams, {} bytes, R{}), IM stream at {}",
        str(&s["pool"]),
        str(&s["node"]),
        str(&s["jetstream"]),
        num(&s["jetstream_streams"]),
        num(&s["jetstream_bytes"]),
        num(&s["replicas"]),
        num(&s["im_last"]),
    );
    println!(
        "{:<16} {:<28} {:>6} {:>8}  {:<12} {:>10} {:>7} {:>7}  groups / tasks",
        "node", "address", "users", "sockets", "nats", "log", "behind", "follow"
    );
    for n in list(&s["nodes"]) {
        let groups: Vec<String> = list(&n["groups"]).iter().map(|g| g.to_string()).collect();
        let tasks: Vec<String> = list(&n["tasks"]).iter().map(str).collect();
        // The follower furthest behind this node's copy of the log.
        let follow = n["log"]["followers"].as_object().map_or(0, |f| f.values().map(num).max().unwrap_or(0));
        println!(
            "{:<16} {:<28} {:>6} {:>8}  {:<12} {:>10} {:>7} {:>7}  [{}] {}",
            str(&n["node"]),
            str(&n["http"]),
            num(&n["users"]),
            num(&n["endpoints"]),
            str(&n["nats_server"]),
            num(&n["log"]["applied"]),
            num(&n["log"]["behind"]),
            follow,
            groups.join(","),
            tasks.join(","),
        );
    }
    let moving = s["groups"].as_array().map_or(0, |g| g.iter().filter(|o| o.is_null()).count());
    if moving > 0 {
        println!("{moving} presence group(s) have no node right now (moving)");
    }
    let consumers = list(&s["consumers"]);
    if !consumers.is_empty() {
        println!();
        println!("{:<14} {:<24} {:<16} {:>12} {:>12} {:>8}", "task", "consumer", "node", "cursor", "newest", "behind");
        for c in consumers {
            let name = if c["enabled"] == true { str(&c["name"]) } else { format!("{} (disabled)", str(&c["name"])) };
            println!(
                "{:<14} {:<24} {:<16} {:>12} {:>12} {:>8}",
                str(&c["task"]),
                name,
                str(&c["node"]),
                num(&c["cursor"]),
                num(&c["newest"]),
                num(&c["behind"]),
            );
        }
    }
    println!();
    if let Some(e) = s["streams_error"].as_str() {
        println!("streams: JetStream did not list them: {e}");
        return;
    }
    println!("{:<36} {:>2} {:<10} {:>10} {:>12}  replicas", "stream", "R", "leader", "messages", "bytes");
    for st in list(&s["streams"]) {
        let peers: Vec<String> = list(&st["peers"])
            .iter()
            .map(|p| {
                let state = if p["offline"] == true {
                    "offline".to_owned()
                } else if p["current"] == true {
                    "current".to_owned()
                } else {
                    format!("{} behind", num(&p["lag"]))
                };
                format!("{} {state}", str(&p["server"]))
            })
            .collect();
        println!(
            "{:<36} {:>2} {:<10} {:>10} {:>12}  {}",
            str(&st["name"]),
            num(&st["replicas"]),
            str(&st["leader"]),
            num(&st["messages"]),
            num(&st["bytes"]),
            peers.join(", "),
        );
    }
}
