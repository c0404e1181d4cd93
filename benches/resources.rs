//! `resources/read` of a 1 MiB object against `bucket_object_fetch` of the same
//! object, through the real server over stdio against the in-process S3: the median
//! and p90 of N calls each, alternating so that both see the same machine.
//!
//! ```sh
//! cargo bench --bench resources            # N = 100
//! QUILT_MCP_BENCH_CALLS=300 cargo bench --bench resources
//! ```
//!
//! Both read the same bytes from S3 through the same gate; the read answers them as a
//! resource (text, or one base64 blob), the tool as a structured result with the
//! base64 twice (`structuredContent` and an embedded resource), so the difference is
//! what each costs to shape, send and parse.

use quilt_mcp_testkit::s3;
mod support;

use std::time::{Duration, Instant};

use rmcp::ServiceExt as _;
use rmcp::model::{CallToolRequestParams, ReadResourceRequestParams, ResourceContents};
use rmcp::transport::TokioChildProcess;
use serde_json::json;
use support::OrFail as _;

const MIB: usize = 1024 * 1024;

fn percentile(samples: &mut [Duration], p: f64) -> f64 {
    samples.sort_unstable();
    let at = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples
        .get(at)
        .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let calls: usize = std::env::var("QUILT_MCP_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let server = s3::TestS3::start().await;
    server.create_bucket("bench").await;
    // Text (every reader's easy case) and binary (a base64 blob either way).
    let text: Vec<u8> = (0..MIB).map(|i| b'a' + (i % 26) as u8).collect();
    let binary: Vec<u8> = (0..MIB).map(|i| (i % 251) as u8).collect();
    server.seed_file("bench", "one-mib.txt", &text);
    server.seed_file("bench", "one-mib.bin", &binary);

    let token = support::token(
        "bench",
        json!({
            "buckets": ["bench"], "permissions": ["s3:GetObject"], "level": "read",
            "aws_credentials": {"access_key_id": s3::ACCESS_KEY, "secret_access_key": s3::SECRET_KEY},
        }),
    );
    let mut command = support::server_command(Some(&server.endpoint));
    command.env("QUILT_MCP_TOKEN", token);
    let transport = TokioChildProcess::new(command).or_fail("starting the server");
    let client = ().serve(transport).await.or_fail("initializing the server");

    for key in ["one-mib.txt", "one-mib.bin"] {
        let uri = format!("s3://bench/{key}");
        let (mut read, mut fetch) = (Vec::with_capacity(calls), Vec::with_capacity(calls));
        for round in 0..calls + 3 {
            let started = Instant::now();
            let result = client
                .read_resource(ReadResourceRequestParams::new(uri.clone()))
                .await
                .or_fail("resources/read");
            let took = started.elapsed();
            let bytes = match result.contents.first() {
                Some(ResourceContents::TextResourceContents { text, .. }) => text.len(),
                Some(ResourceContents::BlobResourceContents { blob, .. }) => blob.len() / 4 * 3,
                _ => support::fail("resources/read", "no contents"),
            };
            if bytes < MIB - 2 {
                support::fail("resources/read", format!("{bytes} bytes, not 1 MiB"));
            }

            let started = Instant::now();
            let result = client
                .call_tool(
                    CallToolRequestParams::new("bucket_object_fetch").with_arguments(
                        json!({"s3_uri": uri}).as_object().cloned().or_fail("args"),
                    ),
                )
                .await
                .or_fail("bucket_object_fetch");
            let fetched = started.elapsed();
            let structured = result
                .structured_content
                .or_fail("bucket_object_fetch result");
            if structured["bytes_read"] != MIB {
                support::fail("bucket_object_fetch", structured);
            }
            // The first rounds warm the connection pool and the credential cache.
            if round >= 3 {
                read.push(took);
                fetch.push(fetched);
            }
        }
        let (read_median, read_p90) = (percentile(&mut read, 0.5), percentile(&mut read, 0.9));
        let (fetch_median, fetch_p90) = (percentile(&mut fetch, 0.5), percentile(&mut fetch, 0.9));
        println!(
            "{key} ({calls} calls each): resources/read median {read_median:.2} ms, p90 {read_p90:.2} ms; \
             bucket_object_fetch median {fetch_median:.2} ms, p90 {fetch_p90:.2} ms"
        );
    }
    let _ = client.cancel().await;
}
