//! Public keys, secret keys and signatures: parse, print, parse gives the same value
//! and the same text; a parsed secret key signs what its public key verifies; and
//! verifying hostile keys, messages and signatures never panics.
//!
//! Input: `public key \n message \n signature` (each part is also tried on its own).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nhc_core::{verify_all, PublicKey, SecretKey, Signature};

fn public_key(s: &str) -> Option<PublicKey> {
    let k = PublicKey::parse(s).ok()?;
    assert_eq!(k.to_string(), s, "a public key prints as it was given");
    assert_eq!(PublicKey::parse(&k.to_string()).as_ref(), Ok(&k));
    let json = serde_json::to_string(&k).expect("serializes");
    assert_eq!(serde_json::from_str::<PublicKey>(&json).expect("parses"), k);
    Some(k)
}

fn signature(s: &str) -> Option<Signature> {
    let sig = Signature::parse(s).ok()?;
    assert_eq!(sig.to_string(), s, "a signature prints as it was given");
    assert_eq!(Signature::parse(&sig.to_string()).as_ref(), Ok(&sig));
    Some(sig)
}

fn secret_key(s: &str) {
    let Ok(k) = SecretKey::parse(s) else { return };
    assert_eq!(k.to_file_contents(), s.trim());
    let again = SecretKey::parse(&k.to_file_contents()).expect("its own file parses");
    assert_eq!(again.to_file_contents(), k.to_file_contents());
    let public = k.public_key();
    assert_eq!(PublicKey::parse(&public.to_string()).as_ref(), Ok(&public));
    let sig = k.sign(s);
    assert!(public.verifies(s, &sig));
    assert!(!public.verifies(&format!("{s}x"), &sig));
    assert_eq!(Signature::parse(&sig.to_string()).as_ref(), Ok(&sig));
    assert!(format!("{k:?}").ends_with(":<redacted>)"), "Debug never shows the secret");
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    public_key(s);
    signature(s);
    secret_key(s);
    let mut parts = s.splitn(3, '\n');
    let (Some(k), Some(message), Some(sig)) = (parts.next(), parts.next(), parts.next()) else { return };
    let (Some(k), Some(sig)) = (public_key(k), signature(sig)) else { return };
    let one = k.verifies(message, &sig);
    assert_eq!(verify_all(&[(&k, message, &sig)]).is_ok(), one);
    // Batch verification of hostile input: an answer, never a panic.
    let _ = verify_all(&[(&k, message, &sig), (&k, message, &sig)]);
});
