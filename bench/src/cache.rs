//! A binary cache for the import benchmark: `n` narinfo of the dataset, signed by
//! builder 0's key, written to a directory (a `file://` cache) and, with `listen`,
//! served from memory over HTTP/1.1 with keep-alive (a fast static server, so the
//! figures are the importer's, not the cache's).

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use nhc_core::{fingerprint, NarInfo};

use crate::dataset::Dataset;

/// Writes `nix-cache-info`, `<hash>.narinfo` for paths `0..n`, `paths.txt` (the
/// store paths, one a line) and `key.pub` (the key to register) into `dir`.
pub fn generate(ds: &Dataset, dir: &Path, n: u64) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("nix-cache-info"), "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n")?;
    let key = ds.key(0);
    std::fs::write(dir.join("key.pub"), format!("{}\n", key.public_key()))?;
    let mut paths = String::new();
    for i in 0..n {
        let store_path = ds.output_path(i);
        let nar_hash = ds.nar_hash(i, 0);
        let nar_size = 1000 + (i % 100_000);
        let references = ds.references(i);
        let sig = key.sign(&fingerprint(&store_path, &nar_hash, nar_size, &references));
        let info = NarInfo {
            url: format!("nar/{}.nar", store_path.hash_part()),
            compression: "none".into(),
            file_hash: None,
            file_size: None,
            nar_hash,
            nar_size,
            references,
            deriver: Some(ds.drv_path(i)),
            system: Some("x86_64-linux".into()),
            signatures: vec![sig],
            unparsed_signatures: vec![],
            ca: None,
            store_path: store_path.clone(),
        };
        std::fs::write(dir.join(format!("{}.narinfo", store_path.hash_part())), info.to_string())?;
        paths.push_str(store_path.as_str());
        paths.push('\n');
    }
    std::fs::write(dir.join("paths.txt"), paths)
}

/// Serves the files of `dir` (read once into memory) at `/<name>` until killed.
pub fn serve(dir: &Path, listen: &str) -> std::io::Result<()> {
    let mut files = HashMap::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if let Some(name) = e.file_name().to_str() {
            if e.file_type()?.is_file() {
                files.insert(format!("/{name}"), Bytes::from(std::fs::read(e.path())?));
            }
        }
    }
    let files = Arc::new(files);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        println!("serving {} files of {} on http://{}", files.len(), dir.display(), listener.local_addr()?);
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            let files = files.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let files = files.clone();
                    async move {
                        let res = match files.get(req.uri().path()) {
                            Some(b) => Response::builder().header("content-type", "text/x-nix-narinfo").body(
                                Full::new(if req.method() == hyper::Method::HEAD { Bytes::new() } else { b.clone() }),
                            ),
                            None => Response::builder().status(StatusCode::NOT_FOUND).body(Full::new(Bytes::new())),
                        };
                        Ok::<_, Infallible>(res.unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    })
}
