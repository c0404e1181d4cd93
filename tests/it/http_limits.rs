//! What one HTTP caller can make the server hold, in connections, memory and time
//! (docs/reference.md, HTTP): a client that never reads its responses, a stuck client
//! at shutdown, one token's calls in flight, huge and stalled bodies, `--allowed-host`
//! values, keep-alive clients after a 401, and a closed connection stopping its call.
//! Memory bounds are the server process's peak RSS (`VmHWM`).
use std::time::{Duration, Instant};

use crate::common::fakes::FakeServer;
use crate::common::s3::{ACCESS_KEY, SECRET_KEY, TestS3};
use crate::common::*;
use crate::http::{HttpServer, closed_within, connect, mcp_head, post, post_with};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Whatever one caller sends, the server stays under this peak RSS.
pub(crate) const RSS_BOUND_MB: u64 = 256;

/// The peak RSS of process `pid`, in MB.
pub(crate) fn peak_rss_mb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .unwrap()
        .to_owned();
    let kb: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kb / 1024
}

fn reader_token(buckets: &[&str]) -> String {
    hs256(&claims_with(json!({
        "sub": "mallory",
        "buckets": buckets,
        "permissions": ["s3:GetObject", "s3:ListBucket", "s3:PutObject"],
        "level": "write",
        "aws_credentials": {"access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY},
    })))
}

fn addr(server: &HttpServer) -> std::net::SocketAddr {
    server.base.trim_start_matches("http://").parse().unwrap()
}

/// A client with a 4 KiB receive buffer that pipelines `tools/list` (a large
/// answer, so the server's send buffer fills within moments even on a busy machine)
/// and never reads; the task holds the socket until aborted.
async fn never_reads(server: &HttpServer) -> tokio::task::JoinHandle<()> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr(server)).await.unwrap();
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string();
    let request = format!("{}{list}", mcp_head(Some(&hs256(&claims())), list.len()));
    tokio::spawn(async move {
        let (reader, mut writer) = stream.into_split();
        let batch = request.as_bytes().repeat(100);
        for _ in 0..100 {
            if writer.write_all(&batch).await.is_err() {
                break;
            }
        }
        let _keep = (reader, writer);
        futures::future::pending::<()>().await;
    })
}

/// A client that does not read its responses is closed after 30 s (write timeout),
/// so four of them no longer pin `--max-connections 4` forever; and SIGTERM completes
/// while such clients are connected. (The finding pipelined `GET /healthz`; on a busy
/// test machine a debug server fills its send buffer with those too slowly for the
/// wait below, so these clients pipeline calls with large answers.)
#[tokio::test]
async fn clients_that_never_read_are_closed_and_do_not_block_shutdown() {
    let mut server = HttpServer::start_with(
        &["--max-connections", "4"],
        &[("QUILT_MCP_JWT_SECRET", SECRET)],
    )
    .await;
    let mut stuck = Vec::new();
    for _ in 0..4 {
        stuck.push(never_reads(&server).await);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    // A new client is served once the stuck ones are closed: 30 s, and a margin.
    let started = Instant::now();
    let mut fifth = connect(&server).await;
    fifth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(50), fifth.read(&mut buf))
        .await
        .expect("clients that never read still hold every connection slot after 50 s")
        .unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    eprintln!("served after {:?}", started.elapsed());

    // SIGTERM with stuck clients present: the server still exits.
    for _ in 0..3 {
        stuck.push(never_reads(&server).await);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pid = server.child.id().unwrap();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let exit = tokio::time::timeout(Duration::from_secs(45), server.child.wait())
        .await
        .expect("SIGTERM did not end the server while clients were stuck")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    for task in stuck {
        task.abort();
    }
}

/// `n` values of `[]`, as JSON, within about `bytes`.
fn empty_arrays(bytes: usize) -> String {
    let mut text = String::with_capacity(bytes + 2);
    text.push('[');
    while text.len() + 4 < bytes {
        text.push_str("[],");
    }
    text.push_str("[]]");
    text
}

/// One token sending many bodies just under 4 MiB, of `[]`s (the JSON that costs the
/// most memory per byte), at once: every one is answered and the server's peak RSS
/// stays bounded.
#[tokio::test]
async fn huge_bodies_from_one_token_stay_within_a_memory_bound() {
    let server = HttpServer::start(&[("QUILT_MCP_JWT_SECRET", SECRET)]).await;
    let pid = server.child.id().unwrap();
    let bearer = format!("Bearer {}", hs256(&claims()));
    let size = 4 * 1024 * 1024 - 1024;
    let arrays = empty_arrays(size - 200);
    let in_arguments = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"auth_status","arguments":{{"x":{arrays}}}}}}}"#
    );
    let bare = empty_arrays(size);
    let client = reqwest::Client::new();
    let calls = (0..16).map(|i| {
        let body = if i % 2 == 0 {
            in_arguments.clone()
        } else {
            bare.clone()
        };
        let request = client
            .post(server.mcp())
            .header("authorization", &bearer)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body);
        async move {
            let response = request.send().await.expect("a huge body was not answered");
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            (status, text)
        }
    });
    for (status, text) in futures::future::join_all(calls).await {
        assert!(
            status.is_client_error() || status.is_success(),
            "{status}: {text}"
        );
    }
    let peak = peak_rss_mb(pid);
    eprintln!("peak RSS after 16 huge bodies: {peak} MB");
    assert!(
        peak < RSS_BOUND_MB,
        "peak RSS {peak} MB over {RSS_BOUND_MB} MB"
    );
    // The server still serves.
    let response = post(&server.mcp(), Some(&bearer), crate::http::initialize()).await;
    assert_eq!(response.status(), 200);
}

/// 150 bodies of one token announced as 4 MiB, sent but for their last byte, then
/// stalled: the server holds at most a bounded number of them at once, every one is
/// answered (408 when its body stalled, 429 when no slot freed in time), and peak
/// RSS stays bounded.
#[tokio::test]
async fn stalled_bodies_from_one_token_are_bounded() {
    let server = HttpServer::start(&[("QUILT_MCP_JWT_SECRET", SECRET)]).await;
    let pid = server.child.id().unwrap();
    let token = hs256(&claims());
    let length = 4 * 1024 * 1024;
    let body = empty_arrays(length);
    let head = mcp_head(Some(&token), body.len());
    let mut clients = Vec::new();
    for _ in 0..150 {
        let stream = connect(&server).await;
        let (head, body) = (head.clone(), body.clone());
        clients.push(tokio::spawn(async move {
            let (mut reader, mut writer) = stream.into_split();
            let writing = tokio::spawn(async move {
                let _ = writer.write_all(head.as_bytes()).await;
                let _ = writer.write_all(&body.as_bytes()[..body.len() - 1]).await;
                futures::future::pending::<()>().await;
            });
            let mut received = Vec::new();
            let read = async {
                let mut buf = [0u8; 4096];
                while let Ok(n) = reader.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    received.extend_from_slice(&buf[..n]);
                }
            };
            let answered = tokio::time::timeout(Duration::from_secs(100), read).await;
            writing.abort();
            assert!(answered.is_ok(), "a stalled body was never answered");
            String::from_utf8_lossy(&received).into_owned()
        }));
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    let peak = peak_rss_mb(pid);
    eprintln!("peak RSS with 150 stalled bodies: {peak} MB");
    assert!(
        peak < RSS_BOUND_MB,
        "peak RSS {peak} MB over {RSS_BOUND_MB} MB"
    );
    let mut statuses = std::collections::BTreeMap::new();
    for client in clients {
        let text = client.await.unwrap();
        let status = text.get(9..12).unwrap_or("none").to_owned();
        *statuses.entry(status).or_insert(0) += 1;
    }
    eprintln!("answers: {statuses:?}");
    assert!(
        statuses.keys().all(|s| s == "408" || s == "429"),
        "{statuses:?}"
    );
    assert!(peak_rss_mb(pid) < RSS_BOUND_MB);
}

/// One token runs at most 16 calls at once: of 20 concurrent calls to a slow S3,
/// 16 reach it and 4 wait for a free slot; all 20 are answered.
#[tokio::test]
async fn one_token_runs_at_most_sixteen_calls_at_once() {
    let slow = FakeServer::slow_s3_listing(Duration::from_secs(8)).await;
    let server = HttpServer::start(&[
        ("QUILT_MCP_JWT_SECRET", SECRET),
        ("AWS_ENDPOINT_URL_S3", slow.url.as_str()),
        ("QUILT_MCP_S3_FORCE_PATH_STYLE", "true"),
    ])
    .await;
    let bearer = format!("Bearer {}", reader_token(&["alice-data"]));
    let client = reqwest::Client::new();
    let calls: Vec<_> = (0..20)
        .map(|i| {
            let (url, bearer, client) = (server.mcp(), bearer.clone(), client.clone());
            tokio::spawn(async move {
                let body = json!({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                    "params": {"name": "bucket_objects_list", "arguments": {"bucket": "alice-data"}}});
                let response = post_with(&client, &url, Some(&bearer), body).await;
                (response.status(), response.text().await.unwrap())
            })
        })
        .collect();
    // Sixteen reach S3 (each takes 8 s there); a moment later still only sixteen.
    let deadline = Instant::now() + Duration::from_secs(6);
    while slow.requests().len() < 16 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        slow.requests().len(),
        16,
        "calls of one token running at once"
    );
    // Another token is not held up by the first one's slots.
    let other = hs256(&claims_with(json!({"sub": "bob"})));
    let status = json!({"jsonrpc": "2.0", "id": 99, "method": "tools/call",
        "params": {"name": "auth_status", "arguments": {}}});
    let started = Instant::now();
    let response = post(&server.mcp(), Some(&format!("Bearer {other}")), status).await;
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(5));
    for call in calls {
        let (status, text) = call.await.unwrap();
        assert_eq!(status, 200, "{text}");
        assert!(text.contains("slow.txt"), "{text}");
    }
    assert_eq!(slow.requests().len(), 20);
}

/// Sixty concurrent 8 MiB fetches of one token (twenty of them never read): the
/// token's 16 call slots keep the server's peak RSS near what 16 fetches hold at once
/// (1,336 MB before the slots). Each call holds its object several times over (bytes,
/// base64, the result, its text, the JSON frame): 640-976 MB were measured, depending
/// on how the machine's load lines the calls up. The bound allows 80 MB a slot.
const FETCH_RSS_BOUND_MB: u64 = 16 * 80;

#[tokio::test]
async fn concurrent_big_fetches_of_one_token_stay_within_a_memory_bound() {
    let s3 = TestS3::start().await;
    s3.create_bucket("lab-data").await;
    let object: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    s3.seed_file("lab-data", "big.bin", &object);
    let mut env: Vec<(&str, String)> = s3.env();
    env.push(("QUILT_MCP_JWT_SECRET", SECRET.into()));
    let refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = HttpServer::start(&refs).await;
    let pid = server.child.id().unwrap();
    let token = reader_token(&["lab-data"]);
    let fetch = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "bucket_object_fetch",
                   "arguments": {"s3_uri": "s3://lab-data/big.bin", "max_bytes": 8 * 1024 * 1024}}})
    .to_string();
    // Twenty that never read their answers, and forty that do.
    let mut unread = Vec::new();
    for _ in 0..20 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut stream = socket.connect(addr(&server)).await.unwrap();
        stream
            .write_all(format!("{}{fetch}", mcp_head(Some(&token), fetch.len())).as_bytes())
            .await
            .unwrap();
        unread.push(stream);
    }
    let bearer = format!("Bearer {token}");
    let client = reqwest::Client::new();
    let calls = (0..40).map(|_| {
        let (url, bearer, fetch) = (server.mcp(), bearer.clone(), fetch.clone());
        let client = client.clone();
        async move {
            let response = client
                .post(url)
                .header("authorization", bearer)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .body(fetch)
                .send()
                .await
                .unwrap();
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            (status, text.len())
        }
    });
    for (status, len) in futures::future::join_all(calls).await {
        assert!(status == 200 || status == 429, "{status}");
        if status == 200 {
            assert!(len > 8 * 1024 * 1024, "{len}");
        }
    }
    let peak = peak_rss_mb(pid);
    eprintln!("peak RSS with 60 concurrent 8 MiB fetches: {peak} MB");
    assert!(
        peak < FETCH_RSS_BOUND_MB,
        "peak RSS {peak} MB over {FETCH_RSS_BOUND_MB} MB"
    );
    drop(unread);
}

/// `--allowed-host` takes host names with an optional port; anything else stops the
/// server at start-up, so a typo can never leave an empty list that allows every Host.
#[tokio::test]
async fn allowed_hosts_are_checked_at_startup() {
    let refused = [
        "https://mcp.example.com",
        "",
        " ",
        "name/",
        "mcp.example.com/mcp",
        "user@mcp.example.com",
        "mcp.example.com:99999",
        "mcp.example.com:port",
        "a b",
        "-bad.example.com",
        "[::1",
        "*.example.com",
    ];
    for value in refused {
        let running = tokio::process::Command::new(env!("CARGO_BIN_EXE_quilt-mcp"))
            .args(["serve", "--http", "127.0.0.1:0"])
            .arg(format!("--allowed-host={value}"))
            .env_clear()
            .env("QUILT_MCP_JWT_SECRET", SECRET)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(10), running)
            .await
            .unwrap_or_else(|_| panic!("--allowed-host {value:?}: the server started"))
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{value:?}: {stderr}");
        assert!(stderr.contains("--allowed-host"), "{value:?}: {stderr}");
        assert!(!stderr.contains("serving MCP"), "{value:?}: {stderr}");
    }
    let server = HttpServer::start_with(
        &[
            "--allowed-host",
            "MCP.example.com:8443",
            "--allowed-host",
            "[::1]",
            "--allowed-host",
            "10.0.0.7",
        ],
        &[
            ("QUILT_MCP_JWT_SECRET", SECRET),
            ("QUILT_CATALOG_URL", "https://catalog.example.com"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    for (host, expected) in [
        ("mcp.example.com:8443", 200),
        ("mcp.example.com", 403),
        ("[::1]:1234", 200),
        ("10.0.0.7", 200),
        ("evil.example", 403),
        ("127.0.0.1", 403),
    ] {
        let response = client
            .get(format!(
                "{}/.well-known/oauth-protected-resource",
                server.base
            ))
            .header("host", host)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected, "{host}");
    }
}

/// A keep-alive client whose unauthenticated request body follows the headers a
/// moment later: the 401 says `Connection: close`, arrives whole, and then the
/// server closes the connection cleanly (no reset that would lose the answer).
#[tokio::test]
async fn every_401_says_connection_close_and_arrives_whole() {
    let server = HttpServer::start(&[("QUILT_MCP_JWT_SECRET", SECRET)]).await;
    let body = crate::http::initialize().to_string();
    for (round, bearer) in [None, Some("garbage")]
        .into_iter()
        .cycle()
        .take(20)
        .enumerate()
    {
        let mut stream = connect(&server).await;
        stream
            .write_all(mcp_head(bearer, body.len()).as_bytes())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        stream.write_all(body.as_bytes()).await.unwrap();
        let mut received = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), async {
            let mut buf = [0u8; 4096];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) => return Ok(()),
                    Ok(n) => received.extend_from_slice(&buf[..n]),
                    Err(e) => return Err(e),
                }
            }
        })
        .await
        .expect("the connection stayed open after a 401");
        let text = String::from_utf8_lossy(&received).into_owned();
        assert!(read.is_ok(), "round {round}: {read:?} after {text:?}");
        assert!(text.starts_with("HTTP/1.1 401"), "round {round}: {text}");
        assert!(
            text.to_ascii_lowercase()
                .contains("\r\nconnection: close\r\n"),
            "round {round}: {text}"
        );
        assert!(text.trim_end().ends_with('}'), "round {round}: {text}");
    }
    // A pooled keep-alive client loses nothing: 100 requests, 100 answers.
    let client = reqwest::Client::new();
    for i in 0..100 {
        let response = client
            .post(server.mcp())
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(response.status(), 401);
    }
    // Still closed after the bounded body wait when the body never comes.
    let mut stream = connect(&server).await;
    stream
        .write_all(format!("{}{{", mcp_head(None, 1000)).as_bytes())
        .await
        .unwrap();
    let text = closed_within(&mut stream, Duration::from_secs(20), "stalled, no token").await;
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
}

/// An S3 whose `GetObject` of `slow.bin` never answers; everything else is a 404.
async fn hanging_s3() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use axum::extract::{Request, State};
    use axum::response::IntoResponse;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let hanging = Arc::new(AtomicUsize::new(0));
    async fn handle(
        State(hanging): State<Arc<AtomicUsize>>,
        req: Request,
    ) -> axum::response::Response {
        if req.method() == http::Method::GET && req.uri().path().ends_with("/slow.bin") {
            hanging.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(300)).await;
        }
        (
            http::StatusCode::NOT_FOUND,
            [("content-type", "application/xml")],
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>",
        )
            .into_response()
    }
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(hanging.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, hanging)
}

/// A client that closes its connection while its call runs cancels the call: the
/// call's cancellation fires within a second, so `package_create`, parked in a read
/// that would take minutes, ends at once (its `tool_call` line is written).
#[tokio::test]
async fn a_closed_connection_cancels_its_call() {
    let (s3, hanging) = hanging_s3().await;
    let server = HttpServer::start(&[
        ("QUILT_MCP_JWT_SECRET", SECRET),
        ("AWS_ENDPOINT_URL_S3", s3.as_str()),
        ("QUILT_MCP_S3_FORCE_PATH_STYLE", "true"),
    ])
    .await;
    let token = reader_token(&["lab-data"]);
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "package_create", "arguments": {
            "registry": "lab-data", "package_name": "team/abandoned",
            "entries": [{"logical_key": "a.bin", "s3_uri": "s3://lab-data/slow.bin"}]}}})
    .to_string();
    let mut stream = connect(&server).await;
    stream
        .write_all(format!("{}{call}", mcp_head(Some(&token), call.len())).as_bytes())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while hanging.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the call never read slow.bin");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let closed = Instant::now();
    drop(stream);
    let ended = loop {
        let lines = log_lines(server.log_dir.path());
        if let Some(line) = lines
            .iter()
            .find(|l| l["event"] == "tool_call" && l["tool"] == "package_create")
        {
            break line.clone();
        }
        assert!(
            closed.elapsed() < Duration::from_secs(5),
            "the call went on after its connection closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!(
        "call ended {:?} after the close: {ended:?}",
        closed.elapsed()
    );
    assert_eq!(ended["outcome"], Value::from("error"), "{ended:?}");
}

/// `--rate-limit 5`: a token that sends a burst of 20 calls gets 429 for those over
/// its bucket, with `Retry-After` and `{"error": "rate_limited", "retry_after": s}`,
/// logged once for the burst; another token calling at the same time is not limited.
#[tokio::test]
async fn a_token_over_its_rate_limit_gets_429_and_others_do_not() {
    let server =
        HttpServer::start_with(&["--rate-limit", "5"], &[("QUILT_MCP_JWT_SECRET", SECRET)]).await;
    let fast = format!("Bearer {}", hs256(&claims_with(json!({"sub": "fast"}))));
    let calm = format!("Bearer {}", hs256(&claims_with(json!({"sub": "calm"}))));
    let status = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "auth_status", "arguments": {}}});
    let mut limited = 0;
    let mut served = 0;
    let url = server.mcp();
    let client = reqwest::Client::new();
    let burst = (0..20).map(|_| post_with(&client, &url, Some(&fast), status.clone()));
    let calm_calls = (0..5).map(|_| post_with(&client, &url, Some(&calm), status.clone()));
    let (burst, calm_calls) = tokio::join!(
        futures::future::join_all(burst),
        futures::future::join_all(calm_calls)
    );
    for other in calm_calls {
        assert_eq!(other.status(), 200, "the calm token was limited");
    }
    for (i, response) in burst.into_iter().enumerate() {
        match response.status().as_u16() {
            200 => served += 1,
            429 => {
                limited += 1;
                let retry: u64 = response.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((1..=2).contains(&retry), "{retry}");
                let body: Value = response.json().await.unwrap();
                assert_eq!(
                    body,
                    json!({"error": "rate_limited", "retry_after": retry}),
                    "call {i}"
                );
            }
            other => panic!("call {i}: {other}"),
        }
    }
    assert!(served >= 5, "{served} served");
    assert!(limited >= 10, "{limited} limited of 20");
    // After a second the bucket has refilled.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let response = post(&server.mcp(), Some(&fast), status.clone()).await;
    assert_eq!(response.status(), 200);
    let logged: Vec<_> = log_lines(server.log_dir.path())
        .into_iter()
        .filter(|l| l["event"] == "rate_limited")
        .collect();
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert!(
        logged[0]["token_fingerprint"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    // The flag takes a whole number of at least 1.
    for value in ["0", "-1", "x", "1.5"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_quilt-mcp"))
            .args(["serve", "--http", "127.0.0.1:0", "--rate-limit", value])
            .env_clear()
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{value}");
    }
}
