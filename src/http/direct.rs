//! The direct path of `/mcp`: the request that makes up an HTTP server's load, a plain
//! stateless `tools/call` POST, answered here with the very bytes rmcp's stateless
//! service would answer it with, without rmcp's per-request machinery (a one-shot
//! transport, a peer, a spawned service task and its cancellation tokens, about a third
//! of a call's CPU). Everything else goes to rmcp's service, unchanged.
//!
//! A request takes the direct path only when rmcp would answer it the same way, by
//! construction: each condition below is one rmcp checks or branches on, and any doubt
//! sends the request to rmcp, which then decides. rmcp's first check, the `Host`
//! against the allowed hosts, has already been made by this server's own layer with
//! the same list, at least as strictly (an empty list allows no host, where rmcp would
//! allow any); rmcp's `Origin` check is off (no allowed origins are configured).
//!
//! | condition | otherwise rmcp |
//! |---|---|
//! | `POST` | answers GET (no stream in stateless mode) and DELETE |
//! | `Accept` lists `application/json` and `text/event-stream`, without parameters | answers 406, or weighs the parameters |
//! | `Content-Type` is `application/json` (parameters allowed) | answers 415 |
//! | at most one `MCP-Protocol-Version`, one rmcp knows from before the 2026-07-28 revision (standard headers, per-request metadata), or none | answers 400, or validates the newer headers and metadata |
//! | the body is one JSON-RPC request, `tools/call`, with no member but `jsonrpc`, `id`, `method` and `params` (`name`, `arguments`): no `_meta` | answers a notification, a batch or anything else, and sends progress (which needs an event stream) |
//!
//! The answer is rmcp's: the same handler ([`QuiltServer::answer`], through the same
//! gate), the result shaped for a peer before 2026-07-28 as rmcp shapes it, the same
//! JSON-RPC envelope, `200` with `Content-Type: application/json`; a successful
//! output is serialized once, for both its structured result and its text, where rmcp's
//! result holds it twice (a JSON tree and its text). The call runs as a
//! task of its own, as there, and a closed connection cancels its token: it ends as
//! `cancelled` and is logged like any other. Tests send the same requests down both
//! paths and compare the answers byte for byte, and check that rmcp decodes the same
//! id, tool and arguments from every body this path takes.

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse as _, Response};
use http::{HeaderMap, Method, StatusCode, header};
use rmcp::ErrorData;
use rmcp::model::{
    CallToolResult, JsonObject, JsonRpcMessage, JsonRpcResponse, JsonRpcVersion2_0,
    ProtocolVersion, RequestId, ServerJsonRpcMessage, ServerResult,
};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::server::QuiltServer;
use crate::server::gate::Caller;
use crate::server::table::{Answer, failure, unwritable};

/// The header that names the protocol version of a request after `initialize`.
const PROTOCOL_VERSION_HEADER: &str = "mcp-protocol-version";

/// `/mcp`: the direct path for the requests it takes, rmcp's service for the rest.
#[derive(Clone)]
pub(crate) struct Mcp {
    server: QuiltServer,
    rmcp: Arc<StreamableHttpService<QuiltServer, NeverSessionManager>>,
}

impl Mcp {
    /// `/mcp` for `server`: rmcp's stateless service with a JSON body (no event
    /// stream), checking the `Host` against `allowed_hosts`, and the direct path.
    pub(crate) fn new(
        server: QuiltServer,
        allowed_hosts: Vec<String>,
        max_body_bytes: usize,
    ) -> Mcp {
        let for_rmcp = server.clone();
        let rmcp = StreamableHttpService::new(
            move || Ok(for_rmcp.clone()),
            Arc::new(NeverSessionManager::default()),
            StreamableHttpServerConfig::default()
                .with_legacy_session_mode(false)
                .with_json_response(true)
                .with_sse_keep_alive(None)
                .with_allowed_hosts(allowed_hosts)
                .with_max_request_body_bytes(max_body_bytes),
        );
        Mcp {
            server,
            rmcp: Arc::new(rmcp),
        }
    }

    /// Answers one `/mcp` request.
    pub(crate) async fn handle(self, req: Request) -> Response {
        let req = if req.method() == Method::POST && plain_headers(req.headers()) {
            let (parts, body) = req.into_parts();
            // The body is already in memory (the body layer read it whole).
            let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
                return StatusCode::BAD_REQUEST.into_response();
            };
            if let Some((id, name, arguments)) = plain_call(&bytes) {
                return self.answer(parts.extensions, id, name, arguments).await;
            }
            Request::from_parts(parts, Body::from(bytes))
        } else {
            req
        };
        self.rmcp.handle(req).await.map(Body::new)
    }

    /// Runs the call and answers it as rmcp's stateless service answers with a JSON
    /// body. As there, the call runs as a task of its own, holding the request's
    /// extensions (its verified context and its call slot) until it ends, and a
    /// closed connection (this future dropped first) cancels it: it then ends
    /// promptly, as `cancelled`, and is logged like any other.
    async fn answer(
        &self,
        extensions: http::Extensions,
        id: RequestId,
        name: String,
        arguments: Option<JsonObject>,
    ) -> Response {
        let cancel = CancellationToken::new();
        let on_drop = cancel.clone().drop_guard();
        let server = self.server.clone();
        // Boxed: the gate's future is large, and a task's future is copied as it is
        // spawned, and its stage again as it finishes.
        let call = tokio::spawn(Box::pin(async move {
            let caller = Caller::http(&extensions, cancel);
            let answered = server.answer(&name, arguments, caller).await;
            drop(extensions);
            answered
        }));
        let answered = match call.await {
            Ok(answered) => answered,
            // The gate answers a panic inside a tool; this is one outside it.
            Err(e) => Err(ErrorData::internal_error(
                format!("the call ended without an answer: {e}"),
                None,
            )),
        };
        on_drop.disarm();
        let written = match answered {
            // The output serialized once, for the structured result and its text.
            Ok(Answer::Output(output)) => match output.raw() {
                Ok(result) => {
                    // Written once into a buffer of its size, not grown while written.
                    let mut body = Vec::with_capacity(result.size_hint());
                    serde_json::to_writer(
                        &mut body,
                        &JsonRpcResponse {
                            jsonrpc: JsonRpcVersion2_0,
                            id,
                            result,
                        },
                    )
                    .map(|()| body)
                }
                Err(e) => write(JsonRpcMessage::response(result(unwritable(&e)), id)),
            },
            Ok(Answer::Failed(error)) => {
                write(JsonRpcMessage::response(result(failure(error)), id))
            }
            Err(error) => write(JsonRpcMessage::error(error, Some(id))),
        };
        match written {
            Ok(body) => (
                [(header::CONTENT_TYPE, "application/json")],
                Body::from(body),
            )
                .into_response(),
            Err(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the answer could not be written: {e}"),
            )
                .into_response(),
        }
    }
}

/// A result shaped as rmcp shapes it for a peer before 2026-07-28, the only peers that
/// take this path.
fn result(result: CallToolResult) -> ServerResult {
    let mut result = ServerResult::from(result);
    result.strip_result_type_for_legacy_peer();
    result.strip_non_object_output_for_legacy_peer();
    result
}

fn write(message: ServerJsonRpcMessage) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(&message)
}

/// Whether the headers are ones rmcp's stateless service accepts as they are, for a
/// protocol version before the one that brought standard headers and per-request
/// metadata.
fn plain_headers(headers: &HeaderMap) -> bool {
    accepts_json_and_event_stream(headers) && json_content(headers) && legacy_version(headers)
}

/// Both media types, listed plainly: a quoted string or a parameter (a weight, which
/// may be zero) is rmcp's to weigh.
fn accepts_json_and_event_stream(headers: &HeaderMap) -> bool {
    let (mut json, mut event_stream) = (false, false);
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else {
            return false;
        };
        if value.contains(['"', ';']) {
            return false;
        }
        for essence in value.split(',').map(str::trim) {
            json |= essence.eq_ignore_ascii_case("application/json");
            event_stream |= essence.eq_ignore_ascii_case("text/event-stream");
        }
    }
    json && event_stream
}

/// `Content-Type: application/json`, with any parameters, as rmcp reads it.
fn json_content(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            let essence = value.split_once(';').map_or(value, |(essence, _)| essence);
            essence.trim().eq_ignore_ascii_case("application/json")
        })
}

/// No `MCP-Protocol-Version` (rmcp then assumes 2025-03-26), or one that rmcp knows
/// and that comes before standard headers and per-request metadata.
fn legacy_version(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(PROTOCOL_VERSION_HEADER).iter();
    let Some(value) = values.next() else {
        return true;
    };
    if values.next().is_some() {
        return false;
    }
    let Ok(value) = value.to_str() else {
        return false;
    };
    ProtocolVersion::KNOWN_VERSIONS.iter().any(|known| {
        known.as_str() == value
            && known.as_str() < ProtocolVersion::STANDARD_HEADERS.as_str()
            && known.as_str() < ProtocolVersion::NO_INITIALIZE.as_str()
    })
}

/// A plain `tools/call` request, and nothing else: any other member, or a value of
/// another shape, fails to decode (and the request goes to rmcp).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainRequest<'a> {
    #[allow(dead_code, reason = "decoded to check it is \"2.0\"")]
    jsonrpc: JsonRpcVersion2_0,
    id: RequestId,
    #[serde(borrow)]
    method: Cow<'a, str>,
    params: PlainParams,
}

/// The parameters of a plain `tools/call`: a name and its arguments, no `_meta`,
/// `inputResponses` or `requestState`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainParams {
    name: String,
    #[serde(default)]
    arguments: Option<JsonObject>,
}

/// The id, tool name and arguments of a body that is one plain `tools/call` request:
/// what rmcp decodes from it (a test compares the two on bodies of every shape), read
/// straight into these values rather than tried against each kind of message.
fn plain_call(body: &[u8]) -> Option<(RequestId, String, Option<JsonObject>)> {
    let request: PlainRequest<'_> = serde_json::from_slice(body).ok()?;
    (request.method == "tools/call").then_some((
        request.id,
        request.params.name,
        request.params.arguments,
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::auth::Token;
    use crate::config::Config;
    use crate::server::RequestMeta;
    use crate::server::tests::{SECRET, hs256};
    use crate::time::now_unix;

    const JSON_AND_SSE: &str = "application/json, text/event-stream";

    fn mcp() -> Mcp {
        let config =
            Config::from_lookup(|name| (name == "QUILT_MCP_JWT_SECRET").then(|| SECRET.to_owned()));
        Mcp::new(
            QuiltServer::new_http(config),
            vec!["localhost".to_owned()],
            1 << 20,
        )
    }

    /// The request as the bearer layer hands it on: with the verified context and the
    /// request's log fields in its extensions.
    fn request(
        mcp: &Mcp,
        token: &Token,
        method: Method,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Request {
        let meta = RequestMeta {
            request_id: "r-1".into(),
            remote_addr: "127.0.0.1:1".into(),
        };
        let ctx = mcp.server.verify_bearer(token, &meta).unwrap();
        let mut builder = http::Request::builder()
            .method(method)
            .uri("/mcp")
            .header(header::HOST, "localhost");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let mut req = builder.body(Body::from(body.to_owned())).unwrap();
        req.extensions_mut().insert(ctx);
        req.extensions_mut().insert(meta);
        req
    }

    async fn parts(response: Response) -> (StatusCode, Option<String>, String) {
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            content_type,
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }

    /// `/mcp`'s answer and rmcp's own, to the same request.
    async fn both(
        method: Method,
        headers: &[(&str, &str)],
        body: &str,
    ) -> [(StatusCode, Option<String>, String); 2] {
        let mcp = mcp();
        let now = now_unix();
        let claims = serde_json::json!({
            "sub": "alice", "aud": "quilt-mcp-server", "iat": now, "exp": now + 3600,
            "level": "read", "buckets": ["b"], "permissions": ["s3:GetObject", "s3:ListBucket"],
        });
        let token = hs256(&claims);
        let ours = parts(
            mcp.clone()
                .handle(request(&mcp, &token, method.clone(), headers, body))
                .await,
        )
        .await;
        let theirs = parts(
            mcp.rmcp
                .handle(request(&mcp, &token, method, headers, body))
                .await
                .map(Body::new),
        )
        .await;
        [ours, theirs]
    }

    fn call(id: &str, tool: &str, arguments: &str) -> String {
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}","arguments":{arguments}}}}}"#
        )
    }

    /// The calls the direct path answers get the bytes rmcp answers them with: results,
    /// failed results, JSON-RPC refusals and unknown tools, for every protocol version
    /// it takes.
    #[tokio::test]
    async fn the_direct_path_answers_as_rmcp_does() {
        // (Not `auth_status`: its `expires_in` counts seconds, and the two answers
        // may fall on either side of one.)
        let bodies = [
            call("1", "bucket_list", "{}"),
            call(r#""abc""#, "bucket_list", "{}"),
            // A bad argument: a failed result.
            call("2", "bucket_objects_list", r#"{"bucket":5}"#),
            // A bucket outside the token: -32003.
            call("3", "bucket_objects_list", r#"{"bucket":"elsewhere"}"#),
            // No such tool: -32602.
            call("4", "no_such_tool", "{}"),
        ];
        let versions = [
            None,
            Some("2024-11-05"),
            Some("2025-03-26"),
            Some("2025-06-18"),
            Some("2025-11-25"),
        ];
        for body in &bodies {
            assert!(plain_call(body.as_bytes()).is_some(), "{body}");
            for version in versions {
                let mut headers = vec![
                    ("content-type", "application/json"),
                    ("accept", JSON_AND_SSE),
                ];
                headers.extend(version.map(|v| (PROTOCOL_VERSION_HEADER, v)));
                let mut map = HeaderMap::new();
                for (name, value) in &headers {
                    map.append(*name, value.parse().unwrap());
                }
                assert!(plain_headers(&map), "{headers:?}");
                let [ours, theirs] = both(Method::POST, &headers, body).await;
                assert_eq!(ours, theirs, "{body} at {version:?}");
                assert_eq!(ours.0, StatusCode::OK);
            }
        }
    }

    /// What rmcp decodes from a body, for a `tools/call` request.
    fn rmcp_view(body: &str) -> Option<(RequestId, String, Option<JsonObject>)> {
        let rmcp::model::ClientJsonRpcMessage::Request(request) =
            serde_json::from_str(body).ok()?
        else {
            return None;
        };
        let rmcp::model::ClientRequest::CallToolRequest(call) = request.request else {
            return None;
        };
        Some((
            request.id,
            call.params.name.into_owned(),
            call.params.arguments,
        ))
    }

    /// Whatever body the direct path decodes, rmcp decodes to the same id, tool and
    /// arguments; the bodies it leaves to rmcp are the odd ones.
    #[test]
    fn the_direct_path_decodes_what_rmcp_decodes() {
        let taken = [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"a":[1,{"b":null}]}}}"#,
            r#"{"params":{"arguments":{},"name":"t"},"method":"tools/call","id":"x","jsonrpc":"2.0"}"#,
            r#" { "jsonrpc" : "2.0" , "id" : -7 , "method" : "tools\/call" , "params" : { "name" : "t\u00e9" } } "#,
            r#"{"jsonrpc":"2.0","id":"","method":"tools/call","params":{"name":"t","arguments":null}}"#,
        ];
        for body in taken {
            let ours = plain_call(body.as_bytes());
            assert!(ours.is_some(), "{body}");
            assert_eq!(ours, rmcp_view(body), "{body}");
        }
        let left = [
            r#"{"jsonrpc":"2.0","id":1.5,"method":"tools/call","params":{"name":"t"}}"#,
            r#"{"jsonrpc":"2.0","id":null,"method":"tools/call","params":{"name":"t"}}"#,
            r#"{"jsonrpc":"2.0","id":true,"method":"tools/call","params":{"name":"t"}}"#,
            r#"{"jsonrpc":"2.0","id":18446744073709551615,"method":"tools/call","params":{"name":"t"}}"#,
            r#"{"jsonrpc":"1.0","id":1,"method":"tools/call","params":{"name":"t"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"tools/call","params":{"name":"t"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t"},"extra":1}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","_meta":{}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","requestState":"s"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":[1]}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":5}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"name":"t"}}"#,
            r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"t"}}"#,
            r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t"}}]"#,
        ];
        for body in left {
            assert_eq!(plain_call(body.as_bytes()), None, "{body}");
        }
    }

    /// A request: its method, headers and body.
    type Case<'a> = (Method, Vec<(&'a str, &'a str)>, String);

    /// What the direct path does not take goes to rmcp, body and all, and gets rmcp's
    /// answer.
    #[tokio::test]
    async fn everything_else_goes_to_rmcp() {
        let plain = call("1", "bucket_list", "{}");
        let json = ("content-type", "application/json");
        let accept = ("accept", JSON_AND_SSE);
        let cases: Vec<Case> = vec![
            // Progress asked for: rmcp streams it.
            (Method::POST, vec![json, accept], r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"bucket_list","arguments":{},"_meta":{"progressToken":7}}}"#.to_owned()),
            // Weighted or quoted media types, a missing one, another content type.
            (Method::POST, vec![json, ("accept", "application/json;q=0, text/event-stream")], plain.clone()),
            (Method::POST, vec![json, ("accept", "application/json")], plain.clone()),
            (Method::POST, vec![("content-type", "text/plain"), accept], plain.clone()),
            // Versions from standard headers on, unknown ones, two of them.
            (Method::POST, vec![json, accept, (PROTOCOL_VERSION_HEADER, "2026-07-28")], plain.clone()),
            (Method::POST, vec![json, accept, (PROTOCOL_VERSION_HEADER, "1999-01-01")], plain.clone()),
            (Method::POST, vec![json, accept, (PROTOCOL_VERSION_HEADER, "2025-06-18"), (PROTOCOL_VERSION_HEADER, "2025-06-18")], plain.clone()),
            // Other messages: another method, a notification, a batch, not JSON.
            (Method::POST, vec![json, accept], r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#.to_owned()),
            (Method::POST, vec![json, accept], r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_owned()),
            (Method::POST, vec![json, accept], format!("[{plain}]")),
            (Method::POST, vec![json, accept], "{".to_owned()),
            // Other methods.
            (Method::GET, vec![accept], String::new()),
            (Method::DELETE, vec![], String::new()),
        ];
        for (method, headers, body) in cases {
            let mut map = HeaderMap::new();
            for (name, value) in &headers {
                map.append(*name, value.parse().unwrap());
            }
            let direct = method == Method::POST
                && plain_headers(&map)
                && plain_call(body.as_bytes()).is_some();
            assert!(!direct, "{method} {headers:?} {body}");
            let [ours, theirs] = both(method.clone(), &headers, &body).await;
            assert_eq!(ours, theirs, "{method} {headers:?} {body}");
        }
    }
}
