//! Latency of one read of the keyring entry (`quilt_mcp::auth::store::read_entry`),
//! in the store this environment provides, or keyring-core's mock store with
//! `KEYRING_BENCH_STORE=mock`. `scripts/ci-keyring` runs it in each real store:
//!
//! ```sh
//! cargo bench --profile dev --bench keyring_read            # the native store
//! KEYRING_BENCH_STORE=mock cargo bench --profile dev --bench keyring_read
//! ```
//!
//! It stores a token in a private entry, reads it `KEYRING_BENCH_READS` times (200 by
//! default), prints the median and the 90th percentile, and deletes the entry. The
//! store is opened before timing (once per process, as in the server).

mod support;

use std::time::Instant;

use quilt_mcp::auth::Token;
use quilt_mcp::auth::store::{delete_entry, read_entry, store_in_use, write_entry};
use support::OrFail as _;

fn main() {
    let mock = std::env::var("KEYRING_BENCH_STORE").is_ok_and(|s| s == "mock");
    if mock {
        keyring_core::set_default_store(keyring_core::mock::Store::new().or_fail("mock store"));
    }
    let store = store_in_use().or_fail("no keyring store");
    let store = if mock { "mock" } else { store };
    let reads: usize = std::env::var("KEYRING_BENCH_READS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200);
    let service = format!("quilt-mcp-bench-{}", std::process::id());
    let token = Token::new(&support::token("bench", serde_json::json!({}))).or_fail("token");
    write_entry(&service, "bench", &token).or_fail("write the entry");
    let mut micros: Vec<f64> = Vec::with_capacity(reads);
    for _ in 0..reads {
        let start = Instant::now();
        let read = read_entry(&service, "bench").or_fail("read the entry");
        micros.push(start.elapsed().as_secs_f64() * 1e6);
        if read.as_ref().map(Token::expose) != Some(token.expose()) {
            support::fail("read the entry", "it does not hold the token written");
        }
    }
    delete_entry(&service, "bench").or_fail("delete the entry");
    micros.sort_by(f64::total_cmp);
    let at = |q: f64| micros[((micros.len() - 1) as f64 * q) as usize];
    println!(
        "keyring read ({store}): median {:.1} us, p90 {:.1} us ({reads} reads)",
        at(0.5),
        at(0.9)
    );
}
