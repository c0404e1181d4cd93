//! `package_revisions`: the revisions of one package, newest first, a page at a time,
//! each with its top hash, time, message and whether `latest` points at it
//! (docs/reference.md, Tools and Results).
//!
//! A revision is a timestamp pointer, `.quilt/named_packages/NS/NAME/UNIX_SECONDS`,
//! holding a top hash, as quilt3 writes them. S3 lists keys oldest first, so a page
//! lists every pointer of the package (one `ListObjectsV2` per 1000 revisions) and
//! keeps only the page's newest `max_revisions + 1` below the cursor (memory bounded
//! by the page, not by the package). Each pointer is then read, and each distinct
//! manifest's first line with a ranged GET (at most [`FIRST_RANGE`] bytes, then
//! [`MAX_HEADER_BYTES`] for a header that is longer), [`CONCURRENCY`] at a time.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::StreamExt as _;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::package_uri::{Named, PackageUri};
use super::search;
use super::uri::{Bounded, Bucket, checked_params};
use super::{
    Access, Call, ErrorCode, GET_OBJECT, LIST_BUCKET, Params, Tool, ToolError, ToolInfo, Toolset,
};
use crate::error::ArgumentError;
use crate::quilt::error::QuiltError;
use crate::quilt::registry::Registry;
use crate::quilt::{self, PackageName, manifest_key, parse_pointer, pointer_prefix};
use crate::s3::{ListRequest, S3, S3Uri};
use crate::time::rfc3339;

/// `package_revisions`.
pub(crate) struct PackageRevisions;

/// Default `max_revisions`.
pub(crate) const DEFAULT_MAX_REVISIONS: u64 = 100;
/// Largest `max_revisions`.
pub(crate) const MAX_REVISIONS: u64 = 1000;
/// Longest `cursor`, in characters.
const MAX_CURSOR_CHARS: usize = 64;
/// Pointer and manifest reads in flight at once.
const CONCURRENCY: usize = 16;
/// The bytes of a manifest asked for first: its first line, the header, nearly always
/// fits.
const FIRST_RANGE: usize = 64 * 1024;
/// The most bytes of a manifest read to find the end of its first line.
const MAX_HEADER_BYTES: usize = 1024 * 1024;
/// The most pointer keys a page lists (a thousand `ListObjectsV2` requests): a
/// package with more revisions is `too_large` rather than an unbounded wait.
const MAX_LISTED: usize = 1_000_000;
/// The cursor's prefix, so that no other tool's cursor passes for one.
const CURSOR_TAG: &str = "rev1:";

/// Where a page starts: below this timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Before(u64);

impl Before {
    fn encode(self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{CURSOR_TAG}{}", self.0))
    }

    fn decode(cursor: &str) -> Option<Before> {
        if cursor.len() > MAX_CURSOR_CHARS {
            return None;
        }
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()?;
        stamp(text.strip_prefix(CURSOR_TAG)?).map(Before)
    }
}

/// The `cursor`, checked as it is parsed.
fn cursor<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Before>, D::Error> {
    let text = String::deserialize(deserializer)?;
    Before::decode(&text).map(Some).ok_or_else(|| {
        serde::de::Error::custom("not a next_cursor of package_revisions; start again without it")
    })
}

/// The time of a timestamp pointer's name: decimal Unix seconds, as quilt3 writes
/// them (no sign, no leading zero); `None` for any other name (`latest`, …).
fn stamp(name: &str) -> Option<u64> {
    let n: u64 = name.parse().ok()?;
    (n.to_string() == name).then_some(n)
}

/// `package_revisions` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct RevisionsArgs {
    /// The package, `namespace/name` (or give `uri`).
    #[serde(default)]
    package_name: Option<PackageName>,
    /// The registry bucket: `s3://bucket` or a bucket name (or give `uri`).
    #[serde(default)]
    registry: Option<Bucket>,
    /// The package as the catalog names it, in place of `registry` and `package_name`:
    /// `quilt+s3://BUCKET#package=NS/NAME` (a revision or `path` in it is not used:
    /// every revision is listed).
    #[serde(default)]
    uri: Option<PackageUri>,
    /// Most revisions to return, 1 to 1000 (default 100); `next_cursor` pages on.
    #[serde(default)]
    max_revisions: Option<Bounded<1, MAX_REVISIONS>>,
    /// The `next_cursor` of the page before (same package), for the next, older page.
    #[serde(default, deserialize_with = "cursor")]
    #[schemars(with = "Option<String>", length(min = 1, max = MAX_CURSOR_CHARS))]
    cursor: Option<Before>,
}

/// `package_revisions` parameters: the package named by `uri` or by `registry` and
/// `package_name`.
#[derive(Debug, Deserialize)]
#[serde(try_from = "RevisionsArgs")]
pub(crate) struct RevisionsParams {
    bucket: String,
    package_name: PackageName,
    max_revisions: Option<Bounded<1, MAX_REVISIONS>>,
    cursor: Option<Before>,
}
checked_params!(RevisionsParams, RevisionsArgs);

impl TryFrom<RevisionsArgs> for RevisionsParams {
    type Error = ArgumentError;
    fn try_from(args: RevisionsArgs) -> Result<RevisionsParams, ArgumentError> {
        let package = Named {
            registry: args.registry,
            package_name: args.package_name,
            ..Named::default()
        }
        .with(args.uri)?;
        Ok(RevisionsParams {
            bucket: package.bucket,
            package_name: package.name,
            max_revisions: args.max_revisions,
            cursor: args.cursor,
        })
    }
}

impl Params for RevisionsParams {
    fn access(&self) -> Access {
        Access::needs(&[LIST_BUCKET, GET_OBJECT]).bucket(&self.bucket)
    }
}

/// One revision.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct RevisionItem {
    /// Its top hash (`null` when its pointer could not be read: see `error`).
    top_hash: Option<String>,
    /// When it was pushed (the timestamp pointer's time), RFC 3339.
    modified: Option<String>,
    /// Its commit message (`null` when it has none).
    message: Option<String>,
    /// Whether `latest` points at this revision's top hash.
    is_latest: bool,
    /// The revision's page in the Quilt catalog, when the server knows the catalog
    /// (`QUILT_CATALOG_URL`).
    #[serde(skip_serializing_if = "Option::is_none")]
    catalog_url: Option<String>,
    /// `quilt+s3://bucket#package=ns/name@top_hash`.
    #[serde(skip_serializing_if = "Option::is_none")]
    uri: Option<String>,
    /// Why this revision's pointer or manifest could not be read, for it alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// The result of `package_revisions`.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct RevisionsOutput {
    /// `s3://bucket`.
    registry: String,
    /// `namespace/name`.
    package_name: String,
    /// This page's revisions, newest first.
    revisions: Vec<RevisionItem>,
    /// How many on this page.
    count: usize,
    /// Whether older revisions follow this page.
    truncated: bool,
    /// Pass as `cursor` for the next, older page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
    /// Why the `latest` pointer could not be read (then no revision `is_latest`).
    #[serde(skip_serializing_if = "Option::is_none")]
    latest_error: Option<String>,
}

impl Tool for PackageRevisions {
    const INFO: ToolInfo = ToolInfo::reads(
        Toolset::Packages,
        "package_revisions",
        "List package revisions",
        "List the revisions of a Quilt package, newest first, a page at a time \
            (`max_revisions`, default 100; pass `next_cursor` back as `cursor` for older \
            ones): each revision's top hash, time, message and whether `latest` points at \
            it. Give a top hash to package_browse or package_diff to look inside.",
    );
    type Params = RevisionsParams;
    type Output = RevisionsOutput;

    fn example() -> Value {
        serde_json::json!({"registry": "b", "package_name": "ns/pkg"})
    }

    async fn run(call: Call<'_>, p: RevisionsParams) -> Result<RevisionsOutput, ToolError> {
        let s3 = call.s3()?;
        let bucket = p.bucket.as_str();
        let name = p.package_name.as_str();
        let max = p.max_revisions.map_or(DEFAULT_MAX_REVISIONS, Bounded::get);
        let max = usize::try_from(max).unwrap_or(usize::MAX);
        let (stamps, more) = tokio::select! {
            listed = newest_stamps(S3::new(s3), bucket, name, p.cursor, max) => listed?,
            () = call.cancel.cancelled() => {
                return Err(ToolError::new(ErrorCode::Cancelled, "cancelled by the client"));
            }
        };
        // A corrupt `latest` is reported beside the revisions, not instead of them.
        let (latest, latest_error) = match Registry::new(s3, bucket).latest(name).await {
            Ok(latest) => (latest, None),
            Err(QuiltError::Integrity(problem)) => (None, Some(problem)),
            Err(other) => return Err(other.into()),
        };
        if stamps.is_empty() && p.cursor.is_none() && latest.is_none() && latest_error.is_none() {
            return Err(ToolError::new(
                ErrorCode::NotFound,
                format!(
                    "package {name} does not exist in s3://{bucket}; call package_list to see its packages"
                ),
            ));
        }
        let mut revisions = tokio::select! {
            read = read_revisions(s3, bucket, name, &stamps, latest.as_deref()) => read?,
            () = call.cancel.cancelled() => {
                return Err(ToolError::new(ErrorCode::Cancelled, "cancelled by the client"));
            }
        };
        for revision in &mut revisions {
            revision.catalog_url = revision
                .top_hash
                .as_deref()
                .and_then(|hash| search::package_link(call.catalog_url, bucket, name, hash, ""));
        }
        let next_cursor = more
            .then(|| stamps.last().map(|oldest| Before(*oldest).encode()))
            .flatten();
        Ok(RevisionsOutput {
            registry: format!("s3://{bucket}"),
            package_name: p.package_name.into_string(),
            count: revisions.len(),
            revisions,
            truncated: next_cursor.is_some(),
            next_cursor,
            latest_error,
        })
    }
}

/// The newest `max` timestamps of `name`'s pointers below `before`, newest first, and
/// whether older ones exist. Lists every pointer of the package, holding at most
/// `max + 1` timestamps.
async fn newest_stamps(
    s3: S3<'_>,
    bucket: &str,
    name: &str,
    before: Option<Before>,
    max: usize,
) -> Result<(Vec<u64>, bool), ToolError> {
    let prefix = pointer_prefix(name);
    let mut pages = s3.list(ListRequest::prefix(bucket, &prefix));
    // The newest max + 1 seen so far; the smallest on top, to be dropped first.
    let mut newest: BinaryHeap<Reverse<u64>> = BinaryHeap::with_capacity(max.saturating_add(2));
    let mut listed = 0usize;
    while let Some(page) = pages.next_page().await {
        let page = page?;
        listed += page.objects.len();
        if listed > MAX_LISTED {
            return Err(ToolError::new(
                ErrorCode::TooLarge,
                format!(
                    "package {name} in s3://{bucket} has more than {MAX_LISTED} pointers, more than this server lists"
                ),
            ));
        }
        for object in page.objects {
            let Some(time) = object.key.strip_prefix(&prefix).and_then(stamp) else {
                continue;
            };
            if before.is_some_and(|b| time >= b.0) {
                continue;
            }
            newest.push(Reverse(time));
            if newest.len() > max + 1 {
                newest.pop();
            }
        }
    }
    let mut stamps: Vec<u64> = newest.into_iter().map(|Reverse(t)| t).collect();
    stamps.sort_unstable_by(|a, b| b.cmp(a));
    let more = stamps.len() > max;
    stamps.truncate(max);
    Ok((stamps, more))
}

/// Each revision of `stamps` (newest first) with its top hash and message.
async fn read_revisions(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    name: &str,
    stamps: &[u64],
    latest: Option<&str>,
) -> Result<Vec<RevisionItem>, ToolError> {
    let registry = Registry::new(s3, bucket);
    let prefix = pointer_prefix(name);
    let pointers: Vec<Result<String, Unreadable>> = futures::stream::iter(stamps.iter().copied())
        .map(|time| read_pointer(&registry, format!("{prefix}{time}")))
        .buffered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, ToolError>>()?;
    let mut hashes: Vec<String> = pointers.iter().filter_map(|p| p.clone().ok()).collect();
    hashes.sort_unstable();
    hashes.dedup();
    let messages: HashMap<String, Result<Option<String>, Unreadable>> =
        futures::stream::iter(hashes)
            .map(|hash| async move {
                let message = first_line_message(S3::new(s3), bucket, &hash).await;
                (hash, message)
            })
            .buffered(CONCURRENCY)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .map(|(hash, message)| message.map(|m| (hash, m)))
            .collect::<Result<_, ToolError>>()?;
    Ok(stamps
        .iter()
        .zip(pointers)
        .map(|(time, pointer)| {
            let modified = i64::try_from(*time).ok().and_then(rfc3339);
            match pointer {
                Ok(hash) => {
                    let (message, error) = match messages.get(hash.as_str()) {
                        Some(Ok(message)) => (message.clone(), None),
                        Some(Err(problem)) => (None, Some(problem.0.clone())),
                        None => (None, None),
                    };
                    RevisionItem {
                        is_latest: latest == Some(hash.as_str()),
                        uri: Some(quilt::package_uri(bucket, name, &hash)),
                        top_hash: Some(hash),
                        modified,
                        message,
                        error,
                        catalog_url: None,
                    }
                }
                Err(problem) => RevisionItem {
                    top_hash: None,
                    modified,
                    message: None,
                    is_latest: false,
                    uri: None,
                    error: Some(problem.0),
                    catalog_url: None,
                },
            }
        })
        .collect())
}

/// Why one revision could not be read: shown as its `error`, for it alone.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Unreadable(String);

/// The top hash a timestamp pointer holds: `Ok(Err(problem))` when this pointer alone
/// is unreadable (corrupt, or removed since it was listed).
async fn read_pointer(
    registry: &Registry<'_>,
    key: String,
) -> Result<Result<String, Unreadable>, ToolError> {
    let uri = format!("s3://{}/{key}", registry.bucket());
    match registry.get_small(&key).await {
        Ok(Some(body)) => Ok(parse_pointer(&body)
            .ok_or_else(|| Unreadable(format!("{uri} does not hold a top hash")))),
        Ok(None) => Ok(Err(Unreadable(format!(
            "{uri} was removed while it was read"
        )))),
        Err(QuiltError::Integrity(problem)) => Ok(Err(Unreadable(problem))),
        Err(other) => Err(other.into()),
    }
}

/// The `message` of the manifest `top_hash`, from its first line, read with ranged
/// GETs of at most [`MAX_HEADER_BYTES`]: `Ok(Err(problem))` when this revision's
/// manifest is missing or its first line is not a header; an error for a failure of
/// the registry itself.
async fn first_line_message(
    s3: S3<'_>,
    bucket: &str,
    top_hash: &str,
) -> Result<Result<Option<String>, Unreadable>, ToolError> {
    let mut want = FIRST_RANGE;
    loop {
        let Some(bytes) = read_prefix(s3, bucket, top_hash, want).await? else {
            return Ok(Err(Unreadable(format!(
                "the manifest {top_hash} is missing from s3://{bucket}"
            ))));
        };
        let line = match bytes.iter().position(|b| *b == b'\n') {
            Some(end) => &bytes[..end],
            // The whole manifest, one line long.
            None if bytes.len() < want => &bytes[..],
            None if want < MAX_HEADER_BYTES => {
                want = MAX_HEADER_BYTES;
                continue;
            }
            None => {
                return Ok(Err(Unreadable(format!(
                    "the first line of the manifest {top_hash} is longer than {} KiB",
                    MAX_HEADER_BYTES / 1024
                ))));
            }
        };
        return Ok(match serde_json::from_slice::<Value>(line) {
            Ok(Value::Object(header)) => Ok(header
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_owned)),
            _ => Err(Unreadable(format!(
                "the first line of the manifest {top_hash} is not a JSON object"
            ))),
        });
    }
}

/// The first `n` bytes of the manifest `top_hash` (fewer when it is shorter), `None`
/// when it does not exist: a ranged read, which reads no further than `n` bytes even
/// from an endpoint that ignores the range.
async fn read_prefix(
    s3: S3<'_>,
    bucket: &str,
    top_hash: &str,
    n: usize,
) -> Result<Option<Vec<u8>>, ToolError> {
    let uri = S3Uri::new(bucket, &manifest_key(top_hash));
    match s3.read_range(&uri, 0, n as u64).await {
        Ok(chunk) => Ok(Some(chunk.bytes)),
        Err(error) if error.is_not_found() => Ok(None),
        Err(error) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: Value) -> Result<RevisionsParams, String> {
        serde_json::from_value(args).map_err(|e| e.to_string())
    }

    #[test]
    fn timestamps_are_canonical_decimal_seconds() {
        for (name, want) in [
            ("1700000000", Some(1_700_000_000)),
            ("0", Some(0)),
            ("latest", None),
            ("01700000000", None),
            ("+1700000000", None),
            ("1700000000.5", None),
            ("", None),
            ("99999999999999999999999", None),
        ] {
            assert_eq!(stamp(name), want, "{name:?}");
        }
    }

    #[test]
    fn cursors_round_trip_and_nothing_else_passes() {
        let before = Before(1_700_000_123);
        assert_eq!(Before::decode(&before.encode()), Some(before));
        let other_tool = URL_SAFE_NO_PAD.encode("team/pkg");
        for bad in [
            "",
            "not base64!",
            other_tool.as_str(),
            &URL_SAFE_NO_PAD.encode("rev1:01"),
            &URL_SAFE_NO_PAD.encode("rev1:latest"),
            &"A".repeat(MAX_CURSOR_CHARS + 4),
        ] {
            assert_eq!(Before::decode(bad), None, "{bad:?}");
        }
    }

    /// Every bad argument fails as it is parsed, before the gate asks for credentials.
    #[test]
    fn bad_arguments_fail_as_they_are_parsed() {
        let ok = parse(serde_json::json!({"registry": "b", "package_name": "ns/pkg"})).unwrap();
        assert_eq!((ok.max_revisions, ok.cursor), (None, None));
        let cursor = Before(5).encode();
        let full = parse(serde_json::json!({
            "registry": "s3://b", "package_name": "ns/pkg", "max_revisions": 1000, "cursor": cursor,
        }))
        .unwrap();
        assert_eq!(
            (full.max_revisions.map(Bounded::get), full.cursor),
            (Some(1000), Some(Before(5)))
        );
        for (args, want) in [
            (
                serde_json::json!({"registry": "b", "package_name": "nopkg"}),
                "not a package name",
            ),
            (
                serde_json::json!({"registry": "b", "package_name": "a/b/c"}),
                "not a package name",
            ),
            (
                serde_json::json!({"registry": "b", "package_name": "ns/pkg", "max_revisions": 0}),
                "from 1 to 1000",
            ),
            (
                serde_json::json!({"registry": "b", "package_name": "ns/pkg", "max_revisions": 1001}),
                "from 1 to 1000",
            ),
            (
                serde_json::json!({"registry": "b", "package_name": "ns/pkg", "max_revisions": -1}),
                "from 1 to 1000",
            ),
            (
                serde_json::json!({"registry": "b", "package_name": "ns/pkg", "cursor": "zzz"}),
                "not a next_cursor",
            ),
            (
                serde_json::json!({"registry": "s3://b/k", "package_name": "ns/pkg"}),
                "",
            ),
        ] {
            let error = parse(args.clone()).unwrap_err();
            assert!(error.contains(want), "{args}: {error}");
        }
    }
}
