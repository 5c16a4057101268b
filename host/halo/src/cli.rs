//! Command-line syntax.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Halo: an IM and presence server whose extension points are WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "halo", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (zero-config: data in ./halo-data, listening on 127.0.0.1:7420).
    Serve(ServeArgs),
    /// Manage user accounts on a running server (admin).
    #[command(subcommand_required = true)]
    User(UserArgs),
    /// Manage plugins on a running server (admin), or scaffold and pack plugins.
    #[command(subcommand_required = true)]
    Plugin(PluginArgs),
    /// Compliance archiving: policy and retention (admin), search and export (compliance).
    #[command(subcommand_required = true)]
    Archive(ArchiveArgs),
    /// Federation with other servers: domain rules, links and queues (admin).
    #[command(subcommand_required = true)]
    Federation(FederationArgs),
    /// The pool this server belongs to (`halo serve --cluster`): nodes, groups, JetStream.
    #[command(subcommand_required = true)]
    Pool(PoolArgs),
}

#[derive(Debug, Args)]
pub struct PoolArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: PoolCommand,
}

#[derive(Debug, Subcommand)]
pub enum PoolCommand {
    /// The live nodes with their users and sockets, who runs each presence group and the
    /// once-per-pool tasks, how far each node's IM log and the once-per-pool consumers are
    /// behind, and JetStream's health (each stream's replicas, leader and replica lag).
    Status,
}

#[derive(Debug, Args)]
pub struct FederationArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: FederationCommand,
}

#[derive(Debug, Subcommand)]
pub enum FederationCommand {
    /// Rules, each transport's state, and what waits in the queues.
    Status,
    /// Allow a domain (or `*`, every domain without a rule of its own) through an adapter
    /// plugin (--adapter xmpp) or to a Halo peer (--url https://peer:5271 --secret ...).
    Allow {
        /// The domain, or `*`.
        domain: String,
        /// The federation-adapter plugin carrying it.
        #[arg(long, conflicts_with = "url")]
        adapter: Option<String>,
        /// The Halo peer's federation URL.
        #[arg(long, requires = "secret")]
        url: Option<String>,
        /// The secret shared with the peer (16 bytes or more; its admin sets the same).
        #[arg(long, env = "HALO_FEDERATION_SECRET", hide_env_values = true)]
        secret: Option<String>,
        /// A PEM file of CA certificates to trust for the peer instead of the public roots.
        #[arg(long)]
        ca: Option<String>,
    },
    /// Block a domain: nothing in or out, whatever `*` says.
    Block {
        /// The domain.
        domain: String,
    },
    /// Remove a domain's rule (and drop what waits for it).
    Remove {
        /// The domain, or `*`.
        domain: String,
    },
}

#[derive(Debug, Args)]
pub struct ArchiveArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: ArchiveCommand,
}

/// What is archived: `all`, `internal` (this server's users only), `external` (federated
/// conversations only) or `off`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Scope {
    /// Internal and external conversations.
    All,
    /// Conversations among this server's users.
    Internal,
    /// Conversations with a federated participant.
    External,
    /// Nothing.
    Off,
}

/// Filters of the archive (all given ones must hold).
#[derive(Debug, Clone, Args)]
pub struct ArchiveFilter {
    /// Words (all must match; "a phrase" and -word work).
    #[arg(long, short)]
    pub q: Option<String>,
    /// Events this user took part in.
    #[arg(long)]
    pub user: Option<String>,
    /// One conversation.
    #[arg(long)]
    pub conversation: Option<u64>,
    /// One room.
    #[arg(long)]
    pub room: Option<u64>,
    /// From this day (YYYY-MM-DD, UTC) or time (ms since the Unix epoch).
    #[arg(long)]
    pub since: Option<String>,
    /// Before this day (YYYY-MM-DD, UTC) or time (ms).
    #[arg(long)]
    pub until: Option<String>,
    /// Most records.
    #[arg(long)]
    pub limit: Option<usize>,
}

#[derive(Debug, Subcommand)]
pub enum ArchiveCommand {
    /// Show the global and per-user policies.
    Policy,
    /// Set the global policy, or a user's own with --user (it wins over the global one).
    SetPolicy {
        /// What to archive.
        scope: Scope,
        /// The user whose own policy to set.
        #[arg(long)]
        user: Option<String>,
    },
    /// Remove a user's own policy (the global one applies again).
    ClearPolicy {
        /// The user.
        user: String,
    },
    /// Show the settings, or change some: block_on_failure=true block_after_secs=60
    /// block_backlog=100000 keep_days=365 (0 keeps for ever).
    Settings {
        /// key=value pairs to change.
        values: Vec<String>,
    },
    /// Records kept, whether messages are being refused, and each sink's backlog and health.
    Status,
    /// Search the archive (compliance role), newest first.
    Search(ArchiveFilter),
    /// Export matching records as JSON Lines, oldest first (compliance role).
    Export {
        #[command(flatten)]
        filter: ArchiveFilter,
        /// Write to this file instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Apply retention now: remove records older than keep_days (or --older-than-hours) that
    /// every sink has stored.
    Purge {
        /// Remove records older than this many hours instead of keep_days.
        #[arg(long)]
        older_than_hours: Option<u64>,
    },
}

#[derive(Debug, Args)]
pub struct PluginArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: PluginCommand,
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Install a plugin: shows what it asks for and grants only what you allow (deny by default).
    Install {
        /// The component (.wasm).
        file: PathBuf,
        /// Grant a capability it asks for (repeatable), e.g. --grant kv, --grant dir:/var/lib/halo/archive.
        #[arg(long = "grant", value_name = "CAPABILITY")]
        grants: Vec<String>,
        /// Grant everything it asks for, without asking (scripts).
        #[arg(long)]
        yes: bool,
        /// Config to set after installing: a TOML file of key = "value" pairs. (Not
        /// `--config`, which names halo.toml for every verb.)
        #[arg(long, value_name = "FILE")]
        plugin_config: Option<PathBuf>,
        /// Install disabled.
        #[arg(long)]
        disabled: bool,
    },
    /// List plugins.
    List,
    /// Show a plugin: manifest, grants, config, states, health.
    Info {
        /// Plugin name.
        name: String,
    },
    /// Enable a plugin.
    Enable {
        /// Plugin name.
        name: String,
    },
    /// Disable a plugin (presence falls back to the built-in states).
    Disable {
        /// Plugin name.
        name: String,
    },
    /// Set a plugin's config from a TOML file or key=value pairs (replaces the whole config).
    Config {
        /// Plugin name.
        name: String,
        /// A TOML file, or key=value pairs.
        #[arg(required = true)]
        values: Vec<String>,
    },
    /// Set a plugin's own limits as key=value pairs (e.g. deadline=20ms memory_bytes=33554432),
    /// over the server's defaults; `--reset` goes back to the server's.
    Limits {
        /// Plugin name.
        name: String,
        /// key=value pairs: deadline, batch_deadline, memory_bytes, instances, max_traps,
        /// trap_window, max_states, log_lines_per_sec, kv_quota_bytes, dir_quota_bytes,
        /// cpu_budget, cpu_window, cpu_strikes.
        values: Vec<String>,
        /// Use the server's limits again.
        #[arg(long)]
        reset: bool,
    },
    /// Upgrade a plugin to a new version of it; shows the permission diff.
    Upgrade {
        /// Plugin name.
        name: String,
        /// The new component (.wasm).
        file: PathBuf,
        /// Grants for the new version (default: keep the old ones it still asks for).
        #[arg(long = "grant", value_name = "CAPABILITY")]
        grants: Vec<String>,
        /// Grant everything the new version asks for.
        #[arg(long)]
        yes: bool,
    },
    /// Grant capabilities to an installed plugin, effective at once: each one it asks for
    /// and its kind may have (e.g. kv, dir:/var/lib/halo/archive, net:127.0.0.1:5347).
    Grant {
        /// Plugin name.
        name: String,
        /// Capabilities, `name` or `name:value`.
        #[arg(required = true, value_name = "CAPABILITY")]
        grants: Vec<String>,
    },
    /// Take capabilities away from a plugin, effective at once (a bare name, e.g. `net`, takes
    /// every grant of it; `net:host:port` that one).
    Revoke {
        /// Plugin name.
        name: String,
        /// Capabilities, `name` or `name:value`.
        #[arg(required = true, value_name = "CAPABILITY")]
        grants: Vec<String>,
    },
    /// Remove a plugin and its storage.
    Remove {
        /// Plugin name.
        name: String,
    },
    /// Show a plugin's recent log lines.
    Logs {
        /// Plugin name.
        name: String,
    },
    /// Scaffold a new plugin crate that builds to wasm32-wasip2 and installs as is.
    New {
        /// Plugin name (a-z, 0-9, -).
        name: String,
        /// Plugin kind: presence-states, archive-sink or federation-adapter.
        #[arg(long, default_value = "presence-states")]
        kind: String,
        /// Where to create it [default: ./<name>].
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Path to a halo-sdk crate (Halo's sdk/ folder) for the generated Cargo.toml [default: the SDK
        /// shipped in this binary, written to <dir>/vendor/halo-sdk].
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Write the SDK shipped in this binary to DIR (DIR/halo-sdk and the WIT packages in DIR/wit),
    /// e.g. to update a plugin's vendor/ folder after upgrading Halo.
    Sdk {
        /// Where to write it.
        dir: PathBuf,
    },
    /// Add a manifest to a component built without the SDK (e.g. with componentize-py).
    Pack {
        /// The component.
        file: PathBuf,
        /// The manifest (JSON).
        #[arg(long)]
        manifest: PathBuf,
        /// Where to write the packed component.
        #[arg(short, long)]
        output: PathBuf,
    },
}

/// Where the configuration comes from: flag > HALO_* environment > halo.toml > default.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// Configuration file [default: ./halo.toml if it exists].
    #[arg(long, env = "HALO_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory [default: ./halo-data].
    #[arg(long, env = "HALO_DATA_DIR", global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Address to listen on [default: 127.0.0.1:7420]; use 0.0.0.0:7420 to accept remote users.
    #[arg(long, env = "HALO_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// PEM certificate chain: serve HTTPS/WSS (needs --tls-key).
    #[arg(long, env = "HALO_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "HALO_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Log filter, e.g. `info` or `halo_services::presence=debug` [default: info; env RUST_LOG also works].
    #[arg(long, env = "HALO_LOG", value_name = "FILTER")]
    pub log: Option<String>,
    /// Install this plugin component at start if no plugin of its name is installed (disabled
    /// until an admin configures and enables it). Repeatable.
    #[arg(long, value_name = "FILE")]
    pub preinstall: Vec<PathBuf>,
    /// Join a pool: the NATS JetStream cluster holding its state, as comma-separated URLs
    /// (nats://10.0.0.1:4222,nats://10.0.0.2:4222). Without it (nor [cluster] urls), the node
    /// keeps its state in its own data directory.
    #[arg(long, env = "HALO_CLUSTER", value_name = "URLS")]
    pub cluster: Option<String>,
    /// This node's name in the pool [default: [cluster] node, else one generated once and kept
    /// in the data directory (node-id)].
    #[arg(long, env = "HALO_NODE", value_name = "NAME")]
    pub node: Option<String>,
}

/// How an admin verb reaches the server: --server/--token, else the local server's own
/// credentials from its data directory.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Server URL, e.g. https://halo.example.com [default: the local server].
    #[arg(long, env = "HALO_SERVER", global = true, value_name = "URL")]
    pub server: Option<String>,
    /// Bearer token of an admin [default: the local server's CLI token].
    #[arg(long, env = "HALO_TOKEN", global = true, value_name = "TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Extra trusted CA certificate (PEM) for a server with a private certificate.
    #[arg(long, env = "HALO_CA_CERT", global = true, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct UserArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: UserCommand,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account (asks for the password, or reads it from stdin with --password-stdin).
    Add {
        /// Account name: 1-64 of a-z 0-9 . _ -
        username: String,
        /// Name shown to others.
        #[arg(long)]
        display_name: Option<String>,
        /// E-mail address.
        #[arg(long)]
        email: Option<String>,
        /// Job title.
        #[arg(long)]
        title: Option<String>,
        /// Department.
        #[arg(long)]
        department: Option<String>,
        /// Phone number.
        #[arg(long)]
        phone: Option<String>,
        /// Give the admin role.
        #[arg(long)]
        admin: bool,
        /// Give the compliance role.
        #[arg(long)]
        compliance: bool,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List accounts.
    List,
    /// Show one account.
    Show {
        /// Account name.
        username: String,
    },
    /// Disable an account: it can no longer log in and its sessions end.
    Disable {
        /// Account name.
        username: String,
    },
    /// Enable a disabled account.
    Enable {
        /// Account name.
        username: String,
    },
    /// Delete an account. Its name is retired: no new account can take it.
    Remove {
        /// Account name.
        username: String,
    },
    /// Clear an account's failed logins (ends its lockout), or with --address end the login
    /// slowdown of a client address.
    Unlock {
        /// Account name.
        #[arg(required_unless_present = "address", conflicts_with = "address")]
        username: Option<String>,
        /// A client IP address instead of an account.
        #[arg(long)]
        address: Option<String>,
    },
    /// Set an account's password (its sessions end).
    Passwd {
        /// Account name.
        username: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}
