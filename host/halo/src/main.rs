//! `halo`: the Halo IM and presence server (`halo serve`) and its admin command-line tool.
//!
//! This crate only parses flags, resolves configuration and wires the library crates:
//! [`halo_store`] for storage, [`halo_server`] for HTTP/WebSocket, [`halo_client`] for the admin
//! verbs, which talk to a running server through its REST API.

mod admin;
mod archive;
mod cli;
mod config;
mod federation;
mod local;
mod plugin;
mod pool;
mod sdk;
mod serve;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    if !matches!(cli.command, cli::Command::Serve(_)) {
        default_sigpipe();
    }
    let result = match cli.command {
        cli::Command::Serve(args) => serve::main(args),
        cli::Command::User(args) => admin::user(args),
        cli::Command::Plugin(args) => plugin::main(args),
        cli::Command::Archive(args) => archive::main(args),
        cli::Command::Federation(args) => federation::main(args),
        cli::Command::Pool(args) => pool::main(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("halo: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Lets a closed pipe end an admin verb quietly (`halo plugin logs x | head`), as it ends
/// `cat`: Rust ignores SIGPIPE, so `println!` would panic on the broken pipe instead. The
/// server keeps ignoring it (a peer closing a socket must not end it).
#[cfg(unix)]
#[allow(unsafe_code)]
fn default_sigpipe() {
    // SAFETY: restores the default disposition of one signal before any thread is started;
    // no handler of ours is involved.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(unix))]
fn default_sigpipe() {}
