//! The rmcp side of the tools: every [`Tool`] becomes one rmcp route (its MCP
//! description built from the tool's [`ToolInfo`], parameter and result types) and one
//! entry of the gate's table (how to parse its arguments). Both are made by
//! [`Routes::add`], so a tool cannot be routed without passing the gate.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt as _;
use futures::future::BoxFuture;
use rmcp::handler::server::common::{schema_for_empty_input, schema_for_input, schema_for_output};
use rmcp::handler::server::router::tool::{ToolRoute, ToolRouter};
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{
    CallToolResponse, CallToolResult, ContentBlock, JsonObject, ProgressNotificationParam,
    ProgressToken, ResourceContents, ToolAnnotations,
};
use rmcp::service::{Peer, RequestContext};
use rmcp::{ErrorData, RoleServer};
use schemars::JsonSchema;
use serde_json::{Value, json};

use super::QuiltServer;
use crate::auth::AuthContext;
use crate::aws::AwsSession;
use crate::error::{ErrorCode, ToolError};
use crate::quilt::publish::Progress;
use crate::tools::auth::AuthStatus;
use crate::tools::buckets::{
    BucketList, BucketObjectFetch, BucketObjectInfo, BucketObjectLink, BucketObjectText,
    BucketObjectsList, BucketObjectsPut,
};
use crate::tools::packages::{PackageBrowse, PackageCreate, PackageDiff, PackageList};
use crate::tools::{Access, Call, Params, Tool, ToolInfo};

/// A call's parameters, parsed once by the gate, with what they touch.
pub(crate) struct Parsed {
    /// The buckets and permissions the parameters declare.
    pub(crate) access: Access,
    /// The typed parameters, handed to the tool as they are.
    params: Arc<dyn Any + Send + Sync>,
}

/// A tool as the gate sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GateEntry {
    /// The tool's description.
    pub(crate) info: ToolInfo,
    /// Parses the call's arguments into the tool's parameters.
    pub(crate) parse: fn(Option<JsonObject>) -> Result<Parsed, ToolError>,
}

/// What the gate grants a call, passed to the route in the request's extensions.
#[derive(Clone)]
pub(crate) struct Granted {
    ctx: Arc<AuthContext>,
    aws: Option<Arc<AwsSession>>,
    params: Arc<dyn Any + Send + Sync>,
}

impl Granted {
    /// The grant for `parsed`, with the caller's context and AWS session.
    pub(crate) fn new(
        ctx: Arc<AuthContext>,
        aws: Option<Arc<AwsSession>>,
        parsed: Parsed,
    ) -> Granted {
        Granted {
            ctx,
            aws,
            params: parsed.params,
        }
    }
}

/// Every tool: the rmcp router and the gate's table, made together.
#[derive(Clone)]
pub(crate) struct Routes {
    /// rmcp's router: listing and dispatch.
    pub(crate) router: ToolRouter<QuiltServer>,
    /// The gate's table, by tool name.
    pub(crate) gates: BTreeMap<&'static str, GateEntry>,
}

impl Routes {
    /// Every tool of SPEC §6.
    pub(crate) fn all() -> Routes {
        let mut routes = Routes {
            router: ToolRouter::new(),
            gates: BTreeMap::new(),
        };
        routes.add::<AuthStatus>();
        routes.add::<BucketList>();
        routes.add::<BucketObjectsList>();
        routes.add::<BucketObjectInfo>();
        routes.add::<BucketObjectText>();
        routes.add::<BucketObjectFetch>();
        routes.add::<BucketObjectLink>();
        routes.add::<BucketObjectsPut>();
        routes.add::<PackageList>();
        routes.add::<PackageBrowse>();
        routes.add::<PackageDiff>();
        routes.add::<PackageCreate>();
        routes
    }

    fn add<T: Tool>(&mut self) {
        self.router
            .add_route(ToolRoute::new_dyn(describe::<T>(), run_route::<T>));
        self.gates.insert(
            T::INFO.name,
            GateEntry {
                info: T::INFO,
                parse: parse::<T>,
            },
        );
    }
}

/// The MCP description of `T`.
fn describe<T: Tool>() -> rmcp::model::Tool {
    let info = T::INFO;
    // Every parameter type is a struct, whose schema is an object; the fallback is
    // never used (a unit test builds every schema).
    let mut input = schema_for_input::<T::Params>().unwrap_or_else(|_| schema_for_empty_input());
    if !input.contains_key("properties") {
        // No parameters: `properties: {}`, which some clients require.
        input = schema_for_empty_input();
    }
    let input = portable_object(&input, true);
    let output = portable_object(&output_schema::<T::Output>(), false);
    rmcp::model::Tool::new(info.name, info.description, Arc::new(input))
        .with_title(info.title)
        .with_raw_output_schema(Arc::new(output))
        .with_annotations(
            ToolAnnotations::with_title(info.title)
                .read_only(info.read_only)
                .destructive(info.destructive)
                .idempotent(info.idempotent)
                .open_world(info.open_world),
        )
}

/// The formats JSON Schema 2020-12 defines; schemars adds others (`uint`, `int64`, …)
/// that strict validators (ajv in strict mode, Claude Code) refuse or warn about.
const STANDARD_FORMATS: &[&str] = &[
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

/// Makes a schema portable (SPEC §6.1): no `format` outside 2020-12's own; in an input
/// schema also no type arrays, so an optional parameter is `{"type": "integer"}`, not
/// `["integer", "null"]` (it is simply not required), and no `default: null`.
fn portable(schema: &mut Value, input: bool) {
    match schema {
        Value::Object(map) => {
            if map
                .get("format")
                .and_then(Value::as_str)
                .is_some_and(|f| !STANDARD_FORMATS.contains(&f))
            {
                map.remove("format");
            }
            if input && let Some(Value::Array(types)) = map.get("type") {
                let kept: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
                if let [one] = kept.as_slice() {
                    map.insert("type".into(), one.clone());
                }
            }
            if input && map.get("default").is_some_and(Value::is_null) {
                // `Option`'s `default: null` no longer fits the single type: absent is
                // how an optional parameter is left out.
                map.shift_remove("default");
            }
            for value in map.values_mut() {
                portable(value, input);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| portable(v, input)),
        _ => {}
    }
}

/// [`portable`] on a schema object.
fn portable_object(schema: &JsonObject, input: bool) -> JsonObject {
    let mut value = Value::Object(schema.clone());
    portable(&mut value, input);
    match value {
        Value::Object(map) => map,
        _ => schema.clone(),
    }
}

/// The `structuredContent` of a failed call (SPEC §7).
#[derive(JsonSchema)]
#[allow(dead_code, reason = "only its schema is used")]
struct ErrorEnvelope {
    /// Why the call failed.
    error: ToolError,
}

/// The output schema of a tool whose result is `O`: its successful result, or the
/// error envelope of SPEC §7 (hosts validate error results against it too).
fn output_schema<O: JsonSchema + 'static>() -> Arc<JsonObject> {
    let mut success = schema_for_output::<O>().as_ref().clone();
    let mut failure = schema_for_output::<ErrorEnvelope>().as_ref().clone();
    let mut defs = JsonObject::new();
    for schema in [&mut success, &mut failure] {
        schema.remove("$schema");
        if let Some(Value::Object(more)) = schema.remove("$defs") {
            defs.extend(more);
        }
    }
    let mut out = JsonObject::new();
    out.insert(
        "$schema".into(),
        json!("https://json-schema.org/draft/2020-12/schema"),
    );
    out.insert("type".into(), json!("object"));
    out.insert("anyOf".into(), json!([success, failure]));
    if !defs.is_empty() {
        out.insert("$defs".into(), Value::Object(defs));
    }
    Arc::new(out)
}

/// Parses arguments into `T::Params`; an argument of the wrong shape is an
/// `invalid_argument` that names it.
fn parse<T: Tool>(arguments: Option<JsonObject>) -> Result<Parsed, ToolError> {
    let value = Value::Object(arguments.unwrap_or_default());
    let params: T::Params = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            ToolError::invalid(inner.to_string())
        } else {
            ToolError::invalid(format!("`{path}`: {inner}"))
        }
    })?;
    Ok(Parsed {
        access: params.access(),
        params: Arc::new(params),
    })
}

/// Runs `T` for a call that passed the gate.
fn run_route<T: Tool>(
    context: ToolCallContext<'_, QuiltServer>,
) -> BoxFuture<'_, Result<CallToolResponse, ErrorData>> {
    Box::pin(async move {
        let mut context = context;
        let server = context.service;
        let Some(granted) = context.request_context.extensions.remove::<Granted>() else {
            return Ok(internal("the call reached a tool without passing the gate").into());
        };
        let Ok(params) = granted.params.downcast::<T::Params>() else {
            return Ok(internal("the gate parsed parameters of another tool").into());
        };
        let Ok(params) = Arc::try_unwrap(params) else {
            return Ok(internal("the parameters of a call are shared").into());
        };
        let progress = PeerProgress::of(&context.request_context);
        let call = Call {
            ctx: &granted.ctx,
            aws: granted.aws.as_deref(),
            default_region: &server.config().aws_region,
            read_only: server.config().read_only,
            progress: &progress,
            cancel: &context.request_context.ct,
        };
        let result = match guarded(T::INFO.name, T::run(call, params)).await {
            Ok(output) => success::<T>(&output),
            Err(error) => failure(error),
        };
        Ok(result.into())
    })
}

/// Runs a tool's future so that a panic inside it (in the server or in a library it
/// calls) still answers the call: `internal_error`, and a `tool_panicked` log line
/// that names the tool and nothing of its arguments.
async fn guarded<O>(
    tool: &'static str,
    run: impl Future<Output = Result<O, ToolError>>,
) -> Result<O, ToolError> {
    match AssertUnwindSafe(run).catch_unwind().await {
        Ok(result) => result,
        Err(_) => {
            tracing::error!(
                event = "tool_panicked",
                tool,
                "the tool {tool} failed inside the server; the call was answered with internal_error"
            );
            Err(ToolError::new(
                ErrorCode::InternalError,
                format!(
                    "{tool} failed inside the server; this is a bug, please report it (the server keeps running)"
                ),
            ))
        }
    }
}

/// The MCP result of a successful call: the structured result, its text (the JSON,
/// or the tool's summary) and any embedded resource.
fn success<T: Tool>(output: &T::Output) -> CallToolResult {
    let value = match serde_json::to_value(output) {
        Ok(value) => value,
        Err(e) => return internal(&format!("the result could not be written: {e}")),
    };
    let text = T::summary(output).unwrap_or_else(|| value.to_string());
    let mut content = vec![ContentBlock::text(text)];
    if let Some(blob) = T::blob(output) {
        content.push(ContentBlock::resource(
            ResourceContents::blob(blob.base64, blob.uri).with_mime_type(blob.mime_type),
        ));
    }
    let mut result = CallToolResult::success(content);
    result.structured_content = Some(value);
    result
}

/// The MCP result of a tool that ran and failed (SPEC §7).
pub(crate) fn failure(error: ToolError) -> CallToolResult {
    let mut result = CallToolResult::error(vec![ContentBlock::text(format!(
        "Error ({}): {}",
        error.code.as_str(),
        error.message
    ))]);
    result.structured_content = Some(json!({ "error": error }));
    result
}

fn internal(message: &str) -> CallToolResult {
    failure(ToolError::new(ErrorCode::InternalError, message))
}

/// Progress notifications to the client, when it asked for them with a token.
struct PeerProgress {
    peer: Peer<RoleServer>,
    token: Option<ProgressToken>,
}

impl PeerProgress {
    fn of(context: &RequestContext<RoleServer>) -> PeerProgress {
        PeerProgress {
            peer: context.peer.clone(),
            token: context.meta.get_progress_token(),
        }
    }
}

impl Progress for PeerProgress {
    fn report(&self, done: usize, total: usize, message: String) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(token) = &self.token {
                // A client that went away cannot be told; the work goes on.
                let _ = self
                    .peer
                    .notify_progress(
                        ProgressNotificationParam::new(token.clone(), done as f64)
                            .with_total(total as f64)
                            .with_message(message),
                    )
                    .await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_router_and_the_gate_list_the_same_tools_as_described() {
        let routes = Routes::all();
        let listed = routes.router.list_all();
        let names: Vec<&str> = listed.iter().map(|t| t.name.as_ref()).collect();
        let gated: Vec<&str> = routes.gates.keys().copied().collect();
        assert_eq!(names, gated);
        assert_eq!(names.len(), 12);
        for tool in &listed {
            let info = routes.gates[tool.name.as_ref()].info;
            let a = tool.annotations.as_ref().unwrap();
            assert_eq!(
                (
                    a.read_only_hint,
                    a.destructive_hint,
                    a.idempotent_hint,
                    a.open_world_hint
                ),
                (
                    Some(info.read_only),
                    Some(info.destructive),
                    Some(info.idempotent),
                    Some(info.open_world)
                ),
                "{}",
                tool.name
            );
            assert_eq!(tool.description.as_deref(), Some(info.description));
            assert_eq!(tool.input_schema.get("type"), Some(&json!("object")));
            let output = tool.output_schema.as_ref().unwrap();
            assert_eq!(output["anyOf"].as_array().map(Vec::len), Some(2));
        }
        let writes: Vec<&str> = routes
            .gates
            .values()
            .filter(|g| g.info.writes())
            .map(|g| g.info.name)
            .collect();
        assert_eq!(writes, ["bucket_objects_put", "package_create"]);
    }

    /// Finding 1 of issue 11: a panic inside a tool (aws-sdk-s3's `InvalidUri`) left
    /// the request unanswered. Whatever panics, the call gets `internal_error`.
    #[tokio::test]
    async fn a_panicking_tool_still_answers_with_internal_error() {
        let depth = std::hint::black_box(0usize);
        let panicking = async move {
            // Stands for any panic a library may raise deep inside a tool.
            if depth == 0 {
                panic!("InvalidUri(TooLong)");
            }
            Ok::<u8, ToolError>(1)
        };
        let error = guarded("bucket_objects_list", panicking).await.unwrap_err();
        assert_eq!(error.code, ErrorCode::InternalError);
        assert!(
            error
                .message
                .starts_with("bucket_objects_list failed inside the server")
        );
        // A tool that returns normally is not touched.
        assert_eq!(guarded("t", async { Ok::<u8, ToolError>(7) }).await, Ok(7));
        let invalid = guarded("t", async { Err::<u8, _>(ToolError::invalid("x")) }).await;
        assert_eq!(invalid.unwrap_err().code, ErrorCode::InvalidArgument);
    }

    /// `tools/list` (names, descriptions, schemas, annotations) against the committed
    /// snapshot, so a change to any tool's surface shows up in review. After a
    /// deliberate change: `QUILT_MCP_UPDATE_SNAPSHOT=1 cargo test --lib tools_list`.
    #[test]
    fn tools_list_matches_its_snapshot() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tools_list.json");
        let current =
            serde_json::to_string_pretty(&Routes::all().router.list_all()).unwrap() + "\n";
        if std::env::var_os("QUILT_MCP_UPDATE_SNAPSHOT").is_some() {
            std::fs::write(&path, &current).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == current,
            "tools/list differs from {}: review the change, then rerun with QUILT_MCP_UPDATE_SNAPSHOT=1",
            path.display()
        );
    }

    #[test]
    fn documented_ranges_are_in_the_schemas() {
        let tools = Routes::all().router.list_all();
        let property = |tool: &str, name: &str| {
            let tool = tools.iter().find(|t| t.name == tool).unwrap();
            tool.input_schema["properties"][name].clone()
        };
        for (tool, name, min, max) in [
            ("bucket_objects_list", "max_keys", 1, 1000),
            ("bucket_object_text", "max_bytes", 1, 16_777_216),
            ("bucket_object_fetch", "max_bytes", 1, 16_777_216),
            ("bucket_object_link", "expiration", 1, 604_800),
            ("package_browse", "max_entries", 1, 100_000),
        ] {
            let p = property(tool, name);
            assert_eq!(
                (p["minimum"].as_u64(), p["maximum"].as_u64()),
                (Some(min), Some(max)),
                "{tool}.{name}: {p}"
            );
            assert_eq!(p["type"], "integer", "{tool}.{name}");
        }
    }

    #[test]
    fn schemas_are_portable() {
        fn walk(value: &Value, input: bool, path: &str, tool: &str) {
            match value {
                Value::Object(map) => {
                    if let Some(format) = map.get("format").and_then(Value::as_str) {
                        assert!(
                            STANDARD_FORMATS.contains(&format),
                            "{tool}{path}: format {format}"
                        );
                    }
                    if input {
                        assert!(
                            !map.get("type").is_some_and(Value::is_array),
                            "{tool}{path}: a type array"
                        );
                    }
                    for (k, v) in map {
                        walk(v, input, &format!("{path}/{k}"), tool);
                    }
                }
                Value::Array(items) => items
                    .iter()
                    .enumerate()
                    .for_each(|(i, v)| walk(v, input, &format!("{path}/{i}"), tool)),
                _ => {}
            }
        }
        for tool in Routes::all().router.list_all() {
            let input = Value::Object(tool.input_schema.as_ref().clone());
            walk(&input, true, "", &tool.name);
            let output = Value::Object(tool.output_schema.as_ref().unwrap().as_ref().clone());
            walk(&output, false, "", &tool.name);
        }
    }

    #[test]
    fn input_schemas_describe_every_parameter() {
        for tool in Routes::all().router.list_all() {
            let properties = tool.input_schema["properties"].as_object().unwrap();
            for (name, schema) in properties {
                assert!(
                    schema.get("description").is_some(),
                    "{}.{name} has no description",
                    tool.name
                );
            }
        }
    }
}

/// The gate's decision, parse then policy, on every tool: the tests of
/// [`crate::tools::policy`] through the real gate table.
#[cfg(test)]
mod gate_tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::auth::QuiltClaims;
    use crate::tools::policy::{Denial, DenyReason, authorize};

    #[derive(Debug)]
    enum Refusal {
        Denied(Denial),
        BadArgument(#[allow(dead_code, reason = "shown by Debug when a test fails")] ToolError),
    }

    struct Spec {
        name: &'static str,
        permissions: Vec<&'static str>,
        has_buckets: bool,
        writes: bool,
    }

    /// Every tool with the permissions and buckets a plain call needs.
    fn tools() -> Vec<Spec> {
        Routes::all()
            .gates
            .values()
            .map(|g| {
                let access = (g.parse)(args_for(g.info.name).as_object().cloned())
                    .unwrap()
                    .access;
                Spec {
                    name: g.info.name,
                    permissions: access.permissions,
                    has_buckets: !access.buckets.is_empty(),
                    writes: g.info.writes(),
                }
            })
            .collect()
    }

    fn claims(permissions: &[&str], buckets: &[&str], level: &str) -> QuiltClaims {
        QuiltClaims {
            permissions: permissions.iter().map(|s| (*s).to_owned()).collect(),
            roles: vec![],
            buckets: buckets.iter().map(|s| (*s).to_owned()).collect(),
            scope: String::new(),
            level: crate::auth::claims::Level::parse(level).unwrap(),
        }
    }

    const ALL: &[&str] = &[
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:PutObject",
        "s3:ListBucket",
    ];

    /// Valid arguments for every tool, touching bucket `b` (and `src` for create).
    fn args_for(tool: &str) -> Value {
        match tool {
            "auth_status" | "bucket_list" => json!({}),
            "bucket_objects_list" => json!({"bucket": "s3://b"}),
            "bucket_objects_put" => json!({"bucket": "b", "items": [{"key": "k", "text": "t"}]}),
            "bucket_object_info"
            | "bucket_object_text"
            | "bucket_object_fetch"
            | "bucket_object_link" => {
                json!({"s3_uri": "s3://b/k.txt"})
            }
            "package_list" => json!({"registry": "s3://b"}),
            "package_browse" => json!({"registry": "b", "package_name": "ns/pkg"}),
            "package_diff" => json!({"registry": "b", "package1_name": "ns/pkg"}),
            "package_create" => json!({
                "registry": "b", "package_name": "ns/pkg",
                "entries": [{"logical_key": "a", "s3_uri": "s3://src/a"}],
                "s3_uris": ["s3://src/dir/"]
            }),
            other => panic!("no arguments for {other}"),
        }
    }

    fn run(
        tool: &str,
        args: Value,
        claims: &QuiltClaims,
        read_only: bool,
    ) -> Result<Vec<String>, Refusal> {
        let gate = Routes::all().gates[tool];
        let parsed = (gate.parse)(args.as_object().cloned()).map_err(Refusal::BadArgument)?;
        authorize(&gate.info, &parsed.access, claims, read_only).map_err(Refusal::Denied)?;
        Ok(parsed.access.buckets)
    }

    fn denied(result: Result<Vec<String>, Refusal>) -> Denial {
        match result {
            Err(Refusal::Denied(d)) => d,
            other => panic!("expected a denial, got {other:?}"),
        }
    }

    #[test]
    fn every_tool_is_allowed_with_everything() {
        let full = claims(ALL, &["b", "src"], "write");
        for spec in tools() {
            let buckets = run(spec.name, args_for(spec.name), &full, false).unwrap();
            let expected: Vec<&str> = match spec.name {
                "auth_status" | "bucket_list" => vec![],
                "package_create" => vec!["b", "src"],
                _ => vec!["b"],
            };
            assert_eq!(buckets, expected, "{}", spec.name);
        }
    }

    #[test]
    fn every_tool_refuses_a_bucket_not_entitled() {
        let other = claims(ALL, &["other"], "admin");
        for spec in tools().iter().filter(|s| s.has_buckets) {
            let d = denied(run(spec.name, args_for(spec.name), &other, false));
            assert_eq!(
                (d.reason, d.tool, d.bucket.as_deref()),
                (DenyReason::BucketNotAllowed, spec.name, Some("b"))
            );
        }
        // A source bucket of package_create alone is enough to refuse it.
        let registry_only = claims(ALL, &["b"], "write");
        let d = denied(run(
            "package_create",
            args_for("package_create"),
            &registry_only,
            false,
        ));
        assert_eq!(
            (d.reason, d.bucket.as_deref()),
            (DenyReason::BucketNotAllowed, Some("src"))
        );
        // `*` allows every bucket.
        assert!(
            run(
                "package_create",
                args_for("package_create"),
                &claims(ALL, &["*"], "write"),
                false
            )
            .is_ok()
        );
    }

    #[test]
    fn every_tool_refuses_a_missing_permission() {
        for spec in tools().iter().filter(|s| !s.permissions.is_empty()) {
            for lacking in &spec.permissions {
                let granted: Vec<&str> = ALL.iter().copied().filter(|p| p != lacking).collect();
                let d = denied(run(
                    spec.name,
                    args_for(spec.name),
                    &claims(&granted, &["*"], "write"),
                    false,
                ));
                assert_eq!(d.reason, DenyReason::MissingPermission, "{}", spec.name);
                assert_eq!(
                    d.missing_permissions,
                    vec![(*lacking).to_owned()],
                    "{}",
                    spec.name
                );
            }
        }
    }

    #[test]
    fn conditional_permissions() {
        let no_version = claims(&["s3:GetObject"], &["b"], "read");
        assert!(
            run(
                "bucket_object_text",
                json!({"s3_uri": "s3://b/k"}),
                &no_version,
                false
            )
            .is_ok()
        );
        let d = denied(run(
            "bucket_object_text",
            json!({"s3_uri": "s3://b/k?versionId=1"}),
            &no_version,
            false,
        ));
        assert_eq!(d.missing_permissions, ["s3:GetObjectVersion"]);
        let get_only = claims(&["s3:GetObject"], &["b"], "read");
        let full_hash = "a".repeat(64);
        assert!(
            run(
                "package_browse",
                json!({"registry": "b", "package_name": "a/b", "top_hash": full_hash}),
                &get_only,
                false
            )
            .is_ok()
        );
        let d = denied(run(
            "package_browse",
            json!({"registry": "b", "package_name": "a/b", "top_hash": "abcdef"}),
            &get_only,
            false,
        ));
        assert_eq!(d.missing_permissions, ["s3:ListBucket"]);
    }

    /// `package_create` lists a prefix only with `s3:ListBucket` and reads a version only
    /// with `s3:GetObjectVersion` (the hardening review's finding 2).
    #[test]
    fn package_create_needs_list_for_prefixes_and_version_for_versions() {
        let no_list = claims(&["s3:GetObject", "s3:PutObject"], &["*"], "write");
        let create = |sources: Value| {
            let mut args = json!({"registry": "b", "package_name": "ns/pkg"});
            args.as_object_mut()
                .unwrap()
                .extend(sources.as_object().unwrap().clone());
            args
        };
        assert!(
            run(
                "package_create",
                create(json!({"s3_uris": ["s3://src/a.csv"]})),
                &no_list,
                false
            )
            .is_ok()
        );
        let d = denied(run(
            "package_create",
            create(json!({"s3_uris": ["s3://src/dir/"]})),
            &no_list,
            false,
        ));
        assert_eq!(d.missing_permissions, ["s3:ListBucket"]);
        let d = denied(run(
            "package_create",
            create(json!({"s3_uris": ["s3://src"]})),
            &no_list,
            false,
        ));
        assert_eq!(d.missing_permissions, ["s3:ListBucket"]);
        for versioned in [
            json!({"s3_uris": ["s3://src/a.csv?versionId=v1"]}),
            json!({"entries": [{"logical_key": "a", "s3_uri": "s3://src/a.csv?versionId=v1"}]}),
        ] {
            let d = denied(run("package_create", create(versioned), &no_list, false));
            assert_eq!(d.missing_permissions, ["s3:GetObjectVersion"]);
        }
    }

    #[test]
    fn write_tools_refuse_read_level_and_read_only_mode() {
        for spec in tools().iter().filter(|s| s.writes) {
            let d = denied(run(
                spec.name,
                args_for(spec.name),
                &claims(ALL, &["*"], "read"),
                false,
            ));
            assert_eq!(d.reason, DenyReason::WriteNotAllowed, "{}", spec.name);
            let d = denied(run(
                spec.name,
                args_for(spec.name),
                &claims(ALL, &["*"], "admin"),
                true,
            ));
            assert_eq!(d.reason, DenyReason::ReadOnlyMode, "{}", spec.name);
        }
        for spec in tools().iter().filter(|s| !s.writes) {
            assert!(
                run(
                    spec.name,
                    args_for(spec.name),
                    &claims(ALL, &["*"], "read"),
                    true
                )
                .is_ok(),
                "{}",
                spec.name
            );
        }
        let names: Vec<_> = tools()
            .iter()
            .filter(|s| s.writes)
            .map(|s| s.name)
            .collect();
        assert_eq!(names, ["bucket_objects_put", "package_create"]);
    }

    #[test]
    fn bad_bucket_arguments_are_reported() {
        let full = claims(ALL, &["*"], "write");
        let cases = [
            ("bucket_objects_list", json!({})),
            ("bucket_objects_list", json!({"bucket": 5})),
            ("bucket_objects_list", json!({"bucket": "s3://b/sub"})),
            ("bucket_object_info", json!({"s3_uri": "b/k"})),
            ("bucket_object_info", json!({"s3_uri": "s3://b/"})),
            (
                "package_create",
                json!({"registry": "b", "entries": [{"logical_key": "a"}]}),
            ),
            (
                "package_create",
                json!({"registry": "b", "s3_uris": "s3://x/"}),
            ),
            ("package_create", json!({"registry": "b", "s3_uris": [3]})),
        ];
        for (tool, args) in cases {
            assert!(
                matches!(
                    run(tool, args.clone(), &full, false),
                    Err(Refusal::BadArgument(_))
                ),
                "{tool} {args}"
            );
        }
    }

    #[test]
    fn messages_say_what_to_do() {
        let d = denied(run(
            "bucket_objects_list",
            json!({"bucket": "b"}),
            &claims(&[], &["b"], "read"),
            false,
        ));
        assert!(
            d.message()
                .starts_with("Forbidden: bucket_objects_list needs s3:ListBucket"),
            "{}",
            d.message()
        );
    }
}
