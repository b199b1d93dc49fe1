use thiserror::Error;

/// Why a string is not a valid value of one of this crate's types. The message is
/// meant for the person who sent it, so it says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("invalid store path {0}")]
    StorePath(String),
    #[error("invalid derivation path {0}")]
    DrvPath(String),
    #[error("invalid NAR hash: {0}")]
    NarHash(String),
    #[error("invalid nix base32 string: {0}")]
    Nix32(String),
    #[error("invalid key name: {0}")]
    KeyName(String),
    #[error("invalid public key: {0}")]
    PublicKey(String),
    #[error("invalid secret key: {0}")]
    SecretKey(String),
    #[error("invalid signature: {0}")]
    Signature(String),
    #[error("invalid builder name: {0}")]
    BuilderName(String),
    #[error("invalid output name: {0}")]
    OutputName(String),
    #[error("invalid jobset name: {0}")]
    JobsetName(String),
    #[error("invalid revision: {0}")]
    Rev(String),
    #[error("invalid status: {0}")]
    Status(String),
    #[error("invalid diff format: {0}")]
    DiffFormat(String),
}

/// Shortens and quotes a hostile or huge input so that it can be echoed in an error.
pub(crate) fn quote(s: &str) -> String {
    const MAX: usize = 80;
    let mut out = String::with_capacity(s.len().min(MAX) + 8);
    out.push('"');
    for (i, c) in s.chars().enumerate() {
        if i == MAX {
            out.push_str("...");
            break;
        }
        out.extend(c.escape_default());
    }
    out.push('"');
    out
}
