//! HTTP load: authorized `tools/call`s over streamable HTTP from 200 distinct tokens
//! (rotating per request) on 64 keep-alive connections for a fixed time, against the
//! release binary on 127.0.0.1; calls/s, p50/p99 latency and the server's peak RSS:
//!
//! ```sh
//! cargo bench --bench http_throughput            # every scenario
//! cargo bench --bench http_throughput -- auth    # scenarios whose name contains "auth"
//! ```
//!
//! Scenarios: `auth_status` without and with `--rate-limit` (a limit no token reaches,
//! which measures the limiter's cost, and one that refuses most calls with 429), and
//! `bucket_objects_list` against the in-process S3 and, when `QUILT_MCP_TEST_MOTO`
//! names a Python with moto (`scripts/ci-moto`), against moto. The load generator is a
//! small HTTP/1.1 client on one thread (requests prepared up front, responses framed
//! by `Content-Length`), so that it takes as little of the machine as it can; the
//! machine's load average is printed next to each figure, and so is the CPU time the
//! server and the generator used per call (a figure that the other work on the machine
//! disturbs far less than calls/s). After each scenario the server is stopped with
//! SIGTERM and its `tool_call` log lines are counted against the calls it answered: a
//! line lost under load is a failure of the bench.
//!
//! `QUILT_MCP_BENCH_SECONDS` (default 10) sets the measured time,
//! `QUILT_MCP_BENCH_CONNECTIONS` (64) and `QUILT_MCP_BENCH_TOKENS` (200) the load,
//! `QUILT_MCP_BENCH_LOG` the server's log filter (default `info`, as served).

use quilt_mcp_testkit::s3;
mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::OrFail as _;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};

const WARMUP: Duration = Duration::from_secs(2);

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn token(user: usize, s3: bool) -> String {
    let mut extra = json!({"buckets": ["bench"], "permissions": ["s3:GetObject", "s3:ListBucket"], "level": "read"});
    if s3 {
        extra["aws_credentials"] =
            json!({"access_key_id": s3::ACCESS_KEY, "secret_access_key": s3::SECRET_KEY});
    }
    support::token(&format!("user-{user}"), extra)
}

/// One prepared request per token.
fn requests(host: &str, tokens: usize, s3: bool, body: &str) -> Vec<Vec<u8>> {
    (0..tokens)
        .map(|user| {
            format!(
                "POST /mcp HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n{body}",
                token(user, s3),
                body.len()
            )
            .into_bytes()
        })
        .collect()
}

/// What one connection saw while measuring.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    limited: usize,
    errors: usize,
    /// Calls answered 200 before the measured time (the warm-up).
    warmup_ok: usize,
}

/// CPU time (user and system) in clock ticks of `/proc/<what>/stat`: a process id,
/// `self`, or `thread-self`.
fn cpu_ticks(what: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{what}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    Some(user + system)
}

/// Clock ticks per second of `/proc/*/stat` (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// Reads one HTTP/1.1 response from `stream` into `buf` (reused); its status.
async fn read_response(
    stream: &mut tokio::net::TcpStream,
    buf: &mut Vec<u8>,
) -> std::io::Result<u16> {
    buf.clear();
    let mut chunk = [0u8; 16 * 1024];
    let header_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_ascii_lowercase();
    let status: u16 = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < header_end + length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    if head.contains("\r\nconnection: close") {
        return Err(std::io::ErrorKind::ConnectionAborted.into());
    }
    Ok(status)
}

/// One keep-alive connection sending `requests` in turn (starting at `first`) until
/// `deadline`; reconnects when the server closes (a 429 closes the connection).
async fn connection(
    addr: std::net::SocketAddr,
    requests: std::sync::Arc<Vec<Vec<u8>>>,
    first: usize,
    measure_from: Instant,
    deadline: Instant,
) -> Tally {
    let mut tally = Tally::default();
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut next = first;
    let mut stream = None;
    while Instant::now() < deadline {
        let conn = match &mut stream {
            Some(conn) => conn,
            None => match tokio::net::TcpStream::connect(addr).await {
                Ok(conn) => {
                    let _ = conn.set_nodelay(true);
                    stream.insert(conn)
                }
                Err(_) => {
                    tally.errors += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let request = &requests[next % requests.len()];
        next += 1;
        let started = Instant::now();
        let result = match conn.write_all(request).await {
            Ok(()) => read_response(conn, &mut buf).await,
            Err(e) => Err(e),
        };
        let measured = started >= measure_from;
        match result {
            Ok(200) if measured => tally.latencies.push(started.elapsed()),
            Ok(200) => tally.warmup_ok += 1,
            Ok(_) if !measured => {}
            Ok(_) => tally.errors += 1,
            // A 429 says `Connection: close`: counted, and a new connection.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionAborted => {
                if measured {
                    if buf.get(9..12) == Some(b"429") {
                        tally.limited += 1;
                    } else if buf.get(9..12) == Some(b"200") {
                        tally.latencies.push(started.elapsed());
                    } else {
                        tally.errors += 1;
                    }
                } else if buf.get(9..12) == Some(b"200") {
                    tally.warmup_ok += 1;
                }
                stream = None;
            }
            Err(_) => {
                if measured {
                    tally.errors += 1;
                }
                stream = None;
            }
        }
    }
    tally
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn peak_rss_mb(pid: Option<u32>) -> String {
    pid.and_then(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?.to_owned();
            let kb: u64 = line
                .trim_start_matches("VmHWM:")
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()?;
            Some(format!("{:.1} MB", kb as f64 / 1024.0))
        })
        .unwrap_or_else(|| "n/a".to_owned())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "n/a".to_owned())
}

/// One scenario: a fresh server with `flags` (and `s3` as its S3), `body` as the
/// call, the load for the measured time; prints one line.
async fn scenario(name: &str, flags: &[&str], s3: Option<&str>, body: &str) {
    let seconds = setting("QUILT_MCP_BENCH_SECONDS", 10);
    let connections = setting("QUILT_MCP_BENCH_CONNECTIONS", 64) as usize;
    let tokens = setting("QUILT_MCP_BENCH_TOKENS", 200) as usize;
    // A log directory of its own, whose `tool_call` lines are counted at the end.
    let log_dir = tempfile::tempdir().or_fail("a log directory");
    let mut child = support::server_command(s3)
        // The server's default log level unless told otherwise: every call logs.
        .env(
            "QUILT_MCP_LOG",
            std::env::var("QUILT_MCP_BENCH_LOG").unwrap_or_else(|_| "info".to_owned()),
        )
        .env("QUILT_MCP_LOG_DIR", log_dir.path())
        .args(["serve", "--http", "127.0.0.1:0"])
        .args(flags)
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
    // The rest of its stderr is read and dropped: unread warnings (a `rate_limited`
    // line per burst) would fill the pipe and stop the server in its next write.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let addr: std::net::SocketAddr = url
        .trim_start_matches("http://")
        .trim_end_matches("/mcp")
        .parse()
        .or_fail("the server's address");
    let pid = child.id();
    let requests = std::sync::Arc::new(requests(&addr.to_string(), tokens, s3.is_some(), body));
    // A check call first: the scenario measures successful calls only.
    let mut check = tokio::net::TcpStream::connect(addr)
        .await
        .or_fail("connecting");
    check.write_all(&requests[0]).await.or_fail("sending");
    let mut buf = Vec::new();
    let status = read_response(&mut check, &mut buf).await.or_fail("reading");
    let text = String::from_utf8_lossy(&buf);
    if status != 200 || text.contains("\"isError\":true") || text.contains("\"error\":{") {
        support::fail(name, format!("the check call failed: {text}"));
    }
    drop(check);

    let load_before = load_average();
    let measure_from = Instant::now() + WARMUP;
    let deadline = measure_from + Duration::from_secs(seconds);
    // The server's CPU time is read when the measured time starts and when it ends.
    let server_from = std::thread::spawn(move || {
        std::thread::sleep(measure_from.saturating_duration_since(Instant::now()));
        pid.and_then(|p| cpu_ticks(&p.to_string()))
    });
    // The load generator runs on a thread of its own, on one core at most.
    let generator = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .or_fail("the load generator's runtime");
        runtime.block_on(async move {
            let from = tokio::spawn(async move {
                tokio::time::sleep_until(measure_from.into()).await;
                cpu_ticks("thread-self")
            });
            let tasks: Vec<_> = (0..connections)
                .map(|c| {
                    let requests = requests.clone();
                    tokio::spawn(connection(addr, requests, c * 7, measure_from, deadline))
                })
                .collect();
            let mut all = Tally::default();
            for task in tasks {
                let tally = task.await.or_fail("a connection task");
                all.latencies.extend(tally.latencies);
                all.limited += tally.limited;
                all.errors += tally.errors;
                all.warmup_ok += tally.warmup_ok;
            }
            let used = cpu_ticks("thread-self")
                .zip(from.await.ok().flatten())
                .map(|(to, from)| to.saturating_sub(from));
            (all, used)
        })
    });
    let (mut all, generator_ticks) = generator
        .join()
        .unwrap_or_else(|_| support::fail(name, "the load generator stopped"));
    let server_ticks = pid
        .and_then(|p| cpu_ticks(&p.to_string()))
        .zip(server_from.join().ok().flatten())
        .map(|(to, from)| to.saturating_sub(from));
    if all.latencies.is_empty() && all.limited == 0 {
        support::fail(name, "no call succeeded");
    }
    all.latencies.sort();
    let secs = seconds as f64;
    let per_call = |ticks: Option<u64>| match ticks {
        Some(ticks) if !all.latencies.is_empty() => format!(
            "{:.0} us",
            ticks as f64 / TICKS_PER_SECOND / all.latencies.len() as f64 * 1e6
        ),
        _ => "n/a".to_owned(),
    };
    let rss = peak_rss_mb(pid);
    let load_after = load_average();
    // SIGTERM: the server flushes its log lines and exits.
    let stopped = match pid {
        Some(pid) => std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success()),
        None => false,
    };
    if !stopped
        || tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .is_err()
    {
        let _ = child.kill().await;
        support::fail(name, "the server did not stop on SIGTERM");
    }
    // Every answered call (the check call, the warm-up and the measured ones) logs
    // one `tool_call` line.
    let answered = all.latencies.len() + all.warmup_ok + 1;
    let logged = tool_call_lines(log_dir.path());
    println!(
        "{name}: {connections} connections, {tokens} tokens, {seconds} s: {:.0} calls/s, p50 {:.2} ms, p99 {:.2} ms, 429 {:.0}/s, errors {}; CPU per call: server {}, generator {}; server peak RSS {rss}; tool_call lines {logged} of {answered} calls; load {load_before} -> {load_after}",
        all.latencies.len() as f64 / secs,
        percentile(&all.latencies, 0.50).as_secs_f64() * 1000.0,
        percentile(&all.latencies, 0.99).as_secs_f64() * 1000.0,
        all.limited as f64 / secs,
        all.errors,
        per_call(server_ticks),
        per_call(generator_ticks),
    );
    if logged != answered {
        support::fail(
            name,
            format!("{answered} calls answered but {logged} tool_call lines logged"),
        );
    }
}

/// The `tool_call` lines of the log files in `dir`.
fn tool_call_lines(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .map(|text| {
            text.lines()
                .filter(|l| l.contains(r#""event":"tool_call""#))
                .count()
        })
        .sum()
}

/// Starts moto's server through the Python `QUILT_MCP_TEST_MOTO` names
/// (`scripts/ci-moto`) on a free port with a `bench` bucket
/// of ten keys; its endpoint and the process.
async fn moto() -> Option<(String, std::process::Child)> {
    let path = std::env::var_os("QUILT_MCP_TEST_MOTO")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .or_fail("a free port")
        .port();
    let child = std::process::Command::new(path)
        .args(["-c", "import sys, moto.server as s; s.main(sys.argv[1:])"])
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .or_fail("starting moto_server");
    let endpoint = format!("http://127.0.0.1:{port}");
    let config = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(&endpoint)
        .force_path_style(true)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            s3::ACCESS_KEY,
            s3::SECRET_KEY,
            None,
            None,
            "bench",
        ))
        .build();
    let client = aws_sdk_s3::Client::from_conf(config);
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.list_buckets().send().await.is_err() {
        if Instant::now() > deadline {
            support::fail("moto", "moto_server did not answer");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    client
        .create_bucket()
        .bucket("bench")
        .send()
        .await
        .or_fail("creating the moto bucket");
    for i in 0..10 {
        client
            .put_object()
            .bucket("bench")
            .key(format!("data/object-{i}.txt"))
            .body(aws_sdk_s3::primitives::ByteStream::from_static(b"x"))
            .send()
            .await
            .or_fail("seeding moto");
    }
    Some((endpoint, child))
}

#[tokio::main]
async fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f));
    let auth = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "auth_status", "arguments": {}}}).to_string();
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "bucket_objects_list", "arguments": {"bucket": "bench", "prefix": "data/"}}}).to_string();

    if wanted("auth_status") {
        scenario("auth_status", &[], None, &auth).await;
    }
    if wanted("auth_status, rate limit not reached") {
        scenario(
            "auth_status, rate limit not reached (--rate-limit 1000)",
            &["--rate-limit", "1000"],
            None,
            &auth,
        )
        .await;
    }
    if wanted("auth_status, rate limited") {
        scenario(
            "auth_status, rate limited (--rate-limit 20)",
            &["--rate-limit", "20"],
            None,
            &auth,
        )
        .await;
    }
    if wanted("list, in-process S3") {
        let s3 = s3::TestS3::start().await;
        s3.create_bucket("bench").await;
        for i in 0..10 {
            s3.put(
                "bench",
                &format!("data/object-{i}.txt"),
                b"x",
                "text/plain",
                &[],
            )
            .await;
        }
        scenario("list, in-process S3", &[], Some(&s3.endpoint), &list).await;
    }
    if wanted("list, moto") {
        match moto().await {
            Some((endpoint, mut child)) => {
                scenario("list, moto", &[], Some(&endpoint), &list).await;
                let _ = child.kill();
                let _ = child.wait();
            }
            None => println!(
                "list, moto: not run (QUILT_MCP_TEST_MOTO is not set; scripts/ci-moto installs moto)"
            ),
        }
    }
}
