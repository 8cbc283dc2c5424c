//! Verdict → reply tables, one per hook that answers a command. The core owns every reply:
//! plugins say what they decided, these tables say what the client hears.
//!
//! Codes and default texts are qpsmtpd's, so log watchers keep working; enhanced status
//! codes are added. Where qpsmtpd answered nothing (a DENY without text at HELO, DONE at
//! `queue_pre`), these tables give a real reply. `{addr}`, `{me}`, `{cmd}` in a default text
//! are filled in by the caller.
//!
//! A `Done` verdict that carries a reply is answered with that reply, and otherwise acts
//! like the verdict of the same class: 2xx like `Ok`, 4xx like `DenySoft` (421: like
//! `DenySoftDisconnect`), 5xx like `Deny` (521: like `DenyDisconnect`).

use crate::hook::Verdict;
use crate::protocol::Reply;

/// What happens after the reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Then {
    /// The session goes on.
    Stay,
    /// The transaction is reset, the session goes on.
    Reset,
    /// The connection is closed.
    Disconnect,
}

/// One row of a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Row {
    /// The core carries on with the command (accepts the sender, sends the banner, ...).
    Proceed,
    /// Answer with this code, enhanced code and default text.
    Reply(u16, &'static str, &'static str, Then),
}

/// How one hook's verdicts are answered.
#[derive(Clone, Copy, Debug)]
pub struct Table {
    pub ok: Row,
    pub declined: Row,
    pub deny: Row,
    pub deny_soft: Row,
    pub deny_disconnect: Row,
    pub deny_soft_disconnect: Row,
    /// `Done` without a reply.
    pub done: Row,
}

/// The decision for one verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// Carry on; send this reply instead of the command's usual success reply, if given.
    Proceed(Option<Reply>),
    /// Send this reply, then do what `Then` says.
    Reply(Reply, Then),
}

use Row::{Proceed, Reply as R};
use Then::{Disconnect, Reset, Stay};

pub const PRE_CONNECTION: Table = Table {
    ok: Proceed,
    declined: Proceed,
    deny: R(
        550,
        "5.7.1",
        "Sorry, service not available for you",
        Disconnect,
    ),
    deny_soft: R(451, "4.7.1", "Sorry, try again later", Disconnect),
    deny_disconnect: R(
        550,
        "5.7.1",
        "Sorry, service not available for you",
        Disconnect,
    ),
    deny_soft_disconnect: R(451, "4.7.1", "Sorry, try again later", Disconnect),
    done: Proceed,
};

pub const CONNECT: Table = Table {
    ok: Proceed,
    declined: Proceed,
    deny: R(
        550,
        "5.7.1",
        "Connection from you denied, bye bye.",
        Disconnect,
    ),
    deny_soft: R(
        450,
        "4.7.1",
        "Connection from you temporarily denied, bye bye.",
        Disconnect,
    ),
    deny_disconnect: R(
        550,
        "5.7.1",
        "Connection from you denied, bye bye.",
        Disconnect,
    ),
    deny_soft_disconnect: R(
        450,
        "4.7.1",
        "Connection from you temporarily denied, bye bye.",
        Disconnect,
    ),
    done: Proceed,
};

pub const HELO: Table = Table {
    ok: Proceed,
    declined: Proceed,
    deny: R(550, "5.7.1", "Your {cmd} was refused", Stay),
    deny_soft: R(
        450,
        "4.7.1",
        "Your {cmd} was refused, try again later",
        Stay,
    ),
    deny_disconnect: R(550, "5.7.1", "Your {cmd} was refused", Disconnect),
    deny_soft_disconnect: R(
        421,
        "4.7.1",
        "Your {cmd} was refused, try again later",
        Disconnect,
    ),
    done: Proceed,
};

/// A `*_parse` hook: only a deny matters, and it is a syntax error.
pub const PARSE: Table = Table {
    ok: Proceed,
    declined: Proceed,
    deny: R(501, "5.5.2", "Syntax error in command", Stay),
    deny_soft: R(501, "5.5.2", "Syntax error in command", Stay),
    deny_disconnect: R(501, "5.5.2", "Syntax error in command", Disconnect),
    deny_soft_disconnect: R(421, "4.5.2", "Syntax error in command", Disconnect),
    done: Proceed,
};

pub const MAIL: Table = Table {
    ok: Proceed,
    declined: Proceed,
    deny: R(550, "5.7.1", "{addr}, denied", Stay),
    deny_soft: R(450, "4.7.1", "{addr}, temporarily denied", Stay),
    deny_disconnect: R(550, "5.7.1", "{addr}, denied", Disconnect),
    deny_soft_disconnect: R(421, "4.7.1", "{addr}, temporarily denied", Disconnect),
    done: Proceed,
};

/// RCPT is denied unless some plugin says OK.
pub const RCPT: Table = Table {
    ok: Proceed,
    declined: R(
        450,
        "4.7.1",
        "No plugin decided if relaying is allowed",
        Stay,
    ),
    deny: R(550, "5.7.1", "relaying denied", Stay),
    deny_soft: R(450, "4.7.1", "relaying denied", Stay),
    deny_disconnect: R(550, "5.7.1", "delivery denied", Disconnect),
    deny_soft_disconnect: R(421, "4.7.1", "relaying denied", Disconnect),
    done: R(
        450,
        "4.7.1",
        "No plugin decided if relaying is allowed",
        Stay,
    ),
};

pub const DATA: Table = Table {
    ok: Proceed,
    declined: Proceed,
    deny: R(554, "5.7.1", "Message denied", Reset),
    deny_soft: R(451, "4.7.1", "Message denied temporarily", Reset),
    deny_disconnect: R(554, "5.7.1", "Message denied", Disconnect),
    deny_soft_disconnect: R(421, "4.7.1", "Message denied temporarily", Disconnect),
    done: Proceed,
};

/// Inside DATA, when the header has arrived. A plain deny is answered once the data has
/// been read to its end (the client is still sending); the disconnect forms answer at once.
pub const DATA_HEADERS_END: Table = Table {
    ok: Proceed,
    declined: Proceed,
    deny: R(554, "5.7.1", "Message denied", Reset),
    deny_soft: R(451, "4.7.1", "Message denied temporarily", Reset),
    deny_disconnect: R(554, "5.7.1", "Message denied", Disconnect),
    deny_soft_disconnect: R(421, "4.7.1", "Message denied temporarily", Disconnect),
    done: Proceed,
};

pub const DATA_POST: Table = Table {
    ok: Proceed,
    declined: Proceed,
    deny: R(552, "5.7.1", "Message denied", Reset),
    deny_soft: R(452, "4.7.1", "Message denied temporarily", Reset),
    deny_disconnect: R(552, "5.7.1", "Message denied", Disconnect),
    deny_soft_disconnect: R(421, "4.7.1", "Message denied temporarily", Disconnect),
    done: R(
        451,
        "4.3.0",
        "Message not queued: a plugin stopped it without a reply",
        Reset,
    ),
};

pub const QUEUE_PRE: Table = Table {
    ok: Proceed,
    declined: Proceed,
    deny: R(552, "5.3.0", "Message denied", Reset),
    deny_soft: R(452, "4.3.0", "Message denied temporarily", Reset),
    deny_disconnect: R(552, "5.3.0", "Message denied", Disconnect),
    deny_soft_disconnect: R(421, "4.3.0", "Message denied temporarily", Disconnect),
    done: R(
        451,
        "4.3.0",
        "Queuing declined or disabled; try again later",
        Reset,
    ),
};

/// The message is accepted only on `Ok` from a queue plugin.
pub const QUEUE: Table = Table {
    ok: R(250, "2.0.0", "Queued", Reset),
    declined: R(
        451,
        "4.3.0",
        "Queuing declined or disabled; try again later",
        Reset,
    ),
    deny: R(552, "5.3.0", "Message denied", Reset),
    deny_soft: R(452, "4.3.0", "Message denied temporarily", Reset),
    deny_disconnect: R(
        451,
        "4.3.0",
        "Queuing declined or disabled; try again later",
        Disconnect,
    ),
    deny_soft_disconnect: R(
        451,
        "4.3.0",
        "Queuing declined or disabled; try again later",
        Disconnect,
    ),
    done: R(
        451,
        "4.3.0",
        "Queuing declined or disabled; try again later",
        Reset,
    ),
};

pub const VRFY: Table = Table {
    ok: R(250, "2.1.5", "User OK", Stay),
    declined: R(
        252,
        "2.1.5",
        "Just try sending a mail and we'll see how it turns out ...",
        Stay,
    ),
    deny: R(554, "5.7.1", "Access Denied", Reset),
    deny_soft: R(
        252,
        "2.1.5",
        "Just try sending a mail and we'll see how it turns out ...",
        Stay,
    ),
    deny_disconnect: R(554, "5.7.1", "Access Denied", Disconnect),
    deny_soft_disconnect: R(421, "4.7.1", "Access Denied", Disconnect),
    done: R(
        252,
        "2.1.5",
        "Just try sending a mail and we'll see how it turns out ...",
        Stay,
    ),
};

pub const NOOP: Table = Table {
    ok: R(250, "2.0.0", "OK", Stay),
    declined: R(250, "2.0.0", "OK", Stay),
    deny: R(500, "5.5.1", "Stop wasting my time.", Stay),
    deny_soft: R(250, "2.0.0", "OK", Stay),
    deny_disconnect: R(500, "5.5.1", "Stop wasting my time.", Disconnect),
    deny_soft_disconnect: R(421, "4.7.0", "Stop wasting my time.", Disconnect),
    done: R(250, "2.0.0", "OK", Stay),
};

/// HELP: the default text is filled in by the caller (it names the version).
pub const HELP: Table = Table {
    ok: Proceed,
    declined: Proceed,
    deny: R(500, "5.5.1", "Syntax error, command not recognized", Stay),
    deny_soft: Proceed,
    deny_disconnect: R(
        500,
        "5.5.1",
        "Syntax error, command not recognized",
        Disconnect,
    ),
    deny_soft_disconnect: R(
        421,
        "4.7.0",
        "Syntax error, command not recognized",
        Disconnect,
    ),
    done: Proceed,
};

pub const UNRECOGNIZED: Table = Table {
    ok: R(500, "5.5.1", "Unrecognized command", Stay),
    declined: R(500, "5.5.1", "Unrecognized command", Stay),
    deny: R(500, "5.5.1", "Unrecognized command", Stay),
    deny_soft: R(500, "5.5.1", "Unrecognized command", Stay),
    deny_disconnect: R(521, "5.5.1", "Unrecognized command", Disconnect),
    deny_soft_disconnect: R(421, "4.5.1", "Unrecognized command", Disconnect),
    done: R(500, "5.5.1", "Unrecognized command", Stay),
};

pub const QUIT: Table = Table {
    ok: R(
        221,
        "2.0.0",
        "{me} closing connection. Have a wonderful day.",
        Disconnect,
    ),
    declined: R(
        221,
        "2.0.0",
        "{me} closing connection. Have a wonderful day.",
        Disconnect,
    ),
    deny: R(
        221,
        "2.0.0",
        "{me} closing connection. Have a wonderful day.",
        Disconnect,
    ),
    deny_soft: R(
        221,
        "2.0.0",
        "{me} closing connection. Have a wonderful day.",
        Disconnect,
    ),
    deny_disconnect: R(
        221,
        "2.0.0",
        "{me} closing connection. Have a wonderful day.",
        Disconnect,
    ),
    deny_soft_disconnect: R(
        221,
        "2.0.0",
        "{me} closing connection. Have a wonderful day.",
        Disconnect,
    ),
    done: R(
        221,
        "2.0.0",
        "{me} closing connection. Have a wonderful day.",
        Disconnect,
    ),
};

/// Decides the reply for `verdict` by `table`. `vars` fills `{name}` in default texts.
pub fn respond(table: &Table, verdict: &Verdict, vars: &[(&str, &str)]) -> Response {
    let (row, text) = match verdict {
        Verdict::Ok(m) => (table.ok, m.clone()),
        Verdict::Declined => (table.declined, None),
        Verdict::Deny(m) => (table.deny, m.clone()),
        Verdict::DenySoft(m) => (table.deny_soft, m.clone()),
        Verdict::DenyDisconnect(m) => (table.deny_disconnect, m.clone()),
        Verdict::DenySoftDisconnect(m) => (table.deny_soft_disconnect, m.clone()),
        Verdict::Done(None) => (table.done, None),
        Verdict::Done(Some(reply)) => {
            let like = match (reply.class(), reply.code) {
                (2 | 3, _) => table.ok,
                (4, 421) => table.deny_soft_disconnect,
                (4, _) => table.deny_soft,
                (_, 521) => table.deny_disconnect,
                _ => table.deny,
            };
            return match like {
                Proceed => Response::Proceed(Some(reply.clone())),
                R(_, _, _, then) => Response::Reply(reply.clone(), then),
            };
        }
    };
    match row {
        Proceed => Response::Proceed(None),
        R(code, enhanced, default, then) => {
            let text = match text {
                Some(t) if !t.trim().is_empty() => t,
                _ => fill(default, vars),
            };
            Response::Reply(Reply::new(code, enhanced, &text), then)
        }
    }
}

/// Replaces `{name}` by its value.
pub fn fill(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = template.to_string();
    for (name, value) in vars {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(r: Response) -> (String, Option<Then>) {
        match r {
            Response::Proceed(Some(reply)) => (reply.to_wire(), None),
            Response::Proceed(None) => (String::new(), None),
            Response::Reply(reply, then) => (reply.to_wire(), Some(then)),
        }
    }

    #[test]
    fn rows() {
        let cases: &[(&Table, Verdict, &str, Option<Then>)] = &[
            (&MAIL, Verdict::Declined, "", None),
            (
                &MAIL,
                Verdict::Deny(None),
                "550 5.7.1 <a@b>, denied\r\n",
                Some(Stay),
            ),
            (
                &MAIL,
                Verdict::deny_soft_disconnect("busy"),
                "421 4.7.1 busy\r\n",
                Some(Disconnect),
            ),
            (
                &RCPT,
                Verdict::Declined,
                "450 4.7.1 No plugin decided if relaying is allowed\r\n",
                Some(Stay),
            ),
            (
                &RCPT,
                Verdict::deny("5.1.1 no such user"),
                "550 5.1.1 no such user\r\n",
                Some(Stay),
            ),
            (
                &HELO,
                Verdict::Deny(None),
                "550 5.7.1 Your HELO was refused\r\n",
                Some(Stay),
            ),
            (
                &QUEUE,
                Verdict::ok_with("Queued! <id@x>"),
                "250 2.0.0 Queued! <id@x>\r\n",
                Some(Reset),
            ),
            (
                &QUEUE,
                Verdict::Declined,
                "451 4.3.0 Queuing declined or disabled; try again later\r\n",
                Some(Reset),
            ),
            (
                &QUEUE_PRE,
                Verdict::Done(None),
                "451 4.3.0 Queuing declined or disabled; try again later\r\n",
                Some(Reset),
            ),
            (
                &DATA_POST,
                Verdict::DenySoft(None),
                "452 4.7.1 Message denied temporarily\r\n",
                Some(Reset),
            ),
            (
                &UNRECOGNIZED,
                Verdict::DenyDisconnect(None),
                "521 5.5.1 Unrecognized command\r\n",
                Some(Disconnect),
            ),
            (
                &CONNECT,
                Verdict::DenySoft(None),
                "450 4.7.1 Connection from you temporarily denied, bye bye.\r\n",
                Some(Disconnect),
            ),
        ];
        for (table, verdict, want, then) in cases {
            let got = wire(respond(
                table,
                verdict,
                &[("addr", "<a@b>"), ("cmd", "HELO")],
            ));
            assert_eq!(got, (want.to_string(), *then), "{verdict:?}");
        }
    }

    #[test]
    fn done_with_a_reply_acts_like_its_class() {
        let ok = Verdict::done(Reply::new(250, "2.1.5", "fine"));
        assert_eq!(
            wire(respond(&RCPT, &ok, &[])),
            ("250 2.1.5 fine\r\n".into(), None)
        );
        let later = Verdict::done(Reply::new(421, "4.3.2", "bye"));
        assert_eq!(
            wire(respond(&RCPT, &later, &[])),
            ("421 4.3.2 bye\r\n".into(), Some(Disconnect))
        );
        let no = Verdict::done(Reply::new(554, "5.0.0", "no"));
        assert_eq!(
            wire(respond(&QUEUE, &no, &[])),
            ("554 5.0.0 no\r\n".into(), Some(Reset))
        );
    }
}
