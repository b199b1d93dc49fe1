//! The decision, pure: given the upstream's narinfo and the collection's attestations
//! of that path, how many independent trusted builders signed exactly what the
//! upstream describes, did any trusted builder sign something else, and therefore
//! may Nix have it. Nothing the collection says is believed: each attestation counts
//! only through its own signature, checked here against the trusted keys.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use nhc_core::api::Attestation;
use nhc_core::{fingerprint, NarInfo, PublicKey, Signature};

/// The trusted builder keys, each in an independence group (the operator running
/// it): agreement is counted once per group. A key without a group is its own.
#[derive(Debug, Clone)]
pub struct Trust {
    /// Key name → (key, group).
    keys: BTreeMap<String, (PublicKey, String)>,
}

/// Why the trusted keys or their grouping cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    #[error("no --trusted-key given: nothing could ever be served")]
    NoKeys,
    #[error("two different trusted keys are named {0}")]
    SameName(String),
    #[error("--key-group {0:?}: not `GROUP=KEYNAME[,KEYNAME..]`")]
    BadGroup(String),
    #[error("--key-group {group}: {key} is not the name of a --trusted-key")]
    UnknownKey { group: String, key: String },
    #[error("the key {0} is in two --key-group")]
    TwoGroups(String),
}

impl Trust {
    /// `groups` are `GROUP=KEYNAME,KEYNAME..` (key names, as in `name:base64`).
    pub fn new(keys: Vec<PublicKey>, groups: &[String]) -> Result<Trust, TrustError> {
        if keys.is_empty() {
            return Err(TrustError::NoKeys);
        }
        let mut map = BTreeMap::new();
        for k in keys {
            let name = k.name().as_str().to_owned();
            if let Some((old, _)) = map.get(&name) {
                if old != &k {
                    return Err(TrustError::SameName(name));
                }
                continue;
            }
            map.insert(name.clone(), (k, name));
        }
        let mut grouped = BTreeSet::new();
        for spec in groups {
            let (group, names) = spec.split_once('=').ok_or_else(|| TrustError::BadGroup(spec.clone()))?;
            let group = group.trim();
            if group.is_empty() || names.trim().is_empty() {
                return Err(TrustError::BadGroup(spec.clone()));
            }
            for n in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                let Some(slot) = map.get_mut(n) else {
                    return Err(TrustError::UnknownKey { group: group.to_owned(), key: n.to_owned() });
                };
                if !grouped.insert(n.to_owned()) {
                    return Err(TrustError::TwoGroups(n.to_owned()));
                }
                // `=` cannot be in a key name, so a group name never equals an ungrouped key's.
                slot.1 = format!("{group}=");
            }
        }
        Ok(Trust { keys: map })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The number of independence groups (the largest quorum that can ever be met).
    pub fn groups(&self) -> usize {
        self.keys.values().map(|(_, g)| g).collect::<BTreeSet<_>>().len()
    }

    fn key(&self, sig: &Signature) -> Option<&(PublicKey, String)> {
        self.keys.get(sig.key_name().as_str())
    }
}

/// What to do when a trusted builder signed a different NAR (hash, size or references).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnMismatch {
    /// Refuse the path, whatever the agreeing builders (the default).
    Refuse,
    /// Count only the agreeing builders; the mismatch is logged.
    Allow,
}

impl std::str::FromStr for OnMismatch {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "refuse" => Ok(OnMismatch::Refuse),
            "allow" => Ok(OnMismatch::Allow),
            _ => Err(format!("{s:?}: expected refuse or allow")),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Independent groups that must agree, at least 1.
    pub quorum: usize,
    pub on_mismatch: OnMismatch,
}

/// One trusted builder's vote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vote {
    /// The builder's name as the collection gave it (for the log only: not signed).
    pub builder: String,
    pub signature: Signature,
    pub group: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Serve,
    /// Fewer independent groups agreed than the quorum.
    NoQuorum {
        agreed: usize,
        quorum: usize,
    },
    /// A trusted builder signed another NAR for this path.
    Mismatch,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    /// Trusted signatures over the upstream's fingerprint, one per key.
    pub agreed: Vec<Vote>,
    /// Trusted signatures over another fingerprint of the same path, one per key.
    pub mismatched: Vec<Vote>,
    /// Attestations that count for nothing: key not trusted, signature that verifies
    /// over neither fingerprint, or for another path.
    pub ignored: usize,
}

impl Decision {
    pub fn serves(&self) -> bool {
        self.verdict == Verdict::Serve
    }

    /// Distinct independence groups among the agreeing keys.
    pub fn agreeing_groups(&self) -> usize {
        self.agreed.iter().map(|v| &v.group).collect::<BTreeSet<_>>().len()
    }
}

pub fn decide(upstream: &NarInfo, attestations: &[Attestation], trust: &Trust, policy: &Policy) -> Decision {
    let up = upstream.fingerprint();
    let mut agreed: BTreeMap<String, Vote> = BTreeMap::new();
    let mut mismatched: BTreeMap<String, Vote> = BTreeMap::new();
    let mut ignored = 0;
    for a in attestations {
        let trusted = trust.key(&a.signature);
        let Some((key, group)) = trusted.filter(|_| a.output_path == upstream.store_path) else {
            ignored += 1;
            continue;
        };
        let vote = || Vote { builder: a.builder.to_string(), signature: a.signature.clone(), group: group.clone() };
        let name = key.name().as_str().to_owned();
        if key.verifies(&up, &a.signature) {
            agreed.entry(name).or_insert_with(vote);
            continue;
        }
        let own = fingerprint(&a.output_path, &a.nar_hash, a.nar_size, &a.references);
        if own != up && key.verifies(&own, &a.signature) {
            mismatched.entry(name).or_insert_with(vote);
        } else {
            ignored += 1;
        }
    }
    let mut d = Decision {
        verdict: Verdict::Serve,
        agreed: agreed.into_values().collect(),
        mismatched: mismatched.into_values().collect(),
        ignored,
    };
    let groups = d.agreeing_groups();
    d.verdict = if !d.mismatched.is_empty() && policy.on_mismatch == OnMismatch::Refuse {
        Verdict::Mismatch
    } else if groups < policy.quorum.max(1) {
        Verdict::NoQuorum { agreed: groups, quorum: policy.quorum.max(1) }
    } else {
        Verdict::Serve
    };
    d
}

/// The upstream narinfo with the agreeing builders' `Sig` lines added (those it
/// does not carry already), so that Nix may trust the builders' keys alone.
pub fn with_signatures(upstream: &NarInfo, d: &Decision) -> NarInfo {
    let mut out = upstream.clone();
    for v in &d.agreed {
        if !out.signatures.contains(&v.signature) {
            out.signatures.push(v.signature.clone());
        }
    }
    out
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Serve => f.write_str("serve"),
            Verdict::NoQuorum { agreed, quorum } => write!(f, "refuse: {agreed} of {quorum} agreed"),
            Verdict::Mismatch => f.write_str("refuse: a trusted builder signed another NAR"),
        }
    }
}

/// `key (builder)` list for logs.
pub fn who(votes: &[Vote]) -> String {
    if votes.is_empty() {
        return "-".to_owned();
    }
    votes.iter().map(|v| format!("{} ({})", v.signature.key_name(), v.builder)).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use nhc_core::fingerprint::References;
    use nhc_core::{KeyName, NarHash, SecretKey, StorePath};

    const PATH: &str = "/nix/store/mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello";
    const REF: &str = "/nix/store/7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-glibc";
    const HASH: &str = "sha256:1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h";
    const OTHER: &str = "sha256:0000000000000000000000000000000000000000000000000000";

    fn key(name: &str, seed: u8) -> SecretKey {
        SecretKey::from_seed(KeyName::parse(name).unwrap(), [seed; 32])
    }

    fn refs() -> References {
        References::new(vec![StorePath::parse(REF).unwrap()]).unwrap()
    }

    fn upstream() -> NarInfo {
        NarInfo::parse(&format!(
            "StorePath: {PATH}\nURL: nar/x.nar\nCompression: none\nNarHash: {HASH}\nNarSize: 120\nReferences: {}\n",
            &REF[11..]
        ))
        .unwrap()
    }

    /// `k` attests `hash`/`size`, signed over that (an honest attestation).
    fn att(builder: &str, k: &SecretKey, hash: &str, size: u64) -> Attestation {
        let p = StorePath::parse(PATH).unwrap();
        let h = NarHash::parse(hash).unwrap();
        let sig = k.sign(&fingerprint(&p, &h, size, &refs()));
        Attestation {
            builder: builder.parse().unwrap(),
            drv_path: None,
            output_name: None,
            output_path: p,
            nar_hash: h,
            nar_size: size,
            references: refs(),
            signature: sig,
            submitted_at: "2026-11-30T00:00:00Z".into(),
            log_index: None,
        }
    }

    fn policy(quorum: usize, on_mismatch: OnMismatch) -> Policy {
        Policy { quorum, on_mismatch }
    }

    #[test]
    fn two_trusted_builders_that_agree_meet_a_quorum_of_two() {
        let (a, b, c) = (key("a-1", 1), key("b-1", 2), key("c-1", 3));
        let trust = Trust::new(vec![a.public_key(), b.public_key(), c.public_key()], &[]).unwrap();
        let atts = [att("a", &a, HASH, 120), att("b", &b, HASH, 120)];
        let d = decide(&upstream(), &atts, &trust, &policy(2, OnMismatch::Refuse));
        assert_eq!(d.verdict, Verdict::Serve);
        assert_eq!(d.agreed.len(), 2);
        let d3 = decide(&upstream(), &atts, &trust, &policy(3, OnMismatch::Refuse));
        assert_eq!(d3.verdict, Verdict::NoQuorum { agreed: 2, quorum: 3 });
        // The served narinfo carries both builders' signatures, which Nix can check.
        let served = with_signatures(&upstream(), &d);
        assert_eq!(served.signatures.len(), 2);
        assert!(served.valid_signatures_by(&a.public_key()).next().is_some());
        assert_eq!(NarInfo::parse(&served.to_string()).unwrap(), served);
    }

    #[test]
    fn one_builder_twice_counts_once() {
        let a = key("a-1", 1);
        let trust = Trust::new(vec![a.public_key()], &[]).unwrap();
        let atts = [att("a", &a, HASH, 120), att("a", &a, HASH, 120)];
        let d = decide(&upstream(), &atts, &trust, &policy(2, OnMismatch::Refuse));
        assert_eq!(d.verdict, Verdict::NoQuorum { agreed: 1, quorum: 2 });
        assert_eq!(d.agreed.len(), 1);
    }

    #[test]
    fn untrusted_keys_and_forged_signatures_count_for_nothing() {
        let (a, b) = (key("a-1", 1), key("b-1", 2));
        let trust = Trust::new(vec![a.public_key()], &[]).unwrap();
        // b is not trusted.
        let mut forged = att("a", &b, HASH, 120);
        // A signature by b, relabelled with a's key name: verifies over nothing.
        let relabelled =
            Signature::parse(&format!("a-1:{}", forged.signature.to_string().split_once(':').unwrap().1)).unwrap();
        let mut relabel = forged.clone();
        relabel.signature = relabelled;
        // The server claims a's key agreed, with a signature over another path.
        let mut other_path = att("a", &a, HASH, 120);
        other_path.output_path = StorePath::parse("/nix/store/00000000000000000000000000000000-hello").unwrap();
        forged.builder = "a".parse().unwrap();
        let atts = [forged, relabel, other_path];
        let d = decide(&upstream(), &atts, &trust, &policy(1, OnMismatch::Refuse));
        assert_eq!(d.verdict, Verdict::NoQuorum { agreed: 0, quorum: 1 });
        assert_eq!(d.ignored, 3);
        assert!(d.mismatched.is_empty());
    }

    #[test]
    fn the_server_cannot_turn_a_different_hash_into_agreement() {
        // The collection edits a's attestation to the upstream's hash but keeps a's
        // signature over the other hash: neither agreement nor a counted mismatch
        // unless the signature verifies over what it claims.
        let a = key("a-1", 1);
        let trust = Trust::new(vec![a.public_key()], &[]).unwrap();
        let mut edited = att("a", &a, OTHER, 120);
        edited.nar_hash = NarHash::parse(HASH).unwrap();
        let d = decide(&upstream(), &[edited], &trust, &policy(1, OnMismatch::Refuse));
        assert_eq!(d.verdict, Verdict::NoQuorum { agreed: 0, quorum: 1 });
        assert_eq!(d.ignored, 1);
    }

    #[test]
    fn a_trusted_mismatch_refuses_unless_allowed() {
        let (a, b, c) = (key("a-1", 1), key("b-1", 2), key("c-1", 3));
        let trust = Trust::new(vec![a.public_key(), b.public_key(), c.public_key()], &[]).unwrap();
        let atts = [att("a", &a, HASH, 120), att("b", &b, HASH, 120), att("c", &c, OTHER, 120)];
        let d = decide(&upstream(), &atts, &trust, &policy(2, OnMismatch::Refuse));
        assert_eq!(d.verdict, Verdict::Mismatch);
        assert_eq!(d.mismatched.len(), 1);
        let d = decide(&upstream(), &atts, &trust, &policy(2, OnMismatch::Allow));
        assert_eq!(d.verdict, Verdict::Serve);
        // Another size (or other references) is a mismatch too: the fingerprint differs.
        let atts = [att("a", &a, HASH, 120), att("c", &c, HASH, 121)];
        let d = decide(&upstream(), &atts, &trust, &policy(1, OnMismatch::Refuse));
        assert_eq!(d.verdict, Verdict::Mismatch);
    }

    #[test]
    fn keys_of_one_group_count_once() {
        let (a1, a2, b) = (key("a-1", 1), key("a-2", 2), key("b-1", 3));
        let keys = vec![a1.public_key(), a2.public_key(), b.public_key()];
        let trust = Trust::new(keys.clone(), &["alice=a-1,a-2".into()]).unwrap();
        assert_eq!(trust.groups(), 2);
        let atts = [att("a", &a1, HASH, 120), att("a2", &a2, HASH, 120)];
        let d = decide(&upstream(), &atts, &trust, &policy(2, OnMismatch::Refuse));
        assert_eq!(d.verdict, Verdict::NoQuorum { agreed: 1, quorum: 2 });
        let atts = [att("a", &a1, HASH, 120), att("b", &b, HASH, 120)];
        assert!(decide(&upstream(), &atts, &trust, &policy(2, OnMismatch::Refuse)).serves());
        // Without the grouping the two keys of alice are two votes.
        let ungrouped = Trust::new(keys.clone(), &[]).unwrap();
        let atts = [att("a", &a1, HASH, 120), att("a2", &a2, HASH, 120)];
        assert!(decide(&upstream(), &atts, &ungrouped, &policy(2, OnMismatch::Refuse)).serves());
        // Bad groupings are refused up front.
        assert_eq!(Trust::new(keys.clone(), &["x".into()]).unwrap_err(), TrustError::BadGroup("x".into()));
        assert!(matches!(Trust::new(keys.clone(), &["x=zz-1".into()]), Err(TrustError::UnknownKey { .. })));
        assert!(matches!(Trust::new(keys.clone(), &["x=a-1".into(), "y=a-1".into()]), Err(TrustError::TwoGroups(_))));
        assert_eq!(Trust::new(vec![], &[]).unwrap_err(), TrustError::NoKeys);
        let clash = SecretKey::from_seed(KeyName::parse("a-1").unwrap(), [9; 32]);
        assert!(matches!(Trust::new(vec![a1.public_key(), clash.public_key()], &[]), Err(TrustError::SameName(_))));
    }

    #[test]
    fn no_attestations_no_quorum() {
        let a = key("a-1", 1);
        let trust = Trust::new(vec![a.public_key()], &[]).unwrap();
        let d = decide(&upstream(), &[], &trust, &policy(1, OnMismatch::Allow));
        assert_eq!(d.verdict, Verdict::NoQuorum { agreed: 0, quorum: 1 });
        assert_eq!(who(&d.agreed), "-");
    }
}
