//! The Linux kernel keyutils store, for a machine without a Secret Service (see
//! `docs/reference.md`, Commands: `login`).
//!
//! An entry is a `user` key described `keyring:<user>@<service>`. It goes into the
//! first keyring this process can write, read back and remove: the user keyring
//! (`@u`, shared by every process of the user whatever its session), else the session
//! keyring (`@s`, under `keyctl session`). Each keyring is tried with a probe key that
//! holds no secret before the token is written, so a keyring that takes a key but then
//! refuses to give it back or remove it (a session keyring the process does not own)
//! never receives the token. The key grants its user view, read, write, search and
//! set-attribute, so a server started by a host in another session reads it.

use std::collections::HashMap;
use std::sync::Arc;

use keyring_core::api::{CredentialApi, CredentialPersistence, CredentialStoreApi};
use keyring_core::{Credential, Entry, Error};
use linux_keyutils::{
    Key, KeyError, KeyPermissionsBuilder, KeyRing, KeyRingIdentifier, Permission,
};

/// The store: builds entries; keeps no state.
#[derive(Debug)]
pub struct Store;

impl Store {
    /// The store, when this process has a user keyring.
    pub fn new() -> Result<Arc<Store>, Error> {
        KeyRing::from_special_id(KeyRingIdentifier::User, true).map_err(classify)?;
        Ok(Arc::new(Store))
    }
}

impl CredentialStoreApi for Store {
    fn vendor(&self) -> String {
        "quilt-mcp: Linux kernel keyutils (user keyring, else session keyring)".to_owned()
    }

    fn id(&self) -> String {
        "quilt-mcp-keyutils".to_owned()
    }

    fn build(
        &self,
        service: &str,
        user: &str,
        _modifiers: Option<&HashMap<&str, &str>>,
    ) -> keyring_core::Result<Entry> {
        Ok(Entry::new_with_credential(Arc::new(Cred {
            description: format!("keyring:{user}@{service}"),
            specifiers: (service.to_owned(), user.to_owned()),
        })))
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn persistence(&self) -> CredentialPersistence {
        CredentialPersistence::UntilReboot
    }
}

/// One entry.
#[derive(Debug)]
struct Cred {
    description: String,
    specifiers: (String, String),
}

/// The keyrings an entry may live in, in order of preference.
fn keyrings() -> Vec<KeyRing> {
    [
        KeyRing::from_special_id(KeyRingIdentifier::User, true),
        KeyRing::from_special_id(KeyRingIdentifier::Session, false),
    ]
    .into_iter()
    .filter_map(Result::ok)
    .collect()
}

/// Maps a keyutils error: no key is no entry; a refusal is no storage access.
fn classify(error: KeyError) -> Error {
    match error {
        KeyError::KeyDoesNotExist
        | KeyError::KeyExpired
        | KeyError::KeyRevoked
        | KeyError::KeyringDoesNotExist => Error::NoEntry,
        KeyError::AccessDenied | KeyError::PermissionDenied => {
            Error::NoStorageAccess(Box::new(error))
        }
        other => Error::PlatformFailure(Box::new(other)),
    }
}

/// Whether `keyring` takes a key, gives it back and removes it, tried with a key that
/// holds no secret.
fn usable(keyring: KeyRing) -> Result<(), KeyError> {
    let probe = keyring.add_key("quilt-mcp:probe", b"probe")?;
    let read = probe.read_to_vec();
    let removed = probe.invalidate();
    if removed.is_err() {
        // Taken off the keyring at least (writing to it is allowed).
        let _ = keyring.unlink_key(probe);
    }
    match (read, removed) {
        (Ok(bytes), Ok(())) if bytes == b"probe" => Ok(()),
        (Err(e), _) | (_, Err(e)) => Err(e),
        (Ok(_), Ok(())) => Err(KeyError::WriteError),
    }
}

/// A key that is gone (or going): not an entry.
fn gone(error: &KeyError) -> bool {
    matches!(
        error,
        KeyError::KeyDoesNotExist
            | KeyError::KeyExpired
            | KeyError::KeyRevoked
            | KeyError::KeyringDoesNotExist
    )
}

/// The first key with the entry's description, in any keyring, with its payload.
fn find(description: &str) -> Result<Option<(Key, Vec<u8>)>, KeyError> {
    let mut refused = None;
    for keyring in keyrings() {
        match keyring
            .search(description)
            .and_then(|key| Ok((key, key.read_to_vec()?)))
        {
            Ok(found) => return Ok(Some(found)),
            Err(e) if gone(&e) => {}
            Err(e) => refused = Some(e),
        }
    }
    match refused {
        Some(e) => Err(e),
        None => Ok(None),
    }
}

impl CredentialApi for Cred {
    fn set_secret(&self, secret: &[u8]) -> keyring_core::Result<()> {
        if secret.is_empty() {
            return Err(Error::Invalid("secret".into(), "cannot be empty".into()));
        }
        let mut refusal = None;
        for keyring in keyrings() {
            if let Err(e) = usable(keyring) {
                refusal = Some(e);
                continue;
            }
            let key = keyring
                .add_key(&self.description, secret)
                .map_err(classify)?;
            let perms = KeyPermissionsBuilder::builder()
                .posessor(Permission::ALL)
                .user(
                    Permission::VIEW
                        | Permission::READ
                        | Permission::WRITE
                        | Permission::SEARCH
                        | Permission::SETATTR,
                )
                .build();
            // Without it only this session can read the key; the read-back still
            // decides whether the write counts.
            let _ = key.set_perms(perms);
            return Ok(());
        }
        Err(classify(refusal.unwrap_or(KeyError::KeyringDoesNotExist)))
    }

    fn get_secret(&self) -> keyring_core::Result<Vec<u8>> {
        match find(&self.description).map_err(classify)? {
            Some((_, bytes)) => Ok(bytes),
            None => Err(Error::NoEntry),
        }
    }

    fn delete_credential(&self) -> keyring_core::Result<()> {
        let mut deleted = false;
        // Invalidating a key removes it from every keyring at once; a copy written
        // into the other keyring by an earlier login follows in the next round.
        for _ in 0..4 {
            let found = find(&self.description).and_then(|found| match found {
                Some((key, _)) => key.invalidate().map(|()| true),
                None => Ok(false),
            });
            match found {
                Ok(true) => deleted = true,
                Ok(false) => break,
                Err(e) if gone(&e) || deleted => break,
                Err(e) => return Err(classify(e)),
            }
        }
        if deleted { Ok(()) } else { Err(Error::NoEntry) }
    }

    fn get_credential(&self) -> keyring_core::Result<Option<Arc<Credential>>> {
        Ok(None)
    }

    fn get_specifiers(&self) -> Option<(String, String)> {
        Some(self.specifiers.clone())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
