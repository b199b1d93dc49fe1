//! `GET /openapi.json`: every deployment serves the OpenAPI 3.1 document of the
//! shared router, and serves every route it lists.

use serde_json::Value;

use crate::client::Ctx;
use crate::{ensure, TestResult};

/// Routes every deployment has, as (method, path) in OpenAPI's spelling.
const CORE: &[(&str, &str)] = &[
    ("get", "/health"),
    ("get", "/openapi.json"),
    ("get", "/v1/me"),
    ("get", "/v1/builders"),
    ("get", "/v1/builders/{name}/attestations"),
    ("get", "/v1/outputs/{basename}"),
    ("get", "/v1/derivations/{drv}"),
    ("post", "/v1/status"),
    ("post", "/v1/attestations"),
    ("post", "/v1/admin/builders"),
    ("delete", "/v1/admin/builders/{name}"),
    ("get", "/nix-cache-info"),
    ("get", "/{file}"),
    ("get", "/builders/{name}/nix-cache-info"),
    ("get", "/builders/{name}/{file}"),
];

fn document(ctx: &Ctx) -> Result<Value, libtest_mimic::Failed> {
    let r = ctx.get("/openapi.json")?;
    r.expect(200)?;
    ensure!(r.content_type.starts_with("application/json"), "content-type {:?}", r.content_type);
    ensure!(r.nosniff, "no X-Content-Type-Options: nosniff");
    r.json()
}

pub fn the_openapi_document_is_served(ctx: &Ctx) -> TestResult {
    let doc = document(ctx)?;
    let version = doc["openapi"].as_str().unwrap_or_default();
    ensure!(version.starts_with("3.1."), "\"openapi\" is {:?}, not 3.1.x", doc["openapi"]);
    let paths = doc["paths"].as_object().ok_or("the document has no paths")?;
    for (method, path) in CORE {
        ensure!(paths.get(*path).and_then(|p| p.get(*method)).is_some(), "the document lacks {method} {path}");
    }
    ensure!(doc["components"]["schemas"]["Attestation"].is_object(), "the document lacks the Attestation schema");
    ensure!(ctx.head("/openapi.json")?.status == 200, "HEAD /openapi.json");
    Ok(())
}

/// Each route in the document is a route of this deployment: asked without
/// credentials (and with an empty JSON object as body, so nothing changes), it
/// answers something other than 405 and the router's `no such route`.
pub fn every_documented_route_is_served(ctx: &Ctx) -> TestResult {
    let doc = document(ctx)?;
    let paths = doc["paths"].as_object().ok_or("the document has no paths")?;
    for (template, item) in paths {
        let path = template
            .replace("{name}", "conformance-nobody")
            .replace("{basename}", "00000000000000000000000000000000-conformance")
            .replace("{drv}", "00000000000000000000000000000000-conformance.drv")
            .replace("{file}", "00000000000000000000000000000000.narinfo")
            .replace("{rev}", "conformance-rev")
            .replace("{other_rev}", "conformance-other-rev")
            .replace("{id}", "1");
        ensure!(!path.contains('{'), "no example value for a parameter of {template}");
        for method in item.as_object().map(|m| m.keys().cloned().collect::<Vec<_>>()).unwrap_or_default() {
            let r = match method.as_str() {
                "get" => ctx.get(&path)?,
                "post" => ctx.post(&path, None, b"{}")?,
                "delete" => ctx.delete(&path, None)?,
                "put" => ctx.put_typed(&path, None, "text/plain", b"")?,
                other => return Err(format!("the suite cannot ask {other} {template}").into()),
            };
            let unrouted =
                r.status == 405 || (r.status == 404 && r.json().is_ok_and(|v| v["message"] == "no such route"));
            ensure!(!unrouted, "{method} {path} (documented as {template}) is not routed: {} {}", r.status, r.body);
        }
    }
    Ok(())
}
