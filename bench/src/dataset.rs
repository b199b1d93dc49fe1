//! A deterministic dataset: every value derives from (seed, index) through SHA-256,
//! so a run can be repeated exactly, and the read benchmark can name the paths the
//! load phase wrote without a file in between.

use nhc_core::api::{SubmitRequest, SubmittedOutput};
use nhc_core::fingerprint::References;
use nhc_core::{fingerprint, nix32, DrvPath, KeyName, NarHash, OutputName, SecretKey, StorePath};
use sha2::{Digest, Sha256};

pub struct Dataset {
    pub seed: u64,
}

fn digest(seed: u64, what: &str, i: u64) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(what.as_bytes());
    h.update(i.to_le_bytes());
    h.finalize().into()
}

impl Dataset {
    pub fn builder_name(&self, b: u64) -> String {
        format!("bench-{}-{b}", self.seed)
    }

    pub fn key(&self, b: u64) -> SecretKey {
        let name = KeyName::parse(&format!("bench-{}-{b}-1", self.seed)).expect("valid key name");
        SecretKey::from_seed(name, digest(self.seed, "key", b))
    }

    pub fn output_path(&self, i: u64) -> StorePath {
        let h = digest(self.seed, "out", i);
        StorePath::parse(&format!("/nix/store/{}-bench-{i}", nix32::encode(&h[..20]))).expect("valid path")
    }

    pub fn drv_path(&self, i: u64) -> DrvPath {
        let h = digest(self.seed, "drv", i);
        DrvPath::parse(&format!("/nix/store/{}-bench-{i}.drv", nix32::encode(&h[..20]))).expect("valid drv")
    }

    /// Most builders agree; builder 3 differs on one path in ten, like a real
    /// population with a few unreproducible packages.
    pub fn nar_hash(&self, i: u64, builder: u64) -> NarHash {
        if builder == 3 && i.is_multiple_of(10) {
            NarHash::from_bytes(digest(self.seed, "nar-odd", i))
        } else {
            NarHash::from_bytes(digest(self.seed, "nar", i))
        }
    }

    /// Path i references the two paths before it, like a small dependency chain.
    pub fn references(&self, i: u64) -> References {
        let refs = (i.saturating_sub(2)..i).map(|j| self.output_path(j)).collect();
        References::new(refs).expect("distinct")
    }

    pub fn output(&self, key: &SecretKey, i: u64, builder: u64) -> SubmittedOutput {
        let output_path = self.output_path(i);
        let nar_hash = self.nar_hash(i, builder);
        let nar_size = 1000 + (i % 100_000);
        let references = self.references(i);
        let signature = key.sign(&fingerprint(&output_path, &nar_hash, nar_size, &references));
        SubmittedOutput {
            output_name: Some(OutputName::parse("out").expect("valid")),
            output_path,
            nar_hash,
            nar_size,
            references,
            signature,
        }
    }

    /// A submission of paths `first..first+count` by `builder`. With one output it
    /// names the derivation, as the hook does; with many, the batch has no drv.
    pub fn submission(&self, key: &SecretKey, builder: u64, first: u64, count: u64) -> Vec<u8> {
        let outputs = (first..first + count).map(|i| self.output(key, i, builder)).collect();
        let drv_path = (count == 1).then(|| self.drv_path(first));
        serde_json::to_vec(&SubmitRequest { drv_path, outputs }).expect("serialisable")
    }
}
