//! # NAME
//!
//! parse_addr_withhelo - refuse ESMTP parameters from clients that said HELO
//!
//! # DESCRIPTION
//!
//! ESMTP parameters after the address (`MAIL FROM:<a@example.org> SIZE=1000`,
//! `RCPT TO:<b@example.com> NOTIFY=NEVER`) are an extension (RFC 1869) that a client may
//! use only after it greeted with `EHLO` and saw the server announce them. A client that
//! greeted with the old `HELO` speaks plain RFC 821, where nothing may follow the address.
//! The server normally reads parameters whatever the greeting; with this plugin loaded,
//! a client that said `HELO` and still sends parameters (or any other word after the
//! address) is refused with
//!
//! ```text
//! 501 5.5.4 No parameters allowed in MAIL
//! ```
//!
//! (or `... in RCPT`). Clients that said `EHLO` are not checked, and a command without
//! parameters is left to the server's own parsing, so malformed commands get the server's
//! usual 501 replies.
//!
//! Each `MAIL` and `RCPT` logs one line: `skip: EHLO session`, `pass: no parameters after
//! HELO`, or the `fail` line of the refusal.
//!
//! # CONFIGURATION
//!
//! ## reject *0|1|naughty*
//!
//! Default: `1`. What a failed check does: `1` rejects at once, `0` only logs
//! `fail, tolerated` and lets the client go on, `naughty` keeps the rejection for the
//! `naughty` plugin to deliver later.
//!
//! With `0` or `naughty` the command is parsed as usual, parameters included.
//!
//! ## reject_type *perm|temp|disconnect|temp_disconnect*
//!
//! Default: `perm`. How to reject: `perm` with a 5xx reply, `temp` with a 4xx reply,
//! `disconnect` with a 5xx reply and closing the connection, `temp_disconnect` with 421 and
//! closing.
//!
//! A refused command line is a syntax error, so `perm` and `temp` both answer `501`;
//! `disconnect` answers `501` and closes the connection, `temp_disconnect` answers `421`
//! and closes.
//!
//! ## loglevel *N|+N|-N*
//!
//! Default: none. Every plugin takes it: an absolute level (0-7 or a name such as `LOGINFO`)
//! for all of the plugin's log messages, or a shift of their levels by N.
//!
//! ## Files
//!
//! None.
//!
//! # DIFFERENCES FROM QPSMTPD
//!
//! - The Perl plugin replaced the whole MAIL/RCPT parser for HELO sessions. This one only
//!   looks for parameters and leaves the parsing to the server, so HELO and EHLO clients
//!   get the same replies to malformed commands; bare `RCPT TO:postmaster`, which the Perl
//!   parser left without an answer, works.
//! - It takes `reject` and `reject_type`, like every plugin that refuses something.
//! - The reply carries the enhanced status code `5.5.4` (invalid command arguments).
//!
//! # SEE ALSO
//!
//! qpsmtpd-dont_require_anglebrackets(7), qpsmtpd-naughty(7), qpsmtpd-plugins(7),
//! RFC 821, RFC 1869

use qpsmtpd_core::protocol::PathArgs;
use qpsmtpd_core::protocol::command::{ArgError, parse_mail_args, parse_rcpt_args};
use qpsmtpd_core::{
    ConfigError, Context, Hello, Hook, Plugin, PluginSpec, Registration, Reject, RejectMode,
    RejectType, Setup, Verdict,
};

pub const SPEC: PluginSpec = PluginSpec {
    name: "parse_addr_withhelo",
    factory: new,
    args: &["reject", "reject_type"],
    rejects: true,
    example: "reject 1 reject_type perm",
};

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    let pairs = setup.pairs()?;
    Ok(Box::new(ParseAddrWithHelo {
        reject: setup.reject(&pairs, RejectMode::On, RejectType::Perm)?,
    }))
}

struct ParseAddrWithHelo {
    reject: Reject,
}

impl ParseAddrWithHelo {
    /// `verb` is `MAIL` or `RCPT`; `parse` the core's parser for its argument.
    fn check(
        &self,
        cx: &mut Context<'_>,
        verb: &str,
        line: &str,
        parse: fn(&str) -> Result<PathArgs, ArgError>,
    ) -> Verdict {
        if cx.connection().hello != Some(Hello::Helo) {
            cx.skip("EHLO session");
            return Verdict::Declined;
        }
        let extra = match parse(line) {
            Ok(args) if args.params.is_empty() => None,
            Ok(args) => Some(args.params.to_string()),
            // A malformed parameter is a parameter all the same.
            Err(ArgError::Params) => Some(after_path(line).to_string()),
            Err(ArgError::Syntax) => {
                // Not a parameter problem: the server's parser answers it.
                cx.skip(format!("{verb} syntax error, left to the server"));
                return Verdict::Declined;
            }
        };
        match extra {
            None => {
                cx.pass("no parameters after HELO");
                Verdict::Declined
            }
            Some(extra) => self.reject.apply(
                cx,
                &format!("5.5.4 No parameters allowed in {verb}"),
                &format!("{verb} parameters after HELO: {extra}"),
            ),
        }
    }
}

/// What follows the path in a MAIL/RCPT argument (for the log line).
fn after_path(line: &str) -> &str {
    let rest = line.split_once(':').map_or(line, |(_, r)| r).trim_start();
    let end = if rest.starts_with('<') {
        rest.find('>').map_or(rest.len(), |i| i + 1)
    } else {
        rest.find(' ').unwrap_or(rest.len())
    };
    rest[end..].trim()
}

impl Plugin for ParseAddrWithHelo {
    fn hooks(&self) -> Vec<Registration> {
        vec![Hook::MailParse.into(), Hook::RcptParse.into()]
    }

    fn mail_parse(&self, cx: &mut Context<'_>, line: &str, _: &mut PathArgs) -> Verdict {
        self.check(cx, "MAIL", line, parse_mail_args)
    }

    fn rcpt_parse(&self, cx: &mut Context<'_>, line: &str, _: &mut PathArgs) -> Verdict {
        self.check(cx, "RCPT", line, parse_rcpt_args)
    }
}

#[cfg(test)]
mod tests {
    use qpsmtpd_core::testing::{Harness, LogCapture, TestServer, TestSession};

    fn server(plugins: &str, logs: &LogCapture) -> TestServer {
        Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("rcpthosts", "example.com")
            .file("plugins", plugins)
            .plugin("logs", logs.clone())
            .build()
            .unwrap()
    }

    fn greeted(server: &TestServer, greeting: &str) -> TestSession {
        let mut s = server.session();
        s.connect();
        assert!(s.command(greeting).starts_with("250"));
        s
    }

    const NO_MAIL_PARAMS: &str = "501 5.5.4 No parameters allowed in MAIL\r\n";
    const NO_RCPT_PARAMS: &str = "501 5.5.4 No parameters allowed in RCPT\r\n";

    #[test]
    fn parameters_after_helo_are_refused() {
        let logs = LogCapture::default();
        let server = server("parse_addr_withhelo\nrcpt_ok", &logs);
        let mut s = greeted(&server, "HELO client.example");
        assert_eq!(
            s.command("MAIL FROM:<a@example.org> SIZE=100"),
            NO_MAIL_PARAMS
        );
        assert_eq!(s.command("MAIL FROM:<a@example.org> -bad"), NO_MAIL_PARAMS);
        assert_eq!(
            s.command("MAIL FROM:<a@example.org>"),
            "250 2.1.0 <a@example.org>, sender OK - how exciting to get mail from you!\r\n"
        );
        assert_eq!(
            s.command("RCPT TO:<b@example.com> NOTIFY=NEVER"),
            NO_RCPT_PARAMS
        );
        assert_eq!(
            s.command("RCPT TO:<b@example.com>"),
            "250 2.1.5 <b@example.com>, recipient ok\r\n"
        );
        assert_eq!(
            logs.of_plugin("parse_addr_withhelo"),
            [
                "INFO fail: MAIL parameters after HELO: SIZE=100",
                "INFO fail: MAIL parameters after HELO: -bad",
                "INFO pass: no parameters after HELO",
                "INFO fail: RCPT parameters after HELO: NOTIFY=NEVER",
                "INFO pass: no parameters after HELO",
            ]
        );
    }

    #[test]
    fn ehlo_clients_may_use_parameters() {
        let logs = LogCapture::default();
        let server = server("parse_addr_withhelo\nrcpt_ok", &logs);
        let mut s = greeted(&server, "EHLO client.example");
        assert!(
            s.command("MAIL FROM:<a@example.org> SIZE=100 BODY=8BITMIME")
                .starts_with("250 ")
        );
        assert!(
            s.command("RCPT TO:<b@example.com> NOTIFY=NEVER")
                .starts_with("250 ")
        );
        assert_eq!(
            logs.of_plugin("parse_addr_withhelo"),
            ["INFO skip: EHLO session", "INFO skip: EHLO session"]
        );
    }

    #[test]
    fn malformed_commands_get_the_servers_replies() {
        let server = server("parse_addr_withhelo\nrcpt_ok", &LogCapture::default());
        let mut s = greeted(&server, "HELO client.example");
        assert_eq!(
            s.command("MAIL <a@example.org>"),
            "501 5.5.2 Syntax error in command\r\n"
        );
        assert_eq!(
            s.command("MAIL FROM:"),
            "250 2.1.0 <>, sender OK - how exciting to get mail from you!\r\n"
        );
        assert_eq!(
            s.command("RCPT TO:postmaster"),
            "250 2.1.5 <postmaster>, recipient ok\r\n"
        );
        assert_eq!(
            s.command("RCPT TO:"),
            "501 5.5.2 Syntax error in command\r\n"
        );
    }

    #[test]
    fn reject_0_tolerates_and_disconnect_closes() {
        let logs = LogCapture::default();
        let tolerant = server("parse_addr_withhelo reject 0\nrcpt_ok", &logs);
        let mut s = greeted(&tolerant, "HELO client.example");
        assert!(
            s.command("MAIL FROM:<a@example.org> SIZE=100")
                .starts_with("250 ")
        );
        assert_eq!(
            logs.of_plugin("parse_addr_withhelo"),
            ["INFO fail, tolerated: MAIL parameters after HELO: SIZE=100"]
        );

        let strict = server(
            "parse_addr_withhelo reject_type temp_disconnect\nrcpt_ok",
            &LogCapture::default(),
        );
        let mut s = greeted(&strict, "HELO client.example");
        assert_eq!(
            s.command("MAIL FROM:<a@example.org> SIZE=100"),
            "421 4.5.4 No parameters allowed in MAIL\r\n"
        );
        assert!(s.is_closed());
    }

    #[test]
    fn bad_arguments_are_refused() {
        for line in [
            "parse_addr_withhelo strict 1",
            "parse_addr_withhelo reject sometimes",
        ] {
            let err = crate::test_support::load_error(line);
            assert!(err.contains("plugins:1: parse_addr_withhelo: "), "{err}");
        }
    }
}
