//! The Quilt package format, read and written directly in S3 as quilt3 and the Quilt
//! catalog do:
//!
//! - `.quilt/packages/<tophash>`: the manifest ([`manifest`]);
//! - `.quilt/named_packages/<ns>/<name>/latest` and `…/<unix seconds>`: pointers holding
//!   the top hash as exactly 64 ASCII bytes.
//!
//! [`json`] writes JSON as Python does (for top hashes and manifest lines); [`hash`]
//! computes entry hashes in constant memory; `registry` reads and writes a registry
//! bucket, `stream` reads a manifest line by line verifying its top hash as it
//! goes, `browse` pages through a revision, `publish` makes a new revision and `diff`
//! compares two, each in bounded memory; `workflow` checks a new revision against the
//! registry's workflows config as quilt3 does. Failures are
//! `QuiltError`s. This layer knows S3 but nothing of tokens, tools or MCP.

pub(crate) mod browse;
pub(crate) mod budget;
pub(crate) mod cache;
pub(crate) mod diff;
pub(crate) mod error;
pub mod hash;
pub mod json;
pub(crate) mod line;
pub(crate) mod listing;
pub mod manifest;
pub(crate) mod patch;
pub(crate) mod publish;
pub(crate) mod registry;
pub(crate) mod stream;
pub(crate) mod workflow;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::error::ArgumentError;

/// Where manifests live.
pub const PACKAGES_PREFIX: &str = ".quilt/packages/";
/// Where named-package pointers live.
pub const NAMED_PACKAGES_PREFIX: &str = ".quilt/named_packages/";

/// The manifest key of `top_hash`.
pub fn manifest_key(top_hash: &str) -> String {
    format!("{PACKAGES_PREFIX}{top_hash}")
}

/// The pointer directory of `name` (ending in `/`).
pub fn pointer_prefix(name: &str) -> String {
    format!("{NAMED_PACKAGES_PREFIX}{name}/")
}

/// The `latest` pointer of `name`.
pub fn latest_key(name: &str) -> String {
    format!("{NAMED_PACKAGES_PREFIX}{name}/latest")
}

/// The timestamp pointer of `name` at `unix_seconds`.
pub fn timestamp_key(name: &str, unix_seconds: i64) -> String {
    format!("{NAMED_PACKAGES_PREFIX}{name}/{unix_seconds:010}")
}

/// Whether `text` is a top hash: 64 lowercase hex digits.
pub fn is_top_hash(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Reads a pointer's body: the top hash, tolerating surrounding whitespace.
pub fn parse_pointer(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?.trim();
    is_top_hash(text).then(|| text.to_owned())
}

/// The most bytes of a package name: its pointers' keys stay far below S3's
/// 1024-byte limit.
pub const MAX_NAME_BYTES: usize = 512;

/// A name over [`MAX_NAME_BYTES`], refused without being echoed.
fn check_name_length(name: &str) -> Result<(), ArgumentError> {
    if name.len() > MAX_NAME_BYTES {
        return Err(ArgumentError::new(format!(
            "the package name is {} bytes long; package names are at most {MAX_NAME_BYTES} bytes",
            name.len()
        )));
    }
    Ok(())
}

/// A package name to write: `ns/name`, each part `[A-Za-z0-9_-]+`.
pub(crate) fn check_name_for_write(name: &str) -> Result<(), ArgumentError> {
    check_name_length(name)?;
    let part = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    match name.split_once('/') {
        Some((ns, pkg)) if part(ns) && part(pkg) => Ok(()),
        _ => Err(ArgumentError::new(format!(
            "{name:?} is not a package name to write: use namespace/name with letters, digits, _ and -"
        ))),
    }
}

/// A package name to read: `ns/name`, each part Unicode word characters or `-`.
pub(crate) fn check_name_for_read(name: &str) -> Result<(), ArgumentError> {
    check_name_length(name)?;
    let part = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
    };
    match name.split_once('/') {
        Some((ns, pkg)) if part(ns) && part(pkg) => Ok(()),
        _ => Err(ArgumentError::new(format!(
            "{name:?} is not a package name: use namespace/name"
        ))),
    }
}

/// A package name to read (`ns/name`), checked as it is parsed
/// ([`check_name_for_read`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct PackageName(String);

impl PackageName {
    /// The name.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// The name, owned.
    pub(crate) fn into_string(self) -> String {
        self.0
    }
}

impl TryFrom<String> for PackageName {
    type Error = ArgumentError;
    fn try_from(name: String) -> Result<PackageName, ArgumentError> {
        check_name_for_read(&name)?;
        Ok(PackageName(name))
    }
}

impl std::fmt::Display for PackageName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A package name to write (`ns/name` of `[A-Za-z0-9_-]`), checked as it is parsed
/// ([`check_name_for_write`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct NewPackageName(String);

impl NewPackageName {
    /// The name, owned.
    pub(crate) fn into_string(self) -> String {
        self.0
    }
}

impl TryFrom<String> for NewPackageName {
    type Error = ArgumentError;
    fn try_from(name: String) -> Result<NewPackageName, ArgumentError> {
        check_name_for_write(&name)?;
        Ok(NewPackageName(name))
    }
}

impl std::ops::Deref for NewPackageName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// A top hash or a prefix of one given by a user: 6 to 64 hex digits, lowercased as
/// it is parsed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct HashPrefix(String);

impl HashPrefix {
    /// The digits, lowercase.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether it is a whole top hash rather than a prefix of one.
    pub(crate) fn is_full(&self) -> bool {
        is_top_hash(&self.0)
    }
}

impl TryFrom<String> for HashPrefix {
    type Error = ArgumentError;
    fn try_from(text: String) -> Result<HashPrefix, ArgumentError> {
        check_hash_prefix(&text).map(HashPrefix)
    }
}

/// A hash or hash prefix given by a user: at least 6 hex digits, lowercased.
pub(crate) fn check_hash_prefix(text: &str) -> Result<String, ArgumentError> {
    let lower = text.trim().to_ascii_lowercase();
    if lower.len() < 6 || lower.len() > 64 || !lower.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ArgumentError::new(format!(
            "{:?} is not a top hash or a prefix of one (6 to 64 hex digits)",
            text.chars().take(80).collect::<String>()
        )));
    }
    Ok(lower)
}

// Python's `urllib.parse.quote(…, safe="/")`: letters, digits, `_.-~` and `/` stay.
const PATH_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'_')
    .remove(b'.')
    .remove(b'-')
    .remove(b'~')
    .remove(b'/');
// `quote_plus` for query values: the same without `/` (spaces become `+` below).
const QUERY_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'_')
    .remove(b'.')
    .remove(b'-')
    .remove(b'~');

/// A physical key as quilt3 writes it: `s3://bucket/key?versionId=…`, the key
/// percent-encoded.
pub fn physical_key(bucket: &str, key: &str, version_id: Option<&str>) -> String {
    let mut out = format!("s3://{bucket}/{}", utf8_percent_encode(key, PATH_SET));
    if let Some(version) = version_id {
        out.push_str("?versionId=");
        out.push_str(
            &utf8_percent_encode(version, QUERY_SET)
                .to_string()
                .replace("%20", "+"),
        );
    }
    out
}

/// The `quilt+s3://` URI of a package revision.
pub fn package_uri(bucket: &str, name: &str, top_hash: &str) -> String {
    format!("quilt+s3://{bucket}#package={name}@{top_hash}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name_for_write("ns/pkg_1-a").is_ok());
        for bad in ["ns", "ns/", "/pkg", "ns/pkg/x", "ns/p kg", "nß/pkg"] {
            assert!(check_name_for_write(bad).is_err(), "{bad}");
        }
        assert!(check_name_for_read("nß/pkg").is_ok());
        assert!(check_name_for_read("ns/p kg").is_err());
    }

    #[test]
    fn keys_and_pointers() {
        assert_eq!(
            timestamp_key("a/b", 1_700_000_000),
            ".quilt/named_packages/a/b/1700000000"
        );
        assert_eq!(
            physical_key("b", "dir/a b+c?.txt", Some("abc+def")),
            "s3://b/dir/a%20b%2Bc%3F.txt?versionId=abc%2Bdef"
        );
        assert_eq!(physical_key("b", "é~", None), "s3://b/%C3%A9~");
        let hash = "a".repeat(64);
        assert_eq!(
            parse_pointer(format!("{hash}\n").as_bytes()),
            Some(hash.clone())
        );
        assert_eq!(parse_pointer(b"nope"), None);
        assert_eq!(check_hash_prefix("ABCDEF").unwrap(), "abcdef");
        assert!(check_hash_prefix("abcde").is_err());
        assert!(check_hash_prefix("xyzxyz").is_err());
        assert!(HashPrefix::try_from("ABCDEF".to_owned()).unwrap().as_str() == "abcdef");
        assert!(!HashPrefix::try_from("abcdef".to_owned()).unwrap().is_full());
        assert!(HashPrefix::try_from(hash.clone()).unwrap().is_full());
        assert!(PackageName::try_from("nß/pkg".to_owned()).is_ok());
        assert!(NewPackageName::try_from("nß/pkg".to_owned()).is_err());
        assert!(PackageName::try_from("x".repeat(MAX_NAME_BYTES + 1)).is_err());
    }
}
