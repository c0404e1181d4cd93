//! Every tool's schemas as a host receives them in a real `tools/list` (the binary over
//! stdio): each input and output schema is a valid JSON Schema 2020-12 document, the
//! input schemas follow the portable rules of docs/reference.md, Tools, and every tool's real
//! `structuredContent`, from a call that succeeds and from one that fails as a tool
//! error, satisfies its `outputSchema`. The tools are taken from `tools/list`, not
//! from a list here, so a new tool or a changed result is checked as it is. The
//! annotations are checked against what each tool did to the in-process S3.
use std::collections::{BTreeMap, BTreeSet};

use crate::common::s3::{ACCESS_KEY, SECRET_KEY, TestS3};
use crate::common::*;
use rmcp::model::Tool;
use serde_json::{Value, json};

/// The formats JSON Schema 2020-12 itself defines (its format vocabularies).
const FORMATS_2020_12: &[&str] = &[
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uuid",
    "uri-template",
    "json-pointer",
    "relative-json-pointer",
    "regex",
];

/// Tools whose only failures are protocol errors (-32001/-32003): with no parameters and
/// a valid token, nothing is left that could fail as a tool result.
const NO_TOOL_ERROR: &[&str] = &["auth_status", "bucket_list"];

fn token() -> String {
    hs256(&claims_with(json!({
        "buckets": ["data", "registry"],
        "permissions": ["s3:GetObject", "s3:ListBucket", "s3:PutObject"],
        "level": "write",
        "aws_credentials": {"access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY},
    })))
}

async fn sample() -> TestS3 {
    let s3 = TestS3::start().await;
    for bucket in ["data", "registry"] {
        s3.create_bucket(bucket).await;
    }
    s3.put(
        "data",
        "raw/a.csv",
        b"id,v\n1,2\n",
        "text/csv",
        &[("owner", "lab")],
    )
    .await;
    s3.put(
        "data",
        "raw/b.json",
        br#"{"b": 1}"#,
        "application/json",
        &[],
    )
    .await;
    s3.put("data", "notes.txt", "héllo\n".as_bytes(), "text/plain", &[])
        .await;
    s3
}

async fn tools(server: &Server) -> BTreeMap<String, Tool> {
    let tools = server.client.list_all_tools().await.unwrap();
    assert!(!tools.is_empty());
    tools.into_iter().map(|t| (t.name.to_string(), t)).collect()
}

fn input_schema(tool: &Tool) -> Value {
    Value::Object(tool.input_schema.as_ref().clone())
}

fn output_schema(tool: &Tool) -> Value {
    let schema = tool
        .output_schema
        .as_ref()
        .unwrap_or_else(|| panic!("{} declares no outputSchema", tool.name));
    Value::Object(schema.as_ref().clone())
}

#[tokio::test]
async fn every_schema_is_valid_json_schema_2020_12() {
    let s3 = sample().await;
    let server = start_on(&s3, &token(), &[], ()).await;
    for (name, tool) in tools(&server).await {
        for (which, schema) in [
            ("input", input_schema(&tool)),
            ("output", output_schema(&tool)),
        ] {
            if let Err(e) = jsonschema::draft202012::meta::validate(&schema) {
                panic!("{name}: the {which} schema is not valid 2020-12: {e}\n{schema:#}");
            }
            // …and compiles, `$ref`s and all, with nothing fetched from outside.
            if let Err(e) = jsonschema::draft202012::new(&schema) {
                panic!("{name}: the {which} schema does not compile: {e}");
            }
        }
    }
    server.stop().await;
}

/// The `$ref` target inside `root`, or `schema` itself.
fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(pointer) => root
            .pointer(pointer.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("unresolvable $ref {pointer}")),
        None => schema,
    }
}

/// The number after the first `marker` in `text`, with a `KiB`/`MiB` unit applied.
fn number_after(text: &str, marker: &str) -> Option<u64> {
    let rest = &text[text.find(marker)? + marker.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let n: u64 = digits.parse().ok()?;
    let unit = rest[digits.len()..].trim_start();
    Some(if unit.starts_with("MiB") {
        n * 1024 * 1024
    } else if unit.starts_with("KiB") {
        n * 1024
    } else {
        n
    })
}

/// `A to B` in `text`, both numbers.
fn range_in(text: &str) -> Option<(u64, u64)> {
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c == ',' || c == '.' || c == '(' || c == ')')
        .filter(|w| !w.is_empty())
        .collect();
    words.windows(3).find_map(|w| match w {
        [a, "to", b] => Some((a.parse().ok()?, b.parse().ok()?)),
        _ => None,
    })
}

/// The portable rules (docs/reference.md, Tools) on one input schema, everywhere in it (nested items
/// and `$defs` too): no type arrays; formats only from 2020-12; a `type` on every
/// property (directly or through its `$ref`); a `default` only where it satisfies the
/// property; integers bounded below; a range the description documents ("at most N",
/// "A to B") in `minimum`/`maximum` (integers) or `minItems`/`maxItems` (arrays).
fn check_portable(root: &Value, value: &Value, path: &str, problems: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if map.get("type").is_some_and(Value::is_array) {
                problems.push(format!("{path}: a type array {}", map["type"]));
            }
            if let Some(format) = map.get("format").and_then(Value::as_str)
                && !FORMATS_2020_12.contains(&format)
            {
                problems.push(format!("{path}: format `{format}` is not 2020-12's"));
            }
            if let Some(Value::Object(properties)) = map.get("properties") {
                for (name, property) in properties {
                    check_property(root, property, &format!("{path}/{name}"), problems);
                }
            }
            for (key, child) in map {
                check_portable(root, child, &format!("{path}/{key}"), problems);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                check_portable(root, child, &format!("{path}/{i}"), problems);
            }
        }
        _ => {}
    }
}

fn check_property(root: &Value, property: &Value, path: &str, problems: &mut Vec<String>) {
    let target = resolve(root, property);
    let Some(kind) = target.get("type").and_then(Value::as_str) else {
        if target.get("type").is_none() {
            problems.push(format!("{path}: no `type`"));
        }
        return;
    };
    if let Some(default) = property.get("default") {
        let valid = jsonschema::draft202012::new(&json!({"type": kind}))
            .map(|v| v.is_valid(default))
            .unwrap_or(false);
        if !valid {
            problems.push(format!("{path}: default {default} is not a {kind}"));
        }
    }
    let description = property
        .get("description")
        .or_else(|| target.get("description"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let bound = |key: &str| target.get(key).and_then(Value::as_u64);
    if kind == "integer" && target.get("minimum").is_none() {
        problems.push(format!("{path}: an integer without a minimum"));
    }
    let mut expect = |key: &str, want: Option<u64>| {
        if let Some(want) = want
            && bound(key) != Some(want)
        {
            problems.push(format!(
                "{path}: documented as {description:?}, so {key} {want}; the schema has {:?}",
                target.get(key)
            ));
        }
    };
    match kind {
        "integer" => {
            let range = range_in(description);
            expect("minimum", range.map(|r| r.0));
            expect(
                "maximum",
                range.map(|r| r.1).or(number_after(description, "at most ")),
            );
        }
        "array" => {
            let range = range_in(description);
            expect("minItems", range.map(|r| r.0));
            expect(
                "maxItems",
                range.map(|r| r.1).or(number_after(description, "at most ")),
            );
        }
        _ => {}
    }
}

#[test]
fn the_portable_check_sees_what_it_must() {
    // The checker itself, on schemas that break each rule.
    let bad = json!({
        "type": "object",
        "$defs": {"Inner": {"type": "object", "properties": {"free": {"description": "anything"}}}},
        "properties": {
            "a": {"type": ["integer", "null"], "minimum": 0},
            "b": {"type": "integer", "format": "uint64", "minimum": 0},
            "c": {"description": "How many, 1 to 50.", "type": "integer", "minimum": 1, "maximum": 40},
            "d": {"description": "Most bytes (at most 16 MiB).", "type": "integer", "minimum": 1},
            "e": {"type": "string", "default": null},
            "f": {"type": "integer"},
            "g": {"description": "The items, 1 to 10.", "type": "array", "items": {"$ref": "#/$defs/Inner"}},
            "h": {"$ref": "#/$defs/Inner"},
        },
    });
    let mut problems = Vec::new();
    check_portable(&bad, &bad, "", &mut problems);
    let text = problems.join("\n");
    for want in [
        "/properties/a: a type array",
        "/properties/b: format `uint64`",
        "/c: documented as \"How many, 1 to 50.\", so maximum 50",
        "/d: documented as \"Most bytes (at most 16 MiB).\", so maximum 16777216",
        "/e: default null is not a string",
        "/f: an integer without a minimum",
        "/g: documented as \"The items, 1 to 10.\", so minItems 1",
        "/g: documented as \"The items, 1 to 10.\", so maxItems 10",
        "/free: no `type`",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    assert_eq!(problems.len(), 9, "{text}");
    let good = json!({
        "type": "object",
        "properties": {
            "n": {"description": "How many, 1 to 50.", "type": "integer", "minimum": 1, "maximum": 50},
            "h": {"$ref": "#/$defs/Inner"},
        },
        "$defs": {"Inner": {"type": "object", "properties": {"s": {"type": "string", "format": "date-time"}}}},
    });
    let mut none = Vec::new();
    check_portable(&good, &good, "", &mut none);
    assert_eq!(none, Vec::<String>::new());
}

#[tokio::test]
async fn input_schemas_are_portable() {
    let s3 = sample().await;
    let server = start_on(&s3, &token(), &[], ()).await;
    let mut problems = Vec::new();
    for (name, tool) in tools(&server).await {
        let schema = input_schema(&tool);
        assert_eq!(schema["type"], "object", "{name}");
        assert!(schema["properties"].is_object(), "{name}: no `properties`");
        check_portable(&schema, &schema, &name, &mut problems);
    }
    server.stop().await;
    assert!(
        problems.is_empty(),
        "input schemas break the portable rules (docs/reference.md, Tools):\n{}",
        problems.join("\n")
    );
}

/// Calls that succeed and calls that fail as a tool error, in an order that makes
/// each succeed (a package exists before it is browsed).
fn calls() -> Vec<(&'static str, Value, bool)> {
    let pkg = json!({"package_name": "team/pkg", "registry": "registry"});
    let with = |base: &Value, extra: Value| {
        let mut out = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            out[k] = v.clone();
        }
        out
    };
    vec![
        ("auth_status", json!({}), true),
        ("bucket_list", json!({}), true),
        (
            "bucket_objects_list",
            json!({"bucket": "data", "delimiter": "/"}),
            true,
        ),
        (
            "bucket_objects_list",
            json!({"bucket": "s3://data", "max_keys": 1}),
            true,
        ),
        (
            "bucket_objects_list",
            json!({"bucket": "data", "prefix": "a\u{0}b"}),
            false,
        ),
        (
            "bucket_object_info",
            json!({"s3_uri": "s3://data/raw/a.csv"}),
            true,
        ),
        (
            "bucket_object_info",
            json!({"s3_uri": "s3://data/missing.csv"}),
            false,
        ),
        (
            "bucket_object_text",
            json!({"s3_uri": "s3://data/notes.txt", "max_bytes": 2}),
            true,
        ),
        (
            "bucket_object_text",
            json!({"s3_uri": "s3://data/notes.txt", "encoding": "klingon"}),
            false,
        ),
        (
            "bucket_object_fetch",
            json!({"s3_uri": "s3://data/raw/b.json"}),
            true,
        ),
        (
            "bucket_object_fetch",
            json!({"s3_uri": "s3://data/missing.bin"}),
            false,
        ),
        (
            "bucket_object_link",
            json!({"s3_uri": "s3://data/raw/a.csv", "expiration": 60}),
            true,
        ),
        (
            "bucket_object_link",
            json!({"s3_uri": "s3://data/raw/a.csv\u{0}"}),
            false,
        ),
        (
            "bucket_objects_put",
            json!({"bucket": "data", "items": [
                {"key": "out/new.txt", "text": "new", "metadata": {"k": "v"}},
                {"key": "out/bin", "base64": "AAE="},
            ]}),
            true,
        ),
        (
            "bucket_objects_put",
            json!({"bucket": "data", "items": []}),
            false,
        ),
        (
            "package_create",
            with(
                &pkg,
                json!({"s3_uris": ["s3://data/raw/"], "message": "one", "metadata": {"k": 1}}),
            ),
            true,
        ),
        (
            "package_create",
            with(
                &pkg,
                json!({"entries": [{"logical_key": "notes.txt", "s3_uri": "s3://data/notes.txt"}], "s3_uris": ["s3://data/raw/"], "message": "two", "overwrite": true}),
            ),
            true,
        ),
        (
            "package_create",
            with(
                &pkg,
                json!({"entries": [{"logical_key": "x", "s3_uri": "s3://data/missing.csv"}], "overwrite": true}),
            ),
            false,
        ),
        (
            "package_patch",
            with(
                &pkg,
                json!({"add": [{"logical_key": "extra/notes.txt", "s3_uri": "s3://data/notes.txt"}], "remove": ["notes.txt"], "message": "three"}),
            ),
            true,
        ),
        (
            "package_patch",
            with(&pkg, json!({"remove": ["nothing/here/"]})),
            false,
        ),
        ("package_list", json!({"registry": "registry"}), true),
        (
            "package_list",
            json!({"registry": "s3://registry", "prefix": "team/"}),
            true,
        ),
        (
            "package_list",
            json!({"registry": "registry", "prefix": "a\u{0}b"}),
            false,
        ),
        ("package_browse", with(&pkg, json!({})), true),
        (
            "package_browse",
            json!({"uri": "quilt+s3://registry#package=team/pkg:latest&path=raw"}),
            true,
        ),
        (
            "package_browse",
            json!({"uri": "quilt+s3://registry#package=team/pkg:v1"}),
            false,
        ),
        (
            "bucket_object_text",
            json!({"uri": "quilt+s3://registry#package=team/pkg&path=extra/notes.txt"}),
            true,
        ),
        (
            "bucket_object_info",
            json!({"uri": "quilt+s3://registry#package=team/pkg&path=raw"}),
            false,
        ),
        (
            "package_browse",
            with(&pkg, json!({"max_entries": 1})),
            true,
        ),
        (
            "package_browse",
            with(&pkg, json!({"top_hash": "ffffffffff"})),
            false,
        ),
        (
            "package_diff",
            json!({"package1_name": "team/pkg", "registry": "registry"}),
            true,
        ),
        (
            "package_diff",
            json!({"package1_name": "team/none", "registry": "registry"}),
            false,
        ),
        ("package_revisions", with(&pkg, json!({})), true),
        (
            "package_revisions",
            with(&pkg, json!({"max_revisions": 1})),
            true,
        ),
        (
            "package_revisions",
            json!({"package_name": "team/none", "registry": "registry"}),
            false,
        ),
        ("search_packages", json!({"query": "team"}), true),
        (
            "search_packages",
            json!({"query": "team", "buckets": ["registry"], "latest_only": false, "max_results": 1}),
            true,
        ),
        (
            "search_packages",
            json!({"query": "team", "cursor": "AAAA"}),
            false,
        ),
        (
            "search_objects",
            json!({"query": "", "extensions": ["txt"]}),
            true,
        ),
        (
            "search_objects",
            json!({"query": "x", "key_prefix": "a\u{0}"}),
            false,
        ),
    ]
}

/// The server of these tests: on the sample S3, with a search registry indexing it.
async fn start_with_search(s3: &TestS3) -> (Server, registry_graphql::GraphqlRegistry) {
    let registry = registry_graphql::GraphqlRegistry::start(
        vec![registry_graphql::Package::new("registry", "team/pkg", 1)],
        vec![registry_graphql::Object::new("data", "a.txt")],
    )
    .await;
    // With a catalog, so that results carry their `catalog_url` links.
    let server = start_on(
        s3,
        &token(),
        &[
            ("QUILT_REGISTRY_URL", &registry.url),
            ("QUILT_CATALOG_URL", "https://catalog.example.com"),
        ],
        (),
    )
    .await;
    (server, registry)
}

#[tokio::test]
async fn every_result_satisfies_its_output_schema() {
    let s3 = sample().await;
    let (server, _registry) = start_with_search(&s3).await;
    let tools = tools(&server).await;
    let mut succeeded = BTreeSet::new();
    let mut failed = BTreeSet::new();
    for (name, args, should_succeed) in calls() {
        let Some(tool) = tools.get(name) else {
            panic!("{name} is not in tools/list");
        };
        let validator = jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&output_schema(tool))
            .unwrap();
        let result = server
            .call(name, args.clone())
            .await
            .unwrap_or_else(|e| panic!("{name} {args}: a protocol error {e:?}"));
        let content = result
            .structured_content
            .clone()
            .unwrap_or_else(|| panic!("{name} {args}: no structuredContent"));
        let is_error = result.is_error == Some(true);
        assert_eq!(
            !is_error, should_succeed,
            "{name} {args}: isError {is_error}: {content:#}"
        );
        if is_error {
            assert!(content["error"]["code"].is_string(), "{name}: {content:#}");
            failed.insert(name);
        } else {
            succeeded.insert(name);
        }
        let errors: Vec<String> = validator
            .iter_errors(&content)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{name} {args}: structuredContent does not satisfy the outputSchema:\n{}\n{content:#}",
            errors.join("\n")
        );
    }
    server.stop().await;
    // Every tool that tools/list offers was checked both ways.
    for name in tools.keys() {
        assert!(
            succeeded.contains(name.as_str()),
            "{name}: no successful call checked"
        );
        if !NO_TOOL_ERROR.contains(&name.as_str()) {
            assert!(
                failed.contains(name.as_str()),
                "{name}: no tool error checked"
            );
        }
    }
}

/// Every object of the in-process S3 (the files under its buckets, not the store's own
/// bookkeeping) with its bytes and modification time.
fn objects(s3: &TestS3) -> BTreeMap<String, (Vec<u8>, std::time::SystemTime)> {
    fn walk(
        dir: &std::path::Path,
        root: &std::path::Path,
        out: &mut BTreeMap<String, (Vec<u8>, std::time::SystemTime)>,
    ) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let relative = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if path.is_dir() {
                walk(&path, root, out);
            } else if !relative.starts_with('.') {
                let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
                out.insert(relative, (std::fs::read(&path).unwrap(), modified));
            }
        }
    }
    let mut out = BTreeMap::new();
    for bucket in std::fs::read_dir(s3.root()).unwrap() {
        let path = bucket.unwrap().path();
        if path.is_dir() && !path.file_name().unwrap().to_string_lossy().starts_with('.') {
            walk(&path, s3.root(), &mut out);
        }
    }
    out
}

/// What the calls of one tool did.
#[derive(Debug, Default)]
struct Effects {
    /// An object was added, changed or removed.
    wrote: bool,
    /// An object that existed before the call was rewritten or removed.
    replaced: bool,
    /// A request reached S3.
    reached_s3: bool,
}

/// The annotations are what each tool does, seen from the in-process S3: every call of
/// `calls()` runs twice (a second identical call is how a write replaces what the
/// first wrote; a tool with an `overwrite` parameter gets `overwrite: true`), and for
/// every tool `tools/list` offers, `readOnlyHint` holds exactly when no call wrote,
/// `destructiveHint` exactly when a call replaced an existing object, and a tool that
/// does not say `openWorldHint` never reached S3.
#[tokio::test]
async fn annotations_agree_with_what_each_tool_does() {
    let s3 = sample().await;
    let (server, _registry) = start_with_search(&s3).await;
    let tools = tools(&server).await;
    let mut effects: BTreeMap<&str, Effects> = BTreeMap::new();
    for (name, mut args, should_succeed) in calls() {
        if !should_succeed {
            continue;
        }
        let tool = &tools[name];
        if tool.input_schema["properties"].get("overwrite").is_some() {
            args["overwrite"] = json!(true);
        }
        for _ in 0..2 {
            let before = objects(&s3);
            let requests = s3.requests();
            // The outcome does not matter here (a second create may well conflict);
            // what it did does.
            let _ = server.call(name, args.clone()).await;
            let after = objects(&s3);
            let did = effects.entry(name).or_default();
            did.wrote |= after != before;
            did.replaced |= before.iter().any(|(key, was)| after.get(key) != Some(was));
            did.reached_s3 |= s3.requests() > requests;
        }
    }
    server.stop().await;
    let mut problems = Vec::new();
    for (name, tool) in &tools {
        let Some(did) = effects.get(name.as_str()) else {
            problems.push(format!("{name}: no call of it was run"));
            continue;
        };
        let a = tool.annotations.as_ref().unwrap();
        let read_only = a.read_only_hint == Some(true);
        let destructive = a.destructive_hint == Some(true);
        if read_only == did.wrote {
            problems.push(format!(
                "{name}: readOnlyHint {read_only}, but its calls {} write",
                if did.wrote { "did" } else { "did not" }
            ));
        }
        if destructive != did.replaced {
            problems.push(format!(
                "{name}: destructiveHint {destructive}, but its calls {} replace an existing object",
                if did.replaced { "did" } else { "did not" }
            ));
        }
        if a.open_world_hint == Some(false) && did.reached_s3 {
            problems.push(format!("{name}: openWorldHint false, but it reached S3"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
