//! Nix signing keys and signatures, in the formats `nix key generate-secret` and
//! `nix store sign` use: `<name>:<base64>`.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

use crate::error::{quote, ParseError};

const MAX_KEY_NAME: usize = 128;

/// The name before the colon in a key or signature, e.g. `cache.example.org-1`.
/// 1–128 characters of `A-Z a-z 0-9 . _ + @ -`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyName(Box<str>);

impl KeyName {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if s.is_empty() || s.len() > MAX_KEY_NAME {
            return Err(ParseError::KeyName(format!("{}: must be 1 to {MAX_KEY_NAME} characters", quote(s))));
        }
        if !s.bytes().all(|c| c.is_ascii_alphanumeric() || b"._+@-".contains(&c)) {
            return Err(ParseError::KeyName(format!("{}: may only hold A-Z a-z 0-9 . _ + @ -", quote(s))));
        }
        Ok(KeyName(s.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl FromStr for KeyName {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        Self::parse(s)
    }
}
crate::serde_via_str!(KeyName, "a key name");

fn split_named(s: &str, what: fn(String) -> ParseError) -> Result<(KeyName, &str), ParseError> {
    let (name, data) = s.split_once(':').ok_or_else(|| what(format!("{}: expected <name>:<base64>", quote(s))))?;
    let name = KeyName::parse(name).map_err(|e| what(e.to_string()))?;
    Ok((name, data))
}

fn decode_exact<const N: usize>(data: &str, what: fn(String) -> ParseError, s: &str) -> Result<[u8; N], ParseError> {
    let bytes = B64.decode(data).map_err(|_| what(format!("{}: the part after ':' is not valid base64", quote(s))))?;
    <[u8; N]>::try_from(bytes.as_slice())
        .map_err(|_| what(format!("{}: expected {N} bytes of base64, got {}", quote(s), bytes.len())))
}

/// An ed25519 public key with its name: `<name>:<base64 of 32 bytes>`.
/// Points that are not on the curve or of small order are refused.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    name: KeyName,
    key: VerifyingKey,
}

impl PublicKey {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let (name, data) = split_named(s, ParseError::PublicKey)?;
        let bytes = decode_exact::<32>(data, ParseError::PublicKey, s)?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|_| ParseError::PublicKey(format!("{}: not a valid ed25519 point", quote(s))))?;
        if key.is_weak() {
            return Err(ParseError::PublicKey(format!("{}: a weak (small-order) ed25519 key", quote(s))));
        }
        Ok(PublicKey { name, key })
    }

    pub fn name(&self) -> &KeyName {
        &self.name
    }

    /// The base64 of the 32 key bytes, without the name.
    pub fn key_base64(&self) -> String {
        B64.encode(self.key.as_bytes())
    }

    /// True when `sig` was made by this key (same name) over `message`.
    pub fn verifies(&self, message: &str, sig: &Signature) -> bool {
        sig.key_name == self.name && self.key.verify_strict(message.as_bytes(), &sig.sig).is_ok()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.key_base64())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl FromStr for PublicKey {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        Self::parse(s)
    }
}
crate::serde_via_str!(PublicKey, "a public key <name>:<base64 of 32 bytes>");

/// Verifies many `(key, message, signature)` triples; on failure, the index of the
/// first one that does not verify. Two or more go through ed25519 batch
/// verification (about 2.5x cheaper per signature, with deterministic weights from
/// a transcript of the inputs) and, only if the batch fails, one by one to find
/// the culprit. The batch equation checks the same canonical encodings but, unlike
/// `verify_strict`, not whether R has small order: a signature that differs only
/// there can be made by the key's owner alone, so it cannot forge anyone's claim.
pub fn verify_all(items: &[(&PublicKey, &str, &Signature)]) -> Result<(), usize> {
    if let Some(i) = items.iter().position(|(k, _, s)| k.name != s.key_name) {
        return Err(i);
    }
    if items.len() >= 2 {
        let messages: Vec<&[u8]> = items.iter().map(|(_, m, _)| m.as_bytes()).collect();
        let signatures: Vec<ed25519_dalek::Signature> = items.iter().map(|(_, _, s)| s.sig).collect();
        let keys: Vec<VerifyingKey> = items.iter().map(|(k, _, _)| k.key).collect();
        if ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok() {
            return Ok(());
        }
    }
    match items.iter().position(|(k, m, s)| !k.verifies(m, s)) {
        Some(i) => Err(i),
        None => Ok(()),
    }
}

/// A Nix secret key: `<name>:<base64 of the 32-byte seed followed by the 32-byte public key>`.
pub struct SecretKey {
    name: KeyName,
    key: SigningKey,
}

impl SecretKey {
    /// Parses a secret key file's contents; surrounding whitespace (a trailing newline
    /// added by an editor) is ignored.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let s = s.trim();
        // Never echo secret material: errors name the key but not the data.
        let (name, data) =
            s.split_once(':').ok_or_else(|| ParseError::SecretKey("expected <name>:<base64 of 64 bytes>".into()))?;
        let name = KeyName::parse(name).map_err(|e| ParseError::SecretKey(e.to_string()))?;
        let bytes = B64
            .decode(data)
            .map_err(|_| ParseError::SecretKey(format!("key {name}: the part after ':' is not valid base64")))?;
        let bytes = <[u8; 64]>::try_from(bytes.as_slice())
            .map_err(|_| ParseError::SecretKey(format!("key {name}: expected 64 bytes, got {}", bytes.len())))?;
        let key = SigningKey::from_keypair_bytes(&bytes)
            .map_err(|_| ParseError::SecretKey(format!("key {name}: the public half does not belong to the seed")))?;
        Ok(SecretKey { name, key })
    }

    /// A key from a 32-byte seed (use a CSPRNG).
    pub fn from_seed(name: KeyName, seed: [u8; 32]) -> Self {
        SecretKey { name, key: SigningKey::from_bytes(&seed) }
    }

    pub fn name(&self) -> &KeyName {
        &self.name
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey { name: self.name.clone(), key: self.key.verifying_key() }
    }

    pub fn sign(&self, message: &str) -> Signature {
        Signature { key_name: self.name.clone(), sig: self.key.sign(message.as_bytes()) }
    }

    /// The secret key file's contents, exactly as `nix key generate-secret` prints them.
    pub fn to_file_contents(&self) -> String {
        format!("{}:{}", self.name, B64.encode(self.key.to_keypair_bytes()))
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({}:<redacted>)", self.name)
    }
}

/// A detached signature `<key name>:<base64 of 64 bytes>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Signature {
    key_name: KeyName,
    sig: ed25519_dalek::Signature,
}

impl Signature {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let (key_name, data) = split_named(s, ParseError::Signature)?;
        let bytes = decode_exact::<64>(data, ParseError::Signature, s)?;
        Ok(Signature { key_name, sig: ed25519_dalek::Signature::from_bytes(&bytes) })
    }

    pub fn key_name(&self) -> &KeyName {
        &self.key_name
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.key_name, B64.encode(self.sig.to_bytes()))
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({self})")
    }
}

impl FromStr for Signature {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        Self::parse(s)
    }
}
crate::serde_via_str!(Signature, "a signature <key name>:<base64 of 64 bytes>");
