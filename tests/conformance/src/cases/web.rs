//! The web pages (DESIGN.md, "Web pages"; docs/web.md) over real HTTP: HTML with a
//! Content-Security-Policy, an HTML 404 for unknown pages while `/v1/` stays JSON,
//! what came from uploaders escaped, and every list bounded.

use libtest_mimic::Failed;
use nhc_core::StorePath;
use serde_json::json;

use crate::client::{Ctx, Resp};
use crate::fixtures::{attest, builder, drv_path, nar_hash, store_path, unique, Out};
use crate::{ensure, ensure_eq, TestResult};

/// Asserts an HTML page with the given status and the policy; returns its body.
fn html(r: &Resp, status: u16) -> Result<&str, Failed> {
    r.expect(status)?;
    ensure_eq!(r.content_type.as_str(), "text/html; charset=utf-8", "content type of an HTML page");
    ensure!(r.csp.contains("script-src 'self'") && r.csp.contains("default-src 'none'"), "CSP: {:?}", r.csp);
    ensure!(r.body.starts_with("<!DOCTYPE html>"), "not an HTML document: {}", &r.body[..r.body.len().min(200)]);
    ensure!(r.body.trim_end().ends_with("</html>"), "a cut HTML document");
    Ok(&r.body)
}

fn page(ctx: &Ctx, path: &str) -> Result<String, Failed> {
    let r = ctx.get(path)?;
    Ok(html(&r, 200)?.to_owned())
}

fn jobset(ctx: &Ctx, description: &str) -> Result<String, Failed> {
    let name = unique("web");
    ctx.admin_post("/v1/admin/jobsets", &json!({"name": name, "description": description}))?.expect(201)?;
    Ok(name)
}

fn upload(ctx: &Ctx, name: &str, rev: &str, paths: &[StorePath]) -> TestResult {
    let body: String = paths.iter().map(|p| format!("{p}\n")).collect();
    let url = format!("/v1/jobsets/{name}/evaluations/{rev}");
    let r = ctx.put_typed(&url, Some(&ctx.admin_token), "text/plain", body.as_bytes())?;
    ensure!(r.status == 201 || r.status == 200, "upload: {} {}", r.status, r.body);
    Ok(())
}

/// Rows of the paths table: each path is one link with class `path` (the diff below
/// the table has links of its own).
fn path_links(body: &str) -> usize {
    let table = body.split_once("<table class=\"paths\">").map(|(_, t)| t).unwrap_or("");
    let table = table.split_once("</table>").map(|(t, _)| t).unwrap_or("");
    table.matches("class=\"path\" href=\"/outputs/").count()
}

pub fn pages_are_html_with_a_policy(ctx: &Ctx) -> TestResult {
    for path in ["/", "/builders", "/search", "/search?q=nothing-matches-this"] {
        page(ctx, path)?;
    }
    let css = ctx.get("/static/style.css")?;
    css.expect(200)?;
    ensure!(css.content_type.starts_with("text/css"), "stylesheet as {:?}", css.content_type);
    ensure!(css.body.len() < 16 * 1024, "the stylesheet is {} bytes", css.body.len());
    ctx.head("/")?.expect(200)?;
    Ok(())
}

pub fn unknown_pages_are_html_404_and_v1_stays_json(ctx: &Ctx) -> TestResult {
    let unattested = store_path("web-nobody");
    for path in [
        "/nope".to_owned(),
        "/nar/abc.nar".to_owned(),
        "/builders/x/y/z".to_owned(),
        "/static/none.js".to_owned(),
        "/outputs/not-a-basename".to_owned(),
        format!("/outputs/{}", unattested.basename()),
        format!("/derivations/{}.drv", unattested.basename()),
        format!("/builders/{}", unique("ghost")),
        format!("/jobsets/{}", unique("ghost")),
        format!("/jobsets/{}/r1", unique("ghost")),
    ] {
        let r = ctx.get(&path)?;
        html(&r, 404).map_err(|e| Failed::from(format!("{path}: {}", e.message().unwrap_or_default())))?;
    }
    for path in ["/v1/nope", "/v1/outputs", "/v1/builders/x/y/z"] {
        ctx.get(path)?.expect_error(404, "not_found")?;
    }
    Ok(())
}

/// A jobset description and a search text are shown as text, never as markup.
pub fn hostile_text_is_shown_as_text(ctx: &Ctx) -> TestResult {
    let hostile = "<script>alert(1)</script><img src=x onerror=alert(2)>\"'&";
    let name = jobset(ctx, hostile)?;
    let p = store_path("web-hostile");
    upload(ctx, &name, "r1", &[p])?;
    let q: String = hostile.bytes().map(|b| format!("%{b:02X}")).collect();
    for path in [
        "/".to_owned(),
        format!("/jobsets/{name}"),
        format!("/jobsets/{name}/r1"),
        format!("/jobsets/{name}/r1?q={q}"),
        format!("/search?q={q}"),
    ] {
        let body = page(ctx, &path)?;
        ensure!(!body.contains("<script>alert") && !body.contains("<img src=x"), "{path} shows markup: {body}");
        ensure!(body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{path} does not show the text escaped");
    }
    Ok(())
}

/// An evaluation of 250 paths, 100 a page: the filter, the search, the sort and the
/// pages; a page number past the end is empty, a bad one a 400 page.
pub fn evaluation_pages_filter_and_stay_bounded(ctx: &Ctx) -> TestResult {
    let name = jobset(ctx, "paged")?;
    let b = builder(ctx, 1)?;
    let paths: Vec<StorePath> = (0..250).map(|i| store_path(&format!("webpkg-{i:03}"))).collect();
    attest(ctx, &b, None, &[&Out::new(&paths[7], nar_hash())])?;
    upload(ctx, &name, "r1", &paths)?;
    upload(ctx, &name, "r2", &paths[..240])?;
    let base = format!("/jobsets/{name}/r2");
    let first = page(ctx, &base)?;
    ensure_eq!(path_links(&first), 100, "rows on page 1");
    ensure!(first.contains("rel=\"next\"") && first.contains("page=2"), "no link to page 2");
    ensure!(first.contains("Page 1 of 3"), "page count");
    // The diff against r1: ten paths removed.
    ensure!(first.contains("10 removed"), "the diff against the previous evaluation is missing");
    let last = page(ctx, &format!("{base}?page=3"))?;
    ensure_eq!(path_links(&last), 40, "rows on page 3");
    ensure!(!last.contains("rel=\"next\""), "a next link on the last page");
    let past = page(ctx, &format!("{base}?page=9"))?;
    ensure_eq!(path_links(&past), 0, "rows past the end");
    let one = page(ctx, &format!("{base}?status=one_builder"))?;
    ensure_eq!(path_links(&one), 1, "one_builder filter");
    ensure!(one.contains(paths[7].basename()), "the filtered path");
    let search = page(ctx, &format!("{base}?q=webpkg-12"))?;
    ensure_eq!(path_links(&search), 10, "search webpkg-12 (120..129)");
    let sorted = page(ctx, &format!("{base}?sort=status"))?;
    let first_link = sorted.find("class=\"path\" href=\"/outputs/").map(|i| &sorted[i..i + 120]).unwrap_or_default();
    ensure!(first_link.contains(paths[7].basename()), "sort by status does not put one_builder first: {first_link}");
    for bad in ["?page=0", "?page=x", "?status=nope", "?sort=size"] {
        html(&ctx.get(&format!("{base}{bad}"))?, 400)?;
    }
    Ok(())
}

/// The output, derivation and builder pages show the attestations, and the search box
/// leads to them.
pub fn output_derivation_and_builder_pages(ctx: &Ctx) -> TestResult {
    let (a, b) = (builder(ctx, 1)?, builder(ctx, 1)?);
    let drv = drv_path("webhello");
    let out = store_path("webhello");
    let h = nar_hash();
    attest(ctx, &a, Some(&drv), &[&Out::new(&out, h)])?;
    attest(ctx, &b, Some(&drv), &[&Out::new(&out, h)])?;
    let o = page(ctx, &format!("/outputs/{}", out.basename()))?;
    for want in [a.name.as_str(), b.name.as_str(), &h.to_sri(), "reproduced", "nix store verify", drv.as_str()] {
        ensure!(o.contains(want), "the output page lacks {want:?}");
    }
    let d = page(ctx, &format!("/derivations/{}", drv.as_store_path().basename()))?;
    ensure!(d.contains(out.basename()) && d.contains("reproduced"), "the derivation page");
    let bp = page(ctx, &format!("/builders/{}", a.name))?;
    ensure!(bp.contains(out.basename()) && bp.contains("same hash"), "the builder page");
    let list = page(ctx, "/builders")?;
    ensure!(list.contains(&a.name), "the builders page");
    // The search box: a store path, a .drv, a hash part all lead to their page.
    for q in [out.as_str().to_owned(), drv.as_str().to_owned(), out.hash_part().to_owned()] {
        let r = ctx.get(&format!("/search?q={}", q.replace('/', "%2F")))?;
        let body = html(&r, 200)?;
        ensure!(body.contains(out.basename()), "search {q} did not lead to the output");
    }
    Ok(())
}
