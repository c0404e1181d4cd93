//! What one stdio host can make the server hold, through the real binary, measured as
//! the server's peak RSS (`VmHWM` of `/proc/PID/status`): a host that stops reading
//! stdout stalls the server's reading instead of growing its memory, and a long line
//! costs a small multiple of itself.
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::common::*;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

const MIB: u64 = 1024 * 1024;
/// The longest line the server takes, its newline included.
const MAX_LINE: usize = 16 * 1024 * 1024;

/// The binary with an environment token, its stdin and stdout in the test's hands.
struct Raw {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
    _log_dir: tempfile::TempDir,
}

impl Raw {
    /// Spawns the server and completes `initialize`.
    async fn start() -> Raw {
        let log_dir = tempfile::tempdir().unwrap();
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_quilt-mcp"));
        cmd.env_clear();
        for (k, v) in base_env(log_dir.path()) {
            cmd.env(k, v);
        }
        cmd.env("QUILT_MCP_JWT_SECRET", SECRET)
            .env("QUILT_MCP_TOKEN", hs256(&claims()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let mut child = cmd.spawn().unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut raw = Raw {
            child,
            stdin: Some(stdin),
            stdout,
            _log_dir: log_dir,
        };
        let init = json!({"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "bounds", "version": "0"}}});
        raw.send(init.to_string().as_bytes()).await;
        assert_eq!(raw.answer().await["id"], "init");
        raw.send(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
            .await;
        raw
    }

    async fn send(&mut self, line: &[u8]) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(line).await.unwrap();
        stdin.write_all(b"\n").await.unwrap();
    }

    async fn answer(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(60), self.stdout.next_line())
            .await
            .expect("an answer within 60 s")
            .unwrap()
            .expect("stdout open");
        serde_json::from_str(&line).unwrap()
    }

    /// The server's peak resident set so far, in bytes.
    fn peak_rss(&self) -> u64 {
        let pid = self.child.id().unwrap();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap();
        kib * 1024
    }

    /// Closes stdin; the server ends cleanly.
    async fn close(mut self) {
        drop(self.stdin);
        let status = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("exits when stdin closes")
            .unwrap();
        assert!(status.success(), "{status}");
    }
}

/// 200,000 pings from a host that does not read stdout: the server stops reading
/// stdin once its budget of requests in flight is spent, and its memory stays put;
/// when the host reads again, every ping is answered. (Before, the answers queued
/// without bound: 1,151 MB.)
#[tokio::test]
async fn a_host_that_stops_reading_stalls_the_server_not_its_memory() {
    const PINGS: usize = 200_000;
    let mut raw = Raw::start().await;
    let at_rest = raw.peak_rss();
    let written = Arc::new(AtomicUsize::new(0));
    let count = written.clone();
    let mut stdin = raw.stdin.take().unwrap();
    let writer = tokio::spawn(async move {
        for id in 0..PINGS {
            let line = format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"ping\"}}\n");
            stdin.write_all(line.as_bytes()).await.unwrap();
            count.store(id + 1, Ordering::SeqCst);
        }
        stdin
    });
    // Wait until the host can write no more (the server stopped reading) or is done.
    let mut last = usize::MAX;
    let mut still = 0;
    while still < 8 && written.load(Ordering::SeqCst) < PINGS {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = written.load(Ordering::SeqCst);
        still = if now == last { still + 1 } else { 0 };
        last = now;
    }
    let stalled_at = written.load(Ordering::SeqCst);
    let stalled_rss = raw.peak_rss();
    eprintln!(
        "200k pings, host not reading: {stalled_at} lines written; peak RSS at rest {} MiB, then {} MiB",
        at_rest / MIB,
        stalled_rss / MIB
    );
    assert!(
        stalled_at < PINGS / 2,
        "the server read {stalled_at} of {PINGS} pings from a host that does not read its answers"
    );
    // Now read: every ping gets its answer, in bounded memory all along.
    let mut answered = vec![false; PINGS];
    for _ in 0..PINGS {
        let answer = raw.answer().await;
        let id = answer["id"].as_u64().unwrap() as usize;
        assert!(answer["result"].is_object(), "{answer}");
        assert!(!answered[id], "{id} answered twice");
        answered[id] = true;
    }
    raw.stdin = Some(writer.await.unwrap());
    let peak = raw.peak_rss();
    eprintln!("200k pings answered once read: peak RSS {} MiB", peak / MIB);
    assert!(
        peak < at_rest + 32 * MIB,
        "peak RSS {} MiB (at rest {} MiB)",
        peak / MIB,
        at_rest / MIB
    );
    raw.close().await;
}

/// `[[],[],…]`: the densest JSON there is, `n` empty arrays.
fn empties(n: usize) -> String {
    let mut text = String::with_capacity(n * 3 + 2);
    text.push('[');
    for i in 0..n {
        if i > 0 {
            text.push(',');
        }
        text.push_str("[]");
    }
    text.push(']');
    text
}

fn ping_with(id: &str, meta: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":"{id}","method":"ping","params":{{"_meta":{{"x":{meta}}}}}}}"#
    )
}

/// Lines up to 16 MiB, three of each of the costliest kinds, written at once without
/// waiting for the answers: each is answered, and the server's peak RSS stays a small
/// multiple of one line above where it was at rest. (Before, three 16 MiB lines of
/// `[]` alone took 2,526 MB.)
#[tokio::test]
async fn long_lines_cost_a_small_multiple_of_themselves() {
    let mut raw = Raw::start().await;
    let at_rest = raw.peak_rss();
    let fill = MAX_LINE / 3 - 64;
    let array = empties(fill);
    let mut lines: Vec<(String, Value, Option<i64>)> = Vec::new();
    for _ in 0..3 {
        lines.push((array.clone(), Value::Null, Some(-32600)));
    }
    for i in 0..3 {
        let id = format!("dense-{i}");
        lines.push((ping_with(&id, &empties(fill - 40)), json!(id), Some(-32600)));
    }
    for i in 0..3 {
        // As many values as a message may hold: decoded and answered.
        let id = format!("most-{i}");
        lines.push((ping_with(&id, &empties(300_000 - 10)), json!(id), None));
    }
    for i in 0..3 {
        // A 16 MiB string: decoded and answered.
        let id = format!("string-{i}");
        let pad = "s".repeat(MAX_LINE - 200);
        lines.push((ping_with(&id, &format!("\"{pad}\"")), json!(id), None));
    }
    for (line, _, _) in &lines {
        assert!(line.len() < MAX_LINE, "{}", line.len());
    }
    let expected: Vec<(Value, Option<i64>)> = lines
        .iter()
        .map(|(_, id, code)| (id.clone(), *code))
        .collect();
    let mut stdin = raw.stdin.take().unwrap();
    let writer = tokio::spawn(async move {
        for (line, _, _) in lines {
            stdin.write_all(line.as_bytes()).await.unwrap();
            stdin.write_all(b"\n").await.unwrap();
        }
        stdin
    });
    for (id, code) in expected {
        let answer = raw.answer().await;
        assert_eq!(answer["id"], id, "{answer:.300}");
        match code {
            Some(code) => assert_eq!(answer["error"]["code"], code, "{answer:.300}"),
            None => assert!(answer["result"].is_object(), "{answer:.300}"),
        }
    }
    raw.stdin = Some(writer.await.unwrap());
    let peak = raw.peak_rss();
    eprintln!(
        "12 lines up to 16 MiB: peak RSS at rest {} MiB, after {} MiB",
        at_rest / MIB,
        peak / MIB
    );
    // The budget of requests in flight (64 MiB), the line being read, the allocator's
    // slack: measured 84-117 MiB above rest in a debug build.
    assert!(
        peak < at_rest + 8 * MAX_LINE as u64,
        "peak RSS {} MiB (at rest {} MiB)",
        peak / MIB,
        at_rest / MIB
    );
    raw.close().await;
}
