//! Revisions this server has read whole and verified, so that the next page of one
//! costs what the page holds (see `docs/reference.md`, Results: `package_browse`).
//!
//! A manifest is immutable in principle and addressed by its top hash, but its object
//! can be overwritten; so a revision is remembered with the ETag and length of the
//! object that was verified, and every later read is a ranged `GetObject` with
//! `If-Match` on that ETag (the answer's ETag is compared too). A changed object
//! drops the revision and the call verifies again; a revision this server has not
//! verified (a cursor made by another server) is read whole once. Nothing a client
//! sends is trusted: a cursor's byte offset is only a hint, checked against the
//! bytes it points at.
//!
//! What is held per revision is bounded: the header's shown fields, a seek index of
//! at most 1024 logical keys with their byte offsets, the whole revision's summary
//! and the summaries of a few paths. At most [`MAX_REVISIONS`] revisions and
//! [`MAX_CACHE_BYTES`] are kept, the least recently used dropped first. Revisions
//! whose entries are out of tree order keep only their header and summary: each of
//! their pages is read sorting.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::browse::{
    self, FullPass, HEADER_BYTES, Layout, Page, PageCollector, PageRequest, Summary,
    SummaryCollector,
};
use super::error::QuiltError;
use super::line::{Header, Line};
use super::manifest::MAX_LINE_BYTES;
use super::registry::{
    LineRead, MAX_MANIFEST_BYTES, ManifestBody, Registry, manifest_too_large, read_line_capped,
};
use super::stream::{ManifestStream, Order, SORT_BUDGET};
use crate::s3::S3ErrorKind;

/// The most revisions remembered.
pub(crate) const MAX_REVISIONS: usize = 32;
/// The most bytes the remembered revisions hold together, about.
pub(crate) const MAX_CACHE_BYTES: usize = 32 * 1024 * 1024;
/// The most path summaries remembered per revision.
const MAX_PATHS: usize = 8;
/// The largest region of directory-metadata lines read to summarize a path; past it
/// the whole manifest is read.
const MAX_DIRECTORY_REGION: u64 = 16 * 1024 * 1024;
/// The smallest first ranged read, in bytes; each further one is twice as large.
const MIN_CHUNK: u64 = 64 * 1024;
/// The first ranged read of a summary.
const SUMMARY_CHUNK: u64 = 1024 * 1024;
/// The largest ranged read.
const MAX_CHUNK: u64 = 64 * 1024 * 1024;

/// A verified revision.
#[derive(Debug)]
pub(crate) struct Revision {
    etag: String,
    length: u64,
    header: Header,
    layout: Layout,
    paths: Mutex<VecDeque<(String, Arc<Summary>)>>,
}

impl Revision {
    fn bytes(&self) -> usize {
        let paths: usize = self
            .paths
            .lock()
            .map(|p| p.iter().map(|(k, s)| k.len() + s.bytes()).sum())
            .unwrap_or(0);
        self.header.len() + self.layout.bytes() + paths + 256
    }

    fn path_summary(&self, path: &str) -> Option<Arc<Summary>> {
        if path.is_empty() {
            return Some(Arc::new(self.layout.root.clone()));
        }
        let mut paths = self.paths.lock().ok()?;
        let at = paths.iter().position(|(p, _)| p == path)?;
        let hit = paths.remove(at)?;
        let summary = hit.1.clone();
        paths.push_front(hit);
        Some(summary)
    }

    fn remember_path(&self, path: &str, summary: Arc<Summary>) {
        if path.is_empty() || summary.bytes() > MAX_CACHE_BYTES / MAX_REVISIONS / 2 {
            return;
        }
        if let Ok(mut paths) = self.paths.lock() {
            paths.retain(|(p, _)| p != path);
            paths.push_front((path.to_owned(), summary));
            paths.truncate(MAX_PATHS);
        }
    }
}

/// The revisions this server has verified, most recently used first.
#[derive(Debug)]
pub(crate) struct RevisionCache {
    revisions: Mutex<VecDeque<(String, String, Arc<Revision>)>>,
}

/// This server's revision cache.
pub(crate) static REVISIONS: RevisionCache = RevisionCache {
    revisions: Mutex::new(VecDeque::new()),
};

impl RevisionCache {
    fn get(&self, bucket: &str, top_hash: &str) -> Option<Arc<Revision>> {
        let mut revisions = self.revisions.lock().ok()?;
        let at = revisions
            .iter()
            .position(|(b, h, _)| b == bucket && h == top_hash)?;
        let hit = revisions.remove(at)?;
        let revision = hit.2.clone();
        revisions.push_front(hit);
        Some(revision)
    }

    fn insert(&self, bucket: &str, top_hash: &str, revision: Revision) {
        if revision.bytes() > MAX_CACHE_BYTES / 4 {
            return;
        }
        let Ok(mut revisions) = self.revisions.lock() else {
            return;
        };
        revisions.retain(|(b, h, _)| !(b == bucket && h == top_hash));
        revisions.push_front((bucket.to_owned(), top_hash.to_owned(), Arc::new(revision)));
        revisions.truncate(MAX_REVISIONS);
        while revisions.len() > 1
            && revisions.iter().map(|(_, _, r)| r.bytes()).sum::<usize>() > MAX_CACHE_BYTES
        {
            revisions.pop_back();
        }
    }

    fn remove(&self, bucket: &str, top_hash: &str) {
        if let Ok(mut revisions) = self.revisions.lock() {
            revisions.retain(|(b, h, _)| !(b == bucket && h == top_hash));
        }
    }
}

/// A page of a revision, with what the result shows besides.
#[derive(Debug)]
pub(crate) struct Browsed {
    /// The header's shown fields.
    pub header: Header,
    /// The page.
    pub page: Page,
    /// The summary of the path.
    pub summary: Arc<Summary>,
    /// Whether the revision is in tree order: its entries' offsets can go in a cursor.
    pub sorted: bool,
}

fn manifest_uri(registry: &Registry<'_>, top_hash: &str) -> String {
    format!(
        "s3://{}/{}",
        registry.bucket(),
        super::manifest_key(top_hash)
    )
}

/// Opens the whole manifest of `top_hash`: its body, ETag and length.
async fn open_whole(
    registry: &Registry<'_>,
    top_hash: &str,
) -> Result<(ManifestBody, Option<String>, Option<u64>), QuiltError> {
    let uri = manifest_uri(registry, top_hash);
    let object = registry.object(&super::manifest_key(top_hash));
    let body = match registry.s3().open(&object, MAX_MANIFEST_BYTES).await {
        Ok(body) => body,
        Err(error) if error.is_not_found() => {
            return Err(QuiltError::NotFound(format!(
                "no revision {top_hash} in s3://{}",
                registry.bucket()
            )));
        }
        Err(error) if matches!(error.kind, S3ErrorKind::OverCap { .. }) => {
            return Err(manifest_too_large(&uri));
        }
        Err(error) => return Err(error.into()),
    };
    let (etag, length) = (body.etag.clone(), body.size);
    let body: ManifestBody = Box::pin(tokio::io::BufReader::with_capacity(
        256 * 1024,
        tokio::io::AsyncReadExt::take(body.into_reader(), MAX_MANIFEST_BYTES + 1),
    ));
    Ok((body, etag, length))
}

/// How much of a verified manifest a page reads at once, keeping what it does not use
/// for the pages after it.
const READ_AHEAD_BYTES: u64 = 4 * 1024 * 1024;
/// Read-ahead buffers kept, one per revision at most.
const MAX_READ_AHEAD: usize = 2;

/// Part of a read-ahead buffer.
struct Window {
    bytes: Arc<[u8]>,
    start: usize,
    end: usize,
}

impl AsRef<[u8]> for Window {
    fn as_ref(&self) -> &[u8] {
        self.bytes.get(self.start..self.end).unwrap_or_default()
    }
}

/// Bytes of verified manifests read ahead of a page: the key, ETag and offset they
/// start at, and the bytes. At most [`MAX_READ_AHEAD`] buffers of at most
/// [`READ_AHEAD_BYTES`], the least recently kept dropped first.
struct ReadAhead {
    buffers: Mutex<VecDeque<Buffer>>,
}

/// The bucket, key and ETag of the object, the offset its bytes start at, and the bytes.
type Buffer = (String, String, String, u64, Arc<[u8]>);

static READ_AHEAD: ReadAhead = ReadAhead {
    buffers: Mutex::new(VecDeque::new()),
};

impl ReadAhead {
    /// The bytes from `pos` to at most `end` of the object (`bucket`, `key`) with `etag`,
    /// when a buffer holds `pos`.
    fn window(&self, bucket: &str, key: &str, etag: &str, pos: u64, end: u64) -> Option<Window> {
        let buffers = self.buffers.lock().ok()?;
        let (.., start, bytes) = buffers.iter().find(|(b, k, e, start, bytes)| {
            b == bucket
                && k == key
                && e == etag
                && *start <= pos
                && pos < start + bytes.len() as u64
        })?;
        let from = usize::try_from(pos - start).ok()?;
        let to = usize::try_from(end.saturating_sub(*start))
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        Some(Window {
            bytes: bytes.clone(),
            start: from,
            end: to.max(from),
        })
    }

    fn keep(&self, bucket: &str, key: &str, etag: &str, start: u64, bytes: Arc<[u8]>) {
        if let Ok(mut buffers) = self.buffers.lock() {
            buffers.retain(|(b, k, ..)| !(b == bucket && k == key));
            buffers.push_front((
                bucket.to_owned(),
                key.to_owned(),
                etag.to_owned(),
                start,
                bytes,
            ));
            buffers.truncate(MAX_READ_AHEAD);
        }
    }
}

/// A verified revision's manifest read from a byte offset on, line by line, in ranged
/// reads that must all be of the object that was verified.
struct Ranged<'a> {
    registry: &'a Registry<'a>,
    key: String,
    uri: String,
    etag: &'a str,
    /// Where reading stops.
    end: u64,
    /// Where the next byte comes from.
    pos: u64,
    body: Option<ManifestBody>,
    chunk: u64,
    line: Vec<u8>,
}

impl<'a> Ranged<'a> {
    fn new(
        registry: &'a Registry<'a>,
        top_hash: &str,
        revision: &'a Revision,
        start: u64,
        end: u64,
        chunk: u64,
    ) -> Ranged<'a> {
        Ranged {
            registry,
            key: super::manifest_key(top_hash),
            uri: manifest_uri(registry, top_hash),
            etag: &revision.etag,
            end: end.min(revision.length),
            pos: start,
            body: None,
            chunk: chunk.clamp(MIN_CHUNK, MAX_CHUNK),
            line: Vec::new(),
        }
    }

    async fn open(&mut self) -> Result<ManifestBody, QuiltError> {
        if let Some(window) = READ_AHEAD.window(
            self.registry.bucket(),
            &self.key,
            self.etag,
            self.pos,
            self.end,
        ) {
            return Ok(Box::pin(std::io::Cursor::new(window)));
        }
        // A chunk small enough is read whole a little further, and kept for the pages
        // after this one.
        let ahead = self.chunk <= READ_AHEAD_BYTES;
        let chunk = if ahead { READ_AHEAD_BYTES } else { self.chunk };
        let last = self.pos.saturating_add(chunk).min(self.end) - 1;
        self.chunk = (self.chunk * 2).min(MAX_CHUNK);
        let object = self.registry.object(&self.key);
        let answer = self
            .registry
            .s3()
            .open_range_if_match(&object, self.pos, last + 1 - self.pos, self.etag)
            .await;
        let changed = || {
            QuiltError::Changed(format!(
                "{} changed since this server verified it",
                self.uri
            ))
        };
        let mut body = match answer {
            Ok(body) => body,
            Err(error) if error.kind == S3ErrorKind::PreconditionFailed || error.is_not_found() => {
                return Err(changed());
            }
            Err(error) => return Err(error.into()),
        };
        if body.etag.as_deref().is_some_and(|etag| etag != self.etag) {
            return Err(changed());
        }
        let expected = last + 1 - self.pos;
        if body.size.is_some_and(|length| length != expected) {
            return Err(changed());
        }
        if ahead {
            // At most the range asked for is held, whatever the server sends.
            let cap = usize::try_from(expected).unwrap_or(usize::MAX);
            let mut bytes = Vec::with_capacity(cap);
            while let Some(piece) = body.next_chunk().await? {
                if bytes.len() + piece.len() > cap {
                    return Err(changed());
                }
                bytes.extend_from_slice(&piece);
            }
            if bytes.len() != cap {
                return Err(changed());
            }
            let bytes: Arc<[u8]> = bytes.into();
            READ_AHEAD.keep(
                self.registry.bucket(),
                &self.key,
                self.etag,
                self.pos,
                bytes.clone(),
            );
            return Ok(Box::pin(std::io::Cursor::new(Window {
                bytes,
                start: 0,
                end: cap,
            })));
        }
        Ok(Box::pin(tokio::io::BufReader::with_capacity(
            64 * 1024,
            tokio::io::AsyncReadExt::take(body.into_reader(), expected),
        )))
    }

    /// The next line (without its `\n`) and where it starts; `None` at the end.
    async fn next_line(&mut self) -> Result<Option<(&[u8], u64)>, QuiltError> {
        self.line.clear();
        let start = self.pos;
        loop {
            let (body, fresh) = match &mut self.body {
                Some(body) => (body, false),
                None if self.pos >= self.end => {
                    if self.line.is_empty() {
                        return Ok(None);
                    }
                    break;
                }
                None => {
                    let body = self.open().await?;
                    (self.body.insert(body), true)
                }
            };
            let before = self.line.len();
            let room = MAX_LINE_BYTES.saturating_sub(before);
            let read = read_line_capped(body, &mut self.line, room)
                .await
                .map_err(|e| QuiltError::interrupted(self.uri.clone(), e))?;
            self.pos += (self.line.len() - before) as u64;
            match read {
                LineRead::TooLong => {
                    return Err(QuiltError::Integrity(format!(
                        "{} has a line over the {MAX_LINE_BYTES}-byte limit",
                        self.uri
                    )));
                }
                // A read that gives nothing before the end: it was cut short.
                LineRead::End if fresh => {
                    return Err(QuiltError::interrupted(
                        self.uri.clone(),
                        std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
                    ));
                }
                // This read is used up: the next one goes on from here.
                LineRead::End => self.body = None,
                LineRead::Line if self.line.ends_with(b"\n") => {
                    self.line.pop();
                    break;
                }
                // A read ended inside the line: the next one goes on with it.
                LineRead::Line => self.body = None,
            }
        }
        Ok(Some((&self.line, start)))
    }
}

fn parsed<'l>(uri: &str, text: &'l [u8]) -> Result<Line<'l>, QuiltError> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|text| Line::parse(text, 0).ok())
        .ok_or_else(|| QuiltError::Integrity(format!("{uri} no longer reads as it did")))
}

/// The summary of `path` in a verified revision: its entries are one run in tree
/// order, found with the seek index; its directory lines come first when quilt3 wrote
/// it, else the whole manifest is read.
async fn summarize(
    registry: &Registry<'_>,
    top_hash: &str,
    revision: &Revision,
    path: &str,
    max_directories: usize,
) -> Result<Summary, QuiltError> {
    let layout = &revision.layout;
    let mut collector = SummaryCollector::new(path, max_directories);
    let region = layout
        .directories_end
        .filter(|end| end.saturating_sub(layout.body_start) <= MAX_DIRECTORY_REGION);
    let (entries_from, whole) = match region {
        Some(end) => {
            let mut lines = Ranged::new(
                registry,
                top_hash,
                revision,
                layout.body_start,
                end,
                SUMMARY_CHUNK,
            );
            let uri = lines.uri.clone();
            while let Some((text, _)) = lines.next_line().await? {
                if text.is_empty() {
                    continue;
                }
                let line = parsed(&uri, text)?;
                if line.is_directory() {
                    collector.push_directory(&line);
                }
            }
            (layout.seek(path, None), false)
        }
        None => (layout.body_start, true),
    };
    let mut lines = Ranged::new(
        registry,
        top_hash,
        revision,
        entries_from,
        u64::MAX,
        SUMMARY_CHUNK,
    );
    let uri = lines.uri.clone();
    while let Some((text, _)) = lines.next_line().await? {
        if text.is_empty() {
            continue;
        }
        let line = parsed(&uri, text)?;
        if line.is_directory() {
            if whole {
                collector.push_directory(&line);
            }
            continue;
        }
        if !whole && browse::past(line.logical_key(), path) {
            break;
        }
        collector.push_entry(line.logical_key(), line.size());
    }
    Ok(collector.finish())
}

/// A page of a verified revision in tree order, read from the cursor's offset when it
/// checks out, else from the seek index.
async fn sequential_page(
    registry: &Registry<'_>,
    top_hash: &str,
    revision: &Revision,
    request: &PageRequest,
    hint: Option<u64>,
) -> Result<Page, QuiltError> {
    let start = revision
        .layout
        .seek(&request.path, request.after.as_deref());
    // The hint is where the cursor's last entry starts: it holds if the byte before it
    // ends a line and the line there is that entry.
    let uri = manifest_uri(registry, top_hash);
    // One ranged read for the page, most of the time: its entries at the revision's
    // mean line length, and a quarter more.
    let lines_bytes = revision.length.saturating_sub(revision.layout.body_start);
    let mean = lines_bytes / revision.layout.root.entry_count.max(1);
    let chunk = (request.max_entries as u64 + 2)
        .saturating_mul(mean)
        .saturating_mul(5)
        / 4
        + 16 * 1024;
    let mut lines = None;
    if let (Some(hint), Some(after)) = (hint, &request.after)
        && hint > start
        && hint < revision.length
    {
        let mut reader = Ranged::new(registry, top_hash, revision, hint - 1, u64::MAX, chunk);
        let boundary = matches!(reader.next_line().await?, Some((b"", _)));
        if boundary
            && let Some((text, _)) = reader.next_line().await?
            && let Ok(line) = parsed(&uri, text)
            && !line.is_directory()
            && line.logical_key() == after
        {
            // Read on from there: every entry before it is not after `after`.
            lines = Some(reader);
        }
    }
    let mut collector = PageCollector::new(request);
    let mut lines =
        lines.unwrap_or_else(|| Ranged::new(registry, top_hash, revision, start, u64::MAX, chunk));
    while let Some((text, offset)) = lines.next_line().await? {
        if text.is_empty() {
            continue;
        }
        let line = parsed(&uri, text)?;
        if line.is_directory() {
            continue;
        }
        if browse::past(line.logical_key(), &request.path) {
            break;
        }
        collector.push(&line, offset);
        if collector.saturated() {
            break;
        }
    }
    collector.finish()
}

async fn cached(
    registry: &Registry<'_>,
    top_hash: &str,
    revision: &Revision,
    request: &PageRequest,
    hint: Option<u64>,
) -> Result<Browsed, QuiltError> {
    let summary = match revision.path_summary(&request.path) {
        Some(summary) => summary,
        None => {
            let summary = Arc::new(
                summarize(
                    registry,
                    top_hash,
                    revision,
                    &request.path,
                    request.max_directories,
                )
                .await?,
            );
            revision.remember_path(&request.path, summary.clone());
            summary
        }
    };
    let page = sequential_page(registry, top_hash, revision, request, hint).await?;
    Ok(Browsed {
        header: revision.header.clone(),
        page,
        summary,
        sorted: true,
    })
}

/// The page `request` asks for of revision `top_hash`: from the pages' cache when this
/// server has verified the revision, else by reading it whole and verifying it (then
/// it is remembered). `hint` is the byte offset a cursor carries.
pub(crate) async fn page(
    registry: &Registry<'_>,
    top_hash: &str,
    request: &PageRequest,
    hint: Option<u64>,
) -> Result<Browsed, QuiltError> {
    let bucket = registry.bucket();
    let mut order = Order::Streaming;
    if let Some(revision) = REVISIONS.get(bucket, top_hash) {
        if revision.layout.sorted {
            match cached(registry, top_hash, &revision, request, hint).await {
                Err(QuiltError::Changed(_)) => REVISIONS.remove(bucket, top_hash),
                other => return other,
            }
        } else {
            order = Order::Sorting;
        }
    }
    let uri = manifest_uri(registry, top_hash);
    loop {
        let (body, etag, length) = open_whole(registry, top_hash).await?;
        let stream = ManifestStream::open(body, uri.clone(), top_hash, order, SORT_BUDGET).await?;
        let shown = stream.header().shown_bytes(browse::VALUE_GROWTH);
        if shown > HEADER_BYTES {
            return Err(QuiltError::TooLarge(format!(
                "the revision's message and metadata are {shown} bytes, more than a result \
                 shows ({HEADER_BYTES}); read its manifest {uri} with bucket_object_text"
            )));
        }
        let Some(FullPass {
            header,
            page,
            summary,
            layout,
        }) = browse::full_pass(stream, request, length).await?
        else {
            order = Order::Sorting;
            continue;
        };
        let header = header.shown();
        let summary = Arc::new(summary);
        let sorted = layout.sorted;
        if let (Some(etag), Some(length)) = (etag, length) {
            let revision = Revision {
                etag,
                length,
                header: header.clone(),
                layout,
                paths: Mutex::new(VecDeque::new()),
            };
            revision.remember_path(&request.path, summary.clone());
            REVISIONS.insert(bucket, top_hash, revision);
        }
        return Ok(Browsed {
            header,
            page,
            summary,
            sorted,
        });
    }
}
