//! `quilt-mcp status` (see `docs/reference.md`, Commands): a diagnosis of the
//! configuration without serving. Exit 0 when the token verifies, 1 when it is
//! missing or fails, 2 when the configuration itself is wrong. Reads the keyring at
//! most; makes no network call.
//!
//! In a terminal where no verification key is configured (it lives in the host's
//! settings), it makes every check but the signature and says which it made and that
//! only the server can check the signature.

use std::path::PathBuf;

use serde::Serialize;
use serde_json::{Value, json};

use crate::auth::verify::Verifier;
use crate::auth::{AuthContext, AuthFailure, Token, TokenSourceKind};
use crate::config::Config;

/// The diagnosis.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// The crate's version.
    pub version: &'static str,
    /// `ok`, `token_error` or `config_error`.
    pub status: &'static str,
    /// The exit code (0, 1, 2).
    pub exit_code: i32,
    /// Facts about the token.
    pub token: Value,
    /// The verification setup.
    pub verification: Value,
    /// The decompressed claims, when the token verified (or, without a key, passed
    /// every check but the signature: then `signature_checked` is false).
    pub claims: Option<Value>,
    /// Where AWS credentials would come from, when the token verified.
    pub aws: Option<Value>,
    /// Problems with the configuration.
    pub config_errors: Vec<String>,
    /// Where the JSON log files go (none with `QUILT_MCP_LOG_TARGET=stderr`).
    pub log_dir: Option<PathBuf>,
    /// `file` or `stderr`.
    pub log_target: &'static str,
    /// Whether write tools are hidden.
    pub read_only: bool,
}

/// Diagnoses `config`, reading the token the way a stdio session would.
pub async fn diagnose(config: &Config, now: i64) -> StatusReport {
    let verifier = Verifier::new(config);
    let provider = crate::auth::source::TokenProvider::new(config);
    let (service, user) = provider.keyring_entry();
    let keyring_entry = format!("{service}/{user}");
    let looked_up = provider.lookup(now).await;
    let keyring_state = match &looked_up {
        Ok((_, TokenSourceKind::Keyring)) => Some("ok"),
        Ok(_) => None,
        Err(missing) => Some(missing.keyring_state),
    };
    let found = looked_up.map_err(|missing| missing.failure);
    let verified: Option<Result<(AuthContext, _), AuthFailure>> = match &found {
        Ok((token, source)) => Some(verifier.verify(token, *source, now)),
        Err(_) => None,
    };
    // Without a key here, the checks that need none.
    let unsigned = match (&found, verifier.key_error()) {
        (Ok((token, source)), Some(e)) if e.is_absent() => {
            Some(verifier.check_unsigned(token, *source, now))
        }
        _ => None,
    };

    let mut config_errors: Vec<String> = config.errors.iter().map(ToString::to_string).collect();
    if let Some(e) = verifier.key_error() {
        config_errors.push(e.to_string());
    }

    let token_value = |token: Option<&Token>,
                       source: Option<TokenSourceKind>,
                       failure: Option<&AuthFailure>| {
        json!({
            "present": token.is_some(),
            "source": source.map(TokenSourceKind::as_str),
            "keyring_entry": keyring_entry,
            "keyring_store": crate::auth::store::store_in_use().ok(),
            "keyring_bus": crate::auth::store::choice().ok().and_then(|c| c.passed_over.as_ref()).map(|_| crate::auth::store::session_bus()),
            "keyring_state": keyring_state,
            "fingerprint": token.map(Token::fingerprint),
            "status": failure.map_or("ok", |f| f.reason.code()),
            "message": failure.map(AuthFailure::message),
            "hint": failure.map(|f| f.hint.clone()),
        })
    };
    let (token, claims, aws, token_ok) = match (&found, verified) {
        (Err(failure), _) => (token_value(None, None, Some(failure)), None, None, false),
        (Ok((token, source)), Some(Err(failure))) => {
            let mut value = token_value(Some(token), Some(*source), Some(&failure));
            let mut claims = None;
            match &unsigned {
                Some(Ok(checked)) => {
                    value["checked_here"] = json!({"status": "ok", "signature_checked": false});
                    claims = Some(json!({
                        "signature_checked": false,
                        "subject": checked.subject,
                        "expires_at": crate::time::rfc3339(checked.expires_at),
                        "scope": checked.claims.scope,
                        "level": checked.claims.level,
                        "roles": checked.claims.roles,
                        "buckets": checked.claims.buckets,
                        "permissions": checked.claims.permissions,
                    }));
                }
                Some(Err(problem)) => {
                    value["checked_here"] = json!({
                        "status": problem.reason.code(),
                        "message": problem.message(),
                        "signature_checked": false,
                    });
                }
                None => {}
            }
            (value, claims, None, false)
        }
        (Ok((token, source)), Some(Ok((ctx, notes)))) => {
            let mut value = token_value(Some(token), Some(*source), None);
            value["alg"] = json!(ctx.token_info.alg);
            value["kid"] = json!(ctx.token_info.kid);
            let claims = json!({
                "subject": ctx.subject,
                "issuer": ctx.issuer,
                "audience": ctx.audience,
                "expires_at": crate::time::rfc3339(ctx.expires_at),
                "signature_checked": true,
                "scope": ctx.claims.scope,
                "level": ctx.claims.level,
                "roles": ctx.claims.roles,
                "buckets": ctx.claims.buckets,
                "permissions": ctx.claims.permissions,
                "warnings": notes.warnings,
            });
            let aws = serde_json::to_value(ctx.aws.summary(&config.aws_region)).ok();
            (value, Some(claims), aws, true)
        }
        (Ok(_), None) => (Value::Null, None, None, false),
    };

    let (status, exit_code) = if !config_errors.is_empty() {
        ("config_error", 2)
    } else if token_ok {
        ("ok", 0)
    } else {
        ("token_error", 1)
    };
    StatusReport {
        version: crate::version::VERSION,
        status,
        exit_code,
        token,
        verification: json!({
            "key_kind": verifier.key_kind(),
            "audience": config.audience,
            "issuer": config.issuer,
            "leeway_secs": config.leeway_secs,
        }),
        claims,
        aws,
        config_errors,
        log_dir: match config.log_target {
            crate::config::LogTarget::File => crate::logging::log_dir(config),
            crate::config::LogTarget::Stderr => None,
        },
        log_target: match config.log_target {
            crate::config::LogTarget::File => "file",
            crate::config::LogTarget::Stderr => "stderr",
        },
        read_only: config.read_only,
    }
}

impl StatusReport {
    /// A plain-text rendering for people.
    pub fn to_text(&self) -> String {
        // Claims come from the token: shown with control characters escaped.
        let s = |v: &Value| -> String {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Null => "-".to_owned(),
                Value::Array(items) if items.is_empty() => "(none)".to_owned(),
                Value::Array(items) => items
                    .iter()
                    .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join(", "),
                other => other.to_string(),
            };
            crate::auth::printable(&text).into_owned()
        };
        let mut out = format!("quilt-mcp {}\n\n", self.version);
        out.push_str(&format!(
            "Token:         {}\n",
            if self.token["present"] == json!(true) {
                let keyring = self.token["source"] == json!("keyring");
                let source = match self.token["keyring_store"].as_str().filter(|_| keyring) {
                    Some(store) => format!("keyring ({store})"),
                    None => s(&self.token["source"]),
                };
                format!("{source} ({})", s(&self.token["fingerprint"]))
            } else {
                // The one sentence that says why and what to do (the failure's hint).
                format!("none: {}", s(&self.token["hint"]))
            }
        ));
        let checked_here = &self.token["checked_here"];
        if checked_here.is_object() {
            out.push_str(
                "Verification:  not possible here: no verification key is configured in this shell (it belongs in the MCP host's settings)\n",
            );
            if checked_here["status"] == json!("ok") {
                out.push_str(
                    "               Checked here: structure, expiry, audience, issuer: ok\n",
                );
            } else {
                out.push_str(&format!(
                    "               Checked here: structure, expiry, audience, issuer: {}\n               {}\n",
                    s(&checked_here["status"]),
                    s(&checked_here["message"])
                ));
            }
            out.push_str(
                "               The signature is checked only by the server, with the key in the host's settings: its answer is the token line the host shows (ask the agent \"is my Quilt token OK?\") and the WARN line in the host's log of the server's stderr\n",
            );
        } else {
            out.push_str(&format!(
                "Verification:  {} (key: {})\n",
                s(&self.token["status"]),
                s(&self.verification["key_kind"])
            ));
            // A missing token's sentence is on the Token line already.
            if let Some(message) = self.token["message"]
                .as_str()
                .filter(|_| self.token["present"] == json!(true))
            {
                out.push_str(&format!(
                    "               {}\n",
                    crate::auth::printable(message)
                ));
            }
        }
        if let Some(claims) = &self.claims {
            out.push_str(&format!("Subject:       {}\n", s(&claims["subject"])));
            out.push_str(&format!("Expires:       {}\n", s(&claims["expires_at"])));
            out.push_str(&format!("Level:         {}\n", s(&claims["level"])));
            out.push_str(&format!("Buckets:       {}\n", s(&claims["buckets"])));
            out.push_str(&format!("Permissions:   {}\n", s(&claims["permissions"])));
            out.push_str(&format!("Roles:         {}\n", s(&claims["roles"])));
        }
        if let Some(aws) = &self.aws {
            let role = aws["role_arn"]
                .as_str()
                .map(|r| format!(" ({})", crate::auth::printable(r)))
                .unwrap_or_default();
            out.push_str(&format!(
                "AWS:           {}{role}, region {}\n",
                s(&aws["source"]),
                s(&aws["region"])
            ));
        }
        for problem in &self.config_errors {
            out.push_str(&format!(
                "Config error:  {}\n",
                crate::auth::printable(problem)
            ));
        }
        out.push_str(&format!(
            "Logs:          {}\n",
            match (&self.log_dir, self.log_target) {
                (_, "stderr") => "stderr (QUILT_MCP_LOG_TARGET)".to_owned(),
                (Some(dir), _) => dir.display().to_string(),
                (None, _) => "-".to_owned(),
            }
        ));
        if self.read_only {
            out.push_str("Read-only:     yes (write tools hidden)\n");
        }
        out
    }
}
