//! C2SP tlog-tiles: tile coordinates, their URL paths, and entry bundles.
//!
//! Paths (relative to the log prefix, `/log/` here): `tile/<L>/<N>[.p/<W>]` for hash tiles
//! and `tile/entries/<N>[.p/<W>]` for entry bundles, `N` written in groups of three digits
//! with every group but the last prefixed by `x` (`x001/x234/067`), `W` in 1..=255 for a
//! partial tile. Tiles are always 256 wide (height 8).

use tlog_tiles::{stored_hash_index, Hash, Tile, HASH_SIZE};

/// Tile height: every tile holds up to 2^8 = 256 hashes or entries.
pub const TILE_HEIGHT: u8 = 8;
/// Hashes (or entries) in a full tile.
pub const TILE_WIDTH: u64 = 1 << TILE_HEIGHT;
/// Highest tile level a path may name (64-bit indexes: 8 levels of 8 bits).
pub const MAX_LEVEL: u8 = 63;

/// A hash tile or an entry bundle, as a URL names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TileId {
    /// `None` for an entry bundle, else the hash tile's level.
    pub level: Option<u8>,
    /// Tile index within its level.
    pub index: u64,
    /// 1..=256: how many hashes or entries it holds.
    pub width: u16,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a tile path: {0}")]
pub struct BadTilePath(pub String);

fn format_index(mut n: u64) -> String {
    let mut s = format!("{:03}", n % 1000);
    while n >= 1000 {
        n /= 1000;
        s = format!("x{:03}/{s}", n % 1000);
    }
    s
}

impl TileId {
    pub fn hashes(level: u8, index: u64, width: u16) -> TileId {
        TileId { level: Some(level), index, width }
    }

    pub fn entries(index: u64, width: u16) -> TileId {
        TileId { level: None, index, width }
    }

    pub fn is_entries(&self) -> bool {
        self.level.is_none()
    }

    pub fn is_full(&self) -> bool {
        u64::from(self.width) == TILE_WIDTH
    }

    /// The path under the log prefix, e.g. `tile/0/x001/234.p/5` or `tile/entries/000`.
    pub fn path(&self) -> String {
        let l = match self.level {
            Some(l) => l.to_string(),
            None => "entries".to_owned(),
        };
        let p = if self.is_full() { String::new() } else { format!(".p/{}", self.width) };
        format!("tile/{l}/{}{p}", format_index(self.index))
    }

    /// Parses a path written by [`TileId::path`] (and nothing else: the form is canonical).
    pub fn parse(path: &str) -> Result<TileId, BadTilePath> {
        let bad = || BadTilePath(path.chars().take(80).collect());
        if path.len() > 64 {
            return Err(bad());
        }
        let rest = path.strip_prefix("tile/").ok_or_else(bad)?;
        let (l, rest) = rest.split_once('/').ok_or_else(bad)?;
        let level = if l == "entries" {
            None
        } else {
            if l.is_empty() || l.len() > 2 || !l.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            let l: u8 = l.parse().map_err(|_| bad())?;
            if l > MAX_LEVEL {
                return Err(bad());
            }
            Some(l)
        };
        let (n, width) = match rest.split_once(".p/") {
            Some((n, w)) => {
                if w.is_empty() || w.len() > 3 || !w.bytes().all(|c| c.is_ascii_digit()) {
                    return Err(bad());
                }
                let w: u16 = w.parse().map_err(|_| bad())?;
                if w == 0 || u64::from(w) >= TILE_WIDTH {
                    return Err(bad());
                }
                (n, w)
            }
            None => (rest, TILE_WIDTH as u16),
        };
        let mut index: u64 = 0;
        let groups: Vec<&str> = n.split('/').collect();
        for (i, g) in groups.iter().enumerate() {
            let digits = if i + 1 < groups.len() { g.strip_prefix('x').ok_or_else(bad)? } else { g };
            if digits.len() != 3 || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            let d: u64 = digits.parse().map_err(|_| bad())?;
            index = index.checked_mul(1000).and_then(|x| x.checked_add(d)).ok_or_else(bad)?;
        }
        let id = TileId { level, index, width };
        if id.path() != path {
            return Err(bad());
        }
        Ok(id)
    }

    /// The `tlog_tiles` coordinates of a hash tile (height 8).
    pub fn to_tile(&self) -> Option<Tile> {
        self.level.map(|l| Tile::new(TILE_HEIGHT, l, self.index, u32::from(self.width), false))
    }

    pub fn from_tile(t: &Tile) -> TileId {
        TileId { level: Some(t.level()), index: t.level_index(), width: t.width() as u16 }
    }

    /// The stored-hash indexes (see `tlog_tiles::stored_hash_index`) whose hashes make up this
    /// hash tile, in order; `None` for an entry bundle or a tile past 2^62 leaves.
    pub fn stored_hash_indexes(&self) -> Option<Vec<u64>> {
        let level = self.level?;
        let level_in_tree = u32::from(level) * u32::from(TILE_HEIGHT);
        if level_in_tree > 63 {
            return Some(Vec::new());
        }
        let start = self.index.checked_mul(TILE_WIDTH)?;
        // `stored_hash_index` overflows past 2^62 leaves: no real tree gets there, refuse it.
        let end = start.checked_add(u64::from(self.width))?;
        if level_in_tree >= 62 || end >= 1u64 << (62 - level_in_tree) {
            return None;
        }
        (0..u64::from(self.width))
            .map(|i| start.checked_add(i).map(|n| stored_hash_index(level_in_tree as u8, n)))
            .collect()
    }

    /// The leaf indexes an entry bundle covers.
    pub fn entry_range(&self) -> Option<std::ops::Range<u64>> {
        if self.level.is_some() {
            return None;
        }
        let start = self.index.checked_mul(TILE_WIDTH)?;
        Some(start..start.checked_add(u64::from(self.width))?)
    }

    /// Whether this tile can be served from a tree of `size` leaves.
    pub fn exists_in(&self, size: u64) -> bool {
        let level = u32::from(self.level.unwrap_or(0));
        let shift = level * u32::from(TILE_HEIGHT);
        // Hashes (or entries) at this level in a tree of `size`.
        let at_level = if shift >= 64 { 0 } else { size >> shift };
        let Some(start) = self.index.checked_mul(TILE_WIDTH) else { return false };
        let Some(end) = start.checked_add(u64::from(self.width)) else { return false };
        // Hashes never change once written, so a partial tile stays servable after the tree grows.
        end <= at_level
    }
}

/// Concatenates hashes into tile data.
pub fn tile_data(hashes: &[Hash]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hashes.len() * HASH_SIZE);
    for h in hashes {
        out.extend_from_slice(&h.0);
    }
    out
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BundleError {
    #[error("entry bundle truncated at byte {0}")]
    Truncated(usize),
    #[error("entry of {0} bytes does not fit an entry bundle (at most 65535)")]
    TooLong(usize),
    #[error("entry bundle holds more than 256 entries")]
    TooMany,
}

/// Encodes entries as a C2SP entry bundle: each a big-endian `u16` length, then its bytes.
pub fn encode_bundle<'a>(entries: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<u8>, BundleError> {
    let mut out = Vec::new();
    for e in entries {
        let len = u16::try_from(e.len()).map_err(|_| BundleError::TooLong(e.len()))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(e);
    }
    Ok(out)
}

/// Splits an entry bundle into its entries (borrowed).
pub fn decode_bundle(data: &[u8]) -> Result<Vec<&[u8]>, BundleError> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < data.len() {
        if out.len() as u64 >= TILE_WIDTH {
            return Err(BundleError::TooMany);
        }
        let len_bytes = data.get(at..at + 2).ok_or(BundleError::Truncated(at))?;
        let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
        let e = data.get(at + 2..at + 2 + len).ok_or(BundleError::Truncated(at))?;
        out.push(e);
        at += 2 + len;
    }
    Ok(out)
}
