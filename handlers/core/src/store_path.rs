use std::fmt;
use std::str::FromStr;

use crate::error::{quote, ParseError};
use crate::nix32;

/// The only store directory this project deals in: the paths Nix signs always name it.
pub const STORE_DIR: &str = "/nix/store";
const PREFIX: &str = "/nix/store/";
const HASH_LEN: usize = 32;
const MAX_NAME_LEN: usize = 211;

/// A full store path `/nix/store/<32 nix32 chars>-<name>`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StorePath(Box<str>);

impl StorePath {
    /// Parses a full path such as `/nix/store/mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello`.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let base = s
            .strip_prefix(PREFIX)
            .ok_or_else(|| ParseError::StorePath(format!("{}: must start with {PREFIX}", quote(s))))?;
        check_basename(base).map_err(|why| ParseError::StorePath(format!("{}: {why}", quote(s))))?;
        Ok(StorePath(s.into()))
    }

    /// Parses the part after `/nix/store/`, as found in narinfo `References:` lines and URLs.
    pub fn from_basename(base: &str) -> Result<Self, ParseError> {
        check_basename(base).map_err(|why| ParseError::StorePath(format!("{}: {why}", quote(base))))?;
        Ok(StorePath(format!("{PREFIX}{base}").into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `<hash>-<name>`.
    pub fn basename(&self) -> &str {
        &self.0[PREFIX.len()..]
    }

    /// The 32 nix32 characters that identify the path in a binary cache (`<hash>.narinfo`).
    pub fn hash_part(&self) -> &str {
        &self.0[PREFIX.len()..PREFIX.len() + HASH_LEN]
    }

    pub fn name(&self) -> &str {
        &self.0[PREFIX.len() + HASH_LEN + 1..]
    }

    pub fn is_derivation(&self) -> bool {
        self.name().ends_with(".drv")
    }
}

/// Checks that `s` is a store-path hash part: exactly 32 nix32 characters.
pub fn is_hash_part(s: &str) -> bool {
    s.len() == HASH_LEN && s.bytes().all(nix32::is_digit)
}

fn check_basename(base: &str) -> Result<(), &'static str> {
    let bytes = base.as_bytes();
    if bytes.len() < HASH_LEN + 2 {
        return Err("too short for <32-char hash>-<name>");
    }
    if !bytes[..HASH_LEN].iter().all(|&c| nix32::is_digit(c)) {
        return Err("the hash part must be 32 nix base32 characters (0-9 a-z without e o t u)");
    }
    if bytes[HASH_LEN] != b'-' {
        return Err("a '-' must follow the 32-character hash");
    }
    let name = &bytes[HASH_LEN + 1..];
    if name.len() > MAX_NAME_LEN {
        return Err("the name is longer than 211 characters");
    }
    if name[0] == b'.' {
        return Err("the name must not start with '.'");
    }
    if !name.iter().all(|&c| c.is_ascii_alphanumeric() || b"+-._?=".contains(&c)) {
        return Err("the name may only hold A-Z a-z 0-9 + - . _ ? =");
    }
    Ok(())
}

impl FromStr for StorePath {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        Self::parse(s)
    }
}

impl fmt::Display for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl AsRef<str> for StorePath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

crate::serde_via_str!(StorePath, "a store path /nix/store/<hash>-<name>");

/// A store path whose name ends in `.drv`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DrvPath(StorePath);

impl DrvPath {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let p = StorePath::parse(s).map_err(|e| match e {
            ParseError::StorePath(m) => ParseError::DrvPath(m),
            other => other,
        })?;
        Self::try_from(p)
    }

    /// Accepts a basename with or without its `.drv` suffix, as the
    /// `/v1/derivations/{drv}` route does.
    pub fn from_basename_lenient(base: &str) -> Result<Self, ParseError> {
        let base = if base.ends_with(".drv") { base.to_owned() } else { format!("{base}.drv") };
        let p = StorePath::from_basename(&base).map_err(|e| match e {
            ParseError::StorePath(m) => ParseError::DrvPath(m),
            other => other,
        })?;
        Self::try_from(p)
    }

    pub fn as_store_path(&self) -> &StorePath {
        &self.0
    }

    /// The name of this derivation's output whose path is `out`, by Nix's rule for
    /// output path names (`outputPathName`): `<name>` for `out`, `<name>-<output>` for
    /// any other. Exact for a path known to be an output of this derivation; `None` when
    /// `out`'s name does not follow the rule (then it is not one of its outputs).
    pub fn output_name_of(&self, out: &StorePath) -> Option<crate::OutputName> {
        let drv_name = self.0.name().strip_suffix(".drv")?;
        let out_name = out.name();
        if out_name == drv_name {
            return crate::OutputName::parse("out").ok();
        }
        crate::OutputName::parse(out_name.strip_prefix(drv_name)?.strip_prefix('-')?).ok()
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl TryFrom<StorePath> for DrvPath {
    type Error = ParseError;
    fn try_from(p: StorePath) -> Result<Self, ParseError> {
        if p.is_derivation() {
            Ok(DrvPath(p))
        } else {
            Err(ParseError::DrvPath(format!("{}: the name must end in .drv", quote(p.as_str()))))
        }
    }
}

impl FromStr for DrvPath {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        Self::parse(s)
    }
}

impl fmt::Display for DrvPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for DrvPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

crate::serde_via_str!(DrvPath, "a derivation path /nix/store/<hash>-<name>.drv");

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: &str = "/nix/store/mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello";

    #[test]
    fn parts() {
        let p = StorePath::parse(HELLO).unwrap();
        assert_eq!(p.hash_part(), "mjs27ix6ig2bkbi3s3sm470vrv4lf7ic");
        assert_eq!(p.name(), "hello");
        assert_eq!(p.basename(), "mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello");
        assert_eq!(StorePath::from_basename(p.basename()).unwrap(), p);
        assert!(!p.is_derivation());
    }

    #[test]
    fn rejects() {
        let h = "mjs27ix6ig2bkbi3s3sm470vrv4lf7ic";
        for bad in [
            "".to_owned(),
            format!("/nix/store/{h}"),
            format!("/nix/store/{h}-"),
            format!("/nix/store/{h}-.hidden"),
            format!("/nix/store/{h}-.."),
            format!("/nix/store/{h}-a/b"),
            format!("/nix/store/{h}-a b"),
            format!("/nix/store/{h}-<script>"),
            format!("/nix/store/{h}-{}", "a".repeat(212)),
            format!("/nix/store/{}-hello", &h[..31]),
            "/nix/store/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-hello".to_owned(),
            format!("/nix/store/{h}_hello"),
            format!("/gnu/store/{h}-hello"),
            format!("/nix/store/../{h}-hello"),
            format!("/nix/store/{h}-hé"),
        ] {
            assert!(StorePath::parse(&bad).is_err(), "{bad} accepted");
        }
        assert!(StorePath::parse(&format!("/nix/store/{h}-{}", "a".repeat(211))).is_ok());
        assert!(StorePath::parse(&format!("/nix/store/{h}-a+b-1.0_x?=y")).is_ok());
    }

    #[test]
    fn drv() {
        let d = "/nix/store/76w21n1f03fs5kw8fnffphx7qrqffw6r-hello.drv";
        assert_eq!(DrvPath::parse(d).unwrap().as_str(), d);
        assert!(DrvPath::parse(HELLO).is_err());
        assert_eq!(DrvPath::from_basename_lenient("76w21n1f03fs5kw8fnffphx7qrqffw6r-hello").unwrap().as_str(), d);
        assert_eq!(DrvPath::from_basename_lenient("76w21n1f03fs5kw8fnffphx7qrqffw6r-hello.drv").unwrap().as_str(), d);
    }
}
