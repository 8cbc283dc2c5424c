//! Hooks and verdicts: where a plugin can act, and what it can answer.
//!
//! The hook names are qpsmtpd's, so `config/plugins`, log lines and documentation carry
//! over. The variants are listed in the order they fire during a session; the special hooks
//! (`logging`, `config`, `user_config`, `deny`, `ok`) come first.

use crate::protocol::Reply;
use std::fmt;

macro_rules! hooks {
    ($($variant:ident => $name:literal,)*) => {
        /// Every hook, in firing order.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Hook { $($variant,)* }

        impl Hook {
            /// All hooks, in firing order.
            pub const ALL: &'static [Hook] = &[$(Hook::$variant,)*];

            /// The qpsmtpd name (`pre-connection`, `auth-cram-md5`, `data_post`).
            pub fn name(self) -> &'static str {
                match self { $(Hook::$variant => $name,)* }
            }

            /// Looks a hook up by its qpsmtpd name; `-` and `_` are interchangeable.
            pub fn from_name(name: &str) -> Option<Hook> {
                let want = name.replace('-', "_");
                Hook::ALL.iter().copied().find(|h| h.name().replace('-', "_") == want)
            }
        }
    };
}

hooks! {
    Logging => "logging",
    Config => "config",
    UserConfig => "user_config",
    Deny => "deny",
    Ok => "ok",
    PostFork => "post-fork",
    PreConnection => "pre-connection",
    Connect => "connect",
    HeloParse => "helo_parse",
    Helo => "helo",
    EhloParse => "ehlo_parse",
    Ehlo => "ehlo",
    AuthParse => "auth_parse",
    AuthPlain => "auth-plain",
    AuthLogin => "auth-login",
    AuthCramMd5 => "auth-cram-md5",
    Auth => "auth",
    MailParse => "mail_parse",
    MailPre => "mail_pre",
    Mail => "mail",
    RcptParse => "rcpt_parse",
    RcptPre => "rcpt_pre",
    Rcpt => "rcpt",
    Data => "data",
    DataHeadersEnd => "data_headers_end",
    DataPostHeaders => "data_post_headers",
    ReceivedLine => "received_line",
    DataPost => "data_post",
    QueuePre => "queue_pre",
    Queue => "queue",
    QueuePost => "queue_post",
    Vrfy => "vrfy",
    Noop => "noop",
    Help => "help",
    UnrecognizedCommand => "unrecognized_command",
    Quit => "quit",
    ResetTransaction => "reset_transaction",
    Disconnect => "disconnect",
    PostConnection => "post-connection",
}

impl Hook {
    /// The number of hooks.
    pub const COUNT: usize = Hook::ALL.len();

    /// Position in [`Hook::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Hooks whose verdicts are ignored: every plugin on them runs (an `Ok` from one must
    /// not keep the next from cleaning up).
    pub fn runs_every_plugin(self) -> bool {
        matches!(
            self,
            Hook::DataPostHeaders
                | Hook::QueuePost
                | Hook::ResetTransaction
                | Hook::Disconnect
                | Hook::PostConnection
        )
    }

    /// Hooks after which the `deny`/`ok` meta-hooks do not fire (they would recurse or
    /// have no session).
    pub fn is_special(self) -> bool {
        matches!(
            self,
            Hook::Logging
                | Hook::Config
                | Hook::UserConfig
                | Hook::Deny
                | Hook::Ok
                | Hook::PostFork
                | Hook::PreConnection
        )
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a plugin answers. The text of `Ok` and the deny variants is the reply text (it may
/// span lines with `\n`, and may start with its own enhanced status code); without it the
/// core uses qpsmtpd's default text for the hook. `Done` means the plugin has dealt with the
/// command; the reply it carries is sent as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// No opinion: the next plugin decides.
    Declined,
    Ok(Option<String>),
    Deny(Option<String>),
    DenySoft(Option<String>),
    DenyDisconnect(Option<String>),
    DenySoftDisconnect(Option<String>),
    Done(Option<Reply>),
}

impl Verdict {
    pub fn ok() -> Verdict {
        Verdict::Ok(None)
    }
    pub fn ok_with(msg: impl Into<String>) -> Verdict {
        Verdict::Ok(Some(msg.into()))
    }
    pub fn deny(msg: impl Into<String>) -> Verdict {
        Verdict::Deny(Some(msg.into()))
    }
    pub fn deny_soft(msg: impl Into<String>) -> Verdict {
        Verdict::DenySoft(Some(msg.into()))
    }
    pub fn deny_disconnect(msg: impl Into<String>) -> Verdict {
        Verdict::DenyDisconnect(Some(msg.into()))
    }
    pub fn deny_soft_disconnect(msg: impl Into<String>) -> Verdict {
        Verdict::DenySoftDisconnect(Some(msg.into()))
    }
    pub fn done(reply: Reply) -> Verdict {
        Verdict::Done(Some(reply))
    }

    /// qpsmtpd's constant name, for log lines (`DENYSOFT`).
    pub fn code_name(&self) -> &'static str {
        match self {
            Verdict::Declined => "DECLINED",
            Verdict::Ok(_) => "OK",
            Verdict::Deny(_) => "DENY",
            Verdict::DenySoft(_) => "DENYSOFT",
            Verdict::DenyDisconnect(_) => "DENY_DISCONNECT",
            Verdict::DenySoftDisconnect(_) => "DENYSOFT_DISCONNECT",
            Verdict::Done(_) => "DONE",
        }
    }

    /// Parses a qpsmtpd constant name (as used in config files such as `hosts_allow`).
    pub fn from_code_name(name: &str, msg: Option<String>) -> Option<Verdict> {
        Some(match name.to_ascii_uppercase().as_str() {
            "DECLINED" => Verdict::Declined,
            "OK" => Verdict::Ok(msg),
            "DENY" => Verdict::Deny(msg),
            "DENYSOFT" => Verdict::DenySoft(msg),
            "DENY_DISCONNECT" | "DENYHARD" => Verdict::DenyDisconnect(msg),
            "DENYSOFT_DISCONNECT" => Verdict::DenySoftDisconnect(msg),
            "DONE" => Verdict::Done(None),
            _ => return None,
        })
    }

    /// True for the four deny variants.
    pub fn is_deny(&self) -> bool {
        matches!(
            self,
            Verdict::Deny(_)
                | Verdict::DenySoft(_)
                | Verdict::DenyDisconnect(_)
                | Verdict::DenySoftDisconnect(_)
        )
    }

    /// The message carried, if any.
    pub fn message(&self) -> Option<String> {
        match self {
            Verdict::Declined => None,
            Verdict::Ok(m)
            | Verdict::Deny(m)
            | Verdict::DenySoft(m)
            | Verdict::DenyDisconnect(m)
            | Verdict::DenySoftDisconnect(m) => m.clone(),
            Verdict::Done(r) => r.as_ref().map(Reply::text),
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code_name())?;
        if let Some(m) = self.message() {
            write!(f, " ({m})")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for &h in Hook::ALL {
            assert_eq!(Hook::from_name(h.name()), Some(h));
        }
        assert_eq!(Hook::from_name("pre_connection"), Some(Hook::PreConnection));
        assert_eq!(Hook::from_name("auth_cram_md5"), Some(Hook::AuthCramMd5));
        assert_eq!(Hook::from_name("nope"), None);
        assert_eq!(Hook::ALL[Hook::Queue.index()], Hook::Queue);
    }

    #[test]
    fn code_names() {
        assert_eq!(
            Verdict::from_code_name("denysoft", Some("x".into())),
            Some(Verdict::deny_soft("x"))
        );
        assert_eq!(Verdict::deny("m").to_string(), "DENY (m)");
        assert!(Verdict::from_code_name("MAYBE", None).is_none());
    }
}
