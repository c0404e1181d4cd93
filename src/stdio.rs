//! JSON-RPC framing for the stdio transport: every line the host sends gets an answer
//! when it needs one, and nothing unbounded is buffered.
//!
//! rmcp's stdio transport drops what it cannot decode without a word (malformed JSON,
//! nesting deeper than serde_json's limit, lines over 16 MiB), so a client that sent a
//! request waits forever; a request it cannot decode is answered with a null id. This
//! layer sits between stdin/stdout and rmcp: it reads stdin line by line (a line
//! longer than [`MAX_LINE_BYTES`] is discarded as it streams in, never held), answers
//! the lines rmcp would drop or answer without their id, and passes every other line
//! on through an in-memory pipe. Its answers and rmcp's output go to stdout through
//! one writer, a whole line at a time, so two messages never interleave.
//!
//! | line | answer |
//! |---|---|
//! | blank | none |
//! | over [`MAX_LINE_BYTES`] (with its newline) | -32700, `id: null` |
//! | nesting deeper than [`MAX_DEPTH`] | -32700, `id: null` |
//! | not JSON (or not UTF-8) | -32700, `id: null` |
//! | JSON, not a message rmcp decodes, with a string or 64-bit integer `id` | -32600 with that id |
//! | JSON, not a message rmcp decodes, other ids or none (but not a notification) | -32600, `id: null` |
//! | anything else | passed to rmcp |

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncRead, AsyncWrite, AsyncWriteExt as _, BufReader};
use tokio::io::{DuplexStream, ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The longest line accepted, its newline included (rmcp's own limit).
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;
/// The deepest nesting of arrays and objects accepted (serde_json's limit).
pub const MAX_DEPTH: usize = 127;

/// JSON-RPC "Parse error".
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC "Invalid Request".
pub const INVALID_REQUEST: i64 = -32600;

/// The pipe rmcp is served over: what it reads, what it writes.
pub type Transport = (ReadHalf<DuplexStream>, WriteHalf<DuplexStream>);

/// What to do with one line from the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Pass it to rmcp.
    Forward,
    /// Nothing: a blank line.
    Ignore,
    /// Answer it with this JSON-RPC error (one line, no newline).
    Answer(String),
}

/// The verdict on one line (without its newline) that fitted within the limit.
pub fn check_line(line: &[u8]) -> Verdict {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return Verdict::Ignore;
    }
    if depth(line) > MAX_DEPTH {
        return answer(
            PARSE_ERROR,
            Value::Null,
            format!("Parse error: nesting deeper than {MAX_DEPTH} levels"),
        );
    }
    if serde_json::from_slice::<rmcp::model::ClientJsonRpcMessage>(line).is_ok() {
        return Verdict::Forward;
    }
    let value = match serde_json::from_slice::<Value>(line) {
        Ok(value) => value,
        Err(_) => return answer(PARSE_ERROR, Value::Null, "Parse error: not JSON".into()),
    };
    let Value::Object(message) = value else {
        return answer(
            INVALID_REQUEST,
            Value::Null,
            "Invalid Request: a message is one JSON object (batches are not supported)".into(),
        );
    };
    match message.get("id") {
        // A notification: never answered (rmcp ignores the ones it does not know).
        None if message.get("method").is_some_and(Value::is_string) => Verdict::Forward,
        None => answer(
            INVALID_REQUEST,
            Value::Null,
            "Invalid Request: not a JSON-RPC 2.0 message".into(),
        ),
        Some(id) => {
            let usable = id.is_string() || id.is_i64();
            let (id, message) = if usable {
                (
                    id.clone(),
                    "Invalid Request: not a JSON-RPC 2.0 request this server understands",
                )
            } else {
                (
                    Value::Null,
                    "Invalid Request: the id must be a string or a 64-bit integer",
                )
            };
            answer(INVALID_REQUEST, id, message.into())
        }
    }
}

fn answer(code: i64, id: Value, message: String) -> Verdict {
    tracing::debug!(event = "jsonrpc_rejected", code, "{message}");
    Verdict::Answer(
        json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
            .to_string(),
    )
}

/// The deepest nesting of arrays and objects in `line`, strings skipped; stops
/// counting past [`MAX_DEPTH`].
fn depth(line: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &byte in line {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
                if deepest > MAX_DEPTH {
                    return deepest;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// The framing layer at work: two tasks, one reading the host, one writing to it.
#[derive(Debug)]
pub struct Pumps {
    inbound: JoinHandle<()>,
    outbound: JoinHandle<std::io::Result<()>>,
}

impl Pumps {
    /// Waits until everything rmcp wrote has reached `output` (rmcp's side of the pipe
    /// must be closed, which happens when its service ends), then stops reading input.
    pub async fn finish(self) -> std::io::Result<()> {
        let written = self.outbound.await;
        self.inbound.abort();
        written.map_err(std::io::Error::other)?
    }
}

/// Puts the framing layer between `input`/`output` (the host's stdin and stdout) and
/// rmcp, which is to be served over the returned transport.
pub fn frame<R, W>(input: R, output: W) -> (Transport, Pumps)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let (from_rmcp, to_rmcp) = tokio::io::split(ours);
    let (answers_tx, answers_rx) = mpsc::unbounded_channel();
    let inbound = tokio::spawn(async move {
        if let Err(e) = read_host(input, to_rmcp, answers_tx).await {
            tracing::debug!(event = "stdio_closed", "reading stdin stopped: {e}");
        }
    });
    let outbound = tokio::spawn(write_host(output, from_rmcp, answers_rx));
    (tokio::io::split(theirs), Pumps { inbound, outbound })
}

/// Reads the host line by line (bounded), passing good lines to rmcp and answers to
/// the writer; closes rmcp's input at the end.
async fn read_host<R>(
    input: R,
    mut to_rmcp: WriteHalf<DuplexStream>,
    answers: mpsc::UnboundedSender<String>,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
{
    let mut reader = BufReader::with_capacity(64 * 1024, input);
    let mut line: Vec<u8> = Vec::new();
    let mut oversized = false;
    loop {
        let (consumed, complete) = {
            let available = reader.fill_buf().await?;
            if available.is_empty() {
                break;
            }
            let newline = available.iter().position(|b| *b == b'\n');
            let take = newline.map_or(available.len(), |i| i + 1);
            if !oversized {
                if line.len().saturating_add(take) > MAX_LINE_BYTES {
                    oversized = true;
                    line = Vec::new();
                } else {
                    line.extend_from_slice(&available[..take]);
                }
            }
            (take, newline.is_some())
        };
        reader.consume(consumed);
        if complete {
            let go_on = handle(&mut line, oversized, &mut to_rmcp, &answers).await;
            oversized = false;
            line.clear();
            if !go_on {
                break;
            }
        }
    }
    // A last line without a newline is still a line.
    if !line.is_empty() || oversized {
        handle(&mut line, oversized, &mut to_rmcp, &answers).await;
    }
    to_rmcp.shutdown().await
}

/// Passes on or answers one line; false when rmcp is gone.
async fn handle(
    line: &mut Vec<u8>,
    oversized: bool,
    to_rmcp: &mut WriteHalf<DuplexStream>,
    answers: &mpsc::UnboundedSender<String>,
) -> bool {
    let verdict = if oversized {
        answer(
            PARSE_ERROR,
            Value::Null,
            format!("Parse error: a line is longer than {MAX_LINE_BYTES} bytes"),
        )
    } else {
        check_line(line.strip_suffix(b"\n").unwrap_or(line))
    };
    match verdict {
        Verdict::Ignore => true,
        Verdict::Answer(text) => answers.send(text).is_ok(),
        Verdict::Forward => {
            if !line.ends_with(b"\n") {
                line.push(b'\n');
            }
            to_rmcp.write_all(line).await.is_ok()
        }
    }
}

/// Writes rmcp's output and the framing layer's answers to the host, a whole line
/// at a time, until rmcp's side closes.
async fn write_host<W>(
    mut output: W,
    from_rmcp: ReadHalf<DuplexStream>,
    mut answers: mpsc::UnboundedReceiver<String>,
) -> std::io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    let mut from_rmcp = BufReader::new(from_rmcp);
    let mut line = Vec::new();
    let mut answering = true;
    loop {
        tokio::select! {
            answer = answers.recv(), if answering => match answer {
                Some(text) => {
                    output.write_all(text.as_bytes()).await?;
                    output.write_all(b"\n").await?;
                    output.flush().await?;
                }
                None => answering = false,
            },
            // `read_until` keeps what it read in `line` when this branch loses the
            // race, and goes on from there the next time.
            read = from_rmcp.read_until(b'\n', &mut line) => {
                if read? == 0 {
                    break;
                }
                if line.ends_with(b"\n") {
                    output.write_all(&line).await?;
                    output.flush().await?;
                    line.clear();
                }
            }
        }
    }
    if !line.is_empty() {
        output.write_all(&line).await?;
    }
    while let Ok(text) = answers.try_recv() {
        output.write_all(text.as_bytes()).await?;
        output.write_all(b"\n").await?;
    }
    output.flush().await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use tokio::io::AsyncReadExt as _;

    fn answered(line: &str) -> Value {
        match check_line(line.as_bytes()) {
            Verdict::Answer(text) => serde_json::from_str(&text).unwrap(),
            other => panic!("{line}: {other:?}"),
        }
    }

    fn code_and_id(line: &str) -> (i64, Value) {
        let v = answered(line);
        (v["error"]["code"].as_i64().unwrap(), v["id"].clone())
    }

    #[test]
    fn good_messages_pass_and_blank_lines_are_ignored() {
        for line in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
            r#"{"jsonrpc":"2.0","id":"a","method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":2,"method":"no/such/method"}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            r#"{"jsonrpc":"2.0","method":"$/unknown"}"#,
            "\u{feff}{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\"}\r",
        ] {
            assert_eq!(check_line(line.as_bytes()), Verdict::Forward, "{line}");
        }
        for line in ["", "   ", "\r", "\t "] {
            assert_eq!(check_line(line.as_bytes()), Verdict::Ignore, "{line:?}");
        }
    }

    #[test]
    fn malformed_lines_are_parse_errors() {
        for line in [
            "{",
            r#"{"jsonrpc":"2.0","id":1,"method":"ping""#,
            "not json",
            "{\"id\": 1,}",
        ] {
            assert_eq!(code_and_id(line), (PARSE_ERROR, Value::Null), "{line}");
        }
        assert!(matches!(
            check_line(b"{\"id\":1,\"x\":\"\xff\xfe\"}"),
            Verdict::Answer(_)
        ));
    }

    #[test]
    fn nesting_is_bounded_where_serde_json_is() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        // serde_json refuses what is deeper than MAX_DEPTH, so nothing that passes the
        // depth check is dropped by rmcp's parser for being too deep.
        assert!(serde_json::from_str::<Value>(&nested(MAX_DEPTH)).is_ok());
        assert!(serde_json::from_str::<Value>(&nested(MAX_DEPTH + 1)).is_err());
        let deep = format!(
            r#"{{"jsonrpc":"2.0","id":7,"method":"ping","params":{{"_meta":{{"x":{}}}}}}}"#,
            nested(200)
        );
        assert_eq!(code_and_id(&deep), (PARSE_ERROR, Value::Null));
        // Brackets inside strings do not count.
        let in_string = format!(
            r#"{{"jsonrpc":"2.0","id":8,"method":"ping","params":{{"_meta":{{"s":"{}\"{}"}}}}}}"#,
            "[".repeat(300),
            "{".repeat(300)
        );
        assert_eq!(check_line(in_string.as_bytes()), Verdict::Forward);
    }

    #[test]
    fn invalid_requests_keep_their_id() {
        let cases = [
            (r#"{"id":5,"method":"ping"}"#, json!(5)),
            (r#"{"jsonrpc":"1.0","id":"x","method":"ping"}"#, json!("x")),
            (r#"{"jsonrpc":"2.0","id":6,"method":7}"#, json!(6)),
            (
                r#"{"jsonrpc":"2.0","id":-9223372036854775808,"method":["tools/call"]}"#,
                json!(i64::MIN),
            ),
            (r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#, Value::Null),
            (
                r#"{"jsonrpc":"2.0","id":18446744073709551616,"method":"ping"}"#,
                Value::Null,
            ),
            (
                r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
                Value::Null,
            ),
            (
                r#"{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}"#,
                Value::Null,
            ),
            (r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#, Value::Null),
            ("42", Value::Null),
            ("{}", Value::Null),
        ];
        for (line, id) in cases {
            assert_eq!(code_and_id(line), (INVALID_REQUEST, id), "{line}");
        }
    }

    /// Runs the framing over in-memory pipes: the host writes `input`; a stand-in for
    /// rmcp echoes each line it gets; the host's output comes back.
    async fn through(input: Vec<u8>) -> (Vec<String>, Vec<String>) {
        let (mut host_in, stdin) = tokio::io::duplex(1024);
        let (stdout, mut host_out) = tokio::io::duplex(1024);
        let ((mut rmcp_read, mut rmcp_write), pumps) = frame(stdin, stdout);
        let rmcp = tokio::spawn(async move {
            let mut got = String::new();
            rmcp_read.read_to_string(&mut got).await.unwrap();
            let lines: Vec<String> = got.lines().map(str::to_owned).collect();
            for line in &lines {
                rmcp_write
                    .write_all(format!("{line}\n").as_bytes())
                    .await
                    .unwrap();
            }
            lines
        });
        let writer = tokio::spawn(async move {
            host_in.write_all(&input).await.unwrap();
            host_in.shutdown().await.unwrap();
        });
        let mut out = String::new();
        host_out.read_to_string(&mut out).await.unwrap();
        writer.await.unwrap();
        let forwarded = rmcp.await.unwrap();
        pumps.finish().await.unwrap();
        (forwarded, out.lines().map(str::to_owned).collect())
    }

    #[tokio::test]
    async fn oversized_lines_are_answered_and_the_next_line_still_passes() {
        let good = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
        let mut input = vec![b'x'; MAX_LINE_BYTES + 10];
        input.push(b'\n');
        input.extend_from_slice(good.as_bytes());
        input.push(b'\n');
        input.extend_from_slice(b"{oops\n");
        // The last line has no newline.
        input.extend_from_slice(good.as_bytes());
        let (forwarded, out) = through(input).await;
        assert_eq!(forwarded, vec![good.to_owned(), good.to_owned()]);
        let answers: Vec<Value> = out
            .iter()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|v| v.get("error").is_some())
            .collect();
        assert_eq!(answers.len(), 2, "{out:?}");
        assert!(
            answers
                .iter()
                .all(|a| a["error"]["code"] == PARSE_ERROR && a["id"].is_null())
        );
        // Every output line is one whole JSON message.
        assert_eq!(out.len(), 4, "{out:?}");
    }

    #[tokio::test]
    async fn a_line_of_exactly_the_limit_passes() {
        let prefix = r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{"p":""#;
        let suffix = r#""}}}"#;
        let pad = MAX_LINE_BYTES - 1 - prefix.len() - suffix.len();
        let line = format!("{prefix}{}{suffix}", "a".repeat(pad));
        let mut input = line.clone().into_bytes();
        input.push(b'\n');
        assert_eq!(input.len(), MAX_LINE_BYTES);
        let (forwarded, _) = through(input).await;
        assert_eq!(forwarded.len(), 1);
        assert_eq!(forwarded[0].len(), line.len());
    }
}
