//! The domain types against values that real Nix 2.8 produced
//! (`testdata/nix-2.8/vectors.json`, made from `vectors-drvs.nix`).

use nhc_core::fingerprint::References;
use nhc_core::{fingerprint, NarHash, PublicKey, SecretKey, Signature, StorePath};
use serde::Deserialize;

#[derive(Deserialize)]
struct Vectors {
    secret_key: String,
    public_key: String,
    paths: Vec<PathVector>,
}

#[derive(Deserialize)]
struct PathVector {
    path: String,
    deriver: String,
    #[serde(rename = "narHash_sri")]
    nar_hash_sri: String,
    #[serde(rename = "narHash_nix32")]
    nar_hash_nix32: String,
    #[serde(rename = "narHash_hex")]
    nar_hash_hex: String,
    #[serde(rename = "narSize")]
    nar_size: u64,
    references: Vec<String>,
    fingerprint: String,
    signature: String,
}

fn vectors() -> Vectors {
    let text = include_str!("../../../testdata/nix-2.8/vectors.json");
    serde_json::from_str(text).expect("vectors.json parses")
}

#[test]
fn hashes_parse_in_all_three_forms_to_the_same_value() {
    for v in vectors().paths {
        let h = NarHash::parse(&v.nar_hash_nix32).unwrap();
        assert_eq!(NarHash::parse(&v.nar_hash_sri).unwrap(), h, "{}", v.path);
        assert_eq!(NarHash::parse(&format!("sha256:{}", v.nar_hash_hex)).unwrap(), h, "{}", v.path);
        assert_eq!(h.to_string(), v.nar_hash_nix32);
        assert_eq!(h.to_sri(), v.nar_hash_sri);
    }
}

#[test]
fn fingerprints_match_nix() {
    for v in vectors().paths {
        let path = StorePath::parse(&v.path).unwrap();
        let refs = References::new(v.references.iter().map(|r| StorePath::parse(r).unwrap()).collect()).unwrap();
        let fp = fingerprint(&path, &NarHash::parse(&v.nar_hash_sri).unwrap(), v.nar_size, &refs);
        assert_eq!(fp, v.fingerprint);
        assert!(nhc_core::DrvPath::parse(&v.deriver).is_ok());
    }
}

#[test]
fn nix_signatures_verify_and_ours_are_identical() {
    let vs = vectors();
    let secret = SecretKey::parse(&vs.secret_key).unwrap();
    let public = PublicKey::parse(&vs.public_key).unwrap();
    assert_eq!(secret.public_key(), public);
    assert_eq!(public.to_string(), vs.public_key);
    assert_eq!(secret.to_file_contents(), vs.secret_key);
    for v in &vs.paths {
        let sig = Signature::parse(&v.signature).unwrap();
        assert_eq!(sig.to_string(), v.signature);
        assert!(public.verifies(&v.fingerprint, &sig), "{}", v.path);
        // ed25519 is deterministic: signing the same fingerprint gives Nix's bytes.
        assert_eq!(secret.sign(&v.fingerprint), sig);
    }
}

#[test]
fn tampered_fingerprints_and_other_keys_fail() {
    let vs = vectors();
    let public = PublicKey::parse(&vs.public_key).unwrap();
    let other = SecretKey::from_seed(nhc_core::KeyName::parse("test-1").unwrap(), [7; 32]);
    for v in &vs.paths {
        let sig = Signature::parse(&v.signature).unwrap();
        let tampered = v.fingerprint.replacen(&v.nar_size.to_string(), &(v.nar_size + 1).to_string(), 1);
        assert!(!public.verifies(&tampered, &sig));
        assert!(!other.public_key().verifies(&v.fingerprint, &sig));
        // Same bytes under another key name do not count as this key's signature.
        let renamed = Signature::parse(&v.signature.replacen("test-1:", "test-2:", 1)).unwrap();
        assert!(!public.verifies(&v.fingerprint, &renamed));
    }
}

#[test]
fn malformed_keys_and_signatures_are_refused() {
    for bad in [
        "",
        "nocolon",
        ":p1hqZLOxS4y/qQjWxzuGJ6Y3ILHA5bsSvRhDdQWoqsg=",
        "test-1:p1hqZLOxS4y/qQjWxzuGJ6Y3ILHA5bsSvRhDdQWo",
        "test-1:!!!!",
        "te st:p1hqZLOxS4y/qQjWxzuGJ6Y3ILHA5bsSvRhDdQWoqsg=",
        // the identity point: small order
        "test-1:AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    ] {
        assert!(PublicKey::parse(bad).is_err(), "{bad:?}");
    }
    let good = &vectors().paths[0].signature;
    assert!(Signature::parse(&good[..good.len() - 4]).is_err());
    assert!(Signature::parse("test-1:").is_err());
    assert!(SecretKey::parse("test-1:AAAA").is_err());
    // A key pair whose public half does not belong to the seed.
    let vs = vectors();
    let mut bytes = base64_decode(vs.secret_key.split_once(':').unwrap().1);
    bytes[40] ^= 1;
    assert!(SecretKey::parse(&format!("test-1:{}", base64_encode(&bytes))).is_err());
}

#[test]
fn secret_key_errors_never_echo_the_secret() {
    let vs = vectors();
    let data = vs.secret_key.split_once(':').unwrap().1;
    let truncated = format!("test-1:{}", &data[..40]);
    let err = SecretKey::parse(&truncated).unwrap_err().to_string();
    assert!(!err.contains(&data[..20]), "{err}");
}

#[test]
fn the_wire_format_parses_the_vectors() {
    let vs = vectors();
    for v in vs.paths {
        let body = serde_json::json!({
            "drv_path": v.deriver,
            "outputs": [{
                "output_name": "out",
                "output_path": v.path,
                "nar_hash": v.nar_hash_sri,
                "nar_size": v.nar_size,
                // reversed on purpose: the server sorts
                "references": v.references.iter().rev().collect::<Vec<_>>(),
                "signature": v.signature,
            }]
        });
        let req: nhc_core::api::SubmitRequest = serde_json::from_value(body).unwrap();
        let out = &req.outputs[0];
        assert_eq!(out.nar_hash.to_string(), v.nar_hash_nix32);
        let refs: Vec<&str> = out.references.as_slice().iter().map(|p| p.as_str()).collect();
        assert_eq!(refs, v.references);
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}
fn base64_encode(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[test]
fn batch_verification_accepts_nix_signatures_and_finds_a_bad_one() {
    let vs = vectors();
    let public = PublicKey::parse(&vs.public_key).unwrap();
    let sigs: Vec<Signature> = vs.paths.iter().map(|v| Signature::parse(&v.signature).unwrap()).collect();
    let items: Vec<(&PublicKey, &str, &Signature)> =
        vs.paths.iter().zip(&sigs).map(|(v, s)| (&public, v.fingerprint.as_str(), s)).collect();
    assert_eq!(nhc_core::verify_all(&items), Ok(()));
    for bad in 0..items.len() {
        let mut tampered = items.clone();
        tampered[bad].2 = &sigs[(bad + 1) % sigs.len()];
        assert_eq!(nhc_core::verify_all(&tampered), Err(bad));
    }
    let other = SecretKey::from_seed(nhc_core::KeyName::parse("test-2").unwrap(), [1; 32]).public_key();
    let mut renamed = items.clone();
    renamed[2].0 = &other;
    assert_eq!(nhc_core::verify_all(&renamed), Err(2));
    assert_eq!(nhc_core::verify_all(&items[..1]), Ok(()));
    assert_eq!(nhc_core::verify_all(&[]), Ok(()));
}
