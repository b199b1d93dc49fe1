//! The canonical serialisation of one attestation: the bytes a log leaf commits to.
//!
//! A leaf is UTF-8 text, one `key value` line per field, each line ended by `\n`, in this
//! fixed order (optional lines are left out, never written empty):
//!
//! ```text
//! nix-hash-collection attestation v1
//! builder <builder name>
//! path <output store path>
//! nar-hash sha256:<nix32>
//! nar-size <decimal>
//! references <basename> <basename> ...      (just "references" when there are none)
//! signature <key name>:<base64 of the ed25519 signature>
//! deriver <drv store path>                    (optional)
//! output <output name>                        (optional)
//! submitted-at <microseconds since the epoch, decimal>
//! ```
//!
//! The signature is the builder's over the Nix fingerprint
//! `1;<path>;<nar-hash>;<nar-size>;<references, full paths, comma-joined>`, so a monitor
//! can check every entry with the builder's public key alone.
//!
//! C2SP tlog-tiles entry bundles prefix entries with a 16-bit length, so a leaf is at most
//! 65,535 bytes. When the references make it longer, the `references` line is replaced by
//! `references-sha256 <hex SHA-256 of the comma-joined full reference paths>` (the tail of
//! the fingerprint): the leaf still commits to the exact attestation, but its signature can
//! only be checked by someone holding the reference list (see docs/deviations.md).
//!
//! Decoding is strict: [`Leaf::decode`] accepts exactly the bytes [`Leaf::encode`] makes.

use nhc_core::fingerprint::References;
use nhc_core::{BuilderName, DrvPath, NarHash, OutputName, PublicKey, Signature, StorePath};
use sha2::{Digest, Sha256};

/// The first line of every leaf: names the format and its version.
pub const LEAF_HEADER: &str = "nix-hash-collection attestation v1";
/// The largest leaf an entry bundle can hold (its length is a big-endian `u16`).
pub const MAX_LEAF_BYTES: usize = u16::MAX as usize;

/// What the leaf says about the references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeafReferences {
    /// The full list (basenames in the leaf; paths here).
    Listed(References),
    /// Too many to fit: SHA-256 of the fingerprint's comma-joined reference paths.
    Digest([u8; 32]),
}

/// One attestation as the log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    pub builder: BuilderName,
    pub output_path: StorePath,
    pub nar_hash: NarHash,
    pub nar_size: u64,
    pub references: LeafReferences,
    pub signature: Signature,
    pub drv_path: Option<DrvPath>,
    pub output_name: Option<OutputName>,
    /// Microseconds since the epoch, when the server accepted it.
    pub submitted_at: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LeafError {
    #[error("leaf is not UTF-8")]
    NotUtf8,
    #[error("leaf line {line}: {reason}")]
    Line { line: usize, reason: String },
    #[error("leaf is not in canonical form")]
    NotCanonical,
}

fn comma_joined(refs: &References) -> String {
    refs.as_slice().iter().map(StorePath::as_str).collect::<Vec<_>>().join(",")
}

impl Leaf {
    /// A leaf for an attestation, its references listed, or digested when the list
    /// would push the leaf past [`MAX_LEAF_BYTES`].
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        builder: BuilderName,
        output_path: StorePath,
        nar_hash: NarHash,
        nar_size: u64,
        references: References,
        signature: Signature,
        drv_path: Option<DrvPath>,
        output_name: Option<OutputName>,
        submitted_at: i64,
    ) -> Leaf {
        let mut leaf = Leaf {
            builder,
            output_path,
            nar_hash,
            nar_size,
            references: LeafReferences::Listed(references),
            signature,
            drv_path,
            output_name,
            submitted_at,
        };
        if leaf.encode_unchecked().len() > MAX_LEAF_BYTES {
            if let LeafReferences::Listed(refs) = &leaf.references {
                let digest: [u8; 32] = Sha256::digest(comma_joined(refs).as_bytes()).into();
                leaf.references = LeafReferences::Digest(digest);
            }
        }
        leaf
    }

    fn encode_unchecked(&self) -> String {
        let mut s = String::with_capacity(512);
        s.push_str(LEAF_HEADER);
        s.push('\n');
        s.push_str("builder ");
        s.push_str(self.builder.as_str());
        s.push_str("\npath ");
        s.push_str(self.output_path.as_str());
        s.push_str("\nnar-hash ");
        s.push_str(&self.nar_hash.to_string());
        s.push_str("\nnar-size ");
        s.push_str(&self.nar_size.to_string());
        match &self.references {
            LeafReferences::Listed(refs) => {
                s.push_str("\nreferences");
                for r in refs.as_slice() {
                    s.push(' ');
                    s.push_str(r.basename());
                }
            }
            LeafReferences::Digest(d) => {
                s.push_str("\nreferences-sha256 ");
                s.push_str(&nhc_core::hex::encode(d));
            }
        }
        s.push_str("\nsignature ");
        s.push_str(&self.signature.to_string());
        if let Some(d) = &self.drv_path {
            s.push_str("\nderiver ");
            s.push_str(d.as_str());
        }
        if let Some(o) = &self.output_name {
            s.push_str("\noutput ");
            s.push_str(o.as_str());
        }
        s.push_str("\nsubmitted-at ");
        s.push_str(&self.submitted_at.to_string());
        s.push('\n');
        s
    }

    /// The leaf as text (it is UTF-8), what a server stores.
    pub fn text(&self) -> String {
        self.encode_unchecked()
    }

    /// The leaf's bytes (at most [`MAX_LEAF_BYTES`]).
    pub fn encode(&self) -> Vec<u8> {
        self.encode_unchecked().into_bytes()
    }

    /// The RFC 6962 leaf hash of these bytes: `SHA-256(0x00 || leaf)`.
    pub fn hash(&self) -> crate::Hash {
        crate::leaf_hash(&self.encode())
    }

    /// The Nix fingerprint the signature covers, when the leaf lists its references.
    pub fn fingerprint(&self) -> Option<String> {
        match &self.references {
            LeafReferences::Listed(refs) => {
                Some(nhc_core::fingerprint(&self.output_path, &self.nar_hash, self.nar_size, refs))
            }
            LeafReferences::Digest(_) => None,
        }
    }

    /// Whether one of `keys` (the builder's registered keys) made the signature.
    /// `None` when the references were digested and the fingerprint cannot be rebuilt.
    pub fn signature_valid(&self, keys: &[PublicKey]) -> Option<bool> {
        let fp = self.fingerprint()?;
        Some(keys.iter().any(|k| k.name() == self.signature.key_name() && k.verifies(&fp, &self.signature)))
    }

    /// Parses leaf bytes; anything [`Leaf::encode`] would not write is an error.
    pub fn decode(bytes: &[u8]) -> Result<Leaf, LeafError> {
        let text = std::str::from_utf8(bytes).map_err(|_| LeafError::NotUtf8)?;
        let body = text.strip_suffix('\n').ok_or(LeafError::NotCanonical)?;
        let mut lines = body.split('\n').enumerate().peekable();
        let err = |line: usize, reason: &str| LeafError::Line { line: line + 1, reason: reason.to_owned() };
        let mut field = |key: &str| -> Result<(usize, String), LeafError> {
            match lines.next() {
                Some((i, l)) => match l.split_once(' ') {
                    Some((k, v)) if k == key => Ok((i, v.to_owned())),
                    None if l == key => Ok((i, String::new())),
                    _ => Err(LeafError::Line { line: i + 1, reason: format!("expected {key}") }),
                },
                None => Err(LeafError::Line { line: 0, reason: format!("missing {key}") }),
            }
        };
        let (_, header) = field("nix-hash-collection")?;
        if header != "attestation v1" {
            return Err(err(0, "unknown leaf format"));
        }
        let (i, v) = field("builder")?;
        let builder = BuilderName::parse(&v).map_err(|e| err(i, &e.to_string()))?;
        let (i, v) = field("path")?;
        let output_path = StorePath::parse(&v).map_err(|e| err(i, &e.to_string()))?;
        let (i, v) = field("nar-hash")?;
        let nar_hash = NarHash::parse(&v).map_err(|e| err(i, &e.to_string()))?;
        let (i, v) = field("nar-size")?;
        let nar_size = v.parse::<u64>().map_err(|e| err(i, &e.to_string()))?;
        // references or references-sha256
        let (i, line) = lines.next().ok_or_else(|| err(0, "missing references"))?;
        let references = if line == "references" {
            LeafReferences::Listed(References::default())
        } else if let Some(list) = line.strip_prefix("references ") {
            let paths = list
                .split(' ')
                .map(StorePath::from_basename)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| err(i, &e.to_string()))?;
            LeafReferences::Listed(References::new(paths).map_err(|p| err(i, &format!("{p} listed twice")))?)
        } else if let Some(h) = line.strip_prefix("references-sha256 ") {
            LeafReferences::Digest(nhc_core::hex::decode_32(h).ok_or_else(|| err(i, "bad references-sha256"))?)
        } else {
            return Err(err(i, "expected references"));
        };
        let mut field = |key: &str| -> Result<(usize, String), LeafError> {
            match lines.next() {
                Some((i, l)) => match l.split_once(' ') {
                    Some((k, v)) if k == key => Ok((i, v.to_owned())),
                    _ => Err(LeafError::Line { line: i + 1, reason: format!("expected {key}") }),
                },
                None => Err(LeafError::Line { line: 0, reason: format!("missing {key}") }),
            }
        };
        let (i, v) = field("signature")?;
        let signature = Signature::parse(&v).map_err(|e| err(i, &e.to_string()))?;
        let mut drv_path = None;
        let mut output_name = None;
        let mut submitted_at = None;
        for (i, l) in lines.by_ref() {
            let (k, v) = l.split_once(' ').ok_or_else(|| err(i, "expected key and value"))?;
            match k {
                "deriver" if drv_path.is_none() && output_name.is_none() => {
                    drv_path = Some(DrvPath::parse(v).map_err(|e| err(i, &e.to_string()))?)
                }
                "output" if output_name.is_none() => {
                    output_name = Some(OutputName::parse(v).map_err(|e| err(i, &e.to_string()))?)
                }
                "submitted-at" => {
                    submitted_at = Some(v.parse::<i64>().map_err(|e| err(i, &e.to_string()))?);
                    break;
                }
                _ => return Err(err(i, "unexpected line")),
            }
        }
        let submitted_at = submitted_at.ok_or_else(|| err(0, "missing submitted-at"))?;
        if lines.next().is_some() {
            return Err(LeafError::NotCanonical);
        }
        let leaf = Leaf {
            builder,
            output_path,
            nar_hash,
            nar_size,
            references,
            signature,
            drv_path,
            output_name,
            submitted_at,
        };
        // Canonical: the same bytes come back (number forms, digest only when needed).
        let again = leaf.encode_unchecked();
        let listed_fits = !matches!(leaf.references, LeafReferences::Listed(_)) || again.len() <= MAX_LEAF_BYTES;
        if again.as_bytes() != bytes || !listed_fits {
            return Err(LeafError::NotCanonical);
        }
        Ok(leaf)
    }
}
