//! SPEC §8 diagnostics: the JSON log lines and their fields, the stderr warning, and
//! the guarantee that no token, signature, secret or AWS key reaches any output.
use std::process::Stdio;

use crate::common::*;
use serde_json::{Value, json};

const AWS_SECRET: &str = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY";
const AWS_SESSION: &str = "FwoGZXIvYXdzEXAMPLESESSIONTOKENVALUE";

/// The real binary with a clean environment, logging into `log_dir`.
fn server_command(log_dir: &std::path::Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_quilt-mcp"));
    cmd.env_clear();
    for (k, v) in base_env(log_dir) {
        cmd.env(k, v);
    }
    cmd
}

async fn spawn_in(log_dir: &std::path::Path, token: &str) -> (String, Vec<Value>) {
    let mut cmd = server_command(log_dir);
    cmd.env("QUILT_MCP_JWT_SECRET", SECRET)
        .env("QUILT_MCP_TOKEN", token);
    let (transport, stderr) = rmcp::transport::TokioChildProcess::builder(cmd)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let reader = tokio::spawn(async move {
        use tokio::io::AsyncReadExt as _;
        let mut text = String::new();
        if let Some(mut s) = stderr {
            let _ = s.read_to_string(&mut text).await;
        }
        text
    });
    use rmcp::ServiceExt as _;
    let client = ().serve(transport).await.unwrap();
    let mut results = Vec::new();
    let calls = [
        ("auth_status", json!({})),
        ("bucket_list", json!({})),
        ("auth_status", json!({})),
        ("no_such_tool", json!({})),
        ("bucket_objects_list", json!({"bucket": "not-granted"})),
    ];
    for (tool, args) in calls {
        let params = rmcp::model::CallToolRequestParams::new(tool)
            .with_arguments(args.as_object().unwrap().clone());
        match client.call_tool(params).await {
            Ok(r) => results.push(serde_json::to_value(&r).unwrap()),
            Err(rmcp::service::ServiceError::McpError(e)) => {
                results.push(serde_json::to_value(&e).unwrap())
            }
            Err(e) => panic!("{e}"),
        }
    }
    client.cancel().await.unwrap();
    let stderr = tokio::time::timeout(std::time::Duration::from_secs(10), reader)
        .await
        .unwrap()
        .unwrap();
    (stderr, results)
}

#[tokio::test]
async fn logs_hold_the_events_and_no_secret_reaches_any_output() {
    let dir = tempfile::tempdir().unwrap();
    let now = now();
    let with_aws = claims_with(json!({
        "aws_credentials": {
            "access_key_id": "AKIAEXAMPLEACCESSKEY",
            "secret_access_key": AWS_SECRET,
            "session_token": AWS_SESSION,
            "expiration": "2099-01-01T00:00:00Z",
        }
    }));
    let good = hs256(&with_aws);
    let expired = hs256(&claims_with(
        json!({"exp": now - 600, "iat": now - 7200, "aws_credentials": with_aws["aws_credentials"]}),
    ));
    let forged = tamper(&good, &claims_with(json!({"buckets": ["*"]})));

    let (stderr_good, results_good) = spawn_in(dir.path(), &good).await;
    let (stderr_expired, results_expired) = spawn_in(dir.path(), &expired).await;
    let (stderr_forged, results_forged) = spawn_in(dir.path(), &forged).await;

    // The good run worked and showed the AWS source without its secrets.
    assert_eq!(
        results_good[0]["structuredContent"]["aws"]["source"],
        "inline"
    );
    assert_eq!(results_expired[0]["data"]["reason"], "expired");
    assert_eq!(results_forged[0]["data"]["reason"], "invalid_signature");

    // One plain warning line on stderr when the token fails at start-up.
    assert!(
        stderr_expired.contains("WARN") && stderr_expired.contains("expired"),
        "{stderr_expired}"
    );
    assert!(
        !stderr_good.contains("WARN"),
        "unexpected warning: {stderr_good}"
    );

    let lines = log_lines(dir.path());
    for line in &lines {
        for field in ["timestamp", "level", "event"] {
            assert!(line.contains_key(field), "line without {field}: {line:?}");
        }
    }
    // Every line of a SPEC §8 event carries all of that event's fields.
    let spec_fields: &[(&str, &[&str])] = &[
        (
            "server_started",
            &[
                "version",
                "transport",
                "token_source",
                "key_kind",
                "log_dir",
            ],
        ),
        (
            "token_checked",
            &[
                "token_present",
                "token_source",
                "token_fingerprint",
                "status",
                "alg",
                "kid",
                "sub",
                "exp",
                "buckets",
                "permissions",
                "roles",
            ],
        ),
        (
            "tool_denied",
            &["tool", "reason", "bucket", "missing_permissions"],
        ),
        ("aws_credentials", &["source", "status", "expires_at"]),
        ("tool_call", &["tool", "outcome", "duration_ms", "bucket"]),
    ];
    for (event, fields) in spec_fields {
        for line in lines.iter().filter(|l| l["event"] == *event) {
            for field in *fields {
                assert!(
                    line.contains_key(*field),
                    "{event} line without {field}: {line:?}"
                );
            }
        }
    }
    for event in [
        "server_started",
        "token_checked",
        "tool_denied",
        "tool_call",
    ] {
        assert!(lines.iter().any(|l| l["event"] == event), "no {event} line");
    }

    let events = |name: &str| {
        lines
            .iter()
            .filter(|l| l["event"] == name)
            .collect::<Vec<_>>()
    };

    let started = events("server_started");
    assert_eq!(started.len(), 3);
    for field in [
        "version",
        "transport",
        "token_source",
        "key_kind",
        "log_dir",
    ] {
        assert!(
            started[0].contains_key(field),
            "server_started lacks {field}"
        );
    }
    assert_eq!(started[0]["transport"], "stdio");
    assert_eq!(started[0]["token_source"], "env");
    assert_eq!(started[0]["key_kind"], "secret");

    let checked = events("token_checked");
    let ok = checked
        .iter()
        .find(|l| l["status"] == "ok")
        .expect("a token_checked ok line");
    for field in [
        "token_present",
        "token_source",
        "token_fingerprint",
        "alg",
        "sub",
        "exp",
        "buckets",
        "permissions",
        "roles",
    ] {
        assert!(
            ok.contains_key(field),
            "token_checked lacks {field}: {ok:?}"
        );
    }
    assert_eq!(
        ok["token_fingerprint"].as_str().unwrap().len(),
        "sha256:".len() + 12
    );
    assert_eq!(ok["buckets"], 2);
    assert!(checked.iter().any(|l| l["status"] == "expired"));
    assert!(checked.iter().any(|l| l["status"] == "invalid_signature"));

    let calls = events("tool_call");
    assert!(
        calls
            .iter()
            .any(|l| l["tool"] == "bucket_list" && l["outcome"] == "ok")
    );
    assert!(
        calls
            .iter()
            .any(|l| l["tool"] == "auth_status" && l["outcome"] == "unauthorized")
    );
    assert!(calls.iter().all(|l| l.contains_key("duration_ms")));

    // No secret anywhere.
    let everything = format!(
        "{}\n{stderr_good}\n{stderr_expired}\n{stderr_forged}\n{:?}{:?}{:?}",
        log_text(dir.path()),
        results_good,
        results_expired,
        results_forged
    );
    for (what, secret) in [
        ("good token", good.as_str()),
        ("expired token", expired.as_str()),
        ("forged token", forged.as_str()),
        ("signature", signature_of(&good).as_str()),
        ("shared secret", SECRET),
        ("AWS secret key", AWS_SECRET),
        ("AWS session token", AWS_SESSION),
        ("AWS access key id", "AKIAEXAMPLEACCESSKEY"),
    ] {
        assert!(!everything.contains(secret), "the {what} leaked");
    }
}

#[tokio::test]
async fn stdout_carries_nothing_but_json_rpc() {
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = server_command(dir.path());
    // No key and an invalid token: warnings galore, none of them on stdout.
    cmd.env("QUILT_MCP_TOKEN", "garbage")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let requests = [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "auth_status", "arguments": {}}}),
    ];
    for r in &requests {
        stdin.write_all(format!("{r}\n").as_bytes()).await.unwrap();
    }
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let line = tokio::time::timeout(std::time::Duration::from_secs(10), lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .expect("a response line");
        let value: Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON on stdout: {line}"));
        assert_eq!(value["jsonrpc"], "2.0", "{line}");
        if value.get("id").is_some() {
            seen.push(value);
        }
    }
    // Responses to concurrent requests may come in any order.
    let call = seen
        .iter()
        .find(|v| v["id"] == 3)
        .expect("the tools/call response");
    assert_eq!(call["error"]["code"], -32001, "{seen:?}");
    assert_eq!(
        call["error"]["data"]["reason"],
        "verification_not_configured"
    );
    drop(stdin);
    // Closing stdin ends the process promptly, with nothing more on stdout.
    let status = tokio::time::timeout(std::time::Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    assert_eq!(lines.next_line().await.unwrap(), None);
}

#[tokio::test]
async fn sigterm_ends_a_stdio_session_and_flushes_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = server_command(dir.path());
    cmd.env("QUILT_MCP_JWT_SECRET", SECRET)
        .env("QUILT_MCP_TOKEN", hs256(&claims()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    // The host keeps stdin open and never initializes; it just quits, once the server
    // has started (a fixed sleep is too short on a loaded machine).
    let started = std::time::Instant::now();
    while !std::fs::read_dir(dir.path()).unwrap().any(|entry| {
        std::fs::read_to_string(entry.unwrap().path())
            .is_ok_and(|text| text.contains("\"server_started\""))
    }) {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "no server_started line within 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let output = tokio::time::timeout(std::time::Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("exited")
        .unwrap();
    assert!(
        output.status.success(),
        "{:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let events: Vec<String> = log_lines(dir.path())
        .iter()
        .map(|l| l["event"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        events.ends_with(&["server_stopping".to_owned(), "server_stopped".to_owned()]),
        "{events:?}"
    );
}

/// A host that closes stdin before `initialize` (it quit, or only probed the binary)
/// ends the session cleanly: exit 0, nothing on stdout, and the end is logged.
#[tokio::test]
async fn stdin_closed_before_initialize_is_a_clean_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = server_command(dir.path());
    cmd.env("QUILT_MCP_JWT_SECRET", SECRET)
        .env("QUILT_MCP_TOKEN", hs256(&claims()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        cmd.spawn().unwrap().wait_with_output(),
    )
    .await
    .expect("exited")
    .unwrap();
    assert!(
        output.status.success(),
        "{:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.stdout.is_empty());
    let events: Vec<String> = log_lines(dir.path())
        .iter()
        .map(|l| l["event"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        events.ends_with(&["stdio_closed".to_owned(), "server_stopped".to_owned()]),
        "{events:?}"
    );
}
