//! # NAME
//!
//! dont_require_anglebrackets - accept MAIL FROM and RCPT TO addresses without angle brackets
//!
//! # DESCRIPTION
//!
//! RFC 5321 wants the address in `MAIL FROM:` and `RCPT TO:` enclosed in angle brackets,
//! and the server refuses a bare one with `501 5.1.7 could not parse your mail from
//! command` (or `501 5.1.3 could not parse recipient`). Some old or home-made clients send
//! `MAIL FROM:user@example.org` all the same. With this plugin such an address is wrapped
//! in `<>` before the server parses it, so the command is accepted like its bracketed
//! form. ESMTP parameters after the address are left alone:
//! `MAIL FROM:user@example.org SIZE=1000` becomes `<user@example.org>` with `SIZE=1000`.
//!
//! An address that already starts with `<` and ends with `>` is not touched. The plugin
//! never rejects anything: an address that does not parse even with brackets still gets
//! the server's 501.
//!
//! The plugin rewrites the address and lets the other `mail_pre` and `rcpt_pre` plugins
//! run after it, so its place in `config/plugins` does not matter. It logs
//! `pass: added angle brackets to ...` when it wrapped an address and
//! `skip: ... already has angle brackets` otherwise.
//!
//! # CONFIGURATION
//!
//! ## loglevel *N|+N|-N*
//!
//! Default: none. Every plugin takes it: an absolute level (0-7 or a name such as `LOGINFO`)
//! for all of the plugin's log messages, or a shift of their levels by N.
//!
//! The plugin takes no other arguments.
//!
//! ## Files
//!
//! None.
//!
//! # DIFFERENCES FROM QPSMTPD
//!
//! - The address is rewritten in place and the hook declines, so later `mail_pre` and
//!   `rcpt_pre` plugins still run. The Perl plugin answered OK for every address, which
//!   ended the hook there.
//!
//! # SEE ALSO
//!
//! qpsmtpd-parse_addr_withhelo(7), qpsmtpd-plugins(7)

use qpsmtpd_core::{
    ConfigError, Context, Hook, Params, Plugin, PluginSpec, Registration, Setup, Verdict,
};

pub const SPEC: PluginSpec = PluginSpec {
    name: "dont_require_anglebrackets",
    factory: new,
    args: &[],
    rejects: false,
    example: "",
};

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    setup.no_args()?;
    Ok(Box::new(DontRequireAnglebrackets))
}

struct DontRequireAnglebrackets;

/// Wraps `path` in `<>` unless it is already enclosed; logs the one summary line.
fn wrap(cx: &Context<'_>, path: &mut String) -> Verdict {
    if path.starts_with('<') && path.ends_with('>') {
        cx.skip(format!("{path} already has angle brackets"));
    } else {
        cx.pass(format!("added angle brackets to {path}"));
        *path = format!("<{path}>");
    }
    Verdict::Declined
}

impl Plugin for DontRequireAnglebrackets {
    fn hooks(&self) -> Vec<Registration> {
        vec![Hook::MailPre.into(), Hook::RcptPre.into()]
    }

    fn mail_pre(&self, cx: &mut Context<'_>, path: &mut String, _: &mut Params) -> Verdict {
        wrap(cx, path)
    }

    fn rcpt_pre(&self, cx: &mut Context<'_>, path: &mut String, _: &mut Params) -> Verdict {
        wrap(cx, path)
    }
}

#[cfg(test)]
mod tests {
    use qpsmtpd_core::testing::{Harness, LogCapture, TestServer};

    fn server(plugins: &str, logs: &LogCapture) -> TestServer {
        Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("rcpthosts", "example.com")
            .file("plugins", plugins)
            .plugin("logs", logs.clone())
            .build()
            .unwrap()
    }

    #[test]
    fn bare_addresses_are_refused_without_the_plugin() {
        let server = server("rcpt_ok", &LogCapture::default());
        let mut s = server.session();
        s.connect();
        s.command("EHLO client.example");
        assert_eq!(
            s.command("MAIL FROM:someone@example.org"),
            "501 5.1.7 could not parse your mail from command\r\n"
        );
        assert!(
            s.command("MAIL FROM:<someone@example.org>")
                .starts_with("250 ")
        );
        assert_eq!(
            s.command("RCPT TO:user@example.com"),
            "501 5.1.3 could not parse recipient\r\n"
        );
    }

    #[test]
    fn bare_addresses_are_wrapped() {
        let logs = LogCapture::default();
        let server = server("dont_require_anglebrackets\nrcpt_ok", &logs);
        let mut s = server.session();
        s.connect();
        s.command("EHLO client.example");
        assert_eq!(
            s.command("MAIL FROM:someone@example.org SIZE=100"),
            "250 2.1.0 <someone@example.org>, sender OK - how exciting to get mail from you!\r\n"
        );
        assert_eq!(
            s.command("RCPT TO:user@example.com"),
            "250 2.1.5 <user@example.com>, recipient ok\r\n"
        );
        assert_eq!(
            s.command("RCPT TO:<other@example.com>"),
            "250 2.1.5 <other@example.com>, recipient ok\r\n"
        );
        assert_eq!(
            s.data("Subject: x\r\n\r\nhi"),
            "451 4.3.0 Queuing declined or disabled; try again later\r\n"
        );
        assert_eq!(
            logs.of_plugin("dont_require_anglebrackets"),
            [
                "INFO pass: added angle brackets to someone@example.org",
                "INFO pass: added angle brackets to user@example.com",
                "INFO skip: <other@example.com> already has angle brackets",
            ]
        );
    }

    #[test]
    fn the_null_sender_and_bad_addresses_keep_their_replies() {
        let server = server(
            "dont_require_anglebrackets\nrcpt_ok",
            &LogCapture::default(),
        );
        let mut s = server.session();
        s.connect();
        s.command("HELO client.example");
        assert_eq!(
            s.command("MAIL FROM:<>"),
            "250 2.1.0 <>, sender OK - how exciting to get mail from you!\r\n"
        );
        assert_eq!(
            s.command("RCPT TO:not an address"),
            "501 5.1.3 could not parse recipient\r\n"
        );
        // The word after the blank is taken as a (malformed) parameter, as without brackets.
        assert_eq!(
            s.command("RCPT TO:user@exa mple.com"),
            "501 5.5.4 Syntax error in parameters\r\n"
        );
        assert_eq!(
            s.command("RCPT TO:postmaster"),
            "250 2.1.5 <postmaster>, recipient ok\r\n"
        );
    }

    #[test]
    fn arguments_are_refused() {
        let err = crate::test_support::load_error("dont_require_anglebrackets yes");
        assert!(
            err.contains("plugins:1: dont_require_anglebrackets: takes no arguments"),
            "{err}"
        );
    }
}
