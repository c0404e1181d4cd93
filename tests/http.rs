//! The streamable HTTP transport over a real TCP socket: 401s for every way a token
//! can be missing or wrong, unauthenticated probes and metadata, tools for valid
//! tokens (several users at once), -32003 for a forbidden bucket, and a graceful stop.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::fakes::FakeServer;
use common::s3::{ACCESS_KEY, SECRET_KEY, TestS3};
use common::*;
use rmcp::ServiceExt as _;
use rmcp::model::CallToolRequestParams;
use rmcp::service::ServiceError;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt as _;

/// A `quilt-mcp serve --http 127.0.0.1:0` child.
struct HttpServer {
    child: tokio::process::Child,
    base: String,
    _log_dir: tempfile::TempDir,
}

impl HttpServer {
    async fn start(env: &[(&str, &str)]) -> HttpServer {
        let log_dir = tempfile::tempdir().unwrap();
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_quilt-mcp"));
        cmd.env_clear().args(["serve", "--http", "127.0.0.1:0"]);
        for (k, v) in base_env(log_dir.path()) {
            cmd.env(k, v);
        }
        // A token in the environment must be ignored in HTTP mode.
        cmd.env(
            "QUILT_MCP_TOKEN",
            hs256(&claims_with(json!({"sub": "env-user", "buckets": ["*"]}))),
        );
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().unwrap();
        let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let base = loop {
            let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
                .await
                .expect("the server did not start")
                .unwrap()
                .expect("the server exited");
            if let Some(url) = line.strip_prefix("quilt-mcp: serving MCP at ") {
                break url.trim_end_matches("/mcp").to_owned();
            }
        };
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        HttpServer {
            child,
            base,
            _log_dir: log_dir,
        }
    }

    fn mcp(&self) -> String {
        format!("{}/mcp", self.base)
    }

    async fn client(&self, token: &str) -> rmcp::service::RunningService<rmcp::RoleClient, ()> {
        let transport = StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(self.mcp()).auth_header(token.to_owned()),
        );
        ().serve(transport).await.expect("initialize over HTTP")
    }
}

async fn post(url: &str, authorization: Option<&str>, body: Value) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_string());
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    request.send().await.unwrap()
}

fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "curl", "version": "0"}}})
}

#[tokio::test]
async fn requests_without_a_valid_bearer_get_401() {
    let server = HttpServer::start(&[
        ("QUILT_MCP_JWT_SECRET", SECRET),
        ("QUILT_CATALOG_URL", "https://catalog.example.com"),
    ])
    .await;
    let now = now();
    let cases: Vec<(&str, Option<String>, &str, bool)> = vec![
        ("no header", None, "missing_token", false),
        (
            "basic",
            Some("Basic YWxpY2U6c2VjcmV0".into()),
            "missing_token",
            false,
        ),
        (
            "empty bearer",
            Some("Bearer ".into()),
            "missing_token",
            false,
        ),
        (
            "garbage",
            Some("Bearer garbage".into()),
            "malformed_token",
            true,
        ),
        (
            "alg none",
            Some(format!("Bearer {}", alg_none(&claims()))),
            "unsupported_algorithm",
            true,
        ),
        (
            "tampered",
            Some(format!(
                "Bearer {}",
                tamper(&hs256(&claims()), &claims_with(json!({"buckets": ["*"]})))
            )),
            "invalid_signature",
            true,
        ),
        (
            "expired",
            Some(format!(
                "Bearer {}",
                hs256(&claims_with(json!({"exp": now - 3600, "iat": now - 7200})))
            )),
            "expired",
            true,
        ),
        (
            "wrong aud",
            Some(format!(
                "Bearer {}",
                hs256(&claims_with(json!({"aud": "other"})))
            )),
            "wrong_audience",
            true,
        ),
        (
            "no exp",
            Some(format!(
                "Bearer {}",
                hs256(&claims_with(json!({"exp": null})))
            )),
            "missing_claim",
            true,
        ),
        (
            "crit",
            Some(format!(
                "Bearer {}",
                hs_with_header(
                    &json!({"alg": "HS256", "crit": ["x"]}),
                    &claims(),
                    SECRET.as_bytes()
                )
            )),
            "critical_header",
            true,
        ),
    ];
    for (name, authorization, reason, presented) in cases {
        let response = post(&server.mcp(), authorization.as_deref(), initialize()).await;
        assert_eq!(response.status(), 401, "{name}");
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(challenge.starts_with("Bearer "), "{name}: {challenge}");
        assert!(
            challenge.contains(&format!(
                "resource_metadata=\"{}/.well-known/oauth-protected-resource\"",
                server.base
            )),
            "{name}: {challenge}"
        );
        assert_eq!(
            challenge.contains("error=\"invalid_token\""),
            presented,
            "{name}: {challenge}"
        );
        assert_eq!(
            challenge.contains("error_description=\""),
            presented,
            "{name}: {challenge}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            (body["error"].as_str(), body["reason"].as_str()),
            (Some("unauthorized"), Some(reason)),
            "{name}"
        );
    }

    let health = reqwest::get(format!("{}/healthz", server.base))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready = reqwest::get(format!("{}/readyz", server.base))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let metadata: Value = reqwest::get(format!(
        "{}/.well-known/oauth-protected-resource",
        server.base
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(metadata["resource"], format!("{}/mcp", server.base));
    assert_eq!(
        metadata["authorization_servers"],
        json!(["https://catalog.example.com"])
    );
    assert_eq!(metadata["bearer_methods_supported"], json!(["header"]));
}

#[tokio::test]
async fn readiness_fails_without_a_key() {
    let server = HttpServer::start(&[]).await;
    assert_eq!(
        reqwest::get(format!("{}/healthz", server.base))
            .await
            .unwrap()
            .status(),
        200
    );
    let ready = reqwest::get(format!("{}/readyz", server.base))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let response = post(
        &server.mcp(),
        Some(&format!("Bearer {}", hs256(&claims()))),
        initialize(),
    )
    .await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.json::<Value>().await.unwrap()["reason"],
        "verification_not_configured"
    );
}

fn user_token(sub: &str, buckets: &[&str]) -> String {
    hs256(&claims_with(json!({
        "sub": sub,
        "buckets": buckets,
        "permissions": ["s3:GetObject", "s3:ListBucket"],
        "aws_credentials": {"access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY},
    })))
}

#[tokio::test]
async fn users_see_only_their_own_identity_and_buckets() {
    let s3 = TestS3::start().await;
    for bucket in ["alice-data", "bob-data"] {
        s3.create_bucket(bucket).await;
        s3.put(
            bucket,
            &format!("{bucket}.txt"),
            bucket.as_bytes(),
            "text/plain",
            &[],
        )
        .await;
    }
    let mut env: Vec<(&str, String)> = s3.env();
    env.push(("QUILT_MCP_JWT_SECRET", SECRET.into()));
    let refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = HttpServer::start(&refs).await;

    let alice = server.client(&user_token("alice", &["alice-data"])).await;
    let bob = server.client(&user_token("bob", &["bob-data"])).await;
    let call = |client: &rmcp::service::RunningService<rmcp::RoleClient, ()>,
                tool: &'static str,
                args: Value| {
        let params =
            CallToolRequestParams::new(tool).with_arguments(args.as_object().unwrap().clone());
        let peer = client.peer().clone();
        async move { peer.call_tool(params).await }
    };
    let mut calls = Vec::new();
    for round in 0..10 {
        for (user, client) in [("alice", &alice), ("bob", &bob)] {
            let bucket = format!("{user}-data");
            calls.push((
                user,
                round,
                "auth_status",
                call(client, "auth_status", json!({})),
            ));
            calls.push((
                user,
                round,
                "list",
                call(client, "bucket_objects_list", json!({"bucket": bucket})),
            ));
        }
    }
    let results = futures::future::join_all(
        calls
            .into_iter()
            .map(|(user, round, what, fut)| async move { (user, round, what, fut.await) }),
    )
    .await;
    for (user, round, what, result) in results {
        let content = result.unwrap().structured_content.unwrap();
        match what {
            "auth_status" => {
                assert_eq!(content["subject"], user, "round {round}");
                assert_eq!(content["buckets"], json!([format!("{user}-data")]));
                assert_eq!(content["token"]["source"], "http");
            }
            _ => assert_eq!(
                content["objects"][0]["key"],
                format!("{user}-data.txt"),
                "round {round}"
            ),
        }
    }

    // Bob may not read Alice's bucket: -32003 over HTTP.
    match call(&bob, "bucket_objects_list", json!({"bucket": "alice-data"})).await {
        Err(ServiceError::McpError(e)) => {
            assert_eq!(
                (e.code.0, reason(&e).as_str()),
                (-32003, "bucket_not_allowed")
            );
        }
        other => panic!("expected -32003, got {other:?}"),
    }
    let _ = alice.cancel().await;
    let _ = bob.cancel().await;
}

#[tokio::test]
async fn sigterm_lets_the_call_in_flight_finish() {
    // An S3 that takes a second to answer a listing.
    let slow = FakeServer::slow_s3_listing(Duration::from_millis(1500)).await;
    let env = [
        ("QUILT_MCP_JWT_SECRET", SECRET),
        ("AWS_ENDPOINT_URL_S3", slow.url.as_str()),
        ("QUILT_MCP_S3_FORCE_PATH_STYLE", "true"),
    ];
    let mut server = HttpServer::start(&env).await;
    let token = user_token("alice", &["alice-data"]);
    let url = server.mcp();
    let in_flight = tokio::spawn(async move {
        let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "bucket_objects_list", "arguments": {"bucket": "alice-data"}}});
        let response = post(&url, Some(&format!("Bearer {token}")), body).await;
        (response.status(), response.text().await.unwrap())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = server.child.id().unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let (status, text) = in_flight.await.unwrap();
    assert_eq!(status, 200, "{text}");
    let reply: Value = serde_json::from_str(text.trim_start_matches("data: ").trim())
        .unwrap_or_else(|_| panic!("{text}"));
    assert_eq!(
        reply["result"]["structuredContent"]["objects"][0]["key"], "slow.txt",
        "{text}"
    );
    let exit = tokio::time::timeout(Duration::from_secs(10), server.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    assert_eq!(slow.requests().len(), 1);
}

#[tokio::test]
async fn foreign_hosts_and_oversized_bodies_are_refused() {
    let server = HttpServer::start(&[("QUILT_MCP_JWT_SECRET", SECRET)]).await;
    let bearer = format!("Bearer {}", hs256(&claims()));
    // DNS rebinding: a Host that is not allowed never reaches MCP.
    let response = reqwest::Client::new()
        .post(server.mcp())
        .header("host", "evil.example.com")
        .header("authorization", &bearer)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(initialize().to_string())
        .send()
        .await
        .unwrap();
    assert!(response.status().is_client_error(), "{}", response.status());
    assert_ne!(response.status(), 401);
    // A body over the limit (4 MiB by default).
    let huge = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "auth_status", "arguments": {"pad": "x".repeat(5 * 1024 * 1024)}}});
    let response = post(&server.mcp(), Some(&bearer), huge).await;
    assert_eq!(response.status(), 413);
    // And a normal request still works.
    let response = post(&server.mcp(), Some(&bearer), initialize()).await;
    assert_eq!(response.status(), 200);
}
