//! Wall time and the server's peak RSS for the package tools, against the in-process
//! S3, through the real server over stdio:
//!
//! ```sh
//! cargo bench --bench packages
//! ```
//!
//! - `package_create` from 1,000 small objects (each read once and hashed);
//! - `package_browse` of a 10,000-entry package (streamed, parsed, top hash verified).
//!
//! Peak RSS is the server process's `VmHWM` (Linux); elsewhere it is not reported.

#[path = "../tests/it/common/s3.rs"]
mod s3;
mod support;

use std::time::Instant;

use quilt_mcp::quilt::manifest::{Manifest, Record};
use rmcp::ServiceExt as _;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::TokioChildProcess;
use serde_json::{Map, Value, json};
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

    let mut command = support::server_command(Some(&server.endpoint));
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
        let started = Instant::now();
        let browsed = call(
            &client,
            "package_browse",
            json!({"package_name": "bench/big", "registry": "bench", "max_entries": 10000}),
        )
        .await;
        if browsed["entries"].as_array().map(Vec::len) != Some(10_000) {
            support::fail("package_browse", "not 10,000 entries");
        }
        println!(
            "package_browse 10,000 entries ({manifest_size} byte manifest, round {round}): {:.0} ms, {} entries returned, server peak RSS {:.1} MiB",
            started.elapsed().as_secs_f64() * 1000.0,
            browsed["entries"].as_array().map_or(0, Vec::len),
            peak_rss_mib(pid).unwrap_or(f64::NAN)
        );
    }
    let _ = client.cancel().await;
}
