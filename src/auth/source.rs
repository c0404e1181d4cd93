//! Where a stdio session's token comes from (see `docs/reference.md`, Settings):
//! `QUILT_MCP_TOKEN`, else the OS keyring entry ([`super::store`]).
//!
//! The keyring entry is read on first use, and again whenever the token it gave has
//! expired, so that `quilt-mcp login` with a fresh token takes effect without a
//! restart. Store calls block, so they run on the blocking thread pool.

use tokio::sync::Mutex;

use super::store::{KeyringError, empty_sentence, read_entry, store_in_use};
use super::{AuthFailure, Reason, Token, TokenSourceKind};
use crate::config::Config;

/// The token of a stdio session.
#[derive(Debug)]
pub struct TokenProvider {
    env: Option<Token>,
    service: String,
    user: String,
    cached: Mutex<Option<Token>>,
}

impl TokenProvider {
    /// From the configuration: the environment token if set, else the keyring entry.
    pub fn new(config: &Config) -> TokenProvider {
        TokenProvider {
            env: config.token.as_ref().and_then(Token::from_secret),
            service: config.keyring_service.clone(),
            user: config.keyring_user.clone(),
            cached: Mutex::new(None),
        }
    }

    /// The source tokens are taken from.
    pub fn kind(&self) -> TokenSourceKind {
        if self.env.is_some() {
            TokenSourceKind::Env
        } else {
            TokenSourceKind::Keyring
        }
    }

    /// The keyring entry's service and user names.
    pub fn keyring_entry(&self) -> (&str, &str) {
        (&self.service, &self.user)
    }

    /// The current token, reading the keyring when there is no cached token or the
    /// cached one has expired. `Err` is a `missing_token` failure that says why.
    pub async fn current(&self, now: i64) -> Result<(Token, TokenSourceKind), AuthFailure> {
        self.lookup(now).await.map_err(|missing| missing.failure)
    }

    /// As [`TokenProvider::current`], with the state of the keyring entry when there
    /// is no token.
    pub async fn lookup(&self, now: i64) -> Result<(Token, TokenSourceKind), Missing> {
        if let Some(token) = &self.env {
            return Ok((token.clone(), TokenSourceKind::Env));
        }
        let mut cached = self.cached.lock().await;
        if let Some(token) = cached.as_ref()
            && token.unverified_expiry().is_some_and(|exp| now <= exp)
        {
            return Ok((token.clone(), TokenSourceKind::Keyring));
        }
        let (service, user) = (self.service.clone(), self.user.clone());
        let read = tokio::task::spawn_blocking(move || read_entry(&service, &user))
            .await
            .unwrap_or_else(|e| Err(KeyringError::Task(e)));
        match read {
            Ok(Some(token)) => {
                *cached = Some(token.clone());
                Ok((token, TokenSourceKind::Keyring))
            }
            Ok(None) => {
                *cached = None;
                Err(self.missing(None))
            }
            Err(problem) => {
                // Keep serving a token read earlier rather than losing it to a
                // passing store error; verification still rejects it if expired.
                match cached.as_ref() {
                    Some(token) => Ok((token.clone(), TokenSourceKind::Keyring)),
                    None => Err(self.missing(Some(problem))),
                }
            }
        }
    }

    /// The `missing_token` failure: its hint is the one sentence that says what is
    /// wrong with the keyring entry and what to do.
    fn missing(&self, problem: Option<KeyringError>) -> Missing {
        let entry = format!("{}/{}", self.service, self.user);
        let (state, sentence) = match problem {
            None => ("empty", empty_sentence(store_in_use().ok(), &entry)),
            Some(problem) => (problem.code(), problem.sentence(&entry)),
        };
        Missing {
            failure: AuthFailure {
                reason: Reason::MissingToken,
                detail: "no token: QUILT_MCP_TOKEN is not set".to_owned(),
                hint: sentence,
            },
            keyring_state: state,
        }
    }
}

/// No token: the `missing_token` failure and the keyring entry's state.
#[derive(Debug, Clone)]
pub struct Missing {
    /// The failure; its hint says what is wrong and what to do.
    pub failure: AuthFailure,
    /// `empty`, `no_store`, `locked`, `refused` or `failed`.
    pub keyring_state: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn one_bearer_is_stripped_once() {
        let cases: &[(&str, Option<&str>)] = &[
            ("a.b.c", Some("a.b.c")),
            (" a.b.c ", Some("a.b.c")),
            ("Bearer a.b.c", Some("Bearer a.b.c")),
            ("bearer", Some("bearer")),
            ("", None),
            ("  ", None),
        ];
        for (text, expected) in cases {
            assert_eq!(
                Token::stripped(text).as_ref().map(Token::expose),
                *expected,
                "{text:?}"
            );
        }
    }

    #[test]
    fn an_environment_token_loses_one_bearer_only() {
        let config = Config::from_lookup(|name| {
            (name == "QUILT_MCP_TOKEN").then(|| " Bearer Bearer a.b.c ".to_owned())
        });
        let provider = TokenProvider::new(&config);
        assert_eq!(
            provider.env.as_ref().map(Token::expose),
            Some("Bearer a.b.c")
        );
    }
}
