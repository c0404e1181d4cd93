//! `quilt-mcp status`: a diagnosis of the configuration without serving. Exit 0 when
//! the token verifies, 1 when it is missing or fails, 2 when the configuration itself
//! is wrong. Reads the keyring at most; makes no network call.

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
    /// The decompressed claims, when the token verified.
    pub claims: Option<Value>,
    /// Where AWS credentials would come from, when the token verified.
    pub aws: Option<Value>,
    /// Problems with the configuration.
    pub config_errors: Vec<String>,
    /// Where the JSON logs go.
    pub log_dir: Option<PathBuf>,
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

    let mut config_errors: Vec<String> = config.errors.iter().map(ToString::to_string).collect();
    if let Some(e) = verifier.key_error() {
        config_errors.push(e.to_string());
    }

    let token_value =
        |token: Option<&Token>, source: Option<TokenSourceKind>, failure: Option<&AuthFailure>| {
            json!({
                "present": token.is_some(),
                "source": source.map(TokenSourceKind::as_str),
                "keyring_entry": keyring_entry,
                "keyring_store": crate::auth::source::store_in_use().ok(),
                "keyring_state": keyring_state,
                "fingerprint": token.map(Token::fingerprint),
                "status": failure.map_or("ok", |f| f.reason.code()),
                "message": failure.map(AuthFailure::message),
                "hint": failure.map(|f| f.hint.clone()),
            })
        };
    let (token, claims, aws, token_ok) = match (&found, verified) {
        (Err(failure), _) => (token_value(None, None, Some(failure)), None, None, false),
        (Ok((token, source)), Some(Err(failure))) => (
            token_value(Some(token), Some(*source), Some(&failure)),
            None,
            None,
            false,
        ),
        (Ok((token, source)), Some(Ok((ctx, notes)))) => {
            let mut value = token_value(Some(token), Some(*source), None);
            value["alg"] = json!(ctx.token_info.alg);
            value["kid"] = json!(ctx.token_info.kid);
            let claims = json!({
                "subject": ctx.subject,
                "issuer": ctx.issuer,
                "audience": ctx.audience,
                "expires_at": crate::time::rfc3339(ctx.expires_at),
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
        log_dir: crate::logging::log_dir(config),
        read_only: config.read_only,
    }
}

impl StatusReport {
    /// A plain-text rendering for people.
    pub fn to_text(&self) -> String {
        let s = |v: &Value| match v {
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
            out.push_str(&format!("               {message}\n"));
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
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            out.push_str(&format!(
                "AWS:           {}{role}, region {}\n",
                s(&aws["source"]),
                s(&aws["region"])
            ));
        }
        for problem in &self.config_errors {
            out.push_str(&format!("Config error:  {problem}\n"));
        }
        out.push_str(&format!(
            "Logs:          {}\n",
            self.log_dir
                .as_ref()
                .map_or_else(|| "-".to_owned(), |d| d.display().to_string())
        ));
        if self.read_only {
            out.push_str("Read-only:     yes (write tools hidden)\n");
        }
        out
    }
}
