//! The errors a tool call can end in, with the codes of the contract (docs/reference.md,
//! Errors).
//!
//! This is the leaf of the crate: it knows nothing of MCP, tokens or tools. A
//! [`ToolError`] is what a tool that ran and failed reports: a code, a message that
//! says what to do, and whether a retry can help; an [`ArgumentError`] is an argument
//! that does not parse, which becomes `invalid_argument`. [`scrub`] makes upstream
//! text fit to show. Messages never carry credentials.

use serde::Serialize;

/// `structuredContent.error.code` of a failed tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ErrorCode {
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
    /// The client cancelled the call; nothing was written.
    Cancelled,
    /// A fault inside the server; the call still gets an answer.
    InternalError,
}

impl ErrorCode {
    /// The code of the contract.
    pub(crate) fn as_str(self) -> &'static str {
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
            ErrorCode::Cancelled => "cancelled",
            ErrorCode::InternalError => "internal_error",
        }
    }
}

/// A tool that ran and failed: a result with `isError: true`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema, thiserror::Error)]
#[error("{message}")]
pub(crate) struct ToolError {
    /// The error code.
    pub code: ErrorCode,
    /// What went wrong and what to do, in plain words.
    pub message: String,
    /// Whether the same call may succeed later.
    pub retryable: bool,
    /// Set when an upstream refused the caller's credentials (the Quilt registry
    /// answering 401/403 to a search): the call is answered with -32001 and this
    /// reason and hint rather than with a failed result (docs/reference.md, Errors).
    #[serde(skip)]
    #[schemars(skip)]
    pub unauthorized: Option<Box<Unauthorized>>,
}

/// A refusal of the caller's credentials found while a tool ran: the -32001 error's
/// `reason` code, what happened and what to do. Built from reason codes, names and
/// statuses only: never a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unauthorized {
    /// The reason code (`registry_rejected`).
    pub reason: &'static str,
    /// What happened, without the `Unauthorized:` prefix.
    pub detail: String,
    /// What the user should do.
    pub hint: String,
}

impl ToolError {
    /// A non-retryable error.
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> ToolError {
        ToolError {
            code,
            message: message.into(),
            retryable: false,
            unauthorized: None,
        }
    }

    /// A retryable error.
    pub(crate) fn retryable(code: ErrorCode, message: impl Into<String>) -> ToolError {
        ToolError {
            code,
            message: message.into(),
            retryable: true,
            unauthorized: None,
        }
    }

    /// An upstream refused the caller's credentials: answered with -32001.
    pub(crate) fn unauthorized(refusal: Unauthorized) -> ToolError {
        ToolError {
            code: ErrorCode::AccessDenied,
            message: format!("Unauthorized: {}; {}", refusal.detail, refusal.hint),
            retryable: false,
            unauthorized: Some(Box::new(refusal)),
        }
    }

    /// `invalid_argument`.
    pub(crate) fn invalid(message: impl Into<String>) -> ToolError {
        ToolError::new(ErrorCode::InvalidArgument, message)
    }
}

/// An argument that does not parse: what is wrong with it, in plain words, without
/// echoing more than a short excerpt of it. The gate names the argument (its path in
/// the call's arguments) and makes it an `invalid_argument`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct ArgumentError(String);

impl ArgumentError {
    /// An argument error saying `message`.
    pub(crate) fn new(message: impl Into<String>) -> ArgumentError {
        ArgumentError(message.into())
    }

    /// The same error, prefixed with what it is about (`in "s3://…": …`).
    pub(crate) fn context(self, what: impl std::fmt::Display) -> ArgumentError {
        ArgumentError(format!("{what}: {}", self.0))
    }
}

impl From<ArgumentError> for ToolError {
    fn from(error: ArgumentError) -> ToolError {
        ToolError::invalid(error.0)
    }
}

/// An error and its sources, joined with `: `, without repeating a source that the
/// text before already contains, [`scrub`]bed: it is upstream text.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    scrub(&raw_chain(error))
}

fn raw_chain(error: &dyn std::error::Error) -> String {
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

/// What stands in for anything [`scrub`] removes.
pub(crate) const REDACTED: &str = "[redacted]";

/// Upstream text (from S3, STS, a registry, an HTTP stack) made fit for an error
/// message, a log line or a tool result (docs/reference.md, Logs): URLs lose their userinfo
/// (`scheme://user:pass@host` → `scheme://host`), and anything shaped like a JWT
/// (three dot-separated base64url segments, one starting `eyJ`), an AWS access key id
/// (`AKIA`/`ASIA` + 16 upper-case letters or digits) or a long secret-looking run (32 or
/// more base64 characters mixing upper case, lower case and digits) becomes
/// [`REDACTED`].
pub(crate) fn scrub(text: &str) -> String {
    let text = strip_userinfo(text);
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    for c in text.chars() {
        if is_token_char(c) {
            run.push(c);
        } else {
            scrub_run(&run, &mut out);
            run.clear();
            out.push(c);
        }
    }
    scrub_run(&run, &mut out);
    out
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '_' | '-' | '.')
}

/// `scheme://user:pass@host/…` → `scheme://host/…`, for every URL in `text`.
fn strip_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        let authority_end = after
            .find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace())
            .unwrap_or(after.len());
        let authority = &after[..authority_end];
        let host_start = authority.rfind('@').map_or(0, |i| i + 1);
        out.push_str(&authority[host_start..]);
        rest = &after[authority_end..];
    }
    out.push_str(rest);
    out
}

fn scrub_run(run: &str, out: &mut String) {
    if run.is_empty() {
        return;
    }
    let segments: Vec<&str> = run.split('.').collect();
    let jwt = segments.iter().filter(|s| !s.is_empty()).count() >= 3
        && segments.iter().any(|s| s.starts_with("eyJ"));
    if jwt {
        out.push_str(REDACTED);
        return;
    }
    for (i, segment) in segments.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        if looks_secret(segment) {
            out.push_str(REDACTED);
        } else {
            out.push_str(&strip_access_key_ids(segment));
        }
    }
}

/// 32 or more base64 characters with upper case, lower case and digits.
fn looks_secret(segment: &str) -> bool {
    segment.len() >= 32
        && segment.bytes().any(|b| b.is_ascii_uppercase())
        && segment.bytes().any(|b| b.is_ascii_lowercase())
        && segment.bytes().any(|b| b.is_ascii_digit())
}

/// `AKIA…`/`ASIA…` followed by 16 upper-case letters or digits, replaced.
fn strip_access_key_ids(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = String::with_capacity(segment.len());
    let mut i = 0;
    let mut copied = 0;
    while i + 20 <= bytes.len() {
        let head = &bytes[i..i + 4];
        let is_id = (head == b"AKIA" || head == b"ASIA")
            && bytes[i + 4..i + 20]
                .iter()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if is_id {
            out.push_str(&segment[copied..i]);
            out.push_str(REDACTED);
            i += 20;
            copied = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&segment[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_tokens_keys_secrets_and_userinfo() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ";
        let cases = [
            (
                format!("Invalid token {jwt}: not accepted"),
                "Invalid token [redacted]: not accepted".to_owned(),
            ),
            (
                format!("WebIdentityToken={jwt}."),
                "[redacted]".to_owned(),
            ),
            (
                "key AKIAIOSFODNN7EXAMPLE and ASIAXXXXXXXXXXXXXXXX!".to_owned(),
                "key [redacted] and [redacted]!".to_owned(),
            ),
            (
                "secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY here".to_owned(),
                "secret [redacted] here".to_owned(),
            ),
            (
                "error sending request for url (https://alice:pa55w0rd@registry.example.com/api/auth/get_credentials)".to_owned(),
                "error sending request for url (https://registry.example.com/api/auth/get_credentials)".to_owned(),
            ),
            (
                "http://user@host:8080 and ftp://a:b@c/d?e=f@g".to_owned(),
                "http://host:8080 and ftp://c/d?e=f@g".to_owned(),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(scrub(&input), expected, "{input}");
        }
        // Ordinary text, keys, hashes and URIs stay as they are.
        for plain in [
            "The specified key does not exist.",
            "s3://lab-data/runs/2026/a.csv",
            "the manifest hashes to 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "HTTP 503 SlowDown; x-amz-request-id 4442587FB7D0A2F9",
            "",
            "héllo wörld",
        ] {
            assert_eq!(scrub(plain), plain);
        }
    }
}
