//! Start-up over stdio, as a host sees it: the release binary spawned with a token in
//! its environment, `initialize` written at once; the time from spawn to the answer,
//! then the server's peak RSS (`VmHWM`) after `tools/list`. Runs `STARTUP_RUNS` times
//! (default 100) and prints min, median and p90 with the load average.
//!
//! `cargo bench --profile release --bench startup` (shares the release build).

mod support;

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::OrFail as _;

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"startup-bench","version":"0"}}}"#;
const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
const TOOLS_LIST: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;

/// One start: spawn → initialize answered, and the peak RSS after `tools/list`.
fn once(token: &str, log_dir: &std::path::Path) -> (Duration, u64) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_quilt-mcp"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("QUILT_MCP_JWT_SECRET", support::SECRET)
        .env("QUILT_MCP_TOKEN", token)
        .env("QUILT_MCP_LOG_DIR", log_dir)
        .env("QUILT_MCP_KEYRING_SERVICE", "quilt-mcp-startup-bench")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .or_fail("spawning the server");
    let mut stdin = child.stdin.take().or_fail("its stdin");
    let mut stdout = BufReader::new(child.stdout.take().or_fail("its stdout"));
    writeln!(stdin, "{INITIALIZE}").or_fail("writing initialize");
    let mut line = String::new();
    stdout
        .read_line(&mut line)
        .or_fail("reading the initialize answer");
    let answered = started.elapsed();
    if !line.contains("\"serverInfo\"") || !line.contains("Quilt token: OK") {
        support::fail("initialize", format!("unexpected answer: {line:.300}"));
    }
    writeln!(stdin, "{INITIALIZED}\n{TOOLS_LIST}").or_fail("writing tools/list");
    line.clear();
    stdout
        .read_line(&mut line)
        .or_fail("reading the tools/list answer");
    if !line.contains("\"package_create\"") {
        support::fail("tools/list", format!("unexpected answer: {line:.300}"));
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
        .or_fail("reading the server's /proc status");
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .or_fail("VmHWM in /proc status");
    drop(stdin);
    let exit = child.wait().or_fail("waiting for the server");
    if !exit.success() {
        support::fail("ending the session", exit);
    }
    (answered, peak_kib * 1024)
}

fn percentile<T: Copy + Ord>(sorted: &[T], p: usize) -> T {
    sorted[(sorted.len() - 1) * p / 100]
}

fn main() {
    // `cargo bench` passes `--bench`; a filter that does not name this bench skips it.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args
        .iter()
        .any(|a| !a.starts_with('-') && !"startup".contains(a.as_str()))
    {
        return;
    }
    let runs: usize = std::env::var("STARTUP_RUNS")
        .ok()
        .map(|v| v.parse().or_fail("STARTUP_RUNS"))
        .unwrap_or(100);
    let token = support::token(
        "startup-bench",
        serde_json::json!({"level": "read", "buckets": ["b"], "permissions": ["s3:GetObject"]}),
    );
    let log_dir = std::env::temp_dir().join("quilt-mcp-startup-bench-logs");
    // One start to warm the page cache, not counted.
    once(&token, &log_dir);
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let (mut times, mut peaks): (Vec<Duration>, Vec<u64>) =
        (0..runs).map(|_| once(&token, &log_dir)).unzip();
    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    times.sort();
    peaks.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "startup: spawn -> initialize answered, {runs} runs: min {:.2} ms, median {:.2} ms, p90 {:.2} ms",
        ms(times[0]),
        ms(percentile(&times, 50)),
        ms(percentile(&times, 90)),
    );
    println!(
        "startup: peak RSS after tools/list: min {:.1} MiB, median {:.1} MiB, max {:.1} MiB",
        mib(peaks[0]),
        mib(percentile(&peaks, 50)),
        mib(peaks[peaks.len() - 1]),
    );
    println!(
        "startup: load average before {} after {} ({} CPUs)",
        load_before
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        load_after
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
}
