//! What the benchmarks share: a token minted for the bench secret and the command
//! that runs the real server binary with quiet logging.
#![allow(dead_code)]

use serde_json::Value;

/// Stops the bench run loudly: a bench that cannot set up or gets a wrong answer must
/// not print figures for work it did not do.
pub fn fail(what: &str, why: impl std::fmt::Display) -> ! {
    eprintln!("bench failed: {what}: {why}");
    std::process::exit(1)
}

/// `.or_fail("what")` on a `Result` or an `Option`: the value, or [`fail`].
pub trait OrFail<T> {
    /// The value, or a loud stop naming `what`.
    fn or_fail(self, what: &str) -> T;
}

impl<T, E: std::fmt::Display> OrFail<T> for Result<T, E> {
    fn or_fail(self, what: &str) -> T {
        self.unwrap_or_else(|e| fail(what, e))
    }
}

impl<T> OrFail<T> for Option<T> {
    fn or_fail(self, what: &str) -> T {
        self.unwrap_or_else(|| fail(what, "nothing came back"))
    }
}

/// The shared secret the benchmarked server verifies with.
pub const SECRET: &str = "bench-secret";

/// A two-hour HS256 token for `sub` with the given extra claims (buckets,
/// permissions, level, credentials).
pub fn token(sub: &str, extra: Value) -> String {
    let now = chrono::Utc::now().timestamp();
    let mut claims = serde_json::json!({
        "sub": sub, "aud": "quilt-mcp-server", "iat": now, "exp": now + 7200,
    });
    if let (Some(claims), Value::Object(extra)) = (claims.as_object_mut(), extra) {
        claims.extend(extra);
    }
    quilt_mcp_testkit::mint_hs256(SECRET.as_bytes(), &claims).or_fail("minting the bench token")
}

/// The server binary with the bench secret and warnings-only logs in a temp dir;
/// with `s3_endpoint`, pointed at that S3 (path style).
pub fn server_command(s3_endpoint: Option<&str>) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_quilt-mcp"));
    command
        .env("QUILT_MCP_JWT_SECRET", SECRET)
        .env(
            "QUILT_MCP_LOG_DIR",
            std::env::temp_dir().join("quilt-mcp-bench-logs"),
        )
        .env("QUILT_MCP_LOG", "warn");
    if let Some(endpoint) = s3_endpoint {
        command
            .env("AWS_ENDPOINT_URL_S3", endpoint)
            .env("QUILT_MCP_S3_FORCE_PATH_STYLE", "true");
    }
    command
}
