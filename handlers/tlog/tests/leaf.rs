//! The leaf format: exact bytes, strict round trip, signature check, the oversize form.

use nhc_core::fingerprint::References;
use nhc_core::{BuilderName, DrvPath, KeyName, NarHash, OutputName, SecretKey, StorePath};
use nhc_tlog::{Leaf, LeafError, LeafReferences, MAX_LEAF_BYTES};

const OUT: &str = "/nix/store/mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello";
const DRV: &str = "/nix/store/0vd1cmd8ix2p1pk2xpq8yvkmw6lx4b9i-hello.drv";
const REF: &str = "/nix/store/2x6pi4fmwhqrlmcfm81advzzl1qsl9k2-refs";
const HASH: &str = "sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s";

fn key() -> SecretKey {
    SecretKey::from_seed(KeyName::parse("builder-1").unwrap(), [3; 32])
}

fn leaf_with(refs: Vec<StorePath>) -> Leaf {
    let refs = References::new(refs).unwrap();
    let path = StorePath::parse(OUT).unwrap();
    let nar_hash = NarHash::parse(HASH).unwrap();
    let sig = key().sign(&nhc_core::fingerprint(&path, &nar_hash, 1234, &refs));
    Leaf::new(
        BuilderName::parse("alice").unwrap(),
        path,
        nar_hash,
        1234,
        refs,
        sig,
        Some(DrvPath::parse(DRV).unwrap()),
        Some(OutputName::parse("out").unwrap()),
        1_700_000_000_000_000,
    )
}

#[test]
fn exact_bytes_and_round_trip() {
    let leaf = leaf_with(vec![StorePath::parse(REF).unwrap(), StorePath::parse(OUT).unwrap()]);
    let bytes = leaf.encode();
    let text = String::from_utf8(bytes.clone()).unwrap();
    let sig = leaf.signature.to_string();
    assert_eq!(
        text,
        format!(
            "nix-hash-collection attestation v1\nbuilder alice\npath {OUT}\nnar-hash {HASH}\nnar-size 1234\n\
             references 2x6pi4fmwhqrlmcfm81advzzl1qsl9k2-refs mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello\n\
             signature {sig}\nderiver {DRV}\noutput out\nsubmitted-at 1700000000000000\n"
        )
    );
    assert_eq!(Leaf::decode(&bytes).unwrap(), leaf);
    assert_eq!(leaf.signature_valid(&[key().public_key()]), Some(true));
    let other = SecretKey::from_seed(KeyName::parse("builder-1").unwrap(), [4; 32]);
    assert_eq!(leaf.signature_valid(&[other.public_key()]), Some(false));
    assert_eq!(leaf.hash(), nhc_tlog::leaf_hash(&bytes));
}

#[test]
fn optional_lines_and_no_references() {
    let mut leaf = leaf_with(vec![]);
    leaf.drv_path = None;
    leaf.output_name = None;
    let text = String::from_utf8(leaf.encode()).unwrap();
    assert!(text.contains("\nreferences\nsignature "), "{text}");
    assert!(!text.contains("deriver") && !text.contains("output "));
    assert_eq!(Leaf::decode(text.as_bytes()).unwrap(), leaf);
    // A changed NAR hash no longer matches the signature.
    leaf.nar_size = 1235;
    assert_eq!(leaf.signature_valid(&[key().public_key()]), Some(false));
}

#[test]
fn strict_decoding() {
    let leaf = leaf_with(vec![StorePath::parse(REF).unwrap()]);
    let text = String::from_utf8(leaf.encode()).unwrap();
    let bad = [
        text.trim_end().to_owned(),                      // no final newline
        text.replace("nar-size 1234", "nar-size 01234"), // non-canonical number
        text.replace("builder alice\n", ""),             // missing line
        text.replace("output out\n", "output out\noutput out\n"),
        text.replace("deriver", "derivr"),
        format!("{text}extra x\n"),
        text.replace("v1", "v2"),
        text.replace("signature ", "signature  "),
        text.replace("\nreferences ", "\nreferences  "),
        text.replace("submitted-at 1700000000000000", "submitted-at x"),
    ];
    for b in bad {
        assert!(Leaf::decode(b.as_bytes()).is_err(), "accepted:\n{b}");
    }
    // Swapped optional lines are out of order.
    let swapped = text.replace(&format!("deriver {DRV}\noutput out\n"), &format!("output out\nderiver {DRV}\n"));
    assert!(Leaf::decode(swapped.as_bytes()).is_err());
    assert_eq!(Leaf::decode(&[0xff]), Err(LeafError::NotUtf8));
}

#[test]
fn oversize_references_are_digested() {
    // 2,000 references of ~60 bytes: well past 64 KiB.
    let refs: Vec<StorePath> = (0..2000)
        .map(|i| StorePath::parse(&format!("/nix/store/{}-dependency-number-{i}", "a".repeat(32))).unwrap())
        .collect();
    let leaf = leaf_with(refs);
    assert!(matches!(leaf.references, LeafReferences::Digest(_)));
    let bytes = leaf.encode();
    assert!(bytes.len() <= MAX_LEAF_BYTES);
    assert!(String::from_utf8(bytes.clone()).unwrap().contains("\nreferences-sha256 "));
    assert_eq!(Leaf::decode(&bytes).unwrap(), leaf);
    assert_eq!(leaf.signature_valid(&[key().public_key()]), None);
}
