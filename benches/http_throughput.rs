//! Authorized `tools/call` of `auth_status` per second over streamable HTTP, with 32
//! concurrent clients, and the latency distribution:
//!
//! ```sh
//! cargo bench --bench http_throughput
//! ```
//!
//! Each request is verified on its own (HS256 bearer), passes the gate and returns
//! the structured result; the server runs as its release binary on 127.0.0.1.

mod support;

use std::time::{Duration, Instant};

use support::OrFail as _;

use serde_json::json;
use tokio::io::AsyncBufReadExt as _;

const CLIENTS: usize = 32;
const WARMUP: Duration = Duration::from_secs(2);
const MEASURE: Duration = Duration::from_secs(10);

fn token(user: usize) -> String {
    support::token(
        &format!("user-{user}"),
        json!({"buckets": ["bench"], "permissions": ["s3:GetObject"], "level": "read"}),
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let mut child = support::server_command(None)
        .args(["serve", "--http", "127.0.0.1:0"])
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .or_fail("starting the server");
    let stderr = child.stderr.take().or_fail("the server's stderr");
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    let mut url = None;
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(found) = line.strip_prefix("quilt-mcp: serving MCP at ") {
            url = Some(found.to_owned());
            break;
        }
    }
    let url = url.or_fail("the server's readiness line on stderr");
    let pid = child.id();

    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "auth_status", "arguments": {}}}).to_string();
    let deadline_warm = Instant::now() + WARMUP;
    let deadline = deadline_warm + MEASURE;
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|user| {
            let (url, body, token) = (url.clone(), body.clone(), token(user));
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut latencies = Vec::new();
                let mut errors = 0usize;
                while Instant::now() < deadline {
                    let started = Instant::now();
                    let response = client
                        .post(&url)
                        .bearer_auth(&token)
                        .header("content-type", "application/json")
                        .header("accept", "application/json, text/event-stream")
                        .body(body.clone())
                        .send()
                        .await;
                    let ok = match response {
                        Ok(r) if r.status().is_success() => {
                            r.bytes().await.map(|b| b.len() > 100).unwrap_or(false)
                        }
                        _ => false,
                    };
                    if started >= deadline_warm {
                        if ok {
                            latencies.push(started.elapsed());
                        } else {
                            errors += 1;
                        }
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (latencies, e) = task.await.or_fail("a client task");
        all.extend(latencies);
        errors += e;
    }
    if all.is_empty() {
        support::fail("measuring", "no call succeeded");
    }
    all.sort();
    let rss = pid
        .and_then(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_owned)
        })
        .unwrap_or_default();
    println!(
        "{CLIENTS} clients, {:.0} s: {} calls, {:.0} calls/s, p50 {:.2} ms, p99 {:.2} ms, errors {errors}; server {rss}",
        MEASURE.as_secs_f64(),
        all.len(),
        all.len() as f64 / MEASURE.as_secs_f64(),
        percentile(&all, 0.50).as_secs_f64() * 1000.0,
        percentile(&all, 0.99).as_secs_f64() * 1000.0,
    );
    let _ = child.kill().await;
}
