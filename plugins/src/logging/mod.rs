//! Logging plugins (hook `logging`), loaded from `config/logging` before all others.

pub mod adaptive;
pub mod connection_id;
pub mod devnull;
pub mod file;
pub mod syslog;
pub mod transaction_id;
pub mod warn;
