//! The bucket tools: `bucket_list` (from the token alone) and the S3 tools, which
//! run with the caller's [`AwsSession`] once the gate has let the call through.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures::StreamExt as _;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ResourceContents};
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::uri::{S3Uri, parse_bucket};
use super::{ErrorCode, ToolError, finish};
use crate::auth::AuthContext;
use crate::aws::AwsSession;
use crate::aws::errors::s3_error;
use crate::server::QuiltServer;
use crate::time::{now_unix, rfc3339};

/// Largest `max_bytes` for text and fetch.
pub const MAX_READ_BYTES: u64 = 16 * 1024 * 1024;
/// Largest `expiration` for presigned links (7 days, SigV4's limit).
pub const MAX_LINK_SECONDS: u64 = 604_800;
/// Items written at once by `bucket_objects_put`.
pub const PUT_CONCURRENCY: usize = 8;

/// The structured result of `bucket_list`: the token's buckets with the S3
/// permissions the token grants on them (Quilt grants permissions across all of a
/// token's buckets).
pub fn bucket_list(ctx: &AuthContext) -> Value {
    let c = &ctx.claims;
    let mut seen: Vec<&str> = Vec::new();
    let buckets: Vec<Value> = c
        .buckets
        .iter()
        .filter(|b| {
            let new = !seen.contains(&b.as_str());
            seen.push(b);
            new
        })
        .map(|name| json!({"name": name, "permissions": c.permissions}))
        .collect();
    json!({
        "buckets": buckets,
        "count": buckets.len(),
        "all_buckets": c.buckets.iter().any(|b| b == "*"),
        "level": c.level,
    })
}

/// `bucket_objects_list` parameters.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListParams {
    /// The bucket: a name such as `lab-data`, or `s3://lab-data`.
    pub bucket: String,
    /// Only keys that start with this prefix, such as `runs/2026/`.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Group keys at this delimiter (usually `/`) to browse like folders: the groups
    /// come back in `common_prefixes`.
    #[serde(default)]
    pub delimiter: Option<String>,
    /// How many keys to return, 1 to 1000 (default 100).
    #[serde(default)]
    pub max_keys: Option<i64>,
    /// `next_continuation_token` of the previous page, to get the next one.
    #[serde(default)]
    pub continuation_token: Option<String>,
}

/// Parameters of the tools that read one object.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ObjectParams {
    /// The object: `s3://bucket/key`, the key percent-encoded where needed, optionally
    /// with `?versionId=…` for a specific version.
    pub s3_uri: String,
}

/// `bucket_object_text` parameters.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct TextParams {
    /// The object: `s3://bucket/key`, optionally with `?versionId=…`.
    pub s3_uri: String,
    /// Most bytes to read (default 65536, at most 16 MiB). Only this much is downloaded.
    #[serde(default)]
    pub max_bytes: Option<u64>,
    /// Byte offset to start reading at (default 0); use `offset + bytes_read` of the
    /// previous call to continue.
    #[serde(default)]
    pub offset: Option<u64>,
    /// Text encoding: `utf-8` (default), `latin-1` or `ascii`.
    #[serde(default)]
    pub encoding: Option<String>,
}

/// `bucket_object_fetch` parameters.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct FetchParams {
    /// The object: `s3://bucket/key`, optionally with `?versionId=…`.
    pub s3_uri: String,
    /// Most bytes to return (default 1 MiB, at most 16 MiB). Only this much is downloaded.
    #[serde(default)]
    pub max_bytes: Option<u64>,
}

/// `bucket_object_link` parameters.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct LinkParams {
    /// The object: `s3://bucket/key`, optionally with `?versionId=…`.
    pub s3_uri: String,
    /// Seconds the link stays valid (default 3600, at most 604800). It never outlives
    /// the AWS credentials that sign it.
    #[serde(default)]
    pub expiration: Option<u64>,
}

/// One object to write.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct PutItem {
    /// The key to write (an existing object at this key is replaced).
    pub key: String,
    /// The content as text (UTF-8). Give either `text` or `base64`.
    #[serde(default)]
    pub text: Option<String>,
    /// The content as standard base64, for binary data. Give either `text` or `base64`.
    #[serde(default)]
    pub base64: Option<String>,
    /// Content type, such as `text/csv` (default `text/plain; charset=utf-8` for text,
    /// `application/octet-stream` for base64).
    #[serde(default)]
    pub content_type: Option<String>,
    /// User metadata (`x-amz-meta-*`), string keys and values.
    #[serde(default)]
    pub metadata: Option<HashMap<String, String>>,
}

/// `bucket_objects_put` parameters.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct PutParams {
    /// The bucket: a name or `s3://name`.
    pub bucket: String,
    /// The objects to write, 1 to 1000.
    pub items: Vec<PutItem>,
}

fn s3_uri_of(bucket: &str, key: &str, version: Option<&str>) -> String {
    let mut uri = format!("s3://{bucket}/{key}");
    if let Some(v) = version {
        uri.push_str("?versionId=");
        uri.push_str(v);
    }
    uri
}

fn object_uri(text: &str) -> Result<S3Uri, ToolError> {
    S3Uri::parse_object(text).map_err(|e| ToolError::invalid(format!("`s3_uri`: {e}")))
}

fn date(value: Option<&aws_sdk_s3::primitives::DateTime>) -> Option<String> {
    value.and_then(|d| rfc3339(d.secs()))
}

/// A ranged read: at most `max_bytes` from `offset`, never downloading more.
struct Chunk {
    bytes: Vec<u8>,
    size: u64,
    content_type: Option<String>,
}

async fn read_range(
    s3: &aws_sdk_s3::Client,
    uri: &S3Uri,
    offset: u64,
    max_bytes: u64,
) -> Result<Chunk, ToolError> {
    let target = s3_uri_of(&uri.bucket, &uri.key, uri.version_id.as_deref());
    let answer = s3
        .get_object()
        .bucket(&uri.bucket)
        .key(&uri.key)
        .set_version_id(uri.version_id.clone())
        .range(format!("bytes={}-{}", offset, offset + max_bytes - 1))
        .send()
        .await;
    let output = match answer {
        Ok(output) => output,
        Err(error) => {
            let mapped = s3_error("GetObject", &target, &error);
            if mapped.code != ErrorCode::InvalidArgument {
                return Err(mapped);
            }
            // 416: the offset is at or past the end. An empty object has no range at all.
            let head = s3
                .head_object()
                .bucket(&uri.bucket)
                .key(&uri.key)
                .set_version_id(uri.version_id.clone())
                .send()
                .await
                .map_err(|e| s3_error("HeadObject", &target, &e))?;
            let size = u64::try_from(head.content_length().unwrap_or(0)).unwrap_or(0);
            if offset == 0 || offset == size {
                return Ok(Chunk {
                    bytes: Vec::new(),
                    size,
                    content_type: head.content_type().map(str::to_owned),
                });
            }
            return Err(ToolError::invalid(format!(
                "offset {offset} is past the end of {target}, which has {size} bytes"
            )));
        }
    };
    let size = output
        .content_range()
        .and_then(|r| r.rsplit('/').next())
        .and_then(|total| total.parse::<u64>().ok())
        .or_else(|| output.content_length().and_then(|l| u64::try_from(l).ok()))
        .unwrap_or(0);
    let content_type = output.content_type().map(str::to_owned);
    let limit = usize::try_from(max_bytes).unwrap_or(usize::MAX);
    let mut body = output.body;
    let mut bytes = Vec::with_capacity(limit.min(1 << 20));
    // A server that ignores Range must not make us read the whole object.
    while bytes.len() < limit {
        match body.next().await {
            Some(Ok(data)) => {
                let take = (limit - bytes.len()).min(data.len());
                bytes.extend_from_slice(&data[..take]);
            }
            Some(Err(e)) => {
                return Err(ToolError {
                    code: ErrorCode::UpstreamError,
                    message: format!("reading {target} was interrupted: {e}"),
                    retryable: true,
                });
            }
            None => break,
        }
    }
    Ok(Chunk {
        bytes,
        size,
        content_type,
    })
}

/// Decodes `bytes` read at `offset` of an object of `size` bytes. Returns the text,
/// how many leading bytes were skipped (the middle of a character) and how many
/// bytes the text covers.
pub fn decode_text(
    bytes: &[u8],
    offset: u64,
    size: u64,
    encoding: &str,
) -> Result<(String, usize, usize), ToolError> {
    let binary = || {
        ToolError::new(
            ErrorCode::NotSupported,
            format!(
                "the object is binary, not {encoding} text; use bucket_object_fetch to get its bytes"
            ),
        )
    };
    if bytes.contains(&0) {
        return Err(binary());
    }
    let at_end = offset + bytes.len() as u64 >= size;
    match encoding {
        "utf-8" => {
            // Skip the tail of a character cut by the offset.
            let skip = if offset > 0 {
                bytes
                    .iter()
                    .take(3)
                    .take_while(|b| (**b & 0xC0) == 0x80)
                    .count()
            } else {
                0
            };
            let body = &bytes[skip..];
            match std::str::from_utf8(body) {
                Ok(text) => Ok((text.to_owned(), skip, body.len())),
                // A character cut by max_bytes: stop before it.
                Err(e) if e.error_len().is_none() && !at_end => {
                    let valid = e.valid_up_to();
                    let text = std::str::from_utf8(&body[..valid]).map_err(|_| binary())?;
                    Ok((text.to_owned(), skip, valid))
                }
                Err(_) => Err(binary()),
            }
        }
        "latin-1" => Ok((
            bytes.iter().map(|b| char::from(*b)).collect(),
            0,
            bytes.len(),
        )),
        "ascii" => {
            if bytes.iter().any(|b| !b.is_ascii()) {
                return Err(binary());
            }
            Ok((
                bytes.iter().map(|b| char::from(*b)).collect(),
                0,
                bytes.len(),
            ))
        }
        other => Err(ToolError::invalid(format!(
            "unsupported encoding {other:?}; use utf-8, latin-1 or ascii"
        ))),
    }
}

fn normalize_encoding(name: Option<&str>) -> String {
    let name = name
        .unwrap_or("utf-8")
        .trim()
        .to_ascii_lowercase()
        .replace('_', "-");
    match name.as_str() {
        "utf8" | "utf-8" => "utf-8".to_owned(),
        "latin1" | "latin-1" | "iso-8859-1" | "iso8859-1" => "latin-1".to_owned(),
        "ascii" | "us-ascii" => "ascii".to_owned(),
        _ => name,
    }
}

fn check_max_bytes(value: Option<u64>, default: u64) -> Result<u64, ToolError> {
    match value.unwrap_or(default) {
        0 => Err(ToolError::invalid("`max_bytes` must be at least 1")),
        n if n > MAX_READ_BYTES => Err(ToolError::new(
            ErrorCode::TooLarge,
            format!(
                "`max_bytes` is at most {MAX_READ_BYTES} (16 MiB); read in pieces with `offset`"
            ),
        )),
        n => Ok(n),
    }
}

async fn list(s3: &aws_sdk_s3::Client, p: ListParams) -> Result<Value, ToolError> {
    let bucket =
        parse_bucket(&p.bucket).map_err(|e| ToolError::invalid(format!("`bucket`: {e}")))?;
    let max_keys = p.max_keys.unwrap_or(100);
    if !(1..=1000).contains(&max_keys) {
        return Err(ToolError::invalid(format!(
            "`max_keys` must be from 1 to 1000, not {max_keys}"
        )));
    }
    let prefix = p.prefix.unwrap_or_default();
    let output = s3
        .list_objects_v2()
        .bucket(&bucket)
        .prefix(&prefix)
        .set_delimiter(p.delimiter.filter(|d| !d.is_empty()))
        .max_keys(i32::try_from(max_keys).unwrap_or(100))
        .set_continuation_token(p.continuation_token.filter(|t| !t.is_empty()))
        .send()
        .await
        .map_err(|e| s3_error("ListObjectsV2", &format!("s3://{bucket}/{prefix}"), &e))?;
    let objects: Vec<Value> = output
        .contents()
        .iter()
        .map(|o| {
            json!({
                "key": o.key(),
                "size": o.size(),
                "last_modified": date(o.last_modified()),
                "etag": o.e_tag(),
                "storage_class": o.storage_class().map(|s| s.as_str()),
            })
        })
        .collect();
    let common_prefixes: Vec<&str> = output
        .common_prefixes()
        .iter()
        .filter_map(|c| c.prefix())
        .collect();
    Ok(json!({
        "bucket": bucket,
        "prefix": prefix,
        "objects": objects,
        "common_prefixes": common_prefixes,
        "key_count": objects.len() + common_prefixes.len(),
        "is_truncated": output.is_truncated().unwrap_or(false),
        "next_continuation_token": output.next_continuation_token(),
    }))
}

async fn info(s3: &aws_sdk_s3::Client, p: ObjectParams) -> Result<Value, ToolError> {
    let uri = object_uri(&p.s3_uri)?;
    let target = s3_uri_of(&uri.bucket, &uri.key, uri.version_id.as_deref());
    let head = s3
        .head_object()
        .bucket(&uri.bucket)
        .key(&uri.key)
        .set_version_id(uri.version_id.clone())
        .send()
        .await
        .map_err(|e| s3_error("HeadObject", &target, &e))?;
    let metadata: Map<String, Value> = head
        .metadata()
        .map(|m| {
            let mut pairs: Vec<_> = m.iter().collect();
            pairs.sort();
            pairs
                .into_iter()
                .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                .collect()
        })
        .unwrap_or_default();
    Ok(json!({
        "bucket": uri.bucket,
        "key": uri.key,
        "size": head.content_length(),
        "content_type": head.content_type(),
        "last_modified": date(head.last_modified()),
        "etag": head.e_tag(),
        "version_id": head.version_id(),
        "metadata": metadata,
        "storage_class": head.storage_class().map(|s| s.as_str()),
        "content_encoding": head.content_encoding(),
        "cache_control": head.cache_control(),
    }))
}

async fn text(s3: &aws_sdk_s3::Client, p: TextParams) -> Result<Value, ToolError> {
    let uri = object_uri(&p.s3_uri)?;
    let max_bytes = check_max_bytes(p.max_bytes, 65_536)?;
    let encoding = normalize_encoding(p.encoding.as_deref());
    if !matches!(encoding.as_str(), "utf-8" | "latin-1" | "ascii") {
        return Err(ToolError::invalid(format!(
            "unsupported encoding {encoding:?}; use utf-8, latin-1 or ascii"
        )));
    }
    let offset = p.offset.unwrap_or(0);
    let chunk = read_range(s3, &uri, offset, max_bytes).await?;
    let (text, skipped, covered) = decode_text(&chunk.bytes, offset, chunk.size, &encoding)?;
    let start = offset + skipped as u64;
    let bytes_read = covered as u64;
    Ok(json!({
        "bucket": uri.bucket,
        "key": uri.key,
        "text": text,
        "encoding": encoding,
        "offset": start,
        "bytes_read": bytes_read,
        "next_offset": start + bytes_read,
        "size": chunk.size,
        "truncated": start + bytes_read < chunk.size,
        "content_type": chunk.content_type,
    }))
}

async fn fetch(s3: &aws_sdk_s3::Client, p: FetchParams) -> Result<(Value, String), ToolError> {
    let uri = object_uri(&p.s3_uri)?;
    let max_bytes = check_max_bytes(p.max_bytes, 1024 * 1024)?;
    let chunk = read_range(s3, &uri, 0, max_bytes).await?;
    let bytes_read = chunk.bytes.len() as u64;
    let encoded = STANDARD.encode(&chunk.bytes);
    let value = json!({
        "bucket": uri.bucket,
        "key": uri.key,
        "content_type": chunk.content_type.as_deref().unwrap_or("application/octet-stream"),
        "size": chunk.size,
        "bytes_read": bytes_read,
        "truncated": bytes_read < chunk.size,
        "base64": encoded,
    });
    Ok((
        value,
        s3_uri_of(&uri.bucket, &uri.key, uri.version_id.as_deref()),
    ))
}

async fn link(session: &AwsSession, p: LinkParams) -> Result<Value, ToolError> {
    let uri = object_uri(&p.s3_uri)?;
    let requested = p.expiration.unwrap_or(3600);
    if !(1..=MAX_LINK_SECONDS).contains(&requested) {
        return Err(ToolError::invalid(format!(
            "`expiration` must be from 1 to {MAX_LINK_SECONDS} seconds (7 days), not {requested}"
        )));
    }
    let now = now_unix();
    let credentials_left = session
        .credentials
        .expires_at
        .map(|exp| u64::try_from(exp - now).unwrap_or(0));
    let expires_in = match credentials_left {
        Some(0) => {
            return Err(ToolError {
                code: ErrorCode::UpstreamError,
                message: "the AWS credentials that would sign the link have expired; retry to get fresh ones".to_owned(),
                retryable: true,
            });
        }
        Some(left) => requested.min(left),
        None => requested,
    };
    let presign = PresigningConfig::expires_in(Duration::from_secs(expires_in))
        .map_err(|e| ToolError::invalid(format!("`expiration`: {e}")))?;
    let target = s3_uri_of(&uri.bucket, &uri.key, uri.version_id.as_deref());
    let request = session
        .s3
        .get_object()
        .bucket(&uri.bucket)
        .key(&uri.key)
        .set_version_id(uri.version_id.clone())
        .presigned(presign)
        .await
        .map_err(|e| s3_error("GetObject (presign)", &target, &e))?;
    let expires_in_i64 = i64::try_from(expires_in).unwrap_or(i64::MAX);
    Ok(json!({
        "bucket": uri.bucket,
        "key": uri.key,
        "url": request.uri(),
        "expires_at": rfc3339(now + expires_in_i64),
        "expires_in": expires_in,
        "requested_expires_in": requested,
        "capped_by_credentials": expires_in < requested,
    }))
}

async fn put_one(s3: &aws_sdk_s3::Client, bucket: &str, item: PutItem) -> Value {
    let key = item.key.clone();
    let fail = |code: ErrorCode, message: String, retryable: bool| json!({"key": key, "ok": false, "error": {"code": code.as_str(), "message": message, "retryable": retryable}});
    if item.key.is_empty() {
        return fail(
            ErrorCode::InvalidArgument,
            "the key is empty".to_owned(),
            false,
        );
    }
    let (bytes, default_type) = match (item.text, item.base64) {
        (Some(text), None) => (text.into_bytes(), "text/plain; charset=utf-8"),
        (None, Some(b64)) => match STANDARD.decode(b64.trim()) {
            Ok(bytes) => (bytes, "application/octet-stream"),
            Err(e) => {
                return fail(
                    ErrorCode::InvalidArgument,
                    format!("`base64` is not standard base64: {e}"),
                    false,
                );
            }
        },
        _ => {
            return fail(
                ErrorCode::InvalidArgument,
                "give exactly one of `text` and `base64`".to_owned(),
                false,
            );
        }
    };
    let size = bytes.len();
    let answer = s3
        .put_object()
        .bucket(bucket)
        .key(&item.key)
        .body(ByteStream::from(bytes))
        .content_type(item.content_type.as_deref().unwrap_or(default_type))
        .set_metadata(item.metadata)
        .send()
        .await;
    match answer {
        Ok(out) => json!({
            "key": item.key,
            "ok": true,
            "size": size,
            "etag": out.e_tag(),
            "version_id": out.version_id(),
        }),
        Err(e) => {
            let error = s3_error("PutObject", &s3_uri_of(bucket, &item.key, None), &e);
            fail(error.code, error.message, error.retryable)
        }
    }
}

async fn put(s3: &aws_sdk_s3::Client, p: PutParams) -> Result<Value, ToolError> {
    let bucket =
        parse_bucket(&p.bucket).map_err(|e| ToolError::invalid(format!("`bucket`: {e}")))?;
    if p.items.is_empty() || p.items.len() > 1000 {
        return Err(ToolError::invalid(format!(
            "`items` must hold 1 to 1000 objects, not {}",
            p.items.len()
        )));
    }
    let results: Vec<Value> = futures::stream::iter(p.items)
        .map(|item| put_one(s3, &bucket, item))
        .buffered(PUT_CONCURRENCY)
        .collect()
        .await;
    let written = results.iter().filter(|r| r["ok"] == true).count();
    Ok(json!({
        "bucket": bucket,
        "results": results,
        "written": written,
        "failed": results.len() - written,
    }))
}

#[tool_router(router = bucket_tools, vis = "pub(crate)")]
impl QuiltServer {
    #[tool(
        name = "bucket_list",
        description = "List the S3 buckets the Quilt token grants, each with the S3 permissions \
            the token carries. Answers from the token alone, without calling AWS.",
        annotations(
            title = "List granted buckets",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn bucket_list(&self, Extension(ctx): Extension<Arc<AuthContext>>) -> CallToolResult {
        super::success(bucket_list(&ctx))
    }

    #[tool(
        name = "bucket_objects_list",
        description = "List objects in an S3 bucket the token grants: keys with size, last \
            modified time, ETag and storage class. Use `prefix` to narrow down, `delimiter: \"/\"` \
            to browse folder by folder (sub-folders come back in `common_prefixes`), and \
            `continuation_token` to page through large listings.",
        annotations(
            title = "List objects",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn bucket_objects_list(
        &self,
        Extension(aws): Extension<Arc<AwsSession>>,
        Parameters(p): Parameters<ListParams>,
    ) -> CallToolResult {
        finish(list(&aws.s3, p).await)
    }

    #[tool(
        name = "bucket_object_info",
        description = "Describe one S3 object without downloading it: size, content type, last \
            modified time, ETag, version id and user metadata.",
        annotations(
            title = "Object metadata",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn bucket_object_info(
        &self,
        Extension(aws): Extension<Arc<AwsSession>>,
        Parameters(p): Parameters<ObjectParams>,
    ) -> CallToolResult {
        finish(info(&aws.s3, p).await)
    }

    #[tool(
        name = "bucket_object_text",
        description = "Read part of a text object (CSV, JSON, Markdown, code, logs…) as text. \
            Downloads at most `max_bytes` from `offset`, never cuts a character in half, and \
            says whether more remains (`truncated`, `next_offset`). Binary objects are refused: \
            use bucket_object_fetch for those.",
        annotations(
            title = "Read object text",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn bucket_object_text(
        &self,
        Extension(aws): Extension<Arc<AwsSession>>,
        Parameters(p): Parameters<TextParams>,
    ) -> CallToolResult {
        finish(text(&aws.s3, p).await)
    }

    #[tool(
        name = "bucket_object_fetch",
        description = "Fetch an object's bytes (up to `max_bytes`, default 1 MiB) as base64 with \
            its content type, also as an embedded MCP resource. For images, Parquet and other \
            binary data; for text prefer bucket_object_text.",
        annotations(
            title = "Fetch object bytes",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn bucket_object_fetch(
        &self,
        Extension(aws): Extension<Arc<AwsSession>>,
        Parameters(p): Parameters<FetchParams>,
    ) -> CallToolResult {
        match fetch(&aws.s3, p).await {
            Ok((value, uri)) => {
                let summary = format!(
                    "{} bytes of {} ({}){}",
                    value["bytes_read"],
                    uri,
                    value["content_type"].as_str().unwrap_or(""),
                    if value["truncated"] == true {
                        ", truncated"
                    } else {
                        ""
                    }
                );
                let resource = ResourceContents::blob(value["base64"].as_str().unwrap_or(""), uri)
                    .with_mime_type(
                        value["content_type"]
                            .as_str()
                            .unwrap_or("application/octet-stream"),
                    );
                let mut result = CallToolResult::success(vec![
                    ContentBlock::text(summary),
                    ContentBlock::resource(resource),
                ]);
                result.structured_content = Some(value);
                result
            }
            Err(error) => error.into_result(),
        }
    }

    #[tool(
        name = "bucket_object_link",
        description = "Make a presigned HTTPS URL that downloads the object without credentials, \
            valid for `expiration` seconds (default 3600). The link never outlives the AWS \
            credentials that sign it: `expires_in` says how long it really lasts. Anyone with \
            the URL can download the object until then.",
        annotations(
            title = "Presigned download link",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn bucket_object_link(
        &self,
        Extension(aws): Extension<Arc<AwsSession>>,
        Parameters(p): Parameters<LinkParams>,
    ) -> CallToolResult {
        finish(link(&aws, p).await)
    }

    #[tool(
        name = "bucket_objects_put",
        description = "Write objects to an S3 bucket the token grants (level write or admin): \
            each item is text or base64 with an optional content type and metadata. An existing \
            object at the same key is overwritten (in a versioned bucket the old version is kept). \
            Each item gets its own result; one failure does not stop the others.",
        annotations(
            title = "Write objects",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn bucket_objects_put(
        &self,
        Extension(aws): Extension<Arc<AwsSession>>,
        Parameters(p): Parameters<PutParams>,
    ) -> CallToolResult {
        finish(put(&aws.s3, p).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_cuts_never_split_a_character() {
        let text = "héllo wörld €";
        let bytes = text.as_bytes();
        // Cut in the middle of "é" (2 bytes at 1..3).
        let (t, skip, covered) = decode_text(&bytes[..2], 0, bytes.len() as u64, "utf-8").unwrap();
        assert_eq!((t.as_str(), skip, covered), ("h", 0, 1));
        // Start in the middle of "é": the continuation byte is skipped.
        let (t, skip, covered) = decode_text(&bytes[2..7], 2, bytes.len() as u64, "utf-8").unwrap();
        assert_eq!((t.as_str(), skip, covered), ("llo ", 1, 4));
        // The euro sign (3 bytes) cut after 1 byte at the end of a window.
        let euro_at = text.find('€').unwrap();
        let (t, _, covered) =
            decode_text(&bytes[..euro_at + 1], 0, bytes.len() as u64, "utf-8").unwrap();
        assert_eq!((t.as_str(), covered), ("héllo wörld ", euro_at));
        // The whole text.
        assert_eq!(
            decode_text(bytes, 0, bytes.len() as u64, "utf-8")
                .unwrap()
                .0,
            text
        );
    }

    #[test]
    fn binary_and_unknown_encodings_are_refused() {
        assert_eq!(
            decode_text(b"ab\0cd", 0, 5, "utf-8").unwrap_err().code,
            ErrorCode::NotSupported
        );
        assert_eq!(
            decode_text(&[0xff, 0xfe, 0x41], 0, 3, "utf-8")
                .unwrap_err()
                .code,
            ErrorCode::NotSupported
        );
        // An incomplete character at the very end of the object is not text either.
        assert_eq!(
            decode_text(&[0x41, 0xe2, 0x82], 0, 3, "utf-8")
                .unwrap_err()
                .code,
            ErrorCode::NotSupported
        );
        assert_eq!(
            decode_text(b"abc", 0, 3, "ebcdic").unwrap_err().code,
            ErrorCode::InvalidArgument
        );
        assert_eq!(decode_text(&[0xe9], 0, 1, "latin-1").unwrap().0, "é");
        assert_eq!(
            decode_text(&[0xe9], 0, 1, "ascii").unwrap_err().code,
            ErrorCode::NotSupported
        );
        assert_eq!(normalize_encoding(Some("UTF8")), "utf-8");
        assert_eq!(normalize_encoding(Some("ISO_8859-1")), "latin-1");
    }
}
