//! The paging both attestation lists share (`GET /v1/builders/{name}/attestations`,
//! `GET /v1/outputs/{basename}`): `?limit=&cursor=`, and cursors that are opaque to
//! clients: base64url of `<micros>|<key>|<nix32 hash>`, the key being what the list
//! is ordered by besides time and hash (a path basename, or a builder).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use nhc_core::NarHash;
use serde::Deserialize;

use crate::error::ApiError;

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

#[derive(Deserialize)]
pub(crate) struct PageQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

impl PageQuery {
    /// `limit`: 1 to 1000, 100 when absent.
    pub(crate) fn limit(&self) -> Result<u32, ApiError> {
        match self.limit.as_deref() {
            None | Some("") => Ok(DEFAULT_LIMIT),
            Some(s) => s
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| ApiError::InvalidRequest(format!("limit must be an integer from 1 to {MAX_LIMIT}"))),
        }
    }

    /// `cursor` as (micros, key, hash), the key parsed by `key`; `None` when absent.
    pub(crate) fn cursor<K>(&self, key: impl FnOnce(&str) -> Option<K>) -> Result<Option<(i64, K, NarHash)>, ApiError> {
        match self.cursor.as_deref() {
            None | Some("") => Ok(None),
            Some(s) => decode_cursor(s, key).map(Some).ok_or_else(|| ApiError::InvalidRequest("invalid cursor".into())),
        }
    }
}

/// Cuts `rows` (read with `limit + 1`) to `limit`; the cursor of the last row kept when
/// more followed, else `None`.
pub(crate) fn cut<T>(rows: &mut Vec<T>, limit: u32, cursor_of: impl Fn(&T) -> String) -> Option<String> {
    if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(cursor_of)
    } else {
        None
    }
}

pub(crate) fn encode_cursor(submitted_at: i64, key: &str, nar_hash: &NarHash) -> String {
    URL_SAFE_NO_PAD.encode(format!("{submitted_at}|{key}|{}", nar_hash.to_nix32()))
}

pub(crate) fn decode_cursor<K>(s: &str, key: impl FnOnce(&str) -> Option<K>) -> Option<(i64, K, NarHash)> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(s).ok()?).ok()?;
    let mut parts = raw.splitn(3, '|');
    let submitted_at = parts.next()?.parse().ok()?;
    let key = key(parts.next()?)?;
    let nar_hash = NarHash::parse(&format!("sha256:{}", parts.next()?)).ok()?;
    Some((submitted_at, key, nar_hash))
}

#[cfg(test)]
mod tests {
    use nhc_core::{BuilderName, StorePath};

    use super::*;

    fn hash() -> NarHash {
        NarHash::parse("sha256:1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h").unwrap()
    }

    #[test]
    fn cursors_roundtrip_with_either_key() {
        let path = StorePath::parse("/nix/store/mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello").unwrap();
        let c = encode_cursor(1_795_616_418_500_000, path.basename(), &hash());
        assert_eq!(
            decode_cursor(&c, |s| StorePath::from_basename(s).ok()),
            Some((1_795_616_418_500_000, path, hash()))
        );
        let builder = BuilderName::parse("builder-1").unwrap();
        let c = encode_cursor(7, builder.as_str(), &hash());
        assert_eq!(decode_cursor(&c, |s| BuilderName::parse(s).ok()), Some((7, builder, hash())));
    }

    #[test]
    fn bad_cursors_do_not_decode() {
        let any = |s: &str| Some(s.to_owned());
        let paths = |s: &str| StorePath::from_basename(s).ok();
        for bad in ["", "!!", "bm9wZQ", &URL_SAFE_NO_PAD.encode("1|b|y"), &URL_SAFE_NO_PAD.encode("x|b|y")] {
            assert_eq!(decode_cursor(bad, any), None, "{bad}");
        }
        let good_hash = hash().to_nix32();
        assert_eq!(decode_cursor(&URL_SAFE_NO_PAD.encode(format!("1|x|{good_hash}")), paths), None);
    }

    #[test]
    fn limits_and_cuts() {
        let q = |limit: &str| PageQuery { limit: Some(limit.into()), cursor: None };
        assert_eq!(q("").limit().ok(), Some(100));
        assert_eq!(q("1000").limit().ok(), Some(1000));
        for bad in ["0", "1001", "-1", "x"] {
            assert!(q(bad).limit().is_err(), "{bad}");
        }
        let mut rows = vec![1, 2, 3];
        assert_eq!(cut(&mut rows, 2, |r| r.to_string()), Some("2".into()));
        assert_eq!(rows, [1, 2]);
        assert_eq!(cut(&mut rows, 2, |r| r.to_string()), None);
    }
}
