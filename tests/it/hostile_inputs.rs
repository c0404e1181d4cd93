//! Every hostile input gets a bound and an answer, end to end over stdio
//! against the in-process S3: S3 name limits (docs/reference.md, Tools), round-tripping URIs, bounded
//! reads of what others wrote, and upstream text scrubbed (docs/reference.md, Logs).
use crate::common::fakes::FakeServer;
use crate::common::s3::{ACCESS_KEY, SECRET_KEY, TestS3};
use crate::common::*;
use rmcp::model::CallToolResult;
use serde_json::{Value, json};

fn token_with(extra: Value) -> String {
    let mut claims = claims_with(json!({
        "buckets": ["lab-data", "registry"],
        "permissions": ["s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket", "s3:PutObject"],
        "level": "write",
    }));
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    hs256(&claims)
}

fn token() -> String {
    token_with(json!({
        "aws_credentials": {"access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY},
    }))
}

async fn sample() -> TestS3 {
    let s3 = TestS3::start().await;
    s3.create_bucket("lab-data").await;
    s3.create_bucket("registry").await;
    s3.put("lab-data", "a.txt", b"hello", "text/plain", &[])
        .await;
    s3
}

/// Calls `tool`, which must fail as a tool: its error code and message.
async fn fails(server: &Server, tool: &str, args: Value) -> (String, String) {
    error_of(&server.call(tool, args).await.unwrap())
}

fn error_of(result: &CallToolResult) -> (String, String) {
    assert_eq!(result.is_error, Some(true), "{result:?}");
    let error = &result.structured_content.as_ref().unwrap()["error"];
    (
        error["code"].as_str().unwrap().to_owned(),
        error["message"].as_str().unwrap().to_owned(),
    )
}

/// Each of these panicked inside aws-sdk-s3
/// (`InvalidUri(TooLong)`) and was never answered, or (NUL) wrote a key that breaks
/// listings. Each is now `invalid_argument` naming the parameter, before S3, and the
/// server stays up.
#[tokio::test]
async fn overlong_and_nul_names_are_invalid_arguments_on_every_path() {
    let s3 = sample().await;
    let server = start_on(&s3, &token(), &[], ()).await;
    let long = "k".repeat(70_000);
    let just_over = "é".repeat(513); // 1026 bytes, 513 characters
    let uri = format!("s3://lab-data/{long}");
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "bucket_objects_list",
            json!({"bucket": "lab-data", "prefix": long}),
            "prefix",
        ),
        (
            "bucket_objects_list",
            json!({"bucket": "lab-data", "prefix": just_over}),
            "prefix",
        ),
        (
            "bucket_objects_list",
            json!({"bucket": "lab-data", "prefix": "a\u{0}b"}),
            "prefix",
        ),
        (
            "bucket_objects_list",
            json!({"bucket": "lab-data", "continuation_token": long}),
            "continuation_token",
        ),
        (
            "bucket_objects_list",
            json!({"bucket": "lab-data", "delimiter": long}),
            "delimiter",
        ),
        ("bucket_object_info", json!({"s3_uri": uri}), "s3_uri"),
        ("bucket_object_text", json!({"s3_uri": uri}), "s3_uri"),
        ("bucket_object_fetch", json!({"s3_uri": uri}), "s3_uri"),
        ("bucket_object_link", json!({"s3_uri": uri}), "s3_uri"),
        (
            "bucket_object_info",
            json!({"s3_uri": "s3://lab-data/a%00b"}),
            "s3_uri",
        ),
        (
            "bucket_objects_put",
            json!({"bucket": "lab-data", "items": [{"key": long, "text": "x"}]}),
            "items[0].key",
        ),
        (
            "bucket_objects_put",
            json!({"bucket": "lab-data", "items": [{"key": "nul\u{0}.txt", "text": "x"}]}),
            "items[0].key",
        ),
        (
            "package_list",
            json!({"registry": "registry", "prefix": long}),
            "prefix",
        ),
        (
            "package_browse",
            json!({"registry": "registry", "package_name": format!("ns/{long}")}),
            "package name",
        ),
        (
            "package_diff",
            json!({"registry": "registry", "package1_name": format!("ns/{long}")}),
            "package name",
        ),
        (
            "package_create",
            json!({"registry": "registry", "package_name": "ns/p", "s3_uris": [format!("{uri}/")]}),
            "s3_uris[0]",
        ),
        (
            "package_create",
            json!({"registry": "registry", "package_name": "ns/p",
                   "entries": [{"logical_key": long, "s3_uri": "s3://lab-data/a.txt"}]}),
            "logical key",
        ),
    ];
    for (tool, args, names) in cases {
        let before = s3.requests();
        let result =
            tokio::time::timeout(std::time::Duration::from_secs(20), server.call(tool, args))
                .await
                .unwrap_or_else(|_| panic!("{tool} ({names}) was never answered"))
                .unwrap();
        let (code, message) = error_of(&result);
        assert_eq!(code, "invalid_argument", "{tool} ({names}): {message}");
        assert!(message.contains(names), "{tool}: {message}");
        assert!(
            message.len() < 1000,
            "{tool} echoes the argument: {}",
            message.len()
        );
        assert_eq!(s3.requests(), before, "{tool} ({names}) reached S3");
    }
    // Still up, and the NUL key was never written.
    let listing = server
        .ok("bucket_objects_list", json!({"bucket": "lab-data"}))
        .await;
    assert_eq!(listing["objects"].as_array().unwrap().len(), 1);
    // Offsets that overflow.
    let (code, message) = fails(
        &server,
        "bucket_object_text",
        json!({"s3_uri": "s3://lab-data/a.txt", "offset": u64::MAX - 4, "max_bytes": 10}),
    )
    .await;
    assert_eq!(code, "invalid_argument", "{message}");
    server.stop().await;
}

/// Emitted `s3_uri`s were not percent-encoded (key
/// `pct%41.txt` came back naming `pctA.txt`, a key with `?` could not be read back),
/// and a key XML cannot carry broke the listing of its whole prefix.
#[tokio::test]
async fn every_listed_key_reads_back_by_its_emitted_uri() {
    let s3 = sample().await;
    let keys = [
        "rt/pct%41.txt",
        "rt/a?b.txt",
        "rt/h#x",
        "rt/ctl\u{1}.txt",
        "rt/ünïcødé €.txt",
        "rt/sp ace+plus.txt",
        "rt/amp&versionId=1.txt",
    ];
    for (i, key) in keys.iter().enumerate() {
        s3.put(
            "lab-data",
            key,
            format!("body {i}").as_bytes(),
            "text/plain",
            &[],
        )
        .await;
    }
    let server = start_on(&s3, &token(), &[], ()).await;
    let listing = server
        .ok(
            "bucket_objects_list",
            json!({"bucket": "lab-data", "prefix": "rt/"}),
        )
        .await;
    let objects = listing["objects"].as_array().unwrap();
    assert_eq!(objects.len(), keys.len(), "{listing}");
    for object in objects {
        let key = object["key"].as_str().unwrap();
        let i = keys
            .iter()
            .position(|k| *k == key)
            .unwrap_or_else(|| panic!("{key:?} listed"));
        let uri = object["s3_uri"].as_str().unwrap();
        let text = server
            .ok("bucket_object_text", json!({"s3_uri": uri}))
            .await;
        assert_eq!(text["key"], key, "{uri}");
        assert_eq!(text["text"], format!("body {i}"), "{uri}");
    }
    let encoded = objects
        .iter()
        .find(|o| o["key"] == "rt/pct%41.txt")
        .unwrap();
    assert_eq!(encoded["s3_uri"], "s3://lab-data/rt/pct%2541.txt");
    // Folders list too, decoded.
    let folders = server
        .ok(
            "bucket_objects_list",
            json!({"bucket": "lab-data", "delimiter": "/"}),
        )
        .await;
    assert_eq!(folders["common_prefixes"], json!(["rt/"]));
    // A package made from the prefix names every one of them.
    let created = server
        .ok(
            "package_create",
            json!({"registry": "registry", "package_name": "ns/odd", "s3_uris": ["s3://lab-data/rt/"]}),
        )
        .await;
    assert_eq!(created["entry_count"], keys.len());
    server.stop().await;
}

async fn create_package(server: &Server, name: &str) -> String {
    let created = server
        .ok(
            "package_create",
            json!({"registry": "registry", "package_name": name, "s3_uris": ["s3://lab-data/a.txt"]}),
        )
        .await;
    created["top_hash"].as_str().unwrap().to_owned()
}

/// A 96 MiB `latest` pointer was read whole, and one corrupt
/// pointer failed `package_list` for the whole registry. A pointer is read up to
/// 1 KiB; a corrupt one is that package's `error`.
#[tokio::test]
async fn a_huge_or_corrupt_pointer_affects_only_its_package() {
    let s3 = sample().await;
    let server = start_on(&s3, &token(), &[], ()).await;
    let good = create_package(&server, "ns/good").await;
    create_package(&server, "ns/huge").await;
    create_package(&server, "ns/junk").await;
    s3.seed_file(
        "registry",
        ".quilt/named_packages/ns/huge/latest",
        &vec![b'a'; 20 * 1024 * 1024],
    );
    s3.seed_file(
        "registry",
        ".quilt/named_packages/ns/junk/latest",
        b"not a hash",
    );
    let listing = server
        .ok(
            "package_list",
            json!({"registry": "registry", "include_details": true}),
        )
        .await;
    let packages = listing["packages"].as_array().unwrap();
    assert_eq!(packages.len(), 3, "{listing}");
    let by_name = |name: &str| packages.iter().find(|p| p["name"] == name).unwrap();
    assert_eq!(by_name("ns/good")["top_hash"], good.as_str());
    assert!(by_name("ns/good").get("error").is_none());
    for corrupt in ["ns/huge", "ns/junk"] {
        assert!(by_name(corrupt)["top_hash"].is_null(), "{corrupt}");
        assert!(by_name(corrupt)["error"].is_string(), "{corrupt}");
    }
    let (code, message) = fails(
        &server,
        "package_browse",
        json!({"registry": "registry", "package_name": "ns/huge"}),
    )
    .await;
    assert_eq!(code, "integrity_error");
    assert!(message.contains("not a package pointer"), "{message}");
    server.stop().await;
}

/// A manifest of one giant line was buffered whole. It is
/// refused once the line passes 16 MiB, as an integrity error.
#[tokio::test]
async fn a_manifest_with_a_giant_line_is_an_integrity_error() {
    let s3 = sample().await;
    let hash = "ab".repeat(32);
    let mut giant = br#"{"version": "v0", "message": ""#.to_vec();
    giant.resize(20 * 1024 * 1024, b'x');
    s3.seed_file("registry", &format!(".quilt/packages/{hash}"), &giant);
    s3.seed_file(
        "registry",
        ".quilt/named_packages/ns/giant/latest",
        hash.as_bytes(),
    );
    let server = start_on(&s3, &token(), &[], ()).await;
    let (code, message) = fails(
        &server,
        "package_browse",
        json!({"registry": "registry", "package_name": "ns/giant"}),
    )
    .await;
    assert_eq!(code, "integrity_error", "{message}");
    assert!(message.contains("limit"), "{message}");
    // Bytes that are not UTF-8 are corrupt data too, not a broken connection.
    let bad = "cd".repeat(32);
    s3.seed_file(
        "registry",
        &format!(".quilt/packages/{bad}"),
        b"{\"version\": \"v0\"}\n\xff\xfe\n",
    );
    s3.seed_file(
        "registry",
        ".quilt/named_packages/ns/bad/latest",
        bad.as_bytes(),
    );
    let (code, message) = fails(
        &server,
        "package_browse",
        json!({"registry": "registry", "package_name": "ns/bad"}),
    )
    .await;
    assert_eq!(code, "integrity_error", "{message}");
    assert!(message.contains("line 2"), "{message}");
    server.stop().await;
}

/// A 64 MiB registry credential answer was read whole. More
/// than 64 KiB is refused.
#[tokio::test]
async fn an_oversized_registry_answer_is_refused() {
    let s3 = sample().await;
    let padding = "x".repeat(256 * 1024);
    let answer =
        json!({"AccessKeyId": ACCESS_KEY, "SecretAccessKey": SECRET_KEY, "Padding": padding});
    let registry = FakeServer::registry(200, answer.to_string()).await;
    let server = start_on(
        &s3,
        &token_with(json!({})),
        &[("QUILT_REGISTRY_URL", &registry.url)],
        (),
    )
    .await;
    let (code, message) = fails(
        &server,
        "bucket_objects_list",
        json!({"bucket": "lab-data"}),
    )
    .await;
    assert_eq!(code, "upstream_error");
    assert!(message.contains("too large"), "{message}");
    server.stop().await;
}

/// An STS error message that echoes the web-identity token put
/// the whole JWT into the tool result, the log and stderr.
#[tokio::test]
async fn an_sts_message_echoing_the_token_is_scrubbed_everywhere() {
    let s3 = sample().await;
    let jwt = token_with(json!({"aws_role_arn": "arn:aws:iam::123456789012:role/Reader"}));
    let sts = FakeServer::sts_error(
        "InvalidIdentityToken",
        &format!("Couldn't verify the token {jwt} (key AKIAIOSFODNN7EXAMPLE)"),
    )
    .await;
    let server = start_on(&s3, &jwt, &[("AWS_ENDPOINT_URL_STS", &sts.url)], ()).await;
    let (code, message) = fails(
        &server,
        "bucket_objects_list",
        json!({"bucket": "lab-data"}),
    )
    .await;
    assert_eq!(code, "access_denied");
    assert!(
        message.contains("Couldn't verify the token [redacted]"),
        "{message}"
    );
    assert_eq!(sts.requests().len(), 1);
    let (stderr, log_dir) = server.stop().await;
    let signature = signature_of(&jwt);
    let everything = format!("{message}\n{stderr}\n{}", log_text(log_dir.path()));
    for secret in [jwt.as_str(), signature.as_str(), "AKIAIOSFODNN7EXAMPLE"] {
        assert!(!everything.contains(secret), "{secret} leaked");
    }
    assert!(stderr.contains("[redacted]"), "{stderr}");
}

/// A registry URL with `user:password@` was printed with its
/// password.
#[tokio::test]
async fn a_registry_url_is_never_shown_with_its_password() {
    let s3 = sample().await;
    let registry = FakeServer::registry(502, "down".into()).await;
    let answering = registry
        .url
        .replace("http://", "http://alice:hunter2-registry-pw@");
    // The unreachable one is printed through the HTTP client's error text.
    let unreachable = "http://alice:hunter2-registry-pw@127.0.0.1:9".to_owned();
    for url in [answering, unreachable] {
        let server = start_on(
            &s3,
            &token_with(json!({})),
            &[("QUILT_REGISTRY_URL", &url)],
            (),
        )
        .await;
        let (code, message) = fails(
            &server,
            "bucket_objects_list",
            json!({"bucket": "lab-data"}),
        )
        .await;
        assert_eq!(code, "upstream_error");
        assert!(
            message.contains("registry at http://127.0.0.1:"),
            "{message}"
        );
        let (stderr, log_dir) = server.stop().await;
        let everything = format!("{message}\n{stderr}\n{}", log_text(log_dir.path()));
        assert!(!everything.contains("hunter2"), "{everything}");
    }
}

/// A presigned link for `s3://lab-data/../registry/secret.txt`
/// was signed with the path `/lab-data/../registry/secret.txt`, which URL parsers
/// (browsers, httpx) resolve to `/registry/secret.txt`: another bucket's object from a
/// path-style endpoint. Keys with a `.` or `..` segment get no link (before any
/// request), and every link made keeps its key's path whatever a WHATWG parser does.
#[tokio::test]
async fn links_never_resolve_to_another_object() {
    let s3 = sample().await;
    s3.put("registry", "secret.txt", b"secret", "text/plain", &[])
        .await;
    let awkward = [
        "dots/.../x.txt",
        "dots/a..b/x.txt",
        "dots/%2e%2e/x.txt",
        "dots/back\\..\\slash.txt",
        "dots/.hidden",
    ];
    for key in awkward {
        s3.put("lab-data", key, key.as_bytes(), "text/plain", &[])
            .await;
    }
    let server = start_on(&s3, &token(), &[], ()).await;
    let before = s3.requests();
    for uri in [
        "s3://lab-data/../registry/secret.txt",
        "s3://lab-data/%2E%2E/registry/secret.txt",
        "s3://lab-data/a/../../registry/secret.txt",
        "s3://lab-data/./a.txt",
        "s3://lab-data/dir/..",
    ] {
        let (code, message) = fails(&server, "bucket_object_link", json!({"s3_uri": uri})).await;
        assert_eq!(code, "invalid_argument", "{uri}: {message}");
        assert!(message.contains("s3_uri"), "{uri}: {message}");
    }
    assert_eq!(s3.requests(), before, "a refused link reached S3");
    let listing = server
        .ok(
            "bucket_objects_list",
            json!({"bucket": "lab-data", "prefix": "dots/"}),
        )
        .await;
    let objects = listing["objects"].as_array().unwrap();
    assert_eq!(objects.len(), awkward.len(), "{listing}");
    for object in objects {
        let (key, uri) = (
            object["key"].as_str().unwrap(),
            object["s3_uri"].as_str().unwrap(),
        );
        let link = server
            .ok("bucket_object_link", json!({"s3_uri": uri}))
            .await;
        let url = link["url"].as_str().unwrap();
        // The path as a WHATWG parser (reqwest's `Url`) resolves it still names the key.
        let parsed = reqwest::Url::parse(url).unwrap();
        let path = percent_encoding::percent_decode_str(parsed.path())
            .decode_utf8()
            .unwrap()
            .into_owned();
        assert_eq!(path, format!("/lab-data/{key}"), "{url}");
        let body = reqwest::get(url).await.unwrap();
        assert_eq!(body.status(), 200, "{url}");
        assert_eq!(body.text().await.unwrap(), key, "{url}");
    }
    server.stop().await;
}
