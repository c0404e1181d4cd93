//! [`S3Error`]: one failed S3 request, classified once from what the SDK returned
//! ([`S3Error::from_sdk`]) and turned once into the [`ToolError`] a caller sees.
//! Callers decide on the [`S3ErrorKind`] (a missing pointer is `None`, a lost
//! conditional write is a race), never on status codes or error codes.

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use crate::error::{ErrorCode, ToolError, chain, scrub};

/// What kind of failure an S3 request ended in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum S3ErrorKind {
    /// The object or version does not exist (`NoSuchKey`, `NoSuchVersion`, HTTP 404).
    NotFound,
    /// The bucket does not exist (`NoSuchBucket`).
    NoSuchBucket,
    /// S3 refused the request (`AccessDenied`, a bad signature, HTTP 403).
    AccessDenied,
    /// The condition of a conditional request did not hold (HTTP 412).
    PreconditionFailed,
    /// A concurrent conditional write of the same key won (HTTP 409
    /// `ConditionalRequestConflict`).
    ConditionalConflict,
    /// The endpoint does not implement the request (HTTP 501 `NotImplemented`), such
    /// as conditional writes on some S3-compatible stores.
    NotImplemented,
    /// The requested byte range is outside the object (HTTP 416).
    InvalidRange,
    /// A read from `offset` of an object of `size` bytes, past its end.
    PastEnd {
        /// The offset asked for.
        offset: u64,
        /// The object's size.
        size: u64,
    },
    /// S3 is throttling (`SlowDown`, HTTP 429 or 503).
    Throttled,
    /// The bucket is in another region (HTTP 301 `PermanentRedirect`).
    WrongRegion,
    /// S3 rejected the request's arguments (`InvalidArgument`, `KeyTooLongError`, …).
    Rejected,
    /// S3 failed (HTTP 5xx).
    ServerError,
    /// Any other answer S3 gave.
    Other,
    /// The request timed out.
    Timeout,
    /// S3 could not be reached, or its answer could not be read.
    Unreachable,
    /// An object's body broke off midway.
    Interrupted,
    /// An object is larger than the cap of a capped read; it was not read further.
    OverCap {
        /// The cap, in bytes.
        cap: u64,
    },
    /// A presigned link for a key that HTTP clients would resolve to another path (a
    /// `.` or `..` segment): none is made.
    UnsafeLink,
    /// S3 answered something this server cannot use (an unreadable listing or
    /// `Content-Range`); `retryable` when it can be a passing fault.
    Malformed {
        /// What was wrong with it.
        problem: String,
        /// Whether a retry may help.
        retryable: bool,
    },
}

/// One S3 request that failed.
#[derive(Debug, thiserror::Error)]
#[error("{}", tool_error(self).message)]
pub(crate) struct S3Error {
    /// The S3 operation, such as `GetObject`.
    pub op: &'static str,
    /// What it was about: an `s3://` URI.
    pub target: String,
    /// What kind of failure.
    pub kind: S3ErrorKind,
    /// S3's error answer, when it gave one.
    pub answer: Option<Box<Answer>>,
    /// The underlying failure.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// An error answer of S3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    /// Its HTTP status.
    pub status: u16,
    /// Its error code, if any (upstream text: shown only [`scrub`]bed).
    pub code: Option<String>,
    /// Its error message, [`scrub`]bed.
    pub detail: Option<String>,
}

impl S3Error {
    /// An error of `kind` on `target` with no upstream answer behind it.
    pub(crate) fn new(op: &'static str, target: impl Into<String>, kind: S3ErrorKind) -> S3Error {
        S3Error {
            op,
            target: target.into(),
            kind,
            answer: None,
            source: None,
        }
    }

    /// An object body of `target` that broke off midway.
    pub(crate) fn interrupted(
        op: &'static str,
        target: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> S3Error {
        S3Error {
            source: Some(source.into()),
            ..S3Error::new(op, target, S3ErrorKind::Interrupted)
        }
    }

    /// Classifies what the SDK returned for `op` on `target`, once.
    pub(crate) fn from_sdk<E>(
        op: &'static str,
        target: impl Into<String>,
        error: SdkError<E>,
    ) -> S3Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let target = target.into();
        let (kind, answer) = match &error {
            SdkError::ServiceError(service) => {
                let status = service.raw().status().as_u16();
                let code = error.code().unwrap_or("");
                let answer = Answer {
                    status,
                    code: (!code.is_empty()).then(|| code.to_owned()),
                    detail: error.message().map(scrub),
                };
                (classify(code, status), Some(Box::new(answer)))
            }
            SdkError::TimeoutError(_) => (S3ErrorKind::Timeout, None),
            SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
                (S3ErrorKind::Unreachable, None)
            }
            _ => (S3ErrorKind::Other, None),
        };
        S3Error {
            op,
            target,
            kind,
            answer,
            source: Some(Box::new(error)),
        }
    }

    /// Whether the object (or version) does not exist.
    pub(crate) fn is_not_found(&self) -> bool {
        self.kind == S3ErrorKind::NotFound
    }
}

/// The kind of an S3 error answer, from its code and HTTP status.
fn classify(code: &str, status: u16) -> S3ErrorKind {
    match (code, status) {
        ("NoSuchKey" | "NotFound" | "NoSuchVersion", _) | ("", 404) => S3ErrorKind::NotFound,
        ("NoSuchBucket", _) => S3ErrorKind::NoSuchBucket,
        ("PreconditionFailed", _) | (_, 412) => S3ErrorKind::PreconditionFailed,
        ("ConditionalRequestConflict", _) => S3ErrorKind::ConditionalConflict,
        ("NotImplemented", _) | (_, 501) => S3ErrorKind::NotImplemented,
        (
            "AccessDenied" | "AllAccessDisabled" | "InvalidAccessKeyId" | "SignatureDoesNotMatch",
            _,
        )
        | (_, 403) => S3ErrorKind::AccessDenied,
        (
            "SlowDown"
            | "Throttling"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "TooManyRequests",
            _,
        )
        | (_, 429 | 503) => S3ErrorKind::Throttled,
        ("InvalidRange", _) | (_, 416) => S3ErrorKind::InvalidRange,
        ("PermanentRedirect" | "AuthorizationHeaderMalformed", _) | (_, 301) => {
            S3ErrorKind::WrongRegion
        }
        (
            "InvalidArgument" | "InvalidRequest" | "KeyTooLongError" | "EntityTooLarge"
            | "InvalidBucketName",
            _,
        ) => S3ErrorKind::Rejected,
        (_, 500..=599) => S3ErrorKind::ServerError,
        _ => S3ErrorKind::Other,
    }
}

/// The tool error of an S3 failure: what a caller sees (docs/reference.md, Errors).
fn tool_error(error: &S3Error) -> ToolError {
    let S3Error {
        op,
        target,
        kind,
        answer,
        source,
    } = error;
    let answer = answer.as_deref();
    let detail = answer
        .and_then(|a| a.detail.as_deref())
        .map(|m| format!(" ({m})"))
        .unwrap_or_default();
    let status = answer.map_or(0, |a| a.status);
    let code = answer.and_then(|a| a.code.as_deref());
    let cause = || {
        source
            .as_deref()
            .map(|s| chain(s as &dyn std::error::Error))
            .unwrap_or_default()
    };
    let fail = ToolError::new;
    let retry = ToolError::retryable;
    match kind {
        S3ErrorKind::NotFound => fail(ErrorCode::NotFound, format!("{target} does not exist")),
        S3ErrorKind::NoSuchBucket => fail(
            ErrorCode::NotFound,
            format!("the bucket of {target} does not exist"),
        ),
        S3ErrorKind::AccessDenied => fail(
            ErrorCode::AccessDenied,
            format!(
                "S3 denied {op} on {target}{detail}: the IAM role behind the token lacks this permission, or a bucket policy refuses it; ask the Quilt administrator"
            ),
        ),
        S3ErrorKind::Throttled => retry(
            ErrorCode::Throttled,
            format!("S3 is throttling {op} on {target}{detail}; retry in a few seconds"),
        ),
        S3ErrorKind::InvalidRange => fail(
            ErrorCode::InvalidArgument,
            format!("the requested range is outside {target}"),
        ),
        S3ErrorKind::PastEnd { offset, size } => fail(
            ErrorCode::InvalidArgument,
            format!("offset {offset} is past the end of {target}, which has {size} bytes"),
        ),
        S3ErrorKind::WrongRegion => fail(
            ErrorCode::UpstreamError,
            format!(
                "S3 refused {op} on {target}: the bucket is in another region; set QUILT_MCP_AWS_REGION or put the region in the token"
            ),
        ),
        S3ErrorKind::Rejected => fail(
            ErrorCode::InvalidArgument,
            format!("S3 rejected {op} on {target}{detail}"),
        ),
        S3ErrorKind::PreconditionFailed | S3ErrorKind::ConditionalConflict => fail(
            ErrorCode::Conflict,
            format!("{target} changed meanwhile: S3 refused the conditional {op}{detail}"),
        ),
        S3ErrorKind::NotImplemented => fail(
            ErrorCode::NotSupported,
            format!("the S3 endpoint does not implement {op} as asked for {target}{detail}"),
        ),
        S3ErrorKind::ServerError => retry(
            ErrorCode::UpstreamError,
            format!("S3 failed {op} on {target} with HTTP {status}{detail}; retry later"),
        ),
        S3ErrorKind::Other if status != 0 => fail(
            ErrorCode::UpstreamError,
            format!(
                "S3 failed {op} on {target}: {} HTTP {status}{detail}",
                scrub(code.unwrap_or(""))
            ),
        ),
        S3ErrorKind::Other => fail(
            ErrorCode::UpstreamError,
            format!("{op} on {target} failed: {}", cause()),
        ),
        S3ErrorKind::Timeout => retry(
            ErrorCode::UpstreamError,
            format!("{op} on {target} timed out"),
        ),
        S3ErrorKind::Unreachable => retry(
            ErrorCode::UpstreamError,
            format!("S3 could not be reached for {op} on {target}: {}", cause()),
        ),
        S3ErrorKind::Interrupted => retry(
            ErrorCode::UpstreamError,
            format!("reading {target} was interrupted: {}", cause()),
        ),
        S3ErrorKind::OverCap { cap } => fail(
            ErrorCode::TooLarge,
            format!("{target} is larger than {cap} bytes, more than is read"),
        ),
        S3ErrorKind::UnsafeLink => fail(
            ErrorCode::InvalidArgument,
            format!(
                "the key of {target} has a `.` or `..` segment, which browsers and HTTP clients resolve to another path (even another bucket); no link is made for it"
            ),
        ),
        S3ErrorKind::Malformed { problem, retryable } => ToolError {
            code: ErrorCode::UpstreamError,
            message: format!("{op} on {target}: {problem}"),
            retryable: *retryable,
            unauthorized: None,
        },
    }
}

impl From<S3Error> for ToolError {
    fn from(error: S3Error) -> ToolError {
        tool_error(&error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_by_code_then_status() {
        let cases = [
            ("NoSuchKey", 404, S3ErrorKind::NotFound),
            ("", 404, S3ErrorKind::NotFound),
            ("NoSuchVersion", 400, S3ErrorKind::NotFound),
            ("NoSuchBucket", 404, S3ErrorKind::NoSuchBucket),
            ("AccessDenied", 403, S3ErrorKind::AccessDenied),
            ("", 403, S3ErrorKind::AccessDenied),
            ("SignatureDoesNotMatch", 403, S3ErrorKind::AccessDenied),
            ("PreconditionFailed", 412, S3ErrorKind::PreconditionFailed),
            ("", 412, S3ErrorKind::PreconditionFailed),
            (
                "ConditionalRequestConflict",
                409,
                S3ErrorKind::ConditionalConflict,
            ),
            ("NotImplemented", 501, S3ErrorKind::NotImplemented),
            ("", 501, S3ErrorKind::NotImplemented),
            ("SlowDown", 503, S3ErrorKind::Throttled),
            ("", 429, S3ErrorKind::Throttled),
            ("InvalidRange", 416, S3ErrorKind::InvalidRange),
            ("", 416, S3ErrorKind::InvalidRange),
            ("PermanentRedirect", 301, S3ErrorKind::WrongRegion),
            ("KeyTooLongError", 400, S3ErrorKind::Rejected),
            ("InternalError", 500, S3ErrorKind::ServerError),
            ("Weird", 400, S3ErrorKind::Other),
        ];
        for (code, status, kind) in cases {
            assert_eq!(classify(code, status), kind, "{code} {status}");
        }
    }

    #[test]
    fn each_kind_maps_to_its_tool_error() {
        let error = |kind| S3Error {
            answer: Some(Box::new(Answer {
                status: 400,
                code: Some("Told".into()),
                detail: Some("told".into()),
            })),
            ..S3Error::new("GetObject", "s3://b/k", kind)
        };
        let cases = [
            (S3ErrorKind::NotFound, ErrorCode::NotFound, false),
            (S3ErrorKind::NoSuchBucket, ErrorCode::NotFound, false),
            (S3ErrorKind::AccessDenied, ErrorCode::AccessDenied, false),
            (S3ErrorKind::Throttled, ErrorCode::Throttled, true),
            (S3ErrorKind::InvalidRange, ErrorCode::InvalidArgument, false),
            (
                S3ErrorKind::PastEnd { offset: 9, size: 3 },
                ErrorCode::InvalidArgument,
                false,
            ),
            (S3ErrorKind::WrongRegion, ErrorCode::UpstreamError, false),
            (S3ErrorKind::Rejected, ErrorCode::InvalidArgument, false),
            (S3ErrorKind::PreconditionFailed, ErrorCode::Conflict, false),
            (S3ErrorKind::ConditionalConflict, ErrorCode::Conflict, false),
            (S3ErrorKind::NotImplemented, ErrorCode::NotSupported, false),
            (S3ErrorKind::ServerError, ErrorCode::UpstreamError, true),
            (S3ErrorKind::Other, ErrorCode::UpstreamError, false),
            (S3ErrorKind::Timeout, ErrorCode::UpstreamError, true),
            (S3ErrorKind::Unreachable, ErrorCode::UpstreamError, true),
            (S3ErrorKind::Interrupted, ErrorCode::UpstreamError, true),
            (S3ErrorKind::OverCap { cap: 8 }, ErrorCode::TooLarge, false),
            (S3ErrorKind::UnsafeLink, ErrorCode::InvalidArgument, false),
            (
                S3ErrorKind::Malformed {
                    problem: "bad".into(),
                    retryable: true,
                },
                ErrorCode::UpstreamError,
                true,
            ),
        ];
        for (kind, code, retryable) in cases {
            let text = format!("{kind:?}");
            let error = error(kind);
            let shown = error.to_string();
            let tool = ToolError::from(error);
            assert_eq!((tool.code, tool.retryable), (code, retryable), "{text}");
            assert_eq!(tool.message, shown, "{text}");
            assert!(
                tool.message.contains("s3://b/k"),
                "{text}: {}",
                tool.message
            );
        }
    }
}
