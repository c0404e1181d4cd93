//! Wall time and the server's peak RSS for the package tools, against the in-process
//! S3, through the real server over stdio:
//!
//! ```sh
//! cargo bench --bench packages
//! ```
//!
//! - `package_create` from 1,000 small objects (each read once and hashed);
//! - `package_browse` of a 10,000-entry package (streamed, parsed, top hash verified);
//! - `package_browse` (default page of 1,000) of 100,000- and 1,000,000-entry packages,
//!   and `package_diff` of two 100,000-entry and two 1,000,000-entry revisions, in a
//!   fresh server whose peak RSS is that of this work alone (set
//!   `QUILT_MCP_BENCH_SKIP_1M=1` to skip the 1M revisions); the first page reads and
//!   verifies the whole revision, so its time per entry is the cost of a manifest line;
//! - every page of those revisions in turn, by `next_cursor` (set
//!   `QUILT_MCP_BENCH_SKIP_PAGES=1` to skip it);
//! - `package_patch` adding 10 entries to the 100,000- and 1,000,000-entry revisions,
//!   in another fresh server.
//!
//! `QUILT_MCP_BENCH_BINARY=PATH` measures another build of the server (an older one,
//! for a before-and-after figure). Peak RSS is the server process's `VmHWM` (Linux);
//! elsewhere it is not reported.

use quilt_mcp_testkit::s3;
mod support;

use std::time::Instant;

use quilt_mcp::quilt::manifest::{Manifest, Record};
use rmcp::ServiceExt as _;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::TokioChildProcess;
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};
use support::OrFail as _;

fn token() -> String {
    support::token(
        "bench",
        json!({
            "buckets": ["bench"], "permissions": ["s3:GetObject", "s3:ListBucket", "s3:PutObject"], "level": "write",
            "aws_credentials": {"access_key_id": s3::ACCESS_KEY, "secret_access_key": s3::SECRET_KEY},
        }),
    )
}

fn peak_rss_mib(pid: Option<u32>) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// A 10,000-entry manifest pointing at objects that need not exist.
fn big_manifest() -> Manifest {
    let records = (0..10_000)
        .map(|i| {
            let mut obj = Map::new();
            obj.insert("logical_key".into(), json!(format!("data/part-{:02}/file-{i:05}.parquet", i % 50)));
            obj.insert("physical_keys".into(), json!([format!("s3://bench/big/file-{i:05}.parquet?versionId=v{i}")]));
            obj.insert("size".into(), json!(1000 + i));
            obj.insert("hash".into(), json!({"type": "sha2-256-chunked", "value": "Xb1PbjJeWof4zD7zuHc9PI7sLiz/Ykj4gphlaZEt3xA="}));
            obj.insert("meta".into(), json!({"user_meta": {"row_count": i * 10, "schema": "v2"}}));
            Record::from_object(obj)
        })
        .collect();
    let mut header = Map::new();
    header.insert("version".into(), json!("v0"));
    header.insert("message".into(), json!("10k entries"));
    Manifest::new(header, records)
}

/// A manifest of `n` entries in tree order, written as quilt3 writes it, with its top
/// hash computed from the canonical forms directly (so that a million entries need
/// not be held as records); `variant` changes every 97th entry's size and drops every
/// 101st, for a second revision to diff against.
fn generated_manifest(n: usize, variant: bool) -> (String, Vec<u8>) {
    let message = format!("{n} entries");
    let mut hasher = Sha256::new();
    hasher.update(format!(r#"{{"message":"{message}","version":"v0"}}"#).as_bytes());
    let mut out = Vec::with_capacity(n * 330);
    out.extend_from_slice(format!(r#"{{"version": "v0", "message": "{message}"}}"#).as_bytes());
    out.push(b'\n');
    let per_part = n.div_ceil(50);
    let hash = "Xb1PbjJeWof4zD7zuHc9PI7sLiz/Ykj4gphlaZEt3xA=";
    for i in 0..n {
        if variant && i % 101 == 0 {
            continue;
        }
        let key = format!("data/part-{:02}/file-{i:07}.parquet", i / per_part);
        let size = 1000 + i + usize::from(variant && i % 97 == 0);
        let rows = i * 10;
        hasher.update(format!(r#"{{"hash":{{"type":"sha2-256-chunked","value":"{hash}"}},"logical_key":"{key}","meta":{{"user_meta":{{"row_count":{rows},"schema":"v2"}}}},"size":{size}}}"#).as_bytes());
        out.extend_from_slice(format!(r#"{{"logical_key": "{key}", "physical_keys": ["s3://bench/big/file-{i:07}.parquet?versionId=v{i}"], "size": {size}, "hash": {{"type": "sha2-256-chunked", "value": "{hash}"}}, "meta": {{"user_meta": {{"row_count": {rows}, "schema": "v2"}}}}}}"#).as_bytes());
        out.push(b'\n');
    }
    let top_hash = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (top_hash, out)
}

async fn store(server: &s3::TestS3, name: &str, top_hash: &str, bytes: &[u8]) {
    server
        .put(
            "bench",
            &format!(".quilt/packages/{top_hash}"),
            bytes,
            "application/jsonl",
            &[],
        )
        .await;
    server
        .put(
            "bench",
            &format!(".quilt/named_packages/{name}/latest"),
            top_hash.as_bytes(),
            "text/plain",
            &[],
        )
        .await;
}

/// The server to measure: this build's, or `QUILT_MCP_BENCH_BINARY`.
fn server_command(endpoint: &str) -> tokio::process::Command {
    let Some(binary) = std::env::var_os("QUILT_MCP_BENCH_BINARY") else {
        return support::server_command(Some(endpoint));
    };
    let mut command = tokio::process::Command::new(binary);
    command
        .env("QUILT_MCP_JWT_SECRET", support::SECRET)
        .env(
            "QUILT_MCP_LOG_DIR",
            std::env::temp_dir().join("quilt-mcp-bench-logs"),
        )
        .env("QUILT_MCP_LOG", "warn")
        .env("AWS_ENDPOINT_URL_S3", endpoint)
        .env("QUILT_MCP_S3_FORCE_PATH_STYLE", "true");
    command
}

async fn call(
    client: &rmcp::service::RunningService<rmcp::RoleClient, ()>,
    tool: &'static str,
    args: Value,
) -> Value {
    let params = CallToolRequestParams::new(tool)
        .with_arguments(args.as_object().cloned().unwrap_or_default());
    let result = client.call_tool(params).await.or_fail(tool);
    if result.is_error == Some(true) {
        support::fail(tool, format!("{:?}", result.structured_content));
    }
    result.structured_content.or_fail(tool)
}

#[tokio::main]
async fn main() {
    let server = s3::TestS3::start().await;
    server.create_bucket("bench").await;
    for i in 0..1000 {
        server.seed_file(
            "bench",
            &format!("small/obj-{i:04}.txt"),
            format!("object {i}\n").as_bytes(),
        );
    }
    let manifest = big_manifest();
    let big_hash = manifest.top_hash();
    let bytes = manifest.to_bytes();
    let manifest_size = bytes.len();
    drop(manifest);
    server
        .put(
            "bench",
            &format!(".quilt/packages/{big_hash}"),
            &bytes,
            "application/jsonl",
            &[],
        )
        .await;
    server
        .put(
            "bench",
            ".quilt/named_packages/bench/big/latest",
            big_hash.as_bytes(),
            "text/plain",
            &[],
        )
        .await;

    let mut command = server_command(&server.endpoint);
    command.env("QUILT_MCP_TOKEN", token());
    let transport = TokioChildProcess::new(command).or_fail("starting the server");
    let pid = transport.id();
    let client = ().serve(transport).await.or_fail("initializing the server");
    println!(
        "server idle: peak RSS {:.1} MiB",
        peak_rss_mib(pid).unwrap_or(f64::NAN)
    );

    for round in 1..=3 {
        let started = Instant::now();
        let created = call(
            &client,
            "package_create",
            json!({"package_name": format!("bench/small-{round}"), "registry": "bench", "s3_uris": ["s3://bench/small/"]}),
        )
        .await;
        if created["entry_count"] != 1000 {
            support::fail(
                "package_create",
                format!("{} entries, not 1000", created["entry_count"]),
            );
        }
        println!(
            "package_create 1,000 objects (round {round}): {:.0} ms, {} entries, server peak RSS {:.1} MiB",
            started.elapsed().as_secs_f64() * 1000.0,
            created["entry_count"],
            peak_rss_mib(pid).unwrap_or(f64::NAN)
        );
    }
    for round in 1..=3 {
        // One page of 10,000 asked for; a page that would pass the result's byte bound
        // ends early with `next_cursor`, so read on until all 10,000 are returned.
        let started = Instant::now();
        let (mut entries, mut pages, mut cursor) = (0, 0, None::<String>);
        loop {
            let mut args =
                json!({"package_name": "bench/big", "registry": "bench", "max_entries": 10000});
            if let Some(c) = &cursor {
                args["cursor"] = json!(c);
            }
            let browsed = call(&client, "package_browse", args).await;
            entries += browsed["entries"].as_array().map_or(0, Vec::len);
            pages += 1;
            match browsed["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        if entries != 10_000 {
            support::fail("package_browse", format!("{entries} entries, not 10,000"));
        }
        println!(
            "package_browse 10,000 entries ({manifest_size} byte manifest, round {round}): {:.0} ms, {entries} entries returned in {pages} pages, server peak RSS {:.1} MiB",
            started.elapsed().as_secs_f64() * 1000.0,
            peak_rss_mib(pid).unwrap_or(f64::NAN)
        );
    }
    let _ = client.cancel().await;

    // Browse and diff at scale in a fresh server, so that its peak RSS is theirs.
    let mut sizes = vec![100_000];
    if std::env::var_os("QUILT_MCP_BENCH_SKIP_1M").is_none() {
        sizes.push(1_000_000);
    }
    let mut hashes = Vec::new();
    for &n in &sizes {
        let (top_hash, bytes) = generated_manifest(n, false);
        store(&server, &format!("bench/e{n}"), &top_hash, &bytes).await;
        println!("stored a {n}-entry manifest of {} bytes", bytes.len());
        hashes.push(top_hash);
    }
    let mut changed_hashes = Vec::new();
    for &n in &sizes {
        let (changed_hash, changed) = generated_manifest(n, true);
        store(
            &server,
            &format!("bench/e{n}-changed"),
            &changed_hash,
            &changed,
        )
        .await;
        changed_hashes.push(changed_hash);
    }

    let mut command = server_command(&server.endpoint);
    command.env("QUILT_MCP_TOKEN", token());
    let transport = TokioChildProcess::new(command).or_fail("starting the server");
    let pid = transport.id();
    let client = ().serve(transport).await.or_fail("initializing the server");
    for &n in &sizes {
        for round in 1..=3 {
            let started = Instant::now();
            let browsed = call(
                &client,
                "package_browse",
                json!({"package_name": format!("bench/e{n}"), "registry": "bench"}),
            )
            .await;
            if browsed["entry_count"] != n
                || browsed["entries"].as_array().map(Vec::len) != Some(1000)
            {
                support::fail(
                    "package_browse",
                    format!("{} entries counted", browsed["entry_count"]),
                );
            }
            let elapsed = started.elapsed().as_secs_f64();
            println!(
                "package_browse {n} entries, default page (round {round}): {:.0} ms ({:.2} µs per entry), server peak RSS {:.1} MiB",
                elapsed * 1000.0,
                elapsed * 1e6 / n as f64,
                peak_rss_mib(pid).unwrap_or(f64::NAN)
            );
        }
        if std::env::var_os("QUILT_MCP_BENCH_SKIP_PAGES").is_some() {
            continue;
        }
        // Every page in turn: after the first, each costs what it holds.
        let started = Instant::now();
        let (mut entries, mut pages) = (0usize, 0usize);
        let mut cursor: Option<String> = None;
        loop {
            let mut args = json!({"package_name": format!("bench/e{n}"), "registry": "bench"});
            if let Some(c) = &cursor {
                args["cursor"] = json!(c);
            }
            let page = call(&client, "package_browse", args).await;
            entries += page["entries"].as_array().map_or(0, Vec::len);
            pages += 1;
            match page.get("next_cursor").and_then(Value::as_str) {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        if entries != n {
            support::fail(
                "package_browse pages",
                format!("{entries} entries, not {n}"),
            );
        }
        let elapsed = started.elapsed().as_secs_f64();
        println!(
            "package_browse {n} entries, every page ({pages} pages): {:.0} ms ({:.2} µs per entry, {:.1} ms per page), server peak RSS {:.1} MiB",
            elapsed * 1000.0,
            elapsed * 1e6 / n as f64,
            elapsed * 1000.0 / pages as f64,
            peak_rss_mib(pid).unwrap_or(f64::NAN)
        );
    }
    for (i, &n) in sizes.iter().enumerate() {
        // What `generated_manifest(n, true)` drops (every 101st) and changes (every
        // 97th that it keeps).
        let removed = (n - 1) / 101 + 1;
        let modified = ((n - 1) / 97 + 1) - ((n - 1) / (97 * 101) + 1);
        for round in 1..=3 {
            let started = Instant::now();
            let diff = call(
                &client,
                "package_diff",
                json!({"package1_name": format!("bench/e{n}"), "package2_name": format!("bench/e{n}-changed"), "registry": "bench", "package1_hash": hashes[i], "package2_hash": changed_hashes[i]}),
            )
            .await;
            if diff["removed_count"] != removed
                || diff["modified_count"] != modified
                || diff["added_count"] != 0
            {
                support::fail("package_diff", format!("{diff}"));
            }
            println!(
                "package_diff {n} vs {n} entries (round {round}): {:.0} ms, removed {} modified {}, server peak RSS {:.1} MiB",
                started.elapsed().as_secs_f64() * 1000.0,
                diff["removed_count"],
                diff["modified_count"],
                peak_rss_mib(pid).unwrap_or(f64::NAN)
            );
        }
    }
    let _ = client.cancel().await;

    // Patch at scale in a fresh server, so that its peak RSS is the patch's: ten new
    // entries on top of each large revision (each round builds on the one before).
    let mut command = server_command(&server.endpoint);
    command.env("QUILT_MCP_TOKEN", token());
    let transport = TokioChildProcess::new(command).or_fail("starting the server");
    let pid = transport.id();
    let client = ().serve(transport).await.or_fail("initializing the server");
    for &n in &sizes {
        for round in 1..=3 {
            let add: Vec<Value> = (0..10)
                .map(|i| json!({"logical_key": format!("added/r{round}/obj-{i}.txt"), "s3_uri": format!("s3://bench/small/obj-{i:04}.txt")}))
                .collect();
            let started = Instant::now();
            let patched = call(
                &client,
                "package_patch",
                json!({"package_name": format!("bench/e{n}"), "registry": "bench", "add": add, "message": format!("round {round}")}),
            )
            .await;
            if patched["changes"]["added"] != 10 || patched["entry_count"] != n + 10 * round {
                support::fail("package_patch", format!("{patched}"));
            }
            println!(
                "package_patch {n} entries + 10 (round {round}): {:.0} ms, server peak RSS {:.1} MiB",
                started.elapsed().as_secs_f64() * 1000.0,
                peak_rss_mib(pid).unwrap_or(f64::NAN)
            );
        }
    }
    let _ = client.cancel().await;
}
