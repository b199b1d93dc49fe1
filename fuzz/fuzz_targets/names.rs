//! Store paths, derivation paths, output names, builder names and key names: what
//! parses prints back as the same text, parses again to the same value, and its
//! parts put together give the path again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nhc_core::store_path::is_hash_part;
use nhc_core::{BuilderName, DrvPath, KeyName, OutputName, StorePath, STORE_DIR};
use serde::{de::DeserializeOwned, Serialize};

/// Through JSON and back, as the API carries these values.
fn json_round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(v: &T) {
    let json = serde_json::to_string(v).expect("serializes");
    let back: T = serde_json::from_str(&json).expect("its own JSON parses");
    assert_eq!(&back, v);
}

fn store_path(s: &str) {
    let parsed = StorePath::parse(s);
    // The path and its basename are two spellings of the same thing.
    if let Some(base) = s.strip_prefix("/nix/store/") {
        assert_eq!(parsed.as_ref().ok(), StorePath::from_basename(base).as_ref().ok());
    }
    let Ok(p) = parsed else { return };
    assert_eq!(p.as_str(), s);
    let printed = p.to_string();
    assert_eq!(printed, s);
    assert_eq!(StorePath::parse(&printed).as_ref(), Ok(&p));
    assert_eq!(format!("{STORE_DIR}/{}-{}", p.hash_part(), p.name()), s);
    assert_eq!(format!("{STORE_DIR}/{}", p.basename()), s);
    assert!(is_hash_part(p.hash_part()));
    assert!(!p.name().is_empty() && !p.name().starts_with('.'));
    json_round_trip(&p);
    // A derivation path is exactly a store path whose name ends in `.drv`.
    assert_eq!(DrvPath::parse(s).is_ok(), p.is_derivation());
}

fn drv_path(s: &str) {
    if let Ok(d) = DrvPath::parse(s) {
        assert_eq!(d.to_string(), s);
        assert_eq!(DrvPath::parse(d.as_str()).as_ref(), Ok(&d));
        assert_eq!(DrvPath::from_basename_lenient(d.as_store_path().basename()).as_ref(), Ok(&d));
        json_round_trip(&d);
    }
    if let Ok(d) = DrvPath::from_basename_lenient(s) {
        let base = d.as_store_path().basename();
        assert!(base == s || base.strip_suffix(".drv") == Some(s));
    }
}

fn simple_names(s: &str) {
    if let Ok(n) = OutputName::parse(s) {
        assert_eq!(n.to_string(), s);
        assert_eq!(OutputName::parse(n.as_str()).as_ref(), Ok(&n));
        json_round_trip(&n);
    }
    if let Ok(n) = BuilderName::parse(s) {
        assert_eq!(n.to_string(), s);
        assert_eq!(BuilderName::parse(n.as_str()).as_ref(), Ok(&n));
        json_round_trip(&n);
    }
    if let Ok(n) = KeyName::parse(s) {
        assert_eq!(n.to_string(), s);
        json_round_trip(&n);
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    store_path(s);
    // Most inputs lack the prefix; give the basename checks a chance too.
    store_path(&format!("/nix/store/{s}"));
    drv_path(s);
    simple_names(s);
});
