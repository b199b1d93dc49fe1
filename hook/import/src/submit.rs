//! Batched `POST /v1/attestations`: many outputs per request, a few requests in flight.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use nhc_core::api::{SubmitCounts, SubmitRequest, SubmittedOutput, MAX_BODY_BYTES};
use nhc_core::DrvPath;
use reqwest::Client;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::{http, warn, Counters, OnAnswer, Settings};

/// Submissions in flight at once.
const IN_FLIGHT: usize = 4;
/// Stay well under the server's body limit: a batch is sent once it reaches half of it.
const BATCH_BYTES: usize = MAX_BODY_BYTES / 2;

pub struct Submitter {
    client: Client,
    url: Arc<str>,
    token: Arc<str>,
    on_answer: OnAnswer,
    batch: usize,
    counters: Arc<Counters>,
    sem: Arc<Semaphore>,
    tasks: JoinSet<bool>,
    /// Unnamed outputs (no derivation) in one batch; named ones per derivation.
    pending: HashMap<Option<DrvPath>, (Vec<SubmittedOutput>, usize)>,
}

impl Submitter {
    pub fn new(client: Client, s: &Settings, counters: Arc<Counters>) -> Submitter {
        Submitter {
            client,
            url: format!("{}/v1/attestations", s.server).into(),
            token: s.token.as_str().into(),
            on_answer: s.on_answer.clone(),
            batch: s.batch.max(1),
            counters,
            sem: Arc::new(Semaphore::new(IN_FLIGHT)),
            tasks: JoinSet::new(),
            pending: HashMap::new(),
        }
    }

    /// Queues one output; sends its batch when full. Waits when `IN_FLIGHT`
    /// submissions are running, so a slow server slows the fetching (memory stays flat).
    pub async fn add(&mut self, drv: Option<DrvPath>, out: SubmittedOutput) {
        let size = serde_json::to_vec(&out).map(|v| v.len()).unwrap_or(1024) + 1;
        let named = drv.is_some();
        let entry = self.pending.entry(drv.clone()).or_default();
        entry.0.push(out);
        entry.1 += size;
        // A derivation's outputs are rarely more than a few: send them as they come
        // rather than keep a batch per derivation open.
        if named || entry.0.len() >= self.batch || entry.1 >= BATCH_BYTES {
            if let Some((outs, _)) = self.pending.remove(&drv) {
                self.send(drv, outs).await;
            }
        }
        // Collect finished tasks so the set stays small.
        while self.tasks.try_join_next().is_some() {}
    }

    async fn send(&mut self, drv_path: Option<DrvPath>, outputs: Vec<SubmittedOutput>) {
        let Ok(permit) = self.sem.clone().acquire_owned().await else { return };
        let (client, url, token, counters, on_answer) =
            (self.client.clone(), self.url.clone(), self.token.clone(), self.counters.clone(), self.on_answer.clone());
        self.tasks.spawn(async move {
            let n = outputs.len() as u64;
            let ok = post(&client, &url, &token, &SubmitRequest { drv_path, outputs }, &counters, &on_answer).await;
            if !ok {
                counters.failed.fetch_add(n, Ordering::Relaxed);
            }
            drop(permit);
            ok
        });
    }

    /// Sends what is left and waits for every submission; false when any failed.
    pub async fn finish(&mut self) -> bool {
        for (drv, (outs, _)) in std::mem::take(&mut self.pending) {
            if !outs.is_empty() {
                self.send(drv, outs).await;
            }
        }
        let mut all = true;
        while let Some(r) = self.tasks.join_next().await {
            all &= r.unwrap_or(false);
        }
        all
    }
}

/// One submission with retries; counts what the server stored.
async fn post(
    client: &Client,
    url: &str,
    token: &str,
    req: &SubmitRequest,
    counters: &Counters,
    on_answer: &OnAnswer,
) -> bool {
    let body = match serde_json::to_vec(req) {
        Ok(b) => b,
        Err(e) => {
            warn(&format!("cannot encode a submission: {e}"));
            return false;
        }
    };
    let res = http::send(client, |c| {
        c.post(url).bearer_auth(token).header("content-type", "application/json").body(body.clone())
    })
    .await;
    let res = match res {
        Ok(r) => r,
        Err(e) => {
            warn(&format!("POST {url}: {e}"));
            return false;
        }
    };
    let status = res.status();
    let text = http::body_limited(res, 1 << 20).await.ok().flatten().unwrap_or_default();
    if status.is_success() {
        if let Ok(r) = serde_json::from_slice::<SubmitCounts>(&text) {
            counters.imported.fetch_add(r.stored, Ordering::Relaxed);
            counters.duplicates.fetch_add(r.duplicates, Ordering::Relaxed);
            if let Some(f) = &on_answer.0 {
                f(&text);
            }
            return true;
        }
    }
    warn(&format!(
        "POST {url} ({} outputs): HTTP {status}: {}",
        req.outputs.len(),
        String::from_utf8_lossy(&text[..text.len().min(500)])
    ));
    false
}
