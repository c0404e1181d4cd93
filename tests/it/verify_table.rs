//! Table-driven edge cases of token verification (docs/reference.md, Errors), straight against the library.
use crate::common::*;
use jsonwebtoken::{Algorithm, EncodingKey};
use quilt_mcp::Config;
use quilt_mcp::auth::verify::Verifier;
use quilt_mcp::auth::{Token, TokenSourceKind};
use serde_json::json;

fn verifier(vars: &[(&str, String)]) -> Verifier {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    Verifier::new(&Config::from_lookup(move |name| {
        vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }))
}

fn check(v: &Verifier, token: &str) -> Result<String, String> {
    let token = Token::new(token).unwrap();
    v.verify(&token, TokenSourceKind::Env, now())
        .map(|(ctx, _)| ctx.token_info.alg)
        .map_err(|f| f.reason.code().to_owned())
}

#[test]
fn algorithms_follow_the_configured_key() {
    let secret = verifier(&[("QUILT_MCP_JWT_SECRET", SECRET.to_owned())]);
    let rsa = verifier(&[(
        "QUILT_MCP_JWT_PUBLIC_KEY",
        key_path("rsa_public.pem").display().to_string(),
    )]);
    let p384 = verifier(&[(
        "QUILT_MCP_JWT_PUBLIC_KEY",
        key_path("ec384_public.pem").display().to_string(),
    )]);
    let hs = |alg| {
        sign(
            alg,
            &EncodingKey::from_secret(SECRET.as_bytes()),
            None,
            &claims(),
        )
    };
    let rs = |alg| {
        sign(
            alg,
            &EncodingKey::from_rsa_pem(&key_bytes("rsa_private.pem")).unwrap(),
            None,
            &claims(),
        )
    };
    let es384 = sign(
        Algorithm::ES384,
        &EncodingKey::from_ec_pem(&key_bytes("ec384_private.pem")).unwrap(),
        None,
        &claims(),
    );
    let cases: Vec<(&str, &Verifier, String, Result<&str, &str>)> = vec![
        ("HS256", &secret, hs(Algorithm::HS256), Ok("HS256")),
        ("HS384", &secret, hs(Algorithm::HS384), Ok("HS384")),
        ("HS512", &secret, hs(Algorithm::HS512), Ok("HS512")),
        ("RS512", &rsa, rs(Algorithm::RS512), Ok("RS512")),
        ("PS256", &rsa, rs(Algorithm::PS256), Ok("PS256")),
        ("ES384 on P-384", &p384, es384.clone(), Ok("ES384")),
        (
            "RS256 against a secret",
            &secret,
            rs(Algorithm::RS256),
            Err("unsupported_algorithm"),
        ),
        (
            "ES384 against RSA",
            &rsa,
            es384,
            Err("unsupported_algorithm"),
        ),
        (
            "HS256 against RSA",
            &rsa,
            hs(Algorithm::HS256),
            Err("unsupported_algorithm"),
        ),
        (
            "ES256 on P-384 key",
            &p384,
            es256("ec1_private.pem", None, &claims()),
            Err("unsupported_algorithm"),
        ),
        (
            "alg NONE in capitals",
            &secret,
            hs_with_header(&json!({"alg": "NONE"}), &claims(), SECRET.as_bytes()),
            Err("unsupported_algorithm"),
        ),
        (
            "alg missing",
            &secret,
            hs_with_header(&json!({"typ": "JWT"}), &claims(), SECRET.as_bytes()),
            Err("unsupported_algorithm"),
        ),
        (
            "alg unknown",
            &secret,
            hs_with_header(&json!({"alg": "HS1024"}), &claims(), SECRET.as_bytes()),
            Err("unsupported_algorithm"),
        ),
        (
            "jku and x5u are ignored",
            &secret,
            hs_with_header(
                &json!({"alg": "HS256", "jku": "https://127.0.0.1:9/keys", "x5u": "https://127.0.0.1:9/x"}),
                &claims(),
                SECRET.as_bytes(),
            ),
            Ok("HS256"),
        ),
        (
            "embedded jwk is ignored (signature still checked with the configured key)",
            &rsa,
            sign(
                Algorithm::RS256,
                &EncodingKey::from_rsa_pem(&key_bytes("rsa_other_private.pem")).unwrap(),
                None,
                &claims(),
            ),
            Err("invalid_signature"),
        ),
    ];
    for (name, v, token, expected) in cases {
        let got = check(v, &token);
        assert_eq!(got.as_deref().map_err(String::as_str), expected, "{name}");
    }
}

#[test]
fn claim_rules_with_leeway() {
    let v = verifier(&[
        ("QUILT_MCP_JWT_SECRET", SECRET.to_owned()),
        (
            "QUILT_MCP_JWT_ISSUER",
            "https://quilt.example.com".to_owned(),
        ),
    ]);
    let now = now();
    let cases: Vec<(&str, serde_json::Value, Result<(), &str>)> = vec![
        ("valid", json!({}), Ok(())),
        (
            "aud array containing ours",
            json!({"aud": ["other", AUDIENCE]}),
            Ok(()),
        ),
        (
            "aud array without ours",
            json!({"aud": ["other"]}),
            Err("wrong_audience"),
        ),
        (
            "aud array with a number",
            json!({"aud": [AUDIENCE, 5]}),
            Err("invalid_claims"),
        ),
        (
            "aud as an object",
            json!({"aud": {"a": 1}}),
            Err("invalid_claims"),
        ),
        (
            "exp as float",
            json!({"exp": (now + 100) as f64 + 0.5}),
            Ok(()),
        ),
        ("exp null", json!({"exp": null}), Err("missing_claim")),
        ("expired within leeway", json!({"exp": now - 20}), Ok(())),
        (
            "expired beyond leeway",
            json!({"exp": now - 40}),
            Err("expired"),
        ),
        ("nbf within leeway", json!({"nbf": now + 20}), Ok(())),
        (
            "nbf beyond leeway",
            json!({"nbf": now + 40}),
            Err("not_yet_valid"),
        ),
        (
            "nbf as string",
            json!({"nbf": "now"}),
            Err("invalid_claims"),
        ),
        ("iat within leeway", json!({"iat": now + 20}), Ok(())),
        (
            "iat beyond leeway",
            json!({"iat": now + 40}),
            Err("issued_in_future"),
        ),
        ("iss as number", json!({"iss": 7}), Err("invalid_claims")),
        ("sub as number", json!({"sub": 7}), Err("invalid_claims")),
        (
            "permissions as string",
            json!({"permissions": "s3:GetObject"}),
            Err("invalid_claims"),
        ),
        (
            "buckets as a number",
            json!({"buckets": 7}),
            Err("invalid_claims"),
        ),
        (
            "roles as object falls back to r",
            json!({"roles": {}}),
            Ok(()),
        ),
        (
            "level as number",
            json!({"level": 2}),
            Err("invalid_claims"),
        ),
        ("level false falls through", json!({"level": false}), Ok(())),
        (
            "aws_credentials as string",
            json!({"aws_credentials": "AKIA:secret"}),
            Err("invalid_claims"),
        ),
        (
            "expired check precedes audience",
            json!({"exp": now - 100, "aud": "x"}),
            Err("expired"),
        ),
        (
            "audience check precedes issuer",
            json!({"aud": "x", "iss": "y"}),
            Err("wrong_audience"),
        ),
    ];
    for (name, changes, expected) in cases {
        let token = hs256(&claims_with(changes));
        assert_eq!(
            check(&v, &token).map(|_| ()),
            expected.map_err(str::to_owned),
            "{name}"
        );
    }
}

#[test]
fn roles_that_are_not_an_array_fall_back_to_r() {
    let v = verifier(&[("QUILT_MCP_JWT_SECRET", SECRET.to_owned())]);
    let token = Token::new(&hs256(&claims_with(
        json!({"roles": "notalist", "r": ["R1", "R2"]}),
    )))
    .unwrap();
    let (ctx, _) = v.verify(&token, TokenSourceKind::Env, now()).unwrap();
    assert_eq!(ctx.claims.roles, ["R1", "R2"]);
}

#[test]
fn bucket_groups_that_are_not_arrays_are_skipped_one_by_one() {
    let v = verifier(&[("QUILT_MCP_JWT_SECRET", SECRET.to_owned())]);
    let b = json!({"_type": "groups", "_data": {"a": ["b", 7, "c"], "e": "notalist"}});
    let token = Token::new(&hs256(&claims_with(json!({"buckets": null, "b": b})))).unwrap();
    let (ctx, notes) = v.verify(&token, TokenSourceKind::Env, now()).unwrap();
    assert_eq!(ctx.claims.buckets, ["a-b", "a-c"]);
    assert!(
        notes.warnings.iter().any(|w| w.contains("\"e\"")),
        "{:?}",
        notes.warnings
    );
}

#[test]
fn sub_falls_back_to_id() {
    let v = verifier(&[("QUILT_MCP_JWT_SECRET", SECRET.to_owned())]);
    let token = Token::new(&hs256(&claims_with(json!({"sub": null, "id": "user-42"})))).unwrap();
    let (ctx, _) = v.verify(&token, TokenSourceKind::Env, now()).unwrap();
    assert_eq!(ctx.subject.as_deref(), Some("user-42"));
}
