//! `quilt-mcp status`: exit codes and the JSON report.
use crate::common::*;
use serde_json::{Value, json};

fn status(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_quilt-mcp"));
    cmd.env_clear().arg("status").args(args);
    for (k, v) in base_env(dir.path()) {
        cmd.env(k, v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
    )
}

#[test]
fn valid_token_exits_0_with_a_claims_summary() {
    let token = hs256(&claims_with(
        json!({"aws_role_arn": "arn:aws:iam::123456789012:role/Reader"}),
    ));
    let (code, out) = status(
        &["--json"],
        &[
            ("QUILT_MCP_JWT_SECRET", SECRET),
            ("QUILT_MCP_TOKEN", &token),
        ],
    );
    assert_eq!(code, 0, "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["status"], "ok");
    assert_eq!(report["token"]["source"], "env");
    assert_eq!(report["token"]["status"], "ok");
    assert_eq!(report["claims"]["subject"], "alice");
    assert_eq!(
        report["claims"]["buckets"],
        json!(["lab-data", "quilt-example"])
    );
    assert_eq!(report["aws"]["source"], "web_identity");
    assert_eq!(
        report["aws"]["role_arn"],
        "arn:aws:iam::123456789012:role/Reader"
    );
    assert!(report["log_dir"].is_string());
    assert!(!out.contains(&token));

    let (code, text) = status(
        &[],
        &[
            ("QUILT_MCP_JWT_SECRET", SECRET),
            ("QUILT_MCP_TOKEN", &token),
        ],
    );
    assert_eq!(code, 0);
    assert!(
        text.contains("Subject:       alice") && text.contains("web_identity"),
        "{text}"
    );
}

#[test]
fn expired_or_missing_token_exits_1_naming_the_reason() {
    let now = now();
    let expired = hs256(&claims_with(json!({"exp": now - 3600, "iat": now - 7200})));
    let (code, out) = status(
        &["--json"],
        &[
            ("QUILT_MCP_JWT_SECRET", SECRET),
            ("QUILT_MCP_TOKEN", &expired),
        ],
    );
    assert_eq!(code, 1, "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["status"], "token_error");
    assert_eq!(report["token"]["status"], "expired");
    assert!(
        report["token"]["message"]
            .as_str()
            .unwrap()
            .contains("expired at")
    );
    assert!(report["claims"].is_null());

    let (code, out) = status(&["--json"], &[("QUILT_MCP_JWT_SECRET", SECRET)]);
    assert_eq!(code, 1, "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (
            report["token"]["present"].as_bool(),
            report["token"]["status"].as_str()
        ),
        (Some(false), Some("missing_token"))
    );
}

#[test]
fn configuration_errors_exit_2() {
    let token = hs256(&claims());
    let cases: Vec<Vec<(&str, String)>> = vec![
        vec![],
        vec![(
            "QUILT_MCP_JWT_PUBLIC_KEY",
            "/nonexistent/key.pem".to_owned(),
        )],
        vec![(
            "QUILT_MCP_JWT_PUBLIC_KEY",
            key_path("rsa_private.pem").display().to_string(),
        )],
        vec![
            ("QUILT_MCP_JWT_SECRET", SECRET.to_owned()),
            (
                "QUILT_MCP_JWKS",
                key_path("jwks.json").display().to_string(),
            ),
        ],
        vec![
            ("QUILT_MCP_JWT_SECRET", SECRET.to_owned()),
            ("QUILT_MCP_JWT_LEEWAY_SECS", "soon".to_owned()),
        ],
        vec![
            ("QUILT_MCP_JWT_SECRET", SECRET.to_owned()),
            ("QUILT_MCP_PUBLIC_URL", "mcp.example.com".to_owned()),
        ],
    ];
    for case in cases {
        let mut env: Vec<(&str, &str)> = case.iter().map(|(k, v)| (*k, v.as_str())).collect();
        env.push(("QUILT_MCP_TOKEN", &token));
        let (code, out) = status(&["--json"], &env);
        assert_eq!(code, 2, "{case:?}: {out}");
        let report: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(report["status"], "config_error");
        assert!(!report["config_errors"].as_array().unwrap().is_empty());
        assert!(!out.contains(SECRET));
    }
}

/// SPEC §3: a value of QUILT_MCP_READ_ONLY other than true/false turns read-only
/// on, with a warning, and `status` exits 2; the server hides and refuses writes.
#[tokio::test]
async fn an_invalid_read_only_value_fails_closed() {
    let token = hs256(&claims());
    let (code, out) = status(
        &["--json"],
        &[
            ("QUILT_MCP_JWT_SECRET", SECRET),
            ("QUILT_MCP_TOKEN", &token),
            ("QUILT_MCP_READ_ONLY", "tru"),
        ],
    );
    assert_eq!(code, 2, "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["read_only"], true, "{out}");
    assert!(
        report["config_errors"][0]
            .as_str()
            .unwrap()
            .starts_with("QUILT_MCP_READ_ONLY"),
        "{out}"
    );

    let server = Server::spawn(&[
        ("QUILT_MCP_JWT_SECRET", SECRET),
        ("QUILT_MCP_TOKEN", &token),
        ("QUILT_MCP_READ_ONLY", "tru"),
    ])
    .await;
    let tools = server.client.list_all_tools().await.unwrap();
    assert!(
        !tools.iter().any(|t| t.name == "bucket_objects_put"),
        "a write tool is listed"
    );
    let err = server
        .call(
            "bucket_objects_put",
            json!({"bucket": "lab-data", "items": [{"key": "k", "text": "x"}]}),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (err.code.0, reason(&err).as_str()),
        (-32003, "read_only_mode")
    );
    let (stderr, _) = server.stop().await;
    assert!(stderr.contains("QUILT_MCP_READ_ONLY"), "{stderr}");
}

/// SPEC §3: one leading `Bearer ` is stripped from QUILT_MCP_TOKEN, once.
#[test]
fn an_environment_token_loses_one_bearer_only() {
    let token = hs256(&claims());
    for (value, code, reason) in [
        (format!("  Bearer {token}\n"), 0, "ok"),
        (format!("Bearer Bearer {token}"), 1, "malformed_token"),
    ] {
        let (got, out) = status(
            &["--json"],
            &[
                ("QUILT_MCP_JWT_SECRET", SECRET),
                ("QUILT_MCP_TOKEN", &value),
            ],
        );
        assert_eq!(got, code, "{out}");
        let report: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(report["token"]["status"], reason, "{out}");
        assert!(!out.contains(&token));
    }
}

#[test]
fn config_prints_a_snippet_for_each_host_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let binary = std::fs::canonicalize(env!("CARGO_BIN_EXE_quilt-mcp")).unwrap();
    for (host, root) in [
        ("claude-desktop", "mcpServers"),
        ("claude", "mcpServers"),
        ("cursor", "mcpServers"),
        ("gemini", "mcpServers"),
        ("vscode", "servers"),
        ("claude-code --json", ""),
    ] {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_quilt-mcp"));
        cmd.env_clear().arg("config").args(host.split(' '));
        for (k, v) in base_env(dir.path()) {
            cmd.env(k, v);
        }
        cmd.env("QUILT_MCP_JWT_SECRET", SECRET)
            .env("QUILT_REGISTRY_URL", "https://registry.example.com");
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{host}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(!text.contains(SECRET), "{host}: the secret was printed");
        let snippet: Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{host}: {text}"));
        let server = if root.is_empty() {
            &snippet
        } else {
            &snippet[root]["quilt"]
        };
        assert_eq!(server["command"], binary.display().to_string(), "{host}");
        assert!(
            server["env"]["QUILT_MCP_JWT_SECRET"]
                .as_str()
                .unwrap()
                .starts_with('<')
        );
        assert_eq!(
            server["env"]["QUILT_REGISTRY_URL"],
            "https://registry.example.com"
        );
    }
    // Claude Code: one command line, the name before the variadic `-e`.
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_quilt-mcp"));
    cmd.env_clear().args(["config", "claude-code"]);
    for (k, v) in base_env(dir.path()) {
        cmd.env(k, v);
    }
    let out = cmd.env("QUILT_MCP_JWT_SECRET", SECRET).output().unwrap();
    assert!(out.status.success());
    let line = String::from_utf8(out.stdout).unwrap();
    assert!(line.starts_with("claude mcp add quilt -e "), "{line}");
    assert!(
        line.trim_end().ends_with(&binary.display().to_string()),
        "{line}"
    );
    assert!(!line.contains(SECRET));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_quilt-mcp"))
        .args(["config", "emacs"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// SPEC §8: `status` names the keyring store in use, here Linux's (the Secret
/// Service when a session bus answers, else the kernel keyutils store).
#[test]
fn status_names_the_keyring_store() {
    let (code, out) = status(&["--json"], &[("QUILT_MCP_JWT_SECRET", SECRET)]);
    assert_eq!(code, 1, "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let store = report["token"]["keyring_store"].as_str().unwrap_or("");
    assert!(
        ["secret-service", "keyutils"].contains(&store),
        "{}",
        report["token"]
    );
    let (_, text) = status(&[], &[("QUILT_MCP_JWT_SECRET", SECRET)]);
    assert!(text.contains(&format!("keyring ({store}) entry")), "{text}");
}
