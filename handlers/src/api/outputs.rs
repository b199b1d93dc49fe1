use axum::extract::State;
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use nhc_core::api::{ErrorBody, OutputReport};
use nhc_core::{BuilderName, NarHash, StatusSummary, StorePath};
use nhc_storage::PathCursor;
use serde::Deserialize;

use super::to_api;
use crate::error::ApiError;
use crate::extract::{PathParams, QueryParams};
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show))
}

#[derive(Deserialize)]
struct PageQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

/// `GET /v1/outputs/{store-path-basename}?limit=&cursor=`: the status and counts over
/// every attestation of the path, and a page of them, oldest first.
#[utoipa::path(
    get,
    path = "/v1/outputs/{basename}",
    operation_id = "output",
    tag = "queries",
    params(("basename" = String, Path, description = "The basename `<hash>-<name>` of an output path.",
            example = "mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello"),
            ("limit" = Option<u32>, Query, description = "Attestations per page, 1–1000 (default 100)."),
            ("cursor" = Option<String>, Query, description = "The `next_cursor` of the previous page.")),
    responses(
        (status = 200, description = "The path's status and counts over every attestation of it, \
                                      and a page of them, oldest first.", body = OutputReport),
        (status = 400, description = "`invalid_request`: not a store-path basename, a bad `limit` \
                                      or `cursor`.", body = ErrorBody),
        (status = 404, description = "`not_found`: nobody attested it.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the database is unavailable.", body = ErrorBody),
    )
)]
async fn show(
    State(state): State<AppState>,
    PathParams(basename): PathParams<String>,
    QueryParams(q): QueryParams<PageQuery>,
) -> Result<Json<OutputReport>, ApiError> {
    let path = StorePath::from_basename(&basename).map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
    let limit = match q.limit.as_deref() {
        None | Some("") => DEFAULT_LIMIT,
        Some(s) => s
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| ApiError::InvalidRequest(format!("limit must be an integer from 1 to {MAX_LIMIT}")))?,
    };
    let cursor = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(s) => Some(decode_cursor(s).ok_or_else(|| ApiError::InvalidRequest("invalid cursor".into()))?),
    };
    // The summary counts every attestation: (builder, hash) pairs only, bounded by the
    // cap on distinct hashes per builder and path.
    let votes = state.store.votes_of_paths(std::slice::from_ref(&path)).await?;
    if votes.is_empty() {
        return Err(ApiError::NotFound(format!("nobody attested {path}")));
    }
    let summary = StatusSummary::from_votes(votes.iter().map(|v| (&v.builder, &v.nar_hash)));
    let mut rows = state.store.attestations_of_path(&path, cursor.as_ref(), limit + 1).await?;
    let next_cursor = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|r| {
            encode_cursor(&PathCursor {
                submitted_at: r.submitted_at,
                builder: r.builder.clone(),
                nar_hash: r.nar_hash,
            })
        })
    } else {
        None
    };
    Ok(Json(OutputReport {
        output_path: path,
        status: summary.status,
        builders: summary.builders as u64,
        distinct_hashes: summary.distinct_hashes as u64,
        total_attestations: votes.len() as u64,
        attestations: rows.into_iter().map(to_api).collect(),
        next_cursor,
    }))
}

/// Opaque to clients: base64url of `<micros>|<builder>|<nix32 hash>`.
fn encode_cursor(c: &PathCursor) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}|{}|{}", c.submitted_at, c.builder, c.nar_hash.to_nix32()))
}

fn decode_cursor(s: &str) -> Option<PathCursor> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(s).ok()?).ok()?;
    let mut parts = raw.splitn(3, '|');
    let submitted_at = parts.next()?.parse().ok()?;
    let builder = BuilderName::parse(parts.next()?).ok()?;
    let nar_hash = NarHash::parse(&format!("sha256:{}", parts.next()?)).ok()?;
    Some(PathCursor { submitted_at, builder, nar_hash })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_roundtrip() {
        let c = PathCursor {
            submitted_at: 1_795_616_418_500_000,
            builder: BuilderName::parse("builder-1").unwrap(),
            nar_hash: NarHash::parse("sha256:1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h").unwrap(),
        };
        assert_eq!(decode_cursor(&encode_cursor(&c)), Some(c));
        for bad in ["", "!!", "bm9wZQ", &URL_SAFE_NO_PAD.encode("1|b|y"), &URL_SAFE_NO_PAD.encode("x|b|y")] {
            assert_eq!(decode_cursor(bad), None, "{bad}");
        }
    }
}
