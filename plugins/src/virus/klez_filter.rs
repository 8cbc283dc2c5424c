//! # NAME
//!
//! virus/klez_filter - refuse mail carrying the Klez worm
//!
//! # DESCRIPTION
//!
//! A cheap check for one old, once very common worm, W32/Klez, which mailed itself around
//! as an attached Windows program. It needs no virus scanner: the worm's messages are
//! recognised by the start of the attachment.
//!
//! A message is refused, once it has been received, when within the first 41 lines of its
//! body
//!
//! 1. a line starting with `Content-Type:` mentions `audio` or `application` (in any
//!    case), and
//! 2. a later line starts with `TVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQA`, the base64 form of the
//!    first bytes of a Windows program.
//!
//! The refusal is:
//!
//! ```text
//! 552 5.7.1 Klez Virus Detected
//! ```
//!
//! Messages smaller than 60,000 bytes (header and body) are not looked at: the worm's
//! are always bigger. Mail from relay clients and authenticated users is checked too: a
//! worm on a local machine is what this check is most likely to find.
//!
//! Load it with the other content checks, before the queue plugin. A real virus scanner
//! (`virus/clamdscan`) finds Klez too; this plugin is for sites without one.
//!
//! # CONFIGURATION
//!
//! ## reject *0|1|naughty*
//!
//! Default: `1`. What a failed check does: `1` rejects at once, `0` only logs
//! `fail, tolerated` and lets the client go on, `naughty` keeps the rejection for the
//! `naughty` plugin to deliver later.
//!
//! ## reject_type *perm|temp|disconnect|temp_disconnect*
//!
//! Default: `perm`. How to reject: `perm` with a 5xx reply, `temp` with a 4xx reply,
//! `disconnect` with a 5xx reply and closing the connection, `temp_disconnect` with 421 and
//! closing.
//!
//! ## loglevel *N|+N|-N*
//!
//! Default: none. Every plugin takes it: an absolute level (0-7 or a name such as `LOGINFO`)
//! for all of the plugin's log messages, or a shift of their levels by N.
//!
//! ## Files
//!
//! None: the plugin reads no control files.
//!
//! # DIFFERENCES FROM QPSMTPD
//!
//! - It takes `reject` and `reject_type`; the Perl plugin always refused permanently.
//! - At most the first 256 KiB of the body are read, however long its first lines are.
//!
//! # SEE ALSO
//!
//! qpsmtpd-naughty(7), qpsmtpd-plugins(7)

use qpsmtpd_core::log::Level;
use qpsmtpd_core::{
    ConfigError, Context, Hook, Plugin, PluginSpec, Registration, Reject, RejectMode, RejectType,
    Setup, Verdict,
};
use regex::bytes::Regex;
use std::io::{BufRead, BufReader, Read};

pub const SPEC: PluginSpec = PluginSpec {
    name: "virus/klez_filter",
    factory: new,
    args: &["reject", "reject_type"],
    rejects: true,
    example: "reject 1 reject_type perm",
};

/// Smaller messages are not the worm.
const MIN_SIZE: u64 = 60_000;
/// Only this many lines of the body are looked at.
const MAX_LINES: usize = 41;
/// And at most this many bytes of it.
const MAX_BYTES: u64 = 256 * 1024;
/// The base64 form of the start of a Windows (MZ/PE) program, as Klez encoded it.
const SIGNATURE: &[u8] = b"TVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQA";
/// What the client hears.
const MESSAGE: &str = "Klez Virus Detected";

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    let args = setup.pairs()?;
    Ok(Box::new(KlezFilter {
        reject: setup.reject(&args, RejectMode::On, RejectType::Perm)?,
        content_type: Regex::new(r"(?i)^Content-type:.*(?:audio|application)")
            .expect("valid regex"),
    }))
}

struct KlezFilter {
    reject: Reject,
    content_type: Regex,
}

/// What the scan of the body found.
enum Found {
    Klez { line: usize },
    Nothing { lines: usize },
}

impl KlezFilter {
    fn scan(&self, body: impl Read) -> std::io::Result<Found> {
        let mut body = BufReader::new(body.take(MAX_BYTES));
        let mut line = Vec::new();
        let mut seen_attachment = false;
        for n in 1..=MAX_LINES {
            line.clear();
            if body.read_until(b'\n', &mut line)? == 0 {
                return Ok(Found::Nothing { lines: n - 1 });
            }
            if self.content_type.is_match(&line) {
                seen_attachment = true;
            } else if seen_attachment && line.starts_with(SIGNATURE) {
                return Ok(Found::Klez { line: n });
            }
        }
        Ok(Found::Nothing { lines: MAX_LINES })
    }
}

impl Plugin for KlezFilter {
    fn hooks(&self) -> Vec<Registration> {
        vec![Hook::DataPost.into()]
    }

    fn data_post(&self, cx: &mut Context<'_>) -> Verdict {
        let size = cx.transaction().data_size;
        if size < MIN_SIZE {
            cx.skip(format!("message of {size} bytes is too small to be Klez"));
            return Verdict::Declined;
        }
        let found = match cx.transaction_mut().body_reader() {
            Ok(body) => self.scan(body),
            Err(e) => Err(e),
        };
        match found {
            Err(e) => {
                cx.error(format!("cannot read the body: {e}"));
                Verdict::Declined
            }
            Ok(Found::Nothing { lines }) => {
                cx.log(Level::Debug, format!("looked at {lines} lines of the body"));
                cx.pass("no Klez signature");
                Verdict::Declined
            }
            Ok(Found::Klez { line }) => self.reject.apply(
                cx,
                MESSAGE,
                &format!("Klez signature in line {line} of the body"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qpsmtpd_core::testing::{Harness, LogCapture, TestServer};

    const QUEUE_DECLINED: &str = "451 4.3.0 Queuing declined or disabled; try again later\r\n";

    fn server(line: &str, log: &LogCapture) -> TestServer {
        Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("plugins", &format!("{line}\nrcpt_ok"))
            .file("rcpthosts", "test.example")
            .plugin("capture", log.clone())
            .build()
            .unwrap()
    }

    /// A message in the worm's shape: a MIME part of type `kind` whose content starts
    /// with `first` (the signature, or not), padded to `size` bytes or more.
    fn message(kind: &str, first: &str, size: usize) -> String {
        let mut m = String::from(
            "From: a@b.example\r\nSubject: hi\r\nContent-Type: multipart/alternative; \
             boundary=\"X\"\r\n\r\n--X\r\nContent-Type: text/html\r\n\r\n<html></html>\r\n\
             --X\r\n",
        );
        m.push_str(&format!(
            "Content-Type: {kind}; name=\"setup.exe\"\r\nContent-Transfer-Encoding: base64\r\n\
             Content-ID: <x>\r\n\r\n{first}\r\n"
        ));
        while m.len() < size {
            m.push_str(
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\n",
            );
        }
        m.push_str("--X--\r\n");
        m
    }

    const WORM: &str = "TVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    #[test]
    fn refuses_the_worm() {
        let log = LogCapture::default();
        let server = server("virus/klez_filter", &log);
        for kind in ["audio/x-wav", "APPLICATION/octet-stream"] {
            assert_eq!(
                server.send_message(
                    "a@b.example",
                    &["u@test.example"],
                    &message(kind, WORM, 70_000)
                ),
                "552 5.7.1 Klez Virus Detected\r\n",
                "{kind}"
            );
        }
        assert_eq!(
            log.of_plugin("virus::klez_filter"),
            [
                "INFO fail: Klez signature in line 10 of the body",
                "INFO fail: Klez signature in line 10 of the body"
            ]
        );
    }

    #[test]
    fn lets_other_mail_through() {
        let log = LogCapture::default();
        let server = server("virus/klez_filter", &log);
        for (body, logged) in [
            // Too small to be looked at.
            (message("audio/x-wav", WORM, 1000), "INFO skip: message of "),
            // Not an attachment type Klez used.
            (
                message("image/png", WORM, 70_000),
                "INFO pass: no Klez signature",
            ),
            // Not a program.
            (
                message("application/zip", "UEsDBBQAAAAIAA", 70_000),
                "INFO pass: no Klez signature",
            ),
        ] {
            assert_eq!(
                server.send_message("a@b.example", &["u@test.example"], &body),
                QUEUE_DECLINED
            );
            assert!(
                log.records()
                    .iter()
                    .any(|r| format!("{} {}", r.level, r.message).starts_with(logged)),
                "{logged}"
            );
        }
        // Past the first 41 lines of the body.
        let late = message(
            "application/octet-stream",
            "AAAA\r\n".repeat(40).trim_end(),
            1000,
        ) + &format!("{WORM}\r\n")
            + &"AAAA\r\n".repeat(15_000);
        assert_eq!(
            server.send_message("a@b.example", &["u@test.example"], &late),
            QUEUE_DECLINED
        );
        let mine: Vec<String> = log
            .records()
            .into_iter()
            .filter(|r| r.plugin.as_deref() == Some("virus::klez_filter"))
            .filter(|r| r.level <= Level::Info)
            .map(|r| r.message)
            .collect();
        assert_eq!(mine.len(), 4, "{mine:?}");
        assert!(
            mine[0].ends_with("bytes is too small to be Klez"),
            "{mine:?}"
        );
        assert_eq!(mine[3], "pass: no Klez signature");
    }

    #[test]
    fn reject_arguments_apply() {
        let log = LogCapture::default();
        let server = server("virus/klez_filter reject_type temp", &log);
        assert_eq!(
            server.send_message(
                "a@b.example",
                &["u@test.example"],
                &message("audio/wav", WORM, 70_000)
            ),
            "452 4.7.1 Klez Virus Detected\r\n"
        );
        let log = LogCapture::default();
        let server = self::server("virus/klez_filter reject 0", &log);
        assert_eq!(
            server.send_message(
                "a@b.example",
                &["u@test.example"],
                &message("audio/wav", WORM, 70_000)
            ),
            QUEUE_DECLINED
        );
        assert!(log.contains("fail, tolerated: Klez signature in line 10 of the body"));
    }

    #[test]
    fn bad_arguments_are_refused() {
        for line in [
            "virus/klez_filter reject 1 reject_type perm bogus_arg 1",
            "virus/klez_filter reject maybe",
            "virus/klez_filter 1",
        ] {
            let err = crate::test_support::load_error(line);
            assert!(
                err.contains("plugins:1: virus/klez_filter: "),
                "{line}: {err}"
            );
        }
    }
}
