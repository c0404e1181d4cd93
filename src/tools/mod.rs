//! The tools: what each needs ([`spec`], read by the gate), how failures look
//! ([`ToolError`]), and one module per tool family.
//!
//! Tools never check authorization themselves: by the time one runs, the gate in
//! [`crate::server`] has verified the token and applied [`policy::authorize`].

pub mod auth;
pub mod buckets;
pub mod packages;
pub mod policy;
pub mod spec;
pub mod uri;

use rmcp::model::{CallToolResult, ContentBlock};
use serde::Serialize;
use serde_json::{Value, json};

pub use spec::{TOOLS, ToolSpec};

/// `structuredContent.error.code` of a failed tool (SPEC §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidArgument,
    NotFound,
    AccessDenied,
    Conflict,
    NotSupported,
    TooLarge,
    IntegrityError,
    Throttled,
    UpstreamError,
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
        }
    }
}

/// A tool that ran and failed: a result with `isError: true` (SPEC §7).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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

    /// `invalid_argument`.
    pub fn invalid(message: impl Into<String>) -> ToolError {
        ToolError::new(ErrorCode::InvalidArgument, message)
    }

    /// The MCP result.
    pub fn into_result(self) -> CallToolResult {
        let mut result = CallToolResult::error(vec![ContentBlock::text(format!(
            "Error ({}): {}",
            self.code.as_str(),
            self.message
        ))]);
        result.structured_content = Some(json!({
            "error": {
                "code": self.code.as_str(),
                "message": self.message,
                "retryable": self.retryable,
            }
        }));
        result
    }
}

/// A successful result: `structuredContent` plus a text rendering of it.
pub fn success(value: Value) -> CallToolResult {
    CallToolResult::structured(value)
}

/// Turns a tool's outcome into its MCP result.
pub fn finish(outcome: Result<Value, ToolError>) -> CallToolResult {
    match outcome {
        Ok(value) => success(value),
        Err(error) => error.into_result(),
    }
}
