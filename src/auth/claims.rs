//! Decompression of the Quilt claims, rule for rule as the Quilt catalog's
//! `jwt-decompression-utils.js` does it (docs/reference.md, Errors), except that where the catalog
//! would fall back to granting `s3:GetObject` after an internal error, this grants
//! nothing.

use base64::Engine as _;
use serde::Serialize;
use serde_json::{Map, Value};

/// The abbreviations of the compact `p` claim.
pub const PERMISSION_ABBREVIATIONS: &[(&str, &str)] = &[
    ("g", "s3:GetObject"),
    ("p", "s3:PutObject"),
    ("d", "s3:DeleteObject"),
    ("l", "s3:ListBucket"),
    ("la", "s3:ListAllMyBuckets"),
    ("gv", "s3:GetObjectVersion"),
    ("pa", "s3:PutObjectAcl"),
    ("amu", "s3:AbortMultipartUpload"),
];

/// The authorization-relevant part of a token, decompressed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QuiltClaims {
    /// S3 actions, such as `s3:GetObject`.
    pub permissions: Vec<String>,
    /// Quilt roles (names or IAM role ARNs).
    pub roles: Vec<String>,
    /// Bucket names; a literal `*` allows every bucket.
    pub buckets: Vec<String>,
    /// The token's scope (may be empty).
    pub scope: String,
    /// The token's level.
    pub level: Level,
}

/// A token's level (`l` or `level`): what it may do beyond reading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Read only (also any value other than `write` and `admin`, failing closed).
    #[default]
    Read,
    /// Read and write.
    Write,
    /// Read, write and administer.
    Admin,
}

impl Level {
    /// `read`, `write` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Read => "read",
            Level::Write => "write",
            Level::Admin => "admin",
        }
    }

    /// Whether the level allows writes (`write` or `admin`).
    pub fn can_write(self) -> bool {
        self >= Level::Write
    }

    /// The level a claim names; `None` for anything but `read`, `write` and `admin`.
    pub fn parse(text: &str) -> Option<Level> {
        match text {
            "read" => Some(Level::Read),
            "write" => Some(Level::Write),
            "admin" => Some(Level::Admin),
            _ => None,
        }
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl QuiltClaims {
    /// Whether `bucket` is among the token's buckets.
    pub fn allows_bucket(&self, bucket: &str) -> bool {
        self.buckets.iter().any(|b| b == "*" || b == bucket)
    }

    /// Whether the token carries the S3 permission `action`.
    pub fn has_permission(&self, action: &str) -> bool {
        self.permissions.iter().any(|p| p == action)
    }

    /// Whether the token's level allows writes.
    pub fn can_write(&self) -> bool {
        self.level.can_write()
    }
}

/// The result of decompression: the claims and what was odd about them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decompressed {
    /// The claims.
    pub claims: QuiltClaims,
    /// Plain-language notes for the log (malformed compressed buckets and the like).
    pub warnings: Vec<String>,
}

/// Decompresses the Quilt claims of a verified payload.
pub fn decompress(payload: &Map<String, Value>) -> Decompressed {
    let mut warnings = Vec::new();
    let permissions = match payload.get("permissions") {
        Some(Value::Array(items)) => strings(items),
        _ => match payload.get("p") {
            Some(Value::Array(items)) => strings(items)
                .into_iter()
                .map(|abbrev| expand_permission(&abbrev))
                .collect(),
            None | Some(Value::Null) => Vec::new(),
            Some(_) => {
                warnings.push("claim `p` is not an array: no permissions granted".to_owned());
                Vec::new()
            }
        },
    };
    let roles = match payload.get("roles") {
        Some(Value::Array(items)) => strings(items),
        _ => match payload.get("r") {
            Some(Value::Array(items)) => strings(items),
            _ => Vec::new(),
        },
    };
    let buckets = match payload.get("buckets") {
        Some(Value::Array(items)) => strings(items),
        _ => match payload.get("b") {
            Some(b) => decompress_buckets(b, &mut warnings),
            None => Vec::new(),
        },
    };
    let scope = first_truthy_string(payload, &["s", "scope"]).unwrap_or_default();
    let level = match first_truthy_string(payload, &["l", "level"]) {
        None => Level::Read,
        Some(text) => Level::parse(&text).unwrap_or_else(|| {
            warnings.push(format!(
                "level {:?} is not read, write or admin: treated as read",
                truncate(&text)
            ));
            Level::Read
        }),
    };
    Decompressed {
        claims: QuiltClaims {
            permissions,
            roles,
            buckets,
            scope,
            level,
        },
        warnings,
    }
}

/// Maps one abbreviation; an unknown one stands for itself.
pub fn expand_permission(abbrev: &str) -> String {
    PERMISSION_ABBREVIATIONS
        .iter()
        .find(|(short, _)| *short == abbrev)
        .map(|(_, long)| (*long).to_owned())
        .unwrap_or_else(|| abbrev.to_owned())
}

/// JavaScript truthiness: `undefined`, `null`, `false`, `0`, `NaN` and `""` are falsy.
pub fn is_truthy(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(_)) | Some(Value::Object(_)) => true,
    }
}

fn first_truthy_string(payload: &Map<String, Value>, keys: &[&str]) -> Option<String> {
    keys.iter()
        .map(|k| payload.get(*k))
        .find(|v| is_truthy(*v))
        .flatten()
        .and_then(|v| v.as_str().map(str::to_owned))
}

fn strings(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

fn decompress_buckets(b: &Value, warnings: &mut Vec<String>) -> Vec<String> {
    match b {
        Value::Array(items) => strings(items),
        Value::Object(obj) => {
            let kind = obj.get("_type").and_then(Value::as_str).unwrap_or("");
            let data = obj.get("_data");
            let result = match kind {
                "groups" => expand_map(data, warnings, |prefix, name| format!("{prefix}-{name}")),
                "patterns" => expand_map(data, warnings, |pattern, name| {
                    if pattern == "quilt" {
                        format!("quilt-{name}")
                    } else {
                        name.to_owned()
                    }
                }),
                "compressed" => decode_compressed(data),
                _ => Err(BucketsError::UnknownType(truncate(kind))),
            };
            result.unwrap_or_else(|problem| {
                warnings.push(format!("claim `b`: {problem}: no buckets granted"));
                Vec::new()
            })
        }
        Value::Null => Vec::new(),
        _ => {
            warnings
                .push("claim `b` is neither an array nor an object: no buckets granted".to_owned());
            Vec::new()
        }
    }
}

/// Expands `groups` or `patterns` data: a map of arrays of names. A value that is not
/// an array is skipped with a warning and the other entries still count (docs/reference.md, Errors).
/// Why an object `b` claim grants no buckets (a warning in the log).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum BucketsError {
    #[error("unknown bucket encoding _type {0:?}")]
    UnknownType(String),
    #[error("_data is not an object")]
    DataNotObject,
    #[error("compressed _data is not a string")]
    CompressedNotString,
    #[error("compressed _data is not standard base64")]
    CompressedNotBase64,
    #[error("compressed _data is not a JSON array")]
    CompressedNotArray,
}

fn expand_map(
    data: Option<&Value>,
    warnings: &mut Vec<String>,
    join: impl Fn(&str, &str) -> String,
) -> Result<Vec<String>, BucketsError> {
    let Some(Value::Object(map)) = data else {
        return Err(BucketsError::DataNotObject);
    };
    let mut out = Vec::new();
    for (key, names) in map {
        match names {
            Value::Array(names) => out.extend(strings(names).iter().map(|name| join(key, name))),
            _ => warnings.push(format!(
                "claim `b`: _data[{:?}] is not an array: skipped",
                truncate(key)
            )),
        }
    }
    Ok(out)
}

fn decode_compressed(data: Option<&Value>) -> Result<Vec<String>, BucketsError> {
    let Some(Value::String(text)) = data else {
        return Err(BucketsError::CompressedNotString);
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| BucketsError::CompressedNotBase64)?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Array(items)) => Ok(strings(&items)),
        _ => Err(BucketsError::CompressedNotArray),
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(payload: Value) -> Decompressed {
        match payload {
            Value::Object(map) => decompress(&map),
            _ => unreachable!("test payloads are objects"),
        }
    }

    fn b64(value: &Value) -> String {
        base64::engine::general_purpose::STANDARD.encode(value.to_string())
    }

    #[test]
    fn permissions_table() {
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (json!({"p": ["g"]}), vec!["s3:GetObject"]),
            (json!({"p": ["p"]}), vec!["s3:PutObject"]),
            (json!({"p": ["d"]}), vec!["s3:DeleteObject"]),
            (json!({"p": ["l"]}), vec!["s3:ListBucket"]),
            (json!({"p": ["la"]}), vec!["s3:ListAllMyBuckets"]),
            (json!({"p": ["gv"]}), vec!["s3:GetObjectVersion"]),
            (json!({"p": ["pa"]}), vec!["s3:PutObjectAcl"]),
            (json!({"p": ["amu"]}), vec!["s3:AbortMultipartUpload"]),
            (json!({"p": ["zz", "s3:Custom"]}), vec!["zz", "s3:Custom"]),
            (
                json!({"p": ["g", 1, null, "l"]}),
                vec!["s3:GetObject", "s3:ListBucket"],
            ),
            (
                json!({"permissions": ["s3:PutObject"], "p": ["g"]}),
                vec!["s3:PutObject"],
            ),
            (json!({"permissions": [], "p": ["g"]}), vec![]),
            (
                json!({"permissions": "s3:GetObject", "p": ["l"]}),
                vec!["s3:ListBucket"],
            ),
            (json!({"permissions": ["g"]}), vec!["g"]),
            (json!({}), vec![]),
            (json!({"p": "g"}), vec![]),
        ];
        for (payload, expected) in cases {
            assert_eq!(
                run(payload.clone()).claims.permissions,
                expected,
                "{payload}"
            );
        }
    }

    #[test]
    fn roles_table() {
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (json!({"roles": ["a"], "r": ["b"]}), vec!["a"]),
            (json!({"roles": [], "r": ["b"]}), vec![]),
            (json!({"r": ["b", 7]}), vec!["b"]),
            (json!({"roles": "a", "r": ["b"]}), vec!["b"]),
            (
                json!({"roles": "notalist", "r": ["R1", "R2"]}),
                vec!["R1", "R2"],
            ),
            (json!({"roles": {}, "r": ["b"]}), vec!["b"]),
            (json!({"roles": null, "r": ["b"]}), vec!["b"]),
            (json!({"r": "b"}), vec![]),
            (json!({}), vec![]),
        ];
        for (payload, expected) in cases {
            assert_eq!(run(payload.clone()).claims.roles, expected, "{payload}");
        }
    }

    #[test]
    fn buckets_table() {
        let cases: Vec<(Value, Vec<&str>, bool)> = vec![
            (json!({"buckets": ["x"], "b": ["y"]}), vec!["x"], false),
            (json!({"buckets": [], "b": ["y"]}), vec![], false),
            (json!({"buckets": ["x", 3, {"a": 1}]}), vec!["x"], false),
            (json!({"b": ["y", "z"]}), vec!["y", "z"], false),
            (
                json!({"b": {"_type": "groups", "_data": {"quilt": ["a", "b"], "lab": ["raw"]}}}),
                vec!["quilt-a", "quilt-b", "lab-raw"],
                false,
            ),
            (
                json!({"b": {"_type": "patterns", "_data": {"quilt": ["a"], "other": ["plain", 5]}}}),
                vec!["quilt-a", "plain"],
                false,
            ),
            (
                json!({"b": {"_type": "compressed", "_data": b64(&json!(["c1", "c2", 9]))}}),
                vec!["c1", "c2"],
                false,
            ),
            (
                json!({"b": {"_type": "compressed", "_data": "!!!not base64"}}),
                vec![],
                true,
            ),
            (
                json!({"b": {"_type": "compressed", "_data": b64(&json!({"a": 1}))}}),
                vec![],
                true,
            ),
            (
                json!({"b": {"_type": "compressed", "_data": 12}}),
                vec![],
                true,
            ),
            (
                json!({"b": {"_type": "groups", "_data": ["quilt"]}}),
                vec![],
                true,
            ),
            (
                json!({"b": {"_type": "groups", "_data": {"quilt": "a"}}}),
                vec![],
                true,
            ),
            // Only the entry that is not an array is skipped, and
            // only the members that are not strings.
            (
                json!({"b": {"_type": "groups", "_data": {"a": ["b", 7, "c"], "e": "notalist"}}}),
                vec!["a-b", "a-c"],
                true,
            ),
            (
                json!({"b": {"_type": "patterns", "_data": {"x": null, "quilt": ["q"], "y": {"k": ["v"]}}}}),
                vec!["quilt-q"],
                true,
            ),
            (json!({"b": {"_type": "patterns"}}), vec![], true),
            (json!({"b": {"_type": "zip", "_data": {}}}), vec![], true),
            (json!({"b": {"_data": {}}}), vec![], true),
            (json!({"b": "bucket"}), vec![], true),
            (json!({"b": 4}), vec![], true),
            (json!({"b": null}), vec![], false),
            (json!({}), vec![], false),
        ];
        for (payload, expected, warned) in cases {
            let out = run(payload.clone());
            assert_eq!(out.claims.buckets, expected, "{payload}");
            assert_eq!(
                !out.warnings.is_empty(),
                warned,
                "{payload}: {:?}",
                out.warnings
            );
        }
    }

    #[test]
    fn scope_and_level_follow_javascript_truthiness() {
        let cases: Vec<(Value, &str, &str)> = vec![
            (json!({}), "", "read"),
            (
                json!({"s": "s-short", "scope": "s-long"}),
                "s-short",
                "read",
            ),
            (json!({"s": "", "scope": "s-long"}), "s-long", "read"),
            (json!({"s": null, "scope": "s-long"}), "s-long", "read"),
            (json!({"s": false, "scope": "s-long"}), "s-long", "read"),
            (json!({"s": 0, "scope": "s-long"}), "s-long", "read"),
            (json!({"l": "write", "level": "admin"}), "", "write"),
            (json!({"l": "", "level": "admin"}), "", "admin"),
            (json!({"l": 0, "level": "admin"}), "", "admin"),
            (json!({"l": false, "level": ""}), "", "read"),
            (json!({"level": null}), "", "read"),
        ];
        for (payload, scope, level) in cases {
            let out = run(payload.clone()).claims;
            assert_eq!(
                (out.scope.as_str(), out.level.as_str()),
                (scope, level),
                "{payload}"
            );
        }
    }

    #[test]
    fn helpers() {
        let claims =
            run(json!({"buckets": ["a"], "permissions": ["s3:GetObject"], "level": "write"}))
                .claims;
        assert!(claims.allows_bucket("a"));
        assert!(!claims.allows_bucket("b"));
        assert!(claims.has_permission("s3:GetObject"));
        assert!(!claims.has_permission("s3:PutObject"));
        assert!(claims.can_write());
        let star = run(json!({"buckets": ["*"], "level": "read"})).claims;
        assert!(star.allows_bucket("anything"));
        assert!(!star.can_write());
        assert!(run(json!({"level": "admin"})).claims.can_write());
        assert!(!run(json!({"level": "owner"})).claims.can_write());
    }
}
