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
//! bytes it points at. A manifest larger than one read-ahead is also kept on local
//! disk as it is verified ([`LocalCopy`]): its later pages read those bytes, each span
//! of them first checked with `HeadObject` and `If-Match`.
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
use super::budget::{Budget, Charge, TEMP_DISK};
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
    /// The verified bytes on local disk, when they were kept.
    local: Option<LocalCopy>,
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

/// The most bytes the local copies of verified manifests hold together; they count
/// against the temporary-disk budget as well, and leave it at least half for sorting.
const LOCAL_COPY_BYTES: u64 = super::budget::TEMP_DISK_BYTES / 2;
/// The local copies' own share of the temporary-disk budget.
static LOCAL_COPIES: Budget = Budget::new(LOCAL_COPY_BYTES);
/// How much of a local copy one read takes.
const LOCAL_READ_BYTES: usize = 512 * 1024;

/// A verified manifest's bytes in an anonymous temporary file (gone when closed),
/// written as the verifying pass read them: a later page reads them from disk instead
/// of a ranged `GetObject`. Each span of [`READ_AHEAD_BYTES`] it serves is first
/// checked with a `HeadObject` with `If-Match` on the verified ETag, made with the
/// caller's credentials: the same check, at the same granularity, as the read-ahead
/// it replaces, without moving the bytes again.
#[derive(Debug)]
pub(crate) struct LocalCopy {
    file: Arc<std::fs::File>,
    /// The span checked last: reads inside it need no request.
    checked: Mutex<Option<(u64, u64)>>,
    _disk: Charge,
    _share: Charge,
}

impl LocalCopy {
    fn checked_until(&self, pos: u64) -> Option<u64> {
        let checked = self.checked.lock().ok()?;
        checked
            .filter(|(start, end)| *start <= pos && pos < *end)
            .map(|(_, end)| end)
    }

    fn check(&self, start: u64, end: u64) {
        if let Ok(mut checked) = self.checked.lock() {
            *checked = Some((start, end));
        }
    }

    /// The bytes from `pos` to at most `stop`, [`LOCAL_READ_BYTES`] at most.
    async fn read(&self, pos: u64, stop: u64) -> std::io::Result<Vec<u8>> {
        let file = self.file.clone();
        let len = usize::try_from(stop.saturating_sub(pos))
            .unwrap_or(usize::MAX)
            .min(LOCAL_READ_BYTES);
        tokio::task::spawn_blocking(move || {
            let mut bytes = vec![0; len];
            let mut filled = 0;
            while filled < len {
                let at = pos + filled as u64;
                let n = read_at(&file, &mut bytes[filled..], at)?;
                if n == 0 {
                    return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
                }
                filled += n;
            }
            Ok(bytes)
        })
        .await
        .map_err(std::io::Error::other)?
    }
}

/// Reads at `offset` without moving a shared file position.
fn read_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_at(file, buf, offset)
    }
    #[cfg(windows)]
    {
        std::os::windows::fs::FileExt::seek_read(file, buf, offset)
    }
    #[cfg(not(any(unix, windows)))]
    {
        let _ = (file, buf, offset);
        Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
    }
}

/// A local copy the verifying pass is writing: what it wrote so far, and the copy's
/// charges against both budgets.
#[derive(Debug)]
struct Copying {
    file: Option<std::fs::File>,
    written: u64,
    disk: Charge,
    share: Charge,
}

/// A reader that writes what it reads into a local copy, when one is kept; a failed
/// write abandons the copy, never the read.
struct Tee<R> {
    inner: R,
    copying: Option<Arc<Mutex<Copying>>>,
}

impl<R: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Tee<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if let (std::task::Poll::Ready(Ok(())), Some(copying)) = (&polled, &self.copying) {
            let read = &buf.filled()[before..];
            if let Ok(mut copying) = copying.lock() {
                // Into the page cache: as quick as the copy into `buf` it follows.
                let ok = copying
                    .file
                    .as_mut()
                    .is_some_and(|file| std::io::Write::write_all(file, read).is_ok());
                if ok {
                    copying.written += read.len() as u64;
                } else {
                    copying.file = None;
                }
            }
        }
        polled
    }
}

/// A local copy for a manifest of `length` bytes, when one is worth keeping (it is
/// larger than one read-ahead) and both budgets have room; `None` otherwise.
fn start_copy(length: Option<u64>) -> Option<Arc<Mutex<Copying>>> {
    let length = length.filter(|n| *n > READ_AHEAD_BYTES)?;
    let mut share = LOCAL_COPIES.charge_for("keeping local copies of verified manifests");
    share.add(length).ok()?;
    let mut disk = TEMP_DISK.charge_for("keeping a local copy of a verified manifest");
    disk.add(length).ok()?;
    let file = tempfile::tempfile().ok()?;
    Some(Arc::new(Mutex::new(Copying {
        file: Some(file),
        written: 0,
        disk,
        share,
    })))
}

/// The local copy, when all `length` bytes were written to it (and the reader that
/// wrote it is gone).
fn finish_copy(copy: Option<Arc<Mutex<Copying>>>, length: u64) -> Option<LocalCopy> {
    let copying = Arc::try_unwrap(copy?).ok()?.into_inner().ok()?;
    if copying.written != length {
        return None;
    }
    Some(LocalCopy {
        file: Arc::new(copying.file?),
        checked: Mutex::new(None),
        _disk: copying.disk,
        _share: copying.share,
    })
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

/// Opens the whole manifest of `top_hash`: its body, ETag and length, and the local
/// copy its reading writes, when one is kept.
async fn open_whole(
    registry: &Registry<'_>,
    top_hash: &str,
) -> Result<
    (
        ManifestBody,
        Option<String>,
        Option<u64>,
        Option<Arc<Mutex<Copying>>>,
    ),
    QuiltError,
> {
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
    let reader = tokio::io::AsyncReadExt::take(body.into_reader(), MAX_MANIFEST_BYTES + 1);
    let copy = if etag.is_some() {
        start_copy(length)
    } else {
        None
    };
    let body: ManifestBody = Box::pin(tokio::io::BufReader::with_capacity(
        256 * 1024,
        Tee {
            inner: reader,
            copying: copy.clone(),
        },
    ));
    Ok((body, etag, length, copy))
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
    /// The verified bytes on local disk, when this server kept them.
    local: Option<&'a LocalCopy>,
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
            local: revision.local.as_ref(),
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
        if let Some(local) = self.local {
            return self.open_local(local).await;
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
        let mut body = answer.map_err(|error| self.unanswered(error))?;
        if body.etag.as_deref().is_some_and(|etag| etag != self.etag) {
            return Err(self.changed());
        }
        let expected = last + 1 - self.pos;
        if body.size.is_some_and(|length| length != expected) {
            return Err(self.changed());
        }
        if ahead {
            // At most the range asked for is held, whatever the server sends.
            let cap = usize::try_from(expected).unwrap_or(usize::MAX);
            let mut bytes = Vec::with_capacity(cap);
            while let Some(piece) = body.next_chunk().await? {
                if bytes.len() + piece.len() > cap {
                    return Err(self.changed());
                }
                bytes.extend_from_slice(&piece);
            }
            if bytes.len() != cap {
                return Err(self.changed());
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

    /// The object is no longer the one verified.
    fn changed(&self) -> QuiltError {
        QuiltError::Changed(format!(
            "{} changed since this server verified it",
            self.uri
        ))
    }

    /// A conditional request's failure: the object changed or is gone, or S3 failed.
    fn unanswered(&self, error: crate::s3::S3Error) -> QuiltError {
        if error.kind == S3ErrorKind::PreconditionFailed || error.is_not_found() {
            self.changed()
        } else {
            error.into()
        }
    }

    /// The bytes from `pos` on, from the local copy: a span not yet checked is checked
    /// first, with `If-Match` on the verified ETag.
    async fn open_local(&mut self, local: &LocalCopy) -> Result<ManifestBody, QuiltError> {
        let until = match local.checked_until(self.pos) {
            Some(until) => until,
            None => {
                let object = self.registry.object(&self.key);
                let head = self
                    .registry
                    .s3()
                    .head_if_match(&object, self.etag)
                    .await
                    .map_err(|error| self.unanswered(error))?;
                let length = head.size.and_then(|n| u64::try_from(n).ok());
                if head.etag.as_deref().is_some_and(|etag| etag != self.etag)
                    || length.is_some_and(|length| length < self.end)
                {
                    return Err(self.changed());
                }
                let until = self.pos.saturating_add(READ_AHEAD_BYTES);
                local.check(self.pos, until);
                until
            }
        };
        let bytes = local
            .read(self.pos, until.min(self.end))
            .await
            .map_err(|e| QuiltError::interrupted(self.uri.clone(), e))?;
        Ok(Box::pin(std::io::Cursor::new(bytes)))
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
        let (body, etag, length, copy) = open_whole(registry, top_hash).await?;
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
            // Pages are read from offsets only in a revision in tree order.
            let local = if sorted {
                finish_copy(copy, length)
            } else {
                None
            };
            let revision = Revision {
                etag,
                length,
                header: header.clone(),
                layout,
                paths: Mutex::new(VecDeque::new()),
                local,
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use tokio::io::AsyncReadExt as _;

    use super::*;

    fn copying(file: std::fs::File) -> Arc<Mutex<Copying>> {
        Arc::new(Mutex::new(Copying {
            file: Some(file),
            written: 0,
            disk: TEMP_DISK.charge_for("test"),
            share: LOCAL_COPIES.charge_for("test"),
        }))
    }

    /// What a verifying pass reads is what the copy holds, read back at any offset.
    #[tokio::test]
    async fn a_copy_holds_what_was_read() {
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let state = copying(tempfile::tempfile().unwrap());
        let mut tee = Tee {
            inner: std::io::Cursor::new(bytes.clone()),
            copying: Some(state.clone()),
        };
        let mut read = Vec::new();
        tee.read_to_end(&mut read).await.unwrap();
        assert_eq!(read, bytes);
        drop(tee);
        let copy = finish_copy(Some(state), bytes.len() as u64).unwrap();
        for (pos, stop) in [(0, 10), (1_000_001, 2_999_999), (2_999_000, 3_000_000)] {
            let got = copy.read(pos, stop).await.unwrap();
            let end = usize::try_from(stop)
                .unwrap()
                .min(usize::try_from(pos).unwrap() + LOCAL_READ_BYTES);
            assert_eq!(got, bytes[usize::try_from(pos).unwrap()..end]);
        }
        // Past the end of the file: an error, never other bytes.
        assert!(copy.read(2_999_990, 3_000_100).await.is_err());
    }

    /// A copy that could not be written, or was not written whole, is not kept; the
    /// read itself goes on.
    #[tokio::test]
    async fn a_failed_or_short_copy_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("read-only");
        std::fs::write(&path, b"").unwrap();
        let state = copying(std::fs::File::open(&path).unwrap());
        let mut tee = Tee {
            inner: std::io::Cursor::new(vec![7u8; 1000]),
            copying: Some(state.clone()),
        };
        let mut read = Vec::new();
        tee.read_to_end(&mut read).await.unwrap();
        assert_eq!(read.len(), 1000);
        drop(tee);
        assert!(finish_copy(Some(state), 1000).is_none());

        let state = copying(tempfile::tempfile().unwrap());
        let mut tee = Tee {
            inner: std::io::Cursor::new(vec![7u8; 1000]),
            copying: Some(state.clone()),
        };
        let mut half = [0u8; 500];
        tee.read_exact(&mut half).await.unwrap();
        drop(tee);
        assert!(finish_copy(Some(state), 1000).is_none());
        // Only a manifest larger than one read-ahead gets a copy.
        assert!(start_copy(Some(READ_AHEAD_BYTES)).is_none());
        assert!(start_copy(None).is_none());
    }
}
