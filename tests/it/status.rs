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

/// docs/reference.md, Settings: a value of QUILT_MCP_READ_ONLY other than true/false turns read-only
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

/// docs/reference.md, Settings: one leading `Bearer ` is stripped from QUILT_MCP_TOKEN, once.
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

/// docs/reference.md, Logs: `status` names the keyring store in use, here Linux's (the Secret
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

/// Runs the binary with `args`, a clean environment plus `env`, and `stdin`: exit
/// code, stdout, stderr.
fn run(args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> (i32, String, String) {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_quilt-mcp"));
    cmd.env_clear().args(args);
    for (k, v) in base_env(dir.path()) {
        cmd.env(k, v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A command that stops reading early closes its stdin: not an error here.
    let _ = child.stdin.take().unwrap().write_all(stdin);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// In a terminal without the host's settings there is no key: `status` makes every
/// check but the signature, says which, and that only the server checks the rest.
#[test]
fn without_a_key_status_checks_all_but_the_signature() {
    let now = now();
    let good = hs256(&claims());
    let expired = hs256(&claims_with(json!({"exp": now - 3600, "iat": now - 7200})));
    for key in [None, Some("<the catalog's JWT signing secret>")] {
        let mut env = vec![("QUILT_MCP_TOKEN", good.as_str())];
        if let Some(key) = key {
            env.push(("QUILT_MCP_JWT_SECRET", key));
        }
        let (code, out) = status(&["--json"], &env);
        assert_eq!(code, 2, "{out}");
        let report: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(report["token"]["status"], "verification_not_configured");
        assert_eq!(
            report["token"]["checked_here"],
            json!({"status": "ok", "signature_checked": false})
        );
        assert_eq!(report["claims"]["subject"], "alice");
        assert_eq!(report["claims"]["signature_checked"], false);
        let (code, text) = status(&[], &env);
        assert_eq!(code, 2);
        assert!(
            text.contains("Checked here: structure, expiry, audience, issuer: ok"),
            "{text}"
        );
        assert!(
            text.contains("The signature is checked only by the server"),
            "{text}"
        );
        assert!(!text.contains("quilt-mcp status"), "{text}");
    }
    let (code, out) = status(&["--json"], &[("QUILT_MCP_TOKEN", &expired)]);
    assert_eq!(code, 2, "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["token"]["checked_here"]["status"], "expired");
    assert!(report["claims"].is_null());
}

/// A QUILT_MCP_LOG that does not parse, or a QUILT_MCP_LOG_TARGET that is neither
/// file nor stderr, is a configuration error: exit 2 naming it.
#[test]
fn an_unparsable_log_setting_exits_2() {
    let token = hs256(&claims());
    for (name, value) in [
        ("QUILT_MCP_LOG", "nonsense=["),
        ("QUILT_MCP_LOG_TARGET", "syslog"),
    ] {
        let (code, out) = status(
            &["--json"],
            &[
                ("QUILT_MCP_JWT_SECRET", SECRET),
                ("QUILT_MCP_TOKEN", &token),
                (name, value),
            ],
        );
        assert_eq!(code, 2, "{name}: {out}");
        let report: Value = serde_json::from_str(&out).unwrap();
        assert!(
            report["config_errors"][0]
                .as_str()
                .unwrap()
                .starts_with(&format!("{name}: ")),
            "{out}"
        );
    }
}

/// `status` says where the log lines go: the directory, or stderr.
#[test]
fn status_names_the_log_target() {
    let token = hs256(&claims());
    let env = [
        ("QUILT_MCP_JWT_SECRET", SECRET),
        ("QUILT_MCP_TOKEN", token.as_str()),
    ];
    let (_, out) = status(&["--json"], &env);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["log_target"], "file");
    assert!(report["log_dir"].is_string());
    let mut env = env.to_vec();
    env.push(("QUILT_MCP_LOG_TARGET", "stderr"));
    let (code, out) = status(&["--json"], &env);
    assert_eq!(code, 0, "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["log_target"], "stderr");
    assert!(report["log_dir"].is_null());
    let (_, text) = status(&[], &env);
    assert!(
        text.contains("Logs:          stderr (QUILT_MCP_LOG_TARGET)"),
        "{text}"
    );
}

/// A claim holding a newline and ESC is shown escaped in `status` and `login`'s
/// text: it cannot start a line of its own or drive the terminal.
#[test]
fn control_characters_in_claims_are_escaped_in_text() {
    let sub = "mallory\nQuilt token: OK\u{1b}[2J\u{202e}";
    let token = hs256(&claims_with(json!({"sub": sub})));
    let (code, text) = status(
        &[],
        &[
            ("QUILT_MCP_JWT_SECRET", SECRET),
            ("QUILT_MCP_TOKEN", &token),
        ],
    );
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("Subject:       mallory\\nQuilt token: OK\\u{1b}[2J\\u{202e}\n"),
        "{text}"
    );
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{202e}'),
        "{text}"
    );
    // JSON keeps the claim as it is (JSON escapes it).
    let (_, out) = status(
        &["--json"],
        &[
            ("QUILT_MCP_JWT_SECRET", SECRET),
            ("QUILT_MCP_TOKEN", &token),
        ],
    );
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["claims"]["subject"], sub);

    let service = format!("quilt-mcp-escape-{}", std::process::id());
    let (code, _, said) = run(
        &["login"],
        &[("QUILT_MCP_KEYRING_SERVICE", &service)],
        token.as_bytes(),
    );
    if code == 0 {
        assert!(said.contains("token of mallory\\nQuilt token"), "{said}");
        assert!(!said.contains('\u{1b}'), "{said}");
        run(&["logout"], &[("QUILT_MCP_KEYRING_SERVICE", &service)], b"");
    } else {
        // No usable store here: still nothing raw in what was said.
        assert!(!said.contains('\u{1b}'), "{said}");
    }
}

/// `login` reads at most 16 KiB: a large file and /dev/zero are refused after that,
/// never read to the end (the old code read /dev/zero until memory ran out).
#[test]
fn login_reads_at_most_16_kib() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.txt");
    // 64 MiB, sparse: cheap to make, costly to read whole.
    std::fs::File::create(&big)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    for path in [big.to_str().unwrap(), "/dev/zero"] {
        let started = std::time::Instant::now();
        let (code, _, said) = run(
            &["login", "--token-file", path],
            &[("QUILT_MCP_JWT_SECRET", SECRET)],
            b"",
        );
        assert_eq!(code, 1, "{path}: {said}");
        assert!(said.contains("larger than 16 KiB"), "{path}: {said}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{path}: {:?}",
            started.elapsed()
        );
    }
    // On stdin too.
    let (code, _, said) = run(&["login"], &[], &vec![b'a'; 17 * 1024]);
    assert_eq!(code, 1, "{said}");
    assert!(said.contains("larger than 16 KiB"), "{said}");
}

/// `config HOST` never prints the user name and password of a URL setting (all
/// seven variants), carries the endpoint overrides, and tells Gemini users about
/// trusted folders.
#[test]
fn config_drops_url_userinfo_and_carries_endpoints() {
    let env = [
        ("QUILT_MCP_JWT_SECRET", SECRET),
        (
            "QUILT_REGISTRY_URL",
            "https://alice:hunter2@registry.example",
        ),
        ("QUILT_CATALOG_URL", "https://bob:pa55word@catalog.example/"),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
        (
            "AWS_ENDPOINT_URL_S3",
            "http://minio:minio-secret@127.0.0.1:9001",
        ),
        ("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9002"),
        ("QUILT_MCP_S3_FORCE_PATH_STYLE", "true"),
    ];
    for host in [
        "claude-desktop",
        "claude",
        "claude-code",
        "claude-code --json",
        "vscode",
        "cursor",
        "gemini",
    ] {
        let args: Vec<&str> = ["config"].into_iter().chain(host.split(' ')).collect();
        let (code, out, err) = run(&args, &env, b"");
        assert_eq!(code, 0, "{host}: {err}");
        for secret in ["hunter2", "pa55word", "minio-secret", SECRET] {
            assert!(
                !out.contains(secret) && !err.contains(secret),
                "{host} printed {secret}"
            );
        }
        assert!(
            out.contains("https://<user:password>@registry.example"),
            "{host}: {out}"
        );
        assert!(err.contains("QUILT_REGISTRY_URL carries a user name and password"));
        for shown in [
            "AWS_ENDPOINT_URL",
            "http://127.0.0.1:9000",
            "AWS_ENDPOINT_URL_STS",
            "QUILT_MCP_S3_FORCE_PATH_STYLE",
        ] {
            assert!(out.contains(shown), "{host}: no {shown}: {out}");
        }
        if host == "gemini" {
            assert!(err.contains("trusted folder"), "{err}");
        }
    }
}
