//! # NAME
//!
//! loadcheck - turn clients away while the system is overloaded
//!
//! # DESCRIPTION
//!
//! When a client connects, this plugin looks at the system's load average over the last
//! minute. If it is above `max_load`, the client is refused with a temporary error and the
//! connection closed:
//!
//! ```text
//! 450 4.3.2 System load too high, please try again later
//! ```
//!
//! Mail servers retry later, so no mail is lost; the load the server does not take on is
//! what a busy machine needs.
//!
//! The load is read from `/proc/loadavg` (its first number). Where that file does not exist
//! or cannot be read, the `uptime` program is run and the first number after its
//! `load average:` is taken. A value once read is reused for `cache_time` seconds by all
//! the sessions of the process, so a burst of connections does not read it again and
//! again. When the load cannot be found out at all, the plugin logs an `error` line and
//! lets the client in.
//!
//! # CONFIGURATION
//!
//! ## max_load *LOAD*
//!
//! Default: `7`. Clients are refused while the one-minute load average is above this
//! number (which may have decimals: `max_load 3.5`).
//!
//! ## cache_time *SECONDS*
//!
//! Default: `10`. How long a load value is reused before it is read again. `0` reads it
//! for every connection.
//!
//! ## loadavg *PATH*
//!
//! Default: `/proc/loadavg`. The file to read the load from, in the format of Linux's
//! `/proc/loadavg` (the one-minute load first, then anything).
//!
//! ## uptime *PATH*
//!
//! Default: `/usr/bin/uptime`. The program run when the `loadavg` file cannot be read. It
//! is run without arguments, with a limit of 2 seconds.
//!
//! ## reject *0|1|naughty*
//!
//! Default: `1`. What a failed check does: `1` rejects at once, `0` only logs
//! `fail, tolerated` and lets the client go on, `naughty` keeps the rejection for the
//! `naughty` plugin to deliver later.
//!
//! ## reject_type *perm|temp|disconnect|temp_disconnect*
//!
//! Default: `temp`. How to reject: `perm` with a 5xx reply, `temp` with a 4xx reply,
//! `disconnect` with a 5xx reply and closing the connection, `temp_disconnect` with 421 and
//! closing. At `connect` every refusal closes the connection.
//!
//! ## loglevel *N|+N|-N*
//!
//! Default: none. Every plugin takes it: an absolute level (0-7 or a name such as `LOGINFO`)
//! for all of the plugin's log messages, or a shift of their levels by N.
//!
//! ## Files
//!
//! No control files. It reads the `loadavg` file given above (`/proc/loadavg`).
//!
//! # DIFFERENCES FROM QPSMTPD
//!
//! - The load file is an argument (`loadavg`), and BSD's `/kern/loadavg` is not looked
//!   for: point `loadavg` at it only if it has the Linux format; otherwise `uptime` is used.
//! - The refusal has a text (`System load too high, please try again later`) instead of
//!   the server's general one, and the plugin takes `reject` and `reject_type`.
//! - `uptime` output with a decimal comma (`load average: 0,52, ...`) is understood, and
//!   `uptime` is stopped when it takes longer than 2 seconds.
//! - A load that cannot be read is logged as an error; the Perl plugin went on with the
//!   last value it had read, however old.
//! - Arguments are checked when the server starts: a `max_load` that is not a number is a
//!   configuration error.
//!
//! # SEE ALSO
//!
//! qpsmtpd-hosts_allow(7), qpsmtpd-plugins(7), uptime(1), proc(5)

use crate::program::{describe, run};
use qpsmtpd_core::log::Level;
use qpsmtpd_core::{
    ConfigError, Context, Hook, Plugin, PluginSpec, Registration, Reject, RejectMode, RejectType,
    Setup, Verdict,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const SPEC: PluginSpec = PluginSpec {
    name: "loadcheck",
    factory: new,
    args: &[
        "max_load",
        "cache_time",
        "loadavg",
        "uptime",
        "reject",
        "reject_type",
    ],
    rejects: true,
    example: "max_load 7 cache_time 10",
};

const DEFAULT_LOADAVG: &str = "/proc/loadavg";
const DEFAULT_UPTIME: &str = "/usr/bin/uptime";
/// How long `uptime` may take.
const UPTIME_TIMEOUT: Duration = Duration::from_secs(2);
/// What the client hears when refused.
const TOO_BUSY: &str = "4.3.2 System load too high, please try again later";

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    let args = setup.pairs()?;
    let max_load: f64 = args.value("max_load", 7.0).map_err(|e| setup.error(e))?;
    if !max_load.is_finite() || max_load < 0.0 {
        return Err(setup.error(format!(
            "max_load must be a number of 0 or more, not {max_load}"
        )));
    }
    let cache_time: u64 = args.value("cache_time", 10).map_err(|e| setup.error(e))?;
    let path = |key: &str, default: &str| -> Result<PathBuf, ConfigError> {
        match args.get(key).unwrap_or(default) {
            "" => Err(setup.error(format!("{key} needs a path"))),
            p => Ok(PathBuf::from(p)),
        }
    };
    Ok(Box::new(LoadCheck {
        max_load,
        cache_time: Duration::from_secs(cache_time),
        loadavg: path("loadavg", DEFAULT_LOADAVG)?,
        uptime: path("uptime", DEFAULT_UPTIME)?,
        reject: setup.reject(&args, RejectMode::On, RejectType::Temp)?,
        cache: Mutex::new(None),
    }))
}

struct LoadCheck {
    max_load: f64,
    cache_time: Duration,
    loadavg: PathBuf,
    uptime: PathBuf,
    reject: Reject,
    /// The last load read, and when. Shared by the sessions of this process.
    cache: Mutex<Option<(Instant, f64)>>,
}

impl LoadCheck {
    /// The one-minute load: cached, or read now (with a note of where it came from).
    fn load(&self, cx: &Context<'_>) -> Result<f64, String> {
        // A poisoned lock only means another session panicked; the value is still good.
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((when, load)) = *cache
            && when.elapsed() < self.cache_time
        {
            cx.log(Level::Debug, format!("cached load: {load}"));
            return Ok(load);
        }
        let (load, source) = match read_loadavg(&self.loadavg) {
            Ok(load) => (load, self.loadavg.display().to_string()),
            Err(file_err) => match self.run_uptime() {
                Ok(load) => (load, self.uptime.display().to_string()),
                Err(uptime_err) => return Err(format!("{file_err}; {uptime_err}")),
            },
        };
        cx.log(Level::Debug, format!("{source} reported load {load}"));
        *cache = Some((Instant::now(), load));
        Ok(load)
    }

    fn run_uptime(&self) -> Result<f64, String> {
        let name = self.uptime.display();
        let out = run(&mut Command::new(&self.uptime), UPTIME_TIMEOUT, 4096)
            .map_err(|e| format!("cannot run {name}: {e}"))?;
        if !out.status.success() {
            return Err(format!("{name} failed: {}", describe(out.status)));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        parse_uptime(&text).ok_or_else(|| format!("no load average in {name}'s output {text:?}"))
    }
}

/// The first number of a `/proc/loadavg`-style file.
fn read_loadavg(path: &Path) -> Result<f64, String> {
    let name = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {name}: {e}"))?;
    text.split_whitespace()
        .next()
        .and_then(|w| w.parse::<f64>().ok())
        .filter(|l| l.is_finite())
        .ok_or_else(|| format!("no load average in {name}: {:?}", text.trim_end()))
}

/// The one-minute load from `uptime`'s output, which comes in many shapes:
///
/// ```text
///  10:33:12 up 2 days,  2:06,  1 user,  load average: 6.55, 3.76, 2.48
/// 10:33AM  up  2:06, 1 user, load averages: 6.55 3.76 2.48
///  12:29:01 up 5 days, 12:43,  2 users,  load average: 0,05, 0,05, 0,06
/// ```
fn parse_uptime(text: &str) -> Option<f64> {
    let (_, after) = text.split_once("load average")?;
    let after = after
        .trim_start_matches('s')
        .strip_prefix(':')?
        .trim_start();
    let int_len = after.bytes().take_while(u8::is_ascii_digit).count();
    let rest = &after[int_len..];
    let frac_len = match rest.as_bytes().first() {
        Some(b'.' | b',') => rest[1..].bytes().take_while(u8::is_ascii_digit).count(),
        _ => 0,
    };
    if int_len == 0 || frac_len == 0 {
        return None;
    }
    let number = format!("{}.{}", &after[..int_len], &rest[1..=frac_len]);
    number.parse().ok()
}

impl Plugin for LoadCheck {
    fn hooks(&self) -> Vec<Registration> {
        vec![Hook::Connect.into()]
    }

    /// Like a load that cannot be read, a failure of the check lets clients in.
    fn on_failure(&self, _hook: Hook) -> Verdict {
        Verdict::Declined
    }

    fn connect(&self, cx: &mut Context<'_>) -> Verdict {
        match self.load(cx) {
            Err(e) => {
                cx.error(format!("cannot find out the load: {e}"));
                Verdict::Declined
            }
            Ok(load) if load > self.max_load => self.reject.apply(
                cx,
                TOO_BUSY,
                &format!("load {load} is above {}", self.max_load),
            ),
            Ok(load) => {
                cx.pass(format!("load {load} is not above {}", self.max_load));
                Verdict::Declined
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::program::script;
    use qpsmtpd_core::testing::{Harness, LogCapture, TestServer};

    /// A server whose load comes from `<dir>/loadavg` (written with `loadavg`, if given),
    /// then from the script `<dir>/uptime` (with `uptime` as its body, if given).
    fn server(
        args: &str,
        loadavg: Option<&str>,
        uptime: Option<&str>,
        log: &LogCapture,
    ) -> (TestServer, PathBuf) {
        let h = Harness::new();
        let dir = h.dir().to_path_buf();
        if let Some(text) = loadavg {
            std::fs::write(dir.join("loadavg"), text).unwrap();
        }
        if let Some(body) = uptime {
            script(&dir.join("uptime"), body);
        }
        let line = format!(
            "loadcheck loadavg {} uptime {} {args}",
            dir.join("loadavg").display(),
            dir.join("uptime").display()
        );
        let server = h
            .catalogue(crate::CATALOGUE)
            .file("plugins", &line)
            .plugin("capture", log.clone())
            .build()
            .unwrap();
        (server, dir)
    }

    fn banner(server: &TestServer) -> String {
        server.session().connect()
    }

    const BUSY: &str = "450 4.3.2 System load too high, please try again later\r\n";

    #[test]
    fn refuses_while_the_load_is_above_max_load() {
        let log = LogCapture::default();
        let (server, dir) = server(
            "max_load 2.5 cache_time 0",
            Some("2.51 1.00 0.50 1/234 5678\n"),
            None,
            &log,
        );
        assert_eq!(banner(&server), BUSY);
        std::fs::write(dir.join("loadavg"), "2.50 3.00 3.00 1/234 5678\n").unwrap();
        assert!(banner(&server).starts_with("220 test.example ESMTP"));
        assert_eq!(
            log.of_plugin("loadcheck")
                .into_iter()
                .filter(|l| !l.starts_with("DEBUG"))
                .collect::<Vec<_>>(),
            [
                "INFO fail: load 2.51 is above 2.5",
                "INFO pass: load 2.5 is not above 2.5"
            ]
        );
    }

    #[test]
    fn the_default_max_load_is_seven() {
        let log = LogCapture::default();
        let (server, dir) = server("cache_time 0", Some("7.00 0 0\n"), None, &log);
        assert!(banner(&server).starts_with("220 "));
        std::fs::write(dir.join("loadavg"), "7.01 0 0\n").unwrap();
        assert_eq!(banner(&server), BUSY);
    }

    #[test]
    fn a_load_is_reused_for_cache_time() {
        let log = LogCapture::default();
        let (server, dir) = server("max_load 1 cache_time 3600", Some("0.10 0 0\n"), None, &log);
        assert!(banner(&server).starts_with("220 "));
        std::fs::write(dir.join("loadavg"), "9.00 0 0\n").unwrap();
        assert!(banner(&server).starts_with("220 "));
        assert!(log.contains("cached load: 0.1"));
        assert!(!log.contains("load 9"));
    }

    #[test]
    fn falls_back_to_uptime() {
        let log = LogCapture::default();
        let (server, _dir) = server(
            "max_load 5 cache_time 0",
            None,
            Some("echo ' 10:33:12 up 2 days,  2:06,  1 user,  load average: 6,55, 3,76, 2,48'"),
            &log,
        );
        assert_eq!(banner(&server), BUSY);
        assert!(log.contains("fail: load 6.55 is above 5"));
        assert!(log.contains("/uptime reported load 6.55"));
    }

    #[test]
    fn an_unknown_load_lets_clients_in() {
        let log = LogCapture::default();
        let (server, _dir) = server("", Some("busy\n"), Some("exit 1"), &log);
        assert!(banner(&server).starts_with("220 "));
        let lines = log.of_plugin("loadcheck");
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].starts_with("ERROR error: cannot find out the load: no load average in ")
                && lines[0].ends_with("/uptime failed: exit status 1"),
            "{lines:?}"
        );
    }

    #[test]
    fn reject_arguments_apply() {
        let log = LogCapture::default();
        let (perm, _dir) = server(
            "max_load 1 reject_type perm",
            Some("3.00 0 0\n"),
            None,
            &log,
        );
        assert_eq!(
            banner(&perm),
            "550 5.3.2 System load too high, please try again later\r\n"
        );
        let log = LogCapture::default();
        let (server, _dir) = server("max_load 1 reject 0", Some("3.00 0 0\n"), None, &log);
        assert!(banner(&server).starts_with("220 "));
        assert!(log.contains("fail, tolerated: load 3 is above 1"));
    }

    #[test]
    fn parses_uptime_output() {
        for (text, want) in [
            (
                " 10:33:12 up 2 days,  2:06,  1 user,  load average: 6.55, 3.76, 2.48\n",
                Some(6.55),
            ),
            (
                "10:33AM  up  2:06, 1 user, load averages: 6.55 3.76 2.48\n",
                Some(6.55),
            ),
            (
                " 12:29am  2 users,  load average: 0,05, 0,05, 0,06",
                Some(0.05),
            ),
            ("load average: 12.5", Some(12.5)),
            ("load average: 3, 2, 1", None),
            ("up 2 days", None),
        ] {
            assert_eq!(parse_uptime(text), want, "{text}");
        }
    }

    #[test]
    fn bad_arguments_are_refused() {
        for line in [
            "loadcheck max_load 7 cache_time 10 bogus_arg 1",
            "loadcheck max_load high",
            "loadcheck max_load -1",
            "loadcheck cache_time 1.5",
            "loadcheck uptime",
            "loadcheck reject_type later",
        ] {
            let err = crate::test_support::load_error(line);
            assert!(err.contains("plugins:1: loadcheck: "), "{line}: {err}");
        }
    }
}
