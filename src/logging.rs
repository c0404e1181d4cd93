//! Diagnostics (see `docs/reference.md`, Logs): JSON lines, one event an object, in
//! daily files under the log directory (at most 14 files and 1 GiB kept), or on
//! stderr with `QUILT_MCP_LOG_TARGET=stderr`; warnings and errors also go to stderr
//! as plain text. Nothing is ever written to stdout.
//!
//! Only events that carry an `event` field reach the JSON lines, so every line has
//! `timestamp`, `level` and `event`, and `pid` (plus the stdio `session` id), so the
//! lines of several server processes sharing one daily file can be told apart. A
//! field an event declares but does not record (an absent claim) is `null`. Secrets
//! cannot reach a line: the token, the shared secret and AWS keys live in types that
//! have no `Display` and redact themselves in `Debug`.
//!
//! [`refusals`] reads the refused calls back for `quilt-mcp logs`.

use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_appender::rolling::{Builder, RollingFileAppender, Rotation};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{EnvFilter, FilterExt, LevelFilter, filter_fn};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{self, FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{Config, LogTarget};

/// How many daily files are kept.
pub const MAX_LOG_FILES: usize = 14;

/// How many bytes of log files are kept, all files together.
pub const MAX_LOG_BYTES: u64 = 1 << 30;

/// Bytes of lines waiting for the file writer before new ones are dropped (about
/// 16,000 lines; the writer only appends to a local file).
const SPOOL_BYTES: usize = 8 << 20;

/// Bytes of spool kept allocated between batches; a larger one is given back.
const WRITE_BUFFER: usize = 64 * 1024;

/// How long the file writer lets lines gather after a write: under load, one write
/// for many lines and one wake-up per batch, not per line.
const GATHER: Duration = Duration::from_millis(2);

/// How long the last lines may take to reach the file at exit.
const FLUSH_AT_EXIT: Duration = Duration::from_secs(1);

const FILE_PREFIX: &str = "quilt-mcp";
const FILE_SUFFIX: &str = "log";

/// The default log directory: `<state dir, else local data dir>/quilt-mcp/logs`.
pub fn default_log_dir() -> Option<PathBuf> {
    let base = directories::BaseDirs::new()?;
    let root = base.state_dir().unwrap_or_else(|| base.data_local_dir());
    Some(root.join("quilt-mcp").join("logs"))
}

/// The log directory in force: `QUILT_MCP_LOG_DIR`, else the default.
pub fn log_dir(config: &Config) -> Option<PathBuf> {
    config.log_dir.clone().or_else(default_log_dir)
}

/// A fresh id for one stdio session, carried by every line it logs.
pub fn new_session_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_owned()
}

/// Why no JSON file is written.
#[derive(Debug, thiserror::Error)]
pub enum LogUnavailable {
    /// No directory: neither `QUILT_MCP_LOG_DIR` nor a home directory.
    #[error("no log directory: set QUILT_MCP_LOG_DIR")]
    NoDirectory,
    /// The directory or its file could not be opened.
    #[error("cannot write logs to {}: {source}", .dir.display())]
    Unwritable {
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Keeps the file writer alive; dropping it flushes the last lines.
#[derive(Debug)]
pub struct LogGuard {
    _guard: Option<SpoolGuard>,
    /// The directory that receives the JSON files, when it could be opened.
    pub dir: Option<PathBuf>,
    /// Why no JSON file is written, when none is (and the target is files).
    pub problem: Option<LogUnavailable>,
}

/// Installs the global subscriber: JSON lines (files, or stderr) plus plain stderr
/// for warnings. `session` is the stdio session's id (none over HTTP, where lines
/// carry their `request_id`).
pub fn init(config: &Config, session: Option<&str>) -> LogGuard {
    let format = JsonLines {
        pid: std::process::id(),
        session: session.map(Arc::from),
    };
    let filter = || {
        EnvFilter::try_new(&config.log_filter)
            .unwrap_or_else(|_| EnvFilter::new(crate::config::DEFAULT_LOG_FILTER))
            .and(filter_fn(|meta| meta.fields().field("event").is_some()))
    };
    let to_stderr = config.log_target == LogTarget::Stderr;
    let plain = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .compact()
        .with_filter(
            // rmcp reports every refused call as a warning of its own; the JSON log
            // already has the refusal, so only its errors reach stderr. With the JSON
            // lines on stderr, events are not repeated in plain text.
            filter_fn(move |meta| {
                (!meta.target().starts_with("rmcp") || *meta.level() <= Level::ERROR)
                    && !(to_stderr && meta.fields().field("event").is_some())
            })
            .and(LevelFilter::WARN),
        );

    if to_stderr {
        let json = fmt::layer()
            .event_format(format)
            .with_writer(std::io::stderr)
            .with_filter(filter());
        let _ = tracing_subscriber::registry()
            .with(plain)
            .with(json)
            .try_init();
        return LogGuard {
            _guard: None,
            dir: None,
            problem: None,
        };
    }

    let opened = match log_dir(config) {
        None => Err(LogUnavailable::NoDirectory),
        Some(dir) => open_dir(&dir).map(|writer| (dir, writer)),
    };
    let (dir, writer, guard, problem) = match opened {
        Ok((dir, (writer, guard))) => (Some(dir), Some(writer), Some(guard), None),
        Err(problem) => (None, None, None, Some(problem)),
    };
    let json = writer.map(|writer| {
        fmt::layer()
            .event_format(format)
            .with_writer(writer)
            .with_filter(filter())
    });
    let _ = tracing_subscriber::registry()
        .with(plain)
        .with(json)
        .try_init();
    if let Some(problem) = &problem {
        tracing::warn!(
            event = "log_unavailable",
            "{problem}; diagnostics go to stderr only"
        );
    }
    LogGuard {
        _guard: guard,
        dir,
        problem,
    }
}

/// Opens the daily files of `dir`, after pruning it to the caps.
fn open_dir(dir: &Path) -> Result<(Capped, SpoolGuard), LogUnavailable> {
    let unwritable = |source| LogUnavailable::Unwritable {
        dir: dir.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(unwritable)?;
    let used = prune(dir, MAX_LOG_FILES, MAX_LOG_BYTES);
    let appender = Builder::new()
        .rotation(Rotation::DAILY)
        .filename_prefix(FILE_PREFIX)
        .filename_suffix(FILE_SUFFIX)
        .max_log_files(MAX_LOG_FILES)
        .build(dir)
        .map_err(|e| unwritable(std::io::Error::other(e)))?;
    let (spool, guard) = Spool::start(appender, SPOOL_BYTES).map_err(unwritable)?;
    let budget = Budget {
        dir: dir.to_owned(),
        cap: MAX_LOG_BYTES,
        used: AtomicU64::new(used),
        checked_at: AtomicI64::new(0),
        pruning: Mutex::new(()),
        warned: AtomicBool::new(false),
    };
    Ok((
        Capped {
            spool,
            budget: Arc::new(budget),
        },
        guard,
    ))
}

/// The lines on their way to the file. A thread that logs appends its line to one
/// shared buffer (a copy under a short lock; nothing allocated once the buffer has
/// grown), and one writer thread takes what has gathered and appends it to the file,
/// then lets the next lines gather for [`GATHER`]. The writer is woken only when it
/// sleeps on an empty buffer, so a line logged while it is busy costs no wake-up, and
/// a line logged while it is idle reaches the file at once. Past [`SPOOL_BYTES`]
/// waiting (a stalled disk), new lines are dropped rather than held.
struct Spool {
    state: Mutex<Spooled>,
    ready: Condvar,
    /// Bytes waiting at most ([`SPOOL_BYTES`]).
    cap: usize,
}

#[derive(Default)]
struct Spooled {
    lines: Vec<u8>,
    /// The writer sleeps until a line comes.
    idle: bool,
    /// No more lines: the writer writes what is left and ends.
    closed: bool,
}

impl Spool {
    /// The spool and its writer thread, appending to `file`.
    fn start(file: RollingFileAppender, cap: usize) -> std::io::Result<(Arc<Spool>, SpoolGuard)> {
        let spool = Arc::new(Spool {
            state: Mutex::new(Spooled::default()),
            ready: Condvar::new(),
            cap,
        });
        let (done, finished) = std::sync::mpsc::channel();
        let writer = Arc::clone(&spool);
        std::thread::Builder::new()
            .name("quilt-mcp-log".to_owned())
            .spawn(move || {
                writer.write_out(file);
                let _ = done.send(());
            })?;
        Ok((Arc::clone(&spool), SpoolGuard { spool, finished }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Spooled> {
        // A line is bytes appended whole: a panic elsewhere leaves nothing half-done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues one line; false when it was dropped (the spool is full).
    fn push(&self, line: &[u8]) -> bool {
        let mut state = self.lock();
        if state.closed || state.lines.len().saturating_add(line.len()) > self.cap {
            return false;
        }
        state.lines.extend_from_slice(line);
        let wake = std::mem::take(&mut state.idle);
        drop(state);
        if wake {
            self.ready.notify_one();
        }
        true
    }

    /// The writer thread: batch after batch until closed and drained.
    fn write_out(&self, mut file: RollingFileAppender) {
        let mut batch = Vec::with_capacity(WRITE_BUFFER);
        loop {
            {
                let mut state = self.lock();
                while state.lines.is_empty() && !state.closed {
                    state.idle = true;
                    state = self
                        .ready
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                if state.lines.is_empty() {
                    return;
                }
                std::mem::swap(&mut state.lines, &mut batch);
            }
            // A failed write loses these lines, never the process; the next batch
            // tries again.
            let _ = file.write_all(&batch).and_then(|()| file.flush());
            batch.clear();
            if batch.capacity() > WRITE_BUFFER {
                batch = Vec::with_capacity(WRITE_BUFFER);
            }
            // At exit, what is left is written at once.
            if !self.lock().closed {
                std::thread::sleep(GATHER);
            }
        }
    }

    fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
    }
}

/// Ends the spool's writer when dropped, after it has written the last lines (for at
/// most [`FLUSH_AT_EXIT`]).
struct SpoolGuard {
    spool: Arc<Spool>,
    finished: std::sync::mpsc::Receiver<()>,
}

impl std::fmt::Debug for SpoolGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpoolGuard").finish_non_exhaustive()
    }
}

impl Drop for SpoolGuard {
    fn drop(&mut self) {
        self.spool.close();
        let _ = self.finished.recv_timeout(FLUSH_AT_EXIT);
    }
}

/// The log files of `dir` (`quilt-mcp.<date>.log`), newest first, with their sizes.
fn log_files(dir: &Path) -> Vec<(PathBuf, u64)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<(PathBuf, u64)> = entries
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with(&format!("{FILE_PREFIX}."))
                && name.ends_with(&format!(".{FILE_SUFFIX}"))
        })
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            meta.is_file().then(|| (e.path(), meta.len()))
        })
        .collect();
    // The date in the name sorts as the file's age.
    files.sort_by(|a, b| b.0.cmp(&a.0));
    files
}

/// Deletes the oldest log files of `dir` beyond `max_files`, or beyond `max_bytes`
/// all together; the newest is always kept (it is the one being written). Returns
/// the bytes kept.
fn prune(dir: &Path, max_files: usize, max_bytes: u64) -> u64 {
    let mut kept = 0u64;
    // Once a file does not fit, it and every older file go.
    let mut full = false;
    for (index, (path, size)) in log_files(dir).into_iter().enumerate() {
        let keep =
            index == 0 || (!full && index < max_files && kept.saturating_add(size) <= max_bytes);
        full |= !keep;
        // A file that cannot be removed still counts.
        if keep || std::fs::remove_file(&path).is_err() {
            kept = kept.saturating_add(size);
        }
    }
    kept
}

/// The byte budget of the log directory: counts what is written, and when the count
/// passes the cap, prunes the oldest files; while even that leaves no room (the
/// newest file alone is at the cap), lines are dropped, said once on stderr.
#[derive(Debug)]
struct Budget {
    dir: PathBuf,
    cap: u64,
    used: AtomicU64,
    /// When the directory was last measured (Unix seconds): at most once a second.
    checked_at: AtomicI64,
    pruning: Mutex<()>,
    warned: AtomicBool,
}

impl Budget {
    fn admit(&self, len: usize) -> bool {
        let len = u64::try_from(len).unwrap_or(u64::MAX);
        let used = self
            .used
            .fetch_add(len, Ordering::Relaxed)
            .saturating_add(len);
        if used <= self.cap {
            return true;
        }
        let now = crate::time::now_unix();
        if self.checked_at.swap(now, Ordering::Relaxed) == now {
            return false;
        }
        let Ok(_only_one) = self.pruning.try_lock() else {
            return false;
        };
        let kept = prune(&self.dir, MAX_LOG_FILES, self.cap);
        self.used.store(kept.saturating_add(len), Ordering::Relaxed);
        let room = kept.saturating_add(len) <= self.cap;
        if !room && !self.warned.swap(true, Ordering::Relaxed) {
            // Not through tracing: this is the writer of tracing's lines.
            let _ = writeln!(
                std::io::stderr(),
                "quilt-mcp: the log directory {} holds {kept} bytes, its cap: log lines are dropped until a new day's file starts",
                self.dir.display()
            );
        }
        room
    }
}

/// The file writer behind the byte budget.
#[derive(Clone)]
struct Capped {
    spool: Arc<Spool>,
    budget: Arc<Budget>,
}

impl<'a> MakeWriter<'a> for Capped {
    type Writer = CappedWriter<'a>;

    fn make_writer(&'a self) -> CappedWriter<'a> {
        CappedWriter(self)
    }
}

/// One line's writer.
struct CappedWriter<'a>(&'a Capped);

impl std::io::Write for CappedWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.budget.admit(buf.len()) {
            // A full spool drops the line, as a full disk would.
            self.0.spool.push(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The JSON line of one event: `timestamp`, `level`, `pid`, `session` (stdio), then
/// every field the event declares, in declaration order, `null` when it was not
/// recorded. Written straight into the line (no JSON tree, no key allocated): it is
/// the cost of every HTTP call's log lines.
struct JsonLines {
    pid: u32,
    session: Option<Arc<str>>,
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        let mut fields = Fields {
            values: String::with_capacity(256),
            recorded: Vec::with_capacity(meta.fields().len()),
        };
        event.record(&mut fields);
        let mut line = String::with_capacity(256 + fields.values.len());
        line.push_str("{\"timestamp\":\"");
        line.push_str(&chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
        line.push_str("\",\"level\":");
        json_string(&mut line, meta.level().as_str());
        use std::fmt::Write as _;
        let _ = write!(line, ",\"pid\":{}", self.pid);
        if let Some(session) = &self.session {
            line.push_str(",\"session\":");
            json_string(&mut line, session);
        }
        for field in meta.fields() {
            let name = field.name();
            // A name the line already has (none today) keeps its first place.
            if matches!(name, "timestamp" | "level" | "pid")
                || (name == "session" && self.session.is_some())
            {
                continue;
            }
            line.push(',');
            json_string(&mut line, name);
            line.push(':');
            match fields.recorded.iter().rev().find(|(n, _)| *n == name) {
                Some((_, range)) => line.push_str(&fields.values[range.clone()]),
                None => line.push_str("null"),
            }
        }
        line.push_str("}\n");
        writer.write_str(&line)
    }
}

/// `text` as a JSON string, escaped as `serde_json` escapes it.
fn json_string(out: &mut String, text: &str) {
    out.push('"');
    escaped(out, text);
    out.push('"');
}

/// Writes what it is given into a JSON string's contents.
struct Escaping<'a>(&'a mut String);

impl std::fmt::Write for Escaping<'_> {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        escaped(self.0, text);
        Ok(())
    }
}

/// `text` escaped as the contents of a JSON string.
fn escaped(out: &mut String, text: &str) {
    let mut start = 0;
    for (i, b) in text.bytes().enumerate() {
        let escape: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&text[start..i]);
        if escape.is_empty() {
            use std::fmt::Write as _;
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&text[start..]);
}

/// An event's recorded fields, each as JSON text in one buffer.
#[derive(Default)]
struct Fields {
    values: String,
    recorded: Vec<(&'static str, std::ops::Range<usize>)>,
}

impl Fields {
    fn record(&mut self, field: &Field, write: impl FnOnce(&mut String)) {
        let start = self.values.len();
        write(&mut self.values);
        self.recorded.push((field.name(), start..self.values.len()));
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record(field, |out| json_string(out, value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.record(field, |out| {
            out.push_str(if value { "true" } else { "false" })
        });
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        use std::fmt::Write as _;
        self.record(field, |out| {
            let _ = write!(out, "{value}");
        });
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        use std::fmt::Write as _;
        self.record(field, |out| {
            let _ = write!(out, "{value}");
        });
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.record(field, |out| out.push_str(&Value::from(value).to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        // Escaped as it is formatted, not formatted into a string of its own first.
        self.record(field, |out| {
            use std::fmt::Write as _;
            out.push('"');
            let _ = write!(Escaping(out), "{value:?}");
            out.push('"');
        });
    }
}

/// A refused call, read back from the log: when, which process, what and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// When (RFC 3339).
    pub timestamp: String,
    /// The server process.
    pub pid: Option<u64>,
    /// The stdio session, or the HTTP request.
    pub session: Option<String>,
    /// The tool called (none for an HTTP request refused before MCP).
    pub tool: Option<String>,
    /// `unauthorized` (-32001) or `denied` (-32003).
    pub outcome: String,
    /// The reason code.
    pub reason: Option<String>,
    /// What happened, in words, when the log says.
    pub detail: Option<String>,
    /// What to do about it, when the log says.
    pub hint: Option<String>,
}

/// Longest log line read back; longer ones are skipped.
const MAX_LINE: usize = 1 << 20;

/// The last `last` refused calls logged in `dir`, oldest first: tool calls refused
/// with -32001 or -32003, and HTTP requests refused before MCP, each with the detail
/// of the `token_checked` or `tool_denied` line that explains it.
pub fn refusals(dir: &Path, last: usize) -> std::io::Result<Vec<Refusal>> {
    let mut found: Vec<Refusal> = Vec::new();
    // Newest file first, until enough are found.
    for (path, _) in log_files(dir) {
        let mut in_file = read_refusals(&path)?;
        in_file.append(&mut found);
        found = in_file;
        if found.len() >= last {
            break;
        }
    }
    let skip = found.len().saturating_sub(last);
    Ok(found.split_off(skip))
}

fn read_refusals(path: &Path) -> std::io::Result<Vec<Refusal>> {
    let text = |line: &Map<String, Value>, key: &str| -> Option<String> {
        line.get(key).and_then(Value::as_str).map(str::to_owned)
    };
    let mut reader = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut out = Vec::new();
    // The last explanation per process: (pid, session) → (status, detail, hint).
    let mut checked: std::collections::HashMap<(Option<u64>, Option<String>), Map<String, Value>> =
        std::collections::HashMap::new();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n =
            std::io::Read::take(&mut reader, MAX_LINE as u64 + 1).read_until(b'\n', &mut buf)?;
        if n == 0 {
            break;
        }
        if buf.len() > MAX_LINE {
            // Skip the rest of an over-long line.
            let mut rest = Vec::new();
            reader.read_until(b'\n', &mut rest)?;
            continue;
        }
        let Ok(Value::Object(line)) = serde_json::from_slice::<Value>(&buf) else {
            continue;
        };
        let pid = line.get("pid").and_then(Value::as_u64);
        let session = text(&line, "session").or_else(|| text(&line, "request_id"));
        let key = (pid, session.clone());
        match line.get("event").and_then(Value::as_str) {
            Some("token_checked") if line.get("status").and_then(Value::as_str) != Some("ok") => {
                if line.get("request_id").is_some_and(|r| !r.is_null())
                    && line.get("token_source").and_then(Value::as_str) == Some("http")
                {
                    // Over HTTP a refused token never reaches a tool: the request is
                    // the refusal.
                    out.push(Refusal {
                        timestamp: text(&line, "timestamp").unwrap_or_default(),
                        pid,
                        session: session.clone(),
                        tool: None,
                        outcome: "unauthorized".to_owned(),
                        reason: text(&line, "status"),
                        detail: text(&line, "detail"),
                        hint: text(&line, "hint"),
                    });
                }
                checked.insert(key, line);
            }
            Some("tool_denied") => {
                checked.insert(key, line);
            }
            Some("tool_call") => {
                let outcome = text(&line, "outcome").unwrap_or_default();
                if outcome != "unauthorized" && outcome != "denied" {
                    continue;
                }
                let reason = text(&line, "reason");
                let why = checked.get(&key).filter(|why| {
                    let code = text(why, "status").or_else(|| text(why, "reason"));
                    code == reason
                });
                let detail = why.and_then(|why| text(why, "detail").or_else(|| denial_detail(why)));
                out.push(Refusal {
                    timestamp: text(&line, "timestamp").unwrap_or_default(),
                    pid,
                    session,
                    tool: text(&line, "tool"),
                    outcome,
                    reason,
                    detail,
                    hint: why.and_then(|why| text(why, "hint")),
                });
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The words of a `tool_denied` line: the bucket or permissions refused.
fn denial_detail(line: &Map<String, Value>) -> Option<String> {
    let bucket = line
        .get("bucket")
        .and_then(Value::as_str)
        .filter(|b| !b.is_empty());
    let missing = line
        .get("missing_permissions")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty());
    match (bucket, missing) {
        (_, Some(missing)) => Some(format!("missing {missing}")),
        (Some(bucket), None) => Some(format!("bucket {bucket}")),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        for text in [
            "",
            "plain",
            "quote \" and \\ backslash",
            "lines\n\r\ttab",
            "\u{0}\u{1}\u{8}\u{c}\u{1f}\u{7f}",
            "é ü — \u{2028} 😀",
        ] {
            let mut out = String::new();
            json_string(&mut out, text);
            assert_eq!(out, serde_json::to_string(text).unwrap(), "{text:?}");
            // Written in pieces, as a value's `Debug` writes: the same string.
            let mut pieces = String::from("\"");
            for piece in text.split_inclusive(['"', '\n', ' ']) {
                std::fmt::Write::write_str(&mut Escaping(&mut pieces), piece).unwrap();
            }
            pieces.push('"');
            assert_eq!(pieces, out, "{text:?}");
        }
    }

    /// A shared buffer that the JSON layer writes into.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    #[test]
    fn a_line_has_every_declared_field_in_order_and_null_when_absent() {
        let captured = Captured::default();
        let layer = fmt::layer()
            .event_format(JsonLines {
                pid: 42,
                session: Some(Arc::from("s\"1")),
            })
            .with_writer(captured.clone());
        let subscriber = tracing_subscriber::registry().with(layer);
        // Not a literal: the reference's table of events lists the literal ones.
        let name = "unit_test";
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(
                event = name,
                text = "a \"quoted\"\nline",
                flag = true,
                negative = -7i64,
                count = 3u64,
                ratio = 0.5f64,
                nan = f64::NAN,
                shown = %"display",
                debugged = ?vec![1, 2],
                absent = None::<&str>,
                "said {}", "this"
            );
        });
        let bytes = captured.0.lock().unwrap().clone();
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            text.ends_with("}\n") && text.matches('\n').count() == 1,
            "{text}"
        );
        let line: Map<String, Value> = serde_json::from_str(&text).unwrap();
        let keys: Vec<&str> = line.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "timestamp",
                "level",
                "pid",
                "session",
                "message",
                "event",
                "text",
                "flag",
                "negative",
                "count",
                "ratio",
                "nan",
                "shown",
                "debugged",
                "absent"
            ]
        );
        let timestamp = line["timestamp"].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(timestamp).is_ok(),
            "{timestamp}"
        );
        assert_eq!(timestamp.len(), "2026-01-01T00:00:00.000000Z".len());
        let rest: Map<String, Value> = line.into_iter().filter(|(k, _)| k != "timestamp").collect();
        assert_eq!(
            Value::Object(rest),
            serde_json::json!({
                "level": "INFO", "pid": 42, "session": "s\"1", "message": "said this",
                "event": "unit_test", "text": "a \"quoted\"\nline", "flag": true,
                "negative": -7, "count": 3, "ratio": 0.5, "nan": null, "shown": "display",
                "debugged": "[1, 2]", "absent": null
            })
        );
    }

    fn file(dir: &Path, date: &str, len: u64) -> PathBuf {
        let path = dir.join(format!("quilt-mcp.{date}.log"));
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(len).unwrap();
        path
    }

    /// Lines from many threads reach the file whole and in each thread's order, the
    /// last ones when the guard is dropped; a full spool drops lines, and takes them
    /// again once written out.
    #[test]
    fn the_spool_writes_every_line_whole_and_drops_past_its_cap() {
        let dir = tempfile::tempdir().unwrap();
        let file = Builder::new()
            .rotation(Rotation::NEVER)
            .filename_prefix("spool")
            .build(dir.path())
            .unwrap();
        let (spool, guard) = Spool::start(file, 1 << 20).unwrap();
        std::thread::scope(|scope| {
            for thread in 0..4 {
                let spool = &spool;
                scope.spawn(move || {
                    for n in 0..2_000 {
                        // Pushed faster than written: some may be dropped at the cap.
                        let _ = spool.push(format!("{{\"t\":{thread},\"n\":{n}}}\n").as_bytes());
                    }
                });
            }
        });
        assert!(spool.push(b"{\"last\":true}\n"));
        drop(guard);
        assert!(
            !spool.push(b"{\"after\":true}\n"),
            "a closed spool takes no line"
        );
        let text = std::fs::read_to_string(dir.path().join("spool")).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.last().unwrap(), &serde_json::json!({"last": true}));
        let mut seen = [0u64; 4];
        for line in &lines[..lines.len() - 1] {
            let (t, n) = (
                line["t"].as_u64().unwrap() as usize,
                line["n"].as_u64().unwrap(),
            );
            assert!(n >= seen[t], "thread {t}: {n} after {}", seen[t]);
            seen[t] = n + 1;
        }
        assert_eq!(
            lines.len(),
            8_001,
            "every line, nothing dropped under 1 MiB"
        );

        // A spool of 64 bytes takes lines up to its cap, then drops.
        let spool = Spool {
            state: Mutex::new(Spooled::default()),
            ready: Condvar::new(),
            cap: 64,
        };
        let line = [b'x'; 40];
        assert!(spool.push(&line));
        assert!(!spool.push(&line), "past the cap");
    }

    #[test]
    fn pruning_keeps_the_newest_files_within_both_caps() {
        let dir = tempfile::tempdir().unwrap();
        for day in 1..=20 {
            file(dir.path(), &format!("2026-01-{day:02}"), 10);
        }
        std::fs::write(dir.path().join("other.txt"), "not a log").unwrap();
        assert_eq!(prune(dir.path(), 14, 1000), 140);
        let names: Vec<String> = log_files(dir.path())
            .iter()
            .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 14);
        assert_eq!(names[0], "quilt-mcp.2026-01-20.log");
        assert_eq!(names[13], "quilt-mcp.2026-01-07.log");
        assert!(dir.path().join("other.txt").exists());

        // The byte cap, oldest first: a big file goes with everything older, even
        // when a smaller older one would fit; the newest stays even when it alone
        // passes the cap.
        file(dir.path(), "2026-01-19", 40);
        assert_eq!(prune(dir.path(), 14, 45), 10);
        assert_eq!(log_files(dir.path()).len(), 1);
        file(dir.path(), "2026-01-18", 10);
        file(dir.path(), "2026-01-19", 10);
        assert_eq!(prune(dir.path(), 14, 35), 30);
        assert_eq!(log_files(dir.path()).len(), 3);
        file(dir.path(), "2026-02-01", 100);
        assert_eq!(prune(dir.path(), 14, 35), 100);
        assert_eq!(log_files(dir.path()).len(), 1);
    }

    #[test]
    fn refusals_are_read_back_with_their_reasons() {
        let dir = tempfile::tempdir().unwrap();
        let lines = [
            r#"{"timestamp":"t1","level":"INFO","pid":7,"session":"s1","event":"token_checked","status":"expired","detail":"the token expired at X","hint":"run `quilt-mcp login`","token_source":"keyring","request_id":null}"#,
            r#"{"timestamp":"t2","level":"INFO","pid":7,"session":"s1","event":"tool_call","tool":"auth_status","outcome":"unauthorized","reason":"expired"}"#,
            r#"{"timestamp":"t3","level":"INFO","pid":7,"session":"s1","event":"tool_call","tool":"bucket_list","outcome":"ok","reason":null}"#,
            "not json",
            r#"{"timestamp":"t4","level":"INFO","pid":8,"session":"s2","event":"tool_denied","tool":"bucket_objects_list","reason":"bucket_not_allowed","bucket":"secret","missing_permissions":""}"#,
            r#"{"timestamp":"t5","level":"INFO","pid":8,"session":"s2","event":"tool_call","tool":"bucket_objects_list","outcome":"denied","reason":"bucket_not_allowed"}"#,
        ];
        std::fs::write(
            dir.path().join("quilt-mcp.2026-01-01.log"),
            lines.join("\n") + "\n",
        )
        .unwrap();
        let found = refusals(dir.path(), 10).unwrap();
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].tool.as_deref(), Some("auth_status"));
        assert_eq!(found[0].detail.as_deref(), Some("the token expired at X"));
        assert_eq!(found[0].hint.as_deref(), Some("run `quilt-mcp login`"));
        assert_eq!(found[1].detail.as_deref(), Some("bucket secret"));
        assert_eq!(refusals(dir.path(), 1).unwrap(), found[1..]);
    }
}
