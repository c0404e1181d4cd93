//! The tool table: every tool of [`crate::tools::register`] as the server offers it,
//! built once per process on first use ([`Table::get`]): its MCP description (from the
//! tool's [`ToolInfo`], parameter and result types) and how a call's arguments become
//! the tool's typed parameters, ready to run ([`Invocation`]). The gate
//! ([`super::gate`]) parses a call with [`Entry::parse`], authorizes what the parsed
//! parameters declare and runs that very value: nothing is parsed twice, looked up
//! twice or passed around untyped.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, LazyLock};

use futures::FutureExt as _;
use futures::future::BoxFuture;
use rmcp::RoleServer;
use rmcp::handler::server::common::{schema_for_empty_input, schema_for_input, schema_for_output};
use rmcp::model::{
    CallToolResult, ContentBlock, JsonObject, ProgressNotificationParam, ProgressToken,
    ResourceContents, ToolAnnotations,
};
use rmcp::service::{Peer, RequestContext};
use schemars::JsonSchema;
use serde_json::{Value, json};

use crate::config::Toolsets;
use crate::error::{ErrorCode, ToolError, Unauthorized};
use crate::quilt::publish::Progress;
use crate::tools::{Access, Call, Declared, Params, Register, Tool, ToolInfo};

/// One tool as the server offers it.
pub(crate) struct Entry {
    /// The tool's description.
    pub(crate) info: ToolInfo,
    /// Its MCP description, as `tools/list` shows it.
    pub(crate) described: rmcp::model::Tool,
    /// Parses a call's arguments into the tool's parameters, ready to run.
    pub(crate) parse: Parse,
}

/// How an [`Entry`] parses a call's arguments.
pub(crate) type Parse = fn(Option<JsonObject>) -> Result<Box<dyn Invocation>, ToolError>;

/// Every tool, described once.
pub(crate) struct Table {
    /// By name.
    entries: Vec<Entry>,
}

static TABLE: LazyLock<Table> = LazyLock::new(Table::build);

impl Register for Vec<Entry> {
    fn add<T: Tool>(&mut self) {
        self.push(Entry {
            info: T::INFO,
            described: describe::<T>(),
            parse: parse::<T>,
        });
    }
}

impl Table {
    /// The table, built on first use.
    pub(crate) fn get() -> &'static Table {
        &TABLE
    }

    fn build() -> Table {
        let mut entries = Vec::new();
        crate::tools::register(&mut entries);
        entries.sort_by_key(|e| e.info.name);
        Table { entries }
    }

    /// The tool named `name`.
    pub(crate) fn entry(&self, name: &str) -> Option<&Entry> {
        self.entries
            .binary_search_by(|e| e.info.name.cmp(name))
            .ok()
            .and_then(|at| self.entries.get(at))
    }

    /// Every tool, by name.
    #[cfg_attr(not(test), allow(dead_code, reason = "the tests walk the table"))]
    pub(crate) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The tool named `name` when `toolsets` offer it: a tool outside them is unknown
    /// (docs/reference.md, Settings: `QUILT_MCP_TOOLSETS`).
    pub(crate) fn offered(&self, name: &str, toolsets: Toolsets) -> Option<&Entry> {
        self.entry(name)
            .filter(|entry| toolsets.offers(entry.info.toolset))
    }

    /// What `tools/list` shows: the tools of `toolsets`, without those that write in
    /// read-only mode. The descriptions are shared, not rebuilt; a server computes
    /// this once.
    pub(crate) fn listed(&self, read_only: bool, toolsets: Toolsets) -> Vec<rmcp::model::Tool> {
        self.entries
            .iter()
            .filter(|e| toolsets.offers(e.info.toolset) && !(read_only && e.info.writes()))
            .map(|e| e.described.clone())
            .collect()
    }
}

/// A call's typed parameters, parsed and ready to run: what the gate authorizes and
/// then runs.
pub(crate) trait Invocation: Declared + Send {
    /// Runs the tool with the parameters that were authorized; a tool error or a panic
    /// inside it is a failed result, and an upstream's refusal of the caller's
    /// credentials (the registry's 401/403) is `Err`, for a -32001 answer.
    fn run<'a>(self: Box<Self>, call: Call<'a>)
    -> BoxFuture<'a, Result<Answer, Box<Unauthorized>>>;
}

/// The parameters of a call of `T`.
struct Typed<T: Tool> {
    params: T::Params,
    access: Access,
}

impl<T: Tool> Declared for Typed<T> {
    fn access(&self) -> &Access {
        &self.access
    }
}

impl<T: Tool> Invocation for Typed<T> {
    fn run<'a>(
        self: Box<Self>,
        call: Call<'a>,
    ) -> BoxFuture<'a, Result<Answer, Box<Unauthorized>>> {
        let Typed { params, .. } = *self;
        Box::pin(async move {
            match guarded(T::INFO.name, T::run(call, params)).await {
                Ok(output) => Ok(Answer::Output(Box::new(Done::<T>(output)))),
                Err(ToolError {
                    unauthorized: Some(refusal),
                    ..
                }) => Err(refusal),
                Err(error) => Ok(Answer::Failed(error)),
            }
        })
    }
}

/// What a call answers, before it is written: the tool's typed output, or its failure.
/// Each transport writes it once, its own way: rmcp's service as a [`CallToolResult`]
/// ([`Answer::into_result`]), the HTTP direct path as bytes ([`Output::raw`]), which
/// serializes the output once for both the structured result and its text.
pub(crate) enum Answer {
    /// The tool's output.
    Output(Box<dyn Output>),
    /// The tool ran and failed, or its arguments were refused (docs/reference.md,
    /// Errors).
    Failed(ToolError),
}

impl Answer {
    /// Whether the answer is a failed result.
    pub(crate) fn is_error(&self) -> bool {
        matches!(self, Answer::Failed(_))
    }

    /// MCP's result.
    pub(crate) fn into_result(self) -> CallToolResult {
        match self {
            Answer::Output(output) => output.result(),
            Answer::Failed(error) => failure(error),
        }
    }
}

/// A tool's typed output, written when it is answered.
pub(crate) trait Output: Send {
    /// MCP's result: the structured result, its text (the JSON, or the tool's summary)
    /// and any embedded resource.
    fn result(&self) -> CallToolResult;

    /// The structured result alone (a resource read or a completion reads its own
    /// fields from it, and has no use for the text).
    fn value(&self) -> serde_json::Result<Value>;

    /// The same result, serialized as rmcp serializes [`CallToolResult`] for a peer
    /// before 2026-07-28 (no `resultType`), with the output serialized once: the
    /// structured result is that JSON, and so is the text unless the tool has a
    /// summary.
    fn raw(&self) -> serde_json::Result<RawResult>;
}

/// A successful [`CallToolResult`] whose structured result is JSON text already
/// written.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawResult {
    content: Vec<ContentBlock>,
    structured_content: Box<serde_json::value::RawValue>,
    is_error: bool,
}

impl RawResult {
    /// About how many bytes the result takes written: its JSON twice (the text escapes
    /// some of its bytes), and room for the envelope.
    pub(crate) fn size_hint(&self) -> usize {
        let text: usize = self
            .content
            .iter()
            .filter_map(|c| c.as_text().map(|t| t.text.len()))
            .sum();
        self.structured_content.get().len() + text + text / 4 + 256
    }
}

/// The output of a call of `T`.
struct Done<T: Tool>(T::Output);

impl<T: Tool> Output for Done<T> {
    fn result(&self) -> CallToolResult {
        success::<T>(&self.0)
    }

    fn value(&self) -> serde_json::Result<Value> {
        serde_json::to_value(&self.0)
    }

    fn raw(&self) -> serde_json::Result<RawResult> {
        // Written, not checked again: serde_json wrote it.
        let structured = serde_json::value::to_raw_value(&self.0)?;
        let text = T::summary(&self.0).unwrap_or_else(|| structured.get().to_owned());
        Ok(RawResult {
            content: content::<T>(&self.0, text),
            structured_content: structured,
            is_error: false,
        })
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

/// Makes a schema portable (docs/reference.md, Tools): no `format` outside 2020-12's own; in an input
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
            if !input && let Some(Value::Array(types)) = map.get("type") {
                let types = types.clone();
                nullable_as_any_of(map, &types);
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

/// The keywords that describe a value rather than constrain it: they stay beside the
/// `anyOf` that replaces a type array.
const ANNOTATIONS: &[&str] = &[
    "description",
    "title",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "$comment",
];

/// An output schema's nullable field, `{"type": [T, "null"], …}`, becomes
/// `{"anyOf": [{"type": T, …}, {"type": "null"}], …}`: the same values, spelled with one
/// `type` per schema, which clients that map schemas onto a single-type dialect accept.
/// A type array of several non-null types is left as it is.
fn nullable_as_any_of(map: &mut JsonObject, types: &[Value]) {
    let kept: Vec<&Value> = types.iter().filter(|t| *t != "null").collect();
    let ([one], true) = (kept.as_slice(), kept.len() < types.len()) else {
        return;
    };
    if map.contains_key("anyOf") {
        return;
    }
    let mut branch = JsonObject::new();
    branch.insert("type".into(), (*one).clone());
    let keys: Vec<String> = map
        .keys()
        .filter(|k| *k != "type" && !ANNOTATIONS.contains(&k.as_str()))
        .cloned()
        .collect();
    for key in keys {
        if let Some(value) = map.shift_remove(&key) {
            branch.insert(key, value);
        }
    }
    if let Some(Value::Array(values)) = branch.get_mut("enum") {
        values.retain(|v| !v.is_null());
    }
    map.shift_remove("type");
    map.insert(
        "anyOf".into(),
        json!([Value::Object(branch), {"type": "null"}]),
    );
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

/// The `structuredContent` of a failed call (docs/reference.md, Errors).
#[derive(JsonSchema)]
#[allow(dead_code, reason = "only its schema is used")]
struct ErrorEnvelope {
    /// Why the call failed.
    error: ToolError,
}

/// The output schema of a tool whose result is `O`: its successful result, or the
/// error envelope (docs/reference.md, Errors; hosts validate error results against it too).
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
fn parse<T: Tool>(arguments: Option<JsonObject>) -> Result<Box<dyn Invocation>, ToolError> {
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
    Ok(Box::new(Typed::<T> {
        access: params.access(),
        params,
    }))
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
        Err(e) => return unwritable(&e),
    };
    // `to_string` writes into bytes directly; `Value`'s `Display` goes through a
    // formatter (and would panic where `to_string` fails).
    // From the typed result: faster than walking the tree just built from it.
    let text = match T::summary(output).map_or_else(|| serde_json::to_string(output), Ok) {
        Ok(text) => text,
        Err(e) => return unwritable(&e),
    };
    let mut result = CallToolResult::success(content::<T>(output, text));
    result.structured_content = Some(value);
    result
}

/// A successful result's content: its text, and the embedded resource of a tool that
/// has one.
fn content<T: Tool>(output: &T::Output, text: String) -> Vec<ContentBlock> {
    let mut content = vec![ContentBlock::text(text)];
    if let Some(blob) = T::blob(output) {
        content.push(ContentBlock::resource(
            ResourceContents::blob(blob.base64, blob.uri).with_mime_type(blob.mime_type),
        ));
    }
    content
}

/// The MCP result of a tool that ran and failed (docs/reference.md, Errors).
pub(crate) fn failure(error: ToolError) -> CallToolResult {
    let mut result = CallToolResult::error(vec![ContentBlock::text(format!(
        "Error ({}): {}",
        error.code.as_str(),
        error.message
    ))]);
    result.structured_content = Some(json!({ "error": error }));
    result
}

/// The failed result of an output that could not be serialized.
pub(crate) fn unwritable(e: &serde_json::Error) -> CallToolResult {
    failure(ToolError::new(
        ErrorCode::InternalError,
        format!("the result could not be written: {e}"),
    ))
}

/// Progress notifications to the client, when it asked for them with a token.
pub(crate) struct PeerProgress {
    /// The client and the token it asked for progress with; `None` when it did not.
    to: Option<(Peer<RoleServer>, ProgressToken)>,
}

impl PeerProgress {
    pub(crate) fn of(context: &RequestContext<RoleServer>) -> PeerProgress {
        PeerProgress {
            to: context
                .meta
                .get_progress_token()
                .map(|token| (context.peer.clone(), token)),
        }
    }

    /// No progress: the call did not ask for it.
    pub(crate) fn none() -> PeerProgress {
        PeerProgress { to: None }
    }
}

impl Progress for PeerProgress {
    fn report(&self, done: usize, total: usize, message: String) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some((peer, token)) = &self.to {
                // A client that went away cannot be told; the work goes on.
                let _ = peer
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

    /// A tool whose result has a summary and an embedded resource (`RICH`), or one
    /// whose text is its JSON; its output has strings that need escaping.
    struct Shows<const RICH: bool>;

    #[derive(serde::Serialize, JsonSchema)]
    struct Shown {
        text: String,
        nested: Value,
        size: u64,
    }

    fn shown() -> Shown {
        Shown {
            text: "a \"quoted\" line\nand é, \u{1} and \\".to_owned(),
            nested: json!({"z": 1, "a": [true, null, 1.5]}),
            size: u64::MAX,
        }
    }

    impl<const RICH: bool> Tool for Shows<RICH> {
        const INFO: ToolInfo = ToolInfo::reads(
            crate::config::Toolset::Buckets,
            if RICH { "fetched" } else { "plain" },
            "Shows",
            "Test.",
        );
        type Params = crate::tools::NoParams;
        type Output = Shown;
        fn example() -> Value {
            json!({})
        }
        async fn run(_: Call<'_>, _: Self::Params) -> Result<Shown, ToolError> {
            Ok(shown())
        }
        fn summary(output: &Shown) -> Option<String> {
            RICH.then(|| format!("{} bytes", output.size))
        }
        fn blob(_: &Shown) -> Option<crate::tools::Blob> {
            RICH.then(|| crate::tools::Blob {
                uri: "s3://b/k?versionId=1".to_owned(),
                mime_type: "image/png".to_owned(),
                base64: "AAEC".to_owned(),
            })
        }
    }

    /// The direct path's bytes of a result are those of rmcp's `CallToolResult` for a
    /// peer before 2026-07-28: with a summary and a resource, and without.
    #[test]
    fn a_raw_result_is_written_as_rmcp_writes_the_result() {
        let answers: [Box<dyn Output>; 2] = [
            Box::new(Done::<Shows<true>>(shown())),
            Box::new(Done::<Shows<false>>(shown())),
        ];
        for answer in answers {
            let mut theirs = rmcp::model::ServerResult::from(answer.result());
            theirs.strip_result_type_for_legacy_peer();
            theirs.strip_non_object_output_for_legacy_peer();
            let theirs = serde_json::to_string(&theirs).unwrap();
            let raw = answer.raw().unwrap();
            let hint = raw.size_hint();
            let ours = serde_json::to_string(&raw).unwrap();
            assert_eq!(ours, theirs);
            assert!(hint >= ours.len(), "{hint} < {}", ours.len());
        }
    }

    /// Every tool of the table, listed once and described by its own `ToolInfo`; the
    /// count is whatever `register` holds.
    #[test]
    fn every_tool_is_listed_once_as_its_info_describes_it() {
        let table = Table::get();
        let names: Vec<&str> = table.entries().iter().map(|e| e.info.name).collect();
        assert!(!names.is_empty());
        assert!(
            names.windows(2).all(|w| w[0] < w[1]),
            "two tools share a name: {names:?}"
        );
        let listed: Vec<String> = table
            .listed(false, Toolsets::ALL)
            .iter()
            .map(|t| t.name.to_string())
            .collect();
        assert_eq!(listed, names);
        let reads: Vec<String> = table
            .listed(true, Toolsets::ALL)
            .iter()
            .map(|t| t.name.to_string())
            .collect();
        let expected: Vec<&str> = table
            .entries()
            .iter()
            .filter(|e| !e.info.writes())
            .map(|e| e.info.name)
            .collect();
        assert_eq!(reads, expected);
        for entry in table.entries() {
            let (info, tool) = (entry.info, &entry.described);
            assert_eq!(table.entry(info.name).map(|e| e.info.name), Some(info.name));
            assert_eq!(tool.name, info.name);
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
        assert!(table.entry("no_such_tool").is_none());
    }

    /// The descriptions are built once per process: every `tools/list` hands out the
    /// same schemas.
    #[test]
    fn descriptions_are_built_once() {
        let first = Table::get().listed(false, Toolsets::ALL);
        let again = Table::get().listed(false, Toolsets::ALL);
        for ((a, b), entry) in first.iter().zip(&again).zip(Table::get().entries()) {
            assert!(Arc::ptr_eq(&a.input_schema, &b.input_schema));
            assert!(Arc::ptr_eq(&a.input_schema, &entry.described.input_schema));
        }
    }

    /// Each toolset lists exactly its own tools and `auth_status`; a tool outside the
    /// toolsets is not offered, even by name.
    #[test]
    fn toolsets_choose_the_tools() {
        use crate::config::Toolset;
        let table = Table::get();
        for toolset in [Toolset::Buckets, Toolset::Packages, Toolset::Search] {
            let toolsets = Toolsets::NONE.with(toolset);
            let listed: Vec<String> = table
                .listed(false, toolsets)
                .iter()
                .map(|t| t.name.to_string())
                .collect();
            let expected: Vec<String> = table
                .entries()
                .iter()
                .filter(|e| e.info.toolset == toolset || e.info.toolset == Toolset::Core)
                .map(|e| e.info.name.to_owned())
                .collect();
            assert_eq!(listed, expected, "{toolset:?}");
            for entry in table.entries() {
                assert_eq!(
                    table.offered(entry.info.name, toolsets).is_some(),
                    listed.iter().any(|n| n == entry.info.name),
                    "{toolset:?} {}",
                    entry.info.name
                );
            }
        }
        // Only auth_status is always offered.
        let core: Vec<String> = table
            .listed(false, Toolsets::NONE)
            .iter()
            .map(|t| t.name.to_string())
            .collect();
        assert_eq!(core, ["auth_status"]);
        // The bucket and package tools are where users expect them.
        assert_eq!(
            table.entry("bucket_object_fetch").unwrap().info.toolset,
            Toolset::Buckets
        );
        assert_eq!(
            table.entry("package_browse").unwrap().info.toolset,
            Toolset::Packages
        );
    }

    /// A panic inside a tool (such as aws-sdk-s3's `InvalidUri`) once left the request
    /// unanswered. Whatever panics, the call gets `internal_error`.
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

    /// Each tool's MCP description (name, description, schemas, annotations) against
    /// its committed snapshot, one file a tool in `src/server/snapshots/`, so a change to
    /// any tool's surface shows up in review. After a deliberate change:
    /// `INSTA_UPDATE=always cargo test --lib snapshots` (or `cargo insta review`).
    #[test]
    fn every_tool_matches_its_snapshot() {
        for entry in Table::get().entries() {
            insta::with_settings!({prepend_module_to_snapshot => false, omit_expression => true}, {
                insta::assert_json_snapshot!(entry.info.name, entry.described);
            });
        }
    }

    /// The README's tool table lists every tool, and nothing else.
    #[test]
    fn the_readme_lists_every_tool() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let section = readme.split("\n## Tools\n").nth(1).unwrap();
        let section = section.split("\n## ").next().unwrap();
        let rows: Vec<&str> = section
            .lines()
            .filter_map(|line| line.strip_prefix("| `"))
            .filter_map(|rest| rest.split_once('`').map(|(name, _)| name))
            .collect();
        let names: Vec<&str> = Table::get().entries().iter().map(|e| e.info.name).collect();
        let mut sorted = rows.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, names, "README.md, Tools: one row a tool");
    }

    /// No snapshot is left of a tool that is gone.
    #[test]
    fn every_snapshot_is_a_tool() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/server/snapshots");
        let mut stale = Vec::new();
        for file in std::fs::read_dir(&dir).unwrap() {
            let name = file.unwrap().file_name().to_string_lossy().into_owned();
            let tool = name.trim_end_matches(".new").trim_end_matches(".snap");
            if Table::get().entry(tool).is_none() {
                stale.push(name);
            }
        }
        assert!(
            stale.is_empty(),
            "snapshots of no tool in {}: {stale:?}",
            dir.display()
        );
    }

    #[test]
    fn documented_ranges_are_in_the_schemas() {
        let tools = Table::get().listed(false, Toolsets::ALL);
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
                    assert!(
                        !map.get("type").is_some_and(Value::is_array),
                        "{tool}{path}: a type array ({})",
                        if input { "input" } else { "output" }
                    );
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
        for tool in Table::get().listed(false, Toolsets::ALL) {
            let input = Value::Object(tool.input_schema.as_ref().clone());
            walk(&input, true, "", &tool.name);
            let output = Value::Object(tool.output_schema.as_ref().unwrap().as_ref().clone());
            walk(&output, false, "", &tool.name);
        }
    }

    /// A nullable output field keeps its values and its description, with one `type`
    /// per schema.
    #[test]
    fn nullable_output_fields_become_any_of() {
        let cases = [
            (
                json!({"type": ["string", "null"], "description": "d", "format": "date-time"}),
                json!({"description": "d", "anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]}),
            ),
            (
                json!({"type": ["integer", "null"], "minimum": 0, "default": null}),
                json!({"default": null, "anyOf": [{"type": "integer", "minimum": 0}, {"type": "null"}]}),
            ),
            (
                json!({"type": ["string", "null"], "enum": ["a", null]}),
                json!({"anyOf": [{"type": "string", "enum": ["a"]}, {"type": "null"}]}),
            ),
            (
                json!({"type": ["object", "null"], "properties": {"x": {"type": ["boolean", "null"]}}}),
                json!({"anyOf": [
                    {"type": "object", "properties": {"x": {"anyOf": [{"type": "boolean"}, {"type": "null"}]}}},
                    {"type": "null"}
                ]}),
            ),
            // Not a nullable single type: left alone.
            (
                json!({"type": ["string", "integer"]}),
                json!({"type": ["string", "integer"]}),
            ),
            (json!({"type": "string"}), json!({"type": "string"})),
        ];
        for (mut schema, expected) in cases {
            portable(&mut schema, false);
            assert_eq!(schema, expected);
        }
        // Input schemas drop the null instead: the parameter is simply not required.
        let mut input = json!({"type": ["integer", "null"], "default": null});
        portable(&mut input, true);
        assert_eq!(input, json!({"type": "integer"}));
    }

    #[test]
    fn input_schemas_describe_every_parameter() {
        for tool in Table::get().listed(false, Toolsets::ALL) {
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
    use crate::tools::Register;
    use crate::tools::policy::{Denial, DenyReason, authorize};

    #[derive(Debug)]
    enum Refusal {
        Denied(Denial),
        BadArgument(#[allow(dead_code, reason = "shown by Debug when a test fails")] ToolError),
    }

    struct Spec {
        name: &'static str,
        example: Value,
        buckets: Vec<String>,
        permissions: Vec<&'static str>,
        writes: bool,
    }

    /// Every tool with the permissions and buckets its example call needs.
    fn tools() -> Vec<Spec> {
        struct Specs(Vec<Spec>);
        impl Register for Specs {
            fn add<T: Tool>(&mut self) {
                let access = parse::<T>(T::example().as_object().cloned())
                    .unwrap()
                    .access()
                    .clone();
                self.0.push(Spec {
                    name: T::INFO.name,
                    example: T::example(),
                    buckets: access.buckets,
                    permissions: access.permissions.iter().map(|p| p.as_str()).collect(),
                    writes: T::INFO.writes(),
                });
            }
        }
        let mut specs = Specs(Vec::new());
        crate::tools::register(&mut specs);
        specs.0
    }

    fn args_for(tool: &str) -> Value {
        tools()
            .into_iter()
            .find(|s| s.name == tool)
            .map(|s| s.example)
            .unwrap()
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

    fn run(
        tool: &str,
        args: Value,
        claims: &QuiltClaims,
        read_only: bool,
    ) -> Result<Vec<String>, Refusal> {
        let entry = Table::get().entry(tool).unwrap();
        let parsed = (entry.parse)(args.as_object().cloned()).map_err(Refusal::BadArgument)?;
        authorize(&entry.info, parsed.access(), claims, read_only).map_err(Refusal::Denied)?;
        Ok(parsed.access().buckets.clone())
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
            let buckets = run(spec.name, spec.example.clone(), &full, false).unwrap();
            assert_eq!(buckets, spec.buckets, "{}", spec.name);
            // Examples touch `b` first, and `src` only as a source.
            assert!(
                buckets.is_empty() || buckets.first().map(String::as_str) == Some("b"),
                "{}: {buckets:?}",
                spec.name
            );
        }
    }

    #[test]
    fn every_tool_refuses_a_bucket_not_entitled() {
        let other = claims(ALL, &["other"], "admin");
        for spec in tools().iter().filter(|s| !s.buckets.is_empty()) {
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
    /// with `s3:GetObjectVersion`.
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

    /// The publishing tools authorize the registry a `quilt+s3://` `uri` names, and a
    /// parent given as a hash prefix in it needs `s3:ListBucket`, as `parent_hash` does.
    #[test]
    fn publishing_tools_authorize_the_registry_of_their_uri() {
        let write = ["s3:GetObject", "s3:PutObject"];
        let create = json!({"uri": "quilt+s3://b#package=ns/pkg", "s3_uris": ["s3://b/a"]});
        let patch = json!({"uri": "quilt+s3://b#package=ns/pkg", "message": "m"});
        for (tool, args) in [("package_create", &create), ("package_patch", &patch)] {
            let allowed = run(tool, args.clone(), &claims(&write, &["b"], "write"), false);
            assert_eq!(allowed.unwrap(), ["b"], "{tool}");
            let d = denied(run(
                tool,
                args.clone(),
                &claims(&write, &["other"], "write"),
                false,
            ));
            assert_eq!(
                (d.reason, d.bucket.as_deref()),
                (DenyReason::BucketNotAllowed, Some("b")),
                "{tool}"
            );
        }
        let by_prefix = json!({"uri": "quilt+s3://b#package=ns/pkg@abcdef", "message": "m"});
        let d = denied(run(
            "package_patch",
            by_prefix,
            &claims(&write, &["b"], "write"),
            false,
        ));
        assert_eq!(d.missing_permissions, ["s3:ListBucket"]);
        let full = format!("quilt+s3://b#package=ns/pkg@{}", "a".repeat(64));
        assert!(
            run(
                "package_patch",
                json!({"uri": full, "message": "m"}),
                &claims(&write, &["b"], "write"),
                false
            )
            .is_ok()
        );
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
    }

    /// A tool writes (is not read-only) exactly when its calls need `s3:PutObject`.
    #[test]
    fn write_tools_are_the_tools_that_put() {
        let specs = tools();
        assert!(specs.iter().any(|s| s.writes));
        for spec in specs {
            assert_eq!(
                spec.writes,
                spec.permissions
                    .contains(&crate::tools::PUT_OBJECT.as_str()),
                "{}: writes {} but needs {:?}",
                spec.name,
                spec.writes,
                spec.permissions
            );
        }
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
