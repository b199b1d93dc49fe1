//! What this builder claims about an output, signed as Nix signs store paths, and
//! the requests that carry the claims.

use nhc_core::api::{SubmitRequest, SubmittedOutput};
use nhc_core::fingerprint::References;
use nhc_core::{fingerprint, DrvPath, NarHash, OutputName, SecretKey, StorePath};

/// What this builder claims about one output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFacts {
    pub name: Option<OutputName>,
    pub path: StorePath,
    pub nar_hash: NarHash,
    pub nar_size: u64,
    pub references: References,
}

/// Signs the fingerprint Nix signs for a path.
fn sign(key: &SecretKey, f: OutputFacts) -> SubmittedOutput {
    let fp = fingerprint(&f.path, &f.nar_hash, f.nar_size, &f.references);
    SubmittedOutput {
        output_name: f.name,
        output_path: f.path,
        nar_hash: f.nar_hash,
        nar_size: f.nar_size,
        references: f.references,
        signature: key.sign(&fp),
    }
}

/// The signed requests that carry `outputs` of `drv`. The server takes `drv_path` only
/// when every output of the request is named, so outputs whose name could not be
/// found go in a request of their own without it: their paths are still attested,
/// only the link to the derivation is missing. No outputs, no requests.
pub fn requests(key: &SecretKey, drv: Option<&DrvPath>, outputs: Vec<OutputFacts>) -> Vec<SubmitRequest> {
    let (named, unnamed): (Vec<_>, Vec<_>) = match drv {
        Some(_) => outputs.into_iter().partition(|f| f.name.is_some()),
        None => (Vec::new(), outputs),
    };
    let signed = |outputs: Vec<OutputFacts>| outputs.into_iter().map(|f| sign(key, f)).collect::<Vec<_>>();
    let mut out = Vec::new();
    if !named.is_empty() {
        out.push(SubmitRequest { drv_path: drv.cloned(), outputs: signed(named) });
    }
    if !unnamed.is_empty() {
        out.push(SubmitRequest { drv_path: None, outputs: signed(unnamed) });
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn key() -> SecretKey {
        SecretKey::from_seed(nhc_core::KeyName::parse("test-1").unwrap(), [7; 32])
    }

    pub(crate) fn facts(name: &str) -> OutputFacts {
        OutputFacts {
            name: Some(OutputName::parse("out").unwrap()),
            path: StorePath::parse(&format!("/nix/store/mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-{name}")).unwrap(),
            nar_hash: NarHash::from_bytes([3; 32]),
            nar_size: 120,
            references: References::new(vec![]).unwrap(),
        }
    }

    #[test]
    fn signatures_are_nix_signatures() {
        let f = facts("hello");
        let fp = fingerprint(&f.path, &f.nar_hash, f.nar_size, &f.references);
        let s = sign(&key(), f);
        assert!(key().public_key().verifies(&fp, &s.signature));
    }

    /// The server refuses `drv_path` with an output that has no `output_name` (400,
    /// so the item would sit in rejected/ for ever): such outputs go without it.
    #[test]
    fn an_output_without_a_name_is_sent_without_the_derivation() {
        let drv = DrvPath::parse("/nix/store/76w21n1f03fs5kw8fnffphx7qrqffw6r-hello.drv").unwrap();
        let unnamed = OutputFacts { name: None, ..facts("hello-odd") };
        let reqs = requests(&key(), Some(&drv), vec![facts("hello"), unnamed.clone()]);
        assert_eq!(reqs.len(), 2);
        for r in &reqs {
            assert!(r.drv_path.is_none() || r.outputs.iter().all(|o| o.output_name.is_some()), "{r:?}");
        }
        assert_eq!(reqs[0].drv_path.as_ref(), Some(&drv));
        assert_eq!(reqs[0].outputs[0].output_path, facts("hello").path);
        assert_eq!((reqs[1].drv_path.as_ref(), &reqs[1].outputs[0].output_path), (None, &unnamed.path));
        // Only unnamed outputs: one request, without the derivation.
        let reqs = requests(&key(), Some(&drv), vec![unnamed.clone()]);
        assert_eq!(reqs.len(), 1);
        assert!(reqs[0].drv_path.is_none());
        // Without a derivation every output goes in one request, named or not.
        let reqs = requests(&key(), None, vec![facts("hello"), unnamed]);
        assert_eq!((reqs.len(), reqs[0].outputs.len()), (1, 2));
        assert!(requests(&key(), Some(&drv), vec![]).is_empty());
    }
}
