//! Setting quilt-mcp up on a user's machine: `login` (verify a token, then store it in
//! the keyring entry), `logout`, and `config` (host configuration snippets).

use std::path::Path;

use serde_json::{Map, Value, json};

use crate::auth::keys::KeyError;
use crate::auth::store::{KeyringError, StoreError, delete_entry, write_entry};
use crate::auth::verify::Verifier;
use crate::auth::{AuthFailure, Token, TokenSourceKind};
use crate::config::{Config, KeyConfig};

/// The most `login` reads of a token: the largest token that can verify, and one
/// byte more to tell that a file is larger.
pub const MAX_LOGIN_BYTES: u64 = crate::auth::token::MAX_TOKEN_BYTES as u64;

/// Why `login` did not store the token.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// No token was given.
    #[error("no token given: pass --token-file PATH or pipe the token on stdin")]
    Empty,
    /// The token does not verify, or fails a check that needs no key (exit 1).
    #[error("{}", .0.message())]
    Refused(AuthFailure),
    /// A key is configured but unusable (exit 2).
    #[error("{0}")]
    Setup(#[source] KeyError),
    /// The keyring did not store the token; nothing partial is left unless it says so
    /// (exit 2).
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// What `login` stored.
#[derive(Debug, Clone)]
pub struct Stored {
    /// `sub`, else `id`.
    pub subject: Option<String>,
    /// `exp`, Unix seconds.
    pub expires_at: i64,
    /// Whether the signature was checked: false in a terminal where no verification
    /// key is configured (the key lives in the host's settings).
    pub signature_checked: bool,
}

/// Checks `text` and stores it in the keyring entry, checked by reading it back; a
/// failed write leaves the entry as it was and no copy anywhere (see
/// [`crate::auth::store::store_token`]). With a key configured the token must
/// verify; with none (or only a placeholder), every check but the signature is made
/// (see `docs/reference.md`, Commands: `login`).
pub fn login(config: &Config, text: &str, now: i64) -> Result<Stored, LoginError> {
    let token = Token::new(text).ok_or(LoginError::Empty)?;
    let verifier = Verifier::new(config);
    let stored = match verifier.key_error() {
        Some(e) if e.is_absent() => {
            let unsigned = verifier
                .check_unsigned(&token, TokenSourceKind::Keyring, now)
                .map_err(LoginError::Refused)?;
            Stored {
                subject: unsigned.subject,
                expires_at: unsigned.expires_at,
                signature_checked: false,
            }
        }
        Some(e) => return Err(LoginError::Setup(e.clone())),
        None => {
            let (ctx, _) = verifier
                .verify(&token, TokenSourceKind::Keyring, now)
                .map_err(LoginError::Refused)?;
            Stored {
                subject: ctx.subject,
                expires_at: ctx.expires_at,
                signature_checked: true,
            }
        }
    };
    write_entry(&config.keyring_service, &config.keyring_user, &token)?;
    Ok(stored)
}

/// Reads a token from `reader`, at most [`MAX_LOGIN_BYTES`]: a larger input (a big
/// file, `/dev/zero`) is refused after that many bytes, never read to its end.
pub fn read_token(reader: impl std::io::Read) -> Result<String, ReadTokenError> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    reader
        .take(MAX_LOGIN_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadTokenError::Io)?;
    if bytes.len() as u64 > MAX_LOGIN_BYTES {
        return Err(ReadTokenError::TooLarge);
    }
    String::from_utf8(bytes).map_err(|_| ReadTokenError::NotText)
}

/// Why no token could be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadTokenError {
    /// Reading failed.
    #[error("{0}")]
    Io(#[source] std::io::Error),
    /// More than 16 KiB.
    #[error("it is larger than 16 KiB, the largest token accepted (token_too_large)")]
    TooLarge,
    /// Not UTF-8.
    #[error("it is not text (UTF-8)")]
    NotText,
}

/// Deletes the keyring entry; `Ok(false)` when there was none.
pub fn logout(config: &Config) -> Result<bool, KeyringError> {
    delete_entry(&config.keyring_service, &config.keyring_user)
}

/// The hosts `config` knows (docs/reference.md, Commands); `claude` is Claude Desktop.
pub const HOSTS: &[&str] = &[
    "claude-desktop",
    "claude",
    "claude-code",
    "vscode",
    "cursor",
    "gemini",
];

/// Where each host keeps its MCP configuration, for the message printed with the snippet.
pub fn host_config_path(host: &str) -> &'static str {
    match host {
        "claude-desktop" | "claude" => {
            "Add this to Claude Desktop's ~/Library/Application Support/Claude/claude_desktop_config.json (macOS) or %APPDATA%\\Claude\\claude_desktop_config.json (Windows), then restart Claude Desktop."
        }
        "claude-code" => {
            "Run this command (add --scope user before the name to use the server in every project); `claude mcp list` then shows it connected."
        }
        "vscode" => {
            "Add this to .vscode/mcp.json in the workspace, or to the user-level mcp.json (MCP: Open User Configuration)."
        }
        "cursor" => "Add this to ~/.cursor/mcp.json, or to .cursor/mcp.json in the project.",
        "gemini" => {
            "Merge this into ~/.gemini/settings.json (every project) or .gemini/settings.json (this project). Gemini CLI starts MCP servers only in a trusted folder: trust it when asked (or list it in ~/.gemini/trustedFolders.json); elsewhere `gemini mcp list` shows the server as Disabled."
        }
        _ => "",
    }
}

/// The environment a host should pass: the verification settings in force now, with a
/// placeholder instead of a shared secret (a snippet is never a place for secrets).
fn server_env(config: &Config) -> Map<String, Value> {
    let mut env = Map::new();
    match &config.key {
        KeyConfig::Placeholder { variable, value } => {
            env.insert((*variable).into(), json!(value));
        }
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
        ("QUILT_MCP_JWT_ISSUER", config.issuer.as_deref()),
        ("QUILT_REGISTRY_URL", config.registry_url.as_deref()),
        ("QUILT_CATALOG_URL", config.catalog_url.as_deref()),
        ("AWS_ENDPOINT_URL", config.endpoint_url.as_deref()),
        ("AWS_ENDPOINT_URL_S3", config.endpoint_url_s3.as_deref()),
        ("AWS_ENDPOINT_URL_STS", config.endpoint_url_sts.as_deref()),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            // A user name and password in a URL are secrets: the snippet gets a
            // placeholder for them.
            env.insert(name.into(), json!(without_userinfo(value)));
        }
    }
    if config.s3_force_path_style {
        env.insert("QUILT_MCP_S3_FORCE_PATH_STYLE".into(), json!("true"));
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
    if config.read_only {
        env.insert("QUILT_MCP_READ_ONLY".into(), json!("true"));
    }
    if config.toolsets != crate::config::Toolsets::ALL {
        env.insert("QUILT_MCP_TOOLSETS".into(), json!(config.toolsets.names()));
    }
    if let Some(dir) = &config.log_dir {
        env.insert("QUILT_MCP_LOG_DIR".into(), json!(dir.display().to_string()));
    }
    env
}

/// `url` with any user name and password replaced by a placeholder (`config`
/// prints no secret).
pub fn without_userinfo(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!(
            "{}<user:password>@{}",
            &url[..scheme_end + 3],
            &rest[at + 1..]
        ),
        None => url.to_owned(),
    }
}

/// Whether `url` carries a user name or password.
pub fn has_userinfo(url: &str) -> bool {
    without_userinfo(url) != url
}

/// The id of VS Code's password prompt for the token.
const VSCODE_TOKEN_INPUT: &str = "quilt-token";

/// What `config HOST` prints: a JSON document, or a command line to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostConfig {
    /// JSON for the host's configuration file.
    Json(Value),
    /// A shell command line (Claude Code's `claude mcp add …`).
    Command(String),
}

/// The configuration for `host`, running `binary` (an absolute path) with the settings
/// in force. No secret: the shared secret is a placeholder and the token is left to
/// the keyring (`quilt-mcp login`), except that VS Code, when `token_stored` is false,
/// prompts for it (a password input). `json` asks Claude Code for the object that
/// `claude mcp add-json` takes instead of a command line.
pub fn host_config(
    host: &str,
    binary: &Path,
    config: &Config,
    token_stored: bool,
    json: bool,
) -> Option<HostConfig> {
    let command = binary.display().to_string();
    let env = server_env(config);
    let stdio = |env: Map<String, Value>| json!({"type": "stdio", "command": command, "args": [], "env": env});
    let desktop = || json!({"mcpServers": {"quilt": {"command": command, "args": [], "env": env}}});
    Some(match host {
        "claude-desktop" | "claude" | "cursor" | "gemini" => HostConfig::Json(desktop()),
        "claude-code" if json => HostConfig::Json(stdio(env.clone())),
        "claude-code" => {
            // The name comes first: `-e` takes several values and would swallow it.
            let mut line = String::from("claude mcp add quilt");
            for (name, value) in &env {
                let value = value.as_str().unwrap_or_default();
                line.push_str(" -e ");
                line.push_str(&shell_quote(&format!("{name}={value}")));
            }
            line.push_str(" -- ");
            line.push_str(&shell_quote(&command));
            HostConfig::Command(line)
        }
        "vscode" => {
            let mut env = env.clone();
            let mut document = Map::new();
            if !token_stored {
                env.insert(
                    "QUILT_MCP_TOKEN".into(),
                    json!(format!("${{input:{VSCODE_TOKEN_INPUT}}}")),
                );
                document.insert(
                    "inputs".into(),
                    json!([{
                        "type": "promptString",
                        "id": VSCODE_TOKEN_INPUT,
                        "description": "Quilt token (your enhanced Quilt JWT); leave empty to use the one `quilt-mcp login` stored",
                        "password": true,
                    }]),
                );
            }
            document.insert("servers".into(), json!({"quilt": stdio(env)}));
            HostConfig::Json(Value::Object(document))
        }
        _ => return None,
    })
}

/// `text` as one POSIX shell word: bare when it is plainly safe, else single-quoted.
fn shell_quote(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b));
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Config {
        Config::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    const SETTINGS: &[(&str, &str)] = &[
        ("QUILT_MCP_JWT_SECRET", "s3cret"),
        ("QUILT_MCP_JWT_AUDIENCE", "aud-x"),
        ("QUILT_MCP_JWT_ISSUER", "https://issuer.example"),
        ("QUILT_CATALOG_URL", "https://catalog.example"),
        ("QUILT_REGISTRY_URL", "https://registry.example"),
        ("QUILT_MCP_READ_ONLY", "true"),
        ("QUILT_MCP_TOOLSETS", "packages, buckets"),
        ("QUILT_MCP_LOG_DIR", "/var/log/quilt mcp"),
    ];

    fn json(host: &str, token_stored: bool) -> Value {
        let binary = Path::new("/opt/quilt/bin/quilt-mcp");
        match host_config(host, binary, &config(SETTINGS), token_stored, false).unwrap() {
            HostConfig::Json(value) => value,
            HostConfig::Command(line) => panic!("{host}: a command line: {line}"),
        }
    }

    /// Every setting in force is carried, the secret only as a placeholder.
    fn assert_env(env: &Value) {
        assert_eq!(
            env["QUILT_MCP_JWT_SECRET"],
            "<the catalog's JWT signing secret>"
        );
        assert_eq!(env["QUILT_MCP_JWT_AUDIENCE"], "aud-x");
        assert_eq!(env["QUILT_MCP_JWT_ISSUER"], "https://issuer.example");
        assert_eq!(env["QUILT_CATALOG_URL"], "https://catalog.example");
        assert_eq!(env["QUILT_REGISTRY_URL"], "https://registry.example");
        assert_eq!(env["QUILT_MCP_READ_ONLY"], "true");
        assert_eq!(env["QUILT_MCP_TOOLSETS"], "buckets,packages");
        assert_eq!(env["QUILT_MCP_LOG_DIR"], "/var/log/quilt mcp");
        assert!(!env.to_string().contains("s3cret"));
    }

    #[test]
    fn desktop_style_hosts_get_mcp_servers() {
        for host in ["claude-desktop", "claude", "cursor", "gemini"] {
            let value = json(host, false);
            let server = &value["mcpServers"]["quilt"];
            assert_eq!(server["command"], "/opt/quilt/bin/quilt-mcp", "{host}");
            assert_eq!(server["args"], json!([]), "{host}");
            assert_env(&server["env"]);
            assert!(server["env"].get("QUILT_MCP_TOKEN").is_none(), "{host}");
            assert_eq!(value.as_object().unwrap().len(), 1, "{host}");
        }
    }

    #[test]
    fn vscode_gets_servers_and_a_password_prompt_unless_a_token_is_stored() {
        let value = json("vscode", false);
        let server = &value["servers"]["quilt"];
        assert_eq!(server["type"], "stdio");
        assert_eq!(server["command"], "/opt/quilt/bin/quilt-mcp");
        assert_env(&server["env"]);
        assert_eq!(server["env"]["QUILT_MCP_TOKEN"], "${input:quilt-token}");
        let input = &value["inputs"][0];
        assert_eq!(
            (&input["type"], &input["id"], &input["password"]),
            (&json!("promptString"), &json!("quilt-token"), &json!(true))
        );
        let stored = json("vscode", true);
        assert!(stored.get("inputs").is_none());
        assert!(
            stored["servers"]["quilt"]["env"]
                .get("QUILT_MCP_TOKEN")
                .is_none()
        );
    }

    #[test]
    fn claude_code_gets_a_runnable_command_line_or_the_add_json_object() {
        let binary = Path::new("/opt/my tools/quilt-mcp");
        let Some(HostConfig::Command(line)) =
            host_config("claude-code", binary, &config(SETTINGS), false, false)
        else {
            panic!("no command line");
        };
        // The name before `-e`, which takes several values; the binary after `--`.
        assert!(line.starts_with("claude mcp add quilt -e "), "{line}");
        assert!(line.ends_with(" -- '/opt/my tools/quilt-mcp'"), "{line}");
        assert!(
            line.contains(" -e 'QUILT_MCP_JWT_SECRET=<the catalog'\\''s JWT signing secret>'"),
            "{line}"
        );
        assert!(line.contains(" -e QUILT_MCP_READ_ONLY=true"), "{line}");
        assert!(
            line.contains(" -e 'QUILT_MCP_LOG_DIR=/var/log/quilt mcp'"),
            "{line}"
        );
        let Some(HostConfig::Json(object)) =
            host_config("claude-code", binary, &config(SETTINGS), false, true)
        else {
            panic!("no JSON");
        };
        assert_eq!(object["type"], "stdio");
        assert_eq!(object["command"], "/opt/my tools/quilt-mcp");
        assert_env(&object["env"]);
        assert!(host_config("emacs", binary, &config(SETTINGS), false, false).is_none());
    }

    #[test]
    fn urls_lose_their_userinfo_and_endpoints_are_carried() {
        for (url, expected) in [
            ("https://registry.example", "https://registry.example"),
            (
                "https://user:pw@registry.example/x",
                "https://<user:password>@registry.example/x",
            ),
            (
                "https://u:p@ss@host:8443?q=a@b",
                "https://<user:password>@host:8443?q=a@b",
            ),
            ("https://host/path@x", "https://host/path@x"),
            ("not a url", "not a url"),
        ] {
            assert_eq!(without_userinfo(url), expected, "{url}");
        }
        let config = config(&[
            (
                "QUILT_REGISTRY_URL",
                "https://alice:hunter2@registry.example",
            ),
            ("QUILT_CATALOG_URL", "https://bob:s3cret@catalog.example"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
            ("AWS_ENDPOINT_URL_S3", "http://key:secret@127.0.0.1:9001"),
            ("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9002"),
            ("QUILT_MCP_S3_FORCE_PATH_STYLE", "true"),
        ]);
        let env = server_env(&config);
        let text = Value::Object(env.clone()).to_string();
        for secret in ["hunter2", "s3cret", "alice", "bob", "key:secret"] {
            assert!(!text.contains(secret), "{secret}: {text}");
        }
        assert_eq!(
            env["QUILT_REGISTRY_URL"],
            "https://<user:password>@registry.example"
        );
        assert_eq!(env["AWS_ENDPOINT_URL"], "http://127.0.0.1:9000");
        assert_eq!(env["AWS_ENDPOINT_URL_STS"], "http://127.0.0.1:9002");
        assert_eq!(env["QUILT_MCP_S3_FORCE_PATH_STYLE"], "true");
    }

    #[test]
    fn a_token_is_read_to_16_kib_at_most() {
        assert_eq!(read_token("a.b.c\n".as_bytes()).unwrap(), "a.b.c\n");
        let exact = "x".repeat(16 * 1024);
        assert_eq!(read_token(exact.as_bytes()).unwrap().len(), 16 * 1024);
        let endless = std::io::repeat(0);
        assert!(matches!(read_token(endless), Err(ReadTokenError::TooLarge)));
        assert!(matches!(
            read_token(&[0xff, 0xfe][..]),
            Err(ReadTokenError::NotText)
        ));
    }

    #[test]
    fn shell_words_survive_quoting() {
        assert_eq!(shell_quote("a=b/c"), "a=b/c");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("$HOME"), "'$HOME'");
        assert_eq!(shell_quote(""), "''");
    }
}
