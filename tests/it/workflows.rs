//! Workflows (docs/reference.md, Tools: package_create): a registry with
//! `.quilt/workflows/config.yml` governs `package_create` as quilt3 8.0.0 governs
//! `push`.
//!
//! The first tests run against the in-process S3: what passes, every violation with
//! its pointer, schema buckets authorized by the token, configs quilt3 refuses. The
//! last, `quilt3_parity`, pushes a table of cases with real quilt3 and creates the
//! same with quilt-mcp against one moto server, asserting both accept or both
//! refuse, and that accepted manifests have byte-identical headers (`workflow`,
//! `user_meta`, `message`). It needs moto (`QUILT_MCP_TEST_MOTO`) and a Python with
//! quilt3==8.0.0 (`QUILT_MCP_TEST_QUILT3`): `scripts/ci-quilt3` installs both and runs
//! it, as CI does.
use std::collections::BTreeMap;

use crate::common::moto::Moto;
use crate::common::s3::{ACCESS_KEY, SECRET_KEY, TestS3};
use crate::common::*;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use serde_json::{Value, json};

const CONFIG_KEY: &str = ".quilt/workflows/config.yml";

const GOVERNED: &str = r#"# Governed: a default workflow with every check, and an open one.
version: "1"
default_workflow: gov
workflows:
  gov:
    name: Governed
    handle_pattern: ^team/
    is_message_required: true
    metadata_schema: meta
    entries_schema: csv-only
  open:
    name: Open
schemas:
  meta: {url: "s3://schemas/meta.json"}
  csv-only: {url: "s3://schemas/entries.json"}
"#;

fn meta_schema() -> Value {
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "required": ["owner"],
        "properties": {"owner": {"type": "string"}, "n": {"type": "integer", "minimum": 0}},
    })
}

fn entries_schema() -> Value {
    json!({"type": "array", "items": {"type": "object", "properties": {"logical_key": {"pattern": "\\.csv$"}}}})
}

fn token(buckets: &[&str], permissions: &[&str]) -> String {
    hs256(&claims_with(json!({
        "buckets": buckets,
        "permissions": permissions,
        "level": "write",
        "aws_credentials": {"access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY},
    })))
}

const WRITE: &[&str] = &["s3:GetObject", "s3:ListBucket", "s3:PutObject"];

async fn governed() -> TestS3 {
    let s3 = TestS3::start().await;
    for bucket in ["registry", "sources", "schemas", "private"] {
        s3.create_bucket(bucket).await;
    }
    s3.put("sources", "data/a.csv", b"id,v\n1,2\n", "text/csv", &[])
        .await;
    s3.put("sources", "data/b.txt", b"text", "text/plain", &[])
        .await;
    s3.put(
        "registry",
        CONFIG_KEY,
        GOVERNED.as_bytes(),
        "text/yaml",
        &[],
    )
    .await;
    for (key, schema) in [
        ("meta.json", meta_schema()),
        ("entries.json", entries_schema()),
    ] {
        s3.put(
            "schemas",
            key,
            schema.to_string().as_bytes(),
            "application/json",
            &[],
        )
        .await;
    }
    s3
}

fn failure(result: &rmcp::model::CallToolResult) -> (String, String) {
    assert_eq!(result.is_error, Some(true), "{result:?}");
    let error = &result.structured_content.as_ref().unwrap()["error"];
    (
        error["code"].as_str().unwrap().to_owned(),
        error["message"].as_str().unwrap().to_owned(),
    )
}

async fn manifest_keys(s3: &TestS3) -> usize {
    s3.client()
        .list_objects_v2()
        .bucket("registry")
        .prefix(".quilt/packages/")
        .send()
        .await
        .unwrap()
        .contents()
        .len()
}

async fn header_line(s3: &aws_sdk_s3::Client, bucket: &str, top_hash: &str) -> String {
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(format!(".quilt/packages/{top_hash}"))
        .send()
        .await
        .unwrap();
    let text = String::from_utf8(out.body.collect().await.unwrap().into_bytes().to_vec()).unwrap();
    text.lines().next().unwrap().to_owned()
}

#[tokio::test]
async fn a_governed_registry_takes_what_passes_and_lists_every_violation() {
    let s3 = governed().await;
    let server = start_on(
        &s3,
        &token(&["registry", "sources", "schemas"], WRITE),
        &[],
        (),
    )
    .await;
    let csv = json!([{"logical_key": "a.csv", "s3_uri": "s3://sources/data/a.csv"}]);

    // Name, message and metadata fail together, before any source is read.
    let result = server
        .call(
            "package_create",
            json!({"package_name": "other/x", "registry": "registry", "entries": csv, "metadata": {"n": -1}}),
        )
        .await
        .unwrap();
    let (code, message) = failure(&result);
    assert_eq!(code, "invalid_argument");
    for part in [
        "workflow \"gov\" of s3://registry/.quilt/workflows/config.yml",
        "4 violations",
        "/message: the workflow requires a commit message",
        "/package_name: \"other/x\" does not match the workflow's handle_pattern \"^team/\"",
        "/metadata: \"owner\" is a required property",
        "/metadata/n: ",
    ] {
        assert!(message.contains(part), "{part:?} not in {message}");
    }
    // Entries are checked once their sizes are known.
    let result = server
        .call(
            "package_create",
            json!({"package_name": "team/txt", "registry": "registry", "message": "m",
                   "metadata": {"owner": "o"},
                   "entries": [{"logical_key": "b.txt", "s3_uri": "s3://sources/data/b.txt"}]}),
        )
        .await
        .unwrap();
    let (code, message) = failure(&result);
    assert_eq!(code, "invalid_argument");
    assert!(message.contains("/entries/0/logical_key: "), "{message}");
    assert_eq!(
        manifest_keys(&s3).await,
        0,
        "a refused package wrote a manifest"
    );

    // Passing: the manifest carries the workflow object as quilt3 writes it, its
    // header's keys in quilt3's order.
    let created = server
        .ok(
            "package_create",
            json!({"package_name": "team/ok", "registry": "registry", "message": "m",
                   "metadata": {"owner": "o", "n": 1}, "entries": csv}),
        )
        .await;
    assert_eq!(created["workflow"], "gov");
    let header = header_line(
        &s3.client(),
        "registry",
        created["top_hash"].as_str().unwrap(),
    )
    .await;
    assert_eq!(
        header,
        r#"{"version": "v0", "user_meta": {"owner": "o", "n": 1}, "workflow": {"id": "gov", "config": "s3://registry/.quilt/workflows/config.yml", "schemas": {"meta": "s3://schemas/meta.json", "csv-only": "s3://schemas/entries.json"}}, "message": "m"}"#
    );

    // Another workflow by id: no schemas in its object.
    let open = server
        .ok(
            "package_create",
            json!({"package_name": "any/open", "registry": "registry", "workflow": "open",
                   "entries": [{"logical_key": "b.txt", "s3_uri": "s3://sources/data/b.txt"}]}),
        )
        .await;
    assert_eq!(open["workflow"], "open");
    let header = header_line(&s3.client(), "registry", open["top_hash"].as_str().unwrap()).await;
    assert_eq!(
        header,
        r#"{"version": "v0", "workflow": {"id": "open", "config": "s3://registry/.quilt/workflows/config.yml"}, "message": null}"#
    );

    // No workflow, where the config requires one; an unknown one.
    for (workflow, expected) in [
        (Value::Null, "requires a workflow"),
        (json!("nope"), "no workflow \"nope\""),
    ] {
        let result = server
            .call(
                "package_create",
                json!({"package_name": "team/w", "registry": "registry", "message": "m",
                       "workflow": workflow, "entries": csv}),
            )
            .await
            .unwrap();
        let (code, message) = failure(&result);
        assert_eq!(code, "invalid_argument");
        assert!(message.contains(expected), "{message}");
        assert!(message.contains("\"gov\", \"open\""), "{message}");
    }
    server.stop().await;
}

#[tokio::test]
async fn schemas_are_read_only_where_the_token_may_read() {
    let s3 = governed().await;
    let config = GOVERNED.replace("s3://schemas/meta.json", "s3://private/meta.json");
    s3.put("registry", CONFIG_KEY, config.as_bytes(), "text/yaml", &[])
        .await;
    s3.put(
        "private",
        "meta.json",
        meta_schema().to_string().as_bytes(),
        "application/json",
        &[],
    )
    .await;
    let args = json!({"package_name": "team/ok", "registry": "registry", "message": "m",
                      "metadata": {"owner": "o"},
                      "entries": [{"logical_key": "a.csv", "s3_uri": "s3://sources/data/a.csv"}]});
    // The schema's bucket is not among the token's buckets.
    let server = start_on(
        &s3,
        &token(&["registry", "sources", "schemas"], WRITE),
        &[],
        (),
    )
    .await;
    let (code, message) = failure(&server.call("package_create", args.clone()).await.unwrap());
    assert_eq!(code, "access_denied");
    assert!(
        message.contains("schema in bucket \"private\"") && message.contains("bucket_list"),
        "{message}"
    );
    server.stop().await;

    // A pinned version needs s3:GetObjectVersion.
    let pinned = GOVERNED.replace(
        "s3://schemas/meta.json",
        "s3://schemas/meta.json?versionId=v1",
    );
    s3.put("registry", CONFIG_KEY, pinned.as_bytes(), "text/yaml", &[])
        .await;
    let server = start_on(
        &s3,
        &token(&["registry", "sources", "schemas"], WRITE),
        &[],
        (),
    )
    .await;
    let (code, message) = failure(&server.call("package_create", args).await.unwrap());
    assert_eq!(code, "access_denied");
    assert!(message.contains("s3:GetObjectVersion"), "{message}");
    assert_eq!(manifest_keys(&s3).await, 0);
    server.stop().await;
}

#[tokio::test]
async fn configs_and_schemas_quilt3_refuses_are_refused() {
    let s3 = governed().await;
    s3.put(
        "schemas",
        "ref.json",
        br##"{"type": "object", "properties": {"a": {"$ref": "#/definitions/a"}}}"##,
        "application/json",
        &[],
    )
    .await;
    s3.put(
        "schemas",
        "draft2020.json",
        br#"{"$schema": "https://json-schema.org/draft/2020-12/schema"}"#,
        "application/json",
        &[],
    )
    .await;
    let with_meta = |url: &str| GOVERNED.replace("s3://schemas/meta.json", url);
    let huge = format!("{GOVERNED}#{}\n", "x".repeat(1024 * 1024));
    let cases: Vec<(String, Value, &str, &str)> = vec![
        (
            GOVERNED.replace("version: \"1\"", "version: 1"),
            json!({}),
            "invalid_argument",
            "/version",
        ),
        (
            GOVERNED.replace("version: \"1\"", "version: \"1.2\""),
            json!({}),
            "not_supported",
            "version 1.2",
        ),
        (
            with_meta("https://example.com/meta.json"),
            json!({}),
            "invalid_argument",
            "s3:// URLs only",
        ),
        (
            with_meta("s3://schemas/missing.json"),
            json!({}),
            "invalid_argument",
            "does not exist",
        ),
        (
            with_meta("s3://schemas/ref.json"),
            json!({}),
            "invalid_argument",
            "$ref",
        ),
        (
            with_meta("s3://schemas/draft2020.json"),
            json!({}),
            "invalid_argument",
            "meta-schema",
        ),
        (
            GOVERNED.replace("metadata_schema: meta", "metadata_schema: nowhere"),
            json!({}),
            "invalid_argument",
            "no \"nowhere\" in its schemas",
        ),
        (
            GOVERNED.replace("^team/", "'(team'"),
            json!({}),
            "invalid_argument",
            "handle_pattern",
        ),
        (huge, json!({}), "too_large", "larger than 1048576 bytes"),
        (
            String::new(),
            json!({"workflow": null}),
            "invalid_argument",
            "has no workflows config",
        ),
        (
            String::new(),
            json!({"workflow": "gov"}),
            "invalid_argument",
            "has no workflows config",
        ),
    ];
    let server = start_on(
        &s3,
        &token(&["registry", "sources", "schemas"], WRITE),
        &[],
        (),
    )
    .await;
    for (config, extra, code, fragment) in cases {
        if config.is_empty() {
            s3.client()
                .delete_object()
                .bucket("registry")
                .key(CONFIG_KEY)
                .send()
                .await
                .unwrap();
        } else {
            s3.put("registry", CONFIG_KEY, config.as_bytes(), "text/yaml", &[])
                .await;
        }
        let mut args = json!({"package_name": "team/ok", "registry": "registry", "message": "m",
                              "metadata": {"owner": "o"},
                              "entries": [{"logical_key": "a.csv", "s3_uri": "s3://sources/data/a.csv"}]});
        for (k, v) in extra.as_object().unwrap() {
            args[k] = v.clone();
        }
        let result = server.call("package_create", args).await.unwrap();
        let (got, message) = failure(&result);
        assert_eq!(got, code, "{message}");
        assert!(message.contains(fragment), "{fragment:?} not in {message}");
    }
    assert_eq!(manifest_keys(&s3).await, 0);
    server.stop().await;
}

#[tokio::test]
async fn package_create_says_it_can_replace_data() {
    let server = Server::spawn(&[]).await;
    let tools = server.client.list_all_tools().await.unwrap();
    let create = tools.iter().find(|t| t.name == "package_create").unwrap();
    let hints = create.annotations.as_ref().unwrap();
    assert_eq!(hints.destructive_hint, Some(true));
    assert_eq!(hints.read_only_hint, Some(false));
    let properties = &create.input_schema["properties"];
    for name in ["workflow", "overwrite"] {
        assert!(
            properties[name]["description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{name}: {properties}"
        );
    }
    server.stop().await;
}

// ---------------------------------------------------------------------------------
// Parity with quilt3

/// Schemas of the parity table, in bucket `schemas`.
fn parity_schemas() -> Vec<(&'static str, Value)> {
    let twenty: serde_json::Map<String, Value> = (1..=20)
        .map(|i| {
            (
                format!("field{i:02}"),
                json!({"type": "string", "minLength": 1}),
            )
        })
        .collect();
    vec![
        ("meta.json", meta_schema()),
        ("pinned.json", meta_schema()),
        ("entries.json", entries_schema()),
        (
            "twenty.json",
            json!({"type": "object", "required": twenty.keys().collect::<Vec<_>>(), "properties": twenty}),
        ),
        ("both.json", json!({"type": ["object", "array"]})),
        (
            "formats.json",
            json!({"type": "object", "properties": {"mail": {"format": "email"}, "id": {"pattern": "^[a-z]+[0-9]*$"}}}),
        ),
        (
            "ref.json",
            json!({"properties": {"a": {"$ref": "#/definitions/a"}}}),
        ),
        (
            "draft2020.json",
            json!({"$schema": "https://json-schema.org/draft/2020-12/schema"}),
        ),
        ("entries-max.json", json!({"type": "array", "maxItems": 1})),
    ]
}

/// Configs of the parity table by name; `{V}` is the version id of the first of two
/// versions of `s3://schemas/pinned.json`.
fn parity_configs() -> BTreeMap<&'static str, String> {
    let base = |body: &str| format!("version: \"1\"\n{body}");
    BTreeMap::from([
        ("governed", GOVERNED.to_owned()),
        (
            "optional",
            base("is_workflow_required: no\nworkflows:\n  a: {name: A, is_message_required: yes}\n"),
        ),
        (
            "optional-default",
            base("is_workflow_required: False\ndefault_workflow: a\nworkflows:\n  a: {name: A}\n"),
        ),
        ("float-version", "version: 1.0\nworkflows:\n  a: {name: A}\n".to_owned()),
        ("newer", "version: \"1.2\"\nworkflows:\n  a: {name: A}\n".to_owned()),
        (
            "compound",
            "version: {base: \"1.1\", catalog: \"1\"}\ncatalog: {anything: [1, 2024-01-01]}\nworkflows:\n  a: {name: A}\n".to_owned(),
        ),
        ("no-workflows", base("workflows: {}\n")),
        ("bad-key", base("workflows:\n  9a: {name: A}\n")),
        (
            "http-schema",
            base("default_workflow: a\nworkflows:\n  a: {name: A, metadata_schema: m}\nschemas:\n  m: {url: \"https://example.com/m.json\"}\n"),
        ),
        (
            "ref",
            base("default_workflow: a\nworkflows:\n  a: {name: A, metadata_schema: m}\nschemas:\n  m: {url: \"s3://schemas/ref.json\"}\n"),
        ),
        (
            "draft2020",
            base("default_workflow: a\nworkflows:\n  a: {name: A, metadata_schema: m}\nschemas:\n  m: {url: \"s3://schemas/draft2020.json\"}\n"),
        ),
        (
            "missing-schema",
            base("default_workflow: a\nworkflows:\n  a: {name: A, metadata_schema: m}\nschemas:\n  m: {url: \"s3://schemas/nothing.json\"}\n"),
        ),
        (
            "two-ids-one-url",
            base("default_workflow: a\nworkflows:\n  a: {name: A, metadata_schema: m, entries_schema: e}\nschemas:\n  m: {url: \"s3://schemas/both.json\"}\n  e: {url: \"s3://schemas/both.json\"}\n"),
        ),
        (
            "pinned",
            base("default_workflow: a\nworkflows:\n  a: {name: A, metadata_schema: m}\nschemas:\n  m: {url: \"s3://schemas/pinned.json?versionId={V}\"}\n"),
        ),
        (
            "twenty",
            base("default_workflow: a\nworkflows:\n  a: {name: A, metadata_schema: t}\nschemas:\n  t: {url: \"s3://schemas/twenty.json\"}\n"),
        ),
        (
            "formats",
            base("default_workflow: a\nworkflows:\n  a: {name: A, metadata_schema: f}\nschemas:\n  f: {url: \"s3://schemas/formats.json\"}\n"),
        ),
        (
            "lookahead",
            base("default_workflow: a\nworkflows:\n  a: {name: A, handle_pattern: \"^(?!private/)[a-z]+/\"}\n"),
        ),
        (
            "merge-keys",
            base("default_workflow: b\nworkflows:\n  a: &base {name: A, is_message_required: true}\n  b:\n    <<: *base\n    name: B\n"),
        ),
        ("bad-default", base("default_workflow: zzz\nworkflows:\n  a: {name: A}\n")),
        (
            "max-entries",
            base("default_workflow: a\nworkflows:\n  a: {name: A, entries_schema: m}\nschemas:\n  m: {url: \"s3://schemas/entries-max.json\"}\n"),
        ),
    ])
}

/// (config or "" for none, package name, extra arguments, entries, expected).
type ParityCase = (
    &'static str,
    &'static str,
    Value,
    &'static [&'static str],
    bool,
);

fn parity_cases() -> Vec<ParityCase> {
    let owner = || json!({"owner": "o"});
    let twenty: serde_json::Map<String, Value> = (1..=20)
        .map(|i| (format!("field{i:02}"), json!(format!("v{i}"))))
        .collect();
    let mut nineteen = twenty.clone();
    nineteen.remove("field07");
    vec![
        ("", "team/plain", json!({"message": "m"}), &["a.csv"], true),
        (
            "",
            "team/null",
            json!({"workflow": null}),
            &["a.csv"],
            false,
        ),
        (
            "",
            "team/named",
            json!({"workflow": "a"}),
            &["a.csv"],
            false,
        ),
        (
            "governed",
            "team/ok",
            json!({"message": "m", "metadata": owner()}),
            &["a.csv", "sub/c.csv"],
            true,
        ),
        (
            "governed",
            "other/name",
            json!({"message": "m", "metadata": owner()}),
            &["a.csv"],
            false,
        ),
        (
            "governed",
            "team/nomsg",
            json!({"metadata": owner()}),
            &["a.csv"],
            false,
        ),
        (
            "governed",
            "team/emptymsg",
            json!({"message": "", "metadata": owner()}),
            &["a.csv"],
            false,
        ),
        (
            "governed",
            "team/blankmsg",
            json!({"message": " ", "metadata": owner()}),
            &["a.csv"],
            true,
        ),
        (
            "governed",
            "team/nometa",
            json!({"message": "m"}),
            &["a.csv"],
            false,
        ),
        (
            "governed",
            "team/badmeta",
            json!({"message": "m", "metadata": {"owner": 5}}),
            &["a.csv"],
            false,
        ),
        (
            "governed",
            "team/txt",
            json!({"message": "m", "metadata": owner()}),
            &["a.csv", "b.txt"],
            false,
        ),
        (
            "governed",
            "any/open",
            json!({"workflow": "open"}),
            &["b.txt"],
            true,
        ),
        (
            "governed",
            "team/skip",
            json!({"message": "m", "workflow": null, "metadata": owner()}),
            &["a.csv"],
            false,
        ),
        (
            "governed",
            "team/unknown",
            json!({"message": "m", "workflow": "nope"}),
            &["a.csv"],
            false,
        ),
        ("optional", "x/default", json!({}), &["a.csv"], true),
        (
            "optional",
            "x/skip",
            json!({"workflow": null}),
            &["a.csv"],
            true,
        ),
        (
            "optional",
            "x/a-nomsg",
            json!({"workflow": "a"}),
            &["a.csv"],
            false,
        ),
        (
            "optional",
            "x/a",
            json!({"workflow": "a", "message": "m"}),
            &["a.csv"],
            true,
        ),
        (
            "optional-default",
            "x/default",
            json!({"metadata": {}}),
            &["a.csv"],
            true,
        ),
        ("float-version", "x/y", json!({}), &["a.csv"], false),
        ("newer", "x/y", json!({}), &["a.csv"], false),
        (
            "compound",
            "x/y",
            json!({"workflow": "a"}),
            &["a.csv"],
            true,
        ),
        ("no-workflows", "x/y", json!({}), &["a.csv"], false),
        ("bad-key", "x/y", json!({}), &["a.csv"], false),
        (
            "http-schema",
            "x/y",
            json!({"metadata": owner()}),
            &["a.csv"],
            false,
        ),
        (
            "ref",
            "x/y",
            json!({"metadata": owner()}),
            &["a.csv"],
            false,
        ),
        (
            "draft2020",
            "x/y",
            json!({"metadata": owner()}),
            &["a.csv"],
            false,
        ),
        (
            "missing-schema",
            "x/y",
            json!({"metadata": owner()}),
            &["a.csv"],
            false,
        ),
        (
            "two-ids-one-url",
            "x/y",
            json!({"metadata": owner()}),
            &["a.csv", "b.txt"],
            true,
        ),
        (
            "pinned",
            "x/y",
            json!({"metadata": owner()}),
            &["a.csv"],
            true,
        ),
        ("pinned", "x/z", json!({"metadata": {}}), &["a.csv"], false),
        (
            "twenty",
            "x/all",
            json!({"metadata": twenty}),
            &["a.csv"],
            true,
        ),
        (
            "twenty",
            "x/missing",
            json!({"metadata": nineteen}),
            &["a.csv"],
            false,
        ),
        (
            "formats",
            "x/f",
            json!({"metadata": {"mail": "not an address", "id": "abc12"}}),
            &["a.csv"],
            true,
        ),
        (
            "formats",
            "x/g",
            json!({"metadata": {"id": "ABC"}}),
            &["a.csv"],
            false,
        ),
        ("lookahead", "public/p", json!({}), &["a.csv"], true),
        ("lookahead", "private/p", json!({}), &["a.csv"], false),
        ("merge-keys", "x/nomsg", json!({}), &["a.csv"], false),
        (
            "merge-keys",
            "x/msg",
            json!({"message": "m"}),
            &["a.csv"],
            true,
        ),
        ("bad-default", "x/y", json!({}), &["a.csv"], false),
        ("max-entries", "x/one", json!({}), &["a.csv"], true),
        (
            "max-entries",
            "x/two",
            json!({}),
            &["a.csv", "b.txt"],
            false,
        ),
    ]
}

async fn versioned_bucket(s3: &aws_sdk_s3::Client, bucket: &str) {
    s3.create_bucket().bucket(bucket).send().await.unwrap();
    s3.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
}

pub(crate) fn quilt3_python() -> std::path::PathBuf {
    std::env::var_os("QUILT_MCP_TEST_QUILT3")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "QUILT_MCP_TEST_QUILT3 is not set: it names a Python with quilt3==8.0.0 (scripts/ci-quilt3 installs one and runs this test)"
            )
        })
}

/// Runs the quilt3 fixture script `fixture` (under `tests/fixtures/`) with `args` and
/// then a file holding `input`, against moto, in a home of its own: the JSON of the
/// last line it prints.
pub(crate) async fn run_quilt3_script(
    moto: &Moto,
    fixture: &str,
    args: &[&str],
    input: &Value,
) -> Value {
    let python = quilt3_python();
    let dir = tempfile::tempdir().unwrap();
    let input_file = dir.path().join("input.json");
    std::fs::write(&input_file, serde_json::to_vec(input).unwrap()).unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(fixture);
    let home = dir.path().join("home");
    let output = tokio::process::Command::new(&python)
        .arg(&script)
        .args(args)
        .arg(&input_file)
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env("AWS_ACCESS_KEY_ID", crate::common::moto::ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", crate::common::moto::SECRET_KEY)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    assert!(
        output.status.success(),
        "{fixture} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(
        output
            .stdout
            .split(|b| *b == b'\n')
            .rfind(|l| !l.is_empty())
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs quilt3 and moto"]
async fn quilt3_parity() {
    let moto = Moto::start().await;
    let s3 = moto.client();
    versioned_bucket(&s3, "schemas").await;
    s3.create_bucket().bucket("sources").send().await.unwrap();
    for (key, body) in [
        ("a.csv", "id,v\n1,2\n"),
        ("sub/c.csv", "id\n3\n"),
        ("b.txt", "text"),
    ] {
        s3.put_object()
            .bucket("sources")
            .key(key)
            .body(ByteStream::from(body.as_bytes().to_vec()))
            .send()
            .await
            .unwrap();
    }
    let mut pinned_version = String::new();
    for (key, schema) in parity_schemas() {
        let put = s3
            .put_object()
            .bucket("schemas")
            .key(key)
            .body(ByteStream::from(schema.to_string().into_bytes()))
            .send()
            .await
            .unwrap();
        if key == "pinned.json" {
            pinned_version = put.version_id().unwrap().to_owned();
        }
    }
    // A second version: the pinned config must read the first.
    s3.put_object()
        .bucket("schemas")
        .key("pinned.json")
        .body(ByteStream::from(b"{\"type\": \"string\"}".to_vec()))
        .send()
        .await
        .unwrap();

    // One registry per case, holding the case's config.
    let configs = parity_configs();
    let cases = parity_cases();
    let mut buckets: Vec<String> = vec!["sources".into(), "schemas".into()];
    let mut quilt3_cases = Vec::new();
    let mut mcp_args = Vec::new();
    for (i, (config, name, extra, entries, _)) in cases.iter().enumerate() {
        let bucket = format!("wf-{i:02}");
        versioned_bucket(&s3, &bucket).await;
        if !config.is_empty() {
            let text = configs
                .get(config)
                .unwrap_or_else(|| panic!("no config {config}"))
                .replace("{V}", &pinned_version);
            s3.put_object()
                .bucket(&bucket)
                .key(CONFIG_KEY)
                .body(ByteStream::from(text.into_bytes()))
                .send()
                .await
                .unwrap();
        }
        let pairs: Vec<(String, String)> = entries
            .iter()
            .map(|k| ((*k).to_owned(), format!("s3://sources/{k}")))
            .collect();
        let mut q =
            json!({"id": i, "registry": format!("s3://{bucket}"), "name": name, "entries": pairs});
        let mut m = json!({"package_name": name, "registry": bucket, "overwrite": true,
                           "entries": pairs.iter().map(|(lk, uri)| json!({"logical_key": lk, "s3_uri": uri})).collect::<Vec<_>>()});
        for (k, v) in extra.as_object().unwrap() {
            q[k] = v.clone();
            m[k] = v.clone();
        }
        quilt3_cases.push(q);
        mcp_args.push(m);
        buckets.push(bucket);
    }

    // quilt3 pushes every case first.
    let quilt3: Vec<Value> = serde_json::from_value(
        run_quilt3_script(&moto, "workflows/quilt3_push.py", &[], &json!(quilt3_cases)).await,
    )
    .unwrap();
    assert_eq!(quilt3.len(), cases.len());

    // quilt-mcp creates each again, replacing what quilt3 pushed.
    let bucket_refs: Vec<&str> = buckets.iter().map(String::as_str).collect();
    let token = hs256(&claims_with(json!({
        "buckets": bucket_refs,
        "permissions": ["s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket", "s3:PutObject"],
        "level": "write",
        "aws_credentials": {"access_key_id": "testing", "secret_access_key": "testing"},
    })));
    let server = Server::spawn(&[
        ("AWS_ENDPOINT_URL_S3", moto.endpoint.as_str()),
        ("QUILT_MCP_S3_FORCE_PATH_STYLE", "true"),
        ("QUILT_MCP_JWT_SECRET", SECRET),
        ("QUILT_MCP_TOKEN", token.as_str()),
    ])
    .await;
    let mut problems = Vec::new();
    let mut accepted = 0;
    for (i, ((config, name, extra, _, expected), args)) in cases.iter().zip(&mcp_args).enumerate() {
        let label = format!("case {i} (config {config:?}, {name}, {extra})");
        let q3 = &quilt3[i];
        let result = server.call("package_create", args.clone()).await.unwrap();
        let content = result.structured_content.clone().unwrap();
        let mcp_ok = result.is_error != Some(true);
        let q3_ok = q3["ok"] == true;
        if (mcp_ok, q3_ok) != (*expected, *expected) {
            problems.push(format!(
                "{label}: expected {}, quilt3 {} ({}), quilt-mcp {} ({})",
                if *expected { "accepted" } else { "refused" },
                if q3_ok { "accepted" } else { "refused" },
                q3["error"],
                if mcp_ok { "accepted" } else { "refused" },
                content["error"]["message"],
            ));
            continue;
        }
        if !mcp_ok {
            assert_ne!(
                content["error"]["code"], "internal_error",
                "{label}: {content}"
            );
            continue;
        }
        accepted += 1;
        let bucket = &buckets[i + 2];
        let theirs = header_line(&s3, bucket, q3["top_hash"].as_str().unwrap()).await;
        let ours = header_line(&s3, bucket, content["top_hash"].as_str().unwrap()).await;
        if theirs != ours {
            problems.push(format!(
                "{label}: headers differ\nquilt3:    {theirs}\nquilt-mcp: {ours}"
            ));
        }
        let header: Value = serde_json::from_str(&ours).unwrap();
        let id = header
            .get("workflow")
            .map_or(Value::Null, |w| w["id"].clone());
        assert_eq!(content["workflow"], id, "{label}");
    }
    server.stop().await;
    assert!(
        problems.is_empty(),
        "{} of {} cases differ:\n{}",
        problems.len(),
        cases.len(),
        problems.join("\n")
    );
    assert!(accepted >= 15, "only {accepted} cases accepted");
    eprintln!(
        "quilt3 parity: {} cases, {accepted} accepted by both, the rest refused by both",
        cases.len()
    );
}
