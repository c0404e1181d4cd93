//! A new revision made from a parent revision and a set of changes (`package_patch`,
//! docs/reference.md, Tools), in bounded memory whatever the parent's size.
//!
//! Only the changes are held: the new entries, sorted in tree order, and the keys and
//! `dir/` prefixes to remove. The parent is streamed in tree order with its top hash
//! verified ([`stream`]; a parent whose lines are out of order is read once more and
//! its lines sorted with the [`ExternalSorter`]), and merged with the changes into a
//! temporary file counted against the server's temporary-disk budget
//! ([`super::budget`]). The new top hash, the entry count, the total size and the
//! changes against the parent are computed as the lines pass. Kept lines are the
//! parent's own, byte for byte (hash, size, physical keys and meta untouched).
//!
//! The file is then what is uploaded as the new manifest, streamed from disk.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::io::{BufWriter, Write as _};
use std::path::Path;

use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};
use tokio_util::sync::CancellationToken;

use super::budget::{Budget, Charge, TEMP_DISK};
use super::error::QuiltError;
use super::json::{self, QUILT3_LINE};
use super::line::{Header, Line};
use super::manifest::{self, Record, tree_order};
use super::publish::Changes;
use super::registry::{ManifestBody, Registry};
use super::stream::{self, ExternalSorter, ManifestStream, Next, Order, SORT_BUDGET};

/// Temporary disk taken at a time as the merged manifest grows.
const CHARGE_STEP: u64 = 1024 * 1024;
/// Lines merged between two looks at whether the call was cancelled.
const CANCEL_EVERY: u64 = 4096;

/// What to remove: logical keys, and prefixes ending in `/` that remove every key
/// under them. Each remembers whether it matched anything in the parent.
#[derive(Debug, Default)]
pub(crate) struct Removals {
    /// Each key or prefix, with whether it matched.
    targets: HashMap<String, bool>,
}

impl Removals {
    /// Removals of `targets` (a prefix ends in `/`).
    pub(crate) fn new(targets: impl IntoIterator<Item = String>) -> Removals {
        Removals {
            targets: targets.into_iter().map(|t| (t, false)).collect(),
        }
    }

    /// Whether `key` is removed (the key itself, or a prefix of it that ends at a
    /// `/`); marks what matched.
    fn hits(&mut self, key: &str) -> bool {
        if self.targets.is_empty() {
            return false;
        }
        let mut hit = false;
        if let Some(matched) = self.targets.get_mut(key) {
            *matched = true;
            hit = true;
        }
        for (i, _) in key.match_indices('/') {
            if let Some(matched) = self.targets.get_mut(&key[..=i]) {
                *matched = true;
                hit = true;
            }
        }
        hit
    }

    /// The keys and prefixes that matched nothing, sorted.
    pub(crate) fn unmatched(&self) -> Vec<&str> {
        let mut unmatched: Vec<&str> = self
            .targets
            .iter()
            .filter(|(_, matched)| !**matched)
            .map(|(t, _)| t.as_str())
            .collect();
        unmatched.sort_unstable();
        unmatched
    }

    fn reset(&mut self) {
        for matched in self.targets.values_mut() {
            *matched = false;
        }
    }
}

/// A new entry, ready to be written: its line as quilt3 writes it and the part of it
/// hashed into the top hash.
#[derive(Debug)]
struct NewEntry {
    key: String,
    line: String,
    part: String,
    size: u64,
    hash: (String, String),
    user_meta: Value,
}

impl NewEntry {
    fn new(record: &Record) -> NewEntry {
        let mut part = String::new();
        record.write_hash_part(&mut part);
        let (kind, value) = record.hash_parts();
        NewEntry {
            key: record.logical_key().to_owned(),
            line: json::object_to_string(record.object(), QUILT3_LINE),
            part,
            size: record.size(),
            hash: (kind.to_owned(), value.to_owned()),
            user_meta: user_meta(record.meta()),
        }
    }
}

/// An entry's `user_meta` as a workflow's `entries_schema` sees it (`{}` when none).
fn user_meta(meta: &Value) -> Value {
    meta.get("user_meta")
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()))
}

/// One entry of what an `entries_schema` checks: `{logical_key, size, meta}`.
fn entry_value(key: &str, size: u64, meta: Value) -> Value {
    let mut obj = Map::new();
    obj.insert("logical_key".into(), Value::String(key.to_owned()));
    obj.insert("size".into(), Value::from(size));
    obj.insert("meta".into(), meta);
    Value::Object(obj)
}

/// The changes a patch makes, held in memory while the parent streams past.
#[derive(Debug)]
pub(crate) struct Patch {
    /// The new header as quilt3 writes it, and the top hash's start.
    header_line: String,
    header_hasher: Sha256,
    /// New entries, tree order, one per key.
    adds: Vec<NewEntry>,
    removals: Removals,
    /// Most entries collected for a workflow's `entries_schema`; `None` when the
    /// workflow does not check entries.
    entries_limit: Option<usize>,
}

impl Patch {
    /// A patch writing `header` (the new revision's header) with `adds` (in tree
    /// order, one per logical key) and `removals`; with `entries_limit`, the merged
    /// entries are collected (at most that many, else `too_large`) for a workflow
    /// that checks them.
    pub(crate) fn new(
        header: &Map<String, Value>,
        adds: &[Record],
        removals: Removals,
        entries_limit: Option<usize>,
    ) -> Patch {
        Patch {
            header_line: json::object_to_string(header, QUILT3_LINE),
            header_hasher: manifest::header_hasher(header),
            adds: adds.iter().map(NewEntry::new).collect(),
            removals,
            entries_limit,
        }
    }
}

/// A merged revision, written to a temporary file and not yet published.
#[derive(Debug)]
pub(crate) struct Patched {
    file: tempfile::NamedTempFile,
    _disk: Charge,
    /// Its top hash.
    pub top_hash: String,
    /// How many entries it has.
    pub entry_count: usize,
    /// Their total size.
    pub total_size: u64,
    /// What changed against the parent.
    pub changes: Changes,
    /// The entries as an `entries_schema` checks them (when asked for).
    pub entries: Option<Value>,
    /// The removals, to ask which matched nothing.
    pub removals: Removals,
}

impl Patched {
    /// Where the manifest is.
    pub(crate) fn path(&self) -> &Path {
        self.file.path()
    }
}

fn temp_error(e: std::io::Error) -> QuiltError {
    QuiltError::interrupted("the patched manifest's temporary file", e)
}

/// The merged manifest being written: a buffered temporary file whose bytes are
/// charged to the temporary-disk budget as it grows.
struct Out {
    out: BufWriter<std::fs::File>,
    disk: Charge,
    charged: u64,
    bytes: u64,
}

impl Out {
    /// Writes one line and its `\n`, charging the disk it takes.
    fn write_line(&mut self, text: &str) -> Result<(), QuiltError> {
        let len = text.len() as u64 + 1;
        if self.bytes + len > self.charged {
            let step = (self.bytes + len - self.charged).max(CHARGE_STEP);
            self.disk.add(step)?;
            self.charged += step;
        }
        self.out.write_all(text.as_bytes()).map_err(temp_error)?;
        self.out.write_all(b"\n").map_err(temp_error)?;
        self.bytes += len;
        Ok(())
    }
}

/// What the merged entries add up to.
struct Tally {
    entry_count: usize,
    total_size: u64,
    /// The entries for an `entries_schema`, at most `limit`.
    entries: Option<Vec<Value>>,
    limit: usize,
}

impl Tally {
    /// Counts an entry written (with its `user_meta`, asked for only when an
    /// `entries_schema` checks the entries).
    fn count(
        &mut self,
        key: &str,
        size: u64,
        meta: impl FnOnce() -> Value,
    ) -> Result<(), QuiltError> {
        self.entry_count += 1;
        self.total_size = self.total_size.saturating_add(size);
        if let Some(entries) = &mut self.entries {
            if entries.len() >= self.limit {
                return Err(QuiltError::TooLarge(format!(
                    "the workflow checks the whole entry list against its entries_schema at once, which this server does for at most {} entries",
                    self.limit
                )));
            }
            entries.push(entry_value(key, size, meta()));
        }
        Ok(())
    }
}

/// The merge of the parent's lines (fed in tree order) with a [`Patch`], written as
/// it goes.
struct Merge<'p> {
    patch: &'p mut Patch,
    next_add: usize,
    /// The key of the last parent entry an add replaced (a second line of that key
    /// in the parent is dropped too).
    replaced: Option<String>,
    out: Out,
    hasher: Sha256,
    tally: Tally,
    changes: Changes,
    scratch: String,
    lines: u64,
}

/// A parent's line in the merge.
enum ParentLine<'a, 'b> {
    /// An entry, with its hash part when already computed.
    Entry(&'b Line<'a>, Option<&'b str>),
    /// A directory-metadata line.
    Directory(&'b Line<'a>),
}

impl<'p> Merge<'p> {
    /// A merge into `file` whose header is written.
    fn new(
        patch: &'p mut Patch,
        file: &tempfile::NamedTempFile,
        disk: &'static Budget,
    ) -> Result<Merge<'p>, QuiltError> {
        patch.removals.reset();
        let mut out = Out {
            out: BufWriter::with_capacity(64 * 1024, file.reopen().map_err(temp_error)?),
            disk: disk.charge_for("patching this package"),
            charged: 0,
            bytes: 0,
        };
        out.write_line(&patch.header_line)?;
        Ok(Merge {
            hasher: patch.header_hasher.clone(),
            tally: Tally {
                entry_count: 0,
                total_size: 0,
                entries: patch.entries_limit.map(|_| Vec::new()),
                limit: patch.entries_limit.unwrap_or(0),
            },
            patch,
            next_add: 0,
            replaced: None,
            out,
            changes: Changes::default(),
            scratch: String::new(),
            lines: 0,
        })
    }

    /// Writes the next new entry.
    fn write_add(&mut self) -> Result<(), QuiltError> {
        let Some(add) = self.patch.adds.get(self.next_add) else {
            return Ok(());
        };
        self.next_add += 1;
        self.out.write_line(&add.line)?;
        self.hasher.update(add.part.as_bytes());
        self.tally
            .count(&add.key, add.size, || add.user_meta.clone())
    }

    /// Writes the new entries that come before `key` in tree order (all that are
    /// left for `None`).
    fn adds_before(&mut self, key: Option<&str>) -> Result<(), QuiltError> {
        while let Some(add) = self.patch.adds.get(self.next_add) {
            if key.is_some_and(|key| tree_order(&add.key, key) != Ordering::Less) {
                break;
            }
            self.changes.added += 1;
            self.write_add()?;
        }
        Ok(())
    }

    /// The parent's next line, in tree order.
    fn push(&mut self, line: ParentLine<'_, '_>) -> Result<(), QuiltError> {
        self.lines += 1;
        let (line, part) = match line {
            ParentLine::Directory(line) => {
                if !self.patch.removals.hits(line.logical_key()) {
                    self.out.write_line(line.text())?;
                }
                return Ok(());
            }
            ParentLine::Entry(line, part) => (line, part),
        };
        let key = line.logical_key();
        self.adds_before(Some(key))?;
        let removed = self.patch.removals.hits(key);
        if let Some(add) = self.patch.adds.get(self.next_add)
            && add.key == key
        {
            let same = (add.hash.0.as_str(), add.hash.1.as_str()) == line.hash_parts()
                && add.size == line.size();
            if same {
                self.changes.unchanged += 1;
            } else {
                self.changes.modified += 1;
            }
            self.replaced = Some(add.key.clone());
            return self.write_add();
        }
        if self.replaced.as_deref() == Some(key) {
            // A second line of a key an add replaced.
            return Ok(());
        }
        if removed {
            self.changes.removed += 1;
            return Ok(());
        }
        self.changes.unchanged += 1;
        self.out.write_line(line.text())?;
        match part {
            Some(part) => self.hasher.update(part.as_bytes()),
            None => {
                self.scratch.clear();
                line.write_hash_part(&mut self.scratch);
                self.hasher.update(self.scratch.as_bytes());
            }
        }
        self.tally
            .count(key, line.size(), || user_meta(&line.meta()))
    }

    /// Whether the call was cancelled, looked at now and then (yielding, so that a
    /// long merge lets the cancellation through).
    async fn checkpoint(&self, cancel: &CancellationToken) -> Result<(), QuiltError> {
        if self.lines.is_multiple_of(CANCEL_EVERY) {
            if cancel.is_cancelled() {
                return Err(QuiltError::Cancelled);
            }
            tokio::task::yield_now().await;
        }
        Ok(())
    }

    /// Writes the new entries left and flushes the file.
    fn finish(mut self, file: tempfile::NamedTempFile) -> Result<Patched, QuiltError> {
        self.adds_before(None)?;
        self.out.out.flush().map_err(temp_error)?;
        Ok(Patched {
            file,
            _disk: self.out.disk,
            top_hash: manifest::hex(&self.hasher.finalize()),
            entry_count: self.tally.entry_count,
            total_size: self.tally.total_size,
            changes: self.changes,
            entries: self.tally.entries.map(Value::Array),
            removals: std::mem::take(&mut self.patch.removals),
        })
    }
}

/// The header of revision `top_hash` (its first line; not yet verified: the merge
/// that reads the whole revision checks that it is the one it verifies).
pub(crate) async fn read_header(
    registry: &Registry<'_>,
    top_hash: &str,
) -> Result<Header, QuiltError> {
    let stream = stream::open(registry, top_hash, Order::Streaming).await?;
    Ok(stream.header().clone())
}

/// Merges the parent revision `parent` of `registry` (whose header must be `header`,
/// as [`read_header`] read it) with `patch` into a temporary file, verifying the
/// parent's top hash; nothing is published. Stops with [`QuiltError::Cancelled`]
/// when `cancel` fires.
pub(crate) async fn merge(
    registry: &Registry<'_>,
    parent: &str,
    header: &Header,
    patch: &mut Patch,
    cancel: &CancellationToken,
) -> Result<Patched, QuiltError> {
    let open = |order| stream::open(registry, parent, order);
    merge_from(open, parent, header, patch, cancel, &TEMP_DISK, SORT_BUDGET).await
}

/// [`merge`] of the manifest `open` opens in the order asked for, sorting with
/// `sort_budget` bytes in memory, its temporary files charged to `disk`.
async fn merge_from<F, Fut>(
    open: F,
    parent: &str,
    header: &Header,
    patch: &mut Patch,
    cancel: &CancellationToken,
    disk: &'static Budget,
    sort_budget: usize,
) -> Result<Patched, QuiltError>
where
    F: Fn(Order) -> Fut,
    Fut: Future<Output = Result<ManifestStream<ManifestBody>, QuiltError>>,
{
    let changed = || {
        QuiltError::Integrity(format!(
            "the header of revision {parent} read twice was not the same: the manifest was altered"
        ))
    };
    // In tree order, as quilt3 writes manifests: one pass.
    let file = tempfile::NamedTempFile::new().map_err(temp_error)?;
    let mut stream = open(Order::Streaming).await?;
    if stream.header() != header {
        return Err(changed());
    }
    let mut merge = Merge::new(patch, &file, disk)?;
    let mut sorted = true;
    loop {
        match stream.next().await? {
            Next::Entry(entry) => {
                let part = entry.hash_part();
                merge.push(ParentLine::Entry(&entry.line, Some(part)))?;
            }
            Next::Directory(line) => merge.push(ParentLine::Directory(&line))?,
            Next::Unsorted => {
                sorted = false;
                break;
            }
            Next::End => break,
        }
        merge.checkpoint(cancel).await?;
    }
    if sorted {
        stream.finish().await?;
        return merge.finish(file);
    }
    drop(merge);
    drop(stream);
    drop(file);

    // Out of order: read again, hashing by sorting, the lines sorted aside.
    let mut stream = open(Order::Sorting).await?;
    if stream.header() != header {
        return Err(changed());
    }
    let mut lines = ExternalSorter::with_disk(sort_budget, disk);
    let mut n: u64 = 0;
    loop {
        let (key, text) = match stream.next().await? {
            Next::Entry(entry) => (entry.line.logical_key().to_owned(), entry.line.text()),
            Next::Directory(line) => (line.logical_key().to_owned(), line.text()),
            Next::End => break,
            Next::Unsorted => {
                return Err(QuiltError::Internal(
                    "a sorting read reported an entry out of order".to_owned(),
                ));
            }
        };
        lines.push(key, text.as_bytes().to_vec())?;
        n += 1;
        if n.is_multiple_of(CANCEL_EVERY) {
            if cancel.is_cancelled() {
                return Err(QuiltError::Cancelled);
            }
            tokio::task::yield_now().await;
        }
    }
    stream.finish().await?;
    let mut lines = lines.finish()?;
    let file = tempfile::NamedTempFile::new().map_err(temp_error)?;
    let mut merge = Merge::new(patch, &file, disk)?;
    while let Some((_, bytes)) = lines.next_item().map_err(temp_error)? {
        let text = std::str::from_utf8(&bytes).map_err(|e| temp_error(std::io::Error::other(e)))?;
        let line = Line::parse(text, 0).map_err(|e| {
            QuiltError::Integrity(format!("the manifest of {parent} is invalid: {e}"))
        })?;
        if line.is_directory() {
            merge.push(ParentLine::Directory(&line))?;
        } else {
            merge.push(ParentLine::Entry(&line, None))?;
        }
        merge.checkpoint(cancel).await?;
    }
    merge.finish(file)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::quilt::manifest::Manifest;

    fn entry(key: &str, hash: &str, size: u64) -> Record {
        let mut obj = Map::new();
        obj.insert("logical_key".into(), json!(key));
        obj.insert("physical_keys".into(), json!([format!("s3://b/{key}")]));
        obj.insert("size".into(), json!(size));
        obj.insert(
            "hash".into(),
            json!({"type": "sha2-256-chunked", "value": hash}),
        );
        obj.insert("meta".into(), json!({"user_meta": {"of": key}}));
        Record::from_object(obj)
    }

    fn directory(key: &str) -> Record {
        let mut obj = Map::new();
        obj.insert("logical_key".into(), json!(key));
        obj.insert("meta".into(), json!({"dir": true}));
        Record::from_object(obj)
    }

    /// A parent of these keys in this order (a key ending in `/` is a directory
    /// line), its bytes and top hash.
    fn parent(keys: &[&str]) -> (Vec<u8>, String) {
        let records = keys
            .iter()
            .map(|k| {
                if k.ends_with('/') {
                    directory(k)
                } else {
                    entry(k, "p", 1)
                }
            })
            .collect();
        let mut header = Map::new();
        header.insert("version".into(), json!("v0"));
        header.insert("user_meta".into(), json!({"parent": true}));
        header.insert("message".into(), json!("parent"));
        let m = Manifest::new(header, records);
        (m.to_bytes(), m.top_hash())
    }

    fn new_header() -> Map<String, Value> {
        let mut header = Map::new();
        header.insert("version".into(), json!("v0"));
        header.insert("message".into(), json!("patched"));
        header
    }

    struct Run {
        bytes: Vec<u8>,
        top_hash: String,
        sort_budget: usize,
        disk: &'static Budget,
        entries_limit: Option<usize>,
    }

    impl Run {
        fn of(bytes: Vec<u8>, top_hash: String) -> Run {
            Run {
                bytes,
                top_hash,
                sort_budget: SORT_BUDGET,
                disk: Box::leak(Box::new(Budget::new(u64::MAX / 2))),
                entries_limit: None,
            }
        }

        async fn merge(
            &self,
            adds: &[Record],
            removes: &[&str],
        ) -> Result<(Patched, String), QuiltError> {
            let open = |order| {
                let body: ManifestBody = Box::pin(std::io::Cursor::new(self.bytes.clone()));
                ManifestStream::open(
                    body,
                    "s3://b/m".to_owned(),
                    &self.top_hash,
                    order,
                    self.sort_budget,
                )
            };
            let header = open(Order::Streaming).await?.header().clone();
            let mut patch = Patch::new(
                &new_header(),
                adds,
                Removals::new(removes.iter().map(|r| (*r).to_owned())),
                self.entries_limit,
            );
            let patched = merge_from(
                open,
                &self.top_hash,
                &header,
                &mut patch,
                &CancellationToken::new(),
                self.disk,
                self.sort_budget,
            )
            .await?;
            let text = std::fs::read_to_string(patched.path()).unwrap();
            Ok((patched, text))
        }
    }

    const fn counts(added: u64, removed: u64, modified: u64, unchanged: u64) -> Changes {
        Changes {
            added,
            removed,
            modified,
            unchanged,
        }
    }

    /// `key:hash` of each line after the header (`key` alone for a directory).
    fn lines(text: &str) -> Vec<String> {
        let m = Manifest::parse(text).unwrap();
        text.lines()
            .skip(1)
            .map(|line| {
                let v: Value = serde_json::from_str(line).unwrap();
                let key = v["logical_key"].as_str().unwrap();
                match v["hash"]["value"].as_str() {
                    Some(hash) => format!("{key}:{hash}"),
                    None => key.to_owned(),
                }
            })
            .inspect(|_| assert!(m.entries().count() <= text.lines().count()))
            .collect()
    }

    type Case<'a> = (
        &'a [&'a str],
        &'a [(&'a str, &'a str)],
        &'a [&'a str],
        &'a [&'a str],
        Changes,
        &'a [&'a str],
    );

    /// (parent keys, adds, removes, lines after, changes, unmatched removals)
    const CASES: &[Case<'static>] = &[
        // Add before, between and after.
        (
            &["b", "d"],
            &[("a", "n"), ("c", "n"), ("e", "n")],
            &[],
            &["a:n", "b:p", "c:n", "d:p", "e:n"],
            counts(3, 0, 0, 2),
            &[],
        ),
        // Replace with other content, and with the same content.
        (
            &["a", "b"],
            &[("a", "n"), ("b", "p")],
            &[],
            &["a:n", "b:p"],
            counts(0, 0, 1, 1),
            &[],
        ),
        // Remove a key and a prefix; `dir/` does not remove `dir-x` or `dirx/y`.
        (
            &["a", "dir/x", "dir/y/z", "dir-x", "dirx/y"],
            &[],
            &["a", "dir/"],
            &["dir-x:p", "dirx/y:p"],
            counts(0, 3, 0, 2),
            &[],
        ),
        // Remove a directory and add into it: the directory is replaced.
        (
            &["dir/old", "dir/same"],
            &[("dir/new", "n"), ("dir/same", "p")],
            &["dir/"],
            &["dir/new:n", "dir/same:p"],
            counts(1, 1, 0, 1),
            &[],
        ),
        // Removals that match nothing are reported.
        (
            &["a", "b/c"],
            &[],
            &["x", "b/c/", "a/"],
            &["a:p", "b/c:p"],
            counts(0, 0, 0, 2),
            &["a/", "b/c/", "x"],
        ),
        // Tree order, not byte order: `a/b` before `a-c`.
        (
            &["a/b", "a-c"],
            &[("a/a", "n"), ("a.z", "n")],
            &[],
            &["a/a:n", "a/b:p", "a-c:p", "a.z:n"],
            counts(2, 0, 0, 2),
            &[],
        ),
        // Directory lines stay where they are unless removed.
        (
            &["d/", "d/a", "e/", "e/b"],
            &[("d/c", "n")],
            &["e/"],
            &["d/", "d/a:p", "d/c:n"],
            counts(1, 1, 0, 1),
            &[],
        ),
        // An empty parent.
        (&[], &[("a", "n")], &[], &["a:n"], counts(1, 0, 0, 0), &[]),
    ];

    const fn counts_of(c: &Changes) -> (u64, u64, u64, u64) {
        (c.added, c.removed, c.modified, c.unchanged)
    }

    /// Every case, on a sorted parent and on the same parent out of order (read
    /// again sorting, in memory and spilling to runs): the same lines, changes and
    /// unmatched removals; the top hash is the written manifest's; kept lines are
    /// the parent's byte for byte.
    #[tokio::test]
    async fn merges_adds_replacements_and_removals_in_tree_order() {
        for (keys, adds, removes, expected, changes, unmatched) in CASES {
            let adds: Vec<Record> = adds.iter().map(|(k, h)| entry(k, h, 1)).collect();
            let mut reversed: Vec<&str> = keys.to_vec();
            reversed.reverse();
            let (sorted_bytes, sorted_hash) = parent(keys);
            let (rev_bytes, rev_hash) = parent(&reversed);
            assert_eq!(sorted_hash, rev_hash);
            let runs = [
                (Run::of(sorted_bytes.clone(), sorted_hash.clone()), true),
                (Run::of(rev_bytes.clone(), rev_hash.clone()), false),
                (
                    Run {
                        sort_budget: 10,
                        ..Run::of(rev_bytes, rev_hash)
                    },
                    false,
                ),
            ];
            for (run, in_order) in runs {
                let (patched, text) = run.merge(&adds, removes).await.unwrap();
                let what = format!("{keys:?} {removes:?} sorted {in_order}");
                let mut got = lines(&text);
                let mut want: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
                if !in_order {
                    // Directory lines move to their key's place when sorted.
                    got.sort();
                    want.sort();
                }
                assert_eq!(got, want, "{what}");
                assert_eq!(counts_of(&patched.changes), counts_of(changes), "{what}");
                assert_eq!(patched.removals.unmatched(), *unmatched, "{what}");
                let m = Manifest::parse(&text).unwrap();
                assert_eq!(patched.top_hash, m.top_hash(), "{what}");
                assert_eq!(patched.entry_count, m.entries().count(), "{what}");
                assert_eq!(patched.total_size, m.entries().count() as u64, "{what}");
                let parent_text = String::from_utf8(sorted_bytes.clone()).unwrap();
                for line in text.lines().skip(1) {
                    if line.contains("\"p\"") || !line.contains("hash") {
                        assert!(parent_text.lines().any(|l| l == line), "{what}: {line}");
                    }
                }
                assert!(text.starts_with("{\"version\": \"v0\", \"message\": \"patched\"}\n"));
            }
        }
    }

    /// A line that writing its object back would not reproduce is kept as it was.
    #[tokio::test]
    async fn kept_lines_are_the_parents_own_bytes() {
        let odd = r#"{"logical_key":"odd","physical_keys":["s3://b/odd"],"size":3,"hash":{"type":"SHA256","value":"ab"},"meta":{"n":1.50}}"#;
        let (bytes, _) = parent(&["a"]);
        let text = format!("{}{odd}\n", String::from_utf8(bytes).unwrap());
        let hash = Manifest::parse(&text).unwrap().top_hash();
        let (patched, out) = Run::of(text.into_bytes(), hash)
            .merge(&[entry("b", "n", 1)], &[])
            .await
            .unwrap();
        assert!(out.lines().any(|l| l == odd), "{out}");
        assert_eq!(patched.top_hash, Manifest::parse(&out).unwrap().top_hash());
    }

    #[tokio::test]
    async fn a_tampered_parent_is_an_integrity_error() {
        let (bytes, hash) = parent(&["a", "b"]);
        let tampered = String::from_utf8(bytes)
            .unwrap()
            .replacen("\"size\": 1", "\"size\": 2", 1);
        let error = Run::of(tampered.into_bytes(), hash)
            .merge(&[entry("c", "n", 1)], &[])
            .await
            .unwrap_err();
        assert!(
            matches!(&error, QuiltError::Integrity(m) if m.contains("hashes to")),
            "{error}"
        );
    }

    /// The merged file counts against the temporary-disk budget; past it the patch
    /// is `too_large`, and whatever it took is given back.
    #[tokio::test]
    async fn the_merged_file_is_charged_to_the_disk_budget() {
        let keys: Vec<String> = (0..20_000).map(|i| format!("k/{i:06}")).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let (bytes, hash) = parent(&keys);
        let small: &'static Budget = Box::leak(Box::new(Budget::new(CHARGE_STEP)));
        let run = Run {
            disk: small,
            ..Run::of(bytes.clone(), hash.clone())
        };
        let error = run.merge(&[entry("z", "n", 1)], &[]).await.unwrap_err();
        assert!(
            matches!(&error, QuiltError::TooLarge(m) if m.starts_with("patching this package needs more temporary disk")),
            "{error}"
        );
        assert_eq!(small.used(), 0);

        let big: &'static Budget = Box::leak(Box::new(Budget::new(64 * CHARGE_STEP)));
        let run = Run {
            disk: big,
            ..Run::of(bytes, hash)
        };
        let (patched, text) = run.merge(&[entry("z", "n", 1)], &[]).await.unwrap();
        assert!(
            big.used() >= text.len() as u64,
            "{} < {}",
            big.used(),
            text.len()
        );
        drop(patched);
        assert_eq!(big.used(), 0);
    }

    /// For a workflow's `entries_schema` the entries are collected, up to a limit.
    #[tokio::test]
    async fn entries_for_a_schema_are_collected_up_to_a_limit() {
        let (bytes, hash) = parent(&["a", "b"]);
        let run = Run {
            entries_limit: Some(3),
            ..Run::of(bytes.clone(), hash.clone())
        };
        let (patched, _) = run.merge(&[entry("c", "n", 5)], &["a"]).await.unwrap();
        assert_eq!(
            patched.entries,
            Some(json!([
                {"logical_key": "b", "size": 1, "meta": {"of": "b"}},
                {"logical_key": "c", "size": 5, "meta": {"of": "c"}},
            ]))
        );
        let run = Run {
            entries_limit: Some(2),
            ..Run::of(bytes, hash)
        };
        let error = run
            .merge(&[entry("c", "n", 5), entry("d", "n", 5)], &[])
            .await
            .unwrap_err();
        assert!(matches!(error, QuiltError::TooLarge(_)), "{error}");
    }
}
