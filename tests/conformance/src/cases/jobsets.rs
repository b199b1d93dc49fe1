//! Jobsets and evaluations (DESIGN.md, "Jobsets and evaluations"): every route, the
//! three upload formats, live statuses, tokens, and the bad inputs of issue 12.

use libtest_mimic::Failed;
use nhc_core::{nix32, StorePath};
use serde_json::{json, Value};

use crate::client::{Ctx, Resp};
use crate::fixtures::{attest, builder, drv_path, nar_hash, store_path, unique, Out, TestBuilder};
use crate::{ensure, ensure_eq, TestResult};

/// Creates a jobset through the admin API; returns its name.
fn jobset(ctx: &Ctx) -> Result<String, Failed> {
    let name = unique("js");
    let r = ctx.admin_post("/v1/admin/jobsets", &json!({"name": name, "description": "a test jobset"}))?;
    r.expect(201)?;
    ensure_eq!(r.json()?, json!({"name": name}), "create answer");
    Ok(name)
}

fn eval_url(name: &str, rev: &str) -> String {
    format!("/v1/jobsets/{name}/evaluations/{rev}")
}

fn put(ctx: &Ctx, name: &str, rev: &str, content_type: &str, body: &str, token: Option<&str>) -> Result<Resp, Failed> {
    ctx.put_typed(&eval_url(name, rev), token, content_type, body.as_bytes())
}

fn put_admin(ctx: &Ctx, name: &str, rev: &str, content_type: &str, body: &str) -> Result<Resp, Failed> {
    put(ctx, name, rev, content_type, body, Some(&ctx.admin_token))
}

fn plain(paths: &[&StorePath]) -> String {
    paths.iter().map(|p| format!("{p}\n")).collect()
}

/// Uploads a plain list and asserts the answer.
fn upload(ctx: &Ctx, name: &str, rev: &str, paths: &[&StorePath], status: u16) -> TestResult {
    let r = put_admin(ctx, name, rev, "text/plain", &plain(paths))?;
    r.expect(status)?;
    ensure_eq!(r.json()?, json!({"jobset": name, "rev": rev, "paths": paths.len()}), "upload answer");
    Ok(())
}

fn page(ctx: &Ctx, name: &str, rev: &str, query: &str) -> Result<Value, Failed> {
    let r = ctx.get(&format!("{}{query}", eval_url(name, rev)))?;
    r.expect(200)?;
    r.json()
}

fn summary(r: u64, p: u64, n: u64, o: u64, none: u64) -> Value {
    json!({"reproduced": r, "partially_reproduced": p, "not_reproduced": n, "one_builder": o, "no_builds": none})
}

/// Five paths in the five states: p0 nobody; p1 a; p2 a=b; p3 a=b, c differs; p4 all differ.
fn five_states(ctx: &Ctx) -> Result<(Vec<StorePath>, [TestBuilder; 3]), Failed> {
    let (a, b, c) = (builder(ctx, 1)?, builder(ctx, 1)?, builder(ctx, 1)?);
    let p: Vec<_> = (0..5).map(|i| store_path(&format!("js{i}"))).collect();
    let (h1, h2, h3) = (nar_hash(), nar_hash(), nar_hash());
    attest(ctx, &a, None, &[&Out::new(&p[1], h1), &Out::new(&p[2], h1), &Out::new(&p[3], h1), &Out::new(&p[4], h1)])?;
    attest(ctx, &b, None, &[&Out::new(&p[2], h1), &Out::new(&p[3], h1), &Out::new(&p[4], h2)])?;
    attest(ctx, &c, None, &[&Out::new(&p[3], h2), &Out::new(&p[4], h3)])?;
    Ok((p, [a, b, c]))
}

fn paths_of(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .map(|a| a.iter().filter_map(|i| i["path"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

pub fn jobset_admin_routes_need_the_admin_token(ctx: &Ctx) -> TestResult {
    let b = builder(ctx, 1)?;
    let name = jobset(ctx)?;
    let fresh = unique("js");
    for auth in [None, Some("wrong"), Some(b.token.as_str())] {
        ctx.post_json("/v1/admin/jobsets", auth, &json!({"name": fresh}))?.expect_error(401, "unauthorized")?;
        ctx.post(&format!("/v1/admin/jobsets/{name}/tokens"), auth, b"")?.expect_error(401, "unauthorized")?;
        ctx.delete(&format!("/v1/admin/jobsets/{name}"), auth)?.expect_error(401, "unauthorized")?;
    }
    ctx.get(&format!("/v1/jobsets/{fresh}"))?.expect_error(404, "not_found")?;
    ctx.get(&format!("/v1/jobsets/{name}"))?.expect(200)?;
    Ok(())
}

pub fn jobsets_are_created_listed_and_deleted(ctx: &Ctx) -> TestResult {
    let name = jobset(ctx)?;
    ctx.admin_post("/v1/admin/jobsets", &json!({"name": name}))?.expect_error(409, "conflict")?;
    for bad in [
        json!({"name": "-x"}),
        json!({"name": "a/b"}),
        json!({}),
        json!({"name": unique("js"), "description": "x".repeat(1025)}),
    ] {
        let r = ctx.admin_post("/v1/admin/jobsets", &bad)?;
        ensure_eq!(r.status, 400, "create {bad}: {}", r.body);
    }
    let list = ctx.get("/v1/jobsets")?;
    list.expect(200)?;
    let entry = list.json()?.as_array().and_then(|a| a.iter().find(|j| j["name"] == json!(name)).cloned());
    ensure_eq!(entry, Some(json!({"name": name, "description": "a test jobset", "latest": null})), "listed");
    let detail = ctx.get(&format!("/v1/jobsets/{name}"))?;
    detail.expect(200)?;
    ensure_eq!(detail.json()?, json!({"name": name, "description": "a test jobset", "evaluations": []}), "detail");
    upload(ctx, &name, "r1", &[&store_path("x")], 201)?;
    ctx.delete(&format!("/v1/admin/jobsets/{name}"), Some(&ctx.admin_token))?.expect(204)?;
    ctx.get(&format!("/v1/jobsets/{name}"))?.expect_error(404, "not_found")?;
    ctx.get(&eval_url(&name, "r1"))?.expect_error(404, "not_found")?;
    ctx.delete(&format!("/v1/admin/jobsets/{name}"), Some(&ctx.admin_token))?.expect_error(404, "not_found")?;
    ctx.post(&format!("/v1/admin/jobsets/{name}/tokens"), Some(&ctx.admin_token), b"")?
        .expect_error(404, "not_found")?;
    // The name is free again.
    ctx.admin_post("/v1/admin/jobsets", &json!({"name": name}))?.expect(201)?;
    Ok(())
}

pub fn plain_list_statuses_are_live(ctx: &Ctx) -> TestResult {
    let (p, [a, ..]) = five_states(ctx)?;
    let name = jobset(ctx)?;
    // Comments, blank lines, spaces, CRLF and a repeated path, as nix-store -qR users write them.
    let body = format!("# closure\n\n{}\r\n  {}  \n{}\n{}\n{}\n{}\n", p[0], p[1], p[2], p[3], p[4], p[1]);
    let r = put_admin(ctx, &name, "r1", "text/plain", &body)?;
    r.expect(201)?;
    ensure_eq!(r.json()?, json!({"jobset": name, "rev": "r1", "paths": 5}), "upload answer");
    let v = page(ctx, &name, "r1", "")?;
    ensure_eq!(v["summary"], summary(1, 1, 1, 1, 1), "summary");
    ensure_eq!(
        (v["jobset"].clone(), v["rev"].clone(), v["paths"].clone()),
        (json!(name), json!("r1"), json!(5)),
        "page head"
    );
    ensure_eq!(v["next_cursor"], Value::Null, "one page");
    let expected = [
        ("no_builds", 0, 0),
        ("one_builder", 1, 1),
        ("reproduced", 2, 1),
        ("partially_reproduced", 3, 2),
        ("not_reproduced", 3, 3),
    ];
    let items = v["items"].as_array().ok_or("no items")?;
    ensure_eq!(items.len(), 5, "items");
    for ((item, path), (status, builders, hashes)) in items.iter().zip(&p).zip(expected) {
        ensure_eq!(item["path"], json!(path.as_str()), "upload order");
        ensure_eq!(
            (item["status"].clone(), item["builders"].clone(), item["distinct_hashes"].clone()),
            (json!(status), json!(builders), json!(hashes)),
            "{path}"
        );
    }
    let created = v["created_at"].as_str().ok_or("no created_at")?;
    ensure!(created.ends_with('Z') && created.as_bytes().get(10) == Some(&b'T'), "not RFC 3339: {created}");
    // Live: an attestation made after the upload shows at once.
    attest(ctx, &a, None, &[&Out::new(&p[0], nar_hash())])?;
    ensure_eq!(page(ctx, &name, "r1", "")?["summary"], summary(1, 1, 1, 2, 0), "summary after a new attestation");
    Ok(())
}

pub fn paths_json_and_cyclonedx_uploads(ctx: &Ctx) -> TestResult {
    let a = builder(ctx, 1)?;
    let name = jobset(ctx)?;
    let (p1, p2, p3) = (store_path("hello-2.12"), store_path("hello-2.12-man"), store_path("glibc-2.40"));
    let d1 = drv_path("hello-2.12");
    // {"paths": [...]}: strings and objects; drv_path/output_name from the upload,
    // else from an attestation, else null.
    let dg = drv_path("glibc-2.40");
    attest(ctx, &a, Some(&dg), &[&Out::new(&p3, nar_hash())])?;
    let body = json!({"paths": [
        {"path": p1.as_str(), "drv_path": d1.as_str(), "output_name": "out"},
        {"path": p2.as_str(), "drv_path": d1.as_str()},
        p3.as_str(),
        p1.as_str(),
    ]});
    let r = put_admin(ctx, &name, "json", "application/json", &body.to_string())?;
    r.expect(201)?;
    ensure_eq!(r.json()?["paths"], json!(3), "paths counted once");
    let v = page(ctx, &name, "json", "")?;
    let items = v["items"].as_array().ok_or("no items")?;
    ensure_eq!(items.len(), 3, "items");
    ensure_eq!(
        (items[0]["drv_path"].clone(), items[0]["output_name"].clone()),
        (json!(d1.as_str()), json!("out")),
        "p1"
    );
    ensure_eq!(
        (items[1]["drv_path"].clone(), items[1]["output_name"].clone()),
        (json!(d1.as_str()), json!("man")),
        "p2: output name by Nix's rule"
    );
    ensure_eq!(
        (items[2]["drv_path"].clone(), items[2]["output_name"].clone()),
        (json!(dg.as_str()), json!("out")),
        "p3: from the attestation"
    );
    ensure_eq!(v["summary"], summary(0, 0, 0, 1, 2), "summary");

    // A CycloneDX SBOM as sbomnix writes it: bom-ref = drv, nix:output_path per output.
    let (q1, q2) = (store_path("openssl-3.0"), store_path("zlib-1.3"));
    let (e1, e2) = (drv_path("openssl-3.0"), drv_path("zlib-1.3"));
    let component = |drv: &StorePath, out: &StorePath| {
        json!({"type": "library", "bom-ref": drv.as_str(), "name": out.name(), "version": "1",
               "properties": [{"name": "nix:drv_path", "value": drv.as_str()}, {"name": "nix:output_path", "value": out.as_str()}]})
    };
    let e1p = StorePath::parse(e1.as_str()).map_err(|e| e.to_string())?;
    let e2p = StorePath::parse(e2.as_str()).map_err(|e| e.to_string())?;
    let sbom = json!({
        "bomFormat": "CycloneDX", "specVersion": "1.4", "version": 1,
        "metadata": {"component": component(&e1p, &q1)},
        "components": [component(&e2p, &q2), {"type": "library", "bom-ref": "pkg:npm/left-pad@1", "name": "left-pad"}],
        "dependencies": [{"ref": e1.as_str(), "dependsOn": [e2.as_str()]}, {"ref": e2.as_str(), "dependsOn": []}],
    });
    let r = put_admin(ctx, &name, "sbom", "application/vnd.cyclonedx+json", &sbom.to_string())?;
    r.expect(201)?;
    ensure_eq!(r.json()?["paths"], json!(2), "SBOM paths");
    let v = page(ctx, &name, "sbom", "")?;
    let mut got: Vec<(Value, Value)> =
        v["items"].as_array().ok_or("no items")?.iter().map(|i| (i["path"].clone(), i["drv_path"].clone())).collect();
    got.sort_by_key(|(p, _)| p.to_string());
    let mut want = vec![(json!(q1.as_str()), json!(e1.as_str())), (json!(q2.as_str()), json!(e2.as_str()))];
    want.sort_by_key(|(p, _)| p.to_string());
    ensure_eq!(got, want, "SBOM items");
    // Without a Content-Type, by content: a path list.
    let r = ctx.put_typed(
        &eval_url(&name, "octets"),
        Some(&ctx.admin_token),
        "application/octet-stream",
        plain(&[&q1]).as_bytes(),
    )?;
    r.expect(201)?;
    Ok(())
}

pub fn reuploading_a_rev_replaces_it(ctx: &Ctx) -> TestResult {
    let name = jobset(ctx)?;
    let old: Vec<_> = (0..3).map(|i| store_path(&format!("old{i}"))).collect();
    let new: Vec<_> = (0..2).map(|i| store_path(&format!("new{i}"))).collect();
    upload(ctx, &name, "r1", &old.iter().collect::<Vec<_>>(), 201)?;
    upload(ctx, &name, "r1", &new.iter().collect::<Vec<_>>(), 200)?;
    let v = page(ctx, &name, "r1", "")?;
    ensure_eq!(paths_of(&v), new.iter().map(|p| p.to_string()).collect::<Vec<_>>(), "only the new paths");
    ensure_eq!(v["paths"], json!(2), "paths");
    let d = ctx.get(&format!("/v1/jobsets/{name}"))?.json()?;
    ensure_eq!(d["evaluations"].as_array().map(Vec::len), Some(1), "one evaluation of r1: {d}");
    Ok(())
}

pub fn evaluation_pages_filter_and_page(ctx: &Ctx) -> TestResult {
    let (p, _) = five_states(ctx)?;
    let extra: Vec<_> = (0..4).map(|i| store_path(&format!("pg{i}"))).collect();
    let name = jobset(ctx)?;
    let all: Vec<&StorePath> = p.iter().chain(&extra).collect();
    upload(ctx, &name, "r1", &all, 201)?;
    // Pages of 2 walk the whole evaluation in upload order.
    let (mut seen, mut cursor, mut pages) = (Vec::new(), None::<String>, 0);
    loop {
        let q = match &cursor {
            Some(c) => format!("?limit=2&cursor={c}"),
            None => "?limit=2".into(),
        };
        let v = page(ctx, &name, "r1", &q)?;
        let items = paths_of(&v);
        ensure!(items.len() <= 2, "page over the limit: {v}");
        seen.extend(items);
        pages += 1;
        ensure!(pages <= 10, "paging does not end");
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    ensure_eq!(seen, all.iter().map(|p| p.to_string()).collect::<Vec<_>>(), "all pages");
    let v = page(ctx, &name, "r1", "?status=no_builds,reproduced")?;
    let mut want: Vec<String> =
        std::iter::once(&p[0]).chain(&extra).chain(std::iter::once(&p[2])).map(|x| x.to_string()).collect();
    let mut got = paths_of(&v);
    want.sort();
    got.sort();
    ensure_eq!(got, want, "status filter");
    ensure_eq!(v["summary"], summary(1, 1, 1, 1, 5), "the summary is of the whole evaluation");
    // "-name": a bare name can also occur inside another path's random hash part.
    let v = page(ctx, &name, "r1", &format!("?q=-{}", p[3].name()))?;
    ensure_eq!(paths_of(&v), vec![p[3].to_string()], "q filter");
    let v = page(ctx, &name, "r1", "?status=not_reproduced&limit=1")?;
    ensure_eq!(
        (paths_of(&v), v["next_cursor"].clone()),
        (vec![p[4].to_string()], Value::Null),
        "one match, no next page"
    );
    for bad in ["?status=broken", "?limit=0", "?limit=1001", "?limit=x", "?cursor=zzz"] {
        ctx.get(&format!("{}{bad}", eval_url(&name, "r1")))?.expect_error(400, "bad_request")?;
    }
    ctx.get(&eval_url(&name, "nope"))?.expect_error(404, "not_found")?;
    ctx.get(&eval_url(&unique("js"), "r1"))?.expect_error(404, "not_found")?;
    Ok(())
}

pub fn diffs_list_added_removed_and_changed(ctx: &Ctx) -> TestResult {
    let (a, b) = (builder(ctx, 1)?, builder(ctx, 1)?);
    let name = jobset(ctx)?;
    let same = store_path("same-1");
    let gone = store_path("gone-1");
    let came = store_path("came-1");
    let hello_old = store_path("hello-2.12");
    let hello_new =
        StorePath::parse(&format!("/nix/store/{}-hello-2.12", nix32::encode(&crate::fixtures::random::<20>())))
            .map_err(|e| e.to_string())?;
    let h = nar_hash();
    attest(ctx, &a, None, &[&Out::new(&hello_old, nar_hash()), &Out::new(&hello_new, h), &Out::new(&same, h)])?;
    attest(ctx, &b, None, &[&Out::new(&hello_new, h)])?;
    upload(ctx, &name, "r1", &[&same, &gone, &hello_old], 201)?;
    upload(ctx, &name, "r2", &[&same, &came, &hello_new], 201)?;
    let r = ctx.get(&format!("{}/diff/r1", eval_url(&name, "r2")))?;
    r.expect(200)?;
    ensure_eq!(
        r.json()?,
        json!({"added": [came.as_str()], "removed": [gone.as_str()], "changed": [
            {"name": "hello-2.12", "from_path": hello_old.as_str(), "to_path": hello_new.as_str(), "from": "one_builder", "to": "reproduced"}]}),
        "diff r1 -> r2"
    );
    let same_way = ctx.get(&format!("{}/diff/r2", eval_url(&name, "r2")))?.json()?;
    ensure_eq!(same_way, json!({"added": [], "removed": [], "changed": []}), "diff with itself");
    ctx.get(&format!("{}/diff/nope", eval_url(&name, "r2")))?.expect_error(404, "not_found")?;
    ctx.get(&format!("{}/diff/a%2Fb", eval_url(&name, "r2")))?.expect(400)?;
    Ok(())
}

pub fn history_and_badge(ctx: &Ctx) -> TestResult {
    let (a, b) = (builder(ctx, 1)?, builder(ctx, 1)?);
    let name = jobset(ctx)?;
    let badge = ctx.get(&format!("/v1/jobsets/{name}/badge.svg"))?;
    badge.expect(200)?;
    ensure!(badge.content_type.starts_with("image/svg+xml"), "badge type {}", badge.content_type);
    ensure!(badge.body.contains("no data"), "badge without evaluations: {}", badge.body);
    let p: Vec<_> = (0..4).map(|i| store_path(&format!("hb{i}"))).collect();
    let h = nar_hash();
    attest(ctx, &a, None, &[&Out::new(&p[0], h), &Out::new(&p[1], h), &Out::new(&p[2], h)])?;
    attest(ctx, &b, None, &[&Out::new(&p[0], h), &Out::new(&p[1], h)])?;
    upload(ctx, &name, "r1", &[&p[0], &p[3]], 201)?;
    upload(ctx, &name, "r2", &[&p[0], &p[1], &p[2], &p[3]], 201)?;
    let d = ctx.get(&format!("/v1/jobsets/{name}"))?.json()?;
    let evals = d["evaluations"].as_array().ok_or("no evaluations")?;
    ensure_eq!(
        evals.iter().map(|e| e["rev"].clone()).collect::<Vec<_>>(),
        vec![json!("r2"), json!("r1")],
        "newest first"
    );
    ensure_eq!((evals[0]["paths"].clone(), evals[0]["summary"].clone()), (json!(4), summary(2, 0, 0, 1, 1)), "r2");
    ensure_eq!((evals[1]["paths"].clone(), evals[1]["summary"].clone()), (json!(2), summary(1, 0, 0, 0, 1)), "r1");
    ensure!(evals[0]["created_at"].as_str().is_some_and(|t| t.ends_with('Z')), "created_at: {}", evals[0]);
    let list = ctx.get("/v1/jobsets")?.json()?;
    let entry =
        list.as_array().and_then(|l| l.iter().find(|j| j["name"] == json!(name)).cloned()).ok_or("not listed")?;
    ensure_eq!(
        (entry["latest"]["rev"].clone(), entry["latest"]["summary"].clone()),
        (json!("r2"), summary(2, 0, 0, 1, 1)),
        "latest"
    );
    let badge = ctx.get(&format!("/v1/jobsets/{name}/badge.svg"))?;
    badge.expect(200)?;
    ensure!(
        badge.body.starts_with("<svg") && badge.body.contains("50%") && badge.body.contains("reproduced"),
        "badge: {}",
        badge.body
    );
    ctx.get(&format!("/v1/jobsets/{}/badge.svg", unique("js")))?.expect_error(404, "not_found")?;
    Ok(())
}

pub fn jobset_tokens_upload_only_their_jobset(ctx: &Ctx) -> TestResult {
    let (j1, j2) = (jobset(ctx)?, jobset(ctx)?);
    let b = builder(ctx, 1)?;
    let r = ctx.post(&format!("/v1/admin/jobsets/{j1}/tokens"), Some(&ctx.admin_token), b"")?;
    r.expect(201)?;
    let token = r.json()?["token"].as_str().ok_or("no token")?.to_owned();
    let body = plain(&[&store_path("tok")]);
    ensure_eq!(put(ctx, &j1, "r1", "text/plain", &body, Some(&token))?.status, 201, "own jobset");
    put(ctx, &j2, "r1", "text/plain", &body, Some(&token))?.expect_error(403, "forbidden")?;
    for wrong in [None, Some("wrong"), Some(b.token.as_str()), Some(&*format!("{token}x"))] {
        put(ctx, &j1, "r2", "text/plain", &body, wrong)?.expect_error(401, "unauthorized")?;
    }
    // The jobset token is no admin token.
    ctx.post(&format!("/v1/admin/jobsets/{j1}/tokens"), Some(&token), b"")?.expect_error(401, "unauthorized")?;
    ctx.get(&eval_url(&j2, "r1"))?.expect_error(404, "not_found")?;
    ctx.get(&eval_url(&j1, "r2"))?.expect_error(404, "not_found")?;
    Ok(())
}

pub fn bad_uploads_are_rejected_and_store_nothing(ctx: &Ctx) -> TestResult {
    let name = jobset(ctx)?;
    let kept = store_path("kept");
    upload(ctx, &name, "r1", &[&kept], 201)?;
    let good = store_path("good");
    let drv = drv_path("x");
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("application/xml", format!("<bom>{good}</bom>"), 415, "unsupported_media_type"),
        ("text/plain", format!("{good}\n/usr/bin/env\n"), 400, "invalid_store_path"),
        ("text/plain", format!("{good}\n{drv}\n"), 400, "derivation_in_list"),
        (
            "application/json",
            json!({"bomFormat": "CycloneDX", "components": {"not": "a list"}}).to_string(),
            400,
            "malformed_sbom",
        ),
        ("application/json", json!({"spdxVersion": "SPDX-2.3", "packages": []}).to_string(), 400, "unknown_format"),
        ("application/json", "{\"paths\": [".into(), 400, "malformed_json"),
        ("text/plain", "# nothing\n\n".into(), 400, "no_paths"),
    ];
    for (ct, body, status, code) in cases {
        for rev in ["r1", "r2"] {
            put_admin(ctx, &name, rev, ct, &body)?.expect_error(status, code)?;
        }
    }
    // Unknown jobset, bad names.
    put_admin(ctx, &unique("js"), "r1", "text/plain", &plain(&[&good]))?.expect_error(404, "not_found")?;
    ensure_eq!(put_admin(ctx, &name, "a%20b", "text/plain", &plain(&[&good]))?.status, 400, "bad rev");
    ensure_eq!(put_admin(ctx, "-bad", "r1", "text/plain", &plain(&[&good]))?.status, 400, "bad jobset name");
    // Nothing stored: r1 as it was, no r2.
    ensure_eq!(paths_of(&page(ctx, &name, "r1", "")?), vec![kept.to_string()], "r1 unchanged");
    ctx.get(&eval_url(&name, "r2"))?.expect_error(404, "not_found")?;
    Ok(())
}

/// `n` distinct valid store paths, cheaply.
fn many_paths(n: usize, tag: &str) -> String {
    let salt = nix32::encode(&crate::fixtures::random::<20>());
    let mut out = String::with_capacity(n * 64);
    for i in 0..n {
        let digits = nix32::encode(&(i as u64).to_le_bytes());
        out.push_str(&format!("/nix/store/{}{}-{tag}\n", &salt[..32 - digits.len()], digits));
    }
    out
}

pub fn uploads_over_the_limits_are_413(ctx: &Ctx) -> TestResult {
    let name = jobset(ctx)?;
    let r = put_admin(ctx, &name, "big", "text/plain", &many_paths(250_001, "p"))?;
    r.expect_error(413, "too_many_paths")?;
    ctx.get(&eval_url(&name, "big"))?.expect_error(404, "not_found")?;
    Ok(())
}

/// On the Worker too: the body is streamed to the handlers, which stop reading at the
/// limit, and the adapter drains the rest before answering.
pub fn upload_bodies_over_24_mib_are_413(ctx: &Ctx) -> TestResult {
    let name = jobset(ctx)?;
    let body = vec![b'#'; 24 * 1024 * 1024 + 1];
    ctx.send_large("PUT", &eval_url(&name, "big"), Some(&ctx.admin_token), &body)?
        .expect_error(413, "body_too_large")?;
    ctx.get(&eval_url(&name, "big"))?.expect_error(404, "not_found")?;
    Ok(())
}

pub fn an_evaluation_of_250000_paths_is_stored_whole(ctx: &Ctx) -> TestResult {
    let name = jobset(ctx)?;
    let body = many_paths(250_000, "big");
    let r = put_admin(ctx, &name, "big", "text/plain", &body)?;
    r.expect(201)?;
    ensure_eq!(r.json()?["paths"], json!(250_000), "paths");
    let v = page(ctx, &name, "big", "?limit=1000")?;
    ensure_eq!((v["paths"].clone(), v["summary"]["no_builds"].clone()), (json!(250_000), json!(250_000)), "summary");
    ensure_eq!(v["items"].as_array().map(Vec::len), Some(1000), "a page of 1000");
    ensure_eq!(v["items"][0]["path"].as_str(), body.lines().next(), "first path");
    // A filter nothing matches: each request looks at a bounded part of the evaluation
    // and says where to go on; following next_cursor ends, with no item.
    let (mut cursor, mut pages) = (String::new(), 0);
    loop {
        let v = page(ctx, &name, "big", &format!("?status=reproduced&limit=10&cursor={cursor}"))?;
        ensure_eq!(v["items"], json!([]), "nothing reproduced");
        pages += 1;
        ensure!(pages <= 250, "filtered paging does not end");
        match v["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    // Replaced atomically by a small one, then deleted.
    upload(ctx, &name, "big", &[&store_path("small")], 200)?;
    ensure_eq!(page(ctx, &name, "big", "")?["paths"], json!(1), "replaced");
    ctx.delete(&format!("/v1/admin/jobsets/{name}"), Some(&ctx.admin_token))?.expect(204)?;
    Ok(())
}

/// Most useful first: by status, then (among paths nobody built) the one another
/// path of the SBOM depends on; never what the builder attested, nor reproduced paths.
pub fn suggest_lists_what_a_builder_could_build(ctx: &Ctx) -> TestResult {
    let (a, b, c) = (builder(ctx, 1)?, builder(ctx, 1)?, builder(ctx, 1)?);
    let name = jobset(ctx)?;
    let p: Vec<_> = (0..7).map(|i| store_path(&format!("sg{i}"))).collect();
    let (h, h2) = (nar_hash(), nar_hash());
    // p0 only a; p1 only b; p2, p5, p6 nobody (p5 depends on p6); p3 a = b; p4 b ≠ c.
    attest(ctx, &a, None, &[&Out::new(&p[0], h), &Out::new(&p[3], h)])?;
    attest(ctx, &b, None, &[&Out::new(&p[1], h), &Out::new(&p[3], h), &Out::new(&p[4], h)])?;
    attest(ctx, &c, None, &[&Out::new(&p[4], h2)])?;
    let sbom = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "components": p.iter().map(|x| json!({"type": "library", "bom-ref": x.as_str(), "name": x.name()})).collect::<Vec<_>>(),
        "dependencies": [{"ref": p[5].as_str(), "dependsOn": [p[6].as_str()]}],
    });
    put_admin(ctx, &name, "r1", "application/json", &sbom.to_string())?.expect(201)?;
    let url = format!("{}/suggest", eval_url(&name, "r1"));
    let r = ctx.get(&format!("{url}?builder={}", a.name))?;
    r.expect(200)?;
    let items = r.json()?["items"].clone();
    let item = |i: usize, status: &str| json!({"path": p[i].as_str(), "drv_path": null, "output_name": null, "status": status});
    ensure_eq!(
        items,
        json!([
            item(4, "not_reproduced"),
            item(1, "one_builder"),
            item(6, "no_builds"),
            item(2, "no_builds"),
            item(5, "no_builds")
        ]),
        "suggestions for a"
    );
    let one = ctx.get(&format!("{url}?builder={}&limit=1", a.name))?.json()?;
    ensure_eq!(one["items"].as_array().map(Vec::len), Some(1), "limit");
    ctx.get(&format!("{url}?builder={}", unique("b")))?.expect_error(404, "not_found")?;
    ensure_eq!(ctx.get(&url)?.status, 400, "builder missing");
    ensure_eq!(ctx.get(&format!("{url}?builder={}&limit=0", a.name))?.status, 400, "limit 0");
    Ok(())
}
