//! Verification keys: a shared secret, a PEM public key or a JWKS file, loaded once.
//!
//! The algorithms a key accepts are decided here, from the key, never from a token:
//! an RSA key accepts RS*/PS*, a P-256 key ES256, a P-384 key ES384, an Ed25519 key
//! EdDSA, a secret HS256/384/512. A JWKS entry with an `alg` accepts only that one.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use secrecy::ExposeSecret;

use crate::config::KeyConfig;

/// The kind of one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// HMAC shared secret.
    Hmac,
    /// RSA public key.
    Rsa,
    /// EC P-256 public key.
    EcP256,
    /// EC P-384 public key.
    EcP384,
    /// Ed25519 public key.
    Ed25519,
}

impl KeyKind {
    /// The algorithms this kind of key verifies.
    pub fn algorithms(self) -> &'static [Algorithm] {
        match self {
            KeyKind::Hmac => &[Algorithm::HS256, Algorithm::HS384, Algorithm::HS512],
            KeyKind::Rsa => &[
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::PS256,
                Algorithm::PS384,
                Algorithm::PS512,
            ],
            KeyKind::EcP256 => &[Algorithm::ES256],
            KeyKind::EcP384 => &[Algorithm::ES384],
            KeyKind::Ed25519 => &[Algorithm::EdDSA],
        }
    }

    /// A word for messages.
    pub fn describe(self) -> &'static str {
        match self {
            KeyKind::Hmac => "shared secret",
            KeyKind::Rsa => "RSA public key",
            KeyKind::EcP256 => "EC P-256 public key",
            KeyKind::EcP384 => "EC P-384 public key",
            KeyKind::Ed25519 => "Ed25519 public key",
        }
    }
}

/// One usable key.
#[derive(Clone)]
pub struct VerificationKey {
    /// The `kid` (JWKS only).
    pub kid: Option<String>,
    /// The key.
    pub key: DecodingKey,
    /// What kind of key it is.
    pub kind: KeyKind,
    /// The algorithms it accepts.
    pub algorithms: Vec<Algorithm>,
}

impl std::fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationKey")
            .field("kid", &self.kid)
            .field("kind", &self.kind)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

/// The configured keys.
#[derive(Debug, Clone)]
pub enum KeySet {
    /// A secret or one PEM public key.
    Single(VerificationKey),
    /// JWKS keys, chosen by `kid`.
    Jwks(Vec<VerificationKey>),
}

impl KeySet {
    /// Every key.
    pub fn keys(&self) -> &[VerificationKey] {
        match self {
            KeySet::Single(key) => std::slice::from_ref(key),
            KeySet::Jwks(keys) => keys,
        }
    }
}

/// Why no key could be loaded: a configuration problem (`status` exits 2).
#[derive(Debug, Clone, thiserror::Error)]
pub enum KeyError {
    /// No key source is configured.
    #[error(
        "no verification key is configured (set QUILT_MCP_JWT_SECRET, QUILT_MCP_JWT_PUBLIC_KEY or QUILT_MCP_JWKS)"
    )]
    NotConfigured,
    /// A key setting still holds the placeholder that `config` printed (or a
    /// launcher's unsubstituted `${…}`).
    #[error(
        "{variable} is still the placeholder {value:?}: replace it with the real value in the MCP server's settings"
    )]
    Placeholder {
        /// The variable.
        variable: &'static str,
        /// The placeholder, as set (not a secret).
        value: String,
    },
    /// More than one key source is configured.
    #[error("more than one verification key source is configured ({}); set exactly one", .0.join(", "))]
    Conflict(Vec<&'static str>),
    /// A key file could not be read.
    #[error("{variable}: cannot read {}: {source}", .path.display())]
    Unreadable {
        /// The variable naming the file.
        variable: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// A key file was read but holds no usable key.
    #[error("{variable}: {} {problem}", .path.display())]
    Invalid {
        /// The variable naming the file.
        variable: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        problem: KeyFileProblem,
    },
}

impl KeyError {
    /// Whether no key is configured at all (none, or only a placeholder), as in a
    /// terminal where the key lives in the host's settings: `login` can still make
    /// every check but the signature.
    pub fn is_absent(&self) -> bool {
        matches!(self, KeyError::NotConfigured | KeyError::Placeholder { .. })
    }
}

/// What is wrong with a key file (the message follows the file's path).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFileProblem {
    /// Not PEM.
    #[error("is not a PEM file")]
    NotPem,
    /// A private key.
    #[error("holds a private key; configure the matching public key instead")]
    PrivateKey,
    /// A certificate.
    #[error("holds a certificate; extract its public key (openssl x509 -pubkey -noout)")]
    Certificate,
    /// Another PEM block.
    #[error("holds a PEM block {0:?}, not a public key")]
    OtherPem(String),
    /// An EC key on another curve.
    #[error("holds an EC key on a curve other than P-256 or P-384")]
    OtherCurve,
    /// A public key of another type.
    #[error("holds a public key of an unsupported type (use RSA, EC P-256/P-384 or Ed25519)")]
    UnsupportedType,
    /// Not a public key.
    #[error("is not a public key")]
    NotPublic,
    /// The key did not load.
    #[error("could not be loaded as an {kind}: {source}")]
    Unloadable {
        /// The kind of key, in words.
        kind: &'static str,
        /// The decoder's error.
        #[source]
        source: jsonwebtoken::errors::Error,
    },
    /// Not a JWKS document.
    #[error("is not a JWKS document: {0}")]
    NotJwks(String),
    /// A JWKS key without `kid`.
    #[error("key #{0} has no \"kid\"; every key must have one")]
    NoKid(usize),
    /// A JWKS key on an unsupported curve.
    #[error("key {0:?} uses an unsupported curve")]
    JwkCurve(String),
    /// A JWKS key of an unsupported type.
    #[error("key {0:?} has an unsupported key type")]
    JwkType(String),
    /// A JWKS key naming an unsupported algorithm.
    #[error("key {0:?} names an unsupported \"alg\"")]
    JwkAlg(String),
    /// A JWKS key whose algorithm does not fit it.
    #[error("key {kid:?} names \"alg\" {alg:?}, which does not fit a {kind}")]
    JwkAlgMismatch {
        /// The key id.
        kid: String,
        /// The algorithm named.
        alg: Algorithm,
        /// The kind of key, in words.
        kind: &'static str,
    },
    /// A JWKS key that did not load.
    #[error("key {kid:?} could not be loaded: {source}")]
    JwkUnloadable {
        /// The key id.
        kid: String,
        /// The decoder's error.
        #[source]
        source: jsonwebtoken::errors::Error,
    },
    /// A JWKS with no signature keys.
    #[error("has no signature keys")]
    NoKeys,
}

/// Loads the configured keys.
pub fn load(config: &KeyConfig) -> Result<KeySet, KeyError> {
    match config {
        KeyConfig::None => Err(KeyError::NotConfigured),
        KeyConfig::Placeholder { variable, value } => Err(KeyError::Placeholder {
            variable,
            value: value.clone(),
        }),
        KeyConfig::Conflict(names) => Err(KeyError::Conflict(names.clone())),
        KeyConfig::Secret(secret) => Ok(KeySet::Single(VerificationKey {
            kid: None,
            key: DecodingKey::from_secret(secret.expose_secret().as_bytes()),
            kind: KeyKind::Hmac,
            algorithms: KeyKind::Hmac.algorithms().to_vec(),
        })),
        KeyConfig::PublicKeyFile(path) => {
            let bytes = read("QUILT_MCP_JWT_PUBLIC_KEY", path)?;
            load_pem(&bytes)
                .map(KeySet::Single)
                .map_err(|problem| KeyError::Invalid {
                    variable: "QUILT_MCP_JWT_PUBLIC_KEY",
                    path: path.clone(),
                    problem,
                })
        }
        KeyConfig::JwksFile(path) => {
            let bytes = read("QUILT_MCP_JWKS", path)?;
            load_jwks(&bytes)
                .map(KeySet::Jwks)
                .map_err(|problem| KeyError::Invalid {
                    variable: "QUILT_MCP_JWKS",
                    path: path.clone(),
                    problem,
                })
        }
    }
}

fn read(variable: &'static str, path: &Path) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path).map_err(|e| KeyError::Unreadable {
        variable,
        path: path.to_owned(),
        source: Arc::new(e),
    })
}

// DER encodings of the object identifiers that name a public key's algorithm.
const OID_RSA: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];
const OID_EC: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The algorithm identifier of a SubjectPublicKeyInfo sits in its first few dozen bytes.
fn spki_kind(der: &[u8]) -> Result<KeyKind, KeyFileProblem> {
    let head = &der[..der.len().min(32)];
    if contains(head, OID_RSA) {
        Ok(KeyKind::Rsa)
    } else if contains(head, OID_EC) && contains(head, OID_P256) {
        Ok(KeyKind::EcP256)
    } else if contains(head, OID_EC) && contains(head, OID_P384) {
        Ok(KeyKind::EcP384)
    } else if contains(head, OID_EC) {
        Err(KeyFileProblem::OtherCurve)
    } else if contains(head, OID_ED25519) {
        Ok(KeyKind::Ed25519)
    } else {
        Err(KeyFileProblem::UnsupportedType)
    }
}

fn load_pem(bytes: &[u8]) -> Result<VerificationKey, KeyFileProblem> {
    let parsed = pem::parse(bytes).map_err(|_| KeyFileProblem::NotPem)?;
    let kind = match parsed.tag() {
        "PUBLIC KEY" => spki_kind(parsed.contents())?,
        "RSA PUBLIC KEY" => KeyKind::Rsa,
        tag if tag.contains("PRIVATE KEY") => return Err(KeyFileProblem::PrivateKey),
        "CERTIFICATE" => return Err(KeyFileProblem::Certificate),
        other => return Err(KeyFileProblem::OtherPem(other.to_owned())),
    };
    let key = match kind {
        KeyKind::Rsa => DecodingKey::from_rsa_pem(bytes),
        KeyKind::EcP256 | KeyKind::EcP384 => DecodingKey::from_ec_pem(bytes),
        KeyKind::Ed25519 => DecodingKey::from_ed_pem(bytes),
        KeyKind::Hmac => return Err(KeyFileProblem::NotPublic),
    }
    .map_err(|source| KeyFileProblem::Unloadable {
        kind: kind.describe(),
        source,
    })?;
    Ok(VerificationKey {
        kid: None,
        key,
        kind,
        algorithms: kind.algorithms().to_vec(),
    })
}

fn load_jwks(bytes: &[u8]) -> Result<Vec<VerificationKey>, KeyFileProblem> {
    let set: JwkSet =
        serde_json::from_slice(bytes).map_err(|e| KeyFileProblem::NotJwks(e.to_string()))?;
    let mut keys = Vec::new();
    for (index, jwk) in set.keys.iter().enumerate() {
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            continue;
        }
        let Some(kid) = jwk.common.key_id.clone() else {
            return Err(KeyFileProblem::NoKid(index));
        };
        let kind = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => KeyKind::Rsa,
            AlgorithmParameters::EllipticCurve(p) => match p.curve {
                EllipticCurve::P256 => KeyKind::EcP256,
                EllipticCurve::P384 => KeyKind::EcP384,
                _ => return Err(KeyFileProblem::JwkCurve(kid)),
            },
            AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
                KeyKind::Ed25519
            }
            AlgorithmParameters::OctetKey(_) => KeyKind::Hmac,
            _ => return Err(KeyFileProblem::JwkType(kid)),
        };
        let algorithms = match jwk.common.key_algorithm {
            Some(alg) => {
                let alg = format!("{alg:?}")
                    .parse::<Algorithm>()
                    .map_err(|_| KeyFileProblem::JwkAlg(kid.clone()))?;
                if !kind.algorithms().contains(&alg) {
                    return Err(KeyFileProblem::JwkAlgMismatch {
                        kid,
                        alg,
                        kind: kind.describe(),
                    });
                }
                vec![alg]
            }
            None => kind.algorithms().to_vec(),
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|source| KeyFileProblem::JwkUnloadable {
            kid: kid.clone(),
            source,
        })?;
        keys.push(VerificationKey {
            kid: Some(kid),
            key,
            kind,
            algorithms,
        });
    }
    if keys.is_empty() {
        return Err(KeyFileProblem::NoKeys);
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/keys")
            .join(name)
    }

    fn single_kind(file: &str) -> Result<KeyKind, KeyError> {
        match load(&KeyConfig::PublicKeyFile(fixture(file)))? {
            KeySet::Single(key) => Ok(key.kind),
            KeySet::Jwks(_) => unreachable!(),
        }
    }

    #[test]
    fn pem_kinds_are_detected() {
        assert_eq!(single_kind("rsa_public.pem").ok(), Some(KeyKind::Rsa));
        assert_eq!(single_kind("ec1_public.pem").ok(), Some(KeyKind::EcP256));
        assert_eq!(single_kind("ec384_public.pem").ok(), Some(KeyKind::EcP384));
        assert_eq!(
            single_kind("ed25519_public.pem").ok(),
            Some(KeyKind::Ed25519)
        );
    }

    #[test]
    fn bad_key_files_are_configuration_errors() {
        assert!(
            matches!(single_kind("rsa_private.pem"), Err(KeyError::Invalid { problem, .. }) if problem == KeyFileProblem::PrivateKey)
        );
        assert!(matches!(
            single_kind("jwks.json"),
            Err(KeyError::Invalid { .. })
        ));
        assert!(matches!(
            single_kind("missing.pem"),
            Err(KeyError::Unreadable { .. })
        ));
        assert!(matches!(
            load(&KeyConfig::None),
            Err(KeyError::NotConfigured)
        ));
        assert!(matches!(
            load(&KeyConfig::JwksFile(fixture("rsa_public.pem"))),
            Err(KeyError::Invalid {
                variable: "QUILT_MCP_JWKS",
                ..
            })
        ));
    }

    #[test]
    fn jwks_keys_keep_their_kid_and_alg() {
        let KeySet::Jwks(keys) = load(&KeyConfig::JwksFile(fixture("jwks.json"))).unwrap() else {
            unreachable!()
        };
        let kids: Vec<_> = keys.iter().map(|k| k.kid.as_deref().unwrap()).collect();
        assert_eq!(kids, ["ec-key-1", "ec-key-2"]);
        assert!(keys.iter().all(|k| k.algorithms == [Algorithm::ES256]));
    }
}
