//! Turning a [`CredentialSource`] into AWS credentials: inline credentials as they
//! are, `AssumeRoleWithWebIdentity` with the JWT (unsigned: no AWS credentials are
//! needed or used), or the Quilt registry's exchange. Never the environment.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aws_sdk_sts::error::ProvideErrorMetadata as _;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

use crate::auth::CredentialSource;
use crate::auth::{AuthContext, AuthFailure, Reason};
use crate::error::{ErrorCode, ToolError, chain, scrub};
use crate::registry::{RegistryClient, RegistryError};

/// Temporary (or inline) AWS credentials. Secrets redact themselves.
#[derive(Clone)]
pub(crate) struct AwsCredentials {
    /// Access key id.
    pub access_key_id: SecretString,
    /// Secret access key.
    pub secret_access_key: SecretString,
    /// Session token, for temporary credentials.
    pub session_token: Option<SecretString>,
    /// Expiry, Unix seconds.
    pub expires_at: Option<i64>,
    /// The region to use.
    pub region: String,
    /// `inline`, `web_identity` or `registry`.
    pub source: &'static str,
}

impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("source", &self.source)
            .field("expires_at", &self.expires_at)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// Why credentials could not be had.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum CredentialError {
    /// An authorization failure: -32001 with its reason.
    #[error("{0}")]
    Unauthorized(AuthFailure),
    /// The exchange failed for another reason: a tool error.
    #[error("{0}")]
    Tool(ToolError),
}

/// Everything needed to reach STS and the registry. The STS client is built on first
/// use, so that start-up loads no TLS roots and makes no connection.
#[derive(Debug)]
pub(crate) struct Exchanges {
    sts_config: aws_sdk_sts::Config,
    sts: OnceLock<aws_sdk_sts::Client>,
    registry: Option<Arc<RegistryClient>>,
}

impl Exchanges {
    /// Exchanges through STS configured by `sts_config` (no credentials provider: the
    /// call is unsigned) and the Quilt registry, when one is configured.
    pub(crate) fn new(
        sts_config: aws_sdk_sts::Config,
        registry: Option<Arc<RegistryClient>>,
    ) -> Exchanges {
        Exchanges {
            sts_config,
            sts: OnceLock::new(),
            registry,
        }
    }

    /// The STS client.
    pub(crate) fn sts(&self) -> &aws_sdk_sts::Client {
        self.sts
            .get_or_init(|| aws_sdk_sts::Client::from_conf(self.sts_config.clone()))
    }

    /// The Quilt registry, when `QUILT_REGISTRY_URL` is set.
    pub(crate) fn registry(&self) -> Option<&Arc<RegistryClient>> {
        self.registry.as_ref()
    }
}

/// STS `RoleSessionName`: the characters STS allows (`[\w+=,.@-]`), 2 to 64 of them,
/// derived from the token's subject.
pub(crate) fn session_name(subject: Option<&str>) -> String {
    let cleaned: String = subject
        .unwrap_or("")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if cleaned.len() < 2 {
        "quilt-mcp".to_owned()
    } else {
        cleaned
    }
}

/// `DurationSeconds`: the token's remaining life, at least 900 and at most 3600.
pub(crate) fn session_duration(token_expires_at: i64, now: i64) -> i32 {
    i32::try_from((token_expires_at - now).clamp(900, 3600)).unwrap_or(900)
}

/// Resolves the caller's credentials from its source (no cache; see
/// [`super::cache`]).
pub(crate) async fn resolve(
    ctx: &AuthContext,
    exchanges: &Exchanges,
    default_region: &str,
    now: i64,
) -> Result<AwsCredentials, CredentialError> {
    let source = ctx.token_info.source;
    match &ctx.aws {
        CredentialSource::Inline(inline) => {
            if let Some(exp) = inline.expires_at
                && exp <= now
            {
                return Err(CredentialError::Unauthorized(AuthFailure::new(
                    Reason::AwsCredentialsExpired,
                    format!(
                        "the AWS credentials in the token expired at {}",
                        crate::time::human(exp)
                    ),
                    Some(source),
                )));
            }
            Ok(AwsCredentials {
                access_key_id: inline.access_key_id.clone(),
                secret_access_key: inline.secret_access_key.clone(),
                session_token: inline.session_token.clone(),
                expires_at: inline.expires_at,
                region: inline
                    .region
                    .clone()
                    .unwrap_or_else(|| default_region.to_owned()),
                source: "inline",
            })
        }
        CredentialSource::WebIdentity { role_arn } => {
            web_identity(ctx, role_arn, exchanges, default_region, now).await
        }
        CredentialSource::Registry { .. } => match exchanges.registry() {
            Some(client) => registry(ctx, client, default_region).await,
            None => Err(CredentialError::Tool(ToolError::new(
                ErrorCode::InternalError,
                "the token names the registry exchange but no registry client was built",
            ))),
        },
        CredentialSource::None => Err(CredentialError::Unauthorized(AuthFailure::new(
            Reason::NoAwsCredentials,
            "the token names no AWS credential source (no aws_credentials, no IAM role ARN) and QUILT_REGISTRY_URL is not set",
            Some(source),
        ))),
    }
}

async fn web_identity(
    ctx: &AuthContext,
    role_arn: &str,
    exchanges: &Exchanges,
    region: &str,
    now: i64,
) -> Result<AwsCredentials, CredentialError> {
    let answer = exchanges
        .sts()
        .assume_role_with_web_identity()
        .role_arn(role_arn)
        .web_identity_token(ctx.token.expose())
        .role_session_name(session_name(ctx.subject.as_deref()))
        .duration_seconds(session_duration(ctx.expires_at, now))
        .send()
        .await;
    let output = match answer {
        Ok(output) => output,
        Err(error) => {
            let code = scrub(error.code().unwrap_or(""));
            let detail = error
                .message()
                .map(|m| format!(": {}", scrub(m)))
                .unwrap_or_default();
            let tool_error = match code.as_str() {
                "AccessDenied"
                | "InvalidIdentityToken"
                | "ExpiredTokenException"
                | "IDPRejectedClaim" => ToolError::new(
                    ErrorCode::AccessDenied,
                    format!(
                        "STS refused AssumeRoleWithWebIdentity on {role_arn} ({code}{detail}); the role's trust policy must accept this token's issuer and audience"
                    ),
                ),
                "" => ToolError::retryable(
                    ErrorCode::UpstreamError,
                    format!(
                        "STS could not be reached for AssumeRoleWithWebIdentity: {}",
                        chain(&error)
                    ),
                ),
                _ => ToolError {
                    code: ErrorCode::UpstreamError,
                    message: format!(
                        "STS failed AssumeRoleWithWebIdentity on {role_arn} ({code}{detail})"
                    ),
                    retryable: code.contains("Throttl") || code == "IDPCommunicationError",
                    unauthorized: None,
                },
            };
            return Err(CredentialError::Tool(tool_error));
        }
    };
    let Some(creds) = output.credentials else {
        return Err(CredentialError::Tool(ToolError::retryable(
            ErrorCode::UpstreamError,
            "STS answered AssumeRoleWithWebIdentity without credentials",
        )));
    };
    Ok(AwsCredentials {
        access_key_id: SecretString::from(creds.access_key_id),
        secret_access_key: SecretString::from(creds.secret_access_key),
        session_token: Some(SecretString::from(creds.session_token)),
        expires_at: Some(creds.expiration.secs()),
        region: region.to_owned(),
        source: "web_identity",
    })
}

/// The most bytes of a registry's credential answer that are read.
pub(crate) const MAX_REGISTRY_ANSWER: usize = 64 * 1024;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RegistryCredentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
    expiration: Option<String>,
}

/// The registry's credential exchange, with the caller's registry token.
async fn registry(
    ctx: &AuthContext,
    client: &RegistryClient,
    region: &str,
) -> Result<AwsCredentials, CredentialError> {
    let base = client.shown();
    let upstream = |message: String| {
        CredentialError::Tool(ToolError::retryable(ErrorCode::UpstreamError, message))
    };
    let body = client
        .get(
            ctx,
            "/api/auth/get_credentials",
            MAX_REGISTRY_ANSWER,
            Duration::from_secs(15),
        )
        .await
        .map_err(|error| match error.rejection(ctx.token_info.source) {
            Some(failure) => CredentialError::Unauthorized(failure),
            None => match error {
                RegistryError::TooLarge { .. } => CredentialError::Tool(ToolError::new(
                    ErrorCode::UpstreamError,
                    format!(
                        "the Quilt registry at {base} answered the credential exchange with more than {} KiB: too large for credentials",
                        MAX_REGISTRY_ANSWER / 1024
                    ),
                )),
                RegistryError::Status { status, .. } => CredentialError::Tool(ToolError {
                    code: ErrorCode::UpstreamError,
                    message: format!(
                        "the Quilt registry at {base} answered HTTP {status} to the credential exchange"
                    ),
                    retryable: status == 429 || status >= 500,
                    unauthorized: None,
                }),
                other => upstream(other.to_string()),
            },
        })?;
    let creds: RegistryCredentials = serde_json::from_slice(&body).map_err(|_| {
        upstream(format!(
            "the Quilt registry at {base} answered without AccessKeyId/SecretAccessKey"
        ))
    })?;
    let expires_at = match creds.expiration.as_deref() {
        None => None,
        Some(text) => Some(crate::time::parse_rfc3339(text).ok_or_else(|| {
            upstream("the Quilt registry's Expiration is not an RFC 3339 time".to_owned())
        })?),
    };
    Ok(AwsCredentials {
        access_key_id: SecretString::from(creds.access_key_id),
        secret_access_key: SecretString::from(creds.secret_access_key),
        session_token: creds.session_token.map(SecretString::from),
        expires_at,
        region: region.to_owned(),
        source: "registry",
    })
}

impl AwsCredentials {
    /// The SDK's credentials value.
    pub(crate) fn to_sdk(&self) -> aws_sdk_s3::config::Credentials {
        aws_sdk_s3::config::Credentials::new(
            self.access_key_id.expose_secret(),
            self.secret_access_key.expose_secret(),
            self.session_token
                .as_ref()
                .map(|t| t.expose_secret().to_owned()),
            self.expires_at
                .and_then(|e| u64::try_from(e).ok())
                .map(|e| std::time::UNIX_EPOCH + Duration::from_secs(e)),
            "quilt-mcp",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names_follow_sts_rules() {
        let cases = [
            (Some("alice@example.com"), "alice@example.com"),
            (Some("Alice Smith/ops"), "Alice-Smith-ops"),
            (Some("x"), "quilt-mcp"),
            (None, "quilt-mcp"),
            (Some("ünï"), "-n-"),
        ];
        for (sub, expected) in cases {
            assert_eq!(session_name(sub), expected, "{sub:?}");
        }
        assert_eq!(session_name(Some(&"a".repeat(100))).len(), 64);
    }

    #[test]
    fn durations_are_clamped_to_the_token_life() {
        assert_eq!(session_duration(1000 + 100, 1000), 900);
        assert_eq!(session_duration(1000 + 1800, 1000), 1800);
        assert_eq!(session_duration(1000 + 86_400, 1000), 3600);
    }
}
