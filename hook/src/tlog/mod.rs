//! The client side of the transparency log (issue 17): the local record of what the
//! log acknowledged ([`record`]), reads of the server's `/log/` ([`fetch`]), and the
//! monitor's streaming check of a whole log ([`monitor`]). The formats and proofs are
//! `nhc-tlog`'s; `nhc audit` and `nhc log verify` are in `command/`.

pub mod fetch;
pub mod monitor;
pub mod record;

use nhc_core::{NarHash, StorePath};

/// One item of the `log` list of `POST /v1/attestations`' answer: a stored output's
/// place in the log.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct LogAck {
    pub output_path: StorePath,
    pub nar_hash: NarHash,
    pub index: u64,
    pub leaf_hash: String,
}

/// The `log` list of an answer (absent from servers without a log). An item that does
/// not parse makes the whole list unreadable: reported, not recorded.
pub fn acks_of(answer: &str) -> Result<Vec<record::Entry>, String> {
    #[derive(serde::Deserialize)]
    struct WithLog {
        #[serde(default)]
        log: Vec<LogAck>,
    }
    let w: WithLog = serde_json::from_str(answer).map_err(|e| e.to_string())?;
    w.log
        .into_iter()
        .map(|a| {
            let leaf_hash = record::parse_hash_hex(&a.leaf_hash)
                .ok_or_else(|| format!("log entry {}: leaf_hash is not 64 lowercase hex digits", a.index))?;
            Ok(record::Entry { index: a.index, leaf_hash, nar_hash: a.nar_hash, output_path: a.output_path })
        })
        .collect()
}
