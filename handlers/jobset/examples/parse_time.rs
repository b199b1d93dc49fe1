//! How long parsing an upload takes (the server's share of "upload 20,000 paths ≤ 1 s"):
//! `cargo run --release -p nhc-jobset --example parse_time [PATHS]`.

use std::time::Instant;

fn path(i: usize) -> String {
    const A: &[u8] = b"0123456789abcdfghijklmnpqrsvwxyz";
    let mut h = [b'0'; 32];
    let mut n = i.wrapping_mul(2_654_435_761);
    for c in h.iter_mut() {
        *c = A[n % 32];
        n = n / 32 + i;
    }
    format!("/nix/store/{}-package-{i}-1.0", std::str::from_utf8(&h).unwrap_or("x"))
}

fn time(label: &str, ct: &str, body: &[u8]) {
    let t = Instant::now();
    match nhc_jobset::parse_upload(Some(ct), body) {
        Ok(u) => println!(
            "{label}: {} paths, {} edges, {:.1} MB in {:.1} ms",
            u.items.len(),
            u.edges.len(),
            body.len() as f64 / 1e6,
            t.elapsed().as_secs_f64() * 1e3
        ),
        Err(e) => println!("{label}: {e}"),
    }
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let paths: Vec<String> = (0..n).map(path).collect();
    time("plain list", "text/plain", paths.join("\n").as_bytes());
    let json = format!(r#"{{"paths": ["{}"]}}"#, paths.join("\",\""));
    time("{\"paths\"}", "application/json", json.as_bytes());
    let components: Vec<String> = paths
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let drv = format!("{}.drv", path(i + n));
            format!(
                r#"{{"type":"application","bom-ref":"{drv}","name":"package-{i}","version":"1.0","purl":"pkg:nix/package-{i}@1.0","properties":[{{"name":"nix:output_path","value":"{p}"}},{{"name":"nix:drv_path","value":"{drv}"}}]}}"#
            )
        })
        .collect();
    let deps: Vec<String> =
        (1..n).map(|i| format!(r#"{{"ref":"{}.drv","dependsOn":["{}.drv"]}}"#, path(i + n), path(i - 1 + n))).collect();
    let sbom = format!(
        r#"{{"bomFormat":"CycloneDX","specVersion":"1.4","components":[{}],"dependencies":[{}]}}"#,
        components.join(","),
        deps.join(",")
    );
    time("CycloneDX (sbomnix shape)", "application/json", sbom.as_bytes());
}
