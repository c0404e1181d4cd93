//! The JWT as a secret: it redacts itself in `Debug` and has no `Display`, so it
//! cannot reach a log line, an error or a tool result by accident.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// base64url, with or without padding, as JWT segments come.
pub(crate) const B64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A JWT segment decoded as a JSON object; `Err` says what it is instead.
pub(crate) fn decode_object(segment: &str) -> Result<Map<String, Value>, SegmentError> {
    let bytes = B64URL
        .decode(segment)
        .map_err(|_| SegmentError::NotBase64url)?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(SegmentError::NotObject),
        Err(_) => Err(SegmentError::NotJson),
    }
}

/// Why a JWT segment is not a JSON object (the message follows "the token's header").
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SegmentError {
    /// Not base64url.
    #[error("is not base64url")]
    NotBase64url,
    /// Not JSON.
    #[error("is not JSON")]
    NotJson,
    /// JSON, but not an object.
    #[error("is not a JSON object")]
    NotObject,
}

/// A JSON number of seconds as whole seconds (a fraction is floored).
pub(crate) fn number(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite())
                .map(|f| f.floor() as i64)
        }),
        _ => None,
    }
}

/// Tokens longer than this are refused before any parsing (`token_too_large`).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// How a token setting is read (docs/reference.md, Settings): surrounding whitespace and one leading
/// `Bearer ` stripped, once. It lives with the configuration, which applies it.
pub use crate::config::normalize_token as normalize;

/// A bearer token. Its only ways out are [`Token::expose`] (for verification and
/// for the AWS credential exchanges) and [`Token::fingerprint`].
#[derive(Clone)]
pub struct Token {
    secret: SecretString,
    digest: [u8; 32],
}

impl Token {
    /// Wraps a raw token after [`normalize`]; `None` when it is empty.
    pub fn new(raw: &str) -> Option<Token> {
        normalize(raw).map(Token::wrap)
    }

    /// Wraps a token whose one `Bearer ` was stripped already (by the configuration
    /// or the `Authorization` scheme): only whitespace is trimmed, so a second
    /// `Bearer ` stays part of it and fails verification as `malformed_token`.
    pub fn stripped(text: &str) -> Option<Token> {
        let text = text.trim();
        (!text.is_empty()).then(|| Token::wrap(text))
    }

    /// [`Token::stripped`] of a secret setting.
    pub fn from_secret(secret: &SecretString) -> Option<Token> {
        Token::stripped(secret.expose_secret())
    }

    fn wrap(text: &str) -> Token {
        Token {
            digest: Sha256::digest(text.as_bytes()).into(),
            secret: SecretString::from(text.to_owned()),
        }
    }

    /// The token text. Callers must not log or return it.
    pub fn expose(&self) -> &str {
        self.secret.expose_secret()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.expose().len()
    }

    /// Never true: an empty token is not a token.
    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }

    /// The SHA-256 of the token, for cache keys and comparisons.
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// The unverified `exp` of the token, for deciding when a keyring entry must be
    /// read again. Never used for authorization.
    pub fn unverified_expiry(&self) -> Option<i64> {
        let payload = decode_object(self.expose().split('.').nth(1)?).ok()?;
        payload.get("exp").and_then(number)
    }

    /// `sha256:` and the first 12 hex digits of the token's SHA-256 (docs/reference.md, Logs).
    pub fn fingerprint(&self) -> String {
        let hex: String = self.digest[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("sha256:{hex}")
    }
}

impl PartialEq for Token {
    fn eq(&self, other: &Self) -> bool {
        self.digest == other.digest
    }
}

impl Eq for Token {}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token({})", self.fingerprint())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_table() {
        let cases: &[(&str, Option<&str>)] = &[
            ("a.b.c", Some("a.b.c")),
            ("  a.b.c\n", Some("a.b.c")),
            ("Bearer a.b.c", Some("a.b.c")),
            ("bearer   a.b.c ", Some("a.b.c")),
            ("BEARER a.b.c", Some("a.b.c")),
            ("Bearer", None),
            ("Bearer   ", None),
            ("", None),
            ("   ", None),
            ("Bearerx", Some("Bearerx")),
        ];
        for (raw, expected) in cases {
            assert_eq!(normalize(raw), *expected, "normalize({raw:?})");
        }
    }

    #[test]
    fn fingerprint_is_sha256_prefix_and_debug_redacts() {
        let token = Token::new("Bearer abc").unwrap();
        // sha256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
        assert_eq!(token.fingerprint(), "sha256:ba7816bf8f01");
        let debug = format!("{token:?}");
        assert!(!debug.contains("abc"), "{debug}");
        assert_eq!(debug, "Token(sha256:ba7816bf8f01)");
    }
}
