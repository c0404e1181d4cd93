//! MCP resources and completions, and toolsets, through the binary over stdio and
//! HTTP against the in-process S3: each read or completion passes the gate as the tool
//! call it stands for (docs/reference.md, Resources).

use base64::Engine as _;
use rmcp::ServiceExt as _;
use rmcp::model::{
    ArgumentInfo, CompleteRequestParams, CompletionContext, CompletionInfo,
    ReadResourceRequestParams, ReadResourceResult, Reference,
};
use rmcp::service::{RoleClient, RunningService, ServiceError};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ErrorData, Peer};
use serde_json::{Value, json};

use crate::common::s3::{ACCESS_KEY, SECRET_KEY, TestS3};
use crate::common::*;
use crate::http::HttpServer;

const OBJECT: &str = "s3://{bucket}/{+key}";
const PACKAGE: &str = "quilt+s3://{bucket}#package={+name}";
const MIB: usize = 1024 * 1024;

/// A token on `lab-data` and `other-data` with inline credentials and `extra` claims.
fn token(extra: Value) -> String {
    let mut claims = claims_with(json!({
        "buckets": ["lab-data", "other-data"],
        "permissions": ["s3:GetObject", "s3:ListBucket", "s3:PutObject"],
        "level": "write",
        "aws_credentials": {"access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY},
    }));
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    hs256(&claims)
}

/// `lab-data`: a text object, a binary one, one just over 1 MiB, one of exactly
/// 1 MiB, 150 keys under `many/`; `secret-data`, which no token here grants.
async fn sample() -> TestS3 {
    let s3 = TestS3::start().await;
    for bucket in ["lab-data", "other-data", "secret-data"] {
        s3.create_bucket(bucket).await;
    }
    s3.put(
        "lab-data",
        "runs/readme.md",
        "# Runs\nhéllo €\n".as_bytes(),
        "text/markdown",
        &[],
    )
    .await;
    s3.put("lab-data", "runs/2026/a.csv", b"id\n1\n", "text/csv", &[])
        .await;
    s3.put("lab-data", "img/logo.png", &png(), "image/png", &[])
        .await;
    s3.put(
        "lab-data",
        "big/over.txt",
        &vec![b'a'; MIB + 1],
        "text/plain",
        &[],
    )
    .await;
    s3.put(
        "lab-data",
        "big/exact.txt",
        &vec![b'b'; MIB],
        "text/plain",
        &[],
    )
    .await;
    for i in 0..150 {
        s3.seed_file("lab-data", &format!("many/k{i:03}"), b"x");
    }
    s3.put("secret-data", "k.txt", b"secret", "text/plain", &[])
        .await;
    s3
}

fn png() -> Vec<u8> {
    let mut bytes = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0];
    bytes.extend((0..=255u8).cycle().take(500));
    bytes
}

/// What a resource request returns, or its JSON-RPC error.
fn rpc<T>(result: Result<T, ServiceError>) -> Result<T, ErrorData> {
    match result {
        Ok(value) => Ok(value),
        Err(ServiceError::McpError(e)) => Err(e),
        Err(other) => panic!("transport failure: {other}"),
    }
}

async fn read(peer: &Peer<RoleClient>, uri: &str) -> Result<ReadResourceResult, ErrorData> {
    rpc(peer
        .read_resource(ReadResourceRequestParams::new(uri))
        .await)
}

/// The one content of a read, as JSON.
async fn read_json(peer: &Peer<RoleClient>, uri: &str) -> Value {
    let result = read(peer, uri)
        .await
        .unwrap_or_else(|e| panic!("{uri}: {e:?}"));
    assert_eq!(result.contents.len(), 1, "{uri}");
    serde_json::to_value(&result.contents[0]).unwrap()
}

async fn complete(
    peer: &Peer<RoleClient>,
    template: &str,
    argument: &str,
    value: &str,
    bucket: Option<&str>,
) -> Result<CompletionInfo, ErrorData> {
    let mut params = CompleteRequestParams::new(
        Reference::for_resource(template),
        ArgumentInfo::new(argument, value),
    );
    if let Some(bucket) = bucket {
        params = params.with_context(CompletionContext::with_arguments(
            [("bucket".to_owned(), bucket.to_owned())].into(),
        ));
    }
    rpc(peer.complete(params).await).map(|r| r.completion)
}

async fn resource_uris(peer: &Peer<RoleClient>) -> Result<Vec<String>, ErrorData> {
    rpc(peer.list_all_resources().await).map(|list| list.into_iter().map(|r| r.uri).collect())
}

/// Everything a user does with resources, over one stdio session: list, templates,
/// reads of text, binary, too large, folders and packages, refusals, completions.
#[tokio::test]
async fn resources_and_completions_over_stdio() {
    let s3 = sample().await;
    let server = start_on(&s3, &token(json!({})), &[], ()).await;
    // A package to summarize and complete.
    server
        .ok(
            "package_create",
            json!({"registry": "lab-data", "package_name": "team/demo", "message": "first",
                   "metadata": {"project": "x1"},
                   "s3_uris": ["s3://lab-data/runs/"]}),
        )
        .await;
    let peer = server.client.peer();
    let capabilities = &peer.peer_info().unwrap().capabilities;
    assert!(capabilities.resources.is_some() && capabilities.completions.is_some());
    check_session(peer, &s3).await;

    // Completions.
    let buckets = complete(peer, OBJECT, "bucket", "la", None).await.unwrap();
    assert_eq!(buckets.values, ["lab-data"]);
    let all = complete(peer, PACKAGE, "bucket", "", None).await.unwrap();
    assert_eq!(
        (all.values, all.total, all.has_more),
        (
            vec!["lab-data".to_owned(), "other-data".to_owned()],
            Some(2),
            Some(false)
        )
    );
    let keys = complete(peer, OBJECT, "key", "", Some("lab-data"))
        .await
        .unwrap();
    assert!(keys.values.contains(&"runs/".to_owned()), "{keys:?}");
    assert!(keys.values.contains(&".quilt/".to_owned()), "{keys:?}");
    let keys = complete(peer, OBJECT, "key", "runs/", Some("s3://lab-data"))
        .await
        .unwrap();
    assert_eq!(keys.values, ["runs/2026/", "runs/readme.md"]);
    // At most 100 values, and the rest announced.
    let many = complete(peer, OBJECT, "key", "many/", Some("lab-data"))
        .await
        .unwrap();
    assert_eq!((many.values.len(), many.has_more), (100, Some(true)));
    assert_eq!(many.values[0], "many/k000");
    let names = complete(peer, PACKAGE, "name", "te", Some("lab-data"))
        .await
        .unwrap();
    assert_eq!(names.values, ["team/demo"]);
    let none = complete(peer, PACKAGE, "name", "zz", Some("lab-data"))
        .await
        .unwrap();
    assert!(none.values.is_empty());
    // Without a bucket there is nothing to complete a key in.
    let nothing = complete(peer, OBJECT, "key", "ru", None).await.unwrap();
    assert!(nothing.values.is_empty());
    // A key completion in a bucket the token does not grant is refused as the listing.
    let error = complete(peer, OBJECT, "key", "", Some("secret-data"))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code.0, reason(&error).as_str()),
        (-32003, "bucket_not_allowed")
    );
    assert_eq!(error.data.as_ref().unwrap()["tool"], "bucket_objects_list");
    let error = complete(peer, PACKAGE, "name", "", Some("secret-data"))
        .await
        .unwrap_err();
    assert_eq!(error.data.as_ref().unwrap()["tool"], "package_list");
    for (template, argument) in [(OBJECT, "name"), (PACKAGE, "key"), ("s3://{x}", "bucket")] {
        let error = complete(peer, template, argument, "", Some("lab-data"))
            .await
            .unwrap_err();
        assert_eq!(error.code.0, -32602, "{template} {argument}");
    }

    // Reads and completions are logged as the tool calls they stand for.
    let (_, log_dir) = server.stop().await;
    let calls: Vec<String> = log_lines(log_dir.path())
        .iter()
        .filter(|l| l["event"] == "tool_call")
        .map(|l| {
            format!(
                "{}:{}",
                l["tool"].as_str().unwrap(),
                l["outcome"].as_str().unwrap()
            )
        })
        .collect();
    for expected in [
        "bucket_object_fetch:ok",
        "bucket_object_fetch:denied",
        "bucket_objects_list:ok",
        "package_browse:ok",
        "package_list:ok",
        "bucket_list:ok",
    ] {
        assert!(calls.iter().any(|c| c == expected), "{expected}: {calls:?}");
    }
}

/// The reads every transport must serve the same: list, templates, text, binary,
/// exactly 1 MiB, too large, a folder, a package, not found, and refused.
async fn check_session(peer: &Peer<RoleClient>, s3: &TestS3) {
    assert_eq!(
        resource_uris(peer).await.unwrap(),
        ["s3://lab-data/", "s3://other-data/"]
    );
    let templates: Vec<String> = rpc(peer.list_all_resource_templates().await)
        .unwrap()
        .into_iter()
        .map(|t| t.uri_template)
        .collect();
    assert_eq!(templates, [OBJECT, PACKAGE]);

    let text = read_json(peer, "s3://lab-data/runs/readme.md").await;
    assert_eq!(
        text,
        json!({"uri": "s3://lab-data/runs/readme.md", "mimeType": "text/markdown", "text": "# Runs\nhéllo €\n"})
    );
    let blob = read_json(peer, "s3://lab-data/img/logo.png").await;
    assert_eq!(blob["mimeType"], "image/png");
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(blob["blob"].as_str().unwrap())
            .unwrap(),
        png()
    );
    let exact = read_json(peer, "s3://lab-data/big/exact.txt").await;
    assert_eq!(exact["text"].as_str().unwrap().len(), MIB);

    let before = s3.requests();
    let error = read(peer, "s3://lab-data/big/over.txt").await.unwrap_err();
    assert_eq!(error.code.0, -32603);
    assert_eq!(error.data.as_ref().unwrap()["code"], "too_large");
    assert!(
        error.message.contains("bucket_object_text"),
        "{}",
        error.message
    );
    assert!(s3.requests() > before);

    for uri in ["s3://lab-data/", "s3://lab-data"] {
        let folder = read_json(peer, uri).await;
        assert_eq!(folder["mimeType"], "application/json");
        let listing: Value = serde_json::from_str(folder["text"].as_str().unwrap()).unwrap();
        let prefixes = listing["common_prefixes"].as_array().unwrap();
        assert!(prefixes.contains(&json!("runs/")), "{listing}");
        assert!(listing["objects"].as_array().unwrap().is_empty());
    }
    let folder = read_json(peer, "s3://lab-data/runs/").await;
    let listing: Value = serde_json::from_str(folder["text"].as_str().unwrap()).unwrap();
    assert_eq!(listing["common_prefixes"], json!(["runs/2026/"]));
    assert_eq!(listing["objects"][0]["key"], "runs/readme.md");

    let package = read_json(peer, "quilt+s3://lab-data#package=team/demo").await;
    assert_eq!(package["mimeType"], "application/json");
    let summary: Value = serde_json::from_str(package["text"].as_str().unwrap()).unwrap();
    assert_eq!(summary["message"], "first");
    assert_eq!(summary["user_meta"], json!({"project": "x1"}));
    assert_eq!(summary["entry_count"], 2);
    assert_eq!(summary["directories"][0]["logical_key"], "2026/");
    assert!(summary.get("entries").is_none());
    let top_hash = summary["top_hash"].as_str().unwrap();
    let pinned = read_json(
        peer,
        &format!("quilt+s3://lab-data#package=team/demo@{}", &top_hash[..8]),
    )
    .await;
    assert!(pinned["text"].as_str().unwrap().contains(top_hash));

    let error = read(peer, "s3://lab-data/no/such.txt").await.unwrap_err();
    assert_eq!(error.code.0, -32002, "{error:?}");
    assert_eq!(error.data.as_ref().unwrap()["code"], "not_found");
    let error = read(peer, "quilt+s3://lab-data#package=team/none")
        .await
        .unwrap_err();
    assert_eq!(error.code.0, -32002, "{error:?}");
    for bad in [
        "file:///etc/passwd",
        "s3://lab-data/dir/?versionId=1",
        "quilt+s3://lab-data",
    ] {
        assert_eq!(read(peer, bad).await.unwrap_err().code.0, -32602, "{bad}");
    }

    // A bucket outside the token: -32003 before any request reaches S3.
    let before = s3.requests();
    for (uri, tool) in [
        ("s3://secret-data/k.txt", "bucket_object_fetch"),
        ("s3://secret-data/", "bucket_objects_list"),
        ("quilt+s3://secret-data#package=team/demo", "package_browse"),
    ] {
        let error = read(peer, uri).await.unwrap_err();
        assert_eq!(
            (error.code.0, reason(&error).as_str()),
            (-32003, "bucket_not_allowed"),
            "{uri}"
        );
        assert_eq!(error.data.as_ref().unwrap()["tool"], tool);
        assert_eq!(error.data.as_ref().unwrap()["bucket"], "secret-data");
    }
    assert_eq!(s3.requests(), before, "a refused read reached S3");
}

/// Without a token every resource request is -32001, as every tool call is.
#[tokio::test]
async fn without_a_token_resources_are_unauthorized() {
    let s3 = sample().await;
    let mut env: Vec<(&str, String)> = s3.env();
    env.push(("QUILT_MCP_JWT_SECRET", SECRET.into()));
    let refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = Server::spawn(&refs).await;
    let peer = server.client.peer();
    let before = s3.requests();
    let errors = [
        resource_uris(peer).await.unwrap_err(),
        read(peer, "s3://lab-data/runs/readme.md")
            .await
            .unwrap_err(),
        read(peer, "quilt+s3://lab-data#package=team/demo")
            .await
            .unwrap_err(),
        complete(peer, OBJECT, "bucket", "", None)
            .await
            .unwrap_err(),
        complete(peer, OBJECT, "key", "", Some("lab-data"))
            .await
            .unwrap_err(),
    ];
    for error in errors {
        assert_eq!(
            (error.code.0, reason(&error).as_str()),
            (-32001, "missing_token"),
            "{error:?}"
        );
    }
    // Templates need no token: they say what could be read.
    assert_eq!(
        rpc(peer.list_all_resource_templates().await).unwrap().len(),
        2
    );
    assert_eq!(s3.requests(), before);
    server.stop().await;
}

/// A token for every bucket (`*`) lists no bucket resources (nothing to enumerate
/// them with), but reads any bucket through the template.
#[tokio::test]
async fn a_token_for_every_bucket_lists_none_and_reads_any() {
    let s3 = sample().await;
    let server = start_on(&s3, &token(json!({"buckets": ["*"]})), &[], ()).await;
    let peer = server.client.peer();
    assert!(resource_uris(peer).await.unwrap().is_empty());
    assert!(
        complete(peer, OBJECT, "bucket", "", None)
            .await
            .unwrap()
            .values
            .is_empty()
    );
    let text = read_json(peer, "s3://secret-data/k.txt").await;
    assert_eq!(text["text"], "secret");
    server.stop().await;
}

/// What a session offers under `QUILT_MCP_TOOLSETS`.
struct Offered {
    tools: Vec<String>,
    templates: Vec<String>,
    resources: bool,
}

async fn offered(s3: &TestS3, toolsets: &str) -> (Offered, Server) {
    let server = start_on(
        s3,
        &token(json!({})),
        &[("QUILT_MCP_TOOLSETS", toolsets)],
        (),
    )
    .await;
    let peer = server.client.peer();
    let tools = rpc(peer.list_all_tools().await)
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    let resources = peer.peer_info().unwrap().capabilities.resources.is_some();
    let templates = if resources {
        rpc(peer.list_all_resource_templates().await)
            .unwrap()
            .into_iter()
            .map(|t| t.uri_template)
            .collect()
    } else {
        Vec::new()
    };
    (
        Offered {
            tools,
            templates,
            resources,
        },
        server,
    )
}

/// Each toolset offers its tools (and `auth_status`) and its resources; a hidden tool
/// is answered as an unknown one; a name that is not a toolset fails closed.
#[tokio::test]
async fn toolsets_choose_the_tools_and_resources() {
    let s3 = sample().await;

    let (buckets, server) = offered(&s3, "buckets").await;
    assert!(
        buckets
            .tools
            .iter()
            .all(|t| t == "auth_status" || t.starts_with("bucket_"))
    );
    assert!(buckets.tools.contains(&"bucket_object_fetch".to_owned()));
    assert_eq!(buckets.templates, [OBJECT]);
    let peer = server.client.peer();
    let hidden = server
        .call("package_list", json!({"registry": "lab-data"}))
        .await
        .unwrap_err();
    let unknown = server.call("no_such_tool", json!({})).await.unwrap_err();
    assert_eq!(hidden.code, unknown.code);
    assert_eq!(hidden.message, "unknown tool \"package_list\"");
    let error = read(peer, "quilt+s3://lab-data#package=team/demo")
        .await
        .unwrap_err();
    assert_eq!(error.code.0, -32602);
    let error = complete(peer, PACKAGE, "name", "", Some("lab-data"))
        .await
        .unwrap_err();
    assert_eq!(error.code.0, -32602);
    assert_eq!(
        read_json(peer, "s3://lab-data/runs/readme.md").await["mimeType"],
        "text/markdown"
    );
    server.stop().await;

    let (packages, server) = offered(&s3, "packages").await;
    assert!(
        packages
            .tools
            .iter()
            .all(|t| t == "auth_status" || t.starts_with("package_"))
    );
    assert!(packages.tools.contains(&"package_browse".to_owned()));
    assert_eq!(packages.templates, [PACKAGE]);
    let peer = server.client.peer();
    assert!(resource_uris(peer).await.unwrap().is_empty());
    assert_eq!(
        read(peer, "s3://lab-data/runs/readme.md")
            .await
            .unwrap_err()
            .code
            .0,
        -32602
    );
    assert_eq!(
        complete(peer, PACKAGE, "bucket", "o", None)
            .await
            .unwrap()
            .values,
        ["other-data"]
    );
    let error = server
        .call(
            "bucket_object_text",
            json!({"s3_uri": "s3://lab-data/runs/readme.md"}),
        )
        .await
        .unwrap_err();
    assert_eq!(error.message, "unknown tool \"bucket_object_text\"");
    server.stop().await;

    // `search` alone (its tools come with the registry): no resources at all.
    let (search, server) = offered(&s3, "search").await;
    assert!(!search.resources);
    assert!(
        search
            .tools
            .iter()
            .all(|t| t != "bucket_list" && !t.starts_with("package_"))
    );
    let error = read(server.client.peer(), "s3://lab-data/runs/readme.md")
        .await
        .unwrap_err();
    assert_eq!(error.code.0, -32601);
    server.stop().await;

    let (all, server) = offered(&s3, "buckets, packages,search").await;
    let (default, other) = offered(&s3, "all").await;
    assert_eq!(all.tools, default.tools);
    assert_eq!(all.templates, [OBJECT, PACKAGE]);
    server.stop().await;
    other.stop().await;

    // A typo fails closed: only what was named right, and a warning.
    let (typo, server) = offered(&s3, "packages,bukets").await;
    assert_eq!(typo.tools, packages.tools);
    let (stderr, _) = server.stop().await;
    assert!(stderr.contains("QUILT_MCP_TOOLSETS"), "{stderr}");
    let (nothing, server) = offered(&s3, "bukets").await;
    assert_eq!(nothing.tools, ["auth_status"]);
    assert!(!nothing.resources);
    server.stop().await;
}

/// `status` exits 2 on a toolset name that is not one, and names the variable.
#[test]
fn status_flags_an_unknown_toolset() {
    let log_dir = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_quilt-mcp"));
    cmd.env_clear().arg("status");
    for (k, v) in base_env(log_dir.path()) {
        cmd.env(k, v);
    }
    cmd.env("QUILT_MCP_JWT_SECRET", SECRET);
    cmd.env("QUILT_MCP_TOKEN", token(json!({})));
    let good = cmd.output().unwrap();
    cmd.env("QUILT_MCP_TOOLSETS", "bukets");
    let bad = cmd.output().unwrap();
    assert_ne!(good.status.code(), Some(2));
    assert_eq!(bad.status.code(), Some(2));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&bad.stdout),
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(text.contains("QUILT_MCP_TOOLSETS"), "{text}");
}

/// The bytes of `tools/list` a host puts in the model's context (names, descriptions,
/// input schemas) for each toolset: every toolset is smaller than `all`, and the sizes
/// are printed for the record (`--nocapture`).
#[tokio::test]
async fn each_toolset_costs_less_context_than_all() {
    let s3 = TestS3::start().await;
    let mut sizes = Vec::new();
    for toolsets in ["all", "buckets", "packages", "search"] {
        let server = start_on(
            &s3,
            &token(json!({})),
            &[("QUILT_MCP_TOOLSETS", toolsets)],
            (),
        )
        .await;
        let tools = rpc(server.client.peer().list_all_tools().await).unwrap();
        let bytes: usize = tools
            .iter()
            .map(|t| {
                t.name.len()
                    + t.description.as_deref().map_or(0, str::len)
                    + serde_json::to_string(&*t.input_schema).unwrap().len()
            })
            .sum();
        let with_output: usize = tools
            .iter()
            .map(|t| serde_json::to_string(t).unwrap().len())
            .sum();
        println!(
            "toolsets={toolsets}: {} tools, {bytes} bytes (names, descriptions, input schemas), {with_output} bytes as listed",
            tools.len()
        );
        sizes.push(bytes);
        server.stop().await;
    }
    assert!(sizes[1..].iter().all(|s| *s < sizes[0]), "{sizes:?}");
}

// ---------------------------------------------------------------------------------
// HTTP

/// A `quilt-mcp serve --http 127.0.0.1:0` child against the test S3.
async fn serve_http(s3: &TestS3) -> HttpServer {
    let s3_env = s3.env();
    let mut env: Vec<(&str, &str)> = vec![("QUILT_MCP_JWT_SECRET", SECRET)];
    env.extend(s3_env.iter().map(|(k, v)| (*k, v.as_str())));
    HttpServer::start(&env).await
}

async fn http_client(http: &HttpServer, token: &str) -> RunningService<RoleClient, ()> {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(http.mcp()).auth_header(token.to_owned()),
    );
    ().serve(transport).await.expect("initialize over HTTP")
}

/// Over HTTP the bearer token of each request is the caller: the same reads, the same
/// refusals, and each user sees only their own buckets.
#[tokio::test]
async fn resources_and_completions_over_http() {
    let s3 = sample().await;
    let http = serve_http(&s3).await;
    let writer = http_client(&http, &token(json!({}))).await;
    let created = writer
        .peer()
        .call_tool(
            rmcp::model::CallToolRequestParams::new("package_create").with_arguments(
                json!({"registry": "lab-data", "package_name": "team/demo", "message": "first",
                       "metadata": {"project": "x1"}, "s3_uris": ["s3://lab-data/runs/"]})
                .as_object()
                .unwrap()
                .clone(),
            ),
        )
        .await
        .unwrap();
    assert_ne!(created.is_error, Some(true), "{created:?}");
    check_session(writer.peer(), &s3).await;
    let names = complete(writer.peer(), PACKAGE, "name", "", Some("lab-data"))
        .await
        .unwrap();
    assert_eq!(names.values, ["team/demo"]);

    // Another user, on another bucket, in the same server.
    let other = http_client(
        &http,
        &token(json!({"sub": "bob", "buckets": ["other-data"]})),
    )
    .await;
    assert_eq!(
        resource_uris(other.peer()).await.unwrap(),
        ["s3://other-data/"]
    );
    let error = read(other.peer(), "s3://lab-data/runs/readme.md")
        .await
        .unwrap_err();
    assert_eq!(
        (error.code.0, reason(&error).as_str()),
        (-32003, "bucket_not_allowed")
    );
    let error = complete(other.peer(), OBJECT, "key", "", Some("lab-data"))
        .await
        .unwrap_err();
    assert_eq!(error.code.0, -32003);
    let _ = writer.cancel().await;
    let _ = other.cancel().await;
}
