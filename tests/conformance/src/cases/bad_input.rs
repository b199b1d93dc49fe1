use serde_json::{json, Value};

use crate::client::Ctx;
use crate::fixtures::{assert_unattested, builder, drv_path, nar_hash, store_path, submission, Out};
use crate::{ensure, TestResult};

pub fn malformed_json_is_400(ctx: &Ctx) -> TestResult {
    let b = builder(ctx, 1)?;
    let syntax: [&[u8]; 6] = [b"", b"{", b"{\"outputs\": [}", b"{} trailing", b"{'outputs': []}", b"nul"];
    for body in syntax {
        ctx.post("/v1/attestations", Some(&b.token), body)?.expect_error(400, "invalid_json")?;
        ctx.post("/v1/status", None, body)?.expect_error(400, "invalid_json")?;
    }
    // Bytes that are not UTF-8, sent as what they are: labelled as JSON, a Lambda
    // front end (and cargo-lambda's emulator) refuses them before the function runs.
    for path in ["/v1/attestations", "/v1/status"] {
        ctx.post_typed(path, Some(&b.token), "application/octet-stream", b"\xff\xfe{}")?
            .expect_error(400, "invalid_json")?;
    }
    let shape: [&[u8]; 5] = [b"[]", b"null", b"\"x\"", b"{\"outputs\": {}}", b"{\"outputs\": [1]}"];
    for body in shape {
        ctx.post("/v1/attestations", Some(&b.token), body)?.expect_error(400, "invalid_request")?;
    }
    Ok(())
}

pub fn bad_fields_are_400_and_change_nothing(ctx: &Ctx) -> TestResult {
    let b = builder(ctx, 1)?;
    let path = store_path("fields");
    let out = Out::new(&path, nar_hash());
    let good = out.signed(b.key());
    let hash_part = path.hash_part().to_owned();
    let nix32 = out.hash.to_nix32();
    let with = |field: &str, value: Value| {
        let mut v = good.clone();
        v[field] = value;
        v
    };
    let without = |field: &str| {
        let mut v = good.clone();
        v.as_object_mut().map(|o| o.remove(field));
        v
    };
    let mut cases: Vec<(String, Value)> = vec![
        ("bare nix32 hash".into(), with("nar_hash", json!(nix32))),
        ("sha512 prefix".into(), with("nar_hash", json!(format!("sha512:{nix32}")))),
        ("letter e in nix32".into(), with("nar_hash", json!(format!("sha256:e{}", &nix32[1..])))),
        ("nix32 over 256 bits".into(), with("nar_hash", json!(format!("sha256:z{}", &nix32[1..])))),
        ("short hash".into(), with("nar_hash", json!(format!("sha256:{}", &nix32[1..])))),
        ("hex with g".into(), with("nar_hash", json!(format!("sha256:{}g", "0".repeat(63))))),
        ("SRI of 31 bytes".into(), with("nar_hash", json!("sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="))),
        ("hash not a string".into(), with("nar_hash", json!(5))),
        ("dot-dot name".into(), with("output_path", json!(format!("/nix/store/{hash_part}-..")))),
        ("slash in name".into(), with("output_path", json!(format!("/nix/store/{hash_part}-a/b")))),
        ("traversal".into(), with("output_path", json!(format!("/nix/store/../{hash_part}-x")))),
        ("other store dir".into(), with("output_path", json!(format!("/gnu/store/{hash_part}-x")))),
        (
            "uppercase hash part".into(),
            with("output_path", json!(format!("/nix/store/{}-x", hash_part.to_uppercase()))),
        ),
        ("space in name".into(), with("output_path", json!(format!("/nix/store/{hash_part}-a b")))),
        ("negative size".into(), with("nar_size", json!(-1))),
        ("fractional size".into(), with("nar_size", json!(1.5))),
        ("size as string".into(), with("nar_size", json!("1234"))),
        ("size over 64 bits".into(), with("nar_size", json!(18446744073709551616u128 as f64))),
        ("size over 2^53".into(), with("nar_size", json!(1u64 << 53))),
        ("reference not a store path".into(), with("references", json!(["/etc/passwd"]))),
        ("reference twice".into(), with("references", json!([path.as_str(), path.as_str()]))),
        ("references not a list".into(), with("references", json!("x"))),
        ("bad output name".into(), with("output_name", json!(".hidden"))),
        ("output name with slash".into(), with("output_name", json!("a/b"))),
        ("signature without key name".into(), with("signature", json!("AAAA"))),
        ("signature of 63 bytes".into(), with("signature", json!(format!("{}:{}", b.key().name(), "A".repeat(84))))),
        ("missing nar_hash".into(), without("nar_hash")),
        ("missing signature".into(), without("signature")),
        ("missing output_path".into(), without("output_path")),
        ("missing nar_size".into(), without("nar_size")),
    ];
    // Whole-request shapes.
    let whole: Vec<(&str, Value)> = vec![
        ("empty outputs", json!({"outputs": []})),
        ("no outputs", json!({"drv_path": drv_path("x").as_str()})),
        ("drv_path not .drv", json!({"drv_path": path.as_str(), "outputs": [good.clone()]})),
        ("drv_path not a path", json!({"drv_path": "hello.drv", "outputs": [good.clone()]})),
        (
            "output_name missing with a drv",
            json!({"drv_path": drv_path("x").as_str(), "outputs": [without("output_name")]}),
        ),
    ];
    for (what, body) in whole {
        let r = ctx.post_json("/v1/attestations", Some(&b.token), &body)?;
        r.expect_error(400, "invalid_request").map_err(|e| format!("{what}: {}", e.message().unwrap_or("")))?;
    }
    for (what, output) in cases.drain(..) {
        let r = ctx.post_json("/v1/attestations", Some(&b.token), &submission(None, vec![output]))?;
        r.expect_error(400, "invalid_request").map_err(|e| format!("{what}: {}", e.message().unwrap_or("")))?;
    }
    assert_unattested(ctx, &path)?;
    // The unmodified output is accepted: the cases above failed for their one change.
    let r = ctx.post_json("/v1/attestations", Some(&b.token), &submission(None, vec![good]))?;
    r.expect(201)?;
    Ok(())
}

pub fn oversized_bodies_are_413(ctx: &Ctx) -> TestResult {
    let b = builder(ctx, 1)?;
    let filler = "a".repeat(5 * 1024 * 1024);
    let body = format!("{{\"outputs\": [], \"padding\": \"{filler}\"}}");
    ctx.post_large("/v1/attestations", Some(&b.token), body.as_bytes())?.expect_error(413, "payload_too_large")?;
    let body = format!("{{\"paths\": [], \"padding\": \"{filler}\"}}");
    ctx.post_large("/v1/status", None, body.as_bytes())?.expect_error(413, "payload_too_large")?;
    let body = format!("{{\"name\": \"x\", \"public_keys\": [], \"padding\": \"{filler}\"}}");
    ctx.post_large("/v1/admin/builders", Some(&ctx.admin_token), body.as_bytes())?
        .expect_error(413, "payload_too_large")?;
    // Just under the limit is read (and rejected for its content, not its size).
    let body = format!("{{\"outputs\": [], \"padding\": \"{}\"}}", "a".repeat(4 * 1024 * 1024 - 100));
    ctx.post("/v1/attestations", Some(&b.token), body.as_bytes())?.expect_error(400, "invalid_request")?;
    Ok(())
}

pub fn hostile_strings_never_come_back_as_html(ctx: &Ctx) -> TestResult {
    let b = builder(ctx, 1)?;
    let hostile = "<script>alert(1)</script>";
    let responses = [
        ctx.get(&format!("/v1/outputs/{}", urlencode(hostile)))?,
        ctx.get(&format!("/v1/derivations/{}", urlencode(hostile)))?,
        ctx.get(&format!("/v1/builders/{}/attestations", urlencode(hostile)))?,
        ctx.post_json("/v1/status", None, &json!({"paths": [hostile]}))?,
        ctx.post_json(
            "/v1/attestations",
            Some(&b.token),
            &submission(
                None,
                vec![json!({"output_path": hostile, "nar_hash": hostile, "nar_size": 1, "signature": hostile})],
            ),
        )?,
        ctx.admin_post("/v1/admin/builders", &json!({"name": hostile, "public_keys": [hostile]}))?,
    ];
    for r in responses {
        ensure!((400..500).contains(&r.status), "hostile input gave {}: {}", r.status, r.body);
        ensure!(r.content_type.starts_with("application/json"), "hostile input answered as {:?}", r.content_type);
        ensure!(r.nosniff, "no X-Content-Type-Options: nosniff on an error that echoes input");
        r.json()?;
    }
    Ok(())
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|c| {
            if c.is_ascii_alphanumeric() || b"-._~".contains(&c) {
                (c as char).to_string()
            } else {
                format!("%{c:02X}")
            }
        })
        .collect()
}
