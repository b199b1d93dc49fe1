//! `GET /v1/me`: the token's builder and its keys.

use crate::client::Ctx;
use crate::fixtures::builder;
use crate::{ensure, ensure_eq, TestResult};

pub fn me_names_the_tokens_builder_and_keys(ctx: &Ctx) -> TestResult {
    let b = builder(ctx, 2)?;
    let r = ctx.get_auth("/v1/me", Some(&b.token))?;
    r.expect(200)?;
    let v = r.json()?;
    ensure_eq!(v["name"].as_str(), Some(b.name.as_str()), "name");
    let mut got: Vec<String> = v["public_keys"]
        .as_array()
        .ok_or("no public_keys")?
        .iter()
        .filter_map(|k| k.as_str().map(str::to_owned))
        .collect();
    let mut want: Vec<String> = b.keys.iter().map(|k| k.public_key().to_string()).collect();
    got.sort();
    want.sort();
    ensure_eq!(got, want, "public_keys");
    for bad in [None, Some("wrong")] {
        ctx.get_auth("/v1/me", bad)?.expect_error(401, "unauthorized")?;
    }
    ensure!(ctx.get("/v1/me")?.status == 401, "no token must be 401");
    Ok(())
}
