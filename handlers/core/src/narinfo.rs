//! Nix's `.narinfo` files, read and written: what a binary cache says about one
//! store path (Nix's `NarInfo::NarInfo(store, s, whence)` and `to_string`).
//!
//! Parsing follows Nix: `Key: value` lines, unknown keys ignored, `Compression`
//! defaulting to `bzip2`, `Deriver: unknown-deriver` meaning none, and the same
//! fields required (`StorePath`, `URL`, `NarHash`, a `NarSize` above 0). It is
//! stricter where Nix is ambiguous: a field given twice is an error rather than
//! "the last one wins", since a signature covers only one of the values.

use std::fmt;

use crate::error::quote;
use crate::fingerprint::{fingerprint, References};
use crate::keys::{PublicKey, Signature};
use crate::nar_hash::NarHash;
use crate::store_path::{DrvPath, StorePath};

/// Nix's narinfo files are small; a cache that answers with more is not one.
pub const MAX_NARINFO_BYTES: usize = 4 << 20;

/// Why a narinfo cannot be used. The message names the line or field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NarInfoError {
    #[error("narinfo is larger than {MAX_NARINFO_BYTES} bytes")]
    TooLarge,
    #[error("narinfo line {line}: {why}")]
    Line { line: usize, why: String },
    #[error("narinfo field {field}: {why}")]
    Field { field: &'static str, why: String },
    #[error("narinfo has no {0} field")]
    Missing(&'static str),
}

/// One parsed narinfo. Signatures that do not parse as `name:base64-of-64-bytes`
/// are kept apart, as text, so that a cache's odd signature does not make its
/// other signatures unusable, and writing the narinfo back keeps them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NarInfo {
    pub store_path: StorePath,
    pub url: String,
    pub compression: String,
    pub file_hash: Option<String>,
    pub file_size: Option<u64>,
    pub nar_hash: NarHash,
    pub nar_size: u64,
    pub references: References,
    pub deriver: Option<DrvPath>,
    pub system: Option<String>,
    pub signatures: Vec<Signature>,
    pub unparsed_signatures: Vec<String>,
    pub ca: Option<String>,
}

fn field_err(field: &'static str) -> impl Fn(String) -> NarInfoError {
    move |why| NarInfoError::Field { field, why }
}

fn set<T>(slot: &mut Option<T>, field: &'static str, value: T) -> Result<(), NarInfoError> {
    if slot.replace(value).is_some() {
        return Err(NarInfoError::Field { field, why: "given twice".into() });
    }
    Ok(())
}

impl NarInfo {
    /// Parses a narinfo's text.
    pub fn parse(text: &str) -> Result<Self, NarInfoError> {
        if text.len() > MAX_NARINFO_BYTES {
            return Err(NarInfoError::TooLarge);
        }
        let (mut store_path, mut url, mut compression, mut file_hash, mut file_size) = (None, None, None, None, None);
        let (mut nar_hash, mut nar_size, mut references, mut deriver, mut system, mut ca) =
            (None, None, None, None, None, None);
        let (mut signatures, mut unparsed_signatures) = (Vec::new(), Vec::new());
        // Lines end in `\n`, `\r` before it is ignored, the last line's too: a value
        // ending in `\r` would not read back the same once written (`str::lines` drops
        // one `\r` before a `\n` but keeps one at the end of the text).
        for (i, line) in text.split('\n').map(|l| l.trim_end_matches('\r')).enumerate() {
            if line.is_empty() {
                continue;
            }
            let Some((key, value)) = line.split_once(": ").or_else(|| line.strip_suffix(':').map(|k| (k, ""))) else {
                return Err(NarInfoError::Line { line: i + 1, why: format!("{} is not `Key: value`", quote(line)) });
            };
            match key {
                "StorePath" => {
                    let p = StorePath::parse(value).map_err(|e| field_err("StorePath")(e.to_string()))?;
                    set(&mut store_path, "StorePath", p)?
                }
                "URL" => set(&mut url, "URL", value.to_owned())?,
                "Compression" => set(&mut compression, "Compression", value.to_owned())?,
                "FileHash" => set(&mut file_hash, "FileHash", value.to_owned())?,
                "FileSize" => set(&mut file_size, "FileSize", parse_size("FileSize", value)?)?,
                "NarHash" => {
                    let h = NarHash::parse(value).map_err(|e| field_err("NarHash")(e.to_string()))?;
                    set(&mut nar_hash, "NarHash", h)?
                }
                "NarSize" => set(&mut nar_size, "NarSize", parse_size("NarSize", value)?)?,
                "References" => {
                    let paths = value
                        .split(' ')
                        .filter(|b| !b.is_empty())
                        .map(StorePath::from_basename)
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| field_err("References")(e.to_string()))?;
                    let refs = References::new(paths)
                        .map_err(|p| field_err("References")(format!("{} is listed twice", p.basename())))?;
                    set(&mut references, "References", refs)?
                }
                "Deriver" => {
                    let d = if value == "unknown-deriver" {
                        None
                    } else {
                        let p = StorePath::from_basename(value).map_err(|e| field_err("Deriver")(e.to_string()))?;
                        Some(DrvPath::try_from(p).map_err(|e| field_err("Deriver")(e.to_string()))?)
                    };
                    set(&mut deriver, "Deriver", d)?
                }
                "System" => set(&mut system, "System", value.to_owned())?,
                "CA" => set(&mut ca, "CA", value.to_owned())?,
                "Sig" => match Signature::parse(value) {
                    Ok(s) => signatures.push(s),
                    Err(_) => unparsed_signatures.push(value.to_owned()),
                },
                _ => {}
            }
        }
        let url = url.filter(|u| !u.is_empty()).ok_or(NarInfoError::Missing("URL"))?;
        let nar_size = nar_size.ok_or(NarInfoError::Missing("NarSize"))?;
        if nar_size == 0 {
            return Err(NarInfoError::Field { field: "NarSize", why: "must be above 0".into() });
        }
        Ok(NarInfo {
            store_path: store_path.ok_or(NarInfoError::Missing("StorePath"))?,
            url,
            compression: compression.unwrap_or_else(|| "bzip2".to_owned()),
            file_hash,
            file_size,
            nar_hash: nar_hash.ok_or(NarInfoError::Missing("NarHash"))?,
            nar_size,
            references: references.unwrap_or_default(),
            deriver: deriver.flatten(),
            system,
            signatures,
            unparsed_signatures,
            ca,
        })
    }

    /// What the signatures of this narinfo sign.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.store_path, &self.nar_hash, self.nar_size, &self.references)
    }

    /// The signatures made by `key` (by its name) that verify over the fingerprint.
    pub fn valid_signatures_by<'a>(&'a self, key: &'a PublicKey) -> impl Iterator<Item = &'a Signature> + 'a {
        let fp = self.fingerprint();
        self.signatures.iter().filter(move |s| s.key_name() == key.name() && key.verifies(&fp, s))
    }
}

fn parse_size(field: &'static str, value: &str) -> Result<u64, NarInfoError> {
    // Digits only: u64::from_str would also take a leading `+`.
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NarInfoError::Field { field, why: format!("{} is not a number", quote(value)) });
    }
    value.parse().map_err(|_| NarInfoError::Field { field, why: format!("{} is too large", quote(value)) })
}

/// Nix's text form (`NarInfo::to_string`): every line `Key: value`, the
/// `References` line left out when there are none.
impl fmt::Display for NarInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "StorePath: {}", self.store_path)?;
        writeln!(f, "URL: {}", self.url)?;
        writeln!(f, "Compression: {}", self.compression)?;
        if let Some(h) = &self.file_hash {
            writeln!(f, "FileHash: {h}")?;
        }
        if let Some(s) = self.file_size {
            writeln!(f, "FileSize: {s}")?;
        }
        writeln!(f, "NarHash: {}", self.nar_hash)?;
        writeln!(f, "NarSize: {}", self.nar_size)?;
        if !self.references.is_empty() {
            writeln!(f, "References: {}", self.references.to_narinfo())?;
        }
        if let Some(d) = &self.deriver {
            writeln!(f, "Deriver: {}", d.as_store_path().basename())?;
        }
        if let Some(s) = &self.system {
            writeln!(f, "System: {s}")?;
        }
        for s in &self.signatures {
            writeln!(f, "Sig: {s}")?;
        }
        for s in &self.unparsed_signatures {
            writeln!(f, "Sig: {s}")?;
        }
        if let Some(ca) = &self.ca {
            writeln!(f, "CA: {ca}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{KeyName, SecretKey};

    const PUBLIC_KEY: &str = "test-1:p1hqZLOxS4y/qQjWxzuGJ6Y3ILHA5bsSvRhDdQWoqsg=";
    /// Real Nix 2.8's signature of the `refs` vector (testdata/nix-2.8/vectors.json).
    const NIX_SIG: &str =
        "test-1:icyscQzkWIlbnEzQ8ImZ5zDWl2zN/f7ZfytW3bDqZTsxaISbb8OHyVbJCkGqP0ZAu86TDQ5A1JpC+yn1aFkqAw==";

    /// A narinfo of the `refs` vector as `nix copy --to file://` writes one.
    fn sample(sig: &str) -> String {
        format!(
            "StorePath: /nix/store/2x6pi4fmwhqrlmcfm81advzzl1qsl9k2-refs\n\
             URL: nar/1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3.nar.xz\n\
             Compression: xz\n\
             FileHash: sha256:1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3\n\
             FileSize: 180\n\
             NarHash: sha256:11kfgnb6qkfl5c18bnij3clrq86zbyw7xlwgcxb2w9ihdvsj7mwi\n\
             NarSize: 776\n\
             References: hlns6vw3bk57jcq3zq72a46vw5yy8wzs-tree mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello\n\
             Deriver: k8idmbww8dxy0paa2y9a0vv7a67bp6qg-refs.drv\n\
             {sig}"
        )
    }

    #[test]
    fn parses_what_nix_writes_and_writes_it_back() {
        let key = PublicKey::parse(PUBLIC_KEY).unwrap();
        let text = sample(&format!("Sig: {NIX_SIG}\nSig: other:not-base64\n"));
        let info = NarInfo::parse(&text).unwrap();
        assert_eq!(info.nar_size, 776);
        assert_eq!(info.compression, "xz");
        assert_eq!(info.references.len(), 2);
        assert_eq!(info.deriver.as_ref().unwrap().as_str(), "/nix/store/k8idmbww8dxy0paa2y9a0vv7a67bp6qg-refs.drv");
        assert_eq!(
            info.fingerprint(),
            "1;/nix/store/2x6pi4fmwhqrlmcfm81advzzl1qsl9k2-refs;sha256:11kfgnb6qkfl5c18bnij3clrq86zbyw7xlwgcxb2w9ihdvsj7mwi;776;\
             /nix/store/hlns6vw3bk57jcq3zq72a46vw5yy8wzs-tree,/nix/store/mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello"
        );
        assert_eq!(info.signatures, vec![Signature::parse(NIX_SIG).unwrap()]);
        assert_eq!(info.unparsed_signatures, vec!["other:not-base64".to_owned()]);
        assert_eq!(info.valid_signatures_by(&key).count(), 1);
        assert_eq!(info.to_string(), text);
        assert_eq!(NarInfo::parse(&info.to_string()).unwrap(), info);
    }

    #[test]
    fn a_signature_over_other_values_or_by_another_key_does_not_count() {
        let key = PublicKey::parse(PUBLIC_KEY).unwrap();
        let mut info = NarInfo::parse(&sample(&format!("Sig: {NIX_SIG}\n"))).unwrap();
        info.nar_size += 1;
        assert_eq!(info.valid_signatures_by(&key).count(), 0);
        info.nar_size -= 1;
        // Same key name, other key bytes.
        let impostor = SecretKey::from_seed(KeyName::parse("test-1").unwrap(), [8; 32]);
        assert_eq!(info.valid_signatures_by(&impostor.public_key()).count(), 0);
        assert_eq!(info.valid_signatures_by(&key).count(), 1);
    }

    /// Found by `fuzz/` (target narinfo): a last line ending in a lone `\r` kept it in the
    /// value, and so did `\r\r\n`; the narinfo written back then parsed to another value.
    #[test]
    fn a_carriage_return_ends_the_last_line_as_it_ends_the_others() {
        for ending in ["\r", "\r\n", "\r\r\r\n\r"] {
            let info = NarInfo::parse(&sample(&format!("Sig: other:x{ending}"))).unwrap();
            assert_eq!(info.unparsed_signatures, ["other:x"], "{ending:?}");
            assert_eq!(NarInfo::parse(&info.to_string()).unwrap(), info);
        }
        // Inside a value a `\r` is part of it, and is written back.
        let info = NarInfo::parse(&sample("Sig: a\rb\n")).unwrap();
        assert_eq!(info.unparsed_signatures, ["a\rb"]);
        assert_eq!(NarInfo::parse(&info.to_string()).unwrap(), info);
    }

    #[test]
    fn defaults_follow_nix() {
        let text = "StorePath: /nix/store/mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello\nURL: x\n\
                    NarHash: sha256:1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h\nNarSize: 1\n\
                    Deriver: unknown-deriver\nReferences: \nSomethingNew: ignored\n";
        let info = NarInfo::parse(text).unwrap();
        assert_eq!(info.compression, "bzip2");
        assert!(info.deriver.is_none() && info.references.is_empty() && info.signatures.is_empty());
    }

    #[test]
    fn broken_narinfo_is_refused_with_the_reason() {
        let good = sample("");
        let cases: Vec<(String, &str)> = vec![
            (good.replace("NarSize: 776", "NarSize: +776"), "NarSize"),
            (good.replace("NarSize: 776", "NarSize: 0"), "NarSize"),
            (good.replace("NarSize: 776\n", ""), "NarSize"),
            (good.replace("StorePath: /nix/store/", "StorePath: /gnu/store/"), "StorePath"),
            (good.replace("NarHash: sha256:1", "NarHash: md5:1"), "NarHash"),
            (good.replace("-tree ", "-tree hlns6vw3bk57jcq3zq72a46vw5yy8wzs-tree "), "References"),
            (good.replace("refs.drv", "refs"), "Deriver"),
            (format!("{good}NarHash: sha256:1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h\n"), "NarHash"),
            (format!("{good}garbage\n"), "line 10"),
            (good.replace("URL: nar/1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3.nar.xz", "URL: "), "URL"),
            (good[..40].to_owned(), "StorePath"),
            ("NarSize 776\n".to_owned(), "line 1"),
        ];
        for (text, what) in cases {
            let e = NarInfo::parse(&text).expect_err(&text).to_string();
            assert!(e.contains(what), "{e:?} should name {what}");
        }
        assert_eq!(NarInfo::parse(&"x".repeat(MAX_NARINFO_BYTES + 1)), Err(NarInfoError::TooLarge));
    }
}
