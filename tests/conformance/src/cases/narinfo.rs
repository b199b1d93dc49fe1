use crate::client::Ctx;
use crate::fixtures::{attest, builder, drv_path, nar_hash, random, store_path, Out};
use crate::{ensure, ensure_eq, TestResult};
use nhc_core::nix32;

fn fields(body: &str) -> Vec<(String, String)> {
    body.lines().filter_map(|l| l.split_once(": ").map(|(k, v)| (k.to_owned(), v.to_owned()))).collect()
}

fn field<'a>(f: &'a [(String, String)], key: &str) -> Option<&'a str> {
    f.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

pub fn builder_view_serves_its_own_signature(ctx: &Ctx) -> TestResult {
    let (a, b) = (builder(ctx, 1)?, builder(ctx, 1)?);
    let drv = drv_path("ni");
    let (dep, path) = (store_path("dep"), store_path("ni"));
    let out = Out::new(&path, nar_hash()).size(777).refs(&[dep.clone(), path.clone()]);
    attest(ctx, &a, Some(&drv), &[&out])?;
    let info = ctx.get(&format!("/builders/{}/nix-cache-info", a.name))?;
    info.expect(200)?;
    ensure!(info.body.contains("StoreDir: /nix/store"), "cache info: {}", info.body);

    let url = format!("/builders/{}/{}.narinfo", a.name, path.hash_part());
    let r = ctx.get(&url)?;
    r.expect(200)?;
    ensure!(r.content_type.starts_with("text/x-nix-narinfo"), "content type {}", r.content_type);
    ensure!(r.body.ends_with('\n'), "narinfo must end with a newline");
    ensure!(r.body.lines().all(|l| l.contains(": ")), "every line is `Key: value`: {}", r.body);
    let f = fields(&r.body);
    let mut refs = [dep.basename(), path.basename()];
    refs.sort();
    ensure_eq!(field(&f, "StorePath"), Some(path.as_str()), "StorePath");
    ensure_eq!(field(&f, "URL").map(|u| u.to_owned()), Some(format!("nar/{}.nar", out.hash.to_nix32())), "URL");
    ensure_eq!(field(&f, "Compression"), Some("none"), "Compression");
    ensure_eq!(field(&f, "NarHash").map(|h| h.to_owned()), Some(out.hash.to_string()), "NarHash");
    ensure_eq!(field(&f, "NarSize"), Some("777"), "NarSize");
    ensure_eq!(field(&f, "References").map(|r| r.to_owned()), Some(refs.join(" ")), "References");
    ensure_eq!(field(&f, "Deriver"), Some(drv.as_store_path().basename()), "Deriver");
    let sigs: Vec<&str> = f.iter().filter(|(k, _)| k == "Sig").map(|(_, v)| v.as_str()).collect();
    let expected = a.key().sign(&out.fingerprint()).to_string();
    ensure_eq!(sigs, vec![expected.as_str()], "Sig");

    let head = ctx.head(&url)?;
    head.expect(200)?;
    ensure!(head.body.is_empty(), "HEAD returned a body");
    ctx.get(&format!("/builders/{}/{}.narinfo", b.name, path.hash_part()))?.expect_error(404, "not_found")?;
    ctx.head(&format!("/builders/{}/{}.narinfo", b.name, path.hash_part()))?.expect(404)?;
    // No References line when there are none.
    let lone = store_path("lone");
    attest(ctx, &a, None, &[&Out::new(&lone, nar_hash()).unnamed()])?;
    let r = ctx.get(&format!("/builders/{}/{}.narinfo", a.name, lone.hash_part()))?;
    ensure!(!r.body.contains("References:"), "empty References line: {}", r.body);
    ensure!(!r.body.contains("Deriver:"), "Deriver without a derivation: {}", r.body);
    Ok(())
}

pub fn everyone_view_signs_with_every_agreeing_builder(ctx: &Ctx) -> TestResult {
    let (a, b, c) = (builder(ctx, 1)?, builder(ctx, 1)?, builder(ctx, 1)?);
    let path = store_path("agree");
    let (h1, h2) = (nar_hash(), nar_hash());
    let (o1, o2) = (Out::new(&path, h1), Out::new(&path, h2));
    attest(ctx, &c, None, &[&o2])?;
    attest(ctx, &a, None, &[&o1])?;
    attest(ctx, &b, None, &[&o1])?;
    let r = ctx.get(&format!("/{}.narinfo", path.hash_part()))?;
    r.expect(200)?;
    let f = fields(&r.body);
    ensure_eq!(field(&f, "NarHash").map(|h| h.to_owned()), Some(h1.to_string()), "the majority hash");
    let mut sigs: Vec<String> = f.iter().filter(|(k, _)| k == "Sig").map(|(_, v)| v.clone()).collect();
    sigs.sort();
    let mut expected = vec![a.key().sign(&o1.fingerprint()).to_string(), b.key().sign(&o1.fingerprint()).to_string()];
    expected.sort();
    ensure_eq!(sigs, expected, "one Sig per agreeing builder");
    ctx.head(&format!("/{}.narinfo", path.hash_part()))?.expect(200)?;
    Ok(())
}

pub fn a_wrong_size_attested_first_does_not_hide_the_majority(ctx: &Ctx) -> TestResult {
    // One builder claims the majority's hash first but signs another size: its
    // signature covers other store-path info, so it must not decide the narinfo.
    let (m, a, b) = (builder(ctx, 1)?, builder(ctx, 1)?, builder(ctx, 1)?);
    let path = store_path("first-liar");
    let h = nar_hash();
    let (lie, truth) = (Out::new(&path, h).size(999), Out::new(&path, h).size(120));
    attest(ctx, &m, None, &[&lie])?;
    attest(ctx, &a, None, &[&truth])?;
    attest(ctx, &b, None, &[&truth])?;
    let r = ctx.get(&format!("/{}.narinfo", path.hash_part()))?;
    r.expect(200)?;
    let f = fields(&r.body);
    ensure_eq!(field(&f, "NarSize"), Some("120"), "NarSize of the majority");
    let mut sigs: Vec<String> = f.iter().filter(|(k, _)| k == "Sig").map(|(_, v)| v.clone()).collect();
    sigs.sort();
    let mut expected =
        vec![a.key().sign(&truth.fingerprint()).to_string(), b.key().sign(&truth.fingerprint()).to_string()];
    expected.sort();
    ensure_eq!(sigs, expected, "the agreeing builders' signatures");
    Ok(())
}

pub fn everyone_view_breaks_ties_by_first_attested(ctx: &Ctx) -> TestResult {
    let (a, b) = (builder(ctx, 1)?, builder(ctx, 1)?);
    let path = store_path("tie");
    let (h1, h2) = (nar_hash(), nar_hash());
    attest(ctx, &b, None, &[&Out::new(&path, h2)])?;
    attest(ctx, &a, None, &[&Out::new(&path, h1)])?;
    let f = fields(&ctx.get(&format!("/{}.narinfo", path.hash_part()))?.body);
    ensure_eq!(field(&f, "NarHash").map(|h| h.to_owned()), Some(h2.to_string()), "the first attested hash wins a tie");
    ensure_eq!(f.iter().filter(|(k, _)| k == "Sig").count(), 1, "one Sig");
    Ok(())
}

pub fn narinfo_lookups_of_unknown_paths_are_404(ctx: &Ctx) -> TestResult {
    let a = builder(ctx, 1)?;
    let unknown = nix32::encode(&random::<20>());
    for path in [
        format!("/{unknown}.narinfo"),
        "/invalid.narinfo".to_owned(),
        format!("/{}.narinfo", "e".repeat(32)),
        format!("/builders/{}/{unknown}.narinfo", a.name),
        format!("/builders/{}/x.narinfo", a.name),
        format!("/builders/{}/nix-cache-info", crate::fixtures::unique("ghost")),
    ] {
        ctx.get(&path)?.expect_error(404, "not_found")?;
    }
    Ok(())
}
