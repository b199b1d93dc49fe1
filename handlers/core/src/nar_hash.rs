use std::fmt;
use std::str::FromStr;

use base64::Engine;

use crate::error::{quote, ParseError};
use crate::nix32;

/// A SHA-256 NAR hash. Accepts `sha256:<52 nix32>`, `sha256:<64 hex>` and SRI
/// `sha256-<base64>`; always prints as `sha256:<nix32>`, the form Nix signs.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NarHash([u8; 32]);

impl NarHash {
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        NarHash(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 52 nix32 characters without the `sha256:` prefix (binary-cache NAR file names).
    pub fn to_nix32(&self) -> String {
        nix32::encode(&self.0)
    }

    pub fn to_sri(&self) -> String {
        format!("sha256-{}", base64::engine::general_purpose::STANDARD.encode(self.0))
    }

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let err = |why: &str| ParseError::NarHash(format!("{}: {why}", quote(s)));
        if let Some(rest) = s.strip_prefix("sha256:") {
            return match rest.len() {
                52 => nix32::decode::<32>(rest).map(NarHash).map_err(&err),
                64 => decode_hex(rest).map(NarHash).ok_or_else(|| err("invalid hexadecimal digit")),
                _ => Err(err("expected sha256: followed by 52 nix32 or 64 hex characters")),
            };
        }
        if let Some(rest) = s.strip_prefix("sha256-") {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(rest)
                .map_err(|_| err("invalid base64 in SRI hash"))?;
            return <[u8; 32]>::try_from(bytes.as_slice())
                .map(NarHash)
                .map_err(|_| err("an SRI sha256 hash holds exactly 32 bytes"));
        }
        Err(err("expected sha256:<nix32>, sha256:<hex> or sha256-<base64> (the algorithm prefix is required)"))
    }
}

fn decode_hex(s: &str) -> Option<[u8; 32]> {
    let s = s.as_bytes();
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        let hi = (s[2 * i] as char).to_digit(16)?;
        let lo = (s[2 * i + 1] as char).to_digit(16)?;
        *byte = (hi * 16 + lo) as u8;
    }
    Some(out)
}

impl FromStr for NarHash {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        Self::parse(s)
    }
}

impl fmt::Display for NarHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.to_nix32())
    }
}

impl fmt::Debug for NarHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

crate::serde_via_str!(NarHash, "a NAR hash sha256:<nix32>, sha256:<hex> or sha256-<base64>");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_forms() {
        let nix32 = "sha256:1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h";
        let hex = "sha256:10551daed7fa467d0b58826e7eb9a0f2af7d693de319f2ef775fffcda244b9f6";
        let sri = "sha256-EFUdrtf6Rn0LWIJufrmg8q99aT3jGfLvd1//zaJEufY=";
        let a = NarHash::parse(nix32).unwrap();
        assert_eq!(NarHash::parse(hex).unwrap(), a);
        assert_eq!(NarHash::parse(sri).unwrap(), a);
        assert_eq!(a.to_string(), nix32);
        assert_eq!(a.to_sri(), sri);
    }

    #[test]
    fn rejects() {
        for bad in [
            "1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h",
            "sha512:1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h",
            "sha256:1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8e",
            "sha256:zxmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h",
            "sha256:10551daed7fa467d0b58826e7eb9a0f2af7d693de319f2ef775fffcda244b9fg",
            "sha256:",
            "sha256-EFUdrtf6Rn0LWIJufrmg8q99aT3jGfLvd1//zaJEuf==",
            "sha256-!!!",
            "",
        ] {
            assert!(NarHash::parse(bad).is_err(), "{bad} accepted");
        }
    }
}
