//! The SMTP commands: a table of verbs, and one handler per verb. Each handler checks its
//! preconditions first, runs its hooks, and lets a respond table pick the reply.

use super::{Flow, Session};
use crate::connection::Hello;
use crate::context::Context;
use crate::hook::{Hook, Verdict};
use crate::log::Level;
use crate::protocol::command::{parse_mail_args, parse_rcpt_args, split_command};
use crate::protocol::{Address, Params, PathArgs, Reply};
use crate::respond::{self, Response, Then};
use crate::server::VERSION;

type Handler = fn(&mut Session, &str) -> Flow;

/// The commands the core knows. Anything else goes to the `unrecognized_command` hook,
/// which is how plugins add verbs (STARTTLS, AUTH, PROXY...).
const COMMANDS: &[(&str, Handler)] = &[
    ("ehlo", |s, rest| s.hello(Hello::Ehlo, rest)),
    ("helo", |s, rest| s.hello(Hello::Helo, rest)),
    ("mail", Session::mail),
    ("rcpt", Session::rcpt),
    ("data", Session::data),
    ("rset", Session::rset),
    ("noop", Session::noop),
    ("vrfy", Session::vrfy),
    ("help", Session::help),
    ("quit", Session::quit),
];

impl Session {
    /// Handles one command line.
    pub(super) fn dispatch(&mut self, raw: &[u8]) -> Flow {
        if raw.contains(&0) {
            self.send(&Reply::new(
                501,
                "5.5.2",
                "NUL character not allowed in command",
            ));
            return Flow::Continue;
        }
        let line = String::from_utf8_lossy(raw);
        if self.server.logs_at(Level::Debug) {
            let shown = if line.len() > 5 && line[..5].eq_ignore_ascii_case("auth ") {
                "AUTH <hidden>".into()
            } else {
                line.clone()
            };
            self.log(Level::Debug, &format!("dispatching {shown}"));
        }
        let Some(cmd) = split_command(&line) else {
            return self.unrecognized("", &line);
        };
        match COMMANDS.iter().find(|(verb, _)| *verb == cmd.verb) {
            Some((_, handler)) => handler(self, cmd.rest),
            None => self.unrecognized(&cmd.verb, cmd.rest),
        }
    }

    fn hello(&mut self, kind: Hello, rest: &str) -> Flow {
        let (cmd, parse_hook, hook) = match kind {
            Hello::Helo => ("HELO", Hook::HeloParse, Hook::Helo),
            Hello::Ehlo => ("EHLO", Hook::EhloParse, Hook::Ehlo),
        };
        let mut words = Vec::new();
        let verdict = self.run_hook(parse_hook, |p, cx| match kind {
            Hello::Helo => p.helo_parse(cx, rest, &mut words),
            Hello::Ehlo => p.ehlo_parse(cx, rest, &mut words),
        });
        if verdict.is_deny() {
            return self.answer_by(&respond::PARSE, &verdict, &[]);
        }
        if verdict == Verdict::Declined {
            words = rest.split_whitespace().map(String::from).collect();
        }
        let Some(host) = words.first().cloned() else {
            let text = format!(
                "{} requires domain/address - see RFC-2821 4.1.1.1",
                cmd.to_ascii_lowercase()
            );
            self.send(&Reply::new(501, "5.5.4", &text));
            return Flow::Continue;
        };
        let extra = &words[1..];
        // A repeated HELO/EHLO starts over, as RFC 5321 §4.1.4 says.
        if self.st.conn.hello.is_some() {
            self.reset_transaction();
        }
        self.st.capabilities.clear();
        let verdict = self.run_hook(hook, |p, cx| match kind {
            Hello::Helo => p.helo(cx, &host, extra),
            Hello::Ehlo => p.ehlo(cx, &host, extra),
        });
        let custom = match respond::respond(&respond::HELO, &verdict, &[("cmd", cmd)]) {
            Response::Proceed(custom) => custom,
            Response::Reply(reply, then) => return self.answer(reply, then),
        };
        self.log(Level::Info, &format!("{} {host}", cmd.to_ascii_lowercase()));
        self.st.conn.hello = Some(kind);
        self.st.conn.hello_host = Some(host);
        let reply = custom.unwrap_or_else(|| self.hello_reply(kind));
        self.send(&reply);
        Flow::Continue
    }

    /// `250 <me> Hi <remote_info> [<ip>]...`; for EHLO, followed by the extensions.
    fn hello_reply(&mut self, kind: Hello) -> Reply {
        let core = &self.server.core;
        let info = &self.st.conn.info;
        let hi = format!(
            "{} Hi {} [{}]",
            core.me,
            info.remote_info_display(),
            info.remote_ip
        );
        if kind == Hello::Helo {
            return Reply::plain(250, &format!("{hi}; I am so happy to meet you."));
        }
        let mut lines = vec![
            hi,
            "PIPELINING".to_string(),
            "8BITMIME".to_string(),
            format!("SIZE {}", core.databytes),
            "ENHANCEDSTATUSCODES".to_string(),
        ];
        // Plugins add keywords with Context::advertise, or (qpsmtpd style) through the
        // `capabilities` transaction note.
        let noted = self
            .st
            .txn
            .notes
            .get("capabilities")
            .and_then(|v| v.as_list())
            .map(|l| {
                l.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect::<Vec<_>>()
            });
        for cap in self
            .st
            .capabilities
            .iter()
            .cloned()
            .chain(noted.unwrap_or_default())
        {
            if !lines.contains(&cap) {
                lines.push(cap);
            }
        }
        Reply::plain(250, &lines.join("\n"))
    }

    fn mail(&mut self, rest: &str) -> Flow {
        if self.st.conn.hello.is_none() {
            self.send(&Reply::new(503, "5.5.1", "please say hello first ..."));
            return Flow::Continue;
        }
        // Every MAIL starts a new transaction (as qmail does).
        self.reset_transaction();
        let (path, params) = match self.parse_path_args(rest, Hook::MailParse, Hook::MailPre) {
            Ok(parsed) => parsed,
            Err(flow) => return flow,
        };
        let sender = if path == "<>" || path == "<#@[]>" || path.contains("[undefined]") {
            Ok(Address::null())
        } else {
            Address::parse_path(&path)
        };
        let Ok(sender) = sender else {
            self.send(&Reply::new(
                501,
                "5.1.7",
                "could not parse your mail from command",
            ));
            return Flow::Continue;
        };
        if let Some(size) = params.get("size") {
            let databytes = self.server.core.databytes;
            match size.and_then(|s| s.parse::<u64>().ok()) {
                None => {
                    self.send(&Reply::new(501, "5.5.4", "Syntax error in parameters"));
                    return Flow::Continue;
                }
                Some(n) if databytes > 0 && n > databytes => {
                    self.send(&Reply::new(
                        552,
                        "5.3.4",
                        "Message size exceeds fixed maximum message size",
                    ));
                    return Flow::Continue;
                }
                Some(_) => {}
            }
        }
        let verdict = self.run_hook(Hook::Mail, |p, cx| p.mail(cx, &sender, &params));
        let addr = sender.format();
        let custom = match respond::respond(&respond::MAIL, &verdict, &[("addr", &addr)]) {
            Response::Proceed(custom) => custom,
            Response::Reply(reply, then) => return self.answer(reply, then),
        };
        let reply = custom.unwrap_or_else(|| {
            Reply::new(
                250,
                "2.1.0",
                &format!("{addr}, sender OK - how exciting to get mail from you!"),
            )
        });
        self.log(Level::Info, &format!("mail from {addr}"));
        self.st.txn.sender = Some(sender);
        self.st.txn.mail_params = params;
        self.send(&reply);
        Flow::Continue
    }

    fn rcpt(&mut self, rest: &str) -> Flow {
        if self.st.txn.sender.is_none() {
            self.send(&Reply::new(503, "5.5.1", "Use MAIL before RCPT"));
            return Flow::Continue;
        }
        let (mut path, params) = match self.parse_path_args(rest, Hook::RcptParse, Hook::RcptPre) {
            Ok(parsed) => parsed,
            Err(flow) => return flow,
        };
        // `RCPT TO:postmaster` without brackets has always been accepted.
        if ["postmaster", "abuse"]
            .iter()
            .any(|u| u.eq_ignore_ascii_case(&path))
        {
            path = format!("<{path}>");
        }
        let rcpt = match Address::parse_path(&path) {
            Ok(a) if !a.is_null() => a,
            _ => {
                self.send(&Reply::new(501, "5.1.3", "could not parse recipient"));
                return Flow::Continue;
            }
        };
        let addr = rcpt.format();
        if self.st.txn.recipients.len() >= self.server.core.max_recipients {
            let reply = Reply::new(452, "4.5.3", "Too many recipients");
            return self.refuse_rcpt(&addr, reply, Then::Stay);
        }
        if let Some(reply) = self.size_refused_by(&rcpt) {
            return self.refuse_rcpt(&addr, reply, Then::Stay);
        }
        let verdict = self.run_hook(Hook::Rcpt, |p, cx| p.rcpt(cx, &rcpt, &params));
        let custom = match respond::respond(&respond::RCPT, &verdict, &[("addr", &addr)]) {
            Response::Proceed(custom) => custom,
            Response::Reply(reply, then) => return self.refuse_rcpt(&addr, reply, then),
        };
        let reply =
            custom.unwrap_or_else(|| Reply::new(250, "2.1.5", &format!("{addr}, recipient ok")));
        self.log(Level::Info, &format!("rcpt to {addr}: accepted"));
        self.st.txn.recipients.push(rcpt);
        self.send(&reply);
        Flow::Continue
    }

    /// Refuses a recipient, with the line the log summariser reads.
    fn refuse_rcpt(&mut self, addr: &str, reply: Reply, then: Then) -> Flow {
        self.log(Level::Info, &format!("rcpt to {addr}: refused: {reply}"));
        self.answer(reply, then)
    }

    /// Per-recipient `databytes` (through the `user_config` hooks): refuses the recipient
    /// when the announced SIZE is above its limit, else lowers the transaction's limit.
    fn size_refused_by(&mut self, rcpt: &Address) -> Option<Reply> {
        if !self.server.chain.has_hook(Hook::UserConfig) {
            return None;
        }
        let server = self.server.clone();
        let mut cx = Context::new(&mut self.st, &server, None, Hook::Rcpt);
        let limit = cx
            .user_config(rcpt, "databytes")
            .first()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|&n| n > 0)?;
        let announced = self
            .st
            .txn
            .mail_params
            .get("size")
            .flatten()
            .and_then(|s| s.parse::<u64>().ok());
        if announced.is_some_and(|size| size > limit) {
            return Some(Reply::new(
                552,
                "5.3.4",
                "Message size exceeds the recipient's maximum message size",
            ));
        }
        let txn = &mut self.st.txn;
        txn.databytes = Some(txn.databytes.map_or(limit, |l| l.min(limit)));
        None
    }

    /// Parses MAIL/RCPT arguments through the `*_parse` and `*_pre` hooks. On error the
    /// reply has been sent and the flow is returned.
    fn parse_path_args(
        &mut self,
        rest: &str,
        parse_hook: Hook,
        pre_hook: Hook,
    ) -> Result<(String, Params), Flow> {
        let mut args = PathArgs::default();
        let verdict = self.run_hook(parse_hook, |p, cx| match parse_hook {
            Hook::MailParse => p.mail_parse(cx, rest, &mut args),
            _ => p.rcpt_parse(cx, rest, &mut args),
        });
        if verdict.is_deny() {
            return Err(self.answer_by(&respond::PARSE, &verdict, &[]));
        }
        if !matches!(verdict, Verdict::Ok(_)) {
            let parsed = if parse_hook == Hook::MailParse {
                parse_mail_args(rest)
            } else {
                parse_rcpt_args(rest)
            };
            args = match parsed {
                Ok(a) => a,
                Err(e) => {
                    self.send(&Reply::new(501, e.enhanced(), e.text()));
                    return Err(Flow::Continue);
                }
            };
        }
        let PathArgs {
            mut path,
            mut params,
        } = args;
        let verdict = self.run_hook(pre_hook, |p, cx| match pre_hook {
            Hook::MailPre => p.mail_pre(cx, &mut path, &mut params),
            _ => p.rcpt_pre(cx, &mut path, &mut params),
        });
        if verdict.is_deny() {
            return Err(self.answer_by(&respond::PARSE, &verdict, &[]));
        }
        Ok((path, params))
    }

    fn data(&mut self, rest: &str) -> Flow {
        if !rest.trim().is_empty() {
            self.send(&Reply::new(501, "5.5.4", "Syntax error in parameters"));
            return Flow::Continue;
        }
        if self.st.txn.sender.is_none() {
            self.send(&Reply::new(503, "5.5.1", "MAIL first"));
            return Flow::Continue;
        }
        if self.st.txn.recipients.is_empty() {
            self.send(&Reply::new(503, "5.5.1", "RCPT first"));
            return Flow::Continue;
        }
        let verdict = self.run_hook(Hook::Data, |p, cx| p.data(cx));
        let custom = match respond::respond(&respond::DATA, &verdict, &[]) {
            Response::Proceed(custom) => custom,
            Response::Reply(reply, then) => return self.answer(reply, then),
        };
        self.send(&custom.unwrap_or_else(|| Reply::plain(354, "go ahead")));
        self.receive_message()
    }

    fn rset(&mut self, _rest: &str) -> Flow {
        self.reset_transaction();
        self.send(&Reply::new(250, "2.0.0", "OK"));
        Flow::Continue
    }

    fn noop(&mut self, rest: &str) -> Flow {
        let verdict = self.run_hook(Hook::Noop, |p, cx| p.noop(cx, rest));
        self.answer_by(&respond::NOOP, &verdict, &[])
    }

    fn vrfy(&mut self, rest: &str) -> Flow {
        let verdict = self.run_hook(Hook::Vrfy, |p, cx| p.vrfy(cx, rest));
        self.answer_by(&respond::VRFY, &verdict, &[])
    }

    fn help(&mut self, rest: &str) -> Flow {
        let verdict = self.run_hook(Hook::Help, |p, cx| p.help(cx, rest));
        let custom = match respond::respond(&respond::HELP, &verdict, &[]) {
            Response::Proceed(custom) => custom,
            Response::Reply(reply, then) => return self.answer(reply, then),
        };
        let reply = custom.unwrap_or_else(|| match verdict.message() {
            Some(text) => Reply::new(214, "2.0.0", &text),
            None => {
                let version = match self.server.core.greeting {
                    Some(_) => String::new(),
                    None => format!(" {VERSION}"),
                };
                Reply::new(
                    214,
                    "2.0.0",
                    &format!(
                        "This is qpsmtpd{version}\nSee http://smtpd.develooper.com/\nTo report bugs or send comments, mail to <ask@develooper.com>."
                    ),
                )
            }
        });
        self.send(&reply);
        Flow::Continue
    }

    fn quit(&mut self, _rest: &str) -> Flow {
        let verdict = self.run_hook(Hook::Quit, |p, cx| p.quit(cx));
        let me = self.server.core.me.clone();
        self.log(Level::Info, "click, disconnecting");
        self.answer_by(&respond::QUIT, &verdict, &[("me", &me)])
    }

    fn unrecognized(&mut self, verb: &str, rest: &str) -> Flow {
        let verdict = self.run_hook(Hook::UnrecognizedCommand, |p, cx| {
            p.unrecognized_command(cx, verb, rest)
        });
        self.answer_by(&respond::UNRECOGNIZED, &verdict, &[])
    }
}
