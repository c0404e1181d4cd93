//! `auth_status`: who the token says the caller is and what it grants.

use serde_json::{Value, json};

use crate::auth::AuthContext;

/// The structured result of `auth_status` (SPEC §6.1).
pub fn auth_status(ctx: &AuthContext, default_region: &str, read_only: bool, now: i64) -> Value {
    let c = &ctx.claims;
    json!({
        "authenticated": true,
        "subject": ctx.subject,
        "issuer": ctx.issuer,
        "audience": ctx.audience,
        "issued_at": ctx.issued_at.and_then(crate::time::rfc3339),
        "expires_at": crate::time::rfc3339(ctx.expires_at),
        "expires_in": (ctx.expires_at - now).max(0),
        "jti": ctx.jti,
        "scope": c.scope,
        "level": c.level,
        "roles": c.roles,
        "buckets": c.buckets,
        "permissions": c.permissions,
        "token": ctx.token_info,
        "aws": ctx.aws.summary(default_region),
        "read_only": read_only,
    })
}
