//! The authorization decision of the gate, as a pure function: given a verified
//! token's claims, a tool and its arguments, may the call run? Order: permissions →
//! buckets → level → read-only mode (the token itself was verified before).

use serde::Serialize;
use serde_json::{Map, Value};

use super::spec::{BucketArg, Conditional, ToolSpec};
use super::uri::{S3Uri, parse_bucket};
use crate::auth::QuiltClaims;

/// Why a verified caller may not run a tool: the `reason` of a -32003 error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DenyReason {
    MissingPermission,
    BucketNotAllowed,
    WriteNotAllowed,
    ReadOnlyMode,
}

impl DenyReason {
    /// The reason code of the contract.
    pub fn code(self) -> &'static str {
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
pub struct Denial {
    /// Why.
    pub reason: DenyReason,
    /// The tool.
    pub tool: &'static str,
    /// The bucket refused, for `bucket_not_allowed` (and the first bucket otherwise).
    pub bucket: Option<String>,
    /// The permissions lacking, for `missing_permission`.
    pub missing_permissions: Vec<String>,
}

impl Denial {
    /// The JSON-RPC error message: `Forbidden: …`, with what to do.
    pub fn message(&self) -> String {
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

/// The outcome of [`authorize`] when the call may not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Refused: -32003.
    Denied(Denial),
    /// An argument the gate needs is missing or malformed: an `invalid_argument` tool error.
    BadArgument(String),
}

/// Decides whether `claims` may call `spec` with `args`; on success, the buckets the
/// call touches (in argument order, without repeats).
pub fn authorize(
    spec: &'static ToolSpec,
    args: Option<&Map<String, Value>>,
    claims: &QuiltClaims,
    read_only: bool,
) -> Result<Vec<String>, Refusal> {
    let empty = Map::new();
    let args = args.unwrap_or(&empty);
    let buckets = buckets_of(spec, args).map_err(Refusal::BadArgument)?;
    let deny = |reason: DenyReason, bucket: Option<String>, missing: Vec<String>| {
        Refusal::Denied(Denial {
            reason,
            tool: spec.name,
            bucket,
            missing_permissions: missing,
        })
    };

    let mut needed: Vec<&str> = spec.permissions.to_vec();
    match spec.conditional {
        Conditional::None => {}
        Conditional::VersionIdNeeds(permission) => {
            let versioned = spec.buckets.iter().any(|arg| match arg {
                BucketArg::ObjectUri(name) => args
                    .get(*name)
                    .and_then(Value::as_str)
                    .and_then(|u| S3Uri::parse(u).ok())
                    .is_some_and(|u| u.version_id.is_some()),
                _ => false,
            });
            if versioned {
                needed.push(permission);
            }
        }
        Conditional::HashPrefixNeeds(permission) => {
            let prefix = args
                .get("top_hash")
                .and_then(Value::as_str)
                .is_some_and(|h| !h.trim().is_empty() && h.trim().len() < 64);
            if prefix {
                needed.push(permission);
            }
        }
    }
    let missing: Vec<String> = needed
        .iter()
        .filter(|p| !claims.has_permission(p))
        .map(|p| (*p).to_owned())
        .collect();
    if !missing.is_empty() {
        return Err(deny(
            DenyReason::MissingPermission,
            buckets.first().cloned(),
            missing,
        ));
    }
    if let Some(bucket) = buckets.iter().find(|b| !claims.allows_bucket(b)) {
        return Err(deny(
            DenyReason::BucketNotAllowed,
            Some(bucket.clone()),
            Vec::new(),
        ));
    }
    if spec.writes && !claims.can_write() {
        return Err(deny(
            DenyReason::WriteNotAllowed,
            buckets.first().cloned(),
            Vec::new(),
        ));
    }
    if spec.writes && read_only {
        return Err(deny(
            DenyReason::ReadOnlyMode,
            buckets.first().cloned(),
            Vec::new(),
        ));
    }
    Ok(buckets)
}

/// The buckets named by a call's arguments.
pub fn buckets_of(spec: &ToolSpec, args: &Map<String, Value>) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |bucket: String| {
        if !out.contains(&bucket) {
            out.push(bucket);
        }
    };
    for arg in spec.buckets {
        match *arg {
            BucketArg::Name(name) => {
                let text = required_str(args, name)?;
                push(parse_bucket(text).map_err(|e| format!("`{name}`: {e}"))?);
            }
            BucketArg::ObjectUri(name) => {
                let text = required_str(args, name)?;
                push(
                    S3Uri::parse_object(text)
                        .map_err(|e| format!("`{name}`: {e}"))?
                        .bucket,
                );
            }
            BucketArg::EntryUris(array, field) => {
                for (i, item) in optional_array(args, array)?.iter().enumerate() {
                    let text = item.get(field).and_then(Value::as_str).ok_or_else(|| {
                        format!("`{array}[{i}].{field}` must be an s3:// URI string")
                    })?;
                    push(
                        S3Uri::parse(text)
                            .map_err(|e| format!("`{array}[{i}].{field}`: {e}"))?
                            .bucket,
                    );
                }
            }
            BucketArg::UriList(array) => {
                for (i, item) in optional_array(args, array)?.iter().enumerate() {
                    let text = item
                        .as_str()
                        .ok_or_else(|| format!("`{array}[{i}]` must be an s3:// URI string"))?;
                    push(
                        S3Uri::parse(text)
                            .map_err(|e| format!("`{array}[{i}]`: {e}"))?
                            .bucket,
                    );
                }
            }
        }
    }
    Ok(out)
}

fn required_str<'a>(args: &'a Map<String, Value>, name: &str) -> Result<&'a str, String> {
    match args.get(name) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(format!("the parameter `{name}` is required")),
        Some(_) => Err(format!("the parameter `{name}` must be a string")),
    }
}

fn optional_array<'a>(args: &'a Map<String, Value>, name: &str) -> Result<&'a [Value], String> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(format!("the parameter `{name}` must be an array")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::spec::{TOOLS, spec};
    use serde_json::json;

    fn claims(permissions: &[&str], buckets: &[&str], level: &str) -> QuiltClaims {
        QuiltClaims {
            permissions: permissions.iter().map(|s| (*s).to_owned()).collect(),
            roles: vec![],
            buckets: buckets.iter().map(|s| (*s).to_owned()).collect(),
            scope: String::new(),
            level: level.to_owned(),
        }
    }

    const ALL: &[&str] = &[
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:PutObject",
        "s3:ListBucket",
    ];

    /// Valid arguments for every tool, touching bucket `b` (and `src` for create).
    fn args_for(tool: &str) -> Value {
        match tool {
            "auth_status" | "bucket_list" => json!({}),
            "bucket_objects_list" => json!({"bucket": "s3://b"}),
            "bucket_objects_put" => json!({"bucket": "b", "items": [{"key": "k", "text": "t"}]}),
            "bucket_object_info"
            | "bucket_object_text"
            | "bucket_object_fetch"
            | "bucket_object_link" => {
                json!({"s3_uri": "s3://b/k.txt"})
            }
            "package_list" => json!({"registry": "s3://b"}),
            "package_browse" => json!({"registry": "b", "package_name": "ns/pkg"}),
            "package_diff" => json!({"registry": "b", "package1_name": "ns/pkg"}),
            "package_create" => json!({
                "registry": "b", "package_name": "ns/pkg",
                "entries": [{"logical_key": "a", "s3_uri": "s3://src/a"}],
                "s3_uris": ["s3://src/dir/"]
            }),
            other => panic!("no arguments for {other}"),
        }
    }

    fn run(
        tool: &str,
        args: Value,
        claims: &QuiltClaims,
        read_only: bool,
    ) -> Result<Vec<String>, Refusal> {
        let spec = spec(tool).unwrap();
        authorize(spec, args.as_object(), claims, read_only)
    }

    fn denied(result: Result<Vec<String>, Refusal>) -> Denial {
        match result {
            Err(Refusal::Denied(d)) => d,
            other => panic!("expected a denial, got {other:?}"),
        }
    }

    #[test]
    fn every_tool_is_allowed_with_everything() {
        let full = claims(ALL, &["b", "src"], "write");
        for spec in TOOLS {
            let buckets = run(spec.name, args_for(spec.name), &full, false).unwrap();
            let expected: Vec<&str> = match spec.name {
                "auth_status" | "bucket_list" => vec![],
                "package_create" => vec!["b", "src"],
                _ => vec!["b"],
            };
            assert_eq!(buckets, expected, "{}", spec.name);
        }
    }

    #[test]
    fn every_tool_refuses_a_bucket_not_entitled() {
        let other = claims(ALL, &["other"], "admin");
        for spec in TOOLS.iter().filter(|s| !s.buckets.is_empty()) {
            let d = denied(run(spec.name, args_for(spec.name), &other, false));
            assert_eq!(
                (d.reason, d.tool, d.bucket.as_deref()),
                (DenyReason::BucketNotAllowed, spec.name, Some("b"))
            );
        }
        // A source bucket of package_create alone is enough to refuse it.
        let registry_only = claims(ALL, &["b"], "write");
        let d = denied(run(
            "package_create",
            args_for("package_create"),
            &registry_only,
            false,
        ));
        assert_eq!(
            (d.reason, d.bucket.as_deref()),
            (DenyReason::BucketNotAllowed, Some("src"))
        );
        // `*` allows every bucket.
        assert!(
            run(
                "package_create",
                args_for("package_create"),
                &claims(ALL, &["*"], "write"),
                false
            )
            .is_ok()
        );
    }

    #[test]
    fn every_tool_refuses_a_missing_permission() {
        for spec in TOOLS.iter().filter(|s| !s.permissions.is_empty()) {
            for lacking in spec.permissions {
                let granted: Vec<&str> = ALL.iter().copied().filter(|p| p != lacking).collect();
                let d = denied(run(
                    spec.name,
                    args_for(spec.name),
                    &claims(&granted, &["*"], "write"),
                    false,
                ));
                assert_eq!(d.reason, DenyReason::MissingPermission, "{}", spec.name);
                assert_eq!(
                    d.missing_permissions,
                    vec![(*lacking).to_owned()],
                    "{}",
                    spec.name
                );
            }
        }
    }

    #[test]
    fn conditional_permissions() {
        let no_version = claims(&["s3:GetObject"], &["b"], "read");
        assert!(
            run(
                "bucket_object_text",
                json!({"s3_uri": "s3://b/k"}),
                &no_version,
                false
            )
            .is_ok()
        );
        let d = denied(run(
            "bucket_object_text",
            json!({"s3_uri": "s3://b/k?versionId=1"}),
            &no_version,
            false,
        ));
        assert_eq!(d.missing_permissions, ["s3:GetObjectVersion"]);
        let get_only = claims(&["s3:GetObject"], &["b"], "read");
        let full_hash = "a".repeat(64);
        assert!(
            run(
                "package_browse",
                json!({"registry": "b", "package_name": "a/b", "top_hash": full_hash}),
                &get_only,
                false
            )
            .is_ok()
        );
        let d = denied(run(
            "package_browse",
            json!({"registry": "b", "package_name": "a/b", "top_hash": "abcdef"}),
            &get_only,
            false,
        ));
        assert_eq!(d.missing_permissions, ["s3:ListBucket"]);
    }

    #[test]
    fn write_tools_refuse_read_level_and_read_only_mode() {
        for spec in TOOLS.iter().filter(|s| s.writes) {
            let d = denied(run(
                spec.name,
                args_for(spec.name),
                &claims(ALL, &["*"], "read"),
                false,
            ));
            assert_eq!(d.reason, DenyReason::WriteNotAllowed, "{}", spec.name);
            let d = denied(run(
                spec.name,
                args_for(spec.name),
                &claims(ALL, &["*"], "admin"),
                true,
            ));
            assert_eq!(d.reason, DenyReason::ReadOnlyMode, "{}", spec.name);
        }
        for spec in TOOLS.iter().filter(|s| !s.writes) {
            assert!(
                run(
                    spec.name,
                    args_for(spec.name),
                    &claims(ALL, &["*"], "read"),
                    true
                )
                .is_ok(),
                "{}",
                spec.name
            );
        }
        let names: Vec<_> = TOOLS.iter().filter(|s| s.writes).map(|s| s.name).collect();
        assert_eq!(names, ["bucket_objects_put", "package_create"]);
    }

    #[test]
    fn bad_bucket_arguments_are_reported() {
        let full = claims(ALL, &["*"], "write");
        let cases = [
            ("bucket_objects_list", json!({})),
            ("bucket_objects_list", json!({"bucket": 5})),
            ("bucket_objects_list", json!({"bucket": "s3://b/sub"})),
            ("bucket_object_info", json!({"s3_uri": "b/k"})),
            ("bucket_object_info", json!({"s3_uri": "s3://b/"})),
            (
                "package_create",
                json!({"registry": "b", "entries": [{"logical_key": "a"}]}),
            ),
            (
                "package_create",
                json!({"registry": "b", "s3_uris": "s3://x/"}),
            ),
            ("package_create", json!({"registry": "b", "s3_uris": [3]})),
        ];
        for (tool, args) in cases {
            assert!(
                matches!(
                    run(tool, args.clone(), &full, false),
                    Err(Refusal::BadArgument(_))
                ),
                "{tool} {args}"
            );
        }
    }

    #[test]
    fn messages_say_what_to_do() {
        let d = denied(run(
            "bucket_objects_list",
            json!({"bucket": "b"}),
            &claims(&[], &["b"], "read"),
            false,
        ));
        assert!(
            d.message()
                .starts_with("Forbidden: bucket_objects_list needs s3:ListBucket"),
            "{}",
            d.message()
        );
    }
}
