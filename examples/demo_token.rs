//! Mints a demo enhanced Quilt JWT signed with a shared secret, for trying quilt-mcp
//! without a Quilt catalog:
//!
//! ```sh
//! cargo run --example demo_token -- s3cret > /tmp/token
//! QUILT_MCP_JWT_SECRET=s3cret QUILT_MCP_TOKEN="$(cat /tmp/token)" cargo run -- status
//! ```
//!
//! Arguments: the secret, then optionally the lifetime in seconds (default 3600).

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let secret = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: demo_token SECRET [LIFETIME_SECS]"))?;
    let lifetime: i64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(3600);
    let now = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs())?;
    let claims = json!({
        "sub": "demo-user",
        "iss": "quilt-mcp-demo",
        "aud": "quilt-mcp-server",
        "iat": now,
        "exp": now + lifetime,
        "jti": format!("demo-{now}"),
        "s": "demo",
        "l": "write",
        "r": ["DemoRole"],
        "p": ["g", "l", "p"],
        "b": {"_type": "groups", "_data": {"quilt": ["demo-data", "demo-packages"]}},
    });
    let token = quilt_mcp_testkit::mint_hs256(secret.as_bytes(), &claims)?;
    println!("{token}");
    Ok(())
}
