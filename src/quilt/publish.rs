//! Publishing a package revision as quilt3 does: every source object is read once to
//! hash it, the manifest is written under its top hash, then a timestamp pointer and
//! `latest` are moved to it.

use futures::StreamExt as _;
use futures::future::BoxFuture;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::error::QuiltError;
use super::hash::{ChunkedHasher, SHA2_256_CHUNKED};
use super::manifest::{Manifest, Record, tree_order};
use super::registry::Registry;
use super::{
    WORKFLOWS_CONFIG, latest_key, manifest_key, parse_pointer, physical_key, timestamp_key,
};
use crate::error::s3_error;
use crate::time::now_unix;

/// Sources hashed at once.
pub const HASH_CONCURRENCY: usize = 8;

/// Where a long operation reports how far it got.
pub trait Progress: Send + Sync {
    /// `done` of `total` steps are finished.
    fn report(&self, done: usize, total: usize, message: String) -> BoxFuture<'_, ()>;
}

/// Progress that nobody listens to.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn report(&self, _done: usize, _total: usize, _message: String) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// One object to put into a new revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Its path in the package.
    pub logical_key: String,
    /// The bucket.
    pub bucket: String,
    /// The key.
    pub key: String,
    /// A specific version.
    pub version_id: Option<String>,
}

/// A revision that was published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// Its top hash.
    pub top_hash: String,
    /// How many entries it has.
    pub entry_count: usize,
    /// Their total size.
    pub total_size: u64,
    /// The time of its timestamp pointer, Unix seconds.
    pub created_at: i64,
}

/// Refuses registries whose packages must pass workflow validation, which this
/// server does not do.
pub async fn check_no_workflows(registry: &Registry<'_>) -> Result<(), QuiltError> {
    if registry.exists(WORKFLOWS_CONFIG).await? {
        return Err(QuiltError::NotSupported(format!(
            "s3://{} has {WORKFLOWS_CONFIG}: its packages must pass workflow validation, which quilt-mcp does not do; create this package with quilt3 or the Quilt catalog",
            registry.bucket()
        )));
    }
    Ok(())
}

/// Reads and hashes every source, [`HASH_CONCURRENCY`] at a time, reporting each one
/// done; the records come back in tree order. Stops with [`QuiltError::Cancelled`]
/// as soon as `cancel` fires.
pub async fn hash_sources(
    s3: &aws_sdk_s3::Client,
    sources: Vec<Source>,
    progress: &dyn Progress,
    cancel: &CancellationToken,
) -> Result<Vec<Record>, QuiltError> {
    let total = sources.len();
    let mut records = Vec::with_capacity(total);
    let mut hashing = futures::stream::iter(sources)
        .map(|source| hash_source(s3, source))
        .buffer_unordered(HASH_CONCURRENCY);
    loop {
        let next = tokio::select! {
            () = cancel.cancelled() => return Err(QuiltError::Cancelled),
            next = hashing.next() => next,
        };
        let Some(record) = next else { break };
        records.push(record?);
        let done = records.len();
        progress
            .report(done, total, format!("hashed {done} of {total} files"))
            .await;
    }
    records.sort_by(|a, b| tree_order(a.logical_key(), b.logical_key()));
    Ok(records)
}

/// Streams one source once: its size, `sha2-256-chunked` and version id.
async fn hash_source(s3: &aws_sdk_s3::Client, source: Source) -> Result<Record, QuiltError> {
    let target = physical_key(&source.bucket, &source.key, source.version_id.as_deref());
    let output = s3
        .get_object()
        .bucket(&source.bucket)
        .key(&source.key)
        .set_version_id(source.version_id.clone())
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
        .or(source.version_id.clone())
        .filter(|v| v != "null");
    let mut body = output.body;
    let mut hasher = ChunkedHasher::new(size);
    while let Some(piece) = body.next().await {
        hasher.update(&piece.map_err(|e| QuiltError::interrupted(target.clone(), e))?);
    }
    if hasher.bytes() != size {
        return Err(QuiltError::Changed(format!(
            "{target} changed size while it was read ({} of {size} bytes)",
            hasher.bytes()
        )));
    }
    let mut obj = Map::new();
    obj.insert("logical_key".into(), json!(source.logical_key));
    obj.insert(
        "physical_keys".into(),
        json!([physical_key(
            &source.bucket,
            &source.key,
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

/// A new manifest of `records` (in tree order) with a message and package metadata.
pub fn new_manifest(
    records: Vec<Record>,
    message: Option<String>,
    metadata: Option<Value>,
) -> Manifest {
    let mut header = Map::new();
    header.insert("version".into(), json!("v0"));
    if let Some(metadata) = metadata {
        header.insert("user_meta".into(), metadata);
    }
    header.insert("message".into(), message.map_or(Value::Null, Value::String));
    Manifest::new(header, records)
}

/// Writes `manifest` and makes it the latest revision of `name`, unless `latest` moved
/// away from `previous` meanwhile (then [`QuiltError::Conflict`], unless `force`).
pub async fn publish(
    registry: &Registry<'_>,
    name: &str,
    manifest: Manifest,
    previous: Option<&str>,
    force: bool,
) -> Result<Published, QuiltError> {
    let top_hash = manifest.top_hash();
    let entry_count = manifest.entries().count();
    let total_size: u64 = manifest.entries().map(Record::size).sum();
    registry
        .put(
            &manifest_key(&top_hash),
            manifest.to_bytes(),
            "application/jsonl",
        )
        .await?;
    drop(manifest);

    let current = registry.latest(name).await?;
    if current.as_deref() != previous && !force {
        return Err(QuiltError::Conflict(format!(
            "{name} moved to {} while this revision was made; nothing was published (the manifest is stored as {top_hash}); call again to build on the new revision, or pass force: true",
            current.as_deref().unwrap_or("nothing")
        )));
    }
    // Two revisions within one second would share a timestamp pointer and the older
    // one would drop out of the history: take the next free second instead.
    let mut now = now_unix();
    for _ in 0..30 {
        match registry.get_small(&timestamp_key(name, now)).await? {
            Some(existing) if parse_pointer(&existing).as_deref() != Some(top_hash.as_str()) => {
                now += 1;
            }
            _ => break,
        }
    }
    let pointer = top_hash.clone().into_bytes();
    registry
        .put(&timestamp_key(name, now), pointer.clone(), "text/plain")
        .await?;
    registry
        .put(&latest_key(name), pointer, "text/plain")
        .await?;
    Ok(Published {
        top_hash,
        entry_count,
        total_size,
        created_at: now,
    })
}
