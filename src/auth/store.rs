//! The OS keyring (see `docs/reference.md`, Settings: the keyring entry): which
//! credential store this process uses, and the entry that holds the token: read,
//! written and checked, deleted. Store calls block; callers run them on the blocking
//! pool.
//!
//! On Linux the Secret Service is found on the session bus where libsecret and sd-bus
//! look for it: `DBUS_SESSION_BUS_ADDRESS`, else `$XDG_RUNTIME_DIR/bus`, else
//! `/run/user/<uid>/bus`. Without one, the kernel keyutils store ([`super::keyutils`])
//! is used, and the reason the Secret Service was passed over is kept, so that an empty
//! entry can say where `quilt-mcp login` may have put the token instead.

use std::sync::{Arc, OnceLock};

use super::Token;

/// Why no credential store is available.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreUnavailable {
    /// The platform's one store could not be opened.
    #[error("the {name} is not available ({})", describe(.source))]
    Native {
        /// The store, in words.
        name: &'static str,
        /// The store's error.
        #[source]
        source: Arc<keyring_core::Error>,
    },
    /// Linux: neither the Secret Service nor the kernel keyring could be opened.
    #[error(
        "neither the Secret Service ({}) nor the kernel keyring ({}) is available",
        describe(.secret_service),
        describe(.keyutils)
    )]
    Neither {
        /// Why the Secret Service could not be used.
        secret_service: Arc<keyring_core::Error>,
        /// Why keyutils could not be used.
        #[source]
        keyutils: Arc<keyring_core::Error>,
    },
    /// This platform has no store quilt-mcp supports.
    #[error("this platform has no supported credential store")]
    Unsupported,
}

/// The store chosen for this process.
#[derive(Debug, Clone)]
pub struct StoreChoice {
    /// `secret-service`, `keyutils`, `keychain`, `credential-manager`, or `custom`
    /// when the process set its own default store (tests use a mock one).
    pub name: &'static str,
    /// Linux: why the Secret Service was passed over for keyutils, when it was.
    pub passed_over: Option<Arc<keyring_core::Error>>,
}

/// The native credential store for this platform: macOS Keychain, Windows Credential
/// Manager, the Secret Service on Linux and the BSDs, or the kernel keyutils store on
/// Linux when there is no session bus. Chosen once per process.
pub fn choice() -> Result<&'static StoreChoice, StoreUnavailable> {
    static CHOICE: OnceLock<Result<StoreChoice, StoreUnavailable>> = OnceLock::new();
    CHOICE
        .get_or_init(|| {
            if keyring_core::get_default_store().is_some() {
                return Ok(StoreChoice {
                    name: "custom",
                    passed_over: None,
                });
            }
            let (store, choice) = native_store()?;
            keyring_core::set_default_store(store);
            Ok(choice)
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The credential store in use (named in `status` and `auth_status`):
/// `secret-service`, `keyutils`, `keychain` or `credential-manager`, or `custom`.
pub fn store_in_use() -> Result<&'static str, StoreUnavailable> {
    choice().map(|c| c.name)
}

/// A native store and what was chosen.
type NativeStore = (Arc<keyring_core::CredentialStore>, StoreChoice);

fn only(store: Arc<keyring_core::CredentialStore>, name: &'static str) -> NativeStore {
    (
        store,
        StoreChoice {
            name,
            passed_over: None,
        },
    )
}

#[cfg(target_os = "macos")]
fn native_store() -> Result<NativeStore, StoreUnavailable> {
    apple_native_keyring_store::keychain::Store::new()
        .map(|s| only(s, "keychain"))
        .map_err(|e| StoreUnavailable::Native {
            name: "macOS Keychain",
            source: Arc::new(e),
        })
}

#[cfg(target_os = "windows")]
fn native_store() -> Result<NativeStore, StoreUnavailable> {
    windows_native_keyring_store::Store::new()
        .map(|s| only(s, "credential-manager"))
        .map_err(|e| StoreUnavailable::Native {
            name: "Windows Credential Manager",
            source: Arc::new(e),
        })
}

#[cfg(target_os = "linux")]
fn native_store() -> Result<NativeStore, StoreUnavailable> {
    match zbus_secret_service_keyring_store::Store::new() {
        Ok(store) => Ok(only(store, "secret-service")),
        Err(ss_error) => {
            let ss_error = Arc::new(ss_error);
            match super::keyutils::Store::new() {
                Ok(store) => Ok((
                    store as Arc<keyring_core::CredentialStore>,
                    StoreChoice {
                        name: "keyutils",
                        passed_over: Some(ss_error),
                    },
                )),
                Err(e) => Err(StoreUnavailable::Neither {
                    secret_service: ss_error,
                    keyutils: Arc::new(e),
                }),
            }
        }
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
fn native_store() -> Result<NativeStore, StoreUnavailable> {
    zbus_secret_service_keyring_store::Store::new()
        .map(|s| only(s, "secret-service"))
        .map_err(|e| StoreUnavailable::Native {
            name: "Secret Service",
            source: Arc::new(e),
        })
}

#[cfg(not(any(unix, target_os = "windows")))]
fn native_store() -> Result<NativeStore, StoreUnavailable> {
    Err(StoreUnavailable::Unsupported)
}

/// This process's user id (the owner of `/proc/self`).
#[cfg(unix)]
fn own_uid() -> Option<u32> {
    std::fs::metadata("/proc/self")
        .ok()
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
}

#[cfg(not(unix))]
fn own_uid() -> Option<u32> {
    None
}

/// The session bus the Secret Service is looked for on, as libsecret and sd-bus find
/// it: `DBUS_SESSION_BUS_ADDRESS`, else `$XDG_RUNTIME_DIR/bus`, else
/// `/run/user/<uid>/bus`.
pub fn session_bus() -> String {
    if let Some(address) = std::env::var("DBUS_SESSION_BUS_ADDRESS")
        .ok()
        .filter(|a| !a.trim().is_empty())
    {
        return address;
    }
    let runtime = std::env::var("XDG_RUNTIME_DIR")
        .ok()
        .filter(|d| !d.trim().is_empty())
        .unwrap_or_else(|| match own_uid() {
            Some(uid) => format!("/run/user/{uid}"),
            None => "/run/user/<uid>".to_owned(),
        });
    format!("unix:path={runtime}/bus")
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

/// Why the keyring entry could not be used: no store, a locked store, a store that
/// refuses access, or another store failure. Its [`KeyringError::sentence`] is the one
/// sentence `status`, the `missing_token` error and the connect-time token line give.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// No credential store is available on this machine.
    #[error("no keyring store is available ({0})")]
    NoStore(#[source] StoreUnavailable),
    /// The store is locked: the Secret Service has no unlocked collection (or none at
    /// all), or the Keychain is locked.
    #[error("the keyring ({store}) is locked ({})", describe(.source))]
    Locked {
        /// The store's name (docs/reference.md, Logs).
        store: &'static str,
        /// The store's error.
        #[source]
        source: keyring_core::Error,
    },
    /// The store refused access (a permission).
    #[error("the keyring ({store}) refused access ({})", describe(.source))]
    Refused {
        /// The store's name (docs/reference.md, Logs).
        store: &'static str,
        /// The store's error.
        #[source]
        source: keyring_core::Error,
    },
    /// The store failed otherwise.
    #[error("the keyring ({store}) failed ({})", describe(.source))]
    Failed {
        /// The store's name (docs/reference.md, Logs).
        store: &'static str,
        /// The store's error.
        #[source]
        source: keyring_core::Error,
    },
    /// The blocking task that talks to the store stopped.
    #[error("the keyring task stopped: {0}")]
    Task(#[source] tokio::task::JoinError),
}

impl KeyringError {
    /// Classifies an error of the store named `store`. A Secret Service (and the
    /// Keychain) reports a locked collection, no default collection and a dismissed
    /// unlock prompt as "no storage access": locked. Other stores (keyutils) report
    /// a permission that way: refused.
    pub fn from_store(store: &'static str, source: keyring_core::Error) -> KeyringError {
        match (&source, store) {
            (keyring_core::Error::NoStorageAccess(_), "secret-service" | "keychain") => {
                KeyringError::Locked { store, source }
            }
            (keyring_core::Error::NoStorageAccess(_), _) => KeyringError::Refused { store, source },
            _ => KeyringError::Failed { store, source },
        }
    }

    /// A short code: `no_store`, `locked`, `refused`, `failed`.
    pub fn code(&self) -> &'static str {
        match self {
            KeyringError::NoStore(_) => "no_store",
            KeyringError::Locked { .. } => "locked",
            KeyringError::Refused { .. } => "refused",
            KeyringError::Failed { .. } | KeyringError::Task(_) => "failed",
        }
    }

    /// What to do about it.
    pub fn remedy(&self) -> &'static str {
        match self {
            KeyringError::NoStore(_) => {
                "start a Secret Service (such as gnome-keyring) in the session, or, when one runs, add DBUS_SESSION_BUS_ADDRESS (`echo $DBUS_SESSION_BUS_ADDRESS` in a terminal) to the MCP server's settings, or set QUILT_MCP_TOKEN there"
            }
            KeyringError::Locked {
                store: "keychain", ..
            } => {
                "unlock the login keychain (Keychain Access), or set QUILT_MCP_TOKEN in the MCP server's settings"
            }
            KeyringError::Locked { .. } => {
                "unlock the login keyring (log in to the desktop session, or run `gnome-keyring-daemon --unlock` and type its password), or set QUILT_MCP_TOKEN in the MCP server's settings"
            }
            KeyringError::Refused {
                store: "keyutils", ..
            } => {
                "run quilt-mcp as the user who stored the token (or under `keyctl session`), or set QUILT_MCP_TOKEN in the MCP server's settings"
            }
            KeyringError::Refused { .. } => {
                "allow quilt-mcp to use the credential store, or set QUILT_MCP_TOKEN in the MCP server's settings"
            }
            KeyringError::Failed { .. } | KeyringError::Task(_) => {
                "check the credential store, or set QUILT_MCP_TOKEN in the MCP server's settings"
            }
        }
    }

    /// The one sentence that says what is wrong with `entry` and what to do.
    pub fn sentence(&self, entry: &str) -> String {
        let what = match self {
            KeyringError::NoStore(why) => format!("no keyring store is available ({why})"),
            KeyringError::Locked { store, source } => format!(
                "the keyring ({store}) is locked, so the entry {entry} cannot be used ({})",
                describe(source)
            ),
            KeyringError::Refused { store, source } => format!(
                "the keyring ({store}) refused access to the entry {entry} ({})",
                describe(source)
            ),
            KeyringError::Failed { store, source } => format!(
                "the keyring ({store}) failed on the entry {entry} ({})",
                describe(source)
            ),
            KeyringError::Task(e) => format!("the keyring task stopped ({e})"),
        };
        format!("{what}: {}", self.remedy())
    }
}

/// The sentence for an empty entry (no token stored), naming the store. When the
/// Secret Service was passed over for keyutils, it says so: `quilt-mcp login` in a
/// terminal that reaches the session bus stored the token there.
pub fn empty_sentence(store: Option<&str>, entry: &str) -> String {
    let passed_over = choice().ok().and_then(|c| c.passed_over.clone());
    empty_sentence_with(store, entry, passed_over.as_deref())
}

fn empty_sentence_with(
    store: Option<&str>,
    entry: &str,
    passed_over: Option<&keyring_core::Error>,
) -> String {
    let named = store.map(|s| format!(" ({s})")).unwrap_or_default();
    match passed_over {
        Some(why) => {
            let unset = if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none() {
                ", and DBUS_SESSION_BUS_ADDRESS is not set"
            } else {
                ""
            };
            format!(
                "the keyring{named} entry {entry} is empty, and the Secret Service, where `quilt-mcp login` stores the token on a desktop, is unreachable from this process (no session bus at {}{unset}: {}): add DBUS_SESSION_BUS_ADDRESS (`echo $DBUS_SESSION_BUS_ADDRESS` in a terminal) to the MCP server's settings, or run `quilt-mcp login` where the server runs, or set QUILT_MCP_TOKEN in the MCP server's settings",
                session_bus(),
                describe(why)
            )
        }
        None => format!(
            "the keyring{named} entry {entry} is empty: run `quilt-mcp login` to store a token, or set QUILT_MCP_TOKEN in the MCP server's settings"
        ),
    }
}

fn entry(service: &str, user: &str) -> Result<(keyring_core::Entry, &'static str), KeyringError> {
    let store = store_in_use().map_err(KeyringError::NoStore)?;
    keyring_core::Entry::new(service, user)
        .map(|e| (e, store))
        .map_err(|e| KeyringError::from_store(store, e))
}

/// Reads the entry (blocking). `Ok(None)` when it does not exist.
pub fn read_entry(service: &str, user: &str) -> Result<Option<Token>, KeyringError> {
    let (entry, store) = entry(service, user)?;
    match entry.get_password() {
        Ok(text) => Ok(Token::new(&text)),
        Err(keyring_core::Error::NoEntry) => match default_collection_locked(store) {
            // An empty read of a locked (or absent) collection says nothing about
            // the entry: the store is locked.
            Some(why) => Err(KeyringError::Locked {
                store,
                source: keyring_core::Error::NoStorageAccess(why.into()),
            }),
            None => Ok(None),
        },
        Err(e) => Err(KeyringError::from_store(store, e)),
    }
}

/// For the Secret Service: why its default collection cannot take or give an entry
/// (there is none, or it is locked); `None` when it is unlocked, or for other stores.
#[cfg(all(
    unix,
    not(any(target_os = "macos", target_os = "ios", target_os = "android"))
))]
fn default_collection_locked(store: &str) -> Option<String> {
    use secret_service::blocking::SecretService;
    if store != "secret-service" {
        return None;
    }
    let service = match SecretService::connect(secret_service::EncryptionType::Plain) {
        Ok(service) => service,
        Err(e) => return Some(format!("cannot open a session: {e}")),
    };
    match service.get_default_collection() {
        Err(secret_service::Error::NoResult) => Some("there is no default collection".to_owned()),
        Err(e) => Some(format!("cannot find the default collection: {e}")),
        Ok(collection) => match collection.is_locked() {
            Ok(false) => None,
            Ok(true) => Some("the default collection is locked".to_owned()),
            Err(e) => Some(format!(
                "cannot tell whether the default collection is locked: {e}"
            )),
        },
    }
}

#[cfg(not(all(
    unix,
    not(any(target_os = "macos", target_os = "ios", target_os = "android"))
)))]
fn default_collection_locked(_store: &str) -> Option<String> {
    None
}

/// Why [`store_token`] did not store the token. Nothing it wrote is left behind
/// unless `cleanup` says so.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The entry could not be read before writing (nothing was written).
    #[error("{}", .0.sentence(.1))]
    Before(KeyringError, String),
    /// Writing or reading back failed; `cleanup` says what was done about it.
    #[error("{}; {cleanup}", .problem.sentence(.entry))]
    Write {
        /// What went wrong.
        problem: KeyringError,
        /// The entry's name.
        entry: String,
        /// What was done to leave no partial entry.
        cleanup: String,
    },
    /// The entry read back differs from what was written; `cleanup` says what was
    /// done about it.
    #[error("the keyring ({store}) entry {entry} did not read back what was written; {cleanup}")]
    Mismatch {
        /// The store's name.
        store: &'static str,
        /// The entry's name.
        entry: String,
        /// What was done to leave no partial entry.
        cleanup: String,
    },
}

/// Stores `token` in the entry of `store` (blocking), then reads it back. When writing
/// or the read-back fails, what was written is removed: the previous token is put back
/// when there was one (and it reads back), else the entry is deleted. The error says
/// which. `entry_name` names the entry in messages.
pub fn store_token(
    entry: &keyring_core::Entry,
    store: &'static str,
    entry_name: &str,
    token: &Token,
) -> Result<(), StoreError> {
    let error = |e| KeyringError::from_store(store, e);
    let previous = match entry.get_password() {
        Ok(text) => Some(text),
        // Nothing usable to restore: an absent or undecodable entry.
        Err(
            keyring_core::Error::NoEntry
            | keyring_core::Error::BadEncoding(_)
            | keyring_core::Error::BadDataFormat(..),
        ) => None,
        Err(e) => return Err(StoreError::Before(error(e), entry_name.to_owned())),
    };
    let written = entry
        .set_password(token.expose())
        .map_err(error)
        .and_then(|()| entry.get_password().map_err(error));
    match written {
        Ok(text) if text == token.expose() => Ok(()),
        Ok(_) => Err(StoreError::Mismatch {
            store,
            entry: entry_name.to_owned(),
            cleanup: undo(entry, previous.as_deref()),
        }),
        Err(problem) => Err(StoreError::Write {
            problem,
            entry: entry_name.to_owned(),
            cleanup: undo(entry, previous.as_deref()),
        }),
    }
}

/// Leaves the entry as it was before a failed write, as far as the store allows, and
/// says what it did.
fn undo(entry: &keyring_core::Entry, previous: Option<&str>) -> String {
    if let Some(previous) = previous {
        let restored = entry
            .set_password(previous)
            .and_then(|()| entry.get_password())
            .is_ok_and(|text| text == previous);
        if restored {
            return "the previous token was put back".to_owned();
        }
    }
    let what = if previous.is_some() {
        "the previous token could not be put back"
    } else {
        "there was no previous token"
    };
    match entry.delete_credential() {
        Ok(()) => format!("{what}, so the entry was deleted"),
        Err(keyring_core::Error::NoEntry) => format!("{what}, and nothing was left in the entry"),
        Err(e) => format!(
            "{what}, and deleting the entry failed too ({}): run `quilt-mcp logout`",
            describe(&e)
        ),
    }
}

/// Writes the entry (blocking), checked and undone on failure as [`store_token`] does.
pub fn write_entry(service: &str, user: &str, token: &Token) -> Result<(), StoreError> {
    let name = format!("{service}/{user}");
    let (entry, store) = entry(service, user).map_err(|e| StoreError::Before(e, name.clone()))?;
    if let Some(why) = default_collection_locked(store) {
        let source = keyring_core::Error::NoStorageAccess(why.into());
        return Err(StoreError::Before(
            KeyringError::Locked { store, source },
            name,
        ));
    }
    store_token(&entry, store, &name, token)
}

/// Deletes the entry (blocking). `Ok(false)` when there was none; a locked store (no
/// unlocked Secret Service collection) is an error, since it cannot tell.
pub fn delete_entry(service: &str, user: &str) -> Result<bool, KeyringError> {
    let (entry, store) = entry(service, user)?;
    match entry.delete_credential() {
        Ok(()) => Ok(true),
        Err(keyring_core::Error::NoEntry) => match default_collection_locked(store) {
            Some(why) => Err(KeyringError::Locked {
                store,
                source: keyring_core::Error::NoStorageAccess(why.into()),
            }),
            None => Ok(false),
        },
        Err(e) => Err(KeyringError::from_store(store, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyring_core::api::{CredentialApi, CredentialStoreApi};
    use std::sync::Mutex as StdMutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// What the scripted credential does on its n-th call (1-based).
    #[derive(Debug, Clone, Copy)]
    enum Fault {
        /// The mock store fails the call (its own error injection).
        Fail(fn() -> keyring_core::Error),
        /// A write that lands, then reports an error (keyutils: the key is added to
        /// the session keyring, then linking it is denied).
        WriteThenFail(fn() -> keyring_core::Error),
        /// A write that lands altered.
        Mangle,
    }

    /// A credential of keyring-core's mock store with faults injected by call number.
    #[derive(Debug)]
    struct Scripted {
        mock: keyring_core::Entry,
        calls: AtomicUsize,
        faults: StdMutex<Vec<(usize, Fault)>>,
    }

    impl Scripted {
        fn fault(&self) -> Option<Fault> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            let fault = self
                .faults
                .lock()
                .unwrap()
                .iter()
                .find(|(at, _)| *at == n)
                .map(|(_, f)| *f);
            if let Some(Fault::Fail(error)) = fault {
                let cred: &keyring_core::mock::Cred = self.mock.as_any().downcast_ref().unwrap();
                cred.set_error(error());
            }
            fault
        }
    }

    impl CredentialApi for Scripted {
        fn set_secret(&self, secret: &[u8]) -> keyring_core::Result<()> {
            match self.fault() {
                Some(Fault::WriteThenFail(error)) => {
                    self.mock.set_secret(secret)?;
                    Err(error())
                }
                Some(Fault::Mangle) => self.mock.set_secret(&secret[1..]),
                _ => self.mock.set_secret(secret),
            }
        }
        fn get_secret(&self) -> keyring_core::Result<Vec<u8>> {
            self.fault();
            self.mock.get_secret()
        }
        fn delete_credential(&self) -> keyring_core::Result<()> {
            self.fault();
            self.mock.delete_credential()
        }
        fn get_credential(&self) -> keyring_core::Result<Option<Arc<keyring_core::Credential>>> {
            Ok(None)
        }
        fn get_specifiers(&self) -> Option<(String, String)> {
            self.mock.get_specifiers()
        }
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
    }

    /// An entry of a fresh mock store holding `previous`, faulting as `faults` say
    /// (call 1 reads the previous token, 2 writes, 3 reads back, 4 and 5 put the
    /// previous token back and read it, 6 deletes).
    fn scripted(
        previous: Option<&str>,
        faults: Vec<(usize, Fault)>,
    ) -> (keyring_core::Entry, keyring_core::Entry) {
        let store = keyring_core::mock::Store::new().unwrap();
        let mock = store.build("svc", "user", None).unwrap();
        if let Some(previous) = previous {
            mock.set_password(previous).unwrap();
        }
        let plain = store.build("svc", "user", None).unwrap();
        let entry = keyring_core::Entry::new_with_credential(Arc::new(Scripted {
            mock,
            calls: AtomicUsize::new(0),
            faults: StdMutex::new(faults),
        }));
        (entry, plain)
    }

    fn denied() -> keyring_core::Error {
        keyring_core::Error::NoStorageAccess("Access denied".into())
    }

    fn locked() -> keyring_core::Error {
        keyring_core::Error::NoStorageAccess("SS error: result not returned from SS API".into())
    }

    fn token(text: &str) -> Token {
        Token::new(text).unwrap()
    }

    fn stored(plain: &keyring_core::Entry) -> Option<String> {
        plain.get_password().ok()
    }

    #[test]
    fn a_write_that_succeeds_is_read_back() {
        let (entry, plain) = scripted(Some("old.to.ken"), vec![]);
        store_token(&entry, "custom", "svc/user", &token("new.to.ken")).unwrap();
        assert_eq!(stored(&plain).as_deref(), Some("new.to.ken"));
    }

    #[test]
    fn a_write_denied_after_the_key_was_added_leaves_nothing() {
        let (entry, plain) = scripted(None, vec![(2, Fault::WriteThenFail(denied))]);
        let error = store_token(&entry, "keyutils", "svc/user", &token("new.to.ken")).unwrap_err();
        assert!(
            matches!(
                &error,
                StoreError::Write {
                    problem: KeyringError::Refused {
                        store: "keyutils",
                        ..
                    },
                    ..
                }
            ),
            "{error:?}"
        );
        let text = error.to_string();
        assert!(
            text.contains("the keyring (keyutils) refused access to the entry svc/user"),
            "{text}"
        );
        assert!(
            text.contains("there was no previous token, so the entry was deleted"),
            "{text}"
        );
        assert_eq!(stored(&plain), None);
    }

    #[test]
    fn a_failed_write_puts_the_previous_token_back() {
        for faults in [
            vec![(2, Fault::WriteThenFail(denied))],
            vec![(2, Fault::Fail(denied))],
            vec![(3, Fault::Fail(denied))],
        ] {
            let (entry, plain) = scripted(Some("old.to.ken"), faults.clone());
            let error =
                store_token(&entry, "keyutils", "svc/user", &token("new.to.ken")).unwrap_err();
            assert!(
                error
                    .to_string()
                    .ends_with("; the previous token was put back"),
                "{faults:?}: {error}"
            );
            assert_eq!(stored(&plain).as_deref(), Some("old.to.ken"), "{faults:?}");
        }
    }

    #[test]
    fn a_write_that_reads_back_altered_is_undone() {
        let (entry, plain) = scripted(Some("old.to.ken"), vec![(2, Fault::Mangle)]);
        let error = store_token(&entry, "custom", "svc/user", &token("new.to.ken")).unwrap_err();
        assert!(matches!(error, StoreError::Mismatch { .. }), "{error:?}");
        assert_eq!(stored(&plain).as_deref(), Some("old.to.ken"));

        let (entry, plain) = scripted(None, vec![(2, Fault::Mangle)]);
        let error = store_token(&entry, "custom", "svc/user", &token("new.to.ken")).unwrap_err();
        assert!(error.to_string().contains("did not read back what was written; there was no previous token, so the entry was deleted"), "{error}");
        assert_eq!(stored(&plain), None);
    }

    #[test]
    fn when_the_previous_token_cannot_be_put_back_the_entry_is_deleted() {
        let (entry, plain) = scripted(
            Some("old.to.ken"),
            vec![(2, Fault::WriteThenFail(denied)), (4, Fault::Fail(denied))],
        );
        let error = store_token(&entry, "keyutils", "svc/user", &token("new.to.ken")).unwrap_err();
        assert!(
            error
                .to_string()
                .ends_with("; the previous token could not be put back, so the entry was deleted"),
            "{error}"
        );
        assert_eq!(stored(&plain), None);
    }

    #[test]
    fn a_locked_store_is_reported_before_anything_is_written() {
        let (entry, plain) = scripted(Some("old.to.ken"), vec![(1, Fault::Fail(locked))]);
        let error =
            store_token(&entry, "secret-service", "svc/user", &token("new.to.ken")).unwrap_err();
        assert!(
            matches!(&error, StoreError::Before(KeyringError::Locked { .. }, _)),
            "{error:?}"
        );
        let text = error.to_string();
        assert!(
            text.starts_with(
                "the keyring (secret-service) is locked, so the entry svc/user cannot be used"
            ),
            "{text}"
        );
        assert!(
            text.contains("gnome-keyring-daemon --unlock") && text.contains("QUILT_MCP_TOKEN"),
            "{text}"
        );
        assert_eq!(stored(&plain).as_deref(), Some("old.to.ken"));
    }

    #[test]
    fn store_errors_are_classified_per_store() {
        let cases = [
            ("secret-service", locked(), "locked"),
            ("keychain", denied(), "locked"),
            ("keyutils", denied(), "refused"),
            (
                "keyutils",
                keyring_core::Error::PlatformFailure("quota".into()),
                "failed",
            ),
            (
                "secret-service",
                keyring_core::Error::BadEncoding(vec![0xff]),
                "failed",
            ),
        ];
        for (store, error, code) in cases {
            let problem = KeyringError::from_store(store, error);
            assert_eq!(problem.code(), code, "{store}");
            let sentence = problem.sentence("svc/user");
            assert!(
                sentence.contains(&format!("keyring ({store})")) && sentence.contains("svc/user"),
                "{sentence}"
            );
            assert!(sentence.contains("QUILT_MCP_TOKEN"), "{sentence}");
        }
        let none = KeyringError::NoStore(StoreUnavailable::Unsupported);
        assert_eq!(none.code(), "no_store");
        assert!(none.sentence("svc/user").starts_with(
            "no keyring store is available (this platform has no supported credential store): "
        ));
        assert!(
            empty_sentence_with(Some("keyutils"), "svc/user", None).starts_with(
                "the keyring (keyutils) entry svc/user is empty: run `quilt-mcp login`"
            )
        );
        let unreachable = keyring_core::Error::PlatformFailure("no such file".into());
        let sentence = empty_sentence_with(Some("keyutils"), "svc/user", Some(&unreachable));
        assert!(
            sentence.starts_with("the keyring (keyutils) entry svc/user is empty, and the Secret Service, where `quilt-mcp login` stores the token on a desktop, is unreachable from this process (no session bus at "),
            "{sentence}"
        );
        assert!(
            sentence.contains("add DBUS_SESSION_BUS_ADDRESS"),
            "{sentence}"
        );
    }
}
