//! C2SP tlog-checkpoint signed by the log's Ed25519 key as a C2SP signed-note.
//!
//! The key is the Go `note` format: the secret `PRIVATE+KEY+<name>+<id>+<base64>`, the public
//! (verifier) form `<name>+<id>+<base64>` served at `GET /log/key`. The key name is the
//! checkpoint's origin line, so one string names the log everywhere.

use signed_note::{Note, NoteError, StandardSigner, StandardVerifier, VerifierList};
use tlog_tiles::{Checkpoint, Hash};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the log key is not a signed-note Ed25519 secret key (PRIVATE+KEY+<origin>+<id>+<base64>)")]
    Format,
    #[error("the log verifier key is not <origin>+<id>+<base64> of an Ed25519 key")]
    VerifierFormat,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("not a signed note: {0}")]
    Note(String),
    #[error("checkpoint signature does not verify with the log key: {0}")]
    Signature(String),
    #[error("malformed checkpoint body")]
    Malformed,
    #[error("checkpoint origin {found:?}, expected {expected:?}")]
    Origin { expected: String, found: String },
}

/// The log's signing key.
pub struct LogSigner {
    signer: StandardSigner,
    verifier_key: String,
}

impl std::fmt::Debug for LogSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LogSigner({})", self.verifier_key)
    }
}

impl LogSigner {
    /// Parses the secret key (surrounding whitespace ignored).
    pub fn parse(skey: &str) -> Result<LogSigner, KeyError> {
        let skey = skey.trim();
        let signer = StandardSigner::new(skey).map_err(|_| KeyError::Format)?;
        // The verifier: derive it from the seed (the secret form carries 0x01 || seed).
        // PRIVATE+KEY+<name>+<id>+<base64>: the base64 itself may hold '+'.
        let rest = skey.splitn(5, '+').nth(4).ok_or(KeyError::Format)?;
        use base64::Engine;
        let raw = base64::engine::general_purpose::STANDARD.decode(rest).map_err(|_| KeyError::Format)?;
        let seed: [u8; 32] = raw.get(1..).and_then(|s| s.try_into().ok()).ok_or(KeyError::Format)?;
        let sk = ed25519_dalek::SigningKey::from_bytes(&seed);
        let name = signed_note::Signer::name(&signer).to_owned();
        let verifier_key = signed_note::new_ed25519_verifier_key(&name, &sk.verifying_key());
        Ok(LogSigner { signer, verifier_key })
    }

    /// A key for `origin` from a 32-byte seed (use a CSPRNG): the secret key text.
    pub fn secret_from_seed(origin: &str, seed: [u8; 32]) -> Result<String, KeyError> {
        if !signed_note::is_key_name_valid(origin) {
            return Err(KeyError::Format);
        }
        let sk = ed25519_dalek::SigningKey::from_bytes(&seed);
        let vkey = signed_note::new_ed25519_verifier_key(origin, &sk.verifying_key());
        let id = vkey.split('+').nth(1).ok_or(KeyError::Format)?.to_owned();
        use base64::Engine;
        let mut raw = vec![1u8];
        raw.extend_from_slice(&seed);
        Ok(format!("PRIVATE+KEY+{origin}+{id}+{}", base64::engine::general_purpose::STANDARD.encode(raw)))
    }

    /// The origin line of this log's checkpoints (the key's name).
    pub fn origin(&self) -> &str {
        signed_note::Signer::name(&self.signer)
    }

    /// The verifier key `<origin>+<id>+<base64>`, as `GET /log/key` serves it.
    pub fn verifier_key(&self) -> &str {
        &self.verifier_key
    }

    /// A signed checkpoint for a tree of `size` leaves with root `root`.
    pub fn sign(&self, size: u64, root: &Hash) -> Vec<u8> {
        let cp = Checkpoint::new(self.origin(), size, *root, "").expect("origin is a valid key name, not empty");
        let mut note = Note::new(&cp.to_bytes(), &[]).expect("checkpoint text is a valid note text");
        note.add_sigs(&[&self.signer]).expect("the key name was validated when parsing");
        note.to_bytes()
    }
}

/// A checkpoint whose signature was verified.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedCheckpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

/// Parses the verifier key served at `/log/key`.
pub fn parse_verifier(vkey: &str) -> Result<StandardVerifier, KeyError> {
    StandardVerifier::new(vkey.trim()).map_err(|_| KeyError::VerifierFormat)
}

/// Verifies a signed checkpoint with the log's verifier key; its origin must be the key's name.
pub fn verify_checkpoint(vkey: &str, signed: &[u8]) -> Result<VerifiedCheckpoint, CheckpointError> {
    let verifier = parse_verifier(vkey).map_err(|e| CheckpointError::Note(e.to_string()))?;
    let name = signed_note::Verifier::name(&verifier).to_owned();
    let note = Note::from_bytes(signed).map_err(|e| CheckpointError::Note(e.to_string()))?;
    note.verify(&VerifierList::new(vec![Box::new(verifier)]))
        .map_err(|e: NoteError| CheckpointError::Signature(e.to_string()))?;
    let cp = Checkpoint::from_bytes(note.text()).map_err(|_| CheckpointError::Malformed)?;
    if cp.origin() != name {
        return Err(CheckpointError::Origin { expected: name, found: cp.origin().to_owned() });
    }
    Ok(VerifiedCheckpoint { origin: cp.origin().to_owned(), size: cp.size(), root: *cp.hash() })
}
