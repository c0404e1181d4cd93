//! The bucket tools: `bucket_list` (from the token alone) and the S3 tools, which run
//! with the caller's [`crate::aws::AwsSession`] once the gate has let the call through.
//! Each tool is its parameters, its result and its operation.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures::StreamExt as _;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use super::package_uri::{PackageUri, physical_object};
use super::search;
use super::uri::{
    Bounded, Bucket, ContinuationToken, LinkUri, ObjectUri, Offset, S3Name, S3Uri, TextEncoding,
    checked_params,
};
use super::{
    Access, Blob, Call, ErrorCode, GET_OBJECT, GET_OBJECT_VERSION, LIST_BUCKET, NoParams,
    PUT_OBJECT, Params, Tool, ToolError, ToolInfo, Toolset,
};
use crate::error::ArgumentError;
use crate::s3::{ListRequest, Put, S3, S3ErrorKind, WriteCondition};
use crate::time::{now_unix, rfc3339};

/// Largest `max_bytes` for text and fetch.
pub(crate) const MAX_READ_BYTES: u64 = 16 * 1024 * 1024;
/// Largest `expiration` for presigned links (7 days, SigV4's limit).
pub(crate) const MAX_LINK_SECONDS: u64 = 604_800;
/// Largest `max_keys` of `bucket_objects_list` (S3's own page size).
pub(crate) const MAX_LIST_KEYS: u64 = 1000;
/// Most objects one `bucket_objects_put` call writes.
const MAX_PUT_ITEMS: usize = 1000;
/// Items written at once by `bucket_objects_put`.
pub(crate) const PUT_CONCURRENCY: usize = 8;

// ---------------------------------------------------------------------------------
// bucket_list

/// `bucket_list`.
pub(crate) struct BucketList;

/// One granted bucket.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct GrantedBucket {
    /// The bucket name (`*`: every bucket).
    name: String,
    /// The S3 actions the token grants (Quilt grants them across all of its buckets).
    permissions: Vec<String>,
}

/// The result of `bucket_list`.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct BucketListOutput {
    /// The buckets, in the token's order, without repeats.
    buckets: Vec<GrantedBucket>,
    /// How many.
    count: usize,
    /// Whether the token grants every bucket (`*`).
    all_buckets: bool,
    /// The token's level.
    level: String,
}

impl Tool for BucketList {
    const INFO: ToolInfo = ToolInfo {
        name: "bucket_list",
        toolset: Toolset::Buckets,
        title: "List granted buckets",
        description: "List the S3 buckets the Quilt token grants, each with the S3 permissions \
            the token carries. Answers from the token alone, without calling AWS.",
        read_only: true,
        destructive: false,
        idempotent: true,
        open_world: false,
        registry: false,
    };
    type Params = NoParams;
    type Output = BucketListOutput;

    fn example() -> serde_json::Value {
        serde_json::json!({})
    }

    async fn run(call: Call<'_>, _params: NoParams) -> Result<BucketListOutput, ToolError> {
        let c = &call.ctx.claims;
        let mut buckets: Vec<GrantedBucket> = Vec::new();
        for name in &c.buckets {
            if !buckets.iter().any(|b| &b.name == name) {
                buckets.push(GrantedBucket {
                    name: name.clone(),
                    permissions: c.permissions.clone(),
                });
            }
        }
        Ok(BucketListOutput {
            count: buckets.len(),
            buckets,
            all_buckets: c.buckets.iter().any(|b| b == "*"),
            level: c.level.to_string(),
        })
    }
}

// ---------------------------------------------------------------------------------
// bucket_objects_list

/// `bucket_objects_list`.
pub(crate) struct BucketObjectsList;

/// `bucket_objects_list` parameters.
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct ListParams {
    /// The bucket: a name such as `lab-data`, or `s3://lab-data`.
    bucket: Bucket,
    /// Only keys that start with this prefix, such as `runs/2026/` (at most 1024 bytes).
    #[serde(default)]
    prefix: Option<S3Name>,
    /// Group keys at this delimiter (usually `/`) to browse like folders: the groups
    /// come back in `common_prefixes`.
    #[serde(default)]
    delimiter: Option<S3Name>,
    /// How many keys to return, 1 to 1000 (default 100).
    #[serde(default)]
    max_keys: Option<Bounded<1, MAX_LIST_KEYS>>,
    /// `next_continuation_token` of the previous page, to get the next one.
    #[serde(default)]
    continuation_token: Option<ContinuationToken>,
}

impl Params for ListParams {
    fn access(&self) -> Access {
        Access::needs(&[LIST_BUCKET]).bucket(self.bucket.name())
    }
}

/// One listed object.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct ListedObject {
    /// The key.
    key: Option<String>,
    /// The object's URI, `s3://bucket/key` with the key percent-encoded where needed:
    /// pass it to the other object tools as it is.
    s3_uri: Option<String>,
    /// Its size in bytes.
    size: Option<i64>,
    /// RFC 3339.
    last_modified: Option<String>,
    /// The ETag.
    etag: Option<String>,
    /// The storage class.
    storage_class: Option<String>,
    /// The object's page in the Quilt catalog, when the server knows the catalog
    /// (`QUILT_CATALOG_URL`).
    #[serde(skip_serializing_if = "Option::is_none")]
    catalog_url: Option<String>,
}

/// The result of `bucket_objects_list`.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct ListOutput {
    /// The bucket.
    bucket: String,
    /// The prefix listed.
    prefix: String,
    /// The objects of this page.
    objects: Vec<ListedObject>,
    /// The groups found at the delimiter.
    common_prefixes: Vec<String>,
    /// Objects plus groups on this page.
    key_count: usize,
    /// Whether more pages follow.
    is_truncated: bool,
    /// Pass as `continuation_token` for the next page.
    next_continuation_token: Option<String>,
}

impl Tool for BucketObjectsList {
    const INFO: ToolInfo = ToolInfo::reads(
        Toolset::Buckets,
        "bucket_objects_list",
        "List objects",
        "List objects in an S3 bucket the token grants: keys with size, last \
            modified time, ETag and storage class. Use `prefix` to narrow down, `delimiter: \"/\"` \
            to browse folder by folder (sub-folders come back in `common_prefixes`), and \
            `continuation_token` to page through large listings.",
    );
    type Params = ListParams;
    type Output = ListOutput;

    fn example() -> serde_json::Value {
        serde_json::json!({"bucket": "s3://b"})
    }

    async fn run(call: Call<'_>, p: ListParams) -> Result<ListOutput, ToolError> {
        let s3 = S3::new(call.s3()?);
        let bucket = p.bucket.name();
        let max_keys = p.max_keys.map_or(100, Bounded::get);
        let prefix = p.prefix.unwrap_or_default().into_string();
        let page = s3
            .list_page(&ListRequest {
                delimiter: p.delimiter.map(S3Name::into_string),
                max_keys: Some(i32::try_from(max_keys).unwrap_or(100)),
                continuation_token: p.continuation_token.map(ContinuationToken::into_string),
                ..ListRequest::prefix(bucket, &prefix)
            })
            .await?;
        let objects: Vec<ListedObject> = page
            .objects
            .into_iter()
            .map(|o| ListedObject {
                s3_uri: Some(S3Uri::new(bucket, &o.key).to_string()),
                catalog_url: search::object_link(call.catalog_url, bucket, &o.key),
                key: Some(o.key),
                size: o.size,
                last_modified: o.last_modified.and_then(rfc3339),
                etag: o.etag,
                storage_class: o.storage_class,
            })
            .collect();
        let common_prefixes = page.common_prefixes;
        Ok(ListOutput {
            bucket: bucket.to_owned(),
            prefix,
            key_count: objects.len() + common_prefixes.len(),
            objects,
            common_prefixes,
            is_truncated: page.is_truncated,
            next_continuation_token: page.next_continuation_token,
        })
    }
}

// ---------------------------------------------------------------------------------
// The tools that read one object.

/// Reading an object: `s3:GetObject`, and `s3:GetObjectVersion` for a version.
fn object_access(uri: &S3Uri) -> Access {
    let mut access = Access::needs(&[GET_OBJECT]).bucket(&uri.bucket);
    if uri.version_id.is_some() {
        access.also_needs(GET_OBJECT_VERSION);
    }
    access
}

/// The object a read names: by `s3_uri`, or as a file of a package by a `uri` with
/// a `path`.
#[derive(Debug)]
pub(crate) enum Target<U> {
    /// `s3_uri`.
    Object(U),
    /// `uri`: the entry's physical object, found (and authorized) when the call runs.
    Entry(PackageUri),
}

impl<U: std::ops::Deref<Target = S3Uri>> Target<U> {
    /// Exactly one of `s3_uri` and `uri`; a `uri` must name a file.
    fn of(s3_uri: Option<U>, uri: Option<PackageUri>) -> Result<Target<U>, ArgumentError> {
        match (s3_uri, uri) {
            (Some(object), None) => Ok(Target::Object(object)),
            (None, Some(uri)) if uri.path.is_some() => Ok(Target::Entry(uri)),
            (None, Some(_)) => Err(ArgumentError::new(
                "`uri` names a package, not a file in it: add `&path=` with the file's logical key (quilt+s3://BUCKET#package=NS/NAME&path=FILE)",
            )),
            (Some(_), Some(_)) => Err(ArgumentError::new("give `s3_uri` or `uri`, not both")),
            (None, None) => Err(ArgumentError::new(
                "give `s3_uri` (s3://bucket/key) or `uri` (quilt+s3://BUCKET#package=NS/NAME&path=FILE)",
            )),
        }
    }

    /// What the gate authorizes: the object's bucket, or the registry whose manifest
    /// names it (the object's bucket is authorized once it is known).
    fn access(&self) -> Access {
        match self {
            Target::Object(uri) => object_access(uri),
            Target::Entry(uri) => uri.access(),
        }
    }

    /// The object to read.
    async fn object(&self, call: &Call<'_>, tool: &ToolInfo) -> Result<S3Uri, ToolError> {
        match self {
            Target::Object(uri) => Ok(S3Uri::clone(uri)),
            Target::Entry(uri) => physical_object(call, tool, uri).await,
        }
    }
}

/// `bucket_object_info` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct ObjectArgs {
    /// The object: `s3://bucket/key`, the key percent-encoded where needed, optionally
    /// with `?versionId=…` for a specific version (or give `uri`).
    #[serde(default)]
    s3_uri: Option<ObjectUri>,
    /// In place of `s3_uri`, a file of a package as the catalog names it:
    /// `quilt+s3://BUCKET#package=NS/NAME[@TOP_HASH]&path=FILE`; its physical object is read.
    #[serde(default)]
    uri: Option<PackageUri>,
}

/// Parameters of `bucket_object_info`.
#[derive(Debug, Deserialize)]
#[serde(try_from = "ObjectArgs")]
pub(crate) struct ObjectParams {
    target: Target<ObjectUri>,
}
checked_params!(ObjectParams, ObjectArgs);

impl TryFrom<ObjectArgs> for ObjectParams {
    type Error = ArgumentError;
    fn try_from(args: ObjectArgs) -> Result<ObjectParams, ArgumentError> {
        Ok(ObjectParams {
            target: Target::of(args.s3_uri, args.uri)?,
        })
    }
}

impl Params for ObjectParams {
    fn access(&self) -> Access {
        self.target.access()
    }
}

/// `bucket_object_info`.
pub(crate) struct BucketObjectInfo;

/// The result of `bucket_object_info`.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct InfoOutput {
    /// The bucket.
    bucket: String,
    /// The key.
    key: String,
    /// Size in bytes.
    size: Option<i64>,
    /// The content type.
    content_type: Option<String>,
    /// RFC 3339.
    last_modified: Option<String>,
    /// The ETag.
    etag: Option<String>,
    /// The version id, in a versioned bucket.
    version_id: Option<String>,
    /// User metadata (`x-amz-meta-*`).
    metadata: BTreeMap<String, String>,
    /// The storage class.
    storage_class: Option<String>,
    /// The content encoding.
    content_encoding: Option<String>,
    /// The cache control header.
    cache_control: Option<String>,
    /// The object's page in the Quilt catalog, when the server knows the catalog
    /// (`QUILT_CATALOG_URL`).
    #[serde(skip_serializing_if = "Option::is_none")]
    catalog_url: Option<String>,
}

impl Tool for BucketObjectInfo {
    const INFO: ToolInfo = ToolInfo::reads(
        Toolset::Buckets,
        "bucket_object_info",
        "Object metadata",
        "Describe one S3 object without downloading it: size, content type, last \
            modified time, ETag, version id and user metadata.",
    );
    type Params = ObjectParams;
    type Output = InfoOutput;

    fn example() -> serde_json::Value {
        serde_json::json!({"s3_uri": "s3://b/k.txt"})
    }

    async fn run(call: Call<'_>, p: ObjectParams) -> Result<InfoOutput, ToolError> {
        let uri = &p.target.object(&call, &Self::INFO).await?;
        let head = S3::new(call.s3()?).head(uri).await?;
        Ok(InfoOutput {
            catalog_url: search::object_link(call.catalog_url, &uri.bucket, &uri.key),
            bucket: uri.bucket.clone(),
            key: uri.key.clone(),
            size: head.size,
            content_type: head.content_type,
            last_modified: head.last_modified.and_then(rfc3339),
            etag: head.etag,
            version_id: head.version_id,
            metadata: head.metadata.into_iter().collect(),
            storage_class: head.storage_class,
            content_encoding: head.content_encoding,
            cache_control: head.cache_control,
        })
    }
}

/// `bucket_object_text`.
pub(crate) struct BucketObjectText;

/// `bucket_object_text` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct TextArgs {
    /// The object: `s3://bucket/key`, optionally with `?versionId=…` (or give `uri`).
    #[serde(default)]
    s3_uri: Option<ObjectUri>,
    /// In place of `s3_uri`, a file of a package as the catalog names it:
    /// `quilt+s3://BUCKET#package=NS/NAME[@TOP_HASH]&path=FILE`; its physical object is read.
    #[serde(default)]
    uri: Option<PackageUri>,
    /// Most bytes to read (default 65536, at most 16 MiB). Only this much is downloaded.
    #[serde(default)]
    max_bytes: Option<MaxBytes>,
    /// Byte offset to start reading at (default 0); use `offset + bytes_read` of the
    /// previous call to continue.
    #[serde(default)]
    offset: Option<Offset>,
    /// Text encoding: `utf-8` (default), `latin-1` or `ascii`.
    #[serde(default)]
    encoding: Option<TextEncoding>,
}

/// `bucket_object_text` parameters: the arguments, with the object they name.
#[derive(Debug, Deserialize)]
#[serde(try_from = "TextArgs")]
pub(crate) struct TextParams {
    target: Target<ObjectUri>,
    args: TextArgs,
}
checked_params!(TextParams, TextArgs);

impl TryFrom<TextArgs> for TextParams {
    type Error = ArgumentError;
    fn try_from(mut args: TextArgs) -> Result<TextParams, ArgumentError> {
        Ok(TextParams {
            target: Target::of(args.s3_uri.take(), args.uri.take())?,
            args,
        })
    }
}

impl Params for TextParams {
    fn access(&self) -> Access {
        self.target.access()
    }
}

/// The result of `bucket_object_text`.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct TextOutput {
    /// The bucket.
    bucket: String,
    /// The key.
    key: String,
    /// The text read.
    text: String,
    /// Its encoding.
    encoding: String,
    /// The byte offset the text starts at.
    offset: u64,
    /// How many bytes of the object the text covers.
    bytes_read: u64,
    /// Where to continue reading.
    next_offset: u64,
    /// The object's size.
    size: u64,
    /// Whether bytes remain after the text.
    truncated: bool,
    /// The content type.
    content_type: Option<String>,
    /// The object's page in the Quilt catalog, when the server knows the catalog
    /// (`QUILT_CATALOG_URL`).
    #[serde(skip_serializing_if = "Option::is_none")]
    catalog_url: Option<String>,
}

impl Tool for BucketObjectText {
    const INFO: ToolInfo = ToolInfo::reads(
        Toolset::Buckets,
        "bucket_object_text",
        "Read object text",
        "Read part of a text object (CSV, JSON, Markdown, code, logs…) as text. \
            Downloads at most `max_bytes` from `offset`, never cuts a character in half, and \
            says whether more remains (`truncated`, `next_offset`). Binary objects are refused: \
            use bucket_object_fetch for those. A file of a package can be named by its \
            `quilt+s3://…&path=FILE` URI as `uri` instead of `s3_uri`.",
    );
    type Params = TextParams;
    type Output = TextOutput;

    fn example() -> serde_json::Value {
        serde_json::json!({"s3_uri": "s3://b/k.txt"})
    }

    async fn run(
        call: Call<'_>,
        TextParams { target, args: p }: TextParams,
    ) -> Result<TextOutput, ToolError> {
        let uri = &target.object(&call, &Self::INFO).await?;
        let max_bytes = p.max_bytes.map_or(65_536, Bounded::get);
        let encoding = p.encoding.unwrap_or_default();
        let offset = p.offset.unwrap_or_default().get();
        let chunk = S3::new(call.s3()?)
            .read_range(uri, offset, max_bytes)
            .await?;
        let (text, skipped, covered) = decode_text(&chunk.bytes, offset, chunk.size, encoding)?;
        let start = offset + skipped as u64;
        let bytes_read = covered as u64;
        Ok(TextOutput {
            bucket: uri.bucket.clone(),
            key: uri.key.clone(),
            text,
            encoding: encoding.as_str().to_owned(),
            offset: start,
            bytes_read,
            next_offset: start + bytes_read,
            size: chunk.size,
            truncated: start + bytes_read < chunk.size,
            content_type: chunk.content_type,
            catalog_url: search::object_link(call.catalog_url, &uri.bucket, &uri.key),
        })
    }
}

/// `bucket_object_fetch`.
pub(crate) struct BucketObjectFetch;

/// `bucket_object_fetch` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct FetchArgs {
    /// The object: `s3://bucket/key`, optionally with `?versionId=…` (or give `uri`).
    #[serde(default)]
    s3_uri: Option<ObjectUri>,
    /// In place of `s3_uri`, a file of a package as the catalog names it:
    /// `quilt+s3://BUCKET#package=NS/NAME[@TOP_HASH]&path=FILE`; its physical object is read.
    #[serde(default)]
    uri: Option<PackageUri>,
    /// Most bytes to return (default 1 MiB, at most 16 MiB). Only this much is downloaded.
    #[serde(default)]
    max_bytes: Option<MaxBytes>,
}

/// `bucket_object_fetch` parameters: the arguments, with the object they name.
#[derive(Debug, Deserialize)]
#[serde(try_from = "FetchArgs")]
pub(crate) struct FetchParams {
    target: Target<ObjectUri>,
    args: FetchArgs,
}
checked_params!(FetchParams, FetchArgs);

impl TryFrom<FetchArgs> for FetchParams {
    type Error = ArgumentError;
    fn try_from(mut args: FetchArgs) -> Result<FetchParams, ArgumentError> {
        Ok(FetchParams {
            target: Target::of(args.s3_uri.take(), args.uri.take())?,
            args,
        })
    }
}

impl Params for FetchParams {
    fn access(&self) -> Access {
        self.target.access()
    }
}

/// The result of `bucket_object_fetch`.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct FetchOutput {
    /// The bucket.
    bucket: String,
    /// The key.
    key: String,
    /// The content type.
    content_type: String,
    /// The object's size.
    size: u64,
    /// How many bytes are returned.
    bytes_read: u64,
    /// Whether the object is larger than what is returned.
    truncated: bool,
    /// The bytes, standard base64.
    base64: String,
    /// The object's page in the Quilt catalog, when the server knows the catalog
    /// (`QUILT_CATALOG_URL`).
    #[serde(skip_serializing_if = "Option::is_none")]
    catalog_url: Option<String>,
    /// The object's URI (with its version).
    #[serde(skip)]
    uri: String,
}

impl Tool for BucketObjectFetch {
    const INFO: ToolInfo = ToolInfo::reads(
        Toolset::Buckets,
        "bucket_object_fetch",
        "Fetch object bytes",
        "Fetch an object's bytes (up to `max_bytes`, default 1 MiB) as base64 with \
            its content type, also as an embedded MCP resource. For images, Parquet and other \
            binary data; for text prefer bucket_object_text.",
    );
    type Params = FetchParams;
    type Output = FetchOutput;

    fn example() -> serde_json::Value {
        serde_json::json!({"s3_uri": "s3://b/k.txt"})
    }

    async fn run(
        call: Call<'_>,
        FetchParams { target, args: p }: FetchParams,
    ) -> Result<FetchOutput, ToolError> {
        let uri = &target.object(&call, &Self::INFO).await?;
        let max_bytes = p.max_bytes.map_or(1024 * 1024, Bounded::get);
        let chunk = S3::new(call.s3()?).read_range(uri, 0, max_bytes).await?;
        let bytes_read = chunk.bytes.len() as u64;
        Ok(FetchOutput {
            bucket: uri.bucket.clone(),
            key: uri.key.clone(),
            content_type: chunk
                .content_type
                .unwrap_or_else(|| "application/octet-stream".to_owned()),
            size: chunk.size,
            bytes_read,
            truncated: bytes_read < chunk.size,
            base64: STANDARD.encode(&chunk.bytes),
            catalog_url: search::object_link(call.catalog_url, &uri.bucket, &uri.key),
            uri: uri.to_string(),
        })
    }

    fn summary(output: &FetchOutput) -> Option<String> {
        Some(format!(
            "{} bytes of {} ({}){}",
            output.bytes_read,
            output.uri,
            output.content_type,
            if output.truncated { ", truncated" } else { "" }
        ))
    }

    fn blob(output: &FetchOutput) -> Option<Blob> {
        Some(Blob {
            uri: output.uri.clone(),
            mime_type: output.content_type.clone(),
            base64: output.base64.clone(),
        })
    }
}

/// `bucket_object_link`.
pub(crate) struct BucketObjectLink;

/// `bucket_object_link` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct LinkArgs {
    /// The object: `s3://bucket/key`, optionally with `?versionId=…` (or give `uri`). A
    /// key with a `.` or `..` segment gets no link: browsers and HTTP clients would
    /// resolve it to another object.
    #[serde(default)]
    s3_uri: Option<LinkUri>,
    /// In place of `s3_uri`, a file of a package as the catalog names it:
    /// `quilt+s3://BUCKET#package=NS/NAME[@TOP_HASH]&path=FILE`; the link is to its
    /// physical object.
    #[serde(default)]
    uri: Option<PackageUri>,
    /// Seconds the link stays valid (default 3600, at most 604800). It never outlives
    /// the AWS credentials that sign it.
    #[serde(default)]
    expiration: Option<Bounded<1, MAX_LINK_SECONDS>>,
}

/// `bucket_object_link` parameters: the arguments, with the object they name.
#[derive(Debug, Deserialize)]
#[serde(try_from = "LinkArgs")]
pub(crate) struct LinkParams {
    target: Target<LinkUri>,
    args: LinkArgs,
}
checked_params!(LinkParams, LinkArgs);

impl TryFrom<LinkArgs> for LinkParams {
    type Error = ArgumentError;
    fn try_from(mut args: LinkArgs) -> Result<LinkParams, ArgumentError> {
        Ok(LinkParams {
            target: Target::of(args.s3_uri.take(), args.uri.take())?,
            args,
        })
    }
}

impl Params for LinkParams {
    fn access(&self) -> Access {
        self.target.access()
    }
}

/// The result of `bucket_object_link`.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct LinkOutput {
    /// The bucket.
    bucket: String,
    /// The key.
    key: String,
    /// The presigned HTTPS URL.
    url: String,
    /// When it stops working, RFC 3339.
    expires_at: Option<String>,
    /// Seconds it works.
    expires_in: u64,
    /// The seconds asked for.
    requested_expires_in: u64,
    /// Whether the credentials' expiry shortened it.
    capped_by_credentials: bool,
}

impl Tool for BucketObjectLink {
    const INFO: ToolInfo = ToolInfo {
        idempotent: false,
        ..ToolInfo::reads(
            Toolset::Buckets,
            "bucket_object_link",
            "Presigned download link",
            "Make a presigned HTTPS URL that downloads the object without credentials, \
            valid for `expiration` seconds (default 3600). The link never outlives the AWS \
            credentials that sign it: `expires_in` says how long it really lasts. Anyone with \
            the URL can download the object until then.",
        )
    };
    type Params = LinkParams;
    type Output = LinkOutput;

    fn example() -> serde_json::Value {
        serde_json::json!({"s3_uri": "s3://b/k.txt"})
    }

    async fn run(
        call: Call<'_>,
        LinkParams { target, args: p }: LinkParams,
    ) -> Result<LinkOutput, ToolError> {
        let session = call.session()?;
        let uri = &target.object(&call, &Self::INFO).await?;
        if uri.key_moves_in_urls() {
            return Err(ToolError::invalid(format!(
                "the key of {uri} has a `.` or `..` segment, which browsers and HTTP clients resolve to another path (even another bucket); no link is made for it"
            )));
        }
        let requested = p.expiration.map_or(3600, Bounded::get);
        let now = now_unix();
        let credentials_left = session
            .credentials
            .expires_at
            .map(|exp| u64::try_from(exp - now).unwrap_or(0));
        let expires_in = match credentials_left {
            Some(0) => {
                return Err(ToolError::retryable(
                    ErrorCode::UpstreamError,
                    "the AWS credentials that would sign the link have expired; retry to get fresh ones",
                ));
            }
            Some(left) => requested.min(left),
            None => requested,
        };
        let url = S3::new(&session.s3)
            .presign_get(uri, Duration::from_secs(expires_in))
            .await?;
        let expires_in_i64 = i64::try_from(expires_in).unwrap_or(i64::MAX);
        Ok(LinkOutput {
            bucket: uri.bucket.clone(),
            key: uri.key.clone(),
            url,
            expires_at: rfc3339(now + expires_in_i64),
            expires_in,
            requested_expires_in: requested,
            capped_by_credentials: expires_in < requested,
        })
    }
}

// ---------------------------------------------------------------------------------
// bucket_objects_put

/// `bucket_objects_put`.
pub(crate) struct BucketObjectsPut;

/// One object to write.
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct PutItem {
    /// The key to write; at most 1024 bytes, no NUL. An object already there is left
    /// as it is unless `overwrite` is true.
    key: S3Name,
    /// The content as text (UTF-8). Give either `text` or `base64`.
    #[serde(default)]
    text: Option<String>,
    /// The content as standard base64, for binary data. Give either `text` or `base64`.
    #[serde(default)]
    base64: Option<String>,
    /// Content type, such as `text/csv` (default `text/plain; charset=utf-8` for text,
    /// `application/octet-stream` for base64).
    #[serde(default)]
    content_type: Option<String>,
    /// User metadata (`x-amz-meta-*`), string keys and values.
    #[serde(default)]
    metadata: Option<HashMap<String, String>>,
}

/// `bucket_objects_put` parameters.
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct PutParams {
    /// The bucket: a name or `s3://name`.
    bucket: Bucket,
    /// The objects to write, 1 to 1000.
    #[schemars(length(min = 1, max = MAX_PUT_ITEMS))]
    #[serde(deserialize_with = "put_items")]
    items: Vec<PutItem>,
    /// Replace objects that already exist (default false: an item whose key exists is
    /// not written, and its result says `exists: true`).
    #[serde(default)]
    overwrite: bool,
}

/// `items`: 1 to [`MAX_PUT_ITEMS`] of them.
fn put_items<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<PutItem>, D::Error> {
    let items = Vec::<PutItem>::deserialize(deserializer)?;
    if items.is_empty() || items.len() > MAX_PUT_ITEMS {
        return Err(serde::de::Error::custom(ArgumentError::new(format!(
            "must hold 1 to {MAX_PUT_ITEMS} objects, not {}",
            items.len()
        ))));
    }
    Ok(items)
}

impl Params for PutParams {
    fn access(&self) -> Access {
        Access::needs(&[PUT_OBJECT]).bucket(self.bucket.name())
    }
}

/// The outcome of one item.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct PutResult {
    /// The key.
    key: String,
    /// Whether it was written.
    ok: bool,
    /// True when it was not written because an object exists at its key (and
    /// `overwrite` was not given).
    #[serde(skip_serializing_if = "Option::is_none")]
    exists: Option<bool>,
    /// Bytes written.
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<usize>,
    /// The new object's ETag.
    #[serde(skip_serializing_if = "Option::is_none")]
    etag: Option<String>,
    /// The new object's version id, in a versioned bucket.
    #[serde(skip_serializing_if = "Option::is_none")]
    version_id: Option<String>,
    /// Why it was not written.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ToolError>,
}

/// The result of `bucket_objects_put`.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct PutOutput {
    /// The bucket.
    bucket: String,
    /// One result per item, in order.
    results: Vec<PutResult>,
    /// How many were written.
    written: usize,
    /// How many were not written (those that already existed included).
    failed: usize,
    /// How many were not written because an object already existed at their key.
    existing: usize,
}

impl Tool for BucketObjectsPut {
    const INFO: ToolInfo = ToolInfo {
        name: "bucket_objects_put",
        toolset: Toolset::Buckets,
        title: "Write objects",
        description: "Write objects to an S3 bucket the token grants (level write or admin): \
            each item is text or base64 with an optional content type and metadata. An object \
            that already exists at an item's key is left as it is (the item's result says \
            `exists: true`) unless `overwrite` is true, which replaces it (in a versioned bucket \
            the old version is kept). Each item gets its own result; one failure does not stop \
            the others.",
        read_only: false,
        destructive: true,
        idempotent: true,
        open_world: true,
        registry: false,
    };
    type Params = PutParams;
    type Output = PutOutput;

    fn example() -> serde_json::Value {
        serde_json::json!({"bucket": "b", "items": [{"key": "k", "text": "t"}]})
    }

    async fn run(call: Call<'_>, p: PutParams) -> Result<PutOutput, ToolError> {
        let s3 = S3::new(call.s3()?);
        let bucket = p.bucket.name();
        let overwrite = p.overwrite;
        let results: Vec<PutResult> = futures::stream::iter(p.items)
            .map(|item| put_one(s3, bucket, item, overwrite))
            .buffered(PUT_CONCURRENCY)
            .collect()
            .await;
        let written = results.iter().filter(|r| r.ok).count();
        Ok(PutOutput {
            bucket: bucket.to_owned(),
            failed: results.len() - written,
            existing: results.iter().filter(|r| r.exists == Some(true)).count(),
            results,
            written,
        })
    }
}

/// Writes one item: only if its key is free (`If-None-Match: *`) unless `overwrite`.
async fn put_one(s3: S3<'_>, bucket: &str, item: PutItem, overwrite: bool) -> PutResult {
    let key = item.key.into_string();
    let fail = |error: ToolError| PutResult {
        key: key.clone(),
        ok: false,
        exists: None,
        size: None,
        etag: None,
        version_id: None,
        error: Some(error),
    };
    if key.is_empty() {
        return fail(ToolError::invalid("the key is empty"));
    }
    let (bytes, default_type) = match (item.text, item.base64) {
        (Some(text), None) => (text.into_bytes(), "text/plain; charset=utf-8"),
        (None, Some(b64)) => match STANDARD.decode(b64.trim()) {
            Ok(bytes) => (bytes, "application/octet-stream"),
            Err(e) => {
                return fail(ToolError::invalid(format!(
                    "`base64` is not standard base64: {e}"
                )));
            }
        },
        _ => {
            return fail(ToolError::invalid(
                "give exactly one of `text` and `base64`",
            ));
        }
    };
    let size = bytes.len();
    let put = Put {
        content_type: Some(item.content_type.as_deref().unwrap_or(default_type)),
        metadata: item.metadata,
        condition: (!overwrite).then_some(WriteCondition::Absent),
    };
    let uri = || S3Uri::new(bucket, &key).to_string();
    match s3.put(bucket, &key, bytes, put).await {
        Ok(written) => PutResult {
            size: Some(size),
            etag: written.etag,
            version_id: written.version_id,
            error: None,
            exists: None,
            ok: true,
            key,
        },
        Err(error) if !overwrite => match error.kind {
            // Someone else's object (or a concurrent write of this key) is there.
            S3ErrorKind::PreconditionFailed | S3ErrorKind::ConditionalConflict => PutResult {
                exists: Some(true),
                ..fail(ToolError::new(
                    ErrorCode::Conflict,
                    format!(
                        "{} already exists and was left as it is; pass `overwrite: true` to replace it",
                        uri()
                    ),
                ))
            },
            S3ErrorKind::NotImplemented => fail(ToolError::new(
                ErrorCode::NotSupported,
                format!(
                    "this S3 endpoint does not implement conditional writes (If-None-Match), so {} cannot be written without risking an object that is already there; pass `overwrite: true` to write it anyway",
                    uri()
                ),
            )),
            _ => fail(error.into()),
        },
        Err(error) => fail(error.into()),
    }
}

// ---------------------------------------------------------------------------------
// Reading and decoding.

/// Decodes `bytes` read at `offset` of an object of `size` bytes. Returns the text,
/// how many leading bytes were skipped (the middle of a character) and how many
/// bytes the text covers.
pub(crate) fn decode_text(
    bytes: &[u8],
    offset: u64,
    size: u64,
    encoding: TextEncoding,
) -> Result<(String, usize, usize), ToolError> {
    let binary = || {
        ToolError::new(
            ErrorCode::NotSupported,
            format!(
                "the object is binary, not {} text; use bucket_object_fetch to get its bytes",
                encoding.as_str()
            ),
        )
    };
    if bytes.contains(&0) {
        return Err(binary());
    }
    let at_end = offset + bytes.len() as u64 >= size;
    match encoding {
        TextEncoding::Utf8 => {
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
        TextEncoding::Latin1 => Ok((
            bytes.iter().map(|b| char::from(*b)).collect(),
            0,
            bytes.len(),
        )),
        TextEncoding::Ascii => {
            if bytes.iter().any(|b| !b.is_ascii()) {
                return Err(binary());
            }
            Ok((
                bytes.iter().map(|b| char::from(*b)).collect(),
                0,
                bytes.len(),
            ))
        }
    }
}

/// `max_bytes` of text and fetch: 1 to 16 MiB.
type MaxBytes = Bounded<1, MAX_READ_BYTES>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_cuts_never_split_a_character() {
        let text = "héllo wörld €";
        let bytes = text.as_bytes();
        // Cut in the middle of "é" (2 bytes at 1..3).
        let (t, skip, covered) =
            decode_text(&bytes[..2], 0, bytes.len() as u64, TextEncoding::Utf8).unwrap();
        assert_eq!((t.as_str(), skip, covered), ("h", 0, 1));
        // Start in the middle of "é": the continuation byte is skipped.
        let (t, skip, covered) =
            decode_text(&bytes[2..7], 2, bytes.len() as u64, TextEncoding::Utf8).unwrap();
        assert_eq!((t.as_str(), skip, covered), ("llo ", 1, 4));
        // The euro sign (3 bytes) cut after 1 byte at the end of a window.
        let euro_at = text.find('€').unwrap();
        let (t, _, covered) = decode_text(
            &bytes[..euro_at + 1],
            0,
            bytes.len() as u64,
            TextEncoding::Utf8,
        )
        .unwrap();
        assert_eq!((t.as_str(), covered), ("héllo wörld ", euro_at));
        // The whole text.
        assert_eq!(
            decode_text(bytes, 0, bytes.len() as u64, TextEncoding::Utf8)
                .unwrap()
                .0,
            text
        );
    }

    #[test]
    fn binary_is_refused() {
        assert_eq!(
            decode_text(b"ab\0cd", 0, 5, TextEncoding::Utf8)
                .unwrap_err()
                .code,
            ErrorCode::NotSupported
        );
        assert_eq!(
            decode_text(&[0xff, 0xfe, 0x41], 0, 3, TextEncoding::Utf8)
                .unwrap_err()
                .code,
            ErrorCode::NotSupported
        );
        // An incomplete character at the very end of the object is not text either.
        assert_eq!(
            decode_text(&[0x41, 0xe2, 0x82], 0, 3, TextEncoding::Utf8)
                .unwrap_err()
                .code,
            ErrorCode::NotSupported
        );
        assert_eq!(
            decode_text(&[0xe9], 0, 1, TextEncoding::Latin1).unwrap().0,
            "é"
        );
        assert_eq!(
            decode_text(&[0xe9], 0, 1, TextEncoding::Ascii)
                .unwrap_err()
                .code,
            ErrorCode::NotSupported
        );
    }
}
