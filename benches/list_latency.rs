//! Latency of `bucket_objects_list` (100 keys) through the real server over stdio,
//! next to a direct aws-sdk `ListObjectsV2` to the same in-process S3, in one run:
//!
//! ```sh
//! cargo bench --bench list_latency
//! ```
//!
//! The ratio of the two medians is the cost quilt-mcp adds (JSON-RPC over a pipe,
//! the gate, the JSON result) on top of the S3 call itself.

use quilt_mcp_testkit::s3;
mod support;

use criterion::{Criterion, criterion_group, criterion_main};
use rmcp::ServiceExt as _;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::TokioChildProcess;
use serde_json::json;
use support::OrFail as _;

fn token() -> String {
    support::token(
        "bench",
        json!({
            "buckets": ["bench"], "permissions": ["s3:ListBucket"], "level": "read",
            "aws_credentials": {"access_key_id": s3::ACCESS_KEY, "secret_access_key": s3::SECRET_KEY},
        }),
    )
}

fn list_latency(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().or_fail("starting the runtime");
    let (server, client) = runtime.block_on(async {
        let server = s3::TestS3::start().await;
        server.create_bucket("bench").await;
        for i in 0..100 {
            server
                .put(
                    "bench",
                    &format!("data/object-{i:03}.txt"),
                    b"x",
                    "text/plain",
                    &[],
                )
                .await;
        }
        let mut command = support::server_command(Some(&server.endpoint));
        command.env("QUILT_MCP_TOKEN", token());
        let transport = TokioChildProcess::new(command).or_fail("starting the server");
        let client = ().serve(transport).await.or_fail("initializing the server");
        (server, client)
    });
    let direct = server.client();

    let direct_list = || async {
        let out = direct
            .list_objects_v2()
            .bucket("bench")
            .prefix("data/")
            .max_keys(100)
            .send()
            .await;
        assert_eq!(out.or_fail("the direct listing").contents().len(), 100);
    };
    let tool_list = || async {
        let mut args = serde_json::Map::new();
        args.insert("bucket".into(), json!("bench"));
        args.insert("prefix".into(), json!("data/"));
        let result = client
            .call_tool(CallToolRequestParams::new("bucket_objects_list").with_arguments(args))
            .await;
        let count = result
            .or_fail("bucket_objects_list")
            .structured_content
            .and_then(|v| v["objects"].as_array().map(Vec::len));
        assert_eq!(count, Some(100));
    };

    let mut group = c.benchmark_group("list_100_keys");
    group.bench_function("direct_sdk_list_objects_v2", |b| {
        b.to_async(&runtime).iter(direct_list);
    });
    group.bench_function("quilt_mcp_bucket_objects_list_stdio", |b| {
        b.to_async(&runtime).iter(tool_list);
    });
    group.finish();

    // The two criterion phases run minutes apart, and on a small machine the
    // in-process S3's latency drifts between them. Alternating the two calls in one
    // loop compares them under the same conditions.
    let (mut direct_times, mut tool_times) = (Vec::new(), Vec::new());
    runtime.block_on(async {
        for _ in 0..1000 {
            let started = std::time::Instant::now();
            direct_list().await;
            direct_times.push(started.elapsed());
            let started = std::time::Instant::now();
            tool_list().await;
            tool_times.push(started.elapsed());
        }
    });
    direct_times.sort();
    tool_times.sort();
    let (d, t) = (direct_times[500], tool_times[500]);
    println!(
        "paired, 1000 rounds: median direct {:.3} ms, bucket_objects_list over stdio {:.3} ms, ratio {:.2}",
        d.as_secs_f64() * 1000.0,
        t.as_secs_f64() * 1000.0,
        t.as_secs_f64() / d.as_secs_f64()
    );
    runtime.block_on(async {
        let _ = client.cancel().await;
    });
}

criterion_group!(benches, list_latency);
criterion_main!(benches);
