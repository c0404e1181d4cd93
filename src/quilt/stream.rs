//! Manifests read as streams: the header, then one record at a time, each line parsed
//! as it arrives and dropped unless the caller keeps it, with the top hash verified as
//! the entries stream by.
//!
//! quilt3 writes entries in tree order, which is the order the top hash covers them
//! in, so their hash parts go straight into SHA-256 ([`Order::Streaming`]). A
//! manifest whose entries are out of order is noticed at the first such entry
//! ([`Next::Unsorted`]); the caller then reads it again with [`Order::Sorting`], which
//! sorts the hash parts with an [`ExternalSorter`]: in memory up to a budget, then in
//! sorted runs in temporary files merged at the end. Memory stays bounded either way.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read as _, Seek as _, Write as _};

use sha2::{Digest as _, Sha256};
use tokio::io::AsyncBufRead;

use super::budget::{Budget, Charge, TEMP_DISK};
use super::error::QuiltError;
use super::line::{Header, Line};
use super::manifest::{self, MAX_LINE_BYTES, ManifestError, tree_order};
use super::registry::{
    LineRead, MAX_MANIFEST_BYTES, ManifestBody, Registry, manifest_too_large, read_line_capped,
};

/// Bytes of items an [`ExternalSorter`] holds in memory before it writes a sorted run
/// to a temporary file.
pub(crate) const SORT_BUDGET: usize = 16 * 1024 * 1024;
/// What an item costs beyond its bytes, counted against the budget.
const ITEM_OVERHEAD: usize = 64;

/// A logical key, ordered in tree order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TreeKey(pub String);

impl Ord for TreeKey {
    fn cmp(&self, other: &TreeKey) -> Ordering {
        tree_order(&self.0, &other.0)
    }
}

impl PartialOrd for TreeKey {
    fn partial_cmp(&self, other: &TreeKey) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Sorts `(logical key, bytes)` items in tree order in bounded memory; items with
/// equal keys keep the order they were pushed in.
/// Its runs count against a temporary-disk [`Budget`].
#[derive(Debug)]
pub(crate) struct ExternalSorter {
    budget: usize,
    held: usize,
    items: Vec<(String, Vec<u8>)>,
    runs: Vec<File>,
    disk: Charge,
}

fn temp_error(e: std::io::Error) -> QuiltError {
    QuiltError::interrupted("a temporary file", e)
}

impl ExternalSorter {
    /// A sorter that holds about `budget` bytes in memory, its runs charged to the
    /// server's temporary-disk budget.
    pub(crate) fn new(budget: usize) -> ExternalSorter {
        ExternalSorter::with_disk(budget, &TEMP_DISK)
    }

    /// A sorter whose runs are charged to `disk`.
    pub(crate) fn with_disk(budget: usize, disk: &'static Budget) -> ExternalSorter {
        ExternalSorter {
            budget,
            held: 0,
            items: Vec::new(),
            runs: Vec::new(),
            disk: disk.charge(),
        }
    }

    /// Adds an item, writing a sorted run to a temporary file when over the budget;
    /// `too_large` when the run would pass the temporary-disk budget.
    pub(crate) fn push(&mut self, key: String, payload: Vec<u8>) -> Result<(), QuiltError> {
        self.held += key.len() + payload.len() + ITEM_OVERHEAD;
        self.items.push((key, payload));
        if self.held > self.budget {
            self.spill()?;
        }
        Ok(())
    }

    /// Bytes of temporary disk taken.
    #[cfg(test)]
    pub(crate) fn disk_bytes(&self) -> u64 {
        self.disk.bytes()
    }

    /// How many runs were written to temporary files.
    #[cfg(test)]
    pub(crate) fn runs(&self) -> usize {
        self.runs.len()
    }

    fn spill(&mut self) -> Result<(), QuiltError> {
        let bytes: u64 = self
            .items
            .iter()
            .map(|(key, payload)| 16 + key.len() as u64 + payload.len() as u64)
            .sum();
        self.disk.add(bytes)?;
        self.items.sort_by(|a, b| tree_order(&a.0, &b.0));
        self.write_run().map_err(temp_error)
    }

    fn write_run(&mut self) -> std::io::Result<()> {
        let mut file = tempfile::tempfile()?;
        {
            let mut out = BufWriter::with_capacity(64 * 1024, &mut file);
            for (key, payload) in self.items.drain(..) {
                for part in [key.as_bytes(), &payload] {
                    out.write_all(&(part.len() as u64).to_le_bytes())?;
                    out.write_all(part)?;
                }
            }
            out.flush()?;
        }
        file.rewind()?;
        self.runs.push(file);
        self.held = 0;
        Ok(())
    }

    /// The items in tree order.
    pub(crate) fn finish(mut self) -> Result<Sorted, QuiltError> {
        if self.runs.is_empty() {
            self.items.sort_by(|a, b| tree_order(&a.0, &b.0));
            return Ok(Sorted::Memory(std::mem::take(&mut self.items).into_iter()));
        }
        if !self.items.is_empty() {
            self.spill()?;
        }
        let mut readers: Vec<BufReader<File>> = std::mem::take(&mut self.runs)
            .into_iter()
            .map(|file| BufReader::with_capacity(64 * 1024, file))
            .collect();
        let mut heads = BinaryHeap::new();
        for (run, reader) in readers.iter_mut().enumerate() {
            if let Some((key, payload)) = read_item(reader).map_err(temp_error)? {
                heads.push(Head {
                    key: TreeKey(key),
                    run,
                    payload,
                });
            }
        }
        let budget = self.disk_budget();
        let disk = std::mem::replace(&mut self.disk, budget.charge());
        Ok(Sorted::Merge {
            readers,
            heads,
            _disk: disk,
        })
    }

    fn disk_budget(&self) -> &'static Budget {
        self.disk.budget()
    }
}

/// The next run item of a merge; the heap's top is the smallest (key, run).
#[derive(Debug)]
pub(crate) struct Head {
    key: TreeKey,
    run: usize,
    payload: Vec<u8>,
}

impl PartialEq for Head {
    fn eq(&self, other: &Head) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Head) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head {
    fn cmp(&self, other: &Head) -> Ordering {
        // Reversed: BinaryHeap is a max-heap.
        (&other.key, other.run).cmp(&(&self.key, self.run))
    }
}

fn read_part(reader: &mut BufReader<File>) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 8];
    match reader.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = usize::try_from(u64::from_le_bytes(len)).map_err(std::io::Error::other)?;
    let mut bytes = vec![0; len];
    reader.read_exact(&mut bytes)?;
    Ok(Some(bytes))
}

fn read_item(reader: &mut BufReader<File>) -> std::io::Result<Option<(String, Vec<u8>)>> {
    let Some(key) = read_part(reader)? else {
        return Ok(None);
    };
    let key = String::from_utf8(key).map_err(std::io::Error::other)?;
    let payload = read_part(reader)?.ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "a sorted run ends early")
    })?;
    Ok(Some((key, payload)))
}

/// Sorted items, from memory or merged from runs.
#[derive(Debug)]
pub(crate) enum Sorted {
    /// All items fitted in memory.
    Memory(std::vec::IntoIter<(String, Vec<u8>)>),
    /// A k-way merge of sorted runs.
    Merge {
        /// One reader per run.
        readers: Vec<BufReader<File>>,
        /// The next item of each run not yet exhausted.
        heads: BinaryHeap<Head>,
        /// The runs' temporary disk, given back when they are closed.
        _disk: Charge,
    },
}

impl Sorted {
    /// The next item in tree order.
    pub(crate) fn next_item(&mut self) -> std::io::Result<Option<(String, Vec<u8>)>> {
        match self {
            Sorted::Memory(items) => Ok(items.next()),
            Sorted::Merge { readers, heads, .. } => {
                let Some(head) = heads.pop() else {
                    return Ok(None);
                };
                if let Some(reader) = readers.get_mut(head.run)
                    && let Some((key, payload)) = read_item(reader)?
                {
                    heads.push(Head {
                        key: TreeKey(key),
                        run: head.run,
                        payload,
                    });
                }
                Ok(Some((head.key.0, head.payload)))
            }
        }
    }
}

/// How entries are hashed into the top hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    /// As they arrive, for a manifest in tree order; an entry out of order is
    /// [`Next::Unsorted`].
    Streaming,
    /// Sorted first (in bounded memory), for a manifest in any order.
    Sorting,
}

/// The top hash computed as entries go by.
#[derive(Debug)]
pub(crate) struct TopHashCheck {
    hasher: Sha256,
    last: Option<String>,
    sorter: Option<ExternalSorter>,
    part: String,
    meta: std::ops::Range<usize>,
}

impl TopHashCheck {
    /// A check of a manifest whose header `hasher` has hashed.
    pub(crate) fn new(hasher: Sha256, order: Order, budget: usize) -> TopHashCheck {
        TopHashCheck {
            hasher,
            last: None,
            sorter: (order == Order::Sorting).then(|| ExternalSorter::new(budget)),
            part: String::new(),
            meta: 0..0,
        }
    }

    /// Hashes an entry; false (and nothing hashed) when streaming and the entry comes
    /// before the one before it.
    pub(crate) fn add(&mut self, entry: &Line<'_>) -> Result<bool, QuiltError> {
        self.part.clear();
        self.meta = entry.write_hash_part(&mut self.part);
        match &mut self.sorter {
            Some(sorter) => {
                sorter.push(
                    entry.logical_key().to_owned(),
                    self.part.as_bytes().to_vec(),
                )?;
            }
            None => {
                let key = entry.logical_key();
                match &mut self.last {
                    Some(last) => {
                        if tree_order(key, last) == Ordering::Less {
                            return Ok(false);
                        }
                        last.clear();
                        last.push_str(key);
                    }
                    None => self.last = Some(key.to_owned()),
                }
                self.hasher.update(self.part.as_bytes());
            }
        }
        Ok(true)
    }

    /// Runs written to temporary files so far (sorting only).
    #[cfg(test)]
    pub(crate) fn spilled_runs(&self) -> usize {
        self.sorter.as_ref().map_or(0, ExternalSorter::runs)
    }

    /// The canonical hash part of the last entry added, and the range of its `meta`.
    fn last_part(&self) -> (&str, std::ops::Range<usize>) {
        (&self.part, self.meta.clone())
    }

    /// The top hash, in hex; a long merge of sorted runs yields to the runtime now
    /// and then, so that a cancelled call stops.
    pub(crate) async fn finish(self) -> Result<String, QuiltError> {
        let mut hasher = self.hasher;
        if let Some(sorter) = self.sorter {
            let mut sorted = sorter.finish()?;
            let mut n: u32 = 0;
            while let Some((_, part)) = sorted.next_item().map_err(temp_error)? {
                hasher.update(&part);
                n = n.wrapping_add(1);
                if n.is_multiple_of(4096) {
                    tokio::task::yield_now().await;
                }
            }
        }
        Ok(manifest::hex(&hasher.finalize()))
    }
}

/// An entry as read, with its canonical hash part.
#[derive(Debug)]
pub(crate) struct Entry<'a> {
    /// The line.
    pub line: Line<'a>,
    part: &'a str,
    meta: std::ops::Range<usize>,
    /// Where the line starts, in bytes from the start of the manifest.
    pub offset: u64,
}

impl Entry<'_> {
    /// The canonical `{hash, logical_key, meta, size}` hashed into the top hash.
    pub(crate) fn hash_part(&self) -> &str {
        self.part
    }

    /// The canonical `meta` (`{}` when absent), as hashed.
    pub(crate) fn canonical_meta(&self) -> &str {
        self.part.get(self.meta.clone()).unwrap_or("{}")
    }
}

/// What a [`ManifestStream`] read next.
#[derive(Debug)]
pub(crate) enum Next<'a> {
    /// An entry.
    Entry(Entry<'a>),
    /// A directory-metadata line.
    Directory(Line<'a>),
    /// The end of the manifest: call [`ManifestStream::finish`] to verify it.
    End,
    /// Streaming, an entry came out of tree order: read the manifest again with
    /// [`Order::Sorting`].
    Unsorted,
}

/// A manifest read line by line, its top hash checked as it goes.
pub(crate) struct ManifestStream<R> {
    body: R,
    line: Vec<u8>,
    line_no: usize,
    total: u64,
    line_start: u64,
    pending_blank: bool,
    header: Header,
    check: TopHashCheck,
    uri: String,
    top_hash: String,
}

impl<R: AsyncBufRead + Unpin> ManifestStream<R> {
    /// Reads the header of the manifest in `body`, stored at `uri` under `top_hash`.
    pub(crate) async fn open(
        body: R,
        uri: String,
        top_hash: &str,
        order: Order,
        budget: usize,
    ) -> Result<ManifestStream<R>, QuiltError> {
        let mut stream = ManifestStream {
            body,
            line: Vec::new(),
            line_no: 0,
            total: 0,
            line_start: 0,
            pending_blank: false,
            header: Header::parse("{}", 1).map_err(|e| invalid("", e))?,
            check: TopHashCheck::new(Sha256::new(), order, budget),
            uri,
            top_hash: top_hash.to_owned(),
        };
        let header = loop {
            match stream.read_line().await? {
                None => {
                    return Err(stream.invalid(ManifestError {
                        line: 1,
                        problem: "the manifest is empty".to_owned(),
                    }));
                }
                Some(false) => continue,
                Some(true) => {
                    let text = stream.text()?;
                    break Header::parse(text, stream.line_no).map_err(|e| stream.invalid(e))?;
                }
            }
        };
        stream.check = TopHashCheck::new(header.hasher(), order, budget);
        stream.header = header;
        Ok(stream)
    }

    fn invalid(&self, e: ManifestError) -> QuiltError {
        invalid(&self.uri, e)
    }

    /// Whether it was opened with [`Order::Sorting`].
    pub(crate) fn sorting(&self) -> bool {
        self.check.sorter.is_some()
    }

    /// The header.
    pub(crate) fn header(&self) -> &Header {
        &self.header
    }

    /// Bytes read so far: where the next line starts.
    pub(crate) fn position(&self) -> u64 {
        self.total
    }

    /// Reads the next line into `self.line`: `None` at the end, `Some(false)` for an
    /// empty line (only trailing ones are allowed), `Some(true)` for a line.
    async fn read_line(&mut self) -> Result<Option<bool>, QuiltError> {
        self.line.clear();
        let read = read_line_capped(&mut self.body, &mut self.line, MAX_LINE_BYTES)
            .await
            .map_err(|e| QuiltError::interrupted(self.uri.clone(), e))?;
        self.line_start = self.total;
        match read {
            LineRead::End => return Ok(None),
            LineRead::TooLong => {
                return Err(self.invalid(ManifestError {
                    line: self.line_no + 1,
                    problem: format!("is over the {MAX_LINE_BYTES}-byte limit"),
                }));
            }
            LineRead::Line => {}
        }
        self.total += self.line.len() as u64;
        if self.total > MAX_MANIFEST_BYTES {
            return Err(manifest_too_large(&self.uri));
        }
        self.line_no += 1;
        if self.line.ends_with(b"\n") {
            self.line.pop();
        }
        if self.line.is_empty() {
            self.pending_blank = true;
            return Ok(Some(false));
        }
        if self.pending_blank {
            return Err(self.invalid(ManifestError {
                line: self.line_no - 1,
                problem: "is empty".to_owned(),
            }));
        }
        Ok(Some(true))
    }

    fn text(&self) -> Result<&str, QuiltError> {
        std::str::from_utf8(&self.line).map_err(|_| {
            self.invalid(ManifestError {
                line: self.line_no,
                problem: "is not UTF-8".to_owned(),
            })
        })
    }

    /// The next record.
    pub(crate) async fn next(&mut self) -> Result<Next<'_>, QuiltError> {
        loop {
            match self.read_line().await? {
                None => return Ok(Next::End),
                Some(false) => continue,
                Some(true) => {}
            }
            break;
        }
        let uri = &self.uri;
        let line_no = self.line_no;
        let text = std::str::from_utf8(&self.line).map_err(|_| {
            invalid(
                uri,
                ManifestError {
                    line: line_no,
                    problem: "is not UTF-8".to_owned(),
                },
            )
        })?;
        let line = Line::parse(text, line_no).map_err(|e| invalid(uri, e))?;
        if line.is_directory() {
            return Ok(Next::Directory(line));
        }
        if !self.check.add(&line)? {
            return Ok(Next::Unsorted);
        }
        let (part, meta) = self.check.last_part();
        Ok(Next::Entry(Entry {
            line,
            part,
            meta,
            offset: self.line_start,
        }))
    }

    /// Runs spilled to temporary files so far.
    #[cfg(test)]
    pub(crate) fn spilled_runs(&self) -> usize {
        self.check.spilled_runs()
    }

    /// After [`Next::End`]: checks the top hash and gives back the header.
    pub(crate) async fn finish(self) -> Result<Header, QuiltError> {
        let actual = self.check.finish().await?;
        if actual != self.top_hash {
            return Err(QuiltError::Integrity(format!(
                "the manifest {} hashes to {actual}, not {}: it was altered or is corrupt",
                self.uri, self.top_hash
            )));
        }
        Ok(self.header)
    }
}

fn invalid(uri: &str, e: ManifestError) -> QuiltError {
    QuiltError::Integrity(format!("the manifest {uri} is invalid: {e}"))
}

/// Opens the manifest of `top_hash` in `registry` as a stream.
pub(crate) async fn open(
    registry: &Registry<'_>,
    top_hash: &str,
    order: Order,
) -> Result<ManifestStream<ManifestBody>, QuiltError> {
    let body = registry.open_manifest(top_hash).await?;
    let uri = format!(
        "s3://{}/{}",
        registry.bucket(),
        super::manifest_key(top_hash)
    );
    ManifestStream::open(body, uri, top_hash, order, SORT_BUDGET).await
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use serde_json::{Map, Value};

    use super::*;
    use crate::quilt::manifest::{Manifest, Record};

    /// A manifest of entries with these keys, in this order.
    pub(crate) fn manifest_of(keys: &[String], message: &str) -> Manifest {
        let records = keys
            .iter()
            .enumerate()
            .map(|(i, key)| {
                let Value::Object(obj) = json!({
                    "logical_key": key,
                    "physical_keys": [format!("s3://b/{key}")],
                    "size": i,
                    "hash": {"type": "SHA256", "value": format!("{:064x}", i % 7)},
                    "meta": if i % 3 == 0 { Value::Null } else { json!({"n": i % 5}) },
                }) else {
                    unreachable!()
                };
                Record::from_object(obj)
            })
            .collect();
        let mut header = Map::new();
        header.insert("version".into(), json!("v0"));
        header.insert("message".into(), json!(message));
        Manifest::new(header, records)
    }

    /// Every entry of `bytes` through a stream in `order`; `None` when it is unsorted.
    async fn read_all(
        bytes: &[u8],
        top_hash: &str,
        order: Order,
        budget: usize,
    ) -> Result<Option<(Vec<String>, usize)>, QuiltError> {
        let mut stream =
            ManifestStream::open(bytes, "s3://b/m".to_owned(), top_hash, order, budget).await?;
        let mut keys = Vec::new();
        loop {
            match stream.next().await? {
                Next::Entry(r) => keys.push(r.line.logical_key().to_owned()),
                Next::Directory(_) => {}
                Next::Unsorted => return Ok(None),
                Next::End => break,
            }
        }
        let runs = stream.spilled_runs();
        stream.finish().await?;
        Ok(Some((keys, runs)))
    }

    fn keys(n: usize) -> Vec<String> {
        let mut keys: Vec<String> = (0..n)
            .map(|i| format!("d{}/sub-{}/f{i}", i % 4, i % 3))
            .collect();
        keys.sort_by(|a, b| tree_order(a, b));
        keys
    }

    /// quilt3's own top hashes, through the stream (the line parse that skips what a
    /// page does not need) as through the whole-manifest parse.
    #[tokio::test]
    async fn streamed_top_hashes_match_quilt3() {
        let vectors: Vec<Value> = serde_json::from_str(include_str!(
            "../../tests/fixtures/quilt3/top_hash_vectors.json"
        ))
        .unwrap();
        for vector in &vectors {
            let text = vector["manifest"].as_str().unwrap();
            let hash = vector["top_hash"].as_str().unwrap();
            for order in [Order::Streaming, Order::Sorting] {
                let read = read_all(text.as_bytes(), hash, order, 64).await;
                let name = &vector["name"];
                match read {
                    Ok(Some(_)) => {}
                    Ok(None) => assert_eq!(order, Order::Streaming, "{name}"),
                    Err(e) => panic!("{name}: {e}"),
                }
            }
        }
        let meta: Value = serde_json::from_str(include_str!(
            "../../tests/fixtures/quilt3/quilt3_manifest.json"
        ))
        .unwrap();
        let text = include_str!("../../tests/fixtures/quilt3/quilt3_manifest.jsonl");
        let hash = meta["top_hash"].as_str().unwrap();
        assert!(
            read_all(text.as_bytes(), hash, Order::Streaming, 64)
                .await
                .unwrap()
                .is_some()
        );
    }

    #[tokio::test]
    async fn a_sorted_manifest_streams_and_verifies() {
        let m = manifest_of(&keys(500), "sorted");
        let hash = m.top_hash();
        let bytes = m.to_bytes();
        let (read, runs) = read_all(&bytes, &hash, Order::Streaming, SORT_BUDGET)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read, keys(500));
        assert_eq!(runs, 0);
    }

    #[tokio::test]
    async fn an_unsorted_manifest_is_noticed_then_verified_sorting_and_spilling() {
        let mut shuffled = keys(500);
        shuffled.reverse();
        shuffled.swap(3, 250);
        let m = manifest_of(&shuffled, "unsorted");
        let hash = m.top_hash();
        let bytes = m.to_bytes();
        assert!(
            read_all(&bytes, &hash, Order::Streaming, SORT_BUDGET)
                .await
                .unwrap()
                .is_none()
        );
        // In memory, then with a budget so small that most items spill.
        for budget in [SORT_BUDGET, 2000] {
            let (read, runs) = read_all(&bytes, &hash, Order::Sorting, budget)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(read, shuffled, "file order is kept for the caller");
            assert_eq!(runs > 0, budget == 2000, "{runs} runs");
        }
    }

    #[tokio::test]
    async fn a_tampered_manifest_is_an_integrity_error() {
        let m = manifest_of(&keys(20), "tampered");
        let hash = m.top_hash();
        let text = String::from_utf8(m.to_bytes()).unwrap();
        let tampered = text.replacen("\"size\": 3,", "\"size\": 4,", 1);
        assert_ne!(tampered, text);
        for order in [Order::Streaming, Order::Sorting] {
            let error = read_all(tampered.as_bytes(), &hash, order, 100)
                .await
                .unwrap_err();
            assert!(
                matches!(&error, QuiltError::Integrity(m) if m.contains("hashes to")),
                "{error}"
            );
        }
        // Not JSON, an empty line in the middle, no header at all.
        for bad in [
            &b"{}\nnope\n"[..],
            b"{}\n\n{\"logical_key\": \"a/\"}\n",
            b"",
        ] {
            let error = read_all(bad, &hash, Order::Streaming, 100)
                .await
                .unwrap_err();
            assert!(matches!(error, QuiltError::Integrity(_)), "{error}");
        }
    }

    /// Sorted runs count against the temporary-disk budget while they exist; a sort
    /// that would pass it is `too_large`, and what it took is given back.
    #[test]
    fn runs_are_charged_to_the_disk_budget() {
        let disk: &'static Budget = Box::leak(Box::new(Budget::new(10_000)));
        let mut sorter = ExternalSorter::with_disk(1000, disk);
        let mut failed = None;
        for i in 0..1000 {
            if let Err(e) = sorter.push(format!("k{i:04}"), vec![0; 100]) {
                failed = Some(e);
                break;
            }
            assert_eq!(sorter.disk_bytes(), disk.used());
        }
        assert!(
            matches!(failed, Some(QuiltError::TooLarge(_))),
            "{failed:?}"
        );
        assert!(disk.used() > 0);
        drop(sorter);
        assert_eq!(disk.used(), 0);

        let mut sorter = ExternalSorter::with_disk(1000, disk);
        for i in 0..50 {
            sorter.push(format!("k{i:04}"), vec![0; 100]).unwrap();
        }
        let mut sorted = sorter.finish().unwrap();
        assert!(disk.used() > 0, "the runs are held while they are merged");
        let mut n = 0;
        while sorted.next_item().unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, 50);
        drop(sorted);
        assert_eq!(disk.used(), 0);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Sorted runs merged give every item once, in tree order, equal keys in the
        /// order pushed, whatever the budget.
        #[test]
        fn the_external_sorter_sorts(
            items in proptest::collection::vec(("[ab/]{0,4}", any::<u8>()), 0..200),
            budget in 0usize..2000,
        ) {
            let mut sorter = ExternalSorter::new(budget);
            for (i, (key, byte)) in items.iter().enumerate() {
                sorter.push(key.clone(), vec![*byte, (i % 256) as u8, (i / 256) as u8]).unwrap();
            }
            let mut expected: Vec<(String, Vec<u8>)> = items
                .iter()
                .enumerate()
                .map(|(i, (k, b))| (k.clone(), vec![*b, (i % 256) as u8, (i / 256) as u8]))
                .collect();
            expected.sort_by(|a, b| tree_order(&a.0, &b.0));
            let mut sorted = sorter.finish().unwrap();
            let mut got = Vec::new();
            while let Some(item) = sorted.next_item().unwrap() {
                got.push(item);
            }
            prop_assert_eq!(got, expected);
        }

        /// Streamed or sorted, any order of entries gives `Manifest::top_hash`.
        #[test]
        fn streaming_gives_the_top_hash(
            keys in proptest::collection::vec("[ab]{1,2}(/[ab-]{1,2}){0,2}", 0..40),
            budget in 100usize..3000,
        ) {
            let m = manifest_of(&keys, "any");
            let hash = m.top_hash();
            let bytes = m.to_bytes();
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let sorted = runtime.block_on(read_all(&bytes, &hash, Order::Sorting, budget)).unwrap();
            prop_assert_eq!(sorted.map(|(k, _)| k), Some(keys.clone()));
            let streamed = runtime.block_on(read_all(&bytes, &hash, Order::Streaming, budget)).unwrap();
            let in_order = keys.windows(2).all(|w| tree_order(&w[0], &w[1]) != Ordering::Greater);
            prop_assert_eq!(streamed.is_some(), in_order);
        }
    }
}
