use serde_json::json;

use crate::client::Ctx;
use crate::fixtures::{attest, builder, drv_path, nar_hash, store_path, Out};
use crate::{ensure, ensure_eq, TestResult};

pub fn status_has_five_states(ctx: &Ctx) -> TestResult {
    let (a, b, c) = (builder(ctx, 1)?, builder(ctx, 1)?, builder(ctx, 1)?);
    let p: Vec<_> = (0..5).map(|i| store_path(&format!("st{i}"))).collect();
    let (h1, h2, h3) = (nar_hash(), nar_hash(), nar_hash());
    // p0 nobody; p1 a; p2 a=b; p3 a=b, c differs; p4 a, b, c all differ.
    attest(ctx, &a, None, &[&Out::new(&p[1], h1), &Out::new(&p[2], h1), &Out::new(&p[3], h1), &Out::new(&p[4], h1)])?;
    attest(ctx, &b, None, &[&Out::new(&p[2], h1), &Out::new(&p[3], h1), &Out::new(&p[4], h2)])?;
    attest(ctx, &c, None, &[&Out::new(&p[3], h2), &Out::new(&p[4], h3)])?;
    let expected = [
        ("no_builds", 0, 0),
        ("one_builder", 1, 1),
        ("reproduced", 2, 1),
        ("partially_reproduced", 3, 2),
        ("not_reproduced", 3, 3),
    ];
    let paths: Vec<&str> = p.iter().map(|x| x.as_str()).collect();
    let r = ctx.post_json("/v1/status", None, &json!({ "paths": paths }))?;
    r.expect(200)?;
    let s = r.json()?;
    for (path, (status, builders, hashes)) in p.iter().zip(expected) {
        ensure_eq!(
            s[path.as_str()],
            json!({"status": status, "builders": builders, "distinct_hashes": hashes}),
            "bulk status of {path}"
        );
        let one = ctx.get(&format!("/v1/outputs/{}", path.basename()))?;
        if status == "no_builds" {
            one.expect_error(404, "not_found")?;
        } else {
            one.expect(200)?;
            ensure_eq!(one.json()?["status"], json!(status), "output view status of {path}");
        }
    }
    Ok(())
}

pub fn bulk_status_answers_every_path(ctx: &Ctx) -> TestResult {
    let a = builder(ctx, 1)?;
    let known = store_path("known");
    attest(ctx, &a, None, &[&Out::new(&known, nar_hash())])?;
    let unknown: Vec<_> = (0..50).map(|i| store_path(&format!("unk{i}"))).collect();
    let mut paths: Vec<&str> = unknown.iter().map(|p| p.as_str()).collect();
    paths.push(known.as_str());
    paths.push(known.as_str());
    let s = ctx.post_json("/v1/status", None, &json!({ "paths": paths }))?.json()?;
    ensure_eq!(s.as_object().map(|o| o.len()), Some(51), "one entry per distinct path");
    ensure_eq!(s[known.as_str()]["status"], json!("one_builder"), "known path");
    for p in &unknown {
        ensure_eq!(s[p.as_str()], json!({"status": "no_builds", "builders": 0, "distinct_hashes": 0}), "{p}");
    }
    let empty = ctx.post_json("/v1/status", None, &json!({"paths": []}))?;
    empty.expect(200)?;
    ensure_eq!(empty.json()?, json!({}), "empty request");
    Ok(())
}

pub fn bulk_status_limits(ctx: &Ctx) -> TestResult {
    let many: Vec<String> = (0..10_000).map(|i| store_path(&format!("m{i}")).as_str().to_owned()).collect();
    let r = ctx.post_json("/v1/status", None, &json!({ "paths": many }))?;
    r.expect(200)?;
    ensure_eq!(r.json()?.as_object().map(|o| o.len()), Some(10_000), "10,000 paths answered");
    let mut too_many = many;
    too_many.push(store_path("one-more").as_str().to_owned());
    ctx.post_json("/v1/status", None, &json!({ "paths": too_many }))?.expect_error(400, "invalid_request")?;
    for bad in [json!({"paths": ["/nix/store/short"]}), json!({"paths": "x"}), json!({}), json!({"paths": [1]})] {
        ctx.post_json("/v1/status", None, &bad)?.expect_error(400, "invalid_request")?;
    }
    Ok(())
}

pub fn derivation_view_groups_outputs(ctx: &Ctx) -> TestResult {
    let (a, b, c) = (builder(ctx, 1)?, builder(ctx, 1)?, builder(ctx, 1)?);
    let drv = drv_path("multi");
    let (out, dev) = (store_path("multi"), store_path("multi-dev"));
    let (h_out, h_dev, h_dev2) = (nar_hash(), nar_hash(), nar_hash());
    let o = Out::new(&out, h_out).named("out");
    attest(ctx, &a, Some(&drv), &[&o, &Out::new(&dev, h_dev).named("dev").refs(std::slice::from_ref(&out))])?;
    attest(ctx, &b, Some(&drv), &[&o, &Out::new(&dev, h_dev2).named("dev").refs(std::slice::from_ref(&out))])?;
    // c attests `out` without naming the derivation: it still counts for the output path.
    attest(ctx, &c, None, &[&Out::new(&out, h_out).unnamed()])?;
    let base = drv.as_store_path().basename();
    for key in [base.to_owned(), base.trim_end_matches(".drv").to_owned()] {
        let r = ctx.get(&format!("/v1/derivations/{key}"))?;
        r.expect(200)?;
        let v = r.json()?;
        ensure_eq!(v["drv_path"], json!(drv.as_str()), "drv_path");
        let mut three = vec![a.name.clone(), b.name.clone(), c.name.clone()];
        three.sort();
        // c did not name the derivation: it attests the path, but does not claim the output.
        let mut two = vec![a.name.clone(), b.name.clone()];
        two.sort();
        ensure_eq!(
            v["outputs"]["out"],
            json!({"output_path": out.as_str(), "status": "reproduced",
                   "results": [{"nar_hash": h_out.to_string(), "builders": three}], "claimed_by": two}),
            "out"
        );
        let dev_v = &v["outputs"]["dev"];
        ensure_eq!(dev_v["status"], json!("not_reproduced"), "dev status");
        ensure_eq!(dev_v["output_path"], json!(dev.as_str()), "dev path");
        ensure_eq!(dev_v["results"].as_array().map(|r| r.len()), Some(2), "dev results");
        ensure_eq!(v["outputs"].as_object().map(|o| o.len()), Some(2), "outputs");
        ensure_eq!(v["disputed"], json!({}), "disputed");
    }
    ctx.get(&format!("/v1/derivations/{}", drv_path("none").as_store_path().basename()))?
        .expect_error(404, "not_found")?;
    Ok(())
}

pub fn fixed_output_paths_keep_every_deriver(ctx: &Ctx) -> TestResult {
    let (a, b) = (builder(ctx, 1)?, builder(ctx, 1)?);
    let (d1, d2) = (drv_path("src-fetchurl"), drv_path("src-fetchgit"));
    let path = store_path("source");
    let h = nar_hash();
    attest(ctx, &a, Some(&d1), &[&Out::new(&path, h)])?;
    attest(ctx, &b, Some(&d2), &[&Out::new(&path, h)])?;
    for d in [&d1, &d2] {
        let v = ctx.get(&format!("/v1/derivations/{}", d.as_store_path().basename()))?.json()?;
        ensure_eq!(v["outputs"]["out"]["output_path"], json!(path.as_str()), "path of {d}");
        ensure_eq!(v["outputs"]["out"]["status"], json!("reproduced"), "status via {d}");
    }
    let v = ctx.get(&format!("/v1/outputs/{}", path.basename()))?.json()?;
    let drvs: Vec<_> =
        v["attestations"].as_array().ok_or("no attestations")?.iter().map(|a| a["drv_path"].clone()).collect();
    ensure!(drvs.contains(&json!(d1.as_str())) && drvs.contains(&json!(d2.as_str())), "derivers lost: {drvs:?}");
    Ok(())
}

pub fn one_builder_cannot_point_a_derivation_at_another_path(ctx: &Ctx) -> TestResult {
    let (a, b, m) = (builder(ctx, 1)?, builder(ctx, 1)?, builder(ctx, 1)?);
    let (x, y) = (builder(ctx, 1)?, builder(ctx, 1)?);
    let drv = drv_path("pointed");
    let (real, popular) = (store_path("pointed"), store_path("popular"));
    let (h_a, h_b, h_pop) = (nar_hash(), nar_hash(), nar_hash());
    attest(ctx, &a, Some(&drv), &[&Out::new(&real, h_a).named("out")])?;
    attest(ctx, &b, Some(&drv), &[&Out::new(&real, h_b).named("out")])?;
    let pop = Out::new(&popular, h_pop);
    attest(ctx, &x, None, &[&pop.clone().unnamed()])?;
    attest(ctx, &y, None, &[&pop.clone().unnamed()])?;
    // m attests the popular path too, and names it as this derivation's `out`.
    attest(ctx, &m, Some(&drv), &[&pop.named("out")])?;
    let v = ctx.get(&format!("/v1/derivations/{}", drv.as_store_path().basename()))?.json()?;
    ensure_eq!(v["outputs"]["out"]["output_path"], json!(real.as_str()), "the path two builders named");
    ensure_eq!(v["outputs"]["out"]["status"], json!("not_reproduced"), "status of the real path");
    Ok(())
}

/// The derivation and output name of an attestation are not signed: a builder can
/// name outputs of any derivation. An output name only a minority of the
/// derivation's builders gave is listed under `disputed`, without a status.
pub fn a_made_up_output_does_not_make_a_derivation_differ(ctx: &Ctx) -> TestResult {
    let (a, b, c) = (builder(ctx, 1)?, builder(ctx, 1)?, builder(ctx, 1)?);
    let (x, y) = (builder(ctx, 1)?, builder(ctx, 1)?);
    let drv = drv_path("made-up");
    let (out, other) = (store_path("made-up"), store_path("made-up-elsewhere"));
    let h_out = nar_hash();
    attest(ctx, &a, Some(&drv), &[&Out::new(&out, h_out).named("out")])?;
    // x and y disagree on a path built from nothing to do with this derivation...
    attest(ctx, &x, None, &[&Out::new(&other, nar_hash()).unnamed()])?;
    attest(ctx, &y, None, &[&Out::new(&other, nar_hash()).unnamed()])?;
    // ... and b names it as an output `fake` of a's derivation.
    attest(ctx, &b, Some(&drv), &[&Out::new(&other, nar_hash()).named("fake")])?;
    let url = format!("/v1/derivations/{}", drv.as_store_path().basename());
    let v = ctx.get(&url)?.json()?;
    // One against one: neither name is believed, and nothing is shown as differing.
    ensure_eq!(v["outputs"], json!({}), "outputs with one builder against one");
    ensure_eq!(v["disputed"]["fake"], json!({"output_path": other.as_str(), "claimed_by": [b.name]}), "fake");
    ensure_eq!(v["disputed"]["out"], json!({"output_path": out.as_str(), "claimed_by": [a.name]}), "out");
    // c builds the derivation too: `out` now has the majority, `fake` still does not.
    attest(ctx, &c, Some(&drv), &[&Out::new(&out, h_out).named("out")])?;
    let v = ctx.get(&url)?.json()?;
    let mut ac = vec![a.name.clone(), c.name.clone()];
    ac.sort();
    ensure_eq!(v["outputs"]["out"]["status"], json!("reproduced"), "out status");
    ensure_eq!(v["outputs"]["out"]["claimed_by"], json!(ac), "out claimed by");
    ensure_eq!(v["outputs"].as_object().map(|o| o.len()), Some(1), "outputs");
    ensure_eq!(v["disputed"]["fake"]["claimed_by"], json!([b.name]), "fake claimed by");
    ensure!(v["disputed"]["fake"].get("status").is_none(), "a disputed output has a status: {v}");
    ensure_eq!(v["disputed"].as_object().map(|o| o.len()), Some(1), "disputed");
    // The path itself is reported as it is, with every builder's hash.
    let p = ctx.get(&format!("/v1/outputs/{}", other.basename()))?.json()?;
    ensure_eq!(p["status"], json!("not_reproduced"), "the path's own status");
    Ok(())
}

pub fn query_inputs_are_validated(ctx: &Ctx) -> TestResult {
    // `%2e%2e` is left out: URL parsers resolve it as `..` before a server sees it.
    for bad in [
        "short",
        "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-x",
        "mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-.hidden",
        "mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-..",
        "mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-a%2Fb",
        "mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-%3Cscript%3E",
    ] {
        ctx.get(&format!("/v1/outputs/{bad}"))?.expect_error(400, "invalid_request")?;
        ctx.get(&format!("/v1/derivations/{bad}"))?.expect_error(400, "invalid_request")?;
    }
    ctx.get(&format!("/v1/outputs/{}", store_path("nobody").basename()))?.expect_error(404, "not_found")?;
    Ok(())
}
