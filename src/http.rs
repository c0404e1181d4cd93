//! Streamable HTTP transport (`quilt-mcp serve --http ADDR`): rmcp's stateless
//! streamable HTTP service at `/mcp`, behind a bearer-token layer.
//!
//! Every `/mcp` request must carry `Authorization: Bearer <token>`; the token is
//! verified once, here, and the verified context travels in the request's extensions
//! to the same gate stdio uses ([`crate::server`]). A request without a valid token
//! gets 401 and never reaches MCP handling. `/healthz`, `/readyz` and the RFC 9728
//! metadata document answer without a token. No session binds a user: replicas are
//! interchangeable.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;

use crate::auth::{AuthFailure, Reason, Token, TokenSourceKind};
use crate::server::{QuiltServer, RequestMeta};

/// Default request body limit (4 MiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// The `Host` values accepted by default: loopback only.
pub const LOOPBACK_HOSTS: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// HTTP settings.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Accepted `Host` header values (names or `host:port`).
    pub allowed_hosts: Vec<String>,
    /// Largest request body.
    pub max_body_bytes: usize,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            allowed_hosts: LOOPBACK_HOSTS.iter().map(|h| (*h).to_owned()).collect(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

#[derive(Clone)]
struct AppState {
    server: QuiltServer,
    catalog_url: Option<String>,
}

/// The whole HTTP application.
pub fn router(server: QuiltServer, options: &HttpOptions) -> Router {
    let state = AppState {
        catalog_url: server.config().catalog_url.clone(),
        server: server.clone(),
    };
    let mcp = StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(NeverSessionManager::default()),
        StreamableHttpServerConfig::default()
            .with_legacy_session_mode(false)
            .with_json_response(true)
            .with_sse_keep_alive(None)
            .with_allowed_hosts(options.allowed_hosts.clone())
            .with_max_request_body_bytes(options.max_body_bytes),
    );
    let protected = Router::new()
        .route_service("/mcp", mcp)
        .route_layer(middleware::from_fn_with_state(state.clone(), bearer_auth));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route(
            "/.well-known/oauth-protected-resource",
            get(resource_metadata),
        )
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            get(resource_metadata),
        )
        .merge(protected)
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` completes, then lets in-flight
/// requests finish.
pub async fn run(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Completes on SIGINT or SIGTERM (Ctrl-C elsewhere).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
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
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
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
/// another scheme, or with an empty bearer.
pub fn bearer_token(headers: &HeaderMap) -> Option<Token> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    Token::new(rest)
}

async fn bearer_auth(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let meta = req
        .extensions()
        .get::<RequestMeta>()
        .cloned()
        .unwrap_or_default();
    let base = base_url(req.headers());
    let Some(token) = bearer_token(req.headers()) else {
        let failure = AuthFailure::new(
            Reason::MissingToken,
            "the request carries no bearer token",
            Some(TokenSourceKind::Http),
        );
        crate::server::log_token_failure(None, TokenSourceKind::Http, &failure, Some(&meta));
        return unauthorized(&base, &failure, false);
    };
    match state.server.verify_bearer(&token, &meta) {
        Ok(ctx) => {
            req.extensions_mut().insert(ctx);
            next.run(req).await
        }
        Err(failure) => unauthorized(&base, &failure, true),
    }
}

/// `scheme://host` of the request, as the client sees it (proxy headers first).
fn base_url(headers: &HeaderMap) -> String {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(',').next().unwrap_or("").trim().to_owned())
    };
    let scheme = get("x-forwarded-proto")
        .filter(|p| p == "https" || p == "http")
        .unwrap_or_else(|| "http".to_owned());
    let valid = |h: &String| {
        !h.is_empty()
            && h.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
    };
    let host = get("x-forwarded-host")
        .filter(valid)
        .or_else(|| get("host").filter(valid))
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{scheme}://{host}")
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

fn unauthorized(base: &str, failure: &AuthFailure, token_presented: bool) -> Response {
    let metadata = format!("{base}/.well-known/oauth-protected-resource");
    let challenge = if token_presented {
        format!(
            "Bearer error=\"invalid_token\", error_description=\"{}\", resource_metadata=\"{}\"",
            quoted(&failure.detail),
            quoted(&metadata)
        )
    } else {
        format!("Bearer resource_metadata=\"{}\"", quoted(&metadata))
    };
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
    axum::Json(json!({"status": "ok", "version": crate::VERSION}))
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

async fn resource_metadata(State(state): State<AppState>, headers: HeaderMap) -> impl IntoResponse {
    let base = base_url(&headers);
    let servers: Vec<&str> = state.catalog_url.as_deref().into_iter().collect();
    axum::Json(json!({
        "resource": format!("{base}/mcp"),
        "authorization_servers": servers,
        "bearer_methods_supported": ["header"],
        "resource_name": "quilt-mcp",
        "resource_documentation": "https://github.com/quiltdata/quilt-mcp",
    }))
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
    fn base_url_prefers_proxy_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert_eq!(base_url(&headers), "http://127.0.0.1:8080");
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        headers.insert(
            "x-forwarded-host",
            HeaderValue::from_static("mcp.example.com"),
        );
        assert_eq!(base_url(&headers), "https://mcp.example.com");
        headers.insert("x-forwarded-host", HeaderValue::from_static("evil\"host"));
        assert_eq!(base_url(&headers), "https://127.0.0.1:8080");
    }
}
