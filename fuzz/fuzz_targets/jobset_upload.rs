//! The body of an evaluation upload (path lists, `{"paths"}`, CycloneDX SBOMs), under
//! each Content-Type a client may send: what parses has distinct paths within the
//! limit, derivation outputs are never `.drv` files, and edges point at real items.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use nhc_core::jobset::MAX_EVALUATION_PATHS;
use nhc_jobset::parse_upload;

const TYPES: [Option<&str>; 5] =
    [None, Some("text/plain"), Some("application/json"), Some("application/vnd.cyclonedx+json"), Some("image/png")];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    let content_type = TYPES[usize::from(selector) % TYPES.len()];
    let upload = match parse_upload(content_type, body) {
        Ok(u) => u,
        Err(e) => {
            // Every refusal has a stable code and a client-error status.
            assert!(!e.code().is_empty());
            assert!((400..500).contains(&e.http_status()), "{e}: {}", e.http_status());
            return;
        }
    };
    assert!(!upload.items.is_empty() && upload.items.len() <= MAX_EVALUATION_PATHS);
    let mut seen = HashSet::new();
    for item in &upload.items {
        assert!(seen.insert(item.path.to_string()), "duplicate item {}", item.path);
    }
    for e in &upload.edges {
        assert!((e.from as usize) < upload.items.len() && (e.to as usize) < upload.items.len(), "{e:?}");
        assert_ne!(e.from, e.to, "self edge");
    }
});
