//! A search round trip through the real server over stdio, against the in-process
//! fake registry (which validates and executes each GraphQL query):
//!
//! ```sh
//! cargo bench --bench search
//! ```
//!
//! 200 `search_packages` calls of 20 results each (after 20 warm-up calls), then 200
//! `search_objects` calls. For each call the time the registry itself took (the fake's
//! own handling, from request to answer) is subtracted from the round trip: what is
//! left is the server's own cost (JSON-RPC over a pipe, the gate, the GraphQL request
//! and its answer over loopback HTTP, the result). Median and p99 of each are printed.

mod support;

use std::time::{Duration, Instant};

use quilt_mcp_testkit::registry_graphql::{GraphqlRegistry, Object, Package};
use rmcp::ServiceExt as _;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};
use support::OrFail as _;

const CALLS: usize = 200;
const WARM_UP: usize = 20;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

fn report(what: &str, mut times: Vec<Duration>) {
    times.sort_unstable();
    println!(
        "{what:<44} median {:>8.3} ms   p99 {:>8.3} ms   ({} calls)",
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.99).as_secs_f64() * 1e3,
        times.len()
    );
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().or_fail("starting the runtime");
    runtime.block_on(async {
        let packages: Vec<Package> = (0..500)
            .map(|i| Package::new(if i % 2 == 0 { "bench" } else { "bench-2" }, &format!("team/dataset-{i}"), i))
            .collect();
        let objects: Vec<Object> = (0..500)
            .map(|i| Object::new("bench", &format!("runs/{i:04}/table.parquet")))
            .collect();
        let registry = GraphqlRegistry::start(packages, objects).await;
        let token = support::token(
            "bench",
            json!({"buckets": ["bench", "bench-2"], "permissions": ["s3:ListBucket"], "level": "read"}),
        );
        let mut command = support::server_command(None);
        command
            .env("QUILT_MCP_TOKEN", &token)
            .env("QUILT_REGISTRY_URL", &registry.url);
        let transport = TokioChildProcess::new(command).or_fail("spawning the server");
        let client = ().serve(transport).await.or_fail("initializing");

        for (tool, args) in [
            ("search_packages", json!({"query": "team", "max_results": 20})),
            ("search_objects", json!({"query": "runs", "extensions": ["parquet"], "max_results": 20})),
        ] {
            let call = || {
                let mut params = CallToolRequestParams::new(tool);
                if let Value::Object(map) = args.clone() {
                    params = params.with_arguments(map);
                }
                client.call_tool(params)
            };
            for _ in 0..WARM_UP {
                call().await.or_fail("warming up");
            }
            let before = registry.timings().len();
            let mut round_trips = Vec::with_capacity(CALLS);
            for _ in 0..CALLS {
                let started = Instant::now();
                let result = call().await.or_fail("calling the tool");
                round_trips.push(started.elapsed());
                let content = result.structured_content.or_fail("structured content");
                if result.is_error == Some(true) || content["count"] != json!(20) {
                    support::fail(tool, format!("unexpected result {content}"));
                }
            }
            let registry_times: Vec<Duration> = registry.timings()[before..].to_vec();
            if registry_times.len() != CALLS || !registry.refusals().is_empty() {
                support::fail(tool, "the registry did not answer every call exactly once");
            }
            let own: Vec<Duration> = round_trips
                .iter()
                .zip(&registry_times)
                .map(|(total, registry)| total.saturating_sub(*registry))
                .collect();
            report(&format!("{tool}: round trip"), round_trips);
            report(&format!("{tool}: the registry's own time"), registry_times);
            report(&format!("{tool}: the server's own cost"), own);
        }
        let _ = client.cancel().await;
    });
}
