//! The package tools: `package_list`, `package_browse`, `package_diff` and
//! `package_create`, on the registry layout quilt3 and the catalog use.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use futures::StreamExt as _;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ProgressNotificationParam};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::uri::{S3Uri, parse_bucket};
use super::{ErrorCode, ToolError, finish};
use crate::aws::AwsSession;
use crate::aws::errors::s3_error;
use crate::quilt::hash::{ChunkedHasher, SHA2_256_CHUNKED};
use crate::quilt::manifest::{Manifest, Record, tree_order};
use crate::quilt::registry::Registry;
use crate::quilt::{self, WORKFLOWS_CONFIG};
use crate::server::QuiltServer;
use crate::time::{now_unix, rfc3339};

/// Default and largest `max_entries` of `package_browse`.
pub const DEFAULT_MAX_ENTRIES: usize = 1000;
/// Largest `max_entries` of `package_browse`.
pub const MAX_ENTRIES: usize = 100_000;
/// Most entries `package_create` makes.
pub const MAX_CREATE_ENTRIES: usize = 100_000;
/// Sources hashed at once by `package_create`.
pub const HASH_CONCURRENCY: usize = 8;

/// `package_list` parameters.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListParams {
    /// The registry bucket: `s3://bucket` or a bucket name.
    pub registry: String,
    /// Only packages whose `namespace/name` starts with this, such as `team/` or `team/exp`.
    #[serde(default)]
    pub prefix: Option<String>,
}

/// `package_browse` parameters.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct BrowseParams {
    /// The package, `namespace/name`.
    pub package_name: String,
    /// The registry bucket: `s3://bucket` or a bucket name.
    pub registry: String,
    /// A revision's top hash, in full or a unique prefix of at least 6 characters
    /// (default: the latest revision).
    #[serde(default)]
    pub top_hash: Option<String>,
    /// Only entries under this logical path, such as `data/` (default: all).
    #[serde(default)]
    pub path: Option<String>,
    /// Most entries to return (default 1000, at most 100000); `truncated` says when more exist.
    #[serde(default)]
    pub max_entries: Option<usize>,
}

/// `package_diff` parameters.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct DiffParams {
    /// The first (older) package, `namespace/name`.
    pub package1_name: String,
    /// The second (newer) package (default: the same package).
    #[serde(default)]
    pub package2_name: Option<String>,
    /// The registry bucket: `s3://bucket` or a bucket name.
    pub registry: String,
    /// The first package's revision (full top hash or a prefix of at least 6). Default:
    /// its latest revision, or, when comparing a package with itself and no hash is
    /// given, the revision before the latest.
    #[serde(default)]
    pub package1_hash: Option<String>,
    /// The second package's revision (default: its latest).
    #[serde(default)]
    pub package2_hash: Option<String>,
}

/// One entry of `package_create`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct CreateEntry {
    /// The path of the file inside the package, such as `data/measurements.csv`.
    pub logical_key: String,
    /// The object: `s3://bucket/key`, optionally with `?versionId=…`.
    pub s3_uri: String,
}

/// `package_create` parameters.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct CreateParams {
    /// The package to create or revise, `namespace/name` (letters, digits, `_`, `-`).
    pub package_name: String,
    /// The registry bucket the package is written to: `s3://bucket` or a bucket name.
    pub registry: String,
    /// Files to include, each an S3 object with its path in the package.
    #[serde(default)]
    pub entries: Vec<CreateEntry>,
    /// More files: an object URI adds that object under its file name; a URI ending in
    /// `/` adds every object under it, keyed relative to it.
    #[serde(default)]
    pub s3_uris: Vec<String>,
    /// The revision's commit message.
    #[serde(default)]
    pub message: Option<String>,
    /// Package-level metadata (any JSON), stored as the manifest's `user_meta`.
    #[serde(default)]
    pub metadata: Option<Value>,
    /// Publish even if another revision became latest while this one was being made.
    #[serde(default)]
    pub force: Option<bool>,
}

fn registry_bucket(text: &str) -> Result<String, ToolError> {
    parse_bucket(text).map_err(|e| ToolError::invalid(format!("`registry`: {e}")))
}

fn entry_json(record: &Record) -> Value {
    let (kind, value) = record.hash_parts();
    json!({
        "logical_key": record.logical_key(),
        "size": record.size(),
        "hash": {"type": kind, "value": value},
        "physical_key": record.physical_key(),
        "meta": record.meta(),
    })
}

fn under_path(logical_key: &str, path: &str) -> bool {
    if path.is_empty() {
        return true;
    }
    let dir = path.trim_end_matches('/');
    logical_key == dir
        || logical_key
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

async fn list(s3: &aws_sdk_s3::Client, p: ListParams) -> Result<Value, ToolError> {
    let bucket = registry_bucket(&p.registry)?;
    let registry = Registry::new(s3, bucket.clone());
    let packages = registry
        .list_packages(p.prefix.as_deref().unwrap_or(""))
        .await?;
    let items: Vec<Value> = packages
        .iter()
        .map(|pkg| {
            json!({
                "name": pkg.name,
                "top_hash": pkg.top_hash,
                "modified": pkg.modified.and_then(rfc3339),
                "revisions": pkg.revisions,
            })
        })
        .collect();
    Ok(json!({"registry": format!("s3://{bucket}"), "packages": items, "count": items.len()}))
}

async fn browse(s3: &aws_sdk_s3::Client, p: BrowseParams) -> Result<Value, ToolError> {
    let bucket = registry_bucket(&p.registry)?;
    quilt::check_name_for_read(&p.package_name).map_err(ToolError::invalid)?;
    let max_entries = p.max_entries.unwrap_or(DEFAULT_MAX_ENTRIES);
    if !(1..=MAX_ENTRIES).contains(&max_entries) {
        return Err(ToolError::invalid(format!(
            "`max_entries` must be from 1 to {MAX_ENTRIES}"
        )));
    }
    let registry = Registry::new(s3, bucket.clone());
    let top_hash = registry
        .resolve(&p.package_name, p.top_hash.as_deref())
        .await?;
    let manifest = registry.read_manifest(&top_hash).await?;
    let path = p
        .path
        .as_deref()
        .unwrap_or("")
        .trim_start_matches('/')
        .to_owned();
    let mut matching: Vec<&Record> = manifest
        .entries()
        .filter(|e| under_path(e.logical_key(), &path))
        .collect();
    matching.sort_by(|a, b| tree_order(a.logical_key(), b.logical_key()));
    let total_size: u64 = matching.iter().map(|e| e.size()).sum();
    let entries: Vec<Value> = matching
        .iter()
        .take(max_entries)
        .map(|e| entry_json(e))
        .collect();
    let directories: Vec<Value> = manifest
        .directories()
        .filter(|d| under_path(d.logical_key().trim_end_matches('/'), &path) || path.is_empty())
        .map(|d| json!({"logical_key": d.logical_key(), "meta": d.meta()}))
        .collect();
    let header = manifest.header();
    Ok(json!({
        "registry": format!("s3://{bucket}"),
        "package_name": p.package_name,
        "top_hash": top_hash,
        "uri": quilt::package_uri(&bucket, &p.package_name, &top_hash),
        "message": header.get("message").cloned().unwrap_or(Value::Null),
        "user_meta": header.get("user_meta").cloned().unwrap_or(Value::Null),
        "workflow": header.get("workflow").cloned().unwrap_or(Value::Null),
        "path": path,
        "entries": entries,
        "entry_count": matching.len(),
        "total_size": total_size,
        "truncated": matching.len() > max_entries,
        "directories": directories,
    }))
}

async fn diff(s3: &aws_sdk_s3::Client, p: DiffParams) -> Result<Value, ToolError> {
    let bucket = registry_bucket(&p.registry)?;
    let name1 = p.package1_name.clone();
    let name2 = p.package2_name.clone().unwrap_or_else(|| name1.clone());
    quilt::check_name_for_read(&name1).map_err(ToolError::invalid)?;
    quilt::check_name_for_read(&name2).map_err(ToolError::invalid)?;
    let registry = Registry::new(s3, bucket.clone());
    let (hash1, hash2) = if name1 == name2 && p.package1_hash.is_none() && p.package2_hash.is_none()
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
            registry.resolve(&name1, p.package1_hash.as_deref()).await?,
            registry.resolve(&name2, p.package2_hash.as_deref()).await?,
        )
    };
    let (old, new) = futures::try_join!(
        registry.read_manifest(&hash1),
        registry.read_manifest(&hash2)
    )?;
    let old_entries: BTreeMap<&str, &Record> =
        old.entries().map(|e| (e.logical_key(), e)).collect();
    let new_entries: BTreeMap<&str, &Record> =
        new.entries().map(|e| (e.logical_key(), e)).collect();
    let mut added = Vec::new();
    let mut modified = Vec::new();
    let mut metadata_changed = Vec::new();
    for (key, entry) in &new_entries {
        match old_entries.get(key) {
            None => added.push(*key),
            Some(before) => {
                if before.hash_parts() != entry.hash_parts() || before.size() != entry.size() {
                    modified.push(*key);
                }
                let empty = Value::Object(Map::new());
                let meta = |r: &Record| {
                    if r.meta().is_null() {
                        empty.clone()
                    } else {
                        r.meta().clone()
                    }
                };
                if meta(before) != meta(entry) {
                    metadata_changed.push(*key);
                }
            }
        }
    }
    let removed: Vec<&str> = old_entries
        .keys()
        .filter(|k| !new_entries.contains_key(*k))
        .copied()
        .collect();
    let sort = |keys: &mut Vec<&str>| keys.sort_by(|a, b| tree_order(a, b));
    for keys in [&mut added, &mut modified, &mut metadata_changed] {
        sort(keys);
    }
    let header_changed = old.header().get("user_meta") != new.header().get("user_meta")
        || old.header().get("message") != new.header().get("message");
    Ok(json!({
        "registry": format!("s3://{bucket}"),
        "package1": {"name": name1, "top_hash": hash1, "message": old.message()},
        "package2": {"name": name2, "top_hash": hash2, "message": new.message()},
        "added": added,
        "removed": removed,
        "modified": modified,
        "metadata_changed": metadata_changed,
        "package_metadata_changed": header_changed,
        "unchanged": new_entries.len() - added.len() - modified.len(),
    }))
}

/// One object to put into a new revision.
struct Source {
    logical_key: String,
    uri: S3Uri,
}

fn check_logical_key(key: &str) -> Result<(), ToolError> {
    let bad = key.is_empty()
        || key.starts_with('/')
        || key.ends_with('/')
        || key
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..");
    if bad {
        return Err(ToolError::invalid(format!(
            "{key:?} is not a logical key: use a relative path like data/file.csv, without empty, . or .. parts"
        )));
    }
    Ok(())
}

async fn expand_sources(
    s3: &aws_sdk_s3::Client,
    p: &CreateParams,
) -> Result<Vec<Source>, ToolError> {
    let mut sources = Vec::new();
    for (i, entry) in p.entries.iter().enumerate() {
        check_logical_key(&entry.logical_key)?;
        let uri = S3Uri::parse_object(&entry.s3_uri)
            .map_err(|e| ToolError::invalid(format!("`entries[{i}].s3_uri`: {e}")))?;
        sources.push(Source {
            logical_key: entry.logical_key.clone(),
            uri,
        });
    }
    for (i, text) in p.s3_uris.iter().enumerate() {
        let uri =
            S3Uri::parse(text).map_err(|e| ToolError::invalid(format!("`s3_uris[{i}]`: {e}")))?;
        if uri.key.is_empty() || uri.key.ends_with('/') {
            if uri.version_id.is_some() {
                return Err(ToolError::invalid(format!(
                    "`s3_uris[{i}]`: a prefix cannot have a versionId"
                )));
            }
            let mut pages = s3
                .list_objects_v2()
                .bucket(&uri.bucket)
                .prefix(&uri.key)
                .into_paginator()
                .send();
            let mut found = 0;
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| s3_error("ListObjectsV2", text, &e))?;
                for object in page.contents() {
                    let Some(key) = object.key() else { continue };
                    let relative = &key[uri.key.len()..];
                    if relative.is_empty() || relative.ends_with('/') {
                        continue;
                    }
                    check_logical_key(relative)?;
                    found += 1;
                    sources.push(Source {
                        logical_key: relative.to_owned(),
                        uri: S3Uri {
                            bucket: uri.bucket.clone(),
                            key: key.to_owned(),
                            version_id: None,
                        },
                    });
                    if sources.len() > MAX_CREATE_ENTRIES {
                        return Err(ToolError::new(
                            ErrorCode::TooLarge,
                            format!(
                                "a package made here holds at most {MAX_CREATE_ENTRIES} entries"
                            ),
                        ));
                    }
                }
            }
            if found == 0 {
                return Err(ToolError::new(
                    ErrorCode::NotFound,
                    format!("there are no objects under {text}"),
                ));
            }
        } else {
            let name = uri.key.rsplit('/').next().unwrap_or(&uri.key).to_owned();
            sources.push(Source {
                logical_key: name,
                uri,
            });
        }
    }
    if sources.is_empty() {
        return Err(ToolError::invalid(
            "give at least one file in `entries` or `s3_uris`",
        ));
    }
    if sources.len() > MAX_CREATE_ENTRIES {
        return Err(ToolError::new(
            ErrorCode::TooLarge,
            format!("a package made here holds at most {MAX_CREATE_ENTRIES} entries"),
        ));
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

/// Streams one source once: its size, `sha2-256-chunked` and version id.
async fn hash_source(s3: &aws_sdk_s3::Client, source: Source) -> Result<Record, ToolError> {
    let target = quilt::physical_key(
        &source.uri.bucket,
        &source.uri.key,
        source.uri.version_id.as_deref(),
    );
    let output = s3
        .get_object()
        .bucket(&source.uri.bucket)
        .key(&source.uri.key)
        .set_version_id(source.uri.version_id.clone())
        .send()
        .await
        .map_err(|e| s3_error("GetObject", &target, &e))?;
    let size = output
        .content_length()
        .and_then(|l| u64::try_from(l).ok())
        .unwrap_or(0);
    let version = output
        .version_id()
        .map(str::to_owned)
        .or(source.uri.version_id.clone());
    let mut body = output.body;
    let mut hasher = ChunkedHasher::new(size);
    while let Some(piece) = body.next().await {
        let piece = piece.map_err(|e| ToolError {
            code: ErrorCode::UpstreamError,
            message: format!("reading {target} was interrupted: {e}"),
            retryable: true,
        })?;
        hasher.update(&piece);
    }
    if hasher.bytes() != size {
        return Err(ToolError {
            code: ErrorCode::UpstreamError,
            message: format!(
                "{target} changed size while it was read ({} of {size} bytes)",
                hasher.bytes()
            ),
            retryable: true,
        });
    }
    let version = version.filter(|v| v != "null");
    let mut obj = Map::new();
    obj.insert("logical_key".into(), json!(source.logical_key));
    obj.insert(
        "physical_keys".into(),
        json!([quilt::physical_key(
            &source.uri.bucket,
            &source.uri.key,
            version.as_deref()
        )]),
    );
    obj.insert("size".into(), json!(size));
    obj.insert(
        "hash".into(),
        json!({"type": SHA2_256_CHUNKED, "value": hasher.finish()}),
    );
    obj.insert("meta".into(), json!({}));
    Ok(Record::from_object(obj))
}

async fn create(
    s3: &aws_sdk_s3::Client,
    p: CreateParams,
    context: &RequestContext<RoleServer>,
) -> Result<Value, ToolError> {
    let bucket = registry_bucket(&p.registry)?;
    quilt::check_name_for_write(&p.package_name).map_err(ToolError::invalid)?;
    let registry = Registry::new(s3, bucket.clone());
    if registry.exists(WORKFLOWS_CONFIG).await? {
        return Err(ToolError::new(
            ErrorCode::NotSupported,
            format!(
                "s3://{bucket} has {WORKFLOWS_CONFIG}: its packages must pass workflow validation, which quilt-mcp does not do; create this package with quilt3 or the Quilt catalog"
            ),
        ));
    }
    let sources = expand_sources(s3, &p).await?;
    let previous = registry.latest(&p.package_name).await?;

    let total = sources.len();
    let progress_token = context.meta.get_progress_token();
    let peer = context.peer.clone();
    let mut done = 0usize;
    let mut records = Vec::with_capacity(total);
    let mut hashing = futures::stream::iter(sources)
        .map(|source| hash_source(s3, source))
        .buffer_unordered(HASH_CONCURRENCY);
    loop {
        let next = tokio::select! {
            () = context.ct.cancelled() => {
                return Err(ToolError::invalid("cancelled by the client; nothing was written"));
            }
            next = hashing.next() => next,
        };
        let Some(record) = next else { break };
        records.push(record?);
        done += 1;
        if let Some(token) = &progress_token {
            let _ = peer
                .notify_progress(
                    ProgressNotificationParam::new(token.clone(), done as f64)
                        .with_total(total as f64)
                        .with_message(format!("hashed {done} of {total} files")),
                )
                .await;
        }
    }
    records.sort_by(|a, b| tree_order(a.logical_key(), b.logical_key()));
    let total_size: u64 = records.iter().map(Record::size).sum();

    let mut header = Map::new();
    header.insert("version".into(), json!("v0"));
    if let Some(metadata) = p.metadata {
        header.insert("user_meta".into(), metadata);
    }
    header.insert(
        "message".into(),
        p.message.map_or(Value::Null, Value::String),
    );
    let manifest = Manifest::new(header, records);
    let top_hash = manifest.top_hash();
    let entry_count = manifest.entries().count();
    registry
        .put(
            &quilt::manifest_key(&top_hash),
            manifest.to_bytes(),
            "application/jsonl",
        )
        .await?;
    drop(manifest);

    let current = registry.latest(&p.package_name).await?;
    if current != previous && !p.force.unwrap_or(false) {
        return Err(ToolError::new(
            ErrorCode::Conflict,
            format!(
                "{} moved to {} while this revision was made; nothing was published (the manifest is stored as {top_hash}); call again to build on the new revision, or pass force: true",
                p.package_name,
                current.as_deref().unwrap_or("nothing")
            ),
        ));
    }
    // Two revisions within one second would share a timestamp pointer and the older
    // one would drop out of the history: take the next free second instead.
    let mut now = now_unix();
    for _ in 0..30 {
        match registry
            .get_small(&quilt::timestamp_key(&p.package_name, now))
            .await?
        {
            Some(existing)
                if quilt::parse_pointer(&existing).as_deref() != Some(top_hash.as_str()) =>
            {
                now += 1
            }
            _ => break,
        }
    }
    let pointer = top_hash.clone().into_bytes();
    registry
        .put(
            &quilt::timestamp_key(&p.package_name, now),
            pointer.clone(),
            "text/plain",
        )
        .await?;
    registry
        .put(&quilt::latest_key(&p.package_name), pointer, "text/plain")
        .await?;
    Ok(json!({
        "registry": format!("s3://{bucket}"),
        "package_name": p.package_name,
        "top_hash": top_hash,
        "uri": quilt::package_uri(&bucket, &p.package_name, &top_hash),
        "entry_count": entry_count,
        "total_size": total_size,
        "previous_top_hash": previous,
        "created_at": rfc3339(now),
    }))
}

#[tool_router(router = package_tools, vis = "pub(crate)")]
impl QuiltServer {
    #[tool(
        name = "package_list",
        description = "List the Quilt packages in a registry bucket: each package's name, latest \
            top hash, time of its newest revision and number of revisions. Use `prefix` to narrow \
            down to a namespace.",
        annotations(
            title = "List packages",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn package_list(
        &self,
        Extension(aws): Extension<Arc<AwsSession>>,
        Parameters(p): Parameters<ListParams>,
    ) -> CallToolResult {
        finish(list(&aws.s3, p).await)
    }

    #[tool(
        name = "package_browse",
        description = "Show a package revision: its message and metadata, and its files (logical \
            key, size, hash, physical S3 location, metadata), optionally under a `path`. The \
            revision's top hash is verified. Use the physical_key with bucket_object_text or \
            bucket_object_fetch to read a file.",
        annotations(
            title = "Browse a package",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn package_browse(
        &self,
        Extension(aws): Extension<Arc<AwsSession>>,
        Parameters(p): Parameters<BrowseParams>,
    ) -> CallToolResult {
        finish(browse(&aws.s3, p).await)
    }

    #[tool(
        name = "package_diff",
        description = "Compare two package revisions (two revisions of one package, or two \
            packages): logical keys added, removed, modified (hash or size) and with changed \
            metadata. With only package1_name, compares its latest revision with the one before.",
        annotations(
            title = "Diff packages",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn package_diff(
        &self,
        Extension(aws): Extension<Arc<AwsSession>>,
        Parameters(p): Parameters<DiffParams>,
    ) -> CallToolResult {
        finish(diff(&aws.s3, p).await)
    }

    #[tool(
        name = "package_create",
        description = "Create a package, or a new revision of one, from S3 objects: each file is \
            read once to compute its hash, the manifest is written to the registry and the \
            package's latest pointer moves to it, exactly as quilt3 push would. Refused if \
            another revision became latest meanwhile (unless force) and in registries that use \
            workflows. Sends progress notifications when the client asks for them.",
        annotations(
            title = "Create a package revision",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn package_create(
        &self,
        Extension(aws): Extension<Arc<AwsSession>>,
        context: RequestContext<RoleServer>,
        Parameters(p): Parameters<CreateParams>,
    ) -> CallToolResult {
        finish(create(&aws.s3, p, &context).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_logical_keys() {
        assert!(under_path("data/a.csv", "data/"));
        assert!(under_path("data/a.csv", "data"));
        assert!(under_path("data", "data"));
        assert!(!under_path("database.csv", "data"));
        assert!(under_path("anything", ""));
        for bad in ["", "/a", "a/", "a//b", "./a", "a/../b"] {
            assert!(check_logical_key(bad).is_err(), "{bad:?}");
        }
        assert!(check_logical_key("data/a b.csv").is_ok());
    }
}
