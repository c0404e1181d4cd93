//! The keyring token source, against keyring-core's mock store: read from the entry,
//! the environment wins, and a new token in the entry is picked up once the old one
//! has expired.
use std::sync::Once;

use crate::common::*;
use quilt_mcp::auth::TokenSourceKind;
use quilt_mcp::auth::source::TokenProvider;
use quilt_mcp::{Config, QuiltServer};
use serde_json::json;

fn use_mock_store() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| keyring_core::set_default_store(keyring_core::mock::Store::new().unwrap()));
}

fn config(service: &str, token: Option<&str>) -> Config {
    let service = service.to_owned();
    let token = token.map(str::to_owned);
    Config::from_lookup(move |name| match name {
        "QUILT_MCP_KEYRING_SERVICE" => Some(service.clone()),
        "QUILT_MCP_KEYRING_USER" => Some("tester".to_owned()),
        "QUILT_MCP_TOKEN" => token.clone(),
        "QUILT_MCP_JWT_SECRET" => Some(SECRET.to_owned()),
        "QUILT_MCP_LOG_DIR" => Some("/nonexistent".to_owned()),
        _ => None,
    })
}

fn store(service: &str, token: &str) {
    keyring_core::Entry::new(service, "tester")
        .unwrap()
        .set_password(token)
        .unwrap();
}

#[tokio::test]
async fn token_is_read_from_the_entry() {
    use_mock_store();
    let token = hs256(&claims());
    store("svc-read", &token);
    let provider = TokenProvider::new(&config("svc-read", None));
    let (found, kind) = provider.current(now()).await.unwrap();
    assert_eq!(
        (found.expose(), kind),
        (token.as_str(), TokenSourceKind::Keyring)
    );

    // Through the whole server: the entry's token authorizes calls.
    let server = QuiltServer::new(config("svc-read", None));
    let ctx = server.authenticate().await.unwrap();
    assert_eq!(ctx.subject.as_deref(), Some("alice"));
    assert_eq!(ctx.token_info.source, TokenSourceKind::Keyring);
}

#[tokio::test]
async fn an_empty_entry_is_a_missing_token() {
    use_mock_store();
    let provider = TokenProvider::new(&config("svc-empty", None));
    let failure = provider.current(now()).await.unwrap_err();
    assert_eq!(failure.reason.code(), "missing_token");
    // The hint is the one sentence: which entry, of which store, and what to do.
    assert!(
        failure.hint.starts_with(
            "the keyring (custom) entry svc-empty/tester is empty: run `quilt-mcp login`"
        ),
        "{}",
        failure.hint
    );
}

#[tokio::test]
async fn the_environment_wins_over_the_entry() {
    use_mock_store();
    let from_env = hs256(&claims_with(json!({"sub": "env-user"})));
    store(
        "svc-env",
        &hs256(&claims_with(json!({"sub": "keyring-user"}))),
    );
    let server = QuiltServer::new(config("svc-env", Some(&format!("Bearer {from_env}"))));
    let ctx = server.authenticate().await.unwrap();
    assert_eq!(ctx.subject.as_deref(), Some("env-user"));
    assert_eq!(ctx.token_info.source, TokenSourceKind::Env);
}

#[tokio::test]
async fn a_new_token_is_picked_up_after_the_old_one_expires() {
    use_mock_store();
    let now = now();
    let old = hs256(&claims_with(json!({"sub": "old", "exp": now + 60})));
    let new = hs256(&claims_with(json!({"sub": "new", "exp": now + 3600})));
    store("svc-rotate", &old);
    let provider = TokenProvider::new(&config("svc-rotate", None));
    assert_eq!(provider.current(now).await.unwrap().0.expose(), old);

    // `quilt-mcp login` writes a fresh token while the old one is still valid: the
    // old one keeps being used (no store read per call)…
    store("svc-rotate", &new);
    assert_eq!(provider.current(now + 30).await.unwrap().0.expose(), old);
    // …until it expires; then the entry is read again.
    assert_eq!(provider.current(now + 61).await.unwrap().0.expose(), new);
    assert_eq!(provider.current(now + 120).await.unwrap().0.expose(), new);
}

#[tokio::test]
async fn login_stores_only_a_verifying_token_and_logout_deletes_it() {
    use quilt_mcp::setup::{LoginError, login, logout};
    use_mock_store();
    let config = config("svc-login", None);
    let now = now();

    let refused = login(
        &config,
        &hs256(&claims_with(json!({"exp": now - 3600, "iat": now - 7200}))),
        now,
    )
    .unwrap_err();
    assert!(
        matches!(&refused, LoginError::Refused(f) if f.reason.code() == "expired"),
        "{refused}"
    );
    assert!(
        TokenProvider::new(&config).current(now).await.is_err(),
        "a refused token was stored"
    );
    assert!(matches!(login(&config, "  ", now), Err(LoginError::Empty)));

    let token = hs256(&claims_with(json!({"sub": "carol"})));
    let stored = login(&config, &format!("Bearer {token}\n"), now).unwrap();
    assert_eq!(stored.subject.as_deref(), Some("carol"));
    assert!(stored.signature_checked);
    let (stored, kind) = TokenProvider::new(&config).current(now).await.unwrap();
    assert_eq!(
        (stored.expose(), kind),
        (token.as_str(), TokenSourceKind::Keyring)
    );

    assert!(logout(&config).unwrap());
    assert!(!logout(&config).unwrap());
    assert!(TokenProvider::new(&config).current(now).await.is_err());

    // A key configured but unusable is a setup error: nothing is stored.
    let conflicting = Config::from_lookup(|name| match name {
        "QUILT_MCP_KEYRING_SERVICE" => Some("svc-login".to_owned()),
        "QUILT_MCP_KEYRING_USER" => Some("tester".to_owned()),
        "QUILT_MCP_JWT_SECRET" => Some(SECRET.to_owned()),
        "QUILT_MCP_JWKS" => Some("/k.json".to_owned()),
        _ => None,
    });
    assert!(matches!(
        login(&conflicting, &token, now),
        Err(LoginError::Setup(_))
    ));
    assert!(TokenProvider::new(&config).current(now).await.is_err());

    // No key at all (a terminal; the key lives in the host's settings): every check
    // but the signature, then stored, saying the signature was not checked.
    for key in [None, Some("<the catalog's JWT signing secret>")] {
        let unconfigured = Config::from_lookup(|name| match name {
            "QUILT_MCP_KEYRING_SERVICE" => Some("svc-login".to_owned()),
            "QUILT_MCP_KEYRING_USER" => Some("tester".to_owned()),
            "QUILT_MCP_JWT_SECRET" => key.map(str::to_owned),
            _ => None,
        });
        let expired = hs256(&claims_with(json!({"exp": now - 3600, "iat": now - 7200})));
        assert!(matches!(
            login(&unconfigured, &expired, now),
            Err(LoginError::Refused(f)) if f.reason.code() == "expired"
        ));
        let wrong_audience = hs256(&claims_with(json!({"aud": "someone-else"})));
        assert!(matches!(
            login(&unconfigured, &wrong_audience, now),
            Err(LoginError::Refused(f)) if f.reason.code() == "wrong_audience"
        ));
        assert!(matches!(
            login(&unconfigured, "not.a.jwt", now),
            Err(LoginError::Refused(f)) if f.reason.code() == "malformed_token"
        ));
        assert!(TokenProvider::new(&config).current(now).await.is_err());
        let stored = login(&unconfigured, &token, now).unwrap();
        assert!(!stored.signature_checked, "{key:?}");
        assert_eq!(stored.subject.as_deref(), Some("carol"));
        assert_eq!(
            TokenProvider::new(&config)
                .current(now)
                .await
                .unwrap()
                .0
                .expose(),
            token
        );
        assert!(logout(&config).unwrap());
    }
}
