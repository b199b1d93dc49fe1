//! Limits on what one builder can make others read (issue 10, findings 3 and 7): at
//! most 4 distinct NAR hashes per (builder, output path), the output view in pages,
//! and tokens checked before a body is read.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::client::Ctx;
use crate::fixtures::{assert_unattested, attest, builder, counts, nar_hash, store_path, submit, Out};
use crate::{ensure, ensure_eq, TestResult};

/// The default cap of every deployment.
const MAX_HASHES: usize = 4;

pub fn a_fifth_distinct_hash_is_refused_whole(ctx: &Ctx) -> TestResult {
    let (b, other) = (builder(ctx, 1)?, builder(ctx, 1)?);
    let path = store_path("capped");
    let outs: Vec<Out> = (0..MAX_HASHES).map(|_| Out::new(&path, nar_hash())).collect();
    // Four distinct hashes, in two submissions.
    attest(ctx, &b, None, &[&outs[0], &outs[1], &outs[2]])?;
    attest(ctx, &b, None, &[&outs[3]])?;
    // A fifth is refused, and with it everything else of that submission.
    let bystander = store_path("capped-bystander");
    let fifth = Out::new(&path, nar_hash());
    let r = submit(ctx, &b, None, &[&Out::new(&bystander, nar_hash()), &outs[0], &fifth])?;
    let v = r.expect_error(422, "too_many_hashes")?;
    let message = v["message"].as_str().unwrap_or_default();
    ensure!(message.contains(path.as_str()), "the error does not name the path: {message}");
    assert_unattested(ctx, &bystander)?;
    // Known hashes stay duplicates, also at the cap.
    let r = submit(ctx, &b, None, &outs.iter().collect::<Vec<_>>())?;
    r.expect(200)?;
    ensure_eq!(counts(&r)?, json!({"stored": 0, "duplicates": MAX_HASHES}), "resubmission at the cap");
    // The cap is per builder: another builder still adds its hash.
    attest(ctx, &other, None, &[&fifth])?;
    let v = ctx.get(&format!("/v1/outputs/{}", path.basename()))?.json()?;
    ensure_eq!(v["attestations"].as_array().map(Vec::len), Some(MAX_HASHES + 1), "attestations stored");
    let mine = v["attestations"].as_array().into_iter().flatten().filter(|a| a["builder"] == json!(b.name)).count();
    ensure_eq!(mine, MAX_HASHES, "the capped builder's attestations");
    // Five distinct hashes in one submission of a new path: nothing stored.
    let fresh = store_path("capped-fresh");
    let five: Vec<Out> = (0..=MAX_HASHES).map(|_| Out::new(&fresh, nar_hash())).collect();
    submit(ctx, &b, None, &five.iter().collect::<Vec<_>>())?.expect_error(422, "too_many_hashes")?;
    assert_unattested(ctx, &fresh)?;
    // The same hash five times is one hash.
    let same = Out::new(&fresh, nar_hash());
    let r = submit(ctx, &b, None, &[&same, &same, &same, &same, &same])?;
    r.expect(201)?;
    ensure_eq!(counts(&r)?, json!({"stored": 1, "duplicates": 4}), "one hash five times");
    Ok(())
}

/// Seven attestations of one path: four hashes of one builder, three of another.
pub fn output_attestations_come_in_pages(ctx: &Ctx) -> TestResult {
    let (a, b) = (builder(ctx, 1)?, builder(ctx, 1)?);
    let path = store_path("paged");
    let shared = nar_hash();
    let a_outs: Vec<Out> =
        std::iter::once(shared).chain((1..4).map(|_| nar_hash())).map(|h| Out::new(&path, h)).collect();
    let b_outs: Vec<Out> =
        std::iter::once(shared).chain((1..3).map(|_| nar_hash())).map(|h| Out::new(&path, h)).collect();
    attest(ctx, &a, None, &a_outs.iter().collect::<Vec<_>>())?;
    // One by one, so that they have times of their own.
    for o in &b_outs {
        attest(ctx, &b, None, &[o])?;
    }
    let base = format!("/v1/outputs/{}", path.basename());
    let summary = |v: &Value| {
        (v["output_path"].clone(), v["status"].clone(), v["builders"].clone(), v["distinct_hashes"].clone())
    };
    let expected = (json!(path.as_str()), json!("partially_reproduced"), json!(2), json!(6));
    let mut seen = Vec::new();
    let mut times = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("?limit=3&cursor={c}"),
            None => "?limit=3".into(),
        };
        let r = ctx.get(&format!("{base}{q}"))?;
        r.expect(200)?;
        let v = r.json()?;
        ensure_eq!(summary(&v), expected, "the summary on every page counts every attestation");
        ensure_eq!(v["total_attestations"], json!(7), "total_attestations");
        let page = v["attestations"].as_array().ok_or("no attestations")?;
        sizes.push(page.len());
        for x in page {
            seen.push((x["builder"].as_str().unwrap_or_default().to_owned(), x["nar_hash"].to_string()));
            times.push(x["submitted_at"].as_str().unwrap_or_default().to_owned());
        }
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        ensure!(sizes.len() < 10, "pagination does not end");
    }
    ensure_eq!(sizes, vec![3, 3, 1], "pages of 3 for 7");
    // One page that holds them all (the summary counted from the page itself) says the same.
    let whole = ctx.get(&base)?;
    whole.expect(200)?;
    let v = whole.json()?;
    ensure_eq!(summary(&v), expected, "the summary of a page that holds every attestation");
    ensure_eq!(v["total_attestations"], json!(7), "total_attestations on one page");
    ensure_eq!(v["attestations"].as_array().map(Vec::len), Some(7), "one page of 7");
    let distinct: BTreeSet<_> = seen.iter().collect();
    ensure_eq!(distinct.len(), 7, "every attestation exactly once");
    let mut sorted = times.clone();
    sorted.sort();
    ensure_eq!(times, sorted, "oldest first");
    // Without a limit: all of them (the default is 100), and no cursor.
    let v = ctx.get(&base)?.json()?;
    ensure_eq!(v["attestations"].as_array().map(Vec::len), Some(7), "the default page");
    ensure_eq!(v["next_cursor"], json!(null), "no cursor after the last page");
    // A page that exactly ends the list has no cursor either.
    let v = ctx.get(&format!("{base}?limit=7"))?.json()?;
    ensure_eq!(v["next_cursor"], json!(null), "a full last page");
    let v = ctx.get(&format!("{base}?limit=6"))?.json()?;
    let c = v["next_cursor"].as_str().ok_or("no cursor after 6 of 7")?;
    let last = ctx.get(&format!("{base}?limit=6&cursor={c}"))?.json()?;
    ensure_eq!(last["attestations"].as_array().map(Vec::len), Some(1), "the rest after 6");
    Ok(())
}

pub fn output_page_parameters_are_validated(ctx: &Ctx) -> TestResult {
    let b = builder(ctx, 1)?;
    let path = store_path("paged-params");
    attest(ctx, &b, None, &[&Out::new(&path, nar_hash())])?;
    let base = format!("/v1/outputs/{}", path.basename());
    for q in ["?limit=0", "?limit=1001", "?limit=abc", "?limit=-1", "?limit=1.5", "?cursor=!!", "?cursor=bm9wZQ"] {
        ctx.get(&format!("{base}{q}"))?.expect_error(400, "invalid_request")?;
    }
    let v = ctx.get(&format!("{base}?limit=1000"))?.json()?;
    ensure_eq!(v["attestations"].as_array().map(Vec::len), Some(1), "limit=1000");
    let v = ctx.get(&format!("{base}?limit="))?.json()?;
    ensure_eq!(v["attestations"].as_array().map(Vec::len), Some(1), "an empty limit is the default");
    // Still 404 for a path nobody attested, whatever the page.
    let nobody = store_path("paged-nobody");
    ctx.get(&format!("/v1/outputs/{}?limit=5", nobody.basename()))?.expect_error(404, "not_found")?;
    Ok(())
}

/// A refused token is answered before the body is read: 401, not 413, for a body over
/// the limit (and the server never has to take it in).
pub fn bad_tokens_are_refused_before_the_body(ctx: &Ctx) -> TestResult {
    let filler = "a".repeat(5 * 1024 * 1024);
    let body = format!("{{\"outputs\": [], \"padding\": \"{filler}\"}}");
    let shape_only = "nhc_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    for token in [None, Some("garbage"), Some(shape_only)] {
        ctx.post_large("/v1/attestations", token, body.as_bytes())?.expect_error(401, "unauthorized")?;
    }
    let body = format!("{{\"name\": \"x\", \"public_keys\": [], \"padding\": \"{filler}\"}}");
    ctx.post_large("/v1/admin/builders", Some("not-the-admin-token"), body.as_bytes())?
        .expect_error(401, "unauthorized")?;
    Ok(())
}
