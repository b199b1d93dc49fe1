//! The client's config file (TOML with the old leniencies): no panic on any text,
//! including in the messages that quote it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    nhc_hook::fuzz_config_file(s);
});
