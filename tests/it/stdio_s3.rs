//! End to end over stdio against the in-process S3: AWS credentials from the token
//! alone (docs/reference.md, Settings) and the bucket tools (docs/reference.md, Tools), with loopback STS and registry
//! servers that record what they receive.
use std::time::Duration;

use crate::common::fakes::FakeServer;
use crate::common::s3::{ACCESS_KEY, SECRET_KEY, TestS3};
use crate::common::*;
use base64::Engine as _;
use serde_json::{Value, json};

const ROLE: &str = "arn:aws:iam::123456789012:role/QuiltReader";

/// A token for alice on `lab-data` and `other-data` with the given extra claims.
fn token(extra: Value) -> String {
    let mut claims = claims_with(json!({
        "buckets": ["lab-data", "other-data"],
        "permissions": ["s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket", "s3:PutObject"],
        "level": "write",
    }));
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    hs256(&claims)
}

fn inline() -> Value {
    json!({"aws_credentials": {"access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY, "region": "us-east-1"}})
}

async fn start(s3: &TestS3, token: &str, extra: &[(&str, &str)]) -> Server {
    start_on(s3, token, extra, ()).await
}

async fn sample_s3() -> TestS3 {
    let s3 = TestS3::start().await;
    s3.create_bucket("lab-data").await;
    s3.create_bucket("secret-data").await;
    s3.put(
        "lab-data",
        "runs/readme.md",
        "# Runs\nhéllo wörld €\n".as_bytes(),
        "text/markdown",
        &[("owner", "alice"), ("project", "x1")],
    )
    .await;
    s3.put(
        "lab-data",
        "runs/2026/a.csv",
        b"id,value\n1,2\n",
        "text/csv",
        &[],
    )
    .await;
    s3
}

fn tool_error(result: &rmcp::model::CallToolResult) -> (String, bool) {
    assert_eq!(result.is_error, Some(true), "{result:?}");
    let error = &result.structured_content.as_ref().unwrap()["error"];
    (
        error["code"].as_str().unwrap().to_owned(),
        error["retryable"].as_bool().unwrap(),
    )
}

#[tokio::test]
async fn inline_credentials_work_and_expired_ones_are_refused() {
    let s3 = sample_s3().await;
    let server = start(&s3, &token(inline()), &[]).await;
    let listing = server
        .ok("bucket_objects_list", json!({"bucket": "lab-data"}))
        .await;
    assert_eq!(listing["objects"].as_array().unwrap().len(), 2);
    let status = server.ok("auth_status", json!({})).await;
    assert_eq!(status["aws"]["source"], "inline");
    server.stop().await;

    let expired = json!({"aws_credentials": {"access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY, "expiration": "2020-01-01T00:00:00Z"}});
    let before = s3.requests();
    let server = start(&s3, &token(expired), &[]).await;
    let err = server
        .call("bucket_objects_list", json!({"bucket": "lab-data"}))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code.0, reason(&err).as_str()),
        (-32001, "aws_credentials_expired")
    );
    server.stop().await;
    assert_eq!(s3.requests(), before);
}

#[tokio::test]
async fn web_identity_exchanges_the_exact_jwt_unsigned_and_only_once() {
    let s3 = sample_s3().await;
    let sts = FakeServer::sts(
        ACCESS_KEY,
        SECRET_KEY,
        "FwoGZXIvYXdzSTSsessiontoken",
        "2099-01-01T00:00:00Z",
        Duration::from_millis(300),
    )
    .await;
    let jwt = token(json!({"aws_role_arn": ROLE, "sub": "alice@example.com"}));
    let server = start(&s3, &jwt, &[("AWS_ENDPOINT_URL_STS", &sts.url)]).await;

    // 20 concurrent first calls share one STS request.
    let calls = (0..20).map(|_| {
        server.call(
            "bucket_objects_list",
            json!({"bucket": "lab-data", "max_keys": 5}),
        )
    });
    for result in futures::future::join_all(calls).await {
        let result = result.unwrap();
        assert_ne!(result.is_error, Some(true), "{result:?}");
    }
    assert_eq!(sts.requests().len(), 1);
    // Later calls reuse the credentials.
    for _ in 0..5 {
        server
            .ok(
                "bucket_object_info",
                json!({"s3_uri": "s3://lab-data/runs/readme.md"}),
            )
            .await;
    }
    let requests = sts.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    let form = request.form();
    assert_eq!(request.method, "POST");
    assert_eq!(form["Action"], "AssumeRoleWithWebIdentity");
    assert_eq!(form["RoleArn"], ROLE);
    assert_eq!(form["WebIdentityToken"], jwt);
    assert_eq!(form["RoleSessionName"], "alice@example.com");
    let duration: i64 = form["DurationSeconds"].parse().unwrap();
    assert!((900..=3600).contains(&duration), "{duration}");
    assert!(
        !request.headers.contains_key("authorization"),
        "STS request was signed: {:?}",
        request.headers
    );

    let status = server.ok("auth_status", json!({})).await;
    assert_eq!(status["aws"]["source"], "web_identity");
    assert_eq!(status["aws"]["role_arn"], ROLE);
    let (stderr, log_dir) = server.stop().await;

    // The exchange is logged, without the credentials it returned.
    let lines = log_lines(log_dir.path());
    let exchanges: Vec<_> = lines
        .iter()
        .filter(|l| l["event"] == "aws_credentials")
        .collect();
    assert_eq!(exchanges.len(), 1);
    assert_eq!(
        (
            exchanges[0]["source"].as_str(),
            exchanges[0]["status"].as_str()
        ),
        (Some("web_identity"), Some("ok"))
    );
    assert!(
        exchanges[0]["expires_at"]
            .as_str()
            .unwrap()
            .starts_with("2099-")
    );
    let everything = format!("{}{stderr}", log_text(log_dir.path()));
    for secret in [SECRET_KEY, "FwoGZXIvYXdzSTSsessiontoken", jwt.as_str()] {
        assert!(!everything.contains(secret), "a secret reached the logs");
    }
}

#[tokio::test]
async fn presigned_links_never_outlive_the_credentials() {
    let s3 = sample_s3().await;
    let expiration = time_in(900);
    let sts = FakeServer::sts(
        ACCESS_KEY,
        SECRET_KEY,
        "session",
        &expiration,
        Duration::ZERO,
    )
    .await;
    let server = start(
        &s3,
        &token(json!({"aws_role_arn": ROLE})),
        &[("AWS_ENDPOINT_URL_STS", &sts.url)],
    )
    .await;
    let link = server
        .ok(
            "bucket_object_link",
            json!({"s3_uri": "s3://lab-data/runs/readme.md", "expiration": 3600}),
        )
        .await;
    let expires_in = link["expires_in"].as_u64().unwrap();
    assert!((850..=900).contains(&expires_in), "{link}");
    assert_eq!(link["capped_by_credentials"], true);
    assert_eq!(link["requested_expires_in"], 3600);
    let response = reqwest::get(link["url"].as_str().unwrap()).await.unwrap();
    assert_eq!(response.status(), 200);
    server.stop().await;
}

/// RFC 3339 time `secs` from now.
fn time_in(secs: i64) -> String {
    chrono::DateTime::from_timestamp(now() + secs, 0)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[tokio::test]
async fn a_role_arn_among_the_roles_is_used_for_web_identity() {
    let s3 = sample_s3().await;
    let sts = FakeServer::sts(
        ACCESS_KEY,
        SECRET_KEY,
        "session",
        "2099-01-01T00:00:00Z",
        Duration::ZERO,
    )
    .await;
    let jwt = token(json!({"roles": ["ReadQuiltBucket", ROLE]}));
    let server = start(
        &s3,
        &jwt,
        &[
            ("AWS_ENDPOINT_URL", &sts.url),
            ("AWS_ENDPOINT_URL_S3", &s3.endpoint),
        ],
    )
    .await;
    server
        .ok("bucket_objects_list", json!({"bucket": "lab-data"}))
        .await;
    assert_eq!(sts.requests()[0].form()["RoleArn"], ROLE);
    server.stop().await;
}

#[tokio::test]
async fn registry_exchange_carries_the_bearer_and_401_is_registry_rejected() {
    let s3 = sample_s3().await;
    let answer = json!({"AccessKeyId": ACCESS_KEY, "SecretAccessKey": SECRET_KEY, "SessionToken": "registry-session", "Expiration": "2099-01-01T00:00:00Z"});
    let registry = FakeServer::registry(200, answer.to_string()).await;
    let jwt = token(json!({}));
    let server = start(
        &s3,
        &jwt,
        &[("QUILT_REGISTRY_URL", &format!("{}/", registry.url))],
    )
    .await;
    server
        .ok("bucket_objects_list", json!({"bucket": "lab-data"}))
        .await;
    let requests = registry.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        (requests[0].method.as_str(), requests[0].path.as_str()),
        ("GET", "/api/auth/get_credentials")
    );
    assert_eq!(
        requests[0].headers["authorization"],
        format!("Bearer {jwt}")
    );
    server.stop().await;

    let rejecting = FakeServer::registry(401, r#"{"message": "bad token"}"#.into()).await;
    let before = s3.requests();
    let server = start(&s3, &jwt, &[("QUILT_REGISTRY_URL", &rejecting.url)]).await;
    let err = server
        .call("bucket_objects_list", json!({"bucket": "lab-data"}))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code.0, reason(&err).as_str()),
        (-32001, "registry_rejected")
    );

    // A registry that fails otherwise is a retryable tool error, not an auth error.
    let broken = FakeServer::registry(502, "upstream down".into()).await;
    let server2 = start(&s3, &jwt, &[("QUILT_REGISTRY_URL", &broken.url)]).await;
    let result = server2
        .call("bucket_objects_list", json!({"bucket": "lab-data"}))
        .await
        .unwrap();
    assert_eq!(tool_error(&result), ("upstream_error".to_owned(), true));
    server.stop().await;
    server2.stop().await;
    assert_eq!(s3.requests(), before);
}

#[tokio::test]
async fn ambient_credentials_are_never_used() {
    let s3 = sample_s3().await;
    let before = s3.requests();
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join(".aws")).unwrap();
    std::fs::write(
        home.path().join(".aws/credentials"),
        format!(
            "[default]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
        ),
    )
    .unwrap();
    let home_path = home.path().display().to_string();
    let server = start(
        &s3,
        &token(json!({})),
        &[
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
            ("AWS_PROFILE", "default"),
            ("HOME", &home_path),
        ],
    )
    .await;
    for (tool, args) in [
        ("bucket_objects_list", json!({"bucket": "lab-data"})),
        (
            "bucket_object_text",
            json!({"s3_uri": "s3://lab-data/runs/readme.md"}),
        ),
    ] {
        let err = server.call(tool, args).await.unwrap_err();
        assert_eq!(
            (err.code.0, reason(&err).as_str()),
            (-32001, "no_aws_credentials"),
            "{tool}"
        );
    }
    server.stop().await;
    assert_eq!(s3.requests(), before, "the S3 server received a request");
}

#[tokio::test]
async fn listing_pages_prefixes_and_delimiters() {
    let s3 = sample_s3().await;
    for i in 0..1500 {
        s3.seed_file(
            "lab-data",
            &format!("bulk/{:02}/obj-{i:05}.txt", i % 15),
            format!("{i}").as_bytes(),
        );
    }
    let server = start(&s3, &token(inline()), &[]).await;
    let mut keys = Vec::new();
    let mut pages = 0;
    let mut continuation: Option<String> = None;
    loop {
        let mut args = json!({"bucket": "s3://lab-data", "prefix": "bulk/", "max_keys": 1000});
        if let Some(t) = &continuation {
            args["continuation_token"] = json!(t);
        }
        let page = server.ok("bucket_objects_list", args).await;
        pages += 1;
        for o in page["objects"].as_array().unwrap() {
            keys.push(o["key"].as_str().unwrap().to_owned());
            assert!(o["size"].as_i64().unwrap() > 0);
            assert!(o["last_modified"].as_str().unwrap().ends_with('Z'));
        }
        if page["is_truncated"] == true {
            continuation = Some(page["next_continuation_token"].as_str().unwrap().to_owned());
        } else {
            assert!(page["next_continuation_token"].is_null());
            break;
        }
    }
    assert_eq!(pages, 2);
    assert_eq!(keys.len(), 1500);
    let mut unique = keys.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 1500);

    let default_page = server
        .ok(
            "bucket_objects_list",
            json!({"bucket": "lab-data", "prefix": "bulk/"}),
        )
        .await;
    assert_eq!(default_page["objects"].as_array().unwrap().len(), 100);
    assert_eq!(default_page["is_truncated"], true);

    let folders = server
        .ok(
            "bucket_objects_list",
            json!({"bucket": "lab-data", "delimiter": "/"}),
        )
        .await;
    assert_eq!(folders["common_prefixes"], json!(["bulk/", "runs/"]));
    assert_eq!(folders["objects"], json!([]));
    let runs = server
        .ok(
            "bucket_objects_list",
            json!({"bucket": "lab-data", "prefix": "runs/", "delimiter": "/"}),
        )
        .await;
    assert_eq!(runs["common_prefixes"], json!(["runs/2026/"]));
    assert_eq!(runs["objects"][0]["key"], "runs/readme.md");
    // (s3s-fs lists no ETags; bucket_object_info shows them.)
    assert_eq!(runs["objects"][0]["size"], "# Runs\nhéllo wörld €\n".len());

    let result = server
        .call(
            "bucket_objects_list",
            json!({"bucket": "lab-data", "max_keys": 5000}),
        )
        .await
        .unwrap();
    assert_eq!(tool_error(&result).0, "invalid_argument");
    server.stop().await;
}

#[tokio::test]
async fn info_text_fetch_link_and_put() {
    let s3 = sample_s3().await;
    let binary: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    s3.put(
        "lab-data",
        "images/blob.bin",
        &binary,
        "application/octet-stream",
        &[],
    )
    .await;
    s3.put(
        "lab-data",
        "dir/my file?.txt",
        b"spaces and a question mark",
        "text/plain",
        &[],
    )
    .await;
    let server = start(&s3, &token(inline()), &[]).await;

    let info = server
        .ok(
            "bucket_object_info",
            json!({"s3_uri": "s3://lab-data/runs/readme.md"}),
        )
        .await;
    assert_eq!(info["size"], "# Runs\nhéllo wörld €\n".len());
    assert_eq!(info["content_type"], "text/markdown");
    assert_eq!(info["metadata"], json!({"owner": "alice", "project": "x1"}));
    assert!(info["etag"].is_string() && info["last_modified"].is_string());

    let whole = server
        .ok(
            "bucket_object_text",
            json!({"s3_uri": "s3://lab-data/runs/readme.md"}),
        )
        .await;
    assert_eq!(whole["text"], "# Runs\nhéllo wörld €\n");
    assert_eq!(
        (whole["truncated"].as_bool(), whole["encoding"].as_str()),
        (Some(false), Some("utf-8"))
    );

    // "# Runs\nh" is 8 bytes; "é" takes bytes 8..10: a 9-byte window cuts it.
    let cut = server
        .ok(
            "bucket_object_text",
            json!({"s3_uri": "s3://lab-data/runs/readme.md", "max_bytes": 9}),
        )
        .await;
    assert_eq!(
        (
            cut["text"].as_str(),
            cut["bytes_read"].as_u64(),
            cut["truncated"].as_bool()
        ),
        (Some("# Runs\nh"), Some(8), Some(true))
    );
    // Continue where it stopped.
    let next = server
        .ok("bucket_object_text", json!({"s3_uri": "s3://lab-data/runs/readme.md", "offset": cut["next_offset"], "max_bytes": 7}))
        .await;
    assert_eq!(
        (next["text"].as_str(), next["offset"].as_u64()),
        (Some("éllo w"), Some(8))
    );
    // Starting inside "é" skips its tail byte and says so in `offset`.
    let inside = server
        .ok(
            "bucket_object_text",
            json!({"s3_uri": "s3://lab-data/runs/readme.md", "offset": 9, "max_bytes": 4}),
        )
        .await;
    assert_eq!(
        (inside["text"].as_str(), inside["offset"].as_u64()),
        (Some("llo"), Some(10))
    );

    let encoded_key = server
        .ok(
            "bucket_object_text",
            json!({"s3_uri": "s3://lab-data/dir/my%20file%3F.txt"}),
        )
        .await;
    assert_eq!(encoded_key["text"], "spaces and a question mark");

    let result = server
        .call(
            "bucket_object_text",
            json!({"s3_uri": "s3://lab-data/images/blob.bin"}),
        )
        .await
        .unwrap();
    assert_eq!(tool_error(&result).0, "not_supported");
    let result = server
        .call(
            "bucket_object_text",
            json!({"s3_uri": "s3://lab-data/runs/readme.md", "encoding": "klingon"}),
        )
        .await
        .unwrap();
    assert_eq!(tool_error(&result).0, "invalid_argument");

    let fetched = server
        .ok(
            "bucket_object_fetch",
            json!({"s3_uri": "s3://lab-data/images/blob.bin"}),
        )
        .await;
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(fetched["base64"].as_str().unwrap())
            .unwrap(),
        binary
    );
    assert_eq!(
        (fetched["size"].as_u64(), fetched["truncated"].as_bool()),
        (Some(5000), Some(false))
    );
    assert_eq!(fetched["content_type"], "application/octet-stream");
    let capped = server
        .ok(
            "bucket_object_fetch",
            json!({"s3_uri": "s3://lab-data/images/blob.bin", "max_bytes": 1000}),
        )
        .await;
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(capped["base64"].as_str().unwrap())
            .unwrap(),
        &binary[..1000]
    );
    assert_eq!(
        (capped["bytes_read"].as_u64(), capped["truncated"].as_bool()),
        (Some(1000), Some(true))
    );
    // Also an embedded resource.
    let raw = server
        .call(
            "bucket_object_fetch",
            json!({"s3_uri": "s3://lab-data/images/blob.bin", "max_bytes": 10}),
        )
        .await
        .unwrap();
    let blocks = serde_json::to_value(&raw.content).unwrap();
    assert!(
        blocks
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["type"] == "resource"
                && b["resource"]["uri"] == "s3://lab-data/images/blob.bin"),
        "{blocks}"
    );

    let link = server
        .ok(
            "bucket_object_link",
            json!({"s3_uri": "s3://lab-data/images/blob.bin", "expiration": 120}),
        )
        .await;
    assert_eq!(link["expires_in"], 120);
    let body = reqwest::get(link["url"].as_str().unwrap()).await.unwrap();
    assert_eq!(body.status(), 200);
    assert_eq!(body.bytes().await.unwrap().to_vec(), binary);
    let result = server
        .call(
            "bucket_object_link",
            json!({"s3_uri": "s3://lab-data/images/blob.bin", "expiration": 604801}),
        )
        .await
        .unwrap();
    assert_eq!(tool_error(&result).0, "invalid_argument");

    let put = server
        .ok(
            "bucket_objects_put",
            json!({"bucket": "lab-data", "items": [
                {"key": "out/hello.txt", "text": "hello ✓", "metadata": {"source": "agent"}},
                {"key": "out/data.bin", "base64": "AAECAwQ=", "content_type": "application/x-test"},
                {"key": "out/bad.bin", "base64": "not base64!!"},
                {"key": "out/both.txt", "text": "a", "base64": "YQ=="},
            ]}),
        )
        .await;
    let results = put["results"].as_array().unwrap();
    assert_eq!(
        results
            .iter()
            .map(|r| r["ok"].as_bool().unwrap())
            .collect::<Vec<_>>(),
        [true, true, false, false]
    );
    assert_eq!(results[0]["size"], "hello ✓".len());
    assert!(results[0]["etag"].is_string());
    assert_eq!(results[2]["error"]["code"], "invalid_argument");
    assert_eq!(
        (put["written"].as_u64(), put["failed"].as_u64()),
        (Some(2), Some(2))
    );
    let back = server
        .ok(
            "bucket_object_text",
            json!({"s3_uri": "s3://lab-data/out/hello.txt"}),
        )
        .await;
    assert_eq!(back["text"], "hello ✓");
    let meta = server
        .ok(
            "bucket_object_info",
            json!({"s3_uri": "s3://lab-data/out/hello.txt"}),
        )
        .await;
    assert_eq!(meta["metadata"]["source"], "agent");
    let data = server
        .ok(
            "bucket_object_fetch",
            json!({"s3_uri": "s3://lab-data/out/data.bin"}),
        )
        .await;
    assert_eq!(
        (data["base64"].as_str(), data["content_type"].as_str()),
        (Some("AAECAwQ="), Some("application/x-test"))
    );

    // Not found and bad URIs.
    for (tool, uri) in [
        ("bucket_object_info", "s3://lab-data/nope.txt"),
        ("bucket_object_text", "s3://lab-data/nope.txt"),
        ("bucket_object_fetch", "s3://lab-data/nope.txt"),
    ] {
        let result = server.call(tool, json!({"s3_uri": uri})).await.unwrap();
        assert_eq!(
            tool_error(&result),
            ("not_found".to_owned(), false),
            "{tool}"
        );
    }
    for bad in [
        "lab-data/x",
        "s3://lab-data",
        "s3://lab-data/",
        "https://lab-data/x",
        "s3://lab-data/x?v=1",
    ] {
        let result = server
            .call("bucket_object_info", json!({"s3_uri": bad}))
            .await
            .unwrap();
        let (code, _) = tool_error(&result);
        assert_eq!(code, "invalid_argument", "{bad}");
    }
    server.stop().await;
}

#[tokio::test]
async fn the_gate_refuses_before_any_request_reaches_s3() {
    let s3 = sample_s3().await;
    let object_tools = [
        "bucket_object_info",
        "bucket_object_text",
        "bucket_object_fetch",
        "bucket_object_link",
    ];
    let cases: Vec<GateCase> = {
        let mut cases = vec![
            (
                "bucket_objects_list",
                json!({}),
                json!({"bucket": "secret-data"}),
                "bucket_not_allowed",
            ),
            (
                "bucket_objects_list",
                json!({"permissions": ["s3:GetObject"]}),
                json!({"bucket": "lab-data"}),
                "missing_permission",
            ),
            (
                "bucket_objects_put",
                json!({}),
                json!({"bucket": "secret-data", "items": [{"key": "k", "text": "t"}]}),
                "bucket_not_allowed",
            ),
            (
                "bucket_objects_put",
                json!({"level": "read"}),
                json!({"bucket": "lab-data", "items": [{"key": "k", "text": "t"}]}),
                "write_not_allowed",
            ),
            (
                "bucket_objects_put",
                json!({"permissions": ["s3:GetObject"]}),
                json!({"bucket": "lab-data", "items": [{"key": "k", "text": "t"}]}),
                "missing_permission",
            ),
        ];
        for tool in object_tools {
            cases.push((
                tool,
                json!({}),
                json!({"s3_uri": "s3://secret-data/x"}),
                "bucket_not_allowed",
            ));
            cases.push((
                tool,
                json!({"permissions": ["s3:ListBucket"]}),
                json!({"s3_uri": "s3://lab-data/x"}),
                "missing_permission",
            ));
            cases.push((
                tool,
                json!({"permissions": ["s3:GetObject"]}),
                json!({"s3_uri": "s3://lab-data/x?versionId=3"}),
                "missing_permission",
            ));
        }
        cases
    };
    assert_refused_before_s3(&s3, cases, |claims| {
        let mut extra = inline();
        for (k, v) in claims.as_object().unwrap() {
            extra[k] = v.clone();
        }
        token(extra)
    })
    .await;

    // Read-only mode hides the write tool and refuses it.
    let server = start(&s3, &token(inline()), &[("QUILT_MCP_READ_ONLY", "true")]).await;
    let names: Vec<String> = server
        .client
        .list_all_tools()
        .await
        .unwrap()
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(
        !names.contains(&"bucket_objects_put".to_owned()),
        "{names:?}"
    );
    assert!(names.contains(&"bucket_objects_list".to_owned()));
    let before = s3.requests();
    let err = server
        .call(
            "bucket_objects_put",
            json!({"bucket": "lab-data", "items": [{"key": "k", "text": "t"}]}),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (err.code.0, reason(&err).as_str()),
        (-32003, "read_only_mode")
    );
    server.stop().await;
    assert_eq!(s3.requests(), before);
}

#[tokio::test]
async fn access_denied_by_s3_is_a_tool_error_with_a_hint() {
    let s3 = sample_s3().await;
    let wrong = json!({"aws_credentials": {"access_key_id": ACCESS_KEY, "secret_access_key": "not-the-secret"}});
    let server = start(&s3, &token(wrong), &[]).await;
    let result = server
        .call(
            "bucket_object_info",
            json!({"s3_uri": "s3://lab-data/runs/readme.md"}),
        )
        .await
        .unwrap();
    let (code, retryable) = tool_error(&result);
    assert_eq!((code.as_str(), retryable), ("access_denied", false));
    let message = result.structured_content.unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("IAM role behind the token"), "{message}");
    assert!(!message.contains("not-the-secret"));
    server.stop().await;
}

/// Writes `items` with `bucket_objects_put` (with `overwrite` when given): its result.
async fn put(server: &Server, items: Value, overwrite: Option<bool>) -> Value {
    let mut args = json!({"bucket": "lab-data", "items": items});
    if let Some(overwrite) = overwrite {
        args["overwrite"] = json!(overwrite);
    }
    server.ok("bucket_objects_put", args).await
}

async fn text_of(server: &Server, uri: &str) -> String {
    let read = server
        .ok("bucket_object_text", json!({"s3_uri": uri}))
        .await;
    read["text"].as_str().unwrap().to_owned()
}

/// `bucket_objects_put` leaves an existing object as it is unless `overwrite`: the
/// item says `exists: true` (a `conflict`), the others are still written, and with
/// `overwrite: true` it replaces.
async fn check_overwrite_guard(server: &Server) {
    let first = put(
        server,
        json!([{"key": "guard/a.txt", "text": "first"}]),
        None,
    )
    .await;
    assert_eq!(first["results"][0]["ok"], true, "{first}");
    assert!(first["results"][0].get("exists").is_none(), "{first}");

    let again = put(
        server,
        json!([
            {"key": "guard/a.txt", "text": "second"},
            {"key": "guard/b.txt", "text": "new"},
        ]),
        Some(false),
    )
    .await;
    let results = again["results"].as_array().unwrap();
    assert_eq!(
        (results[0]["ok"].as_bool(), results[0]["exists"].as_bool()),
        (Some(false), Some(true)),
        "{again}"
    );
    assert_eq!(results[0]["error"]["code"], "conflict", "{again}");
    assert!(
        results[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("overwrite"),
        "{again}"
    );
    assert_eq!(results[1]["ok"], true, "{again}");
    assert_eq!(
        (
            again["written"].as_u64(),
            again["failed"].as_u64(),
            again["existing"].as_u64()
        ),
        (Some(1), Some(1), Some(1))
    );
    assert_eq!(text_of(server, "s3://lab-data/guard/a.txt").await, "first");

    let replaced = put(
        server,
        json!([{"key": "guard/a.txt", "text": "third"}]),
        Some(true),
    )
    .await;
    assert_eq!(replaced["results"][0]["ok"], true, "{replaced}");
    assert_eq!(text_of(server, "s3://lab-data/guard/a.txt").await, "third");
}

#[tokio::test]
async fn put_keeps_existing_objects_unless_asked_to_overwrite() {
    let s3 = sample_s3().await;
    let server = start(&s3, &token(inline()), &[]).await;
    check_overwrite_guard(&server).await;
    // The objects written before this guard existed are not replaced either.
    let result = put(
        &server,
        json!([{"key": "runs/readme.md", "text": "gone?"}]),
        None,
    )
    .await;
    assert_eq!(result["results"][0]["exists"], true, "{result}");
    assert!(
        text_of(&server, "s3://lab-data/runs/readme.md")
            .await
            .starts_with("# Runs")
    );
    server.stop().await;
}

/// The same against moto, which implements `If-None-Match: *` as S3 does.
#[tokio::test]
#[ignore = "needs moto"]
async fn put_keeps_existing_objects_against_moto() {
    let moto = crate::common::moto::Moto::start().await;
    moto.client()
        .create_bucket()
        .bucket("lab-data")
        .send()
        .await
        .unwrap();
    let token = token(
        json!({"aws_credentials": {"access_key_id": "testing", "secret_access_key": "testing"}}),
    );
    let env = [
        ("AWS_ENDPOINT_URL_S3", moto.endpoint.as_str()),
        ("QUILT_MCP_S3_FORCE_PATH_STYLE", "true"),
        ("QUILT_MCP_JWT_SECRET", SECRET),
        ("QUILT_MCP_TOKEN", token.as_str()),
    ];
    let server = Server::spawn(&env).await;
    check_overwrite_guard(&server).await;
    server.stop().await;
}

/// An endpoint without conditional writes (HTTP 501 to `If-None-Match`) cannot protect
/// an existing object: the item is `not_supported`, nothing is written, and
/// `overwrite: true` still writes.
#[tokio::test]
async fn put_without_conditional_writes_never_overwrites_silently() {
    use crate::publish_race::no_conditional::{self, ACCESS_KEY, SECRET_KEY};
    let store = no_conditional::start().await;
    let token = token(
        json!({"aws_credentials": {"access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY}}),
    );
    let env = [
        ("AWS_ENDPOINT_URL_S3", store.endpoint.as_str()),
        ("QUILT_MCP_S3_FORCE_PATH_STYLE", "true"),
        ("QUILT_MCP_JWT_SECRET", SECRET),
        ("QUILT_MCP_TOKEN", token.as_str()),
    ];
    let server = Server::spawn(&env).await;
    // The bucket, made through the server's own credentials and endpoint.
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                ACCESS_KEY, SECRET_KEY, None, None, "t",
            ))
            .endpoint_url(&store.endpoint)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket().bucket("lab-data").send().await.unwrap();
    let refused = put(&server, json!([{"key": "k.txt", "text": "a"}]), None).await;
    let result = &refused["results"][0];
    assert_eq!(
        (result["ok"].as_bool(), result["error"]["code"].as_str()),
        (Some(false), Some("not_supported")),
        "{refused}"
    );
    assert!(result.get("exists").is_none(), "{refused}");
    let listed = server
        .ok("bucket_objects_list", json!({"bucket": "lab-data"}))
        .await;
    assert_eq!(listed["key_count"], 0, "{listed}");
    let written = put(&server, json!([{"key": "k.txt", "text": "a"}]), Some(true)).await;
    assert_eq!(written["results"][0]["ok"], true, "{written}");
    server.stop().await;
}
