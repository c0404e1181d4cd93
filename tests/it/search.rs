//! `search_packages` and `search_objects` through the binary, against a registry that
//! validates every query against its schema and records the bearer it saw
//! (`quilt_mcp_testkit::registry_graphql`): paging to the end, bucket subsetting, the registry
//! token, each error mapping, and the tools' absence without `QUILT_REGISTRY_URL`.

use serde_json::{Value, json};

use crate::common::registry_graphql::{GraphqlRegistry, Mode, Object, Package};
use crate::common::{SECRET, Server, claims_with, hs256, log_text, reason};

/// A token for `buckets` that may list them.
fn token(buckets: &[&str], extra: Value) -> String {
    let mut claims = claims_with(json!({
        "buckets": buckets,
        "permissions": ["s3:GetObject", "s3:ListBucket"],
        "level": "read",
    }));
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    hs256(&claims)
}

async fn serve(registry: Option<&GraphqlRegistry>, jwt: &str, extra: &[(&str, &str)]) -> Server {
    let mut env = vec![("QUILT_MCP_JWT_SECRET", SECRET), ("QUILT_MCP_TOKEN", jwt)];
    if let Some(registry) = registry {
        env.push(("QUILT_REGISTRY_URL", registry.url.as_str()));
    }
    env.extend_from_slice(extra);
    Server::spawn(&env).await
}

/// Packages `ns/pkg-0` … in bucket `a`, `n` of them, and two in `b`.
fn packages(n: usize) -> Vec<Package> {
    let mut out: Vec<Package> = (0..n)
        .map(|i| Package::new("a", &format!("ns/pkg-{i}"), i))
        .collect();
    out.push(Package::new("b", "ns/secret-0", 900));
    out.push(Package::new("b", "ns/secret-1", 901));
    out
}

fn objects() -> Vec<Object> {
    vec![
        Object::new("a", "exp42/raw/run1.parquet"),
        Object::new("a", "exp42/raw/run2.PARQUET"),
        Object::new("a", "exp42/notes.md"),
        Object::new("a", "exp7/run1.parquet"),
        Object::new("b", "exp42/hidden.parquet"),
    ]
}

fn names(result: &Value) -> Vec<String> {
    result["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect()
}

fn tool_error(result: &rmcp::model::CallToolResult) -> (String, bool, String) {
    assert_eq!(result.is_error, Some(true), "{result:?}");
    let error = &result.structured_content.as_ref().unwrap()["error"];
    (
        error["code"].as_str().unwrap().to_owned(),
        error["retryable"].as_bool().unwrap(),
        error["message"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn search_packages_pages_to_the_end_with_every_query_valid() {
    let registry = GraphqlRegistry::start(packages(7), vec![]).await;
    let server = serve(Some(&registry), &token(&["a", "b"], json!({})), &[]).await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut args = json!({"query": "ns", "max_results": 4});
        if let Some(c) = &cursor {
            args["cursor"] = json!(c);
        }
        let page = server.ok("search_packages", args).await;
        pages += 1;
        assert_eq!(page["total"], 9, "{page}");
        assert_eq!(page["count"], page["results"].as_array().unwrap().len());
        seen.extend(names(&page));
        match page.get("next_cursor") {
            Some(next) => cursor = Some(next.as_str().unwrap().to_owned()),
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    let mut want: Vec<String> = (0..7).map(|i| format!("ns/pkg-{i}")).collect();
    want.extend(["ns/secret-0".to_owned(), "ns/secret-1".to_owned()]);
    assert_eq!((seen, pages), (want, 3));
    let searches = registry.searches();
    let fields: Vec<&str> = searches
        .iter()
        .map(|s| s.field.as_deref().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["searchPackages", "searchMorePackages", "searchMorePackages"]
    );
    assert_eq!(searches[0].variables["buckets"], json!(["a", "b"]));
    assert_eq!(searches[0].variables["latestOnly"], json!(true));
    assert_eq!(searches[0].variables["size"], json!(4));
    assert_eq!(registry.refusals(), Vec::<String>::new());
    server.stop().await;
}

#[tokio::test]
async fn search_packages_results_carry_uris_links_and_matching_entries() {
    let registry = GraphqlRegistry::start(packages(3), vec![]).await;
    let server = serve(
        Some(&registry),
        &token(&["a"], json!({})),
        &[("QUILT_CATALOG_URL", "https://catalog.example.com/")],
    )
    .await;
    let page = server
        .ok(
            "search_packages",
            json!({"query": "data/1.csv", "latest_only": false}),
        )
        .await;
    assert_eq!(page["total"], 1, "{page}");
    let hit = &page["results"][0];
    let hash = format!("{:064x}", 1);
    assert_eq!(hit["name"], "ns/pkg-1");
    assert_eq!(hit["top_hash"], hash);
    assert_eq!(hit["uri"], format!("quilt+s3://a#package=ns/pkg-1@{hash}"));
    assert_eq!(
        hit["catalog_url"],
        format!("https://catalog.example.com/b/a/packages/ns/pkg-1/tree/{hash}/")
    );
    assert_eq!(hit["modified"], "2026-11-30T12:34:56Z");
    assert_eq!(
        (hit["size"].clone(), hit["entry_count"].clone()),
        (json!(101), json!(1))
    );
    assert_eq!(hit["message"], "revision 1 of ns/pkg-1");
    assert_eq!(
        hit["matching_entries"],
        json!([{"logical_key": "data/1.csv", "size": 101}])
    );
    assert_eq!(registry.searches()[0].variables["latestOnly"], json!(false));
    assert!(page.get("next_cursor").is_none());
    // The uri works with the package tools' parser as it is.
    assert_eq!(registry.refusals(), Vec::<String>::new());
    server.stop().await;
}

#[tokio::test]
async fn search_objects_filters_pages_and_links() {
    let registry = GraphqlRegistry::start(vec![], objects()).await;
    let server = serve(
        Some(&registry),
        &token(&["a", "b"], json!({})),
        &[("QUILT_CATALOG_URL", "https://catalog.example.com")],
    )
    .await;
    let first = server
        .ok(
            "search_objects",
            json!({"query": "", "buckets": ["a"], "extensions": ["Parquet"], "key_prefix": "exp42/", "max_results": 1}),
        )
        .await;
    assert_eq!(
        (first["total"].clone(), first["count"].clone()),
        (json!(2), json!(1)),
        "{first}"
    );
    let hit = &first["results"][0];
    assert_eq!(hit["s3_uri"], "s3://a/exp42/raw/run1.parquet");
    assert_eq!(hit["version_id"], "v-22");
    assert_eq!(
        hit["catalog_url"],
        "https://catalog.example.com/b/a/tree/exp42/raw/run1.parquet"
    );
    assert_eq!(hit["modified"], "2026-11-29T08:00:00Z");
    let second = server
        .ok(
            "search_objects",
            json!({"query": "", "buckets": ["a"], "extensions": [".parquet"], "key_prefix": "exp42/", "max_results": 1, "cursor": first["next_cursor"]}),
        )
        .await;
    assert_eq!(second["results"][0]["key"], "exp42/raw/run2.PARQUET");
    assert_eq!(second["total"], 2);
    assert!(second.get("next_cursor").is_none(), "{second}");
    let searches = registry.searches();
    assert_eq!(
        searches[0].variables["filter"],
        json!({"ext": {"terms": [".parquet"]}, "key": {"wildcard": "exp42/*"}})
    );
    assert_eq!(searches[0].variables["searchString"], Value::Null);
    assert_eq!(searches[1].field.as_deref(), Some("searchMoreObjects"));
    assert_eq!(registry.refusals(), Vec::<String>::new());
    server.stop().await;
}

/// A token for `a` never searches `b`: naming `b` is refused at the gate before any
/// registry request, the default is the token's buckets, and hits of other buckets are
/// never shown even from a registry that ignores the filter.
#[tokio::test]
async fn a_token_for_a_never_searches_b() {
    let registry = GraphqlRegistry::start(packages(2), objects()).await;
    let server = serve(Some(&registry), &token(&["a"], json!({})), &[]).await;
    for (tool, args) in [
        ("search_packages", json!({"query": "x", "buckets": ["b"]})),
        (
            "search_packages",
            json!({"query": "x", "buckets": ["a", "s3://b"]}),
        ),
        ("search_objects", json!({"query": "x", "buckets": ["b"]})),
    ] {
        let error = server.call(tool, args.clone()).await.unwrap_err();
        assert_eq!(
            (error.code.0, reason(&error).as_str()),
            (-32003, "bucket_not_allowed"),
            "{args}"
        );
        assert_eq!(error.data.as_ref().unwrap()["bucket"], "b");
    }
    assert!(registry.seen().is_empty(), "{:?}", registry.seen());

    let page = server.ok("search_packages", json!({"query": ""})).await;
    assert_eq!(registry.searches()[0].variables["buckets"], json!(["a"]));
    assert_eq!(page["buckets"], json!(["a"]));
    assert!(
        names(&page).iter().all(|n| n.starts_with("ns/pkg")),
        "{page}"
    );

    registry.set_mode(Mode::IgnoreBuckets);
    let page = server.ok("search_packages", json!({"query": ""})).await;
    assert_eq!(
        (names(&page).len(), page["skipped"].clone()),
        (2, json!(2)),
        "{page}"
    );
    let page = server.ok("search_objects", json!({"query": "exp42"})).await;
    let buckets: Vec<&str> = page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["bucket"].as_str().unwrap())
        .collect();
    assert_eq!(
        (buckets, page["skipped"].clone()),
        (vec!["a", "a", "a"], json!(1)),
        "{page}"
    );
    server.stop().await;

    // Without s3:ListBucket the gate refuses before the registry.
    let before = registry.seen().len();
    let no_list = hs256(&claims_with(
        json!({"buckets": ["a"], "permissions": ["s3:GetObject"]}),
    ));
    let server = serve(Some(&registry), &no_list, &[]).await;
    let error = server
        .call("search_objects", json!({"query": "x"}))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code.0, reason(&error).as_str()),
        (-32003, "missing_permission")
    );
    server.stop().await;
    assert_eq!(registry.seen().len(), before);
}

/// A cursor cannot be replayed for another query or bucket set: refused before the
/// registry is asked.
#[tokio::test]
async fn a_cursor_is_pinned_to_its_search() {
    let registry = GraphqlRegistry::start(packages(5), vec![]).await;
    let server = serve(Some(&registry), &token(&["a", "b"], json!({})), &[]).await;
    let first = server
        .ok(
            "search_packages",
            json!({"query": "ns", "buckets": ["a"], "max_results": 2}),
        )
        .await;
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let before = registry.searches().len();
    for args in [
        json!({"query": "other", "buckets": ["a"], "max_results": 2, "cursor": cursor}),
        json!({"query": "ns", "buckets": ["b"], "max_results": 2, "cursor": cursor}),
        json!({"query": "ns", "max_results": 2, "cursor": cursor}),
        json!({"query": "ns", "buckets": ["a"], "latest_only": false, "cursor": cursor}),
    ] {
        let result = server.call("search_packages", args.clone()).await.unwrap();
        let (code, _, message) = tool_error(&result);
        assert_eq!(code, "invalid_argument", "{args}");
        assert!(
            message.contains("not a next_cursor of this search_packages search"),
            "{message}"
        );
    }
    let result = server
        .call(
            "search_objects",
            json!({"query": "ns", "buckets": ["a"], "cursor": cursor}),
        )
        .await
        .unwrap();
    assert_eq!(tool_error(&result).0, "invalid_argument");
    assert_eq!(registry.searches().len(), before);
    // The same search with another page size goes on.
    let next = server
        .ok(
            "search_packages",
            json!({"query": "ns", "buckets": ["a"], "max_results": 3, "cursor": cursor}),
        )
        .await;
    assert_eq!(names(&next), ["ns/pkg-2", "ns/pkg-3", "ns/pkg-4"]);
    server.stop().await;
}

/// Search and the credential exchange carry `catalog_token` when the JWT has one, else
/// the JWT; neither ever reaches the log.
#[tokio::test]
async fn the_registry_token_is_catalog_token_else_the_jwt() {
    let registry = GraphqlRegistry::start(packages(1), vec![]).await;
    let catalog_token = "catalog-token-abc123";
    let with = token(&["a"], json!({"catalog_token": catalog_token}));
    let without = token(&["a"], json!({}));
    registry.accept(&[catalog_token, &without]);
    for (jwt, bearer) in [(&with, catalog_token), (&without, without.as_str())] {
        let server = serve(Some(&registry), jwt, &[]).await;
        server.ok("search_packages", json!({"query": "ns"})).await;
        server.ok("search_objects", json!({"query": "ns"})).await;
        let (_, logs) = server.stop().await;
        let text = log_text(logs.path());
        assert!(
            !text.contains(catalog_token) && !text.contains(jwt.as_str()),
            "a token was logged"
        );
        let seen = registry.seen();
        let last_two: Vec<Option<String>> = seen[seen.len() - 2..]
            .iter()
            .map(|s| s.authorization.clone())
            .collect();
        assert_eq!(last_two, vec![Some(format!("Bearer {bearer}")); 2]);
    }

    // The credential exchange carries it too.
    let s3 = crate::common::s3::TestS3::start().await;
    s3.create_bucket("alpha").await;
    let server = crate::common::start_on(
        &s3,
        &token(&["alpha"], json!({"catalog_token": catalog_token})),
        &[("QUILT_REGISTRY_URL", &registry.url)],
        (),
    )
    .await;
    server
        .ok("bucket_objects_list", json!({"bucket": "alpha"}))
        .await;
    let exchange = registry
        .seen()
        .into_iter()
        .rfind(|s| s.endpoint == "get_credentials")
        .unwrap();
    assert_eq!(
        exchange.authorization,
        Some(format!("Bearer {catalog_token}"))
    );
    server.stop().await;
}

/// 401/403 are -32001 `registry_rejected`, whose hint names the token sent.
#[tokio::test]
async fn a_rejected_token_is_registry_rejected_naming_the_token_sent() {
    let registry = GraphqlRegistry::start(packages(1), vec![]).await;
    registry.accept(&["only-this-one"]);
    for (extra, names) in [
        (
            json!({"catalog_token": "stale-catalog-token"}),
            "catalog_token claim",
        ),
        (json!({}), "the JWT itself"),
    ] {
        let jwt = token(&["a"], extra);
        let server = serve(Some(&registry), &jwt, &[]).await;
        for tool in ["search_packages", "search_objects"] {
            let error = server.call(tool, json!({"query": "ns"})).await.unwrap_err();
            assert_eq!(
                (error.code.0, reason(&error).as_str()),
                (-32001, "registry_rejected")
            );
            let hint = error.data.as_ref().unwrap()["hint"]
                .as_str()
                .unwrap()
                .to_owned();
            assert!(
                hint.contains(names) && hint.contains("must accept it"),
                "{hint}"
            );
            assert!(
                error.message.starts_with("Unauthorized: "),
                "{}",
                error.message
            );
            assert!(
                !error.message.contains("stale-catalog-token") && !error.message.contains(&jwt)
            );
        }
        let (_, logs) = server.stop().await;
        let lines = crate::common::log_lines(logs.path());
        assert!(lines.iter().any(|l| l["event"] == "tool_call"
            && l["outcome"] == "unauthorized"
            && l["reason"] == "registry_rejected"));
    }
    registry.accept(&[]);
    registry.set_mode(Mode::Status(403));
    let jwt = token(&["a"], json!({}));
    let server = serve(Some(&registry), &jwt, &[]).await;
    let error = server
        .call("search_packages", json!({"query": "ns"}))
        .await
        .unwrap_err();
    assert_eq!(reason(&error), "registry_rejected");
    server.stop().await;
}

#[tokio::test]
async fn registry_failures_map_to_tool_errors() {
    let registry = GraphqlRegistry::start(packages(1), objects()).await;
    let jwt = token(&["a"], json!({}));
    let server = serve(Some(&registry), &jwt, &[]).await;
    let leaked = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJlc2lnbmF0dXJl";
    for (mode, code, retryable, says) in [
        (
            Mode::InvalidInput(format!("Cannot parse 'AND (' near {leaked}")),
            "invalid_argument",
            false,
            "Cannot parse",
        ),
        (
            Mode::OperationError("search timed out".into()),
            "upstream_error",
            true,
            "search timed out",
        ),
        (
            Mode::Errors(format!("Cannot query field \"nope\" {leaked}")),
            "upstream_error",
            false,
            "Cannot query field",
        ),
        (Mode::Status(502), "upstream_error", true, "HTTP 502"),
        (Mode::Status(404), "upstream_error", false, "HTTP 404"),
        (
            Mode::Huge(9 * 1024 * 1024),
            "upstream_error",
            false,
            "more than 8388608 bytes",
        ),
    ] {
        registry.set_mode(mode.clone());
        for tool in ["search_packages", "search_objects"] {
            let result = server.call(tool, json!({"query": "ns"})).await.unwrap();
            let (got, again, message) = tool_error(&result);
            assert_eq!(
                (got.as_str(), again),
                (code, retryable),
                "{mode:?}: {message}"
            );
            assert!(message.contains(says), "{mode:?}: {message}");
            assert!(!message.contains("eyJ"), "{message}");
        }
    }
    server.stop().await;
    assert_eq!(registry.refusals(), Vec::<String>::new());
}

/// A registry that does not answer is `upstream_error`, retryable (here: one that never
/// accepts the request's end within the server's timeout is not waited for; the
/// classification is unit-tested with a short timeout, this checks a closed port).
#[tokio::test]
async fn an_unreachable_registry_is_retryable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let jwt = token(&["a"], json!({}));
    let server = serve(None, &jwt, &[("QUILT_REGISTRY_URL", &url)]).await;
    let result = server
        .call("search_packages", json!({"query": "x"}))
        .await
        .unwrap();
    let (code, retryable, message) = tool_error(&result);
    assert_eq!(
        (code.as_str(), retryable),
        ("upstream_error", true),
        "{message}"
    );
    server.stop().await;
}

#[tokio::test]
async fn without_a_registry_the_search_tools_are_not_offered() {
    let jwt = token(&["a"], json!({}));
    let server = serve(None, &jwt, &[]).await;
    let tools = server.client.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert!(!names.iter().any(|n| n.starts_with("search_")), "{names:?}");
    assert!(names.contains(&"package_list"));
    for tool in ["search_packages", "search_objects"] {
        let error = server.call(tool, json!({"query": "x"})).await.unwrap_err();
        assert_eq!(error.code.0, -32602, "{error:?}");
        assert!(
            error.message.contains("QUILT_REGISTRY_URL is not set"),
            "{}",
            error.message
        );
    }
    let status = server.ok("auth_status", json!({})).await;
    assert_eq!(status["search"]["available"], false);
    assert!(
        status["search"]["reason"]
            .as_str()
            .unwrap()
            .contains("QUILT_REGISTRY_URL")
    );
    server.stop().await;

    let registry = GraphqlRegistry::start(vec![], vec![]).await;
    let server = serve(Some(&registry), &jwt, &[]).await;
    let tools = server.client.list_all_tools().await.unwrap();
    let listed: Vec<&str> = tools
        .iter()
        .filter(|t| t.name.starts_with("search_"))
        .map(|t| t.name.as_ref())
        .collect();
    assert_eq!(listed, ["search_objects", "search_packages"]);
    let status = server.ok("auth_status", json!({})).await;
    assert_eq!(status["search"], json!({"available": true}));
    // An empty index: no hits, no cursor.
    let page = server.ok("search_packages", json!({"query": "x"})).await;
    assert_eq!(
        (page["total"].clone(), page["count"].clone()),
        (json!(0), json!(0))
    );
    server.stop().await;
}

/// A `*` token without `buckets` searches every bucket the registry searches for it.
#[tokio::test]
async fn a_star_token_searches_every_bucket() {
    let registry = GraphqlRegistry::start(packages(1), vec![]).await;
    let server = serve(Some(&registry), &token(&["*"], json!({})), &[]).await;
    let page = server.ok("search_packages", json!({"query": "ns"})).await;
    assert_eq!(registry.searches()[0].variables["buckets"], Value::Null);
    assert_eq!(
        (page["total"].clone(), page["buckets"].clone()),
        (json!(3), Value::Null)
    );
    server.stop().await;
    // A token without buckets has nothing to search, and says so.
    let server = serve(Some(&registry), &token(&[], json!({})), &[]).await;
    let result = server
        .call("search_packages", json!({"query": "ns"}))
        .await
        .unwrap();
    assert_eq!(tool_error(&result).0, "access_denied");
    server.stop().await;
}

/// The fake refuses what the real registry would: the test of the tests.
#[tokio::test]
async fn the_fake_registry_refuses_bad_queries_and_variables() {
    let registry = GraphqlRegistry::start(vec![], vec![]).await;
    let ok = "query($b: [String!]) { searchObjects(buckets: $b) { __typename } }";
    assert_eq!(registry.check(ok, json!({"b": ["a"]})), Ok(()));
    for (query, variables) in [
        ("query { searchObjects { nope } }", json!({})),
        (
            "query { searchObjects(bucket: \"a\") { __typename } }",
            json!({}),
        ),
        (ok, json!({"b": [1]})),
        (
            "query($l: Boolean!) { searchPackages(latestOnly: $l) { __typename } }",
            json!({}),
        ),
        (
            "query($s: Int) { searchMorePackages(after: \"c\", size: $s) { __typename } }",
            json!({"s": "big"}),
        ),
        // Valid today, not on older registries: firstPage was a plain page there.
        (
            "query { searchPackages { ... on PackagesSearchResultSet { firstPage { ... on InvalidInput { errors { message } } } } } }",
            json!({}),
        ),
    ] {
        assert!(
            registry.check(query, variables.clone()).is_err(),
            "{query} {variables}"
        );
    }
}

/// Arguments are types: a bad one is an `invalid_argument` naming it, before any
/// registry request.
#[tokio::test]
async fn bad_arguments_cost_no_registry_request() {
    let registry = GraphqlRegistry::start(packages(1), objects()).await;
    let server = serve(Some(&registry), &token(&["a"], json!({})), &[]).await;
    for (tool, args, names) in [
        ("search_packages", json!({}), "query"),
        (
            "search_packages",
            json!({"query": "x", "buckets": []}),
            "buckets",
        ),
        (
            "search_packages",
            json!({"query": "x", "buckets": ["s3://a/key"]}),
            "buckets[0]",
        ),
        (
            "search_packages",
            json!({"query": "x", "max_results": 101}),
            "max_results",
        ),
        (
            "search_packages",
            json!({"query": "x", "cursor": "%%%"}),
            "cursor",
        ),
        (
            "search_packages",
            json!({"query": "x".repeat(5000)}),
            "query",
        ),
        (
            "search_objects",
            json!({"query": "x", "extensions": ["../etc"]}),
            "extensions[0]",
        ),
        (
            "search_objects",
            json!({"query": "x", "key_prefix": "k".repeat(1025)}),
            "key_prefix",
        ),
    ] {
        let result = server.call(tool, args.clone()).await.unwrap();
        let (code, _, message) = tool_error(&result);
        assert_eq!(code, "invalid_argument", "{tool} {args}");
        assert!(message.contains(names), "{tool} {args}: {message}");
    }
    assert!(registry.seen().is_empty(), "{:?}", registry.seen());
    server.stop().await;
}
