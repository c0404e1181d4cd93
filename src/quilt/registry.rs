//! A Quilt registry: a bucket holding manifests and named-package pointers, read and
//! written with the caller's S3 client.

use tokio::io::AsyncBufReadExt as _;

use super::error::QuiltError;
use super::{
    HashPrefix, PACKAGES_PREFIX, is_top_hash, latest_key, manifest_key, parse_pointer,
    pointer_prefix,
};
pub(crate) use crate::s3::WriteCondition;
use crate::s3::{ListRequest, Put, S3, S3ErrorKind, S3Uri};

/// The most bytes of a small object (a pointer: 64 hex digits and whitespace) that are
/// read; a larger one is not a pointer and is not read further.
pub(crate) const MAX_SMALL_BYTES: usize = 1024;
/// The most bytes of a manifest that are read. Manifests are streamed, so memory does
/// not grow with this; it bounds the time a call spends (a 1,000,000-entry manifest is
/// about 300 MB).
pub(crate) const MAX_MANIFEST_BYTES: u64 = 8 * 1024 * 1024 * 1024;

/// A manifest's body, buffered for reading line by line.
pub(crate) type ManifestBody = std::pin::Pin<Box<dyn tokio::io::AsyncBufRead + Send>>;

/// The error of a manifest over [`MAX_MANIFEST_BYTES`].
pub(crate) fn manifest_too_large(uri: &str) -> QuiltError {
    QuiltError::TooLarge(format!(
        "the manifest {uri} is larger than {} GiB, more than this server reads",
        MAX_MANIFEST_BYTES / (1024 * 1024 * 1024)
    ))
}

/// A registry bucket.
#[derive(Debug, Clone)]
pub(crate) struct Registry<'a> {
    s3: S3<'a>,
    bucket: String,
}

impl<'a> Registry<'a> {
    /// The registry in `bucket`.
    pub(crate) fn new(s3: &'a aws_sdk_s3::Client, bucket: impl Into<String>) -> Registry<'a> {
        Registry {
            s3: S3::new(s3),
            bucket: bucket.into(),
        }
    }

    /// The S3 requests, with the caller's client.
    pub(crate) fn s3(&self) -> S3<'a> {
        self.s3
    }

    /// The bucket.
    pub(crate) fn bucket(&self) -> &str {
        &self.bucket
    }

    fn uri(&self, key: &str) -> String {
        self.object(key).to_string()
    }

    /// The object `key` of the registry.
    pub(crate) fn object(&self, key: &str) -> S3Uri {
        S3Uri::new(&self.bucket, key)
    }

    /// A small object's bytes and ETag, `None` when it does not exist; one larger
    /// than [`MAX_SMALL_BYTES`] is not a pointer (an integrity error) and is not read.
    async fn read_small(&self, key: &str) -> Result<Option<crate::s3::Capped>, QuiltError> {
        match self
            .s3
            .read_capped(&self.object(key), MAX_SMALL_BYTES)
            .await
        {
            Ok(capped) => Ok(Some(capped)),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) if matches!(error.kind, S3ErrorKind::OverCap { .. }) => {
                Err(QuiltError::Integrity(format!(
                    "{} is larger than {MAX_SMALL_BYTES} bytes: it is not a package pointer",
                    self.uri(key)
                )))
            }
            Err(error) => Err(error.into()),
        }
    }

    /// A small object's bytes (at most [`MAX_SMALL_BYTES`]: a larger object is an
    /// integrity error, and is not read), `None` when it does not exist.
    pub(crate) async fn get_small(&self, key: &str) -> Result<Option<Vec<u8>>, QuiltError> {
        Ok(self.read_small(key).await?.map(|capped| capped.bytes))
    }

    /// The top hash `latest` points at, `None` when the package does not exist.
    pub(crate) async fn latest(&self, name: &str) -> Result<Option<String>, QuiltError> {
        let Some(body) = self.get_small(&latest_key(name)).await? else {
            return Ok(None);
        };
        parse_pointer(&body).map(Some).ok_or_else(|| {
            QuiltError::Integrity(format!(
                "{} does not hold a top hash",
                self.uri(&latest_key(name))
            ))
        })
    }

    /// The top hash of `name` at `top_hash` (full, or a unique prefix of at least 6
    /// characters), or at `latest` when none is given.
    pub(crate) async fn resolve(
        &self,
        name: &str,
        top_hash: Option<&HashPrefix>,
    ) -> Result<String, QuiltError> {
        let Some(prefix) = top_hash else {
            return self.latest(name).await?.ok_or_else(|| {
                QuiltError::NotFound(format!(
                    "package {name} does not exist in s3://{}",
                    self.bucket
                ))
            });
        };
        let prefix = prefix.as_str();
        if is_top_hash(prefix) {
            return Ok(prefix.to_owned());
        }
        let page = self
            .s3
            .list_page(&ListRequest {
                max_keys: Some(10),
                ..ListRequest::prefix(&self.bucket, &format!("{PACKAGES_PREFIX}{prefix}"))
            })
            .await?;
        let matches: Vec<&str> = page
            .objects
            .iter()
            .filter_map(|o| o.key.strip_prefix(PACKAGES_PREFIX))
            .filter(|h| is_top_hash(h))
            .collect();
        match matches.as_slice() {
            [one] => Ok((*one).to_owned()),
            [] => Err(QuiltError::NotFound(format!(
                "no revision in s3://{} has a top hash starting with {prefix}",
                self.bucket
            ))),
            many => Err(QuiltError::Invalid(format!(
                "the hash prefix {prefix} is ambiguous: it matches {}; give more characters",
                many.join(", ")
            ))),
        }
    }

    /// Opens the manifest of `top_hash` for reading line by line: a buffered body of at
    /// most [`MAX_MANIFEST_BYTES`] (plus one byte, so that a longer one is noticed).
    pub(crate) async fn open_manifest(&self, top_hash: &str) -> Result<ManifestBody, QuiltError> {
        let key = manifest_key(top_hash);
        let body = match self.s3.open(&self.object(&key), MAX_MANIFEST_BYTES).await {
            Ok(body) => body,
            Err(error) if error.is_not_found() => {
                return Err(QuiltError::NotFound(format!(
                    "no revision {top_hash} in s3://{}",
                    self.bucket
                )));
            }
            Err(error) if matches!(error.kind, S3ErrorKind::OverCap { .. }) => {
                return Err(manifest_too_large(&self.uri(&key)));
            }
            Err(error) => return Err(error.into()),
        };
        Ok(Box::pin(tokio::io::BufReader::with_capacity(
            256 * 1024,
            tokio::io::AsyncReadExt::take(body.into_reader(), MAX_MANIFEST_BYTES + 1),
        )))
    }

    /// The newest revision of `name` whose top hash is not `except` (usually the
    /// latest), reading timestamp pointers newest first and stopping at the first hit.
    pub(crate) async fn previous_revision(
        &self,
        name: &str,
        except: &str,
    ) -> Result<Option<String>, QuiltError> {
        let prefix = pointer_prefix(name);
        let keys = self.list_keys(&prefix).await?;
        let mut stamps: Vec<&str> = keys
            .iter()
            .filter_map(|(k, _)| k.strip_prefix(&prefix))
            .filter(|rest| rest.len() == 10 && rest.bytes().all(|b| b.is_ascii_digit()))
            .collect();
        // Ten digits: text order is time order.
        stamps.sort_unstable_by(|a, b| b.cmp(a));
        for stamp in stamps {
            let pointer = self.get_small(&format!("{prefix}{stamp}")).await?;
            if let Some(hash) = pointer.as_deref().and_then(parse_pointer)
                && hash != except
            {
                return Ok(Some(hash));
            }
        }
        Ok(None)
    }

    /// Every key under `prefix` with its last-modified time, all pages.
    async fn list_keys(&self, prefix: &str) -> Result<Vec<(String, Option<i64>)>, QuiltError> {
        let mut keys = Vec::new();
        let mut pages = self.s3.list(ListRequest::prefix(&self.bucket, prefix));
        while let Some(page) = pages.next_page().await {
            for object in page?.objects {
                keys.push((object.key, object.last_modified));
            }
        }
        Ok(keys)
    }

    /// Writes an object.
    pub(crate) async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), QuiltError> {
        let put = Put {
            content_type: Some(content_type),
            ..Put::default()
        };
        self.s3.put(&self.bucket, key, body, put).await?;
        Ok(())
    }

    /// Writes an object from the file at `path`, streamed from disk.
    pub(crate) async fn put_file(
        &self,
        key: &str,
        path: &std::path::Path,
        content_type: &str,
    ) -> Result<(), QuiltError> {
        let put = Put {
            content_type: Some(content_type),
            ..Put::default()
        };
        self.s3.put_file(&self.bucket, key, path, put).await?;
        Ok(())
    }
}

/// A pointer as read, with the ETag a conditional write names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PointerRead {
    /// The top hash it holds.
    pub top_hash: String,
    /// Its ETag, when the endpoint sent one.
    pub etag: Option<String>,
}

/// What came of a conditional write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConditionalPut {
    /// Written.
    Written,
    /// The condition did not hold (HTTP 412 `PreconditionFailed`, or 409
    /// `ConditionalRequestConflict` for a concurrent write of the same key).
    Lost,
    /// The endpoint does not implement conditional writes (HTTP 501 or
    /// `NotImplemented`); nothing was written.
    Unsupported,
}

impl Registry<'_> {
    /// The `latest` pointer of `name` with its ETag, `None` when the package does not
    /// exist.
    pub(crate) async fn latest_pointer(
        &self,
        name: &str,
    ) -> Result<Option<PointerRead>, QuiltError> {
        let key = latest_key(name);
        let Some(capped) = self.read_small(&key).await? else {
            return Ok(None);
        };
        let top_hash = parse_pointer(&capped.bytes).ok_or_else(|| {
            QuiltError::Integrity(format!("{} does not hold a top hash", self.uri(&key)))
        })?;
        Ok(Some(PointerRead {
            top_hash,
            etag: capped.etag,
        }))
    }

    /// Writes an object only if `condition` holds.
    pub(crate) async fn put_conditional(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
        condition: WriteCondition<'_>,
    ) -> Result<ConditionalPut, QuiltError> {
        let put = Put {
            content_type: Some(content_type),
            condition: Some(condition),
            ..Put::default()
        };
        match self.s3.put(&self.bucket, key, body, put).await {
            Ok(_) => Ok(ConditionalPut::Written),
            Err(error) => match error.kind {
                S3ErrorKind::PreconditionFailed | S3ErrorKind::ConditionalConflict => {
                    Ok(ConditionalPut::Lost)
                }
                S3ErrorKind::NotImplemented => Ok(ConditionalPut::Unsupported),
                _ => Err(error.into()),
            },
        }
    }

    /// Deletes an object.
    pub(crate) async fn delete(&self, key: &str) -> Result<(), QuiltError> {
        Ok(self.s3.delete(&self.bucket, key).await?)
    }
}

/// What [`read_line_capped`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineRead {
    /// A line (with its `\n`, unless it is the last and has none).
    Line,
    /// The end of the input: nothing was read.
    End,
    /// A line longer than the cap; it was not buffered whole.
    TooLong,
}

/// Reads one line into `line` (which it appends to), refusing one whose text (without
/// `\n`) is longer than `cap` bytes as soon as that is known: at most `cap` bytes
/// plus one buffer's worth are ever held, however long the line.
pub(crate) async fn read_line_capped<R>(
    reader: &mut R,
    line: &mut Vec<u8>,
    cap: usize,
) -> std::io::Result<LineRead>
where
    R: tokio::io::AsyncBufRead + Unpin,
{
    let start = line.len();
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(if line.len() == start {
                LineRead::End
            } else {
                LineRead::Line
            });
        }
        let held = line.len() - start;
        match memchr::memchr(b'\n', available) {
            Some(at) => {
                if held + at > cap {
                    return Ok(LineRead::TooLong);
                }
                line.extend_from_slice(&available[..=at]);
                reader.consume(at + 1);
                return Ok(LineRead::Line);
            }
            None => {
                let n = available.len();
                if held + n > cap {
                    return Ok(LineRead::TooLong);
                }
                line.extend_from_slice(available);
                reader.consume(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], cap: usize, buffer: usize) -> Vec<Result<Vec<u8>, LineRead>> {
        let mut reader = tokio::io::BufReader::with_capacity(buffer, input);
        let mut out = Vec::new();
        loop {
            let mut line = Vec::new();
            match read_line_capped(&mut reader, &mut line, cap).await.unwrap() {
                LineRead::End => return out,
                LineRead::Line => out.push(Ok(line)),
                LineRead::TooLong => {
                    // Refused before more than the cap was held.
                    assert!(line.len() <= cap, "{} bytes held", line.len());
                    out.push(Err(LineRead::TooLong));
                    return out;
                }
            }
        }
    }

    #[tokio::test]
    async fn lines_are_read_up_to_the_cap_and_no_further() {
        for buffer in [1, 3, 64] {
            assert_eq!(
                lines(b"ab\ncd\n\nlast", 4, buffer).await,
                vec![
                    Ok(b"ab\n".to_vec()),
                    Ok(b"cd\n".to_vec()),
                    Ok(b"\n".to_vec()),
                    Ok(b"last".to_vec())
                ],
                "{buffer}"
            );
            // Exactly the cap is fine, one byte more is not.
            assert_eq!(
                lines(b"abcd\n", 4, buffer).await,
                vec![Ok(b"abcd\n".to_vec())]
            );
            assert_eq!(
                lines(b"abcde\nx\n", 4, buffer).await,
                vec![Err(LineRead::TooLong)]
            );
            assert_eq!(
                lines(b"abcde", 4, buffer).await,
                vec![Err(LineRead::TooLong)]
            );
            assert_eq!(lines(b"", 4, buffer).await, vec![]);
        }
    }
}
