//! The package tools: `package_list`, `package_browse`, `package_diff` and
//! `package_create`, on the registry layout quilt3 and the catalog use. The package
//! format and its I/O live in [`crate::quilt`]; here are the tools' parameters,
//! results and the steps that tie them to it.

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use super::package_uri::{Named, PackageUri, WriteTarget, same_revision};
use super::policy;
use super::search;
use super::uri::{
    Bounded, Bucket, MAX_KEY_BYTES, ObjectUri, S3Name, SourceUri, blank_is_none, checked_params,
    short,
};
use super::{
    Access, Call, ErrorCode, GET_OBJECT, GET_OBJECT_VERSION, LIST_BUCKET, PUT_OBJECT, Params,
    Permission, Tool, ToolError, ToolInfo, Toolset, cancellable,
};
use crate::error::ArgumentError;
use crate::quilt::browse::{self, MAX_DIRECTORIES, PageEntry, PageRequest};
use crate::quilt::error::QuiltError;
use crate::quilt::publish::{self, Source};
use crate::quilt::registry::Registry;
use crate::quilt::workflow;
use crate::quilt::{self, HashPrefix, NewPackageName, PackageName, diff, stream};
use crate::quilt::{cache, listing};
use crate::s3::{ListRequest, S3};
use crate::time::rfc3339;

/// Default `max_entries` of `package_browse`.
pub(crate) const DEFAULT_MAX_ENTRIES: usize = 1000;
/// Largest `max_entries` of `package_browse`.
pub(crate) const MAX_ENTRIES: usize = 100_000;
/// Default `max_changes` of `package_diff`.
pub(crate) const DEFAULT_MAX_CHANGES: usize = 1000;
/// Largest `max_changes` of `package_diff`.
pub(crate) const MAX_CHANGES: usize = 100_000;

/// Longest `cursor` of `package_browse`, in characters.
pub(crate) const MAX_CURSOR_CHARS: usize = 16 * 1024;
/// Most entries `package_create` makes.
pub(crate) const MAX_CREATE_ENTRIES: usize = 100_000;

pub(crate) fn registry_uri(bucket: &str) -> String {
    format!("s3://{bucket}")
}

// ---------------------------------------------------------------------------------
// package_list

/// `package_list`.
pub(crate) struct PackageList;

/// Default `max_packages` of `package_list`.
pub(crate) const DEFAULT_MAX_PACKAGES: u64 = 1000;
/// Largest `max_packages` of `package_list`.
pub(crate) const MAX_PACKAGES: u64 = 10_000;
/// Longest `cursor` of `package_list`: the base64 of a package name of up to 1024 bytes.
pub(crate) const MAX_LIST_CURSOR_CHARS: usize = 1400;

/// `package_list` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct ListArgs {
    /// The registry bucket: `s3://bucket` or a bucket name.
    registry: Bucket,
    /// Only packages whose `namespace/name` starts with this, such as `team/` or `team/exp`.
    #[serde(default)]
    prefix: Option<S3Name>,
    /// Most packages to return, 1 to 10000 (default 1000); `next_cursor` pages on.
    #[serde(default)]
    max_packages: Option<Bounded<1, MAX_PACKAGES>>,
    /// `next_cursor` of the page before (same `registry` and `prefix`), to get the next one.
    #[serde(default)]
    #[schemars(length(min = 1, max = MAX_LIST_CURSOR_CHARS))]
    cursor: Option<String>,
    /// Also read each listed package's `latest` pointer for `top_hash` and `modified` (default false: names only, which is much faster).
    #[serde(default)]
    include_details: Option<bool>,
}

/// `package_list` parameters: the arguments, with the cursor decoded and checked
/// against the prefix.
#[derive(Debug, Deserialize)]
#[serde(try_from = "ListArgs")]
pub(crate) struct ListParams {
    args: ListArgs,
    /// The package the page before ended on.
    after: Option<String>,
}
checked_params!(ListParams, ListArgs);

impl TryFrom<ListArgs> for ListParams {
    type Error = ArgumentError;
    fn try_from(args: ListArgs) -> Result<ListParams, ArgumentError> {
        let prefix = args.prefix.as_ref().map_or("", S3Name::as_str);
        let after = args
            .cursor
            .as_deref()
            .map(|c| parse_list_cursor(c, prefix))
            .transpose()?;
        Ok(ListParams { args, after })
    }
}

impl Params for ListParams {
    fn access(&self) -> Access {
        let mut access = Access::needs(&[LIST_BUCKET]).bucket(self.args.registry.name());
        if self.args.include_details == Some(true) {
            access.also_needs(GET_OBJECT);
        }
        access
    }
}

/// One package.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct PackageItem {
    /// `namespace/name`.
    name: String,
    /// With `include_details`: the latest revision's top hash (absent when its pointer is missing or corrupt).
    #[serde(skip_serializing_if = "Option::is_none")]
    top_hash: Option<String>,
    /// With `include_details`: when `latest` was written, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    modified: Option<String>,
    /// With `include_details`: why the latest revision could not be read, for this package alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// The result of `package_list`.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct ListOutput {
    /// `s3://bucket`.
    registry: String,
    /// The packages of this page, in key order (a name followed by `/`, so `a/b-c`
    /// comes before `a/b`).
    packages: Vec<PackageItem>,
    /// How many on this page.
    count: usize,
    /// Whether more packages follow this page.
    truncated: bool,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// The cursor after package `name`.
fn list_cursor(name: &str) -> String {
    URL_SAFE_NO_PAD.encode(name)
}

/// The package a `cursor` names, checked against the listing's `prefix`.
fn parse_list_cursor(cursor: &str, prefix: &str) -> Result<String, ArgumentError> {
    let invalid = || {
        ArgumentError::new(
            "`cursor` is not a next_cursor of package_list for this registry and prefix; start again without it",
        )
    };
    if cursor.is_empty() || cursor.len() > MAX_LIST_CURSOR_CHARS {
        return Err(invalid());
    }
    let name = URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(invalid)?;
    // Any name a listing can end a page on: `ns/name`, both parts non-empty.
    let listed = name
        .split_once('/')
        .is_some_and(|(ns, short)| !ns.is_empty() && !short.is_empty() && !short.contains('/'));
    if !listed || name.contains('\0') || name.len() > MAX_KEY_BYTES || !name.starts_with(prefix) {
        return Err(invalid());
    }
    Ok(name)
}

impl Tool for PackageList {
    const INFO: ToolInfo = ToolInfo::reads(
        Toolset::Packages,
        "package_list",
        "List packages",
        "List the Quilt packages in a registry bucket by name, a page at a time \
            (`max_packages`, default 1000; pass `next_cursor` back as `cursor` for the next \
            page). With `include_details`, each package's latest top hash and when it was \
            published. Use `prefix` to narrow down to a namespace.",
    );
    type Params = ListParams;
    type Output = ListOutput;

    fn example() -> serde_json::Value {
        serde_json::json!({"registry": "s3://b"})
    }

    async fn run(call: Call<'_>, p: ListParams) -> Result<ListOutput, ToolError> {
        let ListParams { args, after } = p;
        let bucket = args.registry.name();
        let max = args.max_packages.map_or(DEFAULT_MAX_PACKAGES, Bounded::get);
        let prefix = args.prefix.as_ref().map_or("", S3Name::as_str);
        let registry = Registry::new(call.s3()?, bucket);
        let page = cancellable(
            call.cancel,
            listing::list(
                &registry,
                prefix,
                after.as_deref(),
                usize::try_from(max).unwrap_or(1),
                args.include_details == Some(true),
            ),
        )
        .await?;
        let packages: Vec<PackageItem> = page
            .packages
            .into_iter()
            .map(|pkg| PackageItem {
                name: pkg.name,
                top_hash: pkg.top_hash,
                error: pkg.error,
                modified: pkg.modified.and_then(rfc3339),
            })
            .collect();
        Ok(ListOutput {
            registry: registry_uri(bucket),
            count: packages.len(),
            packages,
            truncated: page.next_after.is_some(),
            next_cursor: page.next_after.as_deref().map(list_cursor),
        })
    }
}

// ---------------------------------------------------------------------------------
// package_browse

/// `package_browse`.
pub(crate) struct PackageBrowse;

/// `package_browse` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct BrowseArgs {
    /// The package, `namespace/name` (or give `uri`).
    #[serde(default)]
    package_name: Option<PackageName>,
    /// The registry bucket: `s3://bucket` or a bucket name (or give `uri`).
    #[serde(default)]
    registry: Option<Bucket>,
    /// The package as the catalog names it, in place of `registry`, `package_name`,
    /// `top_hash` and `path`: `quilt+s3://BUCKET#package=NS/NAME[@TOP_HASH|:latest][&path=PATH]`.
    #[serde(default)]
    uri: Option<PackageUri>,
    /// A revision's top hash, in full or a unique prefix of at least 6 characters
    /// (default: the latest revision).
    #[serde(default, deserialize_with = "blank_is_none")]
    top_hash: Option<HashPrefix>,
    /// Only entries under this logical path, such as `data/` (default: all).
    #[serde(default)]
    path: Option<String>,
    /// Most entries to return (default 1000, at most 100000); `truncated` says when more exist.
    #[serde(default)]
    max_entries: Option<Bounded<1, { MAX_ENTRIES as u64 }>>,
    /// The `next_cursor` of the page before, to get the next page (of the same revision
    /// and path, even if `latest` moved since).
    #[serde(default)]
    #[schemars(length(max = MAX_CURSOR_CHARS))]
    cursor: Option<String>,
}

/// `package_browse` parameters: the arguments, with the package named by `uri` or by
/// `registry` and `package_name`, and the cursor decoded and checked against the path
/// and the top hash.
#[derive(Debug, Deserialize)]
#[serde(try_from = "BrowseArgs")]
pub(crate) struct BrowseParams {
    /// The package, its revision (`None`: latest) and path.
    package: PackageUri,
    max_entries: Option<Bounded<1, { MAX_ENTRIES as u64 }>>,
    /// The path, without leading or trailing `/`.
    path: String,
    cursor: Option<Cursor>,
}
checked_params!(BrowseParams, BrowseArgs);

impl TryFrom<BrowseArgs> for BrowseParams {
    type Error = ArgumentError;
    fn try_from(args: BrowseArgs) -> Result<BrowseParams, ArgumentError> {
        let package = Named {
            registry: args.registry,
            package_name: args.package_name,
            top_hash: args.top_hash,
            path: args.path,
        }
        .with(args.uri)?;
        let path = package.path.clone().unwrap_or_default();
        let cursor = args.cursor.as_deref().map(decode_cursor).transpose()?;
        if let Some(cursor) = &cursor {
            if cursor.package != package.name.as_str() {
                return Err(ArgumentError::new(format!(
                    "`cursor` pages through package {}, not {}; pass the same `package_name` or start again without `cursor`",
                    cursor.package,
                    package.name.as_str()
                )));
            }
            if cursor.path != path {
                return Err(ArgumentError::new(format!(
                    "`cursor` pages through path {:?}, not {path:?}; pass the same `path` or start again without `cursor`",
                    cursor.path
                )));
            }
            if let Some(given) = &package.top_hash
                && !cursor.top_hash.starts_with(given.as_str())
            {
                return Err(cursor_revision_mismatch(&cursor.top_hash, given.as_str()));
            }
        }
        Ok(BrowseParams {
            package,
            max_entries: args.max_entries,
            path,
            cursor,
        })
    }
}

fn cursor_revision_mismatch(pinned: &str, given: &str) -> ArgumentError {
    ArgumentError::new(format!(
        "`cursor` pages through revision {pinned}, not {given}; leave out `top_hash` or start again without `cursor`"
    ))
}

impl Params for BrowseParams {
    fn access(&self) -> Access {
        // A hash prefix is resolved by listing the registry's manifests.
        self.package.access()
    }
}

/// One entry of a revision.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct EntryItem {
    /// Its path in the package.
    logical_key: String,
    /// Its size in bytes.
    size: u64,
    /// `{type, value}`.
    hash: HashItem,
    /// Where the bytes are: `s3://bucket/key?versionId=…`.
    physical_key: Option<String>,
    /// The entry's metadata.
    #[schemars(with = "Value")]
    meta: Box<RawValue>,
}

/// An entry's hash.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct HashItem {
    /// `sha2-256-chunked`, `SHA256` or `CRC64NVME`.
    #[serde(rename = "type")]
    kind: String,
    /// The digest.
    value: String,
}

/// A JSON text read from a verified manifest, passed on as it is (`null` when
/// absent): the result is serialized from it without building a tree.
fn raw_value(raw: Option<Box<str>>) -> Box<RawValue> {
    raw.and_then(|raw| RawValue::from_string(raw.into_string()).ok())
        .unwrap_or_default()
}

impl EntryItem {
    fn of(entry: PageEntry) -> EntryItem {
        EntryItem {
            meta: raw_value(entry.meta),
            logical_key: entry.logical_key,
            size: entry.size,
            hash: HashItem {
                kind: entry.hash_type,
                value: entry.hash_value,
            },
            physical_key: entry.physical_key,
        }
    }
}

/// An immediate sub-directory of the path.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct DirectoryItem {
    /// The directory, ending in `/`.
    logical_key: String,
    /// How many entries are under it, at any depth.
    entry_count: u64,
    /// Their total size.
    total_size: u64,
    /// Its directory metadata, when the manifest has any.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Value>")]
    meta: Option<Box<RawValue>>,
    /// True when it has directory metadata too large to show in a result.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    meta_too_large: bool,
}

/// The result of `package_browse`.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct BrowseOutput {
    /// `s3://bucket`.
    registry: String,
    /// `namespace/name`.
    package_name: String,
    /// The revision shown.
    top_hash: String,
    /// Its `quilt+s3://` URI.
    uri: String,
    /// Its commit message.
    #[schemars(with = "Value")]
    message: Box<RawValue>,
    /// Its package metadata.
    #[schemars(with = "Value")]
    user_meta: Box<RawValue>,
    /// Its workflow, if any.
    #[schemars(with = "Value")]
    workflow: Box<RawValue>,
    /// The path the entries are under, without leading or trailing `/` (empty: all).
    path: String,
    /// This page's entries, in logical-key order.
    entries: Vec<EntryItem>,
    /// How many entries the revision (or path) has, in all pages.
    entry_count: u64,
    /// Their total size.
    total_size: u64,
    /// Whether entries follow this page.
    truncated: bool,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
    /// The immediate sub-directories of the path (of the whole revision, not only this
    /// page), the first 1000 in logical-key order, each with the count and total size
    /// of the entries under it and its directory metadata. On the first page only (a
    /// call without `cursor`): the pages after it leave it out rather than repeat it.
    #[serde(skip_serializing_if = "Option::is_none")]
    directories: Option<Vec<DirectoryItem>>,
    /// Whether more sub-directories exist than `directories` lists (first page only).
    #[serde(skip_serializing_if = "Option::is_none")]
    directories_truncated: Option<bool>,
    /// The revision's page (at `path`) in the Quilt catalog, when the server knows the
    /// catalog (`QUILT_CATALOG_URL`).
    #[serde(skip_serializing_if = "Option::is_none")]
    catalog_url: Option<String>,
}

/// What a `package_browse` cursor holds: the page after `after` of `path` in revision
/// `top_hash` of package `package`; `offset`, where the line of `after` starts in the
/// manifest, is a hint the server checks before it uses it. Opaque to clients:
/// base64url of this JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Cursor {
    v: u32,
    package: String,
    top_hash: String,
    path: String,
    after: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    offset: Option<u64>,
}

const CURSOR_VERSION: u32 = 2;

fn encode_cursor(
    package: &str,
    top_hash: &str,
    path: &str,
    after: &str,
    offset: Option<u64>,
) -> Result<String, ToolError> {
    let cursor = Cursor {
        v: CURSOR_VERSION,
        package: package.to_owned(),
        top_hash: top_hash.to_owned(),
        path: path.to_owned(),
        after: after.to_owned(),
        offset,
    };
    let json = serde_json::to_vec(&cursor)
        .map_err(|e| ToolError::new(ErrorCode::InternalError, e.to_string()))?;
    let text = URL_SAFE_NO_PAD.encode(json);
    if text.len() > MAX_CURSOR_CHARS {
        return Err(ToolError::new(
            ErrorCode::TooLarge,
            format!(
                "the last logical key of this page is too long to page after (a cursor is at most {MAX_CURSOR_CHARS} characters); narrow the listing with `path`"
            ),
        ));
    }
    Ok(text)
}

fn decode_cursor(text: &str) -> Result<Cursor, ArgumentError> {
    let bad = || {
        ArgumentError::new(
            "`cursor` is not a cursor of package_browse: pass the next_cursor of the page before, unchanged",
        )
    };
    if text.len() > MAX_CURSOR_CHARS {
        return Err(ArgumentError::new(format!(
            "`cursor` is {} characters long; a cursor of package_browse is at most {MAX_CURSOR_CHARS}",
            text.len()
        )));
    }
    let json = URL_SAFE_NO_PAD.decode(text.trim()).map_err(|_| bad())?;
    let cursor: Cursor = serde_json::from_slice(&json).map_err(|_| bad())?;
    if cursor.v != CURSOR_VERSION || !quilt::is_top_hash(&cursor.top_hash) {
        return Err(bad());
    }
    Ok(cursor)
}

impl Tool for PackageBrowse {
    const INFO: ToolInfo = ToolInfo::reads(
        Toolset::Packages,
        "package_browse",
        "Browse a package",
        "Show a package revision: its message and metadata, and its files (logical \
            key, size, hash, physical S3 location, metadata), optionally under a `path`, a page \
            at a time in logical-key order (pass `next_cursor` as `cursor` for the next page), \
            with counts and a summary of its sub-directories. The revision's top hash is \
            verified. A `quilt+s3://` URI from the catalog can be passed as `uri` instead of \
            `registry`, `package_name`, `top_hash` and `path`. To read a file, pass its \
            physical_key as `s3_uri`, or the package's `uri` with `&path=FILE`, to \
            bucket_object_text or bucket_object_fetch.",
    );
    type Params = BrowseParams;
    type Output = BrowseOutput;

    fn example() -> serde_json::Value {
        serde_json::json!({"registry": "b", "package_name": "ns/pkg"})
    }

    async fn run(call: Call<'_>, p: BrowseParams) -> Result<BrowseOutput, ToolError> {
        let BrowseParams {
            package,
            max_entries,
            path,
            cursor,
        } = p;
        let bucket = package.bucket.as_str();
        let max_entries = max_entries.map_or(DEFAULT_MAX_ENTRIES, Bounded::get_usize);
        let registry = Registry::new(call.s3()?, bucket);
        let package_name = package.name.as_str();
        let top_hash = match (&cursor, package.top_hash.as_ref()) {
            // The cursor pins its revision, even if `latest` moved.
            (Some(cursor), None) => cursor.top_hash.clone(),
            (cursor, given) => {
                let resolved = registry.resolve(package_name, given).await?;
                if let Some(cursor) = cursor
                    && cursor.top_hash != resolved
                {
                    return Err(cursor_revision_mismatch(&cursor.top_hash, &resolved).into());
                }
                resolved
            }
        };
        let hint = cursor.as_ref().and_then(|c| c.offset);
        let first_page = cursor.is_none();
        let request = PageRequest {
            path,
            after: cursor.map(|c| c.after),
            max_entries,
            max_directories: MAX_DIRECTORIES,
        };
        let browsed = cancellable(
            call.cancel,
            cache::page(&registry, &top_hash, &request, hint),
        )
        .await?;
        let page = browsed.page;
        let next_cursor = match page.entries.last() {
            Some(last) if page.truncated => Some(encode_cursor(
                package_name,
                &top_hash,
                &request.path,
                &last.logical_key,
                browsed.sorted.then_some(last.offset),
            )?),
            _ => None,
        };
        let header = browsed.header;
        let summary = browsed.summary;
        // The catalog shows a directory at `path/`, a file at `path`.
        let page_path = match page.entries.first() {
            Some(first) if request.path.is_empty() || first.logical_key == request.path => {
                request.path.clone()
            }
            _ => format!("{}/", request.path),
        };
        let output = BrowseOutput {
            registry: registry_uri(bucket),
            uri: quilt::package_uri(bucket, package_name, &top_hash),
            package_name: package_name.to_owned(),
            message: raw_value(header.raw("message").map(Into::into)),
            user_meta: raw_value(header.raw("user_meta").map(Into::into)),
            workflow: raw_value(header.raw("workflow").map(Into::into)),
            entries: page.entries.into_iter().map(EntryItem::of).collect(),
            entry_count: summary.entry_count,
            total_size: summary.total_size,
            truncated: page.truncated,
            next_cursor,
            directories: first_page.then(|| {
                summary
                    .directories
                    .iter()
                    .map(|d| DirectoryItem {
                        logical_key: d.logical_key.clone(),
                        entry_count: d.entry_count,
                        total_size: d.total_size,
                        meta: d.meta.clone().map(|m| raw_value(Some(m))),
                        meta_too_large: d.meta_too_large,
                    })
                    .collect()
            }),
            directories_truncated: first_page.then_some(summary.directories_truncated),
            catalog_url: search::package_link(
                call.catalog_url,
                bucket,
                package_name,
                &top_hash,
                &page_path,
            ),
            top_hash,
            path: request.path,
        };
        // No last check here: the page's byte bounds count every value's growth.
        Ok(output)
    }
}

// ---------------------------------------------------------------------------------
// package_diff

/// `package_diff`.
pub(crate) struct PackageDiff;

/// `package_diff` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct DiffArgs {
    /// The first (older) package, `namespace/name` (or give `uri`).
    #[serde(default)]
    package1_name: Option<PackageName>,
    /// The second (newer) package (default: the same package).
    #[serde(default)]
    package2_name: Option<PackageName>,
    /// The registry bucket: `s3://bucket` or a bucket name (or give `uri`).
    #[serde(default)]
    registry: Option<Bucket>,
    /// The first package as the catalog names it, in place of `registry`,
    /// `package1_name` and `package1_hash`: `quilt+s3://BUCKET#package=NS/NAME[@TOP_HASH]`
    /// (no `path`: the whole revisions are compared).
    #[serde(default)]
    uri: Option<PackageUri>,
    /// The first package's revision (full top hash or a prefix of at least 6). Default:
    /// its latest revision, or, when comparing a package with itself and no hash is
    /// given, the revision before the latest.
    #[serde(default, deserialize_with = "blank_is_none")]
    package1_hash: Option<HashPrefix>,
    /// The second package's revision (default: its latest).
    #[serde(default, deserialize_with = "blank_is_none")]
    package2_hash: Option<HashPrefix>,
    /// Most logical keys in each list (default 1000, at most 100000); the `*_count`
    /// fields count them all.
    #[serde(default)]
    max_changes: Option<Bounded<0, { MAX_CHANGES as u64 }>>,
}

/// `package_diff` parameters: the first package named by `uri` or by `registry`,
/// `package1_name` and `package1_hash`.
#[derive(Debug, Deserialize)]
#[serde(try_from = "DiffArgs")]
pub(crate) struct DiffParams {
    registry: String,
    package1_name: PackageName,
    package2_name: Option<PackageName>,
    package1_hash: Option<HashPrefix>,
    package2_hash: Option<HashPrefix>,
    max_changes: Option<Bounded<0, { MAX_CHANGES as u64 }>>,
}
checked_params!(DiffParams, DiffArgs);

impl TryFrom<DiffArgs> for DiffParams {
    type Error = ArgumentError;
    fn try_from(args: DiffArgs) -> Result<DiffParams, ArgumentError> {
        let in_uri = args.uri.as_ref().and_then(|u| u.top_hash.clone());
        if let Some(path) = args.uri.as_ref().and_then(|u| u.path.as_deref()) {
            return Err(ArgumentError::new(format!(
                "`uri` names the file {:?}; package_diff compares whole revisions: leave `path` out",
                short(path)
            )));
        }
        let package = Named {
            registry: args.registry,
            package_name: args.package1_name,
            ..Named::default()
        }
        .with(args.uri.map(|u| PackageUri {
            top_hash: None,
            ..u
        }))
        .map_err(|e| {
            ArgumentError::new(e.to_string().replace("`package_name`", "`package1_name`"))
        })?;
        Ok(DiffParams {
            registry: package.bucket,
            package1_name: package.name,
            package2_name: args.package2_name,
            package1_hash: same_revision("package1_hash", args.package1_hash, in_uri)?,
            package2_hash: args.package2_hash,
            max_changes: args.max_changes,
        })
    }
}

impl Params for DiffParams {
    fn access(&self) -> Access {
        Access::needs(&[GET_OBJECT, LIST_BUCKET]).bucket(&self.registry)
    }
}

/// One side of a diff.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct DiffSide {
    /// `namespace/name`.
    name: String,
    /// The revision compared.
    top_hash: String,
    /// Its commit message.
    message: Option<String>,
}

/// The result of `package_diff`.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct DiffOutput {
    /// `s3://bucket`.
    registry: String,
    /// The older side.
    package1: DiffSide,
    /// The newer side.
    package2: DiffSide,
    /// Logical keys only in package2, in logical-key order (the first `max_changes`).
    added: Vec<String>,
    /// Logical keys only in package1 (the first `max_changes`).
    removed: Vec<String>,
    /// Logical keys whose hash or size changed (the first `max_changes`).
    modified: Vec<String>,
    /// Logical keys whose entry metadata changed (the first `max_changes`).
    metadata_changed: Vec<String>,
    /// How many logical keys were added, in all.
    added_count: u64,
    /// How many were removed.
    removed_count: u64,
    /// How many were modified.
    modified_count: u64,
    /// How many had their metadata changed.
    metadata_changed_count: u64,
    /// Whether a list holds fewer keys than its count.
    truncated: bool,
    /// Whether the message or package metadata changed.
    package_metadata_changed: bool,
    /// Entries of package2 neither added nor modified.
    unchanged: u64,
}

impl Tool for PackageDiff {
    const INFO: ToolInfo = ToolInfo::reads(
        Toolset::Packages,
        "package_diff",
        "Diff packages",
        "Compare two package revisions (two revisions of one package, or two \
            packages): logical keys added, removed, modified (hash or size) and with changed \
            metadata, each list with its count and cut at `max_changes`. With only \
            package1_name, compares its latest revision with the one before.",
    );
    type Params = DiffParams;
    type Output = DiffOutput;

    fn example() -> serde_json::Value {
        serde_json::json!({"registry": "b", "package1_name": "ns/pkg"})
    }

    async fn run(call: Call<'_>, p: DiffParams) -> Result<DiffOutput, ToolError> {
        let bucket = p.registry.as_str();
        let name1 = p.package1_name.into_string();
        let name2 = p
            .package2_name
            .map_or_else(|| name1.clone(), PackageName::into_string);
        let registry = Registry::new(call.s3()?, bucket);
        let (hash1, hash2) = if name1 == name2
            && p.package1_hash.is_none()
            && p.package2_hash.is_none()
        {
            let latest = registry.resolve(&name1, None).await?;
            let previous = registry
                    .previous_revision(&name1, &latest)
                    .await?
                    .ok_or_else(|| {
                        ToolError::invalid(format!(
                            "{name1} has only one revision; give package1_hash or package2_name to compare with"
                        ))
                    })?;
            (previous, latest)
        } else {
            (
                registry.resolve(&name1, p.package1_hash.as_ref()).await?,
                registry.resolve(&name2, p.package2_hash.as_ref()).await?,
            )
        };
        let limit = p
            .max_changes
            .map_or(DEFAULT_MAX_CHANGES, Bounded::get_usize);
        let hashes = [hash1.as_str(), hash2.as_str()];
        let (old, new, d) = cancellable(
            call.cancel,
            diff::diff(
                |index, order| stream::open(&registry, hashes[index], order),
                limit,
            ),
        )
        .await?;
        let message = |header: &quilt::line::Header| {
            header.message().map(|m| browse::truncate(&m).into_owned())
        };
        let output = DiffOutput {
            registry: registry_uri(bucket),
            package1: DiffSide {
                name: name1,
                message: message(&old),
                top_hash: hash1,
            },
            package2: DiffSide {
                name: name2,
                message: message(&new),
                top_hash: hash2,
            },
            added: d.added,
            removed: d.removed,
            modified: d.modified,
            metadata_changed: d.metadata_changed,
            added_count: d.added_count,
            removed_count: d.removed_count,
            modified_count: d.modified_count,
            metadata_changed_count: d.metadata_changed_count,
            truncated: d.truncated,
            package_metadata_changed: d.package_metadata_changed,
            unchanged: d.unchanged,
        };
        check_result_size(&output)?;
        Ok(output)
    }
}

/// The most bytes of a result's `structuredContent` (see `docs/reference.md`, Results).
pub(crate) const MAX_RESULT_BYTES: usize = 4 * 1024 * 1024;

/// `too_large` when `output` would not fit in a result: a last check behind the byte
/// bounds of pages, which keep results well under it.
fn check_result_size<T: Serialize>(output: &T) -> Result<(), ToolError> {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    serde_json::to_writer(&mut count, output)
        .map_err(|e| ToolError::new(ErrorCode::InternalError, e.to_string()))?;
    if count.0 >= MAX_RESULT_BYTES {
        return Err(ToolError::new(
            ErrorCode::TooLarge,
            format!(
                "the result would be {} bytes, over the {MAX_RESULT_BYTES}-byte limit; ask for fewer entries",
                count.0
            ),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// package_create

/// `package_create`.
pub(crate) struct PackageCreate;

/// `s3:DeleteObject`: not needed to publish; when the token grants it, a publish that
/// lost a race removes the timestamp pointer it wrote.
pub(crate) const DELETE_OBJECT: Permission = Permission::DeleteObject;

/// One entry of `package_create`.
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct CreateEntry {
    /// The path of the file inside the package, such as `data/measurements.csv`.
    pub(crate) logical_key: LogicalKey,
    /// The object: `s3://bucket/key`, optionally with `?versionId=…`.
    pub(crate) s3_uri: ObjectUri,
}

/// `package_create` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct CreateArgs {
    /// The package to create or revise, `namespace/name` (letters, digits, `_`, `-`;
    /// or give `uri`).
    #[serde(default)]
    package_name: Option<NewPackageName>,
    /// The registry bucket the package is written to: `s3://bucket` or a bucket name
    /// (or give `uri`).
    #[serde(default)]
    registry: Option<Bucket>,
    /// The package as the catalog names it, in place of `registry` and
    /// `package_name`: `quilt+s3://BUCKET#package=NS/NAME` (no `@TOP_HASH` and no
    /// `path`: a new revision is made).
    #[serde(default)]
    uri: Option<PackageUri>,
    /// Files to include, each an S3 object with its path in the package.
    #[serde(default)]
    entries: Vec<CreateEntry>,
    /// More files: an object URI adds that object under its file name; a URI ending in
    /// `/` adds every object under it, keyed relative to it.
    #[serde(default)]
    s3_uris: Vec<SourceUri>,
    /// The revision's commit message.
    #[serde(default)]
    message: Option<String>,
    /// Package-level metadata (a JSON object), stored as the manifest's `user_meta`.
    #[serde(default)]
    metadata: Option<serde_json::Map<String, Value>>,
    /// In a registry with a workflows config (`.quilt/workflows/config.yml`): the id
    /// of the workflow the package must pass (default: the config's
    /// `default_workflow`); `null` for none, where the config does not require one.
    #[serde(default, deserialize_with = "present")]
    workflow: Option<Option<String>>,
    /// Replace a package that already exists (default false: an existing package is
    /// refused with `conflict`; use package_patch to change some of its entries).
    #[serde(default)]
    overwrite: Option<bool>,
    /// Publish even if another revision became latest while this one was being made.
    #[serde(default)]
    force: Option<bool>,
}

/// `package_create` parameters: the package named by `uri` or by `registry` and
/// `package_name`, and the rest of the arguments.
#[derive(Debug, Deserialize)]
#[serde(try_from = "CreateArgs")]
pub(crate) struct CreateParams {
    bucket: String,
    package_name: NewPackageName,
    entries: Vec<CreateEntry>,
    s3_uris: Vec<SourceUri>,
    message: Option<String>,
    metadata: Option<serde_json::Map<String, Value>>,
    workflow: Option<Option<String>>,
    overwrite: Option<bool>,
    force: Option<bool>,
}
checked_params!(CreateParams, CreateArgs);

impl TryFrom<CreateArgs> for CreateParams {
    type Error = ArgumentError;
    fn try_from(args: CreateArgs) -> Result<CreateParams, ArgumentError> {
        let target = WriteTarget::named(args.registry, args.package_name, args.uri)?;
        if let Some(hash) = &target.top_hash {
            return Err(ArgumentError::new(format!(
                "`uri` names the revision @{}; package_create makes a new revision: leave `@TOP_HASH` out (package_patch builds on a given parent)",
                hash.as_str()
            )));
        }
        if let Some(path) = &target.path {
            return Err(ArgumentError::new(format!(
                "`uri` names the file {:?}; package_create names a package, not a file: leave `&path=` out (`entries` and `s3_uris` name the files)",
                short(path)
            )));
        }
        Ok(CreateParams {
            bucket: target.bucket,
            package_name: target.name,
            entries: args.entries,
            s3_uris: args.s3_uris,
            message: args.message,
            metadata: args.metadata,
            workflow: args.workflow,
            overwrite: args.overwrite,
            force: args.force,
        })
    }
}

/// A parameter that may be given as `null`, which is not the same as leaving it out.
pub(crate) fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

impl Params for CreateParams {
    /// Writing the registry (`s3:PutObject`), reading every source (`s3:GetObject`,
    /// `s3:GetObjectVersion` for a version), and listing every prefix
    /// (`s3:ListBucket`), on every bucket named.
    fn access(&self) -> Access {
        let access = Access::needs(&[PUT_OBJECT, GET_OBJECT]).bucket(&self.bucket);
        sources_access(access, &self.entries, &self.s3_uris)
    }
}

/// `access` with what reading the sources of `entries` and `uris` needs: each bucket,
/// `s3:GetObjectVersion` for a version, `s3:ListBucket` for a prefix.
pub(crate) fn sources_access(
    mut access: Access,
    entries: &[CreateEntry],
    uris: &[SourceUri],
) -> Access {
    for entry in entries {
        access = access.bucket(&entry.s3_uri.bucket);
        if entry.s3_uri.version_id.is_some() {
            access.also_needs(GET_OBJECT_VERSION);
        }
    }
    for uri in uris {
        access = access.bucket(&uri.bucket);
        if uri.is_prefix() {
            access.also_needs(LIST_BUCKET);
        }
        if uri.version_id.is_some() {
            access.also_needs(GET_OBJECT_VERSION);
        }
    }
    access
}

/// The result of `package_create`.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct CreateOutput {
    /// `s3://bucket`.
    registry: String,
    /// `namespace/name`.
    package_name: String,
    /// The new revision.
    top_hash: String,
    /// Its `quilt+s3://` URI.
    uri: String,
    /// How many entries it has.
    entry_count: usize,
    /// Their total size.
    total_size: u64,
    /// The id of the workflow it passed; `null` when the registry has no workflows
    /// config or none was used.
    workflow: Option<String>,
    /// The revision it replaces (`null` for a new package).
    previous_top_hash: Option<String>,
    /// Its entries against the previous revision (all `added` for a new package);
    /// `null` when the previous revision could not be read (see `changes_error`).
    changes: Option<ChangeCounts>,
    /// Why `changes` is `null`.
    #[serde(skip_serializing_if = "Option::is_none")]
    changes_error: Option<String>,
    /// When it was published, RFC 3339.
    created_at: Option<String>,
    /// Whether `latest` and the timestamp pointer were written with S3 conditional
    /// writes, so that no concurrent publish was overwritten. False after `force`,
    /// or when the S3 endpoint does not implement conditional writes (then only a
    /// read-and-compare check guarded `latest`).
    race_safe: bool,
    /// The new revision's page in the Quilt catalog, when the server knows the catalog
    /// (`QUILT_CATALOG_URL`).
    #[serde(skip_serializing_if = "Option::is_none")]
    catalog_url: Option<String>,
}

/// Entry counts of a new revision against the previous one, by logical key.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct ChangeCounts {
    /// Keys only in the new revision.
    pub(crate) added: u64,
    /// Keys only in the previous revision.
    pub(crate) removed: u64,
    /// Keys in both whose content (hash or size) differs.
    pub(crate) modified: u64,
    /// Keys in both with the same content.
    pub(crate) unchanged: u64,
}

impl From<publish::Changes> for ChangeCounts {
    fn from(c: publish::Changes) -> ChangeCounts {
        ChangeCounts {
            added: c.added,
            removed: c.removed,
            modified: c.modified,
            unchanged: c.unchanged,
        }
    }
}

/// Authorizes reading the schemas a registry's workflows config names: the gate
/// authorized the call's own buckets before it ran, but only the config says where
/// the schemas are, so each schema's bucket goes through the same decision here
/// (`s3:GetObject` on it, `s3:GetObjectVersion` for a pinned version) before it is
/// read with the caller's credentials.
pub(crate) struct SchemaAccess<'a> {
    pub(crate) info: &'a ToolInfo,
    pub(crate) claims: &'a crate::auth::QuiltClaims,
    pub(crate) read_only: bool,
}

impl workflow::SchemaGate for SchemaAccess<'_> {
    fn check(&self, bucket: &str, versioned: bool) -> Result<(), QuiltError> {
        let mut access = Access::needs(&[GET_OBJECT]).bucket(bucket);
        if versioned {
            access.also_needs(GET_OBJECT_VERSION);
        }
        policy::authorize(self.info, &access, self.claims, self.read_only).map_err(|denial| {
            QuiltError::Denied(format!(
                "the registry's workflows config names a schema in bucket {bucket:?}, which this call may not read: {}",
                denial.message().trim_start_matches("Forbidden: ")
            ))
        })
    }
}

/// The conflict of a `package_create` on a package that exists.
fn exists(name: &str, latest: &str) -> ToolError {
    ToolError::new(
        ErrorCode::Conflict,
        format!(
            "{name} already exists (latest {latest}); package_create would replace all of its entries with the ones given: use package_patch to add, replace or remove entries, or pass overwrite: true to replace the package"
        ),
    )
}

impl Tool for PackageCreate {
    const INFO: ToolInfo = ToolInfo {
        name: "package_create",
        toolset: Toolset::Packages,
        title: "Create a package revision",
        description: "Create a package from S3 objects: each file is read once to compute its \
            hash, the manifest is written to the registry and the package's latest pointer \
            moves to it, exactly as quilt3 push would. A package that already exists is \
            refused unless overwrite is true (then its entries are replaced by the ones given; \
            the result counts what was added, removed, modified and unchanged); use \
            package_patch to change some entries. In a registry with a workflows config the \
            package must pass its workflow (name pattern, message, metadata and entries \
            schemas), as with quilt3. Refused if another revision became latest meanwhile \
            (unless force). Sends progress notifications when the client asks for them.",
        read_only: false,
        destructive: true,
        idempotent: false,
        open_world: true,
        registry: false,
    };
    type Params = CreateParams;
    type Output = CreateOutput;

    fn example() -> serde_json::Value {
        serde_json::json!({
            "registry": "b", "package_name": "ns/pkg",
            "entries": [{"logical_key": "a", "s3_uri": "s3://src/a"}],
            "s3_uris": ["s3://src/dir/"]
        })
    }

    async fn run(call: Call<'_>, mut p: CreateParams) -> Result<CreateOutput, ToolError> {
        let s3 = call.s3()?;
        let bucket = p.bucket.as_str();
        let registry = Registry::new(s3, bucket);
        let previous = registry.latest_pointer(&p.package_name).await?;
        if let Some(previous) = &previous
            && !p.overwrite.unwrap_or(false)
        {
            return Err(exists(&p.package_name, &previous.top_hash));
        }
        let choice = match &p.workflow {
            None => workflow::Choice::Default,
            Some(None) => workflow::Choice::Skip,
            Some(Some(id)) => workflow::Choice::Named(id.clone()),
        };
        let gate = SchemaAccess {
            info: &Self::INFO,
            claims: &call.ctx.claims,
            read_only: call.read_only,
        };
        let governing = workflow::load(s3, bucket, &choice, &gate).await?;
        let metadata = p.metadata.take().map(Value::Object);
        // Name, message and metadata first: a package that fails them is not hashed.
        if let Some(w) = &governing {
            let found = w.check_package(&p.package_name, p.message.as_deref(), metadata.as_ref());
            if !found.is_empty() {
                w.verdict(found).map_err(QuiltError::from)?;
            }
        }
        let sources = expand_sources(s3, &p).await?;
        let records = publish::hash_sources(s3, sources, call.progress, call.cancel).await?;
        let workflow_object = governing
            .as_ref()
            .map(|w| {
                w.validate(
                    &p.package_name,
                    p.message.as_deref(),
                    metadata.as_ref(),
                    &records,
                )
                .map_err(QuiltError::from)
            })
            .transpose()?;
        let manifest = publish::new_manifest(records, p.message, metadata, workflow_object);
        let (changes, changes_error) = match &previous {
            None => (Some(publish::Changes::first(&manifest)), None),
            Some(previous) => {
                match publish::changes(&registry, &previous.top_hash, &manifest).await {
                    Ok(changes) => (Some(changes), None),
                    // The package is being replaced: a previous revision that cannot
                    // be read does not stop that, the counts are left out.
                    Err(e) => (None, Some(ToolError::from(e).message)),
                }
            }
        };
        if call.cancel.is_cancelled() {
            return Err(QuiltError::Cancelled.into());
        }
        let published = publish::publish(
            &registry,
            &p.package_name,
            manifest,
            previous.as_ref(),
            p.force.unwrap_or(false),
            call.ctx.claims.has_permission(DELETE_OBJECT.as_str()),
        )
        .await?;
        Ok(CreateOutput {
            registry: registry_uri(bucket),
            uri: quilt::package_uri(bucket, &p.package_name, &published.top_hash),
            catalog_url: search::package_link(
                call.catalog_url,
                bucket,
                &p.package_name,
                &published.top_hash,
                "",
            ),
            package_name: p.package_name.into_string(),
            top_hash: published.top_hash,
            entry_count: published.entry_count,
            total_size: published.total_size,
            workflow: governing.as_ref().and_then(|w| w.id().map(str::to_owned)),
            previous_top_hash: previous.map(|p| p.top_hash),
            changes: changes.map(ChangeCounts::from),
            changes_error,
            created_at: rfc3339(published.created_at),
            race_safe: published.race_safe,
        })
    }
}

/// A logical key argument, checked as it is parsed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct LogicalKey(pub(crate) String);
super::uri::string_argument!(LogicalKey);

impl TryFrom<String> for LogicalKey {
    type Error = ArgumentError;
    fn try_from(key: String) -> Result<LogicalKey, ArgumentError> {
        check_logical_key(&key)?;
        Ok(LogicalKey(key))
    }
}

pub(crate) fn check_logical_key(key: &str) -> Result<(), ArgumentError> {
    if key.len() > MAX_KEY_BYTES || key.contains('\0') {
        return Err(ArgumentError::new(format!(
            "a logical key is at most {MAX_KEY_BYTES} bytes and holds no NUL; this one has {} bytes",
            key.len()
        )));
    }
    let bad = key.is_empty()
        || key.starts_with('/')
        || key.ends_with('/')
        || key
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..");
    if bad {
        return Err(ArgumentError::new(format!(
            "{key:?} is not a logical key: use a relative path like data/file.csv, without empty, . or .. parts"
        )));
    }
    Ok(())
}

pub(crate) fn too_many() -> ToolError {
    ToolError::new(
        ErrorCode::TooLarge,
        format!("a package made here holds at most {MAX_CREATE_ENTRIES} entries"),
    )
}

/// The objects a `package_create` call names, prefixes listed.
async fn expand_sources(
    s3: &aws_sdk_s3::Client,
    p: &CreateParams,
) -> Result<Vec<Source>, ToolError> {
    let sources = list_sources(s3, &p.entries, &p.s3_uris).await?;
    if sources.is_empty() {
        return Err(ToolError::invalid(
            "give at least one file in `entries` or `s3_uris`",
        ));
    }
    Ok(sources)
}

/// The objects `entries` and `uris` name, prefixes listed (at most
/// [`MAX_CREATE_ENTRIES`], each logical key once); none when both are empty.
pub(crate) async fn list_sources(
    s3: &aws_sdk_s3::Client,
    entries: &[CreateEntry],
    uris: &[SourceUri],
) -> Result<Vec<Source>, ToolError> {
    let mut sources = Vec::new();
    for entry in entries {
        sources.push(Source {
            logical_key: entry.logical_key.0.clone(),
            bucket: entry.s3_uri.bucket.clone(),
            key: entry.s3_uri.key.clone(),
            version_id: entry.s3_uri.version_id.clone(),
        });
    }
    for uri in uris {
        if !uri.is_prefix() {
            sources.push(Source {
                logical_key: uri.key.rsplit('/').next().unwrap_or(&uri.key).to_owned(),
                bucket: uri.bucket.clone(),
                key: uri.key.clone(),
                version_id: uri.version_id.clone(),
            });
            continue;
        }
        let mut pages = S3::new(s3).list(ListRequest::prefix(&uri.bucket, &uri.key));
        let mut found = 0;
        while let Some(page) = pages.next_page().await {
            for object in page?.objects {
                let Some(relative) = object.key.strip_prefix(uri.key.as_str()) else {
                    continue;
                };
                if relative.is_empty() || relative.ends_with('/') {
                    continue;
                }
                check_logical_key(relative)?;
                found += 1;
                sources.push(Source {
                    logical_key: relative.to_owned(),
                    bucket: uri.bucket.clone(),
                    key: format!("{}{relative}", uri.key),
                    version_id: None,
                });
                if sources.len() > MAX_CREATE_ENTRIES {
                    return Err(too_many());
                }
            }
        }
        if found == 0 {
            return Err(ToolError::new(
                ErrorCode::NotFound,
                format!("there are no objects under {}", uri.0),
            ));
        }
    }
    if sources.len() > MAX_CREATE_ENTRIES {
        return Err(too_many());
    }
    let mut seen = HashSet::new();
    for source in &sources {
        if !seen.insert(source.logical_key.as_str()) {
            return Err(ToolError::invalid(format!(
                "the logical key {:?} is given twice",
                source.logical_key
            )));
        }
    }
    Ok(sources)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let hash = "ab".repeat(32);
        let text = encode_cursor("team/pkg", &hash, "data", "data/ünï/x.csv", Some(42)).unwrap();
        assert!(text.len() <= MAX_CURSOR_CHARS);
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(
            decode_cursor(&text).unwrap(),
            Cursor {
                v: CURSOR_VERSION,
                package: "team/pkg".into(),
                top_hash: hash.clone(),
                path: "data".into(),
                after: "data/ünï/x.csv".into(),
                offset: Some(42),
            }
        );
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        for garbage in [
            String::new(),
            "not a cursor!".to_owned(),
            b64("{}"),
            b64("[1]"),
            // A cursor of the version before, which named no package.
            b64(&format!(
                r#"{{"v":1,"top_hash":"{hash}","path":"","after":"a"}}"#
            )),
            b64(&format!(
                r#"{{"v":3,"package":"a/b","top_hash":"{hash}","path":"","after":"a"}}"#
            )),
            b64(r#"{"v":2,"package":"a/b","top_hash":"abc","path":"","after":"a"}"#),
            "A".repeat(MAX_CURSOR_CHARS + 1),
        ] {
            assert!(decode_cursor(&garbage).is_err(), "{garbage}");
        }
        // A key too long to page after is refused, not turned into an unusable cursor.
        let long = "k".repeat(MAX_CURSOR_CHARS);
        assert_eq!(
            encode_cursor("a/b", &hash, "", &long, None)
                .unwrap_err()
                .code,
            ErrorCode::TooLarge
        );
    }

    #[test]
    fn create_names_its_package_by_uri_or_by_registry_and_name() {
        let parse = |args: serde_json::Value| {
            let mut args = args;
            args["s3_uris"] = serde_json::json!(["s3://src/a"]);
            serde_json::from_value::<CreateParams>(args).map_err(|e| e.to_string())
        };
        for good in [
            serde_json::json!({"uri": "quilt+s3://reg#package=ns/p"}),
            serde_json::json!({"uri": "quilt+s3://reg#package=ns/p:latest&catalog=c"}),
            serde_json::json!({"registry": "reg", "package_name": "ns/p"}),
            serde_json::json!({"uri": "quilt+s3://reg#package=ns/p", "registry": "s3://reg", "package_name": "ns/p"}),
        ] {
            let p = parse(good.clone()).unwrap_or_else(|e| panic!("{good}: {e}"));
            assert_eq!((p.bucket.as_str(), &*p.package_name), ("reg", "ns/p"));
        }
        for (bad, names) in [
            (
                serde_json::json!({"uri": "quilt+s3://reg#package=ns/p@abcdef"}),
                "new revision",
            ),
            (
                serde_json::json!({"uri": "quilt+s3://reg#package=ns/p&path=a"}),
                "not a file",
            ),
            (
                serde_json::json!({"uri": "quilt+s3://reg#package=ns/p", "registry": "other"}),
                "`registry`",
            ),
            (
                serde_json::json!({"uri": "quilt+s3://reg#package=ns/p", "package_name": "ns/q"}),
                "`package_name`",
            ),
            (
                serde_json::json!({"uri": "quilt+s3://reg#package=n%C3%A9/p"}),
                "not a package name to write",
            ),
            (serde_json::json!({"package_name": "ns/p"}), "`uri`"),
        ] {
            let error = parse(bad.clone()).unwrap_err();
            assert!(error.contains(names), "{bad}: {error}");
        }
    }

    #[test]
    fn logical_keys() {
        for bad in ["", "/a", "a/", "a//b", "./a", "a/../b"] {
            assert!(check_logical_key(bad).is_err(), "{bad:?}");
        }
        assert!(check_logical_key("data/a b.csv").is_ok());
    }
}
