use serde_json::json;

use crate::client::Ctx;
use crate::{ensure, ensure_eq, TestResult};

pub fn health_answers_ok(ctx: &Ctx) -> TestResult {
    let r = ctx.get("/health")?;
    r.expect(200)?;
    ensure_eq!(r.json()?, json!({"status": "ok"}), "health body");
    Ok(())
}

/// Unknown API routes; unknown pages (`/nope`) are the HTML 404 of `web`.
pub fn unknown_routes_are_json_404(ctx: &Ctx) -> TestResult {
    for path in ["/v1/nope", "/v1/outputs", "/v1/builders/x/y/z", "/v1/outputs/a/b"] {
        ctx.get(path)?.expect_error(404, "not_found")?;
    }
    Ok(())
}

pub fn wrong_methods_are_json_405(ctx: &Ctx) -> TestResult {
    ctx.put("/health")?.expect_error(405, "method_not_allowed")?;
    ctx.post("/v1/builders", None, b"{}")?.expect_error(405, "method_not_allowed")?;
    ctx.get("/v1/attestations")?.expect_error(405, "method_not_allowed")?;
    Ok(())
}

pub fn head_works_on_get_routes(ctx: &Ctx) -> TestResult {
    let r = ctx.head("/health")?;
    r.expect(200)?;
    ensure!(r.body.is_empty(), "HEAD returned a body: {:?}", r.body);
    ctx.head("/v1/builders")?.expect(200)?;
    ctx.head("/nix-cache-info")?.expect(200)?;
    Ok(())
}

pub fn cache_info_is_served(ctx: &Ctx) -> TestResult {
    let r = ctx.get("/nix-cache-info")?;
    r.expect(200)?;
    for line in ["StoreDir: /nix/store", "WantMassQuery: 1", "Priority: 50"] {
        ensure!(r.body.lines().any(|l| l == line), "nix-cache-info lacks {line:?}: {}", r.body);
    }
    Ok(())
}
