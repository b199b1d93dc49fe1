use super::*;
use nhc_core::ParseError;

const HELLO: &str = "/nix/store/8la3a5rsyyq15chnpqk7hgmppb1qv21f-hello-2.12.1";
const GLIBC: &str = "/nix/store/mbg02g7p91li7fyznhwawj2imwdjh101-glibc-2.40-66";
const GLIBC_BIN: &str = "/nix/store/mvlgr5m3p9k7z8i0cf7yvmrlmqzmcp4f-glibc-2.40-66-bin";
const LIBIDN2: &str = "/nix/store/iz7drg4snl5m95kkbvpb1dzwzb3mxgl6-libidn2-2.3.8";
const LIBUNISTRING: &str = "/nix/store/xnqs1i19zp6vrp48n3f6v530g171fydx-libunistring-1.3";
const LIBGCC: &str = "/nix/store/8yf8hz2vpjsjql98h2qsvhmsqzqrbadh-xgcc-14.3.0-libgcc";
const DRV: &str = "/nix/store/yin9q0pyixf09wpamd3c4mr513f5vw7v-hello-2.12.1.drv";

fn fixture(name: &str) -> Vec<u8> {
    let p = format!("{}/../../testdata/jobsets/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn paths(u: &Upload) -> Vec<&str> {
    u.items.iter().map(|i| i.path.as_str()).collect()
}

fn item<'a>(u: &'a Upload, p: &str) -> &'a EvaluationItem {
    u.items.iter().find(|i| i.path.as_str() == p).unwrap_or_else(|| panic!("{p} missing"))
}

fn names(u: &Upload, p: &str) -> (Option<String>, Option<String>) {
    let i = item(u, p);
    (i.drv_path.as_ref().map(|d| d.as_store_path().name().to_owned()), i.output_name.as_ref().map(|n| n.to_string()))
}

/// The edges as pairs of path names, sorted.
fn edges(u: &Upload) -> Vec<(&str, &str)> {
    let mut e: Vec<_> =
        u.edges.iter().map(|e| (u.items[e.from as usize].path.name(), u.items[e.to as usize].path.name())).collect();
    e.sort();
    e
}

fn err(ct: Option<&str>, body: &str) -> UploadError {
    parse_upload(ct, body.as_bytes()).unwrap_err()
}

#[test]
fn plain_list_as_nix_store_prints_it() {
    let u = parse_upload(Some("text/plain; charset=utf-8"), &fixture("closure.txt")).unwrap();
    assert_eq!(u.format, Format::PlainText);
    assert_eq!(paths(&u), [LIBUNISTRING, LIBIDN2, LIBGCC, GLIBC, GLIBC_BIN, HELLO]);
    assert!(u.edges.is_empty() && u.items.iter().all(|i| i.drv_path.is_none() && i.output_name.is_none()));
    // Without a Content-Type, or with curl's default, it is sniffed.
    for ct in [None, Some("application/x-www-form-urlencoded"), Some("application/octet-stream")] {
        assert_eq!(parse_upload(ct, &fixture("closure.txt")).unwrap(), u);
    }
    // CRLF, indentation, duplicates, comments.
    let u = parse_upload(None, format!("  {HELLO}\r\n#x\r\n\r\n{HELLO}\n\t{GLIBC}  \n# {LIBIDN2}").as_bytes()).unwrap();
    assert_eq!(paths(&u), [HELLO, GLIBC]);
    // A byte-order mark is not part of the first path.
    let u = parse_upload(Some("text/plain"), format!("\u{feff}{HELLO}\n").as_bytes()).unwrap();
    assert_eq!(paths(&u), [HELLO]);
    let u = parse_upload(None, format!("\u{feff}{{\"paths\": [\"{HELLO}\"]}}").as_bytes()).unwrap();
    assert_eq!(paths(&u), [HELLO]);
}

#[test]
fn plain_list_errors_name_the_line() {
    let e = err(Some("text/plain"), &format!("# c\n{HELLO}\n{DRV}\n"));
    assert_eq!((e.code(), e.http_status()), ("derivation_in_list", 400));
    assert!(e.to_string().starts_with("line 3: ") && e.to_string().contains(DRV), "{e}");
    for bad in [
        "/tmp/x",
        "hello",
        "/nix/store/8la3a5rsyyq15chnpqk7hgmppb1qv21f",
        "/nix/store/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-x",
    ] {
        let e = err(Some("text/plain"), &format!("{HELLO}\n{bad}\n"));
        assert!(
            matches!(&e, UploadError::InvalidPath { at, source: ParseError::StorePath(_) } if at == "line 2"),
            "{bad}: {e:?}"
        );
        assert_eq!(e.code(), "invalid_store_path");
    }
    // A path inside a store path is not a store path.
    assert_eq!(err(None, &format!("{HELLO}/bin/hello")).code(), "invalid_store_path");
    assert_eq!(err(Some("text/plain"), "\n# nothing\n\n").code(), "no_paths");
    assert_eq!(err(Some("text/plain"), "").code(), "no_paths");
    assert_eq!(parse_upload(None, b"\xff\xfe/nix").unwrap_err(), UploadError::NotUtf8);
}

#[test]
fn paths_json_strings_and_objects() {
    let u = parse_upload(Some("application/json"), &fixture("paths.json")).unwrap();
    assert_eq!(u.format, Format::PathsJson);
    assert_eq!(paths(&u), [HELLO, GLIBC, GLIBC_BIN, LIBIDN2]);
    assert_eq!(names(&u, HELLO), (None, None));
    assert_eq!(names(&u, GLIBC), (Some("glibc-2.40-66.drv".into()), Some("out".into())));
    // The output name follows from the derivation's name by Nix's rule.
    assert_eq!(names(&u, GLIBC_BIN), (Some("glibc-2.40-66.drv".into()), Some("bin".into())));
    assert_eq!(names(&u, LIBIDN2), (None, None));
    // Sniffed without a Content-Type, and as text/plain when it is JSON.
    assert_eq!(parse_upload(None, &fixture("paths.json")).unwrap(), u);
    assert_eq!(parse_upload(Some("text/plain"), &fixture("paths.json")).unwrap(), u);
    // A path listed twice counts once; a later mention fills what the first lacked.
    let body = format!(r#"{{"paths": ["{HELLO}", {{"path": "{HELLO}", "output_name": "out"}}, "{HELLO}"]}}"#);
    let u = parse_upload(None, body.as_bytes()).unwrap();
    assert_eq!(u.items.len(), 1);
    assert_eq!(names(&u, HELLO), (None, Some("out".into())));
}

#[test]
fn paths_json_errors() {
    let cases = [
        (format!(r#"{{"paths": ["{DRV}"]}}"#), "derivation_in_list", "paths[0]"),
        (format!(r#"{{"paths": ["{HELLO}", {{"path": "{DRV}"}}]}}"#), "derivation_in_list", "paths[1]"),
        (r#"{"paths": ["/usr/bin/env"]}"#.into(), "invalid_store_path", "paths[0]"),
        (
            format!(r#"{{"paths": [{{"path": "{HELLO}", "drv_path": "{GLIBC}"}}]}}"#),
            "invalid_drv_path",
            "paths[0].drv_path",
        ),
        (
            format!(r#"{{"paths": [{{"path": "{HELLO}", "output_name": ".x"}}]}}"#),
            "invalid_output_name",
            "paths[0].output_name",
        ),
        (
            format!(r#"{{"paths": [{{"drv_path": "{DRV}"}}]}}"#),
            "malformed_json",
            "paths[0]: a store path, or an object with \"path\"",
        ),
        (r#"{"paths": [{"path": 7}]}"#.into(), "malformed_json", "paths[0]: a store path"),
        (r#"{"paths": [1]}"#.into(), "malformed_json", "paths[0]: a store path"),
        (r#"{"paths": "x"}"#.into(), "malformed_json", "paths: invalid type: string \"x\", expected a sequence"),
        (r#"{"paths": []}"#.into(), "no_paths", "no store path"),
        (r#"{"paths": [}"#.into(), "malformed_json", "line 1"),
        (r#"{"path": []}"#.into(), "unknown_format", "without"),
        (r#"{"bomFormat": "SPDX"}"#.into(), "unknown_format", "only CycloneDX"),
    ];
    for (body, code, text) in cases {
        let e = err(Some("application/json"), &body);
        assert_eq!(e.code(), code, "{body}: {e}");
        assert!(e.to_string().contains(text), "{body}: {e}");
        assert_eq!(e.http_status(), 400);
    }
    assert_eq!(err(Some("application/json"), "[1]").code(), "unknown_format");
    assert_eq!(err(Some("application/json"), "not json").code(), "malformed_json");
}

#[test]
fn unsupported_media_types() {
    for ct in
        ["application/xml", "text/xml", "application/vnd.cyclonedx+xml", "multipart/form-data; boundary=x", "image/png"]
    {
        let e = err(Some(ct), HELLO);
        assert_eq!((e.code(), e.http_status()), ("unsupported_media_type", 415), "{ct}");
    }
    // CycloneDX's own JSON media type is JSON.
    let u = parse_upload(Some("application/vnd.cyclonedx+json; version=1.5"), &fixture("bombon.cdx.json")).unwrap();
    assert_eq!(u.format, Format::CycloneDx);
}

#[test]
fn sbomnix_runtime_sbom() {
    let u = parse_upload(Some("application/json"), &fixture("sbomnix-runtime.cdx.json")).unwrap();
    assert_eq!(u.format, Format::CycloneDx);
    // The root (metadata.component) is also a component here: listed once.
    assert_eq!(paths(&u), [HELLO, GLIBC, GLIBC_BIN, LIBIDN2, LIBGCC, LIBUNISTRING]);
    assert_eq!(names(&u, HELLO), (Some("hello-2.12.1.drv".into()), Some("out".into())));
    // Two outputs of one component: named by Nix's rule from the derivation.
    assert_eq!(names(&u, GLIBC).1.as_deref(), Some("out"));
    assert_eq!(names(&u, GLIBC_BIN), (Some("glibc-2.40-66.drv".into()), Some("bin".into())));
    // sbomnix's refs are .drv paths: edges join the components' output paths.
    assert_eq!(
        edges(&u),
        [
            ("glibc-2.40-66", "libidn2-2.3.8"),
            ("glibc-2.40-66", "xgcc-14.3.0-libgcc"),
            ("glibc-2.40-66-bin", "libidn2-2.3.8"),
            ("glibc-2.40-66-bin", "xgcc-14.3.0-libgcc"),
            ("hello-2.12.1", "glibc-2.40-66"),
            ("hello-2.12.1", "glibc-2.40-66-bin"),
            ("libidn2-2.3.8", "libunistring-1.3"),
        ]
    );
    assert_eq!(u.skipped_components, 0);
}

#[test]
fn bombon_sbom() {
    let u = parse_upload(None, &fixture("bombon.cdx.json")).unwrap();
    // bom-refs are output basenames; the cargo component names no store path.
    assert_eq!(paths(&u), [HELLO, GLIBC, LIBIDN2, LIBUNISTRING]);
    assert!(u.items.iter().all(|i| i.drv_path.is_none()));
    assert_eq!(u.skipped_components, 1);
    assert_eq!(
        edges(&u),
        [("glibc-2.40-66", "libidn2-2.3.8"), ("hello-2.12.1", "glibc-2.40-66"), ("libidn2-2.3.8", "libunistring-1.3")]
    );
}

#[test]
fn lila_sboms_and_lilas_upload_body() {
    let sbom = fixture("lila-nix-build-sbom.cdx.json");
    let u = parse_upload(Some("application/json"), &sbom).unwrap();
    assert_eq!(paths(&u), [HELLO, GLIBC, GLIBC_BIN, LIBIDN2, LIBUNISTRING, LIBGCC]);
    assert_eq!(names(&u, GLIBC_BIN), (Some("glibc-2.40-66.drv".into()), Some("bin".into())));
    assert!(u.edges.is_empty());
    // lila's PUT body: {"git_revision", "definition": <SBOM>}.
    let wrapped = format!(r#"{{"git_revision": "abc", "definition": {}}}"#, String::from_utf8(sbom).unwrap());
    assert_eq!(parse_upload(Some("application/json"), wrapped.as_bytes()).unwrap(), u);
}

#[test]
fn sbom_nested_components_and_skips() {
    let body = format!(
        r#"{{"bomFormat": "CycloneDX", "specVersion": "1.5", "components": [
            {{"name": "src", "bom-ref": "{DRV}", "properties": [{{"name": "nix:drv_path", "value": "{DRV}"}}]}},
            {{"name": "outer", "properties": [{{"name": "nix:out_path", "value": "{HELLO}"}}, {{"name": "nix:fetch_url", "value": ["https://x"]}}, {{"name": "other", "value": 1}}],
              "components": [{{"name": "inner", "bom-ref": "{GLIBC}"}}]}},
            {{"name": "no-properties"}}
        ]}}"#
    );
    let u = parse_upload(None, body.as_bytes()).unwrap();
    assert_eq!(paths(&u), [HELLO, GLIBC]);
    assert_eq!(u.skipped_components, 2);
}

#[test]
fn sbom_errors() {
    let wrap = |components: &str| format!(r#"{{"bomFormat": "CycloneDX", "components": {components}}}"#);
    let cases = [
        (wrap("{}"), "malformed_sbom", "components: invalid type: map, expected a sequence"),
        (wrap("[1]"), "malformed_sbom", "components[0]: invalid type: integer"),
        (wrap(r#"[{"properties": {}}]"#), "malformed_sbom", "components[0].properties: invalid type: map"),
        (
            wrap(r#"[{"properties": [{"value": "x"}]}]"#),
            "malformed_sbom",
            "components[0].properties[0]: missing field `name`",
        ),
        (
            wrap(r#"[{"properties": [{"name": "nix:out_path", "value": 3}]}]"#),
            "malformed_sbom",
            "components[0].properties[0] (nix:out_path) has no string \"value\"",
        ),
        (wrap(r#"[{"bom-ref": 3}]"#), "malformed_sbom", "components[0].bom-ref: invalid type"),
        (
            wrap(r#"[{"properties": [{"name": "nix:out_path", "value": "/opt/x"}]}]"#),
            "invalid_store_path",
            "components[0] nix:out_path",
        ),
        (
            wrap(&format!(r#"[{{"properties": [{{"name": "nix:out_path", "value": "{DRV}"}}]}}]"#)),
            "derivation_in_list",
            "components[0]",
        ),
        (
            wrap(&format!(
                r#"[{{"properties": [{{"name": "nix:out_path", "value": "{HELLO}"}}, {{"name": "nix:drv_path", "value": "{HELLO}"}}]}}]"#
            )),
            "invalid_drv_path",
            "nix:drv_path",
        ),
        (
            wrap(&format!(
                r#"[{{"properties": [{{"name": "nix:out_path", "value": "{HELLO}"}}, {{"name": "nix:output", "value": "a/b"}}]}}]"#
            )),
            "invalid_output_name",
            "nix:output",
        ),
        (wrap("[]"), "no_paths", "no store path"),
        (wrap(r#"[{"name": "x", "purl": "pkg:cargo/x@1"}]"#), "no_paths", "no store path"),
        (r#"{"bomFormat": "CycloneDX", "metadata": 3}"#.into(), "malformed_sbom", "metadata: invalid type"),
    ];
    for (body, code, text) in cases {
        let e = err(Some("application/json"), &body);
        assert_eq!(e.code(), code, "{body}: {e}");
        assert!(e.to_string().contains(text), "{body}: {e}");
    }
    let with_deps = |deps: &str| {
        format!(r#"{{"bomFormat": "CycloneDX", "components": [{{"bom-ref": "{HELLO}"}}], "dependencies": {deps}}}"#)
    };
    for (deps, text) in [
        ("{}", "dependencies: invalid type: map"),
        ("[3]", "dependencies[0]: invalid type: integer"),
        (r#"[{"dependsOn": []}]"#, "dependencies[0]: missing field `ref`"),
        (&format!(r#"[{{"ref": "{HELLO}", "dependsOn": "x"}}]"#), "dependencies[0].dependsOn: invalid type: string"),
        (
            &format!(r#"[{{"ref": "{HELLO}", "dependsOn": [1]}}]"#),
            "dependencies[0].dependsOn[0]: invalid type: integer",
        ),
    ] {
        let e = err(None, &with_deps(deps));
        assert_eq!(e.code(), "malformed_sbom", "{deps}");
        assert!(e.to_string().contains(text), "{deps}: {e}");
    }
    // Refs to unknown components, and self-edges, are dropped.
    let u = parse_upload(
        None,
        with_deps(&format!(r#"[{{"ref": "{HELLO}", "dependsOn": ["{HELLO}", "nope"]}}, {{"ref": "nope"}}]"#))
            .as_bytes(),
    )
    .unwrap();
    assert!(u.edges.is_empty());
}

/// 250,000 distinct paths are accepted (also when listed twice); one more is refused
/// with 413, in every format.
#[test]
fn the_path_limit() {
    fn nth(i: usize) -> String {
        const A: &[u8] = b"0123456789abcdfghijklmnpqrsvwxyz";
        let mut h = [b'0'; 32];
        let mut n = i;
        for c in h.iter_mut().rev() {
            *c = A[n % 32];
            n /= 32;
        }
        format!("/nix/store/{}-p", std::str::from_utf8(&h).unwrap())
    }
    let max = MAX_EVALUATION_PATHS;
    let mut text = String::with_capacity((max + 1) * 50);
    for i in 0..max {
        text.push_str(&nth(i));
        text.push('\n');
    }
    text.push_str(&nth(0));
    text.push('\n');
    let u = parse_upload(Some("text/plain"), text.as_bytes()).unwrap();
    assert_eq!(u.items.len(), max);
    text.push_str(&nth(max));
    let e = parse_upload(Some("text/plain"), text.as_bytes()).unwrap_err();
    assert_eq!((e.code(), e.http_status()), ("too_many_paths", 413));
    let json = format!(r#"{{"paths": ["{}"]}}"#, (0..=max).map(nth).collect::<Vec<_>>().join("\",\""));
    assert_eq!(parse_upload(None, json.as_bytes()).unwrap_err().code(), "too_many_paths");
}

#[test]
fn the_body_limit() {
    let body = vec![b'#'; MAX_UPLOAD_BYTES + 1];
    let e = parse_upload(Some("text/plain"), &body).unwrap_err();
    assert_eq!((e.code(), e.http_status()), ("body_too_large", 413));
}

#[test]
fn output_names_by_nixs_rule() {
    let drv = DrvPath::parse("/nix/store/yin9q0pyixf09wpamd3c4mr513f5vw7v-glibc-2.40-66.drv").unwrap();
    let p = |s: &str| StorePath::parse(&format!("/nix/store/mvlgr5m3p9k7z8i0cf7yvmrlmqzmcp4f-{s}")).unwrap();
    assert_eq!(output_name_from_path(&drv, &p("glibc-2.40-66")).unwrap().as_str(), "out");
    assert_eq!(output_name_from_path(&drv, &p("glibc-2.40-66-dev")).unwrap().as_str(), "dev");
    assert_eq!(output_name_from_path(&drv, &p("glibc-2.40")), None);
    assert_eq!(output_name_from_path(&drv, &p("other")), None);
}
