//! The real keyring stores: `login`, `status --json`, a served `auth_status`,
//! `logout` and rotation after expiry, through the binary, against the store the
//! environment provides. `QUILT_MCP_TEST_KEYRING` names the store expected
//! (`secret-service` or `keyutils`), or `secret-service-locked` for a Secret Service
//! with no unlocked collection.
//!
//! Every test here is `#[ignore = "needs a real keyring store"]`: `scripts/ci-keyring`
//! sets up each of the three stores and runs the tests meant for it with `--ignored`.
//! Run without `QUILT_MCP_TEST_KEYRING`, or with a store a test is not meant for, a
//! test fails and says so: it never passes without having checked anything.
use std::io::Write as _;
use std::process::{Command, Stdio};

use crate::common::*;
use serde_json::{Value, json};

/// The store this environment provides, which `case` must be meant for.
fn expected(case: &str) -> String {
    let store = std::env::var("QUILT_MCP_TEST_KEYRING").unwrap_or_else(|_| {
        panic!(
            "keyring_real::{case} needs a real keyring store: set QUILT_MCP_TEST_KEYRING \
             (scripts/ci-keyring sets up each store and runs these tests)"
        )
    });
    let meant = match case {
        "locked" => store == "secret-service-locked",
        _ => store == "secret-service" || store == "keyutils",
    };
    assert!(
        meant,
        "keyring_real::{case} is not meant for QUILT_MCP_TEST_KEYRING={store} \
         (scripts/ci-keyring runs each test in its store)"
    );
    store
}

/// A private keyring entry and the environment of every command.
struct Env {
    vars: Vec<(String, String)>,
    _log_dir: tempfile::TempDir,
}

impl Env {
    fn new(case: &str) -> Env {
        let log_dir = tempfile::tempdir().unwrap();
        let mut vars = base_env(log_dir.path());
        vars.retain(|(k, _)| k != "QUILT_MCP_KEYRING_SERVICE");
        vars.push((
            "QUILT_MCP_KEYRING_SERVICE".into(),
            format!("quilt-mcp-real-{}-{case}", std::process::id()),
        ));
        vars.push(("QUILT_MCP_JWT_SECRET".into(), SECRET.into()));
        // The store is chosen from the environment: the session bus, when there is one.
        for name in ["DBUS_SESSION_BUS_ADDRESS", "HOME", "XDG_RUNTIME_DIR"] {
            if let Ok(value) = std::env::var(name) {
                vars.push((name.into(), value));
            }
        }
        Env {
            vars,
            _log_dir: log_dir,
        }
    }

    fn refs(&self) -> Vec<(&str, &str)> {
        self.vars
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    /// Runs the binary with `args` and `stdin`: exit code, stdout, stderr.
    fn run(&self, args: &[&str], stdin: &str) -> (i32, String, String) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_quilt-mcp"));
        cmd.env_clear()
            .args(args)
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    }

    fn status(&self) -> (i32, Value) {
        let (code, out, err) = self.run(&["status", "--json"], "");
        let report = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{out}{err}"));
        (code, report)
    }

    fn login(&self, token: &str) -> (i32, String) {
        let (code, _, err) = self.run(&["login"], token);
        (code, err)
    }
}

#[tokio::test]
#[ignore = "needs a real keyring store"]
async fn login_status_auth_status_and_logout() {
    let store = expected("login");
    let env = Env::new("login");

    let (code, report) = env.status();
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["token"]["keyring_store"], store.as_str(), "{report}");
    assert_eq!(report["token"]["keyring_state"], "empty", "{report}");
    let hint = report["token"]["hint"].as_str().unwrap();
    assert!(
        hint.starts_with(&format!("the keyring ({store}) entry ")) && hint.contains(" is empty: "),
        "{hint}"
    );

    let token = hs256(&claims());
    let (code, said) = env.login(&format!("{token}\n"));
    assert_eq!(code, 0, "{said}");
    assert!(
        said.contains(&format!("in the keyring ({store}) entry")),
        "{said}"
    );

    let (code, report) = env.status();
    assert_eq!(code, 0, "{report}");
    assert_eq!(
        (
            &report["token"]["source"],
            &report["token"]["keyring_store"]
        ),
        (&json!("keyring"), &json!(store))
    );
    assert_eq!(report["token"]["keyring_state"], "ok");
    assert_eq!(report["claims"]["subject"], "alice");
    let (_, text, _) = env.run(&["status"], "");
    assert!(
        text.contains(&format!("Token:         keyring ({store}) (sha256:")),
        "{text}"
    );

    let server = Server::spawn(&env.refs()).await;
    let instructions = server
        .client
        .peer_info()
        .and_then(|info| info.instructions.clone())
        .unwrap_or_default();
    assert!(
        instructions.starts_with("Quilt token: OK — alice, write, expires "),
        "{instructions}"
    );
    let status = server.ok("auth_status", json!({})).await;
    assert_eq!(status["subject"], "alice");
    assert_eq!(status["token"]["source"], "keyring");
    assert_eq!(status["token"]["store"], store.as_str(), "{status}");
    server.stop().await;

    let (code, _, said) = env.run(&["logout"], "");
    assert_eq!(code, 0, "{said}");
    assert!(said.starts_with("Deleted the token"), "{said}");
    let (_, _, said) = env.run(&["logout"], "");
    assert!(said.starts_with("There was no token"), "{said}");
    let (code, report) = env.status();
    assert_eq!(
        (code, &report["token"]["keyring_state"]),
        (1, &json!("empty"))
    );

    // A served session with the entry empty says so at connect time and per call.
    let server = Server::spawn(&env.refs()).await;
    let instructions = server
        .client
        .peer_info()
        .and_then(|info| info.instructions.clone())
        .unwrap_or_default();
    let line = instructions.lines().next().unwrap_or_default();
    assert_eq!(line, format!("Quilt token problem: missing_token — {hint}"));
    let err = server.call("auth_status", json!({})).await.unwrap_err();
    assert_eq!(
        (err.code.0, reason(&err).as_str()),
        (-32001, "missing_token")
    );
    assert!(err.message.ends_with(hint), "{}", err.message);
    server.stop().await;
}

#[tokio::test]
#[ignore = "needs a real keyring store"]
async fn login_replaces_an_expiring_token_and_a_running_server_picks_it_up() {
    let store = expected("rotation");
    let env = Env::new("rotation");
    let now = now();
    let old = hs256(&claims_with(
        json!({"sub": "old", "iat": now, "exp": now + 3}),
    ));
    let (code, said) = env.login(&old);
    assert_eq!(code, 0, "{said}");

    let server = Server::spawn(&env.refs()).await;
    assert_eq!(server.ok("auth_status", json!({})).await["subject"], "old");

    let new = hs256(&claims_with(json!({"sub": "new", "exp": now + 3600})));
    let (code, said) = env.login(&new);
    assert_eq!(code, 0, "{said}");
    let (_, report) = env.status();
    assert_eq!(report["claims"]["subject"], "new", "{report}");

    // Once the old token has expired, the server reads the entry again.
    while crate::common::now() <= now + 3 {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let status = server.ok("auth_status", json!({})).await;
    assert_eq!(
        (&status["subject"], &status["token"]["store"]),
        (&json!("new"), &json!(store))
    );
    server.stop().await;
    let (code, _, said) = env.run(&["logout"], "");
    assert_eq!(code, 0, "{said}");
}

/// A Secret Service with no unlocked collection: `status` gives one sentence that
/// says the store is locked and what to do, and so does `login`, which stores nothing.
#[tokio::test]
#[ignore = "needs a real keyring store"]
async fn a_locked_secret_service_says_what_to_do() {
    expected("locked");
    let env = Env::new("locked");
    let (code, report) = env.status();
    assert_eq!(code, 1, "{report}");
    assert_eq!(
        report["token"]["keyring_store"], "secret-service",
        "{report}"
    );
    let (code, text, _) = env.run(&["status"], "");
    assert_eq!(code, 1);
    let token_line = text.lines().find(|l| l.starts_with("Token:")).unwrap();
    assert!(!text.contains("could not be read"), "{text}");

    let (code, said) = env.login(&hs256(&claims()));
    assert_eq!(code, 2, "{said}");
    assert!(
        said.starts_with(
            "quilt-mcp: not stored: the keyring (secret-service) is locked, so the entry "
        ),
        "{said}"
    );
    assert!(
        said.contains("gnome-keyring-daemon --unlock") && said.contains("QUILT_MCP_TOKEN"),
        "{said}"
    );
    assert!(!said.contains("SS error: result not returned"), "{said}");
    // Nothing was stored, and status tells the same story as before.
    let (code, after) = env.status();
    assert_eq!(code, 1);
    assert_eq!(after["token"]["hint"], report["token"]["hint"]);
    eprintln!("locked: {token_line}");
}
