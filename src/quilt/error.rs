//! What can go wrong reading or writing a registry, in the package format's own
//! terms; [`From`] turns each into the tool error a caller sees.

use crate::error::{ErrorCode, ToolError};
use crate::s3::S3Error;

/// A registry read or write that failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum QuiltError {
    /// An S3 request failed; the S3 failure is already classified.
    #[error(transparent)]
    S3(#[from] S3Error),
    /// A package, revision or object does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A name, hash or key given by the caller is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// Stored data is corrupt or was altered.
    #[error("{0}")]
    Integrity(String),
    /// The registry changed while a revision was being published.
    #[error("{0}")]
    Conflict(String),
    /// The registry needs something this server does not do.
    #[error("{0}")]
    NotSupported(String),
    /// Over a size limit.
    #[error("{0}")]
    TooLarge(String),
    /// The caller may not read something the registry points at (a workflow
    /// schema in a bucket the token does not grant).
    #[error("{0}")]
    Denied(String),
    /// A fault inside the server.
    #[error("{0}")]
    Internal(String),
    /// A source changed while it was read.
    #[error("{0}")]
    Changed(String),
    /// The client cancelled the operation; nothing was written.
    #[error("cancelled by the client; nothing was written")]
    Cancelled,
    /// A stream from S3 broke off.
    #[error("reading {target} was interrupted: {source}")]
    Interrupted {
        /// What was being read.
        target: String,
        /// Why it stopped.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl QuiltError {
    /// A read of `target` that broke off.
    pub(crate) fn interrupted(
        target: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> QuiltError {
        QuiltError::Interrupted {
            target: target.into(),
            source: source.into(),
        }
    }
}

impl From<QuiltError> for ToolError {
    fn from(error: QuiltError) -> ToolError {
        let message = error.to_string();
        match error {
            QuiltError::S3(error) => error.into(),
            QuiltError::NotFound(_) => ToolError::new(ErrorCode::NotFound, message),
            QuiltError::Invalid(_) => ToolError::invalid(message),
            QuiltError::Integrity(_) => ToolError::new(ErrorCode::IntegrityError, message),
            QuiltError::Conflict(_) => ToolError::new(ErrorCode::Conflict, message),
            QuiltError::NotSupported(_) => ToolError::new(ErrorCode::NotSupported, message),
            QuiltError::TooLarge(_) => ToolError::new(ErrorCode::TooLarge, message),
            QuiltError::Denied(_) => ToolError::new(ErrorCode::AccessDenied, message),
            QuiltError::Internal(_) => ToolError::new(ErrorCode::InternalError, message),
            QuiltError::Cancelled => ToolError::new(ErrorCode::Cancelled, message),
            QuiltError::Changed(_) | QuiltError::Interrupted { .. } => {
                ToolError::retryable(ErrorCode::UpstreamError, message)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_keeps_its_code() {
        let cases = [
            (QuiltError::NotFound("x".into()), ErrorCode::NotFound, false),
            (
                QuiltError::Invalid("x".into()),
                ErrorCode::InvalidArgument,
                false,
            ),
            (
                QuiltError::Integrity("x".into()),
                ErrorCode::IntegrityError,
                false,
            ),
            (QuiltError::Conflict("x".into()), ErrorCode::Conflict, false),
            (
                QuiltError::NotSupported("x".into()),
                ErrorCode::NotSupported,
                false,
            ),
            (QuiltError::TooLarge("x".into()), ErrorCode::TooLarge, false),
            (
                QuiltError::Denied("x".into()),
                ErrorCode::AccessDenied,
                false,
            ),
            (
                QuiltError::Internal("x".into()),
                ErrorCode::InternalError,
                false,
            ),
            (
                QuiltError::Changed("x".into()),
                ErrorCode::UpstreamError,
                true,
            ),
            (QuiltError::Cancelled, ErrorCode::Cancelled, false),
            (
                QuiltError::interrupted("s3://b/k", std::io::Error::other("reset")),
                ErrorCode::UpstreamError,
                true,
            ),
        ];
        for (error, code, retryable) in cases {
            let text = error.to_string();
            let tool = ToolError::from(error);
            assert_eq!((tool.code, tool.retryable), (code, retryable), "{text}");
            assert_eq!(tool.message, text);
        }
    }
}
