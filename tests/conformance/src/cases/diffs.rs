//! Diff reports (docs/api.md, "Diff reports"): uploads signed by a builder's key,
//! listed and downloaded by anyone; reports larger than one D1 row stored in pieces.

use std::io::Write;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use nhc_core::diff::{fingerprint, report_sha256, DiffFormat};
use nhc_core::{NarHash, SecretKey, StorePath};
use serde_json::{json, Value};

use crate::client::{Ctx, Resp};
use crate::fixtures::{attest, builder, nar_hash, random, store_path, Out, TestBuilder};
use crate::{ensure, ensure_eq, TestResult};

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).expect("gzip into memory");
    enc.finish().expect("gzip into memory")
}

struct Report {
    a: NarHash,
    b: NarHash,
    format: DiffFormat,
    gz: Vec<u8>,
}

impl Report {
    fn new(text: &str) -> Report {
        Report { a: nar_hash(), b: nar_hash(), format: DiffFormat::FileList, gz: gzip(text.as_bytes()) }
    }

    fn body(&self, path: &StorePath, key: &SecretKey) -> Value {
        let sig = key.sign(&fingerprint(path, &self.a, &self.b, self.format, &report_sha256(&self.gz)));
        json!({
            "nar_hash_a": self.a.to_string(),
            "nar_hash_b": self.b.to_string(),
            "format": self.format.as_str(),
            "report": STANDARD.encode(&self.gz),
            "signature": sig.to_string(),
        })
    }
}

fn upload(ctx: &Ctx, b: &TestBuilder, path: &StorePath, body: &Value) -> Result<Resp, libtest_mimic::Failed> {
    let bytes = serde_json::to_vec(body).map_err(|e| e.to_string())?;
    ctx.post_large(&format!("/v1/outputs/{}/diffs", path.basename()), Some(&b.token), &bytes)
}

fn listed(ctx: &Ctx, path: &StorePath) -> Result<Vec<Value>, libtest_mimic::Failed> {
    let r = ctx.get(&format!("/v1/outputs/{}/diffs", path.basename()))?;
    r.expect(200)?;
    Ok(r.json()?["diffs"].as_array().cloned().unwrap_or_default())
}

pub fn an_uploaded_report_is_listed_and_downloaded(ctx: &Ctx) -> TestResult {
    let b = builder(ctx, 1)?;
    let path = store_path("differs");
    ensure_eq!(listed(ctx, &path)?.len(), 0, "reports before any upload");
    let report = Report::new("/bin/x sha256:aaa sha256:bbb\n");
    let r = upload(ctx, &b, &path, &report.body(&path, b.key()))?;
    r.expect(201)?;
    let info = r.json()?;
    ensure_eq!(info["builder"], json!(b.name), "builder");
    ensure_eq!(info["output_path"], json!(path.as_str()), "output path");
    ensure_eq!(info["nar_hash_a"], json!(report.a.to_string()), "hash a");
    ensure_eq!(info["nar_hash_b"], json!(report.b.to_string()), "hash b");
    ensure_eq!(info["format"], json!("file-list"), "format");
    ensure_eq!(info["size"], json!(report.gz.len()), "size");
    ensure_eq!(info["report_sha256"], json!(report_sha256(&report.gz)), "sha256");
    let url = info["url"].as_str().ok_or("no url")?.to_owned();
    ensure!(url.starts_with(&format!("/v1/outputs/{}/diffs/", path.basename())), "url {url}");
    // The same upload again changes nothing.
    let again = upload(ctx, &b, &path, &report.body(&path, b.key()))?;
    again.expect(200)?;
    ensure_eq!(again.json()?, info, "the repeated upload's answer");
    let list = listed(ctx, &path)?;
    ensure_eq!(list, vec![info.clone()], "the list");
    // The report comes back byte for byte.
    let (status, content_type, bytes) = ctx.get_bytes(&url)?;
    ensure_eq!(status, 200, "GET {url}: {}", String::from_utf8_lossy(&bytes[..bytes.len().min(500)]));
    ensure_eq!(content_type, "application/gzip", "content type");
    ensure!(bytes == report.gz, "the downloaded report differs from the uploaded one");
    // Another path's id, an unknown id, a bad id.
    let other = store_path("other");
    let id = info["id"].as_str().ok_or("no id")?;
    ctx.get(&format!("/v1/outputs/{}/diffs/{id}", other.basename()))?.expect_error(404, "not_found")?;
    ctx.get(&format!("/v1/outputs/{}/diffs/12345", path.basename()))?.expect_error(404, "not_found")?;
    ctx.get(&format!("/v1/outputs/{}/diffs/x1", path.basename()))?.expect_error(400, "invalid_request")?;
    ctx.get("/v1/outputs/not-a-basename/diffs")?.expect_error(400, "invalid_request")?;
    // The output's web page (there once somebody attested the path) links the report.
    attest(ctx, &b, None, &[&Out::new(&path, report.a)])?;
    let page = ctx.get(&format!("/outputs/{}", path.basename()))?;
    page.expect(200)?;
    ensure!(page.body.contains(&format!("href=\"{url}\"")), "the output page links the report {url}");
    Ok(())
}

/// About 1.3 MB of incompressible report: three 512 KiB pieces, each well under
/// D1's 2 MB limit on a row, where one row would not do.
pub fn a_large_report_is_stored_in_pieces(ctx: &Ctx) -> TestResult {
    let b = builder(ctx, 1)?;
    let path = store_path("big-diff");
    let mut noise = Vec::with_capacity(1_300_000);
    while noise.len() < 1_300_000 {
        noise.extend_from_slice(&random::<4096>());
    }
    let report = Report { format: DiffFormat::DiffoscopeText, ..Report::new("") };
    let report = Report { gz: gzip(&noise), ..report };
    ensure!(report.gz.len() > 1_048_576 + 1, "the report is {} bytes, not over two pieces", report.gz.len());
    let r = upload(ctx, &b, &path, &report.body(&path, b.key()))?;
    r.expect(201)?;
    let url = r.json()?["url"].as_str().ok_or("no url")?.to_owned();
    let (status, _, bytes) = ctx.get_bytes(&url)?;
    ensure_eq!(status, 200, "GET {url}: {}", String::from_utf8_lossy(&bytes[..bytes.len().min(500)]));
    ensure_eq!(bytes.len(), report.gz.len(), "downloaded size");
    ensure!(bytes == report.gz, "the pieces came back in another order or changed");
    Ok(())
}

pub fn bad_uploads_are_refused_and_store_nothing(ctx: &Ctx) -> TestResult {
    let (b, other) = (builder(ctx, 1)?, builder(ctx, 1)?);
    let path = store_path("bad-diff");
    let report = Report::new("x\n");
    let good = report.body(&path, b.key());
    let base = format!("/v1/outputs/{}/diffs", path.basename());
    let bytes = serde_json::to_vec(&good).map_err(|e| e.to_string())?;
    ctx.post(&base, None, &bytes)?.expect_error(401, "unauthorized")?;
    ctx.post(&base, Some("nhc_x_y"), &bytes)?.expect_error(401, "unauthorized")?;
    // Signed by another builder's key.
    upload(ctx, &b, &path, &report.body(&path, other.key()))?.expect_error(403, "unknown_key")?;
    // Signed over another path.
    upload(ctx, &b, &path, &report.body(&store_path("elsewhere"), b.key()))?.expect_error(400, "bad_signature")?;
    // A changed field after signing.
    let mut changed = good.clone();
    changed["format"] = json!("diffoscope-text");
    upload(ctx, &b, &path, &changed)?.expect_error(400, "bad_signature")?;
    // Equal hashes, not gzip, not base64, an unknown format, an unknown field.
    let x = Report::new("x");
    let same = Report { b: x.a, ..x };
    upload(ctx, &b, &path, &same.body(&path, b.key()))?.expect_error(400, "invalid_request")?;
    let plain = Report { gz: b"plain text".to_vec(), ..Report::new("") };
    upload(ctx, &b, &path, &plain.body(&path, b.key()))?.expect_error(400, "invalid_request")?;
    let mut not_base64 = good.clone();
    not_base64["report"] = json!("***");
    upload(ctx, &b, &path, &not_base64)?.expect_error(400, "invalid_request")?;
    let mut format = good.clone();
    format["format"] = json!("html");
    upload(ctx, &b, &path, &format)?.expect_error(400, "invalid_request")?;
    let mut extra = good.clone();
    extra["builder"] = json!("someone");
    upload(ctx, &b, &path, &extra)?.expect_error(400, "invalid_request")?;
    // One byte over the limit (4,000,000 bytes of gzip).
    let mut huge = report.gz.clone();
    huge.resize(4_000_001, 0);
    let huge = Report { gz: huge, ..Report::new("") };
    upload(ctx, &b, &path, &huge.body(&path, b.key()))?.expect_error(413, "payload_too_large")?;
    ensure_eq!(listed(ctx, &path)?.len(), 0, "reports after refused uploads");
    Ok(())
}

/// Eight reports per builder and path; a ninth is refused, another builder's is not.
pub fn a_ninth_report_on_a_path_is_refused(ctx: &Ctx) -> TestResult {
    let (b, other) = (builder(ctx, 1)?, builder(ctx, 1)?);
    let path = store_path("many-diffs");
    for i in 0..8 {
        upload(ctx, &b, &path, &Report::new(&format!("report {i}\n")).body(&path, b.key()))?.expect(201)?;
    }
    let r = upload(ctx, &b, &path, &Report::new("ninth\n").body(&path, b.key()))?;
    r.expect_error(422, "too_many_diffs")?;
    upload(ctx, &other, &path, &Report::new("other\n").body(&path, other.key()))?.expect(201)?;
    let list = listed(ctx, &path)?;
    ensure_eq!(list.len(), 9, "reports listed");
    ensure_eq!(list[0]["builder"], json!(other.name), "newest first");
    Ok(())
}
