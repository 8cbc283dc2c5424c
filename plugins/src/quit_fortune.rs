//! # NAME
//!
//! quit_fortune - say goodbye with a fortune cookie
//!
//! # DESCRIPTION
//!
//! When a client ends the session with `QUIT`, this plugin runs the `fortune` program and
//! sends its saying along with the goodbye, as a multi-line reply:
//!
//! ```text
//! 221-2.0.0 mail.example.com closing connection.
//! 221-2.0.0   / Luck is what happens when preparation
//! 221 2.0.0   / meets a retried delivery.
//! ```
//!
//! Only clients that greeted with `HELO` get a fortune (or clients that never greeted at
//! all): one that used `EHLO` is probably a mail server too sophisticated to enjoy it, and
//! gets the server's usual `221` goodbye.
//!
//! The program is run with `-s` (short sayings only), without a shell, with no input, for
//! at most 2 seconds; at most 20 lines of its output are used, each cut to 400 characters,
//! with tabs turned into spaces and anything that is not printable ASCII into `?`. When the
//! program is missing, fails, or takes too long, the client gets the usual goodbye.
//!
//! It is harmless fun: nothing it does can refuse anything.
//!
//! # CONFIGURATION
//!
//! ## fortune *PATH*
//!
//! Default: `/usr/games/fortune`. The program to run. Whether it exists is checked once,
//! when the server starts; when it does not, the plugin does nothing (each `QUIT` logs a
//! `skip` line saying so).
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
//! - The program's path is an argument (`fortune PATH`); the Perl plugin always ran
//!   `/usr/games/fortune`, and looked for it at every `QUIT`.
//! - The program runs with a time limit and its output is bounded and cleaned; the Perl
//!   plugin waited for it as long as it took and sent whatever it printed.
//! - When the program fails or prints nothing the client gets the usual goodbye, not a
//!   goodbye with an empty saying.
//!
//! # SEE ALSO
//!
//! fortune(6), qpsmtpd-plugins(7)

use crate::program::{describe, run};
use qpsmtpd_core::connection::Hello;
use qpsmtpd_core::log::Level;
use qpsmtpd_core::{
    ConfigError, Context, Hook, Plugin, PluginSpec, Registration, Reply, Setup, Verdict,
};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub const SPEC: PluginSpec = PluginSpec {
    name: "quit_fortune",
    factory: new,
    args: &["fortune"],
    rejects: false,
    example: "fortune /usr/games/fortune",
};

/// Where the program usually lives (Debian's `fortune-mod`).
const DEFAULT_FORTUNE: &str = "/usr/games/fortune";
/// How long the program may take.
const TIMEOUT: Duration = Duration::from_secs(2);
/// At most this many lines of the saying are sent.
const MAX_LINES: usize = 20;
/// Lines are cut to this many characters, so reply lines stay within SMTP's 512.
const MAX_LINE_CHARS: usize = 400;
/// At most this much of the program's output is read.
const MAX_OUTPUT: u64 = 16 * 1024;

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    let args = setup.pairs()?;
    let program = PathBuf::from(args.get("fortune").unwrap_or(DEFAULT_FORTUNE));
    if program.as_os_str().is_empty() {
        return Err(setup.error("fortune needs a path"));
    }
    let installed = is_executable(&program);
    Ok(Box::new(QuitFortune { program, installed }))
}

struct QuitFortune {
    program: PathBuf,
    /// Whether the program existed (as an executable file) when the server started.
    installed: bool,
}

impl Plugin for QuitFortune {
    fn hooks(&self) -> Vec<Registration> {
        vec![Hook::Quit.into()]
    }

    /// A broken fortune must not cost the client its goodbye.
    fn on_failure(&self, _hook: Hook) -> Verdict {
        Verdict::Declined
    }

    fn quit(&self, cx: &mut Context<'_>) -> Verdict {
        if !self.installed {
            cx.skip(format!("{} is not installed", self.program.display()));
            return Verdict::Declined;
        }
        if cx.connection().hello == Some(Hello::Ehlo) {
            cx.skip("the client used EHLO");
            return Verdict::Declined;
        }
        let output = match run(Command::new(&self.program).arg("-s"), TIMEOUT, MAX_OUTPUT) {
            Ok(out) if out.status.success() => out.stdout,
            Ok(out) => {
                cx.error(format!(
                    "{} failed: {}",
                    self.program.display(),
                    describe(out.status)
                ));
                return Verdict::Declined;
            }
            Err(e) => {
                cx.error(format!("cannot run {}: {e}", self.program.display()));
                return Verdict::Declined;
            }
        };
        let saying = saying_lines(&output);
        if saying.is_empty() {
            cx.error(format!("{} printed nothing", self.program.display()));
            return Verdict::Declined;
        }
        cx.log(Level::Debug, format!("fortune: {}", saying.join(" | ")));
        cx.pass(format!("told a fortune of {} lines", saying.len()));
        let mut text = format!("{} closing connection.", cx.core().me);
        for line in &saying {
            text.push_str("\n  / ");
            text.push_str(line);
        }
        Verdict::done(Reply::new(221, "2.0.0", &text))
    }
}

/// True if `path` is a regular file someone may execute.
fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The program's output as reply lines: at most [`MAX_LINES`], printable ASCII only,
/// trailing blank lines dropped.
fn saying_lines(output: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(output);
    let mut lines: Vec<String> = text
        .lines()
        .take(MAX_LINES)
        .map(|line| {
            line.trim_end()
                .chars()
                .map(|c| match c {
                    '\t' => ' ',
                    ' '..='~' => c,
                    _ => '?',
                })
                .take(MAX_LINE_CHARS)
                .collect()
        })
        .collect();
    while lines.last().is_some_and(|l: &String| l.trim().is_empty()) {
        lines.pop();
    }
    lines
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::program::script;
    use qpsmtpd_core::testing::{Harness, LogCapture, TestServer};
    use std::time::Instant;

    /// A server with `quit_fortune fortune <dir>/fortune`, the script saying `body`.
    fn server(body: Option<&str>, log: &LogCapture) -> TestServer {
        let h = Harness::new();
        let program = h.dir().join("fortune");
        if let Some(body) = body {
            script(&program, body);
        }
        h.catalogue(crate::CATALOGUE)
            .file(
                "plugins",
                &format!("quit_fortune fortune {}", program.display()),
            )
            .plugin("capture", log.clone())
            .build()
            .unwrap()
    }

    fn quit_after(server: &TestServer, greeting: Option<&str>) -> String {
        let mut s = server.session();
        assert!(s.connect().starts_with("220 "));
        if let Some(g) = greeting {
            assert!(s.command(g).starts_with("250"));
        }
        let reply = s.command("QUIT");
        assert!(s.is_closed());
        reply
    }

    const GOODBYE: &str = "221 2.0.0 test.example closing connection. Have a wonderful day.\r\n";

    #[test]
    fn helo_clients_get_a_fortune() {
        let log = LogCapture::default();
        let server = server(
            Some(
                r#"[ "$1" = -s ] || exit 1; printf 'Fortune\tfavours\n the bold. \303\251\n\n\n'"#,
            ),
            &log,
        );
        assert_eq!(
            quit_after(&server, Some("HELO client.example")),
            "221-2.0.0 test.example closing connection.\r\n\
             221-2.0.0   / Fortune favours\r\n\
             221 2.0.0   /  the bold. ?\r\n"
        );
        assert_eq!(
            quit_after(&server, None),
            "221-2.0.0 test.example closing connection.\r\n\
             221-2.0.0   / Fortune favours\r\n\
             221 2.0.0   /  the bold. ?\r\n"
        );
        assert_eq!(
            log.of_plugin("quit_fortune")
                .iter()
                .filter(|l| !l.starts_with("DEBUG"))
                .collect::<Vec<_>>(),
            [
                "INFO pass: told a fortune of 2 lines",
                "INFO pass: told a fortune of 2 lines"
            ]
        );
    }

    #[test]
    fn ehlo_clients_get_the_usual_goodbye() {
        let log = LogCapture::default();
        let server = server(Some("echo should not run; exit 1"), &log);
        assert_eq!(quit_after(&server, Some("EHLO client.example")), GOODBYE);
        assert_eq!(
            log.of_plugin("quit_fortune"),
            ["INFO skip: the client used EHLO"]
        );
    }

    #[test]
    fn a_missing_program_is_skipped() {
        let log = LogCapture::default();
        let server = server(None, &log);
        assert_eq!(quit_after(&server, Some("HELO client.example")), GOODBYE);
        let lines = log.of_plugin("quit_fortune");
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].starts_with("INFO skip: /") && lines[0].ends_with("/fortune is not installed"),
            "{lines:?}"
        );
    }

    #[test]
    fn output_is_bounded_to_twenty_lines() {
        let log = LogCapture::default();
        let server = server(
            Some("i=0; while [ $i -lt 1000 ]; do echo \"line $i\"; i=$((i+1)); done"),
            &log,
        );
        let reply = quit_after(&server, Some("HELO client.example"));
        let lines: Vec<&str> = reply.lines().collect();
        assert_eq!(lines.len(), 21, "{reply}");
        assert_eq!(lines[20], "221 2.0.0   / line 19");
        assert_eq!(
            log.find("pass:").as_deref(),
            Some("pass: told a fortune of 20 lines")
        );
    }

    #[test]
    fn failures_fall_back_to_the_usual_goodbye() {
        for (body, logged) in [
            ("echo oops; exit 3", "failed: exit status 3"),
            ("exit 0", "printed nothing"),
            (
                "sleep 30 & sleep 30; echo late",
                "no end of output after 2 s",
            ),
        ] {
            let log = LogCapture::default();
            let server = server(Some(body), &log);
            let started = Instant::now();
            assert_eq!(quit_after(&server, Some("HELO client.example")), GOODBYE);
            assert!(started.elapsed() < Duration::from_secs(10), "{body}");
            let lines = log.of_plugin("quit_fortune");
            assert_eq!(lines.len(), 1, "{body}: {lines:?}");
            assert!(
                lines[0].starts_with("ERROR error: ") && lines[0].ends_with(logged),
                "{body}: {lines:?}"
            );
        }
    }

    #[test]
    fn bad_arguments_are_refused() {
        for line in [
            "quit_fortune bogus_arg 1",
            "quit_fortune fortune",
            "quit_fortune /usr/games/fortune",
        ] {
            let err = crate::test_support::load_error(line);
            assert!(err.contains("plugins:1: quit_fortune: "), "{line}: {err}");
        }
    }
}
