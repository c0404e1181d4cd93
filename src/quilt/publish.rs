//! Publishing a package revision as quilt3 does: every source object is read once to
//! hash it, the manifest is written under its top hash, then a timestamp pointer and
//! `latest` are moved to it.

use futures::StreamExt as _;
use futures::future::BoxFuture;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::diff;
use super::error::QuiltError;
use super::hash::{ChunkedHasher, SHA2_256_CHUNKED};
use super::manifest::{Manifest, Record, tree_order};
use super::registry::{ConditionalPut, ManifestBody, PointerRead, Registry, WriteCondition};
use super::stream::{self, ManifestStream, SORT_BUDGET};
use super::{latest_key, manifest_key, parse_pointer, physical_key, timestamp_key};
use crate::s3::{S3, S3Uri};
use crate::time::now_unix;

/// Sources read and hashed at once (the floor `package_create` is measured against
/// is 16 parallel GETs of the same objects: see `scripts/bench-vs-quilt3`).
pub(crate) const HASH_CONCURRENCY: usize = 16;
/// Most progress notifications one `hash_sources` sends: one per file up to this many
/// files, then one per `total / MAX_PROGRESS_REPORTS` files (and the last).
pub(crate) const MAX_PROGRESS_REPORTS: usize = 100;

/// Whether `done` of `total` files is a step worth reporting.
fn worth_reporting(done: usize, total: usize) -> bool {
    done == total || done.is_multiple_of(total.div_ceil(MAX_PROGRESS_REPORTS).max(1))
}

/// Where a long operation reports how far it got.
pub(crate) trait Progress: Send + Sync {
    /// `done` of `total` steps are finished.
    fn report(&self, done: usize, total: usize, message: String) -> BoxFuture<'_, ()>;
}

/// One object to put into a new revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Source {
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
pub(crate) struct Published {
    /// Its top hash.
    pub top_hash: String,
    /// How many entries it has.
    pub entry_count: usize,
    /// Their total size.
    pub total_size: u64,
    /// The time of its timestamp pointer, Unix seconds.
    pub created_at: i64,
    /// Both pointers were written with S3 conditional writes, so no concurrent
    /// publisher was overwritten; false after `force` or on an endpoint without
    /// conditional writes.
    pub race_safe: bool,
}

/// Reads and hashes every source, [`HASH_CONCURRENCY`] at a time, streaming each
/// body through the hasher (no body is held), and reports progress at most
/// [`MAX_PROGRESS_REPORTS`] times; the records come back in tree order. Stops with [`QuiltError::Cancelled`]
/// as soon as `cancel` fires.
pub(crate) async fn hash_sources(
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
        if worth_reporting(done, total) {
            progress
                .report(done, total, format!("hashed {done} of {total} files"))
                .await;
        }
    }
    records.sort_by(|a, b| tree_order(a.logical_key(), b.logical_key()));
    Ok(records)
}

/// Streams one source once: its size, `sha2-256-chunked` and version id.
async fn hash_source(s3: &aws_sdk_s3::Client, source: Source) -> Result<Record, QuiltError> {
    let target = physical_key(&source.bucket, &source.key, source.version_id.as_deref());
    let object = S3Uri::versioned(&source.bucket, &source.key, source.version_id.as_deref());
    let mut body = S3::new(s3).open(&object, u64::MAX).await?;
    let size = body.size.unwrap_or(0);
    let version = body
        .version_id
        .clone()
        .or(source.version_id.clone())
        .filter(|v| v != "null");
    let mut hasher = ChunkedHasher::new(size);
    while let Some(piece) = body.next_chunk().await? {
        hasher.update(&piece);
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

/// A new manifest of `records` (in tree order) with a message, package metadata and
/// the `workflow` object it passed, its header's keys in quilt3's order: `version`,
/// `user_meta`, `workflow`, `message`.
pub(crate) fn new_manifest(
    records: Vec<Record>,
    message: Option<String>,
    metadata: Option<Value>,
    workflow: Option<Value>,
) -> Manifest {
    Manifest::new(new_header(message, metadata, workflow), records)
}

/// The header of a new manifest, its keys in quilt3's order: `version`, `user_meta`,
/// `workflow`, `message`.
pub(crate) fn new_header(
    message: Option<String>,
    metadata: Option<Value>,
    workflow: Option<Value>,
) -> Map<String, Value> {
    let mut header = Map::new();
    header.insert("version".into(), json!("v0"));
    if let Some(metadata) = metadata {
        header.insert("user_meta".into(), metadata);
    }
    if let Some(workflow) = workflow {
        header.insert("workflow".into(), workflow);
    }
    header.insert("message".into(), message.map_or(Value::Null, Value::String));
    header
}

/// What a new revision changes against the one it replaces, by logical key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Changes {
    /// Keys only in the new revision.
    pub added: u64,
    /// Keys only in the previous one.
    pub removed: u64,
    /// Keys in both whose content (hash or size) differs.
    pub modified: u64,
    /// Keys in both with the same content.
    pub unchanged: u64,
}

impl Changes {
    /// The changes of a first revision: every entry added.
    pub(crate) fn first(manifest: &Manifest) -> Changes {
        Changes {
            added: manifest.entries().count() as u64,
            ..Changes::default()
        }
    }
}

/// Compares `manifest` (not yet written) with the revision `previous` of `registry`,
/// streaming the previous manifest (verifying its top hash) in bounded memory.
pub(crate) async fn changes(
    registry: &Registry<'_>,
    previous: &str,
    manifest: &Manifest,
) -> Result<Changes, QuiltError> {
    let top_hash = manifest.top_hash();
    let bytes: std::sync::Arc<[u8]> = manifest.to_bytes().into();
    let new_uri = format!("the new revision {top_hash}");
    let (_, _, diff) = diff::diff(
        |index, order| {
            let bytes = bytes.clone();
            let new_uri = new_uri.clone();
            let top_hash = top_hash.clone();
            async move {
                if index == 0 {
                    stream::open(registry, previous, order).await
                } else {
                    let body: ManifestBody = Box::pin(std::io::Cursor::new(bytes));
                    ManifestStream::open(body, new_uri, &top_hash, order, SORT_BUDGET).await
                }
            }
        },
        0,
    )
    .await?;
    Ok(Changes {
        added: diff.added_count,
        removed: diff.removed_count,
        modified: diff.modified_count,
        unchanged: diff.unchanged,
    })
}

/// Attempts at a free timestamp second before giving up.
const TIMESTAMP_ATTEMPTS: i64 = 30;

/// Writes `manifest` and makes it the latest revision of `name`, race-safely (docs/reference.md, Tools):
/// the timestamp pointer is written with `If-None-Match: *` (a taken second moves to
/// the next one) and `latest` with `If-Match` on the ETag of `previous`, the pointer
/// this revision builds on (`If-None-Match: *` for a new package). When `latest`
/// moved meanwhile the result is [`QuiltError::Conflict`], unless `force`, which
/// moves `latest` unconditionally. A losing publisher removes the timestamp pointer
/// it wrote when `may_delete` (the token grants `s3:DeleteObject`).
///
/// An endpoint that answers a conditional write with `NotImplemented` gets plain
/// writes after a read-and-compare check, which a concurrent publisher can slip
/// past: [`Published::race_safe`] is then false and a warning is logged.
pub(crate) async fn publish(
    registry: &Registry<'_>,
    name: &str,
    manifest: Manifest,
    previous: Option<&PointerRead>,
    force: bool,
    may_delete: bool,
) -> Result<Published, QuiltError> {
    let stored = Stored {
        top_hash: manifest.top_hash(),
        entry_count: manifest.entries().count(),
        total_size: manifest.entries().map(Record::size).sum(),
    };
    registry
        .put(
            &manifest_key(&stored.top_hash),
            manifest.to_bytes(),
            "application/jsonl",
        )
        .await?;
    drop(manifest);
    point(registry, name, stored, previous, force, may_delete).await
}

/// A manifest written under its top hash, not yet pointed at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored {
    /// Its top hash.
    pub top_hash: String,
    /// How many entries it has.
    pub entry_count: usize,
    /// Their total size.
    pub total_size: u64,
}

/// As [`publish`], for a manifest already written to the file at `path` (of the
/// revision `stored`): uploaded streamed from disk, then pointed at as [`publish`]
/// does, without `force`.
pub(crate) async fn publish_file(
    registry: &Registry<'_>,
    name: &str,
    path: &std::path::Path,
    stored: Stored,
    previous: &PointerRead,
    may_delete: bool,
) -> Result<Published, QuiltError> {
    registry
        .put_file(&manifest_key(&stored.top_hash), path, "application/jsonl")
        .await?;
    point(registry, name, stored, Some(previous), false, may_delete).await
}

/// Makes the stored revision the latest of `name`: the timestamp pointer, then
/// `latest`, as [`publish`] says.
async fn point(
    registry: &Registry<'_>,
    name: &str,
    stored: Stored,
    previous: Option<&PointerRead>,
    force: bool,
    may_delete: bool,
) -> Result<Published, QuiltError> {
    let Stored {
        top_hash,
        entry_count,
        total_size,
    } = stored;
    let previous_hash = previous.map(|p| p.top_hash.as_str());
    // An early check: a publisher that already lost writes no timestamp pointer.
    let current = registry.latest(name).await?;
    if current.as_deref() != previous_hash && !force {
        return Err(moved(name, current.as_deref(), &top_hash, ""));
    }

    let pointer = top_hash.clone().into_bytes();
    let mut conditional = true;
    let (stamp, wrote_stamp) =
        write_timestamp(registry, name, &top_hash, &pointer, &mut conditional).await?;
    let stamp_key = timestamp_key(name, stamp);

    let latest = latest_key(name);
    let condition = match previous {
        None => Some(WriteCondition::Absent),
        Some(PointerRead {
            etag: Some(etag), ..
        }) => Some(WriteCondition::Matches(etag)),
        // No ETag to name: only the read-and-compare check is possible.
        Some(PointerRead { etag: None, .. }) => None,
    };
    let outcome = match condition {
        Some(condition) if conditional && !force => {
            registry
                .put_conditional(&latest, pointer.clone(), "text/plain", condition)
                .await?
        }
        _ => ConditionalPut::Unsupported,
    };
    match outcome {
        ConditionalPut::Written => {}
        ConditionalPut::Lost => {
            let current = registry.latest(name).await.ok().flatten();
            let cleanup = remove_stamp(registry, name, &stamp_key, wrote_stamp, may_delete).await;
            return Err(moved(name, current.as_deref(), &top_hash, &cleanup));
        }
        ConditionalPut::Unsupported => {
            if !force {
                if conditional && condition.is_some() {
                    unsupported(registry, name);
                } else if conditional {
                    tracing::warn!(
                        event = "conditional_writes_unsupported",
                        bucket = registry.bucket(),
                        package = name,
                        "the S3 endpoint sent no ETag with latest, so it cannot be moved with If-Match; publishing falls back to a read-and-compare check, which a concurrent publisher can slip past"
                    );
                }
                conditional = false;
                let current = registry.latest(name).await?;
                if current.as_deref() != previous_hash {
                    let cleanup =
                        remove_stamp(registry, name, &stamp_key, wrote_stamp, may_delete).await;
                    return Err(moved(name, current.as_deref(), &top_hash, &cleanup));
                }
            }
            registry.put(&latest, pointer, "text/plain").await?;
        }
    }
    Ok(Published {
        top_hash,
        entry_count,
        total_size,
        created_at: stamp,
        race_safe: conditional && !force && condition.is_some(),
    })
}

/// Writes the timestamp pointer of `top_hash` at the first free second from now:
/// `If-None-Match: *` while `conditional`, else a read-and-compare check (which turns
/// `conditional` off when the endpoint does not implement conditional writes). The
/// second, and whether this call created the pointer (false when the second already
/// held this very revision).
async fn write_timestamp(
    registry: &Registry<'_>,
    name: &str,
    top_hash: &str,
    pointer: &[u8],
    conditional: &mut bool,
) -> Result<(i64, bool), QuiltError> {
    let first = now_unix();
    let mut now = first;
    while now - first < TIMESTAMP_ATTEMPTS {
        let key = timestamp_key(name, now);
        if *conditional {
            match registry
                .put_conditional(&key, pointer.to_vec(), "text/plain", WriteCondition::Absent)
                .await?
            {
                ConditionalPut::Written => return Ok((now, true)),
                ConditionalPut::Lost => {
                    let existing = registry.get_small(&key).await?;
                    if existing.as_deref().and_then(parse_pointer).as_deref() == Some(top_hash) {
                        return Ok((now, false));
                    }
                    now += 1;
                    continue;
                }
                ConditionalPut::Unsupported => {
                    unsupported(registry, name);
                    *conditional = false;
                }
            }
        }
        // Two revisions within one second would share a timestamp pointer and the
        // older one would drop out of the history: take the next free second instead.
        match registry.get_small(&key).await? {
            Some(existing) if parse_pointer(&existing).as_deref() != Some(top_hash) => now += 1,
            Some(_) => return Ok((now, false)),
            None => {
                registry.put(&key, pointer.to_vec(), "text/plain").await?;
                return Ok((now, true));
            }
        }
    }
    Err(QuiltError::Conflict(format!(
        "{name}: every timestamp second from {first} to {now} is taken by other revisions; nothing was published; call again"
    )))
}

/// Removes the timestamp pointer of a revision that lost the race for `latest`, when
/// this publish wrote it and the token may delete; what remains, said for the
/// conflict's message.
async fn remove_stamp(
    registry: &Registry<'_>,
    name: &str,
    stamp_key: &str,
    wrote_stamp: bool,
    may_delete: bool,
) -> String {
    if !wrote_stamp {
        return String::new();
    }
    if !may_delete {
        return format!(
            "; its timestamp pointer {} remains in the history (the token does not grant s3:DeleteObject to remove it)",
            registry_uri(registry, stamp_key)
        );
    }
    match registry.delete(stamp_key).await {
        Ok(()) => String::new(),
        Err(e) => {
            tracing::warn!(
                event = "publish_cleanup_failed",
                bucket = registry.bucket(),
                package = name,
                "the timestamp pointer of a revision that lost a race could not be removed: {e}"
            );
            format!(
                "; its timestamp pointer {} could not be removed and remains in the history",
                registry_uri(registry, stamp_key)
            )
        }
    }
}

fn registry_uri(registry: &Registry<'_>, key: &str) -> String {
    format!("s3://{}/{key}", registry.bucket())
}

/// The conflict of a publisher whose parent is no longer `latest`.
fn moved(name: &str, current: Option<&str>, top_hash: &str, cleanup: &str) -> QuiltError {
    QuiltError::Conflict(format!(
        "{name} moved to {} while this revision was made; latest was not changed (the manifest is stored as {top_hash}{cleanup}); call again to build on the new revision, or pass force: true",
        current.unwrap_or("nothing")
    ))
}

/// Says, once per publish, that the endpoint does not implement conditional writes.
fn unsupported(registry: &Registry<'_>, name: &str) {
    tracing::warn!(
        event = "conditional_writes_unsupported",
        bucket = registry.bucket(),
        package = name,
        "the S3 endpoint does not implement conditional writes (If-None-Match/If-Match); publishing falls back to a read-and-compare check, which a concurrent publisher can slip past"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reports(total: usize) -> Vec<usize> {
        (1..=total).filter(|&d| worth_reporting(d, total)).collect()
    }

    #[test]
    fn progress_is_every_file_up_to_a_hundred_then_a_hundred_steps() {
        assert_eq!(reports(6), vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(reports(100).len(), 100);
        for total in [101, 999, 1000, 10_000, 99_999, 100_000] {
            let steps = reports(total);
            assert!(
                steps.len() <= MAX_PROGRESS_REPORTS + 1,
                "{total}: {}",
                steps.len()
            );
            assert!(
                steps.len() >= MAX_PROGRESS_REPORTS / 2,
                "{total}: {}",
                steps.len()
            );
            assert_eq!(steps.last(), Some(&total));
        }
        assert_eq!(reports(10_000).first(), Some(&100));
    }
}
