//! # NAME
//!
//! whitelist - exempt listed clients, HELO names, senders and recipients from checks
//!
//! # DESCRIPTION
//!
//! Marks trusted parts of a session so that the checks that come later leave them alone.
//! The plugin rejects nothing; it sets notes that the other plugins read:
//!
//! - **connect**: a client whose address is in `whitelisthosts`, or for which the
//!   supervisor set `WHITELISTCLIENT` (tcpserver with a tcprules entry such as
//!   `192.0.2.:allow,WHITELISTCLIENT=""`; only its presence counts), is a *whitelisted
//!   host*: connection note `whitelisthost` (and `whitelistclient` when it came from the
//!   variable). Whitelisted hosts are immune to content rejections, as relay clients and
//!   authenticated users are: every plugin that refuses on content, and `naughty`, lets
//!   them through. Their karma is raised by 5.
//! - **HELO/EHLO**: a greeting naming a host in `whitelisthelo` sets the connection note
//!   `whitelisthelo`, which HELO checks read. A HELO name proves nothing, so this is no
//!   immunity.
//! - **MAIL**: a sender in `whitelistsenders` is a *whitelisted sender*: transaction note
//!   `whitelistsender`, which makes the transaction immune to content rejections like a
//!   whitelisted host. The null sender `<>` is never whitelisted.
//! - **RCPT**: a recipient in `whitelistrcpt` is **accepted** at once (the later `rcpt`
//!   plugins, `rcpt_ok` included, are not asked) and counted in the transaction note
//!   `whitelistrcpt`. `naughty` lets a transaction through whose recipients were all
//!   accepted this way. Since this skips `rcpt_ok`, list only recipients this server
//!   receives mail for: a foreign address listed here can be relayed to by anyone.
//!
//! Whitelisting only works for the checks that come after this plugin, so list it early
//! in `config/plugins`: after `relay` (which its checks do not replace) and before the
//! checks it should exempt clients from. Each hook logs one line: `pass: ...` naming the
//! matching entry, or `skip: ... not whitelisted`.
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
//! `whitelisthosts` holds one entry per line, each one of:
//!
//! - a full address: `192.0.2.25`, `2001:db8::25`;
//! - the leading groups of an address, which match a whole network: `192.168.` (that is
//!   192.168.0.0/16), `fdda:b13d:` (fdda:b13d::/32). The trailing `.` or `:` is customary
//!   and may be left out;
//! - a CIDR block: `10.1.0.0/24`, `fdda:b13d:e431:ae06::/64`.
//!
//! IPv4 entries never match IPv6 clients and the other way round, except that IPv4
//! clients seen on a dual-stack socket (`::ffff:192.0.2.25`) count as IPv4.
//!
//! `whitelisthelo`: one HELO/EHLO name per line, compared without regard to case
//! (`mail.example.net`, `[192.0.2.25]`).
//!
//! `whitelistsenders` and `whitelistrcpt`: one entry per line, compared without regard to
//! case:
//!
//! - `user@example.com`: that address;
//! - `example.com` or `@example.com`: every address at exactly that domain (not at its
//!   subdomains);
//! - in `whitelistrcpt`, `postmaster` or `abuse`: that recipient given without a domain.
//!
//! A line that is none of these (a bad address, a network with a bad prefix length, a
//! HELO name with blanks in it) stops the server from starting, with the file and line
//! named. The files are read once, when the server starts (or reloads).
//!
//! # DIFFERENCES FROM QPSMTPD
//!
//! - At connect, HELO and MAIL the plugin sets its notes and lets the following plugins of
//!   the same hook run. The Perl plugin answered OK, which stopped them: a whitelisted
//!   host listed before `relay` lost its relaying, and one listed before `tls` lost
//!   STARTTLS. The exemption now comes from the notes, which every check reads. At RCPT
//!   it still answers OK, since that is what accepts the recipient.
//! - `WHITELISTCLIENT` makes the client a whitelisted host (note `whitelisthost`) and so
//!   immune; the Perl plugin only set `whitelistclient`, which no check read. It counts
//!   when present, even empty.
//! - `whitelisthosts` takes CIDR blocks and IPv6, and prefixes match by value: `192.168.1`
//!   is 192.168.1.0/24 and no longer also matches `192.168.10.5`, as the Perl string
//!   comparison did.
//! - `per_recipient` and `merge` are not supported, and refused with an error. They
//!   re-ran every check at RCPT with the recipient's own lists, but the notes a match sets
//!   hold for the whole transaction (or connection), so one recipient's list exempted the
//!   mail to all the others.
//! - `@example.com` is accepted as well as `example.com` in `whitelistsenders` and
//!   `whitelistrcpt`. Entries are checked when the server starts.
//!
//! # SEE ALSO
//!
//! qpsmtpd-naughty(7), qpsmtpd-relay(7), qpsmtpd-rcpt_ok(7), qpsmtpd-plugins(7), tcprules(1)

use qpsmtpd_core::connection::strip_mapped;
use qpsmtpd_core::net::IpList;
use qpsmtpd_core::protocol::address::{is_address_literal, is_domain};
use qpsmtpd_core::{
    Address, Config, ConfigError, Context, Hook, Params, Plugin, PluginSpec, Registration, Setup,
    Verdict,
};
use std::collections::HashMap;

pub const SPEC: PluginSpec = PluginSpec {
    name: "whitelist",
    factory: new,
    args: &[],
    rejects: false,
    example: "",
};

/// How much a whitelisted host adds to the connection's karma.
const HOST_KARMA: i64 = 5;

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    if let Some(old) = setup
        .args
        .iter()
        .find(|a| matches!(a.to_ascii_lowercase().as_str(), "per_recipient" | "merge"))
    {
        return Err(setup.error(format!(
            "{old} is not supported: the notes a match sets hold for the whole transaction, \
             so per-recipient lists would exempt every recipient"
        )));
    }
    setup.no_args()?;
    Ok(Box::new(Whitelist {
        hosts: IpList::load(setup.config, "whitelisthosts")?,
        helos: load_helos(setup.config)?,
        senders: AddressList::load(setup.config, "whitelistsenders")?,
        rcpts: AddressList::load(setup.config, "whitelistrcpt")?,
    }))
}

struct Whitelist {
    hosts: IpList,
    /// Lower-cased HELO name → the line as written.
    helos: HashMap<String, String>,
    senders: AddressList,
    rcpts: AddressList,
}

fn load_helos(config: &Config) -> Result<HashMap<String, String>, ConfigError> {
    let mut helos = HashMap::new();
    for line in config.lines("whitelisthelo")? {
        if line.text.contains(char::is_whitespace) {
            return Err(line.error(format!("{:?} is not a HELO name", line.text)));
        }
        helos.insert(line.text.to_ascii_lowercase(), line.text);
    }
    Ok(helos)
}

/// `whitelistsenders` / `whitelistrcpt`: addresses and domains, lower-cased, each with the
/// line as written.
struct AddressList {
    addresses: HashMap<String, String>,
    domains: HashMap<String, String>,
}

impl AddressList {
    fn load(config: &Config, name: &str) -> Result<AddressList, ConfigError> {
        let mut list = AddressList {
            addresses: HashMap::new(),
            domains: HashMap::new(),
        };
        for line in config.lines(name)? {
            let entry = line.text.to_ascii_lowercase();
            if let Some(domain) = entry.strip_prefix('@') {
                if !(is_domain(domain) || is_address_literal(domain)) {
                    return Err(line.error(format!("{:?} is not @domain", line.text)));
                }
                list.domains.insert(domain.to_string(), line.text);
            } else if entry.contains('@') {
                let addr = Address::parse_mailbox(&entry)
                    .map_err(|e| line.error(format!("{:?}: {e}", line.text)))?;
                list.addresses.insert(addr.address(), line.text);
            } else if is_domain(&entry) || is_address_literal(&entry) {
                // `postmaster` is a valid domain name too; it matches either way.
                list.domains.insert(entry.clone(), line.text.clone());
                list.addresses.insert(entry, line.text);
            } else {
                return Err(line.error(format!(
                    "{:?} is neither an address nor a domain",
                    line.text
                )));
            }
        }
        Ok(list)
    }

    /// The entry matching `addr`, as written.
    fn find(&self, addr: &Address) -> Option<&str> {
        let address = addr.address().to_ascii_lowercase();
        let host = addr.host().to_ascii_lowercase();
        self.addresses
            .get(&address)
            .or_else(|| {
                (!host.is_empty())
                    .then(|| self.domains.get(&host))
                    .flatten()
            })
            .map(String::as_str)
    }
}

impl Whitelist {
    fn check_helo(&self, cx: &mut Context<'_>, host: &str) -> Verdict {
        let notes = &mut cx.connection_mut().notes;
        match self.helos.get(&host.to_ascii_lowercase()) {
            Some(entry) => {
                notes.set("whitelisthelo", true);
                cx.pass(format!("HELO {host} matches {entry} in whitelisthelo"));
            }
            None => {
                notes.remove("whitelisthelo");
                cx.skip(format!("HELO {host} is not whitelisted"));
            }
        }
        Verdict::Declined
    }
}

impl Plugin for Whitelist {
    fn hooks(&self) -> Vec<Registration> {
        vec![
            Hook::Connect.into(),
            Hook::Helo.into(),
            Hook::Ehlo.into(),
            Hook::Mail.into(),
            Hook::Rcpt.into(),
        ]
    }

    fn connect(&self, cx: &mut Context<'_>) -> Verdict {
        let ip = strip_mapped(cx.connection().remote_ip());
        let why = if cx.connection().info.env("WHITELISTCLIENT").is_some() {
            cx.connection_mut().notes.set("whitelistclient", true);
            format!("{ip}: WHITELISTCLIENT is set")
        } else if let Some(entry) = self.hosts.find(ip) {
            format!("{ip} matches {entry} in whitelisthosts")
        } else {
            cx.skip(format!("{ip} is not whitelisted"));
            return Verdict::Declined;
        };
        cx.connection_mut().notes.set("whitelisthost", true);
        cx.adjust_karma(HOST_KARMA);
        cx.pass(why);
        Verdict::Declined
    }

    fn helo(&self, cx: &mut Context<'_>, host: &str, _: &[String]) -> Verdict {
        self.check_helo(cx, host)
    }

    fn ehlo(&self, cx: &mut Context<'_>, host: &str, _: &[String]) -> Verdict {
        self.check_helo(cx, host)
    }

    fn mail(&self, cx: &mut Context<'_>, sender: &Address, _: &Params) -> Verdict {
        if sender.is_null() {
            cx.skip("the null sender is never whitelisted");
            return Verdict::Declined;
        }
        match self.senders.find(sender) {
            Some(entry) => {
                cx.transaction_mut().notes.set("whitelistsender", true);
                cx.pass(format!(
                    "sender {} matches {entry} in whitelistsenders",
                    sender.format()
                ));
            }
            None => cx.skip(format!("sender {} is not whitelisted", sender.format())),
        }
        Verdict::Declined
    }

    fn rcpt(&self, cx: &mut Context<'_>, rcpt: &Address, _: &Params) -> Verdict {
        match self.rcpts.find(rcpt) {
            Some(entry) => {
                cx.transaction_mut().notes.add_int("whitelistrcpt", 1);
                cx.pass(format!(
                    "recipient {} matches {entry} in whitelistrcpt",
                    rcpt.format()
                ));
                Verdict::ok()
            }
            None => {
                cx.skip(format!("recipient {} is not whitelisted", rcpt.format()));
                Verdict::Declined
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qpsmtpd_core::ConnectionInfo;
    use qpsmtpd_core::testing::{Harness, LogCapture, TestServer, TestSession};

    /// Reports the notes at DATA: `554 5.7.1 host=.. client=.. helo=.. sender=.. rcpt=..
    /// immune=..`.
    struct ShowNotes;
    impl Plugin for ShowNotes {
        fn hooks(&self) -> Vec<Registration> {
            vec![Hook::Data.into()]
        }
        fn data(&self, cx: &mut Context<'_>) -> Verdict {
            let c = &cx.connection().notes;
            let t = &cx.transaction().notes;
            Verdict::deny(format!(
                "host={} client={} helo={} sender={} rcpt={} immune={} karma={}",
                c.is_true("whitelisthost"),
                c.is_true("whitelistclient"),
                c.is_true("whitelisthelo"),
                t.is_true("whitelistsender"),
                t.get_int("whitelistrcpt").unwrap_or(0),
                cx.is_immune(),
                cx.karma(),
            ))
        }
    }

    fn server(files: &[(&str, &str)], logs: &LogCapture) -> TestServer {
        files
            .iter()
            .fold(Harness::new(), |h, (name, text)| h.file(name, text))
            .catalogue(crate::CATALOGUE)
            .file("rcpthosts", "example.com")
            .file("plugins", "whitelist\nrcpt_ok")
            .plugin("logs", logs.clone())
            .plugin("notes", ShowNotes)
            .build()
            .unwrap()
    }

    fn from(ip: &str, env: &[(&str, &str)]) -> ConnectionInfo {
        let mut info = ConnectionInfo::from_ip(ip.parse().unwrap());
        for (k, v) in env {
            info.env.insert(k.to_string(), v.to_string());
        }
        info
    }

    /// A whole transaction; returns the notes line from DATA.
    fn notes_after(s: &mut TestSession, helo: &str, from: &str, to: &[&str]) -> String {
        assert!(s.connect().starts_with("220 "));
        assert!(s.command(&format!("EHLO {helo}")).starts_with("250"));
        assert!(
            s.command(&format!("MAIL FROM:{from}")).starts_with("250 "),
            "{from}"
        );
        for rcpt in to {
            let reply = s.command(&format!("RCPT TO:{rcpt}"));
            assert!(reply.starts_with("250 "), "{rcpt}: {reply}");
        }
        s.command("DATA")
    }

    #[test]
    fn nothing_listed_nothing_set() {
        let logs = LogCapture::default();
        let server = server(&[], &logs);
        let mut s = server.session_from(from("203.0.113.5", &[]));
        assert_eq!(
            notes_after(
                &mut s,
                "client.example",
                "<a@example.org>",
                &["<joe@example.com>"]
            ),
            "554 5.7.1 host=false client=false helo=false sender=false rcpt=0 immune=false karma=0\r\n"
        );
        assert_eq!(
            logs.of_plugin("whitelist"),
            [
                "INFO skip: 203.0.113.5 is not whitelisted",
                "INFO skip: HELO client.example is not whitelisted",
                "INFO skip: sender <a@example.org> is not whitelisted",
                "INFO skip: recipient <joe@example.com> is not whitelisted",
            ]
        );
    }

    #[test]
    fn hosts_by_address_prefix_and_cidr() {
        let server = server(
            &[(
                "whitelisthosts",
                "# friends\n192.0.2.7\n198.51.100.\n10.1.0.0/24\n2001:db8::/32",
            )],
            &LogCapture::default(),
        );
        for (ip, listed) in [
            ("192.0.2.7", true),
            ("192.0.2.8", false),
            ("198.51.100.200", true),
            ("::ffff:198.51.100.1", true),
            ("10.1.0.255", true),
            ("10.1.1.0", false),
            ("2001:db8:5::1", true),
            ("2001:db9::1", false),
        ] {
            let mut s = server.session_from(from(ip, &[]));
            let got = notes_after(&mut s, "x.example", "<a@example.org>", &["<j@example.com>"]);
            let want = if listed {
                "554 5.7.1 host=true client=false helo=false sender=false rcpt=0 immune=true karma=5\r\n"
            } else {
                "554 5.7.1 host=false client=false helo=false sender=false rcpt=0 immune=false karma=0\r\n"
            };
            assert_eq!(got, want, "{ip}");
        }
    }

    #[test]
    fn whitelistclient_counts_even_when_empty() {
        let logs = LogCapture::default();
        let server = server(&[], &logs);
        let mut s = server.session_from(from("203.0.113.5", &[("WHITELISTCLIENT", "")]));
        assert_eq!(
            notes_after(&mut s, "x.example", "<a@example.org>", &["<j@example.com>"]),
            "554 5.7.1 host=true client=true helo=false sender=false rcpt=0 immune=true karma=5\r\n"
        );
        assert_eq!(
            logs.of_plugin("whitelist")[0],
            "INFO pass: 203.0.113.5: WHITELISTCLIENT is set"
        );
    }

    #[test]
    fn helo_names_and_senders() {
        let logs = LogCapture::default();
        let server = server(
            &[
                ("whitelisthelo", "Mail.Friend.example"),
                (
                    "whitelistsenders",
                    "boss@corp.example\n@partner.example\nfriend.example",
                ),
            ],
            &logs,
        );
        for (helo, sender, want_helo, want_sender) in [
            ("mail.friend.EXAMPLE", "<BOSS@corp.example>", true, true),
            ("other.example", "<x@partner.example>", false, true),
            ("other.example", "<x@friend.example>", false, true),
            ("other.example", "<x@sub.friend.example>", false, false),
            ("other.example", "<other@corp.example>", false, false),
            ("other.example", "<>", false, false),
        ] {
            let mut s = server.session_from(from("203.0.113.5", &[]));
            let want = format!(
                "554 5.7.1 host=false client=false helo={want_helo} sender={want_sender} rcpt=0 \
                 immune={want_sender} karma=0\r\n"
            );
            assert_eq!(
                notes_after(&mut s, helo, sender, &["<j@example.com>"]),
                want,
                "{helo} {sender}"
            );
        }
        let lines = logs.of_plugin("whitelist");
        assert_eq!(
            lines[1],
            "INFO pass: HELO mail.friend.EXAMPLE matches Mail.Friend.example in whitelisthelo"
        );
        assert_eq!(
            lines[2],
            "INFO pass: sender <BOSS@corp.example> matches boss@corp.example in whitelistsenders"
        );
        assert!(lines.contains(&"INFO skip: the null sender is never whitelisted".to_string()));
    }

    #[test]
    fn the_sender_note_lasts_one_transaction() {
        let server = server(
            &[("whitelistsenders", "boss@corp.example")],
            &LogCapture::default(),
        );
        let mut s = server.session_from(from("203.0.113.5", &[]));
        notes_after(
            &mut s,
            "x.example",
            "<boss@corp.example>",
            &["<j@example.com>"],
        );
        s.command("RSET");
        s.command("MAIL FROM:<other@corp.example>");
        s.command("RCPT TO:<j@example.com>");
        assert_eq!(
            s.command("DATA"),
            "554 5.7.1 host=false client=false helo=false sender=false rcpt=0 immune=false karma=0\r\n"
        );
    }

    #[test]
    fn listed_recipients_are_accepted_and_counted() {
        let logs = LogCapture::default();
        // Without rcpt_ok, only whitelist can accept a recipient.
        let server = Harness::new()
            .catalogue(crate::CATALOGUE)
            .file(
                "whitelistrcpt",
                "abuse@example.com\n@friends.example\npostmaster",
            )
            .file("plugins", "whitelist")
            .plugin("logs", logs.clone())
            .plugin("notes", ShowNotes)
            .build()
            .unwrap();
        let mut s = server.session_from(from("203.0.113.5", &[]));
        s.connect();
        s.command("HELO x.example");
        s.command("MAIL FROM:<a@example.org>");
        assert_eq!(
            s.command("RCPT TO:<Abuse@Example.com>"),
            "250 2.1.5 <Abuse@Example.com>, recipient ok\r\n"
        );
        assert_eq!(
            s.command("RCPT TO:<ann@friends.example>"),
            "250 2.1.5 <ann@friends.example>, recipient ok\r\n"
        );
        assert_eq!(
            s.command("RCPT TO:<postmaster>"),
            "250 2.1.5 <postmaster>, recipient ok\r\n"
        );
        assert_eq!(
            s.command("RCPT TO:<joe@example.com>"),
            "450 4.7.1 No plugin decided if relaying is allowed\r\n"
        );
        assert_eq!(
            s.command("DATA"),
            "554 5.7.1 host=false client=false helo=false sender=false rcpt=3 immune=false karma=0\r\n"
        );
        assert_eq!(
            logs.of_plugin("whitelist")[3..],
            [
                "INFO pass: recipient <Abuse@Example.com> matches abuse@example.com in whitelistrcpt",
                "INFO pass: recipient <ann@friends.example> matches @friends.example in whitelistrcpt",
                "INFO pass: recipient <postmaster> matches postmaster in whitelistrcpt",
                "INFO skip: recipient <joe@example.com> is not whitelisted",
            ]
        );
    }

    #[test]
    fn later_connect_plugins_still_run() {
        // relay comes after whitelist and must still make its relay client.
        let server = Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("whitelisthosts", "192.0.2.1")
            .file("relayclients", "192.0.2.1")
            .file("plugins", "whitelist\nrelay\nrcpt_ok")
            .build()
            .unwrap();
        let mut s = server.session_from(from("192.0.2.1", &[]));
        s.connect();
        s.command("HELO x.example");
        s.command("MAIL FROM:<a@example.org>");
        assert_eq!(
            s.command("RCPT TO:<someone@elsewhere.example>"),
            "250 2.1.5 <someone@elsewhere.example>, recipient ok\r\n"
        );
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        for (file, text, want) in [
            (
                "whitelisthosts",
                "192.0.2.1\n10.0.0.0/33",
                "whitelisthosts:2: bad prefix length",
            ),
            (
                "whitelisthelo",
                "# x\nmail example",
                "whitelisthelo:2: \"mail example\" is not a HELO name",
            ),
            ("whitelistsenders", "a@b@", "whitelistsenders:1: \"a@b@\""),
            (
                "whitelistrcpt",
                "ok@example.com\n@bad..example",
                "whitelistrcpt:2: \"@bad..example\" is not @domain",
            ),
            (
                "whitelistrcpt",
                "not an address",
                "whitelistrcpt:1: \"not an address\" is neither",
            ),
        ] {
            let err = Harness::new()
                .catalogue(crate::CATALOGUE)
                .file("plugins", "whitelist")
                .file(file, text)
                .build()
                .expect_err("should be refused")
                .to_string();
            assert!(err.contains(want), "{file}: {err}");
        }
    }

    #[test]
    fn old_and_unknown_arguments_are_refused() {
        for (line, want) in [
            (
                "whitelist per_recipient 1",
                "per_recipient is not supported",
            ),
            ("whitelist merge 0", "merge is not supported"),
            ("whitelist bogus_arg 1", "takes no arguments"),
        ] {
            let err = crate::test_support::load_error(line);
            assert!(err.contains("plugins:1: whitelist: "), "{err}");
            assert!(err.contains(want), "{err}");
        }
    }
}
