//! `qpsmtpd`: the qpsmtpd-rs SMTP server.
//!
//! With no `--listen`, it serves one SMTP session on stdin/stdout: run it from tcpserver,
//! xinetd, inetd or a systemd `Accept=yes` socket. With `--listen ADDR:PORT` it is the
//! forkserver: it binds, drops privileges, and starts one child per connection.
//!
//! The binary (`src/main.rs`) is a thin wrapper around this library; the library exists
//! so that other crates can reach the command-line definition ([`cli::Args`]), for
//! instance to generate the qpsmtpd(8) manual page from it.

pub mod cli;
pub mod forkserver;
pub mod inetd;
pub mod load;
pub mod pidfile;
pub mod privileges;
pub mod summarize;
