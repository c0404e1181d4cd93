//! Property-based tests (proptest) over token parsing and claims decompression:
//! arbitrary input never panics, one `Bearer ` is stripped once, garbage never
//! verifies, and decompression agrees with a plain model of the claims (docs/reference.md, Errors), one bucket
//! group at a time.
use crate::common::*;
use base64::Engine as _;
use proptest::prelude::*;
use quilt_mcp::Config;
use quilt_mcp::auth::claims::{self, Decompressed};
use quilt_mcp::auth::token::normalize;
use quilt_mcp::auth::verify::Verifier;
use quilt_mcp::auth::{Token, TokenSourceKind};
use serde_json::{Map, Value, json};

/// Cases per property (proptest's default is 256).
const CASES: u32 = 1024;
/// Cases for the properties that sign a token each time.
const SIGNED_CASES: u32 = 256;

fn verifier() -> Verifier {
    Verifier::new(&Config::from_lookup(|name| {
        (name == "QUILT_MCP_JWT_SECRET").then(|| SECRET.to_owned())
    }))
}

/// Claim names that decompression and verification look at, and a few others.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "p", "permissions", "r", "roles", "b", "buckets", "s", "scope", "l", "level",
            "_type", "_data", "groups", "patterns", "compressed", "quilt",
        ])
        .prop_map(str::to_owned),
        1 => "[a-z-]{1,6}",
    ]
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[a-z*0-9-]{0,8}".prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..5)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

/// A `b` claim: often well-formed enough to reach every branch, sometimes anything.
fn b_claim() -> impl Strategy<Value = Value> {
    let names = prop::collection::vec(
        prop_oneof![3 => "[a-z0-9-]{1,8}".prop_map(Value::from), 1 => json_value()],
        0..4,
    );
    let group = prop_oneof![3 => names.clone().prop_map(Value::Array), 1 => json_value()];
    let map = prop::collection::vec((key(), group), 0..4)
        .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>()));
    let kind = prop::sample::select(vec!["groups", "patterns", "compressed", "zip", ""]);
    let compressed = prop_oneof![
        names.prop_map(|n| Value::from(b64_std(&Value::Array(n)))),
        json_value().prop_map(|v| Value::from(b64_std(&v))),
        ".{0,16}".prop_map(Value::from),
    ];
    let data = prop_oneof![map, compressed, json_value()];
    prop_oneof![
        3 => (kind, data).prop_map(|(t, d)| json!({"_type": t, "_data": d})),
        1 => json_value(),
    ]
}

/// A payload made of the claims decompression reads, each of any shape.
fn payload() -> impl Strategy<Value = Map<String, Value>> {
    let claim = |name: &'static str| prop::option::of(json_value()).prop_map(move |v| (name, v));
    (
        (claim("permissions"), claim("p"), claim("roles"), claim("r")),
        (
            claim("buckets"),
            prop::option::of(b_claim()).prop_map(|v| ("b", v)),
        ),
        (claim("s"), claim("scope"), claim("l"), claim("level")),
    )
        .prop_map(|((a, b, c, d), (e, f), (g, h, i, j))| {
            [a, b, c, d, e, f, g, h, i, j]
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
                .collect()
        })
}

fn b64_std(value: &Value) -> String {
    base64::engine::general_purpose::STANDARD.encode(value.to_string())
}

fn strings(value: Option<&Value>) -> Option<Vec<String>> {
    value?.as_array().map(|items| {
        items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    })
}

fn truthy(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    }
}

/// The claims decompression (docs/reference.md, Errors), written out plainly: the model the implementation must agree with.
fn model(payload: &Map<String, Value>) -> (Vec<String>, Vec<String>, Vec<String>, String, String) {
    let permissions = strings(payload.get("permissions"))
        .or_else(|| {
            strings(payload.get("p"))
                .map(|p| p.iter().map(|a| claims::expand_permission(a)).collect())
        })
        .unwrap_or_default();
    let roles = strings(payload.get("roles"))
        .or_else(|| strings(payload.get("r")))
        .unwrap_or_default();
    let buckets = strings(payload.get("buckets")).unwrap_or_else(|| match payload.get("b") {
        Some(Value::Array(_)) => strings(payload.get("b")).unwrap_or_default(),
        Some(Value::Object(b)) => {
            let data = b.get("_data");
            match (b.get("_type").and_then(Value::as_str), data) {
                (Some(kind @ ("groups" | "patterns")), Some(Value::Object(map))) => map
                    .iter()
                    .filter_map(|(k, names)| Some((k, strings(Some(names))?)))
                    .flat_map(|(k, names)| {
                        names.into_iter().map(move |n| match (kind, k.as_str()) {
                            ("groups", _) => format!("{k}-{n}"),
                            (_, "quilt") => format!("quilt-{n}"),
                            _ => n,
                        })
                    })
                    .collect(),
                (Some("compressed"), Some(Value::String(text))) => {
                    base64::engine::general_purpose::STANDARD
                        .decode(text.trim())
                        .ok()
                        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
                        .and_then(|v| strings(Some(&v)))
                        .unwrap_or_default()
                }
                _ => Vec::new(),
            }
        }
        _ => Vec::new(),
    });
    let first = |keys: [&str; 2]| {
        keys.iter()
            .map(|k| payload.get(*k))
            .find(|v| truthy(*v))
            .flatten()
            .and_then(|v| v.as_str().map(str::to_owned))
    };
    let scope = first(["s", "scope"]).unwrap_or_default();
    let level = first(["l", "level"]).unwrap_or_else(|| "read".to_owned());
    (permissions, roles, buckets, scope, level)
}

fn signed(payload: &Map<String, Value>) -> String {
    let mut all = claims().as_object().unwrap().clone();
    for name in ["permissions", "roles", "buckets", "scope", "level"] {
        all.remove(name);
    }
    all.extend(payload.clone());
    hs256(&Value::Object(all))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// `normalize` strips surrounding whitespace and at most one `Bearer `: a token
    /// behind two of them keeps the second.
    #[test]
    fn one_bearer_is_stripped_once(
        token in "[A-Za-z0-9._~+/=-]{1,40}",
        scheme in prop::sample::select(vec!["Bearer", "bearer", "BEARER", "bEaReR"]),
        gap in " {1,3}",
        pad in "[ \t\n]{0,3}",
    ) {
        let once = format!("{pad}{scheme}{gap}{token}{pad}");
        prop_assert_eq!(normalize(&once), Some(token.as_str()));
        let twice = format!("{scheme}{gap}{scheme} {token}");
        let kept = format!("{scheme} {token}");
        prop_assert_eq!(normalize(&twice), Some(kept.as_str()));
        let wrapped = Token::new(&twice).unwrap();
        prop_assert_eq!(wrapped.expose(), kept.as_str());
        // HTTP strips the scheme only, once.
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(axum::http::header::AUTHORIZATION, twice.parse().unwrap());
        let from_header = quilt_mcp::http::bearer_token(&headers).unwrap();
        prop_assert_eq!(from_header.expose(), kept.as_str());
    }

    /// Whatever the string, normalizing never panics, never leaves surrounding
    /// whitespace and never yields an empty token.
    #[test]
    fn normalize_takes_any_string(raw in ".{0,64}") {
        if let Some(t) = normalize(&raw) {
            prop_assert!(!t.is_empty());
            prop_assert_eq!(t, t.trim());
            prop_assert!(raw.contains(t));
        }
        let _ = quilt_mcp::auth::Token::stripped(&raw);
    }

    /// Arbitrary text, and arbitrary unsigned three-segment tokens, never verify and
    /// never panic; the reason is one of the first steps'.
    #[test]
    fn garbage_never_verifies(
        raw in ".{1,200}",
        header in json_value(),
        payload in json_value(),
        signature in "[A-Za-z0-9_-]{0,64}",
    ) {
        let v = verifier();
        let shaped = format!(
            "{}.{}.{signature}",
            b64(header.to_string().as_bytes()),
            b64(payload.to_string().as_bytes())
        );
        for text in [raw, shaped] {
            let Some(token) = Token::new(&text) else { continue };
            let failure = v.verify(&token, TokenSourceKind::Http, now()).unwrap_err();
            prop_assert!(
                [
                    "malformed_token",
                    "token_too_large",
                    "unsupported_algorithm",
                    "critical_header",
                    "invalid_signature",
                ]
                .contains(&failure.reason.code()),
                "{}",
                failure.reason.code()
            );
        }
    }

    /// Decompression never panics and agrees with the model (docs/reference.md, Errors).
    #[test]
    fn decompression_follows_the_model(payload in payload()) {
        let Decompressed { claims, .. } = claims::decompress(&payload);
        let (permissions, roles, buckets, scope, level) = model(&payload);
        prop_assert_eq!(claims.permissions, permissions);
        prop_assert_eq!(claims.roles, roles);
        prop_assert_eq!(claims.buckets, buckets);
        prop_assert_eq!(claims.scope, scope);
        // A level other than read, write or admin fails closed: read.
        prop_assert_eq!(
            claims.level.as_str(),
            quilt_mcp::auth::claims::Level::parse(&level).map_or("read", |l| l.as_str())
        );
    }

    /// Bucket groups and patterns count one by one: the buckets of a map are the
    /// buckets of each of its entries alone, in order, whatever the other entries hold.
    #[test]
    fn bucket_groups_count_one_by_one(
        kind in prop::sample::select(vec!["groups", "patterns"]),
        entries in prop::collection::vec((key(), json_value()), 0..6),
    ) {
        let map: Map<String, Value> = entries.into_iter().collect();
        let buckets = |data: Map<String, Value>| {
            let payload = json!({"b": {"_type": kind, "_data": data}});
            claims::decompress(payload.as_object().unwrap()).claims.buckets
        };
        let one_by_one: Vec<String> = map
            .iter()
            .flat_map(|(k, v)| buckets(Map::from_iter([(k.clone(), v.clone())])))
            .collect();
        prop_assert_eq!(buckets(map), one_by_one);
    }

    /// `compressed` buckets round-trip.
    #[test]
    fn compressed_buckets_round_trip(names in prop::collection::vec(".{0,12}", 0..8)) {
        let payload = json!({"b": {"_type": "compressed", "_data": b64_std(&json!(names))}});
        prop_assert_eq!(claims::decompress(payload.as_object().unwrap()).claims.buckets, names);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(SIGNED_CASES))]

    /// A signed token whose Quilt claims are of any shape: verification never panics,
    /// refuses only `permissions` or `buckets` that are not arrays or a truthy scope
    /// or level that is not a string (`invalid_claims`), and otherwise yields exactly
    /// the decompressed claims. `roles` of any type never fails.
    #[test]
    fn signed_claims_of_any_shape(payload in payload()) {
        let token = Token::new(&signed(&payload)).unwrap();
        let result = verifier().verify(&token, TokenSourceKind::Env, now());
        let not_array = |k: &str| payload.get(k).is_some_and(|v| !v.is_null() && !v.is_array());
        let not_string = |k: &str| truthy(payload.get(k)) && !payload[k].is_string();
        let refused = not_array("permissions")
            || not_array("buckets")
            || ["s", "scope", "l", "level"].iter().any(|k| not_string(k));
        match result {
            Ok((ctx, _)) => {
                prop_assert!(!refused, "accepted {payload:?}");
                prop_assert_eq!(ctx.claims, claims::decompress(&payload).claims);
            }
            Err(failure) => {
                prop_assert!(refused, "refused {payload:?}: {}", failure.reason.code());
                prop_assert_eq!(failure.reason.code(), "invalid_claims");
            }
        }
    }
}
