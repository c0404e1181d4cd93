//! The errors a tool call can end in, with the codes of the contract (SPEC §6.1, §7).
//!
//! This is the leaf of the crate: it knows nothing of MCP, tokens or tools. A
//! [`ToolError`] is what a tool that ran and failed reports: a code, a message that
//! says what to do, and whether a retry can help. [`s3_error`] classifies S3 failures
//! once, for every layer that talks to S3. Messages never carry credentials.

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use serde::Serialize;

/// `structuredContent.error.code` of a failed tool (SPEC §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// An argument is missing, malformed or out of range.
    InvalidArgument,
    /// The object, package or revision does not exist.
    NotFound,
    /// AWS refused the request.
    AccessDenied,
    /// Someone else changed the thing meanwhile.
    Conflict,
    /// The request is valid but not something this server does.
    NotSupported,
    /// Over a size limit.
    TooLarge,
    /// Stored data is corrupt or altered.
    IntegrityError,
    /// AWS is throttling.
    Throttled,
    /// AWS, STS or the registry failed.
    UpstreamError,
    /// A fault inside the server; the call still gets an answer.
    InternalError,
}

impl ErrorCode {
    /// The code of the contract.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::NotFound => "not_found",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::Conflict => "conflict",
            ErrorCode::NotSupported => "not_supported",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::IntegrityError => "integrity_error",
            ErrorCode::Throttled => "throttled",
            ErrorCode::UpstreamError => "upstream_error",
            ErrorCode::InternalError => "internal_error",
        }
    }
}

/// A tool that ran and failed: a result with `isError: true` (SPEC §7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema, thiserror::Error)]
#[error("{message}")]
pub struct ToolError {
    /// The error code.
    pub code: ErrorCode,
    /// What went wrong and what to do, in plain words.
    pub message: String,
    /// Whether the same call may succeed later.
    pub retryable: bool,
}

impl ToolError {
    /// A non-retryable error.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ToolError {
        ToolError {
            code,
            message: message.into(),
            retryable: false,
        }
    }

    /// A retryable error.
    pub fn retryable(code: ErrorCode, message: impl Into<String>) -> ToolError {
        ToolError {
            code,
            message: message.into(),
            retryable: true,
        }
    }

    /// `invalid_argument`.
    pub fn invalid(message: impl Into<String>) -> ToolError {
        ToolError::new(ErrorCode::InvalidArgument, message)
    }

    /// A read of `target` that broke off midway: retryable `upstream_error`.
    pub fn interrupted(target: &str, error: &dyn std::error::Error) -> ToolError {
        ToolError::retryable(
            ErrorCode::UpstreamError,
            format!("reading {target} was interrupted: {}", chain(error)),
        )
    }
}

/// Maps an S3 SDK error of `action` (such as `GetObject`) on `target` (an `s3://`
/// URI) to the tool error the caller sees.
pub(crate) fn s3_error<E>(action: &str, target: &str, error: &SdkError<E>) -> ToolError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let retryable = ToolError::retryable;
    match error {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = error.code().unwrap_or("");
            let detail = error
                .message()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default();
            match (code, status) {
                ("NoSuchKey" | "NotFound" | "NoSuchVersion", _) | ("", 404) => {
                    ToolError::new(ErrorCode::NotFound, format!("{target} does not exist"))
                }
                ("NoSuchBucket", _) => ToolError::new(
                    ErrorCode::NotFound,
                    format!("the bucket of {target} does not exist"),
                ),
                (
                    "AccessDenied"
                    | "AllAccessDisabled"
                    | "InvalidAccessKeyId"
                    | "SignatureDoesNotMatch",
                    _,
                )
                | (_, 403) => ToolError::new(
                    ErrorCode::AccessDenied,
                    format!(
                        "S3 denied {action} on {target}{detail}: the IAM role behind the token lacks this permission, or a bucket policy refuses it; ask the Quilt administrator"
                    ),
                ),
                (
                    "SlowDown"
                    | "Throttling"
                    | "ThrottlingException"
                    | "RequestLimitExceeded"
                    | "TooManyRequests",
                    _,
                )
                | (_, 429 | 503) => retryable(
                    ErrorCode::Throttled,
                    format!(
                        "S3 is throttling {action} on {target}{detail}; retry in a few seconds"
                    ),
                ),
                ("InvalidRange", _) | (_, 416) => ToolError::new(
                    ErrorCode::InvalidArgument,
                    format!("the requested range is outside {target}"),
                ),
                ("PermanentRedirect" | "AuthorizationHeaderMalformed", _) | (_, 301) => {
                    ToolError::new(
                        ErrorCode::UpstreamError,
                        format!(
                            "S3 refused {action} on {target}: the bucket is in another region; set QUILT_MCP_AWS_REGION or put the region in the token"
                        ),
                    )
                }
                (
                    "InvalidArgument" | "InvalidRequest" | "KeyTooLongError" | "EntityTooLarge"
                    | "InvalidBucketName",
                    _,
                ) => ToolError::new(
                    ErrorCode::InvalidArgument,
                    format!("S3 rejected {action} on {target}{detail}"),
                ),
                (_, 500..=599) => retryable(
                    ErrorCode::UpstreamError,
                    format!(
                        "S3 failed {action} on {target} with HTTP {status}{detail}; retry later"
                    ),
                ),
                _ => ToolError::new(
                    ErrorCode::UpstreamError,
                    format!("S3 failed {action} on {target}: {code} HTTP {status}{detail}"),
                ),
            }
        }
        SdkError::TimeoutError(_) => retryable(
            ErrorCode::UpstreamError,
            format!("{action} on {target} timed out"),
        ),
        SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => retryable(
            ErrorCode::UpstreamError,
            format!(
                "S3 could not be reached for {action} on {target}: {}",
                chain(error)
            ),
        ),
        _ => ToolError::new(
            ErrorCode::UpstreamError,
            format!("{action} on {target} failed: {}", chain(error)),
        ),
    }
}

/// An error and its sources, joined with `: `, without repeating a source that the
/// text before already contains.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}
