//! Reference scanning as Nix does it (`libstore/references.cc`): a path is referenced
//! when the 32-character nix32 hash part of its name occurs anywhere in the NAR
//! serialisation of the output (file contents, names and symlink targets alike).

use std::collections::HashSet;

const HASH_LEN: usize = 32;

fn is_nix32(c: u8) -> bool {
    matches!(c, b'0'..=b'9' | b'a'..=b'd' | b'f'..=b'n' | b'p'..=b's' | b'v'..=b'z')
}

/// Finds which of a set of hash parts occur in a byte stream fed in pieces.
pub struct RefScanner {
    candidates: HashSet<[u8; HASH_LEN]>,
    found: HashSet<[u8; HASH_LEN]>,
    /// The last `HASH_LEN - 1` bytes seen, for matches across piece boundaries.
    tail: Vec<u8>,
}

impl RefScanner {
    pub fn new(candidates: HashSet<[u8; HASH_LEN]>) -> Self {
        RefScanner { candidates, found: HashSet::new(), tail: Vec::with_capacity(2 * HASH_LEN) }
    }

    pub fn feed(&mut self, data: &[u8]) {
        if self.candidates.is_empty() || data.is_empty() {
            return;
        }
        if !self.tail.is_empty() {
            let mut window = self.tail.clone();
            window.extend_from_slice(&data[..data.len().min(HASH_LEN - 1)]);
            self.search(&window);
        }
        self.search(data);
        if data.len() >= HASH_LEN - 1 {
            self.tail.clear();
            self.tail.extend_from_slice(&data[data.len() - (HASH_LEN - 1)..]);
        } else {
            self.tail.extend_from_slice(data);
            let excess = self.tail.len().saturating_sub(HASH_LEN - 1);
            self.tail.drain(..excess);
        }
    }

    fn search(&mut self, s: &[u8]) {
        let mut i = 0;
        'outer: while i + HASH_LEN <= s.len() {
            // Check the window from its end, so a non-digit skips past itself.
            for j in (0..HASH_LEN).rev() {
                if !is_nix32(s[i + j]) {
                    i += j + 1;
                    continue 'outer;
                }
            }
            let mut key = [0u8; HASH_LEN];
            key.copy_from_slice(&s[i..i + HASH_LEN]);
            if self.candidates.contains(&key) {
                self.found.insert(key);
            }
            i += 1;
        }
    }

    /// The candidates seen so far.
    pub fn into_found(self) -> HashSet<[u8; HASH_LEN]> {
        self.found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: &[u8; 32] = b"mjs27ix6ig2bkbi3s3sm470vrv4lf7ic";
    const B: &[u8; 32] = b"hlns6vw3bk57jcq3zq72a46vw5yy8wzs";

    fn scan(pieces: &[&[u8]]) -> HashSet<[u8; 32]> {
        let mut s = RefScanner::new([*A, *B].into_iter().collect());
        for p in pieces {
            s.feed(p);
        }
        s.into_found()
    }

    #[test]
    fn finds_hashes_anywhere() {
        let text = b"xx/nix/store/mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello\n".as_slice();
        assert_eq!(scan(&[text]), [*A].into_iter().collect());
        assert!(scan(&[b"mjs27ix6ig2bkbi3s3sm470vrv4lf7i"]).is_empty());
        // Embedded in a longer run of digits it still counts, as in Nix.
        assert_eq!(scan(&[b"00mjs27ix6ig2bkbi3s3sm470vrv4lf7ic00"]).len(), 1);
    }

    proptest! {
        #[test]
        fn split_anywhere(prefix in "[a-z0-9/ -]{0,80}", suffix in "[a-z0-9/ -]{0,80}", cuts in proptest::collection::vec(0usize..200, 0..6)) {
            let mut text = prefix.into_bytes();
            text.extend_from_slice(B);
            text.extend_from_slice(suffix.as_bytes());
            let whole = scan(&[&text]);
            prop_assert!(whole.contains(B));
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(text.len())).collect();
            cuts.sort();
            let mut pieces = Vec::new();
            let mut last = 0;
            for c in cuts { pieces.push(&text[last..c]); last = c; }
            pieces.push(&text[last..]);
            prop_assert_eq!(scan(&pieces), whole);
        }
    }
}
