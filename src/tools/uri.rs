//! Bucket names and `s3://` URIs as tools accept them, and the typed arguments built
//! on them: a parameter of type [`Bucket`], [`ObjectUri`] or [`SourceUri`] is checked
//! once, when the call's arguments are parsed, and the gate authorizes exactly the
//! bucket the tool then uses.

use serde::{Deserialize, Deserializer};

use crate::error::ArgumentError;
pub(crate) use crate::s3::uri::{MAX_KEY_BYTES, S3Uri, check_s3_name, parse_bucket, short};

/// The most bytes of a continuation token handed back to S3.
pub(crate) const MAX_TOKEN_BYTES: usize = 4096;

/// Typed arguments are strings in the input schema; the parse adds the checks.
macro_rules! string_argument {
    ($type:ty) => {
        impl ::schemars::JsonSchema for $type {
            fn inline_schema() -> bool {
                true
            }
            fn schema_name() -> ::std::borrow::Cow<'static, str> {
                ::std::borrow::Cow::Borrowed("string")
            }
            fn json_schema(generator: &mut ::schemars::SchemaGenerator) -> ::schemars::Schema {
                <String as ::schemars::JsonSchema>::json_schema(generator)
            }
        }
    };
}
pub(crate) use string_argument;

/// The input schema of parameters checked together once each has parsed: `$params`
/// deserializes as `$args` and then `TryFrom<$args>` (`#[serde(try_from)]`), so that a
/// combination that cannot work is an `invalid_argument` of the gate's one parse,
/// before any request; its schema is `$args`'s.
macro_rules! checked_params {
    ($params:ident, $args:ident) => {
        impl ::schemars::JsonSchema for $params {
            fn inline_schema() -> bool {
                <$args as ::schemars::JsonSchema>::inline_schema()
            }
            fn schema_name() -> std::borrow::Cow<'static, str> {
                <$args as ::schemars::JsonSchema>::schema_name()
            }
            fn json_schema(generator: &mut ::schemars::SchemaGenerator) -> ::schemars::Schema {
                <$args as ::schemars::JsonSchema>::json_schema(generator)
            }
        }
    };
}
pub(crate) use checked_params;

/// A bucket argument (`name` or `s3://name`), checked as it is parsed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct Bucket(String);

impl Bucket {
    /// The bucket name.
    pub(crate) fn name(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Bucket {
    type Error = ArgumentError;
    fn try_from(text: String) -> Result<Bucket, ArgumentError> {
        parse_bucket(&text).map(Bucket)
    }
}
string_argument!(Bucket);

/// An object URI argument (`s3://bucket/key`, optionally `?versionId=`), checked as it
/// is parsed: the key is never empty.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct ObjectUri(pub S3Uri);

impl TryFrom<String> for ObjectUri {
    type Error = ArgumentError;
    fn try_from(text: String) -> Result<ObjectUri, ArgumentError> {
        S3Uri::parse_object(&text).map(ObjectUri)
    }
}
string_argument!(ObjectUri);

impl std::ops::Deref for ObjectUri {
    type Target = S3Uri;
    fn deref(&self) -> &S3Uri {
        &self.0
    }
}

/// A URI argument that names an object or, with an empty key or one ending in `/`, a
/// prefix.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct SourceUri(pub S3Uri);

impl SourceUri {
    /// Whether it names a prefix (every object under it) rather than one object.
    pub(crate) fn is_prefix(&self) -> bool {
        self.0.key.is_empty() || self.0.key.ends_with('/')
    }
}

impl TryFrom<String> for SourceUri {
    type Error = ArgumentError;
    fn try_from(text: String) -> Result<SourceUri, ArgumentError> {
        let uri = S3Uri::parse(&text)?;
        let source = SourceUri(uri);
        if source.is_prefix() && source.0.version_id.is_some() {
            return Err(ArgumentError::new(format!(
                "{:?}: a prefix cannot have a versionId",
                short(&text)
            )));
        }
        Ok(source)
    }
}
string_argument!(SourceUri);

impl std::ops::Deref for SourceUri {
    type Target = S3Uri;
    fn deref(&self) -> &S3Uri {
        &self.0
    }
}

/// An S3 key, prefix or delimiter argument: at most 1024 bytes of UTF-8, no NUL,
/// checked as it is parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct S3Name(String);

impl S3Name {
    /// The text.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// The text, owned.
    pub(crate) fn into_string(self) -> String {
        self.0
    }
}

impl TryFrom<String> for S3Name {
    type Error = ArgumentError;
    fn try_from(text: String) -> Result<S3Name, ArgumentError> {
        check_s3_name("the name", &text)?;
        Ok(S3Name(text))
    }
}
string_argument!(S3Name);

/// A continuation token handed back to S3: at most [`MAX_TOKEN_BYTES`] bytes, no NUL.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct ContinuationToken(String);

impl ContinuationToken {
    /// The token.
    pub(crate) fn into_string(self) -> String {
        self.0
    }
}

impl TryFrom<String> for ContinuationToken {
    type Error = ArgumentError;
    fn try_from(text: String) -> Result<ContinuationToken, ArgumentError> {
        if text.len() > MAX_TOKEN_BYTES {
            return Err(ArgumentError::new(format!(
                "the token is {} bytes long; continuation tokens are at most {MAX_TOKEN_BYTES} bytes",
                text.len()
            )));
        }
        if text.contains('\0') {
            return Err(ArgumentError::new("the token holds a NUL character"));
        }
        Ok(ContinuationToken(text))
    }
}
string_argument!(ContinuationToken);

/// An object URI to make a presigned link for: an [`ObjectUri`] whose key has no `.`
/// or `..` segment, which browsers and HTTP clients would resolve to another path
/// (from a path-style endpoint, another bucket's object).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct LinkUri(pub S3Uri);

impl TryFrom<String> for LinkUri {
    type Error = ArgumentError;
    fn try_from(text: String) -> Result<LinkUri, ArgumentError> {
        let uri = S3Uri::parse_object(&text)?;
        if uri.key_moves_in_urls() {
            return Err(ArgumentError::new(format!(
                "the key of {:?} has a `.` or `..` segment, which browsers and HTTP clients resolve to another path (even another bucket); no link is made for it",
                short(&text)
            )));
        }
        Ok(LinkUri(uri))
    }
}
string_argument!(LinkUri);

impl std::ops::Deref for LinkUri {
    type Target = S3Uri;
    fn deref(&self) -> &S3Uri {
        &self.0
    }
}

/// An integer argument from `MIN` to `MAX`, checked as it is parsed; in the input
/// schema an `integer` with that `minimum` and `maximum`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "i128")]
pub(crate) struct Bounded<const MIN: u64, const MAX: u64>(u64);

impl<const MIN: u64, const MAX: u64> Bounded<MIN, MAX> {
    /// The value.
    pub(crate) const fn get(self) -> u64 {
        self.0
    }

    /// The value as a `usize` (saturating on a 32-bit target).
    pub(crate) fn get_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

impl<const MIN: u64, const MAX: u64> TryFrom<i128> for Bounded<MIN, MAX> {
    type Error = ArgumentError;
    fn try_from(value: i128) -> Result<Self, ArgumentError> {
        match u64::try_from(value) {
            Ok(v) if (MIN..=MAX).contains(&v) => Ok(Bounded(v)),
            _ => Err(ArgumentError::new(format!(
                "must be from {MIN} to {MAX}, not {value}"
            ))),
        }
    }
}

impl<const MIN: u64, const MAX: u64> schemars::JsonSchema for Bounded<MIN, MAX> {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Owned(format!("Integer_{MIN}_{MAX}"))
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "integer", "minimum": MIN, "maximum": MAX})
    }
}

/// The largest byte offset accepted: S3 sizes are signed 64-bit numbers.
pub(crate) const MAX_OFFSET: u64 = i64::MAX as u64;

/// A byte offset into an object, at most [`MAX_OFFSET`] (so that an offset plus a
/// read length never overflows), checked as it is parsed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "i128")]
pub(crate) struct Offset(u64);

impl Offset {
    /// The offset.
    pub(crate) const fn get(self) -> u64 {
        self.0
    }
}

impl TryFrom<i128> for Offset {
    type Error = ArgumentError;
    fn try_from(value: i128) -> Result<Offset, ArgumentError> {
        match u64::try_from(value) {
            Ok(v) if v <= MAX_OFFSET => Ok(Offset(v)),
            _ => Err(ArgumentError::new(format!(
                "must be from 0 to {MAX_OFFSET}, not {value}"
            ))),
        }
    }
}

impl schemars::JsonSchema for Offset {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("Offset")
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "integer", "minimum": 0})
    }
}

/// A text encoding `bucket_object_text` decodes: `utf-8`, `latin-1` or `ascii`, under
/// any of their usual names (`UTF8`, `ISO-8859-1`, `us-ascii`, …).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub(crate) enum TextEncoding {
    /// UTF-8.
    #[default]
    Utf8,
    /// ISO-8859-1: every byte is a character.
    Latin1,
    /// 7-bit ASCII.
    Ascii,
}

impl TextEncoding {
    /// Its name in results.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            TextEncoding::Utf8 => "utf-8",
            TextEncoding::Latin1 => "latin-1",
            TextEncoding::Ascii => "ascii",
        }
    }
}

impl TryFrom<String> for TextEncoding {
    type Error = ArgumentError;
    fn try_from(name: String) -> Result<TextEncoding, ArgumentError> {
        let normal = name.trim().to_ascii_lowercase().replace('_', "-");
        match normal.as_str() {
            "utf8" | "utf-8" => Ok(TextEncoding::Utf8),
            "latin1" | "latin-1" | "iso-8859-1" | "iso8859-1" => Ok(TextEncoding::Latin1),
            "ascii" | "us-ascii" => Ok(TextEncoding::Ascii),
            _ => Err(ArgumentError::new(format!(
                "unsupported encoding {:?}; use utf-8, latin-1 or ascii",
                short(&name)
            ))),
        }
    }
}
string_argument!(TextEncoding);

string_argument!(crate::quilt::PackageName);
string_argument!(crate::quilt::NewPackageName);
string_argument!(crate::quilt::HashPrefix);

/// For an optional argument where an empty (or blank) string means "not given", as
/// `top_hash: ""` does: `None` for those, else the parsed value.
pub(crate) fn blank_is_none<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<String>,
    T::Error: std::fmt::Display,
{
    let text: Option<String> = Option::deserialize(deserializer)?;
    match text {
        Some(text) if !text.trim().is_empty() => T::try_from(text)
            .map(Some)
            .map_err(serde::de::Error::custom),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_names_and_tokens_are_bounded() {
        let at_limit = "k".repeat(MAX_KEY_BYTES);
        assert!(S3Name::try_from(at_limit.clone()).is_ok());
        assert!(S3Name::try_from(format!("{at_limit}x")).is_err());
        assert!(S3Name::try_from("a\0b".to_owned()).is_err());
        assert!(ContinuationToken::try_from("t".repeat(MAX_TOKEN_BYTES)).is_ok());
        assert!(ContinuationToken::try_from("t".repeat(MAX_TOKEN_BYTES + 1)).is_err());
        assert!(
            SourceUri::try_from("s3://b/dir/".to_owned())
                .unwrap()
                .is_prefix()
        );
        assert!(SourceUri::try_from("s3://b/dir/?versionId=1".to_owned()).is_err());
    }

    #[test]
    fn integers_are_checked_against_their_range() {
        type Keys = Bounded<1, 1000>;
        let parse = |v: serde_json::Value| serde_json::from_value::<Keys>(v);
        assert_eq!(parse(serde_json::json!(1)).unwrap().get(), 1);
        assert_eq!(parse(serde_json::json!(1000)).unwrap().get(), 1000);
        for bad in [
            serde_json::json!(0),
            serde_json::json!(1001),
            serde_json::json!(-5),
            serde_json::json!(1.5),
            serde_json::json!("10"),
            serde_json::json!(u64::MAX),
        ] {
            assert!(parse(bad.clone()).is_err(), "{bad}");
        }
        let message = parse(serde_json::json!(0)).unwrap_err().to_string();
        assert!(
            message.contains("must be from 1 to 1000, not 0"),
            "{message}"
        );
        assert_eq!(
            Offset::try_from(i128::from(i64::MAX)).unwrap().get(),
            MAX_OFFSET
        );
        assert!(Offset::try_from(i128::from(u64::MAX - 4)).is_err());
        assert!(Offset::try_from(-1).is_err());
    }

    #[test]
    fn encodings_have_their_usual_names() {
        let cases = [
            ("utf-8", Some(TextEncoding::Utf8)),
            ("UTF8", Some(TextEncoding::Utf8)),
            ("ISO_8859-1", Some(TextEncoding::Latin1)),
            ("latin1", Some(TextEncoding::Latin1)),
            ("US-ASCII", Some(TextEncoding::Ascii)),
            ("ebcdic", None),
            ("", None),
        ];
        for (name, expected) in cases {
            assert_eq!(
                TextEncoding::try_from(name.to_owned()).ok(),
                expected,
                "{name}"
            );
        }
    }

    /// A link for a key with a dot segment would be fetched as another object.
    #[test]
    fn link_uris_refuse_keys_that_move_in_urls() {
        assert!(LinkUri::try_from("s3://qa-alpha/../qa-beta/secret.txt".to_owned()).is_err());
        assert!(LinkUri::try_from("s3://b/a/./k".to_owned()).is_err());
        assert!(LinkUri::try_from("s3://b/a/..".to_owned()).is_err());
        assert!(LinkUri::try_from("s3://b/a/...b/k".to_owned()).is_ok());
        assert!(LinkUri::try_from("s3://b/a/b.txt?versionId=1".to_owned()).is_ok());
    }
}
