//! Diagnostics (SPEC §8): JSON lines, one event an object, in daily files under the
//! log directory (the last 14 kept); warnings and errors also go to stderr as plain
//! text. Nothing is ever written to stdout.
//!
//! Only events that carry an `event` field reach the JSON files, so every line has
//! `timestamp`, `level` and `event`. Secrets cannot reach a line: the token, the
//! shared secret and AWS keys live in types that have no `Display` and redact
//! themselves in `Debug`.

use std::path::PathBuf;

use tracing::Level;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{Builder, Rotation};
use tracing_subscriber::filter::{EnvFilter, FilterExt, LevelFilter, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

use crate::config::Config;

/// How many daily files are kept.
pub const MAX_LOG_FILES: usize = 14;

/// Lines waiting for the file writer before new ones are dropped (about 5 MB of JSON
/// lines; the writer only appends to a local file).
const BUFFERED_LINES: usize = 8192;

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

/// Keeps the file writer alive; dropping it flushes the last lines.
#[derive(Debug)]
pub struct LogGuard {
    _guard: Option<WorkerGuard>,
    /// The directory that receives the JSON files, when it could be opened.
    pub dir: Option<PathBuf>,
    /// Why no JSON file is written, when none is.
    pub problem: Option<String>,
}

/// Installs the global subscriber: JSON files plus plain stderr for warnings.
pub fn init(config: &Config) -> LogGuard {
    let stderr = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .compact()
        .with_filter(
            // rmcp reports every refused call as a warning of its own; the JSON log
            // already has the refusal, so only its errors reach stderr.
            filter_fn(|meta| !meta.target().starts_with("rmcp") || *meta.level() <= Level::ERROR)
                .and(LevelFilter::WARN),
        );

    let dir = log_dir(config);
    let mut problem = None;
    let file = dir.as_ref().and_then(|dir| {
        let appender = std::fs::create_dir_all(dir)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                Builder::new()
                    .rotation(Rotation::DAILY)
                    .filename_prefix("quilt-mcp")
                    .filename_suffix("log")
                    .max_log_files(MAX_LOG_FILES)
                    .build(dir)
                    .map_err(|e| e.to_string())
            });
        match appender {
            // The writer's queue is allocated and initialised in full at start-up: its
            // default (128,000 lines, 4 MB) took 2.5 ms of every start and 4 MB of RSS.
            Ok(appender) => Some(
                tracing_appender::non_blocking::NonBlockingBuilder::default()
                    .buffered_lines_limit(BUFFERED_LINES)
                    .finish(appender),
            ),
            Err(e) => {
                problem = Some(format!("cannot write logs to {}: {e}", dir.display()));
                None
            }
        }
    });
    if dir.is_none() {
        problem = Some("no log directory: set QUILT_MCP_LOG_DIR".to_owned());
    }
    let (writer, guard) = match file {
        Some((writer, guard)) => (Some(writer), Some(guard)),
        None => (None, None),
    };
    let json = writer.map(|writer| {
        let filter =
            EnvFilter::try_new(&config.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
        fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_target(false)
            .with_writer(writer)
            .with_filter(filter.and(filter_fn(|meta| meta.fields().field("event").is_some())))
    });
    let _ = tracing_subscriber::registry()
        .with(stderr)
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
        dir: if problem.is_none() { dir } else { None },
        problem,
    }
}
