//! The Quilt registry's HTTP API (`QUILT_REGISTRY_URL`): every call to it goes through
//! [`RegistryClient`], which carries the caller's registry token (docs/reference.md,
//! Settings: the `catalog_token` claim when the JWT has one, else the JWT), bounds each
//! answer in bytes and time, and classifies its failures once ([`RegistryError`]).
//!
//! - the credential exchange, `GET /api/auth/get_credentials` (used by `crate::aws`);
//! - [`graphql`]: `POST /graphql`; [`search`]: the search queries on it (used by the
//!   search tools).
//!
//! The registry token is a secret: it goes into the `Authorization` header and nowhere
//! else; messages name only which token was sent ([`Sent`]).

pub(crate) mod graphql;
pub(crate) mod search;

use std::sync::OnceLock;
use std::time::Duration;

use serde::Serialize;

use crate::auth::{AuthContext, AuthFailure, Reason, Token};
use crate::error::{ErrorCode, ToolError, Unauthorized, chain, scrub};

/// Which token a registry call carried, for the `registry_rejected` hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sent {
    /// The JWT's `catalog_token` claim.
    CatalogToken,
    /// The JWT itself (it has no `catalog_token`).
    Jwt,
}

/// The registry token of `ctx`: its `catalog_token` claim when it has one, else the
/// JWT itself; and which of the two it is.
pub(crate) fn registry_token(ctx: &AuthContext) -> (&Token, Sent) {
    match &ctx.catalog_token {
        Some(token) => (token, Sent::CatalogToken),
        None => (&ctx.token, Sent::Jwt),
    }
}

/// Why a registry call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RegistryError {
    /// 401 or 403: the registry does not accept the token it was sent.
    #[error("the Quilt registry at {base} refused the token (HTTP {status})")]
    Rejected {
        /// The registry, as it may be shown.
        base: String,
        /// 401 or 403.
        status: u16,
        /// Which token was sent.
        sent: Sent,
    },
    /// No answer in time.
    #[error("the Quilt registry at {base} did not answer within {secs} s")]
    TimedOut {
        /// The registry, as it may be shown.
        base: String,
        /// The time allowed.
        secs: u64,
    },
    /// The registry could not be reached, or its answer was cut off.
    #[error("the Quilt registry at {base} could not be reached: {detail}")]
    Unreachable {
        /// The registry, as it may be shown.
        base: String,
        /// What the HTTP stack said, scrubbed.
        detail: String,
    },
    /// An HTTP status other than success, 401 and 403.
    #[error("the Quilt registry at {base} answered HTTP {status}")]
    Status {
        /// The registry, as it may be shown.
        base: String,
        /// The status.
        status: u16,
    },
    /// The answer passed the cap.
    #[error("the Quilt registry at {base} answered with more than {cap} bytes")]
    TooLarge {
        /// The registry, as it may be shown.
        base: String,
        /// The cap.
        cap: usize,
    },
}

impl RegistryError {
    /// The `registry_rejected` refusal, with the hint that names the token sent; `None`
    /// for any other failure.
    pub(crate) fn rejection(&self, source: crate::auth::TokenSourceKind) -> Option<AuthFailure> {
        let RegistryError::Rejected { sent, .. } = self else {
            return None;
        };
        let mut failure =
            AuthFailure::new(Reason::RegistryRejected, self.to_string(), Some(source));
        failure.hint = rejected_hint(*sent, &failure.hint);
        Some(failure)
    }

    /// The failure as a tool's: -32001 for a rejected token, else `upstream_error`
    /// (retryable when a later call may get through).
    pub(crate) fn into_tool_error(self, source: crate::auth::TokenSourceKind) -> ToolError {
        if let Some(failure) = self.rejection(source) {
            return ToolError::unauthorized(Unauthorized {
                reason: failure.reason.code(),
                detail: failure.detail,
                hint: failure.hint,
            });
        }
        let retryable = match &self {
            RegistryError::TimedOut { .. } | RegistryError::Unreachable { .. } => true,
            RegistryError::Status { status, .. } => *status == 429 || *status >= 500,
            RegistryError::TooLarge { .. } | RegistryError::Rejected { .. } => false,
        };
        ToolError {
            code: ErrorCode::UpstreamError,
            message: self.to_string(),
            retryable,
            unauthorized: None,
        }
    }
}

/// The hint of `registry_rejected`: which token the registry refused, and that it must
/// accept it; then what the user can do (`fresh`).
fn rejected_hint(sent: Sent, fresh: &str) -> String {
    match sent {
        Sent::CatalogToken => format!(
            "the registry was sent the token's catalog_token claim and must accept it: it may have expired or belong to another registry; {fresh}"
        ),
        Sent::Jwt => format!(
            "the registry was sent the JWT itself (the token has no catalog_token claim) and must accept it: ask the Quilt administrator for a token with a catalog_token claim, or for a registry that accepts these tokens; {fresh}"
        ),
    }
}

/// The Quilt registry at `QUILT_REGISTRY_URL`: one HTTPS client, built on first use,
/// for every call to it.
#[derive(Debug)]
pub(crate) struct RegistryClient {
    /// The base URL, without a trailing `/`.
    base: String,
    /// The base URL as it may be shown: without userinfo.
    shown: String,
    http: OnceLock<reqwest::Client>,
}

/// A registry answer's body, read in full under a cap.
pub(crate) struct Answer {
    /// The HTTP status.
    pub(crate) status: u16,
    /// The body.
    pub(crate) body: Vec<u8>,
}

impl RegistryClient {
    /// The registry at `base`. Nothing is connected or loaded here.
    pub(crate) fn new(base: &str) -> RegistryClient {
        let base = base.trim().trim_end_matches('/').to_owned();
        RegistryClient {
            shown: scrub(&base),
            base,
            http: OnceLock::new(),
        }
    }

    /// The base URL as it may be shown.
    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }

    fn http(&self) -> &reqwest::Client {
        self.http.get_or_init(|| {
            reqwest::Client::builder()
                .user_agent(concat!("quilt-mcp/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default()
        })
    }

    /// `GET {base}{path}` with the caller's registry token: the body of a successful
    /// answer, at most `cap` bytes, within `timeout`.
    pub(crate) async fn get(
        &self,
        ctx: &AuthContext,
        path: &str,
        cap: usize,
        timeout: Duration,
    ) -> Result<Vec<u8>, RegistryError> {
        let request = self.http().get(format!("{}{path}", self.base));
        let answer = self.send(ctx, request, cap, timeout).await?;
        self.success(answer).map(|a| a.body)
    }

    /// `POST {base}{path}` of `body` as JSON with the caller's registry token: the
    /// answer, at most `cap` bytes, within `timeout`. A status other than 401/403 is
    /// returned, not refused: GraphQL servers answer errors with 400 and a body.
    pub(crate) async fn post_json(
        &self,
        ctx: &AuthContext,
        path: &str,
        body: &impl Serialize,
        cap: usize,
        timeout: Duration,
    ) -> Result<Answer, RegistryError> {
        let body = serde_json::to_vec(body).unwrap_or_default();
        let request = self
            .http()
            .post(format!("{}{path}", self.base))
            .header(reqwest::header::ACCEPT, "application/json")
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        self.send(ctx, request, cap, timeout).await
    }

    /// `answer` when it is a success, else [`RegistryError::Status`].
    fn success(&self, answer: Answer) -> Result<Answer, RegistryError> {
        if (200..300).contains(&answer.status) {
            Ok(answer)
        } else {
            Err(self.status_error(answer.status))
        }
    }

    /// The failure of an answer with `status`.
    pub(crate) fn status_error(&self, status: u16) -> RegistryError {
        RegistryError::Status {
            base: self.shown.clone(),
            status,
        }
    }

    async fn send(
        &self,
        ctx: &AuthContext,
        request: reqwest::RequestBuilder,
        cap: usize,
        timeout: Duration,
    ) -> Result<Answer, RegistryError> {
        let (token, sent) = registry_token(ctx);
        let failed = |error: reqwest::Error| {
            if error.is_timeout() {
                RegistryError::TimedOut {
                    base: self.shown.clone(),
                    secs: timeout.as_secs(),
                }
            } else {
                RegistryError::Unreachable {
                    base: self.shown.clone(),
                    detail: chain(&error),
                }
            }
        };
        // The timeout covers connecting, the headers and the whole body.
        let mut response = crate::metrics::timed(
            "registry",
            request.bearer_auth(token.expose()).timeout(timeout).send(),
        )
        .await
        .map_err(failed)?;
        let status = response.status().as_u16();
        if status == 401 || status == 403 {
            return Err(RegistryError::Rejected {
                base: self.shown.clone(),
                status,
                sent,
            });
        }
        let too_large = || RegistryError::TooLarge {
            base: self.shown.clone(),
            cap,
        };
        if response
            .content_length()
            .is_some_and(|length| length > cap as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(failed)? {
            if body.len() + chunk.len() > cap {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer { status, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::TokenSourceKind;

    #[test]
    fn a_rejection_names_the_token_that_was_sent_and_nothing_else() {
        for (sent, names) in [
            (Sent::CatalogToken, "catalog_token claim"),
            (Sent::Jwt, "the JWT itself"),
        ] {
            let error = RegistryError::Rejected {
                base: "https://registry.example.com".into(),
                status: 403,
                sent,
            };
            let failure = error.rejection(TokenSourceKind::Env).unwrap();
            assert_eq!(failure.reason, Reason::RegistryRejected);
            assert!(failure.hint.contains(names), "{}", failure.hint);
            assert!(failure.hint.contains("must accept it"), "{}", failure.hint);
            assert!(failure.detail.contains("HTTP 403"), "{}", failure.detail);
            let tool = error.into_tool_error(TokenSourceKind::Env);
            let refusal = tool.unauthorized.unwrap();
            assert_eq!(refusal.reason, "registry_rejected");
        }
    }

    #[test]
    fn other_failures_are_upstream_errors_retryable_when_a_retry_can_help() {
        let base = || "https://r".to_owned();
        for (error, retryable) in [
            (
                RegistryError::TimedOut {
                    base: base(),
                    secs: 30,
                },
                true,
            ),
            (
                RegistryError::Unreachable {
                    base: base(),
                    detail: "refused".into(),
                },
                true,
            ),
            (
                RegistryError::Status {
                    base: base(),
                    status: 502,
                },
                true,
            ),
            (
                RegistryError::Status {
                    base: base(),
                    status: 429,
                },
                true,
            ),
            (
                RegistryError::Status {
                    base: base(),
                    status: 404,
                },
                false,
            ),
            (
                RegistryError::TooLarge {
                    base: base(),
                    cap: 10,
                },
                false,
            ),
        ] {
            assert_eq!(error.rejection(TokenSourceKind::Env), None);
            let tool = error.clone().into_tool_error(TokenSourceKind::Env);
            assert_eq!(
                (tool.code, tool.retryable),
                (ErrorCode::UpstreamError, retryable),
                "{error}"
            );
            assert!(tool.unauthorized.is_none());
        }
    }

    fn context(catalog_token: Option<&str>) -> AuthContext {
        let token = Token::new("header.payload.signature").unwrap();
        AuthContext {
            subject: None,
            issuer: None,
            audience: vec![],
            issued_at: None,
            expires_at: 0,
            not_before: None,
            jti: None,
            claims: crate::auth::QuiltClaims::default(),
            token_info: crate::auth::TokenInfo {
                source: TokenSourceKind::Env,
                fingerprint: token.fingerprint(),
                alg: "HS256".into(),
                kid: None,
                store: None,
            },
            aws: crate::auth::CredentialSource::None,
            token,
            catalog_token: catalog_token.and_then(Token::new),
        }
    }

    #[test]
    fn the_registry_token_is_catalog_token_else_the_jwt() {
        let with = context(Some("catalog"));
        let (token, sent) = registry_token(&with);
        assert_eq!((token.expose(), sent), ("catalog", Sent::CatalogToken));
        let without = context(None);
        let (token, sent) = registry_token(&without);
        assert_eq!(
            (token.expose(), sent),
            ("header.payload.signature", Sent::Jwt)
        );
    }

    /// A registry that accepts the connection and never answers is `TimedOut` once the
    /// time allowed has passed (a retryable `upstream_error`); one that sends more than
    /// the cap is `TooLarge`, read no further.
    #[tokio::test]
    async fn silence_times_out_and_floods_are_cut() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            // The first connection: silence. The second: an endless body.
            let (_silent, _) = listener.accept().await.unwrap();
            let (mut flood, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 4096];
            let _ = flood.read(&mut request).await;
            let _ = flood
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n")
                .await;
            let chunk = vec![b' '; 64 * 1024];
            while flood.write_all(&chunk).await.is_ok() {}
            drop(_silent);
        });
        let client = RegistryClient::new(&format!("http://{address}"));
        let ctx = context(None);
        let started = std::time::Instant::now();
        let error = client
            .post_json(
                &ctx,
                "/graphql",
                &serde_json::json!({}),
                1024,
                Duration::from_millis(300),
            )
            .await
            .err()
            .unwrap();
        assert!(matches!(error, RegistryError::TimedOut { .. }), "{error:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        let tool = error.into_tool_error(TokenSourceKind::Env);
        assert_eq!(
            (tool.code, tool.retryable),
            (ErrorCode::UpstreamError, true)
        );
        let error = client
            .post_json(
                &ctx,
                "/graphql",
                &serde_json::json!({}),
                1024 * 1024,
                Duration::from_secs(10),
            )
            .await
            .err()
            .unwrap();
        assert!(matches!(error, RegistryError::TooLarge { .. }), "{error:?}");
        server.abort();
    }

    #[test]
    fn the_shown_base_has_no_userinfo() {
        let client = RegistryClient::new("https://user:pass@registry.example.com/ ");
        assert_eq!(client.shown(), "https://registry.example.com");
        assert_eq!(client.base, "https://user:pass@registry.example.com");
    }
}
