//! Where a stdio session's token comes from (SPEC §3): `QUILT_MCP_TOKEN`, else the
//! OS keyring entry.
//!
//! The keyring entry is read on first use, and again whenever the token it gave has
//! expired, so that `quilt-mcp login` with a fresh token takes effect without a
//! restart. Store calls block, so they run on the blocking thread pool.

use std::sync::{Arc, OnceLock};

use tokio::sync::Mutex;

use super::{AuthFailure, Reason, Token, TokenSourceKind};
use crate::config::Config;

/// The native credential store for this platform: macOS Keychain, Windows Credential
/// Manager, the Secret Service on Linux and the BSDs, or the kernel keyutils store on
/// Linux when there is no session bus. Chosen once per process; `Err` says why none
/// is available.
pub fn ensure_native_store() -> Result<(), String> {
    store_in_use().map(|_| ())
}

/// The credential store in use, chosen on first use (SPEC §8 names it):
/// `secret-service`, `keyutils`, `keychain` or `credential-manager`, or `custom` when
/// the process set its own default store (tests use a mock one).
pub fn store_in_use() -> Result<&'static str, String> {
    static RESULT: OnceLock<Result<&'static str, String>> = OnceLock::new();
    RESULT
        .get_or_init(|| {
            if keyring_core::get_default_store().is_some() {
                return Ok("custom");
            }
            let (store, name) = native_store()?;
            keyring_core::set_default_store(store);
            Ok(name)
        })
        .clone()
}

/// A native store and its name.
type NativeStore = (Arc<keyring_core::CredentialStore>, &'static str);

#[cfg(target_os = "macos")]
fn native_store() -> Result<NativeStore, String> {
    apple_native_keyring_store::keychain::Store::new()
        .map(|s| (s as Arc<keyring_core::CredentialStore>, "keychain"))
        .map_err(|e| format!("the macOS Keychain is not available: {}", describe(&e)))
}

#[cfg(target_os = "windows")]
fn native_store() -> Result<NativeStore, String> {
    windows_native_keyring_store::Store::new()
        .map(|s| {
            (
                s as Arc<keyring_core::CredentialStore>,
                "credential-manager",
            )
        })
        .map_err(|e| {
            format!(
                "the Windows Credential Manager is not available: {}",
                describe(&e)
            )
        })
}

#[cfg(target_os = "linux")]
fn native_store() -> Result<NativeStore, String> {
    match zbus_secret_service_keyring_store::Store::new() {
        Ok(store) => Ok((
            store as Arc<keyring_core::CredentialStore>,
            "secret-service",
        )),
        Err(ss_error) => linux_keyutils_keyring_store::Store::new()
            .map(|s| (s as Arc<keyring_core::CredentialStore>, "keyutils"))
            .map_err(|e| {
                format!(
                    "neither the Secret Service ({}) nor the kernel keyring ({}) is available",
                    describe(&ss_error),
                    describe(&e)
                )
            }),
    }
}

#[cfg(all(
    unix,
    not(any(
        target_os = "linux",
        target_os = "macos",
        target_os = "ios",
        target_os = "android"
    ))
))]
fn native_store() -> Result<NativeStore, String> {
    zbus_secret_service_keyring_store::Store::new()
        .map(|s| (s as Arc<keyring_core::CredentialStore>, "secret-service"))
        .map_err(|e| format!("the Secret Service is not available: {}", describe(&e)))
}

#[cfg(not(any(unix, target_os = "windows")))]
fn native_store() -> Result<NativeStore, String> {
    Err("this platform has no supported credential store".to_owned())
}

/// Describes a keyring error without ever including stored bytes.
pub fn describe(error: &keyring_core::Error) -> String {
    use keyring_core::Error as E;
    match error {
        E::NoEntry => "no entry".to_owned(),
        E::BadEncoding(_) | E::BadDataFormat(..) => {
            "the entry does not hold a UTF-8 token".to_owned()
        }
        E::PlatformFailure(e) => format!("platform failure: {e}"),
        E::NoStorageAccess(e) => format!("no access to the store: {e}"),
        E::TooLong(what, max) => format!("{what} is longer than {max}"),
        E::Invalid(what, why) => format!("{what} is invalid: {why}"),
        E::Ambiguous(_) => "more than one entry matches".to_owned(),
        other => format!("{other}"),
    }
}

/// Why the keyring entry could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// No credential store is available on this machine.
    #[error("{0}")]
    NoStore(String),
    /// The store refused or failed the operation.
    #[error("{}", describe(.0))]
    Store(#[source] keyring_core::Error),
    /// The blocking task that talks to the store stopped.
    #[error("the keyring task stopped: {0}")]
    Task(#[source] tokio::task::JoinError),
}

fn entry(service: &str, user: &str) -> Result<keyring_core::Entry, KeyringError> {
    ensure_native_store().map_err(KeyringError::NoStore)?;
    keyring_core::Entry::new(service, user).map_err(KeyringError::Store)
}

/// Reads the entry (blocking). `Ok(None)` when it does not exist.
pub fn read_entry(service: &str, user: &str) -> Result<Option<Token>, KeyringError> {
    match entry(service, user)?.get_password() {
        Ok(text) => Ok(Token::new(&text)),
        Err(keyring_core::Error::NoEntry) => Ok(None),
        Err(e) => Err(KeyringError::Store(e)),
    }
}

/// Writes the entry (blocking).
pub fn write_entry(service: &str, user: &str, token: &Token) -> Result<(), KeyringError> {
    entry(service, user)?
        .set_password(token.expose())
        .map_err(KeyringError::Store)
}

/// Deletes the entry (blocking). `Ok(false)` when there was none.
pub fn delete_entry(service: &str, user: &str) -> Result<bool, KeyringError> {
    match entry(service, user)?.delete_credential() {
        Ok(()) => Ok(true),
        Err(keyring_core::Error::NoEntry) => Ok(false),
        Err(e) => Err(KeyringError::Store(e)),
    }
}

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
        if let Some(token) = &self.env {
            return Ok((token.clone(), TokenSourceKind::Env));
        }
        let mut cached = self.cached.lock().await;
        if let Some(token) = cached.as_ref()
            && super::verify::unverified_expiry(token).is_some_and(|exp| now <= exp)
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
                    None => Err(self.missing(Some(problem.to_string()))),
                }
            }
        }
    }

    fn missing(&self, problem: Option<String>) -> AuthFailure {
        let detail = match problem {
            None => format!(
                "no token: QUILT_MCP_TOKEN is not set and the keyring entry {}/{} is empty",
                self.service, self.user
            ),
            Some(problem) => format!(
                "no token: QUILT_MCP_TOKEN is not set and the keyring entry {}/{} could not be read ({problem})",
                self.service, self.user
            ),
        };
        AuthFailure::new(Reason::MissingToken, detail, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
