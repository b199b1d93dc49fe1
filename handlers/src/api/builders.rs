use axum::extract::State;
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use nhc_core::api::{AttestationPage, BuilderInfo, ErrorBody};
use nhc_core::{BuilderName, NarHash, StorePath};
use serde::Deserialize;

use super::to_api;
use crate::error::ApiError;
use crate::extract::{PathBuilder, QueryParams};
use crate::service::builders;
use crate::state::AppState;
use nhc_storage::Cursor;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(attestations))
}

/// `GET /v1/builders`
#[utoipa::path(
    get,
    path = "/v1/builders",
    tag = "queries",
    responses(
        (status = 200, description = "The builders that are not deleted, oldest first, each with its keys in the \
                                      order they were registered.", body = Vec<BuilderInfo>),
        (status = 503, description = "`unavailable`: the database is unavailable.", body = ErrorBody),
    )
)]
async fn list(State(state): State<AppState>) -> Result<Json<Vec<BuilderInfo>>, ApiError> {
    Ok(Json(builders::list(&state).await?))
}

#[derive(Deserialize)]
struct PageQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

/// `GET /v1/builders/{name}/attestations?limit=&cursor=`, newest first.
#[utoipa::path(
    get,
    path = "/v1/builders/{name}/attestations",
    tag = "queries",
    params(
        ("name" = BuilderName, Path, description = "A builder, deleted ones included (not purged ones)."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000,
         description = "Rows per page, 1 to 1000; absent or empty: 100."),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the previous page (opaque)."),
    ),
    responses(
        (status = 200, description = "A page of the builder's attestations, newest first (then by output path and \
                                      NAR hash, descending); `next_cursor` is null on the last page.",
         body = AttestationPage),
        (status = 400, description = "`invalid_request`: not a builder name, `limit` out of range or not a \
                                      number, a cursor that does not decode.", body = ErrorBody),
        (status = 404, description = "`not_found`: no builder of that name ever existed, or it was purged.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the database is unavailable.", body = ErrorBody),
    )
)]
async fn attestations(
    State(state): State<AppState>,
    PathBuilder(name): PathBuilder,
    QueryParams(q): QueryParams<PageQuery>,
) -> Result<Json<AttestationPage>, ApiError> {
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
    if !state.store.builder_known(&name).await? {
        return Err(ApiError::NotFound(format!("no builder named {name}")));
    }
    let mut rows = state.store.builder_attestations(&name, cursor.as_ref(), limit + 1).await?;
    let next_cursor = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|r| {
            encode_cursor(&Cursor {
                submitted_at: r.submitted_at,
                output_path: r.output_path.clone(),
                nar_hash: r.nar_hash,
            })
        })
    } else {
        None
    };
    Ok(Json(AttestationPage { attestations: rows.into_iter().map(to_api).collect(), next_cursor }))
}

/// Opaque to clients: base64url of `<micros>|<path basename>|<nix32 hash>`.
fn encode_cursor(c: &Cursor) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}|{}|{}", c.submitted_at, c.output_path.basename(), c.nar_hash.to_nix32()))
}

fn decode_cursor(s: &str) -> Option<Cursor> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(s).ok()?).ok()?;
    let mut parts = raw.splitn(3, '|');
    let submitted_at = parts.next()?.parse().ok()?;
    let output_path = StorePath::from_basename(parts.next()?).ok()?;
    let nar_hash = NarHash::parse(&format!("sha256:{}", parts.next()?)).ok()?;
    Some(Cursor { submitted_at, output_path, nar_hash })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_roundtrip() {
        let c = Cursor {
            submitted_at: 1_795_616_418_500_000,
            output_path: StorePath::parse("/nix/store/mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello").unwrap(),
            nar_hash: NarHash::parse("sha256:1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h").unwrap(),
        };
        assert_eq!(decode_cursor(&encode_cursor(&c)), Some(c));
        for bad in ["", "!!", "bm9wZQ", &URL_SAFE_NO_PAD.encode("1|x|y")] {
            assert_eq!(decode_cursor(bad), None, "{bad}");
        }
    }
}
