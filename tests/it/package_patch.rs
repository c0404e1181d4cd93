//! `package_patch` (docs/reference.md, Tools and Results) through the binary: against
//! the in-process S3, a parent written by quilt3 patched with adds, replacements,
//! removed keys and prefixes, message and metadata, its kept lines compared byte for
//! byte; refusals that publish nothing; a governed registry; and against moto,
//! concurrent patches of one package, none of whose changes is lost.
use std::collections::BTreeSet;

use crate::common::moto::Moto;
use crate::common::s3::{ACCESS_KEY, SECRET_KEY, TestS3};
use crate::common::*;
use crate::package_pages::{Writer, peak_rss_mib, put_revision, server_pid};
use aws_sdk_s3::primitives::ByteStream;
use quilt_mcp::quilt::manifest::{Manifest, tree_order};
use serde_json::{Value, json};

const QUILT3_MANIFEST: &str = include_str!("../fixtures/quilt3/quilt3_manifest.jsonl");
const PACKAGE: &str = "team/pkg";
const POINTERS: &str = ".quilt/named_packages/team/pkg/";
/// A line that writing its object back would not reproduce (compact separators, a
/// float written `1.50`): a kept entry must still come out exactly so.
const ODD_LINE: &str = r#"{"logical_key":"zzz/odd.json","physical_keys":["s3://lab-data/odd.json"],"size":3,"hash":{"type":"SHA256","value":"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},"meta":{"n":1.50}}"#;

fn token(permissions: &[&str]) -> String {
    hs256(&claims_with(json!({
        "buckets": ["registry", "sources", "schemas"],
        "permissions": permissions,
        "level": "write",
        "aws_credentials": {"access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY},
    })))
}

const WRITE: &[&str] = &["s3:GetObject", "s3:ListBucket", "s3:PutObject"];

/// The parent: quilt3's manifest (a directory line, entry meta, a `SHA256` entry) and
/// the odd line, as revision `latest` of [`PACKAGE`]; its top hash.
async fn seed_parent(s3: &TestS3) -> String {
    let text = format!("{QUILT3_MANIFEST}{ODD_LINE}\n");
    let hash = Manifest::parse(&text).unwrap().top_hash();
    s3.put(
        "registry",
        &format!(".quilt/packages/{hash}"),
        text.as_bytes(),
        "application/jsonl",
        &[],
    )
    .await;
    for pointer in ["1700000000", "latest"] {
        s3.put(
            "registry",
            &format!("{POINTERS}{pointer}"),
            hash.as_bytes(),
            "text/plain",
            &[],
        )
        .await;
    }
    hash
}

async fn sample() -> TestS3 {
    let s3 = TestS3::start().await;
    for bucket in ["registry", "sources", "schemas"] {
        s3.create_bucket(bucket).await;
    }
    for (key, body) in [
        ("new/readme.md", "# new readme\n"),
        ("dir/p.txt", "p"),
        ("dir/q/r.txt", "rr"),
        ("more/x.csv", "x,y\n"),
    ] {
        s3.put("sources", key, body.as_bytes(), "text/plain", &[])
            .await;
    }
    s3
}

async fn read(s3: &aws_sdk_s3::Client, key: &str) -> Option<String> {
    let out = s3
        .get_object()
        .bucket("registry")
        .key(key)
        .send()
        .await
        .ok()?;
    Some(String::from_utf8(out.body.collect().await.unwrap().into_bytes().to_vec()).unwrap())
}

async fn manifest(s3: &aws_sdk_s3::Client, top_hash: &str) -> String {
    read(s3, &format!(".quilt/packages/{top_hash}"))
        .await
        .unwrap()
}

async fn latest(s3: &aws_sdk_s3::Client) -> Option<String> {
    read(s3, &format!("{POINTERS}latest")).await
}

async fn manifest_count(s3: &aws_sdk_s3::Client) -> usize {
    s3.list_objects_v2()
        .bucket("registry")
        .prefix(".quilt/packages/")
        .send()
        .await
        .unwrap()
        .contents()
        .len()
}

/// The logical keys of a manifest's lines after the header, in order.
fn keys(text: &str) -> Vec<String> {
    text.lines()
        .skip(1)
        .map(|line| {
            serde_json::from_str::<Value>(line).unwrap()["logical_key"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

fn header(text: &str) -> Value {
    serde_json::from_str(text.lines().next().unwrap()).unwrap()
}

fn failure(result: &rmcp::model::CallToolResult) -> (String, String) {
    assert_eq!(result.is_error, Some(true), "{result:?}");
    let error = &result.structured_content.as_ref().unwrap()["error"];
    (
        error["code"].as_str().unwrap().to_owned(),
        error["message"].as_str().unwrap().to_owned(),
    )
}

fn patch(extra: Value) -> Value {
    let mut args = json!({"package_name": PACKAGE, "registry": "s3://registry"});
    for (k, v) in extra.as_object().unwrap() {
        args[k] = v.clone();
    }
    args
}

#[tokio::test]
async fn patches_add_replace_and_remove_and_keep_the_parents_lines() {
    let s3 = sample().await;
    let parent = seed_parent(&s3).await;
    let parent_text = manifest(&s3.client(), &parent).await;
    let server = start_on(&s3, &token(WRITE), &[], ()).await;

    // On latest: replace README.md, add a prefix, remove a key; metadata kept.
    let first = server
        .ok(
            "package_patch",
            patch(json!({
                "add": [{"logical_key": "README.md", "s3_uri": "s3://sources/new/readme.md"}],
                "add_s3_uris": ["s3://sources/dir/"],
                "remove": ["data/a.csv"],
                "message": "patched",
            })),
        )
        .await;
    let hash1 = first["top_hash"].as_str().unwrap().to_owned();
    assert_eq!(first["parent_top_hash"], parent.as_str());
    assert_eq!(first["previous_top_hash"], parent.as_str());
    assert_eq!(
        first["changes"],
        json!({"added": 2, "removed": 1, "modified": 1, "unchanged": 2})
    );
    assert_eq!(first["entry_count"], 5);
    assert_eq!(first["total_size"], 13 + 1 + 2 + 3);
    assert_eq!(first["workflow"], Value::Null);
    assert_eq!(first["race_safe"], true);
    assert_eq!(
        first["uri"],
        format!("quilt+s3://registry#package={PACKAGE}@{hash1}")
    );
    assert_eq!(latest(&s3.client()).await.as_deref(), Some(hash1.as_str()));

    let text1 = manifest(&s3.client(), &hash1).await;
    assert_eq!(Manifest::parse(&text1).unwrap().top_hash(), hash1);
    assert_eq!(
        keys(&text1),
        [
            "data/",
            "README.md",
            "data/b c.csv",
            "p.txt",
            "q/r.txt",
            "zzz/odd.json"
        ]
    );
    let head = header(&text1);
    assert_eq!(head["user_meta"], header(&parent_text)["user_meta"]);
    assert_eq!(head["message"], "patched");
    // Every line kept from the parent is the parent's line, byte for byte.
    let lines1: BTreeSet<&str> = text1.lines().skip(1).collect();
    for line in parent_text.lines().skip(1) {
        let key = serde_json::from_str::<Value>(line).unwrap()["logical_key"].clone();
        if key == "data/" || key == "data/b c.csv" || key == "zzz/odd.json" {
            assert!(lines1.contains(line), "{line} was not kept as it was");
        }
    }
    assert!(lines1.contains(ODD_LINE));
    // The server reads what it wrote.
    let browse = server
        .ok(
            "package_browse",
            json!({"package_name": PACKAGE, "registry": "registry"}),
        )
        .await;
    assert_eq!(browse["top_hash"], hash1.as_str());

    // An explicit parent (a prefix of latest): remove a whole prefix, replace the
    // metadata, no message.
    let second = server
        .ok(
            "package_patch",
            patch(json!({
                "parent_hash": &hash1[..8],
                "remove": ["data/"],
                "metadata": {"v": 2},
            })),
        )
        .await;
    let hash2 = second["top_hash"].as_str().unwrap().to_owned();
    assert_eq!(second["parent_top_hash"], hash1.as_str());
    assert_eq!(
        second["changes"],
        json!({"added": 0, "removed": 1, "modified": 0, "unchanged": 4})
    );
    let text2 = manifest(&s3.client(), &hash2).await;
    assert_eq!(
        keys(&text2),
        ["README.md", "p.txt", "q/r.txt", "zzz/odd.json"]
    );
    assert_eq!(header(&text2)["user_meta"], json!({"v": 2}));
    assert_eq!(header(&text2)["message"], Value::Null);
    let lines2: BTreeSet<&str> = text2.lines().skip(1).collect();
    for line in text1.lines().skip(2) {
        assert!(
            lines2.contains(line) || line.contains("\"data/"),
            "{line} was not kept as it was"
        );
    }

    // Adding what is already there, unchanged, still makes a revision (new message).
    let third = server
        .ok(
            "package_patch",
            patch(json!({
                "add": [{"logical_key": "p.txt", "s3_uri": "s3://sources/dir/p.txt"}],
                "message": "same content",
            })),
        )
        .await;
    assert_eq!(
        third["changes"],
        json!({"added": 0, "removed": 0, "modified": 0, "unchanged": 4})
    );
    server.stop().await;
}

#[tokio::test]
async fn refused_patches_publish_nothing() {
    let s3 = sample().await;
    let parent = seed_parent(&s3).await;
    let server = start_on(&s3, &token(WRITE), &[], ()).await;
    let client = s3.client();
    let moved = server
        .ok("package_patch", patch(json!({"message": "moved on"})))
        .await;
    let head = moved["top_hash"].as_str().unwrap().to_owned();
    let manifests = manifest_count(&client).await;

    // (arguments, code, what the message names)
    let cases = [
        (
            patch(json!({"remove": ["data/a.csv", "nothing/", "README.md/"]})),
            "invalid_argument",
            "README.md/, nothing/",
        ),
        (
            patch(json!({"parent_hash": parent, "message": "stale"})),
            "conflict",
            "is not the latest",
        ),
        (
            patch(json!({"parent_hash": &parent[..10], "remove": ["README.md"]})),
            "conflict",
            head.as_str(),
        ),
        (
            patch(json!({"parent_hash": "0123456789", "message": "m"})),
            "not_found",
            "0123456789",
        ),
        (
            patch(json!({"add_s3_uris": ["s3://sources/missing/"]})),
            "not_found",
            "missing/",
        ),
        (
            json!({"package_name": "team/none", "registry": "registry", "message": "m"}),
            "not_found",
            "package_create",
        ),
    ];
    for (args, code, names) in cases {
        let result = server.call("package_patch", args.clone()).await.unwrap();
        let (got, message) = failure(&result);
        assert_eq!(got, code, "{args}: {message}");
        assert!(message.contains(names), "{args}: {message}");
        assert_eq!(latest(&client).await.as_deref(), Some(head.as_str()));
        assert_eq!(manifest_count(&client).await, manifests, "{args}");
    }

    // A read-level token may not patch.
    let reader = hs256(&claims_with(json!({
        "buckets": ["registry", "sources"],
        "permissions": WRITE,
        "level": "read",
        "aws_credentials": {"access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY},
    })));
    let read_only = start_on(&s3, &reader, &[], ()).await;
    let refused = read_only
        .call("package_patch", patch(json!({"message": "no"})))
        .await;
    assert!(refused.is_err(), "{refused:?}");
    read_only.stop().await;
    server.stop().await;
}

const GOVERNED: &str = r#"version: "1"
default_workflow: gov
workflows:
  gov:
    name: Governed
    is_message_required: true
    metadata_schema: meta
    entries_schema: csv-only
schemas:
  meta: {url: "s3://schemas/meta.json"}
  csv-only: {url: "s3://schemas/entries.json"}
"#;

#[tokio::test]
async fn a_governed_registry_refuses_a_patch_that_breaks_its_workflow() {
    let s3 = sample().await;
    s3.put(
        "registry",
        ".quilt/workflows/config.yml",
        GOVERNED.as_bytes(),
        "text/yaml",
        &[],
    )
    .await;
    let meta = json!({"type": "object", "required": ["owner"]});
    let entries =
        json!({"type": "array", "items": {"properties": {"logical_key": {"pattern": "\\.csv$"}}}});
    for (key, schema) in [("meta.json", meta), ("entries.json", entries)] {
        s3.put(
            "schemas",
            key,
            schema.to_string().as_bytes(),
            "application/json",
            &[],
        )
        .await;
    }
    let server = start_on(&s3, &token(WRITE), &[], ()).await;
    let created = server
        .ok(
            "package_create",
            json!({
                "package_name": PACKAGE, "registry": "registry",
                "s3_uris": ["s3://sources/more/x.csv"],
                "message": "first", "metadata": {"owner": "ana"},
            }),
        )
        .await;
    let head = created["top_hash"].as_str().unwrap().to_owned();
    let client = s3.client();
    let manifests = manifest_count(&client).await;
    for (args, pointer) in [
        (
            patch(
                json!({"add": [{"logical_key": "notes.txt", "s3_uri": "s3://sources/dir/p.txt"}], "message": "m"}),
            ),
            "/entries/0/logical_key: ",
        ),
        (
            patch(json!({"metadata": {"n": 1}, "message": "m"})),
            "/metadata: \"owner\" is a required property",
        ),
        (
            patch(json!({"add": [{"logical_key": "y.csv", "s3_uri": "s3://sources/more/x.csv"}]})),
            "/message: ",
        ),
    ] {
        let result = server.call("package_patch", args.clone()).await.unwrap();
        let (code, message) = failure(&result);
        assert_eq!(code, "invalid_argument", "{args}: {message}");
        assert!(message.contains(pointer), "{args}: {message}");
        assert_eq!(latest(&client).await.as_deref(), Some(head.as_str()));
        assert_eq!(manifest_count(&client).await, manifests, "{args}");
    }
    // What passes is published with the workflow; the parent's metadata is kept.
    let patched = server
        .ok(
            "package_patch",
            patch(
                json!({"add": [{"logical_key": "y.csv", "s3_uri": "s3://sources/more/x.csv"}], "message": "more"}),
            ),
        )
        .await;
    assert_eq!(patched["workflow"], "gov");
    let text = manifest(&client, patched["top_hash"].as_str().unwrap()).await;
    assert_eq!(header(&text)["user_meta"], json!({"owner": "ana"}));
    assert_eq!(header(&text)["workflow"]["id"], "gov");
    server.stop().await;
}

/// Entries of the large parents the memory test patches.
const LARGE: usize = 100_000;
/// How far above its peak before the patch the server's peak RSS may go.
const PATCH_RSS_MIB: u64 = 64;

/// A large parent in tree order, and the same lines out of order: the patch holds only
/// its changes, whichever way the parent comes (the old patch, which held the merged
/// revision, peaked at 370-690 MiB for a 100,000-entry parent). Its result, its
/// manifest and its top hash are those of the revision it describes.
#[tokio::test]
async fn a_large_parent_is_patched_in_bounded_memory() {
    let s3 = sample().await;
    let mut writer = Writer::new("large");
    let mut keys: Vec<String> = (0..LARGE)
        .map(|i| format!("data/part-{:02}/file-{i:06}.csv", i % 20))
        .collect();
    keys.sort_by(|a, b| tree_order(a, b));
    for (i, key) in keys.iter().enumerate() {
        writer.entry(key, i, "{}");
    }
    let (hash, text) = writer.finish();
    put_revision(&s3, "team/sorted", &hash, text.as_bytes()).await;
    // The same entries, last first: read again sorting, its lines sorted aside.
    let mut lines: Vec<&str> = text.lines().collect();
    lines[1..].reverse();
    put_revision(
        &s3,
        "team/unsorted",
        &hash,
        (lines.join("\n") + "\n").as_bytes(),
    )
    .await;
    drop(lines);
    drop(text);
    let removed = keys
        .iter()
        .filter(|k| k.starts_with("data/part-07/"))
        .count();
    drop(keys);

    seed_parent(&s3).await;
    let server = start_on(&s3, &token(WRITE), &[], ()).await;
    let pid = server_pid(&server);
    // The baseline: the server has read and verified a (small) revision.
    server
        .ok(
            "package_browse",
            json!({"package_name": PACKAGE, "registry": "registry"}),
        )
        .await;
    for name in ["team/sorted", "team/unsorted"] {
        let before = peak_rss_mib(pid);
        let started = std::time::Instant::now();
        let add: Vec<Value> = ["new/readme.md", "dir/p.txt", "dir/q/r.txt", "more/x.csv"]
            .iter()
            .map(|k| json!({"logical_key": format!("added/{k}"), "s3_uri": format!("s3://sources/{k}")}))
            .collect();
        let patched = server
            .ok(
                "package_patch",
                json!({"package_name": name, "registry": "registry", "add": add,
                       "remove": ["data/part-07/"], "message": "large"}),
            )
            .await;
        let peak = peak_rss_mib(pid);
        eprintln!(
            "{name}: {LARGE} entries patched in {:.1} s, peak RSS {before} MiB before, {peak} MiB after",
            started.elapsed().as_secs_f64()
        );
        assert_eq!(
            patched["changes"],
            json!({"added": 4, "removed": removed, "modified": 0, "unchanged": LARGE - removed}),
            "{name}"
        );
        assert_eq!(patched["entry_count"], LARGE - removed + 4, "{name}");
        assert_eq!(patched["parent_top_hash"], hash.as_str(), "{name}");
        assert!(
            peak < before + PATCH_RSS_MIB,
            "{name}: peak RSS {peak} MiB, {before} MiB before the patch"
        );
        // The new revision is stored under its top hash, verified as it is read.
        let top_hash = patched["top_hash"].as_str().unwrap();
        let browsed = server
            .ok(
                "package_browse",
                json!({"package_name": name, "registry": "registry", "top_hash": top_hash, "max_entries": 1}),
            )
            .await;
        assert_eq!(browsed["entry_count"], LARGE - removed + 4, "{name}");
    }
    server.stop().await;
}

/// Patches in flight at once per round, each from its own server.
const WRITERS: usize = 4;
const ROUNDS: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto"]
async fn concurrent_patches_lose_no_change() {
    let moto = Moto::start().await;
    let s3 = moto.client();
    for bucket in ["registry", "sources"] {
        s3.create_bucket().bucket(bucket).send().await.unwrap();
    }
    for i in 0..WRITERS * ROUNDS {
        s3.put_object()
            .bucket("sources")
            .key(format!("w/{i}.csv"))
            .body(ByteStream::from(format!("{i}\n").into_bytes()))
            .send()
            .await
            .unwrap();
    }
    let token = hs256(&claims_with(json!({
        "buckets": ["registry", "sources"],
        "permissions": ["s3:GetObject", "s3:ListBucket", "s3:PutObject", "s3:DeleteObject"],
        "level": "write",
        "aws_credentials": {
            "access_key_id": crate::common::moto::ACCESS_KEY,
            "secret_access_key": crate::common::moto::SECRET_KEY,
        },
    })));
    let env = [
        ("AWS_ENDPOINT_URL_S3", moto.endpoint.as_str()),
        ("QUILT_MCP_S3_FORCE_PATH_STYLE", "true"),
        ("QUILT_MCP_JWT_SECRET", SECRET),
        ("QUILT_MCP_TOKEN", token.as_str()),
    ];
    let servers = futures::future::join_all((0..WRITERS).map(|_| Server::spawn(&env))).await;
    servers[0]
        .ok(
            "package_create",
            json!({"package_name": PACKAGE, "registry": "registry", "s3_uris": ["s3://sources/w/0.csv"]}),
        )
        .await;
    let mut expected: BTreeSet<String> = BTreeSet::from(["0.csv".to_owned()]);
    let mut parents = BTreeSet::new();
    let mut conflicts = 0;
    for round in 0..ROUNDS {
        let calls = servers.iter().enumerate().map(|(i, server)| {
            let n = round * WRITERS + i;
            let key = format!("added/{n}.csv");
            let args = json!({
                "package_name": PACKAGE, "registry": "registry",
                "add": [{"logical_key": key, "s3_uri": format!("s3://sources/w/{n}.csv")}],
            });
            async move { (key, server.call("package_patch", args).await.unwrap()) }
        });
        for (key, result) in futures::future::join_all(calls).await {
            let content = result.structured_content.unwrap();
            if result.is_error == Some(true) {
                assert_eq!(content["error"]["code"], "conflict", "{content}");
                conflicts += 1;
            } else {
                assert_eq!(content["race_safe"], true, "{content}");
                assert_eq!(content["parent_top_hash"], content["previous_top_hash"]);
                assert!(
                    parents.insert(content["parent_top_hash"].as_str().unwrap().to_owned()),
                    "two patches published on one parent: {content}"
                );
                expected.insert(key);
            }
        }
    }
    let head = latest(&s3).await.unwrap();
    let text = manifest(&s3, &head).await;
    let found: BTreeSet<String> = keys(&text).into_iter().collect();
    assert_eq!(found, expected, "a published change was lost");
    assert_eq!(
        parents.len() + conflicts,
        WRITERS * ROUNDS,
        "every call either published or was refused"
    );
    eprintln!(
        "patch race: {} calls: {} published, {conflicts} conflicts",
        WRITERS * ROUNDS,
        parents.len()
    );
    for server in servers {
        server.stop().await;
    }
}

/// Runs `tests/fixtures/quilt3/quilt3_patch.py OP` on `spec` against moto: its JSON.
async fn quilt3_patch_py(moto: &Moto, op: &str, spec: &Value) -> Value {
    crate::workflows::run_quilt3_script(moto, "quilt3/quilt3_patch.py", &[op], spec).await
}

/// quilt3 8.0.0 and `package_patch` on the same parent with the same changes (an
/// entry added, one replaced, a key and a directory removed, a new message, the
/// metadata kept): quilt3's `browse -> set/delete -> push` makes the same revision
/// (the same top hash), and quilt3 reads the revision `package_patch` published,
/// its top hash checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs quilt3 and moto"]
async fn quilt3_makes_the_same_patch_and_reads_ours() {
    let moto = Moto::start().await;
    let s3 = moto.client();
    for bucket in ["registry", "sources"] {
        s3.create_bucket().bucket(bucket).send().await.unwrap();
    }
    for (key, body) in [
        ("a.csv", "id,v\n1,2\n"),
        ("b.txt", "text"),
        ("sub/c.csv", "id\n3\n"),
        ("new.csv", "id,v\n9,9\n"),
    ] {
        s3.put_object()
            .bucket("sources")
            .key(key)
            .body(ByteStream::from(body.as_bytes().to_vec()))
            .send()
            .await
            .unwrap();
    }
    let token = hs256(&claims_with(json!({
        "buckets": ["registry", "sources"],
        "permissions": WRITE,
        "level": "write",
        "aws_credentials": {
            "access_key_id": crate::common::moto::ACCESS_KEY,
            "secret_access_key": crate::common::moto::SECRET_KEY,
        },
    })));
    let server = Server::spawn(&[
        ("AWS_ENDPOINT_URL_S3", moto.endpoint.as_str()),
        ("QUILT_MCP_S3_FORCE_PATH_STYLE", "true"),
        ("QUILT_MCP_JWT_SECRET", SECRET),
        ("QUILT_MCP_TOKEN", token.as_str()),
    ])
    .await;
    let sources: Vec<Value> = ["a.csv", "b.txt", "sub/c.csv"]
        .iter()
        .map(|k| json!({"logical_key": k, "s3_uri": format!("s3://sources/{k}")}))
        .collect();
    let created = server
        .ok(
            "package_create",
            json!({"package_name": PACKAGE, "registry": "registry", "message": "first",
                   "metadata": {"owner": "ana", "n": [1, 2.5]},
                   "entries": sources}),
        )
        .await;
    let parent = created["top_hash"].as_str().unwrap().to_owned();

    let theirs = quilt3_patch_py(
        &moto,
        "patch",
        &json!({"registry": "s3://registry", "name": PACKAGE, "top_hash": parent,
                "set": [["new.csv", "s3://sources/new.csv"], ["a.csv", "s3://sources/new.csv"]],
                "delete": ["b.txt", "sub"], "message": "patched", "push_name": "team/quilt3"}),
    )
    .await;
    let ours = server
        .ok(
            "package_patch",
            patch(json!({
                "add": [{"logical_key": "new.csv", "s3_uri": "s3://sources/new.csv"},
                        {"logical_key": "a.csv", "s3_uri": "s3://sources/new.csv"}],
                "remove": ["b.txt", "sub/"],
                "message": "patched",
            })),
        )
        .await;
    assert_eq!(
        ours["changes"],
        json!({"added": 1, "removed": 2, "modified": 1, "unchanged": 0})
    );
    let top_hash = ours["top_hash"].as_str().unwrap();
    assert_eq!(top_hash, theirs["top_hash"], "quilt3 made another revision");

    let read = quilt3_patch_py(
        &moto,
        "read",
        &json!({"registry": "s3://registry", "name": PACKAGE, "top_hash": top_hash}),
    )
    .await;
    assert_eq!(read["top_hash"], top_hash);
    assert_eq!(read["message"], "patched");
    assert_eq!(read["user_meta"], json!({"owner": "ana", "n": [1, 2.5]}));
    let keys: Vec<&str> = read["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e[0].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["a.csv", "new.csv"]);
    server.stop().await;
}
