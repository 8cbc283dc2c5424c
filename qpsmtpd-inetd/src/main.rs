//! `qpsmtpd`: the qpsmtpd-rs SMTP server (see the `qpsmtpd_inetd` library).
//!
//! With no `--listen`, it serves one SMTP session on stdin/stdout: run it from tcpserver,
//! xinetd, inetd or a systemd `Accept=yes` socket. With `--listen ADDR:PORT` it is the
//! forkserver: it binds, drops privileges, and starts one child per connection.

use clap::Parser;
use qpsmtpd_inetd::{cli, forkserver, inetd};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    // A panic that escapes a plugin's containment is logged on one line like everything
    // else, instead of Rust's multi-line default.
    std::panic::set_hook(Box::new(|info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        qpsmtpd_core::log::write_stderr_line(&format!("{} panic: {what}{at}", std::process::id()));
    }));
    if args.listen.is_empty() {
        inetd::serve(&args)
    } else {
        forkserver::run(&args)
    }
}
