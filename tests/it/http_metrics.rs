//! `serve --http ADDR --metrics ADDR`: Prometheus text on a listener of its own,
//! scraped after known calls: calls by tool and outcome, the MCP operation duration
//! histogram, auth failures by reason, S3 request durations, credential cache hits
//! and misses, open connections and calls in flight.
use std::process::Stdio;
use std::time::Duration;

use crate::common::s3::{ACCESS_KEY, SECRET_KEY, TestS3};
use crate::common::*;
use crate::http::post_with;
use serde_json::json;
use tokio::io::AsyncBufReadExt as _;

#[tokio::test]
async fn metrics_count_the_calls_made() {
    let s3 = TestS3::start().await;
    s3.create_bucket("lab-data").await;
    s3.put("lab-data", "a.txt", b"hello", "text/plain", &[])
        .await;
    let log_dir = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_quilt-mcp"));
    cmd.env_clear()
        .args(["serve", "--http", "127.0.0.1:0", "--metrics", "127.0.0.1:0"]);
    for (k, v) in base_env(log_dir.path()) {
        cmd.env(k, v);
    }
    for (k, v) in s3.env() {
        cmd.env(k, v);
    }
    cmd.env("QUILT_MCP_JWT_SECRET", SECRET)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut mcp, mut metrics) = (None, None);
    while mcp.is_none() || metrics.is_none() {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("the server did not start")
            .unwrap()
            .expect("the server exited");
        if let Some(url) = line.strip_prefix("quilt-mcp: serving MCP at ") {
            mcp = Some(url.to_owned());
        }
        if let Some(url) = line.strip_prefix("quilt-mcp: serving metrics at ") {
            metrics = Some(url.to_owned());
        }
    }
    let (mcp, metrics) = (mcp.unwrap(), metrics.unwrap());
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let token = format!(
        "Bearer {}",
        hs256(&claims_with(json!({
            "buckets": ["lab-data"],
            "permissions": ["s3:GetObject", "s3:ListBucket"],
            "aws_credentials": {"access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY},
        })))
    );
    let now = now();
    let expired = format!(
        "Bearer {}",
        hs256(&claims_with(json!({"exp": now - 3600, "iat": now - 7200})))
    );
    let call = |tool: &str, args: serde_json::Value| {
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": tool, "arguments": args}})
    };
    let client = reqwest::Client::new();
    let calls = [
        // First: a 401 closes its connection.
        (&expired, call("auth_status", json!({})), 401),
        (&token, call("auth_status", json!({})), 200),
        (&token, call("auth_status", json!({})), 200),
        (
            &token,
            call("bucket_objects_list", json!({"bucket": "lab-data"})),
            200,
        ),
        (
            &token,
            call("bucket_objects_list", json!({"bucket": "lab-data"})),
            200,
        ),
        // Denied: a bucket the token does not name (-32003 in a 200).
        (
            &token,
            call("bucket_objects_list", json!({"bucket": "other"})),
            200,
        ),
    ];
    for (bearer, body, status) in calls {
        let response = post_with(&client, &mcp, Some(bearer), body).await;
        assert_eq!(response.status(), status);
        let _ = response.text().await;
    }

    let response = reqwest::get(&metrics).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"),
    );
    let text = response.text().await.unwrap();
    for expected in [
        r#"quilt_mcp_tool_calls_total{gen_ai_tool_name="auth_status",outcome="ok"} 2"#,
        r#"quilt_mcp_tool_calls_total{gen_ai_tool_name="bucket_objects_list",outcome="ok"} 2"#,
        r#"quilt_mcp_tool_calls_total{gen_ai_tool_name="bucket_objects_list",outcome="denied"} 1"#,
        r#"mcp_server_operation_duration_seconds_count{mcp_method_name="tools/call",gen_ai_tool_name="auth_status",error_type=""} 2"#,
        r#"mcp_server_operation_duration_seconds_count{mcp_method_name="tools/call",gen_ai_tool_name="bucket_objects_list",error_type="denied"} 1"#,
        r#"quilt_mcp_auth_failures_total{reason="expired"} 1"#,
        r#"quilt_mcp_credential_cache_requests_total{result="miss"} 1"#,
        r#"quilt_mcp_credential_cache_requests_total{result="hit"} 1"#,
        r#"quilt_mcp_upstream_request_duration_seconds_count{service="s3",outcome="ok"} 2"#,
        "quilt_mcp_http_calls_in_flight 0",
        "quilt_mcp_http_rate_limited_total 0",
        "# TYPE quilt_mcp_http_open_connections gauge",
    ] {
        assert!(text.contains(expected), "missing {expected}\n{text}");
    }
    // The pooled client keeps its connection open: one open connection (the
    // scraper's own are not counted).
    assert!(text.contains("quilt_mcp_http_open_connections 1"), "{text}");
    // Metrics are never served on the MCP port.
    let base = mcp.trim_end_matches("/mcp");
    let response = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(response.status(), 404);
    let _ = child.kill().await;
}
