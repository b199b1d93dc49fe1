//! `GET /openapi.json`: the OpenAPI 3.1 document of the router, generated from the
//! `#[utoipa::path]` annotations of the handlers. The router is built from the same
//! annotations (`utoipa_axum::routes!` takes each route's method and path from
//! them), so a route cannot be served without being documented; the tests below
//! check that anyway, against the router as axum holds it.

use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use nhc_core::api::ErrorBody;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::ApiError;

/// What [`utoipa_axum::router::OpenApiRouter`] starts from: everything but the paths
/// and schemas, which the routes bring.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "nix-hash-collection",
        description = "Collects signed claims (attestations) of Nix builders about the NAR hash of the outputs they \
                       built, and answers whether independent builders reproduced a store path. Every deployment \
                       (`nhc-server`, the Cloudflare Worker, the Lambda) serves these routes. docs/api.md in the \
                       repository is the prose version, with the status rules and the narinfo format. \
                       `nhc-server` and the Lambda also serve `GET /metrics` (Prometheus text) and may answer \
                       429 `rate_limited` or 503 `overloaded` on any route, and add `request_id` to error \
                       bodies; the Worker does neither. Every GET route also answers HEAD.",
        license(name = "MIT"),
    ),
    components(schemas(nhc_core::api::ErrorCode)),
    modifiers(&Security),
    tags(
        (name = "queries", description = "Public reads: builders, outputs, derivations, statuses."),
        (name = "attestations", description = "Submitting attestations, with a builder token."),
        (name = "admin", description = "Managing builders, with the deploy-time admin token."),
        (name = "jobsets", description = "Jobsets and their evaluations (the output paths of, e.g., a NixOS image \
                                          at one nixpkgs revision) with the live status of every path; \
                                          docs/jobsets.md. Managed with the admin token; evaluations are uploaded \
                                          with the admin token or the jobset's own token."),
        (name = "binary cache", description = "The attestations as Nix binary caches (narinfo only, no NARs), \
                                                so that `nix path-info --sigs` and `nix store verify` check the \
                                                builders' own signatures."),
        (name = "service", description = "Health and this document."),
    )
)]
pub(super) struct ApiDoc;

/// The bearer tokens: a builder's (`nhc_<id>_<secret>`), a jobset's and the admin token.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |description: &str| {
            let mut http = Http::new(HttpAuthScheme::Bearer);
            http.description = Some(description.to_owned());
            SecurityScheme::Http(http)
        };
        components.add_security_scheme(
            "builder_token",
            bearer("A builder token `nhc_<id>_<secret>`, issued by the admin API."),
        );
        components
            .add_security_scheme("admin_token", bearer("The admin token set at deploy time (`NHC_ADMIN_TOKEN`)."));
        components.add_security_scheme(
            "jobset_token",
            bearer(
                "A jobset token `nhc_<id>_<secret>`, issued by the admin API; uploads evaluations of its jobset only.",
            ),
        );
    }
}

/// `GET /openapi.json`
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "service",
    responses(
        (status = 200, description = "This document (OpenAPI 3.1).", content_type = "application/json", body = Object),
        (status = 500, description = "`internal_error`: the document could not be serialized.", body = ErrorBody),
    )
)]
pub(super) async fn openapi_json() -> Result<Response, ApiError> {
    let doc = super::built().doc.as_deref().map_err(|e| ApiError::Internal(e.clone()))?;
    Ok(([(CONTENT_TYPE, "application/json")], doc).into_response())
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use axum::http::StatusCode;
    use nhc_jobset::{QueryError, UploadError};
    use serde_json::Value;

    use crate::error::ApiError;

    /// (path, method) of every route axum holds, read from the router's `Debug`
    /// output: axum has no public way to list routes. The path map reads
    /// `RouteId(3): "/v1/me"` and the endpoints `RouteId(3): MethodRouter(MethodRouter
    /// { ..., allow_header: Bytes(b"GET,HEAD") })`; an endpoint that is a bare service
    /// (`route_service`) has no methods and shows as `*`.
    fn router_routes() -> BTreeSet<(String, String)> {
        let debug = format!("{:?}", super::super::built().routes);
        // Only the routes, not the fallback router that follows them.
        let (routes, _) = debug.split_once(", fallback_router:").expect("a fallback_router after the routes");
        let mut paths = BTreeMap::new();
        let mut methods: BTreeMap<u64, Vec<String>> = BTreeMap::new();
        let mut rest = routes;
        while let Some(i) = rest.find("RouteId(") {
            rest = &rest[i + "RouteId(".len()..];
            let Some((id, after)) = rest.split_once("): ") else { break };
            let Ok(id) = id.parse::<u64>() else { continue };
            if let Some(quoted) = after.strip_prefix('"') {
                let end = quoted.find('"').expect("a closing quote");
                paths.insert(id, quoted[..end].to_owned());
            } else if after.starts_with("MethodRouter(") {
                let start = after.find("allow_header: Bytes(b\"").expect("an allow_header") + 22;
                let end = start + after[start..].find('"').expect("a closing quote");
                let allowed = after[start..end].split(',').filter(|m| *m != "HEAD").map(str::to_owned).collect();
                methods.insert(id, allowed);
            } else {
                methods.insert(id, vec!["*".to_owned()]);
            }
        }
        let routes: BTreeSet<_> = paths
            .into_iter()
            .flat_map(|(id, path)| {
                let ms = methods.get(&id).cloned().unwrap_or_else(|| vec!["?".to_owned()]);
                ms.into_iter().map(move |m| (path.clone(), m))
            })
            .collect();
        assert!(
            routes.contains(&("/health".to_owned(), "GET".to_owned())),
            "could not read the routes from axum's Debug output (did its format change?): {debug}"
        );
        routes
    }

    fn doc() -> Value {
        serde_json::from_str(&super::super::openapi().to_json().unwrap()).unwrap()
    }

    fn doc_routes(doc: &Value) -> BTreeSet<(String, String)> {
        let mut routes = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in ["get", "put", "post", "delete", "options", "head", "patch", "trace"] {
                if item.get(method).is_some() {
                    routes.insert((path.clone(), method.to_uppercase()));
                }
            }
        }
        routes
    }

    #[test]
    fn every_route_of_the_router_is_in_the_document_and_the_other_way_round() {
        let router = router_routes();
        let doc = doc_routes(&doc());
        let undocumented: Vec<_> = router.difference(&doc).collect();
        assert!(undocumented.is_empty(), "routes missing from the OpenAPI document: {undocumented:?}");
        let unserved: Vec<_> = doc.difference(&router).collect();
        assert!(unserved.is_empty(), "routes in the OpenAPI document that the router does not serve: {unserved:?}");
        // The core of the API, so that an empty router and an empty document do not agree.
        for route in [("GET", "/v1/outputs/{basename}"), ("POST", "/v1/attestations"), ("GET", "/{file}")] {
            assert!(router.contains(&(route.1.to_owned(), route.0.to_owned())), "{route:?}");
        }
    }

    #[test]
    fn the_document_is_openapi_3_1_and_every_reference_resolves() {
        let doc = doc();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."), "{}", doc["openapi"]);
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(r)) = m.get("$ref") {
                        out.push(r);
                    }
                    m.values().for_each(|v| refs(v, out));
                }
                Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(!all.is_empty());
        for r in all {
            let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("unexpected $ref {r}"));
            assert!(schemas.contains_key(name), "$ref {r} has no schema");
        }
        for name in [
            "Attestation",
            "StorePath",
            "NarHash",
            "Signature",
            "ReproStatus",
            "ErrorBody",
            "ErrorCode",
            "JobsetName",
            "Rev",
            "EvaluationPage",
            "Summary",
        ] {
            assert!(schemas.contains_key(name), "no schema {name}");
        }
    }

    #[test]
    fn every_operation_declares_its_path_parameters_and_answers() {
        let doc = doc();
        let mut operation_ids = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            let in_path: BTreeSet<&str> =
                path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}')).collect();
            for (method, op) in item.as_object().unwrap() {
                let declared: BTreeSet<&str> = op["parameters"]
                    .as_array()
                    .map(|ps| ps.iter().filter(|p| p["in"] == "path").map(|p| p["name"].as_str().unwrap()).collect())
                    .unwrap_or_default();
                assert_eq!(in_path, declared, "{method} {path}: path parameters");
                let responses = op["responses"].as_object().unwrap();
                assert!(responses.keys().any(|s| s.starts_with('2')), "{method} {path}: no success answer");
                assert!(operation_ids.insert(op["operationId"].as_str().unwrap().to_owned()), "{method} {path}");
                assert!(op["tags"].as_array().is_some_and(|t| !t.is_empty()), "{method} {path}: no tag");
            }
        }
    }

    /// Every error answer in the document names its codes (`code`, in backticks, at
    /// the start of its description or after `;`), each code is one the API has, and
    /// its status is that code's status.
    #[test]
    fn error_answers_name_codes_with_their_statuses() {
        let m = || "m".to_owned();
        let api_errors = [
            ApiError::InvalidJson(m()),
            ApiError::InvalidRequest(m()),
            ApiError::BadSignature(m()),
            ApiError::Unauthorized(m()),
            ApiError::UnknownKey(m()),
            ApiError::NotFound(m()),
            ApiError::Forbidden(m()),
            ApiError::MethodNotAllowed,
            ApiError::Conflict(m()),
            ApiError::TooManyHashes(m()),
            ApiError::TooManyDiffs(m()),
            ApiError::PayloadTooLarge(1),
            ApiError::Unavailable(m()),
            ApiError::Internal(m()),
        ];
        // Every variant is listed: a new one fails to compile here until it is added above.
        for e in &api_errors {
            match e {
                ApiError::InvalidJson(_)
                | ApiError::InvalidRequest(_)
                | ApiError::BadSignature(_)
                | ApiError::Unauthorized(_)
                | ApiError::UnknownKey(_)
                | ApiError::NotFound(_)
                | ApiError::Forbidden(_)
                | ApiError::MethodNotAllowed
                | ApiError::Conflict(_)
                | ApiError::TooManyHashes(_)
                | ApiError::TooManyDiffs(_)
                | ApiError::PayloadTooLarge(_)
                | ApiError::Unavailable(_)
                | ApiError::Internal(_) => {}
            }
        }
        let mut status_of: BTreeMap<&str, u16> = api_errors.iter().map(|e| (e.code(), e.status().as_u16())).collect();
        // nhc-jobset's, answered by the jobset routes.
        let parse_error = || nhc_core::ParseError::StorePath(m());
        let upload_errors = [
            UploadError::UnsupportedMediaType(m()),
            UploadError::BodyTooLarge { max: 1 },
            UploadError::NotUtf8,
            UploadError::UnknownFormat(m()),
            UploadError::MalformedJson(m()),
            UploadError::MalformedSbom(m()),
            UploadError::InvalidPath { at: m(), source: parse_error() },
            UploadError::Derivation { at: m(), path: m() },
            UploadError::InvalidDrvPath { at: m(), source: parse_error() },
            UploadError::InvalidOutputName { at: m(), source: parse_error() },
            UploadError::TooManyPaths { max: 1 },
            UploadError::TooManyEdges { max: 1 },
            UploadError::NoPaths,
        ];
        for e in &upload_errors {
            match e {
                UploadError::UnsupportedMediaType(_)
                | UploadError::BodyTooLarge { .. }
                | UploadError::NotUtf8
                | UploadError::UnknownFormat(_)
                | UploadError::MalformedJson(_)
                | UploadError::MalformedSbom(_)
                | UploadError::InvalidPath { .. }
                | UploadError::Derivation { .. }
                | UploadError::InvalidDrvPath { .. }
                | UploadError::InvalidOutputName { .. }
                | UploadError::TooManyPaths { .. }
                | UploadError::TooManyEdges { .. }
                | UploadError::NoPaths => {}
            }
            let before = status_of.insert(e.code(), e.http_status());
            assert!(before.is_none_or(|s| s == e.http_status()), "`{}` has two statuses", e.code());
        }
        let query_errors = [QueryError::Status(m()), QueryError::Limit, QueryError::Text, QueryError::Cursor];
        for e in &query_errors {
            match e {
                QueryError::Status(_) | QueryError::Limit | QueryError::Text | QueryError::Cursor => {}
            }
            let before = status_of.insert(e.code(), e.http_status());
            assert!(before.is_none_or(|s| s == e.http_status()), "`{}` has two statuses", e.code());
        }
        // The guard's (nhc-server, the Lambda).
        status_of.insert("rate_limited", StatusCode::TOO_MANY_REQUESTS.as_u16());
        status_of.insert("overloaded", StatusCode::SERVICE_UNAVAILABLE.as_u16());

        let doc = doc();
        let listed: BTreeSet<&str> = doc["components"]["schemas"]["ErrorCode"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert_eq!(listed, status_of.keys().copied().collect(), "the ErrorCode schema and the API's codes differ");

        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for (status, answer) in op["responses"].as_object().unwrap() {
                    let status: u16 = status.parse().unwrap();
                    if status < 400 {
                        continue;
                    }
                    let description = answer["description"].as_str().unwrap();
                    let codes: Vec<&str> = description
                        .split(';')
                        .filter_map(|part| part.trim().strip_prefix('`')?.split_once('`').map(|(c, _)| c))
                        .collect();
                    assert!(!codes.is_empty(), "{method} {path} {status}: no error code in {description:?}");
                    for code in codes {
                        assert_eq!(status_of.get(code), Some(&status), "{method} {path} {status}: code `{code}`");
                    }
                    let schema = &answer["content"]["application/json"]["schema"]["$ref"];
                    assert_eq!(schema, "#/components/schemas/ErrorBody", "{method} {path} {status}");
                }
            }
        }
    }

    #[tokio::test]
    async fn the_route_serves_the_document() {
        use axum::response::IntoResponse;
        use http_body_util::BodyExt;

        let res = super::openapi_json().await.into_response();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["content-type"], "application/json");
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let served: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(served, doc());
    }
}
