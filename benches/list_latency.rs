//! Latency of `bucket_objects_list` (100 keys) through the real server over stdio,
//! next to a direct aws-sdk `ListObjectsV2` to the same in-process S3, in one run:
//!
//! ```sh
//! cargo bench --bench list_latency
//! ```
//!
//! The ratio of the two medians is the cost quilt-mcp adds (JSON-RPC over a pipe,
//! the gate, the JSON result) on top of the S3 call itself.

#[path = "../tests/common/s3.rs"]
mod s3;

use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rmcp::ServiceExt as _;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::TokioChildProcess;
use serde_json::json;

const SECRET: &str = "bench-secret";

fn token() -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "sub": "bench", "aud": "quilt-mcp-server", "iat": now, "exp": now + 7200,
        "buckets": ["bench"], "permissions": ["s3:ListBucket"], "level": "read",
        "aws_credentials": {"access_key_id": s3::ACCESS_KEY, "secret_access_key": s3::SECRET_KEY},
    });
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap_or_default()
}

fn list_latency(c: &mut Criterion) {
    let Ok(runtime) = tokio::runtime::Runtime::new() else {
        return;
    };
    let log_dir = std::env::temp_dir().join("quilt-mcp-bench-logs");
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
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_quilt-mcp"));
        command
            .env("QUILT_MCP_JWT_SECRET", SECRET)
            .env("QUILT_MCP_TOKEN", token())
            .env("QUILT_MCP_LOG_DIR", &log_dir)
            .env("QUILT_MCP_LOG", "warn")
            .env("AWS_ENDPOINT_URL_S3", &server.endpoint)
            .env("QUILT_MCP_S3_FORCE_PATH_STYLE", "true");
        let transport = TokioChildProcess::new(command).ok();
        let client = match transport {
            Some(t) => ().serve(t).await.ok(),
            None => None,
        };
        (server, client)
    });
    let Some(client) = client else { return };
    let direct = server.client();

    let mut group = c.benchmark_group("list_100_keys");
    group.bench_function("direct_sdk_list_objects_v2", |b| {
        b.to_async(&runtime).iter(|| async {
            let out = direct
                .list_objects_v2()
                .bucket("bench")
                .prefix("data/")
                .max_keys(100)
                .send()
                .await;
            assert_eq!(out.map(|o| o.contents().len()).unwrap_or(0), 100);
        });
    });
    group.bench_function("quilt_mcp_bucket_objects_list_stdio", |b| {
        b.to_async(&runtime).iter(|| async {
            let mut args = serde_json::Map::new();
            args.insert("bucket".into(), json!("bench"));
            args.insert("prefix".into(), json!("data/"));
            let result = client
                .call_tool(CallToolRequestParams::new("bucket_objects_list").with_arguments(args))
                .await;
            let count = result
                .ok()
                .and_then(|r| r.structured_content)
                .and_then(|v| v["objects"].as_array().map(Vec::len));
            assert_eq!(count, Some(100));
        });
    });
    group.finish();
    runtime.block_on(async {
        let _ = client.cancel().await;
    });
}

criterion_group!(benches, list_latency);
criterion_main!(benches);
