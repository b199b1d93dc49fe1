//! The narinfo parser (the client reads narinfo files from binary caches): what
//! parses is written back as text that parses to the same value and is written
//! back identically.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nhc_core::NarInfo;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let info = match NarInfo::parse(s) {
        Ok(info) => info,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let _ = info.fingerprint();
    let text = info.to_string();
    let again = NarInfo::parse(&text).unwrap_or_else(|e| panic!("its own text does not parse: {e}\n{text}"));
    assert_eq!(again, info, "text:\n{text}");
    assert_eq!(again.to_string(), text);
});
