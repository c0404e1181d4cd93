//! The real keyring stores: `login`, `status --json`, a served `auth_status`,
//! `logout`, rotation after expiry, the README's first steps as written and an
//! unreachable Secret Service, through the binary, against the store the
//! environment provides. `QUILT_MCP_TEST_KEYRING` names the store expected
//! (`secret-service` or `keyutils`), or `secret-service-locked` for a Secret Service
//! with no unlocked collection.
//!
//! Every test here is `#[ignore = "needs a real keyring store"]`: `scripts/ci-keyring`
//! sets up each store and runs the tests meant for it with `--ignored`.
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
        "unreachable" => store == "secret-service",
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

    /// The keyutils description of the entry.
    fn description(&self) -> String {
        let get = |name: &str| {
            self.vars
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        format!(
            "keyring:{}@{}",
            get("QUILT_MCP_KEYRING_USER"),
            get("QUILT_MCP_KEYRING_SERVICE")
        )
    }

    /// The same environment without `names`, and with `extra`.
    fn without(&self, names: &[&str], extra: &[(&str, &str)]) -> Env {
        let mut vars: Vec<(String, String)> = self
            .vars
            .iter()
            .filter(|(k, _)| !names.contains(&k.as_str()))
            .cloned()
            .collect();
        vars.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        Env {
            vars,
            _log_dir: tempfile::tempdir().unwrap(),
        }
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
        hint.starts_with(&format!("the keyring ({store}) entry "))
            && (hint.contains(" is empty: ") || hint.contains(" is empty, and the Secret Service")),
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
    // `config` sees the stored token: no prompt for it, no advice to store one.
    let (code, snippet, said) = env.run(&["config", "vscode"], "");
    assert_eq!(code, 0, "{said}");
    assert!(
        said.contains("A token is stored in the keyring entry"),
        "{said}"
    );
    assert!(!said.contains("store your token"), "{said}");
    assert!(!snippet.contains("\"inputs\""), "{snippet}");
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
    if store == "keyutils" {
        // No copy left in any keyring.
        for keyring in ["@u", "@s"] {
            let found = Command::new("keyctl")
                .args(["search", keyring, "user", &env.description()])
                .output()
                .unwrap();
            assert!(!found.status.success(), "a copy is left in {keyring}");
        }
    }
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
    // `logout` cannot tell whether there is a token: it says the store is locked.
    let (code, _, said) = env.run(&["logout"], "");
    assert_ne!(code, 0, "{said}");
    assert!(said.contains("is locked"), "{said}");
    assert!(!said.contains("There was no token"), "{said}");
    // Nothing was stored, and status tells the same story as before.
    let (code, after) = env.status();
    assert_eq!(code, 1);
    assert_eq!(after["token"]["hint"], report["token"]["hint"]);
    eprintln!("locked: {token_line}");
}

/// The README's first steps, run as written in a shell without the host's settings
/// (no verification key): each line's exit code is the one its comment gives.
#[test]
#[ignore = "needs a real keyring store"]
fn the_readme_first_steps_work_in_a_plain_shell() {
    expected("readme");
    let env = Env::new("readme").without(&["QUILT_MCP_JWT_SECRET"], &[]);
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("\n## Configure your MCP host\n")
        .nth(1)
        .unwrap();
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token.txt"), hs256(&claims()) + "\n").unwrap();
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_quilt-mcp"))
        .parent()
        .unwrap()
        .display()
        .to_string();
    let mut said = Vec::new();
    for line in block.lines() {
        let (command, comment) = line.split_once('#').unwrap_or((line, ""));
        let expected_code: i32 = comment
            .split("exit ")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .map_or(0, |n| n.parse().unwrap());
        let out = Command::new("bash")
            .arg("-c")
            .arg(command.trim())
            .current_dir(dir.path())
            .env_clear()
            .envs(env.vars.iter().map(|(k, v)| (k, v)))
            .env(
                "PATH",
                format!("{bin_dir}:{}", std::env::var("PATH").unwrap_or_default()),
            )
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            out.status.code(),
            Some(expected_code),
            "`{}`: {text}",
            command.trim()
        );
        said.push((command.trim().to_owned(), text));
    }
    let find = |prefix: &str| {
        said.iter()
            .find(|(c, _)| c.starts_with(prefix))
            .map(|(_, t)| t.clone())
            .unwrap_or_else(|| panic!("the README has no `{prefix}`"))
    };
    assert!(
        find("quilt-mcp login").contains("Its signature was not checked here"),
        "{said:?}"
    );
    assert!(
        find("quilt-mcp status").contains("Checked here: structure, expiry, audience, issuer: ok"),
        "{said:?}"
    );
    assert!(
        find("quilt-mcp logout").starts_with("Deleted the token"),
        "{said:?}"
    );
}

/// `quilt-mcp login` stored the token in the Secret Service; a server whose
/// environment reaches no session bus (a host that passes neither
/// DBUS_SESSION_BUS_ADDRESS nor XDG_RUNTIME_DIR) says that the store is unreachable
/// and what to add, instead of only "the entry is empty".
#[tokio::test]
#[ignore = "needs a real keyring store"]
async fn an_unreachable_secret_service_is_named() {
    expected("unreachable");
    let env = Env::new("unreachable");
    let (code, said) = env.login(&hs256(&claims()));
    assert_eq!(code, 0, "{said}");
    let elsewhere = tempfile::tempdir().unwrap();
    let cut_off = env.without(
        &["DBUS_SESSION_BUS_ADDRESS", "XDG_RUNTIME_DIR"],
        &[("XDG_RUNTIME_DIR", elsewhere.path().to_str().unwrap())],
    );
    let (code, report) = cut_off.status();
    assert_eq!(code, 1, "{report}");
    let hint = report["token"]["hint"].as_str().unwrap();
    assert!(
        hint.contains("Secret Service") && hint.contains("DBUS_SESSION_BUS_ADDRESS"),
        "{hint}"
    );
    let server = Server::spawn(&cut_off.refs()).await;
    let err = server.call("auth_status", json!({})).await.unwrap_err();
    assert!(
        err.message.contains("DBUS_SESSION_BUS_ADDRESS"),
        "{}",
        err.message
    );
    server.stop().await;
    let (code, _, said) = env.run(&["logout"], "");
    assert_eq!(code, 0, "{said}");
}
