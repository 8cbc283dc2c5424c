//! Command lines: the verb, and the arguments of MAIL and RCPT (RFC 5321 §4.1.1, RFC 1869
//! parameters). Pure functions; the session decides what to answer.

use std::fmt;

/// A command line split into its verb (lower-cased) and the rest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandLine<'a> {
    pub verb: String,
    pub rest: &'a str,
}

/// Splits `"MAIL FROM:<a@b>"` into `mail` and `FROM:<a@b>`. Several spaces between verb and
/// arguments are tolerated. Returns `None` when the verb is not 1-12 word characters, which
/// the session treats as an unrecognized command.
pub fn split_command(line: &str) -> Option<CommandLine<'_>> {
    let (verb, rest) = match line.split_once(' ') {
        Some((v, r)) => (v, r.trim_start_matches(' ')),
        None => (line, ""),
    };
    let valid = (1..=12).contains(&verb.len())
        && verb.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    valid.then(|| CommandLine {
        verb: verb.to_ascii_lowercase(),
        rest,
    })
}

/// ESMTP parameters (`SIZE=1000 BODY=8BITMIME`), keys lower-cased, in the order given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, Option<String>)>);

impl Params {
    pub fn new() -> Params {
        Params::default()
    }

    /// The value of a parameter; `Some(None)` for a keyword without a value.
    pub fn get(&self, key: &str) -> Option<Option<&str>> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_deref())
    }

    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn insert(&mut self, key: &str, value: Option<&str>) {
        let key = key.to_ascii_lowercase();
        self.0.retain(|(k, _)| *k != key);
        self.0.push((key, value.map(str::to_string)));
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_deref()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(&k.to_ascii_uppercase())?;
            if let Some(v) = v {
                write!(f, "={v}")?;
            }
        }
        Ok(())
    }
}

/// The argument of MAIL or RCPT: the path as the client wrote it (normally `<...>`), and
/// its parameters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PathArgs {
    pub path: String,
    pub params: Params,
}

/// Why a MAIL or RCPT argument did not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgError {
    /// `FROM:` / `TO:` missing or no path: "Syntax error in command".
    Syntax,
    /// A malformed ESMTP parameter: "Syntax error in parameters".
    Params,
}

impl ArgError {
    /// The default reply text, as qpsmtpd words it.
    pub fn text(self) -> &'static str {
        match self {
            ArgError::Syntax => "Syntax error in command",
            ArgError::Params => "Syntax error in parameters",
        }
    }

    /// The enhanced code for the 501 reply.
    pub fn enhanced(self) -> &'static str {
        match self {
            ArgError::Syntax => "5.5.2",
            ArgError::Params => "5.5.4",
        }
    }
}

/// Parses the argument of MAIL: `FROM:<path> [params]`. An empty path (`MAIL FROM:`)
/// means the null sender.
pub fn parse_mail_args(rest: &str) -> Result<PathArgs, ArgError> {
    parse_path_args(rest, "from:", true)
}

/// Parses the argument of RCPT: `TO:<path> [params]`.
pub fn parse_rcpt_args(rest: &str) -> Result<PathArgs, ArgError> {
    parse_path_args(rest, "to:", false)
}

fn parse_path_args(rest: &str, keyword: &str, empty_is_null: bool) -> Result<PathArgs, ArgError> {
    let head = rest.get(..keyword.len()).ok_or(ArgError::Syntax)?;
    if !head.eq_ignore_ascii_case(keyword) {
        return Err(ArgError::Syntax);
    }
    let after = rest[keyword.len()..].trim_start_matches(' ');
    if after.is_empty() {
        return if empty_is_null {
            Ok(PathArgs {
                path: "<>".into(),
                params: Params::new(),
            })
        } else {
            Err(ArgError::Syntax)
        };
    }
    let end = if after.starts_with('<') {
        closing_bracket(after).ok_or(ArgError::Syntax)? + 1
    } else {
        after.find(' ').unwrap_or(after.len())
    };
    let (path, params) = after.split_at(end);
    if !params.is_empty() && !params.starts_with(' ') {
        return Err(ArgError::Syntax);
    }
    Ok(PathArgs {
        path: path.to_string(),
        params: parse_params(params)?,
    })
}

/// Index of the `>` closing a path that starts with `<`, skipping quoted strings.
fn closing_bracket(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut quoted = false;
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'>' if !quoted => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// RFC 5321 esmtp-param: `keyword ["=" value]`, keyword `[A-Za-z0-9][A-Za-z0-9-]*`, value
/// printable ASCII other than `=` and space.
pub fn parse_params(s: &str) -> Result<Params, ArgError> {
    let mut params = Params::new();
    for word in s.split(' ').filter(|w| !w.is_empty()) {
        let (key, value) = match word.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (word, None),
        };
        let key_ok = key
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        let value_ok = value.is_none_or(|v| {
            !v.is_empty() && v.bytes().all(|b| (33..=126).contains(&b) && b != b'=')
        });
        if !key_ok || !value_ok {
            return Err(ArgError::Params);
        }
        params.insert(key, value);
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_verbs() {
        let cases: &[(&str, Option<(&str, &str)>)] = &[
            ("EHLO client.example", Some(("ehlo", "client.example"))),
            ("mail   FROM:<a@b>", Some(("mail", "FROM:<a@b>"))),
            ("QUIT", Some(("quit", ""))),
            ("", None),
            ("WAYTOOLONGVERB x", None),
            ("MA-IL x", None),
            ("x-y", None),
        ];
        for (line, want) in cases {
            let got = split_command(line).map(|c| (c.verb, c.rest));
            assert_eq!(
                got.as_ref().map(|(v, r)| (v.as_str(), *r)),
                *want,
                "{line:?}"
            );
        }
    }

    #[test]
    fn parses_mail_and_rcpt() {
        let a = parse_mail_args("FROM:<a@b.example> SIZE=1000 BODY=8BITMIME").unwrap();
        assert_eq!(a.path, "<a@b.example>");
        assert_eq!(a.params.get("size"), Some(Some("1000")));
        assert_eq!(a.params.get("BODY"), Some(Some("8BITMIME")));
        assert_eq!(a.params.to_string(), "SIZE=1000 BODY=8BITMIME");

        assert_eq!(parse_mail_args("from: <x@y>").unwrap().path, "<x@y>");
        assert_eq!(parse_mail_args("FROM:").unwrap().path, "<>");
        assert_eq!(parse_mail_args("FROM:<>").unwrap().path, "<>");
        assert_eq!(parse_mail_args("FROM:bare@host").unwrap().path, "bare@host");
        assert_eq!(
            parse_mail_args("FROM:<\"a >b\"@c.example> SMTPUTF8").unwrap(),
            PathArgs {
                path: "<\"a >b\"@c.example>".into(),
                params: parse_params("SMTPUTF8").unwrap()
            }
        );
        assert_eq!(
            parse_rcpt_args("TO:<postmaster>").unwrap().path,
            "<postmaster>"
        );
        assert_eq!(parse_rcpt_args("To:postmaster").unwrap().path, "postmaster");
    }

    #[test]
    fn refuses_bad_arguments() {
        let cases: &[(&str, ArgError)] = &[
            ("<a@b>", ArgError::Syntax),
            ("FRM:<a@b>", ArgError::Syntax),
            ("FROM:<a@b", ArgError::Syntax),
            ("FROM:<a@b>junk", ArgError::Syntax),
            ("FROM:<a@b> SIZE=", ArgError::Params),
            ("FROM:<a@b> -X=1", ArgError::Params),
            ("FROM:<a@b> X=a=b", ArgError::Params),
        ];
        for (input, err) in cases {
            assert_eq!(parse_mail_args(input), Err(*err), "{input}");
        }
        assert_eq!(parse_rcpt_args("TO:"), Err(ArgError::Syntax));
    }
}
