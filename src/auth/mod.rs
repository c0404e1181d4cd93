//! Authentication: the token, where it comes from, how it is verified, and what it
//! grants.
//!
//! - [`token`]: the [`Token`] secret type.
//! - [`source`]: environment and keyring token sources.
//! - [`store`]: the OS keyring: the store in use and the entry (with [`keyutils`], the
//!   kernel store, on Linux).
//! - [`verify`]: token verification (docs/reference.md, Errors), yielding an [`AuthContext`] or an [`AuthFailure`].
//! - [`verified`]: verified bearer tokens remembered (HTTP), bounded, times checked on every use.
//! - [`claims`]: decompression of the Quilt claims.
//! - [`aws_source`]: which AWS credential source the claims name (docs/reference.md, Settings).

pub mod aws_source;
pub mod claims;
pub mod keys;
#[cfg(target_os = "linux")]
pub mod keyutils;
pub mod source;
pub mod store;
pub mod token;
pub mod verified;
pub mod verify;

use serde::Serialize;

pub use claims::QuiltClaims;
pub use token::Token;

pub use aws_source::{CredentialSource, CredentialSummary, InlineCredentials};

/// `text` as it may be shown in a line of text (the `instructions` token line,
/// `status`, messages): control characters, line and paragraph separators and
/// bidirectional or invisible format characters escaped (`\n`, `\u{1b}`, …), so that
/// a claim cannot start a new line, move the cursor or reorder what follows.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let hidden = |c: char| {
        c.is_control()
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
    };
    if !text.chars().any(hidden) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if hidden(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Where the token of a call came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TokenSourceKind {
    /// `QUILT_MCP_TOKEN`.
    Env,
    /// The OS keyring entry.
    Keyring,
    /// An HTTP `Authorization: Bearer` header.
    Http,
}

impl TokenSourceKind {
    /// `env`, `keyring` or `http`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenSourceKind::Env => "env",
            TokenSourceKind::Keyring => "keyring",
            TokenSourceKind::Http => "http",
        }
    }
}

/// Why a call is unauthorized (docs/reference.md, Errors and Settings): the `reason` of a -32001 error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    MissingToken,
    TokenTooLarge,
    MalformedToken,
    UnsupportedAlgorithm,
    CriticalHeader,
    UnknownKey,
    InvalidSignature,
    MissingClaim,
    Expired,
    NotYetValid,
    IssuedInFuture,
    WrongAudience,
    WrongIssuer,
    InvalidClaims,
    VerificationNotConfigured,
    AwsCredentialsExpired,
    NoAwsCredentials,
    RegistryRejected,
}

impl Reason {
    /// The reason code of the contract.
    pub fn code(self) -> &'static str {
        match self {
            Reason::MissingToken => "missing_token",
            Reason::TokenTooLarge => "token_too_large",
            Reason::MalformedToken => "malformed_token",
            Reason::UnsupportedAlgorithm => "unsupported_algorithm",
            Reason::CriticalHeader => "critical_header",
            Reason::UnknownKey => "unknown_key",
            Reason::InvalidSignature => "invalid_signature",
            Reason::MissingClaim => "missing_claim",
            Reason::Expired => "expired",
            Reason::NotYetValid => "not_yet_valid",
            Reason::IssuedInFuture => "issued_in_future",
            Reason::WrongAudience => "wrong_audience",
            Reason::WrongIssuer => "wrong_issuer",
            Reason::InvalidClaims => "invalid_claims",
            Reason::VerificationNotConfigured => "verification_not_configured",
            Reason::AwsCredentialsExpired => "aws_credentials_expired",
            Reason::NoAwsCredentials => "no_aws_credentials",
            Reason::RegistryRejected => "registry_rejected",
        }
    }
}

/// A refused token: the reason code, what happened, and what to do about it.
///
/// Neither text ever contains the token, a secret or key material: they are built
/// only from the reason, claim names, times and short header values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct AuthFailure {
    /// The reason code.
    pub reason: Reason,
    /// What happened, in plain words, without the `Unauthorized:` prefix.
    pub detail: String,
    /// What the user should do next.
    pub hint: String,
}

impl AuthFailure {
    /// A failure with a hint chosen for the reason and the token's source.
    pub fn new(
        reason: Reason,
        detail: impl Into<String>,
        source: Option<TokenSourceKind>,
    ) -> AuthFailure {
        AuthFailure {
            reason,
            detail: detail.into(),
            hint: hint(reason, source).to_owned(),
        }
    }

    /// The JSON-RPC error message: `Unauthorized: <detail>; <hint>`.
    pub fn message(&self) -> String {
        format!("Unauthorized: {}; {}", self.detail, self.hint)
    }

    /// What the server's operator should check, for the log: for a token refused
    /// over HTTP because of the key, the hint a stdio user would get.
    pub fn operator_hint(&self) -> &'static str {
        hint(self.reason, None)
    }
}

fn hint(reason: Reason, source: Option<TokenSourceKind>) -> &'static str {
    use Reason::*;
    let fresh = match source {
        Some(TokenSourceKind::Env) => {
            "set QUILT_MCP_TOKEN in the MCP server's settings to a fresh token from the Quilt catalog"
        }
        Some(TokenSourceKind::Http) => {
            "send a fresh token from the Quilt catalog in the Authorization: Bearer header"
        }
        Some(TokenSourceKind::Keyring) | None => {
            "run `quilt-mcp login` with a fresh token from the Quilt catalog"
        }
    };
    match reason {
        MissingToken => match source {
            Some(TokenSourceKind::Http) => "send the token in an Authorization: Bearer header",
            _ => {
                "set QUILT_MCP_TOKEN in the MCP server's settings, or run `quilt-mcp login` to store a token in the keyring"
            }
        },
        TokenTooLarge | MalformedToken | InvalidClaims => {
            "check that the whole token was copied, and ask the Quilt administrator for a valid enhanced JWT"
        }
        // A remote client cannot change the server's key: it is told that its token
        // was not accepted; the operator's hint goes to the server's log.
        UnsupportedAlgorithm | CriticalHeader | UnknownKey | InvalidSignature
            if source == Some(TokenSourceKind::Http) =>
        {
            "this server does not accept the token: send a token from the Quilt catalog this server trusts"
        }
        UnsupportedAlgorithm | CriticalHeader | UnknownKey | InvalidSignature => {
            "the token was not signed by the key this server trusts: check QUILT_MCP_JWT_SECRET, QUILT_MCP_JWT_PUBLIC_KEY or QUILT_MCP_JWKS, or get a token from the right Quilt catalog"
        }
        MissingClaim | WrongAudience | WrongIssuer => {
            "the token was not issued for this server: check QUILT_MCP_JWT_AUDIENCE and QUILT_MCP_JWT_ISSUER, or get a token from the right Quilt catalog"
        }
        Expired => fresh,
        NotYetValid | IssuedInFuture => {
            "check this machine's clock, or raise QUILT_MCP_JWT_LEEWAY_SECS"
        }
        VerificationNotConfigured => {
            "set exactly one of QUILT_MCP_JWT_SECRET, QUILT_MCP_JWT_PUBLIC_KEY or QUILT_MCP_JWKS in the MCP server's settings (the host's configuration), then restart the server"
        }
        AwsCredentialsExpired => fresh,
        NoAwsCredentials => {
            "the token carries no AWS credentials and no IAM role; set QUILT_REGISTRY_URL to exchange it at the Quilt registry, or ask the Quilt administrator for a token with a role"
        }
        RegistryRejected => fresh,
    }
}

/// Facts about the token itself (never the token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct TokenInfo {
    /// Where the token came from.
    pub source: TokenSourceKind,
    /// `sha256:` + 12 hex digits.
    pub fingerprint: String,
    /// The verified algorithm.
    pub alg: String,
    /// The `kid` header, if any.
    pub kid: Option<String>,
    /// The keyring store the token came from (`secret-service`, `keyutils`,
    /// `keychain`, `credential-manager`), for a keyring token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<&'static str>,
}

/// The verified identity and entitlements of a caller: what every tool sees.
#[derive(Debug, Clone)]
pub struct AuthContext {
    /// `sub`, else `id`.
    pub subject: Option<String>,
    /// `iss`.
    pub issuer: Option<String>,
    /// `aud` as a list.
    pub audience: Vec<String>,
    /// `iat`, Unix seconds.
    pub issued_at: Option<i64>,
    /// `exp`, Unix seconds.
    pub expires_at: i64,
    /// `nbf`, Unix seconds.
    pub not_before: Option<i64>,
    /// `jti`.
    pub jti: Option<String>,
    /// The decompressed Quilt claims.
    pub claims: QuiltClaims,
    /// Facts about the token.
    pub token_info: TokenInfo,
    /// Where AWS credentials for this caller come from.
    pub aws: CredentialSource,
    /// The token itself, for the AWS credential exchanges (docs/reference.md, Settings).
    pub token: Token,
    /// The `catalog_token` claim: the registry's own token, carried inside the JWT,
    /// which calls to the Quilt registry carry instead of the JWT (docs/reference.md,
    /// Settings). A secret like the JWT.
    pub catalog_token: Option<Token>,
}

#[cfg(test)]
impl AuthContext {
    /// A caller for unit tests: an HTTP token, `subject`, `exp` and claims as given,
    /// no AWS source.
    pub(crate) fn for_test(
        token: Token,
        subject: &str,
        expires_at: i64,
        claims: QuiltClaims,
    ) -> AuthContext {
        AuthContext {
            subject: Some(subject.to_owned()),
            issuer: None,
            audience: vec!["quilt-mcp-server".into()],
            issued_at: None,
            expires_at,
            not_before: None,
            jti: None,
            claims,
            token_info: TokenInfo {
                source: TokenSourceKind::Http,
                fingerprint: token.fingerprint(),
                alg: "HS256".into(),
                kid: None,
                store: None,
            },
            aws: CredentialSource::None,
            token,
            catalog_token: None,
        }
    }
}
