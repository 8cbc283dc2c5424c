//! The `reject` and `reject_type` arguments every rejecting plugin takes, parsed once into
//! one type (design §3), and the verdict they lead to.
//!
//! - `reject 1` (the usual default): reject, with the verdict `reject_type` names;
//! - `reject 0`: only log `fail, tolerated` and let the session go on;
//! - `reject naughty`: store a deferred rejection for the `naughty` plugin to deliver.
//!
//! `reject_type`: `perm` (5xx), `temp` (4xx), `disconnect` (5xx and close),
//! `temp_disconnect` (421 and close). `hard`/`soft` are accepted as old spellings.

use crate::context::Context;
use crate::hook::Verdict;
use crate::plugin::Pairs;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectMode {
    Off,
    On,
    Naughty,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectType {
    Perm,
    Temp,
    Disconnect,
    TempDisconnect,
}

impl RejectType {
    pub fn parse(s: &str) -> Option<RejectType> {
        Some(match s.to_ascii_lowercase().as_str() {
            "perm" | "hard" | "deny" => RejectType::Perm,
            "temp" | "soft" | "denysoft" => RejectType::Temp,
            "disconnect" | "deny_disconnect" => RejectType::Disconnect,
            "temp_disconnect" | "denysoft_disconnect" => RejectType::TempDisconnect,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            RejectType::Perm => "perm",
            RejectType::Temp => "temp",
            RejectType::Disconnect => "disconnect",
            RejectType::TempDisconnect => "temp_disconnect",
        }
    }

    /// The temporary form: `perm` → `temp`, `disconnect` → `temp_disconnect`.
    pub fn temporary(self) -> RejectType {
        match self {
            RejectType::Perm | RejectType::Temp => RejectType::Temp,
            RejectType::Disconnect | RejectType::TempDisconnect => RejectType::TempDisconnect,
        }
    }

    /// The verdict of this type carrying `msg`.
    pub fn verdict(self, msg: &str) -> Verdict {
        let msg = Some(msg.to_string());
        match self {
            RejectType::Perm => Verdict::Deny(msg),
            RejectType::Temp => Verdict::DenySoft(msg),
            RejectType::Disconnect => Verdict::DenyDisconnect(msg),
            RejectType::TempDisconnect => Verdict::DenySoftDisconnect(msg),
        }
    }
}

/// A plugin's rejection policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reject {
    pub mode: RejectMode,
    pub kind: RejectType,
}

impl Reject {
    /// Reads `reject` and `reject_type` from a plugin's arguments.
    pub fn from_pairs(
        pairs: &Pairs,
        default_mode: RejectMode,
        default_kind: RejectType,
    ) -> Result<Reject, String> {
        let mode = match pairs.get("reject") {
            None => default_mode,
            Some(v) if v.eq_ignore_ascii_case("naughty") => RejectMode::Naughty,
            Some(v) => match crate::plugin::parse_flag(v) {
                Some(true) => RejectMode::On,
                Some(false) => RejectMode::Off,
                None => return Err(format!("reject must be 0, 1 or naughty, not {v:?}")),
            },
        };
        let kind = match pairs.get("reject_type") {
            None => default_kind,
            Some(v) => RejectType::parse(v).ok_or_else(|| {
                format!("reject_type must be perm, temp, disconnect or temp_disconnect, not {v:?}")
            })?,
        };
        Ok(Reject { mode, kind })
    }

    /// The same policy with the temporary form of its type: what a check that could not
    /// be made (a DNS timeout) applies, so nobody is refused for good because of it.
    pub fn temporary(self) -> Reject {
        Reject {
            kind: self.kind.temporary(),
            ..self
        }
    }

    /// Applies the policy to a failed check: logs `fail` (or `fail, tolerated`) with
    /// `log_msg`, and returns the verdict (`Declined` unless rejecting now).
    pub fn apply(&self, cx: &mut Context<'_>, smtp_msg: &str, log_msg: &str) -> Verdict {
        match self.mode {
            RejectMode::Off => {
                cx.log(
                    crate::log::Level::Info,
                    format!("fail, tolerated: {log_msg}"),
                );
                Verdict::Declined
            }
            RejectMode::Naughty => {
                cx.log(crate::log::Level::Info, format!("fail, naughty: {log_msg}"));
                // The first deferred rejection is the one delivered; later ones only log.
                // The text names the plugin, after the enhanced code if there is one.
                let text = match smtp_msg.split_once(' ') {
                    Some((code, rest)) if crate::protocol::Enhanced::parse(code).is_some() => {
                        format!("{code} ({}) {rest}", cx.plugin_name())
                    }
                    _ => format!("({}) {smtp_msg}", cx.plugin_name()),
                };
                let notes = &mut cx.connection_mut().notes;
                if notes.get("naughty").is_none() {
                    notes.set("naughty", text);
                    notes.set("naughty_reject_type", self.kind.name());
                }
                Verdict::Declined
            }
            RejectMode::On => {
                cx.fail(log_msg);
                self.kind.verdict(smtp_msg)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(s: &str) -> Pairs {
        let args: Vec<String> = s.split_whitespace().map(String::from).collect();
        Pairs::parse(&args, &["reject", "reject_type"]).unwrap()
    }

    #[test]
    fn parses() {
        let r = Reject::from_pairs(
            &pairs("reject naughty reject_type temp"),
            RejectMode::On,
            RejectType::Perm,
        )
        .unwrap();
        assert_eq!((r.mode, r.kind), (RejectMode::Naughty, RejectType::Temp));
        let r = Reject::from_pairs(&pairs(""), RejectMode::On, RejectType::Disconnect).unwrap();
        assert_eq!((r.mode, r.kind), (RejectMode::On, RejectType::Disconnect));
        assert!(
            Reject::from_pairs(&pairs("reject maybe"), RejectMode::On, RejectType::Perm).is_err()
        );
        assert!(
            Reject::from_pairs(
                &pairs("reject_type later"),
                RejectMode::On,
                RejectType::Perm
            )
            .is_err()
        );
        assert_eq!(RejectType::Temp.verdict("x"), Verdict::deny_soft("x"));
    }

    #[test]
    fn temporary_keeps_the_mode_and_softens_the_type() {
        for (kind, soft) in [
            (RejectType::Perm, RejectType::Temp),
            (RejectType::Temp, RejectType::Temp),
            (RejectType::Disconnect, RejectType::TempDisconnect),
            (RejectType::TempDisconnect, RejectType::TempDisconnect),
        ] {
            let r = Reject {
                mode: RejectMode::Naughty,
                kind,
            }
            .temporary();
            assert_eq!((r.mode, r.kind), (RejectMode::Naughty, soft));
        }
    }
}
