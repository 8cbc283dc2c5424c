//! qpsmtpd-core: the engine of qpsmtpd-rs.
//!
//! A driver (stdin/stdout under tcpserver, a forked socket, an nginx-owned fd) hands a
//! [`Transport`] to a [`Session`]. The session reads a command, runs the hook chain of the
//! shared [`Server`], maps the plugins' [`Verdict`] to a reply through the tables in
//! [`respond`], and writes it. Plugins implement [`Plugin`]; they see the session through
//! a [`Context`] and never touch the socket.
//!
//! - [`protocol`]: pure SMTP pieces (command lines, addresses, DATA decoding, replies);
//! - [`config`], [`core_config`]: qmail-style control files and the core's own settings;
//! - [`chain`], [`plugin`], [`hook`]: loading plugins and the hook API;
//! - [`session`]: the state machine; [`transport`]: the wire;
//! - [`testing`]: an in-memory harness for transcript and plugin tests.

pub mod chain;
pub mod config;
pub mod connection;
pub mod context;
pub mod core_config;
pub mod dns;
pub mod header;
pub mod hook;
pub mod log;
pub mod net;
pub mod notes;
pub mod plugin;
pub mod protocol;
pub mod reject;
pub mod respond;
pub mod server;
pub mod session;
pub mod spool;
pub mod testing;
pub mod transaction;
pub mod transport;

pub use chain::{Chain, Entry};
pub use config::{Config, ConfigDirs, ConfigError, ConfigLine, Origin};
pub use connection::{Connection, ConnectionInfo, Hello};
pub use context::{Context, PreConnection, PreConnectionFacts, run_pre_connection};
pub use core_config::CoreConfig;
pub use header::Header;
pub use hook::{Hook, Verdict};
pub use log::{Level, LogRecord};
pub use notes::{Notes, Value};
pub use plugin::{Pairs, Plugin, PluginSpec, Registration, Setup};
pub use protocol::{Address, Params, Reply};
pub use reject::{Reject, RejectMode, RejectType};
pub use server::{Server, VERSION};
pub use session::{Flow, Session};
pub use transaction::Transaction;
pub use transport::{FdTransport, MemoryTransport, Transport};

/// The MIME parser plugins use for header values, re-exported so every plugin uses the same
/// version.
pub use mail_parser;
