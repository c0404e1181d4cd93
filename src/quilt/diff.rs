//! The difference between two package revisions, computed as both manifests stream
//! by: a merge of their entries in tree order, holding only the first keys of each
//! list. A manifest not in tree order is read again into an external sort of one
//! small item per entry (hash, size and a digest of the canonical `meta`).

use std::cmp::Ordering;
use std::future::Future;

use sha2::{Digest as _, Sha256};

use super::error::QuiltError;
use super::line::Header;
use super::manifest::tree_order;
use super::stream::{Entry, ExternalSorter, ManifestStream, Next, Order, SORT_BUDGET, Sorted};

/// The most bytes of logical keys the four lists hold together; the counts go on.
pub(crate) const MAX_LIST_BYTES: usize = 2 * 1024 * 1024;

/// What changed from one revision to another; each list in tree order, holding at most
/// the limit it was computed with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Diff {
    /// Logical keys only in the new revision.
    pub added: Vec<String>,
    /// Logical keys only in the old revision.
    pub removed: Vec<String>,
    /// Logical keys in both whose hash or size differ.
    pub modified: Vec<String>,
    /// Logical keys in both whose entry metadata differ (a missing `meta` counts as `{}`).
    pub metadata_changed: Vec<String>,
    /// How many keys were added, in all.
    pub added_count: u64,
    /// How many were removed.
    pub removed_count: u64,
    /// How many were modified.
    pub modified_count: u64,
    /// How many had their metadata changed.
    pub metadata_changed_count: u64,
    /// Whether a list holds fewer keys than its count.
    pub truncated: bool,
    /// Whether the package's message or `user_meta` differ.
    pub package_metadata_changed: bool,
    /// Entries of the new revision that are neither added nor modified.
    pub unchanged: u64,
}

/// What the diff compares of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DiffItem {
    /// The logical key.
    pub key: String,
    kind: String,
    value: String,
    size: u64,
    /// SHA-256 of the canonical `meta` (`{}` when absent).
    meta: [u8; 32],
}

impl DiffItem {
    /// The item of an entry.
    pub(crate) fn of(entry: &Entry<'_>) -> DiffItem {
        let (kind, value) = entry.line.hash_parts();
        DiffItem {
            key: entry.line.logical_key().to_owned(),
            kind: kind.to_owned(),
            value: value.to_owned(),
            size: entry.line.size(),
            meta: Sha256::digest(entry.canonical_meta().as_bytes()).into(),
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(48 + self.kind.len() + self.value.len());
        out.extend_from_slice(&self.meta);
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&(self.kind.len() as u64).to_le_bytes());
        out.extend_from_slice(self.kind.as_bytes());
        out.extend_from_slice(self.value.as_bytes());
        out
    }

    fn decode(key: String, bytes: &[u8]) -> Option<DiffItem> {
        let meta: [u8; 32] = bytes.get(..32)?.try_into().ok()?;
        let size = u64::from_le_bytes(bytes.get(32..40)?.try_into().ok()?);
        let kind_len =
            usize::try_from(u64::from_le_bytes(bytes.get(40..48)?.try_into().ok()?)).ok()?;
        let kind = std::str::from_utf8(bytes.get(48..48usize.checked_add(kind_len)?)?).ok()?;
        let value = std::str::from_utf8(bytes.get(48 + kind_len..)?).ok()?;
        Some(DiffItem {
            key,
            kind: kind.to_owned(),
            value: value.to_owned(),
            size,
            meta,
        })
    }
}

/// Why a merge stopped early.
#[derive(Debug)]
enum Stop {
    Failed(QuiltError),
    /// This side (0 old, 1 new) is not in tree order.
    Unsorted(usize),
}

impl From<QuiltError> for Stop {
    fn from(error: QuiltError) -> Stop {
        Stop::Failed(error)
    }
}

fn temp_error(e: std::io::Error) -> QuiltError {
    QuiltError::interrupted("a temporary file", e)
}

/// One revision's entries in tree order, equal keys merged (the last wins).
enum Side<R> {
    /// Streamed as read (in tree order so far).
    Live(Box<ManifestStream<R>>),
    /// Read and verified whole, then sorted.
    Sorted(Sorted, Header),
}

struct Items<R> {
    index: usize,
    side: Side<R>,
    peeked: Option<DiffItem>,
    done: bool,
    read: u32,
}

impl<R: tokio::io::AsyncBufRead + Unpin> Items<R> {
    async fn raw(&mut self) -> Result<Option<DiffItem>, Stop> {
        match &mut self.side {
            Side::Live(stream) => loop {
                match stream.next().await? {
                    Next::Entry(entry) => return Ok(Some(DiffItem::of(&entry))),
                    Next::Directory(_) => {}
                    Next::End => return Ok(None),
                    Next::Unsorted => return Err(Stop::Unsorted(self.index)),
                }
            },
            Side::Sorted(sorted, _) => {
                self.read += 1;
                if self.read.is_multiple_of(4096) {
                    // Two sorted sides never wait on I/O: let a cancelled call stop.
                    tokio::task::yield_now().await;
                }
                match sorted.next_item().map_err(temp_error)? {
                    None => Ok(None),
                    Some((key, bytes)) => {
                        DiffItem::decode(key, &bytes).map(Some).ok_or_else(|| {
                            Stop::Failed(temp_error(std::io::Error::other(
                                "a sorted run is corrupt",
                            )))
                        })
                    }
                }
            }
        }
    }

    /// The next entry, of those with one key the last.
    async fn next(&mut self) -> Result<Option<DiffItem>, Stop> {
        let mut current = match self.peeked.take() {
            Some(item) => item,
            None if self.done => return Ok(None),
            None => match self.raw().await? {
                Some(item) => item,
                None => {
                    self.done = true;
                    return Ok(None);
                }
            },
        };
        loop {
            match self.raw().await? {
                Some(item) if item.key == current.key => current = item,
                Some(item) => {
                    self.peeked = Some(item);
                    return Ok(Some(current));
                }
                None => {
                    self.done = true;
                    return Ok(Some(current));
                }
            }
        }
    }

    /// The header, the top hash checked.
    async fn finish(self) -> Result<Header, QuiltError> {
        match self.side {
            Side::Live(stream) => (*stream).finish().await,
            Side::Sorted(_, header) => Ok(header),
        }
    }
}

/// Reads a whole manifest, verifying it, into a sort of its diff items.
async fn sorted_side<R: tokio::io::AsyncBufRead + Unpin>(
    mut stream: ManifestStream<R>,
    budget: usize,
) -> Result<Side<R>, QuiltError> {
    let mut sorter = ExternalSorter::new(budget);
    loop {
        match stream.next().await? {
            Next::Entry(entry) => {
                let item = DiffItem::of(&entry);
                let bytes = item.encode();
                sorter.push(item.key, bytes)?;
            }
            Next::Directory(_) => {}
            // Sorting, entries are never out of order.
            Next::Unsorted => {}
            Next::End => break,
        }
    }
    let header = stream.finish().await?;
    let sorted = sorter.finish()?;
    Ok(Side::Sorted(sorted, header))
}

struct Collector {
    limit: usize,
    diff: Diff,
    new_entries: u64,
    held: usize,
}

impl Collector {
    /// Counts `key`, and keeps it while its list is under `limit` and the lists under
    /// [`MAX_LIST_BYTES`].
    fn note(list: &mut Vec<String>, count: &mut u64, key: &str, limit: usize, held: &mut usize) {
        *count += 1;
        if list.len() < limit && *held + key.len() <= MAX_LIST_BYTES {
            *held += key.len();
            list.push(key.to_owned());
        }
    }

    fn pair(&mut self, old: Option<&DiffItem>, new: Option<&DiffItem>) {
        let d = &mut self.diff;
        let limit = self.limit;
        let held = &mut self.held;
        match (old, new) {
            (Some(old), None) => {
                Self::note(&mut d.removed, &mut d.removed_count, &old.key, limit, held)
            }
            (None, Some(new)) => {
                self.new_entries += 1;
                Self::note(&mut d.added, &mut d.added_count, &new.key, limit, held);
            }
            (Some(old), Some(new)) => {
                self.new_entries += 1;
                if (&old.kind, &old.value, old.size) != (&new.kind, &new.value, new.size) {
                    Self::note(
                        &mut d.modified,
                        &mut d.modified_count,
                        &new.key,
                        limit,
                        held,
                    );
                }
                if old.meta != new.meta {
                    Self::note(
                        &mut d.metadata_changed,
                        &mut d.metadata_changed_count,
                        &new.key,
                        limit,
                        held,
                    );
                }
            }
            (None, None) => {}
        }
    }
}

async fn merge<R: tokio::io::AsyncBufRead + Unpin>(
    old: &mut Items<R>,
    new: &mut Items<R>,
    limit: usize,
) -> Result<Diff, Stop> {
    let mut out = Collector {
        limit,
        diff: Diff::default(),
        new_entries: 0,
        held: 0,
    };
    let mut a = old.next().await?;
    let mut b = new.next().await?;
    loop {
        let order = match (&a, &b) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(x), Some(y)) => tree_order(&x.key, &y.key),
        };
        match order {
            Ordering::Less => {
                out.pair(a.as_ref(), None);
                a = old.next().await?;
            }
            Ordering::Greater => {
                out.pair(None, b.as_ref());
                b = new.next().await?;
            }
            Ordering::Equal => {
                out.pair(a.as_ref(), b.as_ref());
                a = old.next().await?;
                b = new.next().await?;
            }
        }
    }
    let mut diff = out.diff;
    diff.unchanged = out.new_entries - diff.added_count - diff.modified_count;
    diff.truncated = [
        (diff.added.len(), diff.added_count),
        (diff.removed.len(), diff.removed_count),
        (diff.modified.len(), diff.modified_count),
        (diff.metadata_changed.len(), diff.metadata_changed_count),
    ]
    .iter()
    .any(|(held, count)| (*held as u64) < *count);
    Ok(diff)
}

async fn side<R, F, Fut>(open: &mut F, index: usize, sort: bool) -> Result<Items<R>, QuiltError>
where
    R: tokio::io::AsyncBufRead + Unpin,
    F: FnMut(usize, Order) -> Fut,
    Fut: Future<Output = Result<ManifestStream<R>, QuiltError>>,
{
    let side = if sort {
        sorted_side(open(index, Order::Sorting).await?, SORT_BUDGET).await?
    } else {
        Side::Live(Box::new(open(index, Order::Streaming).await?))
    };
    Ok(Items {
        index,
        side,
        peeked: None,
        done: false,
        read: 0,
    })
}

/// Compares the manifests `open(0, order)` (old) and `open(1, order)` (new) opens,
/// each list holding at most `limit` keys; the headers and the diff. Both manifests
/// are streamed and merged; one not in tree order is read again and sorted.
pub(crate) async fn diff<R, F, Fut>(
    mut open: F,
    limit: usize,
) -> Result<(Header, Header, Diff), QuiltError>
where
    R: tokio::io::AsyncBufRead + Unpin,
    F: FnMut(usize, Order) -> Fut,
    Fut: Future<Output = Result<ManifestStream<R>, QuiltError>>,
{
    let mut sorting = [false, false];
    loop {
        let mut old = side(&mut open, 0, sorting[0]).await?;
        let mut new = side(&mut open, 1, sorting[1]).await?;
        match merge(&mut old, &mut new, limit).await {
            Ok(mut diff) => {
                let old_header = old.finish().await?;
                let new_header = new.finish().await?;
                diff.package_metadata_changed = ["user_meta", "message"]
                    .iter()
                    .any(|field| old_header.canonical(field) != new_header.canonical(field));
                return Ok((old_header, new_header, diff));
            }
            Err(Stop::Failed(error)) => return Err(error),
            Err(Stop::Unsorted(index)) => {
                if let Some(flag) = sorting.get_mut(index) {
                    *flag = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use serde_json::{Map, Value, json};

    use super::*;
    use crate::quilt::manifest::{Manifest, Record};

    /// The diff as it was computed before streaming, both manifests in memory: the
    /// reference the streaming merge is checked against.
    fn in_memory(old: &Manifest, new: &Manifest) -> Diff {
        let old_entries: BTreeMap<&str, &Record> =
            old.entries().map(|e| (e.logical_key(), e)).collect();
        let new_entries: BTreeMap<&str, &Record> =
            new.entries().map(|e| (e.logical_key(), e)).collect();
        let empty = Value::Object(Map::new());
        let meta = |r: &Record| match r.meta() {
            Value::Null => empty.clone(),
            meta => meta.clone(),
        };
        let mut out = Diff::default();
        for (key, entry) in &new_entries {
            match old_entries.get(key) {
                None => out.added.push((*key).to_owned()),
                Some(before) => {
                    if before.hash_parts() != entry.hash_parts() || before.size() != entry.size() {
                        out.modified.push((*key).to_owned());
                    }
                    if meta(before) != meta(entry) {
                        out.metadata_changed.push((*key).to_owned());
                    }
                }
            }
        }
        out.removed = old_entries
            .keys()
            .filter(|k| !new_entries.contains_key(*k))
            .map(|k| (*k).to_owned())
            .collect();
        for keys in [
            &mut out.added,
            &mut out.removed,
            &mut out.modified,
            &mut out.metadata_changed,
        ] {
            keys.sort_by(|a, b| tree_order(a, b));
        }
        out.added_count = out.added.len() as u64;
        out.removed_count = out.removed.len() as u64;
        out.modified_count = out.modified.len() as u64;
        out.metadata_changed_count = out.metadata_changed.len() as u64;
        out.package_metadata_changed = old.header().get("user_meta")
            != new.header().get("user_meta")
            || old.header().get("message") != new.header().get("message");
        out.unchanged = new_entries.len() as u64 - out.added_count - out.modified_count;
        out
    }

    /// The streaming diff of two manifests held as bytes.
    fn diff_of(old: &Manifest, new: &Manifest, limit: usize) -> Diff {
        let sides = [
            (old.to_bytes(), old.top_hash()),
            (new.to_bytes(), new.top_hash()),
        ];
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime
            .block_on(diff(
                |index, order| {
                    let (bytes, hash) = &sides[index];
                    ManifestStream::open(&bytes[..], format!("s3://b/{index}"), hash, order, 300)
                },
                limit,
            ))
            .unwrap()
            .2
    }

    fn manifest(message: &str, entries: &[(&str, &str, u64, Value)]) -> Manifest {
        let mut header = Map::new();
        header.insert("version".into(), json!("v0"));
        header.insert("message".into(), json!(message));
        let records = entries
            .iter()
            .map(|(key, hash, size, meta)| {
                let Value::Object(obj) = json!({
                    "logical_key": key,
                    "physical_keys": [format!("s3://b/{key}")],
                    "size": size,
                    "hash": {"type": "SHA256", "value": hash},
                    "meta": meta,
                }) else {
                    unreachable!()
                };
                Record::from_object(obj)
            })
            .collect();
        Manifest::new(header, records)
    }

    #[test]
    fn added_removed_modified_and_metadata() {
        let old = manifest(
            "one",
            &[
                ("a.csv", "h1", 1, json!({})),
                ("b/x.txt", "h2", 2, Value::Null),
                ("gone", "h3", 3, json!({})),
                ("meta", "h4", 4, json!({"k": 1})),
                ("size", "h5", 5, json!({})),
            ],
        );
        let new = manifest(
            "two",
            &[
                ("a.csv", "h1-changed", 1, json!({})),
                // A missing meta and an empty one are the same.
                ("b/x.txt", "h2", 2, json!({})),
                ("b-new", "h6", 6, json!({})),
                ("b/new", "h7", 7, json!({})),
                ("meta", "h4", 4, json!({"k": 2})),
                ("size", "h5", 50, json!({})),
            ],
        );
        let d = diff_of(&old, &new, usize::MAX);
        assert_eq!(d, in_memory(&old, &new));
        // Tree order: `b/new` (directory b) before `b-new`.
        assert_eq!(d.added, ["b/new", "b-new"]);
        assert_eq!(d.removed, ["gone"]);
        assert_eq!(d.modified, ["a.csv", "size"]);
        assert_eq!(d.metadata_changed, ["meta"]);
        assert!(d.package_metadata_changed);
        assert_eq!(d.unchanged, 2);
    }

    #[test]
    fn a_revision_equals_itself() {
        let m = manifest("same", &[("a", "h", 1, json!({"x": [1, 2]}))]);
        assert_eq!(
            diff_of(&m, &m, 10),
            Diff {
                unchanged: 1,
                ..Diff::default()
            }
        );
    }

    fn entry() -> impl Strategy<Value = (String, u8, u8, Option<u8>)> {
        (
            "[ab]{1,2}(/[ab-]{1,2}){0,2}",
            0u8..3,
            0u8..3,
            proptest::option::of(0u8..3),
        )
    }

    fn manifest_from(entries: &[(String, u8, u8, Option<u8>)], message: &str) -> Manifest {
        let mut seen = std::collections::HashSet::new();
        let rows: Vec<(&str, String, u64, Value)> = entries
            .iter()
            .filter(|(key, ..)| seen.insert(key.clone()))
            .map(|(key, hash, size, meta)| {
                let meta = match meta {
                    None => Value::Null,
                    Some(0) => json!({}),
                    Some(n) => json!({"n": n}),
                };
                (key.as_str(), format!("h{hash}"), u64::from(*size), meta)
            })
            .collect();
        let rows: Vec<(&str, &str, u64, Value)> = rows
            .iter()
            .map(|(k, h, s, m)| (*k, h.as_str(), *s, m.clone()))
            .collect();
        manifest(message, &rows)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        /// The streaming merge equals the in-memory diff, for manifests in tree order
        /// or not, and a limit only shortens the lists.
        #[test]
        fn the_merge_equals_the_in_memory_diff(
            old in proptest::collection::vec(entry(), 0..30),
            new in proptest::collection::vec(entry(), 0..30),
            sort_old in any::<bool>(),
            sort_new in any::<bool>(),
            limit in 0usize..4,
        ) {
            let arrange = |mut entries: Vec<(String, u8, u8, Option<u8>)>, sort: bool| {
                if sort {
                    entries.sort_by(|a, b| tree_order(&a.0, &b.0));
                }
                entries
            };
            let old = manifest_from(&arrange(old, sort_old), "old");
            let new = manifest_from(&arrange(new, sort_new), "new");
            let expected = in_memory(&old, &new);
            prop_assert_eq!(&diff_of(&old, &new, usize::MAX), &expected);
            let limited = diff_of(&old, &new, limit);
            let cut = |keys: &[String]| keys.iter().take(limit).cloned().collect::<Vec<_>>();
            prop_assert_eq!(&limited.added, &cut(&expected.added));
            prop_assert_eq!(&limited.removed, &cut(&expected.removed));
            prop_assert_eq!(&limited.modified, &cut(&expected.modified));
            prop_assert_eq!(&limited.metadata_changed, &cut(&expected.metadata_changed));
            prop_assert_eq!(
                (limited.added_count, limited.removed_count, limited.modified_count, limited.metadata_changed_count, limited.unchanged),
                (expected.added_count, expected.removed_count, expected.modified_count, expected.metadata_changed_count, expected.unchanged)
            );
            let longest = [&expected.added, &expected.removed, &expected.modified, &expected.metadata_changed]
                .iter()
                .map(|l| l.len())
                .max()
                .unwrap_or(0);
            prop_assert_eq!(limited.truncated, longest > limit);
        }
    }
}
