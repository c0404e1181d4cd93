//! The real `quilt-mcp` binary over stdio with an MCP client ([`Server`]), its log
//! files, and a server pointed at the in-process S3 ([`start_on`]).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use rmcp::model::{CallToolRequestParams, CallToolResult, ErrorData};
use rmcp::service::{RoleClient, RunningService, ServiceError};
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, ServiceExt as _};
use serde_json::{Map, Value};

use crate::jwt::SECRET;
use crate::s3;

/// The `quilt-mcp` binary: `QUILT_MCP_BIN`, or the one cargo built next to the
/// running test, bench or example (`target/<profile>/quilt-mcp`, the directory above
/// `deps/` or `examples/`).
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("QUILT_MCP_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().unwrap();
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("no target directory above {}", exe.display()));
    let binary = profile.join(format!("quilt-mcp{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.is_file(),
        "{} not found: build it (cargo build) or set QUILT_MCP_BIN",
        binary.display()
    );
    binary
}

/// A running `quilt-mcp` child with a connected client.
pub struct Server<H: ClientHandler = ()> {
    /// The connected client.
    pub client: RunningService<RoleClient, H>,
    /// Everything the server wrote to stderr, once it has stopped.
    pub stderr: Arc<Mutex<String>>,
    stderr_done: tokio::task::JoinHandle<()>,
    /// Its private log directory.
    pub log_dir: tempfile::TempDir,
}

/// The environment every spawned server gets: a private log directory and a keyring
/// entry that no other test or user touches.
pub fn base_env(log_dir: &Path) -> Vec<(String, String)> {
    vec![
        ("QUILT_MCP_LOG_DIR".into(), log_dir.display().to_string()),
        (
            "QUILT_MCP_KEYRING_SERVICE".into(),
            format!("quilt-mcp-test-{}", std::process::id()),
        ),
        ("QUILT_MCP_KEYRING_USER".into(), "nobody".into()),
        ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
    ]
}

impl Server<()> {
    /// Spawns the binary with a clean environment plus `env`.
    pub async fn spawn(env: &[(&str, &str)]) -> Server {
        Server::spawn_with(env, ()).await
    }
}

impl<H: ClientHandler> Server<H> {
    /// Spawns the binary with a clean environment plus `env`, served by `handler`.
    pub async fn spawn_with(env: &[(&str, &str)], handler: H) -> Server<H> {
        let log_dir = tempfile::tempdir().unwrap();
        let mut cmd = tokio::process::Command::new(binary());
        cmd.env_clear();
        for (k, v) in base_env(log_dir.path()) {
            cmd.env(k, v);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let (transport, stderr) = TokioChildProcess::builder(cmd)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let buffer = Arc::new(Mutex::new(String::new()));
        let sink = buffer.clone();
        let stderr_done = tokio::spawn(async move {
            use tokio::io::AsyncReadExt as _;
            if let Some(mut stderr) = stderr {
                let mut text = String::new();
                let _ = stderr.read_to_string(&mut text).await;
                sink.lock().unwrap().push_str(&text);
            }
        });
        let client = handler.serve(transport).await.expect("initialize");
        Server {
            client,
            stderr: buffer,
            stderr_done,
            log_dir,
        }
    }

    /// Calls a tool; `Err` is the JSON-RPC error.
    pub async fn call(&self, tool: &str, args: Value) -> Result<CallToolResult, ErrorData> {
        let mut params = CallToolRequestParams::new(tool.to_owned());
        if let Value::Object(map) = args {
            params = params.with_arguments(map);
        }
        match self.client.call_tool(params).await {
            Ok(result) => Ok(result),
            Err(ServiceError::McpError(e)) => Err(e),
            Err(other) => panic!("transport failure calling {tool}: {other}"),
        }
    }

    /// Calls a tool that must succeed; its structured content.
    pub async fn ok(&self, tool: &str, args: Value) -> Value {
        let result = self
            .call(tool, args)
            .await
            .unwrap_or_else(|e| panic!("{tool} failed: {e:?}"));
        assert_ne!(result.is_error, Some(true), "{tool}: {result:?}");
        result.structured_content.expect("structured content")
    }

    /// Closes stdin, waits for the process to exit, and returns its stderr.
    pub async fn stop(self) -> (String, tempfile::TempDir) {
        let _ = self.client.cancel().await;
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), self.stderr_done).await;
        let text = self.stderr.lock().unwrap().clone();
        (text, self.log_dir)
    }
}

/// The `reason` of a JSON-RPC error's data.
pub fn reason(error: &ErrorData) -> String {
    error
        .data
        .as_ref()
        .and_then(|d| d.get("reason"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned()
}

/// Every JSON line of every file in `dir`.
pub fn log_lines(dir: &Path) -> Vec<Map<String, Value>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match serde_json::from_str::<Value>(line) {
                Ok(Value::Object(map)) => out.push(map),
                _ => panic!("log line is not a JSON object: {line}"),
            }
        }
    }
    out
}

/// Every file's raw text in `dir`, concatenated.
pub fn log_text(dir: &Path) -> String {
    let mut out = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        out.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    out
}

/// Spawns the server against the test S3 with `token` and `extra` environment.
pub async fn start_on<H: ClientHandler>(
    s3: &s3::TestS3,
    token: &str,
    extra: &[(&str, &str)],
    handler: H,
) -> Server<H> {
    let mut env: Vec<(&str, String)> = s3.env();
    env.push(("QUILT_MCP_JWT_SECRET", SECRET.into()));
    env.push(("QUILT_MCP_TOKEN", token.into()));
    for (k, v) in extra {
        env.push((k, (*v).to_owned()));
    }
    let refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Server::spawn_with(&refs, handler).await
}

/// A gate case: (tool, claims for the token, arguments, expected -32003 reason).
pub type GateCase = (&'static str, Value, Value, &'static str);

/// Each case is refused with -32003 and its reason before any request reaches S3.
pub async fn assert_refused_before_s3(
    s3: &s3::TestS3,
    cases: Vec<GateCase>,
    token: impl Fn(Value) -> String,
) {
    for (tool, claims, args, want) in cases {
        let server = start_on(s3, &token(claims), &[], ()).await;
        let before = s3.requests();
        let err = server.call(tool, args.clone()).await.unwrap_err();
        assert_eq!(
            (err.code.0, reason(&err).as_str()),
            (-32003, want),
            "{tool} {args}"
        );
        assert_eq!(err.data.as_ref().unwrap()["tool"], tool);
        assert!(err.message.starts_with("Forbidden: "), "{}", err.message);
        server.stop().await;
        assert_eq!(s3.requests(), before, "{tool} reached S3");
    }
}
