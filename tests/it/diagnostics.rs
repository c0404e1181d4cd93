//! Diagnostics (docs/reference.md, Logs): the JSON log lines and their fields, the stderr warning, and
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
    // Every line of an event (docs/reference.md, Logs) carries all of that event's fields.
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

/// Runs `quilt-mcp ARGS` with a clean environment, logging into `log_dir`.
fn command(
    log_dir: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_quilt-mcp"));
    cmd.env_clear().args(args);
    for (k, v) in base_env(log_dir) {
        cmd.env(k, v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Starts a stdio server with `env` logging into `log_dir`, makes `calls`, stops it:
/// its stderr.
async fn session_in(
    log_dir: &std::path::Path,
    env: &[(&str, &str)],
    calls: &[(&str, Value)],
) -> String {
    let mut cmd = server_command(log_dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
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
    for (tool, args) in calls {
        let params = rmcp::model::CallToolRequestParams::new(tool.to_string())
            .with_arguments(args.as_object().unwrap().clone());
        let _ = client.call_tool(params).await;
    }
    client.cancel().await.unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), reader)
        .await
        .unwrap()
        .unwrap()
}

/// Every line carries `pid` and the stdio `session` id, so two processes sharing one
/// daily file can be told apart; `tool_call` carries the token's fingerprint; what a
/// refused token cannot tell is null, not "" or 0; `token_checked` says a token was
/// present even when a placeholder secret leaves nothing to judge it with, and the
/// keyring entry's state.
#[tokio::test]
async fn lines_say_which_process_and_session_and_absent_claims_are_null() {
    let dir = tempfile::tempdir().unwrap();
    let good = hs256(&claims());
    let calls = [("auth_status", json!({})), ("bucket_list", json!({}))];
    session_in(
        dir.path(),
        &[("QUILT_MCP_JWT_SECRET", SECRET), ("QUILT_MCP_TOKEN", &good)],
        &calls,
    )
    .await;
    session_in(
        dir.path(),
        &[
            ("QUILT_MCP_JWT_SECRET", "<the catalog's JWT signing secret>"),
            ("QUILT_MCP_TOKEN", &good),
        ],
        &calls,
    )
    .await;
    // A keyring session with an empty entry.
    session_in(dir.path(), &[("QUILT_MCP_JWT_SECRET", SECRET)], &calls).await;

    let lines = log_lines(dir.path());
    let mut sessions = std::collections::BTreeSet::new();
    for line in &lines {
        assert!(line["pid"].as_u64().is_some(), "no pid: {line:?}");
        let session = line["session"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {line:?}"));
        assert_eq!(session.len(), 16, "{line:?}");
        sessions.insert((line["pid"].as_u64(), session.to_owned()));
    }
    assert_eq!(sessions.len(), 3, "{sessions:?}");

    let of = |event: &str| {
        lines
            .iter()
            .filter(|l| l["event"] == event)
            .collect::<Vec<_>>()
    };
    let calls = of("tool_call");
    let fingerprint = calls
        .iter()
        .find(|l| l["outcome"] == "ok")
        .map(|l| l["token_fingerprint"].clone())
        .unwrap();
    assert!(
        fingerprint.as_str().unwrap().starts_with("sha256:"),
        "{calls:?}"
    );
    assert!(
        calls
            .iter()
            .filter(|l| l["outcome"] == "unauthorized")
            .all(|l| l["token_fingerprint"].is_null()),
        "{calls:?}"
    );

    let checked = of("token_checked");
    let ok = checked.iter().find(|l| l["status"] == "ok").unwrap();
    assert_eq!(ok["kid"], Value::Null, "{ok:?}");
    assert_eq!(ok["sub"], "alice");
    let placeholder = checked
        .iter()
        .find(|l| l["status"] == "verification_not_configured")
        .unwrap();
    assert_eq!(placeholder["token_present"], true, "{placeholder:?}");
    assert_eq!(placeholder["token_source"], "env");
    assert_eq!(placeholder["token_fingerprint"], fingerprint);
    for field in ["sub", "exp", "buckets", "permissions", "roles"] {
        assert_eq!(placeholder[field], Value::Null, "{field}: {placeholder:?}");
    }
    let missing = checked
        .iter()
        .find(|l| l["status"] == "missing_token")
        .unwrap();
    assert_eq!(missing["token_present"], false);
    assert_eq!(missing["token_fingerprint"], Value::Null);
    assert_eq!(missing["keyring_state"], "empty", "{missing:?}");
    assert_eq!(missing["exp"], Value::Null);
}

/// QUILT_MCP_LOG_TARGET=stderr sends the same JSON lines to stderr (and no file);
/// a QUILT_MCP_LOG that does not parse is a warning at start-up.
#[tokio::test]
async fn log_lines_can_go_to_stderr_and_a_bad_filter_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let token = hs256(&claims());
    let stderr = session_in(
        dir.path(),
        &[
            ("QUILT_MCP_JWT_SECRET", SECRET),
            ("QUILT_MCP_TOKEN", &token),
            ("QUILT_MCP_LOG_TARGET", "stderr"),
            ("QUILT_MCP_LOG", "nonsense=["),
        ],
        &[("auth_status", json!({}))],
    )
    .await;
    let lines: Vec<Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let events: Vec<&str> = lines.iter().filter_map(|l| l["event"].as_str()).collect();
    for event in [
        "server_started",
        "token_checked",
        "tool_call",
        "config_error",
    ] {
        assert!(events.contains(&event), "no {event} on stderr: {stderr}");
    }
    let warning = lines.iter().find(|l| l["event"] == "config_error").unwrap();
    assert!(
        warning["message"]
            .as_str()
            .unwrap()
            .contains("QUILT_MCP_LOG"),
        "{warning}"
    );
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "a log file was written"
    );
}

/// The log directory keeps at most 14 files and 1 GiB: older files go at start-up,
/// and while the newest file alone is at the cap, lines are dropped rather than
/// growing it (said once on stderr).
#[tokio::test]
async fn the_log_directory_is_capped_in_files_and_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let make = |date: &str, len: u64| {
        let path = dir.path().join(format!("quilt-mcp.{date}.log"));
        // Sparse: no disk is used.
        std::fs::File::create(&path).unwrap().set_len(len).unwrap();
        path
    };
    let gib = 1u64 << 30;
    for day in 1..=20 {
        make(&format!("2020-01-{day:02}"), 1024);
    }
    // Within the newest 14 by count, but over 1 GiB together with the newest: the
    // count cap alone (the old code) keeps them.
    let older = make("2020-01-18", gib / 2 + 1);
    let old_small = make("2020-01-10", 1024);
    make("2020-01-19", gib / 2);
    let token = hs256(&claims());
    let env = [
        ("QUILT_MCP_JWT_SECRET", SECRET),
        ("QUILT_MCP_TOKEN", token.as_str()),
    ];
    session_in(dir.path(), &env, &[("auth_status", json!({}))]).await;
    let files: Vec<(String, u64)> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    assert!(files.len() <= 14, "{files:?}");
    assert!(
        !older.exists(),
        "a file over the byte cap was kept: {files:?}"
    );
    assert!(
        !old_small.exists(),
        "a file older than it was kept: {files:?}"
    );
    assert!(
        files.iter().map(|(_, len)| len).sum::<u64>() <= gib,
        "{files:?}"
    );
    let today = files
        .iter()
        .find(|(name, _)| !name.starts_with("quilt-mcp.2020-"))
        .map(|(name, _)| dir.path().join(name))
        .expect("today's file");

    // Today's file at the cap: the server's lines are dropped, the file does not grow.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&today)
        .unwrap()
        .set_len(gib)
        .unwrap();
    let stderr = session_in(dir.path(), &env, &[("auth_status", json!({}))]).await;
    assert_eq!(std::fs::metadata(&today).unwrap().len(), gib);
    assert!(stderr.contains("log lines are dropped"), "{stderr}");
    let total: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(total <= gib, "{total}");
}

/// `quilt-mcp logs` prints the last refused calls with their reasons, read from the
/// log files: no jq needed.
#[tokio::test]
async fn logs_prints_the_last_refusals_with_their_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let now = now();
    let expired = hs256(&claims_with(json!({"exp": now - 600, "iat": now - 7200})));
    session_in(
        dir.path(),
        &[
            ("QUILT_MCP_JWT_SECRET", SECRET),
            ("QUILT_MCP_TOKEN", &expired),
        ],
        &[("bucket_list", json!({}))],
    )
    .await;
    let good = hs256(&claims());
    session_in(
        dir.path(),
        &[("QUILT_MCP_JWT_SECRET", SECRET), ("QUILT_MCP_TOKEN", &good)],
        &[
            ("auth_status", json!({})),
            ("bucket_objects_list", json!({"bucket": "not-granted"})),
        ],
    )
    .await;
    let (code, text, err) = command(dir.path(), &["logs"], &[]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("The last refused calls in "), "{text}");
    assert!(
        text.contains("bucket_list  unauthorized (expired)\n    the token expired at "),
        "{text}"
    );
    assert!(
        text.contains("set QUILT_MCP_TOKEN in the MCP server's settings to a fresh token"),
        "{text}"
    );
    assert!(
        text.contains(
            "bucket_objects_list  forbidden (bucket_not_allowed)\n    bucket not-granted"
        ),
        "{text}"
    );
    assert!(!text.contains("auth_status"), "{text}");
    let (code, json_text, _) = command(dir.path(), &["logs", "--json", "--last", "1"], &[]);
    assert_eq!(code, 0);
    let refusals: Value = serde_json::from_str(&json_text).unwrap();
    assert_eq!(refusals.as_array().unwrap().len(), 1, "{refusals}");
    assert_eq!(refusals[0]["reason"], "bucket_not_allowed");

    let empty = tempfile::tempdir().unwrap();
    let (code, text, _) = command(empty.path(), &["logs"], &[]);
    assert_eq!(code, 0);
    assert!(text.starts_with("No refused calls"), "{text}");
}

/// Over HTTP a token refused for its signature tells the client that the server does
/// not accept it, not which server setting to check (only the operator can); the
/// operator's hint is in the server's log.
#[tokio::test]
async fn a_bad_signature_over_http_tells_the_client_and_logs_the_operator_hint() {
    use tokio::io::AsyncBufReadExt as _;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = server_command(dir.path());
    cmd.args(["serve", "--http", "127.0.0.1:0"])
        .env("QUILT_MCP_JWT_SECRET", SECRET)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let url = loop {
        let line = tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Some(url) = line.strip_prefix("quilt-mcp: serving MCP at ") {
            break url.to_owned();
        }
    };
    let forged = tamper(&hs256(&claims()), &claims_with(json!({"buckets": ["*"]})));
    let response = reqwest::Client::new()
        .post(&url)
        .header("authorization", format!("Bearer {forged}"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let challenge = response
        .headers()
        .get("www-authenticate")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let body = response.text().await.unwrap();
    for text in [&challenge, &body] {
        assert!(!text.contains("QUILT_MCP_JWT_SECRET"), "{text}");
    }
    assert!(body.contains("does not accept the token"), "{body}");
    // A graceful stop flushes the log.
    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    tokio::time::timeout(std::time::Duration::from_secs(20), child.wait())
        .await
        .expect("the server stopped")
        .unwrap();
    let checked = log_lines(dir.path())
        .into_iter()
        .find(|l| l["event"] == "token_checked" && l["status"] == "invalid_signature")
        .unwrap();
    assert!(
        checked["operator_hint"]
            .as_str()
            .unwrap()
            .contains("QUILT_MCP_JWT_SECRET"),
        "{checked:?}"
    );
    // `quilt-mcp logs` lists the refused request.
    let (code, text, _) = command(dir.path(), &["logs"], &[]);
    assert_eq!(code, 0);
    assert!(
        text.contains("(HTTP request)  unauthorized (invalid_signature)"),
        "{text}"
    );
}
