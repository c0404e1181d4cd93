//! The authorization decision of the gate, as a pure function: given a verified
//! token's claims, a tool and what its parsed parameters touch ([`Access`]), may the
//! call run? Order: permissions → buckets → level → read-only mode (the token itself
//! was verified before).

use serde::Serialize;

use super::{Access, ToolInfo};
use crate::auth::QuiltClaims;

/// Why a verified caller may not run a tool: the `reason` of a -32003 error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum DenyReason {
    MissingPermission,
    BucketNotAllowed,
    WriteNotAllowed,
    ReadOnlyMode,
}

impl DenyReason {
    /// The reason code of the contract.
    pub(crate) fn code(self) -> &'static str {
        match self {
            DenyReason::MissingPermission => "missing_permission",
            DenyReason::BucketNotAllowed => "bucket_not_allowed",
            DenyReason::WriteNotAllowed => "write_not_allowed",
            DenyReason::ReadOnlyMode => "read_only_mode",
        }
    }
}

/// A refusal at the gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Denial {
    /// Why.
    pub(crate) reason: DenyReason,
    /// The tool.
    pub(crate) tool: &'static str,
    /// The bucket refused, for `bucket_not_allowed` (and the first bucket otherwise).
    pub(crate) bucket: Option<String>,
    /// The permissions lacking, for `missing_permission`.
    pub(crate) missing_permissions: Vec<String>,
}

impl Denial {
    /// The JSON-RPC error message: `Forbidden: …`, with what to do.
    pub(crate) fn message(&self) -> String {
        match self.reason {
            DenyReason::MissingPermission => format!(
                "Forbidden: {} needs {}, which the token does not grant; ask the Quilt administrator for a role with it",
                self.tool,
                self.missing_permissions.join(" and ")
            ),
            DenyReason::BucketNotAllowed => format!(
                "Forbidden: the token does not grant access to bucket {:?}; call bucket_list to see the buckets it does grant",
                self.bucket.as_deref().unwrap_or("")
            ),
            DenyReason::WriteNotAllowed => format!(
                "Forbidden: {} writes, and the token's level is read; ask the Quilt administrator for write access",
                self.tool
            ),
            DenyReason::ReadOnlyMode => format!(
                "Forbidden: {} writes, and this server runs in read-only mode (QUILT_MCP_READ_ONLY)",
                self.tool
            ),
        }
    }
}

/// Decides whether `claims` may call the tool `info` describes, touching `access`.
pub(crate) fn authorize(
    info: &ToolInfo,
    access: &Access,
    claims: &QuiltClaims,
    read_only: bool,
) -> Result<(), Denial> {
    let first = || access.buckets.first().cloned();
    let deny = |reason: DenyReason, bucket: Option<String>, missing: Vec<String>| Denial {
        reason,
        tool: info.name,
        bucket,
        missing_permissions: missing,
    };
    let missing: Vec<String> = access
        .permissions
        .iter()
        .filter(|p| !claims.has_permission(p.as_str()))
        .map(|p| p.as_str().to_owned())
        .collect();
    if !missing.is_empty() {
        return Err(deny(DenyReason::MissingPermission, first(), missing));
    }
    if let Some(bucket) = access.buckets.iter().find(|b| !claims.allows_bucket(b)) {
        return Err(deny(
            DenyReason::BucketNotAllowed,
            Some(bucket.clone()),
            Vec::new(),
        ));
    }
    if info.writes() && !claims.level.can_write() {
        return Err(deny(DenyReason::WriteNotAllowed, first(), Vec::new()));
    }
    if info.writes() && read_only {
        return Err(deny(DenyReason::ReadOnlyMode, first(), Vec::new()));
    }
    Ok(())
}
