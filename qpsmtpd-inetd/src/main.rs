//! `qpsmtpd`: the qpsmtpd-rs SMTP server (see the `qpsmtpd_inetd` library).
//!
//! With no `--listen`, it serves one SMTP session on stdin/stdout: run it from tcpserver,
//! xinetd, inetd or a systemd `Accept=yes` socket. With `--listen ADDR:PORT` it is the
//! forkserver: it binds, drops privileges, and starts one child per connection.

use clap::Parser;
use qpsmtpd_inetd::{cli, forkserver, inetd, summarize};
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
    if let Some(cli::Command::Summarize { files }) = &args.command {
        return summarize_files(files);
    }
    if let Some(cli::Command::DkimKeygen(keygen)) = &args.command {
        return dkim_keygen(&args, keygen);
    }
    if args.listen.is_empty() {
        inetd::serve(&args)
    } else {
        forkserver::run(&args)
    }
}

/// `qpsmtpd summarize [FILE...]`: the files one after the other, streamed.
fn summarize_files(files: &[std::path::PathBuf]) -> ExitCode {
    use std::io::Read;
    let mut out = std::io::stdout().lock();
    let result = if files.is_empty() {
        summarize::summarize(std::io::stdin().lock(), &mut out)
    } else {
        let mut input: Box<dyn Read> = Box::new(std::io::empty());
        let mut opened = Ok(());
        for f in files {
            match std::fs::File::open(f) {
                Ok(file) => input = Box::new(input.chain(file)),
                Err(e) => {
                    opened = Err(std::io::Error::new(
                        e.kind(),
                        format!("{}: {e}", f.display()),
                    ));
                    break;
                }
            }
        }
        opened.and_then(|()| summarize::summarize(std::io::BufReader::new(input), &mut out))
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("qpsmtpd summarize: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `qpsmtpd dkim-keygen DOMAIN`: a new key in `<config>/dkim/DOMAIN/`, and its DNS record
/// on standard output.
fn dkim_keygen(args: &cli::Args, k: &cli::DkimKeygen) -> ExitCode {
    use qpsmtpd_plugins::dkim::{KeyType, default_selector, generate_key};
    let config_dir = match k.config_dir.clone() {
        Some(dir) => dir,
        None => {
            let dirs = qpsmtpd_core::ConfigDirs::standard(args.config_dir.as_deref(), |name| {
                std::env::var(name).ok()
            });
            dirs.dirs()[0].clone()
        }
    };
    let key_type = match k.key_type {
        cli::DkimKeyType::Rsa => KeyType::Rsa,
        cli::DkimKeyType::Ed25519 => KeyType::Ed25519,
    };
    let selector = k.selector.clone().unwrap_or_else(default_selector);
    match generate_key(&config_dir, &k.domain, &selector, key_type, k.bits, k.force) {
        Ok(made) => {
            eprintln!(
                "qpsmtpd dkim-keygen: wrote {dir}/selector, {dir}/private and {dir}/dns; \
                 publish this record in the DNS zone of {domain}:",
                dir = made.directory.display(),
                domain = made.domain,
            );
            println!("{}", made.record);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("qpsmtpd dkim-keygen: {e}");
            ExitCode::FAILURE
        }
    }
}
