//! Address rules for control files that list clients: a full address (`192.0.2.7`,
//! `2001:db8::7`), the leading groups of one (`192.168.`, `fdda:b13d:`; the trailing
//! separator may be left out), or a CIDR block (`10.1.0.0/24`, `2001:db8::/32`). Used by
//! `relayclients`, `norelayclients`, `hosts_allow` and the whitelist files.
//!
//! IPv4 rules never match IPv6 clients and the other way round, except that IPv4 clients
//! seen on a dual-stack socket (`::ffff:192.0.2.7`) count as IPv4.

use crate::config::{Config, ConfigError};
use crate::connection::strip_mapped;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One address rule: the addresses whose first `bits` bits equal those of `net`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpRule {
    net: IpAddr,
    bits: u32,
}

impl IpRule {
    /// Parses a full address, a CIDR block, or leading groups (`192.168.`, `fdda:b13d:`).
    pub fn parse(text: &str) -> Result<IpRule, String> {
        let invalid = || format!("{text:?} is not an IP address, prefix or CIDR block");
        if let Some((net, bits)) = text.split_once('/') {
            let net: IpAddr = net.parse().map_err(|_| invalid())?;
            let bits = Some(bits)
                .filter(|b| !b.is_empty() && b.bytes().all(|c| c.is_ascii_digit()))
                .and_then(|b| b.parse().ok())
                .filter(|&b| b <= width(net))
                .ok_or_else(|| format!("bad prefix length in {text:?}"))?;
            return Ok(IpRule::new(net, bits));
        }
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(IpRule::new(ip, width(ip)));
        }
        parse_groups(text).ok_or_else(invalid)
    }

    fn new(net: IpAddr, bits: u32) -> IpRule {
        // A block of IPv4-mapped addresses is the IPv4 block, as clients are seen that way.
        let (net, bits) = match net {
            IpAddr::V6(v6) if bits >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => (IpAddr::V4(v4), bits - 96),
                None => (net, bits),
            },
            _ => (net, bits),
        };
        // Keep only the network part, so the rule prints as the block it matches.
        let value = top_bits(net, bits)
            .checked_shl(width(net) - bits)
            .unwrap_or(0);
        let net = match net {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(value as u32)),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(value)),
        };
        IpRule { net, bits }
    }

    pub fn matches(&self, ip: IpAddr) -> bool {
        let ip = strip_mapped(ip);
        ip.is_ipv4() == self.net.is_ipv4()
            && top_bits(ip, self.bits) == top_bits(self.net, self.bits)
    }
}

impl fmt::Display for IpRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.bits)
    }
}

fn width(ip: IpAddr) -> u32 {
    if ip.is_ipv4() { 32 } else { 128 }
}

/// The first `bits` bits of the address, as a number.
fn top_bits(ip: IpAddr, bits: u32) -> u128 {
    let (value, width) = match ip {
        IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
        IpAddr::V6(a) => (u128::from(a), 128),
    };
    value.checked_shr(width - bits).unwrap_or(0)
}

/// `192.168.` → 192.168.0.0/16, `fdda:b13d:` → fdda:b13d::/32 (the trailing separator is
/// optional; qpsmtpd's sample configuration left it out for IPv6).
fn parse_groups(text: &str) -> Option<IpRule> {
    let (sep, radix, max_digits, max_groups, group_bits) = if text.contains(':') {
        (':', 16, 4, 7, 16)
    } else {
        ('.', 10, 3, 3, 8)
    };
    let groups: Vec<u16> = text
        .strip_suffix(sep)
        .unwrap_or(text)
        .split(sep)
        .map(|g| {
            let digits_ok =
                (1..=max_digits).contains(&g.len()) && g.chars().all(|c| c.is_digit(radix));
            digits_ok
                .then(|| u16::from_str_radix(g, radix).ok())
                .flatten()
        })
        .collect::<Option<_>>()?;
    if groups.len() > max_groups {
        return None;
    }
    let bits = group_bits * groups.len() as u32;
    let net = if sep == ':' {
        let mut segments = [0u16; 8];
        segments[..groups.len()].copy_from_slice(&groups);
        IpAddr::V6(Ipv6Addr::from(segments))
    } else {
        let mut octets = [0u8; 4];
        for (o, g) in octets.iter_mut().zip(&groups) {
            *o = u8::try_from(*g).ok()?;
        }
        IpAddr::V4(Ipv4Addr::from(octets))
    };
    Some(IpRule::new(net, bits))
}

/// The rules of one control file, each with the text it was written as (for log lines).
pub struct IpList {
    rules: Vec<(IpRule, String)>,
}

impl IpList {
    /// Reads and parses a control file; a bad line is an error naming file and line.
    pub fn load(config: &Config, name: &str) -> Result<IpList, ConfigError> {
        let rules = config
            .lines(name)?
            .into_iter()
            .map(|line| match IpRule::parse(&line.text) {
                Ok(rule) => Ok((rule, line.text)),
                Err(e) => Err(line.error(e)),
            })
            .collect::<Result<_, _>>()?;
        Ok(IpList { rules })
    }

    /// The first entry matching `ip`, as written in the file.
    pub fn find(&self, ip: IpAddr) -> Option<&str> {
        self.rules
            .iter()
            .find(|(rule, _)| rule.matches(ip))
            .map(|(_, text)| text.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_and_match() {
        let cases: &[(&str, &str, &[&str], &[&str])] = &[
            // rule, shown as, matches, does not match
            (
                "192.0.2.7",
                "192.0.2.7/32",
                &["192.0.2.7", "::ffff:192.0.2.7"],
                &["192.0.2.8"],
            ),
            (
                "192.168.",
                "192.168.0.0/16",
                &["192.168.0.1", "192.168.255.255"],
                &["192.169.0.1"],
            ),
            (
                "10.",
                "10.0.0.0/8",
                &["10.1.2.3"],
                &["100.1.2.3", "::a01:203"],
            ),
            (
                "10.1.0.0/24",
                "10.1.0.0/24",
                &["10.1.0.0", "10.1.0.255"],
                &["10.1.1.0"],
            ),
            ("10.1.0.9/24", "10.1.0.0/24", &["10.1.0.1"], &["10.2.0.1"]),
            ("0.0.0.0/0", "0.0.0.0/0", &["203.0.113.1"], &["2001:db8::1"]),
            (
                "2001:DB8",
                "2001:db8::/32",
                &["2001:db8::1", "2001:db8:ffff::"],
                &["2001:db9::1"],
            ),
            (
                "fdda:b13d:",
                "fdda:b13d::/32",
                &["fdda:b13d:0:1::2"],
                &["fdda:b13e::"],
            ),
            (
                "2001:db8:0:",
                "2001:db8::/48",
                &["2001:db8::1"],
                &["2001:db8:1::1"],
            ),
            (
                "2001:db8::/64",
                "2001:db8::/64",
                &["2001:db8::ffff"],
                &["2001:db8:0:1::"],
            ),
            (
                "2001:0DB8:0000:0000:0000:0000:0000:0001",
                "2001:db8::1/128",
                &["2001:db8::1"],
                &["2001:db8::2"],
            ),
            (
                "::ffff:192.0.2.0/120",
                "192.0.2.0/24",
                &["192.0.2.200"],
                &["192.0.3.1"],
            ),
        ];
        for (text, shown, yes, no) in cases {
            let rule = IpRule::parse(text).unwrap();
            assert_eq!(rule.to_string(), *shown, "{text}");
            for ip in *yes {
                assert!(
                    rule.matches(ip.parse().unwrap()),
                    "{text} should match {ip}"
                );
            }
            for ip in *no {
                assert!(
                    !rule.matches(ip.parse().unwrap()),
                    "{text} should not match {ip}"
                );
            }
        }
        for bad in [
            "192.168.1.300",
            "192.168.1.2.",
            "1.2.3.4/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "example.com",
            "1..2",
            "+1.",
            "12345:",
            "a:b:c:d:e:f:1:2:",
            "*",
        ] {
            assert!(IpRule::parse(bad).is_err(), "{bad} should be refused");
        }
    }
}
