//! `package_revisions` end to end over stdio against the in-process S3: revisions of a
//! package laid out as quilt3 writes them (timestamp pointers, `latest`, manifests),
//! newest first, paged, each message read from its manifest's first line alone.
use crate::common::s3::{ACCESS_KEY, SECRET_KEY, TestS3};
use crate::common::*;
use quilt_mcp::quilt::manifest::{Manifest, Record};
use serde_json::{Map, Value, json};

const NAME: &str = "team/pkg";
/// The first revision's time; revision `i` (1-based) was pushed at `T0 + i`.
const T0: u64 = 1_700_000_000;

fn token(permissions: &[&str]) -> String {
    hs256(&claims_with(json!({
        "buckets": ["registry"],
        "permissions": permissions,
        "level": "read",
        "aws_credentials": {"access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY},
    })))
}

fn read_all() -> String {
    token(&["s3:GetObject", "s3:ListBucket"])
}

/// A one-entry manifest whose header carries `message` after `user_meta`, as quilt3
/// orders them.
fn manifest(message: Option<&str>, user_meta: Value) -> Manifest {
    let mut header = Map::new();
    header.insert("version".into(), json!("v0"));
    header.insert("user_meta".into(), user_meta);
    if let Some(message) = message {
        header.insert("message".into(), json!(message));
    }
    let entry = json!({
        "logical_key": "data.csv",
        "physical_keys": ["s3://registry/data.csv?versionId=v1"],
        "size": 9,
        "hash": {"type": "sha2-256-chunked", "value": "Xb1PbjJeWof4zD7zuHc9PI7sLiz/Ykj4gphlaZEt3xA="},
        "meta": {},
    });
    Manifest::new(
        header,
        vec![Record::from_object(entry.as_object().unwrap().clone())],
    )
}

/// Stores `manifest` and points the timestamp `time` at it; its top hash.
fn push(s3: &TestS3, time: u64, manifest: &Manifest) -> String {
    let hash = manifest.top_hash();
    s3.seed_file(
        "registry",
        &format!(".quilt/packages/{hash}"),
        &manifest.to_bytes(),
    );
    s3.seed_file(
        "registry",
        &format!(".quilt/named_packages/{NAME}/{time}"),
        hash.as_bytes(),
    );
    hash
}

/// Six revisions: 2 repeats 1's manifest, 3's pointer is corrupt, 5's header is longer
/// than the first ranged GET (a 100 KiB `user_meta` before its message), 6 has no
/// message; `latest` is 5. Beside them: a neighbour package and a key that is no
/// timestamp. The hashes, by revision.
async fn sample() -> (TestS3, Vec<Option<String>>) {
    let s3 = TestS3::start().await;
    s3.create_bucket("registry").await;
    let first = manifest(Some("first"), json!({}));
    let long = manifest(Some("long header"), json!({"blob": "x".repeat(100 * 1024)}));
    let hashes = vec![
        Some(push(&s3, T0 + 1, &first)),
        Some(push(&s3, T0 + 2, &first)),
        None,
        Some(push(
            &s3,
            T0 + 4,
            &manifest(Some("fourth"), json!({"k": 1})),
        )),
        Some(push(&s3, T0 + 5, &long)),
        Some(push(&s3, T0 + 6, &manifest(None, json!({})))),
    ];
    s3.seed_file(
        "registry",
        &format!(".quilt/named_packages/{NAME}/{}", T0 + 3),
        b"not a top hash",
    );
    s3.seed_file(
        "registry",
        &format!(".quilt/named_packages/{NAME}/latest"),
        hashes[4].as_deref().unwrap().as_bytes(),
    );
    s3.seed_file(
        "registry",
        &format!(".quilt/named_packages/{NAME}/notes"),
        b"ignored",
    );
    s3.seed_file(
        "registry",
        &format!(".quilt/named_packages/{NAME}2/{}", T0 + 9),
        hashes[0].as_deref().unwrap().as_bytes(),
    );
    (s3, hashes)
}

fn rfc3339(unix: u64) -> String {
    quilt_mcp::time::rfc3339(i64::try_from(unix).unwrap()).unwrap()
}

#[tokio::test]
async fn revisions_are_listed_newest_first_a_page_at_a_time() {
    let (s3, hashes) = sample().await;
    let server = start_on(&s3, &read_all(), &[], ()).await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut args =
            json!({"registry": "s3://registry", "package_name": NAME, "max_revisions": 2});
        if let Some(cursor) = &cursor {
            args["cursor"] = json!(cursor);
        }
        let page = server.ok("package_revisions", args).await;
        pages += 1;
        assert_eq!(page["registry"], "s3://registry");
        assert_eq!(page["package_name"], NAME);
        let revisions = page["revisions"].as_array().unwrap().clone();
        assert_eq!(page["count"], revisions.len());
        seen.extend(revisions);
        match page["next_cursor"].as_str() {
            Some(next) => {
                assert_eq!(page["truncated"], true);
                cursor = Some(next.to_owned());
            }
            None => {
                assert_eq!(page["truncated"], false);
                break;
            }
        }
    }
    assert_eq!(pages, 3);
    // Newest first: 6, 5, …, 1; the neighbour package and `notes` are not revisions.
    let times: Vec<&str> = seen
        .iter()
        .map(|r| r["modified"].as_str().unwrap())
        .collect();
    let want: Vec<String> = (1..=6).rev().map(|i| rfc3339(T0 + i)).collect();
    assert_eq!(times, want);
    let messages: Vec<&Value> = seen.iter().map(|r| &r["message"]).collect();
    assert_eq!(
        messages,
        [
            &Value::Null,
            &json!("long header"),
            &json!("fourth"),
            &Value::Null,
            &json!("first"),
            &json!("first"),
        ]
    );
    for (revision, hash) in seen.iter().zip(hashes.iter().rev()) {
        match hash {
            Some(hash) => {
                assert_eq!(revision["top_hash"], json!(hash), "{revision}");
                assert_eq!(
                    revision["uri"],
                    format!("quilt+s3://registry#package={NAME}@{hash}")
                );
                assert_eq!(revision["is_latest"], hash == hashes[4].as_ref().unwrap());
                assert!(revision.get("error").is_none(), "{revision}");
            }
            // The corrupt pointer is this revision's problem alone.
            None => {
                assert_eq!(revision["top_hash"], Value::Null);
                assert_eq!(revision["is_latest"], false);
                assert!(
                    revision["error"]
                        .as_str()
                        .unwrap()
                        .contains("does not hold a top hash"),
                    "{revision}"
                );
            }
        }
    }
    let latest: Vec<&Value> = seen.iter().filter(|r| r["is_latest"] == true).collect();
    assert_eq!(latest.len(), 1);
    server.stop().await;
}

/// One page costs one listing, the `latest` pointer, one GET per pointer and one
/// ranged GET per distinct manifest (two for a header longer than the first range):
/// a manifest is never read whole.
#[tokio::test]
async fn messages_come_from_ranged_reads_of_first_lines() {
    let (s3, _) = sample().await;
    let server = start_on(&s3, &read_all(), &[], ()).await;
    let before = s3.requests();
    let all = server
        .ok(
            "package_revisions",
            json!({"registry": "registry", "package_name": NAME}),
        )
        .await;
    assert_eq!(all["count"], 6);
    assert!(all.get("next_cursor").is_none());
    // 1 listing + 1 latest + 6 pointers + manifests: first (shared by 1 and 2), fourth,
    // long header (twice), no message.
    assert_eq!(s3.requests() - before, 1 + 1 + 6 + (1 + 1 + 2 + 1));
    server.stop().await;
}

#[tokio::test]
async fn a_package_without_revisions_is_not_found_and_past_the_last_page_is_empty() {
    let (s3, _) = sample().await;
    let server = start_on(&s3, &read_all(), &[], ()).await;
    let missing = server
        .call(
            "package_revisions",
            json!({"registry": "registry", "package_name": "team/none"}),
        )
        .await
        .unwrap();
    assert_eq!(missing.is_error, Some(true));
    let error = &missing.structured_content.unwrap()["error"];
    assert_eq!(error["code"], "not_found", "{error}");
    assert!(error["message"].as_str().unwrap().contains("package_list"));
    // A cursor below the oldest revision: an empty last page.
    let oldest = server
        .ok(
            "package_revisions",
            json!({"registry": "registry", "package_name": NAME, "max_revisions": 5}),
        )
        .await;
    let cursor = oldest["next_cursor"].as_str().unwrap();
    let last = server
        .ok(
            "package_revisions",
            json!({"registry": "registry", "package_name": NAME, "max_revisions": 5, "cursor": cursor}),
        )
        .await;
    assert_eq!(last["count"], 1);
    assert!(last.get("next_cursor").is_none());
    server.stop().await;
}

/// A refused call, and a call with a bad argument, never reach S3.
#[tokio::test]
async fn refusals_and_bad_arguments_cost_no_s3_request() {
    let (s3, _) = sample().await;
    let args = json!({"registry": "registry", "package_name": NAME});
    assert_refused_before_s3(
        &s3,
        vec![
            (
                "package_revisions",
                json!(["s3:GetObject"]),
                args.clone(),
                "missing_permission",
            ),
            (
                "package_revisions",
                json!(["s3:ListBucket"]),
                args.clone(),
                "missing_permission",
            ),
            (
                "package_revisions",
                json!(["s3:GetObject", "s3:ListBucket"]),
                json!({"registry": "elsewhere", "package_name": NAME}),
                "bucket_not_allowed",
            ),
        ],
        |permissions| {
            let permissions: Vec<&str> = permissions
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap())
                .collect();
            token(&permissions)
        },
    )
    .await;
    let server = start_on(&s3, &read_all(), &[], ()).await;
    for bad in [
        json!({"registry": "registry", "package_name": "no-namespace"}),
        json!({"registry": "registry", "package_name": NAME, "max_revisions": 1001}),
        json!({"registry": "registry", "package_name": NAME, "cursor": "bm90LWEtY3Vyc29y"}),
    ] {
        let before = s3.requests();
        let result = server.call("package_revisions", bad.clone()).await.unwrap();
        assert_eq!(result.is_error, Some(true), "{bad}");
        assert_eq!(
            result.structured_content.unwrap()["error"]["code"],
            "invalid_argument",
            "{bad}"
        );
        assert_eq!(s3.requests(), before, "{bad} reached S3");
    }
    server.stop().await;
}

/// A corrupt `latest` pointer is reported beside the revisions, which still list.
#[tokio::test]
async fn a_corrupt_latest_is_reported_and_the_revisions_still_list() {
    let (s3, _) = sample().await;
    s3.seed_file(
        "registry",
        &format!(".quilt/named_packages/{NAME}/latest"),
        b"garbage",
    );
    let server = start_on(&s3, &read_all(), &[], ()).await;
    let page = server
        .ok(
            "package_revisions",
            json!({"registry": "registry", "package_name": NAME}),
        )
        .await;
    assert_eq!(page["count"], 6);
    assert!(
        page["latest_error"]
            .as_str()
            .unwrap()
            .contains("does not hold a top hash"),
        "{page}"
    );
    assert!(
        page["revisions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["is_latest"] == false)
    );
    server.stop().await;
}
