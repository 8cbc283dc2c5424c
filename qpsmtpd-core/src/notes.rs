//! Notes: the scratch space plugins share, per connection and per transaction.
//!
//! Values are plain data (booleans, integers, strings, lists) rather than arbitrary Rust
//! types, so that every plugin, and later a script, can read what another wrote. Typed
//! state that belongs to one plugin alone lives in [`crate::Context::state`] instead.

use std::collections::BTreeMap;

/// A note's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Str(String),
    List(Vec<Value>),
}

impl Value {
    /// Perl-like truth: false, 0, "", "0" and the empty list are false.
    pub fn is_true(&self) -> bool {
        match self {
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Str(s) => !s.is_empty() && s != "0",
            Value::List(l) => !l.is_empty(),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Str(s) => s.parse().ok(),
            Value::Bool(b) => Some(*b as i64),
            Value::List(_) => None,
        }
    }

    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int(i)
    }
}
impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(s)
    }
}
impl From<Vec<Value>> for Value {
    fn from(l: Vec<Value>) -> Value {
        Value::List(l)
    }
}

/// A set of named notes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Notes(BTreeMap<String, Value>);

impl Notes {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.0.insert(key.to_string(), value.into());
    }

    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.0.remove(key)
    }

    /// True if the note exists and is true (see [`Value::is_true`]).
    pub fn is_true(&self, key: &str) -> bool {
        self.get(key).is_some_and(Value::is_true)
    }

    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    pub fn get_int(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(Value::as_int)
    }

    /// Adds `n` to an integer note (missing counts as 0) and returns the new value.
    pub fn add_int(&mut self, key: &str, n: i64) -> i64 {
        let v = self.get_int(key).unwrap_or(0) + n;
        self.set(key, v);
        v
    }

    /// Appends to a list note, creating it (or turning a scalar into a list) as needed.
    pub fn push(&mut self, key: &str, value: impl Into<Value>) {
        let entry = self
            .0
            .entry(key.to_string())
            .or_insert_with(|| Value::List(Vec::new()));
        if !matches!(entry, Value::List(_)) {
            let old = std::mem::replace(entry, Value::List(Vec::new()));
            if let Value::List(l) = entry {
                l.push(old);
            }
        }
        if let Value::List(l) = entry {
            l.push(value.into());
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truth_and_lists() {
        let mut n = Notes::default();
        n.set("a", "0");
        n.set("b", 3i64);
        assert!(!n.is_true("a"));
        assert!(n.is_true("b"));
        assert!(!n.is_true("missing"));
        assert_eq!(n.add_int("b", -5), -2);
        n.push("caps", "STARTTLS");
        n.push("caps", "AUTH PLAIN");
        assert_eq!(
            n.get("caps").and_then(Value::as_list).map(|l| l.len()),
            Some(2)
        );
        n.set("s", "x");
        n.push("s", "y");
        assert_eq!(n.get("s"), Some(&Value::List(vec!["x".into(), "y".into()])));
    }
}
