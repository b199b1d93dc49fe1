//! The NAR writer against Nix 2.8's own NARs (testdata/nix-2.8) and against the plain
//! in-memory serialiser on random trees.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nhc_nar::parse::{parse, restore, serialize, Node};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/nix-2.8")
}

struct Vector {
    path: String,
    hex: String,
    size: u64,
    references: Vec<String>,
}

fn vectors() -> Vec<Vector> {
    let text = fs::read_to_string(testdata().join("vectors.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| Vector {
            path: p["path"].as_str().unwrap().to_owned(),
            hex: p["narHash_hex"].as_str().unwrap().to_owned(),
            size: p["narSize"].as_u64().unwrap(),
            references: p["references"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_owned()).collect(),
        })
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn basename(p: &str) -> &str {
    p.strip_prefix("/nix/store/").unwrap()
}

fn hash_part(p: &str) -> [u8; 32] {
    basename(p).as_bytes()[..32].try_into().unwrap()
}

#[test]
fn nix_nars_round_trip_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let vs = vectors();
    assert_eq!(vs.len(), 5);
    for v in &vs {
        let nar = fs::read(testdata().join(format!("{}.nar", basename(&v.path)))).unwrap();
        assert_eq!(nar.len() as u64, v.size, "{}", v.path);
        assert_eq!(hex(&Sha256::digest(&nar)), v.hex, "{}", v.path);
        let node = parse(&nar).unwrap();
        assert_eq!(serialize(&node), nar, "{}", v.path);

        let dest = tmp.path().join(basename(&v.path));
        restore(&node, &dest).unwrap();
        assert_eq!(nhc_nar::to_vec(&dest).unwrap(), nar, "{}", v.path);
        for d in [nhc_nar::hash_path(&dest).unwrap(), nhc_nar::hash_path_sequential(&dest).unwrap()] {
            assert_eq!(hex(&d.sha256), v.hex, "{}", v.path);
            assert_eq!(d.size, v.size, "{}", v.path);
        }
    }
}

#[test]
fn nix_references_are_found_by_scanning() {
    let tmp = tempfile::tempdir().unwrap();
    let vs = vectors();
    let candidates: HashSet<[u8; 32]> = vs.iter().map(|v| hash_part(&v.path)).collect();
    for v in &vs {
        let nar = fs::read(testdata().join(format!("{}.nar", basename(&v.path)))).unwrap();
        let dest = tmp.path().join(basename(&v.path));
        restore(&parse(&nar).unwrap(), &dest).unwrap();
        let (d, found) = nhc_nar::hash_path_with_refs(&dest, candidates.clone()).unwrap();
        assert_eq!(hex(&d.sha256), v.hex);
        let want: HashSet<[u8; 32]> = v.references.iter().map(|r| hash_part(r)).collect();
        assert_eq!(found, want, "{}", v.path);
    }
}

#[test]
fn parser_is_strict() {
    let nar = fs::read(testdata().join("hlns6vw3bk57jcq3zq72a46vw5yy8wzs-tree.nar")).unwrap();
    assert!(parse(&nar[..nar.len() - 8]).is_err());
    let mut long = nar.clone();
    long.extend_from_slice(&[0; 8]);
    assert!(parse(&long).is_err());
    let mut bad_pad = fs::read(testdata().join("mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello.nar")).unwrap();
    let at = bad_pad.len() - 24 + 3; // the padding after "hi\n"
    bad_pad[at] = 1;
    assert!(parse(&bad_pad).is_err());
    // Swapping two entry names breaks the order.
    let swapped = {
        let node = parse(&nar).unwrap();
        let Node::Directory(mut e) = node else { panic!() };
        e.swap(0, 1);
        serialize(&Node::Directory(e))
    };
    assert!(parse(&swapped).unwrap_err().0.contains("order"));
}

#[test]
fn empty_file_empty_dir_and_lone_symlink() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        ("f", Node::Regular { executable: false, contents: vec![] }),
        ("x", Node::Regular { executable: true, contents: vec![] }),
        ("d", Node::Directory(vec![])),
        ("l", Node::Symlink { target: b"/nix/store/nowhere".to_vec() }),
    ];
    for (name, node) in cases {
        let p = tmp.path().join(name);
        restore(&node, &p).unwrap();
        let want = serialize(&node);
        assert_eq!(nhc_nar::to_vec(&p).unwrap(), want);
        let d = nhc_nar::hash_path(&p).unwrap();
        assert_eq!(d.sha256, <[u8; 32]>::from(Sha256::digest(&want)));
    }
}

#[test]
fn only_the_owner_execute_bit_counts() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("f");
    fs::write(&p, b"x").unwrap();
    let plain = nhc_nar::hash_path(&p).unwrap();
    for (mode, exec) in [(0o644, false), (0o655, false), (0o744, true), (0o500, true), (0o400, false)] {
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        let want = serialize(&Node::Regular { executable: exec, contents: b"x".to_vec() });
        assert_eq!(nhc_nar::to_vec(&p).unwrap(), want, "{mode:o}");
        assert_eq!(nhc_nar::hash_path(&p).unwrap() == plain, !exec, "{mode:o}");
    }
}

/// Names with awkward bytes, so that byte order differs from other plausible orders
/// (case-insensitive, UTF-8 aware, locale).
fn name() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        Just(b'a'),
        Just(b'B'),
        Just(b'b'),
        Just(b'_'),
        Just(b'-'),
        Just(b'.'),
        Just(b'0'),
        Just(b'~'),
        Just(0xc3u8),
        Just(0xa9u8),
        Just(0xffu8),
        Just(b' '),
    ];
    proptest::collection::vec(byte, 1..6).prop_filter("not . or ..", |n| n != b"." && n != b"..")
}

fn contents() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => proptest::collection::vec(any::<u8>(), 0..64),
        1 => (0usize..700_000, any::<u8>()).prop_map(|(n, b)| (0..n).map(|i| (i as u8).wrapping_mul(31) ^ b).collect()),
    ]
}

fn tree() -> impl Strategy<Value = Node> {
    let leaf = prop_oneof![
        (any::<bool>(), contents()).prop_map(|(executable, contents)| Node::Regular { executable, contents }),
        proptest::collection::vec(1u8..=255, 1..40).prop_map(|target| Node::Symlink { target }),
        Just(Node::Directory(vec![])),
    ];
    leaf.prop_recursive(4, 40, 6, |inner| {
        proptest::collection::vec((name(), inner), 0..6).prop_map(|entries| {
            let map: BTreeMap<Vec<u8>, Node> = entries.into_iter().collect();
            Node::Directory(map.into_iter().collect())
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn streaming_writer_equals_plain_serialiser(node in tree()) {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("root");
        restore(&node, &p).unwrap();
        let want = serialize(&node);
        prop_assert_eq!(parse(&want).unwrap(), node.clone());
        let got = nhc_nar::to_vec(&p).unwrap();
        prop_assert!(got == want, "NAR differs for {:?}", p.as_os_str().as_bytes());
        let d = nhc_nar::hash_path(&p).unwrap();
        prop_assert_eq!(d.size, want.len() as u64);
        prop_assert_eq!(d.sha256, <[u8; 32]>::from(Sha256::digest(&want)));
        prop_assert_eq!(nhc_nar::hash_path_sequential(&p).unwrap(), d);
    }
}

#[test]
fn many_files_and_large_files_cross_every_buffer_boundary() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let mut entries = Vec::new();
    for i in 0..300u32 {
        let len = (i as usize * 37) % 5000;
        entries.push((
            format!("f{i:04}").into_bytes(),
            Node::Regular { executable: i % 7 == 0, contents: vec![i as u8; len] },
        ));
    }
    for (i, len) in [(0u8, 512 * 1024 - 7), (1, 512 * 1024), (2, 3 * 1024 * 1024 + 5)] {
        let contents = (0..len).map(|j| (j as u8) ^ i).collect();
        entries.push((format!("large{i}").into_bytes(), Node::Regular { executable: false, contents }));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let node = Node::Directory(entries);
    restore(&node, &root).unwrap();
    let want = serialize(&node);
    let d = nhc_nar::hash_path(&root).unwrap();
    assert_eq!(d.size, want.len() as u64);
    assert_eq!(d.sha256, <[u8; 32]>::from(Sha256::digest(&want)));
    assert_eq!(nhc_nar::hash_path_sequential(&root).unwrap(), d);
}
