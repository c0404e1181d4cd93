//! Setting quilt-mcp up on a user's machine: `login` (verify a token, then store it in
//! the keyring entry), `logout`, and `config` (host configuration snippets).

use std::path::Path;

use serde_json::{Map, Value, json};

use crate::auth::source::{KeyringError, delete_entry, write_entry};
use crate::auth::verify::Verifier;
use crate::auth::{AuthContext, AuthFailure, Token, TokenSourceKind};
use crate::config::{Config, KeyConfig};

/// Why `login` did not store the token.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// No token was given.
    #[error("no token given: pass --token-file PATH or pipe the token on stdin")]
    Empty,
    /// The token does not verify (exit 1).
    #[error("{}", .0.message())]
    Refused(AuthFailure),
    /// The configuration or the keyring is unusable (exit 2).
    #[error("{0}")]
    Setup(String),
}

/// Verifies `text` with the configured key and stores it in the keyring entry.
pub fn login(config: &Config, text: &str, now: i64) -> Result<AuthContext, LoginError> {
    let token = Token::new(text).ok_or(LoginError::Empty)?;
    let verifier = Verifier::new(config);
    if let Some(failure) = verifier.not_configured() {
        return Err(LoginError::Setup(failure.message()));
    }
    let (ctx, _) = verifier
        .verify(&token, TokenSourceKind::Keyring, now)
        .map_err(LoginError::Refused)?;
    write_entry(&config.keyring_service, &config.keyring_user, &token)
        .map_err(|e| LoginError::Setup(format!("cannot write the keyring entry: {e}")))?;
    Ok(ctx)
}

/// Deletes the keyring entry; `Ok(false)` when there was none.
pub fn logout(config: &Config) -> Result<bool, KeyringError> {
    delete_entry(&config.keyring_service, &config.keyring_user)
}

/// The hosts `config` knows.
pub const HOSTS: &[&str] = &["claude", "vscode", "cursor"];

/// Where each host keeps its MCP configuration, for the message printed with the snippet.
pub fn host_config_path(host: &str) -> &'static str {
    match host {
        "claude" => {
            "Claude Desktop: ~/Library/Application Support/Claude/claude_desktop_config.json (macOS), %APPDATA%\\Claude\\claude_desktop_config.json (Windows)"
        }
        "vscode" => {
            "VS Code: .vscode/mcp.json in the workspace, or the user-level mcp.json (MCP: Open User Configuration)"
        }
        "cursor" => "Cursor: ~/.cursor/mcp.json, or .cursor/mcp.json in the project",
        _ => "",
    }
}

/// The environment a host should pass: the verification settings in force now, with a
/// placeholder instead of a shared secret (a snippet is never a place for secrets).
fn server_env(config: &Config) -> Map<String, Value> {
    let mut env = Map::new();
    match &config.key {
        KeyConfig::Secret(_) | KeyConfig::None | KeyConfig::Conflict(_) => {
            env.insert(
                "QUILT_MCP_JWT_SECRET".into(),
                json!("<the catalog's JWT signing secret>"),
            );
        }
        KeyConfig::PublicKeyFile(path) => {
            env.insert(
                "QUILT_MCP_JWT_PUBLIC_KEY".into(),
                json!(path.display().to_string()),
            );
        }
        KeyConfig::JwksFile(path) => {
            env.insert("QUILT_MCP_JWKS".into(), json!(path.display().to_string()));
        }
    }
    if config.audience != crate::config::DEFAULT_AUDIENCE {
        env.insert("QUILT_MCP_JWT_AUDIENCE".into(), json!(config.audience));
    }
    let optional = [
        ("QUILT_MCP_JWT_ISSUER", config.issuer.as_ref()),
        ("QUILT_REGISTRY_URL", config.registry_url.as_ref()),
        ("QUILT_CATALOG_URL", config.catalog_url.as_ref()),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            env.insert(name.into(), json!(value));
        }
    }
    if config.aws_region != crate::config::DEFAULT_REGION {
        env.insert("QUILT_MCP_AWS_REGION".into(), json!(config.aws_region));
    }
    if config.keyring_service != crate::config::DEFAULT_KEYRING_SERVICE {
        env.insert(
            "QUILT_MCP_KEYRING_SERVICE".into(),
            json!(config.keyring_service),
        );
    }
    if config.keyring_user != crate::config::DEFAULT_KEYRING_USER {
        env.insert("QUILT_MCP_KEYRING_USER".into(), json!(config.keyring_user));
    }
    env
}

/// The configuration snippet for `host`, running `binary` (an absolute path). The
/// token itself is left to `quilt-mcp login` (the keyring), so the snippet holds no
/// secret.
pub fn host_snippet(host: &str, binary: &Path, config: &Config) -> Option<Value> {
    let command = binary.display().to_string();
    let env = Value::Object(server_env(config));
    match host {
        "claude" | "cursor" => {
            Some(json!({"mcpServers": {"quilt": {"command": command, "args": [], "env": env}}}))
        }
        "vscode" => Some(
            json!({"servers": {"quilt": {"type": "stdio", "command": command, "args": [], "env": env}}}),
        ),
        _ => None,
    }
}
