use serde_json::json;

use crate::client::Ctx;
use crate::fixtures::{
    assert_unattested, attest, builder, counts, drv_path, nar_hash, store_path, submission, submit, Out,
};
use crate::{ensure, ensure_eq, TestResult};

pub fn submitted_attestations_are_returned(ctx: &Ctx) -> TestResult {
    let b = builder(ctx, 1)?;
    let drv = drv_path("hello");
    let dep = store_path("dep");
    let path = store_path("hello");
    let out = Out::new(&path, nar_hash()).size(4242).refs(&[path.clone(), dep.clone()]);
    attest(ctx, &b, Some(&drv), &[&out])?;
    let r = ctx.get(&format!("/v1/outputs/{}", path.basename()))?;
    r.expect(200)?;
    let v = r.json()?;
    ensure_eq!(v["output_path"], json!(path.as_str()), "output_path");
    ensure_eq!(v["status"], json!("one_builder"), "status");
    let a = &v["attestations"][0];
    let mut refs = vec![path.as_str(), dep.as_str()];
    refs.sort();
    let expected = json!({
        "builder": b.name,
        "drv_path": drv.as_str(),
        "output_name": "out",
        "output_path": path.as_str(),
        "nar_hash": out.hash.to_string(),
        "nar_size": 4242,
        "references": refs,
        "signature": b.key().sign(&out.fingerprint()).to_string(),
        "submitted_at": a["submitted_at"],
        "log_index": a["log_index"],
    });
    ensure_eq!(a, &expected, "attestation");
    ensure!(a["log_index"].is_u64(), "log_index is the attestation's index in the log: {a}");
    let at = a["submitted_at"].as_str().ok_or("no submitted_at")?;
    ensure!(at.ends_with('Z') && at.len() >= 20, "submitted_at not RFC 3339 UTC: {at}");
    Ok(())
}

pub fn large_submissions_are_stored_whole(ctx: &Ctx) -> TestResult {
    // About 3 MB of JSON, under the 4 MiB limit: more than one database parameter
    // may hold on some platforms (D1 takes at most 2,000,000 bytes per string).
    let b = builder(ctx, 1)?;
    let drv = drv_path("large");
    let refs: Vec<_> = (0..8).map(|i| store_path(&format!("large-dependency-with-a-long-name-{i}"))).collect();
    let outs: Vec<Out> = (0..3000)
        .map(|i| Out::new(&store_path(&format!("large-{i}")), nar_hash()).named(&format!("out{i}")).refs(&refs))
        .collect();
    let outputs: Vec<_> = outs.iter().map(|o| o.signed(b.key())).collect();
    let body = submission(Some(&drv), outputs);
    let size = serde_json::to_vec(&body).map_err(|e| e.to_string())?.len();
    ensure!(size > 2_500_000 && size < 4 << 20, "body of {size} bytes");
    let r = ctx.post_json("/v1/attestations", Some(&b.token), &body)?;
    r.expect(201)?;
    ensure_eq!(counts(&r)?, json!({"stored": 3000, "duplicates": 0}), "counts");
    let v = ctx.get(&format!("/v1/derivations/{}", drv.as_store_path().basename()))?.json()?;
    ensure_eq!(v["outputs"].as_object().map(|o| o.len()), Some(3000), "outputs of the derivation");
    ensure_eq!(v["outputs"]["out2999"]["output_path"], json!(outs[2999].path.as_str()), "the last output");
    let paths: Vec<&str> = outs.iter().map(|o| o.path.as_str()).collect();
    let v = ctx.post_json("/v1/status", None, &json!({ "paths": paths }))?.json()?;
    ensure!(
        paths.iter().all(|p| v[*p]["status"] == json!("one_builder")),
        "every path is attested once in the bulk status"
    );
    Ok(())
}

pub fn duplicates_count_once(ctx: &Ctx) -> TestResult {
    let b = builder(ctx, 1)?;
    let path = store_path("dup");
    let out = Out::new(&path, nar_hash());
    attest(ctx, &b, None, &[&out])?;
    let r = submit(ctx, &b, None, &[&out])?;
    r.expect(200)?;
    ensure_eq!(counts(&r)?, json!({"stored": 0, "duplicates": 1}), "resubmission");
    // Twice in one request: one stored, one duplicate.
    let p2 = store_path("dup2");
    let o2 = Out::new(&p2, nar_hash());
    let r = submit(ctx, &b, None, &[&o2, &o2])?;
    r.expect(201)?;
    ensure_eq!(counts(&r)?, json!({"stored": 1, "duplicates": 1}), "twice in one request");
    // Mixed: one new, one known.
    let p3 = store_path("dup3");
    let r = submit(ctx, &b, None, &[&out, &Out::new(&p3, nar_hash())])?;
    r.expect(201)?;
    ensure_eq!(counts(&r)?, json!({"stored": 1, "duplicates": 1}), "mixed");
    let v = ctx.get(&format!("/v1/outputs/{}", path.basename()))?.json()?;
    ensure_eq!(v["attestations"].as_array().map(|a| a.len()), Some(1), "attestations after resubmission");
    // Another hash from the same builder is a second attestation but still one builder.
    attest(ctx, &b, None, &[&Out::new(&path, nar_hash())])?;
    let s = ctx.post_json("/v1/status", None, &json!({"paths": [path.as_str()]}))?.json()?;
    ensure_eq!(s[path.as_str()], json!({"status": "one_builder", "builders": 1, "distinct_hashes": 2}), "status");
    Ok(())
}

pub fn any_registered_key_may_sign(ctx: &Ctx) -> TestResult {
    let b = builder(ctx, 2)?;
    let (p1, p2) = (store_path("k1"), store_path("k2"));
    let (o1, o2) = (Out::new(&p1, nar_hash()), Out::new(&p2, nar_hash()));
    let body = submission(None, vec![o1.signed(&b.keys[0]), o2.signed(&b.keys[1])]);
    let r = ctx.post_json("/v1/attestations", Some(&b.token), &body)?;
    r.expect(201)?;
    ensure_eq!(counts(&r)?, json!({"stored": 2, "duplicates": 0}), "two keys");
    Ok(())
}

pub fn missing_unknown_or_revoked_tokens_are_401(ctx: &Ctx) -> TestResult {
    let b = builder(ctx, 1)?;
    let path = store_path("auth");
    let body = submission(None, vec![Out::new(&path, nar_hash()).signed(b.key())]);
    ctx.post_json("/v1/attestations", None, &body)?.expect_error(401, "unauthorized")?;
    let forged = format!("{}x", b.token);
    let shape_only = "nhc_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    for t in ["garbage", forged.as_str(), shape_only, &ctx.admin_token] {
        ctx.post_json("/v1/attestations", Some(t), &body)?.expect_error(401, "unauthorized")?;
    }
    ctx.post(&format!("/v1/admin/builders/{}/revoke", b.name), Some(&ctx.admin_token), b"")?.expect(200)?;
    ctx.post_json("/v1/attestations", Some(&b.token), &body)?.expect_error(401, "unauthorized")?;
    assert_unattested(ctx, &path)
}

pub fn another_builders_key_is_403(ctx: &Ctx) -> TestResult {
    let (a, b) = (builder(ctx, 1)?, builder(ctx, 1)?);
    let path = store_path("foreign");
    // A valid signature by b's key, sent with a's token.
    let body = submission(None, vec![Out::new(&path, nar_hash()).signed(b.key())]);
    ctx.post_json("/v1/attestations", Some(&a.token), &body)?.expect_error(403, "unknown_key")?;
    assert_unattested(ctx, &path)
}

pub fn bad_signatures_are_400(ctx: &Ctx) -> TestResult {
    let b = builder(ctx, 1)?;
    let path = store_path("badsig");
    let out = Out::new(&path, nar_hash());
    // Signed over other values (another size).
    let other = Out::new(&path, out.hash).size(out.size + 1);
    let body = submission(None, vec![out.json(&b.key().sign(&other.fingerprint()).to_string())]);
    ctx.post_json("/v1/attestations", Some(&b.token), &body)?.expect_error(400, "bad_signature")?;
    // Random bytes under the right key name.
    let junk = format!("{}:{}", b.key().name(), base64_of(&crate::fixtures::random::<64>()));
    let body = submission(None, vec![out.json(&junk)]);
    ctx.post_json("/v1/attestations", Some(&b.token), &body)?.expect_error(400, "bad_signature")?;
    // Not a signature at all.
    let body = submission(None, vec![out.json("nonsense")]);
    ctx.post_json("/v1/attestations", Some(&b.token), &body)?.expect_error(400, "invalid_request")?;
    assert_unattested(ctx, &path)
}

pub fn a_bad_output_rejects_the_whole_submission(ctx: &Ctx) -> TestResult {
    let b = builder(ctx, 1)?;
    let (p1, p2, p3) = (store_path("aon1"), store_path("aon2"), store_path("aon3"));
    let good1 = Out::new(&p1, nar_hash()).named("out").signed(b.key());
    let good2 = Out::new(&p2, nar_hash()).named("dev").signed(b.key());
    let bad = Out::new(&p3, nar_hash()).named("lib");
    let bad = bad.json(&b.key().sign("something else").to_string());
    let drv = drv_path("aon");
    let body = submission(Some(&drv), vec![good1, good2, bad]);
    ctx.post_json("/v1/attestations", Some(&b.token), &body)?.expect_error(400, "bad_signature")?;
    for p in [&p1, &p2, &p3] {
        assert_unattested(ctx, p)?;
    }
    ctx.get(&format!("/v1/derivations/{}", drv.as_store_path().basename()))?.expect_error(404, "not_found")?;
    Ok(())
}

pub fn hash_forms_are_canonicalised(ctx: &Ctx) -> TestResult {
    let b = builder(ctx, 1)?;
    let hash = nar_hash();
    let hex: String = hash.as_bytes().iter().map(|x| format!("{x:02x}")).collect();
    for (i, form) in [format!("sha256:{hex}"), hash.to_sri()].into_iter().enumerate() {
        let path = store_path(&format!("form{i}"));
        let out = Out::new(&path, hash);
        let mut v = out.signed(b.key());
        v["nar_hash"] = json!(form);
        let r = ctx.post_json("/v1/attestations", Some(&b.token), &submission(None, vec![v]))?;
        r.expect(201)?;
        let got = ctx.get(&format!("/v1/outputs/{}", path.basename()))?.json()?;
        ensure_eq!(got["attestations"][0]["nar_hash"], json!(hash.to_string()), "canonical form of {form}");
    }
    Ok(())
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
