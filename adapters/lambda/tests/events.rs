//! Recorded API Gateway REST (v1), HTTP API (v2) and function-URL events, fed
//! through lambda_http's adapter into the router on a real (in-memory SQLite)
//! store, as the Lambda runtime would: request conversion, base64 bodies, HEAD,
//! query strings, and the shape of each response.

use std::sync::Arc;

use base64::Engine;
use lambda_http::request::LambdaRequest;
use lambda_http::tower::ServiceExt;
use lambda_http::{Adapter, Context, LambdaEvent};
use nhc_handlers::axum::Router;
use nhc_handlers::core::fingerprint::References;
use nhc_handlers::core::{fingerprint, KeyName, NarHash, SecretKey, StorePath};
use nhc_handlers::AppState;
use nhc_sqlx_store::StoreOptions;
use serde_json::{json, Value};

const ADMIN: &str = "lambda-test-admin";

async fn app() -> Router {
    let store = nhc_sqlx_store::connect("sqlite::memory:", &StoreOptions::default()).await.expect("in-memory SQLite");
    store.executor().migrate().await.expect("schema");
    let clock = Arc::new(|| 1_795_616_418_000_000);
    nhc_handlers::router(AppState::new(Arc::new(store), clock, Some(ADMIN)))
}

#[derive(Clone, Copy)]
enum Shape {
    RestV1,
    HttpV2,
    FunctionUrl,
}

struct Req<'a> {
    method: &'a str,
    path: &'a str,
    query: &'a [(&'a str, &'a str)],
    token: Option<&'a str>,
    body: Option<&'a [u8]>,
}

fn get(path: &str) -> Req<'_> {
    Req { method: "GET", path, query: &[], token: None, body: None }
}

/// A recorded event of `shape` with this request's method, path, query, headers and
/// body (always base64, as API Gateway sends binary and any body Lambda cannot
/// pass as text).
fn event(shape: Shape, r: &Req) -> Value {
    let file = match shape {
        Shape::RestV1 => include_str!("events/apigw_v1_rest.json"),
        Shape::HttpV2 => include_str!("events/apigw_v2_http.json"),
        Shape::FunctionUrl => include_str!("events/function_url.json"),
    };
    let mut ev: Value = serde_json::from_str(file).expect("fixture");
    let mut headers = json!({"host": "nhc.example.org", "content-type": "application/json"});
    if let Some(t) = r.token {
        headers["authorization"] = json!(format!("Bearer {t}"));
    }
    let body = r.body.map(|b| base64::engine::general_purpose::STANDARD.encode(b));
    let query: serde_json::Map<String, Value> = r.query.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    match shape {
        Shape::RestV1 => {
            ev["httpMethod"] = json!(r.method);
            ev["requestContext"]["httpMethod"] = json!(r.method);
            ev["path"] = json!(r.path);
            ev["headers"] = headers;
            ev["queryStringParameters"] = Value::Object(query);
        }
        Shape::HttpV2 | Shape::FunctionUrl => {
            ev["rawPath"] = json!(r.path);
            ev["requestContext"]["http"]["path"] = json!(r.path);
            ev["requestContext"]["http"]["method"] = json!(r.method);
            ev["rawQueryString"] = json!(r.query.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&"));
            ev["queryStringParameters"] = Value::Object(query);
            ev["headers"] = headers;
            ev.as_object_mut().map(|o| o.remove("cookies"));
        }
    }
    ev["body"] = body.map_or(Value::Null, Value::String);
    ev["isBase64Encoded"] = json!(r.body.is_some());
    ev
}

struct Resp {
    status: u64,
    content_type: String,
    body: String,
}

async fn call(app: &Router, shape: Shape, r: &Req<'_>) -> Resp {
    // REST API stages would otherwise prefix the path with /test.
    std::env::set_var("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH", "true");
    let payload: LambdaRequest = serde_json::from_value(event(shape, r)).expect("a valid event");
    let out =
        Adapter::from(app.clone()).oneshot(LambdaEvent::new(payload, Context::default())).await.expect("infallible");
    let v = serde_json::to_value(&out).expect("serialisable response");
    let content_type = match shape {
        Shape::RestV1 => v["multiValueHeaders"]["content-type"][0].as_str(),
        _ => v["headers"]["content-type"].as_str(),
    }
    .unwrap_or_default()
    .to_owned();
    let raw = v["body"].as_str().unwrap_or_default();
    let body = if v["isBase64Encoded"] == json!(true) {
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(raw).expect("base64")).expect("utf-8")
    } else {
        raw.to_owned()
    };
    Resp { status: v["statusCode"].as_u64().expect("a status code"), content_type, body }
}

fn json_of(r: &Resp) -> Value {
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.body))
}

#[tokio::test]
async fn health_through_every_event_shape() {
    let app = app().await;
    for shape in [Shape::RestV1, Shape::HttpV2, Shape::FunctionUrl] {
        let r = call(&app, shape, &get("/health")).await;
        assert_eq!(r.status, 200);
        assert_eq!(json_of(&r), json!({"status": "ok"}));
        assert!(r.content_type.starts_with("application/json"), "{}", r.content_type);
    }
}

#[tokio::test]
async fn a_builder_created_and_an_attestation_submitted_with_base64_bodies() {
    let app = app().await;
    let key = SecretKey::from_seed(KeyName::parse("lambda-1").unwrap(), [9; 32]);
    let create = json!({"name": "lambda-builder", "public_keys": [key.public_key().to_string()]}).to_string();
    let r = call(
        &app,
        Shape::HttpV2,
        &Req {
            method: "POST",
            path: "/v1/admin/builders",
            query: &[],
            token: Some(ADMIN),
            body: Some(create.as_bytes()),
        },
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let token = json_of(&r)["token"].as_str().expect("a token").to_owned();

    let path = StorePath::parse("/nix/store/mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello").unwrap();
    let hash = NarHash::parse("sha256:1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h").unwrap();
    let sig = key.sign(&fingerprint(&path, &hash, 120, &References::default()));
    let submit = json!({"outputs": [{"output_path": path.as_str(), "nar_hash": hash.to_string(), "nar_size": 120,
                                      "references": [], "signature": sig.to_string()}]})
    .to_string();
    let req = Req {
        method: "POST",
        path: "/v1/attestations",
        query: &[],
        token: Some(&token),
        body: Some(submit.as_bytes()),
    };
    let r = call(&app, Shape::FunctionUrl, &req).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let v = json_of(&r);
    assert_eq!((&v["stored"], &v["duplicates"]), (&json!(1), &json!(0)), "{v}");
    assert_eq!(v["log"].as_array().map(Vec::len), Some(1), "one log receipt: {v}");
    let r = call(&app, Shape::RestV1, &req).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(json_of(&r), json!({"stored": 0, "duplicates": 1, "log": []}));

    let r = call(&app, Shape::RestV1, &get(&format!("/v1/outputs/{}", path.basename()))).await;
    assert_eq!(r.status, 200);
    assert_eq!(json_of(&r)["attestations"][0]["builder"], json!("lambda-builder"));

    // The narinfo view: text, not JSON, through a REST API too; HEAD has no body.
    let narinfo = format!("/{}.narinfo", path.hash_part());
    let r = call(&app, Shape::RestV1, &get(&narinfo)).await;
    assert_eq!(r.status, 200);
    assert!(r.content_type.starts_with("text/x-nix-narinfo"));
    assert!(r.body.contains(&format!("Sig: {sig}\n")), "{}", r.body);
    for shape in [Shape::RestV1, Shape::HttpV2, Shape::FunctionUrl] {
        let r = call(&app, shape, &Req { method: "HEAD", ..get(&narinfo) }).await;
        assert_eq!(r.status, 200);
        assert!(r.body.is_empty(), "HEAD returned a body: {}", r.body);
    }
}

#[tokio::test]
async fn bad_input_is_a_json_4xx_through_the_adapter() {
    let app = app().await;
    let r = call(
        &app,
        Shape::HttpV2,
        &Req { method: "POST", path: "/v1/status", query: &[], token: None, body: Some(b"\xff\xfe not json") },
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(json_of(&r)["error"], json!("invalid_json"));

    let r = call(&app, Shape::FunctionUrl, &Req { method: "POST", ..get("/v1/attestations") }).await;
    assert_eq!(r.status, 401);
    assert_eq!(json_of(&r)["error"], json!("unauthorized"));

    // Query strings arrive both as REST's map and HTTP API's raw string.
    for shape in [Shape::RestV1, Shape::HttpV2] {
        let r = call(&app, shape, &Req { query: &[("limit", "0")], ..get("/v1/builders/nobody/attestations") }).await;
        assert_eq!(r.status, 400, "{}", r.body);
        let r = call(&app, shape, &Req { query: &[("limit", "5")], ..get("/v1/builders/nobody/attestations") }).await;
        assert_eq!(r.status, 404, "{}", r.body);
    }
}

#[tokio::test]
async fn a_database_that_is_down_is_a_503_not_a_crash() {
    // Nothing listens on port 1: the lazy pool's connection attempts fail.
    let config = nhc_lambda::Config {
        database_url: "postgres://nobody@127.0.0.1:1/none".into(),
        admin_token: Some(ADMIN.into()),
        max_connections: 1,
        acquire_timeout: std::time::Duration::from_millis(300),
        metrics: true,
        builder_rate: 20.0,
        builder_burst: 40.0,
        log_key: None,
    };
    let app = nhc_lambda::app(&config).await.expect("the cold start does not need the database");
    for req in
        [get("/health"), Req { method: "POST", token: Some("nhc_0123456789abcdef_x"), ..get("/v1/attestations") }]
    {
        let r = call(&app, Shape::FunctionUrl, &req).await;
        assert_eq!(r.status, 503, "{}", r.body);
        assert_eq!(json_of(&r)["error"], json!("unavailable"));
        // Every error body names its request, as the x-request-id header does.
        assert!(json_of(&r)["request_id"].as_str().is_some_and(|id| !id.is_empty()), "{}", r.body);
    }
    // The metrics counted both answers, by route class and status code.
    let r = call(&app, Shape::FunctionUrl, &get("/metrics")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("nhc_http_requests_total{class=\"health\",code=\"503\"} 1\n"), "{}", r.body);
    assert!(r.body.contains("nhc_submissions_rejected_total{reason=\"unavailable\"} 1\n"), "{}", r.body);
}
