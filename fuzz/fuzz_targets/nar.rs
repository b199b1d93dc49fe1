//! The NAR reader: no panic and no unbounded allocation on any bytes; what parses
//! serializes back to exactly the same bytes (the format has one encoding per tree).
//! The reference scanner, fed the same bytes in pieces, finds exactly the hash parts
//! that occur in them.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use nhc_nar::parse::{parse, serialize};
use nhc_nar::RefScanner;

fn is_nix32(c: u8) -> bool {
    nhc_core::nix32::is_digit(c)
}

fn scan(data: &[u8]) {
    let Some((&split, data)) = data.split_first() else { return };
    // Candidates: every 32-byte nix32 window at an odd offset, plus one never present.
    let windows: Vec<[u8; 32]> = data
        .windows(32)
        .enumerate()
        .filter(|(i, w)| i % 2 == 1 && w.iter().all(|&c| is_nix32(c)))
        .filter_map(|(_, w)| w.try_into().ok())
        .collect();
    let absent = [b'0'; 32];
    let mut candidates: HashSet<[u8; 32]> = windows.iter().copied().collect();
    let expected = candidates.clone();
    if !data.windows(32).any(|w| w == absent) {
        candidates.insert(absent);
    }
    let mut scanner = RefScanner::new(candidates);
    for piece in data.chunks(usize::from(split % 40) + 1) {
        scanner.feed(piece);
    }
    assert_eq!(scanner.into_found(), expected);
}

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        Ok(node) => assert!(serialize(&node) == data, "a parsed NAR serializes to other bytes"),
        Err(e) => drop(e.to_string()),
    }
    scan(data);
});
