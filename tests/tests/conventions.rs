//! The plugin conventions (design §3), checked for every plugin in the catalogue, so that
//! what an administrator learns from one plugin holds for the next:
//! - its manual has NAME, DESCRIPTION and CONFIGURATION, and under CONFIGURATION a heading
//!   with a `Default:` line for every argument it accepts (and for `loglevel`);
//! - a plugin that can reject takes `reject` and `reject_type`;
//! - it loads with its documented example arguments, and an unknown argument is refused at
//!   load time with an error naming the `config/plugins` line;
//! - in a session, every decision is logged as exactly one line at INFO or above that
//!   starts with `pass`, `fail`, `skip` or `error`.

use qpsmtpd_core::testing::{Harness, LogCapture};
use qpsmtpd_core::{Hook, Level, PluginSpec};
use qpsmtpd_plugins::CATALOGUE;
use qpsmtpd_tests::man;
use std::collections::BTreeMap;

/// The words a summary line starts with.
const SUMMARY_PREFIXES: [&str; 4] = ["pass", "fail", "skip", "error"];

fn is_logging(spec: &PluginSpec) -> bool {
    spec.name.starts_with("logging/")
}

/// `name example-args`, with `{dir}` replaced.
fn example_line(spec: &PluginSpec, dir: &std::path::Path) -> String {
    let args = spec.example.replace("{dir}", &dir.to_string_lossy());
    format!("{} {args}", spec.name).trim().to_string()
}

#[test]
fn manuals_give_every_argument_a_heading_and_a_default() {
    let mut problems = Vec::new();
    for spec in CATALOGUE {
        let doc = match man::plugin_doc(&qpsmtpd_tests::workspace(), spec.name) {
            Ok(d) => d,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        let sections: BTreeMap<String, String> =
            man::argument_sections(&doc.markdown).into_iter().collect();
        for arg in spec.args.iter().copied().chain(["loglevel"]) {
            match sections.get(arg) {
                None => problems.push(format!("{}: no `## {arg}` heading under CONFIGURATION", spec.name)),
                Some(text) if !(text.starts_with("Default:") || text.starts_with("Required")) => problems.push(format!(
                    "{}: `## {arg}` must be followed by a `Default: ...` (or `Required. ...`) line, not {text:?}",
                    spec.name
                )),
                Some(_) => {}
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn plugins_that_reject_take_reject_and_reject_type() {
    let bad: Vec<&str> = CATALOGUE
        .iter()
        .filter(|s| s.rejects && !(s.args.contains(&"reject") && s.args.contains(&"reject_type")))
        .map(|s| s.name)
        .collect();
    assert!(
        bad.is_empty(),
        "these reject but lack reject/reject_type: {bad:?}"
    );
}

#[test]
fn examples_load_and_unknown_arguments_are_refused() {
    let mut problems = Vec::new();
    for spec in CATALOGUE {
        let scratch = tempfile::tempdir().expect("tempdir");
        let line = example_line(spec, scratch.path());
        let built = Harness::new()
            .catalogue(CATALOGUE)
            .file("rcpthosts", "example.com")
            .file("plugins", &line)
            .build();
        if let Err(e) = built {
            problems.push(format!(
                "{}: the example `{line}` does not load: {e}",
                spec.name
            ));
            continue;
        }
        let bogus = format!("{line} bogus_arg 1");
        match Harness::new()
            .catalogue(CATALOGUE)
            .file("plugins", &bogus)
            .build()
        {
            Ok(_) => problems.push(format!("{}: `{bogus}` was accepted", spec.name)),
            Err(e) => {
                let e = e.to_string();
                if !(e.contains("plugins:1:") && e.contains(spec.name)) {
                    problems.push(format!("{}: unclear error for `{bogus}`: {e}", spec.name));
                }
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// A message a well-behaved client sends.
fn message() -> String {
    let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S +0000");
    format!(
        "From: Sender <sender@example.org>\r\nTo: <user@example.com>\r\nDate: {date}\r\n\
         Message-Id: <conventions@example.org>\r\nSubject: conventions\r\n\r\nhello"
    )
}

#[test]
fn every_decision_is_one_summary_line() {
    let mut problems = Vec::new();
    for spec in CATALOGUE.iter().filter(|s| !is_logging(s)) {
        let scratch = tempfile::tempdir().expect("tempdir");
        let mut plugins = vec![example_line(spec, scratch.path())];
        // Something must accept the recipient and take the message.
        if spec.name != "rcpt_ok" {
            plugins.push("rcpt_ok".into());
        }
        if !spec.name.starts_with("queue/") {
            plugins.push(format!(
                "queue/maildir {}/maildir",
                scratch.path().display()
            ));
        }
        let logs = LogCapture::default();
        let server = match Harness::new()
            .catalogue(CATALOGUE)
            // DNS plugins must never reach the machine's resolver: nothing listens here.
            .file("dns_servers", "127.0.0.1:9")
            .file("dns_timeout", "0.5")
            .file("rcpthosts", "example.com")
            .file("plugins", &plugins.join("\n"))
            .plugin("logs", logs.clone())
            .build()
        {
            Ok(s) => s,
            Err(e) => {
                problems.push(format!("{}: does not load: {e}", spec.name));
                continue;
            }
        };
        let mut s = server.session();
        s.connect();
        for cmd in [
            "EHLO client.example",
            "MAIL FROM:<sender@example.org>",
            "RCPT TO:<user@example.com>",
        ] {
            s.command(cmd);
        }
        s.data(&message());
        s.command("QUIT");

        let shown = spec.name.replace('/', "::");
        let mut per_hook: BTreeMap<String, usize> = BTreeMap::new();
        for r in logs.records() {
            if r.plugin.as_deref() != Some(shown.as_str()) || r.level > Level::Info {
                continue;
            }
            let first = r.message.split([':', ',', ' ']).next().unwrap_or("");
            if !SUMMARY_PREFIXES.contains(&first) {
                problems.push(format!(
                    "{}: INFO line does not start with pass/fail/skip/error: {:?}",
                    spec.name, r.message
                ));
            }
            let hook = r.hook.map_or("-".to_string(), |h| h.to_string());
            *per_hook.entry(hook).or_default() += 1;
        }
        for (hook, n) in &per_hook {
            // Each hook ran once in this session, except reset_transaction (MAIL, after the
            // message, at the end).
            let runs = if hook == Hook::ResetTransaction.name() {
                3
            } else {
                1
            };
            if *n > runs {
                problems.push(format!(
                    "{}: {n} summary lines in hook {hook}, which ran {runs} time(s)",
                    spec.name
                ));
            }
        }
        if spec.rejects && per_hook.is_empty() {
            problems.push(format!(
                "{}: made no decision it logged in a whole session",
                spec.name
            ));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}
