//! Hostile JSON-RPC over stdio: random bytes, truncated JSON, wrong types, odd and
//! huge ids, deep nesting, a 17 MiB line and batches, interleaved with valid requests.
//! Every line that needs an answer gets exactly one (with its id when it carried a
//! usable one, else with a null id), stdout carries nothing but JSON-RPC, and the
//! process stays up and serves a final `tools/list`.
use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use crate::common::*;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

/// A tiny seeded generator (xorshift64*), so a failure can be replayed.
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

/// What one line must get back.
enum Expect {
    /// One answer carrying this id.
    Id(Value),
    /// One answer with a null id.
    Null,
    /// Nothing (a notification).
    Nothing,
}

fn hostile_lines(rng: &mut Rng) -> Vec<(Vec<u8>, Expect)> {
    let mut lines = Vec::new();
    for n in 0..300i64 {
        let id = 1001 + n;
        let valid = json!({"jsonrpc": "2.0", "id": id, "method": "ping"}).to_string();
        let line = match n % 15 {
            // Random bytes after a character no JSON text starts with.
            0 => {
                let len = rng.below(200) as usize;
                let mut bytes = vec![b'#'];
                bytes.extend((0..len).map(|_| match rng.below(256) as u8 {
                    b'\n' => b' ',
                    b => b,
                }));
                (bytes, Expect::Null)
            }
            // Truncated JSON: the id cannot be known.
            1 => {
                let cut = 1 + rng.below(valid.len() as u64 - 2) as usize;
                (valid.as_bytes()[..cut].to_vec(), Expect::Null)
            }
            // Valid requests.
            2 => (valid.into_bytes(), Expect::Id(json!(id))),
            3 => (
                json!({"jsonrpc": "2.0", "id": format!("s-{id}"), "method": "tools/list"})
                    .to_string()
                    .into_bytes(),
                Expect::Id(json!(format!("s-{id}"))),
            ),
            // Wrong types and missing fields, with a usable id.
            4 => (
                json!({"jsonrpc": "2.0", "id": id, "method": 42})
                    .to_string()
                    .into_bytes(),
                Expect::Id(json!(id)),
            ),
            5 => (
                json!({"id": id, "method": "ping"}).to_string().into_bytes(),
                Expect::Id(json!(id)),
            ),
            6 => (
                json!({"jsonrpc": 2, "id": id, "method": "tools/list"})
                    .to_string()
                    .into_bytes(),
                Expect::Id(json!(id)),
            ),
            // Ids that are not usable: a null answer.
            7 => (
                format!(r#"{{"jsonrpc":"2.0","id":1{id}000000000000000000,"method":"ping"}}"#)
                    .into_bytes(),
                Expect::Null,
            ),
            8 => (
                format!(r#"{{"jsonrpc":"2.0","id":{id}.5,"method":"ping"}}"#).into_bytes(),
                Expect::Null,
            ),
            // A huge string id is still an id.
            9 => {
                let big = format!("{id}-{}", "i".repeat(10_000));
                (
                    json!({"jsonrpc": "2.0", "id": big, "method": "ping"})
                        .to_string()
                        .into_bytes(),
                    Expect::Id(json!(big)),
                )
            }
            // Nesting far past the limit, inside a request with an id.
            10 => {
                let depth = 200 + rng.below(300) as usize;
                (
                    format!(
                        r#"{{"jsonrpc":"2.0","id":{id},"method":"ping","params":{{"_meta":{{"x":{}{}}}}}}}"#,
                        "[".repeat(depth),
                        "]".repeat(depth)
                    )
                    .into_bytes(),
                    Expect::Null,
                )
            }
            // Batches are not supported.
            11 => (format!("[{valid}]").into_bytes(), Expect::Null),
            // A method nobody knows still gets an answer with its id.
            12 => (
                json!({"jsonrpc": "2.0", "id": id, "method": "no/such/method"})
                    .to_string()
                    .into_bytes(),
                Expect::Id(json!(id)),
            ),
            // Notifications get nothing.
            13 => (
                json!({"jsonrpc": "2.0", "method": "notifications/whatever"})
                    .to_string()
                    .into_bytes(),
                Expect::Nothing,
            ),
            _ => (b"   ".to_vec(), Expect::Nothing),
        };
        lines.push(line);
    }
    // One line over 16 MiB, in the middle.
    let huge = format!(
        r#"{{"jsonrpc":"2.0","id":99,"method":"ping","params":{{"_meta":{{"pad":"{}"}}}}}}"#,
        "p".repeat(17 * 1024 * 1024)
    );
    lines.insert(150, (huge.into_bytes(), Expect::Null));
    lines
}

#[tokio::test]
async fn every_hostile_line_is_answered_and_the_server_stays_up() {
    let log_dir = tempfile::tempdir().unwrap();
    let token = hs256(&claims());
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_quilt-mcp"));
    cmd.env_clear();
    for (k, v) in base_env(log_dir.path()) {
        cmd.env(k, v);
    }
    cmd.env("QUILT_MCP_JWT_SECRET", SECRET)
        .env("QUILT_MCP_TOKEN", &token)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();

    // Every stdout line, parsed: nothing but JSON-RPC may appear there.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let reader = tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        while let Some(line) = lines.next_line().await.unwrap() {
            let message: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line:.200}"));
            assert_eq!(message["jsonrpc"], "2.0", "{line:.200}");
            tx.send(message).unwrap();
        }
    });
    let recv = async |rx: &mut tokio::sync::mpsc::UnboundedReceiver<Value>| {
        tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("an answer within 20 s")
            .expect("stdout open")
    };

    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "fuzz", "version": "0"}}});
    stdin
        .write_all(format!("{init}\n").as_bytes())
        .await
        .unwrap();
    let answer = recv(&mut rx).await;
    assert_eq!(answer["id"], 0);
    assert!(answer["result"]["serverInfo"].is_object(), "{answer}");
    stdin
        .write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n")
        .await
        .unwrap();

    let mut rng = Rng(0x5eed_1234_abcd_0042);
    let lines = hostile_lines(&mut rng);
    let mut want_ids: BTreeMap<String, usize> = BTreeMap::new();
    let mut want_null = 0usize;
    for (_, expect) in &lines {
        match expect {
            Expect::Id(id) => *want_ids.entry(id.to_string()).or_default() += 1,
            Expect::Null => want_null += 1,
            Expect::Nothing => {}
        }
    }
    let started = std::time::Instant::now();
    let writer = tokio::spawn(async move {
        for (mut line, _) in lines {
            line.push(b'\n');
            stdin.write_all(&line).await.unwrap();
        }
        stdin
    });

    let expected = want_ids.values().sum::<usize>() + want_null;
    let mut got_ids: BTreeMap<String, usize> = BTreeMap::new();
    let mut got_null = 0usize;
    for _ in 0..expected {
        let answer = recv(&mut rx).await;
        assert!(
            answer.get("result").is_some() || answer["error"]["code"].is_i64(),
            "{answer:.200}"
        );
        if answer["id"].is_null() {
            got_null += 1;
        } else {
            *got_ids.entry(answer["id"].to_string()).or_default() += 1;
        }
    }
    let mut stdin = writer.await.unwrap();
    assert_eq!(got_null, want_null, "answers with a null id");
    assert_eq!(got_ids, want_ids, "answers by id");

    // Still up, still serving.
    assert!(child.try_wait().unwrap().is_none(), "the server exited");
    stdin
        .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":\"final\",\"method\":\"tools/list\"}\n")
        .await
        .unwrap();
    let answer = recv(&mut rx).await;
    assert_eq!(answer["id"], "final", "{answer:.300}");
    assert!(
        !answer["result"]["tools"].as_array().unwrap().is_empty(),
        "{answer:.300}"
    );
    // Nothing more: no line was answered twice.
    drop(stdin);
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits when stdin closes")
        .unwrap();
    assert!(status.success(), "{status}");
    reader.await.unwrap();
    let extra: Vec<Value> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
    assert!(extra.is_empty(), "unexpected answers: {extra:?}");
    let elapsed = started.elapsed();
    eprintln!("stdio fuzz: answered in {elapsed:?}");
    assert!(elapsed < Duration::from_secs(30), "{elapsed:?}");
}
