//! # NAME
//!
//! random_error - fail now and then, to test how clients cope
//!
//! # DESCRIPTION
//!
//! A plugin for testing, not for production: it makes the server fail at random, so that
//! you can watch how clients, relays and your own monitoring deal with temporary errors.
//!
//! At each of the hooks `connect`, `helo`, `ehlo`, `mail`, `rcpt`, `data` and `data_post`
//! it fails with a chance of PERCENT/6 percent, so that a session, which passes through
//! about six of them, fails somewhere with a chance of about PERCENT percent. A failure is a
//! temporary one with the text `random failure`: two in five also close the connection
//! (`421 4.7.1 random failure` at `MAIL`), the other three only refuse the command
//! (`450 4.7.1 random failure` at `MAIL`). At `connect` both close the connection
//! (`450 4.7.1 random failure`).
//!
//! Another plugin may change the rate for one connection by setting the connection note
//! `random_fail_%` to a number (a percentage as above). When that note is not set at
//! `connect`, this plugin sets it to PERCENT, so plugins that come later can read the rate
//! in force too.
//!
//! # CONFIGURATION
//!
//! ## PERCENT
//!
//! Default: `1`. How often a session fails, in percent; it may have decimals (`0.5`).
//! `0` or a negative number switches the failures off (each hook then logs a `skip` line),
//! unless the `random_fail_%` note switches them on for a connection. Values above 100
//! make failures early in the session more likely; from 600 on, every hook fails.
//!
//! ## reject *0|1|naughty*
//!
//! Default: `1`. What a failed check does: `1` rejects at once, `0` only logs
//! `fail, tolerated` and lets the client go on, `naughty` keeps the rejection for the
//! `naughty` plugin to deliver later.
//!
//! ## reject_type *perm|temp|disconnect|temp_disconnect*
//!
//! Default: none, which gives the mix described above (two in five `temp_disconnect`, three
//! in five `temp`). Set, every random failure is of this type: `perm` with a 5xx reply,
//! `temp` with a 4xx reply, `disconnect` with a 5xx reply and closing the connection,
//! `temp_disconnect` with 421 and closing.
//!
//! For example, `random_error 5 reject 0` only logs where a 5% failure rate would have
//! struck.
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
//! - `random_error 0` switches failures off; in the Perl plugin a 0 was read as the
//!   default, 1%.
//! - A `random_fail_%` note set before this plugin's `connect` hook is kept; the Perl
//!   plugin overwrote it with PERCENT, so only plugins running after it could change it.
//! - It takes `reject` and `reject_type` like every rejecting plugin.
//! - A PERCENT that is not a number is a configuration error.
//!
//! # SEE ALSO
//!
//! qpsmtpd-naughty(7), qpsmtpd-plugins(7)

use qpsmtpd_core::log::Level;
use qpsmtpd_core::{
    Address, ConfigError, Context, Hook, Params, Plugin, PluginSpec, Registration, Reject,
    RejectMode, RejectType, Setup, Verdict,
};

pub const SPEC: PluginSpec = PluginSpec {
    name: "random_error",
    factory: new,
    args: &["PERCENT", "reject", "reject_type"],
    rejects: true,
    example: "0",
};

/// The connection note that holds the rate in force.
pub const NOTE: &str = "random_fail_%";
/// The rate when no PERCENT is given.
const DEFAULT_PERCENT: f64 = 1.0;
/// The reply text of every failure.
const MESSAGE: &str = "random failure";

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    let keys = setup.spec.keys();
    // An optional PERCENT first, then `key value` pairs.
    let (percent, rest) = match setup.args.split_first() {
        Some((first, rest)) if !keys.contains(&first.to_ascii_lowercase().as_str()) => {
            (Some(first.as_str()), rest)
        }
        _ => (None, setup.args),
    };
    let percent = match percent {
        None => DEFAULT_PERCENT,
        Some(p) => parse_percent(p)
            .ok_or_else(|| setup.error(format!("PERCENT must be a number, not {p:?}")))?,
    };
    let pairs = qpsmtpd_core::Pairs::parse(rest, &keys).map_err(|e| setup.error(e))?;
    let reject = setup.reject(&pairs, RejectMode::On, RejectType::Temp)?;
    Ok(Box::new(RandomError {
        percent,
        reject,
        mixed: pairs.get("reject_type").is_none(),
    }))
}

struct RandomError {
    percent: f64,
    reject: Reject,
    /// No `reject_type` given: the original's mix of temp and temp_disconnect.
    mixed: bool,
}

/// This session's dice.
struct Dice(fastrand::Rng);

impl Default for Dice {
    fn default() -> Dice {
        // fastrand's generator, stirred with the time and process id: the children of a
        // forking server start with copies of one state and must not all fail alike.
        let mut rng = fastrand::Rng::new();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let seed = rng.u64(..) ^ nanos ^ (u64::from(std::process::id()) << 32);
        rng.seed(seed);
        Dice(rng)
    }
}

/// A finite number, or nothing.
fn parse_percent(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|p| p.is_finite())
}

impl RandomError {
    /// The rate in force for this connection: the note, else PERCENT.
    fn rate(&self, cx: &mut Context<'_>) -> f64 {
        let note = cx.connection().notes.get(NOTE).map(|v| match v.as_int() {
            Some(i) => Some(i as f64),
            None => v.as_str().and_then(parse_percent),
        });
        match note {
            Some(Some(p)) => p,
            Some(None) => {
                cx.log(
                    Level::Debug,
                    format!("note {NOTE} is not a number; using {}", self.percent),
                );
                self.percent
            }
            None => self.percent,
        }
    }

    /// Rolls the dice for this hook.
    fn roll(&self, cx: &mut Context<'_>) -> Verdict {
        let hook = cx.hook();
        let rate = self.rate(cx);
        if rate <= 0.0 {
            cx.skip(format!("random failures are off ({rate}%)"));
            return Verdict::Declined;
        }
        let dice = &mut cx.state::<Dice>().0;
        // A session passes through about six hooks; together they fail `rate` percent of
        // the time.
        let strikes = dice.f64() * 100.0 < rate / 6.0;
        let disconnect = dice.u32(0..5) < 2;
        if !strikes {
            cx.pass(format!("no random failure at {hook} ({rate}%)"));
            return Verdict::Declined;
        }
        let mut reject = self.reject;
        if self.mixed {
            reject.kind = if disconnect {
                RejectType::TempDisconnect
            } else {
                RejectType::Temp
            };
        }
        reject.apply(
            cx,
            MESSAGE,
            &format!("random failure at {hook} ({rate}%, {})", reject.kind.name()),
        )
    }
}

impl Plugin for RandomError {
    fn hooks(&self) -> Vec<Registration> {
        [
            Hook::Connect,
            Hook::Helo,
            Hook::Ehlo,
            Hook::Mail,
            Hook::Rcpt,
            Hook::Data,
            Hook::DataPost,
        ]
        .into_iter()
        .map(Registration::from)
        .collect()
    }

    /// A testing aid never stops mail by accident.
    fn on_failure(&self, _hook: Hook) -> Verdict {
        Verdict::Declined
    }

    fn connect(&self, cx: &mut Context<'_>) -> Verdict {
        let notes = &mut cx.connection_mut().notes;
        if notes.get(NOTE).is_none() {
            notes.set(NOTE, self.percent.to_string());
        }
        self.roll(cx)
    }

    fn helo(&self, cx: &mut Context<'_>, _: &str, _: &[String]) -> Verdict {
        self.roll(cx)
    }

    fn ehlo(&self, cx: &mut Context<'_>, _: &str, _: &[String]) -> Verdict {
        self.roll(cx)
    }

    fn mail(&self, cx: &mut Context<'_>, _: &Address, _: &Params) -> Verdict {
        self.roll(cx)
    }

    fn rcpt(&self, cx: &mut Context<'_>, _: &Address, _: &Params) -> Verdict {
        self.roll(cx)
    }

    fn data(&self, cx: &mut Context<'_>) -> Verdict {
        self.roll(cx)
    }

    fn data_post(&self, cx: &mut Context<'_>) -> Verdict {
        self.roll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qpsmtpd_core::testing::{Harness, LogCapture, TestServer};

    fn server(line: &str, log: &LogCapture) -> TestServer {
        Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("plugins", &format!("{line}\nrcpt_ok"))
            .file("rcpthosts", "test.example")
            .plugin("capture", log.clone())
            .build()
            .unwrap()
    }

    /// Sets the rate note for every connection, before random_error's connect hook.
    struct SetRate(&'static str);
    impl Plugin for SetRate {
        fn hooks(&self) -> Vec<Registration> {
            vec![Registration::with_priority(Hook::Connect, -1)]
        }
        fn connect(&self, cx: &mut Context<'_>) -> Verdict {
            cx.connection_mut().notes.set(NOTE, self.0);
            Verdict::Declined
        }
    }

    /// Sets the rate note to 600 (every hook fails) at HELO, after random_error ran.
    struct RaiseAtHelo;
    impl Plugin for RaiseAtHelo {
        fn hooks(&self) -> Vec<Registration> {
            vec![Hook::Helo.into()]
        }
        fn helo(&self, cx: &mut Context<'_>, _: &str, _: &[String]) -> Verdict {
            cx.connection_mut().notes.set(NOTE, 600i64);
            Verdict::Declined
        }
    }

    #[test]
    fn zero_percent_never_fails() {
        let log = LogCapture::default();
        let server = server("random_error 0", &log);
        for _ in 0..20 {
            assert_eq!(
                server.send_message("a@b.example", &["u@test.example"], "Subject: x\r\n\r\nhi"),
                "451 4.3.0 Queuing declined or disabled; try again later\r\n"
            );
        }
        let lines = log.of_plugin("random_error");
        // connect, ehlo, mail, rcpt, data, data_post.
        assert_eq!(lines.len(), 20 * 6, "{lines:?}");
        assert!(
            lines
                .iter()
                .all(|l| l == "INFO skip: random failures are off (0%)"),
            "{lines:?}"
        );
    }

    #[test]
    fn six_hundred_percent_fails_at_connect() {
        let log = LogCapture::default();
        let server = server("random_error 600", &log);
        for _ in 0..10 {
            let mut s = server.session();
            assert_eq!(s.connect(), "450 4.7.1 random failure\r\n");
            assert!(s.is_closed());
        }
        let lines = log.of_plugin("random_error");
        assert_eq!(lines.len(), 10);
        for l in lines {
            assert!(
                l == "INFO fail: random failure at connect (600%, temp)"
                    || l == "INFO fail: random failure at connect (600%, temp_disconnect)",
                "{l}"
            );
        }
    }

    #[test]
    fn two_in_five_failures_disconnect() {
        let log = LogCapture::default();
        let server = Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("plugins", "random_error -1")
            .plugin("raise", RaiseAtHelo)
            .plugin("capture", log.clone())
            .build()
            .unwrap();
        let (mut soft, mut closing) = (0, 0);
        for _ in 0..1000 {
            let mut s = server.session();
            assert!(s.connect().starts_with("220 "));
            assert!(s.command("HELO client.example").starts_with("250 "));
            match s.command("MAIL FROM:<a@b.example>").as_str() {
                "450 4.7.1 random failure\r\n" => {
                    assert!(!s.is_closed());
                    soft += 1;
                }
                "421 4.7.1 random failure\r\n" => {
                    assert!(s.is_closed());
                    closing += 1;
                }
                other => panic!("unexpected reply {other:?}"),
            }
        }
        // 40% of 1000 is 400, give or take 15.5; this range is 4.5 of those either way.
        assert!((330..=470).contains(&closing), "{closing} of 1000 closed");
        assert_eq!(soft + closing, 1000);
        assert_eq!(
            log.find("random failure at mail")
                .map(|l| l.starts_with("fail: ")),
            Some(true)
        );
        assert_eq!(
            log.of_plugin("random_error")[..2],
            [
                "INFO skip: random failures are off (-1%)",
                "INFO skip: random failures are off (-1%)"
            ]
        );
    }

    #[test]
    fn one_hundred_percent_fails_about_one_hook_in_six() {
        let log = LogCapture::default();
        let server = server("random_error 100", &log);
        let mut failed = 0;
        for _ in 0..600 {
            let mut s = server.session();
            if s.connect().starts_with("450 4.7.1 random failure") {
                failed += 1;
            }
        }
        // 100/6 % of 600 is 100, give or take about 9.
        assert!((50..=150).contains(&failed), "{failed} of 600 failed");
        let records = log.of_plugin("random_error");
        assert_eq!(records.len(), 600);
        assert_eq!(
            records
                .iter()
                .filter(|l| l.starts_with("INFO fail: "))
                .count(),
            failed
        );
        assert_eq!(
            records
                .iter()
                .filter(|l| *l == "INFO pass: no random failure at connect (100%)")
                .count(),
            600 - failed
        );
    }

    #[test]
    fn a_note_set_before_connect_wins() {
        let log = LogCapture::default();
        let server = Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("plugins", "random_error 600")
            .plugin("set", SetRate("0"))
            .plugin("capture", log.clone())
            .build()
            .unwrap();
        let mut s = server.session();
        assert!(s.connect().starts_with("220 "));
        assert!(s.command("EHLO client.example").starts_with("250-"));
        assert_eq!(
            log.of_plugin("random_error"),
            [
                "INFO skip: random failures are off (0%)",
                "INFO skip: random failures are off (0%)"
            ]
        );
    }

    #[test]
    fn reject_arguments_apply() {
        let log = LogCapture::default();
        let perm = server("random_error 600 reject_type perm", &log);
        let mut s = perm.session();
        assert_eq!(s.connect(), "550 5.7.1 random failure\r\n");

        let log = LogCapture::default();
        let tolerant = server("random_error 600 reject 0", &log);
        assert_eq!(
            tolerant.send_message("a@b.example", &["u@test.example"], "Subject: x\r\n\r\nhi"),
            "451 4.3.0 Queuing declined or disabled; try again later\r\n"
        );
        let lines = log.of_plugin("random_error");
        assert_eq!(lines.len(), 6, "{lines:?}");
        assert!(lines[0].starts_with("INFO fail, tolerated: random failure at connect (600%, "));
        assert!(lines[5].starts_with("INFO fail, tolerated: random failure at data_post (600%, "));
    }

    #[test]
    fn bad_arguments_are_refused() {
        for line in [
            "random_error 0 bogus_arg 1",
            "random_error lots",
            "random_error 1 2",
            "random_error reject",
            "random_error 5 reject_type later",
        ] {
            let err = crate::test_support::load_error(line);
            assert!(err.contains("plugins:1: random_error: "), "{line}: {err}");
        }
        for line in ["random_error", "random_error 0.5", "random_error reject 0"] {
            Harness::new()
                .catalogue(crate::CATALOGUE)
                .file("plugins", line)
                .build()
                .unwrap_or_else(|e| panic!("{line}: {e}"));
        }
    }
}
