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
    println!(
        "pool {} seen from {}: JetStream {} ({} streams, {} bytes, R{})",
        str(&s["pool"]),
        str(&s["node"]),
        str(&s["jetstream"]),
        s["jetstream_streams"].as_u64().unwrap_or(0),
        s["jetstream_bytes"].as_u64().unwrap_or(0),
        s["replicas"].as_u64().unwrap_or(0),
    );
    println!("{:<16} {:<28} {:>6} {:>8}  {:<12} groups / tasks", "node", "address", "users", "sockets", "nats");
    for n in s["nodes"].as_array().cloned().unwrap_or_default() {
        let groups: Vec<String> =
            n["groups"].as_array().cloned().unwrap_or_default().iter().map(|g| g.to_string()).collect();
        let tasks: Vec<String> = n["tasks"].as_array().cloned().unwrap_or_default().iter().map(str).collect();
        println!(
            "{:<16} {:<28} {:>6} {:>8}  {:<12} [{}] {}",
            str(&n["node"]),
            str(&n["http"]),
            n["users"].as_u64().unwrap_or(0),
            n["endpoints"].as_u64().unwrap_or(0),
            str(&n["nats_server"]),
            groups.join(","),
            tasks.join(","),
        );
    }
    let moving = s["groups"].as_array().map_or(0, |g| g.iter().filter(|o| o.is_null()).count());
    if moving > 0 {
        println!("{moving} presence group(s) have no node right now (moving)");
    }
}
