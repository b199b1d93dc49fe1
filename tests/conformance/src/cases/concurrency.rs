use std::sync::{Arc, Barrier};
use std::thread;

use serde_json::json;

use crate::client::Ctx;
use crate::fixtures::{builder, counts, drv_path, nar_hash, store_path, submit, Out, TestBuilder};
use crate::{ensure, ensure_eq, TestResult};

const THREADS: usize = 16;

/// lila's race: many builders report the same new derivation at the same moment.
/// Every submission must succeed once, and the derivation must appear once.
pub fn concurrent_first_submissions_of_one_derivation(ctx: &Ctx) -> TestResult {
    let builders: Vec<Arc<TestBuilder>> =
        (0..THREADS).map(|_| builder(ctx, 1).map(Arc::new)).collect::<Result<_, _>>()?;
    for round in 0..4 {
        let drv = drv_path(&format!("race{round}"));
        let (out, dev) = (store_path(&format!("race{round}")), store_path(&format!("race{round}-dev")));
        let (h_out, h_dev) = (nar_hash(), nar_hash());
        let barrier = Arc::new(Barrier::new(THREADS));
        let handles: Vec<_> = builders
            .iter()
            .map(|b| {
                let (ctx, b, barrier, drv) = (ctx.clone(), b.clone(), barrier.clone(), drv.clone());
                let (o, d) = (Out::new(&out, h_out), Out::new(&dev, h_dev).named("dev"));
                thread::spawn(move || {
                    barrier.wait();
                    submit(&ctx, &b, Some(&drv), &[&o, &d]).and_then(|r| Ok((r.status, counts(&r)?, r.body)))
                })
            })
            .collect();
        for h in handles {
            let (status, counts, body) = h.join().map_err(|_| "a submitting thread panicked")??;
            ensure_eq!(status, 201, "concurrent submission answered {body}");
            ensure_eq!(counts, json!({"stored": 2, "duplicates": 0}), "counts");
        }
        let v = ctx.get(&format!("/v1/derivations/{}", drv.as_store_path().basename()))?.json()?;
        for name in ["out", "dev"] {
            ensure_eq!(v["outputs"][name]["status"], json!("reproduced"), "{name} status");
            let results = v["outputs"][name]["results"].as_array().ok_or("no results")?;
            ensure_eq!(results.len(), 1, "{name} results");
            ensure_eq!(results[0]["builders"].as_array().map(|b| b.len()), Some(THREADS), "{name} builders");
        }
        let s = ctx.post_json("/v1/status", None, &json!({"paths": [out.as_str()]}))?.json()?;
        ensure_eq!(s[out.as_str()]["builders"], json!(THREADS), "distinct builders");
    }
    Ok(())
}

/// One builder sending the same attestation from many connections stores it once.
pub fn concurrent_identical_submissions_store_once(ctx: &Ctx) -> TestResult {
    let b = Arc::new(builder(ctx, 1)?);
    let path = store_path("same");
    let h = nar_hash();
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (ctx, b, barrier) = (ctx.clone(), b.clone(), barrier.clone());
            let o = Out::new(&path, h);
            thread::spawn(move || {
                barrier.wait();
                submit(&ctx, &b, None, &[&o]).map(|r| (r.status, r.body))
            })
        })
        .collect();
    let mut stored = 0;
    for h in handles {
        let (status, body) = h.join().map_err(|_| "a submitting thread panicked")??;
        ensure!(status == 200 || status == 201, "answered {status}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
        stored += v["stored"].as_u64().unwrap_or(0);
        ensure_eq!(v["stored"].as_u64().unwrap_or(0) + v["duplicates"].as_u64().unwrap_or(0), 1, "counts");
    }
    ensure_eq!(stored, 1, "stored exactly once in total");
    let v = ctx.get(&format!("/v1/outputs/{}", path.basename()))?.json()?;
    ensure_eq!(v["attestations"].as_array().map(|a| a.len()), Some(1), "one attestation");
    Ok(())
}
