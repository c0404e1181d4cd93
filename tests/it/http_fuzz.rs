//! Random sequences of hostile HTTP requests against one server, eight at a time:
//! missing, garbage and expired tokens, foreign Hosts, random bytes, truncated and
//! deeply nested JSON, bodies over the limit and dense in values, batches, pipelined
//! requests, huge headers, wrong methods and content types, abandoned requests,
//! between valid calls. Every request that is not abandoned gets an HTTP answer, the
//! expected kind of answer where there is one, the server's peak RSS stays bounded,
//! and it still serves at the end. The seed is printed; `QUILT_MCP_FUZZ_SEED` replays
//! it and `QUILT_MCP_FUZZ_CASES` sets the number of requests.
use std::time::{Duration, Instant};

use crate::common::s3::{ACCESS_KEY, SECRET_KEY, TestS3};
use crate::common::*;
use crate::http::HttpServer;
use crate::http_limits::{RSS_BOUND_MB, peak_rss_mb};
use futures::StreamExt as _;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// xorshift64*, seeded, so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What a request must get back.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// This status.
    Status(u16),
    /// Some HTTP answer (each of `n` pipelined requests).
    Answers(usize),
    /// Nothing: the client goes away mid-request.
    Abandoned,
}

struct Case {
    what: &'static str,
    bytes: Vec<u8>,
    /// Where the client stops sending and closes, for an abandoned request.
    cut: Option<usize>,
    expect: Expect,
}

fn request(
    method: &str,
    path: &str,
    host: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

fn mcp(token: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut headers = vec![
        ("Content-Type", "application/json".to_owned()),
        ("Accept", "application/json, text/event-stream".to_owned()),
        ("Connection", "close".to_owned()),
    ];
    if let Some(token) = token {
        headers.push(("Authorization", format!("Bearer {token}")));
    }
    request("POST", "/mcp", "127.0.0.1", &headers, body)
}

fn call(id: u64, tool: &str, args: serde_json::Value) -> Vec<u8> {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": args}})
        .to_string()
        .into_bytes()
}

fn case(rng: &mut Rng, n: u64, tokens: &[String], expired: &str) -> Case {
    let token = tokens[rng.below(tokens.len() as u64) as usize].as_str();
    let valid = call(n, "auth_status", json!({}));
    let (what, bytes, cut, expect) = match rng.below(20) {
        0 => (
            "auth_status",
            mcp(Some(token), &valid),
            None,
            Expect::Status(200),
        ),
        1 => (
            "listing",
            mcp(
                Some(token),
                &call(n, "bucket_objects_list", json!({"bucket": "fuzz"})),
            ),
            None,
            Expect::Status(200),
        ),
        2 => ("no token", mcp(None, &valid), None, Expect::Status(401)),
        3 => (
            "garbage token",
            mcp(Some("a.b.c"), &valid),
            None,
            Expect::Status(401),
        ),
        4 => (
            "expired token",
            mcp(Some(expired), &valid),
            None,
            Expect::Status(401),
        ),
        5 => {
            let len = rng.below(4096) as usize;
            let body: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            (
                "random bytes",
                mcp(Some(token), &body),
                None,
                Expect::Answers(1),
            )
        }
        6 => {
            let cut = 1 + rng.below(valid.len() as u64 - 1) as usize;
            (
                "truncated JSON",
                mcp(Some(token), &valid[..cut]),
                None,
                Expect::Answers(1),
            )
        }
        7 => (
            "body over 4 MiB",
            mcp(
                Some(token),
                &vec![b' '; 4 * 1024 * 1024 + 1 + rng.below(1024) as usize],
            ),
            None,
            Expect::Status(413),
        ),
        8 => {
            let len = 1 + rng.below(3 * 1024 * 1024) as usize;
            let mut body = b"[".to_vec();
            while body.len() + 4 < len {
                body.extend_from_slice(b"[],");
            }
            body.extend_from_slice(b"[]]");
            (
                "dense JSON",
                mcp(Some(token), &body),
                None,
                Expect::Answers(1),
            )
        }
        9 => {
            let depth = 1 + rng.below(100_000) as usize;
            let mut body = "[".repeat(depth).into_bytes();
            body.extend("]".repeat(depth).bytes());
            (
                "deep nesting",
                mcp(Some(token), &body),
                None,
                Expect::Answers(1),
            )
        }
        10 => {
            let headers = [
                ("Content-Type", "text/plain".to_owned()),
                ("Authorization", format!("Bearer {token}")),
                ("Connection", "close".to_owned()),
            ];
            (
                "wrong content type",
                request("POST", "/mcp", "127.0.0.1", &headers, &valid),
                None,
                Expect::Answers(1),
            )
        }
        11 => {
            let headers = [
                ("Content-Type", "application/json".to_owned()),
                ("Authorization", format!("Bearer {token}")),
                ("Connection", "close".to_owned()),
            ];
            (
                "foreign Host",
                request("POST", "/mcp", "evil.example", &headers, &valid),
                None,
                Expect::Status(403),
            )
        }
        12 => (
            "unknown tool",
            mcp(Some(token), &call(n, "no_such_tool", json!({}))),
            None,
            Expect::Answers(1),
        ),
        13 => {
            let batch = format!(
                "[{},{}]",
                String::from_utf8_lossy(&valid),
                String::from_utf8_lossy(&valid)
            );
            (
                "batch",
                mcp(Some(token), batch.as_bytes()),
                None,
                Expect::Answers(1),
            )
        }
        14 => {
            let headers = [
                ("Authorization", format!("Bearer {token}")),
                ("Connection", "close".to_owned()),
            ];
            let method = ["GET", "DELETE", "PUT", "PATCH"][rng.below(4) as usize];
            (
                "other method",
                request(method, "/mcp", "127.0.0.1", &headers, b""),
                None,
                Expect::Answers(1),
            )
        }
        15 => {
            let keep = [
                ("Content-Type", "application/json".to_owned()),
                ("Accept", "application/json, text/event-stream".to_owned()),
                ("Authorization", format!("Bearer {token}")),
            ];
            let mut bytes = request("POST", "/mcp", "127.0.0.1", &keep, &valid);
            bytes.extend(request("GET", "/healthz", "127.0.0.1", &[], b""));
            bytes.extend(mcp(Some(token), &valid));
            ("pipelined", bytes, None, Expect::Answers(3))
        }
        16 => {
            let bytes = mcp(
                Some(token),
                &call(n, "bucket_objects_list", json!({"bucket": "fuzz"})),
            );
            let cut = 1 + rng.below(bytes.len() as u64 - 1) as usize;
            ("abandoned", bytes, Some(cut), Expect::Abandoned)
        }
        17 => {
            let headers = [
                ("Content-Type", "application/json".to_owned()),
                ("Authorization", format!("Bearer {token}")),
                ("X-Padding", "p".repeat(1 + rng.below(200_000) as usize)),
                ("Connection", "close".to_owned()),
            ];
            (
                "huge header",
                request("POST", "/mcp", "127.0.0.1", &headers, &valid),
                None,
                Expect::Answers(1),
            )
        }
        18 => {
            let id =
                ["null", "true", "[1]", "{\"a\":1}", "1e400", "\"\"", "-0"][rng.below(7) as usize];
            let body = format!(
                r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"auth_status","arguments":{{}}}}}}"#
            );
            (
                "odd id",
                mcp(Some(token), body.as_bytes()),
                None,
                Expect::Answers(1),
            )
        }
        _ => {
            let pad = "x".repeat(rng.below(512 * 1024) as usize);
            (
                "big argument",
                mcp(
                    Some(token),
                    &call(
                        n,
                        "bucket_objects_list",
                        json!({"bucket": "fuzz", "prefix": pad}),
                    ),
                ),
                None,
                Expect::Status(200),
            )
        }
    };
    Case {
        what,
        bytes,
        cut,
        expect,
    }
}

/// Sends `case` on a new connection; the statuses of what came back.
async fn send(addr: &str, case: &Case) -> Vec<u16> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.split();
    let bytes = &case.bytes[..case.cut.unwrap_or(case.bytes.len())];
    let write = async {
        // The server may answer (413, 401) and close before taking the whole body.
        let _ = writer.write_all(bytes).await;
        if case.cut.is_some() {
            let _ = writer.shutdown().await;
        }
    };
    let mut received = Vec::new();
    let read = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    };
    let limit = Duration::from_secs(45);
    let done = tokio::time::timeout(limit, async { tokio::join!(write, read) }).await;
    assert!(
        done.is_ok() || matches!(case.expect, Expect::Abandoned),
        "{}: no answer within {limit:?}",
        case.what
    );
    let text = String::from_utf8_lossy(&received);
    text.match_indices("HTTP/1.1 ")
        .filter_map(|(at, m)| text.get(at + m.len()..at + m.len() + 3)?.parse().ok())
        .collect()
}

#[tokio::test]
async fn random_hostile_requests_are_all_answered_within_bounds() {
    let s3 = TestS3::start().await;
    s3.create_bucket("fuzz").await;
    s3.put("fuzz", "a.txt", b"hello", "text/plain", &[]).await;
    let mut env: Vec<(&str, String)> = s3.env();
    env.push(("QUILT_MCP_JWT_SECRET", SECRET.into()));
    let refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = HttpServer::start_with(&["--max-connections", "64"], &refs).await;
    let pid = server.child.id().unwrap();
    let addr = server.base.trim_start_matches("http://").to_owned();

    let seed = std::env::var("QUILT_MCP_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    let cases: u64 = std::env::var("QUILT_MCP_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(240);
    eprintln!("http fuzz: seed {seed} (QUILT_MCP_FUZZ_SEED={seed} replays), {cases} requests");
    let mut rng = Rng(seed);
    let tokens: Vec<String> = (0..3)
        .map(|i| {
            hs256(&claims_with(json!({
                "sub": format!("fuzz-{i}"),
                "buckets": ["fuzz"],
                "permissions": ["s3:GetObject", "s3:ListBucket"],
                "aws_credentials": {"access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY},
            })))
        })
        .collect();
    let now = now();
    let expired = hs256(&claims_with(json!({"exp": now - 3600, "iat": now - 7200})));
    let all: Vec<Case> = (0..cases)
        .map(|n| case(&mut rng, n, &tokens, &expired))
        .collect();

    let started = Instant::now();
    let results: Vec<(usize, Vec<u16>)> = futures::stream::iter(all.iter().enumerate())
        .map(|(i, case)| {
            let addr = addr.clone();
            async move { (i, send(&addr, case).await) }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let mut kinds = std::collections::BTreeMap::new();
    for (i, statuses) in results {
        let case = &all[i];
        *kinds.entry(case.what).or_insert(0) += 1;
        match case.expect {
            Expect::Status(status) => assert_eq!(
                statuses,
                vec![status],
                "case {i} ({}), seed {seed}",
                case.what
            ),
            Expect::Answers(n) => assert_eq!(
                statuses.len(),
                n,
                "case {i} ({}), seed {seed}: {statuses:?}",
                case.what
            ),
            Expect::Abandoned => {}
        }
    }
    let peak = peak_rss_mb(pid);
    eprintln!(
        "http fuzz: {cases} requests in {:.1} s, peak RSS {peak} MB; {kinds:?}",
        elapsed.as_secs_f64()
    );
    assert!(
        peak < RSS_BOUND_MB,
        "peak RSS {peak} MB over {RSS_BOUND_MB} MB, seed {seed}"
    );
    let last = send(
        &addr,
        &Case {
            what: "final call",
            bytes: mcp(Some(&tokens[0]), &call(1, "auth_status", json!({}))),
            cut: None,
            expect: Expect::Status(200),
        },
    )
    .await;
    assert_eq!(last, vec![200]);
}
