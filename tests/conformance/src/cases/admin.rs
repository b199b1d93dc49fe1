use serde_json::{json, Value};

use crate::client::Ctx;
use crate::fixtures::{attest, builder, nar_hash, secret_key, store_path, unique, Out};
use crate::{ensure, ensure_eq, TestResult};

fn listed(ctx: &Ctx, name: &str) -> Result<Option<Value>, libtest_mimic::Failed> {
    let r = ctx.get("/v1/builders")?;
    r.expect(200)?;
    let list = r.json()?;
    let arr = list.as_array().ok_or("builders list is not an array")?;
    Ok(arr.iter().find(|b| b["name"] == json!(name)).cloned())
}

pub fn admin_routes_need_the_admin_token(ctx: &Ctx) -> TestResult {
    let body = json!({"name": unique("b"), "public_keys": [secret_key("k").public_key().to_string()]});
    let b = builder(ctx, 1)?;
    let create = "/v1/admin/builders";
    let token = format!("/v1/admin/builders/{}/tokens", b.name);
    let revoke = format!("/v1/admin/builders/{}/revoke", b.name);
    let delete = format!("/v1/admin/builders/{}", b.name);
    for auth in [None, Some("wrong"), Some(b.token.as_str())] {
        ctx.post_json(create, auth, &body)?.expect_error(401, "unauthorized")?;
        ctx.post(&token, auth, b"")?.expect_error(401, "unauthorized")?;
        ctx.post(&revoke, auth, b"")?.expect_error(401, "unauthorized")?;
        ctx.delete(&delete, auth)?.expect_error(401, "unauthorized")?;
    }
    ensure!(listed(ctx, body["name"].as_str().unwrap_or_default())?.is_none(), "an unauthorised create took effect");
    ensure!(listed(ctx, &b.name)?.is_some(), "an unauthorised delete took effect");
    Ok(())
}

pub fn created_builders_are_listed_with_their_keys(ctx: &Ctx) -> TestResult {
    let b = builder(ctx, 2)?;
    let entry = listed(ctx, &b.name)?.ok_or("new builder not listed")?;
    let mut keys: Vec<String> = b.keys.iter().map(|k| k.public_key().to_string()).collect();
    let mut listed_keys: Vec<String> = entry["public_keys"]
        .as_array()
        .ok_or("no public_keys")?
        .iter()
        .filter_map(|k| k.as_str().map(str::to_owned))
        .collect();
    keys.sort();
    listed_keys.sort();
    ensure_eq!(listed_keys, keys, "listed keys");
    let created = entry["created_at"].as_str().ok_or("no created_at")?;
    ensure!(created.len() >= 20 && created.ends_with('Z') && created.as_bytes()[10] == b'T', "not RFC 3339: {created}");
    ensure!(b.token.len() >= 32, "token too short to hold 128 random bits: {}", b.token);
    Ok(())
}

pub fn taken_names_and_keys_conflict(ctx: &Ctx) -> TestResult {
    let b = builder(ctx, 1)?;
    let fresh = secret_key("k").public_key().to_string();
    // The same name with a fresh key.
    ctx.admin_post("/v1/admin/builders", &json!({"name": b.name, "public_keys": [fresh]}))?
        .expect_error(409, "conflict")?;
    // A fresh name with a taken key.
    let n1 = unique("b");
    ctx.admin_post("/v1/admin/builders", &json!({"name": n1, "public_keys": [b.public_key()]}))?
        .expect_error(409, "conflict")?;
    // A fresh name, a taken key name with other key bytes.
    let other = secret_key("k").public_key().to_string();
    let renamed = format!("{}:{}", b.key().name(), other.split_once(':').map(|x| x.1).unwrap_or_default());
    let n2 = unique("b");
    ctx.admin_post("/v1/admin/builders", &json!({"name": n2, "public_keys": [renamed]}))?
        .expect_error(409, "conflict")?;
    // The same key bytes under another key name.
    let rebadged = format!("{}:{}", unique("k"), b.key().public_key().key_base64());
    let n3 = unique("b");
    ctx.admin_post("/v1/admin/builders", &json!({"name": n3, "public_keys": [rebadged]}))?
        .expect_error(409, "conflict")?;
    for n in [&n1, &n2, &n3] {
        ensure!(listed(ctx, n)?.is_none(), "a conflicting create left builder {n} behind");
    }
    Ok(())
}

pub fn bad_builder_input_is_rejected_and_changes_nothing(ctx: &Ctx) -> TestResult {
    let key = secret_key("k").public_key().to_string();
    let long = "a".repeat(65);
    let bad_names = ["", "-lead", ".hidden", "a b", "a/b", "../etc", "<script>alert(1)</script>", "é", &long, "x\n"];
    for name in bad_names {
        ctx.admin_post("/v1/admin/builders", &json!({"name": name, "public_keys": [key]}))?
            .expect_error(400, "invalid_request")?;
    }
    let name = unique("b");
    for keys in [
        json!([]),
        json!(["nocolon"]),
        json!(["k:notbase64!"]),
        json!(["k:AAAA"]),
        json!([key, key]),
        json!("not a list"),
        json!([1]),
    ] {
        let r = ctx.admin_post("/v1/admin/builders", &json!({"name": name, "public_keys": keys}))?;
        r.expect_error(400, "invalid_request")?;
    }
    ctx.post("/v1/admin/builders", Some(&ctx.admin_token), b"{\"name\": ")?.expect_error(400, "invalid_json")?;
    ctx.admin_post("/v1/admin/builders", &json!({"public_keys": [key]}))?.expect_error(400, "invalid_request")?;
    ensure!(listed(ctx, &name)?.is_none(), "a rejected create left a builder behind");
    // The key of the rejected requests is still free.
    let ok = ctx.admin_post("/v1/admin/builders", &json!({"name": name, "public_keys": [key]}))?;
    ok.expect(201)?;
    Ok(())
}

pub fn tokens_can_be_added_and_revoked(ctx: &Ctx) -> TestResult {
    let b = builder(ctx, 1)?;
    let r = ctx.post(&format!("/v1/admin/builders/{}/tokens", b.name), Some(&ctx.admin_token), b"")?;
    r.expect(201)?;
    let second = r.json()?["token"].as_str().ok_or("no token")?.to_owned();
    ensure!(second != b.token, "the new token equals the first");
    let path = store_path("tok");
    let out = Out::new(&path, nar_hash());
    let body = crate::fixtures::submission(None, vec![out.signed(b.key())]);
    ctx.post_json("/v1/attestations", Some(&second), &body)?.expect(201)?;

    let r = ctx.post(&format!("/v1/admin/builders/{}/revoke", b.name), Some(&ctx.admin_token), b"")?;
    r.expect(200)?;
    ensure_eq!(r.json()?, json!({"revoked": 2}), "revoke count");
    let again = ctx.post(&format!("/v1/admin/builders/{}/revoke", b.name), Some(&ctx.admin_token), b"")?;
    ensure_eq!(again.json()?, json!({"revoked": 0}), "second revoke count");
    for t in [&b.token, &second] {
        ctx.post_json("/v1/attestations", Some(t), &body)?.expect_error(401, "unauthorized")?;
    }
    // A token issued after the revocation works.
    let r = ctx.post(&format!("/v1/admin/builders/{}/tokens", b.name), Some(&ctx.admin_token), b"")?;
    let third = r.json()?["token"].as_str().ok_or("no token")?.to_owned();
    ctx.post_json("/v1/attestations", Some(&third), &body)?.expect(200)?;
    Ok(())
}

pub fn delete_keeps_attestations_and_reserves_the_name(ctx: &Ctx) -> TestResult {
    let b = builder(ctx, 1)?;
    let path = store_path("del");
    attest(ctx, &b, None, &[&Out::new(&path, nar_hash())])?;
    let r = ctx.delete(&format!("/v1/admin/builders/{}", b.name), Some(&ctx.admin_token))?;
    r.expect(204)?;
    ensure!(listed(ctx, &b.name)?.is_none(), "a deleted builder is still listed");
    let out = ctx.get(&format!("/v1/outputs/{}", path.basename()))?;
    out.expect(200)?;
    ensure_eq!(out.json()?["attestations"][0]["builder"], json!(b.name), "attestation after delete");
    ctx.post_json(
        "/v1/attestations",
        Some(&b.token),
        &crate::fixtures::submission(None, vec![Out::new(&path, nar_hash()).signed(b.key())]),
    )?
    .expect_error(401, "unauthorized")?;
    let fresh = secret_key("k").public_key().to_string();
    ctx.admin_post("/v1/admin/builders", &json!({"name": b.name, "public_keys": [fresh]}))?
        .expect_error(409, "conflict")?;
    ctx.delete(&format!("/v1/admin/builders/{}", b.name), Some(&ctx.admin_token))?.expect_error(404, "not_found")?;
    Ok(())
}

pub fn purge_removes_attestations(ctx: &Ctx) -> TestResult {
    let b = builder(ctx, 1)?;
    let other = builder(ctx, 1)?;
    let (mine, shared) = (store_path("purge"), store_path("shared"));
    let h = nar_hash();
    attest(ctx, &b, None, &[&Out::new(&mine, nar_hash()), &Out::new(&shared, h)])?;
    attest(ctx, &other, None, &[&Out::new(&shared, h)])?;
    ctx.delete(&format!("/v1/admin/builders/{}?purge=true", b.name), Some(&ctx.admin_token))?.expect(204)?;
    crate::fixtures::assert_unattested(ctx, &mine)?;
    let r = ctx.get(&format!("/v1/outputs/{}", shared.basename()))?;
    r.expect(200)?;
    let v = r.json()?;
    ensure_eq!(v["status"], json!("one_builder"), "status after purge");
    ensure_eq!(v["attestations"].as_array().map(|a| a.len()), Some(1), "attestations after purge");
    ctx.get(&format!("/v1/builders/{}/attestations", b.name))?.expect_error(404, "not_found")?;
    // A purged name is free again.
    let fresh = secret_key("k").public_key().to_string();
    ctx.admin_post("/v1/admin/builders", &json!({"name": b.name, "public_keys": [fresh]}))?.expect(201)?;
    ctx.delete(&format!("/v1/admin/builders/{}?purge=maybe", other.name), Some(&ctx.admin_token))?
        .expect_error(400, "invalid_request")?;
    Ok(())
}

pub fn unknown_builders_are_404(ctx: &Ctx) -> TestResult {
    let name = unique("ghost");
    let admin = Some(ctx.admin_token.as_str());
    ctx.post(&format!("/v1/admin/builders/{name}/tokens"), admin, b"")?.expect_error(404, "not_found")?;
    ctx.post(&format!("/v1/admin/builders/{name}/revoke"), admin, b"")?.expect_error(404, "not_found")?;
    ctx.delete(&format!("/v1/admin/builders/{name}"), admin)?.expect_error(404, "not_found")?;
    ctx.get(&format!("/v1/builders/{name}/attestations"))?.expect_error(404, "not_found")?;
    ctx.post("/v1/admin/builders/bad%20name/tokens", admin, b"")?.expect_error(400, "invalid_request")?;
    Ok(())
}
