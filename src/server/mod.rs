//! The MCP server: rmcp's `ServerHandler`, the authentication of callers, and the
//! one gate every request passes (`gate`) before the tool that serves it runs with
//! the very parameters the gate authorized (`table`).

pub(crate) mod gate;
pub(crate) mod resources;
pub(crate) mod table;

use std::sync::{Arc, Mutex};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CompleteRequestParams, CompleteResult, ErrorCode,
    Implementation, ListResourceTemplatesResult, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities,
    ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::json;

use crate::auth::source::TokenProvider;
use crate::auth::verified::VerifiedTokens;
use crate::auth::verify::Verifier;
use crate::auth::{AuthContext, AuthFailure, Token, TokenSourceKind};
use crate::aws::Aws;
use crate::config::Config;
use crate::time::now_unix;
use crate::tools::policy::Denial;
use crate::version::VERSION;
use table::Table;

/// JSON-RPC error code for an unauthorized call (docs/reference.md, Errors).
pub const UNAUTHORIZED: ErrorCode = ErrorCode(-32001);
/// JSON-RPC error code for a forbidden call (docs/reference.md, Errors).
pub const FORBIDDEN: ErrorCode = ErrorCode(-32003);

const INSTRUCTIONS: &str = "quilt-mcp gives access to Quilt data: S3 buckets and the Quilt packages \
stored in them. Every call is authorized by the user's Quilt token alone. Start with auth_status to \
see who the token belongs to and what it grants, and bucket_list for the buckets it can reach. \
A call refused with error -32001 (Unauthorized) or -32003 (Forbidden) carries data.reason (a \
stable code) and a hint or message saying what the user should do, such as logging in again with \
a fresh token or asking for access to a bucket: relay it to the user rather than retrying. A tool \
that ran and failed returns isError with structuredContent.error.code and retryable.";

/// Facts about one HTTP request, for the log lines it causes.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    /// A fresh id (also returned as `x-request-id`).
    pub request_id: Arc<str>,
    /// The peer's address.
    pub remote_addr: Arc<str>,
}

/// How a server is reached, fixed when it is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// One host over stdio: the token comes from the environment or the keyring.
    Stdio,
    /// Streamable HTTP: the token comes with each request, verified by the HTTP layer,
    /// and nowhere else.
    Http,
}

struct Inner {
    config: Config,
    transport: Transport,
    aws: Aws,
    verifier: Verifier,
    tokens: TokenProvider,
    /// What `tools/list` shows: the tools of the configured toolsets (without those that
    /// write in read-only mode, or that need a registry this server lacks), computed at
    /// the first `tools/list`, not at start-up (describing the tools builds their schemas).
    listed: std::sync::OnceLock<Vec<Tool>>,
    /// `QUILT_CATALOG_URL` without a trailing `/`, for `catalog_url` links.
    catalog_url: Option<String>,
    /// The last verified context, reused while the same token is presented.
    verified: Mutex<Option<Arc<AuthContext>>>,
    /// HTTP: the contexts of bearer tokens verified before, bounded (docs/reference.md,
    /// HTTP).
    bearers: VerifiedTokens,
    /// The token line that opens the `instructions` (stdio, docs/reference.md, Logs), from the
    /// start-up check.
    token_line: Mutex<Option<String>>,
}

/// The quilt-mcp MCP server.
#[derive(Clone)]
pub struct QuiltServer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for QuiltServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuiltServer")
            .field("key_kind", &self.inner.verifier.key_kind())
            .field("read_only", &self.inner.config.read_only)
            .finish_non_exhaustive()
    }
}

/// The outcome of the startup token check, for the caller to report.
#[derive(Debug, Clone)]
pub struct StartupCheck {
    /// The source tokens are read from.
    pub token_source: TokenSourceKind,
    /// `None` when the token verified; else why not.
    pub failure: Option<AuthFailure>,
}

impl QuiltServer {
    /// A stdio server for `config`. Loads the verification key (a local file read at
    /// most); makes no network call.
    pub fn new(config: Config) -> QuiltServer {
        QuiltServer::with_transport(config, Transport::Stdio)
    }

    /// An HTTP server for `config`: a tool call reaches the gate with the token its
    /// request carried, or is refused (`missing_token`); the environment and keyring
    /// token are never used.
    pub fn new_http(config: Config) -> QuiltServer {
        QuiltServer::with_transport(config, Transport::Http)
    }

    fn with_transport(config: Config, transport: Transport) -> QuiltServer {
        let verifier = Verifier::new(&config);
        let tokens = TokenProvider::new(&config);
        let catalog_url = config
            .catalog_url
            .as_deref()
            .map(|url| url.trim().trim_end_matches('/').to_owned())
            .filter(|url| !url.is_empty());
        QuiltServer {
            inner: Arc::new(Inner {
                listed: std::sync::OnceLock::new(),
                catalog_url,
                aws: Aws::new(&config),
                config,
                transport,
                verifier,
                tokens,
                verified: Mutex::new(None),
                bearers: VerifiedTokens::default(),
                token_line: Mutex::new(None),
            }),
        }
    }

    /// How this server is reached.
    pub fn transport(&self) -> Transport {
        self.inner.transport
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// AWS clients and the per-token sessions.
    pub(crate) fn aws(&self) -> &Aws {
        &self.inner.aws
    }

    /// The tools `tools/list` shows, described at the first call.
    fn listed(&self) -> &[Tool] {
        self.inner.listed.get_or_init(|| {
            let config = &self.inner.config;
            let registry = config.registry_url.is_some();
            Table::get()
                .listed(config.read_only, config.toolsets)
                .into_iter()
                .filter(|tool| {
                    Table::get()
                        .entry(&tool.name)
                        .is_some_and(|entry| not_offered(entry.info, registry).is_none())
                })
                .collect()
        })
    }

    /// Why this server does not offer the tool `info` describes (neither listed nor
    /// callable), or `None` when it does.
    pub(crate) fn not_offered(&self, info: crate::tools::ToolInfo) -> Option<&'static str> {
        not_offered(info, self.aws().registry().is_some())
    }

    /// `QUILT_CATALOG_URL`, without a trailing `/`.
    pub(crate) fn catalog_url(&self) -> Option<&str> {
        self.inner.catalog_url.as_deref()
    }

    /// Where this server's tokens come from.
    pub fn token_source(&self) -> TokenSourceKind {
        self.inner.tokens.kind()
    }

    /// The verifier.
    pub fn verifier(&self) -> &Verifier {
        &self.inner.verifier
    }

    /// Checks the token once, logging the outcome (`token_checked`). Used at start-up.
    pub async fn check_token(&self) -> StartupCheck {
        let outcome = self.authenticate().await;
        *self
            .inner
            .token_line
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(token_line(outcome.as_deref()));
        let failure = outcome.err();
        StartupCheck {
            token_source: self.inner.tokens.kind(),
            failure,
        }
    }

    /// Step 1 of the gate: the caller's verified context.
    pub async fn authenticate(&self) -> Result<Arc<AuthContext>, AuthFailure> {
        let now = now_unix();
        // The token is looked up first, so that the log says truthfully whether there
        // is one (and the keyring's state) even when no key can judge it.
        let found = self.inner.tokens.lookup(now).await;
        let keyring_state = match &found {
            Ok((_, TokenSourceKind::Keyring)) => Some("ok"),
            Ok(_) => None,
            Err(missing) => Some(missing.keyring_state),
        };
        if let Some(failure) = self.inner.verifier.not_configured() {
            let token = found.as_ref().ok().map(|(token, _)| token);
            log_token_failed(
                token,
                self.inner.tokens.kind(),
                &failure,
                None,
                keyring_state,
            );
            return Err(failure);
        }
        let (token, source) = match found {
            Ok(found) => found,
            Err(missing) => {
                let failure = missing.failure;
                log_token_failed(
                    None,
                    self.inner.tokens.kind(),
                    &failure,
                    None,
                    keyring_state,
                );
                return Err(failure);
            }
        };
        self.authenticate_token(&token, source, now)
    }

    /// Verifies `token` (or reuses the context verified for it before, re-checking
    /// its times).
    pub fn authenticate_token(
        &self,
        token: &Token,
        source: TokenSourceKind,
        now: i64,
    ) -> Result<Arc<AuthContext>, AuthFailure> {
        let cached = self
            .inner
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .filter(|ctx| ctx.token == *token && ctx.token_info.source == source);
        if let Some(ctx) = cached {
            return match self.inner.verifier.recheck(&ctx, now) {
                Ok(()) => Ok(ctx),
                Err(failure) => {
                    *self
                        .inner
                        .verified
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()) = None;
                    log_token_failure(Some(token), source, &failure, None);
                    Err(failure)
                }
            };
        }
        let ctx = self.verify_logged(token, source, now, None)?;
        *self
            .inner
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(ctx.clone());
        Ok(ctx)
    }

    /// Verifies `token` and logs `token_checked` (with the HTTP request's id when
    /// there is one).
    fn verify_logged(
        &self,
        token: &Token,
        source: TokenSourceKind,
        now: i64,
        request: Option<&RequestMeta>,
    ) -> Result<Arc<AuthContext>, AuthFailure> {
        let request_id = request.map(|r| &*r.request_id);
        let remote_addr = request.map(|r| &*r.remote_addr);
        let result = match self.inner.verifier.not_configured() {
            Some(failure) => Err(failure),
            None => self.inner.verifier.verify(token, source, now),
        };
        match result {
            Ok((ctx, notes)) => {
                for warning in &notes.warnings {
                    tracing::warn!(event = "claims_warning", token_fingerprint = %ctx.token_info.fingerprint, request_id, "{warning}");
                }
                tracing::info!(
                    event = "token_checked",
                    token_present = true,
                    token_source = source.as_str(),
                    token_fingerprint = %ctx.token_info.fingerprint,
                    status = "ok",
                    alg = %ctx.token_info.alg,
                    kid = ctx.token_info.kid.as_deref(),
                    sub = ctx.subject.as_deref(),
                    exp = ctx.expires_at,
                    keyring_state = (source == TokenSourceKind::Keyring).then_some("ok"),
                    buckets = ctx.claims.buckets.len(),
                    permissions = ctx.claims.permissions.len(),
                    roles = ctx.claims.roles.len(),
                    request_id,
                    remote_addr,
                );
                Ok(Arc::new(ctx))
            }
            Err(failure) => {
                let state = (source == TokenSourceKind::Keyring).then_some("ok");
                log_token_failed(Some(token), source, &failure, request, state);
                Err(failure)
            }
        }
    }

    /// Step 1 of the gate in HTTP mode: the context the HTTP layer verified for this
    /// request (its times checked again), never a token from the environment.
    pub fn authenticate_request(
        &self,
        verified: Option<Arc<AuthContext>>,
    ) -> Result<Arc<AuthContext>, AuthFailure> {
        let Some(ctx) = verified else {
            return Err(AuthFailure::new(
                crate::auth::Reason::MissingToken,
                "the request carries no verified bearer token",
                Some(TokenSourceKind::Http),
            ));
        };
        self.inner.verifier.recheck(&ctx, now_unix())?;
        Ok(ctx)
    }

    /// Verifies a bearer token presented over HTTP, logging `token_checked`. A token
    /// verified before is remembered (docs/reference.md, HTTP): its context is reused
    /// after its times (`exp`, `nbf`, `iat`) are checked again, without a new
    /// `token_checked` line unless they fail.
    pub fn verify_bearer(
        &self,
        token: &Token,
        request: &RequestMeta,
    ) -> Result<Arc<AuthContext>, AuthFailure> {
        self.verify_bearer_at(token, request, now_unix())
    }

    fn verify_bearer_at(
        &self,
        token: &Token,
        request: &RequestMeta,
        now: i64,
    ) -> Result<Arc<AuthContext>, AuthFailure> {
        if let Some(ctx) = self.inner.bearers.get(token) {
            return match self.inner.verifier.recheck(&ctx, now) {
                Ok(()) => Ok(ctx),
                Err(failure) => {
                    self.inner.bearers.remove(token);
                    log_token_failure(Some(token), TokenSourceKind::Http, &failure, Some(request));
                    Err(failure)
                }
            };
        }
        let ctx = self.verify_logged(token, TokenSourceKind::Http, now, Some(request))?;
        self.inner.bearers.insert(ctx.clone());
        Ok(ctx)
    }

    /// The verifier has a key.
    pub fn ready(&self) -> Result<(), crate::auth::keys::KeyError> {
        match self.inner.verifier.key_error() {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// The instructions of `initialize`: the token line of the start-up check first,
    /// when there was one.
    fn instructions(&self) -> String {
        let line = self
            .inner
            .token_line
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match line {
            Some(line) => format!("{line}\n\n{INSTRUCTIONS}"),
            None => INSTRUCTIONS.to_owned(),
        }
    }
}

/// Why a server with (or without) a registry does not offer the tool `info` describes.
fn not_offered(info: crate::tools::ToolInfo, registry: bool) -> Option<&'static str> {
    (info.registry && !registry).then_some(
        "QUILT_REGISTRY_URL is not set, and search goes through the Quilt registry's search API",
    )
}

/// The first line of the `instructions` (docs/reference.md, Logs): what a host that
/// only shows "connected" still tells the model and the user. Claims are shown with
/// control characters escaped.
fn token_line(outcome: Result<&AuthContext, &AuthFailure>) -> String {
    match outcome {
        Ok(ctx) => format!(
            "Quilt token: OK — {}, {}, expires {}",
            ctx.subject
                .as_deref()
                .map_or_else(|| "(no subject)".into(), crate::auth::printable),
            ctx.claims.level,
            crate::time::rfc3339(ctx.expires_at).unwrap_or_default()
        ),
        // Without a key the detail names what is wrong (such as the placeholder).
        Err(failure) if failure.reason == crate::auth::Reason::VerificationNotConfigured => {
            format!(
                "Quilt token problem: {} — {}; {}",
                failure.reason.code(),
                failure.detail,
                failure.hint
            )
        }
        Err(failure) => format!(
            "Quilt token problem: {} — {}",
            failure.reason.code(),
            failure.hint
        ),
    }
}

/// Logs a failed `token_checked` (with the HTTP request's id when there is one).
pub(crate) fn log_token_failure(
    token: Option<&Token>,
    source: TokenSourceKind,
    failure: &AuthFailure,
    request: Option<&RequestMeta>,
) {
    log_token_failed(token, source, failure, request, None);
}

/// [`log_token_failure`], with the keyring entry's state for a stdio session.
fn log_token_failed(
    token: Option<&Token>,
    source: TokenSourceKind,
    failure: &AuthFailure,
    request: Option<&RequestMeta>,
    keyring_state: Option<&str>,
) {
    crate::metrics::auth_failure(failure.reason.code());
    // Every field of docs/reference.md (Logs) is present; what an unverified token
    // cannot tell is null (claims are not read from a token that failed).
    let (alg, kid) = token.map(peek_header).unwrap_or_default();
    tracing::info!(
        event = "token_checked",
        token_present = token.is_some(),
        token_source = source.as_str(),
        token_fingerprint = token.map(Token::fingerprint),
        status = failure.reason.code(),
        detail = %failure.detail,
        hint = %failure.hint,
        operator_hint = failure.operator_hint(),
        alg,
        kid,
        sub = None::<&str>,
        exp = None::<i64>,
        buckets = None::<u64>,
        permissions = None::<u64>,
        roles = None::<u64>,
        keyring_state,
        request_id = request.map(|r| &*r.request_id),
        remote_addr = request.map(|r| &*r.remote_addr),
    );
}

/// The `alg` and `kid` of an unverified header, shortened, for the log only.
fn peek_header(token: &Token) -> (Option<String>, Option<String>) {
    use base64::Engine as _;
    let header = token
        .expose()
        .split('.')
        .next()
        .and_then(|h| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(h.trim_end_matches('='))
                .ok()
        })
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    let field = |name: &str| {
        header
            .as_ref()
            .and_then(|h| h.get(name))
            .and_then(|v| v.as_str())
            .map(|s| s.chars().take(40).collect::<String>())
    };
    (field("alg"), field("kid"))
}

/// The -32001 error (docs/reference.md, Errors).
pub fn unauthorized(failure: &AuthFailure) -> ErrorData {
    ErrorData::new(
        UNAUTHORIZED,
        failure.message(),
        Some(json!({"reason": failure.reason.code(), "hint": failure.hint})),
    )
}

/// The -32001 error for credentials an upstream refused while a tool ran (the
/// registry's 401/403 to a search), shaped as [`unauthorized`]'s.
pub(crate) fn unauthorized_upstream(refusal: &crate::error::Unauthorized) -> ErrorData {
    ErrorData::new(
        UNAUTHORIZED,
        format!("Unauthorized: {}; {}", refusal.detail, refusal.hint),
        Some(json!({"reason": refusal.reason, "hint": refusal.hint})),
    )
}

/// The -32003 error (docs/reference.md, Errors).
pub(crate) fn forbidden(denial: &Denial) -> ErrorData {
    let mut data = json!({"reason": denial.reason.code(), "tool": denial.tool});
    if let Some(bucket) = &denial.bucket {
        data["bucket"] = json!(bucket);
    }
    if !denial.missing_permissions.is_empty() {
        data["missing_permissions"] = json!(denial.missing_permissions);
    }
    ErrorData::new(FORBIDDEN, denial.message(), Some(data))
}

impl ServerHandler for QuiltServer {
    fn get_info(&self) -> ServerConfig {
        // Resources and completions only where a toolset offers them.
        let capabilities = if resources::offered(self.inner.config.toolsets) {
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_completions()
                .build()
        } else {
            ServerCapabilities::builder().enable_tools().build()
        };
        ServerConfig::new(capabilities)
            .with_server_info(
                Implementation::new("quilt-mcp", VERSION)
                    .with_title("Quilt")
                    .with_description("Quilt data (S3 buckets and Quilt packages), authorized by the user's Quilt JWT"),
            )
            .with_instructions(self.instructions())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.listed().to_vec()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        let entry = Table::get().offered(name, self.inner.config.toolsets)?;
        let hidden = (self.inner.config.read_only && entry.info.writes())
            || self.not_offered(entry.info).is_some();
        (!hidden).then(|| entry.described.clone())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.call(&request.name, request.arguments, gate::Caller::of(&context))
            .await
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        if !resources::offered(self.inner.config.toolsets) {
            return Err(ErrorData::method_not_found::<
                rmcp::model::ListResourcesRequestMethod,
            >());
        }
        Box::pin(self.resource_list(context)).await
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        if !resources::offered(self.inner.config.toolsets) {
            return Err(ErrorData::method_not_found::<
                rmcp::model::ListResourceTemplatesRequestMethod,
            >());
        }
        Ok(self.resource_templates())
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        if !resources::offered(self.inner.config.toolsets) {
            return Err(ErrorData::method_not_found::<
                rmcp::model::ReadResourceRequestMethod,
            >());
        }
        Box::pin(self.resource_read(request, context))
            .await
            .map(Into::into)
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        if !resources::offered(self.inner.config.toolsets) {
            return Err(ErrorData::method_not_found::<
                rmcp::model::CompleteRequestMethod,
            >());
        }
        Box::pin(self.completion(request, context)).await
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use rmcp::ServiceExt as _;
    use rmcp::model::CallToolRequestParams;
    use rmcp::service::ServiceError;

    /// The shared secret of the unit tests' server (`QUILT_MCP_JWT_SECRET`).
    pub(crate) const SECRET: &str = "unit-test-shared-secret-that-is-long-enough-for-hs256";

    /// A config whose environment holds a valid token.
    fn config() -> Config {
        let now = now_unix();
        let claims = serde_json::json!({
            "sub": "alice", "aud": "quilt-mcp-server", "iat": now, "exp": now + 3600,
            "level": "read", "buckets": ["b"], "permissions": ["s3:GetObject"],
        });
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        Config::from_lookup(|name| match name {
            "QUILT_MCP_JWT_SECRET" => Some(SECRET.to_owned()),
            "QUILT_MCP_TOKEN" => Some(token.clone()),
            "QUILT_MCP_KEYRING_SERVICE" => Some("quilt-mcp-unit-test-none".to_owned()),
            _ => None,
        })
    }

    /// Calls `auth_status` on `server` over an in-memory pipe, which carries no HTTP
    /// request parts.
    async fn auth_status(server: QuiltServer) -> Result<(), ErrorData> {
        let (server_side, client_side) = tokio::io::duplex(64 * 1024);
        let serving = tokio::spawn(async move {
            let service = server.serve(server_side).await.unwrap();
            let _ = service.waiting().await;
        });
        let client = ().serve(client_side).await.unwrap();
        let result = client
            .call_tool(CallToolRequestParams::new("auth_status"))
            .await;
        let _ = client.cancel().await;
        serving.abort();
        match result {
            Ok(_) => Ok(()),
            Err(ServiceError::McpError(e)) => Err(e),
            Err(other) => panic!("transport failure: {other}"),
        }
    }

    /// `claims` signed with [`SECRET`].
    pub(crate) fn hs256(claims: &serde_json::Value) -> Token {
        let text = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            claims,
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        Token::stripped(&text).unwrap()
    }

    #[test]
    fn a_remembered_bearer_is_refused_once_it_expires_and_forgotten() {
        let server = QuiltServer::new_http(config());
        let meta = RequestMeta::default();
        let now = now_unix();
        let leeway = i64::try_from(server.config().leeway_secs).unwrap();
        let token = hs256(&serde_json::json!({
            "sub": "bob", "aud": "quilt-mcp-server", "iat": now, "exp": now + 60,
        }));
        let first = server.verify_bearer_at(&token, &meta, now).unwrap();
        // Remembered: the same context comes back while the token is valid…
        let again = server
            .verify_bearer_at(&token, &meta, now + 60 + leeway)
            .unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        // …and past its expiry (and the leeway) it is refused although remembered.
        let expired = server
            .verify_bearer_at(&token, &meta, now + 61 + leeway)
            .unwrap_err();
        assert_eq!(expired.reason, crate::auth::Reason::Expired);
        assert!(server.inner.bearers.get(&token).is_none());
        // A token not yet valid when it comes back (a clock set back) is refused too.
        let later = hs256(&serde_json::json!({
            "sub": "carol", "aud": "quilt-mcp-server", "nbf": now, "exp": now + 600,
        }));
        server.verify_bearer_at(&later, &meta, now).unwrap();
        let early = server
            .verify_bearer_at(&later, &meta, now - leeway - 1)
            .unwrap_err();
        assert_eq!(early.reason, crate::auth::Reason::NotYetValid);
    }

    #[test]
    fn a_remembered_bearer_never_vouches_for_another_token() {
        let server = QuiltServer::new_http(config());
        let meta = RequestMeta::default();
        let now = now_unix();
        let good = hs256(&serde_json::json!({
            "sub": "bob", "aud": "quilt-mcp-server", "iat": now, "exp": now + 600,
            "buckets": ["b"],
        }));
        server.verify_bearer_at(&good, &meta, now).unwrap();
        // The same header and claims with another signature, a token that only
        // extends the good one, and one cut short: each is verified on its own.
        let text = good.expose();
        let (signed, signature) = text.rsplit_once('.').unwrap();
        let mut forged_signature = signature.as_bytes().to_vec();
        forged_signature[5] = if forged_signature[5] == b'A' {
            b'B'
        } else {
            b'A'
        };
        let forged = format!("{signed}.{}", String::from_utf8(forged_signature).unwrap());
        let failure = server
            .verify_bearer_at(&Token::stripped(&forged).unwrap(), &meta, now)
            .unwrap_err();
        assert_eq!(failure.reason, crate::auth::Reason::InvalidSignature);
        for other in [format!("{text}A"), text[..text.len() - 1].to_owned()] {
            let other = Token::stripped(&other).unwrap();
            assert!(server.verify_bearer_at(&other, &meta, now).is_err());
        }
        assert_eq!(
            server
                .verify_bearer_at(&good, &meta, now)
                .unwrap()
                .subject
                .as_deref(),
            Some("bob")
        );
    }

    #[tokio::test]
    async fn http_calls_without_request_parts_never_use_the_environment_token() {
        // Over stdio the environment token is the caller's.
        assert!(auth_status(QuiltServer::new(config())).await.is_ok());
        // In HTTP mode it is not: no request, no token.
        let error = auth_status(QuiltServer::new_http(config()))
            .await
            .unwrap_err();
        assert_eq!(error.code, UNAUTHORIZED);
        assert_eq!(
            error.data.as_ref().unwrap()["reason"],
            serde_json::json!("missing_token")
        );
    }
}
