//! # NAME
//!
//! user_config - per-recipient settings from a directory of each user's own
//!
//! # DESCRIPTION
//!
//! Some settings are better made per recipient than for the whole server, such as the
//! largest message a user accepts. When a plugin (or the core) asks for a setting *for a
//! recipient*, this plugin looks for a file
//! of that name in the recipient's own settings directory and, if there is one, answers
//! with its lines. If there is none, the server-wide control file of the same name is
//! used, as if this plugin were not loaded.
//!
//! The directory is *PATTERN* with the recipient's parts put in. With the default
//! `/home/%u/.qpsmtpd/`, the `databytes` setting for `<Joe@Example.COM>` is read from
//! `/home/joe/.qpsmtpd/databytes`. The core asks for `databytes` for every recipient when
//! this plugin is loaded: a recipient whose limit is below the message's announced `SIZE`
//! is refused with `552 5.3.4`, and the message may not exceed the smallest limit of its
//! recipients.
//!
//! The files have the syntax of control files: one value per line, leading and trailing
//! blanks trimmed, empty lines and lines starting with `#` skipped. An existing but empty
//! file means "no values", which overrides the server-wide file.
//!
//! The recipient's address comes from the client, so it is never trusted to name a path:
//! a local part or domain that could leave the directory (`..`, `/`) or holds anything but
//! letters, digits and `-+_.=`, or a domain that is not a plain domain name, gives no
//! per-user settings (the server-wide file is used), and so does a recipient without a
//! domain when the pattern uses `%h` or `%a`. Only regular files (or symbolic links to
//! them) are read, never devices or pipes, and none larger than 1 MiB.
//!
//! Lookups are logged at DEBUG (which file was used, or why none); a file that exists but
//! cannot be read, or is too large, logs an `error` line and the server-wide file is used.
//!
//! # CONFIGURATION
//!
//! ```text
//! user_config /var/lib/qpsmtpd/users/%h/%u
//! ```
//!
//! ## PATTERN
//!
//! Default: `/home/%u/.qpsmtpd/`. The settings directory of a recipient, an absolute path
//! in which these are replaced:
//!
//! - `%u`: the local part, lower-cased (`joe`);
//! - `%h`: the domain, lower-cased (`example.com`);
//! - `%a`: the whole address, lower-cased (`joe@example.com`);
//! - `%%`: a `%`.
//!
//! The pattern must contain at least one of `%u`, `%h` and `%a`; any other `%` sequence
//! stops the server from starting.
//!
//! ## loglevel *N|+N|-N*
//!
//! Default: none. Every plugin takes it: an absolute level (0-7 or a name such as `LOGINFO`)
//! for all of the plugin's log messages, or a shift of their levels by N.
//!
//! ## Files
//!
//! *PATTERN*`/<name>` for every setting asked for per recipient (`databytes`, and the
//! names other plugins document as per-recipient). They are read each time they are asked
//! for, so users may change them at any time, with the server's rights: the user the
//! server runs as must be able to read them.
//!
//! # DIFFERENCES FROM QPSMTPD
//!
//! - Recipient addresses are checked before they become part of a path; the Perl plugin
//!   put them in as they came, so `<../../etc@example.com>` could read files elsewhere.
//! - The parts are lower-cased, and lines are read like control files (trimmed, comments
//!   and empty lines skipped) instead of returned raw.
//! - `$include` lines are ignored (with an `error` log line) in per-user files: a user
//!   could otherwise make the server read files the user cannot read.
//! - Devices, pipes and files over 1 MiB are not read.
//!
//! # SEE ALSO
//!
//! qpsmtpd-plugins(7), qpsmtpd(8)

use qpsmtpd_core::protocol::address::is_domain;
use qpsmtpd_core::{
    Address, ConfigError, Context, Hook, Level, Plugin, PluginSpec, Registration, Setup,
};
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub const SPEC: PluginSpec = PluginSpec {
    name: "user_config",
    factory: new,
    args: &["PATTERN"],
    rejects: false,
    example: "{dir}/%h/%u/",
};

/// The pattern used when none is given.
const DEFAULT_PATTERN: &str = "/home/%u/.qpsmtpd/";

/// The largest per-user file read.
const MAX_FILE_SIZE: u64 = 1024 * 1024;

/// Characters allowed in the local part and domain put into a path.
fn is_safe_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-+_.=".contains(c)
}

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    let pattern = match setup.args {
        [] => DEFAULT_PATTERN,
        [p] => p.as_str(),
        [_, extra, ..] => {
            return Err(setup.error(format!(
                "takes one argument, the directory pattern (got {extra:?} after it)"
            )));
        }
    };
    let pieces = parse_pattern(pattern).map_err(|e| setup.error(e))?;
    Ok(Box::new(UserConfig { pieces }))
}

/// One part of the pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    User,
    Host,
    Address,
}

fn parse_pattern(pattern: &str) -> Result<Vec<Piece>, String> {
    if !pattern.starts_with('/') {
        return Err(format!("PATTERN {pattern:?} must be an absolute path"));
    }
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            text.push(c);
            continue;
        }
        let piece = match chars.next() {
            Some('%') => {
                text.push('%');
                continue;
            }
            Some('u') => Piece::User,
            Some('h') => Piece::Host,
            Some('a') => Piece::Address,
            Some(other) => {
                return Err(format!(
                    "unknown %{other} in PATTERN {pattern:?} (use %u, %h, %a or %%)"
                ));
            }
            None => return Err(format!("PATTERN {pattern:?} ends with a lone %")),
        };
        if !text.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut text)));
        }
        pieces.push(piece);
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    if !pieces.iter().any(|p| !matches!(p, Piece::Text(_))) {
        return Err(format!(
            "PATTERN {pattern:?} contains none of %u, %h, %a: every recipient would share it"
        ));
    }
    Ok(pieces)
}

struct UserConfig {
    pieces: Vec<Piece>,
}

/// A local part fit to be a path component, lower-cased.
fn safe_user(user: &str) -> Result<String, String> {
    let user = user.to_ascii_lowercase();
    if user.is_empty() || user == "." || user == ".." || !user.chars().all(is_safe_char) {
        return Err(format!("local part {user:?} is not safe in a path"));
    }
    Ok(user)
}

/// A domain fit to be a path component, lower-cased.
fn safe_host(host: &str) -> Result<String, String> {
    let host = host.to_ascii_lowercase();
    if host.is_empty() {
        return Err("the recipient has no domain".into());
    }
    if !is_domain(&host) || !host.chars().all(is_safe_char) {
        return Err(format!("domain {host:?} is not safe in a path"));
    }
    Ok(host)
}

impl UserConfig {
    /// The recipient's settings directory, or why there is none.
    fn directory(&self, rcpt: &Address) -> Result<PathBuf, String> {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::User => out.push_str(&safe_user(rcpt.user())?),
                Piece::Host => out.push_str(&safe_host(rcpt.host())?),
                Piece::Address => {
                    out.push_str(&safe_user(rcpt.user())?);
                    out.push('@');
                    out.push_str(&safe_host(rcpt.host())?);
                }
            }
        }
        Ok(PathBuf::from(out))
    }
}

/// Opens `path` if it is a regular file (never blocking on a pipe), `None` if it does not
/// exist.
fn open_regular(path: &Path) -> io::Result<Option<File>> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
        Ok(m) if !m.is_file() => {
            return Err(io::Error::other("not a regular file"));
        }
        Ok(_) => {}
    }
    // O_NONBLOCK: should the file have been swapped for a pipe meanwhile, opening it does
    // not wait for a writer; the check below then refuses it.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    if meta.len() > MAX_FILE_SIZE {
        return Err(io::Error::other(format!(
            "larger than {MAX_FILE_SIZE} bytes"
        )));
    }
    Ok(Some(file))
}

/// The meaningful lines of a per-user file, and the numbers of its `$include` lines.
fn read_lines(file: File) -> io::Result<(Vec<String>, Vec<usize>)> {
    let mut bytes = Vec::new();
    file.take(MAX_FILE_SIZE + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(io::Error::other(format!(
            "larger than {MAX_FILE_SIZE} bytes"
        )));
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut lines = Vec::new();
    let mut includes = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with("$include") {
            includes.push(n + 1);
            continue;
        }
        lines.push(line.to_string());
    }
    Ok((lines, includes))
}

/// A setting name fit to be a file name in the settings directory.
fn is_safe_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])
}

impl Plugin for UserConfig {
    fn hooks(&self) -> Vec<Registration> {
        vec![Hook::UserConfig.into()]
    }

    fn user_config(&self, cx: &mut Context<'_>, rcpt: &Address, name: &str) -> Option<Vec<String>> {
        let rcpt_shown = rcpt.format();
        if !is_safe_name(name) {
            cx.log(
                Level::Debug,
                format!("{name:?} is not a file name; no per-user setting"),
            );
            return None;
        }
        let dir = match self.directory(rcpt) {
            Ok(d) => d,
            Err(why) => {
                cx.log(
                    Level::Debug,
                    format!("no per-user {name} for {rcpt_shown}: {why}"),
                );
                return None;
            }
        };
        let path = dir.join(name);
        let file = match open_regular(&path) {
            Ok(Some(f)) => f,
            Ok(None) => {
                cx.log(
                    Level::Debug,
                    format!("no {} for {rcpt_shown}", path.display()),
                );
                return None;
            }
            Err(e) => {
                cx.error(format!(
                    "{}: {e}; using the server-wide {name}",
                    path.display()
                ));
                return None;
            }
        };
        match read_lines(file) {
            Ok((lines, includes)) => {
                for n in includes {
                    cx.error(format!(
                        "{}:{n}: $include is not allowed in per-user files; line ignored",
                        path.display()
                    ));
                }
                cx.log(
                    Level::Debug,
                    format!("{name} for {rcpt_shown} from {}", path.display()),
                );
                Some(lines)
            }
            Err(e) => {
                cx.error(format!(
                    "{}: {e}; using the server-wide {name}",
                    path.display()
                ));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qpsmtpd_core::testing::{Harness, LogCapture, TestServer, TestSession};
    use qpsmtpd_core::{Params, Reply, Verdict};
    use std::fs;

    /// Answers every RCPT with the recipient's `greeting` setting: `250 2.1.5 greeting: ...`.
    struct ShowGreeting;
    impl Plugin for ShowGreeting {
        fn hooks(&self) -> Vec<Registration> {
            vec![Hook::Rcpt.into()]
        }
        fn rcpt(&self, cx: &mut Context<'_>, rcpt: &Address, _: &Params) -> Verdict {
            let values = cx.user_config(rcpt, "greeting");
            Verdict::done(Reply::new(
                250,
                "2.1.5",
                &format!("greeting: {}", values.join("|")),
            ))
        }
    }

    /// A server whose user directories are under `<harness dir>/users/<pattern>`.
    fn server(pattern: &str, logs: &LogCapture, users: &[(&str, &str)]) -> TestServer {
        let h = Harness::new();
        let base = h.dir().join("users");
        for (path, text) in users {
            let p = base.join(path);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        }
        h.catalogue(crate::CATALOGUE)
            .file("greeting", "server-wide hello")
            .file(
                "plugins",
                &format!("user_config {}/{pattern}", base.display()),
            )
            .plugin("logs", logs.clone())
            .plugin("show", ShowGreeting)
            .build()
            .unwrap()
    }

    fn session(server: &TestServer) -> TestSession {
        let mut s = server.session();
        s.connect();
        s.command("EHLO client.example");
        assert!(s.command("MAIL FROM:<a@example.org>").starts_with("250 "));
        s
    }

    #[test]
    fn per_recipient_values_and_fallback() {
        let logs = LogCapture::default();
        let server = server(
            "%h/%u",
            &logs,
            &[
                (
                    "example.com/joe/greeting",
                    "# joe's\n\n  hi joe  \nsecond line\n",
                ),
                ("example.com/empty/greeting", "# nothing here\n"),
            ],
        );
        let mut s = session(&server);
        assert_eq!(
            s.command("RCPT TO:<Joe@Example.COM>"),
            "250 2.1.5 greeting: hi joe|second line\r\n"
        );
        assert_eq!(
            s.command("RCPT TO:<ann@example.com>"),
            "250 2.1.5 greeting: server-wide hello\r\n"
        );
        assert_eq!(
            s.command("RCPT TO:<empty@example.com>"),
            "250 2.1.5 greeting: \r\n"
        );
        assert_eq!(
            s.command("RCPT TO:<joe@example.net>"),
            "250 2.1.5 greeting: server-wide hello\r\n"
        );
        // Nothing at INFO or above for plain lookups.
        assert!(
            logs.of_plugin("user_config")
                .iter()
                .all(|l| l.starts_with("DEBUG ")),
            "{:?}",
            logs.of_plugin("user_config")
        );
    }

    #[test]
    fn the_address_pattern() {
        let server = server(
            "%a/",
            &LogCapture::default(),
            &[("joe@example.com/greeting", "hello address")],
        );
        let mut s = session(&server);
        assert_eq!(
            s.command("RCPT TO:<JOE@example.com>"),
            "250 2.1.5 greeting: hello address\r\n"
        );
        assert_eq!(
            s.command("RCPT TO:<postmaster>"),
            "250 2.1.5 greeting: server-wide hello\r\n"
        );
    }

    #[test]
    fn recipients_cannot_leave_the_directory() {
        let logs = LogCapture::default();
        // A file a traversal would reach: <harness dir>/users/secret/greeting.
        let server = server(
            "home/%u",
            &logs,
            &[("secret/greeting", "stolen"), ("home/x/greeting", "x")],
        );
        let mut s = session(&server);
        for rcpt in [
            "<\"../secret\"@example.com>",
            "<\"..\"@example.com>",
            "<\"a/../../secret\"@example.com>",
            "<\"x y\"@example.com>",
        ] {
            assert_eq!(
                s.command(&format!("RCPT TO:{rcpt}")),
                "250 2.1.5 greeting: server-wide hello\r\n",
                "{rcpt}"
            );
        }
        assert!(
            logs.contains("local part \"../secret\" is not safe in a path"),
            "{:?}",
            logs.records()
        );
        assert_eq!(
            s.command("RCPT TO:<x@example.com>"),
            "250 2.1.5 greeting: x\r\n"
        );
    }

    #[test]
    fn unsafe_domains_are_not_used() {
        assert_eq!(safe_host("Example.COM"), Ok("example.com".into()));
        assert!(safe_host("[192.0.2.1]").is_err());
        assert!(safe_host("..").is_err());
        assert!(safe_host("").is_err());
        assert_eq!(safe_user("Joe.Smith+tag"), Ok("joe.smith+tag".into()));
        for bad in ["", ".", "..", "a/b", "a b", "a\0b", "ü"] {
            assert!(safe_user(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn pipes_and_includes_are_not_followed() {
        let logs = LogCapture::default();
        let server = server(
            "%u",
            &logs,
            &[
                ("inc/greeting", "$include /etc/passwd\nown value\n"),
                ("fifo/.keep", ""),
            ],
        );
        let fifo = server.dir().join("users/fifo/greeting");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let mut s = session(&server);
        assert_eq!(
            s.command("RCPT TO:<inc@example.com>"),
            "250 2.1.5 greeting: own value\r\n"
        );
        assert_eq!(
            s.command("RCPT TO:<fifo@example.com>"),
            "250 2.1.5 greeting: server-wide hello\r\n"
        );
        let errors: Vec<String> = logs
            .of_plugin("user_config")
            .into_iter()
            .filter(|l| l.starts_with("ERROR "))
            .collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("inc/greeting:1: $include is not allowed"));
        assert!(errors[1].contains("fifo/greeting: not a regular file"));
    }

    #[test]
    fn per_recipient_databytes_reaches_the_core() {
        let server = server(
            "%u",
            &LogCapture::default(),
            &[("small/databytes", "100\n")],
        );
        let mut s = server.session();
        s.connect();
        s.command("EHLO client.example");
        s.command("MAIL FROM:<a@example.org> SIZE=1000");
        assert_eq!(
            s.command("RCPT TO:<small@example.com>"),
            "552 5.3.4 Message size exceeds the recipient's maximum message size\r\n"
        );
        assert!(s.command("RCPT TO:<big@example.com>").starts_with("250 "));
    }

    #[test]
    fn patterns() {
        assert_eq!(
            parse_pattern("/home/%u/.qpsmtpd/"),
            Ok(vec![
                Piece::Text("/home/".into()),
                Piece::User,
                Piece::Text("/.qpsmtpd/".into())
            ])
        );
        assert_eq!(
            parse_pattern("/x/100%%/%h%a"),
            Ok(vec![
                Piece::Text("/x/100%/".into()),
                Piece::Host,
                Piece::Address
            ])
        );
        for (bad, why) in [
            ("home/%u", "absolute"),
            ("/home/%x", "unknown %x"),
            ("/home/%u%", "lone %"),
            ("/etc/qpsmtpd/users", "none of %u"),
        ] {
            let err = parse_pattern(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn bad_arguments_name_the_plugins_line() {
        for line in [
            "user_config relative/%u",
            "user_config /home/%u bogus_arg",
            "user_config /home/%q",
        ] {
            let err = crate::test_support::load_error(line);
            assert!(err.contains("plugins:1: user_config: "), "{line}: {err}");
        }
    }
}
