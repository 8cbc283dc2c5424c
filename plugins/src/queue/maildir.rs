//! # NAME
//!
//! queue/maildir - deliver accepted mail into a maildir
//!
//! # DESCRIPTION
//!
//! Writes every accepted message into a maildir, the one-file-per-message mailbox format
//! of qmail, Dovecot and Courier. The file is first written under `tmp/`, flushed to disk
//! with fsync, then renamed into `new/`, and `new/` itself is fsynced; only then does the
//! client get its `250 Queued! <Message-Id>`. Any failure on the way answers
//! `451 4.3.0 queue error (open)`, `(write)` or `(rename)`, removes what was left in
//! `tmp/`, and logs an `error:` line with the cause.
//!
//! Each file holds, with LF line ends:
//!
//! ```text
//! Return-Path: <sender@example.org>
//! Delivered-To: user@example.com          (one line per recipient of this copy)
//! Received: ...                           (the header as the other plugins left it)
//!
//! body
//! ```
//!
//! File names follow the maildir convention `<seconds>.M<microseconds>P<pid>R<random>.<host>`,
//! unique without any shared counter, so sessions may run in threads of one process.
//!
//! Without a *SUBDIR* pattern the message is stored once, in *DIR*, with one `Delivered-To`
//! line per recipient. With a pattern, every recipient gets its own copy in
//! *DIR*/*expanded pattern*, carrying only its own `Delivered-To` line. All copies are
//! written and synced under `tmp/` before the first is renamed into `new/`; if a later
//! rename fails, the copies already renamed are removed again and the client gets a 451,
//! so that its retry does not deliver twice.
//!
//! # CONFIGURATION
//!
//! ```text
//! queue/maildir /var/spool/mail/catchall
//! queue/maildir /home/vmail %d/%l 770
//! ```
//!
//! ## DIR
//!
//! Required. The maildir, or with a *SUBDIR* pattern the directory under which the
//! per-recipient maildirs are made. Without a pattern, *DIR* and its `cur`, `tmp` and
//! `new` are created when the plugin loads; the server refuses to start if that fails.
//!
//! ## SUBDIR *pattern*
//!
//! Default: none (one copy for all recipients, in *DIR*). A relative path under *DIR*
//! that must contain at least one of:
//!
//! - `%l`: the recipient's local part (`user`);
//! - `%d`: its domain (`example.com`);
//! - `%u`: the whole address (`user@example.com`).
//!
//! Before they are put in, every character of the local part and the domain outside
//! `-A-Za-z0-9+_.,@=` is replaced by `_`, so `/` cannot climb out of *DIR*; a path
//! component that would come out as `.` or `..` is written with `_` instead. The
//! maildirs (and the directories above them) are created as needed. `%d/%l` stores mail
//! for `user@example.com` in *DIR*`/example.com/user/new/`. Two recipients in the same
//! domain still get one copy each, even with `%d` alone.
//!
//! ## MODE *octal*
//!
//! Default: `700`. Three octal digits: the permissions of the directories this plugin
//! creates. Message files get the same without the execute bits (`700` gives files
//! `0600`, `770` gives `0660`). The process umask does not apply. The owner must keep
//! `rwx`. May also be given as the second argument when there is no pattern
//! (`queue/maildir /var/mail/all 750`).
//!
//! ## loglevel *N|+N|-N*
//!
//! Default: the server's. Every plugin takes it; the core handles it.
//!
//! # DIFFERENCES FROM QPSMTPD
//!
//! - The file is fsynced and renamed (not hard-linked) into `new/`, and `new/` is fsynced,
//!   before the 250 goes out. The original closed and linked the file without syncing.
//! - Errors are `451 4.3.0 queue error (open|write|rename)`; the original's `(close)`
//!   and `(link)` do not exist. `tmp/` is cleaned up after a failure.
//! - The `Delivered-To` lines of the single-copy mode are written in recipient order and
//!   the message header is left untouched (the original prepended them to the header,
//!   in reverse order, where later plugins could see them).
//! - A message without a Message-Id is answered `Queued!` without a trailing space.
//! - A pattern may not be absolute or contain `.` or `..` components, and expanded
//!   values can never make such a component.
//! - *MODE* may follow *DIR* directly when there is no pattern.
//!
//! # SEE ALSO
//!
//! qpsmtpd-queue-qmail-queue(7), qpsmtpd-queue-smtp-forward(7), maildir(5), <https://cr.yp.to/proto/maildir.html>

use qpsmtpd_core::header::clean_header_text;
use qpsmtpd_core::{
    Address, ConfigError, Context, Hook, Plugin, PluginSpec, Registration, Reply, Setup, Verdict,
};
use std::collections::BTreeSet;
use std::fmt::Display;
use std::fs::{self, File, Permissions};
use std::io::{self, BufWriter, ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};
use tempfile::NamedTempFile;

/// Permissions of created directories when no MODE is given.
const DEFAULT_MODE: u32 = 0o700;

/// Random characters in each file name, after `R`.
const RANDOM_CHARS: usize = 10;

/// The write buffer for one message file.
const WRITE_BUFFER: usize = 64 * 1024;

struct Maildir {
    dir: PathBuf,
    pattern: Option<String>,
    dir_mode: u32,
    file_mode: u32,
    /// This host's name, made safe for a maildir file name.
    host: String,
}

pub const SPEC: PluginSpec = PluginSpec {
    name: "queue/maildir",
    factory: new,
    args: &["DIR", "SUBDIR", "MODE"],
    rejects: false,
    example: "{dir}/maildir",
};

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    let args = setup.args;
    let Some(dir) = args.first().filter(|d| !d.is_empty()) else {
        return Err(setup.error("the maildir directory (DIR) is required"));
    };
    let (pattern, mode) = match &args[1..] {
        [] => (None, None),
        [m] if is_mode(m) => (None, Some(m)),
        [p] => (Some(p), None),
        [p, m] => (Some(p), Some(m)),
        _ => return Err(setup.error("takes at most three arguments: DIR [SUBDIR] [MODE]")),
    };
    let pattern = match pattern {
        Some(p) => Some(check_pattern(p).map_err(|e| setup.error(e))?),
        None => None,
    };
    let dir_mode = match mode {
        None => DEFAULT_MODE,
        Some(m) => parse_mode(m).map_err(|e| setup.error(e))?,
    };
    let plugin = Maildir {
        dir: PathBuf::from(dir),
        pattern,
        dir_mode,
        file_mode: dir_mode & 0o666,
        host: maildir_host_name(),
    };
    if plugin.pattern.is_none() {
        make_maildir(&plugin.dir, dir_mode)
            .map_err(|e| setup.error(format!("cannot create maildir {dir}: {e}")))?;
    }
    Ok(Box::new(plugin))
}

fn is_mode(s: &str) -> bool {
    s.len() == 3 && s.bytes().all(|b| (b'0'..=b'7').contains(&b))
}

fn parse_mode(s: &str) -> Result<u32, String> {
    if !is_mode(s) {
        return Err(format!(
            "MODE must be three octal digits like 750, not {s:?}"
        ));
    }
    let mode = u32::from_str_radix(s, 8).map_err(|e| e.to_string())?;
    if mode & 0o700 != 0o700 {
        return Err(format!(
            "MODE {s} would lock this server out of its own maildirs (the owner needs rwx)"
        ));
    }
    Ok(mode)
}

fn check_pattern(p: &str) -> Result<String, String> {
    if !(p.contains("%l") || p.contains("%d") || p.contains("%u")) {
        return Err(format!("SUBDIR {p:?} contains none of %l, %d, %u"));
    }
    if p.starts_with('/') {
        return Err(format!("SUBDIR {p:?} must be relative to DIR"));
    }
    if p.split('/').any(|c| c == "." || c == "..") {
        return Err(format!("SUBDIR {p:?} may not contain . or .. components"));
    }
    Ok(p.to_string())
}

/// The host name for file names; `/` and `:` are escaped as the maildir convention says.
fn maildir_host_name() -> String {
    let name = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = if name.is_empty() {
        "localhost".to_string()
    } else {
        name
    };
    name.replace('/', "\\057").replace(':', "\\072")
}

/// Every character outside `-A-Za-z0-9+_.,@=` becomes `_`.
fn safe_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-+_.,@=".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The maildir for one recipient: `pattern` expanded under `dir`.
fn expand(dir: &Path, pattern: &str, rcpt: &Address) -> PathBuf {
    let user = safe_part(rcpt.user());
    let host = safe_part(rcpt.host());
    let mut out = String::with_capacity(pattern.len() + 32);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('l') => out.push_str(&user),
            Some('d') => out.push_str(&host),
            Some('u') => {
                out.push_str(&user);
                out.push('@');
                out.push_str(&host);
            }
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    let mut path = dir.to_path_buf();
    for component in out.split('/').filter(|c| !c.is_empty()) {
        if component == "." || component == ".." {
            path.push("_".repeat(component.len()));
        } else {
            path.push(component);
        }
    }
    path
}

/// Creates `path` and any missing parents with exactly `mode` (the umask is not applied).
fn make_dirs(path: &Path, mode: u32) -> io::Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        make_dirs(parent, mode)?;
    }
    match fs::DirBuilder::new().mode(mode).create(path) {
        Ok(()) => fs::set_permissions(path, Permissions::from_mode(mode)),
        // Another session made it in the meantime.
        Err(e) if e.kind() == ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    }
}

/// Makes sure `dir/cur`, `dir/tmp` and `dir/new` exist.
fn make_maildir(dir: &Path, mode: u32) -> io::Result<()> {
    for sub in ["cur", "tmp", "new"] {
        make_dirs(&dir.join(sub), mode)?;
    }
    Ok(())
}

/// One file to write: into which maildir, and for whom.
struct Copy<'a> {
    maildir: PathBuf,
    recipients: Vec<&'a Address>,
}

/// A failed delivery: which step (for the reply) and why (for the log).
struct Failure {
    step: &'static str,
    cause: String,
}

fn failure(step: &'static str, cause: impl Display) -> Failure {
    Failure {
        step,
        cause: cause.to_string(),
    }
}

impl Maildir {
    fn copies<'a>(&self, recipients: &'a [Address]) -> Vec<Copy<'a>> {
        match &self.pattern {
            None => vec![Copy {
                maildir: self.dir.clone(),
                recipients: recipients.iter().collect(),
            }],
            Some(pattern) => recipients
                .iter()
                .map(|r| Copy {
                    maildir: expand(&self.dir, pattern, r),
                    recipients: vec![r],
                })
                .collect(),
        }
    }

    /// A new, empty, uniquely named file in `maildir/tmp`.
    fn create(&self, maildir: &Path) -> io::Result<NamedTempFile> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let prefix = format!(
            "{}.M{}P{}R",
            now.as_secs(),
            now.subsec_micros(),
            std::process::id()
        );
        let suffix = format!(".{}", self.host);
        let file = tempfile::Builder::new()
            .prefix(&prefix)
            .suffix(&suffix)
            .rand_bytes(RANDOM_CHARS)
            .permissions(Permissions::from_mode(self.file_mode))
            .tempfile_in(maildir.join("tmp"))?;
        // The mode given at creation went through the umask; set it exactly.
        file.as_file()
            .set_permissions(Permissions::from_mode(self.file_mode))?;
        Ok(file)
    }

    /// Writes the delivery lines and the message into `file`, and syncs it.
    fn write(
        cx: &mut Context<'_>,
        file: &mut NamedTempFile,
        sender: &Address,
        recipients: &[&Address],
    ) -> io::Result<()> {
        let mut w = BufWriter::with_capacity(WRITE_BUFFER, file.as_file_mut());
        writeln!(w, "Return-Path: {}", clean_header_text(&sender.format()))?;
        for r in recipients {
            writeln!(w, "Delivered-To: {}", clean_header_text(&r.address()))?;
        }
        cx.transaction_mut().write_message(&mut w)?;
        w.flush()?;
        drop(w);
        file.as_file().sync_all()
    }

    /// Writes every copy into its `tmp/`, then renames them all into `new/`. Returns the
    /// delivered paths.
    fn deliver(&self, cx: &mut Context<'_>) -> Result<Vec<PathBuf>, Failure> {
        let sender = cx.transaction().sender.clone().unwrap_or_default();
        let recipients = cx.transaction().recipients.clone();
        let mut staged: Vec<(NamedTempFile, PathBuf)> = Vec::new();
        for copy in self.copies(&recipients) {
            make_maildir(&copy.maildir, self.dir_mode).map_err(|e| {
                failure(
                    "open",
                    format!("cannot create maildir {}: {e}", copy.maildir.display()),
                )
            })?;
            let mut file = self.create(&copy.maildir).map_err(|e| {
                failure(
                    "open",
                    format!(
                        "cannot create a file in {}: {e}",
                        copy.maildir.join("tmp").display()
                    ),
                )
            })?;
            Self::write(cx, &mut file, &sender, &copy.recipients)
                .map_err(|e| failure("write", format!("writing {}: {e}", file.path().display())))?;
            staged.push((file, copy.maildir));
        }
        commit(staged)
    }
}

/// Renames every staged file from its `tmp/` into its `new/` and syncs the `new/`
/// directories. Returns the delivered paths. On failure, the copies already renamed are
/// taken back, so that the client's retry does not deliver them twice; files still staged
/// are removed from `tmp/` when dropped.
fn commit(staged: Vec<(NamedTempFile, PathBuf)>) -> Result<Vec<PathBuf>, Failure> {
    let mut delivered: Vec<PathBuf> = Vec::with_capacity(staged.len());
    let mut new_dirs = BTreeSet::new();
    for (file, maildir) in staged {
        let new_dir = maildir.join("new");
        let target = match file.path().file_name() {
            Some(name) => new_dir.join(name),
            None => return Err(rolled_back(&delivered, "temp file without a name")),
        };
        if let Err(e) = file.persist_noclobber(&target) {
            let cause = format!("renaming into {}: {}", target.display(), e.error);
            return Err(rolled_back(&delivered, cause));
        }
        delivered.push(target);
        new_dirs.insert(new_dir);
    }
    for dir in new_dirs {
        if let Err(e) = File::open(&dir).and_then(|d| d.sync_all()) {
            let cause = format!("syncing {}: {e}", dir.display());
            return Err(rolled_back(&delivered, cause));
        }
    }
    Ok(delivered)
}

/// Removes the copies already renamed into `new/`.
fn rolled_back(delivered: &[PathBuf], cause: impl Display) -> Failure {
    for path in delivered {
        let _ = fs::remove_file(path);
    }
    failure("rename", cause)
}

impl Plugin for Maildir {
    fn hooks(&self) -> Vec<Registration> {
        vec![Hook::Queue.into()]
    }

    fn queue(&self, cx: &mut Context<'_>) -> Verdict {
        match self.deliver(cx) {
            Ok(paths) => {
                let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
                cx.pass(format!("delivered to {}", names.join(", ")));
                match cx.transaction().message_id() {
                    Some(id) if !id.is_empty() => Verdict::ok_with(format!("Queued! {id}")),
                    _ => Verdict::ok_with("Queued!"),
                }
            }
            Err(f) => {
                cx.error(f.cause);
                Verdict::done(Reply::new(
                    451,
                    "4.3.0",
                    &format!("queue error ({})", f.step),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qpsmtpd_core::testing::LogCapture as Logs;
    use qpsmtpd_core::testing::{Harness, TestServer};

    const BODY: &str = "From: Sender <sender@example.org>\r\n\
        Subject: maildir test\r\n\
        Message-Id: <m1@example.org>\r\n\
        \r\n\
        first line\r\n\
        ..a line that starts with a dot\r\n\
        last line";

    fn server(args: &str, logs: &Logs) -> TestServer {
        Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("plugins", &format!("rcpt_ok\nqueue/maildir {args}"))
            .file("rcpthosts", "example.com\nexample.net")
            .plugin("logs", logs.clone())
            .build()
            .unwrap()
    }

    fn send(server: &TestServer, to: &[&str], body: &str) -> String {
        server.send_message("sender@example.org", to, body)
    }

    /// The files in `dir`, sorted by name.
    fn files(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = match fs::read_dir(dir) {
            Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
            Err(_) => Vec::new(),
        };
        v.sort();
        v
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn delivers_once_with_every_recipient() {
        let root = tempfile::tempdir().unwrap();
        let md = root.path().join("Maildir");
        let logs = Logs::default();
        let server = server(md.to_str().unwrap(), &logs);
        for sub in ["cur", "tmp", "new"] {
            assert!(md.join(sub).is_dir(), "{sub} made at setup");
            assert_eq!(mode(&md.join(sub)), 0o700);
        }

        let reply = send(&server, &["a@example.com", "b@example.net"], BODY);
        assert_eq!(reply, "250 2.0.0 Queued! <m1@example.org>\r\n");

        let new = files(&md.join("new"));
        assert_eq!(new.len(), 1, "{new:?}");
        assert!(files(&md.join("tmp")).is_empty());
        let text = fs::read_to_string(&new[0]).unwrap();
        let (head, body) = text.split_once("\n\n").unwrap();
        let lines: Vec<&str> = head.lines().collect();
        assert_eq!(lines[0], "Return-Path: <sender@example.org>");
        assert_eq!(lines[1], "Delivered-To: a@example.com");
        assert_eq!(lines[2], "Delivered-To: b@example.net");
        assert!(
            lines[3..]
                .iter()
                .any(|l| l.starts_with("Received: from [127.0.0.1] (HELO client.example)")),
            "{head}"
        );
        assert!(head.ends_with(
            "\nFrom: Sender <sender@example.org>\nSubject: maildir test\nMessage-Id: <m1@example.org>"
        ));
        assert_eq!(
            body,
            "first line\n.a line that starts with a dot\nlast line\n"
        );
        assert!(!text.contains('\r'));
        assert_eq!(mode(&new[0]), 0o600);

        let name = new[0].file_name().unwrap().to_str().unwrap().to_string();
        let host = maildir_host_name();
        let (stamp, rest) = name.split_once(".M").unwrap();
        assert!(stamp.parse::<u64>().unwrap() > 1_600_000_000, "{name}");
        assert!(
            rest.contains(&format!("P{}R", std::process::id())),
            "{name}"
        );
        assert!(name.ends_with(&format!(".{host}")), "{name}");
        assert!(logs.contains("pass: delivered to "));
    }

    #[test]
    fn names_are_unique_and_queued_has_no_trailing_space() {
        let root = tempfile::tempdir().unwrap();
        let logs = Logs::default();
        let server = server(root.path().to_str().unwrap(), &logs);
        for _ in 0..3 {
            let reply = send(&server, &["a@example.com"], "Subject: no id\r\n\r\nhi");
            assert_eq!(reply, "250 2.0.0 Queued!\r\n");
        }
        assert_eq!(files(&root.path().join("new")).len(), 3);
    }

    #[test]
    fn one_copy_per_recipient_with_a_pattern() {
        let root = tempfile::tempdir().unwrap();
        let logs = Logs::default();
        let server = server(&format!("{} %d/%l 750", root.path().display()), &logs);
        assert!(
            !root.path().join("new").exists(),
            "no maildir at the top with a pattern"
        );

        let reply = send(
            &server,
            &["alice@example.com", "bob@example.com", "x/../y@example.net"],
            BODY,
        );
        assert_eq!(reply, "250 2.0.0 Queued! <m1@example.org>\r\n");

        for (sub, rcpt) in [
            ("example.com/alice", "alice@example.com"),
            ("example.com/bob", "bob@example.com"),
            ("example.net/x_.._y", "x/../y@example.net"),
        ] {
            let md = root.path().join(sub);
            let new = files(&md.join("new"));
            assert_eq!(new.len(), 1, "{sub}: {new:?}");
            let text = fs::read_to_string(&new[0]).unwrap();
            let delivered: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with("Delivered-To:"))
                .collect();
            assert_eq!(delivered, [format!("Delivered-To: {rcpt}")], "{sub}");
            assert!(text.starts_with("Return-Path: <sender@example.org>\n"));
            assert!(text.ends_with("\n\nfirst line\n.a line that starts with a dot\nlast line\n"));
            assert_eq!(mode(&md), 0o750, "{sub}");
            assert_eq!(mode(&md.join("new")), 0o750);
            assert_eq!(mode(&new[0]), 0o640);
            assert!(files(&md.join("tmp")).is_empty());
        }
        assert_eq!(mode(&root.path().join("example.com")), 0o750);
        assert_eq!(files(root.path()).len(), 2, "nothing escaped DIR");
    }

    #[test]
    fn patterns_expand_safely() {
        let dir = Path::new("/m");
        let a = Address::new("j.doe+tag", "Example.COM");
        assert_eq!(expand(dir, "%u", &a), Path::new("/m/j.doe+tag@Example.COM"));
        assert_eq!(
            expand(dir, "%d/%l/Maildir", &a),
            Path::new("/m/Example.COM/j.doe+tag/Maildir")
        );
        assert_eq!(expand(dir, "%x%", &a), Path::new("/m/%x%"));
        let evil = Address::new("..", "..");
        assert_eq!(expand(dir, "%d/%l", &evil), Path::new("/m/__/__"));
        assert_eq!(expand(dir, "%u", &evil), Path::new("/m/..@.."));
        let odd = Address::new("a b/c\"d", "[192.0.2.1]");
        assert_eq!(expand(dir, "%l", &odd), Path::new("/m/a_b_c_d"));
        assert_eq!(expand(dir, "%d", &odd), Path::new("/m/_192.0.2.1_"));
    }

    #[test]
    fn mode_applies_to_new_directories_and_files() {
        let root = tempfile::tempdir().unwrap();
        let md = root.path().join("a/b");
        let logs = Logs::default();
        let server = server(&format!("{} 770", md.display()), &logs);
        assert_eq!(mode(&root.path().join("a")), 0o770);
        assert_eq!(mode(&md.join("tmp")), 0o770);
        assert!(send(&server, &["a@example.com"], BODY).starts_with("250 "));
        let new = files(&md.join("new"));
        assert_eq!(mode(&new[0]), 0o660);
    }

    #[test]
    fn unwritable_tmp_gives_451_and_delivers_nothing() {
        let root = tempfile::tempdir().unwrap();
        let logs = Logs::default();
        let server = server(root.path().to_str().unwrap(), &logs);
        fs::remove_dir(root.path().join("tmp")).unwrap();
        fs::write(root.path().join("tmp"), "not a directory").unwrap();

        let reply = send(&server, &["a@example.com"], BODY);
        assert_eq!(reply, "451 4.3.0 queue error (open)\r\n");
        assert!(files(&root.path().join("new")).is_empty());
        assert!(
            logs.contains("error: cannot create maildir"),
            "{:?}",
            logs.records()
        );
    }

    #[test]
    fn a_failed_copy_takes_back_the_others() {
        let root = tempfile::tempdir().unwrap();
        let logs = Logs::default();
        let server = server(&format!("{} %l", root.path().display()), &logs);
        // bob's maildir cannot be made: a file stands where its tmp/ would go.
        fs::create_dir_all(root.path().join("bob")).unwrap();
        fs::write(root.path().join("bob/tmp"), "").unwrap();

        let reply = send(&server, &["alice@example.com", "bob@example.com"], BODY);
        assert_eq!(reply, "451 4.3.0 queue error (open)\r\n");
        assert!(files(&root.path().join("alice/new")).is_empty());
        assert!(
            files(&root.path().join("alice/tmp")).is_empty(),
            "tmp cleaned"
        );

        // Once the problem is fixed, the retry delivers each copy exactly once.
        fs::remove_file(root.path().join("bob/tmp")).unwrap();
        let reply = send(&server, &["alice@example.com", "bob@example.com"], BODY);
        assert!(reply.starts_with("250 2.0.0 Queued!"), "{reply}");
        assert_eq!(files(&root.path().join("alice/new")).len(), 1);
        assert_eq!(files(&root.path().join("bob/new")).len(), 1);
    }

    #[test]
    fn rename_failure_takes_back_what_was_renamed() {
        let root = tempfile::tempdir().unwrap();
        let plugin = Maildir {
            dir: root.path().to_path_buf(),
            pattern: None,
            dir_mode: 0o700,
            file_mode: 0o600,
            host: "h".into(),
        };
        let (a, b) = (root.path().join("a"), root.path().join("b"));
        let mut staged = Vec::new();
        for md in [&a, &b] {
            make_maildir(md, 0o700).unwrap();
            let mut f = plugin.create(md).unwrap();
            f.write_all(b"x").unwrap();
            staged.push((f, md.clone()));
        }
        // b's new/ disappears between writing and renaming.
        fs::remove_dir(b.join("new")).unwrap();
        let err = commit(staged).expect_err("the rename must fail");
        assert_eq!(err.step, "rename");
        assert!(err.cause.contains("renaming into"), "{}", err.cause);
        assert!(files(&a.join("new")).is_empty(), "a's copy taken back");
        assert!(files(&a.join("tmp")).is_empty());
        assert!(files(&b.join("tmp")).is_empty(), "b's staged copy removed");
    }

    #[test]
    fn bad_arguments_are_refused_at_startup() {
        let root = tempfile::tempdir().unwrap();
        let d = root.path().display();
        for (args, why) in [
            (String::new(), "DIR"),
            (format!("{d} sub"), "none of %l"),
            (format!("{d} /abs/%l"), "relative"),
            (format!("{d} ../%l"), ". or .."),
            (format!("{d} %l 7777"), "three octal digits"),
            (format!("{d} %l 600"), "owner needs rwx"),
            (format!("{d} %l 700 extra"), "at most three"),
        ] {
            let err = Harness::new()
                .catalogue(crate::CATALOGUE)
                .file("plugins", &format!("queue/maildir {args}"))
                .build()
                .err()
                .unwrap_or_else(|| panic!("{args:?} accepted"));
            assert!(err.to_string().contains(why), "{args:?}: {err}");
        }
        let file = root.path().join("file");
        fs::write(&file, "").unwrap();
        let err = Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("plugins", &format!("queue/maildir {}", file.display()))
            .build()
            .expect_err("a file is no maildir");
        assert!(err.to_string().contains("cannot create maildir"), "{err}");
    }
}
