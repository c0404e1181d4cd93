//! The S3 layer: every request the server makes to S3, with the caller's client.
//!
//! Below both the package format ([`crate::quilt`]) and the tools, it knows S3 and
//! nothing of packages, tokens or MCP:
//!
//! - [`uri`]: bucket names, S3 names and `s3://` URIs, parsed once and written back so
//!   that they name the same object;
//! - [`S3Error`]: a failed request, classified once from the SDK's error into an
//!   [`S3ErrorKind`] and turned once into the tool error a caller sees;
//! - [`S3`]: the requests: object heads, ranged reads (never more than asked for, even
//!   from a server that ignores `Range`), ranged bodies read only while the object keeps
//!   an ETag (`If-Match`), capped reads (never buffering past the cap),
//!   streamed bodies, listings (URL-encoded names decoded, pages followed), plain and
//!   conditional writes (`If-None-Match: *`, `If-Match`), deletes and presigned links;
//! - [`Permission`]: the S3 actions a call needs.

pub(crate) mod error;
pub(crate) mod uri;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::EncodingType;
use bytes::Bytes;
use percent_encoding::percent_decode_str;

pub(crate) use error::{S3Error, S3ErrorKind};
pub(crate) use uri::S3Uri;

/// An S3 action a call needs, as the token's `permissions` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Permission {
    /// `s3:GetObject`.
    GetObject,
    /// `s3:GetObjectVersion`.
    GetObjectVersion,
    /// `s3:PutObject`.
    PutObject,
    /// `s3:ListBucket`.
    ListBucket,
    /// `s3:DeleteObject`.
    DeleteObject,
}

impl Permission {
    /// The action's name, such as `s3:GetObject`.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Permission::GetObject => "s3:GetObject",
            Permission::GetObjectVersion => "s3:GetObjectVersion",
            Permission::PutObject => "s3:PutObject",
            Permission::ListBucket => "s3:ListBucket",
            Permission::DeleteObject => "s3:DeleteObject",
        }
    }
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What `HeadObject` says of an object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ObjectHead {
    /// Its size in bytes.
    pub size: Option<i64>,
    /// Its content type.
    pub content_type: Option<String>,
    /// Its last-modified time, Unix seconds.
    pub last_modified: Option<i64>,
    /// Its ETag.
    pub etag: Option<String>,
    /// Its version id, in a versioned bucket.
    pub version_id: Option<String>,
    /// Its user metadata (`x-amz-meta-*`).
    pub metadata: HashMap<String, String>,
    /// Its storage class.
    pub storage_class: Option<String>,
    /// Its content encoding.
    pub content_encoding: Option<String>,
    /// Its cache control header.
    pub cache_control: Option<String>,
}

/// The bytes of a ranged read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chunk {
    /// At most the bytes asked for, starting at the offset asked for.
    pub bytes: Vec<u8>,
    /// The whole object's size.
    pub size: u64,
    /// Its content type.
    pub content_type: Option<String>,
}

/// A small object read whole by a capped read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Capped {
    /// Its bytes, at most the cap.
    pub bytes: Vec<u8>,
    /// Its ETag, when the endpoint sent one.
    pub etag: Option<String>,
    /// Its last-modified time, Unix seconds.
    pub last_modified: Option<i64>,
}

/// An object's body, to be read as it arrives.
pub(crate) struct ObjectBody {
    /// The object read, for messages.
    target: String,
    /// Its size, as the answer declared it (of a ranged read: the bytes of the range).
    pub size: Option<u64>,
    /// Its version id, when the bucket is versioned.
    pub version_id: Option<String>,
    /// Its ETag, when the endpoint sent one.
    pub etag: Option<String>,
    body: ByteStream,
}

impl ObjectBody {
    /// The next piece of the body, `None` at its end.
    pub(crate) async fn next_chunk(&mut self) -> Result<Option<Bytes>, S3Error> {
        match self.body.next().await {
            None => Ok(None),
            Some(Ok(bytes)) => Ok(Some(bytes)),
            Some(Err(e)) => Err(S3Error::interrupted("GetObject", &self.target, e)),
        }
    }

    /// The body as a reader (a break-off is an I/O error).
    pub(crate) fn into_reader(self) -> impl tokio::io::AsyncRead + Send + Sync + Unpin + 'static {
        self.body.into_async_read()
    }
}

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listed {
    /// Its key, decoded.
    pub key: String,
    /// Its size in bytes.
    pub size: Option<i64>,
    /// Its last-modified time, Unix seconds.
    pub last_modified: Option<i64>,
    /// Its ETag.
    pub etag: Option<String>,
    /// Its storage class.
    pub storage_class: Option<String>,
}

/// One page of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ListPage {
    /// The objects, in key order.
    pub objects: Vec<Listed>,
    /// The groups at the delimiter, decoded.
    pub common_prefixes: Vec<String>,
    /// Whether more pages follow.
    pub is_truncated: bool,
    /// The token of the next page.
    pub next_continuation_token: Option<String>,
}

/// What to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ListRequest {
    /// The bucket.
    pub bucket: String,
    /// Only keys starting with this.
    pub prefix: String,
    /// Group keys at this delimiter.
    pub delimiter: Option<String>,
    /// At most this many keys and groups a page (S3's default is 1000).
    pub max_keys: Option<i32>,
    /// The page after the one that gave this token.
    pub continuation_token: Option<String>,
    /// Only keys after this one.
    pub start_after: Option<String>,
}

impl ListRequest {
    /// Every key of `bucket` starting with `prefix`.
    pub(crate) fn prefix(bucket: &str, prefix: &str) -> ListRequest {
        ListRequest {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            ..ListRequest::default()
        }
    }

    fn target(&self) -> String {
        S3Uri::new(&self.bucket, &self.prefix).to_string()
    }
}

/// A listing followed page by page.
pub(crate) struct Listing<'a> {
    s3: S3<'a>,
    request: ListRequest,
    done: bool,
}

impl Listing<'_> {
    /// The next page, `None` after the last.
    pub(crate) async fn next_page(&mut self) -> Option<Result<ListPage, S3Error>> {
        if self.done {
            return None;
        }
        let page = match self.s3.list_page(&self.request).await {
            Ok(page) => page,
            Err(error) => {
                self.done = true;
                return Some(Err(error));
            }
        };
        match (&page.next_continuation_token, page.is_truncated) {
            (Some(token), true) => {
                if self.request.continuation_token.as_ref() == Some(token) {
                    // A server that hands back the token it was given would loop forever.
                    self.done = true;
                    return Some(Err(S3Error::new(
                        "ListObjectsV2",
                        self.request.target(),
                        S3ErrorKind::Malformed {
                            problem: "S3 answered the same continuation token twice".into(),
                            retryable: false,
                        },
                    )));
                }
                self.request.continuation_token = Some(token.clone());
            }
            _ => self.done = true,
        }
        Some(Ok(page))
    }
}

/// How an object is written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Put<'c> {
    /// Its content type.
    pub content_type: Option<&'c str>,
    /// Its user metadata.
    pub metadata: Option<HashMap<String, String>>,
    /// Only if this holds.
    pub condition: Option<WriteCondition<'c>>,
}

/// The condition of a conditional write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteCondition<'e> {
    /// Only if the key does not exist yet (`If-None-Match: *`).
    Absent,
    /// Only if the object still has this ETag (`If-Match`).
    Matches(&'e str),
}

/// What a write made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Written {
    /// The new object's ETag.
    pub etag: Option<String>,
    /// Its version id, in a versioned bucket.
    pub version_id: Option<String>,
}

/// The S3 requests of one caller, with its client.
#[derive(Debug, Clone, Copy)]
pub(crate) struct S3<'a> {
    client: &'a aws_sdk_s3::Client,
}

impl<'a> S3<'a> {
    /// Requests made with `client`.
    pub(crate) fn new(client: &'a aws_sdk_s3::Client) -> S3<'a> {
        S3 { client }
    }

    /// `HeadObject`.
    pub(crate) async fn head(&self, uri: &S3Uri) -> Result<ObjectHead, S3Error> {
        self.head_where(uri, None).await
    }

    /// `HeadObject` with `If-Match` on `etag`: the object's head, or
    /// [`S3ErrorKind::PreconditionFailed`] when the object is no longer that one.
    pub(crate) async fn head_if_match(
        &self,
        uri: &S3Uri,
        etag: &str,
    ) -> Result<ObjectHead, S3Error> {
        self.head_where(uri, Some(etag)).await
    }

    async fn head_where(&self, uri: &S3Uri, if_match: Option<&str>) -> Result<ObjectHead, S3Error> {
        let head = self
            .client
            .head_object()
            .bucket(&uri.bucket)
            .key(&uri.key)
            .set_version_id(uri.version_id.clone())
            .set_if_match(if_match.map(str::to_owned))
            .send()
            .await
            .map_err(|e| S3Error::from_sdk("HeadObject", uri.to_string(), e))?;
        Ok(ObjectHead {
            size: head.content_length(),
            content_type: head.content_type().map(str::to_owned),
            last_modified: head.last_modified().map(|d| d.secs()),
            etag: head.e_tag().map(str::to_owned),
            version_id: head.version_id().map(str::to_owned),
            metadata: head.metadata().cloned().unwrap_or_default(),
            storage_class: head.storage_class().map(|s| s.as_str().to_owned()),
            content_encoding: head.content_encoding().map(str::to_owned),
            cache_control: head.cache_control().map(str::to_owned),
        })
    }

    /// At most `max_bytes` (at least 1) from `offset`, never downloading more, even from
    /// a server that ignores `Range`, and never reporting bytes from elsewhere as the
    /// ones at `offset`. Reading at the very end of an object (or anywhere in an empty
    /// one) gives no bytes; past the end is [`S3ErrorKind::PastEnd`].
    pub(crate) async fn read_range(
        &self,
        uri: &S3Uri,
        offset: u64,
        max_bytes: u64,
    ) -> Result<Chunk, S3Error> {
        let target = uri.to_string();
        let last = range_end(offset, max_bytes)
            .ok_or_else(|| S3Error::new("GetObject", &target, S3ErrorKind::InvalidRange))?;
        let answer = self
            .get_request(uri)
            .range(format!("bytes={offset}-{last}"))
            .send()
            .await
            .map_err(|e| S3Error::from_sdk("GetObject", &target, e));
        let output = match answer {
            Ok(output) => output,
            Err(error) if error.kind == S3ErrorKind::InvalidRange => {
                // 416: the offset is at or past the end. An empty object has no range at all.
                let head = self.head(uri).await?;
                let size = head.size.and_then(|s| u64::try_from(s).ok()).unwrap_or(0);
                if offset == 0 || offset == size {
                    return Ok(Chunk {
                        bytes: Vec::new(),
                        size,
                        content_type: head.content_type,
                    });
                }
                return Err(S3Error::new(
                    "GetObject",
                    target,
                    S3ErrorKind::PastEnd { offset, size },
                ));
            }
            Err(error) => return Err(error),
        };
        let size = answered_range(
            &target,
            output.content_range(),
            output.content_length(),
            offset,
        )?;
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
                Some(Err(e)) => return Err(S3Error::interrupted("GetObject", target, e)),
                None => break,
            }
        }
        Ok(Chunk {
            bytes,
            size,
            content_type,
        })
    }

    /// A `GetObject` of the object (and version) `uri` names, for the caller to add a
    /// range, a condition or a presigning config to.
    fn get_request(
        &self,
        uri: &S3Uri,
    ) -> aws_sdk_s3::operation::get_object::builders::GetObjectFluentBuilder {
        self.client
            .get_object()
            .bucket(&uri.bucket)
            .key(&uri.key)
            .set_version_id(uri.version_id.clone())
    }

    /// The whole object when it has at most `cap` bytes; a larger one is
    /// [`S3ErrorKind::OverCap`], found from its declared length or, failing that,
    /// once more than `cap` bytes have arrived: never more than `cap` are held.
    pub(crate) async fn read_capped(&self, uri: &S3Uri, cap: usize) -> Result<Capped, S3Error> {
        let target = uri.to_string();
        let output = self
            .get_request(uri)
            .send()
            .await
            .map_err(|e| S3Error::from_sdk("GetObject", &target, e))?;
        let over = || {
            S3Error::new(
                "GetObject",
                &target,
                S3ErrorKind::OverCap { cap: cap as u64 },
            )
        };
        if output
            .content_length()
            .and_then(|length| usize::try_from(length).ok())
            .is_some_and(|length| length > cap)
        {
            return Err(over());
        }
        let etag = output.e_tag().map(str::to_owned);
        let last_modified = output.last_modified().map(|d| d.secs());
        let mut body = output.body;
        let mut bytes = Vec::new();
        while let Some(piece) = body.next().await {
            let piece = piece.map_err(|e| S3Error::interrupted("GetObject", &target, e))?;
            if bytes.len() + piece.len() > cap {
                return Err(over());
            }
            bytes.extend_from_slice(&piece);
        }
        Ok(Capped {
            bytes,
            etag,
            last_modified,
        })
    }

    /// Opens the object's body to be read as it arrives; an object whose declared size
    /// is over `max_bytes` is [`S3ErrorKind::OverCap`] and is not read.
    pub(crate) async fn open(&self, uri: &S3Uri, max_bytes: u64) -> Result<ObjectBody, S3Error> {
        let target = uri.to_string();
        let output = self
            .get_request(uri)
            .send()
            .await
            .map_err(|e| S3Error::from_sdk("GetObject", &target, e))?;
        let size = output
            .content_length()
            .and_then(|length| u64::try_from(length).ok());
        if size.is_some_and(|size| size > max_bytes) {
            return Err(S3Error::new(
                "GetObject",
                target,
                S3ErrorKind::OverCap { cap: max_bytes },
            ));
        }
        Ok(ObjectBody {
            target,
            size,
            version_id: output.version_id().map(str::to_owned),
            etag: output.e_tag().map(str::to_owned),
            body: output.body,
        })
    }

    /// Opens `len` bytes (at least 1) of the object from `offset`, only while it still
    /// has the ETag `etag` (`If-Match`): a changed object is
    /// [`S3ErrorKind::PreconditionFailed`]. The answer must be the bytes at `offset`
    /// (a server that ignores `Range` is [`S3ErrorKind::Malformed`]); the body's `size`
    /// is the length the answer declared, which the caller compares with `len`.
    pub(crate) async fn open_range_if_match(
        &self,
        uri: &S3Uri,
        offset: u64,
        len: u64,
        etag: &str,
    ) -> Result<ObjectBody, S3Error> {
        let target = uri.to_string();
        let last = range_end(offset, len)
            .ok_or_else(|| S3Error::new("GetObject", &target, S3ErrorKind::InvalidRange))?;
        let output = self
            .get_request(uri)
            .range(format!("bytes={offset}-{last}"))
            .if_match(etag)
            .send()
            .await
            .map_err(|e| S3Error::from_sdk("GetObject", &target, e))?;
        answered_range(
            &target,
            output.content_range(),
            output.content_length(),
            offset,
        )?;
        Ok(ObjectBody {
            size: output
                .content_length()
                .and_then(|length| u64::try_from(length).ok()),
            version_id: output.version_id().map(str::to_owned),
            etag: output.e_tag().map(str::to_owned),
            target,
            body: output.body,
        })
    }

    /// One page of `ListObjectsV2`, names asked for URL-encoded (so that a key XML 1.0
    /// cannot carry still lists) and decoded.
    pub(crate) async fn list_page(&self, request: &ListRequest) -> Result<ListPage, S3Error> {
        let target = || request.target();
        let output = self
            .client
            .list_objects_v2()
            .bucket(&request.bucket)
            .prefix(&request.prefix)
            .encoding_type(EncodingType::Url)
            .set_delimiter(request.delimiter.clone().filter(|d| !d.is_empty()))
            .set_max_keys(request.max_keys)
            .set_continuation_token(request.continuation_token.clone().filter(|t| !t.is_empty()))
            .set_start_after(request.start_after.clone())
            .send()
            .await
            .map_err(|e| S3Error::from_sdk("ListObjectsV2", target(), e))?;
        let encoding = output.encoding_type();
        let decode = |name: &str| {
            listed_name(name, encoding).ok_or_else(|| {
                S3Error::new(
                    "ListObjectsV2",
                    target(),
                    S3ErrorKind::Malformed {
                        problem: "S3 listed a name that is not URL-encoded UTF-8".into(),
                        retryable: false,
                    },
                )
            })
        };
        let mut objects = Vec::with_capacity(output.contents().len());
        for object in output.contents() {
            let Some(key) = object.key() else { continue };
            objects.push(Listed {
                key: decode(key)?,
                size: object.size(),
                last_modified: object.last_modified().map(|d| d.secs()),
                etag: object.e_tag().map(str::to_owned),
                storage_class: object.storage_class().map(|s| s.as_str().to_owned()),
            });
        }
        let common_prefixes = output
            .common_prefixes()
            .iter()
            .filter_map(|c| c.prefix())
            .map(decode)
            .collect::<Result<Vec<String>, S3Error>>()?;
        Ok(ListPage {
            objects,
            common_prefixes,
            is_truncated: output.is_truncated().unwrap_or(false),
            next_continuation_token: output.next_continuation_token().map(str::to_owned),
        })
    }

    /// Every page of `request`, one at a time.
    pub(crate) fn list(&self, request: ListRequest) -> Listing<'a> {
        Listing {
            s3: *self,
            request,
            done: false,
        }
    }

    /// `PutObject`, conditional when `put` says so: a condition that does not hold is
    /// [`S3ErrorKind::PreconditionFailed`] (or [`S3ErrorKind::ConditionalConflict`]
    /// for a concurrent write), an endpoint without conditional writes
    /// [`S3ErrorKind::NotImplemented`].
    pub(crate) async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        put: Put<'_>,
    ) -> Result<Written, S3Error> {
        self.put_body(bucket, key, ByteStream::from(body), put)
            .await
    }

    /// `PutObject` of the file at `path`, streamed from disk (never held in memory;
    /// read again from the start when the request is retried), as [`S3::put`].
    pub(crate) async fn put_file(
        &self,
        bucket: &str,
        key: &str,
        path: &std::path::Path,
        put: Put<'_>,
    ) -> Result<Written, S3Error> {
        let body = ByteStream::read_from()
            .path(path)
            .buffer_size(256 * 1024)
            .build()
            .await
            .map_err(|e| S3Error {
                source: Some(Box::new(e)),
                ..S3Error::new(
                    "PutObject",
                    S3Uri::new(bucket, key).to_string(),
                    S3ErrorKind::Other,
                )
            })?;
        self.put_body(bucket, key, body, put).await
    }

    async fn put_body(
        &self,
        bucket: &str,
        key: &str,
        body: ByteStream,
        put: Put<'_>,
    ) -> Result<Written, S3Error> {
        let request = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .set_content_type(put.content_type.map(str::to_owned))
            .set_metadata(put.metadata)
            .body(body);
        let request = match put.condition {
            None => request,
            Some(WriteCondition::Absent) => request.if_none_match("*"),
            Some(WriteCondition::Matches(etag)) => request.if_match(etag),
        };
        let output = request
            .send()
            .await
            .map_err(|e| S3Error::from_sdk("PutObject", S3Uri::new(bucket, key).to_string(), e))?;
        Ok(Written {
            etag: output.e_tag().map(str::to_owned),
            version_id: output.version_id().map(str::to_owned),
        })
    }

    /// `DeleteObject`.
    pub(crate) async fn delete(&self, bucket: &str, key: &str) -> Result<(), S3Error> {
        self.client
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| S3Error::from_sdk("DeleteObject", S3Uri::new(bucket, key).to_string(), e))
    }

    /// A presigned `GetObject` URL valid for `expires_in`. A key that URL parsers would
    /// resolve to another path ([`S3Uri::key_moves_in_urls`]) gets no link: it is
    /// [`S3ErrorKind::UnsafeLink`].
    pub(crate) async fn presign_get(
        &self,
        uri: &S3Uri,
        expires_in: Duration,
    ) -> Result<String, S3Error> {
        const OP: &str = "GetObject (presign)";
        if uri.key_moves_in_urls() {
            return Err(S3Error::new(OP, uri.to_string(), S3ErrorKind::UnsafeLink));
        }
        let presign = PresigningConfig::expires_in(expires_in).map_err(|e| S3Error {
            source: Some(Box::new(e)),
            ..S3Error::new(OP, uri.to_string(), S3ErrorKind::Other)
        })?;
        let request = self
            .get_request(uri)
            .presigned(presign)
            .await
            .map_err(|e| S3Error::from_sdk(OP, uri.to_string(), e))?;
        Ok(request.uri().to_owned())
    }
}

/// The last byte of a read of `max_bytes` (at least 1) from `offset`; `None` past the
/// largest offset.
fn range_end(offset: u64, max_bytes: u64) -> Option<u64> {
    offset.checked_add(max_bytes.saturating_sub(1))
}

/// What is wrong with the answer to a ranged read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum RangeProblem {
    /// No `Content-Range` for a read from an offset.
    #[error("S3 ignored the byte range and answered from the start of the object")]
    Ignored,
    /// A `Content-Range` that does not parse.
    #[error("S3 answered with an unreadable Content-Range {0:?}")]
    Unreadable(String),
    /// The bytes of another range.
    #[error("S3 answered with the bytes from {0}")]
    OtherStart(u64),
}

/// [`ranged_size`] of a GetObject answer for `target`, its problem a retryable
/// [`S3ErrorKind::Malformed`].
fn answered_range(
    target: &str,
    content_range: Option<&str>,
    content_length: Option<i64>,
    offset: u64,
) -> Result<u64, S3Error> {
    ranged_size(content_range, content_length, offset).map_err(|problem| {
        S3Error::new(
            "GetObject",
            target,
            S3ErrorKind::Malformed {
                problem: format!("reading from byte {offset}: {problem}"),
                retryable: true,
            },
        )
    })
}

/// The object's size from the answer to a ranged read from `offset`, making sure the
/// bytes really start there: a server that ignores `Range` (no `Content-Range`) or
/// answers another range must not have its bytes reported at `offset`.
fn ranged_size(
    content_range: Option<&str>,
    content_length: Option<i64>,
    offset: u64,
) -> Result<u64, RangeProblem> {
    let Some(range) = content_range else {
        if offset == 0 {
            return Ok(content_length
                .and_then(|l| u64::try_from(l).ok())
                .unwrap_or(0));
        }
        return Err(RangeProblem::Ignored);
    };
    let unreadable = || RangeProblem::Unreadable(range.chars().take(100).collect());
    let (span, total) = range
        .trim()
        .strip_prefix("bytes ")
        .and_then(|spec| spec.split_once('/'))
        .ok_or_else(unreadable)?;
    let start = span
        .split_once('-')
        .and_then(|(start, _)| start.parse::<u64>().ok())
        .ok_or_else(unreadable)?;
    if start != offset {
        return Err(RangeProblem::OtherStart(start));
    }
    total.parse::<u64>().map_err(|_| unreadable())
}

/// A key or prefix as a listing returned it, decoded when the listing says it is
/// URL-encoded (`+` is a space, as S3 writes it; a literal `+` comes as `%2B`);
/// `None` when it does not decode to UTF-8.
fn listed_name(text: &str, encoding: Option<&EncodingType>) -> Option<String> {
    if !matches!(encoding, Some(EncodingType::Url)) {
        return Some(text.to_owned());
    }
    let spaced = text.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_names_are_decoded_only_when_encoded() {
        let url = Some(&EncodingType::Url);
        assert_eq!(listed_name("a+b%2Bc%25d%00", url).unwrap(), "a b+c%d\0");
        assert_eq!(listed_name("caf%C3%A9/", url).unwrap(), "café/");
        assert_eq!(listed_name("a+b%41", None).unwrap(), "a+b%41");
        assert_eq!(listed_name("%ff", url), None);
    }

    /// `offset = 2^64-5, max_bytes = 10` once overflowed into
    /// `Range: bytes=18446744073709551611-4`, and a server that ignores `Range` had its
    /// first bytes reported at the offset asked for.
    #[test]
    fn offsets_never_overflow_and_ignored_ranges_are_not_reported_as_read() {
        assert_eq!(range_end(0, 1), Some(0));
        assert_eq!(range_end(10, 5), Some(14));
        assert_eq!(range_end(u64::MAX - 9, 10), Some(u64::MAX));
        assert_eq!(range_end(u64::MAX - 4, 10), None);
        assert_eq!(ranged_size(Some("bytes 5-9/100"), Some(5), 5), Ok(100));
        assert_eq!(ranged_size(None, Some(42), 0), Ok(42));
        assert_eq!(ranged_size(None, None, 0), Ok(0));
        // No Content-Range while reading from an offset: the server ignored Range.
        assert!(ranged_size(None, Some(42), 7).is_err());
        // Another start than asked for.
        assert!(ranged_size(Some("bytes 0-9/100"), Some(10), 5).is_err());
        for garbage in ["bytes */100", "items 5-9/100", "bytes 5-9/*", "bytes 5-9"] {
            assert!(ranged_size(Some(garbage), Some(5), 5).is_err(), "{garbage}");
        }
    }

    /// A loopback S3 that answers every `ListObjectsV2` with `page(continuation
    /// token)`: its XML body.
    async fn fake_listing(
        page: fn(Option<&str>) -> String,
    ) -> (aws_sdk_s3::Client, tokio::task::JoinHandle<()>) {
        use axum::extract::RawQuery;
        let app = axum::Router::new().fallback(move |RawQuery(query): RawQuery| async move {
            let query = query.unwrap_or_default();
            let token = query
                .split('&')
                .find_map(|pair| pair.strip_prefix("continuation-token="))
                .map(str::to_owned);
            (
                [("content-type", "application/xml")],
                page(token.as_deref()),
            )
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "AKIDTEST", "secret", None, None, "t",
            ))
            .endpoint_url(endpoint)
            .force_path_style(true)
            .build();
        (aws_sdk_s3::Client::from_conf(config), task)
    }

    fn listing_xml(keys: &[&str], next: Option<&str>) -> String {
        let contents: String = keys
            .iter()
            .map(|k| format!("<Contents><Key>{k}</Key><Size>1</Size></Contents>"))
            .collect();
        let more = next.map_or_else(
            || "<IsTruncated>false</IsTruncated>".to_owned(),
            |t| format!("<IsTruncated>true</IsTruncated><NextContinuationToken>{t}</NextContinuationToken>"),
        );
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix></Prefix><EncodingType>url</EncodingType>{more}{contents}</ListBucketResult>"#
        )
    }

    /// Pages are followed by their tokens and their URL-encoded names decoded; a
    /// server that hands back the token it was given ends the listing with an error
    /// instead of looping for ever.
    #[tokio::test]
    async fn listings_follow_pages_and_stop_on_a_repeated_token() {
        let (client, task) = fake_listing(|token| match token {
            None => listing_xml(&["a+b", "caf%C3%A9"], Some("two")),
            Some("two") => listing_xml(&["z%2B"], None),
            Some(_) => listing_xml(&[], None),
        })
        .await;
        let mut pages = S3::new(&client).list(ListRequest::prefix("b", ""));
        let mut keys = Vec::new();
        while let Some(page) = pages.next_page().await {
            keys.extend(page.unwrap().objects.into_iter().map(|o| o.key));
        }
        assert_eq!(keys, ["a b", "café", "z+"]);
        task.abort();

        let (client, task) = fake_listing(|_| listing_xml(&["k"], Some("same"))).await;
        let mut pages = S3::new(&client).list(ListRequest::prefix("b", ""));
        let mut seen = 0;
        let error = loop {
            match pages.next_page().await {
                Some(Ok(_)) => seen += 1,
                Some(Err(error)) => break error,
                None => panic!("the listing ended without an error"),
            }
            assert!(seen < 10, "the listing loops");
        };
        assert!(
            matches!(error.kind, S3ErrorKind::Malformed { .. }),
            "{error:?}"
        );
        assert!(pages.next_page().await.is_none());
        task.abort();
    }

    #[test]
    fn permissions_are_named_as_tokens_name_them() {
        assert_eq!(Permission::GetObject.to_string(), "s3:GetObject");
        assert_eq!(Permission::GetObjectVersion.as_str(), "s3:GetObjectVersion");
        assert_eq!(Permission::PutObject.as_str(), "s3:PutObject");
        assert_eq!(Permission::ListBucket.as_str(), "s3:ListBucket");
        assert_eq!(Permission::DeleteObject.as_str(), "s3:DeleteObject");
    }
}
