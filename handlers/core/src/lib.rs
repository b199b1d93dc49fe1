//! Nix's own formats, as types that can only hold valid values.
//!
//! Everything that crosses a boundary (HTTP, database, files) is parsed into one of
//! these types once; code behind the boundary never re-checks strings.

pub mod api;
pub mod diff;
mod error;
pub mod fingerprint;
pub mod hex;
pub mod jobset;
pub mod keys;
pub mod names;
pub mod nar_hash;
pub mod narinfo;
pub mod nix32;
#[cfg(feature = "openapi")]
mod openapi;
pub mod status;
pub mod store_path;
pub mod time;

pub use error::ParseError;
pub use fingerprint::fingerprint;
pub use jobset::{JobsetName, Rev, Summary};
pub use keys::{verify_all, KeyName, PublicKey, SecretKey, Signature};
pub use names::{BuilderName, OutputName};
pub use nar_hash::NarHash;
pub use narinfo::{NarInfo, NarInfoError};
pub use status::{ReproStatus, StatusSummary};
pub use store_path::{DrvPath, StorePath, STORE_DIR};

/// Implements `Serialize` through `Display` and `Deserialize` through `FromStr`, so a
/// JSON document that deserializes has already been fully validated.
macro_rules! serde_via_str {
    ($ty:ty, $expecting:literal) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$ty, E> {
                        v.parse().map_err(E::custom)
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}
pub(crate) use serde_via_str;
