//! `quilt+s3://` URIs end to end over stdio against the in-process S3: the package
//! tools take one in place of `registry`, `package_name`, `top_hash` and `path` (the
//! publishing tools in place of `registry` and `package_name`, its hash a patch's
//! parent, its bucket authorized by the gate); the
//! object tools take one whose `path` names a file and read that entry's physical
//! object, authorized for the bucket it is in; with `QUILT_CATALOG_URL`, results carry
//! `catalog_url` links (docs/reference.md, Tools).
use crate::common::s3::{ACCESS_KEY, SECRET_KEY, TestS3};
use crate::common::*;
use quilt_mcp::quilt::manifest::{Manifest, Record};
use serde_json::{Map, json};

const NAME: &str = "team/pkg";
const CATALOG: &str = "https://catalog.example.com";

/// A reader of `registry` and `sources` (not `forbidden`).
fn token(permissions: &[&str]) -> String {
    hs256(&claims_with(json!({
        "buckets": ["registry", "sources"],
        "permissions": permissions,
        "level": "read",
        "aws_credentials": {"access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY},
    })))
}

fn reader() -> String {
    token(&["s3:GetObject", "s3:ListBucket"])
}

fn entry(logical_key: &str, physical_key: &str, size: u64) -> Record {
    let entry = json!({
        "logical_key": logical_key,
        "physical_keys": [physical_key],
        "size": size,
        "hash": {"type": "sha2-256-chunked", "value": "Xb1PbjJeWof4zD7zuHc9PI7sLiz/Ykj4gphlaZEt3xA="},
        "meta": {},
    });
    Record::from_object(entry.as_object().unwrap().clone())
}

/// A registry whose package `team/pkg` has files in `sources` and one in `forbidden`,
/// and the revision's top hash.
async fn sample() -> (TestS3, String) {
    let s3 = TestS3::start().await;
    for bucket in ["registry", "sources", "forbidden"] {
        s3.create_bucket(bucket).await;
    }
    s3.seed_file("sources", "raw/a.csv", b"id,v\n1,2\n");
    s3.seed_file("sources", "docs/a b#1.md", b"# hi\n");
    s3.seed_file("forbidden", "secret.txt", b"top secret\n");
    let mut header = Map::new();
    header.insert("version".into(), json!("v0"));
    header.insert("message".into(), json!("by uri"));
    header.insert("user_meta".into(), json!({}));
    let manifest = Manifest::new(
        header,
        vec![
            entry("data/a.csv", "s3://sources/raw/a.csv", 9),
            entry("docs/read me#1.md", "s3://sources/docs/a%20b%231.md", 5),
            entry("secret.txt", "s3://forbidden/secret.txt", 11),
            entry("versioned.csv", "s3://sources/raw/a.csv?versionId=v1", 9),
        ],
    );
    let hash = manifest.top_hash();
    s3.seed_file(
        "registry",
        &format!(".quilt/packages/{hash}"),
        &manifest.to_bytes(),
    );
    for pointer in ["1700000000", "latest"] {
        s3.seed_file(
            "registry",
            &format!(".quilt/named_packages/{NAME}/{pointer}"),
            hash.as_bytes(),
        );
    }
    (s3, hash)
}

fn failure(result: &rmcp::model::CallToolResult) -> (String, String) {
    assert_eq!(result.is_error, Some(true), "{result:?}");
    let error = &result.structured_content.as_ref().unwrap()["error"];
    (
        error["code"].as_str().unwrap().to_owned(),
        error["message"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn package_tools_take_a_uri() {
    let (s3, hash) = sample().await;
    let server = start_on(&s3, &reader(), &[], ()).await;
    let uri = format!("quilt+s3://registry#package={NAME}");

    let latest = server.ok("package_browse", json!({"uri": uri})).await;
    assert_eq!(latest["top_hash"], hash);
    assert_eq!(latest["registry"], "s3://registry");
    assert_eq!(latest["package_name"], NAME);
    assert_eq!(latest["entry_count"], 4);
    assert!(latest.get("catalog_url").is_none(), "{latest}");

    // A hash prefix and a path, percent-encoded; the same package named both ways.
    let short = &hash[..8];
    for args in [
        json!({"uri": format!("{uri}@{short}&path=data%2F")}),
        json!({"uri": format!("{uri}:latest&path=data"), "registry": "s3://registry", "package_name": NAME, "top_hash": hash}),
        json!({"uri": format!("{uri}@{hash}"), "top_hash": short, "path": "data"}),
    ] {
        let page = server.ok("package_browse", args.clone()).await;
        assert_eq!(page["top_hash"], hash, "{args}");
        assert_eq!(page["path"], "data", "{args}");
        assert_eq!(page["entry_count"], 1, "{args}");
        assert_eq!(page["entries"][0]["logical_key"], "data/a.csv", "{args}");
    }

    let revisions = server
        .ok(
            "package_revisions",
            json!({"uri": format!("{uri}@{hash}&path=data")}),
        )
        .await;
    assert_eq!(revisions["package_name"], NAME);
    assert_eq!(revisions["revisions"][0]["top_hash"], hash);
    assert!(revisions["revisions"][0].get("catalog_url").is_none());
    server.stop().await;
}

#[tokio::test]
async fn object_tools_read_the_entrys_physical_object() {
    let (s3, hash) = sample().await;
    let server = start_on(&s3, &reader(), &[], ()).await;
    let uri = format!("quilt+s3://registry#package={NAME}");

    let text = server
        .ok(
            "bucket_object_text",
            json!({"uri": format!("{uri}:latest&path=data/a.csv")}),
        )
        .await;
    assert_eq!(text["text"], "id,v\n1,2\n");
    assert_eq!(
        (&text["bucket"], &text["key"]),
        (&json!("sources"), &json!("raw/a.csv"))
    );
    assert!(text.get("catalog_url").is_none(), "{text}");

    // `+` is a space and `%23` a `#` in the path; the physical key is percent-encoded.
    let readme = server
        .ok(
            "bucket_object_text",
            json!({"uri": format!("{uri}@{hash}&path=docs/read+me%231.md")}),
        )
        .await;
    assert_eq!(readme["text"], "# hi\n");
    assert_eq!(readme["key"], "docs/a b#1.md");

    let info = server
        .ok(
            "bucket_object_info",
            json!({"uri": format!("{uri}@{}&path=data/a.csv", &hash[..10])}),
        )
        .await;
    assert_eq!(
        (&info["bucket"], &info["size"]),
        (&json!("sources"), &json!(9))
    );
    let fetched = server
        .ok(
            "bucket_object_fetch",
            json!({"uri": format!("{uri}&path=data/a.csv")}),
        )
        .await;
    assert_eq!(fetched["bytes_read"], 9);
    let link = server
        .ok(
            "bucket_object_link",
            json!({"uri": format!("{uri}&path=data/a.csv")}),
        )
        .await;
    assert!(
        link["url"].as_str().unwrap().contains("raw/a.csv"),
        "{link}"
    );

    // A directory, a missing entry.
    let (code, message) = failure(
        &server
            .call(
                "bucket_object_text",
                json!({"uri": format!("{uri}&path=data")}),
            )
            .await
            .unwrap(),
    );
    assert_eq!(code, "invalid_argument", "{message}");
    assert!(message.contains("directory"), "{message}");
    let (code, message) = failure(
        &server
            .call(
                "bucket_object_text",
                json!({"uri": format!("{uri}&path=nope.csv")}),
            )
            .await
            .unwrap(),
    );
    assert_eq!(code, "not_found", "{message}");
    assert!(message.contains("nope.csv"), "{message}");

    // The physical object is authorized for its own bucket, which the token lacks; a
    // version needs s3:GetObjectVersion, which it lacks too.
    for tool in [
        "bucket_object_text",
        "bucket_object_info",
        "bucket_object_fetch",
        "bucket_object_link",
    ] {
        let (code, message) = failure(
            &server
                .call(tool, json!({"uri": format!("{uri}&path=secret.txt")}))
                .await
                .unwrap(),
        );
        assert_eq!(code, "access_denied", "{tool}: {message}");
        assert!(message.contains("\"forbidden\""), "{tool}: {message}");
        assert!(!message.contains("top secret"), "{tool}: {message}");
    }
    let (code, message) = failure(
        &server
            .call(
                "bucket_object_text",
                json!({"uri": format!("{uri}&path=versioned.csv")}),
            )
            .await
            .unwrap(),
    );
    assert_eq!(code, "access_denied", "{message}");
    assert!(message.contains("s3:GetObjectVersion"), "{message}");
    server.stop().await;
}

#[tokio::test]
async fn results_link_to_the_catalog_when_it_is_known() {
    let (s3, hash) = sample().await;
    let server = start_on(
        &s3,
        &reader(),
        &[("QUILT_CATALOG_URL", &format!("{CATALOG}/"))],
        (),
    )
    .await;
    let uri = format!("quilt+s3://registry#package={NAME}");
    let packages = format!("{CATALOG}/b/registry/packages/{NAME}/tree/{hash}");

    let root = server.ok("package_browse", json!({"uri": uri})).await;
    assert_eq!(root["catalog_url"], format!("{packages}/"));
    let dir = server
        .ok("package_browse", json!({"uri": format!("{uri}&path=data")}))
        .await;
    assert_eq!(dir["catalog_url"], format!("{packages}/data/"));
    let file = server
        .ok(
            "package_browse",
            json!({"uri": format!("{uri}&path=docs/read+me%231.md")}),
        )
        .await;
    assert_eq!(
        file["catalog_url"],
        format!("{packages}/docs/read%20me%231.md")
    );
    let revisions = server.ok("package_revisions", json!({"uri": uri})).await;
    assert_eq!(
        revisions["revisions"][0]["catalog_url"],
        format!("{packages}/")
    );

    let text = server
        .ok(
            "bucket_object_text",
            json!({"uri": format!("{uri}&path=docs/read+me%231.md")}),
        )
        .await;
    assert_eq!(
        text["catalog_url"],
        format!("{CATALOG}/b/sources/tree/docs/a%20b%231.md")
    );
    let info = server
        .ok(
            "bucket_object_info",
            json!({"s3_uri": "s3://sources/raw/a.csv"}),
        )
        .await;
    assert_eq!(
        info["catalog_url"],
        format!("{CATALOG}/b/sources/tree/raw/a.csv")
    );
    let fetched = server
        .ok(
            "bucket_object_fetch",
            json!({"s3_uri": "s3://sources/raw/a.csv"}),
        )
        .await;
    assert_eq!(
        fetched["catalog_url"],
        format!("{CATALOG}/b/sources/tree/raw/a.csv")
    );
    let listed = server
        .ok(
            "bucket_objects_list",
            json!({"bucket": "sources", "prefix": "docs/"}),
        )
        .await;
    assert_eq!(
        listed["objects"][0]["catalog_url"],
        format!("{CATALOG}/b/sources/tree/docs/a%20b%231.md")
    );
    server.stop().await;
}

/// A package file whose physical key has a `versionId` (a versioned bucket, on moto)
/// is read at that version, even after the object was overwritten; without
/// `s3:GetObjectVersion` it is `access_denied`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto"]
async fn a_physical_version_is_the_one_read() {
    use crate::common::moto::Moto;
    use aws_sdk_s3::primitives::ByteStream;
    use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};

    let moto = Moto::start().await;
    let s3 = moto.client();
    for bucket in ["registry", "sources"] {
        s3.create_bucket().bucket(bucket).send().await.unwrap();
    }
    s3.put_bucket_versioning()
        .bucket("sources")
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let put = |body: &'static [u8]| {
        s3.put_object()
            .bucket("sources")
            .key("a.csv")
            .body(ByteStream::from_static(body))
            .send()
    };
    put(b"old\n").await.unwrap();
    let server = |permissions: &[&str]| {
        let jwt = hs256(&claims_with(json!({
            "buckets": ["registry", "sources"],
            "permissions": permissions,
            "level": "write",
            "aws_credentials": {
                "access_key_id": crate::common::moto::ACCESS_KEY,
                "secret_access_key": crate::common::moto::SECRET_KEY,
            },
        })));
        let endpoint = moto.endpoint.clone();
        async move {
            Server::spawn(&[
                ("AWS_ENDPOINT_URL_S3", endpoint.as_str()),
                ("QUILT_MCP_S3_FORCE_PATH_STYLE", "true"),
                ("QUILT_MCP_JWT_SECRET", SECRET),
                ("QUILT_MCP_TOKEN", jwt.as_str()),
            ])
            .await
        }
    };
    let writer = server(&[
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:ListBucket",
        "s3:PutObject",
    ])
    .await;
    let created = writer
        .ok(
            "package_create",
            json!({"registry": "registry", "package_name": NAME, "entries": [{"logical_key": "a.csv", "s3_uri": "s3://sources/a.csv"}]}),
        )
        .await;
    let uri = format!("{}&path=a.csv", created["uri"].as_str().unwrap());
    put(b"new\n").await.unwrap();

    let old = writer.ok("bucket_object_text", json!({"uri": uri})).await;
    assert_eq!(old["text"], "old\n", "{old}");
    let info = writer.ok("bucket_object_info", json!({"uri": uri})).await;
    assert!(
        info["version_id"].as_str().is_some_and(|v| !v.is_empty()),
        "{info}"
    );
    let new = writer
        .ok(
            "bucket_object_text",
            json!({"s3_uri": "s3://sources/a.csv"}),
        )
        .await;
    assert_eq!(new["text"], "new\n");
    writer.stop().await;

    let reader = server(&["s3:GetObject", "s3:ListBucket"]).await;
    let (code, message) = failure(
        &reader
            .call("bucket_object_text", json!({"uri": uri}))
            .await
            .unwrap(),
    );
    assert_eq!(code, "access_denied", "{message}");
    assert!(message.contains("s3:GetObjectVersion"), "{message}");
    reader.stop().await;
}

/// A writer of `registry` and `sources`.
fn writer() -> String {
    hs256(&claims_with(json!({
        "buckets": ["registry", "sources"],
        "permissions": ["s3:GetObject", "s3:ListBucket", "s3:PutObject"],
        "level": "write",
        "aws_credentials": {"access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY},
    })))
}

#[tokio::test]
async fn publishing_tools_take_a_uri() {
    let (s3, _) = sample().await;
    let server = start_on(&s3, &writer(), &[("QUILT_CATALOG_URL", CATALOG)], ()).await;
    let uri = "quilt+s3://registry#package=team/new";
    let link = |hash: &str| format!("{CATALOG}/b/registry/packages/team/new/tree/{hash}/");

    let created = server
        .ok(
            "package_create",
            json!({"uri": uri, "s3_uris": ["s3://sources/raw/a.csv"], "message": "by uri"}),
        )
        .await;
    assert_eq!(created["registry"], "s3://registry");
    assert_eq!(created["package_name"], "team/new");
    assert_eq!(created["entry_count"], 1);
    assert!(created["previous_top_hash"].is_null(), "{created}");
    let first = created["top_hash"].as_str().unwrap().to_owned();
    assert_eq!(created["catalog_url"], link(&first));

    // The uri's hash (a prefix of latest) is the parent.
    let patched = server
        .ok(
            "package_patch",
            json!({
                "uri": format!("{uri}@{}", &first[..10]),
                "add_s3_uris": ["s3://sources/docs/"],
                "message": "patched by uri",
            }),
        )
        .await;
    assert_eq!(patched["registry"], "s3://registry");
    assert_eq!(patched["package_name"], "team/new");
    assert_eq!(patched["parent_top_hash"], first);
    assert_eq!(patched["entry_count"], 2);
    let second = patched["top_hash"].as_str().unwrap();
    assert_eq!(patched["catalog_url"], link(second));
    assert_ne!(second, first);
    let latest = server.ok("package_browse", json!({"uri": uri})).await;
    assert_eq!(latest["top_hash"], second);

    // package_diff: the first package by uri, its hash the older side.
    let diff = server
        .ok(
            "package_diff",
            json!({"uri": format!("{uri}@{}", &first[..8]), "package2_hash": second}),
        )
        .await;
    assert_eq!(diff["registry"], "s3://registry", "{diff}");
    assert_eq!(diff["package1"]["top_hash"], first, "{diff}");
    assert_eq!(diff["package2"]["top_hash"], second, "{diff}");
    assert_eq!(diff["added"], json!(["a b#1.md"]), "{diff}");
    // Without a hash: latest against the revision before, as by name.
    let by_name = server
        .ok(
            "package_diff",
            json!({"registry": "registry", "package1_name": "team/new"}),
        )
        .await;
    let by_uri = server.ok("package_diff", json!({"uri": uri})).await;
    assert_eq!(by_uri, by_name);

    // The first revision, no longer latest, is a parent that has moved on.
    let (code, message) = failure(
        &server
            .call(
                "package_patch",
                json!({"uri": format!("{uri}@{first}"), "message": "stale"}),
            )
            .await
            .unwrap(),
    );
    assert_eq!(code, "conflict", "{message}");
    // The gate authorizes the bucket the uri names.
    let refused = server
        .call(
            "package_create",
            json!({"uri": "quilt+s3://forbidden#package=team/new", "s3_uris": ["s3://sources/raw/a.csv"]}),
        )
        .await
        .unwrap_err();
    let data = refused.data.unwrap();
    assert_eq!(
        (data["reason"].as_str(), data["bucket"].as_str()),
        (Some("bucket_not_allowed"), Some("forbidden"))
    );
    server.stop().await;
}
