//! The gate: the one path from a request to the code that serves it. Every tool call
//! passes it, and a resource read or a completion is to pass it as the tool call it
//! stands for ([`QuiltServer::admit`] is generic over any [`Declared`] request).
//! In this order:
//!
//! 1. the token is verified (docs/reference.md, Errors), or the request gets -32001
//!    with a reason;
//! 2. the arguments are parsed, once, into the typed request, which says the buckets
//!    and permissions it touches (an `invalid_argument` otherwise);
//! 3. those permissions and buckets, the token's level and read-only mode are checked
//!    ([`policy::authorize`]), or the request gets -32003;
//! 4. for tools that reach AWS, credentials come from the token, or the request gets
//!    -32001 (or a tool error when the exchange itself failed);
//! 5. the caller runs the very request that was authorized, with the verified
//!    [`AuthContext`] and the caller's AWS session ([`Admitted`]).
//!
//! Nothing behind the gate repeats these checks. What no argument can declare, the
//! bucket of a package file named by a `quilt+s3://` `uri`, is authorized once the
//! manifest names it, by the same [`policy::authorize`] (`tools::package_uri`).
//!
//! The seam for resources and completions (docs/reference.md, Resources): a handler
//! turns its URI into the arguments of the tool call it stands for (`s3://b/k` into
//! `bucket_object_text`'s `{"s3_uri": "s3://b/k"}`), passes that tool's
//! [`super::table::Entry::parse`] to [`QuiltServer::admit`] with the tool's
//! [`ToolInfo`], and shapes what the admitted call returns; refusals, their codes and
//! the `tool_call` log line are then the tool's own.

use std::sync::Arc;
use std::time::Instant;

use rmcp::model::CallToolResponse;
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};
use tokio_util::sync::CancellationToken;

use super::table::{Answer, Entry, PeerProgress, Table};
use super::{QuiltServer, RequestMeta, Transport, forbidden, unauthorized, unauthorized_upstream};
use crate::auth::AuthContext;
use crate::aws::{AwsSession, CredentialError};
use crate::error::ToolError;
use crate::tools::policy;
use crate::tools::{Call, Declared, ToolInfo};

/// A request the gate let through, with what it was granted.
pub(crate) struct Admitted<R> {
    /// The request, as parsed and authorized.
    pub(crate) request: R,
    /// The verified caller.
    pub(crate) ctx: Arc<AuthContext>,
    /// The caller's AWS session, for a request that reaches AWS.
    pub(crate) aws: Option<Arc<AwsSession>>,
    /// Its `tool_call` log line, written when it is answered.
    pub(crate) log: CallLog,
}

/// A request the gate refused.
#[derive(Debug)]
pub(crate) enum Refused {
    /// -32001 or -32003: a JSON-RPC error.
    Protocol(ErrorData),
    /// A bad argument, or a credential exchange that failed: a failed tool result.
    Failed(ToolError),
}

/// Who is calling, as the gate needs it: the HTTP request's verified token and log
/// fields (none in a stdio session), the call's cancellation, and where its progress
/// goes. Built from rmcp's context, or by the HTTP layer's direct path for the calls
/// it answers itself (`crate::http`).
pub(crate) struct Caller {
    /// `Some` for an HTTP request: the context its bearer token verified to, and its
    /// log fields.
    http: Option<(Option<Arc<AuthContext>>, Option<RequestMeta>)>,
    cancel: CancellationToken,
    progress: PeerProgress,
}

impl Caller {
    /// The caller of an rmcp request (stdio, or HTTP through rmcp's service, which
    /// puts the request's `http::request::Parts` in its extensions).
    pub(crate) fn of(context: &RequestContext<RoleServer>) -> Caller {
        Caller {
            http: context
                .extensions
                .get::<http::request::Parts>()
                .map(|parts| Caller::http_fields(&parts.extensions)),
            cancel: context.ct.clone(),
            progress: PeerProgress::of(context),
        }
    }

    /// The caller of an HTTP request answered without rmcp: what the HTTP layer put
    /// in its `extensions`, cancelled with `cancel`, and no progress (such a call
    /// asked for none).
    pub(crate) fn http(extensions: &http::Extensions, cancel: CancellationToken) -> Caller {
        Caller {
            http: Some(Caller::http_fields(extensions)),
            cancel,
            progress: PeerProgress::none(),
        }
    }

    fn http_fields(
        extensions: &http::Extensions,
    ) -> (Option<Arc<AuthContext>>, Option<RequestMeta>) {
        (
            extensions.get::<Arc<AuthContext>>().cloned(),
            extensions.get::<RequestMeta>().cloned(),
        )
    }
}

impl QuiltServer {
    /// Passes a request through the gate: authenticates `caller`,
    /// parses the request with `parse`, authorizes what it declares for the rules of
    /// `info`, and gets AWS credentials when `info` reaches AWS. Logs `tool_denied`
    /// and, for a refusal, `tool_call`.
    pub(crate) async fn admit<R: Declared>(
        &self,
        info: ToolInfo,
        caller: &Caller,
        parse: impl FnOnce() -> Result<R, ToolError>,
    ) -> Result<Admitted<R>, Refused> {
        let started = Instant::now();
        // 1. The token: verified by the HTTP layer for this request, or read and
        //    verified here for a stdio session.
        let http = caller.http.as_ref();
        let mut log = CallLog {
            tool: info.name,
            started,
            request: http.and_then(|(_, meta)| meta.clone()),
            bucket: None,
            token_fingerprint: None,
        };
        let authenticated = match (http, self.transport()) {
            (Some((verified, _)), _) => self.authenticate_request(verified.clone()),
            // An HTTP call without its request is refused, never served with the
            // environment or keyring token.
            (None, Transport::Http) => self.authenticate_request(None),
            (None, Transport::Stdio) => self.authenticate().await,
        };
        let ctx = match authenticated {
            Ok(ctx) => ctx,
            Err(failure) => {
                log.log("unauthorized", Some(failure.reason.code()));
                return Err(Refused::Protocol(unauthorized(&failure)));
            }
        };
        log.token_fingerprint = Some(ctx.token_info.fingerprint.clone());

        // 2. The arguments, parsed once into the request that will run.
        let request = match parse() {
            Ok(request) => request,
            Err(error) => {
                log.log("error", Some(error.code.as_str()));
                return Err(Refused::Failed(error));
            }
        };
        log.bucket = request.access().buckets.first().cloned();

        // 3. Permissions, buckets, level, read-only mode.
        if let Err(denial) = policy::authorize(
            &info,
            request.access(),
            &ctx.claims,
            self.config().read_only,
        ) {
            tracing::info!(
                event = "tool_denied",
                tool = denial.tool,
                reason = denial.reason.code(),
                bucket = denial.bucket.as_deref().unwrap_or(""),
                missing_permissions = %denial.missing_permissions.join(","),
                token_fingerprint = %ctx.token_info.fingerprint,
                request_id = log.request.as_ref().map(|r| &*r.request_id),
            );
            log.bucket = denial.bucket.clone();
            log.log("denied", Some(denial.reason.code()));
            return Err(Refused::Protocol(forbidden(&denial)));
        }

        // 4. AWS credentials from the token, for what reaches AWS (a registry tool
        //    reaches the registry with the registry token instead).
        let aws = if info.open_world && !info.registry {
            match self.aws().session(&ctx).await {
                Ok(session) => Some(session),
                Err(CredentialError::Unauthorized(failure)) => {
                    log.log("unauthorized", Some(failure.reason.code()));
                    return Err(Refused::Protocol(unauthorized(&failure)));
                }
                Err(CredentialError::Tool(error)) => {
                    log.log("error", Some(error.code.as_str()));
                    return Err(Refused::Failed(error));
                }
            }
        } else {
            None
        };
        Ok(Admitted {
            request,
            ctx,
            aws,
            log,
        })
    }

    /// A tool call: the gate, then the tool with the parameters it authorized.
    pub(crate) async fn call(
        &self,
        name: &str,
        arguments: Option<rmcp::model::JsonObject>,
        caller: Caller,
    ) -> Result<CallToolResponse, ErrorData> {
        self.answer(name, arguments, caller)
            .await
            .map(|answer| CallToolResponse::from(answer.into_result()))
    }

    /// A tool call's answer, not yet written as MCP's result.
    pub(crate) async fn answer(
        &self,
        name: &str,
        arguments: Option<rmcp::model::JsonObject>,
        caller: Caller,
    ) -> Result<Answer, ErrorData> {
        // A write tool hidden in read-only mode is still known: the policy refuses it
        // with `read_only_mode`, which tells the user why. A tool outside the server's
        // toolsets is not: it is answered as a tool that does not exist.
        let Some(entry) = Table::get().offered(name, self.config().toolsets) else {
            return Err(ErrorData::invalid_params(
                format!(
                    "unknown tool {:?}",
                    name.chars().take(64).collect::<String>()
                ),
                None,
            ));
        };
        // A tool this server does not offer (a search tool without a registry) is
        // neither listed nor callable.
        if let Some(why) = self.not_offered(entry.info) {
            return Err(ErrorData::invalid_params(
                format!("{name} is not offered by this server: {why}"),
                None,
            ));
        }
        self.run_entry(entry, arguments, caller).await
    }

    /// Runs `entry` with `arguments` through the gate: a tool call, or the tool call a
    /// resource read or a completion stands for. `Err` is a -32001/-32003 refusal; a
    /// bad argument or a failed run is a failed result.
    pub(crate) async fn run_entry(
        &self,
        entry: &Entry,
        arguments: Option<rmcp::model::JsonObject>,
        caller: Caller,
    ) -> Result<Answer, ErrorData> {
        let admitted = match self
            .admit(entry.info, &caller, || (entry.parse)(arguments))
            .await
        {
            Ok(admitted) => admitted,
            Err(Refused::Protocol(error)) => return Err(error),
            Err(Refused::Failed(error)) => return Ok(Answer::Failed(error)),
        };
        let Admitted {
            request,
            ctx,
            aws,
            log,
        } = admitted;
        let call = Call {
            ctx: &ctx,
            aws: aws.as_deref(),
            registry: self.aws().registry(),
            catalog_url: self.catalog_url(),
            default_region: &self.config().aws_region,
            read_only: self.config().read_only,
            progress: &caller.progress,
            cancel: &caller.cancel,
        };
        let answer = match request.run(call).await {
            Ok(answer) => answer,
            Err(refusal) => {
                log.log("unauthorized", Some(refusal.reason));
                return Err(unauthorized_upstream(&refusal));
            }
        };
        log.log(if answer.is_error() { "error" } else { "ok" }, None);
        Ok(answer)
    }
}

/// The `tool_call` log event of one request.
pub(crate) struct CallLog {
    tool: &'static str,
    started: Instant,
    request: Option<RequestMeta>,
    /// The first bucket the request touches, once it is known.
    bucket: Option<String>,
    /// The caller's token, once verified.
    token_fingerprint: Option<String>,
}

impl CallLog {
    /// Logs the request's outcome.
    pub(crate) fn log(&self, outcome: &str, reason: Option<&str>) {
        crate::metrics::tool_call(self.tool, outcome, self.started.elapsed());
        let duration_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        tracing::info!(
            event = "tool_call",
            tool = self.tool,
            outcome,
            duration_ms,
            bucket = self.bucket.as_deref(),
            reason,
            token_fingerprint = self.token_fingerprint.as_deref(),
            request_id = self.request.as_ref().map(|r| &*r.request_id),
            remote_addr = self.request.as_ref().map(|r| &*r.remote_addr),
        );
    }
}
