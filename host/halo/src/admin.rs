//! The admin verbs: clients of the admin REST API.

use std::io::BufRead;

use anyhow::Context;
use halo_client::{Client, segment};
use serde_json::{Value, json};

use crate::cli::{ClientArgs, UserArgs, UserCommand};
use crate::config;
use crate::local::Local;

/// Connects with --server/--token, else with the local server's credentials.
pub fn connect(args: &ClientArgs) -> anyhow::Result<Client> {
    let read_ca =
        |p: &std::path::Path| std::fs::read(p).with_context(|| format!("reading CA certificate {}", p.display()));
    let (url, token, ca) = match (&args.server, &args.token) {
        (Some(server), Some(token)) => (server.clone(), token.clone(), args.ca_cert.clone()),
        (None, token) => {
            let local = Local::read(&config::data_dir(&args.config)?)?;
            (local.url, token.clone().unwrap_or(local.token), args.ca_cert.clone().or(local.ca_cert))
        }
        (Some(_), None) => anyhow::bail!("--server needs --token (or HALO_TOKEN): log in with POST /api/v1/login"),
    };
    let ca = ca.as_deref().map(read_ca).transpose()?;
    Ok(Client::new(&url, Some(token), ca.as_deref())?)
}

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("reading the password from stdin")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        let first = rpassword::prompt_password("Password: ")
            .context("cannot prompt for a password (no terminal?); use --password-stdin")?;
        let again = rpassword::prompt_password("Again: ")?;
        anyhow::ensure!(first == again, "the passwords differ");
        first
    };
    anyhow::ensure!(!password.is_empty(), "empty password");
    Ok(password)
}

pub fn user(args: UserArgs) -> anyhow::Result<()> {
    let client = connect(&args.client)?;
    let json_out = args.client.json;
    let user_path = |u: &str| format!("/api/v1/users/{}", segment(u));
    match args.command {
        UserCommand::Add {
            username,
            display_name,
            email,
            title,
            department,
            phone,
            admin,
            compliance,
            password_stdin,
        } => {
            let password = read_password(password_stdin)?;
            let roles: Vec<&str> =
                [(admin, "admin"), (compliance, "compliance")].into_iter().filter(|r| r.0).map(|r| r.1).collect();
            let body = json!({
                "username": username, "password": password, "display_name": display_name, "email": email,
                "title": title, "department": department, "phone": phone, "roles": roles,
            });
            let user = client.call_json("POST", "/api/v1/users", Some(&body))?;
            print_user(&user, json_out, "created");
        }
        UserCommand::List => {
            let mut after: Option<String> = None;
            let mut all = Vec::new();
            loop {
                let path = match &after {
                    Some(a) => format!("/api/v1/users?limit=1000&after={}", segment(a)),
                    None => "/api/v1/users?limit=1000".to_owned(),
                };
                let page = client.call_json("GET", &path, None)?;
                all.extend(page["users"].as_array().cloned().unwrap_or_default());
                match page["next"].as_str() {
                    Some(n) => after = Some(n.to_owned()),
                    None => break,
                }
            }
            if json_out {
                println!("{}", Value::Array(all));
            } else {
                println!("{:<24} {:<28} {:<20} STATE", "USERNAME", "DISPLAY NAME", "ROLES");
                for u in &all {
                    println!("{:<24} {:<28} {:<20} {}", s(&u["username"]), s(&u["display_name"]), roles(u), state(u));
                }
            }
        }
        UserCommand::Show { username } => {
            print_user(&client.call_json("GET", &user_path(&username), None)?, json_out, "")
        }
        UserCommand::Disable { username } => print_user(
            &client.call_json("POST", &format!("{}/disable", user_path(&username)), None)?,
            json_out,
            "disabled",
        ),
        UserCommand::Enable { username } => print_user(
            &client.call_json("POST", &format!("{}/enable", user_path(&username)), None)?,
            json_out,
            "enabled",
        ),
        UserCommand::Remove { username } => {
            client.call("DELETE", &user_path(&username), None)?;
            if !json_out {
                println!("removed {username}");
            }
        }
        UserCommand::Unlock { username, address } => {
            let (path, what) = match (username, address) {
                (_, Some(a)) => {
                    (format!("/api/v1/admin/login-addresses/{}/unlock", segment(&a)), format!("address {a}"))
                }
                (Some(u), None) => (format!("{}/unlock", user_path(&u)), u),
                (None, None) => anyhow::bail!("name an account or --address"),
            };
            client.call("POST", &path, None)?;
            if !json_out {
                println!("unlocked {what}");
            }
        }
        UserCommand::Passwd { username, password_stdin } => {
            let password = read_password(password_stdin)?;
            client.call(
                "PUT",
                &format!("{}/password", user_path(&username)),
                Some(&json!({ "password": password })),
            )?;
            if !json_out {
                println!("password of {username} changed; its sessions ended");
            }
        }
    }
    Ok(())
}

pub fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn roles(u: &Value) -> String {
    u["roles"].as_array().map(|r| r.iter().map(s).collect::<Vec<_>>().join(",")).unwrap_or_default()
}

fn state(u: &Value) -> &'static str {
    if u["disabled"].as_bool().unwrap_or(false) { "disabled" } else { "enabled" }
}

fn print_user(u: &Value, json_out: bool, verb: &str) {
    if json_out {
        println!("{u}");
        return;
    }
    if !verb.is_empty() {
        println!("{verb} {}", s(&u["username"]));
    }
    for (label, key) in [
        ("display name", "display_name"),
        ("email", "email"),
        ("title", "title"),
        ("department", "department"),
        ("phone", "phone"),
    ] {
        if let Some(v) = u[key].as_str() {
            println!("  {label:<13} {v}");
        }
    }
    println!("  {:<13} {}", "roles", roles(u));
    println!("  {:<13} {}", "state", state(u));
}
