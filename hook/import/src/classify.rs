//! One narinfo → an output to submit, or why not (pure, unit-tested).

use nhc_core::api::SubmittedOutput;
use nhc_core::{DrvPath, NarInfo, PublicKey, StorePath};
use nhc_nix::StoreLocation;

#[derive(Debug)]
pub enum Outcome {
    /// Ready to submit: with its derivation when the output's name is known.
    Ok {
        drv: Option<DrvPath>,
        output: SubmittedOutput,
    },
    NotInCache,
    /// No `Sig` by any of the builder's keys (maybe by others).
    Unsigned,
    /// Malformed, for another path, or a signature by our key that does not verify.
    Invalid(String),
    /// Could not be fetched (after retries).
    Failed(crate::cache::FetchError),
}

/// Checks the narinfo of `path` against the builder's `keys`. The deriver is kept
/// for [`named`]; the output goes without a derivation until it has a name.
pub fn classify(path: &StorePath, text: &str, keys: &[PublicKey]) -> Outcome {
    let info = match NarInfo::parse(text) {
        Ok(i) => i,
        Err(e) => return Outcome::Invalid(e.to_string()),
    };
    if &info.store_path != path {
        return Outcome::Invalid(format!("it describes {}", info.store_path));
    }
    let ours: Vec<_> =
        info.signatures.iter().filter(|s| keys.iter().any(|k| k.name() == s.key_name())).cloned().collect();
    if ours.is_empty() {
        return Outcome::Unsigned;
    }
    let good = keys.iter().find_map(|k| info.valid_signatures_by(k).next().cloned());
    let Some(signature) = good else {
        return Outcome::Invalid(format!("signature by {} does not verify", ours[0].key_name()));
    };
    Outcome::Ok {
        drv: info.deriver,
        output: SubmittedOutput {
            output_name: None,
            output_path: info.store_path,
            nar_hash: info.nar_hash,
            nar_size: info.nar_size,
            references: info.references,
            signature,
        },
    }
}

/// Names the output from its deriver's `.drv` when that file is in the local store;
/// without a name the output is sent without its derivation (as `nhc-hook` does).
pub fn named(outcome: Outcome, store: &StoreLocation) -> Outcome {
    let Outcome::Ok { drv: Some(drv), mut output } = outcome else { return outcome };
    let name = std::fs::read(store.real_path(drv.as_store_path())).ok().and_then(|t| {
        let d = nhc_nix::drv::parse(&t).ok()?;
        d.outputs.into_iter().find(|(_, p)| p.as_ref() == Some(&output.output_path)).map(|(n, _)| n)
    });
    match name {
        Some(n) => {
            output.output_name = Some(n);
            Outcome::Ok { drv: Some(drv), output }
        }
        None => Outcome::Ok { drv: None, output },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nhc_core::{fingerprint, NarHash, SecretKey};

    const PATH: &str = "/nix/store/mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello";
    const REF: &str = "/nix/store/7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-glibc";
    const HASH: &str = "sha256:1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h";

    fn key(name: &str) -> SecretKey {
        let seed = if name == "cache-1" { [7; 32] } else { [8; 32] };
        SecretKey::from_seed(nhc_core::KeyName::parse(name).unwrap(), seed)
    }

    fn narinfo(sig: Option<&SecretKey>, nar_hash: &str) -> String {
        let p = StorePath::parse(PATH).unwrap();
        let refs = nhc_core::fingerprint::References::new(vec![StorePath::parse(REF).unwrap()]).unwrap();
        let fp = fingerprint(&p, &NarHash::parse(HASH).unwrap(), 120, &refs);
        let mut s = format!(
            "StorePath: {PATH}\nURL: nar/x.nar\nCompression: none\nNarHash: {nar_hash}\nNarSize: 120\nReferences: {}\nDeriver: 76w21n1f03fs5kw8fnffphx7qrqffw6r-hello.drv\n",
            &REF[11..]
        );
        if let Some(k) = sig {
            s.push_str(&format!("Sig: {}\n", k.sign(&fp)));
        }
        s
    }

    #[test]
    fn signed_by_our_key_is_ok_with_everything_nix_recorded() {
        let k = key("cache-1");
        let p = StorePath::parse(PATH).unwrap();
        match classify(&p, &narinfo(Some(&k), HASH), &[k.public_key()]) {
            Outcome::Ok { drv, output } => {
                assert_eq!(drv.unwrap().as_str(), "/nix/store/76w21n1f03fs5kw8fnffphx7qrqffw6r-hello.drv");
                assert_eq!(output.nar_size, 120);
                assert_eq!(output.references.as_slice().iter().map(|r| r.as_str()).collect::<Vec<_>>(), [REF]);
                assert_eq!(output.nar_hash, NarHash::parse(HASH).unwrap());
            }
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn unsigned_other_key_edited_truncated_and_wrong_path_are_refused() {
        let k = key("cache-1");
        let other = key("other-1");
        let p = StorePath::parse(PATH).unwrap();
        let keys = [k.public_key()];
        assert!(matches!(classify(&p, &narinfo(None, HASH), &keys), Outcome::Unsigned));
        assert!(matches!(classify(&p, &narinfo(Some(&other), HASH), &keys), Outcome::Unsigned));
        let edited = narinfo(Some(&k), "sha256:0000000000000000000000000000000000000000000000000000");
        assert!(matches!(classify(&p, &edited, &keys), Outcome::Invalid(_)), "{:?}", classify(&p, &edited, &keys));
        let full = narinfo(Some(&k), HASH);
        assert!(matches!(classify(&p, &full[..40], &keys), Outcome::Invalid(_)));
        let q = StorePath::parse("/nix/store/00000000000000000000000000000000-hello").unwrap();
        assert!(matches!(classify(&q, &full, &keys), Outcome::Invalid(_)));
    }

    #[test]
    fn without_a_readable_drv_the_output_goes_unnamed_without_derivation() {
        let k = key("cache-1");
        let p = StorePath::parse(PATH).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let loc = StoreLocation::from_uri(&format!("local?root={}", dir.path().display()), None);
        match named(classify(&p, &narinfo(Some(&k), HASH), &[k.public_key()]), &loc) {
            Outcome::Ok { drv: None, output } => assert!(output.output_name.is_none()),
            o => panic!("{o:?}"),
        }
    }
}
