//! Tokens: well-formed ones for user alice ([`claims`], [`claims_with`], [`hs256`]),
//! other algorithms with the keys of `tests/fixtures/keys`, and deliberately broken
//! ones ([`alg_none`], [`tamper`], [`hs_with_header`]).

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// The shared secret the tests' servers verify with.
pub const SECRET: &str = "test-shared-secret-that-is-long-enough-for-hs512-signing!!";
/// The audience quilt-mcp expects by default.
pub const AUDIENCE: &str = "quilt-mcp-server";

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A key of `tests/fixtures/keys`.
pub fn key_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/keys")
        .join(name)
}

/// The bytes of a key of `tests/fixtures/keys`.
pub fn key_bytes(name: &str) -> Vec<u8> {
    std::fs::read(key_path(name)).unwrap()
}

/// Claims of a valid token for user alice, an hour long.
pub fn claims() -> Value {
    let now = now();
    json!({
        "sub": "alice",
        "iss": "https://quilt.example.com",
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 3600,
        "jti": "token-1",
        "scope": "read write",
        "level": "write",
        "roles": ["ReadWriteQuiltBucket"],
        "buckets": ["lab-data", "quilt-example"],
        "permissions": ["s3:GetObject", "s3:ListBucket", "s3:PutObject"],
    })
}

/// `claims()` with `changes` merged in; a `null` in `changes` removes the key.
pub fn claims_with(changes: Value) -> Value {
    let mut base = claims();
    let obj = base.as_object_mut().unwrap();
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            obj.remove(k);
        } else {
            obj.insert(k.clone(), v.clone());
        }
    }
    base
}

/// `claims` signed with HS256 and [`SECRET`].
pub fn hs256(claims: &Value) -> String {
    sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET.as_bytes()),
        None,
        claims,
    )
}

/// `claims` signed with HS256 and `secret`: the one minting function for what may
/// fail without a panic (benches, examples).
pub fn mint_hs256(secret: &[u8], claims: &Value) -> Result<String, jsonwebtoken::errors::Error> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
}

/// `claims` signed with `alg` and `key`, with `kid` in the header.
pub fn sign(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

/// `claims` signed with RS256 and the private key file `private`.
pub fn rs256(private: &str, claims: &Value) -> String {
    sign(
        Algorithm::RS256,
        &EncodingKey::from_rsa_pem(&key_bytes(private)).unwrap(),
        None,
        claims,
    )
}

/// `claims` signed with ES256 and the private key file `private`.
pub fn es256(private: &str, kid: Option<&str>, claims: &Value) -> String {
    sign(
        Algorithm::ES256,
        &EncodingKey::from_ec_pem(&key_bytes(private)).unwrap(),
        kid,
        claims,
    )
}

/// `claims` signed with EdDSA and the private key file `private`.
pub fn eddsa(private: &str, claims: &Value) -> String {
    sign(
        Algorithm::EdDSA,
        &EncodingKey::from_ed_pem(&key_bytes(private)).unwrap(),
        None,
        claims,
    )
}

/// Unpadded base64url.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// An HMAC-signed token with an arbitrary header (for `crit`, odd `alg`s, …).
pub fn hs_with_header(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let message = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(secret),
        Algorithm::HS256,
    )
    .unwrap();
    format!("{message}.{sig}")
}

/// An unsigned token (`alg: none`).
pub fn alg_none(claims: &Value) -> String {
    format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes())
    )
}

/// Replaces the payload of a signed token, keeping its signature.
pub fn tamper(token: &str, claims: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!(
        "{}.{}.{}",
        parts[0],
        b64(claims.to_string().as_bytes()),
        parts[2]
    )
}

/// The signature segment of a token.
pub fn signature_of(token: &str) -> String {
    token.rsplit('.').next().unwrap().to_owned()
}
