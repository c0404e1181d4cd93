//! MCP resources and completions (docs/reference.md, Resources), each served through
//! the gate as the tool call it stands for, so that its authorization, its -32001 and
//! -32003 refusals, its bounds and its `tool_call` log line are that tool's:
//!
//! | request | stands for |
//! |---|---|
//! | `resources/list` | `bucket_list`: one `s3://{bucket}/` a token bucket (none for `*`) |
//! | read `s3://{bucket}/{+key}` | `bucket_object_fetch` of the key, at most [`MAX_RESOURCE_BYTES`] |
//! | read `s3://{bucket}/` or `s3://{bucket}/{prefix}/` | `bucket_objects_list`, one level (`delimiter: "/"`) |
//! | read `quilt+s3://{bucket}#package={+name}` | `package_browse` of the latest revision: its summary |
//! | complete `bucket` | `bucket_list` |
//! | complete `key` | `bucket_objects_list` under what was typed, one level |
//! | complete `name` | `package_list` with what was typed as its prefix |
//!
//! The `s3://` template and the key completion belong to the `buckets` toolset, the
//! `quilt+s3://` template and the name completion to `packages`; a server offering
//! neither offers no resources.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rmcp::model::{
    CallToolResult, CompleteRequestParams, CompleteResult, CompletionInfo, ErrorCode,
    ListResourceTemplatesResult, ListResourcesResult, ReadResourceRequestParams,
    ReadResourceResult, Resource, ResourceContents, ResourceTemplate,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};
use serde_json::{Map, Value, json};

use super::QuiltServer;
use super::gate::Caller;
use super::table::{Answer, Table, failure, unwritable};
use crate::config::{Toolset, Toolsets};
use crate::error::ArgumentError;
use crate::s3::S3Uri;

/// The template of an object (or, with an empty key or one ending in `/`, a folder).
pub(crate) const OBJECT_TEMPLATE: &str = "s3://{bucket}/{+key}";
/// The template of a package: a summary of its latest revision.
pub(crate) const PACKAGE_TEMPLATE: &str = "quilt+s3://{bucket}#package={+name}";
/// The largest object a resource read returns, as text or as a base64 blob. A larger
/// one is refused with `too_large`, which names the tools that read it in parts.
pub(crate) const MAX_RESOURCE_BYTES: u64 = 1024 * 1024;
/// Most keys and folders a folder read lists (S3's page).
const MAX_FOLDER_KEYS: u64 = 1000;
/// Most values a completion returns (the protocol's limit).
pub(crate) const MAX_COMPLETIONS: usize = CompletionInfo::MAX_VALUES;

/// Whether a server with `toolsets` offers resources and completions at all.
pub(crate) fn offered(toolsets: Toolsets) -> bool {
    toolsets.offers(Toolset::Buckets) || toolsets.offers(Toolset::Packages)
}

/// The resource templates `toolsets` offer.
pub(crate) fn templates(toolsets: Toolsets) -> Vec<ResourceTemplate> {
    let mut templates = Vec::new();
    if toolsets.offers(Toolset::Buckets) {
        templates.push(
            ResourceTemplate::new(OBJECT_TEMPLATE, "s3_object")
                .with_title("S3 object or folder")
                .with_description(
                    "An object of a bucket the Quilt token grants: text, or a base64 blob with \
                     its content type, up to 1 MiB (larger objects are refused: read them with \
                     bucket_object_text or bucket_object_fetch). A key that is empty or ends in \
                     `/` is a folder: a JSON listing of one level under it.",
                ),
        );
    }
    if toolsets.offers(Toolset::Packages) {
        templates.push(
            ResourceTemplate::new(PACKAGE_TEMPLATE, "quilt_package")
                .with_title("Quilt package")
                .with_description(
                    "A Quilt package's latest revision, as JSON: its top hash, message, \
                     metadata, entry count, total size and top-level directories. Add \
                     `@top_hash` to the name for another revision, `&path=dir` for a directory.",
                )
                .with_mime_type("application/json"),
        );
    }
    templates
}

/// A resource URI, parsed: which tool call it stands for, with its arguments.
#[derive(Debug, PartialEq)]
enum Target {
    /// `bucket_object_fetch` of an object.
    Object { uri: String },
    /// `bucket_objects_list` of one level under `prefix`.
    Folder { bucket: String, prefix: String },
    /// `package_browse` of a package: its `quilt+s3://` URI, parsed by the tool's own
    /// `uri` argument.
    Package { uri: String },
}

impl Target {
    /// Parses `uri`; `Err` is the message of a -32602.
    fn parse(uri: &str) -> Result<Target, ArgumentError> {
        if uri.starts_with("quilt+s3://") {
            return Ok(Target::Package {
                uri: uri.trim().to_owned(),
            });
        }
        if !uri.starts_with("s3://") {
            return Err(ArgumentError::new(format!(
                "{:?} is not a resource of this server (expected s3://bucket/key or quilt+s3://bucket#package=ns/name)",
                crate::s3::uri::short(uri)
            )));
        }
        let parsed = S3Uri::parse(uri).map_err(|e| ArgumentError::new(e.to_string()))?;
        if parsed.key.is_empty() || parsed.key.ends_with('/') {
            if parsed.version_id.is_some() {
                return Err(ArgumentError::new(
                    "a folder has no versions: leave out ?versionId=",
                ));
            }
            return Ok(Target::Folder {
                bucket: parsed.bucket,
                prefix: parsed.key,
            });
        }
        Ok(Target::Object {
            uri: uri.trim().to_owned(),
        })
    }

    /// The toolset whose resources these are.
    fn toolset(&self) -> Toolset {
        match self {
            Target::Object { .. } | Target::Folder { .. } => Toolset::Buckets,
            Target::Package { .. } => Toolset::Packages,
        }
    }

    /// The tool this read stands for, and its arguments.
    fn call(&self) -> (&'static str, Value) {
        match self {
            Target::Object { uri } => (
                "bucket_object_fetch",
                json!({"s3_uri": uri, "max_bytes": MAX_RESOURCE_BYTES}),
            ),
            Target::Folder { bucket, prefix } => {
                let mut args =
                    json!({"bucket": bucket, "delimiter": "/", "max_keys": MAX_FOLDER_KEYS});
                if !prefix.is_empty() {
                    args["prefix"] = json!(prefix);
                }
                ("bucket_objects_list", args)
            }
            Target::Package { uri } => ("package_browse", json!({"uri": uri, "max_entries": 1})),
        }
    }
}

/// A failed tool result as the JSON-RPC error of a resource read or a completion:
/// `not_found` is -32002 (resource not found), `invalid_argument` -32602, anything
/// else -32603; `data` is the tool's `{code, message, retryable}`.
fn failed(result: &CallToolResult) -> ErrorData {
    let error = result
        .structured_content
        .as_ref()
        .and_then(|v| v.get("error"))
        .cloned()
        .unwrap_or(Value::Null);
    let code = error
        .get("code")
        .and_then(Value::as_str)
        .unwrap_or("internal_error");
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("the request failed");
    let text = format!("{code}: {message}");
    let rpc = match code {
        "not_found" => ErrorCode::RESOURCE_NOT_FOUND,
        "invalid_argument" => ErrorCode::INVALID_PARAMS,
        _ => ErrorCode::INTERNAL_ERROR,
    };
    ErrorData::new(rpc, text, Some(error))
}

/// The structured result of a successful call, or its error: the output serialized
/// into a JSON tree only, without the text a tool result carries.
fn structured(answer: Answer) -> Result<Value, ErrorData> {
    match answer {
        Answer::Output(output) => output.value().map_err(|e| failed(&unwritable(&e))),
        Answer::Failed(error) => Err(failed(&failure(error))),
    }
}

fn field<'a>(value: &'a Value, name: &str) -> &'a Value {
    value.get(name).unwrap_or(&Value::Null)
}

/// What a resource read answers for an object: its text, or a base64 blob, with its
/// content type; `too_large` past [`MAX_RESOURCE_BYTES`].
fn object_contents(uri: &str, fetched: &Value) -> Result<ResourceContents, ErrorData> {
    let size = field(fetched, "size").as_u64().unwrap_or(0);
    if field(fetched, "truncated").as_bool() == Some(true) {
        let error = json!({
            "code": "too_large",
            "message": format!(
                "{} is {size} bytes; a resource holds at most {MAX_RESOURCE_BYTES} bytes (1 MiB): read it in parts with bucket_object_text (offset, max_bytes) or bucket_object_fetch (max_bytes)",
                crate::s3::uri::short(uri)
            ),
            "retryable": false,
        });
        return Err(ErrorData::new(
            ErrorCode::INTERNAL_ERROR,
            format!(
                "too_large: {}",
                field(&error, "message").as_str().unwrap_or("")
            ),
            Some(error),
        ));
    }
    let content_type = field(fetched, "content_type")
        .as_str()
        .unwrap_or("application/octet-stream");
    let base64 = field(fetched, "base64").as_str().unwrap_or("");
    let bytes = STANDARD
        .decode(base64)
        .map_err(|_| ErrorData::internal_error("the object's bytes came back malformed", None))?;
    if !bytes.contains(&0)
        && let Ok(text) = String::from_utf8(bytes)
    {
        // Text whose type S3 does not know is plain text.
        let mime = match content_type {
            "application/octet-stream" | "binary/octet-stream" => "text/plain",
            known => known,
        };
        return Ok(ResourceContents::text(text, uri).with_mime_type(mime));
    }
    Ok(ResourceContents::blob(base64, uri).with_mime_type(content_type))
}

/// What a resource read answers for a package: the revision's summary, as JSON.
fn package_summary(browsed: &Value) -> Value {
    let mut summary = Map::new();
    for name in [
        "uri",
        "registry",
        "package_name",
        "top_hash",
        "message",
        "user_meta",
        "workflow",
        "path",
        "entry_count",
        "total_size",
        "directories",
        "directories_truncated",
    ] {
        summary.insert(name.to_owned(), field(browsed, name).clone());
    }
    Value::Object(summary)
}

fn arguments(value: Value) -> Option<rmcp::model::JsonObject> {
    match value {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

impl QuiltServer {
    /// Runs the tool `name` with `args` through the gate, as a resource read or a
    /// completion: its structured result, or the JSON-RPC error.
    async fn stand_in(
        &self,
        name: &str,
        args: Value,
        context: RequestContext<RoleServer>,
    ) -> Result<Value, ErrorData> {
        let entry = Table::get()
            .entry(name)
            .ok_or_else(|| ErrorData::internal_error(format!("no tool {name}"), None))?;
        // Boxed: the tool's future is large, and nests in the handler's.
        structured(Box::pin(self.run_entry(entry, arguments(args), Caller::of(&context))).await?)
    }

    /// The buckets the caller's token names (never `*`), in its order.
    async fn token_buckets(
        &self,
        context: RequestContext<RoleServer>,
    ) -> Result<Vec<String>, ErrorData> {
        let listed = self.stand_in("bucket_list", json!({}), context).await?;
        Ok(field(&listed, "buckets")
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| b.get("name").and_then(Value::as_str))
            .filter(|name| *name != "*")
            .map(str::to_owned)
            .collect())
    }

    /// `resources/list`: the top level of each bucket the token names. A token whose
    /// buckets are `*` names none to list (the server never asks AWS for every bucket);
    /// its buckets are still read through the template.
    pub(crate) async fn resource_list(
        &self,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        if !self.config().toolsets.offers(Toolset::Buckets) {
            return Ok(ListResourcesResult::with_all_items(Vec::new()));
        }
        let resources = self
            .token_buckets(context)
            .await?
            .into_iter()
            .map(|bucket| {
                Resource::new(format!("s3://{bucket}/"), bucket.clone())
                    .with_title(format!("{bucket} (S3 bucket)"))
                    .with_description(format!(
                        "The top level of s3://{bucket}: its folders and objects, as JSON"
                    ))
                    .with_mime_type("application/json")
            })
            .collect();
        Ok(ListResourcesResult::with_all_items(resources))
    }

    /// `resources/templates/list`.
    pub(crate) fn resource_templates(&self) -> ListResourceTemplatesResult {
        ListResourceTemplatesResult::with_all_items(templates(self.config().toolsets))
    }

    /// `resources/read`.
    pub(crate) async fn resource_read(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResult, ErrorData> {
        let uri = request.uri;
        let target =
            Target::parse(&uri).map_err(|m| ErrorData::invalid_params(m.to_string(), None))?;
        if !self.config().toolsets.offers(target.toolset()) {
            return Err(ErrorData::invalid_params(
                format!(
                    "{} resources are not offered: QUILT_MCP_TOOLSETS leaves out {}",
                    if target.toolset() == Toolset::Buckets {
                        "s3://"
                    } else {
                        "quilt+s3://"
                    },
                    if target.toolset() == Toolset::Buckets {
                        "buckets"
                    } else {
                        "packages"
                    },
                ),
                None,
            ));
        }
        let (tool, args) = target.call();
        let result = self.stand_in(tool, args, context).await?;
        let contents = match target {
            Target::Object { .. } => object_contents(&uri, &result)?,
            Target::Folder { .. } => {
                ResourceContents::text(result.to_string(), &uri).with_mime_type("application/json")
            }
            Target::Package { .. } => {
                ResourceContents::text(package_summary(&result).to_string(), &uri)
                    .with_mime_type("application/json")
            }
        };
        Ok(ReadResourceResult::new(vec![contents]))
    }

    /// `completion/complete`: `bucket` of either template, `key` of the object
    /// template (with `bucket` already chosen), `name` of the package template; at
    /// most [`MAX_COMPLETIONS`] values.
    pub(crate) async fn completion(
        &self,
        request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        let toolsets = self.config().toolsets;
        let template = request.r#ref.as_resource_uri().unwrap_or("");
        let toolset = match template {
            OBJECT_TEMPLATE => Toolset::Buckets,
            PACKAGE_TEMPLATE => Toolset::Packages,
            _ => {
                return Err(ErrorData::invalid_params(
                    format!(
                        "completions are offered for the templates {OBJECT_TEMPLATE} and {PACKAGE_TEMPLATE}, not {:?}",
                        crate::s3::uri::short(template)
                    ),
                    None,
                ));
            }
        };
        if !toolsets.offers(toolset) {
            return Err(ErrorData::invalid_params(
                format!("the template {template} is not offered (QUILT_MCP_TOOLSETS)"),
                None,
            ));
        }
        let typed = request.argument.value;
        let bucket = request
            .context
            .as_ref()
            .and_then(|c| c.get_argument("bucket"))
            .map(|b| b.trim().trim_start_matches("s3://").trim_end_matches('/'))
            .filter(|b| !b.is_empty())
            .map(str::to_owned);
        let info = match (toolset, request.argument.name.as_str()) {
            (_, "bucket") => {
                let buckets: Vec<String> = self
                    .token_buckets(context)
                    .await?
                    .into_iter()
                    .filter(|b| b.starts_with(typed.as_str()))
                    .collect();
                capped(buckets, false)
            }
            (Toolset::Buckets, "key") => {
                let Some(bucket) = bucket else {
                    return Ok(CompleteResult::new(capped(Vec::new(), false)));
                };
                let mut args =
                    json!({"bucket": bucket, "delimiter": "/", "max_keys": MAX_COMPLETIONS});
                if !typed.is_empty() {
                    args["prefix"] = json!(typed);
                }
                let listed = self.stand_in("bucket_objects_list", args, context).await?;
                let mut values: Vec<String> = field(&listed, "common_prefixes")
                    .as_array()
                    .into_iter()
                    .flatten()
                    .chain(
                        field(&listed, "objects")
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|o| field(o, "key")),
                    )
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect();
                values.sort_unstable();
                capped(
                    values,
                    field(&listed, "is_truncated").as_bool() == Some(true),
                )
            }
            (Toolset::Packages, "name") => {
                let Some(bucket) = bucket else {
                    return Ok(CompleteResult::new(capped(Vec::new(), false)));
                };
                let mut args = json!({"registry": bucket, "max_packages": MAX_COMPLETIONS});
                if !typed.is_empty() {
                    args["prefix"] = json!(typed);
                }
                let listed = self.stand_in("package_list", args, context).await?;
                let mut values: Vec<String> = field(&listed, "packages")
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p.get("name").and_then(Value::as_str))
                    .map(str::to_owned)
                    .collect();
                values.sort_unstable();
                capped(values, field(&listed, "truncated").as_bool() == Some(true))
            }
            (_, other) => {
                return Err(ErrorData::invalid_params(
                    format!(
                        "the template {template} has no argument {:?} to complete",
                        crate::s3::uri::short(other)
                    ),
                    None,
                ));
            }
        };
        Ok(CompleteResult::new(info))
    }
}

/// At most [`MAX_COMPLETIONS`] of `values`; `has_more` when some were left out here or
/// by the listing.
fn capped(mut values: Vec<String>, more: bool) -> CompletionInfo {
    let total = values.len();
    values.truncate(MAX_COMPLETIONS);
    let has_more = more || total > MAX_COMPLETIONS;
    let total = (!more).then(|| u32::try_from(total).unwrap_or(u32::MAX));
    CompletionInfo::with_pagination(values, total, has_more).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn uris_become_the_tool_calls_they_stand_for() {
        let object = |uri: &str| Target::Object {
            uri: uri.to_owned(),
        };
        let folder = |bucket: &str, prefix: &str| Target::Folder {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        };
        let package = |uri: &str| Target::Package {
            uri: uri.to_owned(),
        };
        for (uri, expected) in [
            ("s3://b/k.csv", Ok(object("s3://b/k.csv"))),
            (
                "s3://b/dir/k%20x.csv?versionId=v1",
                Ok(object("s3://b/dir/k%20x.csv?versionId=v1")),
            ),
            ("s3://b/", Ok(folder("b", ""))),
            ("s3://b", Ok(folder("b", ""))),
            ("s3://b/runs/2026/", Ok(folder("b", "runs/2026/"))),
            (
                "quilt+s3://b#package=ns/pkg",
                Ok(package("quilt+s3://b#package=ns/pkg")),
            ),
            (
                "quilt+s3://b#package=ns/pkg@abc123&path=data",
                Ok(package("quilt+s3://b#package=ns/pkg@abc123&path=data")),
            ),
        ] {
            assert_eq!(Target::parse(uri), expected, "{uri}");
        }
        for bad in [
            "file:///etc/passwd",
            "s3://b\u{0}x/k",
            "s3://b/dir/?versionId=1",
            "s3://b/k?acl",
            "https://example.com/",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
        // A package URI is checked by package_browse's own `uri` argument.
        for bad in [
            "quilt+s3://b",
            "quilt+s3://b#name=ns/pkg",
            "quilt+s3://b#path=x",
        ] {
            let (tool, args) = Target::parse(bad).unwrap().call();
            let entry = Table::get().entry(tool).unwrap();
            assert!((entry.parse)(arguments(args)).is_err(), "{bad}");
        }
        assert_eq!(object("s3://b/k").toolset(), Toolset::Buckets);
        assert_eq!(
            package("quilt+s3://b#package=a/b").toolset(),
            Toolset::Packages
        );
        // The arguments are those of the tools, checked by the tools' own parse.
        for target in [
            object("s3://b/k"),
            folder("b", "p/"),
            package("quilt+s3://b#package=a/b@abcdef"),
        ] {
            let (tool, args) = target.call();
            let entry = Table::get().entry(tool).unwrap();
            assert!((entry.parse)(arguments(args)).is_ok(), "{tool}");
        }
    }

    #[test]
    fn objects_are_text_or_blobs_and_never_past_one_mebibyte() {
        let fetched = |bytes: &[u8], content_type: &str, size: u64| {
            json!({
                "content_type": content_type, "size": size, "bytes_read": bytes.len(),
                "truncated": (bytes.len() as u64) < size, "base64": STANDARD.encode(bytes),
            })
        };
        let text = object_contents("s3://b/a.csv", &fetched(b"a,b\n1,2\n", "text/csv", 8)).unwrap();
        assert_eq!(
            serde_json::to_value(&text).unwrap(),
            json!({"uri": "s3://b/a.csv", "mimeType": "text/csv", "text": "a,b\n1,2\n"})
        );
        let untyped = object_contents(
            "s3://b/a",
            &fetched("é".as_bytes(), "binary/octet-stream", 2),
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(&untyped).unwrap()["mimeType"],
            "text/plain"
        );
        let png = [0x89, b'P', b'N', b'G', 0, 1, 2];
        let blob = object_contents("s3://b/i.png", &fetched(&png, "image/png", 7)).unwrap();
        assert_eq!(
            serde_json::to_value(&blob).unwrap(),
            json!({"uri": "s3://b/i.png", "mimeType": "image/png", "blob": STANDARD.encode(png)})
        );
        let latin1 =
            object_contents("s3://b/l.txt", &fetched(&[0xE9, b'a'], "text/plain", 2)).unwrap();
        assert!(serde_json::to_value(&latin1).unwrap().get("blob").is_some());
        let error = object_contents(
            "s3://b/big",
            &fetched(b"abc", "text/plain", MAX_RESOURCE_BYTES + 1),
        )
        .unwrap_err();
        assert_eq!(error.code, ErrorCode::INTERNAL_ERROR);
        assert_eq!(error.data.as_ref().unwrap()["code"], "too_large");
        assert!(
            error
                .message
                .starts_with("too_large: s3://b/big is 1048577 bytes"),
            "{}",
            error.message
        );
    }

    #[test]
    fn tool_failures_keep_their_code() {
        for (code, rpc) in [
            ("not_found", ErrorCode::RESOURCE_NOT_FOUND),
            ("invalid_argument", ErrorCode::INVALID_PARAMS),
            ("access_denied", ErrorCode::INTERNAL_ERROR),
        ] {
            let result = super::super::table::failure(crate::error::ToolError::new(
                match code {
                    "not_found" => crate::error::ErrorCode::NotFound,
                    "invalid_argument" => crate::error::ErrorCode::InvalidArgument,
                    _ => crate::error::ErrorCode::AccessDenied,
                },
                "why",
            ));
            let error = failed(&result);
            assert_eq!(
                (error.code, error.message.as_ref()),
                (rpc, format!("{code}: why").as_str())
            );
            assert_eq!(error.data.unwrap()["code"], code);
        }
    }

    #[test]
    fn completions_are_capped_at_one_hundred() {
        let many: Vec<String> = (0..150).map(|i| format!("v{i:03}")).collect();
        let info = capped(many, false);
        assert_eq!(
            (info.values.len(), info.total, info.has_more),
            (100, Some(150), Some(true))
        );
        assert!(info.validate().is_ok());
        let info = capped(vec!["a".into()], true);
        assert_eq!((info.total, info.has_more), (None, Some(true)));
        let info = capped(vec!["a".into()], false);
        assert_eq!((info.total, info.has_more), (Some(1), Some(false)));
    }

    #[test]
    fn templates_follow_the_toolsets() {
        let uris = |toolsets: Toolsets| -> Vec<String> {
            templates(toolsets)
                .into_iter()
                .map(|t| t.uri_template)
                .collect()
        };
        assert_eq!(uris(Toolsets::ALL), [OBJECT_TEMPLATE, PACKAGE_TEMPLATE]);
        assert_eq!(
            uris(Toolsets::NONE.with(Toolset::Buckets)),
            [OBJECT_TEMPLATE]
        );
        assert_eq!(
            uris(Toolsets::NONE.with(Toolset::Packages)),
            [PACKAGE_TEMPLATE]
        );
        assert!(uris(Toolsets::NONE.with(Toolset::Search)).is_empty());
        assert!(!offered(Toolsets::NONE.with(Toolset::Search)));
        assert!(offered(Toolsets::NONE.with(Toolset::Packages)));
    }
}
