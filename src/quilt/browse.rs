//! One page of a revision's entries, collected as the manifest streams by: only the
//! page is held (a bounded max-heap of the smallest logical keys after the cursor, so
//! that a manifest in any order gives the same pages), while the counts cover the
//! whole revision or path and a bounded summary of the immediate sub-directories is
//! kept.

use std::collections::{BTreeMap, BinaryHeap};
use std::future::Future;

use serde_json::{Map, Value};

use super::error::QuiltError;
use super::manifest::{Record, tree_order};
use super::stream::{ManifestStream, Next, Order, TreeKey};

/// The most directories a page summarizes.
pub(crate) const MAX_DIRECTORIES: usize = 1000;

/// Which entries a page holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PageRequest {
    /// Only entries under this path (no leading or trailing `/`; empty: all).
    pub path: String,
    /// Only entries after this logical key, in tree order.
    pub after: Option<String>,
    /// The most entries.
    pub max_entries: usize,
    /// The most directories summarized.
    pub max_directories: usize,
}

/// An immediate sub-directory of the path.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DirectorySummary {
    /// The directory, ending in `/`.
    pub logical_key: String,
    /// Entries under it, at any depth.
    pub entry_count: u64,
    /// Their total size.
    pub total_size: u64,
    /// Its directory-metadata line's `meta`, if it has one.
    pub meta: Option<Value>,
}

/// A page of entries.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Page {
    /// The entries, in tree order.
    pub entries: Vec<Record>,
    /// Entries of the revision under the path.
    pub entry_count: u64,
    /// Their total size.
    pub total_size: u64,
    /// Whether entries follow this page.
    pub truncated: bool,
    /// The first immediate sub-directories of the path, in tree order.
    pub directories: Vec<DirectorySummary>,
    /// Whether more sub-directories exist than are summarized.
    pub directories_truncated: bool,
}

/// `logical_key` relative to `path`: `""` for the path itself, `None` outside it.
fn relative<'k>(logical_key: &'k str, path: &str) -> Option<&'k str> {
    if path.is_empty() {
        return Some(logical_key);
    }
    match logical_key.strip_prefix(path) {
        Some("") => Some(""),
        Some(rest) => rest.strip_prefix('/'),
        None => None,
    }
}

#[derive(Debug)]
struct Held {
    key: TreeKey,
    seq: u64,
    record: Record,
}

impl PartialEq for Held {
    fn eq(&self, other: &Held) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Held) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, other: &Held) -> std::cmp::Ordering {
        (&self.key, self.seq).cmp(&(&other.key, other.seq))
    }
}

#[derive(Debug, Default)]
struct DirAcc {
    entry_count: u64,
    total_size: u64,
    meta: Option<Value>,
}

/// Collects a page from records in any order.
#[derive(Debug)]
pub(crate) struct PageCollector<'r> {
    request: &'r PageRequest,
    heap: BinaryHeap<Held>,
    seq: u64,
    after_count: u64,
    entry_count: u64,
    total_size: u64,
    directories: BTreeMap<TreeKey, DirAcc>,
    directories_truncated: bool,
}

impl<'r> PageCollector<'r> {
    /// An empty page.
    pub(crate) fn new(request: &'r PageRequest) -> PageCollector<'r> {
        PageCollector {
            request,
            heap: BinaryHeap::new(),
            seq: 0,
            after_count: 0,
            entry_count: 0,
            total_size: 0,
            directories: BTreeMap::new(),
            directories_truncated: false,
        }
    }

    /// The summary of directory `name` (a child of the path), if it is among the
    /// first `max_directories` in tree order. Once a directory is left out, every
    /// directory after it is too, so the ones kept have complete counts.
    fn directory(&mut self, name: &str) -> Option<&mut DirAcc> {
        let key = TreeKey(name.to_owned());
        if !self.directories.contains_key(&key) {
            if self.directories.len() >= self.request.max_directories {
                self.directories_truncated = true;
                let last = self.directories.keys().next_back()?;
                if key > *last {
                    return None;
                }
                self.directories.pop_last();
            }
            self.directories.insert(key.clone(), DirAcc::default());
        }
        self.directories.get_mut(&key)
    }

    /// Adds an entry.
    pub(crate) fn push_entry(&mut self, record: Record) {
        let Some(rest) = relative(record.logical_key(), &self.request.path) else {
            return;
        };
        let size = record.size();
        self.entry_count += 1;
        self.total_size = self.total_size.saturating_add(size);
        if let Some((child, _)) = rest.split_once('/') {
            let child = child.to_owned();
            if let Some(dir) = self.directory(&child) {
                dir.entry_count += 1;
                dir.total_size = dir.total_size.saturating_add(size);
            }
        }
        if let Some(after) = &self.request.after
            && tree_order(record.logical_key(), after) != std::cmp::Ordering::Greater
        {
            return;
        }
        self.after_count += 1;
        if self.heap.len() >= self.request.max_entries {
            match self.heap.peek() {
                Some(top)
                    if tree_order(record.logical_key(), &top.key.0) == std::cmp::Ordering::Less =>
                {
                    self.heap.pop();
                }
                _ => return,
            }
        }
        let key = TreeKey(record.logical_key().to_owned());
        self.seq += 1;
        self.heap.push(Held {
            key,
            seq: self.seq,
            record,
        });
    }

    /// Adds a directory-metadata line: its `meta` goes with the summary of that
    /// directory when it is a child of the path.
    pub(crate) fn push_directory(&mut self, record: &Record) {
        let name = record.logical_key().trim_end_matches('/');
        let Some(rest) = relative(name, &self.request.path) else {
            return;
        };
        if rest.is_empty() || rest.contains('/') {
            return;
        }
        let meta = record.meta().clone();
        if let Some(dir) = self.directory(rest) {
            dir.meta = Some(meta);
        }
    }

    /// The page.
    pub(crate) fn finish(self) -> Page {
        let entries: Vec<Record> = self
            .heap
            .into_sorted_vec()
            .into_iter()
            .map(|held| held.record)
            .collect();
        let truncated = self.after_count > entries.len() as u64;
        let prefix = if self.request.path.is_empty() {
            String::new()
        } else {
            format!("{}/", self.request.path)
        };
        Page {
            entries,
            entry_count: self.entry_count,
            total_size: self.total_size,
            truncated,
            directories: self
                .directories
                .into_iter()
                .map(|(name, acc)| DirectorySummary {
                    logical_key: format!("{prefix}{}/", name.0),
                    entry_count: acc.entry_count,
                    total_size: acc.total_size,
                    meta: acc.meta,
                })
                .collect(),
            directories_truncated: self.directories_truncated,
        }
    }
}

/// The page `request` asks for of the manifest `open` opens, its header and page; the
/// manifest is read once when it is in tree order, else once more sorting.
pub(crate) async fn page<R, F, Fut>(
    mut open: F,
    request: &PageRequest,
) -> Result<(Map<String, Value>, Page), QuiltError>
where
    R: tokio::io::AsyncBufRead + Unpin,
    F: FnMut(Order) -> Fut,
    Fut: Future<Output = Result<ManifestStream<R>, QuiltError>>,
{
    let mut order = Order::Streaming;
    loop {
        let mut stream = open(order).await?;
        let mut collector = PageCollector::new(request);
        loop {
            match stream.next().await? {
                Next::Entry(record) => collector.push_entry(record),
                Next::Directory(record) => collector.push_directory(&record),
                Next::End => {
                    let header = stream.finish()?;
                    return Ok((header, collector.finish()));
                }
                Next::Unsorted => break,
            }
        }
        order = Order::Sorting;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::quilt::stream::SORT_BUDGET;
    use crate::quilt::stream::tests::manifest_of;

    fn request(path: &str, after: Option<&str>, max: usize) -> PageRequest {
        PageRequest {
            path: path.to_owned(),
            after: after.map(str::to_owned),
            max_entries: max,
            max_directories: MAX_DIRECTORIES,
        }
    }

    async fn page_of(bytes: &[u8], hash: &str, request: &PageRequest) -> Page {
        page(
            |order| ManifestStream::open(bytes, "s3://b/m".to_owned(), hash, order, SORT_BUDGET),
            request,
        )
        .await
        .unwrap()
        .1
    }

    /// Every page in turn, each starting after the last key of the one before.
    async fn all_pages(bytes: &[u8], hash: &str, path: &str, max: usize) -> (Vec<String>, usize) {
        let mut after: Option<String> = None;
        let mut keys = Vec::new();
        let mut pages = 0;
        loop {
            let page = page_of(bytes, hash, &request(path, after.as_deref(), max)).await;
            pages += 1;
            assert!(page.entries.len() <= max);
            keys.extend(page.entries.iter().map(|e| e.logical_key().to_owned()));
            if !page.truncated {
                return (keys, pages);
            }
            after = keys.last().cloned();
        }
    }

    fn under_path(logical_key: &str, path: &str) -> bool {
        relative(logical_key, path).is_some()
    }

    #[test]
    fn paths() {
        assert!(under_path("data/a.csv", "data"));
        assert!(under_path("data", "data"));
        assert!(!under_path("database.csv", "data"));
        assert!(under_path("anything", ""));
        assert_eq!(relative("a/b/c", "a"), Some("b/c"));
        assert_eq!(relative("a/b/c", "a/b"), Some("c"));
    }

    #[tokio::test]
    async fn counts_and_directories_cover_the_path_and_are_bounded() {
        let mut keys: Vec<String> = (0..30)
            .map(|i| format!("top/d{:02}/f{i}", i % 12))
            .collect();
        keys.push("top/file".to_owned());
        keys.push("other/x".to_owned());
        keys.sort_by(|a, b| tree_order(a, b));
        let mut m = manifest_of(&keys, "dirs");
        let text = String::from_utf8(m.to_bytes()).unwrap();
        // A directory-metadata line for top/d03/.
        let with_dir = text.replacen(
            '\n',
            "\n{\"logical_key\": \"top/d03/\", \"meta\": {\"about\": \"three\"}}\n",
            1,
        );
        m = Manifest::parse(&with_dir).unwrap();
        let hash = m.top_hash();
        let bytes = m.to_bytes();
        let mut req = request("top", None, 5);
        req.max_directories = 4;
        let page = page_of(&bytes, &hash, &req).await;
        assert_eq!(page.entry_count, 31);
        assert_eq!(page.entries.len(), 5);
        assert!(page.truncated);
        let dirs: Vec<(&str, u64)> = page
            .directories
            .iter()
            .map(|d| (d.logical_key.as_str(), d.entry_count))
            .collect();
        assert_eq!(
            dirs,
            [
                ("top/d00/", 3),
                ("top/d01/", 3),
                ("top/d02/", 3),
                ("top/d03/", 3)
            ]
        );
        assert_eq!(page.directories[3].meta, Some(json!({"about": "three"})));
        assert!(page.directories_truncated);
        req.max_directories = MAX_DIRECTORIES;
        let page = page_of(&bytes, &hash, &req).await;
        assert_eq!(page.directories.len(), 12);
        assert!(!page.directories_truncated);
        let sizes: u64 = page.directories.iter().map(|d| d.total_size).sum();
        let file_size = keys.iter().position(|k| k == "top/file").unwrap() as u64;
        assert_eq!(sizes + file_size, page.total_size);
    }

    use crate::quilt::manifest::Manifest;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Pages concatenated are every entry under the path in tree order, for the
        /// manifest in tree order and shuffled.
        #[test]
        fn pages_concatenate_to_the_whole(
            keys in proptest::collection::btree_set("[ab]{1,2}(/[ab-]{1,2}){0,2}", 0..60),
            seed in any::<u64>(),
            max in 1usize..8,
            path in prop_oneof![Just(""), Just("a"), Just("b/a")],
        ) {
            let mut sorted: Vec<String> = keys.into_iter().collect();
            sorted.sort_by(|a, b| tree_order(a, b));
            let mut shuffled = sorted.clone();
            let mut state = seed;
            for i in (1..shuffled.len()).rev() {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled.swap(i, (state >> 33) as usize % (i + 1));
            }
            let expected: Vec<String> = sorted.iter().filter(|k| under_path(k, path)).cloned().collect();
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            for keys in [&sorted, &shuffled] {
                let m = manifest_of(keys, "paged");
                let hash = m.top_hash();
                let bytes = m.to_bytes();
                let (got, pages) = runtime.block_on(all_pages(&bytes, &hash, path, max));
                prop_assert_eq!(&got, &expected);
                prop_assert_eq!(pages, expected.len().div_ceil(max).max(1));
            }
        }
    }
}
