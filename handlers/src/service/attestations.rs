//! Submitting attestations: checking a submission against its builder's keys, then
//! storing it.

use std::collections::{BTreeMap, HashMap, HashSet};

use nhc_core::api::{LogReceipt, SubmitRequest, SubmitResponse, MAX_NAR_SIZE};
use nhc_core::{fingerprint, verify_all, NarHash, OutputName, PublicKey, Signature, StorePath};
use nhc_storage::{NewAttestation, Submission, TokenRecord};

use crate::error::ApiError;
use crate::offload::cpu_bound;
use crate::state::AppState;

/// Distinct NAR hashes one builder may store for one output path unless the deployment
/// says otherwise. A builder that rebuilds a path and gets another hash has a second
/// (a non-reproducible build, the diff-hook's check), a few more are plausible; beyond
/// that the rows only grow what every reader of the path has to load.
pub const DEFAULT_MAX_HASHES_PER_PATH: usize = 4;

/// Verifies and stores a builder's submission: all of it or nothing.
pub async fn verify_and_store(
    state: &AppState,
    builder: &TokenRecord,
    req: SubmitRequest,
) -> Result<SubmitResponse, ApiError> {
    let n = req.outputs.len();
    let (submission, leaf_hashes) = verify_offloaded(builder, req, state.now()).await?;
    check_hashes_per_path(state, &submission).await?;
    let counts = state.store.insert_attestations(submission).await?;
    tracing::debug!(builder = %builder.builder, outputs = n, stored = counts.stored, "submission");
    let log: Vec<(LogReceipt, nhc_tlog::Hash)> = counts
        .log
        .into_iter()
        .filter_map(|p| {
            let hash = *leaf_hashes.get(&(p.output_path.clone(), p.nar_hash))?;
            let leaf_hash = nhc_tlog::hash_hex(&hash);
            Some((LogReceipt { output_path: p.output_path, nar_hash: p.nar_hash, index: p.index, leaf_hash }, hash))
        })
        .collect();
    // Only where this process runs its own sequencer (nhc-server): the Worker builds a
    // state per request, so what it offered would be dropped unread.
    if state.log.is_some() && !state.log_sequence_on_read {
        state.log_feed.offer(log.iter().map(|(r, h)| (r.index, *h)));
    }
    let log = log.into_iter().map(|(r, _)| r).collect();
    Ok(SubmitResponse { stored: counts.stored, duplicates: counts.duplicates, log })
}

/// Each attestation's leaf hash, by path and NAR hash: the receipts' (storage only
/// numbers the entries), and the sequencer's (`service::log::LeafFeed`).
type LeafHashes = HashMap<(StorePath, NarHash), nhc_tlog::Hash>;

/// [`verify`] and the leaf hashes, off the async threads for a large submission
/// (offload.rs).
async fn verify_offloaded(
    builder: &TokenRecord,
    req: SubmitRequest,
    now: i64,
) -> Result<(Submission, LeafHashes), ApiError> {
    let owner = builder.clone();
    cpu_bound(req.outputs.len(), move || {
        let s = verify(&owner, req, now)?;
        // Of two outputs with one path and hash, storage keeps the first: so do receipts.
        let mut hashes = LeafHashes::new();
        for a in &s.attestations {
            hashes
                .entry((a.output_path.clone(), a.nar_hash))
                .or_insert_with(|| nhc_tlog::leaf_hash(&crate::service::log::leaf(&s.builder, a, s.submitted_at)));
        }
        Ok((s, hashes))
    })
    .await?
}

/// Refuses a submission that would leave its builder with more than the allowed
/// distinct NAR hashes for one output path. Hashes the builder already reported are
/// duplicates, never refused. One query for all paths, linear in the submission.
///
/// Checked before the write, not in its transaction: concurrent submissions of one
/// builder may each pass and together exceed the limit, by at most what those
/// submissions add (their number is bounded by the submit class's concurrency and the
/// builder's rate on nhc-server).
async fn check_hashes_per_path(state: &AppState, submission: &Submission) -> Result<(), ApiError> {
    let max = state.max_hashes_per_path;
    if max == 0 {
        return Ok(());
    }
    // The submission's hashes per path, paths in the order they came.
    let mut order: Vec<&StorePath> = Vec::new();
    let mut submitted: HashMap<&StorePath, HashSet<NarHash>> = HashMap::new();
    for a in &submission.attestations {
        submitted
            .entry(&a.output_path)
            .or_insert_with(|| {
                order.push(&a.output_path);
                HashSet::new()
            })
            .insert(a.nar_hash);
    }
    let paths: Vec<StorePath> = order.iter().map(|p| (*p).clone()).collect();
    let mut stored: HashMap<StorePath, HashSet<NarHash>> = HashMap::new();
    for v in state.store.builder_votes_of_paths(&submission.builder, &paths).await? {
        stored.entry(v.output_path).or_default().insert(v.nar_hash);
    }
    let none = HashSet::new();
    for path in order {
        let known = stored.get(path).unwrap_or(&none);
        let new = submitted[path].iter().filter(|h| !known.contains(h)).count();
        if new > 0 && known.len() + new > max {
            return Err(ApiError::TooManyHashes(format!(
                "{path}: builder {} would have {} distinct NAR hashes for this path ({} stored, {new} new); \
                 at most {max} are accepted per builder and path",
                submission.builder,
                known.len() + new,
                known.len(),
            )));
        }
    }
    Ok(())
}

/// Checks a submission against the submitting builder: every signature made by one
/// of its registered keys over the output's fingerprint. One bad output rejects all.
pub fn verify(builder: &TokenRecord, req: SubmitRequest, now: i64) -> Result<Submission, ApiError> {
    if req.outputs.is_empty() {
        return Err(ApiError::InvalidRequest("outputs: at least one output is required".into()));
    }
    let mut seen: BTreeMap<&OutputName, &StorePath> = BTreeMap::new();
    let mut checks = Vec::with_capacity(req.outputs.len());
    for (i, out) in req.outputs.iter().enumerate() {
        match (&req.drv_path, &out.output_name) {
            (Some(_), None) => {
                return Err(ApiError::InvalidRequest(format!(
                    "outputs[{i}].output_name: required when drv_path is given"
                )))
            }
            (Some(_), Some(name)) => {
                if let Some(prev) = seen.insert(name, &out.output_path) {
                    if *prev != out.output_path {
                        return Err(ApiError::InvalidRequest(format!(
                            "outputs[{i}].output_name: output {name} is given two different paths"
                        )));
                    }
                }
            }
            (None, _) => {}
        }
        if out.nar_size > MAX_NAR_SIZE {
            return Err(ApiError::InvalidRequest(format!("outputs[{i}].nar_size: larger than 2^53 - 1")));
        }
        let key: &PublicKey =
            builder.public_keys.iter().find(|k| k.name() == out.signature.key_name()).ok_or_else(|| {
                ApiError::UnknownKey(format!(
                    "outputs[{i}].signature: key {} is not registered to builder {}",
                    out.signature.key_name(),
                    builder.builder
                ))
            })?;
        let fp = fingerprint(&out.output_path, &out.nar_hash, out.nar_size, &out.references);
        checks.push((key, fp));
    }
    // All signatures at once: batch verification is much cheaper per signature.
    let items: Vec<(&PublicKey, &str, &Signature)> =
        checks.iter().zip(&req.outputs).map(|((k, fp), out)| (*k, fp.as_str(), &out.signature)).collect();
    if let Err(i) = verify_all(&items) {
        let out = &req.outputs[i];
        return Err(ApiError::BadSignature(format!(
            "outputs[{i}].signature: does not verify with key {} over the fingerprint of {}",
            out.signature.key_name(),
            out.output_path
        )));
    }
    let drv_path = req.drv_path;
    Ok(Submission {
        builder: builder.builder.clone(),
        submitted_at: now,
        attestations: req
            .outputs
            .into_iter()
            .map(|o| NewAttestation {
                output_path: o.output_path,
                nar_hash: o.nar_hash,
                nar_size: o.nar_size,
                references: o.references,
                signature: o.signature,
                drv_path: drv_path.clone(),
                output_name: o.output_name,
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nhc_core::api::SubmittedOutput;
    use nhc_core::fingerprint::References;
    use nhc_core::{BuilderName, DrvPath, KeyName, NarHash, SecretKey};

    fn key(name: &str, seed: u8) -> SecretKey {
        SecretKey::from_seed(KeyName::parse(name).unwrap(), [seed; 32])
    }

    fn builder(keys: &[&SecretKey]) -> TokenRecord {
        TokenRecord {
            builder: BuilderName::parse("b1").unwrap(),
            secret_hash: String::new(),
            revoked: false,
            public_keys: keys.iter().map(|k| k.public_key()).collect(),
        }
    }

    fn output(k: &SecretKey, name: Option<&str>, path: &str, size: u64) -> SubmittedOutput {
        let output_path = StorePath::parse(path).unwrap();
        let nar_hash = NarHash::from_bytes([3; 32]);
        let references = References::default();
        let signature = k.sign(&fingerprint(&output_path, &nar_hash, size, &references));
        SubmittedOutput {
            output_name: name.map(|n| OutputName::parse(n).unwrap()),
            output_path,
            nar_hash,
            nar_size: size,
            references,
            signature,
        }
    }

    /// Two outputs with one path and hash (a different size, both signed): storage keeps
    /// the first, and the receipt's leaf hash is the first one's, not the last one's.
    #[test]
    fn a_repeated_output_gets_the_receipt_of_the_first() {
        let k = key("k1", 1);
        let b = builder(&[&k]);
        let path = format!("/nix/store/{}-twice", "a".repeat(32));
        let req =
            SubmitRequest { drv_path: None, outputs: vec![output(&k, None, &path, 10), output(&k, None, &path, 11)] };
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (s, hashes) = rt.block_on(verify_offloaded(&b, req, 7)).unwrap();
        let first = nhc_tlog::leaf_hash(&crate::service::log::leaf(&s.builder, &s.attestations[0], 7));
        let last = nhc_tlog::leaf_hash(&crate::service::log::leaf(&s.builder, &s.attestations[1], 7));
        assert_ne!(first, last);
        assert_eq!(hashes.len(), 1);
        assert_eq!(hashes.values().next(), Some(&first));
    }

    /// A large submission's signatures are checked on another thread: the first poll
    /// of the check finds it still running (a thousand signatures take milliseconds),
    /// where an inline check would have finished within that poll. A small one is
    /// checked inline.
    #[test]
    fn large_submissions_are_verified_off_the_async_thread() {
        use std::future::Future;
        use std::task::Poll;
        let k = key("k1", 1);
        let b = builder(&[&k]);
        let request = |n: usize| SubmitRequest {
            drv_path: None,
            outputs: (0..n)
                .map(|i| {
                    let path = format!("/nix/store/{}-big-{i}", "a".repeat(32));
                    output(&k, None, &path, 10 + i as u64)
                })
                .collect(),
        };
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        for (n, offloaded) in [(crate::offload::OFFLOAD_MIN_UNITS - 1, false), (1000, true)] {
            let req = request(n);
            let (first_poll_pending, result) = rt.block_on(async {
                let mut check = std::pin::pin!(verify_offloaded(&b, req, 7));
                match std::future::poll_fn(|cx| Poll::Ready(check.as_mut().poll(cx))).await {
                    Poll::Ready(done) => (false, done),
                    Poll::Pending => (true, check.await),
                }
            });
            assert_eq!(first_poll_pending, offloaded, "{n} outputs");
            let (submission, leaf_hashes) = result.unwrap();
            assert_eq!((submission.attestations.len(), leaf_hashes.len()), (n, n));
        }
        // A bad signature is still found off the thread.
        let mut req = request(1000);
        req.outputs[999].nar_size += 1;
        let r = rt.block_on(verify_offloaded(&b, req, 7));
        assert!(matches!(r, Err(ApiError::BadSignature(m)) if m.starts_with("outputs[999]")));
    }

    const P1: &str = "/nix/store/mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello";
    const P2: &str = "/nix/store/s95kw5pf8cc8dh0giqsbdq679kffq196-hello-dev";
    const DRV: &str = "/nix/store/76w21n1f03fs5kw8fnffphx7qrqffw6r-hello.drv";

    #[test]
    fn accepts_signatures_of_any_registered_key() {
        let (k1, k2) = (key("k1", 1), key("k2", 2));
        let req = SubmitRequest {
            drv_path: Some(DrvPath::parse(DRV).unwrap()),
            outputs: vec![output(&k1, Some("out"), P1, 10), output(&k2, Some("dev"), P2, 20)],
        };
        let s = verify(&builder(&[&k1, &k2]), req, 42).unwrap();
        assert_eq!(s.attestations.len(), 2);
        assert_eq!(s.submitted_at, 42);
        assert_eq!(s.attestations[1].drv_path.as_ref().unwrap().as_str(), DRV);
    }

    #[test]
    fn rejects_unregistered_key_forgery_and_shape_errors() {
        let (k1, other) = (key("k1", 1), key("k2", 2));
        let b = builder(&[&k1]);
        let unknown = SubmitRequest { drv_path: None, outputs: vec![output(&other, None, P1, 10)] };
        assert!(matches!(verify(&b, unknown, 0), Err(ApiError::UnknownKey(_))));

        // A key with a registered name but other bytes: the signature does not verify.
        let impostor = key("k1", 9);
        let forged = SubmitRequest { drv_path: None, outputs: vec![output(&impostor, None, P1, 10)] };
        assert!(matches!(verify(&b, forged, 0), Err(ApiError::BadSignature(_))));

        // A valid signature over other values.
        let mut tampered = output(&k1, None, P1, 10);
        tampered.nar_size = 11;
        let req = SubmitRequest { drv_path: None, outputs: vec![output(&k1, None, P2, 10), tampered] };
        assert!(matches!(verify(&b, req, 0), Err(ApiError::BadSignature(m)) if m.starts_with("outputs[1]")));

        let empty = SubmitRequest { drv_path: None, outputs: vec![] };
        assert!(matches!(verify(&b, empty, 0), Err(ApiError::InvalidRequest(_))));

        let unnamed =
            SubmitRequest { drv_path: Some(DrvPath::parse(DRV).unwrap()), outputs: vec![output(&k1, None, P1, 10)] };
        assert!(matches!(verify(&b, unnamed, 0), Err(ApiError::InvalidRequest(_))));

        let twice = SubmitRequest {
            drv_path: Some(DrvPath::parse(DRV).unwrap()),
            outputs: vec![output(&k1, Some("out"), P1, 10), output(&k1, Some("out"), P2, 10)],
        };
        assert!(matches!(verify(&b, twice, 0), Err(ApiError::InvalidRequest(_))));
    }
}
