//! What the benchmarks share: a token minted for the bench secret and the command
//! that runs the real server binary with quiet logging.
#![allow(dead_code)]

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::Value;

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
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap_or_default()
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
