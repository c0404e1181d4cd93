//! S3 failures as tool errors (SPEC §7): what happened, whether a retry can help,
//! and what to do. Messages never carry credentials.

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use crate::tools::{ErrorCode, ToolError};

/// Maps an SDK error of `action` (such as `GetObject`) on `target` (an `s3://` URI).
pub fn s3_error<E>(action: &str, target: &str, error: &SdkError<E>) -> ToolError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let retryable = |code: ErrorCode, message: String| ToolError {
        code,
        message,
        retryable: true,
    };
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

fn chain(error: &dyn std::error::Error) -> String {
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
