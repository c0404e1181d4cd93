//! One page of a revision's entries, bounded in count and in bytes (see
//! `docs/reference.md`, Results: `package_browse`).
//!
//! The first read of a revision streams the whole manifest, verifying its top hash:
//! only the page is held (the smallest logical keys after the cursor, bounded: a
//! sorted vector while they come in order, else a max-heap, so that a manifest in any
//! order gives the same pages) while the counts
//! cover the whole revision or path and a bounded summary of the immediate
//! sub-directories is kept ([`full_pass`]). Once a revision in tree order is known
//! (`cache`), a page is read from a byte offset on, in order, and reading stops when
//! the page is full ([`PageCollector::saturated`]).

use std::borrow::Cow;
use std::collections::{BTreeMap, BinaryHeap};

use super::error::QuiltError;
pub(crate) use super::line::values_in;
use super::line::{Header, Line};
use super::manifest::tree_order;
use super::stream::{ManifestStream, Next, TreeKey};

/// The most directories a page summarizes.
pub(crate) const MAX_DIRECTORIES: usize = 1000;
/// The most bytes of entry lines a page holds: with the directories and the header,
/// a result stays under 4 MiB.
pub(crate) const PAGE_BYTES: usize = 2_700_000;
/// What an entry costs in a result beyond its line.
const ENTRY_OVERHEAD: usize = 64;
/// The most JSON values a page's entries hold: a result is a JSON tree before it is
/// sent, and a value costs about 80 bytes there however short its text (`0,` is two).
pub(crate) const PAGE_VALUES: usize = 400_000;
/// JSON values of an entry besides its `meta`.
const ENTRY_VALUES: usize = 8;
/// The most a JSON value's text can grow when it is written again from its parsed
/// form (`1e15` is written `1000000000000000.0`; 24 characters at most): counted for
/// every value of metadata, so that a result's byte bound holds whatever numbers a
/// manifest holds.
pub(crate) const VALUE_GROWTH: usize = 24;
/// The most JSON values of directory metadata a summary holds.
pub(crate) const DIRECTORY_VALUES: usize = 50_000;
/// The most bytes of directory names and metadata a summary holds.
pub(crate) const DIRECTORY_BYTES: usize = 512 * 1024;
/// What a directory costs in a result beyond its name and metadata.
const DIRECTORY_OVERHEAD: usize = 96;
/// The most bytes of the header's `message`, `user_meta` and `workflow` a result shows.
pub(crate) const HEADER_BYTES: usize = 512 * 1024;

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DirectorySummary {
    /// The directory, ending in `/`.
    pub logical_key: String,
    /// Entries under it, at any depth.
    pub entry_count: u64,
    /// Their total size.
    pub total_size: u64,
    /// Its directory-metadata line's `meta` as written, if it has one that fits.
    pub meta: Option<Box<str>>,
    /// Whether it has a `meta` too large to show.
    pub meta_too_large: bool,
}

/// The counts and sub-directories of a path.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Summary {
    /// Entries of the revision under the path.
    pub entry_count: u64,
    /// Their total size.
    pub total_size: u64,
    /// The first immediate sub-directories of the path, in tree order.
    pub directories: Vec<DirectorySummary>,
    /// Whether more sub-directories exist than are summarized.
    pub directories_truncated: bool,
}

impl Summary {
    /// About the bytes it holds.
    pub(crate) fn bytes(&self) -> usize {
        self.directories
            .iter()
            .map(|d| d.logical_key.len() + d.meta.as_ref().map_or(0, |m| m.len()) + 64)
            .sum()
    }
}

/// An entry of a page, its fields owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PageEntry {
    /// The logical key.
    pub logical_key: String,
    /// The size.
    pub size: u64,
    /// The hash type.
    pub hash_type: String,
    /// The hash value.
    pub hash_value: String,
    /// The first physical key.
    pub physical_key: Option<String>,
    /// `meta` as written, `None` when absent or null.
    pub meta: Option<Box<str>>,
    /// Where its line starts in the manifest, in bytes.
    pub offset: u64,
    /// What it costs in a result, about: bytes and JSON values.
    pub cost: usize,
    /// JSON values, at most.
    pub values: usize,
}

impl PageEntry {
    fn of(line: &Line<'_>, offset: u64) -> PageEntry {
        let (kind, value) = line.hash_parts();
        let meta = line.meta_raw();
        let meta_values = meta.as_deref().map_or(0, values_in);
        PageEntry {
            values: ENTRY_VALUES + meta_values,
            logical_key: line.logical_key().to_owned(),
            size: line.size(),
            hash_type: kind.to_owned(),
            hash_value: value.to_owned(),
            physical_key: line.physical_key().map(str::to_owned),
            meta: meta.map(|m| m.into_owned().into_boxed_str()),
            offset,
            cost: line.text().len() + ENTRY_OVERHEAD + VALUE_GROWTH * meta_values,
        }
    }
}

/// A page of entries.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Page {
    /// The entries, in tree order.
    pub entries: Vec<PageEntry>,
    /// Whether entries follow this page.
    pub truncated: bool,
}

/// `logical_key` relative to `path`: `""` for the path itself, `None` outside it.
pub(crate) fn relative<'k>(logical_key: &'k str, path: &str) -> Option<&'k str> {
    if path.is_empty() {
        return Some(logical_key);
    }
    match logical_key.strip_prefix(path) {
        Some("") => Some(""),
        Some(rest) => rest.strip_prefix('/'),
        None => None,
    }
}

/// Whether `logical_key`, outside `path`, comes after every key under it.
pub(crate) fn past(logical_key: &str, path: &str) -> bool {
    !path.is_empty()
        && relative(logical_key, path).is_none()
        && tree_order(logical_key, path) == std::cmp::Ordering::Greater
}

#[derive(Debug)]
struct Held {
    key: TreeKey,
    seq: u64,
    entry: PageEntry,
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

/// The entries a page holds so far: in a sorted vector while they come in order (each
/// push and drop of the largest is then O(1)), in a max-heap once one does not.
#[derive(Debug)]
enum Pile {
    Sorted(Vec<Held>),
    Heap(BinaryHeap<Held>),
}

impl Pile {
    fn len(&self) -> usize {
        match self {
            Pile::Sorted(v) => v.len(),
            Pile::Heap(h) => h.len(),
        }
    }

    /// The largest entry.
    fn peek(&self) -> Option<&Held> {
        match self {
            Pile::Sorted(v) => v.last(),
            Pile::Heap(h) => h.peek(),
        }
    }

    /// Takes the largest entry.
    fn pop(&mut self) -> Option<Held> {
        match self {
            Pile::Sorted(v) => v.pop(),
            Pile::Heap(h) => h.pop(),
        }
    }

    fn push(&mut self, held: Held) {
        match self {
            Pile::Sorted(v) if v.last().is_none_or(|last| *last < held) => v.push(held),
            Pile::Sorted(v) => {
                let mut heap = BinaryHeap::from(std::mem::take(v));
                heap.push(held);
                *self = Pile::Heap(heap);
            }
            Pile::Heap(h) => h.push(held),
        }
    }

    /// The entries, smallest first.
    fn into_sorted_vec(self) -> Vec<Held> {
        match self {
            Pile::Sorted(v) => v,
            Pile::Heap(h) => h.into_sorted_vec(),
        }
    }
}

/// Collects a page from entries in any order, bounded in count and bytes.
#[derive(Debug)]
pub(crate) struct PageCollector<'r> {
    request: &'r PageRequest,
    pile: Pile,
    seq: u64,
    after_count: u64,
    held: usize,
    values: usize,
    /// The smallest key left out: no key from it on belongs to the page.
    ceiling: Option<TreeKey>,
}

impl<'r> PageCollector<'r> {
    /// An empty page.
    pub(crate) fn new(request: &'r PageRequest) -> PageCollector<'r> {
        PageCollector {
            request,
            pile: Pile::Sorted(Vec::new()),
            seq: 0,
            after_count: 0,
            held: 0,
            values: 0,
            ceiling: None,
        }
    }

    fn drop_top(&mut self) {
        if let Some(top) = self.pile.pop() {
            self.held -= top.entry.cost;
            self.values -= top.entry.values;
            self.leave_out(top.key);
        }
    }

    fn leave_out(&mut self, key: TreeKey) {
        if self.ceiling.as_ref().is_none_or(|c| key < *c) {
            self.ceiling = Some(key);
        }
    }

    /// Adds an entry (one outside the path, or not after the cursor, is skipped).
    pub(crate) fn push(&mut self, line: &Line<'_>, offset: u64) {
        let key = line.logical_key();
        if relative(key, &self.request.path).is_none() {
            return;
        }
        if let Some(after) = &self.request.after
            && tree_order(key, after) != std::cmp::Ordering::Greater
        {
            return;
        }
        self.after_count += 1;
        if let Some(ceiling) = &self.ceiling
            && tree_order(key, &ceiling.0) != std::cmp::Ordering::Less
        {
            return;
        }
        if self.pile.len() >= self.request.max_entries {
            match self.pile.peek() {
                Some(top) if tree_order(key, &top.key.0) == std::cmp::Ordering::Less => {
                    self.drop_top();
                }
                _ => {
                    self.leave_out(TreeKey(key.to_owned()));
                    return;
                }
            }
        }
        let entry = PageEntry::of(line, offset);
        self.held += entry.cost;
        self.values += entry.values;
        self.seq += 1;
        self.pile.push(Held {
            key: TreeKey(key.to_owned()),
            seq: self.seq,
            entry,
        });
        while (self.held > PAGE_BYTES || self.values > PAGE_VALUES) && self.pile.len() > 1 {
            self.drop_top();
        }
    }

    /// Whether an entry was left out: read in tree order, nothing after it can be on
    /// the page.
    pub(crate) fn saturated(&self) -> bool {
        self.ceiling.is_some()
    }

    /// The page; `too_large` when its one entry is larger than a page may be.
    pub(crate) fn finish(self) -> Result<Page, QuiltError> {
        let entries: Vec<PageEntry> = self
            .pile
            .into_sorted_vec()
            .into_iter()
            .map(|held| held.entry)
            .collect();
        if let [one] = entries.as_slice()
            && (one.cost > PAGE_BYTES || one.values > PAGE_VALUES)
        {
            return Err(QuiltError::TooLarge(format!(
                "the entry {:?} is {} bytes ({} JSON values), more than one result may hold; \
                 read its manifest line with bucket_object_text instead",
                truncate(&one.logical_key),
                one.cost,
                one.values
            )));
        }
        let truncated = self.after_count > entries.len() as u64;
        Ok(Page { entries, truncated })
    }
}

/// At most 200 characters of `text`, for messages.
pub(crate) fn truncate(text: &str) -> Cow<'_, str> {
    match text.char_indices().nth(200) {
        Some((at, _)) => Cow::Owned(format!("{}…", &text[..at])),
        None => Cow::Borrowed(text),
    }
}

#[derive(Debug, Default)]
struct DirAcc {
    entry_count: u64,
    total_size: u64,
    meta: Option<Box<str>>,
    meta_too_large: bool,
}

/// Collects the counts and sub-directories of a path.
#[derive(Debug)]
pub(crate) struct SummaryCollector {
    path: String,
    max_directories: usize,
    entry_count: u64,
    total_size: u64,
    directories: BTreeMap<TreeKey, DirAcc>,
    bytes: usize,
    values: usize,
    /// The smallest directory left out: none from it on is summarized.
    ceiling: Option<TreeKey>,
}

impl SummaryCollector {
    /// The summary of `path`.
    pub(crate) fn new(path: &str, max_directories: usize) -> SummaryCollector {
        SummaryCollector {
            path: path.to_owned(),
            max_directories,
            entry_count: 0,
            total_size: 0,
            directories: BTreeMap::new(),
            bytes: 0,
            values: 0,
            ceiling: None,
        }
    }

    fn cost(name: &TreeKey, acc: &DirAcc) -> usize {
        name.0.len()
            + acc.meta.as_ref().map_or(0, |m| m.len())
            + VALUE_GROWTH * Self::meta_values(acc)
            + DIRECTORY_OVERHEAD
    }

    fn meta_values(acc: &DirAcc) -> usize {
        acc.meta.as_deref().map_or(0, values_in)
    }

    /// Drops the last directories until the summary is within its bounds.
    fn trim(&mut self) {
        while self.directories.len() > self.max_directories || self.bytes > DIRECTORY_BYTES {
            let Some((name, acc)) = self.directories.pop_last() else {
                break;
            };
            self.bytes -= Self::cost(&name, &acc);
            self.values -= Self::meta_values(&acc);
            if self.ceiling.as_ref().is_none_or(|c| name < *c) {
                self.ceiling = Some(name);
            }
        }
    }

    /// The summary of directory `name` (a child of the path), if it is among the
    /// first in tree order that fit. Once a directory is left out, every directory
    /// after it is too, so the ones kept have complete counts.
    fn directory(&mut self, name: &str) -> Option<&mut DirAcc> {
        let key = TreeKey(name.to_owned());
        if !self.directories.contains_key(&key) {
            if self.ceiling.as_ref().is_some_and(|c| key >= *c) {
                return None;
            }
            let acc = DirAcc::default();
            self.bytes += Self::cost(&key, &acc);
            self.directories.insert(key.clone(), acc);
            self.trim();
        }
        self.directories.get_mut(&key)
    }

    /// Adds an entry.
    pub(crate) fn push_entry(&mut self, logical_key: &str, size: u64) {
        let Some(rest) = relative(logical_key, &self.path) else {
            return;
        };
        self.entry_count += 1;
        self.total_size = self.total_size.saturating_add(size);
        if let Some((child, _)) = rest.split_once('/')
            && let Some(dir) = self.directory(child)
        {
            dir.entry_count += 1;
            dir.total_size = dir.total_size.saturating_add(size);
        }
    }

    /// Adds a directory-metadata line: its `meta` goes with the summary of that
    /// directory when it is a child of the path (a `meta` that does not fit is
    /// noted as too large).
    pub(crate) fn push_directory(&mut self, line: &Line<'_>) {
        let name = line.logical_key().trim_end_matches('/');
        let Some(rest) = relative(name, &self.path) else {
            return;
        };
        if rest.is_empty() || rest.contains('/') {
            return;
        }
        let rest = rest.to_owned();
        let meta = line.meta_raw();
        let meta_values = meta.as_deref().map_or(0, values_in);
        let meta_len = meta.as_ref().map_or(0, |m| m.len()) + VALUE_GROWTH * meta_values;
        let room = DIRECTORY_BYTES.saturating_sub(self.bytes);
        let room_values = DIRECTORY_VALUES.saturating_sub(self.values);
        let Some(dir) = self.directory(&rest) else {
            return;
        };
        let old = dir.meta.take();
        let old_values = old.as_deref().map_or(0, values_in);
        let old_len = old.as_ref().map_or(0, |m| m.len()) + VALUE_GROWTH * old_values;
        dir.meta_too_large = false;
        if meta_len <= room + old_len && meta_values <= room_values + old_values {
            dir.meta = meta.map(|m| m.into_owned().into_boxed_str());
        } else {
            dir.meta_too_large = true;
        }
        let new_values = Self::meta_values(dir);
        let new_len = dir.meta.as_ref().map_or(0, |m| m.len()) + VALUE_GROWTH * new_values;
        self.bytes = self.bytes + new_len - old_len;
        self.values = self.values + new_values - old_values;
        self.trim();
    }

    /// The summary.
    pub(crate) fn finish(self) -> Summary {
        let prefix = if self.path.is_empty() {
            String::new()
        } else {
            format!("{}/", self.path)
        };
        Summary {
            entry_count: self.entry_count,
            total_size: self.total_size,
            directories_truncated: self.ceiling.is_some(),
            directories: self
                .directories
                .into_iter()
                .map(|(name, acc)| DirectorySummary {
                    logical_key: format!("{prefix}{}/", name.0),
                    entry_count: acc.entry_count,
                    total_size: acc.total_size,
                    meta: acc.meta,
                    meta_too_large: acc.meta_too_large,
                })
                .collect(),
        }
    }
}

/// The most points of a revision's seek index.
const MAX_INDEX_POINTS: u64 = 1024;
/// The fewest bytes between two index points.
const MIN_INDEX_STEP: u64 = 64 * 1024;
/// The longest logical key an index point holds.
const MAX_INDEX_KEY: usize = 1024;

/// What a verifying pass learned of a revision, for reading pages of it later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Where the first line after the header starts.
    pub body_start: u64,
    /// Whether its entries are in tree order.
    pub sorted: bool,
    /// Every so many bytes, an entry's logical key and where its line starts, in
    /// tree order (sorted revisions only).
    pub index: Vec<(String, u64)>,
    /// Where the directory-metadata lines are when they all come before the first
    /// entry (as quilt3 writes them): from `body_start` to this offset.
    pub directories_end: Option<u64>,
    /// The whole revision's summary.
    pub root: Summary,
}

impl Layout {
    /// About the bytes it holds.
    pub(crate) fn bytes(&self) -> usize {
        self.index.iter().map(|(k, _)| k.len() + 40).sum::<usize>() + self.root.bytes()
    }

    /// Where to start reading for the entries under `path` after `after`: the last
    /// index point before both.
    pub(crate) fn seek(&self, path: &str, after: Option<&str>) -> u64 {
        let bound = match after {
            Some(after) if tree_order(after, path) == std::cmp::Ordering::Greater => after,
            _ => path,
        };
        if bound.is_empty() {
            return self.body_start;
        }
        let at = self
            .index
            .partition_point(|(key, _)| tree_order(key, bound) == std::cmp::Ordering::Less);
        match at.checked_sub(1).and_then(|i| self.index.get(i)) {
            Some((_, offset)) => *offset,
            None => self.body_start,
        }
    }
}

/// What a verifying pass gives: the header, the page, the summary of the request's
/// path and the revision's layout.
pub(crate) struct FullPass {
    /// The header.
    pub header: Header,
    /// The page asked for.
    pub page: Page,
    /// The summary of the request's path.
    pub summary: Summary,
    /// The revision's layout.
    pub layout: Layout,
}

/// Reads a whole manifest once, verifying it: the page `request` asks for, the summary
/// of its path and of the whole revision, and the layout. `Ok(None)` when the stream
/// (read streaming) finds an entry out of tree order: open it again sorting.
pub(crate) async fn full_pass<R>(
    mut stream: ManifestStream<R>,
    request: &PageRequest,
    length: Option<u64>,
) -> Result<Option<FullPass>, QuiltError>
where
    R: tokio::io::AsyncBufRead + Unpin,
{
    let body_start = stream.position();
    let step = length.map_or(MIN_INDEX_STEP, |l| {
        (l / MAX_INDEX_POINTS).max(MIN_INDEX_STEP)
    });
    let mut collector = PageCollector::new(request);
    let mut root = SummaryCollector::new("", request.max_directories);
    let mut path = (!request.path.is_empty())
        .then(|| SummaryCollector::new(&request.path, request.max_directories));
    let mut index: Vec<(String, u64)> = Vec::new();
    let mut next_point = 0u64;
    let mut first_entry: Option<u64> = None;
    let mut directory_after_entry = false;
    let sorted = !stream.sorting();
    loop {
        match stream.next().await? {
            Next::Entry(entry) => {
                let key = entry.line.logical_key();
                let size = entry.line.size();
                root.push_entry(key, size);
                if let Some(path) = &mut path {
                    path.push_entry(key, size);
                }
                collector.push(&entry.line, entry.offset);
                first_entry.get_or_insert(entry.offset);
                if entry.offset >= next_point && key.len() <= MAX_INDEX_KEY {
                    index.push((key.to_owned(), entry.offset));
                    next_point = entry.offset + step;
                }
            }
            Next::Directory(line) => {
                directory_after_entry |= first_entry.is_some();
                root.push_directory(&line);
                if let Some(path) = &mut path {
                    path.push_directory(&line);
                }
            }
            Next::End => break,
            Next::Unsorted => return Ok(None),
        }
    }
    let end = stream.position();
    let header = stream.finish().await?;
    let root = root.finish();
    let summary = match path {
        Some(path) => path.finish(),
        None => root.clone(),
    };
    Ok(Some(FullPass {
        header,
        page: collector.finish()?,
        summary,
        layout: Layout {
            body_start,
            sorted,
            index: if sorted { index } else { Vec::new() },
            directories_end: (!directory_after_entry).then_some(first_entry.unwrap_or(end)),
            root,
        },
    }))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::quilt::manifest::Manifest;
    use crate::quilt::stream::tests::manifest_of;
    use crate::quilt::stream::{Order, SORT_BUDGET};

    fn request(path: &str, after: Option<&str>, max: usize) -> PageRequest {
        PageRequest {
            path: path.to_owned(),
            after: after.map(str::to_owned),
            max_entries: max,
            max_directories: MAX_DIRECTORIES,
        }
    }

    pub(crate) async fn pass_of(bytes: &[u8], hash: &str, request: &PageRequest) -> FullPass {
        for order in [Order::Streaming, Order::Sorting] {
            let stream =
                ManifestStream::open(bytes, "s3://b/m".to_owned(), hash, order, SORT_BUDGET)
                    .await
                    .unwrap();
            if let Some(pass) = full_pass(stream, request, Some(bytes.len() as u64))
                .await
                .unwrap()
            {
                return pass;
            }
        }
        unreachable!()
    }

    /// Every page in turn, each starting after the last key of the one before.
    async fn all_pages(bytes: &[u8], hash: &str, path: &str, max: usize) -> (Vec<String>, usize) {
        let mut after: Option<String> = None;
        let mut keys = Vec::new();
        let mut pages = 0;
        loop {
            let page = pass_of(bytes, hash, &request(path, after.as_deref(), max))
                .await
                .page;
            pages += 1;
            assert!(page.entries.len() <= max);
            keys.extend(page.entries.iter().map(|e| e.logical_key.clone()));
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
        assert!(past("b", "a"));
        assert!(past("a-b", "a"));
        assert!(!past("a/b", "a"));
        assert!(!past("a", "a/b"));
        assert!(!past("x", ""));
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
        let pass = pass_of(&bytes, &hash, &req).await;
        let (page, summary) = (pass.page, pass.summary);
        assert_eq!(summary.entry_count, 31);
        assert_eq!(page.entries.len(), 5);
        assert!(page.truncated);
        let dirs: Vec<(&str, u64)> = summary
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
        assert_eq!(
            summary.directories[3].meta.as_deref(),
            Some(r#"{"about": "three"}"#)
        );
        assert!(summary.directories_truncated);
        assert_eq!(pass.layout.root.entry_count, 32);
        assert!(pass.layout.sorted);
        req.max_directories = MAX_DIRECTORIES;
        let summary = pass_of(&bytes, &hash, &req).await.summary;
        assert_eq!(summary.directories.len(), 12);
        assert!(!summary.directories_truncated);
        let sizes: u64 = summary.directories.iter().map(|d| d.total_size).sum();
        let file_size = keys.iter().position(|k| k == "top/file").unwrap() as u64;
        assert_eq!(sizes + file_size, summary.total_size);
    }

    /// Large entries end a page early; directories and their metadata are bounded in
    /// bytes; one entry larger than a page may be is `too_large`.
    #[tokio::test]
    async fn pages_and_summaries_are_bounded_in_bytes() {
        let big = "x".repeat(400_000);
        let mut lines = vec![r#"{"version": "v0"}"#.to_owned()];
        for i in 0..20 {
            lines.push(format!(
                r#"{{"logical_key": "d{i:02}/", "meta": {{"pad": "{big}"}}}}"#
            ));
        }
        for i in 0..20 {
            lines.push(format!(
                r#"{{"logical_key": "d{i:02}/f", "physical_keys": ["s3://b/f"], "size": 1, "hash": {{"type": "SHA256", "value": "0"}}, "meta": {{"pad": "{big}"}}}}"#
            ));
        }
        let text = lines.join("\n") + "\n";
        let m = Manifest::parse(&text).unwrap();
        let hash = m.top_hash();
        let pass = pass_of(text.as_bytes(), &hash, &request("", None, 1000)).await;
        let page = pass.page;
        assert!(page.truncated);
        assert_eq!(page.entries.len(), PAGE_BYTES / 400_100);
        let summary = pass.summary;
        assert_eq!(summary.entry_count, 20);
        assert!(summary.bytes() <= DIRECTORY_BYTES + 20 * 200);
        assert!(summary.directories.iter().any(|d| d.meta_too_large));
        assert!(summary.directories.iter().any(|d| d.meta.is_some()));
        // Counts stay whole for the directories kept.
        assert!(summary.directories.iter().all(|d| d.entry_count == 1));

        let huge = "y".repeat(PAGE_BYTES);
        let text = format!(
            "{{\"version\": \"v0\"}}\n{{\"logical_key\": \"a\", \"physical_keys\": [\"s3://b/a\"], \"size\": 1, \"hash\": {{\"type\": \"SHA256\", \"value\": \"0\"}}, \"meta\": {{\"pad\": \"{huge}\"}}}}\n"
        );
        let hash = Manifest::parse(&text).unwrap().top_hash();
        let stream = ManifestStream::open(
            text.as_bytes(),
            "s3://b/m".to_owned(),
            &hash,
            Order::Streaming,
            SORT_BUDGET,
        )
        .await
        .unwrap();
        let error = full_pass(stream, &request("", None, 10), None)
            .await
            .err()
            .unwrap();
        assert!(matches!(error, QuiltError::TooLarge(_)), "{error}");
    }

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
