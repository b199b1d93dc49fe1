use std::fmt;
use std::str::FromStr;

use crate::error::{quote, ParseError};

/// A builder's name: 1–64 characters of `A-Z a-z 0-9 . _ -`, starting with a letter
/// or digit, so it is safe in URLs, file names and HTML.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BuilderName(Box<str>);

impl BuilderName {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let ok = (1..=64).contains(&s.len())
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.bytes().all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c));
        if ok {
            Ok(BuilderName(s.into()))
        } else {
            Err(ParseError::BuilderName(format!(
                "{}: must be 1 to 64 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit",
                quote(s)
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A derivation output name such as `out` or `dev`: 1–64 characters that are valid in
/// a store path name (Nix appends it to the name), not starting with `.`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OutputName(Box<str>);

impl OutputName {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let ok = (1..=64).contains(&s.len())
            && !s.starts_with('.')
            && s.bytes().all(|c| c.is_ascii_alphanumeric() || b"+-._?=".contains(&c));
        if ok {
            Ok(OutputName(s.into()))
        } else {
            Err(ParseError::OutputName(format!(
                "{}: must be 1 to 64 characters of A-Z a-z 0-9 + - . _ ? =, not starting with '.'",
                quote(s)
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! string_newtype_impls {
    ($ty:ty, $expecting:literal) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }
        impl FromStr for $ty {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, ParseError> {
                Self::parse(s)
            }
        }
        crate::serde_via_str!($ty, $expecting);
    };
}
string_newtype_impls!(BuilderName, "a builder name");
string_newtype_impls!(OutputName, "an output name");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_names() {
        for ok in ["a", "builder-1", "x86_64.linux", "0abc", &"a".repeat(64)] {
            assert!(BuilderName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", ".a", "_a", "a b", "a/b", "<script>", "é", &"a".repeat(65), "a\n"] {
            assert!(BuilderName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_honour_width_and_alignment() {
        // `nhc-server builder list` lays out its table with `{:<24}`.
        let b = BuilderName::parse("ab").unwrap();
        assert_eq!(format!("{b:<5}|{b:>4}|"), "ab   |  ab|");
    }

    #[test]
    fn output_names() {
        for ok in ["out", "dev", "lib32", "man-1"] {
            assert!(OutputName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".out", "a/b", "a b", "x".repeat(65).as_str()] {
            assert!(OutputName::parse(bad).is_err(), "{bad}");
        }
    }
}
