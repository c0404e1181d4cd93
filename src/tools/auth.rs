//! `auth_status`: who the token says the caller is and what it grants.

use schemars::JsonSchema;
use serde::Serialize;

use super::{Call, NoParams, Tool, ToolError, ToolInfo, Toolset};
use crate::auth::{AuthContext, CredentialSummary, TokenInfo};
use crate::time::{now_unix, rfc3339};

/// `auth_status`.
pub(crate) struct AuthStatus;

/// The structured result of `auth_status` (docs/reference.md, Results).
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct AuthStatusOutput {
    /// Always true: a call without a valid token never gets here.
    authenticated: bool,
    /// `sub` (or `id`).
    subject: Option<String>,
    /// `iss`.
    issuer: Option<String>,
    /// `aud`.
    audience: Vec<String>,
    /// `iat`, RFC 3339.
    issued_at: Option<String>,
    /// `exp`, RFC 3339.
    expires_at: Option<String>,
    /// Seconds until the token expires.
    expires_in: i64,
    /// `jti`.
    jti: Option<String>,
    /// The Quilt scope.
    scope: String,
    /// `read`, `write` or `admin`.
    level: String,
    /// The Quilt roles.
    roles: Vec<String>,
    /// The buckets granted (`*`: all).
    buckets: Vec<String>,
    /// The S3 actions granted.
    permissions: Vec<String>,
    /// Where the token came from, its fingerprint, algorithm and key id.
    token: TokenInfo,
    /// Where AWS credentials come from.
    aws: CredentialSummary,
    /// Whether the server runs in read-only mode.
    read_only: bool,
    /// Whether `search_packages` and `search_objects` are offered, and why not.
    search: SearchStatus,
}

/// Whether the search tools are offered (`auth_status.search`).
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct SearchStatus {
    /// The search tools are listed and callable.
    available: bool,
    /// Why not, when they are not.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
}

impl SearchStatus {
    /// For a server with (or without) a Quilt registry.
    pub(crate) fn of(registry: bool) -> SearchStatus {
        SearchStatus {
            available: registry,
            reason: (!registry).then_some(
                "QUILT_REGISTRY_URL is not set: search goes through the Quilt registry's search API",
            ),
        }
    }
}

/// The structured result of `auth_status` for `ctx`.
pub(crate) fn auth_status(
    ctx: &AuthContext,
    default_region: &str,
    read_only: bool,
    registry: bool,
    now: i64,
) -> AuthStatusOutput {
    let c = &ctx.claims;
    AuthStatusOutput {
        authenticated: true,
        subject: ctx.subject.clone(),
        issuer: ctx.issuer.clone(),
        audience: ctx.audience.clone(),
        issued_at: ctx.issued_at.and_then(rfc3339),
        expires_at: rfc3339(ctx.expires_at),
        expires_in: (ctx.expires_at - now).max(0),
        jti: ctx.jti.clone(),
        scope: c.scope.clone(),
        level: c.level.to_string(),
        roles: c.roles.clone(),
        buckets: c.buckets.clone(),
        permissions: c.permissions.clone(),
        token: ctx.token_info.clone(),
        aws: ctx.aws.summary(default_region),
        read_only,
        search: SearchStatus::of(registry),
    }
}

impl Tool for AuthStatus {
    const INFO: ToolInfo = ToolInfo {
        name: "auth_status",
        toolset: Toolset::Core,
        title: "Authentication status",
        description: "Show who the Quilt token belongs to and what it grants: subject, issuer, \
            audience, expiry, scope, level (read/write/admin), roles, buckets, S3 permissions, the \
            token's source and fingerprint, and where AWS credentials will come from. Use it first \
            when a call is refused.",
        read_only: true,
        destructive: false,
        idempotent: true,
        open_world: false,
        registry: false,
    };
    type Params = NoParams;
    type Output = AuthStatusOutput;

    fn example() -> serde_json::Value {
        serde_json::json!({})
    }

    async fn run(call: Call<'_>, _params: NoParams) -> Result<AuthStatusOutput, ToolError> {
        Ok(auth_status(
            call.ctx,
            call.default_region,
            call.read_only,
            call.registry.is_some(),
            now_unix(),
        ))
    }
}
