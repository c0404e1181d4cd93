//! The HTTP application in process: requests go to `quilt_mcp::http::router` through
//! tower's `oneshot`, with no socket and no child process, beside the process-level
//! tests of `http.rs`. Fast checks of routing, the Host rule, the bearer layer and the
//! metadata document.

use axum::body::Body;
use http::{Request, StatusCode, header};
use quilt_mcp::http::{HttpOptions, router};
use quilt_mcp::{Config, QuiltServer};
use serde_json::{Value, json};
use tower::ServiceExt as _;

use crate::common::{SECRET, claims, hs256};

fn app(env: &[(&str, &str)]) -> axum::Router {
    let mut vars: Vec<(String, String)> = vec![("QUILT_MCP_JWT_SECRET".into(), SECRET.into())];
    vars.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let config =
        Config::from_lookup(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()));
    router(QuiltServer::new_http(config), &HttpOptions::default())
}

async fn send(app: axum::Router, request: Request<Body>) -> (StatusCode, http::HeaderMap, Value) {
    let response = app.oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, body)
}

fn get(path: &str, host: &str) -> Request<Body> {
    Request::get(path)
        .header(header::HOST, host)
        .body(Body::empty())
        .unwrap()
}

fn mcp_call(host: &str, token: Option<&str>) -> Request<Body> {
    let mut request = Request::post("/mcp")
        .header(header::HOST, host)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json, text/event-stream");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "auth_status", "arguments": {}}});
    request.body(Body::from(body.to_string())).unwrap()
}

#[tokio::test]
async fn probes_answer_without_a_token() {
    let (status, _, _) = send(app(&[]), get("/healthz", "localhost")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = send(app(&[]), get("/readyz", "127.0.0.1:8080")).await;
    assert_eq!(status, StatusCode::OK);
    // Without a key the server is alive but not ready.
    let unconfigured = router(
        QuiltServer::new_http(Config::from_lookup(|_| None)),
        &HttpOptions::default(),
    );
    let (status, _, _) = send(unconfigured, get("/readyz", "localhost")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn mcp_without_a_valid_token_is_401_with_its_reason() {
    let (status, headers, body) = send(app(&[]), mcp_call("localhost", None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        (&body["error"], &body["reason"]),
        (&json!("unauthorized"), &json!("missing_token"))
    );
    let challenge = headers[header::WWW_AUTHENTICATE].to_str().unwrap();
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    assert!(!challenge.contains("error="), "no token sent: {challenge}");
    // Without QUILT_CATALOG_URL there is no authorization server to name.
    assert!(!challenge.contains("resource_metadata"), "{challenge}");

    let (status, headers, body) = send(app(&[]), mcp_call("localhost", Some("a.b.c"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["reason"], "malformed_token");
    let challenge = headers[header::WWW_AUTHENTICATE].to_str().unwrap();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
}

#[tokio::test]
async fn a_valid_token_reaches_the_gate() {
    let token = hs256(&claims());
    let (status, _, body) = send(app(&[]), mcp_call("localhost", Some(&token))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["result"]["structuredContent"]["authenticated"], true,
        "{body}"
    );
    assert_eq!(
        body["result"]["structuredContent"]["token"]["source"],
        "http"
    );
}

#[tokio::test]
async fn a_foreign_host_is_refused_before_authentication() {
    let token = hs256(&claims());
    let (status, _, body) = send(app(&[]), mcp_call("evil.example", Some(&token))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["reason"], "host_not_allowed");
    assert!(!body.to_string().contains("evil.example"));
    // The probes stay reachable.
    let (status, _, _) = send(app(&[]), get("/healthz", "evil.example")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn metadata_names_the_catalog_only_when_there_is_one() {
    let path = "/.well-known/oauth-protected-resource";
    let (status, _, _) = send(app(&[]), get(path, "localhost")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let catalog = [("QUILT_CATALOG_URL", "https://catalog.example.com")];
    let (status, _, body) = send(app(&catalog), get(path, "localhost:9000")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["authorization_servers"],
        json!(["https://catalog.example.com"])
    );
}
