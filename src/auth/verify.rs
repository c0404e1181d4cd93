//! Token verification (docs/reference.md, Errors). Every rule is checked here, in the contract's order, and
//! the first failure gives the reason code:
//!
//! 1. present, at most 16 KiB, three base64url segments with a JSON header and payload;
//! 2. header: `alg` from the configured key's family and never `none`; no `crit`;
//!    `jku`/`x5u`/`jwk`/`x5c` ignored; with a JWKS, `kid` must name a key;
//! 3. signature, with the algorithm the key allows (never trusted from the token);
//! 4. claims: types, `exp`, `nbf`, `iat`, `aud`, `iss`, with the leeway.
//!
//! `jsonwebtoken` is used for keys and signatures only: its claim validation differs
//! from the contract (no `nbf` or `iat` by default, optional `aud`, `crit` ignored).

use base64::Engine as _;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use super::CredentialSource;
use super::keys::{self, KeyError, KeySet, VerificationKey};
use super::token::{B64URL, decode_object, number};
use super::{AuthContext, AuthFailure, Reason, Token, TokenInfo, TokenSourceKind, claims};
use crate::config::Config;

/// Verifies tokens against the configured key; built once per process.
#[derive(Debug)]
pub struct Verifier {
    keys: Result<KeySet, KeyError>,
    key_kind: &'static str,
    audience: String,
    issuer: Option<String>,
    leeway: i64,
    registry_url: Option<String>,
}

/// What [`Verifier::check_unsigned`] found: the claims of a token whose signature
/// was not checked. Never used for authorization.
#[derive(Debug, Clone)]
pub struct Unsigned {
    /// `sub`, else `id`.
    pub subject: Option<String>,
    /// `exp`, Unix seconds.
    pub expires_at: i64,
    /// The decompressed Quilt claims.
    pub claims: claims::QuiltClaims,
}

/// What verification found besides the context: notes for the log.
#[derive(Debug, Clone, Default)]
pub struct Notes {
    /// Warnings from claims decompression.
    pub warnings: Vec<String>,
}

impl Verifier {
    /// Loads the keys named by the configuration. A key problem does not fail here:
    /// it makes every verification fail with `verification_not_configured`.
    pub fn new(config: &Config) -> Verifier {
        Verifier {
            keys: keys::load(&config.key),
            key_kind: config.key.kind(),
            audience: config.audience.clone(),
            issuer: config.issuer.clone(),
            leeway: i64::try_from(config.leeway_secs).unwrap_or(i64::MAX),
            registry_url: config.registry_url.clone(),
        }
    }

    /// The key configuration problem, if any.
    pub fn key_error(&self) -> Option<&KeyError> {
        self.keys.as_ref().err()
    }

    /// The `verification_not_configured` failure when no key could be loaded. It
    /// comes before every other reason: without a key no token can be judged.
    pub fn not_configured(&self) -> Option<AuthFailure> {
        self.keys.as_ref().err().map(not_configured)
    }

    /// `none`, `secret`, `public_key`, `jwks` or `conflict`.
    pub fn key_kind(&self) -> &'static str {
        self.key_kind
    }

    /// Verifies `token` at time `now` (Unix seconds): `parse` → `choose_key` →
    /// `check_signature` → `Verifier::check_claims`, then the Quilt claims.
    pub fn verify(
        &self,
        token: &Token,
        source: TokenSourceKind,
        now: i64,
    ) -> Result<(AuthContext, Notes), AuthFailure> {
        let fail =
            |(reason, detail): (Reason, String)| AuthFailure::new(reason, detail, Some(source));
        let keys = match &self.keys {
            Ok(keys) => keys,
            Err(e) => return Err(not_configured(e)),
        };
        let parts = parse(token).map_err(fail)?;
        let (key, alg) = choose_key(keys, &parts.header).map_err(fail)?;
        check_signature(&parts, key, alg).map_err(fail)?;
        let typed = self.check_claims(&parts.payload, now, source)?;

        let decompressed = claims::decompress(&parts.payload);
        let aws = CredentialSource::from_claims(
            &parts.payload,
            &decompressed.claims.roles,
            self.registry_url.as_deref(),
        )
        .map_err(|why| fail((Reason::InvalidClaims, why.to_string())))?;
        let catalog_token = catalog_token(&parts.payload).map_err(fail)?;
        let context = AuthContext {
            subject: typed.sub,
            issuer: typed.iss,
            audience: typed.aud.unwrap_or_default(),
            issued_at: typed.iat,
            expires_at: typed.exp.unwrap_or_default(),
            not_before: typed.nbf,
            jti: typed.jti,
            claims: decompressed.claims,
            token_info: TokenInfo {
                source,
                fingerprint: token.fingerprint(),
                alg: format!("{alg:?}"),
                kid: key_id(&parts.header),
                store: (source == TokenSourceKind::Keyring)
                    .then(super::store::store_in_use)
                    .and_then(Result::ok),
            },
            aws,
            token: token.clone(),
            catalog_token,
        };
        Ok((
            context,
            Notes {
                warnings: decompressed.warnings,
            },
        ))
    }

    /// Every check a terminal without a verification key can make (see
    /// `docs/reference.md`, Commands: `login`): structure, the header's `alg` (not
    /// `none`) and `crit`, the claims' types, `exp`, `nbf`, `iat`, `aud`, `iss` and the
    /// credential claims, all but the signature, which only the server checks.
    pub fn check_unsigned(
        &self,
        token: &Token,
        source: TokenSourceKind,
        now: i64,
    ) -> Result<Unsigned, AuthFailure> {
        let fail =
            |(reason, detail): (Reason, String)| AuthFailure::new(reason, detail, Some(source));
        let parts = parse(token).map_err(fail)?;
        match parts.header.get("alg") {
            Some(Value::String(alg)) if !alg.eq_ignore_ascii_case("none") => {}
            _ => {
                return Err(fail((
                    Reason::UnsupportedAlgorithm,
                    "the token's header names no algorithm (or `none`)".to_owned(),
                )));
            }
        }
        if parts.header.contains_key("crit") {
            return Err(fail((
                Reason::CriticalHeader,
                "the token has a `crit` header, which this server does not support".to_owned(),
            )));
        }
        let typed = self.check_claims(&parts.payload, now, source)?;
        let decompressed = claims::decompress(&parts.payload);
        CredentialSource::from_claims(
            &parts.payload,
            &decompressed.claims.roles,
            self.registry_url.as_deref(),
        )
        .map_err(|why| fail((Reason::InvalidClaims, why.to_string())))?;
        Ok(Unsigned {
            subject: typed.sub,
            expires_at: typed.exp.unwrap_or_default(),
            claims: decompressed.claims,
        })
    }

    /// Step 4: the registered claims' types, `exp`, `nbf`, `iat`, `aud` and `iss`. On
    /// success `exp` and `aud` are present.
    fn check_claims(
        &self,
        payload: &Map<String, Value>,
        now: i64,
        source: TokenSourceKind,
    ) -> Result<TypedClaims, AuthFailure> {
        let fail = |reason: Reason, detail: String| AuthFailure::new(reason, detail, Some(source));
        let typed = TypedClaims::read(payload)
            .map_err(|why| fail(Reason::InvalidClaims, why.to_string()))?;
        let Some(exp) = typed.exp else {
            return Err(fail(
                Reason::MissingClaim,
                "the token has no `exp` (expiry) claim".to_owned(),
            ));
        };
        self.check_times(exp, typed.nbf, typed.iat, now, source)?;
        let Some(audience) = &typed.aud else {
            return Err(fail(
                Reason::MissingClaim,
                "the token has no `aud` (audience) claim".to_owned(),
            ));
        };
        if !audience.iter().any(|a| a == &self.audience) {
            return Err(fail(
                Reason::WrongAudience,
                format!(
                    "the token is for audience {}, not {:?}",
                    audience
                        .iter()
                        .map(|a| format!("{:?}", short(a)))
                        .collect::<Vec<_>>()
                        .join(", "),
                    self.audience
                ),
            ));
        }
        if let Some(expected) = &self.issuer {
            match &typed.iss {
                None => {
                    return Err(fail(
                        Reason::MissingClaim,
                        "the token has no `iss` (issuer) claim".to_owned(),
                    ));
                }
                Some(iss) if iss != expected => {
                    return Err(fail(
                        Reason::WrongIssuer,
                        format!("the token was issued by {:?}, not {expected:?}", short(iss)),
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(typed)
    }

    /// The time rules of step 4 (`exp`, `nbf`, `iat` with the leeway), for a context
    /// verified earlier and used again.
    pub fn recheck(&self, context: &AuthContext, now: i64) -> Result<(), AuthFailure> {
        self.check_times(
            context.expires_at,
            context.not_before,
            context.issued_at,
            now,
            context.token_info.source,
        )
    }

    fn check_times(
        &self,
        exp: i64,
        nbf: Option<i64>,
        iat: Option<i64>,
        now: i64,
        source: TokenSourceKind,
    ) -> Result<(), AuthFailure> {
        let fail =
            |reason: Reason, detail: String| Err(AuthFailure::new(reason, detail, Some(source)));
        if now > exp.saturating_add(self.leeway) {
            return fail(
                Reason::Expired,
                format!("the token expired at {}", crate::time::human(exp)),
            );
        }
        if let Some(nbf) = nbf
            && now.saturating_add(self.leeway) < nbf
        {
            return fail(
                Reason::NotYetValid,
                format!("the token is not valid before {}", crate::time::human(nbf)),
            );
        }
        if let Some(iat) = iat
            && iat > now.saturating_add(self.leeway)
        {
            return fail(
                Reason::IssuedInFuture,
                format!(
                    "the token says it was issued at {}, which is in the future",
                    crate::time::human(iat)
                ),
            );
        }
        Ok(())
    }
}

/// A step's failure: the reason and what exactly was wrong.
type Step<T> = Result<T, (Reason, String)>;

/// A token split into its parts; the segments as sent, for the signature.
struct Parts<'a> {
    header_b64: &'a str,
    payload_b64: &'a str,
    signature_b64: &'a str,
    header: Map<String, Value>,
    payload: Map<String, Value>,
}

/// Step 1: size and structure: at most 16 KiB, three base64url segments, a JSON
/// object for the header and for the payload.
fn parse(token: &Token) -> Step<Parts<'_>> {
    if token.len() > super::token::MAX_TOKEN_BYTES {
        return Err((
            Reason::TokenTooLarge,
            format!("the token is {} bytes, over the 16 KiB limit", token.len()),
        ));
    }
    let segments: Vec<&str> = token.expose().split('.').collect();
    let [header_b64, payload_b64, signature_b64] = segments.as_slice() else {
        return Err((
            Reason::MalformedToken,
            format!(
                "the token is not a JWT (it has {} dot-separated segments, not 3)",
                segments.len()
            ),
        ));
    };
    let header = decode_object(header_b64)
        .map_err(|why| (Reason::MalformedToken, format!("the token's header {why}")))?;
    let payload = decode_object(payload_b64)
        .map_err(|why| (Reason::MalformedToken, format!("the token's payload {why}")))?;
    if B64URL.decode(signature_b64).is_err() {
        return Err((
            Reason::MalformedToken,
            "the token's signature is not base64url".to_owned(),
        ));
    }
    Ok(Parts {
        header_b64,
        payload_b64,
        signature_b64,
        header,
        payload,
    })
}

/// The header's `kid`, when it is a string.
fn key_id(header: &Map<String, Value>) -> Option<String> {
    match header.get("kid") {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

/// Step 2: the header: an algorithm the configured keys allow (never `none`), no
/// `crit`, and with a JWKS a `kid` naming a key whose algorithms include it.
fn choose_key<'k>(
    keys: &'k KeySet,
    header: &Map<String, Value>,
) -> Step<(&'k VerificationKey, Algorithm)> {
    let alg_name = match header.get("alg") {
        Some(Value::String(s)) => s.as_str(),
        _ => {
            return Err((
                Reason::UnsupportedAlgorithm,
                "the token's header names no algorithm".to_owned(),
            ));
        }
    };
    let alg: Option<Algorithm> = if alg_name.eq_ignore_ascii_case("none") {
        None
    } else {
        alg_name.parse().ok()
    };
    let accepted = || -> String {
        let mut names: Vec<String> = Vec::new();
        for key in keys.keys() {
            for a in &key.algorithms {
                let name = format!("{a:?}");
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        names.join(", ")
    };
    let Some(alg) = alg.filter(|a| keys.keys().iter().any(|k| k.algorithms.contains(a))) else {
        return Err((
            Reason::UnsupportedAlgorithm,
            format!(
                "the token is signed with {:?}, but the configured key accepts only {}",
                short(alg_name),
                accepted()
            ),
        ));
    };
    if let Some(crit) = header.get("crit") {
        let names = match crit {
            Value::Array(items) => items
                .iter()
                .filter_map(Value::as_str)
                .map(short)
                .collect::<Vec<_>>()
                .join(", "),
            _ => String::new(),
        };
        return Err((
            Reason::CriticalHeader,
            format!("the token has a `crit` header ({names}), which this server does not support"),
        ));
    }
    let kid = key_id(header);
    let key: &VerificationKey = match keys {
        KeySet::Single(key) => key,
        KeySet::Jwks(list) => {
            let Some(kid) = kid.as_deref() else {
                return Err((
                    Reason::UnknownKey,
                    "the token has no `kid` header, which the JWKS needs to choose a key"
                        .to_owned(),
                ));
            };
            let Some(key) = list.iter().find(|k| k.kid.as_deref() == Some(kid)) else {
                return Err((
                    Reason::UnknownKey,
                    format!(
                        "the token's key id {:?} names no key in the JWKS",
                        short(kid)
                    ),
                ));
            };
            key
        }
    };
    if !key.algorithms.contains(&alg) {
        return Err((
            Reason::UnsupportedAlgorithm,
            format!(
                "the token is signed with {alg:?}, but its key ({}) accepts only {}",
                key.kind.describe(),
                key.algorithms
                    .iter()
                    .map(|a| format!("{a:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Ok((key, alg))
}

/// Step 3: the signature over the first two segments as sent, with the algorithm the
/// key allows.
fn check_signature(parts: &Parts<'_>, key: &VerificationKey, alg: Algorithm) -> Step<()> {
    let message = format!("{}.{}", parts.header_b64, parts.payload_b64);
    match jsonwebtoken::crypto::verify(parts.signature_b64, message.as_bytes(), &key.key, alg) {
        Ok(true) => Ok(()),
        _ => Err((
            Reason::InvalidSignature,
            "the token's signature does not verify with the configured key".to_owned(),
        )),
    }
}

fn not_configured(error: &KeyError) -> AuthFailure {
    AuthFailure::new(
        Reason::VerificationNotConfigured,
        format!("the server cannot verify tokens: {error}"),
        None,
    )
}

/// The `catalog_token` claim: a string (an empty one counts as absent), else
/// `invalid_claims`; never copied into a message.
fn catalog_token(payload: &Map<String, Value>) -> Result<Option<Token>, (Reason, String)> {
    match payload.get("catalog_token") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Token::stripped(text)),
        Some(other) => Err((
            Reason::InvalidClaims,
            format!(
                "the `catalog_token` claim is {}, not a string",
                type_name(Some(other))
            ),
        )),
    }
}

fn short(text: &str) -> String {
    let mut out: String = text.chars().take(80).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

/// The registered claims, type-checked.
struct TypedClaims {
    exp: Option<i64>,
    nbf: Option<i64>,
    iat: Option<i64>,
    aud: Option<Vec<String>>,
    iss: Option<String>,
    sub: Option<String>,
    jti: Option<String>,
}

/// A registered or Quilt claim of the wrong JSON type (`invalid_claims`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the `{claim}` claim is {found}, not {expected}")]
struct WrongClaimType {
    claim: &'static str,
    found: &'static str,
    expected: &'static str,
}

impl TypedClaims {
    fn read(payload: &Map<String, Value>) -> Result<TypedClaims, WrongClaimType> {
        let present = |name: &str| payload.get(name).filter(|v| !v.is_null());
        let wrong = |claim: &'static str, expected: &'static str| WrongClaimType {
            claim,
            found: type_name(payload.get(claim)),
            expected,
        };
        let time = |name: &'static str| -> Result<Option<i64>, WrongClaimType> {
            match present(name) {
                None => Ok(None),
                Some(v) => number(v)
                    .map(Some)
                    .ok_or_else(|| wrong(name, "a number of seconds")),
            }
        };
        let text = |name: &'static str| -> Result<Option<String>, WrongClaimType> {
            match present(name) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(wrong(name, "a string")),
            }
        };
        let aud = match present("aud") {
            None => None,
            Some(Value::String(s)) => Some(vec![s.clone()]),
            Some(Value::Array(items)) => {
                let strings: Vec<String> = items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect();
                if strings.len() != items.len() {
                    return Err(wrong("aud", "a string or an array of strings"));
                }
                Some(strings)
            }
            Some(_) => return Err(wrong("aud", "a string or an array of strings")),
        };
        // `roles` of another type falls back to `r`, as in the catalog (docs/reference.md, Errors);
        // `permissions` and `buckets` of another type fail closed.
        for name in ["permissions", "buckets"] {
            if let Some(v) = present(name)
                && !v.is_array()
            {
                return Err(wrong(name, "an array"));
            }
        }
        for name in ["s", "scope", "l", "level"] {
            let v = payload.get(name);
            if claims::is_truthy(v) && !v.is_some_and(Value::is_string) {
                return Err(wrong(name, "a string"));
            }
        }
        let sub = match text("sub")? {
            Some(sub) => Some(sub),
            None => match present("id") {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => None,
            },
        };
        Ok(TypedClaims {
            exp: time("exp")?,
            nbf: time("nbf")?,
            iat: time("iat")?,
            aud,
            iss: text("iss")?,
            sub,
            jti: text("jti")?,
        })
    }
}

fn type_name(value: Option<&Value>) -> &'static str {
    match value {
        None | Some(Value::Null) => "null",
        Some(Value::Bool(_)) => "a boolean",
        Some(Value::Number(_)) => "a number",
        Some(Value::String(_)) => "a string",
        Some(Value::Array(_)) => "an array",
        Some(Value::Object(_)) => "an object",
    }
}
