use std::collections::BTreeMap;
use std::fs;

use nhc_nix::testing::{create_db, reference, register};

use super::*;
use crate::testutil::{json, serve};

const HELLO: &str = "/nix/store/8la3a5rsyyq15chnpqk7hgmppb1qv21f-hello-2.12.1";
const HELLO_DRV: &str = "/nix/store/yin9q0pyixf09wpamd3c4mr513f5vw7v-hello-2.12.1.drv";
const GLIBC: &str = "/nix/store/mbg02g7p91li7fyznhwawj2imwdjh101-glibc-2.40-66";
const GLIBC_BIN: &str = "/nix/store/mvlgr5m3p9k7z8i0cf7yvmrlmqzmcp4f-glibc-2.40-66-bin";
const GLIBC_DRV: &str = "/nix/store/s95kw5pf8cc8dh0giqsbdq679kffq196-glibc-2.40-66.drv";
const SRC: &str = "/nix/store/hlns6vw3bk57jcq3zq72a46vw5yy8wzs-source";
const HASH: &str = "sha256:10551daed7fa467d0b58826e7eb9a0f2af7d693de319f2ef775fffcda244b9f6";

fn sp(s: &str) -> StorePath {
    StorePath::parse(s).unwrap()
}

fn drv(s: &str) -> DrvPath {
    DrvPath::parse(s).unwrap()
}

/// A chroot store with Nix's database: hello -> glibc -> source; glibc-bin alone.
fn store_with_db() -> (tempfile::TempDir, StoreLocation) {
    let root = tempfile::tempdir().unwrap();
    fs::create_dir_all(root.path().join("nix/store")).unwrap();
    fs::create_dir_all(root.path().join("nix/var/nix/db")).unwrap();
    let c = create_db(&root.path().join("nix/var/nix/db/db.sqlite"));
    let hello = register(&c, HELLO, HASH, 1, Some(HELLO_DRV));
    let glibc = register(&c, GLIBC, HASH, 1, Some(GLIBC_DRV));
    register(&c, GLIBC_BIN, HASH, 1, Some(GLIBC_DRV));
    let src = register(&c, SRC, HASH, 1, None);
    reference(&c, hello, glibc);
    reference(&c, hello, hello);
    reference(&c, glibc, src);
    let loc = StoreLocation::from_uri(root.path().to_str().unwrap(), None);
    (root, loc)
}

/// hello.drv (outputs out and doc) depends on glibc.drv (out and bin).
fn write_drvs(loc: &StoreLocation) {
    let glibc = format!(
        r#"Derive([("bin","{GLIBC_BIN}","",""),("out","{GLIBC}","","")],[],["{SRC}"],"x86_64-linux","/bin/sh",[],[])"#
    );
    let hello = format!(
        r#"Derive([("doc","/nix/store/xhsz73x5r1q3ml5hrwzv50yw85pwqk2w-hello-2.12.1-doc","",""),("out","{HELLO}","","")],[("{GLIBC_DRV}",["out"])],[],"x86_64-linux","/bin/sh",[],[])"#
    );
    fs::write(loc.real_path(drv(GLIBC_DRV).as_store_path()), glibc).unwrap();
    fs::write(loc.real_path(drv(HELLO_DRV).as_store_path()), hello).unwrap();
}

fn summary(items: &[EvaluationItem]) -> Vec<(String, Option<String>, Option<String>)> {
    items
        .iter()
        .map(|i| {
            (
                i.path.name().to_owned(),
                i.drv_path.as_ref().map(|d| d.as_store_path().name().to_owned()),
                i.output_name.as_ref().map(|n| n.to_string()),
            )
        })
        .collect()
}

fn s(name: &str, drv: Option<&str>, out: Option<&str>) -> (String, Option<String>, Option<String>) {
    (name.to_owned(), drv.map(str::to_owned), out.map(str::to_owned))
}

#[test]
fn the_runtime_closure_comes_from_nixs_database() {
    let (_root, loc) = store_with_db();
    let mut store = Store::new(loc);
    let mut items = closure_items(&mut store, &[sp(HELLO)]).unwrap();
    items.sort_by(|a, b| a.path.name().cmp(b.path.name()));
    assert_eq!(
        summary(&items),
        [
            s("glibc-2.40-66", Some("glibc-2.40-66.drv"), Some("out")),
            s("hello-2.12.1", Some("hello-2.12.1.drv"), Some("out")),
            s("source", None, None),
        ]
    );
    // Two roots sharing paths: each path once.
    assert_eq!(closure_items(&mut store, &[sp(HELLO), sp(GLIBC_BIN), sp(GLIBC)]).unwrap().len(), 4);
    let e = closure_items(&mut store, &[sp("/nix/store/xhsz73x5r1q3ml5hrwzv50yw85pwqk2w-unknown")]).unwrap_err();
    assert!(e.to_string().contains("is not a valid path in the store"), "{e}");
}

#[test]
fn the_build_closure_is_every_output_of_every_derivation() {
    let (_root, loc) = store_with_db();
    write_drvs(&loc);
    let mut store = Store::new(loc);
    let items = build_closure_items(&mut store, &[drv(HELLO_DRV)]).unwrap();
    assert_eq!(
        summary(&items),
        [
            s("hello-2.12.1-doc", Some("hello-2.12.1.drv"), Some("doc")),
            s("hello-2.12.1", Some("hello-2.12.1.drv"), Some("out")),
            // glibc's bin too, although hello uses only its out.
            s("glibc-2.40-66-bin", Some("glibc-2.40-66.drv"), Some("bin")),
            s("glibc-2.40-66", Some("glibc-2.40-66.drv"), Some("out")),
        ]
    );
    // Given twice, or with its input: each derivation once.
    assert_eq!(build_closure_items(&mut store, &[drv(HELLO_DRV), drv(GLIBC_DRV), drv(HELLO_DRV)]).unwrap().len(), 4);
    let missing = drv("/nix/store/k8idmbww8dxy0paa2y9a0vv7a67bp6qg-missing.drv");
    assert!(build_closure_items(&mut store, &[missing]).is_err());
}

#[test]
fn paths_from_resolves_derivations_and_passes_the_rest() {
    let (_root, loc) = store_with_db();
    write_drvs(&loc);
    let mut store = Store::new(loc);
    let plain = format!("# x\n{HELLO}\n\n{GLIBC}\n").into_bytes();
    let b = paths_from(&mut store, plain.clone()).unwrap();
    assert_eq!((b.content_type, &b.bytes), ("text/plain; charset=utf-8", &plain));
    let json = format!(r#"{{"paths": ["{HELLO}"]}}"#).into_bytes();
    let b = paths_from(&mut store, json.clone()).unwrap();
    assert_eq!((b.content_type, &b.bytes), ("application/json", &json));
    // A .drv line stands for its outputs.
    let b = paths_from(&mut store, format!("{SRC}\n{GLIBC_DRV}\n").into_bytes()).unwrap();
    assert_eq!(b.content_type, "application/json");
    let u = nhc_jobset::parse_upload(Some(b.content_type), &b.bytes).unwrap();
    assert_eq!(
        summary(&u.items),
        [
            s("source", None, None),
            s("glibc-2.40-66-bin", Some("glibc-2.40-66.drv"), Some("bin")),
            s("glibc-2.40-66", Some("glibc-2.40-66.drv"), Some("out")),
        ]
    );
    assert!(paths_from(&mut store, b"/tmp/x.drv\n".to_vec()).is_err());
}

fn cfg(server: &str, jobset_token: Option<&str>) -> Config {
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    env.insert(config::CONFIG.env.into(), "/dev/null".into());
    env.insert(config::SERVER.env.into(), server.into());
    env.insert(config::TOKEN.env.into(), "builder-token".into());
    if let Some(t) = jobset_token {
        env.insert(config::JOBSET_TOKEN.env.into(), t.into());
    }
    Config::load_from(&env, false).unwrap()
}

fn push_args(jobset: &str, rev: &str, source: Source, token_file: Option<PathBuf>) -> PushArgs {
    PushArgs { jobset: jobset.into(), rev: rev.into(), source, token_file }
}

fn no_source() -> Source {
    Source { closure: vec![], build_closure: vec![], sbom: None, paths_from: None }
}

#[test]
fn push_uploads_the_closure_with_the_jobset_token() {
    let (root, loc) = store_with_db();
    let (base, h) = serve(vec![
        json(201, r#"{"jobset":"iso","rev":"r1","paths":3}"#),
        json(200, r#"{"jobset":"iso","rev":"r1","paths":1}"#),
        json(403, r#"{"error":"forbidden","message":"this token is for another jobset"}"#),
    ]);
    let c = cfg(&base, Some("jobset-secret"));
    let src = Source { closure: vec![HELLO.into()], ..no_source() };
    assert_eq!(push(&c, &loc, push_args("iso", "r1", src, None)).unwrap(), 0);
    // --token-file wins over the setting; an SBOM is sent as it is.
    let tf = root.path().join("tok");
    fs::write(&tf, "file-token\n").unwrap();
    let sbom = root.path().join("sbom.json");
    let sbom_text = format!(r#"{{"bomFormat":"CycloneDX","components":[{{"bom-ref":"{HELLO}"}}]}}"#);
    fs::write(&sbom, &sbom_text).unwrap();
    let src = || Source { sbom: Some(sbom.clone()), ..no_source() };
    assert_eq!(push(&c, &loc, push_args("iso", "r1", src(), Some(tf.clone()))).unwrap(), 0);
    let e = push(&c, &loc, push_args("iso", "r1", src(), None)).unwrap_err().to_string();
    assert!(e.contains("HTTP 403 forbidden: this token is for another jobset"), "{e}");
    let seen = h.join().unwrap();
    assert!(seen[0].starts_with("PUT /v1/jobsets/iso/evaluations/r1 HTTP/1.1\r\n"), "{}", seen[0]);
    let head = seen[0].to_ascii_lowercase();
    assert!(head.contains("authorization: bearer jobset-secret\r\n"), "{head}");
    assert!(head.contains("content-type: application/json\r\n") && !head.contains("transfer-encoding"), "{head}");
    let body = seen[0].split("\r\n\r\n").nth(1).unwrap();
    let u = nhc_jobset::parse_upload(Some("application/json"), body.as_bytes()).unwrap();
    assert_eq!(u.items.len(), 3);
    assert!(u.items.iter().any(|i| i.path.as_str() == GLIBC && i.output_name.as_ref().unwrap().as_str() == "out"));
    assert!(seen[1].to_ascii_lowercase().contains("authorization: bearer file-token\r\n"));
    assert!(seen[1].ends_with(&sbom_text));
}

#[test]
fn push_refuses_before_sending() {
    let (root, loc) = store_with_db();
    // Nobody listens: any request would fail differently.
    let c = cfg(&format!("http://{}", crate::testutil::closed_port()), Some("t"));
    let bad = root.path().join("bad.txt");
    fs::write(&bad, "/nix/store/xyz\n").unwrap();
    let src = || Source { paths_from: Some(bad.to_str().unwrap().into()), ..no_source() };
    let e = push(&c, &loc, push_args("iso", "r1", src(), None)).unwrap_err();
    assert!(matches!(e, CommandError::Upload(UploadError::InvalidPath { .. })), "{e:?}");
    let e = push(&c, &loc, push_args("bad name", "r1", src(), None)).unwrap_err();
    assert!(e.to_string().contains("invalid jobset name"), "{e}");
    let e = push(&c, &loc, push_args("iso", "a/b", src(), None)).unwrap_err();
    assert!(e.to_string().contains("invalid revision"), "{e}");
    let e = push(&cfg("http://x", None), &loc, push_args("iso", "r1", src(), None)).unwrap_err();
    assert!(e.to_string().contains(config::JOBSET_TOKEN_FILE.env), "{e}");
    let src = Source { closure: vec![HELLO_DRV.into()], ..no_source() };
    let e = push(&c, &loc, push_args("iso", "r1", src, None)).unwrap_err();
    assert!(e.to_string().contains("use --build-closure"), "{e}");
    let src = Source { build_closure: vec![HELLO.into()], ..no_source() };
    let e = push(&c, &loc, push_args("iso", "r1", src, None)).unwrap_err();
    assert!(e.to_string().contains("use --closure"), "{e}");
}

fn page_json(summary: &str, items: &str, next: &str) -> String {
    format!(
        r#"{{"jobset":"iso","rev":"r2","created_at":"2026-11-30T00:00:00Z","paths":3,"summary":{summary},"items":[{items}],"next_cursor":{next}}}"#
    )
}

const DIFFERS: &str = r#"{"reproduced":1,"partially_reproduced":0,"not_reproduced":1,"one_builder":0,"no_builds":1}"#;
const ALL_REPRODUCED: &str =
    r#"{"reproduced":3,"partially_reproduced":0,"not_reproduced":0,"one_builder":0,"no_builds":0}"#;

#[test]
fn show_follows_pages_and_exits_like_nhc_status() {
    let item = |p: &str, st: &str| {
        format!(
            r#"{{"path":"{p}","drv_path":null,"output_name":null,"status":"{st}","builders":2,"distinct_hashes":2}}"#
        )
    };
    let (base, h) = serve(vec![
        json(
            200,
            r#"{"name":"iso","description":"","evaluations":[{"rev":"r2","created_at":"2026-11-30T00:00:00Z","paths":3,"summary":{"reproduced":1,"partially_reproduced":0,"not_reproduced":1,"one_builder":0,"no_builds":1}}]}"#,
        ),
        json(200, &page_json(DIFFERS, &item(HELLO, "not_reproduced"), r#""a b/c""#)),
        json(200, &page_json(DIFFERS, &item(GLIBC, "no_builds"), "null")),
        json(200, &page_json(ALL_REPRODUCED, "", "null")),
        json(404, r#"{"error":"not_found","message":"no such evaluation"}"#),
    ]);
    let client = Client::new(&base, Duration::from_secs(2), Duration::from_secs(5));
    let iso = JobsetName::parse("iso").unwrap();
    assert_eq!(show_with(&client, &iso, None, false).unwrap(), 2);
    assert_eq!(show_with(&client, &iso, Some("r2"), true).unwrap(), 0);
    let e = show_with(&client, &iso, Some("r9"), false).unwrap_err();
    assert!(e.to_string().contains("no evaluation r9 of jobset iso"), "{e}");
    let seen = h.join().unwrap();
    assert!(seen[0].starts_with("GET /v1/jobsets/iso HTTP/1.1"), "{}", seen[0]);
    let q = "limit=1000&status=not_reproduced,partially_reproduced,one_builder,no_builds";
    assert!(seen[1].starts_with(&format!("GET /v1/jobsets/iso/evaluations/r2?{q} HTTP/1.1")), "{}", seen[1]);
    assert!(
        seen[2].starts_with(&format!("GET /v1/jobsets/iso/evaluations/r2?{q}&cursor=a%20b%2Fc HTTP")),
        "{}",
        seen[2]
    );
    // The printed summary.
    let page: EvaluationPage = serde_json::from_str(&page_json(
        DIFFERS,
        &format!("{},{}", item(GLIBC, "no_builds"), item(HELLO, "not_reproduced")),
        "null",
    ))
    .unwrap();
    let text = summary_text(&page);
    assert!(text.starts_with("iso/r2 (2026-11-30T00:00:00Z): 3 paths\n  reproduced"), "{text}");
    assert!(text.contains("not_reproduced               1   33.3%"), "{text}");
    let lines: Vec<&str> = text.lines().skip(7).collect();
    assert!(lines[0].starts_with("not_reproduced") && lines[0].ends_with(HELLO), "{text}");
    assert!(lines[1].starts_with("no_builds") && lines[1].ends_with(GLIBC), "{text}");
}

#[test]
fn exit_statuses() {
    let s = |r, p, n, o, b| Summary {
        reproduced: r,
        partially_reproduced: p,
        not_reproduced: n,
        one_builder: o,
        no_builds: b,
    };
    assert_eq!(exit_status(&s(3, 0, 0, 0, 0)), 0);
    assert_eq!(exit_status(&s(3, 1, 0, 0, 0)), 2);
    assert_eq!(exit_status(&s(3, 0, 1, 5, 5)), 2);
    assert_eq!(exit_status(&s(3, 0, 0, 1, 0)), 1);
    assert_eq!(exit_status(&s(0, 0, 0, 0, 0)), 1);
}

#[test]
fn diff_asks_what_changed_from_rev1_to_rev2() {
    let answer = format!(
        r#"{{"added":["{GLIBC_BIN}"],"removed":["{SRC}"],"changed":[{{"name":"hello-2.12.1","from_path":"{HELLO}","to_path":"{HELLO}","from":"one_builder","to":"reproduced"}}]}}"#
    );
    let (base, h) = serve(vec![json(200, &answer), json(404, r#"{"error":"not_found","message":"no"}"#)]);
    let client = Client::new(&base, Duration::from_secs(2), Duration::from_secs(5));
    let (iso, r1, r2) = (JobsetName::parse("iso").unwrap(), Rev::parse("r1").unwrap(), Rev::parse("r2").unwrap());
    assert_eq!(diff_with(&client, &iso, &r1, &r2, false).unwrap(), 0);
    assert!(diff_with(&client, &iso, &r1, &r2, false).unwrap_err().to_string().contains("is not on the server"));
    let seen = h.join().unwrap();
    assert!(seen[0].starts_with("GET /v1/jobsets/iso/evaluations/r2/diff/r1 HTTP/1.1"), "{}", seen[0]);
    let d: EvaluationDiff = serde_json::from_str(&answer).unwrap();
    assert_eq!(
        diff_text(&d),
        format!("+ {GLIBC_BIN}\n- {SRC}\n~ hello-2.12.1: one_builder -> reproduced ({HELLO})\n1 added, 1 removed, 1 changed\n")
    );
}

/// An SBOM over the route's limit is sent as its paths (the edges are lost, the
/// derivations and output names kept); one within the limit as it is.
#[test]
fn an_sbom_over_the_limit_is_sent_as_its_paths() {
    let sbom =
        std::fs::read(format!("{}/../testdata/jobsets/sbomnix-runtime.cdx.json", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let u = nhc_jobset::parse_upload(Some("application/json"), &sbom).unwrap();
    let body = || Body { content_type: "application/json", bytes: sbom.clone() };
    assert_eq!(within_limit(body(), &u.items, sbom.len()).unwrap().bytes, sbom);
    let small = within_limit(body(), &u.items, sbom.len() - 1).unwrap();
    assert!(small.bytes.len() < sbom.len() / 2, "{}", small.bytes.len());
    let again = nhc_jobset::parse_upload(Some(small.content_type), &small.bytes).unwrap();
    assert_eq!(again.items, u.items);
    assert!(again.edges.is_empty() && !u.edges.is_empty());
}

/// When even the compact form is over the limit, the bare paths go as a plain list.
#[test]
fn an_upload_over_the_limit_even_compact_is_sent_as_a_path_list() {
    let sbom =
        std::fs::read(format!("{}/../testdata/jobsets/sbomnix-runtime.cdx.json", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let u = nhc_jobset::parse_upload(Some("application/json"), &sbom).unwrap();
    let compact = json_body(&u.items).unwrap();
    let body = Body { content_type: "application/json", bytes: sbom.clone() };
    let list = within_limit(body, &u.items, compact.bytes.len() - 1).unwrap();
    assert_eq!(list.content_type, "text/plain");
    let again = nhc_jobset::parse_upload(Some(list.content_type), &list.bytes).unwrap();
    let paths = |items: &[nhc_core::jobset::EvaluationItem]| items.iter().map(|i| i.path.clone()).collect::<Vec<_>>();
    assert_eq!(paths(&again.items), paths(&u.items));
}
