use std::fmt;

use crate::nar_hash::NarHash;
use crate::store_path::StorePath;

/// A set of references: sorted and without duplicates, as Nix keeps them. The order
/// matters because the fingerprint joins them in this order.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct References(Vec<StorePath>);

impl References {
    /// Sorts `paths`; a path listed twice is an error (Nix never produces one).
    pub fn new(mut paths: Vec<StorePath>) -> Result<Self, StorePath> {
        paths.sort_unstable();
        if let Some(w) = paths.windows(2).find(|w| w[0] == w[1]) {
            return Err(w[0].clone());
        }
        Ok(References(paths))
    }

    pub fn as_slice(&self) -> &[StorePath] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Space-separated full paths: how storage keeps them in one column.
    pub fn to_space_separated(&self) -> String {
        join(&self.0, " ", StorePath::as_str)
    }

    /// Parses the storage form written by [`References::to_space_separated`].
    pub fn from_space_separated(s: &str) -> Result<Self, crate::ParseError> {
        let paths = s.split(' ').filter(|p| !p.is_empty()).map(StorePath::parse).collect::<Result<Vec<_>, _>>()?;
        References::new(paths).map_err(|p| crate::ParseError::StorePath(format!("{p} listed twice")))
    }
}

fn join(paths: &[StorePath], sep: &str, f: fn(&StorePath) -> &str) -> String {
    let mut out = String::with_capacity(paths.iter().map(|p| p.as_str().len() + 1).sum());
    for (i, p) in paths.iter().enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        out.push_str(f(p));
    }
    out
}

impl References {
    /// Basenames joined by spaces, for a narinfo `References:` line.
    pub fn to_narinfo(&self) -> String {
        join(&self.0, " ", StorePath::basename)
    }
}

impl fmt::Debug for References {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.0).finish()
    }
}

impl serde::Serialize for References {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for References {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let paths = Vec::<StorePath>::deserialize(d)?;
        References::new(paths).map_err(|p| serde::de::Error::custom(format!("{p} is listed twice")))
    }
}

/// The message Nix signs for a path (`ValidPathInfo::fingerprint`):
/// `1;<path>;<sha256:nix32>;<nar size>;<references, comma-joined>`.
pub fn fingerprint(path: &StorePath, nar_hash: &NarHash, nar_size: u64, references: &References) -> String {
    format!("1;{};{};{};{}", path, nar_hash, nar_size, join(references.as_slice(), ",", StorePath::as_str))
}
