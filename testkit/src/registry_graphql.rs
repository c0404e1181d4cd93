//! A loopback Quilt registry with the search API (`POST /graphql`) and the credential
//! exchange (`GET /api/auth/get_credentials`), which checks what it is sent: each query
//! is parsed and validated against the registry's schema (tests/fixtures/registry/
//! search.graphql, in its current form and in the older form of `firstPage`), its
//! variables are coerced to the operation's types, and it is executed over fixture
//! packages and objects. A query or variables the real registry would refuse get the
//! GraphQL `errors` the real one sends, and are recorded as refusals. Every request's
//! bearer is recorded; with `accept`, any other bearer gets 401.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use apollo_compiler::Schema;
use apollo_compiler::executable::ExecutableDocument;
use apollo_compiler::resolvers::{Execution, FieldError, ObjectValue, ResolveInfo, ResolvedValue};
use apollo_compiler::response::{JsonMap, JsonValue};
use apollo_compiler::validation::Valid;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

const SCHEMA: &str = include_str!("../../tests/fixtures/registry/search.graphql");

/// The schema, and the same schema as older registries serve it.
fn schemas() -> Vec<Valid<Schema>> {
    let older = SCHEMA
        .replace(
            "firstPage(size: Int = 30, ordering: PackageOrdering): PackagesFirstPageResult!",
            "firstPage(size: Int = 30, order: SearchResultOrder): PackagesSearchResultSetPage!",
        )
        .replace(
            "union PackagesFirstPageResult = PackagesSearchResultSetPage | InvalidInput | OperationError\n",
            "",
        );
    assert_ne!(
        older, SCHEMA,
        "the older schema differs from the current one"
    );
    [SCHEMA.to_owned(), older]
        .into_iter()
        .map(|sdl| Schema::parse_and_validate(sdl, "search.graphql").unwrap())
        .collect()
}

/// A package revision in the fixture index.
#[derive(Debug, Clone)]
pub struct Package {
    pub bucket: String,
    pub name: String,
    pub hash: String,
    pub comment: String,
    pub latest: bool,
    pub entries: Vec<(String, u64)>,
}

impl Package {
    pub fn new(bucket: &str, name: &str, n: usize) -> Package {
        Package {
            bucket: bucket.into(),
            name: name.into(),
            hash: format!("{n:064x}"),
            comment: format!("revision {n} of {name}"),
            latest: true,
            entries: vec![(format!("data/{n}.csv"), 100 + n as u64)],
        }
    }
}

/// An object in the fixture index.
#[derive(Debug, Clone)]
pub struct Object {
    pub bucket: String,
    pub key: String,
    pub version: String,
    pub size: u64,
}

impl Object {
    pub fn new(bucket: &str, key: &str) -> Object {
        Object {
            bucket: bucket.into(),
            key: key.into(),
            version: format!("v-{}", key.len()),
            size: key.len() as u64,
        }
    }
}

/// How the fake answers a search.
#[derive(Debug, Clone)]
pub enum Mode {
    /// From the fixtures.
    Answer,
    /// Every hit of every bucket, whatever `buckets` says (a registry that ignores it).
    IgnoreBuckets,
    /// This HTTP status with a small JSON body.
    Status(u16),
    /// The search field answers `InvalidInput` with this message.
    InvalidInput(String),
    /// The search field answers `OperationError` with this message.
    OperationError(String),
    /// A response with top-level GraphQL `errors` (HTTP 200) with this message.
    Errors(String),
    /// A body of this many bytes.
    Huge(usize),
    /// An answer after this long.
    Slow(std::time::Duration),
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// `graphql` or `get_credentials`.
    pub endpoint: &'static str,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The root field asked for (`searchPackages`, …).
    pub field: Option<String>,
    /// The variables sent.
    pub variables: Value,
}

#[derive(Default)]
struct Inner {
    packages: Vec<Package>,
    objects: Vec<Object>,
    accept: Option<Vec<String>>,
    seen: Vec<Seen>,
    refusals: Vec<String>,
    /// How long each answered search took the fake, from its request to its answer.
    timings: Vec<std::time::Duration>,
    /// Registry cursor → the hits of that search and where the next page starts.
    searches: HashMap<String, (Vec<Value>, &'static str)>,
    next_search: usize,
}

#[derive(Clone)]
struct Fake {
    inner: Arc<Mutex<Inner>>,
    mode: Arc<Mutex<Mode>>,
    schemas: Arc<Vec<Valid<Schema>>>,
}

/// A running fake registry.
pub struct GraphqlRegistry {
    pub url: String,
    fake: Fake,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for GraphqlRegistry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl GraphqlRegistry {
    /// A registry indexing `packages` and `objects`.
    pub async fn start(packages: Vec<Package>, objects: Vec<Object>) -> GraphqlRegistry {
        let fake = Fake {
            inner: Arc::new(Mutex::new(Inner {
                packages,
                objects,
                ..Inner::default()
            })),
            mode: Arc::new(Mutex::new(Mode::Answer)),
            schemas: Arc::new(schemas()),
        };
        let app = Router::new()
            .route("/graphql", post(graphql))
            .route("/api/auth/get_credentials", get(credentials))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        GraphqlRegistry { url, fake, task }
    }

    /// Only these bearers are accepted; any other gets 401.
    pub fn accept(&self, bearers: &[&str]) {
        self.fake.inner.lock().unwrap().accept =
            Some(bearers.iter().map(|b| format!("Bearer {b}")).collect());
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.fake.mode.lock().unwrap() = mode;
    }

    /// Every request received.
    pub fn seen(&self) -> Vec<Seen> {
        self.fake.inner.lock().unwrap().seen.clone()
    }

    /// The GraphQL requests received.
    pub fn searches(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.endpoint == "graphql")
            .collect()
    }

    /// Why each refused query or variables set was refused.
    pub fn refusals(&self) -> Vec<String> {
        self.fake.inner.lock().unwrap().refusals.clone()
    }

    /// How long each answered search took the fake itself.
    pub fn timings(&self) -> Vec<std::time::Duration> {
        self.fake.inner.lock().unwrap().timings.clone()
    }

    /// Checks `query` with `variables` as a request would be, without recording it.
    pub fn check(&self, query: &str, variables: Value) -> Result<(), String> {
        validate(&self.fake.schemas, query, &variables).map(|_| ())
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn accepted(inner: &Inner, authorization: Option<&str>) -> bool {
    match &inner.accept {
        None => true,
        Some(list) => authorization.is_some_and(|a| list.iter().any(|b| b == a)),
    }
}

async fn credentials(State(fake): State<Fake>, headers: HeaderMap) -> Response {
    let authorization = bearer(&headers);
    let mut inner = fake.inner.lock().unwrap();
    inner.seen.push(Seen {
        endpoint: "get_credentials",
        authorization: authorization.clone(),
        field: None,
        variables: Value::Null,
    });
    if !accepted(&inner, authorization.as_deref()) {
        return (StatusCode::UNAUTHORIZED, "{\"message\": \"bad token\"}").into_response();
    }
    let body = json!({
        "AccessKeyId": crate::s3::ACCESS_KEY,
        "SecretAccessKey": crate::s3::SECRET_KEY,
        "SessionToken": "registry-session",
        "Expiration": "2099-01-01T00:00:00Z",
    });
    (StatusCode::OK, body.to_string()).into_response()
}

/// `errors` in the shape GraphQL servers answer a request error with.
fn refusal(status: StatusCode, message: &str) -> Response {
    (
        status,
        [("content-type", "application/json")],
        json!({"errors": [{"message": message}]}).to_string(),
    )
        .into_response()
}

/// The operation's root field, after validating `query` against every schema and
/// coercing `variables`.
fn validate(
    schemas: &[Valid<Schema>],
    query: &str,
    variables: &Value,
) -> Result<(Valid<ExecutableDocument>, JsonMap), String> {
    let Value::Object(_) = variables else {
        return Err("variables is not an object".into());
    };
    let raw: JsonMap = serde_json::from_value(variables.clone()).map_err(|e| e.to_string())?;
    let mut current = None;
    for schema in schemas {
        let document = ExecutableDocument::parse_and_validate(schema, query, "query.graphql")
            .map_err(|e| e.errors.to_string())?;
        let operation = document
            .operations
            .get(None)
            .map_err(|_| "the document must hold exactly one operation".to_owned())?;
        apollo_compiler::request::coerce_variable_values(schema, operation, &raw)
            .map_err(|e| e.message().to_string())?;
        if current.is_none() {
            current = Some(document);
        }
    }
    Ok((current.unwrap(), raw))
}

async fn graphql(State(fake): State<Fake>, headers: HeaderMap, body: Bytes) -> Response {
    let started = std::time::Instant::now();
    let authorization = bearer(&headers);
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let query = request["query"].as_str().unwrap_or("").to_owned();
    let variables = match &request["variables"] {
        Value::Null => json!({}),
        other => other.clone(),
    };
    let mode = fake.mode.lock().unwrap().clone();
    let validated = validate(&fake.schemas, &query, &variables);
    let field = validated.as_ref().ok().and_then(|(document, _)| {
        let operation = document.operations.get(None).ok()?;
        operation
            .selection_set
            .fields()
            .next()
            .map(|f| f.name.to_string())
    });
    {
        let mut inner = fake.inner.lock().unwrap();
        inner.seen.push(Seen {
            endpoint: "graphql",
            authorization: authorization.clone(),
            field: field.clone(),
            variables: variables.clone(),
        });
        if !accepted(&inner, authorization.as_deref()) {
            return refusal(StatusCode::UNAUTHORIZED, "Invalid token");
        }
        if request["query"].as_str().is_none()
            || headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/json")
        {
            inner.refusals.push("not a JSON GraphQL request".into());
            return refusal(StatusCode::BAD_REQUEST, "Must provide query string.");
        }
        if let Err(why) = &validated {
            inner.refusals.push(why.clone());
            return refusal(StatusCode::BAD_REQUEST, why);
        }
    }
    match &mode {
        Mode::Status(status) => {
            return (
                StatusCode::from_u16(*status).unwrap(),
                json!({"message": "refused"}).to_string(),
            )
                .into_response();
        }
        Mode::Errors(message) => return refusal(StatusCode::OK, message),
        Mode::Huge(bytes) => {
            return (StatusCode::OK, " ".repeat(*bytes)).into_response();
        }
        Mode::Slow(delay) => tokio::time::sleep(*delay).await,
        _ => {}
    }
    let (document, raw) = validated.unwrap();
    let root = Root { fake: &fake, mode };
    let response = Execution::new(&fake.schemas[0], &document)
        .raw_variable_values(&raw)
        .execute_sync(&root);
    match response {
        Ok(response) => {
            let body = serde_json::to_string(&response).unwrap();
            fake.inner.lock().unwrap().timings.push(started.elapsed());
            (StatusCode::OK, [("content-type", "application/json")], body).into_response()
        }
        Err(error) => {
            fake.inner
                .lock()
                .unwrap()
                .refusals
                .push(error.message().to_string());
            refusal(StatusCode::BAD_REQUEST, &error.message().to_string())
        }
    }
}

/// `Query`: the four search fields.
struct Root<'a> {
    fake: &'a Fake,
    mode: Mode,
}

/// Any other object: its JSON, typed by its `__typename`; a result set also pages.
struct Json {
    value: serde_json::Map<String, Value>,
    /// For a result set: its hits, page type and the fake, for `firstPage`.
    set: Option<(Vec<Value>, &'static str, Fake)>,
}

fn arg(info: &ResolveInfo<'_>, name: &str) -> Value {
    info.arguments()
        .get(name)
        .map(|v| serde_json::to_value(v).unwrap())
        .unwrap_or(Value::Null)
}

/// `value` as the field's result: an object is typed by its `__typename`, else by the
/// field's type (`ty`).
fn resolved<'a>(value: Value, ty: &str) -> ResolvedValue<'a> {
    match value {
        Value::Object(mut map) => {
            map.entry("__typename").or_insert_with(|| json!(ty));
            ResolvedValue::object(Json {
                value: map,
                set: None,
            })
        }
        Value::Array(items) => {
            let ty = ty.to_owned();
            ResolvedValue::list(items.into_iter().map(move |v| resolved(v, &ty)))
        }
        Value::Null => ResolvedValue::null(),
        leaf => ResolvedValue::leaf(serde_json::from_value::<JsonValue>(leaf).unwrap()),
    }
}

/// The named type of the field being resolved.
fn field_type(info: &ResolveInfo<'_>) -> String {
    info.field_definition().ty.inner_named_type().to_string()
}

/// One page of `hits` from `start`, registering the cursor of the next.
fn page_of(
    fake: &Fake,
    hits: Vec<Value>,
    page_type: &'static str,
    start: usize,
    size: usize,
) -> Value {
    let end = (start + size).min(hits.len());
    let shown: Vec<Value> = hits[start.min(end)..end].to_vec();
    let cursor = if end < hits.len() {
        let mut inner = fake.inner.lock().unwrap();
        inner.next_search += 1;
        let cursor = format!("registry-cursor-{}-{end}", inner.next_search);
        inner.searches.insert(cursor.clone(), (hits, page_type));
        Value::String(cursor)
    } else {
        Value::Null
    };
    json!({"__typename": page_type, "cursor": cursor, "hits": shown})
}

fn size_of(info: &ResolveInfo<'_>) -> usize {
    arg(info, "size").as_u64().unwrap_or(30) as usize
}

impl ObjectValue for Json {
    fn type_name(&self) -> &str {
        self.value["__typename"].as_str().unwrap()
    }

    fn resolve_field<'a>(
        &'a self,
        info: &'a ResolveInfo<'a>,
    ) -> Result<ResolvedValue<'a>, FieldError> {
        if info.field_name() == "firstPage"
            && let Some((hits, page_type, fake)) = &self.set
        {
            return Ok(resolved(
                page_of(fake, hits.clone(), page_type, 0, size_of(info)),
                page_type,
            ));
        }
        match self.value.get(info.field_name()) {
            Some(value) => Ok(resolved(value.clone(), &field_type(info))),
            None => Err(self.unknown_field_error(info)),
        }
    }
}

fn matches(text: &str, query: &Value) -> bool {
    match query.as_str() {
        None => true,
        Some(q) => text.to_lowercase().contains(&q.to_lowercase()),
    }
}

fn in_buckets(bucket: &str, buckets: &Value) -> bool {
    match buckets.as_array() {
        None => true,
        Some(list) => list.iter().any(|b| b == bucket),
    }
}

fn package_hit(p: &Package, query: &Value) -> Value {
    let size: u64 = p.entries.iter().map(|(_, s)| s).sum();
    let matching: Vec<Value> = p
        .entries
        .iter()
        .filter(|(key, _)| query.is_string() && matches(key, query))
        .map(|(key, size)| {
            json!({"logicalKey": key, "physicalKey": format!("s3://{}/{key}", p.bucket), "size": *size as f64, "meta": null})
        })
        .collect();
    json!({
        "id": format!("{}:{}", p.bucket, p.hash), "score": 1.0,
        "bucket": p.bucket, "name": p.name, "pointer": "latest", "hash": p.hash,
        "size": size as f64, "modified": "2026-11-30T12:34:56.789+00:00",
        "totalEntriesCount": p.entries.len(), "comment": p.comment, "meta": "{}", "workflow": null,
        "matchingEntries": matching,
    })
}

fn object_hit(o: &Object) -> Value {
    json!({
        "id": format!("{}/{}", o.bucket, o.key), "score": 1.0, "bucket": o.bucket, "key": o.key,
        "version": o.version, "size": o.size as f64, "modified": "2026-11-29T08:00:00Z",
        "deleted": false, "indexedContent": null,
    })
}

/// Whether `key` matches the registry's keyword `wildcard` (a prefix with `*`).
fn wildcard(key: &str, pattern: &str) -> bool {
    let mut literal = String::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => literal.extend(chars.next()),
            '*' => return key.starts_with(&literal) && chars.as_str().is_empty(),
            c => literal.push(c),
        }
    }
    key == literal
}

impl Root<'_> {
    fn failure(&self) -> Option<Value> {
        match &self.mode {
            Mode::InvalidInput(message) => Some(json!({
                "__typename": "InvalidInput",
                "errors": [{"path": "searchString", "message": message, "name": "QuerySyntaxError", "context": null}],
            })),
            Mode::OperationError(message) => Some(json!({
                "__typename": "OperationError", "name": "Timeout", "message": message, "context": null,
            })),
            _ => None,
        }
    }
}

impl ObjectValue for Root<'_> {
    fn type_name(&self) -> &str {
        "Query"
    }

    fn resolve_field<'a>(
        &'a self,
        info: &'a ResolveInfo<'a>,
    ) -> Result<ResolvedValue<'a>, FieldError> {
        if let Some(failure) = self.failure() {
            return Ok(resolved(failure, "Query"));
        }
        let ignore = matches!(self.mode, Mode::IgnoreBuckets);
        let buckets = if ignore {
            Value::Null
        } else {
            arg(info, "buckets")
        };
        let query = arg(info, "searchString");
        let inner = self.fake.inner.lock().unwrap();
        let (hits, set_type, page_type) = match info.field_name() {
            "searchPackages" => {
                let latest_only = arg(info, "latestOnly").as_bool().unwrap();
                let hits: Vec<Value> = inner
                    .packages
                    .iter()
                    .filter(|p| in_buckets(&p.bucket, &buckets))
                    .filter(|p| !latest_only || p.latest)
                    .filter(|p| {
                        matches(&p.name, &query)
                            || matches(&p.comment, &query)
                            || p.entries.iter().any(|(k, _)| matches(k, &query))
                    })
                    .map(|p| package_hit(p, &query))
                    .collect();
                (
                    hits,
                    "PackagesSearchResultSet",
                    "PackagesSearchResultSetPage",
                )
            }
            "searchObjects" => {
                let filter = arg(info, "filter");
                let exts = filter["ext"]["terms"].as_array().cloned();
                let prefix = filter["key"]["wildcard"].as_str().map(str::to_owned);
                let hits: Vec<Value> = inner
                    .objects
                    .iter()
                    .filter(|o| in_buckets(&o.bucket, &buckets))
                    .filter(|o| matches(&o.key, &query))
                    .filter(|o| {
                        exts.as_ref().is_none_or(|list| {
                            list.iter()
                                .any(|e| o.key.to_lowercase().ends_with(e.as_str().unwrap()))
                        })
                    })
                    .filter(|o| prefix.as_deref().is_none_or(|p| wildcard(&o.key, p)))
                    .map(object_hit)
                    .collect();
                (hits, "ObjectsSearchResultSet", "ObjectsSearchResultSetPage")
            }
            "searchMorePackages" | "searchMoreObjects" => {
                let after = arg(info, "after").as_str().unwrap().to_owned();
                let Some((hits, page_type)) = inner.searches.get(&after).cloned() else {
                    return Ok(resolved(
                        json!({
                            "__typename": "InvalidInput",
                            "errors": [{"path": "after", "message": "Invalid cursor", "name": "InvalidCursor", "context": null}],
                        }),
                        "InvalidInput",
                    ));
                };
                drop(inner);
                let start: usize = after.rsplit('-').next().unwrap().parse().unwrap();
                return Ok(resolved(
                    page_of(self.fake, hits, page_type, start, size_of(info)),
                    page_type,
                ));
            }
            _ => return Err(self.unknown_field_error(info)),
        };
        drop(inner);
        if hits.is_empty() {
            return Ok(resolved(
                json!({"__typename": "EmptySearchResultSet", "_": null}),
                "EmptySearchResultSet",
            ));
        }
        let total = hits.len();
        let mut value = serde_json::Map::new();
        value.insert("__typename".into(), json!(set_type));
        value.insert("total".into(), json!(total));
        Ok(ResolvedValue::object(Json {
            value,
            set: Some((hits, page_type, self.fake.clone())),
        }))
    }
}
