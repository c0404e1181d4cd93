//! One GraphQL request to the registry (`POST {registry}/graphql`): the query and its
//! variables out, `data` or `errors` back, bounded in bytes and time.

use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{RegistryClient, RegistryError};
use crate::auth::AuthContext;
use crate::error::scrub;

/// The longest registry message quoted in an error, in characters.
const MAX_MESSAGE_CHARS: usize = 500;

/// Why a GraphQL request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum GraphqlError {
    /// The request itself failed (refused, timed out, too large, a bad status).
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The registry answered with GraphQL `errors`: their messages, scrubbed.
    #[error("the Quilt registry at {base} refused the search: {messages}")]
    Errors {
        /// The registry, as it may be shown.
        base: String,
        /// The messages, scrubbed and shortened.
        messages: String,
    },
    /// The answer is not the GraphQL response expected.
    #[error("the Quilt registry at {base} answered the search with {problem}")]
    Malformed {
        /// The registry, as it may be shown.
        base: String,
        /// What is wrong with it.
        problem: String,
    },
}

#[derive(Deserialize)]
struct Response {
    #[serde(default)]
    data: Option<Value>,
    #[serde(default)]
    errors: Option<Vec<ErrorItem>>,
}

#[derive(Deserialize)]
struct ErrorItem {
    #[serde(default)]
    message: Option<String>,
}

/// `text` scrubbed and cut to [`MAX_MESSAGE_CHARS`].
pub(crate) fn quote(text: &str) -> String {
    let scrubbed = scrub(text);
    let mut out: String = scrubbed.chars().take(MAX_MESSAGE_CHARS).collect();
    if out.len() < scrubbed.len() {
        out.push('…');
    }
    out
}

impl RegistryClient {
    /// Runs `query` with `variables` and decodes its `data` as `T`.
    pub(crate) async fn graphql<T: DeserializeOwned>(
        &self,
        ctx: &AuthContext,
        query: &str,
        variables: Value,
        cap: usize,
        timeout: Duration,
    ) -> Result<T, GraphqlError> {
        let body = serde_json::json!({"query": query, "variables": variables});
        let answer = self.post_json(ctx, "/graphql", &body, cap, timeout).await?;
        let base = || self.shown().to_owned();
        let parsed: Result<Response, _> = serde_json::from_slice(&answer.body);
        let response = match parsed {
            Ok(response) => response,
            // A failure status without a GraphQL body is the status's.
            Err(_) if !(200..300).contains(&answer.status) => {
                return Err(self.status_error(answer.status).into());
            }
            Err(_) => {
                return Err(GraphqlError::Malformed {
                    base: base(),
                    problem: "a body that is not a GraphQL response".into(),
                });
            }
        };
        if let Some(errors) = response.errors.filter(|e| !e.is_empty()) {
            let messages: Vec<String> = errors
                .iter()
                .take(5)
                .map(|e| quote(e.message.as_deref().unwrap_or("(no message)")))
                .collect();
            return Err(GraphqlError::Errors {
                base: base(),
                messages: messages.join("; "),
            });
        }
        if !(200..300).contains(&answer.status) {
            return Err(self.status_error(answer.status).into());
        }
        let data =
            response
                .data
                .filter(|d| !d.is_null())
                .ok_or_else(|| GraphqlError::Malformed {
                    base: base(),
                    problem: "neither data nor errors".into(),
                })?;
        serde_json::from_value(data).map_err(|e| GraphqlError::Malformed {
            base: base(),
            problem: format!("data of an unexpected shape ({})", quote(&e.to_string())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_scrubbed_and_short() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJlc2lnbmF0dXJl";
        let quoted = quote(&format!("bad token {jwt} here"));
        assert!(!quoted.contains("eyJ"), "{quoted}");
        let long = quote(&"x ".repeat(1000));
        assert_eq!(long.chars().count(), MAX_MESSAGE_CHARS + 1);
    }
}
