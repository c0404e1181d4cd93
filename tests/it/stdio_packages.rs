//! End to end over stdio against the in-process S3: the package tools on the registry
//! layout quilt3 uses.
use std::sync::{Arc, Mutex};

use crate::common::s3::{ACCESS_KEY, SECRET_KEY, TestS3};
use crate::common::*;
use quilt_mcp::quilt::manifest::Manifest;
use rmcp::model::{
    CallToolRequestParams, ClientRequest, ProgressNotificationParam, Request, ServerResult,
};
use rmcp::service::{NotificationContext, PeerRequestOptions};
use rmcp::{ClientHandler, RoleClient};
use serde_json::{Value, json};

const QUILT3_MANIFEST: &str = include_str!("../fixtures/quilt3/quilt3_manifest.jsonl");
const QUILT3_MANIFEST_META: &str = include_str!("../fixtures/quilt3/quilt3_manifest.json");

fn token(extra: Value) -> String {
    let mut claims = claims_with(json!({
        "buckets": ["registry", "sources"],
        "permissions": ["s3:GetObject", "s3:ListBucket", "s3:PutObject"],
        "level": "write",
        "aws_credentials": {"access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY},
    }));
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    hs256(&claims)
}

async fn start(s3: &TestS3, token: &str) -> Server {
    start_on(s3, token, &[], ()).await
}

async fn sample() -> TestS3 {
    let s3 = TestS3::start().await;
    for bucket in ["registry", "sources", "forbidden"] {
        s3.create_bucket(bucket).await;
    }
    s3.put("sources", "raw/a.csv", b"id,v\n1,2\n", "text/csv", &[])
        .await;
    s3.put(
        "sources",
        "raw/sub/b.json",
        br#"{"b": 1}"#,
        "application/json",
        &[],
    )
    .await;
    s3.put("sources", "raw/empty.txt", b"", "text/plain", &[])
        .await;
    s3.put(
        "sources",
        "docs/README.md",
        "# Read me — ünïcode\n".as_bytes(),
        "text/markdown",
        &[],
    )
    .await;
    s3
}

fn error_code(result: &rmcp::model::CallToolResult) -> String {
    assert_eq!(result.is_error, Some(true), "{result:?}");
    result.structured_content.as_ref().unwrap()["error"]["code"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn stored_manifest(s3: &TestS3, top_hash: &str) -> String {
    let out = s3
        .client()
        .get_object()
        .bucket("registry")
        .key(format!(".quilt/packages/{top_hash}"))
        .send()
        .await
        .unwrap();
    String::from_utf8(out.body.collect().await.unwrap().into_bytes().to_vec()).unwrap()
}

async fn stored(s3: &TestS3, key: &str) -> Vec<u8> {
    let out = s3
        .client()
        .get_object()
        .bucket("registry")
        .key(key)
        .send()
        .await
        .unwrap();
    out.body.collect().await.unwrap().into_bytes().to_vec()
}

#[tokio::test]
async fn create_list_browse_revise_and_diff() {
    let s3 = sample().await;
    let server = start(&s3, &token(json!({}))).await;

    let created = server
        .ok(
            "package_create",
            json!({
                "package_name": "team/experiment",
                "registry": "s3://registry",
                "entries": [{"logical_key": "docs/README.md", "s3_uri": "s3://sources/docs/README.md"}],
                "s3_uris": ["s3://sources/raw/"],
                "message": "first revision",
                "metadata": {"project": "x1", "nested": {"b": 2, "a": [1.5, 1e-05]}},
            }),
        )
        .await;
    let hash1 = created["top_hash"].as_str().unwrap().to_owned();
    assert_eq!(hash1.len(), 64);
    assert_eq!(created["entry_count"], 4);
    assert_eq!(created["total_size"], 9 + 8 + "# Read me — ünïcode\n".len());
    assert_eq!(
        created["uri"],
        format!("quilt+s3://registry#package=team/experiment@{hash1}")
    );
    assert!(created["previous_top_hash"].is_null());
    assert!(created["workflow"].is_null());
    assert_eq!(
        created["changes"],
        json!({"added": 4, "removed": 0, "modified": 0, "unchanged": 0})
    );

    // The layout quilt3 reads: manifest, a 10-digit timestamp pointer and latest, each
    // pointer exactly the 64 hash bytes.
    let text = stored_manifest(&s3, &hash1).await;
    let manifest = Manifest::parse(&text).unwrap();
    assert_eq!(manifest.top_hash(), hash1);
    assert_eq!(
        String::from_utf8(manifest.to_bytes()).unwrap(),
        text,
        "read back and written again"
    );
    assert!(
        text.starts_with(r#"{"version": "v0", "user_meta": {"project": "x1""#),
        "{text}"
    );
    let keys: Vec<&str> = manifest.entries().map(|e| e.logical_key()).collect();
    assert_eq!(keys, ["a.csv", "docs/README.md", "empty.txt", "sub/b.json"]);
    let empty = manifest
        .entries()
        .find(|e| e.logical_key() == "empty.txt")
        .unwrap();
    assert_eq!(
        empty.hash_parts(),
        (
            "sha2-256-chunked",
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        )
    );
    assert_eq!(empty.physical_key(), Some("s3://sources/raw/empty.txt"));
    assert_eq!(
        stored(&s3, ".quilt/named_packages/team/experiment/latest").await,
        hash1.as_bytes()
    );
    let pointers = s3
        .client()
        .list_objects_v2()
        .bucket("registry")
        .prefix(".quilt/named_packages/team/experiment/")
        .send()
        .await
        .unwrap();
    let names: Vec<String> = pointers
        .contents()
        .iter()
        .map(|o| o.key().unwrap().rsplit('/').next().unwrap().to_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    let stamp = names.iter().find(|n| *n != "latest").unwrap();
    assert!(stamp.len() == 10 && stamp.bytes().all(|b| b.is_ascii_digit()));

    let listing = server
        .ok("package_list", json!({"registry": "registry"}))
        .await;
    assert_eq!(listing["packages"].as_array().unwrap().len(), 1);
    assert_eq!(listing["packages"][0]["name"], "team/experiment");
    // Names only unless details are asked for.
    assert!(listing["packages"][0].get("top_hash").is_none());
    let listing = server
        .ok(
            "package_list",
            json!({"registry": "registry", "include_details": true}),
        )
        .await;
    assert_eq!(listing["packages"][0]["top_hash"], hash1);
    assert!(
        listing["packages"][0]["modified"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );

    let browse = server
        .ok("package_browse", json!({"package_name": "team/experiment", "registry": "registry", "top_hash": &hash1[..8], "path": "sub"}))
        .await;
    assert_eq!(browse["top_hash"], hash1);
    assert_eq!(browse["message"], "first revision");
    assert_eq!(browse["user_meta"]["nested"]["a"], json!([1.5, 1e-05]));
    assert_eq!(browse["entry_count"], 1);
    assert_eq!(browse["entries"][0]["logical_key"], "sub/b.json");
    assert_eq!(
        browse["entries"][0]["physical_key"],
        "s3://sources/raw/sub/b.json"
    );
    assert_eq!(browse["entries"][0]["hash"]["type"], "sha2-256-chunked");
    let all = server
        .ok(
            "package_browse",
            json!({"package_name": "team/experiment", "registry": "registry", "max_entries": 2}),
        )
        .await;
    assert_eq!(
        (all["entry_count"].as_u64(), all["truncated"].as_bool()),
        (Some(4), Some(true))
    );
    assert_eq!(all["entries"].as_array().unwrap().len(), 2);

    // A second revision: one file changed, one removed, one added.
    s3.put("sources", "v2/a.csv", b"id,v\n1,3\n", "text/csv", &[])
        .await;
    s3.put("sources", "v2/new.txt", b"new", "text/plain", &[])
        .await;
    let mut revise = json!({
        "package_name": "team/experiment",
        "registry": "registry",
        "entries": [
            {"logical_key": "a.csv", "s3_uri": "s3://sources/v2/a.csv"},
            {"logical_key": "docs/README.md", "s3_uri": "s3://sources/docs/README.md"},
            {"logical_key": "sub/b.json", "s3_uri": "s3://sources/raw/sub/b.json"},
        ],
        "s3_uris": ["s3://sources/v2/new.txt"],
        "message": "second revision",
    });
    // The package exists: without overwrite, a create that would drop entries is
    // refused before any source is read, pointing at package_patch.
    let refused = server.call("package_create", revise.clone()).await.unwrap();
    assert_eq!(error_code(&refused), "conflict");
    let message = refused.structured_content.as_ref().unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("package_patch")
            && message.contains("overwrite")
            && message.contains(&hash1),
        "{message}"
    );
    revise["overwrite"] = json!(true);
    let second = server.ok("package_create", revise).await;
    let hash2 = second["top_hash"].as_str().unwrap().to_owned();
    assert_eq!(second["previous_top_hash"], hash1);
    // Against the first revision: new.txt added, empty.txt removed, a.csv modified,
    // README.md and sub/b.json unchanged.
    assert_eq!(
        second["changes"],
        json!({"added": 1, "removed": 1, "modified": 1, "unchanged": 2})
    );

    let diff = server
        .ok(
            "package_diff",
            json!({"package1_name": "team/experiment", "registry": "registry"}),
        )
        .await;
    assert_eq!(diff["package1"]["top_hash"], hash1);
    assert_eq!(diff["package2"]["top_hash"], hash2);
    assert_eq!(diff["added"], json!(["new.txt"]));
    assert_eq!(diff["removed"], json!(["empty.txt"]));
    assert_eq!(diff["modified"], json!(["a.csv"]));
    assert_eq!(diff["metadata_changed"], json!([]));
    assert_eq!(diff["package_metadata_changed"], true);
    let explicit = server
        .ok("package_diff", json!({"package1_name": "team/experiment", "registry": "registry", "package1_hash": hash2, "package2_hash": &hash1[..10]}))
        .await;
    assert_eq!(explicit["added"], json!(["empty.txt"]));

    // Errors: unknown package, ambiguous or unknown hash, bad name.
    let result = server
        .call(
            "package_browse",
            json!({"package_name": "team/nope", "registry": "registry"}),
        )
        .await
        .unwrap();
    assert_eq!(error_code(&result), "not_found");
    let result = server.call("package_browse", json!({"package_name": "team/experiment", "registry": "registry", "top_hash": "ffffff"})).await.unwrap();
    assert_eq!(error_code(&result), "not_found");
    let result = server.call("package_create", json!({"package_name": "bad name", "registry": "registry", "s3_uris": ["s3://sources/raw/"]})).await.unwrap();
    assert_eq!(error_code(&result), "invalid_argument");
    server.stop().await;
}

#[tokio::test]
async fn a_manifest_written_by_quilt3_is_browsed_and_verified() {
    let s3 = sample().await;
    let meta: Value = serde_json::from_str(QUILT3_MANIFEST_META).unwrap();
    let hash = meta["top_hash"].as_str().unwrap();
    s3.put(
        "registry",
        &format!(".quilt/packages/{hash}"),
        QUILT3_MANIFEST.as_bytes(),
        "application/jsonl",
        &[],
    )
    .await;
    s3.put(
        "registry",
        ".quilt/named_packages/quilt3/made/1700000000",
        hash.as_bytes(),
        "text/plain",
        &[],
    )
    .await;
    s3.put(
        "registry",
        ".quilt/named_packages/quilt3/made/latest",
        hash.as_bytes(),
        "text/plain",
        &[],
    )
    .await;
    let server = start(&s3, &token(json!({}))).await;
    let browse = server
        .ok(
            "package_browse",
            json!({"package_name": "quilt3/made", "registry": "s3://registry"}),
        )
        .await;
    assert_eq!(browse["top_hash"], hash);
    assert_eq!(browse["message"], "made by quilt3 8.0.0");
    assert_eq!(browse["user_meta"]["score"], 0.25);
    assert_eq!(browse["entry_count"], 3);
    assert_eq!(browse["total_size"], 20);
    assert_eq!(browse["entries"][0]["logical_key"], "README.md");
    assert_eq!(
        browse["entries"][0]["physical_key"],
        "s3://lab-data/pkg/README.md?versionId=v1"
    );
    assert_eq!(browse["entries"][0]["meta"]["user_meta"]["kind"], "doc");
    assert_eq!(
        browse["entries"][2]["physical_key"],
        "s3://lab-data/pkg/data/b%20c.csv"
    );
    assert_eq!(browse["directories"][0]["logical_key"], "data/");
    let listing = server
        .ok(
            "package_list",
            json!({"registry": "registry", "prefix": "quilt3/", "include_details": true}),
        )
        .await;
    // When `latest` was written.
    assert!(
        listing["packages"][0]["modified"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );

    // A tampered manifest is an integrity error naming both hashes.
    let tampered = QUILT3_MANIFEST.replace("\"size\": 16", "\"size\": 17");
    s3.put(
        "registry",
        &format!(".quilt/packages/{hash}"),
        tampered.as_bytes(),
        "application/jsonl",
        &[],
    )
    .await;
    let result = server
        .call(
            "package_browse",
            json!({"package_name": "quilt3/made", "registry": "registry"}),
        )
        .await
        .unwrap();
    assert_eq!(error_code(&result), "integrity_error");
    let message = result.structured_content.unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains(hash) && message.contains("hashes to"),
        "{message}"
    );
    server.stop().await;
}

/// Records progress notifications and, on the first, moves `latest` behind the
/// server's back (as a concurrent push by someone else would).
#[derive(Clone, Default)]
struct Racer {
    progress: Arc<Mutex<Vec<ProgressNotificationParam>>>,
    endpoint: Arc<Mutex<Option<String>>>,
}

impl ClientHandler for Racer {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let first = {
            let mut progress = self.progress.lock().unwrap();
            progress.push(params);
            progress.len() == 1
        };
        let endpoint = self.endpoint.lock().unwrap().clone();
        if let (true, Some(endpoint)) = (first, endpoint) {
            let config = aws_sdk_s3::Config::builder()
                .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
                .region(aws_sdk_s3::config::Region::new("us-east-1"))
                .credentials_provider(aws_sdk_s3::config::Credentials::new(
                    ACCESS_KEY, SECRET_KEY, None, None, "t",
                ))
                .endpoint_url(endpoint)
                .force_path_style(true)
                .build();
            aws_sdk_s3::Client::from_conf(config)
                .put_object()
                .bucket("registry")
                .key(".quilt/named_packages/team/race/latest")
                .body(aws_sdk_s3::primitives::ByteStream::from(
                    "e".repeat(64).into_bytes(),
                ))
                .send()
                .await
                .unwrap();
        }
    }
}

/// Sends `package_create` as a cancellable request (which carries a progress token).
async fn send_create<H: ClientHandler>(
    server: &Server<H>,
    args: &Value,
) -> rmcp::service::RequestHandle<RoleClient> {
    let params = CallToolRequestParams::new("package_create")
        .with_arguments(args.as_object().unwrap().clone());
    server
        .client
        .send_cancellable_request(
            ClientRequest::CallToolRequest(Request::new(params)),
            PeerRequestOptions::no_options(),
        )
        .await
        .unwrap()
}

async fn create_with_progress(server: &Server<Racer>, args: Value) -> rmcp::model::CallToolResult {
    let handle = send_create(server, &args).await;
    match handle.await_response().await.unwrap() {
        ServerResult::CallToolResult(result) => result,
        other => panic!("unexpected response {other:?}"),
    }
}

#[tokio::test]
async fn progress_is_reported_and_a_moved_latest_is_a_conflict_unless_forced() {
    let s3 = sample().await;
    // Small files finish first; the large one keeps the create busy while the client
    // moves `latest` on the first progress notification.
    for i in 0..5 {
        s3.put(
            "sources",
            &format!("race/small-{i}.txt"),
            format!("{i}").as_bytes(),
            "text/plain",
            &[],
        )
        .await;
    }
    s3.seed_file("sources", "race/zz-large.bin", &vec![7u8; 48 * 1024 * 1024]);
    let racer = Racer::default();
    *racer.endpoint.lock().unwrap() = Some(s3.endpoint.clone());
    let server = start_on(&s3, &token(json!({})), &[], racer.clone()).await;
    let args = json!({"package_name": "team/race", "registry": "registry", "s3_uris": ["s3://sources/race/"]});

    let result = create_with_progress(&server, args.clone()).await;
    assert_eq!(error_code(&result), "conflict");
    {
        let progress = racer.progress.lock().unwrap();
        assert_eq!(progress.len(), 6, "one notification per file");
        assert_eq!(progress.last().unwrap().progress, 6.0);
        assert_eq!(progress.last().unwrap().total, Some(6.0));
    }
    // Nothing was published: latest is still what the other writer put there.
    assert_eq!(
        stored(&s3, ".quilt/named_packages/team/race/latest").await,
        "e".repeat(64).into_bytes()
    );

    *racer.endpoint.lock().unwrap() = None;
    let mut forced = args.clone();
    forced["force"] = json!(true);
    // The other writer's latest names no manifest: the package is replaced all the
    // same, and the result says why it cannot count the changes.
    forced["overwrite"] = json!(true);
    let result = create_with_progress(&server, forced).await;
    assert_ne!(result.is_error, Some(true), "{result:?}");
    let content = result.structured_content.unwrap();
    assert_eq!(content["previous_top_hash"], "e".repeat(64));
    assert!(content["changes"].is_null(), "{content}");
    assert!(
        content["changes_error"]
            .as_str()
            .unwrap()
            .contains("no revision"),
        "{content}"
    );
    let hash = content["top_hash"].as_str().unwrap().to_owned();
    assert_eq!(
        stored(&s3, ".quilt/named_packages/team/race/latest").await,
        hash.as_bytes()
    );
    server.stop().await;
}

#[tokio::test]
async fn the_gate_refuses_every_package_tool_before_s3() {
    let s3 = sample().await;
    let create =
        json!({"package_name": "team/x", "registry": "registry", "s3_uris": ["s3://sources/raw/"]});
    let cases: Vec<GateCase> = vec![
        (
            "package_list",
            json!({}),
            json!({"registry": "forbidden"}),
            "bucket_not_allowed",
        ),
        (
            "package_list",
            json!({"permissions": ["s3:GetObject"]}),
            json!({"registry": "registry"}),
            "missing_permission",
        ),
        (
            "package_browse",
            json!({}),
            json!({"registry": "forbidden", "package_name": "a/b"}),
            "bucket_not_allowed",
        ),
        (
            "package_browse",
            json!({"permissions": ["s3:ListBucket"]}),
            json!({"registry": "registry", "package_name": "a/b"}),
            "missing_permission",
        ),
        (
            "package_browse",
            json!({"permissions": ["s3:GetObject"]}),
            json!({"registry": "registry", "package_name": "a/b", "top_hash": "abcdef"}),
            "missing_permission",
        ),
        (
            "package_diff",
            json!({}),
            json!({"registry": "forbidden", "package1_name": "a/b"}),
            "bucket_not_allowed",
        ),
        (
            "package_diff",
            json!({"permissions": ["s3:GetObject"]}),
            json!({"registry": "registry", "package1_name": "a/b"}),
            "missing_permission",
        ),
        (
            "package_create",
            json!({}),
            json!({"package_name": "team/x", "registry": "forbidden", "s3_uris": ["s3://sources/raw/"]}),
            "bucket_not_allowed",
        ),
        (
            "package_create",
            json!({}),
            json!({"package_name": "team/x", "registry": "registry", "s3_uris": ["s3://forbidden/x/"]}),
            "bucket_not_allowed",
        ),
        (
            "package_create",
            json!({}),
            json!({"package_name": "team/x", "registry": "registry", "entries": [{"logical_key": "k", "s3_uri": "s3://forbidden/k"}]}),
            "bucket_not_allowed",
        ),
        (
            "package_create",
            json!({"permissions": ["s3:GetObject", "s3:ListBucket"]}),
            create.clone(),
            "missing_permission",
        ),
        (
            "package_create",
            json!({"level": "read"}),
            create.clone(),
            "write_not_allowed",
        ),
    ];
    assert_refused_before_s3(&s3, cases, token).await;
}

#[tokio::test]
async fn a_cancelled_create_publishes_nothing() {
    let s3 = sample().await;
    s3.seed_file("sources", "cancel/large.bin", &vec![3u8; 96 * 1024 * 1024]);
    s3.put("sources", "cancel/small.txt", b"small", "text/plain", &[])
        .await;
    let server = start(&s3, &token(json!({}))).await;
    let args = json!({"package_name": "team/cancelled", "registry": "registry", "s3_uris": ["s3://sources/cancel/"]});
    let handle = send_create(&server, &args).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    handle.cancel(Some("changed my mind".into())).await.unwrap();
    // Give the server time to have finished, had it not stopped.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let pointers = s3
        .client()
        .list_objects_v2()
        .bucket("registry")
        .prefix(".quilt/named_packages/team/cancelled/")
        .send()
        .await
        .unwrap();
    assert_eq!(pointers.key_count(), Some(0), "{:?}", pointers.contents());
    let manifests = s3
        .client()
        .list_objects_v2()
        .bucket("registry")
        .prefix(".quilt/packages/")
        .send()
        .await
        .unwrap();
    assert_eq!(manifests.key_count(), Some(0));
    // The server is still answering.
    server
        .ok("package_list", json!({"registry": "registry"}))
        .await;
    let (_, log_dir) = server.stop().await;
    let calls: Vec<_> = log_lines(log_dir.path())
        .into_iter()
        .filter(|l| l["event"] == "tool_call" && l["tool"] == "package_create")
        .collect();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["outcome"], "error");
}

/// A manifest of `keys` (in the order given) with a size per entry, as quilt3 writes it.
fn manifest_of(keys: &[String], message: &str, bump: usize) -> Manifest {
    let mut text = format!("{{\"version\": \"v0\", \"message\": \"{message}\"}}\n");
    for (i, key) in keys.iter().enumerate() {
        let size = key.len() + usize::from(i % 10 == 0) * bump;
        text.push_str(&format!(
            "{{\"logical_key\": \"{key}\", \"physical_keys\": [\"s3://sources/{key}\"], \"size\": {size}, \"hash\": {{\"type\": \"SHA256\", \"value\": \"{:064x}\"}}, \"meta\": {{}}}}\n",
            key.len()
        ));
    }
    Manifest::parse(&text).unwrap()
}

async fn store_revision(s3: &TestS3, name: &str, manifest: &Manifest) -> String {
    let hash = manifest.top_hash();
    crate::package_pages::put_revision(s3, name, &hash, &manifest.to_bytes()).await;
    hash
}

#[tokio::test]
async fn browse_pages_with_a_cursor_and_diff_counts_and_truncates() {
    let s3 = sample().await;
    let mut keys: Vec<String> = (0..2500)
        .map(|i| format!("d{}/sub{}/f{i:04}.csv", i % 3, i % 7))
        .collect();
    // Written out of order: the server sorts to verify and to page.
    keys.reverse();
    let first = store_revision(&s3, "big/pkg", &manifest_of(&keys, "one", 0)).await;
    let server = start(&s3, &token(json!({}))).await;
    let mut sorted = keys.clone();
    sorted.sort_by(|a, b| quilt_mcp::quilt::manifest::tree_order(a, b));
    let mut moved: Option<String> = None;

    for (path, expected) in [
        ("", sorted.clone()),
        (
            "d1/",
            sorted
                .iter()
                .filter(|k| k.starts_with("d1/"))
                .cloned()
                .collect(),
        ),
    ] {
        let mut got = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut args = json!({"package_name": "big/pkg", "registry": "registry", "path": path, "max_entries": 400});
            match &cursor {
                Some(cursor) => args["cursor"] = json!(cursor),
                None if moved.is_some() => args["top_hash"] = json!(first),
                None => {}
            }
            let page = server.ok("package_browse", args).await;
            pages += 1;
            assert_eq!(page["top_hash"], first);
            assert_eq!(page["entry_count"], expected.len());
            let entries = page["entries"].as_array().unwrap();
            assert!(entries.len() <= 400);
            got.extend(
                entries
                    .iter()
                    .map(|e| e["logical_key"].as_str().unwrap().to_owned()),
            );
            assert_eq!(page["truncated"], page.get("next_cursor").is_some());
            // The directory summary comes with the first page only.
            assert_eq!(page.get("directories").is_some(), pages == 1);
            assert_eq!(page.get("directories_truncated").is_some(), pages == 1);
            match page.get("next_cursor") {
                Some(next) => cursor = Some(next.as_str().unwrap().to_owned()),
                None => break,
            }
            if pages == 1 && path.is_empty() {
                // Directories: the immediate sub-directories, with whole-revision counts.
                let dirs: Vec<(&str, u64)> = page["directories"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| {
                        (
                            d["logical_key"].as_str().unwrap(),
                            d["entry_count"].as_u64().unwrap(),
                        )
                    })
                    .collect();
                assert_eq!(dirs, [("d0/", 834), ("d1/", 833), ("d2/", 833)]);
                assert_eq!(page["directories_truncated"], false);
                // latest moves: the cursor still pages through its own revision.
                let other = vec!["only.txt".to_owned()];
                moved = Some(store_revision(&s3, "big/pkg", &manifest_of(&other, "two", 0)).await);
            }
        }
        assert_eq!(got, expected, "path {path:?}");
        assert_eq!(pages, expected.len().div_ceil(400));
    }

    // A cursor for another path or revision, or garbage, is refused.
    let page = server
        .ok("package_browse", json!({"package_name": "big/pkg", "registry": "registry", "top_hash": first, "max_entries": 10}))
        .await;
    let cursor = page["next_cursor"].as_str().unwrap();
    for (args, needle) in [
        (json!({"path": "d1", "top_hash": first}), "path"),
        (json!({"top_hash": moved.clone().unwrap()}), "revision"),
        (json!({"top_hash": first, "cursor": "garbage!"}), "cursor"),
    ] {
        let mut full = json!({"package_name": "big/pkg", "registry": "registry", "cursor": cursor});
        for (k, v) in args.as_object().unwrap() {
            full[k] = v.clone();
        }
        let result = server.call("package_browse", full).await.unwrap();
        assert_eq!(error_code(&result), "invalid_argument");
        let message = result.structured_content.unwrap()["error"]["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(message.contains(needle), "{message}");
    }

    // Diff: every tenth size changed, the lists cut at max_changes with full counts.
    let mut fewer = sorted.clone();
    fewer.truncate(2400);
    let second = store_revision(&s3, "big/pkg", &manifest_of(&fewer, "three", 1)).await;
    let diff = server
        .ok("package_diff", json!({"package1_name": "big/pkg", "registry": "registry", "package1_hash": first, "package2_hash": second, "max_changes": 5}))
        .await;
    assert_eq!(diff["removed_count"], 100);
    assert_eq!(diff["modified_count"], 240);
    assert_eq!(diff["added_count"], 0);
    assert_eq!(diff["metadata_changed_count"], 0);
    assert_eq!(diff["unchanged"], 2160);
    assert_eq!(diff["truncated"], true);
    assert_eq!(diff["removed"], json!(sorted[2400..2405]));
    assert_eq!(diff["modified"].as_array().unwrap().len(), 5);
    assert_eq!(diff["package_metadata_changed"], true);
}

/// `package_list` pages through a registry in key order, lists keys
/// only as far as a page needs, and reports a corrupt pointer for its package alone.
#[tokio::test]
async fn package_list_pages_with_a_prefix_and_reports_a_bad_pointer_alone() {
    let s3 = sample().await;
    let hash = |c: char| c.to_string().repeat(64);
    let pointer = |name: &str, file: &str| format!("registry/.quilt/named_packages/{name}/{file}");
    // Written straight into the store: 1,100 packages under `bulk/`, 2,200 keys, more
    // than one ListObjectsV2 page of 1000.
    for i in 0..1100 {
        let name = format!("bulk/p{i:04}");
        std::fs::create_dir_all(s3.root().join(pointer(&name, ""))).unwrap();
        std::fs::write(s3.root().join(pointer(&name, "latest")), hash('a')).unwrap();
        std::fs::write(s3.root().join(pointer(&name, "1700000000")), hash('a')).unwrap();
    }
    let seed = |name: &str, file: &str, body: &str| {
        let path = s3.root().join(pointer(name, file));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    };
    seed("team/a", "latest", &hash('1'));
    seed("team/a", "1700000001", &hash('0'));
    seed("team/a", "1700000002", &hash('1'));
    seed("team/a-x", "latest", &hash('2'));
    seed("team/b", "latest", "this is not a top hash");
    seed("team/b", "1700000003", &hash('3'));
    seed("team/c", "latest", &hash('4'));
    // Not pointers: ignored.
    seed("team/c", "sub/latest", &hash('5'));
    std::fs::write(
        s3.root().join("registry/.quilt/named_packages/team/stray"),
        "x",
    )
    .unwrap();
    seed("zzz/last", "latest", &hash('6'));

    let server = start(&s3, &token(json!({}))).await;
    let page = |args: Value| {
        let server = &server;
        async move {
            let mut args = args;
            args["registry"] = json!("registry");
            server.ok("package_list", args).await
        }
    };
    let names = |listing: &Value| -> Vec<String> {
        listing["packages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect()
    };

    // Key order: `team/a-x/` sorts before `team/a/`.
    let first = page(json!({"prefix": "team/", "max_packages": 2, "include_details": true})).await;
    assert_eq!(names(&first), ["team/a-x", "team/a"]);
    assert_eq!(first["count"], 2);
    assert_eq!(first["truncated"], true);
    assert_eq!(first["packages"][1]["top_hash"], hash('1'));
    assert!(first["packages"][1]["modified"].is_string(), "{first}");
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();

    let second = page(
        json!({"prefix": "team/", "max_packages": 2, "cursor": cursor, "include_details": true}),
    )
    .await;
    assert_eq!(names(&second), ["team/b", "team/c"]);
    assert_eq!(second["truncated"], false);
    assert!(second.get("next_cursor").is_none(), "{second}");
    let bad = &second["packages"][0];
    assert_eq!(bad["top_hash"], Value::Null);
    assert!(
        bad["error"].as_str().unwrap().contains("team/b/latest"),
        "{bad}"
    );
    assert_eq!(second["packages"][1]["top_hash"], hash('4'));
    assert!(second["packages"][1].get("error").is_none());

    // A page of names is one delimited ListObjectsV2 (no pointer listed or read);
    // with details, one GetObject per package more.
    let before = s3.requests();
    let bulk = page(json!({"prefix": "bulk/", "max_packages": 3})).await;
    assert_eq!(names(&bulk), ["bulk/p0000", "bulk/p0001", "bulk/p0002"]);
    assert_eq!(s3.requests() - before, 1);
    let before = s3.requests();
    page(json!({"prefix": "bulk/", "max_packages": 3, "include_details": true})).await;
    assert_eq!(s3.requests() - before, 1 + 3);

    // Paging through everything visits every package once, in order.
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut args = json!({"max_packages": 400});
        if let Some(c) = &cursor {
            args["cursor"] = json!(c);
        }
        let listing = page(args).await;
        all.extend(names(&listing));
        pages += 1;
        match listing.get("next_cursor").and_then(Value::as_str) {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(all.len(), 1100 + 4 + 1);
    let mut sorted = all.clone();
    sorted.sort_by(|a, b| format!("{a}/").cmp(&format!("{b}/")));
    assert_eq!(all, sorted);
    sorted.dedup();
    assert_eq!(sorted.len(), all.len());

    // Bad arguments are invalid_argument, before S3.
    let c_cursor = second["packages"][1]["name"].as_str().unwrap().to_owned();
    let foreign = {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(c_cursor)
    };
    for args in [
        json!({"registry": "registry", "max_packages": 0}),
        json!({"registry": "registry", "max_packages": 10_001}),
        json!({"registry": "registry", "cursor": "not base64!"}),
        json!({"registry": "registry", "cursor": "x".repeat(5000)}),
        json!({"registry": "registry", "cursor": "bm9zbGFzaA"}),
        json!({"registry": "registry", "prefix": "bulk/", "cursor": foreign}),
    ] {
        let result = server.call("package_list", args.clone()).await.unwrap();
        assert_eq!(error_code(&result), "invalid_argument", "{args}");
    }
    server.stop().await;
}
