//! Streamable HTTP transport (`quilt-mcp serve --http ADDR`): rmcp's stateless
//! streamable HTTP service at `/mcp`, behind a bearer-token layer.
//!
//! Every `/mcp` request must carry `Authorization: Bearer <token>`; the token is
//! verified once, here, and the verified context travels in the request's extensions
//! to the same gate stdio uses ([`crate::server`]). A request without a valid token
//! gets 401 and never reaches MCP handling. `/healthz`, `/readyz` and the RFC 9728
//! metadata document answer without a token. No session binds a user: replicas are
//! interchangeable.
//!
//! Every hostile input has a bound (SPEC §7):
//! - a `Host` outside the allowed hosts gets 403 on every path but the probes, before
//!   authentication;
//! - a connection that has not sent complete request headers within 10 s (a new or an
//!   idle kept-alive connection included) is closed by hyper's header read timeout;
//! - a request body must arrive completely within 30 s of the request reaching
//!   `/mcp`; otherwise the answer is 408 and the connection is closed;
//! - at most `max_connections` connections are open at once: beyond that the server
//!   stops accepting, so new connections wait in the listen backlog and are served
//!   when one closes (the OS refuses them once the backlog is full);
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
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use tower::ServiceExt as _;

use crate::auth::{AuthFailure, Reason, Token, TokenSourceKind};
use crate::server::{QuiltServer, RequestMeta};

/// Default request body limit (4 MiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// The `Host` values accepted by default: loopback only.
pub const LOOPBACK_HOSTS: &[&str] = &["localhost", "127.0.0.1", "::1"];
/// Default cap on open connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Time a connection has to send complete request headers (SPEC §7).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a request body has to arrive completely (SPEC §7).
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

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
        }
    }
}

#[derive(Clone)]
struct AppState {
    server: QuiltServer,
    catalog_url: Option<String>,
    public_url: Option<String>,
    allowed_hosts: Arc<[Authority]>,
    max_body_bytes: usize,
    body_read_timeout: Duration,
}

/// The whole HTTP application.
pub fn router(server: QuiltServer, options: &HttpOptions) -> Router {
    let public_url = options
        .public_url
        .clone()
        .or_else(|| server.config().public_url.clone());
    let mut allowed_hosts = options.allowed_hosts.clone();
    if let Some(host) = public_url
        .as_deref()
        .and_then(|u| u.parse::<Uri>().ok())
        .and_then(|u| u.host().map(str::to_owned))
    {
        allowed_hosts.push(host);
    }
    let state = AppState {
        catalog_url: server.config().catalog_url.clone(),
        public_url,
        allowed_hosts: allowed_hosts
            .iter()
            .filter_map(|h| parse_authority(h))
            .collect(),
        max_body_bytes: options.max_body_bytes,
        body_read_timeout: options.body_read_timeout,
        server: server.clone(),
    };
    let mcp = StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(NeverSessionManager::default()),
        StreamableHttpServerConfig::default()
            .with_legacy_session_mode(false)
            .with_json_response(true)
            .with_sse_keep_alive(None)
            .with_allowed_hosts(allowed_hosts)
            .with_max_request_body_bytes(options.max_body_bytes),
    );
    // Layers run outside in: the Host check, then the bearer, then the body read.
    let protected = Router::new()
        .route_service("/mcp", mcp)
        .route_layer(middleware::from_fn_with_state(state.clone(), read_body))
        .route_layer(middleware::from_fn_with_state(state.clone(), bearer_auth));
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

/// Serves `router` on `listener` with the connection cap and timeouts of `options`
/// until `shutdown` completes, then lets in-flight requests finish.
pub async fn run(
    listener: tokio::net::TcpListener,
    router: Router,
    options: &HttpOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let permits = Arc::new(tokio::sync::Semaphore::new(options.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // A free slot first, then a connection: beyond the cap, connections wait in
        // the listen backlog instead of being accepted.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                router.clone().oneshot(req.map(Body::new))
            });
        let connection =
            graceful.watch(http.serve_connection(hyper_util::rt::TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(event = "http_connection_closed", remote_addr = %peer, "{e}");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// After a failed `accept`: a connection that went away before it was accepted is
/// nothing; anything else (out of file descriptors) is logged and waited out.
async fn accept_failed(error: &std::io::Error) {
    use std::io::ErrorKind as K;
    if matches!(
        error.kind(),
        K::ConnectionRefused | K::ConnectionAborted | K::ConnectionReset
    ) {
        return;
    }
    tracing::warn!(
        event = "http_accept_failed",
        "cannot accept a connection: {error}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
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
        request_id: uuid::Uuid::new_v4().to_string(),
        remote_addr: req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.to_string())
            .unwrap_or_default(),
    };
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
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
        path = %path,
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

async fn bearer_auth(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
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
        return unauthorized(metadata.as_deref(), &failure, false);
    };
    match state.server.verify_bearer(&token, &meta) {
        Ok(ctx) => {
            req.extensions_mut().insert(ctx);
            next.run(req).await
        }
        Err(failure) => unauthorized(metadata.as_deref(), &failure, true),
    }
}

/// Reads the whole body of an authenticated `/mcp` request, at most `max_body_bytes`
/// within `body_read_timeout`, before MCP handling sees it. A body announced as too
/// large is still read up to the limit before the 413: answering at once closes the
/// connection under a client still sending, which then sees a reset, not the 413.
async fn read_body(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let limit = state.max_body_bytes;
    let read = async {
        let mut stream = body.into_data_stream();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|_| StatusCode::BAD_REQUEST)?;
            if chunk.len() > limit.saturating_sub(bytes.len()) {
                return Err(StatusCode::PAYLOAD_TOO_LARGE);
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    };
    match tokio::time::timeout(state.body_read_timeout, read).await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Ok(Err(status)) => body_refused(status, &state),
        Err(_) => body_refused(StatusCode::REQUEST_TIMEOUT, &state),
    }
}

/// The answer to a body that is too large, broken or too slow; the connection is
/// closed after it (the rest of the body is never read).
fn body_refused(status: StatusCode, state: &AppState) -> Response {
    let reason = match status {
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
/// list allows every host (as rmcp does).
fn host_allowed(host: &Authority, allowed: &[Authority]) -> bool {
    allowed.is_empty()
        || allowed
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
    response
}

async fn healthz() -> impl IntoResponse {
    axum::Json(json!({"status": "ok", "version": crate::version::VERSION}))
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.server.ready() {
        Ok(()) => axum::Json(json!({"status": "ready"})).into_response(),
        Err(problem) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "not_ready", "reason": "verification_not_configured", "detail": problem})),
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
