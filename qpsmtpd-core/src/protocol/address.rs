//! Envelope addresses: RFC 5321 paths (`<user@example.com>`), parsed and formatted.
//!
//! The parser follows RFC 5321 §4.1.2 with the leniency real mail needs: a source route
//! (`<@a,@b:user@host>`) is accepted and dropped, dots in a local part may be doubled or
//! trailing (old mobile-phone addresses do that; such local parts are quoted on output), and
//! `_` is accepted in domain labels. `<postmaster>` and `<abuse>` without a domain are
//! accepted, as RFC 5321 §4.5.1 requires for postmaster. Unlike the Perl original, a space
//! inside a local part (`<ask @perl.org>`) is refused.

use std::fmt;

/// An envelope address. The null sender `<>` has an empty user and host.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Address {
    user: String,
    host: String,
}

/// Why a path did not parse; the session turns every variant into a 501.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddressError {
    NotBracketed,
    BadLocalPart,
    BadDomain,
    MissingDomain,
}

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressError::NotBracketed => "address must be enclosed in <>",
            AddressError::BadLocalPart => "invalid local part",
            AddressError::BadDomain => "invalid domain",
            AddressError::MissingDomain => "address has no domain",
        })
    }
}

impl std::error::Error for AddressError {}

/// Local parts that are valid without a domain.
const HOSTLESS_USERS: [&str; 2] = ["postmaster", "abuse"];

impl Address {
    /// The null sender `<>`.
    pub fn null() -> Address {
        Address::default()
    }

    /// Builds an address from parts taken as they are (no validation).
    pub fn new(user: impl Into<String>, host: impl Into<String>) -> Address {
        Address {
            user: user.into(),
            host: host.into(),
        }
    }

    /// Parses a bracketed RFC 5321 path: `<>`, `<user@host>`, `<"quoted user"@host>`,
    /// `<@route:user@host>`, `<postmaster>`.
    pub fn parse_path(path: &str) -> Result<Address, AddressError> {
        let inner = path
            .strip_prefix('<')
            .and_then(|p| p.strip_suffix('>'))
            .ok_or(AddressError::NotBracketed)?;
        if inner.is_empty() {
            return Ok(Address::null());
        }
        Address::parse_mailbox(strip_source_route(inner))
    }

    /// Parses `user@host` without brackets (also `postmaster`). The split is at the last `@`
    /// outside a quoted local part.
    pub fn parse_mailbox(mailbox: &str) -> Result<Address, AddressError> {
        let (local, domain) = split_mailbox(mailbox)?;
        let user = parse_local_part(local)?;
        match domain {
            None if HOSTLESS_USERS.iter().any(|u| u.eq_ignore_ascii_case(&user)) => {
                Ok(Address::new(user, ""))
            }
            None => Err(AddressError::MissingDomain),
            Some(d) if is_domain(d) || is_address_literal(d) => Ok(Address::new(user, d)),
            Some(_) => Err(AddressError::BadDomain),
        }
    }

    pub fn is_null(&self) -> bool {
        self.user.is_empty() && self.host.is_empty()
    }

    /// The local part, unquoted.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The domain or address literal, as the client wrote it (compare case-insensitively).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `user@host` without brackets or quoting; just `user` when there is no host; empty
    /// for the null sender.
    pub fn address(&self) -> String {
        if self.host.is_empty() {
            self.user.clone()
        } else {
            format!("{}@{}", self.user, self.host)
        }
    }

    /// The bracketed path with the local part quoted where RFC 5321 needs it.
    pub fn format(&self) -> String {
        if self.is_null() {
            return "<>".to_string();
        }
        let user = if is_dot_string(&self.user) {
            self.user.clone()
        } else {
            let mut q = String::with_capacity(self.user.len() + 2);
            q.push('"');
            for c in self.user.chars() {
                if c == '"' || c == '\\' {
                    q.push('\\');
                }
                q.push(c);
            }
            q.push('"');
            q
        };
        if self.host.is_empty() {
            format!("<{user}>")
        } else {
            format!("<{user}@{}>", self.host)
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.format())
    }
}

/// `@a,@b:rest` → `rest` (RFC 5321 §4.1.2 A-d-l, which receivers must accept and ignore).
fn strip_source_route(inner: &str) -> &str {
    if inner.starts_with('@')
        && let Some((route, rest)) = inner.split_once(':')
        && route
            .split(',')
            .all(|hop| hop.strip_prefix('@').is_some_and(is_domain))
    {
        return rest;
    }
    inner
}

/// Splits at the `@` that follows the local part, honouring a quoted local part.
fn split_mailbox(mailbox: &str) -> Result<(&str, Option<&str>), AddressError> {
    if mailbox.starts_with('"') {
        let bytes = mailbox.as_bytes();
        let mut i = 1;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => i += 2,
                b'"' => break,
                _ => i += 1,
            }
        }
        if i >= bytes.len() {
            return Err(AddressError::BadLocalPart);
        }
        let (local, rest) = mailbox.split_at(i + 1);
        return match rest.strip_prefix('@') {
            Some(domain) => Ok((local, Some(domain))),
            None if rest.is_empty() => Ok((local, None)),
            None => Err(AddressError::BadLocalPart),
        };
    }
    Ok(match mailbox.rsplit_once('@') {
        Some((local, domain)) => (local, Some(domain)),
        None => (mailbox, None),
    })
}

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c)
}

/// A strict RFC 5321 Dot-string: atoms separated by single dots.
fn is_dot_string(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(is_atext))
}

/// Returns the local part unquoted.
fn parse_local_part(local: &str) -> Result<String, AddressError> {
    if let Some(quoted) = local.strip_prefix('"').and_then(|l| l.strip_suffix('"')) {
        let mut out = String::with_capacity(quoted.len());
        let mut chars = quoted.chars();
        while let Some(c) = chars.next() {
            let c = if c == '\\' {
                chars.next().ok_or(AddressError::BadLocalPart)?
            } else {
                c
            };
            // qtextSMTP and quoted-pairSMTP: printable ASCII and space only.
            if !(' '..='~').contains(&c) {
                return Err(AddressError::BadLocalPart);
            }
            out.push(c);
        }
        return Ok(out);
    }
    if local.is_empty() || !local.chars().all(|c| is_atext(c) || c == '.') {
        return Err(AddressError::BadLocalPart);
    }
    Ok(local.to_string())
}

/// A domain name: labels of letters, digits, `-` and `_`, not starting or ending with `-`.
pub fn is_domain(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= 255
        && d.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// The address in a literal: `[192.0.2.1]`, `[IPv6:2001:db8::1]` (RFC 5321 §4.1.3).
pub fn literal_ip(d: &str) -> Option<std::net::IpAddr> {
    let inner = d.strip_prefix('[')?.strip_suffix(']')?;
    match inner
        .strip_prefix("IPv6:")
        .or_else(|| inner.strip_prefix("ipv6:"))
    {
        Some(v6) => v6
            .parse::<std::net::Ipv6Addr>()
            .ok()
            .map(std::net::IpAddr::V6),
        None => inner
            .parse::<std::net::Ipv4Addr>()
            .ok()
            .map(std::net::IpAddr::V4),
    }
}

/// `[192.0.2.1]`, `[IPv6:2001:db8::1]` (RFC 5321 §4.1.3).
pub fn is_address_literal(d: &str) -> bool {
    let Some(inner) = d.strip_prefix('[').and_then(|d| d.strip_suffix(']')) else {
        return false;
    };
    if let Some(v6) = inner
        .strip_prefix("IPv6:")
        .or_else(|| inner.strip_prefix("ipv6:"))
    {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    inner.parse::<std::net::Ipv4Addr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paths() {
        let ok: &[(&str, &str, &str, &str)] = &[
            // input, user, host, format()
            ("<>", "", "", "<>"),
            (
                "<user@example.com>",
                "user",
                "example.com",
                "<user@example.com>",
            ),
            (
                "<First.Last@Example.COM>",
                "First.Last",
                "Example.COM",
                "<First.Last@Example.COM>",
            ),
            (
                "<@relay.example,@b.example:u@example.com>",
                "u",
                "example.com",
                "<u@example.com>",
            ),
            (
                "<\"john smith\"@example.com>",
                "john smith",
                "example.com",
                "<\"john smith\"@example.com>",
            ),
            (
                "<\"a\\\"b\"@example.com>",
                "a\"b",
                "example.com",
                "<\"a\\\"b\"@example.com>",
            ),
            (
                "<\"at@sign\"@example.com>",
                "at@sign",
                "example.com",
                "<\"at@sign\"@example.com>",
            ),
            (
                "<john..doe@example.jp>",
                "john..doe",
                "example.jp",
                "<\"john..doe\"@example.jp>",
            ),
            ("<u@[192.0.2.1]>", "u", "[192.0.2.1]", "<u@[192.0.2.1]>"),
            (
                "<u@[IPv6:2001:db8::1]>",
                "u",
                "[IPv6:2001:db8::1]",
                "<u@[IPv6:2001:db8::1]>",
            ),
            ("<postmaster>", "postmaster", "", "<postmaster>"),
            ("<Abuse>", "Abuse", "", "<Abuse>"),
            (
                "<a+tag@sub_domain.example>",
                "a+tag",
                "sub_domain.example",
                "<a+tag@sub_domain.example>",
            ),
        ];
        for (input, user, host, formatted) in ok {
            let a = Address::parse_path(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!((a.user(), a.host()), (*user, *host), "{input}");
            assert_eq!(a.format(), *formatted, "{input}");
        }
    }

    #[test]
    fn refuses_bad_paths() {
        let bad: &[(&str, AddressError)] = &[
            ("user@example.com", AddressError::NotBracketed),
            ("<user@example.com", AddressError::NotBracketed),
            ("<ask @perl.org>", AddressError::BadLocalPart),
            ("<user>", AddressError::MissingDomain),
            ("<user@>", AddressError::BadDomain),
            ("<user@-bad.example>", AddressError::BadDomain),
            ("<user@exa mple.com>", AddressError::BadDomain),
            ("<user@[300.1.1.1]>", AddressError::BadDomain),
            ("<\"unterminated@example.com>", AddressError::BadLocalPart),
            ("<\"x\"y@example.com>", AddressError::BadLocalPart),
            ("<@example.com>", AddressError::BadLocalPart),
            ("<us\u{7f}er@example.com>", AddressError::BadLocalPart),
        ];
        for (input, err) in bad {
            assert_eq!(Address::parse_path(input), Err(err.clone()), "{input}");
        }
    }

    #[test]
    fn address_strings() {
        assert_eq!(Address::parse_path("<a@b.c>").unwrap().address(), "a@b.c");
        assert_eq!(
            Address::parse_path("<postmaster>").unwrap().address(),
            "postmaster"
        );
        assert_eq!(Address::null().address(), "");
        assert!(Address::parse_path("<>").unwrap().is_null());
    }
}
