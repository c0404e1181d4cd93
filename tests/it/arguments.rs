//! Arguments are types, checked in the gate's one parse: a bad argument on any tool is
//! an `invalid_argument` naming it, and costs no STS, registry or S3 request. The
//! token's AWS credentials come from a loopback STS that counts what it receives, and
//! the in-process S3 counts its requests; one good call at the end shows both counters
//! do move.
use std::time::Duration;

use crate::common::fakes::FakeServer;
use crate::common::s3::{ACCESS_KEY, SECRET_KEY, TestS3};
use crate::common::*;
use base64::Engine as _;
use serde_json::{Value, json};

fn token() -> String {
    hs256(&claims_with(json!({
        "buckets": ["lab-data", "registry"],
        "permissions": ["s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket", "s3:PutObject"],
        "level": "write",
        "aws_role_arn": "arn:aws:iam::123456789012:role/QuiltWriter",
    })))
}

/// A `package_browse` cursor as the server makes them (base64url of its JSON).
fn browse_cursor(top_hash: &str, path: &str) -> String {
    let json = json!({"v": 1, "top_hash": top_hash, "path": path, "after": format!("{path}/x")});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json.to_string())
}

/// A `package_list` cursor after package `name`.
fn list_cursor(name: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(name)
}

#[tokio::test]
async fn bad_arguments_cost_no_upstream_request_on_any_tool() {
    let s3 = TestS3::start().await;
    s3.create_bucket("lab-data").await;
    s3.put("lab-data", "a.txt", b"hello", "text/plain", &[])
        .await;
    let sts = FakeServer::sts(
        ACCESS_KEY,
        SECRET_KEY,
        "FwoGZXIvYXdzSTSsessiontoken",
        "2099-01-01T00:00:00Z",
        Duration::ZERO,
    )
    .await;
    let server = start_on(&s3, &token(), &[("AWS_ENDPOINT_URL_STS", &sts.url)], ()).await;
    let hash = "ab".repeat(32);
    let object = "s3://lab-data/a.txt";
    let pkg = |extra: Value| {
        let mut args = json!({"registry": "registry", "package_name": "team/pkg"});
        for (k, v) in extra.as_object().unwrap() {
            args[k] = v.clone();
        }
        args
    };
    // (tool, arguments, what the message names)
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "bucket_objects_list",
            json!({"bucket": "lab data"}),
            "bucket",
        ),
        (
            "bucket_objects_list",
            json!({"bucket": "https://lab-data"}),
            "bucket",
        ),
        (
            "bucket_objects_list",
            json!({"bucket": "lab-data", "max_keys": 0}),
            "max_keys",
        ),
        (
            "bucket_objects_list",
            json!({"bucket": "lab-data", "max_keys": 1001}),
            "max_keys",
        ),
        (
            "bucket_objects_list",
            json!({"bucket": "lab-data", "max_keys": -1}),
            "max_keys",
        ),
        (
            "bucket_objects_list",
            json!({"bucket": "lab-data", "max_keys": "ten"}),
            "max_keys",
        ),
        (
            "bucket_objects_list",
            json!({"bucket": "lab-data", "prefix": "a\u{0}"}),
            "prefix",
        ),
        (
            "bucket_object_info",
            json!({"s3_uri": "s3://lab-data"}),
            "s3_uri",
        ),
        (
            "bucket_object_info",
            json!({"s3_uri": "lab-data/a.txt"}),
            "s3_uri",
        ),
        (
            "bucket_object_info",
            json!({"s3_uri": "s3://lab-data/a.txt?v=1"}),
            "s3_uri",
        ),
        (
            "bucket_object_text",
            json!({"s3_uri": object, "encoding": "ebcdic"}),
            "encoding",
        ),
        (
            "bucket_object_text",
            json!({"s3_uri": object, "max_bytes": 0}),
            "max_bytes",
        ),
        (
            "bucket_object_text",
            json!({"s3_uri": object, "max_bytes": 16_777_217}),
            "max_bytes",
        ),
        (
            "bucket_object_text",
            json!({"s3_uri": object, "offset": -1}),
            "offset",
        ),
        (
            "bucket_object_text",
            json!({"s3_uri": object, "offset": u64::MAX - 4, "max_bytes": 10}),
            "offset",
        ),
        (
            "bucket_object_fetch",
            json!({"s3_uri": object, "max_bytes": 0}),
            "max_bytes",
        ),
        (
            "bucket_object_link",
            json!({"s3_uri": object, "expiration": 0}),
            "expiration",
        ),
        (
            "bucket_object_link",
            json!({"s3_uri": object, "expiration": 604_801}),
            "expiration",
        ),
        (
            "bucket_object_link",
            json!({"s3_uri": "s3://lab-data/../registry/a.txt"}),
            "s3_uri",
        ),
        (
            "bucket_objects_put",
            json!({"bucket": "lab-data", "items": []}),
            "items",
        ),
        (
            "bucket_objects_put",
            json!({"bucket": "lab-data", "items": [{"key": "a\u{0}", "text": "x"}]}),
            "items[0].key",
        ),
        (
            "bucket_objects_put",
            json!({"bucket": "lab-data", "items": [{"key": "k", "text": "x"}], "overwrite": "yes"}),
            "overwrite",
        ),
        (
            "package_list",
            json!({"registry": "registry", "max_packages": 0}),
            "max_packages",
        ),
        (
            "package_list",
            json!({"registry": "registry", "cursor": "not a cursor!"}),
            "cursor",
        ),
        // A cursor of another prefix.
        (
            "package_list",
            json!({"registry": "registry", "prefix": "team/", "cursor": list_cursor("other/pkg")}),
            "cursor",
        ),
        (
            "package_browse",
            pkg(json!({"package_name": "team"})),
            "package_name",
        ),
        (
            "package_browse",
            pkg(json!({"package_name": "team/p kg"})),
            "package_name",
        ),
        (
            "package_browse",
            pkg(json!({"top_hash": "abc"})),
            "top_hash",
        ),
        (
            "package_browse",
            pkg(json!({"top_hash": "xyzxyz"})),
            "top_hash",
        ),
        (
            "package_browse",
            pkg(json!({"max_entries": 0})),
            "max_entries",
        ),
        (
            "package_browse",
            pkg(json!({"cursor": "garbage"})),
            "cursor",
        ),
        // A cursor of another path, and of another revision than the one asked for.
        (
            "package_browse",
            pkg(json!({"cursor": browse_cursor(&hash, "data"), "path": "docs"})),
            "cursor",
        ),
        (
            "package_browse",
            pkg(
                json!({"cursor": browse_cursor(&hash, "data"), "path": "data", "top_hash": "cdcdcd"}),
            ),
            "cursor",
        ),
        (
            "package_diff",
            json!({"registry": "registry", "package1_name": "nope"}),
            "package1_name",
        ),
        (
            "package_diff",
            json!({"registry": "registry", "package1_name": "a/b", "package2_name": "c"}),
            "package2_name",
        ),
        (
            "package_diff",
            json!({"registry": "registry", "package1_name": "a/b", "package2_hash": "12345"}),
            "package2_hash",
        ),
        (
            "package_diff",
            json!({"registry": "registry", "package1_name": "a/b", "max_changes": 100_001}),
            "max_changes",
        ),
        (
            "package_diff",
            json!({"uri": "quilt+s3://registry#package=team/pkg&path=a.csv"}),
            "leave `path` out",
        ),
        (
            "package_diff",
            json!({"uri": "quilt+s3://registry#package=team/pkg@abcdef", "package1_hash": "123456"}),
            "`package1_hash`",
        ),
        (
            "package_diff",
            json!({"uri": "quilt+s3://registry#package=team/pkg", "package1_name": "team/other"}),
            "`package1_name`",
        ),
        (
            "package_diff",
            json!({"uri": "quilt+s3://registry#package=team/pkg", "registry": "lab-data"}),
            "`registry`",
        ),
        (
            "package_diff",
            json!({"package1_name": "team/pkg"}),
            "`uri`",
        ),
        (
            "package_revisions",
            pkg(json!({"package_name": "team/"})),
            "package_name",
        ),
        (
            "package_revisions",
            pkg(json!({"max_revisions": 0})),
            "max_revisions",
        ),
        (
            "package_revisions",
            pkg(json!({"cursor": list_cursor("team/pkg")})),
            "cursor",
        ),
        (
            "package_create",
            pkg(json!({"package_name": "tëam/pkg", "s3_uris": [object]})),
            "package_name",
        ),
        (
            "package_create",
            pkg(json!({"entries": [{"logical_key": "../x", "s3_uri": object}]})),
            "logical_key",
        ),
        (
            "package_create",
            pkg(json!({"s3_uris": ["s3://lab-data/dir/?versionId=1"]})),
            "s3_uris[0]",
        ),
        // `quilt+s3://` URIs, parsed in the same one parse.
        (
            "package_browse",
            json!({"uri": "quilt+s3://registry#package=team/pkg:v1"}),
            "only `:latest`",
        ),
        (
            "package_browse",
            json!({"uri": "quilt+s3://registry/sub#package=team/pkg"}),
            "bucket root",
        ),
        (
            "package_browse",
            json!({"uri": "quilt+s3://registry#package=team/pkg@abc"}),
            "6 to 64 hex digits",
        ),
        (
            "package_browse",
            json!({"uri": "quilt+s3://registry#package=team/pkg&package=team/b"}),
            "more than once",
        ),
        (
            "package_browse",
            json!({"uri": "s3://registry#package=team/pkg"}),
            "quilt+s3",
        ),
        (
            "package_browse",
            json!({"uri": "quilt+s3://registry#package=team/pkg", "registry": "lab-data"}),
            "`registry`",
        ),
        (
            "package_browse",
            json!({"uri": "quilt+s3://registry#package=team/pkg@abcdef", "top_hash": "abcd00"}),
            "`top_hash`",
        ),
        (
            "package_browse",
            json!({"uri": "quilt+s3://registry#package=team/pkg&path=a", "path": "b"}),
            "`path`",
        ),
        ("package_browse", json!({}), "`uri`"),
        (
            "package_revisions",
            json!({"uri": "quilt+s3://registry#package=team/pkg", "package_name": "team/other"}),
            "`package_name`",
        ),
        (
            "bucket_object_text",
            json!({"uri": "quilt+s3://registry#package=team/pkg"}),
            "&path=",
        ),
        (
            "bucket_object_text",
            json!({"uri": "quilt+s3://registry#package=team/pkg&path=a.txt", "s3_uri": object}),
            "not both",
        ),
        ("bucket_object_info", json!({}), "`s3_uri`"),
        (
            "bucket_object_fetch",
            json!({"uri": "quilt+s3://registry#package=team/pkg&path=%FF"}),
            "UTF-8",
        ),
        (
            "bucket_object_link",
            json!({"uri": "quilt+s3://registry#package=team/pkg:latest@abcdef&path=a"}),
            "not both",
        ),
        ("package_patch", pkg(json!({})), "`add`"),
        (
            "package_patch",
            pkg(json!({"remove": ["data/../x"]})),
            "remove",
        ),
        ("package_patch", pkg(json!({"remove": ["a", "a"]})), "twice"),
        (
            "package_patch",
            pkg(json!({"parent_hash": "xyz", "message": "m"})),
            "parent_hash",
        ),
        (
            "package_patch",
            pkg(json!({"add": [{"logical_key": "a/", "s3_uri": object}]})),
            "logical_key",
        ),
        (
            "package_patch",
            pkg(json!({"add_s3_uris": ["https://lab-data/x"]})),
            "add_s3_uris[0]",
        ),
        (
            "package_patch",
            pkg(json!({"metadata": [1], "message": "m"})),
            "metadata",
        ),
        // The publishing tools' `uri`.
        (
            "package_patch",
            json!({"uri": "quilt+s3://registry#package=team/pkg&path=a.txt", "message": "m"}),
            "not a file",
        ),
        (
            "package_patch",
            json!({"uri": "quilt+s3://registry#package=team/pkg@abcdef", "parent_hash": "abcd00", "message": "m"}),
            "`parent_hash`",
        ),
        (
            "package_patch",
            json!({"uri": "quilt+s3://registry#package=team/pkg", "registry": "lab-data", "message": "m"}),
            "`registry`",
        ),
        (
            "package_patch",
            json!({"uri": "quilt+s3://registry#package=team/p%C3%A9", "message": "m"}),
            "`uri`",
        ),
        ("package_patch", json!({"message": "m"}), "`uri`"),
        (
            "package_create",
            json!({"uri": "quilt+s3://registry#package=team/pkg@abcdef", "s3_uris": [object]}),
            "new revision",
        ),
        (
            "package_create",
            json!({"uri": "quilt+s3://registry#package=team/pkg&path=a.txt", "s3_uris": [object]}),
            "not a file",
        ),
        (
            "package_create",
            json!({"uri": "quilt+s3://registry#package=team/pkg", "package_name": "team/other", "s3_uris": [object]}),
            "`package_name`",
        ),
        (
            "package_create",
            json!({"uri": "quilt+s3://registry#package=t%C3%ABam/pkg", "s3_uris": [object]}),
            "not a package name to write",
        ),
        (
            "package_create",
            json!({"registry": "registry", "s3_uris": [object]}),
            "`uri`",
        ),
    ];
    let s3_before = s3.requests();
    for (tool, args, names) in &cases {
        let result = server
            .call(tool, args.clone())
            .await
            .unwrap_or_else(|e| panic!("{tool} {args}: JSON-RPC error {e:?}"));
        assert_eq!(result.is_error, Some(true), "{tool} {args}: {result:?}");
        let error = &result.structured_content.as_ref().unwrap()["error"];
        let message = error["message"].as_str().unwrap();
        assert_eq!(
            error["code"], "invalid_argument",
            "{tool} {args}: {message}"
        );
        assert!(
            message.contains(names),
            "{tool} {args}: the message does not name {names}: {message}"
        );
        assert!(
            sts.requests().is_empty(),
            "{tool} {args} cost an STS request"
        );
        assert_eq!(s3.requests(), s3_before, "{tool} {args} reached S3");
    }
    // The counters move: a good call costs one STS exchange and reaches S3.
    server
        .ok(
            "bucket_object_text",
            json!({"s3_uri": object, "encoding": "UTF8"}),
        )
        .await;
    assert_eq!(sts.requests().len(), 1);
    assert!(s3.requests() > s3_before);
    server.stop().await;
}
