//! Builder tokens: `nhc_<id>_<secret>`. The id (64 random bits, not secret) finds the
//! row; the secret (256 random bits) is stored only as its SHA-256 and compared in
//! constant time, so neither the database lookup nor the comparison leaks it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

const PREFIX: &str = "nhc_";
const ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;

/// A new token, to be shown once, and what storage keeps of it.
pub struct IssuedToken {
    pub token: String,
    pub id: String,
    pub secret_hash: String,
}

pub fn issue() -> Result<IssuedToken, ApiError> {
    let mut bytes = [0u8; ID_BYTES + SECRET_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::Internal(format!("no randomness: {e}")))?;
    let id = nhc_core::hex::encode(&bytes[..ID_BYTES]);
    let secret = URL_SAFE_NO_PAD.encode(&bytes[ID_BYTES..]);
    let secret_hash = nhc_core::hex::encode(&Sha256::digest(secret.as_bytes()));
    Ok(IssuedToken { token: format!("{PREFIX}{id}_{secret}"), id, secret_hash })
}

/// A presented token split into its lookup id and the hash of its secret.
pub struct PresentedToken {
    pub id: String,
    secret_hash: [u8; 32],
}

impl PresentedToken {
    pub fn parse(token: &str) -> Option<Self> {
        let rest = token.strip_prefix(PREFIX)?;
        let (id, secret) = rest.split_once('_')?;
        if id.len() != 2 * ID_BYTES || !id.bytes().all(|c| c.is_ascii_hexdigit()) || secret.is_empty() {
            return None;
        }
        Some(PresentedToken { id: id.to_ascii_lowercase(), secret_hash: Sha256::digest(secret.as_bytes()).into() })
    }

    /// Constant-time check against the stored hex hash.
    pub fn matches(&self, stored_hex: &str) -> bool {
        let stored = match nhc_core::hex::decode_32(stored_hex) {
            Some(s) => s,
            None => return false,
        };
        self.secret_hash.ct_eq(&stored).into()
    }
}

/// Constant-time check of a presented admin token against the configured one's hash.
pub fn admin_matches(presented: &str, expected_hash: &[u8; 32]) -> bool {
    let h: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    h.ct_eq(expected_hash).into()
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_verify_and_differ() {
        let a = issue().unwrap();
        let b = issue().unwrap();
        assert_ne!(a.token, b.token);
        assert_ne!(a.id, b.id);
        let p = PresentedToken::parse(&a.token).unwrap();
        assert_eq!(p.id, a.id);
        assert!(p.matches(&a.secret_hash));
        assert!(!p.matches(&b.secret_hash));
        // At least 128 random bits in the secret: 32 bytes, base64url.
        assert_eq!(a.token.len(), PREFIX.len() + 16 + 1 + 43);
        assert!(!a.secret_hash.contains(&a.token[PREFIX.len() + 17..]));
    }

    #[test]
    fn malformed_tokens() {
        for t in
            ["", "nhc_", "nhc_abc_def", "xyz_0123456789abcdef_s", "nhc_0123456789abcdeg_s", "nhc_0123456789abcdef_"]
        {
            assert!(PresentedToken::parse(t).is_none(), "{t}");
        }
        let a = issue().unwrap();
        let tampered = format!("{}x", a.token);
        assert!(!PresentedToken::parse(&tampered).unwrap().matches(&a.secret_hash));
    }

    #[test]
    fn bearer_header() {
        let mut h = axum::http::HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert("authorization", "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert("authorization", "bearer  abc ".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}
