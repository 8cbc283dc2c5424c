//! Command-line options.

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "qpsmtpd",
    version,
    about = "qpsmtpd-rs: an extensible SMTP server with qpsmtpd's plugins and config files",
    long_about = "Without --listen, serves one SMTP session on stdin/stdout (tcpserver, xinetd, \
inetd, systemd Accept=yes). With --listen, binds the given addresses and starts one child per \
connection (the forkserver).\n\nControl files are looked up in --config-dir, $QPSMTPD_CONFIG, \
/etc/qpsmtpd and $QMAIL/control, in that order, file by file."
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Directory searched first for control files (plugins, me, rcpthosts, ...).
    #[arg(long, value_name = "DIR")]
    pub config_dir: Option<PathBuf>,

    /// Listen on ADDR:PORT (repeatable; IPv6 as [::1]:25) and fork a child per connection.
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Vec<SocketAddr>,

    /// Most connections served at once; more get 421.
    #[arg(long, value_name = "N", default_value_t = 15)]
    pub max_connections: usize,

    /// Most connections from one IP address at once (enforced by the hosts_allow plugin); 0 = no limit.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub max_from_ip: usize,

    /// Run as this user after binding (also sets its groups).
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,

    /// Run with this primary group (default: the user's).
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,

    /// Write the server's PID here; refuse to start if the PID recorded there is running.
    #[arg(long, value_name = "PATH")]
    pub pid_file: Option<PathBuf>,

    /// Go to the background after binding.
    #[arg(long)]
    pub detach: bool,

    /// Seconds to let sessions finish after SIGTERM before they are killed.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub shutdown_timeout: u64,
}

/// Tools that come with the server.
#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Print one row per connection from a qpsmtpd log (loglevel 6 or more): IP, HELO,
    /// sender, recipients, each plugin's pass/fail, and what became of the mail.
    Summarize {
        /// Log files to read (default: standard input).
        files: Vec<PathBuf>,
    },
    /// Make a DKIM signing key for DOMAIN, for the dkim plugin: writes dkim/DOMAIN/selector,
    /// dkim/DOMAIN/private (mode 0600) and dkim/DOMAIN/dns under the configuration
    /// directory, and prints the DNS TXT record to publish.
    DkimKeygen(DkimKeygen),
}

/// The arguments of `qpsmtpd dkim-keygen`.
#[derive(clap::Args, Debug, Clone)]
pub struct DkimKeygen {
    /// The domain the key signs for (the domain of the From addresses).
    pub domain: String,

    /// The selector: the key's name in DNS, <selector>._domainkey.<domain> (default: the
    /// month and year, such as may2024).
    #[arg(long, value_name = "S")]
    pub selector: Option<String>,

    /// The kind of key.
    #[arg(long = "type", value_enum, default_value_t = DkimKeyType::Rsa)]
    pub key_type: DkimKeyType,

    /// The size of an RSA key in bits, 2048 to 4096 (default 2048).
    #[arg(long, value_name = "N")]
    pub bits: Option<usize>,

    /// The configuration directory to write dkim/DOMAIN/ into (default: the first of
    /// --config-dir, $QPSMTPD_CONFIG and /etc/qpsmtpd).
    #[arg(long, value_name = "DIR")]
    pub config_dir: Option<PathBuf>,

    /// Replace an existing key of that domain.
    #[arg(long)]
    pub force: bool,
}

/// Key types of `dkim-keygen`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DkimKeyType {
    /// RSA with SHA-256 (rsa-sha256), understood by every receiver.
    Rsa,
    /// Ed25519 (ed25519-sha256, RFC 8463), not checked by every receiver yet.
    Ed25519,
}
