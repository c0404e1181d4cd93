//! The streamable HTTP transport over a real TCP socket: 401s for every way a token
//! can be missing or wrong, unauthenticated probes and metadata, tools for valid
//! tokens (several users at once), -32003 for a forbidden bucket, a graceful stop,
//! and the bounds on hostile input: Host checked first, no trust in forwarded headers,
//! header and body timeouts, and the connection cap.
use std::process::Stdio;
use std::time::Duration;

use crate::common::fakes::FakeServer;
use crate::common::s3::{ACCESS_KEY, SECRET_KEY, TestS3};
use crate::common::*;
use rmcp::ServiceExt as _;
use rmcp::model::CallToolRequestParams;
use rmcp::service::ServiceError;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt as _;

/// The catalog named as the authorization server.
const CATALOG: (&str, &str) = ("QUILT_CATALOG_URL", "https://catalog.example.com");

/// A `quilt-mcp serve --http 127.0.0.1:0` child.
pub(crate) struct HttpServer {
    pub(crate) child: tokio::process::Child,
    pub(crate) base: String,
    pub(crate) log_dir: tempfile::TempDir,
}

impl HttpServer {
    pub(crate) async fn start(env: &[(&str, &str)]) -> HttpServer {
        HttpServer::start_with(&[], env).await
    }

    /// Starts the server with extra `serve` flags.
    pub(crate) async fn start_with(args: &[&str], env: &[(&str, &str)]) -> HttpServer {
        let log_dir = tempfile::tempdir().unwrap();
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_quilt-mcp"));
        cmd.env_clear()
            .args(["serve", "--http", "127.0.0.1:0"])
            .args(args);
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
        // The server's stderr goes to the test's output, shown when a test fails.
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("server: {line}");
            }
        });
        HttpServer {
            child,
            base,
            log_dir,
        }
    }

    pub(crate) fn mcp(&self) -> String {
        format!("{}/mcp", self.base)
    }

    async fn client(&self, token: &str) -> rmcp::service::RunningService<rmcp::RoleClient, ()> {
        let transport = StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(self.mcp()).auth_header(token.to_owned()),
        );
        ().serve(transport).await.expect("initialize over HTTP")
    }
}

pub(crate) async fn post(url: &str, authorization: Option<&str>, body: Value) -> reqwest::Response {
    post_with(&reqwest::Client::new(), url, authorization, body).await
}

/// [`post`] with `client`: concurrent requests share one client (building a client
/// costs enough that building dozens in one test can delay their requests by seconds).
pub(crate) async fn post_with(
    client: &reqwest::Client,
    url: &str,
    authorization: Option<&str>,
    body: Value,
) -> reqwest::Response {
    let mut request = client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_string());
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    request.send().await.unwrap()
}

pub(crate) fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "curl", "version": "0"}}})
}

#[tokio::test]
async fn requests_without_a_valid_bearer_get_401() {
    let server = HttpServer::start(&[("QUILT_MCP_JWT_SECRET", SECRET), CATALOG]).await;
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
            "Bearer twice",
            Some(format!("Bearer Bearer {}", hs256(&claims()))),
            "malformed_token",
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

#[tokio::test]
async fn forwarded_headers_are_never_trusted_and_the_public_url_is_used() {
    let hostile = |request: reqwest::RequestBuilder| {
        request
            .header("x-forwarded-host", "evil.example")
            .header("x-forwarded-proto", "https")
    };
    let challenge_and_resource = |base: String| async move {
        let client = reqwest::Client::new();
        let response = hostile(client.post(format!("{base}/mcp")))
            .header("content-type", "application/json")
            .body(initialize().to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        let metadata: Value =
            hostile(client.get(format!("{base}/.well-known/oauth-protected-resource")))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
        (challenge, metadata["resource"].as_str().unwrap().to_owned())
    };

    // Without a public URL: the (allowed) Host, never the forwarded headers.
    let plain = HttpServer::start(&[("QUILT_MCP_JWT_SECRET", SECRET), CATALOG]).await;
    let (challenge, resource) = challenge_and_resource(plain.base.clone()).await;
    assert!(!challenge.contains("evil"), "{challenge}");
    assert!(
        challenge.contains(&format!(
            "resource_metadata=\"{}/.well-known/oauth-protected-resource\"",
            plain.base
        )),
        "{challenge}"
    );
    assert_eq!(resource, format!("{}/mcp", plain.base));

    // With QUILT_MCP_PUBLIC_URL, and with --public-url over it.
    for (args, public) in [
        (vec![], "https://mcp.example.com"),
        (
            vec!["--public-url", "https://flag.example.com/quilt/"],
            "https://flag.example.com/quilt",
        ),
    ] {
        let server = HttpServer::start_with(
            &args,
            &[
                ("QUILT_MCP_JWT_SECRET", SECRET),
                ("QUILT_MCP_PUBLIC_URL", "https://mcp.example.com/"),
                CATALOG,
            ],
        )
        .await;
        let (challenge, resource) = challenge_and_resource(server.base.clone()).await;
        assert!(
            challenge.contains(&format!(
                "resource_metadata=\"{public}/.well-known/oauth-protected-resource\""
            )),
            "{challenge}"
        );
        assert_eq!(resource, format!("{public}/mcp"));
        // The public URL's host is an allowed Host.
        let host = public
            .trim_start_matches("https://")
            .split('/')
            .next()
            .unwrap();
        let response = reqwest::Client::new()
            .get(format!(
                "{}/.well-known/oauth-protected-resource",
                server.base
            ))
            .header("host", host)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{host}");
    }

    // A public URL that is not one is refused at start.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_quilt-mcp"))
        .args([
            "serve",
            "--http",
            "127.0.0.1:0",
            "--public-url",
            "mcp.example.com",
        ])
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[tokio::test]
async fn a_foreign_host_is_refused_before_authentication() {
    let server = HttpServer::start(&[("QUILT_MCP_JWT_SECRET", SECRET), CATALOG]).await;
    let client = reqwest::Client::new();
    for (method, path) in [
        ("POST", "/mcp"),
        ("GET", "/mcp"),
        ("GET", "/.well-known/oauth-protected-resource"),
        ("GET", "/.well-known/oauth-protected-resource/mcp"),
    ] {
        let response = client
            .request(method.parse().unwrap(), format!("{}{path}", server.base))
            .header("host", "evil.example")
            .header("content-type", "application/json")
            .body(initialize().to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{method} {path}");
        assert!(
            response.headers().get("www-authenticate").is_none(),
            "{method} {path}"
        );
        let text = response.text().await.unwrap();
        assert!(!text.contains("evil"), "{method} {path}: {text}");
    }
    // The probes answer whatever the Host.
    for path in ["/healthz", "/readyz"] {
        let response = client
            .get(format!("{}{path}", server.base))
            .header("host", "evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn without_a_catalog_there_is_no_resource_metadata() {
    let server = HttpServer::start(&[("QUILT_MCP_JWT_SECRET", SECRET)]).await;
    for (authorization, presented) in [(None, false), (Some("Bearer garbage"), true)] {
        let response = post(&server.mcp(), authorization, initialize()).await;
        assert_eq!(response.status(), 401);
        let challenge = response.headers()["www-authenticate"].to_str().unwrap();
        assert!(challenge.starts_with("Bearer "), "{challenge}");
        assert!(!challenge.contains("resource_metadata"), "{challenge}");
        assert_eq!(
            challenge.contains("error=\"invalid_token\""),
            presented,
            "{challenge}"
        );
    }
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let response = reqwest::get(format!("{}{path}", server.base))
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{path}");
    }
    // Where a client that found no authorization server looks for one on this origin
    // (as Claude Code does: metadata, then dynamic client registration), an OAuth error
    // body that says what to send instead of an empty 404.
    let client = reqwest::Client::new();
    for (method, path) in [
        ("GET", "/.well-known/oauth-authorization-server"),
        ("GET", "/.well-known/openid-configuration"),
        ("POST", "/register"),
        ("GET", "/authorize"),
        ("POST", "/token"),
    ] {
        let response = client
            .request(method.parse().unwrap(), format!("{}{path}", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request", "{path}");
        let text = body["error_description"].as_str().unwrap();
        assert!(text.contains("Authorization: Bearer"), "{path}: {text}");
    }
}

/// Opens a raw TCP connection to the server.
pub(crate) async fn connect(server: &HttpServer) -> tokio::net::TcpStream {
    let addr = server.base.trim_start_matches("http://");
    tokio::net::TcpStream::connect(addr).await.unwrap()
}

/// Reads until the server closes the connection, failing after `limit`; what it sent.
pub(crate) async fn closed_within(
    stream: &mut tokio::net::TcpStream,
    limit: Duration,
    what: &str,
) -> String {
    use tokio::io::AsyncReadExt as _;
    let mut received = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    };
    if tokio::time::timeout(limit, read).await.is_err() {
        panic!("{what}: the connection was still open after {limit:?}");
    }
    String::from_utf8_lossy(&received).into_owned()
}

/// Sends `head`, then one more byte every `gap`, and reads until the server closes
/// the connection, failing after `limit`; what the server sent.
async fn trickle_until_closed(
    stream: tokio::net::TcpStream,
    head: String,
    gap: Duration,
    limit: Duration,
    what: &str,
) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (mut reader, mut writer) = stream.into_split();
    let writing = tokio::spawn(async move {
        if writer.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        loop {
            tokio::time::sleep(gap).await;
            if writer.write_all(b" ").await.is_err() {
                return;
            }
        }
    });
    let mut received = Vec::new();
    let read = async {
        let mut buf = [0u8; 1024];
        while let Ok(n) = reader.read(&mut buf).await {
            if n == 0 {
                break;
            }
            received.extend_from_slice(&buf[..n]);
        }
    };
    let closed = tokio::time::timeout(limit, read).await.is_ok();
    writing.abort();
    assert!(
        closed,
        "{what}: the connection was still open after {limit:?}"
    );
    String::from_utf8_lossy(&received).into_owned()
}

pub(crate) fn mcp_head(bearer: Option<&str>, content_length: usize) -> String {
    let authorization = bearer
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n{authorization}Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {content_length}\r\n\r\n"
    )
}

/// docs/reference.md, HTTP: no complete headers within 10 s, or a body stalled for 30 s: closed. The
/// bounds waited for are twice the timeouts: behaviour, not speed, is tested.
#[tokio::test]
async fn slow_and_idle_connections_are_closed() {
    use tokio::io::AsyncWriteExt as _;
    let server = HttpServer::start(&[("QUILT_MCP_JWT_SECRET", SECRET)]).await;
    let token = hs256(&claims());
    let headers_limit = Duration::from_secs(20);
    let body_limit = Duration::from_secs(60);

    let idle = async {
        let mut stream = connect(&server).await;
        closed_within(&mut stream, headers_limit, "idle").await
    };
    let partial_headers = async {
        let mut stream = connect(&server).await;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            .await
            .unwrap();
        closed_within(&mut stream, headers_limit, "partial headers").await
    };
    let trickled_headers = async {
        let head = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a".to_owned();
        let stream = connect(&server).await;
        let gap = Duration::from_secs(1);
        trickle_until_closed(stream, head, gap, headers_limit, "trickled headers").await;
    };
    let kept_alive_then_idle = async {
        let mut stream = connect(&server).await;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .unwrap();
        let text = closed_within(&mut stream, headers_limit, "kept alive").await;
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    };
    let stalled_body = async {
        let mut stream = connect(&server).await;
        stream
            .write_all(format!("{}{{\"jsonrpc\"", mcp_head(Some(&token), 1000)).as_bytes())
            .await
            .unwrap();
        let text = closed_within(&mut stream, body_limit, "stalled body").await;
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    };
    let trickled_body = async {
        let head = mcp_head(Some(&token), 1000);
        let stream = connect(&server).await;
        let gap = Duration::from_secs(5);
        let text = trickle_until_closed(stream, head, gap, body_limit, "trickled body").await;
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    };
    let stalled_body_without_token = async {
        let mut stream = connect(&server).await;
        stream
            .write_all(format!("{}{{", mcp_head(None, 1000)).as_bytes())
            .await
            .unwrap();
        let text = closed_within(&mut stream, body_limit, "stalled body, no token").await;
        assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    };
    tokio::join!(
        idle,
        partial_headers,
        trickled_headers,
        kept_alive_then_idle,
        stalled_body,
        trickled_body,
        stalled_body_without_token,
    );
    // The server still serves.
    let response = post(
        &server.mcp(),
        Some(&format!("Bearer {token}")),
        initialize(),
    )
    .await;
    assert_eq!(response.status(), 200);
}

/// docs/reference.md, HTTP: with `--max-connections 4`, a fifth connection is not served while four
/// are open (it waits in the listen backlog), and is served as soon as one closes.
#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let server = HttpServer::start_with(
        &["--max-connections", "4"],
        &[("QUILT_MCP_JWT_SECRET", SECRET)],
    )
    .await;
    let request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    // Four connections, each served once and then kept alive (idle).
    let mut open = Vec::new();
    for _ in 0..4 {
        let mut stream = connect(&server).await;
        stream.write_all(request).await.unwrap();
        let mut buf = [0u8; 1024];
        let n = stream.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        open.push(stream);
    }
    let mut fifth = connect(&server).await;
    fifth.write_all(request).await.unwrap();
    let mut buf = [0u8; 1024];
    let early = tokio::time::timeout(Duration::from_secs(2), fifth.read(&mut buf)).await;
    assert!(
        early.is_err(),
        "a fifth connection was served while four were open: {early:?}"
    );
    drop(open.pop());
    let n = tokio::time::timeout(Duration::from_secs(8), fifth.read(&mut buf))
        .await
        .expect("the fifth connection was not served after one closed")
        .unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
}
