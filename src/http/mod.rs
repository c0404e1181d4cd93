//! Streamable HTTP transport (`quilt-mcp serve --http ADDR`): rmcp's stateless
//! streamable HTTP service at `/mcp`, behind a bearer-token layer, with a direct path
//! for plain `tools/call` requests that answers them as rmcp would (`direct.rs`).
//!
//! Every `/mcp` request must carry `Authorization: Bearer <token>`; the token is
//! verified once, here, and the verified context travels in the request's extensions
//! to the same gate stdio uses ([`crate::server`]). A request without a valid token
//! gets 401 and never reaches MCP handling. `/healthz`, `/readyz` and the RFC 9728
//! metadata document answer without a token. No session binds a user: replicas are
//! interchangeable.
//!
//! Every hostile input has a bound (docs/reference.md, HTTP):
//! - `--allowed-host` values are host names with an optional port, checked at start-up
//!   ([`parse_allowed_host`]); a `Host` outside them gets 403 on every path but the
//!   probes, before authentication;
//! - a connection that has not sent complete request headers within 10 s (a new or an
//!   idle kept-alive connection included) is closed by hyper's header read timeout;
//! - a request body must arrive completely within 30 s of the request reaching
//!   `/mcp`; otherwise the answer is 408 and the connection is closed;
//! - a client that takes none of its response for 30 s is closed (write timeout);
//! - at most `max_connections` connections are open at once: beyond that the server
//!   stops accepting, so new connections wait in the listen backlog and are served
//!   when one closes (the OS refuses them once the backlog is full);
//! - a 401 says `Connection: close`; the rest of its body is read (a bounded amount,
//!   briefly) and the connection is closed after the answer, so a keep-alive client
//!   never sends its next request into a closing connection;
//! - per token ([`limits`]): at most 16 calls in flight (a call's slot is held until
//!   both its handler and its response are done, so an abandoned call still counts),
//!   a budget for the parse cost of its request bodies, and with `--rate-limit` a
//!   token bucket (429 with `Retry-After`);
//! - a closed connection cancels its call: rmcp (or the direct path) cancels the
//!   handler's `CancellationToken` when the response future is dropped;
//! - shutdown stops accepting and waits at most `shutdown_grace` for the rest;
//! - URLs sent back to clients are built from `QUILT_MCP_PUBLIC_URL` (or the checked
//!   `Host`), never from `X-Forwarded-*` headers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use futures::StreamExt as _;
use serde_json::json;

use crate::auth::{AuthFailure, Reason, Token, TokenSourceKind};
use crate::server::{QuiltServer, RequestMeta};

mod direct;
pub mod limits;
mod serve;

use limits::{CallSlot, Callers, Refusal};
pub use serve::run;

/// Default request body limit (4 MiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// The `Host` values accepted by default: loopback only.
pub const LOOPBACK_HOSTS: &[&str] = &["localhost", "127.0.0.1", "[::1]"];
/// Default cap on open connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Time a connection has to send complete request headers (docs/reference.md, HTTP).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a request body has to arrive completely (docs/reference.md, HTTP).
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Time a client may take none of its response before it is closed.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Time a call waits for one of its token's slots (or body budget) before 429.
pub const SLOT_WAIT: Duration = Duration::from_secs(30);
/// Time in-flight requests get to finish after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
/// Time the body of a refused (401, 429) request gets to arrive before the connection is
/// closed; it is read and dropped, at most `max_body_bytes`.
pub const REFUSED_BODY_WAIT: Duration = Duration::from_secs(1);

/// HTTP settings.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Accepted `Host` header values (names or `host:port`; a name matches any port).
    /// The host of the public URL is accepted as well.
    pub allowed_hosts: Vec<String>,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// The externally visible base URL (`--public-url`); when `None`, the
    /// configuration's `QUILT_MCP_PUBLIC_URL`, else `http://` and the checked `Host`.
    pub public_url: Option<String>,
    /// Most connections open at once.
    pub max_connections: usize,
    /// Time a connection has to send complete request headers.
    pub header_read_timeout: Duration,
    /// Time a request body has to arrive completely.
    pub body_read_timeout: Duration,
    /// Time a client may take none of its response before it is closed.
    pub write_timeout: Duration,
    /// Most calls of one token in flight at once.
    pub calls_per_token: usize,
    /// The estimated parse cost of one token's request bodies in flight, in bytes.
    pub body_budget_per_token: usize,
    /// Time a call waits for a slot of its token before 429.
    pub slot_wait: Duration,
    /// Calls per second per token (`--rate-limit`); `None`: no limit.
    pub rate_limit: Option<u32>,
    /// Time in-flight requests get to finish after a shutdown signal.
    pub shutdown_grace: Duration,
    /// Whether this listener's connections count in the open-connections metric (the
    /// metrics listener's own do not).
    pub metered: bool,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            allowed_hosts: LOOPBACK_HOSTS.iter().map(|h| (*h).to_owned()).collect(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            public_url: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: HEADER_READ_TIMEOUT,
            body_read_timeout: BODY_READ_TIMEOUT,
            write_timeout: WRITE_TIMEOUT,
            calls_per_token: limits::CALLS_PER_TOKEN,
            body_budget_per_token: limits::BODY_BUDGET_PER_TOKEN,
            slot_wait: SLOT_WAIT,
            rate_limit: None,
            shutdown_grace: SHUTDOWN_GRACE,
            metered: true,
        }
    }
}

/// What the layers and handlers share, behind one `Arc`: each layer takes its own
/// handle per request, and a handle is one reference count, not a copy of the fields.
#[derive(Clone)]
struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

struct Shared {
    server: QuiltServer,
    catalog_url: Option<String>,
    public_url: Option<String>,
    allowed_hosts: Arc<[Authority]>,
    max_body_bytes: usize,
    body_read_timeout: Duration,
    slot_wait: Duration,
    body_budget: usize,
    callers: Arc<Callers>,
}

/// The whole HTTP application.
pub fn router(server: QuiltServer, options: &HttpOptions) -> Router {
    let public_url = options
        .public_url
        .clone()
        .or_else(|| server.config().public_url.clone());
    // Only values that are host names count: one that is not (checked at start-up by
    // the command line) is dropped, and an empty list allows no Host at all.
    let mut allowed_hosts: Vec<String> = options
        .allowed_hosts
        .iter()
        .filter_map(|h| parse_allowed_host(h).ok())
        .collect();
    if let Some(host) = public_url
        .as_deref()
        .and_then(|u| u.parse::<Uri>().ok())
        .and_then(|u| u.host().map(str::to_owned))
    {
        allowed_hosts.push(host);
    }
    let state = AppState(Arc::new(Shared {
        catalog_url: server.config().catalog_url.clone(),
        public_url,
        allowed_hosts: allowed_hosts
            .iter()
            .filter_map(|h| parse_authority(h))
            .collect(),
        max_body_bytes: options.max_body_bytes,
        body_read_timeout: options.body_read_timeout,
        slot_wait: options.slot_wait,
        body_budget: options.body_budget_per_token,
        callers: Arc::new(Callers::new(
            options.calls_per_token,
            options.body_budget_per_token,
            options.rate_limit,
        )),
        server: server.clone(),
    }));
    let mcp = direct::Mcp::new(server, allowed_hosts, options.max_body_bytes);
    // The Host check (a layer, for every route but the probes), then in `/mcp`'s own
    // handler the bearer, then the body read, then MCP: one handler, not a layer each
    // (a layer costs a boxed service and a boxed future per request).
    let protected = Router::new().route(
        "/mcp",
        any(move |State(state): State<AppState>, req: Request| {
            let mcp = mcp.clone();
            async move {
                bearer_auth(&state, req, |req| {
                    read_body(&state, req, move |req| mcp.handle(req))
                })
                .await
            }
        }),
    );
    let host_checked = Router::new()
        .route(
            "/.well-known/oauth-protected-resource",
            get(resource_metadata),
        )
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            get(resource_metadata),
        )
        .route("/.well-known/oauth-authorization-server", any(not_oauth))
        .route("/.well-known/openid-configuration", any(not_oauth))
        .route("/register", any(not_oauth))
        .route("/authorize", any(not_oauth))
        .route("/token", any(not_oauth))
        .merge(protected)
        .route_layer(middleware::from_fn_with_state(state.clone(), check_host));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(host_checked)
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// Completes on SIGINT or SIGTERM (Ctrl-C elsewhere). The handlers are installed when
/// this is called, not when the future is first polled, so a signal that arrives
/// between the two is not lost to the default action (ending the process unlogged).
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let streams = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        );
        async move {
            match streams {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn log_request(mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let meta = RequestMeta {
        request_id: uuid::Uuid::new_v4().to_string().into(),
        remote_addr: req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.to_string())
            .unwrap_or_default()
            .into(),
    };
    // Kept for the log line without copying: both share the request's own bytes.
    let method = req.method().clone();
    let uri = req.uri().clone();
    req.extensions_mut().insert(meta.clone());
    let mut response = next.run(req).await;
    if let Ok(value) = HeaderValue::from_str(&meta.request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    tracing::info!(
        event = "http_request",
        request_id = %meta.request_id,
        remote_addr = %meta.remote_addr,
        method = %method,
        path = %uri.path(),
        status = response.status().as_u16(),
        duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    );
    response
}

/// The bearer token of a request: `None` without an `Authorization` header, with
/// another scheme, or with an empty bearer. Only the scheme is stripped: in
/// `Bearer Bearer x` the token is `Bearer x`, which fails as `malformed_token`.
pub fn bearer_token(headers: &HeaderMap) -> Option<Token> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    Token::stripped(rest)
}

/// Verifies the bearer token of a `/mcp` request and admits it for its token (a call
/// slot, the rate limit), then hands it to `next`; a 401 or 429 otherwise.
async fn bearer_auth<F, Answered>(state: &AppState, mut req: Request, next: F) -> Response
where
    F: FnOnce(Request) -> Answered,
    Answered: Future<Output = Response>,
{
    let meta = req
        .extensions()
        .get::<RequestMeta>()
        .cloned()
        .unwrap_or_default();
    let metadata = state.metadata_url(req.headers());
    let Some(token) = bearer_token(req.headers()) else {
        let failure = AuthFailure::new(
            Reason::MissingToken,
            "the request carries no bearer token",
            Some(TokenSourceKind::Http),
        );
        crate::server::log_token_failure(None, TokenSourceKind::Http, &failure, Some(&meta));
        drain_refused(req, state.max_body_bytes).await;
        return unauthorized(metadata.as_deref(), &failure, false);
    };
    let ctx = match state.server.verify_bearer(&token, &meta) {
        Ok(ctx) => ctx,
        Err(failure) => {
            drain_refused(req, state.max_body_bytes).await;
            return unauthorized(metadata.as_deref(), &failure, true);
        }
    };
    let fingerprint = &ctx.token_info.fingerprint;
    let slot = match state.callers.admit(fingerprint, state.slot_wait).await {
        Ok(slot) => slot,
        Err(refusal) => {
            let response = refused(refusal, fingerprint, &meta);
            drain_refused(req, state.max_body_bytes).await;
            return response;
        }
    };
    // The slot travels with the request into the handler's context, and with the
    // response body: it is free once both are gone.
    req.extensions_mut().insert(slot.clone());
    req.extensions_mut().insert(ctx);
    let response = next(req).await;
    hold_until_sent(response, slot)
}

/// Reads and drops what arrives of a refused (401, 429) request's body, at most
/// `limit` bytes and [`REFUSED_BODY_WAIT`], so that the connection closes after the
/// answer without unread data (which would reset it and could lose the answer).
async fn drain_refused(req: Request, limit: usize) {
    let mut body = req.into_body().into_data_stream();
    let drain = async {
        let mut read = 0usize;
        while let Some(Ok(chunk)) = body.next().await {
            read = read.saturating_add(chunk.len());
            if read > limit {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(REFUSED_BODY_WAIT, drain).await;
}

/// The answer to a call its token may not make now: 429 with `Retry-After`, and the
/// connection closed after it (the body was not read).
fn refused(refusal: Refusal, fingerprint: &str, meta: &RequestMeta) -> Response {
    let (body, retry_after) = match refusal {
        Refusal::RateLimited { retry_after, first } => {
            crate::metrics::rate_limited();
            if first {
                tracing::warn!(
                    event = "rate_limited",
                    token_fingerprint = %fingerprint,
                    retry_after,
                    request_id = %meta.request_id,
                    "a token is over its rate limit; its calls get 429 until it slows down"
                );
            }
            (
                json!({"error": "rate_limited", "retry_after": retry_after}),
                retry_after,
            )
        }
        Refusal::Busy => (
            json!({"error": "too_many_calls", "retry_after": 1,
                "message": format!("this token already has {} calls in flight", limits::CALLS_PER_TOKEN)}),
            1,
        ),
    };
    let mut response = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// `response` with `slot` held until its body has been sent (or dropped).
fn hold_until_sent(response: Response, slot: CallSlot) -> Response {
    response.map(|body| Body::new(Holding { body, _slot: slot }))
}

/// A body that holds a call slot.
struct Holding {
    body: Body,
    _slot: CallSlot,
}

impl http_body::Body for Holding {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Reads the whole body of an authenticated `/mcp` request, at most `max_body_bytes`
/// within `body_read_timeout`, before MCP handling sees it, then waits for its parse
/// cost in the token's body budget. A body announced as too large is still read up
/// to the limit (and a bounded amount past it) before the 413: answering at once
/// closes the connection under a client still sending, which then sees a reset, not
/// the 413.
async fn read_body<F, Answered>(state: &AppState, req: Request, next: F) -> Response
where
    F: FnOnce(Request) -> Answered,
    Answered: Future<Output = Response>,
{
    let (mut parts, body) = req.into_parts();
    let limit = state.max_body_bytes;
    let announced = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut stream = body.into_data_stream();
    let read = async {
        let mut bytes = Vec::with_capacity(announced.min(limit));
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|_| StatusCode::BAD_REQUEST)?;
            if chunk.len() > limit.saturating_sub(bytes.len()) {
                return Err(StatusCode::PAYLOAD_TOO_LARGE);
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    };
    let read = tokio::time::timeout(state.body_read_timeout, read).await;
    if matches!(read, Ok(Err(StatusCode::PAYLOAD_TOO_LARGE))) {
        // The rest of a body over the limit is read (a bounded amount, briefly) and
        // dropped, so that closing after the 413 does not reset the connection under
        // a client still sending, which would then see the reset instead of the 413.
        let drain = async {
            let mut read = 0usize;
            while let Some(Ok(chunk)) = stream.next().await {
                read = read.saturating_add(chunk.len());
                if read > limit {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(REFUSED_BODY_WAIT, drain).await;
    }
    match read {
        Ok(Ok(bytes)) => {
            // What the body will cost once parsed comes out of its token's budget, so
            // bodies dense in JSON values cannot multiply into gigabytes.
            let fingerprint = parts
                .extensions
                .get::<Arc<crate::auth::AuthContext>>()
                .map(|ctx| ctx.token_info.fingerprint.clone())
                .unwrap_or_default();
            let cost = limits::parse_cost(&bytes);
            if cost > state.body_budget {
                return body_refused(StatusCode::PAYLOAD_TOO_LARGE, state, true);
            }
            let share = match state
                .callers
                .body_share(&fingerprint, cost, state.slot_wait)
                .await
            {
                Ok(share) => share,
                Err(refusal) => {
                    let meta = parts
                        .extensions
                        .get::<RequestMeta>()
                        .cloned()
                        .unwrap_or_default();
                    return refused(refusal, &fingerprint, &meta);
                }
            };
            parts.extensions.insert(share.clone());
            let response = next(Request::from_parts(parts, Body::from(bytes))).await;
            drop(share);
            response
        }
        Ok(Err(status)) => body_refused(status, state, false),
        Err(_) => body_refused(StatusCode::REQUEST_TIMEOUT, state, false),
    }
}

/// The answer to a body that is too large, broken or too slow; the connection is
/// closed after it (the rest of the body is never read).
fn body_refused(status: StatusCode, state: &AppState, too_dense: bool) -> Response {
    let reason = match status {
        StatusCode::PAYLOAD_TOO_LARGE if too_dense => format!(
            "the request body holds too many JSON values: at most about {} values fit in {} bytes",
            state.body_budget / limits::BYTES_PER_JSON_VALUE,
            state.max_body_bytes
        ),
        StatusCode::PAYLOAD_TOO_LARGE => {
            format!("the request body is over {} bytes", state.max_body_bytes)
        }
        StatusCode::REQUEST_TIMEOUT => format!(
            "the request body did not arrive within {} s",
            state.body_read_timeout.as_secs()
        ),
        _ => "the request body could not be read".to_owned(),
    };
    let mut response = (status, axum::Json(json!({"error": reason}))).into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Why an `--allowed-host` value is not a host name with an optional port.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AllowedHostError(String);

/// An `--allowed-host` value, checked: a DNS name, an IPv4 address or a bracketed
/// IPv6 address, with an optional `:port`; lower-cased. Anything else (a URL, a path,
/// userinfo, a wildcard, an empty value, a port out of range) is an error that says
/// what was expected, so that a typo stops the server instead of leaving a list that
/// allows no one, or everyone.
pub fn parse_allowed_host(text: &str) -> Result<String, AllowedHostError> {
    let refuse = |why: &str| {
        Err(AllowedHostError(format!(
            "{text:?} is not a host name with an optional :port ({why}); for example mcp.example.com or mcp.example.com:8443"
        )))
    };
    let value = text.trim();
    if value.is_empty() {
        return refuse("it is empty");
    }
    if value.contains("://") {
        return refuse("give the host of the URL, without its scheme");
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || ".-:[]".contains(*c)))
    {
        return refuse(&format!("{c:?} has no place in a host name"));
    }
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return refuse("an IPv6 address needs its closing bracket");
        };
        if inside.parse::<std::net::Ipv6Addr>().is_err() {
            return refuse("not an IPv6 address");
        }
        match after {
            "" => (format!("[{inside}]"), None),
            _ => match after.strip_prefix(':') {
                Some(port) => (format!("[{inside}]"), Some(port)),
                None => return refuse("text after the IPv6 address"),
            },
        }
    } else {
        match value.split_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port)),
            None => (value.to_owned(), None),
        }
    };
    if let Some(port) = port
        && (port.is_empty()
            || !port.chars().all(|c| c.is_ascii_digit())
            || port.parse::<u16>().is_err())
    {
        return refuse("the port must be a number from 0 to 65535");
    }
    if !host.starts_with('[') {
        let dns_name = host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !dns_name {
            return refuse("not a DNS name or an IP address");
        }
    }
    let host = host.to_ascii_lowercase();
    Ok(match port {
        Some(port) => format!("{host}:{port}"),
        None => host,
    })
}

/// A `Host` value as host (lower case, no brackets) and port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Authority {
    host: String,
    port: Option<u16>,
}

fn parse_authority(text: &str) -> Option<Authority> {
    let authority = text.trim().parse::<axum::http::uri::Authority>().ok()?;
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    (!host.is_empty()).then_some(Authority {
        host,
        port: authority.port_u16(),
    })
}

/// The request's `Host` header (else the URI's authority).
fn request_host(uri: &Uri, headers: &HeaderMap) -> Option<Authority> {
    match headers.get(header::HOST) {
        Some(value) => parse_authority(value.to_str().ok()?),
        None => parse_authority(uri.authority()?.as_str()),
    }
}

/// Whether `host` is allowed: an entry without a port matches any port. An empty
/// list allows no host.
fn host_allowed(host: &Authority, allowed: &[Authority]) -> bool {
    allowed
        .iter()
        .any(|a| a.host == host.host && a.port.is_none_or(|p| host.port == Some(p)))
}

/// Refuses a request whose `Host` is missing or not allowed (DNS rebinding), before
/// anything else looks at it.
async fn check_host(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match request_host(req.uri(), req.headers()) {
        Some(host) if host_allowed(&host, &state.allowed_hosts) => next.run(req).await,
        _ => (
            StatusCode::FORBIDDEN,
            axum::Json(json!({"error": "forbidden", "reason": "host_not_allowed"})),
        )
            .into_response(),
    }
}

impl AppState {
    /// The externally visible base URL: the public URL, else `http://` and the
    /// request's `Host` (already checked against the allowed hosts). Never taken
    /// from `X-Forwarded-*` headers.
    fn base_url(&self, headers: &HeaderMap) -> String {
        if let Some(url) = &self.public_url {
            return url.clone();
        }
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|h| {
                !h.is_empty()
                    && h.chars()
                        .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
            })
            .unwrap_or("localhost");
        format!("http://{host}")
    }

    /// The RFC 9728 metadata URL, when there is an authorization server to name.
    fn metadata_url(&self, headers: &HeaderMap) -> Option<String> {
        self.catalog_url.as_ref().map(|_| {
            format!(
                "{}/.well-known/oauth-protected-resource",
                self.base_url(headers)
            )
        })
    }
}

/// A quoted-string for a `WWW-Authenticate` parameter: printable ASCII, no quotes.
fn quoted(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .filter(|c| *c != '"' && *c != '\\')
        .take(300)
        .collect()
}

fn unauthorized(metadata: Option<&str>, failure: &AuthFailure, token_presented: bool) -> Response {
    let mut params = Vec::new();
    if token_presented {
        params.push("error=\"invalid_token\"".to_owned());
        params.push(format!("error_description=\"{}\"", quoted(&failure.detail)));
    }
    if let Some(metadata) = metadata {
        params.push(format!("resource_metadata=\"{}\"", quoted(metadata)));
    }
    if params.is_empty() {
        params.push("realm=\"quilt-mcp\"".to_owned());
    }
    let challenge = format!("Bearer {}", params.join(", "));
    let body = json!({
        "error": "unauthorized",
        "reason": failure.reason.code(),
        "message": failure.message(),
    });
    let mut response = (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    // The connection ends with this answer; saying so keeps a keep-alive client from
    // sending its next request into it.
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The metrics listener's application (`--metrics ADDR`): `GET /metrics`, the
/// Prometheus text of [`crate::metrics`]; nothing else. It never shares the MCP port.
pub fn metrics_router() -> Router {
    Router::new().route(
        "/metrics",
        get(|| async {
            (
                [(
                    header::CONTENT_TYPE,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                )],
                crate::metrics::render(),
            )
        }),
    )
}

async fn healthz() -> impl IntoResponse {
    axum::Json(json!({"status": "ok", "version": crate::version::VERSION}))
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.server.ready() {
        Ok(()) => axum::Json(json!({"status": "ready"})).into_response(),
        Err(problem) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "not_ready", "reason": "verification_not_configured", "detail": problem.to_string()})),
        )
            .into_response(),
    }
}

/// The paths where an OAuth client that found no authorization server looks for one
/// on the MCP server's own origin (the MCP 2025-03-26 fallback: authorization-server
/// metadata, then `/register`, `/authorize`, `/token`): 404 with an OAuth error body
/// whose `error_description` says what to send instead, which clients show or log
/// (Claude Code logs it as the reason the connection failed) instead of a parse error.
async fn not_oauth() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({
            "error": "invalid_request",
            "error_description": "quilt-mcp is not an OAuth authorization server: send your \
                Quilt token in an Authorization: Bearer header (in Claude Code: claude mcp add \
                --transport http NAME URL --header \"Authorization: Bearer <token>\")",
        })),
    )
        .into_response()
}

/// RFC 9728 metadata; 404 without `QUILT_CATALOG_URL`, when there is no
/// authorization server to name.
async fn resource_metadata(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(catalog) = &state.catalog_url else {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": "not_found", "reason": "no_authorization_server"})),
        )
            .into_response();
    };
    axum::Json(json!({
        "resource": format!("{}/mcp", state.base_url(&headers)),
        "authorization_servers": [catalog],
        "bearer_methods_supported": ["header"],
        "resource_name": "quilt-mcp",
        "resource_documentation": "https://github.com/quiltdata/quilt-mcp",
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_taken_from_the_bearer_scheme_only() {
        let cases: &[(Option<&str>, Option<&str>)] = &[
            (None, None),
            (Some("Basic YWxhZGRpbjpvcGVuc2VzYW1l"), None),
            (Some("Bearer"), None),
            (Some("Bearer   "), None),
            (Some("Bearer abc.def.ghi"), Some("abc.def.ghi")),
            (Some("bearer  abc.def.ghi "), Some("abc.def.ghi")),
            // One `Bearer ` is stripped, once: the rest is the token, and fails.
            (
                Some("Bearer Bearer abc.def.ghi"),
                Some("Bearer abc.def.ghi"),
            ),
            (Some("Bearer bearer"), Some("bearer")),
        ];
        for (value, expected) in cases {
            let mut headers = HeaderMap::new();
            if let Some(v) = value {
                headers.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
            }
            assert_eq!(
                bearer_token(&headers).as_ref().map(Token::expose),
                *expected,
                "{value:?}"
            );
        }
    }

    #[test]
    fn allowed_hosts_are_host_names_with_an_optional_port() {
        let cases: &[(&str, Option<&str>)] = &[
            ("mcp.example.com", Some("mcp.example.com")),
            (" MCP.Example.COM:8443 ", Some("mcp.example.com:8443")),
            ("localhost", Some("localhost")),
            ("10.0.0.7:80", Some("10.0.0.7:80")),
            ("[::1]", Some("[::1]")),
            ("[::1]:8080", Some("[::1]:8080")),
            ("a-b.c", Some("a-b.c")),
            ("https://mcp.example.com", None),
            ("", None),
            ("  ", None),
            ("name/", None),
            ("mcp.example.com/mcp", None),
            ("user@mcp.example.com", None),
            ("mcp.example.com:99999", None),
            ("mcp.example.com:", None),
            ("mcp.example.com:port", None),
            ("a b", None),
            ("-bad.example.com", None),
            ("bad-.example.com", None),
            ("a..b", None),
            ("[::1", None),
            ("[nope]", None),
            ("[::1]x", None),
            ("*.example.com", None),
            ("::1", None),
        ];
        for (text, expected) in cases {
            assert_eq!(
                parse_allowed_host(text).ok().as_deref(),
                *expected,
                "{text:?}"
            );
        }
        // An empty list allows nothing.
        let host = parse_authority("localhost").unwrap();
        assert!(!host_allowed(&host, &[]));
    }

    #[test]
    fn hosts_match_by_name_and_by_port_when_one_is_given() {
        let allowed: Vec<Authority> = ["localhost", "127.0.0.1:8080", "[::1]", "MCP.example.com"]
            .iter()
            .filter_map(|h| parse_authority(h))
            .collect();
        let cases: &[(&str, bool)] = &[
            ("localhost", true),
            ("localhost:1234", true),
            ("LOCALHOST", true),
            ("127.0.0.1:8080", true),
            ("127.0.0.1:8081", false),
            ("127.0.0.1", false),
            ("[::1]:99", true),
            ("mcp.example.com", true),
            ("evil.example", false),
            ("localhost.evil.example", false),
            ("", false),
            ("a b", false),
        ];
        for (host, expected) in cases {
            let mut headers = HeaderMap::new();
            headers.insert(header::HOST, HeaderValue::from_str(host).unwrap());
            let found = request_host(&Uri::from_static("/mcp"), &headers);
            assert_eq!(
                found.is_some_and(|h| host_allowed(&h, &allowed)),
                *expected,
                "{host:?}"
            );
        }
        assert!(request_host(&Uri::from_static("/mcp"), &HeaderMap::new()).is_none());
    }
}
