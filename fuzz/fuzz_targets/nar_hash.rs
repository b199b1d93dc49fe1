//! NAR hashes in their three spellings and Nix's base-32: decoding then encoding
//! gives the same text (the encoding is canonical), and every form of a hash parses
//! back to it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nhc_core::{nix32, NarHash};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn nar_hash(s: &str) {
    let Ok(h) = NarHash::parse(s) else { return };
    let printed = h.to_string();
    assert_eq!(NarHash::parse(&printed), Ok(h));
    assert_eq!(NarHash::parse(&h.to_sri()), Ok(h));
    assert_eq!(NarHash::parse(&format!("sha256:{}", hex(h.as_bytes()))), Ok(h));
    assert_eq!(printed, format!("sha256:{}", h.to_nix32()));
    // Only one nix32 text decodes to a given hash.
    if s.len() == 7 + 52 {
        if let Some(rest) = s.strip_prefix("sha256:") {
            if rest.bytes().all(nix32::is_digit) {
                assert_eq!(printed, s);
            }
        }
    }
    let json = serde_json::to_string(&h).expect("serializes");
    assert_eq!(serde_json::from_str::<NarHash>(&json).expect("parses"), h);
}

fn nix32_text<const N: usize>(s: &str) {
    if let Ok(bytes) = nix32::decode::<N>(s) {
        assert_eq!(nix32::encode(&bytes), s);
    }
}

fn nix32_bytes<const N: usize>(data: &[u8]) {
    if let Ok(bytes) = <[u8; N]>::try_from(data.get(..N).unwrap_or_default()) {
        let s = nix32::encode(&bytes);
        assert_eq!(s.len(), nix32::encoded_len(N));
        assert_eq!(nix32::decode::<N>(&s), Ok(bytes));
    }
}

fuzz_target!(|data: &[u8]| {
    nix32_bytes::<32>(data);
    nix32_bytes::<20>(data);
    let Ok(s) = std::str::from_utf8(data) else { return };
    nar_hash(s);
    nix32_text::<32>(s);
    nix32_text::<20>(s);
    if let Some(rest) = s.strip_prefix("sha256:") {
        nix32_text::<32>(rest);
    }
});
