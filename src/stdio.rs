//! The stdio transport: JSON-RPC lines from the host's stdin, decoded once, handed to
//! rmcp as messages; rmcp's messages written to stdout by one writer. Every line that
//! needs an answer gets one, and nothing the host sends or fails to read is held
//! without bound (`docs/reference.md`, Errors).
//!
//! | line | answer |
//! |---|---|
//! | blank | none |
//! | over [`MAX_LINE_BYTES`] (with its newline) | -32700, `id: null`; discarded as it streams in, never held |
//! | not UTF-8, not JSON | -32700, `id: null` |
//! | nesting deeper than [`MAX_DEPTH`] | -32700, `id: null` |
//! | JSON, not one object (a batch, a number, ...) | -32600, `id: null` |
//! | more than [`MAX_TOKENS`] structural characters (a request) | -32600 with its id |
//! | an object rmcp does not decode, with a string or integer `id` | -32600 with that id |
//! | an object rmcp does not decode, other ids or none (not a notification) | -32600, `id: null` |
//! | a notification rmcp does not decode, or one too large | none (dropped) |
//! | anything else | decoded into rmcp's message and handed to it |
//!
//! Back-pressure: every request holds a share of [`IN_FLIGHT_BUDGET`] from before it
//! is decoded until its answer has been written to stdout, or until the host cancels
//! it (rmcp then sends no answer). Its share is [`Checked::cost`]: the line, an upper
//! estimate of it decoded, and [`REPLY_ALLOWANCE`] for the answer. When the budget is
//! spent, stdin is not read: a host that stops reading stdout stops the server's
//! reading, and what the server holds stays bounded (about the budget and one line).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rmcp::RoleServer;
use rmcp::model::{ClientJsonRpcMessage, ClientNotification, JsonRpcMessage, RequestId};
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncRead, AsyncWrite, AsyncWriteExt as _, BufReader};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;

/// The longest line accepted, its newline included (rmcp's own limit).
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;
/// The deepest nesting of arrays and objects accepted (serde_json's limit).
pub const MAX_DEPTH: usize = 127;
/// The most structural characters (`[`, `{`, `,`, `:` outside strings) a message may
/// hold. Decoding costs memory per value far more than per byte (`[]` is 2 bytes and
/// a decoded value tens), so this bounds what a line costs once decoded: a few times
/// its size at worst. A `package_create` with 100,000 entries (5 tokens each) fits.
pub const MAX_TOKENS: usize = 600_000;
/// What all requests read and not yet answered on stdout may hold, in bytes: the sum,
/// over those requests, of their [`Checked::cost`] (a request that costs more than the
/// whole budget waits until it is the only one).
pub const IN_FLIGHT_BUDGET: usize = 64 * 1024 * 1024;
/// What each request in flight counts for on top of its line: room for its answer.
/// With small requests, at most `IN_FLIGHT_BUDGET / REPLY_ALLOWANCE` (32) are in flight.
pub const REPLY_ALLOWANCE: usize = 2 * 1024 * 1024;
/// An upper estimate of what one structural character costs once decoded (measured:
/// about 190 bytes for each `[]` of a long array of them, through rmcp's decoder).
pub const DECODED_BYTES_PER_TOKEN: usize = 192;

/// JSON-RPC "Parse error".
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC "Invalid Request".
pub const INVALID_REQUEST: i64 = -32600;

/// The budget's unit: a permit is this many bytes (a semaphore counts in `u32`).
const BUDGET_UNIT: usize = 1024;
/// Decoded messages waiting for rmcp to take them.
const TO_RMCP_CAPACITY: usize = 1;
/// Encoded lines waiting for the writer (each request's answer holds its budget).
const TO_HOST_CAPACITY: usize = 16;
/// The reader's line buffer is given back after a line longer than this.
const KEEP_BUFFER_BYTES: usize = 1024 * 1024;
/// The writer gathers waiting lines up to this many bytes into one write.
const WRITE_BATCH_BYTES: usize = 64 * 1024;
/// How long the writer may take to write what is left when the session ends.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What to do with one line from the host.
#[derive(Debug)]
pub enum Decoded {
    /// Hand this message to rmcp.
    Message(Box<ClientJsonRpcMessage>),
    /// Nothing: a blank line, or a notification that cannot be used.
    Ignore,
    /// Answer it with this JSON-RPC error (one line, no newline).
    Answer(String),
}

/// The parts of a message this layer looks at before rmcp decodes it; everything
/// else in the line is skipped without being built.
#[derive(Deserialize)]
struct Envelope {
    #[serde(default, deserialize_with = "present")]
    id: Option<Id>,
    #[serde(default)]
    method: Option<Method>,
}

/// `Some` for any value, `null` included (`Option` alone reads `null` as absent).
fn present<'de, D>(deserializer: D) -> Result<Option<Id>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Id::deserialize(deserializer).map(Some)
}

/// An `id` as rmcp reads ids: a string, or an integer that fits in 64 bits (also in
/// float form, `1.0`); anything else is unusable and skipped without being built.
#[derive(Debug, Clone)]
enum Id {
    Usable(RequestId),
    Unusable,
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D>(deserializer: D) -> Result<Self, D::Error>
    where
        D: serde::Deserializer<'de>,
    {
        deserializer.deserialize_any(IdVisitor)
    }
}

struct IdVisitor;

impl<'de> serde::de::Visitor<'de> for IdVisitor {
    type Value = Id;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_i64<E>(self, v: i64) -> Result<Id, E> {
        Ok(Id::Usable(RequestId::Number(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Id, E> {
        Ok(i64::try_from(v).map_or(Id::Unusable, |v| Id::Usable(RequestId::Number(v))))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Id, E> {
        // As rmcp: integers in float form that an f64 holds exactly.
        const MAX_EXACT: f64 = 9_007_199_254_740_992.0;
        if v.fract() == 0.0 && v.abs() < MAX_EXACT {
            #[allow(clippy::cast_possible_truncation)]
            return Ok(Id::Usable(RequestId::Number(v as i64)));
        }
        Ok(Id::Unusable)
    }
    fn visit_str<E>(self, v: &str) -> Result<Id, E> {
        Ok(Id::Usable(RequestId::String(v.into())))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Id, E> {
        Ok(Id::Unusable)
    }
    fn visit_unit<E>(self) -> Result<Id, E> {
        Ok(Id::Unusable)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Id, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(Id::Unusable)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Id, A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(Id::Unusable)
    }
}

/// Whether `method` is a string; its value is not kept.
struct Method(bool);

impl<'de> Deserialize<'de> for Method {
    fn deserialize<D>(deserializer: D) -> Result<Self, D::Error>
    where
        D: serde::Deserializer<'de>,
    {
        struct IsString;
        impl<'de> serde::de::Visitor<'de> for IsString {
            type Value = bool;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E>(self, _: &str) -> Result<bool, E> {
                Ok(true)
            }
            fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
                Ok(false)
            }
            fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
                Ok(false)
            }
            fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
                Ok(false)
            }
            fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
                Ok(false)
            }
            fn visit_unit<E>(self) -> Result<bool, E> {
                Ok(false)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut s: A) -> Result<bool, A::Error> {
                while s.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(false)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<bool, A::Error> {
                while m
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(false)
            }
        }
        deserializer.deserialize_any(IsString).map(Method)
    }
}

/// A line that is one JSON object, checked (UTF-8, depth, tokens, `id`, `method`) but
/// not yet decoded.
#[derive(Debug)]
pub struct Checked<'a> {
    text: &'a str,
    tokens: usize,
    id: Option<Id>,
    method: bool,
}

/// Decodes one line (without its newline) that fitted within [`MAX_LINE_BYTES`].
pub fn decode(line: &[u8]) -> Decoded {
    match check(line) {
        Ok(checked) => checked.decode(),
        Err(decoded) => decoded,
    }
}

/// The checks that need no decoding: what to answer, or the line to decode.
pub fn check(line: &[u8]) -> Result<Checked<'_>, Decoded> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return Err(Decoded::Ignore);
    }
    let Ok(text) = std::str::from_utf8(line) else {
        return Err(answer(PARSE_ERROR, None, "Parse error: not UTF-8".into()));
    };
    let shape = scan(text.as_bytes());
    if shape.depth > MAX_DEPTH {
        return Err(answer(
            PARSE_ERROR,
            None,
            format!("Parse error: nesting deeper than {MAX_DEPTH} levels"),
        ));
    }
    let is_object = text.trim_start().starts_with('{');
    match is_object
        .then(|| serde_json::from_str::<Envelope>(text).ok())
        .flatten()
    {
        Some(envelope) => Ok(Checked {
            text,
            tokens: shape.tokens,
            id: envelope.id,
            method: envelope.method.is_some_and(|m| m.0),
        }),
        // Checked without building anything: is it JSON at all?
        None if serde_json::from_str::<serde::de::IgnoredAny>(text).is_err() => {
            Err(answer(PARSE_ERROR, None, "Parse error: not JSON".into()))
        }
        None if !is_object => Err(answer(
            INVALID_REQUEST,
            None,
            "Invalid Request: a message is one JSON object (batches are not supported)".into(),
        )),
        // An object serde cannot take apart, e.g. one with two `id`s.
        None => Err(answer(
            INVALID_REQUEST,
            None,
            "Invalid Request: not a JSON-RPC 2.0 message".into(),
        )),
    }
}

impl Checked<'_> {
    /// The id of the request this line is, if it is one with an id rmcp can answer.
    pub fn request_id(&self) -> Option<&RequestId> {
        match &self.id {
            Some(Id::Usable(id)) if self.method => Some(id),
            _ => None,
        }
    }

    /// What handling this line may hold, in bytes, until it is answered: the line and
    /// its decoded copy (strings are copied once), an upper estimate of what its
    /// values cost decoded, and room for the answer.
    pub fn cost(&self) -> usize {
        self.text
            .len()
            .saturating_mul(2)
            .saturating_add(self.tokens.saturating_mul(DECODED_BYTES_PER_TOKEN))
            .saturating_add(REPLY_ALLOWANCE)
    }

    /// Decodes the line into rmcp's message, or says what to answer.
    pub fn decode(self) -> Decoded {
        let notification = self.id.is_none() && self.method;
        if self.tokens > MAX_TOKENS {
            if notification {
                tracing::debug!(
                    event = "jsonrpc_rejected",
                    "a notification with more than {MAX_TOKENS} JSON tokens was dropped"
                );
                return Decoded::Ignore;
            }
            return answer(
                INVALID_REQUEST,
                self.id.and_then(Id::usable),
                format!("Invalid Request: more than {MAX_TOKENS} JSON tokens in one message"),
            );
        }
        if let Ok(message) = serde_json::from_str::<ClientJsonRpcMessage>(self.text) {
            return Decoded::Message(Box::new(message));
        }
        match self.id {
            // A notification: never answered (rmcp ignores the ones it does not know).
            None if notification => Decoded::Ignore,
            None => answer(
                INVALID_REQUEST,
                None,
                "Invalid Request: not a JSON-RPC 2.0 message".into(),
            ),
            Some(id) => match id.usable() {
                Some(id) => answer(
                    INVALID_REQUEST,
                    Some(id),
                    "Invalid Request: not a JSON-RPC 2.0 request this server understands".into(),
                ),
                None => answer(
                    INVALID_REQUEST,
                    None,
                    "Invalid Request: the id must be a string or a 64-bit integer".into(),
                ),
            },
        }
    }
}

impl Id {
    fn usable(self) -> Option<RequestId> {
        match self {
            Id::Usable(id) => Some(id),
            Id::Unusable => None,
        }
    }
}

fn answer(code: i64, id: Option<RequestId>, message: String) -> Decoded {
    tracing::debug!(event = "jsonrpc_rejected", code, "{message}");
    let id = id.map_or(Value::Null, RequestId::into_json_value);
    Decoded::Answer(
        json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
            .to_string(),
    )
}

/// What a cheap pass over a line finds, strings skipped.
#[derive(Debug, Default, PartialEq, Eq)]
struct Shape {
    /// The deepest nesting of arrays and objects; counting stops past [`MAX_DEPTH`].
    depth: usize,
    /// `[`, `{`, `,` and `:` outside strings.
    tokens: usize,
}

fn scan(line: &[u8]) -> Shape {
    let mut shape = Shape::default();
    let mut depth = 0usize;
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
                shape.tokens += 1;
                depth += 1;
                shape.depth = shape.depth.max(depth);
                if shape.depth > MAX_DEPTH {
                    return shape;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b',' | b':' => shape.tokens += 1,
            _ => {}
        }
    }
    shape
}

/// The budget of requests in flight and the share each holds, by id.
#[derive(Debug)]
struct Ledger {
    budget: Arc<Semaphore>,
    owed: Mutex<HashMap<RequestId, OwnedSemaphorePermit>>,
}

impl Ledger {
    fn new() -> Self {
        Ledger {
            budget: Arc::new(Semaphore::new(IN_FLIGHT_BUDGET / BUDGET_UNIT)),
            owed: Mutex::new(HashMap::new()),
        }
    }

    fn owed(&self) -> std::sync::MutexGuard<'_, HashMap<RequestId, OwnedSemaphorePermit>> {
        self.owed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for `cost` bytes of the budget and records them as owed an answer to `id`;
    /// true when this request took a share. A second request with the id of one still
    /// in flight takes nothing: rmcp answers such a pair once.
    async fn admit(&self, id: &RequestId, cost: usize) -> bool {
        if self.owed().contains_key(id) {
            return false;
        }
        let units = (cost / BUDGET_UNIT).clamp(1, IN_FLIGHT_BUDGET / BUDGET_UNIT);
        let units = u32::try_from(units).unwrap_or(u32::MAX);
        // The semaphore is never closed.
        let Ok(permit) = self.budget.clone().acquire_many_owned(units).await else {
            return false;
        };
        self.owed().insert(id.clone(), permit);
        true
    }

    /// The share owed an answer to `id`, taken back to go with that answer.
    fn take(&self, id: &RequestId) -> Option<OwnedSemaphorePermit> {
        self.owed().remove(id)
    }

    /// The share of the request `message` answers, if it answers one.
    fn settle(&self, message: &TxJsonRpcMessage<RoleServer>) -> Option<OwnedSemaphorePermit> {
        let id = match message {
            JsonRpcMessage::Response(response) => &response.id,
            JsonRpcMessage::Error(error) => error.id.as_ref()?,
            _ => return None,
        };
        self.owed().remove(id)
    }

    /// A request the host cancelled is not answered (rmcp drops its answer).
    fn forgive(&self, message: &ClientJsonRpcMessage) {
        if let JsonRpcMessage::Notification(notification) = message
            && let ClientNotification::CancelledNotification(cancelled) = &notification.notification
            && let Some(id) = &cancelled.params.request_id
        {
            self.owed().remove(id);
        }
    }
}

/// One encoded line for stdout (newline included), holding the share of the request
/// it answers until it is written.
#[derive(Debug)]
struct Outgoing {
    line: Vec<u8>,
    share: Option<OwnedSemaphorePermit>,
}

/// Why a message could not be sent to the host.
#[derive(Debug, thiserror::Error)]
pub enum StdioError {
    /// The writer has stopped: stdout is closed or the session ended.
    #[error("stdout is closed")]
    Closed,
    /// rmcp's message could not be written as JSON.
    #[error("cannot encode a message: {0}")]
    Encode(#[source] serde_json::Error),
}

/// rmcp's side of the stdio session: decoded messages in, messages out.
#[derive(Debug)]
pub struct StdioTransport {
    from_host: mpsc::Receiver<Box<ClientJsonRpcMessage>>,
    to_host: mpsc::Sender<Outgoing>,
    ledger: Arc<Ledger>,
}

impl rmcp::transport::Transport<RoleServer> for StdioTransport {
    type Error = StdioError;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        // Settled now, in rmcp's order of events, not when the future runs.
        let share = self.ledger.settle(&item);
        let to_host = self.to_host.clone();
        async move {
            let mut line = serde_json::to_vec(&item).map_err(StdioError::Encode)?;
            line.push(b'\n');
            let sent = to_host
                .send(Outgoing { line, share })
                .await
                .map_err(|_| StdioError::Closed);
            // A large answer takes a while to free: the writer is already writing it.
            drop(item);
            sent
        }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleServer>> {
        self.from_host.recv().await.map(|message| *message)
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.from_host.close();
        Ok(())
    }
}

/// The two tasks behind the transport: one reading the host, one writing to it.
#[derive(Debug)]
pub struct Session {
    reader: JoinHandle<()>,
    writer: JoinHandle<std::io::Result<()>>,
}

impl Session {
    /// Stops reading and waits until everything rmcp sent has reached the host (rmcp's
    /// service must have ended), for at most a few seconds: a host that does not read
    /// stdout does not hold the process.
    pub async fn finish(self) -> std::io::Result<()> {
        self.reader.abort();
        match tokio::time::timeout(DRAIN_TIMEOUT, self.writer).await {
            Ok(written) => written.map_err(std::io::Error::other)?,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the host did not read the last answers",
            )),
        }
    }
}

/// The stdio transport over `input`/`output` (the host's stdin and stdout): serve rmcp
/// over the transport, then [`Session::finish`].
pub fn transport<R, W>(input: R, output: W) -> (StdioTransport, Session)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (to_rmcp, from_host) = mpsc::channel(TO_RMCP_CAPACITY);
    let (to_host, outgoing) = mpsc::channel(TO_HOST_CAPACITY);
    let ledger = Arc::new(Ledger::new());
    let reader = tokio::spawn(read_host(input, to_rmcp, to_host.clone(), ledger.clone()));
    let writer = tokio::spawn(write_host(output, outgoing));
    (
        StdioTransport {
            from_host,
            to_host,
            ledger,
        },
        Session { reader, writer },
    )
}

/// Reads the host line by line, bounded, until stdin ends or rmcp is gone.
async fn read_host<R>(
    input: R,
    to_rmcp: mpsc::Sender<Box<ClientJsonRpcMessage>>,
    to_host: mpsc::Sender<Outgoing>,
    ledger: Arc<Ledger>,
) where
    R: AsyncRead + Unpin,
{
    let mut reader = BufReader::with_capacity(64 * 1024, input);
    let mut line: Vec<u8> = Vec::new();
    let mut oversized = false;
    loop {
        let (consumed, complete, end) = {
            let available = match reader.fill_buf().await {
                Ok(available) => available,
                Err(e) => {
                    tracing::debug!(event = "stdio_closed", "reading stdin stopped: {e}");
                    break;
                }
            };
            let end = available.is_empty();
            let newline = memchr::memchr(b'\n', available);
            let take = newline.map_or(available.len(), |i| i + 1);
            if !oversized {
                if line.len().saturating_add(take) > MAX_LINE_BYTES {
                    oversized = true;
                    line = Vec::new();
                } else {
                    line.extend_from_slice(&available[..take]);
                }
            }
            (take, newline.is_some(), end)
        };
        reader.consume(consumed);
        // A last line without a newline is still a line.
        if complete || (end && (oversized || !line.is_empty())) {
            let go_on = handle(&line, oversized, &to_rmcp, &to_host, &ledger).await;
            oversized = false;
            line.clear();
            if line.capacity() > KEEP_BUFFER_BYTES {
                line = Vec::new();
            }
            if !go_on {
                break;
            }
        }
        if end {
            break;
        }
    }
}

/// Hands one line to rmcp or answers it; false when rmcp or the writer is gone. A
/// request takes its share of the budget before it is decoded.
async fn handle(
    line: &[u8],
    oversized: bool,
    to_rmcp: &mpsc::Sender<Box<ClientJsonRpcMessage>>,
    to_host: &mpsc::Sender<Outgoing>,
    ledger: &Ledger,
) -> bool {
    let checked = if oversized {
        Err(answer(
            PARSE_ERROR,
            None,
            format!("Parse error: a line is longer than {MAX_LINE_BYTES} bytes"),
        ))
    } else {
        check(line.strip_suffix(b"\n").unwrap_or(line))
    };
    let (decoded, share) = match checked {
        Err(decoded) => (decoded, None),
        Ok(checked) => {
            let mut took = None;
            if let Some(id) = checked.request_id()
                && ledger.admit(id, checked.cost()).await
            {
                took = Some(id.clone());
            }
            match checked.decode() {
                // Answered here: the share goes with the answer.
                decoded @ Decoded::Answer(_) => (decoded, took.and_then(|id| ledger.take(&id))),
                decoded => (decoded, None),
            }
        }
    };
    match decoded {
        Decoded::Ignore => true,
        Decoded::Answer(text) => {
            let mut line = text.into_bytes();
            line.push(b'\n');
            to_host.send(Outgoing { line, share }).await.is_ok()
        }
        Decoded::Message(message) => {
            ledger.forgive(&message);
            to_rmcp.send(message).await.is_ok()
        }
    }
}

/// Writes what is waiting, as one batch of whole lines, flushes, and only then gives
/// back the shares of the requests answered; until every sender is gone.
async fn write_host<W>(mut output: W, mut outgoing: mpsc::Receiver<Outgoing>) -> std::io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    let mut batch: Vec<u8> = Vec::new();
    let mut shares: Vec<Option<OwnedSemaphorePermit>> = Vec::new();
    while let Some(first) = outgoing.recv().await {
        let mut next = Some(first);
        while let Some(item) = next.take() {
            if item.line.len() >= WRITE_BATCH_BYTES {
                // A long line goes out as it is, not copied.
                output.write_all(&batch).await?;
                batch.clear();
                output.write_all(&item.line).await?;
            } else {
                batch.extend_from_slice(&item.line);
            }
            shares.push(item.share);
            if batch.len() < WRITE_BATCH_BYTES {
                next = outgoing.try_recv().ok();
            }
        }
        output.write_all(&batch).await?;
        output.flush().await?;
        batch.clear();
        shares.clear();
    }
    output.flush().await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use rmcp::transport::Transport as _;
    use tokio::io::AsyncReadExt as _;

    fn answered(line: &str) -> Value {
        match decode(line.as_bytes()) {
            Decoded::Answer(text) => serde_json::from_str(&text).unwrap(),
            other => panic!("{line}: {other:?}"),
        }
    }

    fn code_and_id(line: &str) -> (i64, Value) {
        let v = answered(line);
        (v["error"]["code"].as_i64().unwrap(), v["id"].clone())
    }

    fn passes(line: &str) -> bool {
        matches!(decode(line.as_bytes()), Decoded::Message(_))
    }

    #[test]
    fn good_messages_pass_and_blank_lines_are_ignored() {
        for line in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
            r#"{"jsonrpc":"2.0","id":"a","method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":2,"method":"no/such/method"}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":4}}"#,
            r#"{"jsonrpc":"2.0","id":5,"result":{}}"#,
            "\u{feff}{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\"}\r",
        ] {
            assert!(passes(line), "{line}");
        }
        for line in ["", "   ", "\r", "\t "] {
            assert!(
                matches!(decode(line.as_bytes()), Decoded::Ignore),
                "{line:?}"
            );
        }
    }

    #[test]
    fn malformed_lines_are_parse_errors() {
        for line in [
            "{",
            r#"{"jsonrpc":"2.0","id":1,"method":"ping""#,
            "not json",
            "{\"id\": 1,}",
            "[1,",
            r#"{"jsonrpc":"2.0","id":1,"method":"ping"} trailing"#,
        ] {
            assert_eq!(code_and_id(line), (PARSE_ERROR, Value::Null), "{line}");
        }
        let (code, id) = match decode(b"{\"id\":1,\"x\":\"\xff\xfe\"}") {
            Decoded::Answer(text) => {
                let v: Value = serde_json::from_str(&text).unwrap();
                (v["error"]["code"].as_i64().unwrap(), v["id"].clone())
            }
            other => panic!("{other:?}"),
        };
        assert_eq!((code, id), (PARSE_ERROR, Value::Null));
    }

    #[test]
    fn nesting_is_bounded_where_serde_json_is() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        // serde_json refuses what is deeper than MAX_DEPTH, so nothing that passes the
        // depth check is refused by the decoder for being too deep.
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
        assert!(passes(&in_string));
    }

    #[test]
    fn the_scan_counts_structure_outside_strings() {
        let cases = [
            ("1", 0, 0),
            ("[]", 1, 1),
            ("[[],[]]", 2, 4),
            (r#"{"a":[1,2],"b":"[,:{"}"#, 2, 6),
            (r#"["\"[",{}]"#, 2, 3),
        ];
        for (text, depth, tokens) in cases {
            assert_eq!(scan(text.as_bytes()), Shape { depth, tokens }, "{text}");
        }
    }

    #[test]
    fn a_request_with_too_many_tokens_is_refused_with_its_id_before_decoding() {
        let many = |n: usize| {
            let mut items = "[],".repeat(n);
            items.pop();
            items
        };
        // Just under the bound: decoded. One more: refused, with its id.
        let request = |n: usize| {
            format!(
                r#"{{"jsonrpc":"2.0","id":"big","method":"ping","params":{{"_meta":{{"x":[{}]}}}}}}"#,
                many(n)
            )
        };
        // Around the items: 12 tokens; the items: one `[` each and the commas.
        let fits = (MAX_TOKENS - 12) / 2;
        assert_eq!(scan(request(fits).as_bytes()).tokens, MAX_TOKENS);
        assert!(
            passes(&request(fits)),
            "{:?}",
            decode(request(10).as_bytes())
        );
        assert_eq!(
            code_and_id(&request(fits + 1)),
            (INVALID_REQUEST, json!("big"))
        );
        let notification = format!(
            r#"{{"jsonrpc":"2.0","method":"notifications/progress","params":{{"_meta":{{"x":[{}]}}}}}}"#,
            many(MAX_TOKENS)
        );
        assert!(matches!(decode(notification.as_bytes()), Decoded::Ignore));
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
            (
                r#"{"jsonrpc":"2.0","id":9,"method":"ping","result":{}}"#,
                json!(9),
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
            (
                r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"#,
                Value::Null,
            ),
            (r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#, Value::Null),
            ("42", Value::Null),
            ("{}", Value::Null),
        ];
        for (line, id) in cases {
            assert_eq!(code_and_id(line), (INVALID_REQUEST, id), "{line}");
        }
        // Notifications rmcp cannot decode get nothing.
        assert!(matches!(
            decode(br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":7}"#),
            Decoded::Ignore
        ));
    }

    /// The host's view of a transport over in-memory pipes: what rmcp receives and
    /// what stdout carries, for `input` written and closed.
    async fn through(input: Vec<u8>) -> (Vec<ClientJsonRpcMessage>, Vec<Value>) {
        let (mut host_in, stdin) = tokio::io::duplex(1024);
        let (stdout, mut host_out) = tokio::io::duplex(1024);
        let (mut transport, session) = transport(stdin, stdout);
        let writer = tokio::spawn(async move {
            host_in.write_all(&input).await.unwrap();
            host_in.shutdown().await.unwrap();
        });
        let rmcp = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(message) = transport.receive().await {
                got.push(message);
            }
            drop(transport);
            got
        });
        let mut out = String::new();
        let reading = async {
            host_out.read_to_string(&mut out).await.unwrap();
        };
        let (received, (), ()) = tokio::join!(rmcp, reading, async {
            writer.await.unwrap();
        });
        session.finish().await.unwrap();
        let lines = out
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .collect();
        (received.unwrap(), lines)
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
        let (received, out) = through(input).await;
        assert_eq!(received.len(), 2);
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(
            out.iter()
                .all(|a| a["error"]["code"] == PARSE_ERROR && a["id"].is_null())
        );
    }

    #[tokio::test]
    async fn a_line_of_exactly_the_limit_passes() {
        let prefix = r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{"p":""#;
        let suffix = r#""}}}"#;
        let pad = MAX_LINE_BYTES - 1 - prefix.len() - suffix.len();
        let line = format!("{prefix}{}{suffix}", "a".repeat(pad));
        let mut input = line.into_bytes();
        input.push(b'\n');
        assert_eq!(input.len(), MAX_LINE_BYTES);
        let (received, out) = through(input).await;
        assert_eq!(received.len(), 1);
        assert!(out.is_empty(), "{out:?}");
    }

    fn ping(id: i64) -> Vec<u8> {
        format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"ping\"}}\n").into_bytes()
    }

    /// Requests hold budget until answered: with the budget spent, the next line is
    /// not read; an answer written, or a cancellation, lets the next one through; a
    /// second request with the id of one in flight costs nothing (rmcp answers once).
    #[tokio::test]
    async fn requests_in_flight_are_bounded_until_answered_or_cancelled() {
        let (mut host_in, stdin) = tokio::io::duplex(64 * 1024);
        let (stdout, mut host_out) = tokio::io::duplex(64 * 1024);
        let (mut transport, _session) = transport(stdin, stdout);
        let line = ping(10);
        let units = check(&line[..line.len() - 1]).unwrap().cost() / BUDGET_UNIT;
        let room = (IN_FLIGHT_BUDGET / BUDGET_UNIT / units) as i64;
        assert_eq!(room, 31);
        for id in 0..=room {
            host_in.write_all(&ping(id)).await.unwrap();
        }
        let next = async |t: &mut StdioTransport| {
            tokio::time::timeout(Duration::from_secs(5), t.receive())
                .await
                .unwrap()
                .unwrap()
        };
        let waits = async |t: &mut StdioTransport| {
            tokio::time::timeout(Duration::from_millis(200), t.receive())
                .await
                .is_err()
        };
        let id_of = |m: &ClientJsonRpcMessage| match m {
            JsonRpcMessage::Request(r) => r.id.clone(),
            other => panic!("{other:?}"),
        };
        for id in 0..room {
            assert_eq!(id_of(&next(&mut transport).await), RequestId::Number(id));
        }
        assert!(waits(&mut transport).await, "read past the budget");
        let answer = rmcp::model::ServerJsonRpcMessage::response(
            rmcp::model::ServerResult::empty(()),
            RequestId::Number(0),
        );
        transport.send(answer).await.unwrap();
        assert_eq!(id_of(&next(&mut transport).await), RequestId::Number(room));
        let mut line = vec![0; 256];
        let n = host_out.read(&mut line).await.unwrap();
        let value: Value = serde_json::from_slice(&line[..n]).unwrap();
        assert_eq!(value["id"], 0);
        // Spent again (1..=room in flight); a duplicate of 2 still passes.
        host_in.write_all(&ping(2)).await.unwrap();
        assert_eq!(id_of(&next(&mut transport).await), RequestId::Number(2));
        host_in
            .write_all(
                b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":1}}\n",
            )
            .await
            .unwrap();
        assert!(matches!(
            next(&mut transport).await,
            JsonRpcMessage::Notification(_)
        ));
        host_in.write_all(&ping(1000)).await.unwrap();
        assert_eq!(id_of(&next(&mut transport).await), RequestId::Number(1000));
        host_in.write_all(&ping(1001)).await.unwrap();
        assert!(waits(&mut transport).await, "read past the budget");
    }

    /// A tool that waits for its call's cancellation token, and says whether it fired.
    struct WaitsForCancel(mpsc::UnboundedSender<&'static str>);

    impl rmcp::ServerHandler for WaitsForCancel {
        fn get_info(&self) -> rmcp::model::ServerConfig {
            rmcp::model::ServerConfig::new(
                rmcp::model::ServerCapabilities::builder()
                    .enable_tools()
                    .build(),
            )
        }

        async fn call_tool(
            &self,
            _request: rmcp::model::CallToolRequestParams,
            context: rmcp::service::RequestContext<RoleServer>,
        ) -> Result<rmcp::model::CallToolResponse, rmcp::ErrorData> {
            let outcome = tokio::select! {
                () = context.ct.cancelled() => "cancelled",
                () = tokio::time::sleep(Duration::from_secs(60)) => "finished",
            };
            let _ = self.0.send(outcome);
            Ok(rmcp::model::CallToolResult::success(vec![]).into())
        }
    }

    async fn send(host: &mut tokio::io::DuplexStream, line: &str) {
        host.write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
    }

    /// rmcp served over this transport passes a host's `notifications/cancelled` to
    /// the call's cancellation token (tools get it as `Call::cancel`), sends no answer
    /// for the cancelled call, and goes on serving.
    #[tokio::test]
    async fn a_cancellation_from_the_host_reaches_the_call() {
        use rmcp::ServiceExt as _;
        let (mut host_in, stdin) = tokio::io::duplex(64 * 1024);
        let (stdout, host_out) = tokio::io::duplex(64 * 1024);
        let (transport, session) = transport(stdin, stdout);
        let (outcomes, mut outcome) = mpsc::unbounded_channel();
        let serving = tokio::spawn(async move {
            let service = WaitsForCancel(outcomes).serve(transport).await.unwrap();
            let _ = service.waiting().await;
            session.finish().await.unwrap();
        });
        let mut lines = tokio::io::BufReader::new(host_out).lines();
        send(&mut host_in, r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#).await;
        let init: Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
        assert_eq!(init["id"], 0, "{init}");
        send(
            &mut host_in,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        )
        .await;
        send(
            &mut host_in,
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"slow"}}"#,
        )
        .await;
        send(&mut host_in, r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7,"reason":"changed my mind"}}"#).await;
        let seen = tokio::time::timeout(Duration::from_secs(10), outcome.recv())
            .await
            .unwrap();
        assert_eq!(seen, Some("cancelled"));
        // The cancelled call gets no answer; the next request does.
        send(&mut host_in, r#"{"jsonrpc":"2.0","id":8,"method":"ping"}"#).await;
        let next: Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
        assert_eq!(next["id"], 8, "{next}");
        drop(host_in);
        assert!(lines.next_line().await.unwrap().is_none());
        serving.await.unwrap();
    }

    /// A host that does not read stdout: answers queue up to the budget, then stdin
    /// is no longer read.
    #[tokio::test]
    async fn a_host_that_does_not_read_stops_the_reading() {
        let (mut host_in, stdin) = tokio::io::duplex(4096);
        let (stdout, _host_out) = tokio::io::duplex(64);
        let (mut transport, _session) = transport(stdin, stdout);
        let feeding = tokio::spawn(async move {
            let mut sent = 0u64;
            for id in 0..100_000 {
                if host_in.write_all(&ping(id)).await.is_err() {
                    break;
                }
                sent += 1;
            }
            sent
        });
        let mut answered = 0i64;
        while let Ok(Some(JsonRpcMessage::Request(request))) =
            tokio::time::timeout(Duration::from_millis(500), transport.receive()).await
        {
            let answer = rmcp::model::ServerJsonRpcMessage::response(
                rmcp::model::ServerResult::empty(()),
                request.id,
            );
            // Sends run concurrently in rmcp; they do here too.
            tokio::spawn(transport.send(answer));
            answered += 1;
        }
        assert!(!feeding.is_finished());
        assert!(
            answered <= (IN_FLIGHT_BUDGET / REPLY_ALLOWANCE) as i64,
            "{answered} requests were read"
        );
        feeding.abort();
    }
}
