//! Builders, keys, store paths and signed outputs made up for each test, random so
//! that tests never see each other's data.

use libtest_mimic::Failed;
use nhc_core::fingerprint::References;
use nhc_core::{fingerprint, nix32, DrvPath, KeyName, NarHash, SecretKey, StorePath};
use serde_json::{json, Value};

use crate::client::{Ctx, Resp};

pub fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("OS randomness");
    b
}

/// `prefix-<10 random nix32 chars>`: valid as a builder, key or store path name.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &nix32::encode(&random::<8>())[..10])
}

pub fn store_path(name: &str) -> StorePath {
    StorePath::parse(&format!("/nix/store/{}-{name}", nix32::encode(&random::<20>()))).expect("valid path")
}

pub fn drv_path(name: &str) -> DrvPath {
    DrvPath::parse(&format!("/nix/store/{}-{name}.drv", nix32::encode(&random::<20>()))).expect("valid drv")
}

pub fn nar_hash() -> NarHash {
    NarHash::from_bytes(random::<32>())
}

pub fn secret_key(prefix: &str) -> SecretKey {
    SecretKey::from_seed(KeyName::parse(&unique(prefix)).expect("valid key name"), random::<32>())
}

pub struct TestBuilder {
    pub name: String,
    pub token: String,
    pub keys: Vec<SecretKey>,
}

impl TestBuilder {
    pub fn key(&self) -> &SecretKey {
        &self.keys[0]
    }

    pub fn public_key(&self) -> String {
        self.key().public_key().to_string()
    }
}

/// Creates a builder with `n_keys` fresh keys through the admin API.
pub fn builder(ctx: &Ctx, n_keys: usize) -> Result<TestBuilder, Failed> {
    let name = unique("b");
    let keys: Vec<SecretKey> = (0..n_keys).map(|_| secret_key("k")).collect();
    let public: Vec<String> = keys.iter().map(|k| k.public_key().to_string()).collect();
    let r = ctx.admin_post("/v1/admin/builders", &json!({"name": name, "public_keys": public}))?;
    r.expect(201)?;
    let v = r.json()?;
    let token = v["token"].as_str().ok_or("no token in the create response")?.to_owned();
    if v["name"] != json!(name) {
        return Err(format!("create answered another name: {}", r.body).into());
    }
    Ok(TestBuilder { name, token, keys })
}

/// One output of a submission, signed by `key` over the fingerprint of these values.
#[derive(Clone)]
pub struct Out {
    pub name: Option<String>,
    pub path: StorePath,
    pub hash: NarHash,
    pub size: u64,
    pub refs: Vec<StorePath>,
}

impl Out {
    pub fn new(path: &StorePath, hash: NarHash) -> Out {
        Out { name: Some("out".into()), path: path.clone(), hash, size: 1234, refs: Vec::new() }
    }

    pub fn named(mut self, name: &str) -> Out {
        self.name = Some(name.into());
        self
    }

    pub fn unnamed(mut self) -> Out {
        self.name = None;
        self
    }

    pub fn refs(mut self, refs: &[StorePath]) -> Out {
        self.refs = refs.to_vec();
        self
    }

    pub fn size(mut self, size: u64) -> Out {
        self.size = size;
        self
    }

    pub fn fingerprint(&self) -> String {
        let refs = References::new(self.refs.clone()).expect("distinct references");
        fingerprint(&self.path, &self.hash, self.size, &refs)
    }

    pub fn signed(&self, key: &SecretKey) -> Value {
        self.json(&key.sign(&self.fingerprint()).to_string())
    }

    pub fn json(&self, signature: &str) -> Value {
        let mut v = json!({
            "output_path": self.path.as_str(),
            "nar_hash": self.hash.to_string(),
            "nar_size": self.size,
            "references": self.refs.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
            "signature": signature,
        });
        if let Some(n) = &self.name {
            v["output_name"] = json!(n);
        }
        v
    }
}

pub fn submission(drv: Option<&DrvPath>, outputs: Vec<Value>) -> Value {
    let mut v = json!({ "outputs": outputs });
    if let Some(d) = drv {
        v["drv_path"] = json!(d.as_str());
    }
    v
}

pub fn submit(ctx: &Ctx, b: &TestBuilder, drv: Option<&DrvPath>, outs: &[&Out]) -> Result<Resp, Failed> {
    let outputs = outs.iter().map(|o| o.signed(b.key())).collect();
    ctx.post_json("/v1/attestations", Some(&b.token), &submission(drv, outputs))
}

/// Submits and asserts 201 with everything stored.
pub fn attest(ctx: &Ctx, b: &TestBuilder, drv: Option<&DrvPath>, outs: &[&Out]) -> Result<(), Failed> {
    let r = submit(ctx, b, drv, outs)?;
    r.expect(201)?;
    if counts(&r)? != json!({"stored": outs.len(), "duplicates": 0}) {
        return Err(format!("unexpected counts: {}", r.body).into());
    }
    Ok(())
}

/// The `{"stored", "duplicates"}` of a submission's answer, after checking its `log`:
/// one receipt per attestation stored (every deployment appends to the transparency
/// log), with distinct indexes and 64-hex-digit leaf hashes.
pub fn counts(r: &Resp) -> Result<Value, Failed> {
    let v = r.json()?;
    let stored = v["stored"].as_u64().ok_or_else(|| format!("no stored count: {}", r.body))?;
    let log = v["log"].as_array().ok_or_else(|| format!("no log receipts: {}", r.body))?;
    if log.len() as u64 != stored {
        return Err(format!("{stored} stored but {} log receipts: {}", log.len(), r.body).into());
    }
    let mut indexes: Vec<u64> = Vec::new();
    for e in log {
        let hex_ok = e["leaf_hash"]
            .as_str()
            .is_some_and(|h| h.len() == 64 && h.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')));
        match (e["index"].as_u64(), hex_ok, e["output_path"].is_string(), e["nar_hash"].is_string()) {
            (Some(i), true, true, true) => indexes.push(i),
            _ => return Err(format!("a malformed log receipt {e}").into()),
        }
    }
    let n = indexes.len();
    indexes.sort_unstable();
    indexes.dedup();
    if indexes.len() != n {
        return Err(format!("log indexes repeat: {}", r.body).into());
    }
    Ok(json!({"stored": v["stored"], "duplicates": v["duplicates"]}))
}

/// Asserts that nobody attested `path` (the output view is a 404).
pub fn assert_unattested(ctx: &Ctx, path: &StorePath) -> Result<(), Failed> {
    let r = ctx.get(&format!("/v1/outputs/{}", path.basename()))?;
    if r.status != 404 {
        return Err(format!("{path} was stored but should not have been: {} {}", r.status, r.body).into());
    }
    Ok(())
}
