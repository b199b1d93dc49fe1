use std::collections::BTreeSet;

use serde_json::json;

use crate::client::Ctx;
use crate::fixtures::{attest, builder, nar_hash, store_path, Out};
use crate::{ensure, ensure_eq, TestResult};

pub fn attestations_page_newest_first(ctx: &Ctx) -> TestResult {
    let b = builder(ctx, 1)?;
    let mut expected = Vec::new();
    // 25 attestations in 5 submissions, so several share a timestamp.
    for round in 0..5 {
        let outs: Vec<Out> = (0..5).map(|i| Out::new(&store_path(&format!("pg{round}-{i}")), nar_hash())).collect();
        attest(ctx, &b, None, &outs.iter().collect::<Vec<_>>())?;
        expected.extend(outs.iter().map(|o| o.path.as_str().to_owned()));
    }
    let mut seen = Vec::new();
    let mut times = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let q = match &cursor {
            Some(c) => format!("?limit=10&cursor={c}"),
            None => "?limit=10".into(),
        };
        let r = ctx.get(&format!("/v1/builders/{}/attestations{q}", b.name))?;
        r.expect(200)?;
        let v = r.json()?;
        let page = v["attestations"].as_array().ok_or("no attestations")?;
        pages += 1;
        for a in page {
            ensure_eq!(a["builder"], json!(b.name), "builder of a listed attestation");
            seen.push(a["output_path"].as_str().unwrap_or_default().to_owned());
            times.push(a["submitted_at"].as_str().unwrap_or_default().to_owned());
        }
        match v["next_cursor"].as_str() {
            Some(c) => {
                ensure_eq!(page.len(), 10, "a page with a next cursor is full");
                cursor = Some(c.to_owned());
            }
            None => break,
        }
        ensure!(pages < 10, "pagination does not end");
    }
    ensure_eq!(pages, 3, "pages of 10 for 25");
    ensure_eq!(seen.len(), 25, "every attestation once");
    ensure_eq!(seen.iter().collect::<BTreeSet<_>>(), expected.iter().collect::<BTreeSet<_>>(), "the same set");
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    ensure_eq!(times, sorted, "newest first");
    let default = ctx.get(&format!("/v1/builders/{}/attestations", b.name))?.json()?;
    ensure_eq!(default["attestations"].as_array().map(|a| a.len()), Some(25), "default limit holds all 25");
    ensure_eq!(default["next_cursor"], json!(null), "no cursor after the last page");
    Ok(())
}

pub fn page_parameters_are_validated(ctx: &Ctx) -> TestResult {
    let b = builder(ctx, 1)?;
    let base = format!("/v1/builders/{}/attestations", b.name);
    for q in ["?limit=0", "?limit=1001", "?limit=abc", "?limit=-1", "?cursor=!!", "?cursor=bm9wZQ"] {
        ctx.get(&format!("{base}{q}"))?.expect_error(400, "invalid_request")?;
    }
    let r = ctx.get(&format!("{base}?limit=1000"))?;
    r.expect(200)?;
    ensure_eq!(r.json()?, json!({"attestations": [], "next_cursor": null}), "empty builder");
    Ok(())
}
