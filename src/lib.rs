//! The `rs2p` command line: definitions and dispatch of node, the clients,
//! status, import, export and demo. The lab commands (bench, soak, sim) are
//! the `rs2p-lab` binary, which shares [`Failure`], [`demo`] and [`progress`].
#![allow(missing_docs)]

mod bulk;
mod client;
pub mod demo;
mod lab_alias;
mod node;
pub mod progress;
mod status;
pub mod svg;
pub mod tls_args;

use clap::{Args, Parser, Subcommand};

/// A failed key lookup or change (missing key, no agreed value, timeout, not confirmed).
pub const EXIT_NOT_FOUND: u8 = 1;
/// Bad arguments (clap's own usage errors also exit 2).
pub const EXIT_USAGE: u8 = 2;
/// The peer could not be reached, or closed during the handshake.
pub const EXIT_UNREACHABLE: u8 = 3;
/// The node could not run (address in use, runtime failure).
pub const EXIT_RUNTIME: u8 = 4;

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  get: key not found, no value agreed by 3 of 5 tables, owners
     unreachable (unavailable), or timeout; set/del: the change was not
     readable before the timeout; import/export: some key failed;
     status: no answer before the timeout
  2  bad arguments
  3  the peer is unreachable, closed during the handshake (another subnet?),
     or no seeding node is reachable through it (node: only a --connect
     peer on another subnet; an unreachable one is retried; status: the
     peer is not an rs2p node)
  4  cannot listen (address in use), a data directory that cannot be used,
     or another runtime failure";

/// rs2p: a peer-to-peer distributed hash table, wire-compatible with py2p 0.5.607.
#[derive(Parser, Debug)]
#[command(name = "rs2p", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    /// Log level (error, warn, info, debug, trace); RUST_LOG overrides it.
    #[arg(long, global = true)]
    pub log_level: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run one node until SIGINT or SIGTERM, then leave gracefully (hand data over) and exit 0.
    #[command(after_help = EXIT_CODES)]
    Node(node::NodeArgs),
    /// Store VALUE at KEY through a peer; returns once the value is readable.
    #[command(after_help = EXIT_CODES)]
    Set {
        /// The key.
        key: String,
        /// The value.
        value: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Print the value at KEY (followed by one newline).
    #[command(after_help = EXIT_CODES)]
    Get {
        /// The key.
        key: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete KEY through a peer; returns once the key reads as missing.
    #[command(after_help = EXIT_CODES)]
    Del {
        /// The key.
        key: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Print the network-wide key list as a peer knows it, one key per line.
    #[command(after_help = EXIT_CODES)]
    Keys {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show what a node sees: its id, items, links, ring neighbours and the
    /// ring as it knows it (asked over the protocol; rs2p nodes only).
    #[command(after_help = EXIT_CODES)]
    Status(status::StatusArgs),
    /// Load keys from FILE (or standard input) through a peer: lines of
    /// `KEY<TAB>VALUE` (escapes: \\ \t \n \r \xHH) or, with --json,
    /// `{"key": .., "value": ..}`. Exits 1 unless every key reads back.
    #[command(after_help = EXIT_CODES)]
    Import(bulk::ImportArgs),
    /// Write every key and value of the ring, in the format `import` reads.
    #[command(after_help = EXIT_CODES)]
    Export(bulk::ExportArgs),
    /// Run a local ring on loopback, store sample keys, read them back, and summarise.
    #[command(after_help = EXIT_CODES)]
    Demo(demo::DemoArgs),
    /// Moved to `rs2p-lab bench` (same flags and JSON); runs it if it is installed beside rs2p.
    #[command(disable_help_flag = true)]
    Bench(lab_alias::LabArgs),
    /// Moved to `rs2p-lab soak` (same flags and JSON); runs it if it is installed beside rs2p.
    #[command(disable_help_flag = true)]
    Soak(lab_alias::LabArgs),
    /// Moved to `rs2p-lab sim` (same flags and JSON); runs it if it is installed beside rs2p.
    #[command(disable_help_flag = true)]
    Sim(lab_alias::LabArgs),
}

/// Options shared by the client subcommands (short-lived leeching nodes).
#[derive(Args, Debug, Clone)]
pub struct ClientArgs {
    /// A node of the ring, HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    pub peer: String,
    /// Subnet name (py2p's chord default is "chord").
    #[arg(long, default_value = "chord")]
    pub subnet: String,
    /// Seconds to wait (whole or fractional; default 10): for get, set,
    /// del and status, for the answer; for keys, import and export, the
    /// bound of the whole run when given (without it: 10 s for each step,
    /// the key list while it keeps arriving and each batch of reads or
    /// confirmations, so a large import is not cut short).
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub timeout: Option<std::time::Duration>,
    /// Local address for the client's own listener.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:0")]
    pub bind: String,
    #[command(flatten)]
    pub tls: tls_args::TlsArgs,
}

/// `--timeout` when not given.
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl ClientArgs {
    /// `--timeout`, or [`DEFAULT_TIMEOUT`].
    pub fn timeout(&self) -> std::time::Duration {
        self.timeout.unwrap_or(DEFAULT_TIMEOUT)
    }
}

/// Parses whole or fractional seconds.
pub fn parse_secs(text: &str) -> Result<std::time::Duration, String> {
    let secs: f64 = text.trim().parse().map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !secs.is_finite() || secs <= 0.0 || secs > 1e9 {
        return Err(format!("{text:?} must be a positive number of seconds"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// A failure with its exit code and one-line message.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure { code, message: message.into() }
    }
}

/// Sets up `tracing` on stderr: RUST_LOG wins, then --log-level, then a
/// per-command default (info for a node, warn for demo and bench, error for clients).
pub fn init_logging(cli: &Cli) {
    let default = match cli.command {
        Command::Node(_) => "info",
        Command::Demo(_) => "warn",
        // Clients print one line on failure; their node's warnings would repeat it.
        _ => "error",
    };
    init_logging_with(cli.log_level.as_deref(), default);
}

/// Sets up `tracing` on stderr: RUST_LOG wins, then `level`, then `default`.
pub fn init_logging_with(level: Option<&str>, default: &str) {
    let level = level.unwrap_or(default);
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

pub async fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Node(args) => node::run(args).await,
        Command::Set { key, value, client } => client::set(&client, &key, &value).await,
        Command::Get { key, client } => client::get(&client, &key).await,
        Command::Del { key, client } => client::del(&client, &key).await,
        Command::Keys { client } => client::keys(&client).await,
        Command::Status(args) => status::run(args).await,
        Command::Import(args) => bulk::import(&args).await,
        Command::Export(args) => bulk::export(&args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Bench(args) => lab_alias::run("bench", args, cli.log_level.as_deref()),
        Command::Soak(args) => lab_alias::run("soak", args, cli.log_level.as_deref()),
        Command::Sim(args) => lab_alias::run("sim", args, cli.log_level.as_deref()),
    }
}

/// Maps a socket error to an exit code and a one-line message.
pub fn net_failure(e: rs2p::Error) -> Failure {
    use rs2p::Error as E;
    let code = match &e {
        E::Bind { .. } => EXIT_RUNTIME,
        E::BadAddress(_) | E::Tls(_) | E::UnknownEncryption(_) => EXIT_USAGE,
        E::Connect { .. } | E::Refused(_) => EXIT_UNREACHABLE,
        E::Get(_) | E::KeyNotFound(_) => EXIT_NOT_FOUND,
        _ => EXIT_RUNTIME,
    };
    let message = match &e {
        E::Bind { addr, source } if source.kind() == std::io::ErrorKind::AddrInUse => {
            format!("cannot listen on {addr}: address already in use")
        }
        _ => e.to_string(),
    };
    Failure::new(code, message)
}
