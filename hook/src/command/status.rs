//! `nhc status`: who built what and whether it reproduced.

use nhc_core::api::{DerivationReport, OutputReport};
use nhc_core::{DrvPath, OutputName, ReproStatus};
use nhc_nix::{Store, StoreLocation};

use super::Exit;
use crate::api::Client;
use crate::config::{self, Config};
use crate::log;

/// Who built what and whether it reproduced, as a table.
///
/// Takes output paths, `.drv` paths, basenames, or `result` links. For a `.drv` that
/// can be read from the local store, every output is listed, also those the server
/// has no attestation of (`no_builds`). Exit status 0 when every output reproduced
/// (two or more builders, one hash), 2 when any output has differing hashes, 1
/// otherwise (no builds yet, one builder, or an error).
#[derive(clap::Args, Debug)]
#[command(after_help = config::help())]
pub struct Args {
    #[arg(required = true, value_name = "PATH|DRV")]
    paths: Vec<String>,
    /// Print the server's reports as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(cfg: &Config, args: Args) -> Exit {
    status_in(cfg, &config::store_location(), &args.paths, args.json)
}

/// One line (or more, one per hash) of the status table.
struct Row {
    path: String,
    /// `None` when not known.
    output: Option<String>,
    status: ReproStatus,
    /// The NAR hashes, each with the builders that reported it, most builders first.
    hashes: Vec<(String, Vec<String>)>,
}

impl Row {
    fn no_builds(path: String, output: Option<String>) -> Row {
        Row { path, output, status: ReproStatus::NoBuilds, hashes: vec![] }
    }
}

/// A `no_builds` row for each output of `drv` (read from the local store) that is not
/// in `reported`: the server knows nothing of it, so the derivation is not reproduced.
fn unreported_outputs(loc: &StoreLocation, drv: &DrvPath, reported: &dyn Fn(&OutputName) -> bool) -> Option<Vec<Row>> {
    let d = Store::new(loc.clone()).read_derivation(drv).ok()?;
    Some(
        d.outputs
            .into_iter()
            .filter(|(name, _)| !reported(name))
            .map(|(name, path)| {
                let path = path.map(|p| p.to_string()).unwrap_or_else(|| format!("{drv}^{name}"));
                Row::no_builds(path, Some(name.to_string()))
            })
            .collect(),
    )
}

fn derivation_rows(loc: &StoreLocation, drv: &DrvPath, report: Option<&DerivationReport>) -> Vec<Row> {
    let Some(r) = report else {
        let outs = unreported_outputs(loc, drv, &|_| false).filter(|o| !o.is_empty());
        return outs.unwrap_or_else(|| vec![Row::no_builds(drv.to_string(), None)]);
    };
    let mut rows: Vec<Row> = r
        .outputs
        .iter()
        .map(|(name, o)| Row {
            path: o.output_path.to_string(),
            output: Some(name.to_string()),
            status: o.status,
            hashes: o
                .results
                .iter()
                .map(|h| (h.nar_hash.to_string(), h.builders.iter().map(|b| b.to_string()).collect()))
                .collect(),
        })
        .collect();
    rows.extend(unreported_outputs(loc, drv, &|n| r.outputs.contains_key(n)).unwrap_or_default());
    rows
}

fn output_row(r: &OutputReport) -> Row {
    let mut by_hash: Vec<(String, Vec<String>)> = Vec::new();
    for a in &r.attestations {
        let h = a.nar_hash.to_string();
        let b = a.builder.to_string();
        match by_hash.iter_mut().find(|(x, _)| *x == h) {
            Some((_, bs)) if bs.contains(&b) => {}
            Some((_, bs)) => bs.push(b),
            None => by_hash.push((h, vec![b])),
        }
    }
    by_hash.sort_by_key(|(_, bs)| std::cmp::Reverse(bs.len()));
    let output = r.attestations.iter().find_map(|a| a.output_name.as_ref()).map(|n| n.to_string());
    Row { path: r.output_path.to_string(), output, status: r.status, hashes: by_hash }
}

fn status_in(cfg: &Config, loc: &StoreLocation, args: &[String], json: bool) -> Exit {
    let client = Client::for_config(cfg)?;
    let mut rows = Vec::new();
    let mut json_out = serde_json::Map::new();
    let mut failed = false;
    for arg in args {
        let sp = match loc.resolve_arg(arg) {
            Ok(sp) => sp,
            Err(e) => {
                log::error(&e.to_string());
                failed = true;
                continue;
            }
        };
        let answer = match DrvPath::try_from(sp.clone()) {
            Ok(drv) => client.derivation(&drv).map(|r| {
                rows.extend(derivation_rows(loc, &drv, r.as_ref()));
                serde_json::to_value(r)
            }),
            Err(_) => client.output(&sp).map(|r| {
                rows.push(r.as_ref().map(output_row).unwrap_or_else(|| Row::no_builds(sp.to_string(), None)));
                serde_json::to_value(r)
            }),
        };
        match answer {
            Ok(v) => {
                json_out.insert(arg.clone(), v.unwrap_or_default());
            }
            Err(e) => {
                log::error(&e.to_string());
                failed = true;
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&json_out)?);
    } else {
        print!("{}", table(&rows));
    }
    let differs = rows.iter().any(|r| r.hashes.len() >= 2);
    let all_reproduced = !failed && !rows.is_empty() && rows.iter().all(|r| r.status == ReproStatus::Reproduced);
    Ok(if differs {
        2
    } else if all_reproduced {
        0
    } else {
        1
    })
}

fn table(rows: &[Row]) -> String {
    let head = ["OUTPUT PATH", "NAME", "STATUS", "NAR HASH", "BUILDERS"];
    let mut lines: Vec<[String; 5]> = vec![head.map(str::to_owned)];
    for r in rows {
        let output = r.output.clone().unwrap_or_else(|| "-".into());
        let status = r.status.as_str().to_owned();
        if r.hashes.is_empty() {
            lines.push([r.path.clone(), output.clone(), status.clone(), "-".into(), "-".into()]);
        }
        for (i, (h, bs)) in r.hashes.iter().enumerate() {
            let first = |s: &String| if i == 0 { s.clone() } else { String::new() };
            lines.push([first(&r.path), first(&output), first(&status), h.clone(), bs.join(", ")]);
        }
    }
    let mut width = [0usize; 5];
    for l in &lines {
        for (w, c) in width.iter_mut().zip(l) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for l in &lines {
        let mut line = String::new();
        for (i, c) in l.iter().enumerate() {
            if i == 4 {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}  ", w = width[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attest::config;
    use crate::testutil::{json, serve};
    use std::fs;

    #[test]
    fn table_layout() {
        let rows = vec![
            Row {
                path: "/nix/store/a".into(),
                output: Some("out".into()),
                status: ReproStatus::NotReproduced,
                hashes: vec![("sha256:x".into(), vec!["alice".into()]), ("sha256:y".into(), vec!["bob".into()])],
            },
            Row::no_builds("/nix/store/bb".into(), None),
        ];
        let t = table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("OUTPUT PATH    NAME  STATUS          NAR HASH  BUILDERS"), "{t}");
        assert!(lines[1].contains("not_reproduced") && lines[1].ends_with("sha256:x  alice"), "{t}");
        assert!(lines[2].trim_start().starts_with("sha256:y"));
        assert!(lines[3].contains("no_builds") && lines[3].contains(" -  "), "{t}");
    }

    /// `nhc status DRV` lists every output of a derivation it can read, so an output no
    /// builder attested makes the exit status non-zero.
    #[test]
    fn status_of_a_drv_lists_unattested_outputs() {
        let root = tempfile::tempdir().unwrap();
        let store_dir = root.path().join("nix/store");
        fs::create_dir_all(&store_dir).unwrap();
        let drv = "47zvzz4hqip4gfnfpvz1zrvi7bydmnqg-multi.drv";
        fs::write(
            store_dir.join(drv),
            r#"Derive([("dev","/nix/store/s95kw5pf8cc8dh0giqsbdq679kffq196-multi-dev","",""),("out","/nix/store/xhsz73x5r1q3ml5hrwzv50yw85pwqk2w-multi","","")],[],[],"x86_64-linux","/bin/sh",[],[])"#,
        )
        .unwrap();
        let report = format!(
            r#"{{"drv_path":"/nix/store/{drv}","outputs":{{"out":{{"output_path":"/nix/store/xhsz73x5r1q3ml5hrwzv50yw85pwqk2w-multi","status":"reproduced","results":[{{"nar_hash":"sha256:10551daed7fa467d0b58826e7eb9a0f2af7d693de319f2ef775fffcda244b9f6","builders":["alice","bob"]}}]}}}}}}"#
        );
        let (base, h) = serve(vec![json(200, &report), json(200, &report)]);
        let cfg = config(&base, &root.path().join("spool"));
        let loc = StoreLocation::from_uri(root.path().to_str().unwrap(), None);
        // The server knows `out` only: `dev` has no builds, so not everything reproduced.
        assert_eq!(status_in(&cfg, &loc, &[drv.to_owned()], false).unwrap(), 1);
        // Without the .drv locally, only the server's outputs are known.
        let elsewhere = StoreLocation::from_uri("/nonexistent", None);
        assert_eq!(status_in(&cfg, &elsewhere, &[drv.to_owned()], false).unwrap(), 0);
        h.join().unwrap();
        let rows =
            unreported_outputs(&loc, &DrvPath::parse(&format!("/nix/store/{drv}")).unwrap(), &|n| n.as_str() == "out")
                .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].output.as_deref(), rows[0].status), (Some("dev"), ReproStatus::NoBuilds));
        assert!(rows[0].path.ends_with("-multi-dev"));
    }
}
