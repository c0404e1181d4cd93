//! Bucket names and `s3://` URIs as tools accept them, and the typed arguments built
//! on them: a parameter of type [`Bucket`], [`ObjectUri`] or [`SourceUri`] is checked
//! once, when the call's arguments are parsed, and the gate authorizes exactly the
//! bucket the tool then uses.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;

/// An object URI: `s3://bucket/key` with a percent-encoded key and an optional
/// `?versionId=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Uri {
    /// The bucket.
    pub bucket: String,
    /// The key, decoded (may be empty for a bucket or prefix URI).
    pub key: String,
    /// The version id, decoded.
    pub version_id: Option<String>,
}

/// Checks a bucket name: 1–255 characters of letters, digits, `.`, `-` and `_`
/// (S3's rules plus the legacy names some older buckets still have).
pub fn check_bucket_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the bucket name is empty".to_owned());
    }
    if name.len() > 255 {
        return Err("the bucket name is longer than 255 characters".to_owned());
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(format!("the bucket name {name:?} contains {bad:?}"));
    }
    Ok(())
}

/// A bucket argument: `name`, `s3://name` or `s3://name/`.
pub fn parse_bucket(text: &str) -> Result<String, String> {
    let text = text.trim();
    let name = match text.strip_prefix("s3://") {
        Some(rest) => rest.strip_suffix('/').unwrap_or(rest),
        None if text.contains("://") => {
            return Err(format!(
                "{:?} is not a bucket name or an s3:// URI",
                short(text)
            ));
        }
        None => text,
    };
    check_bucket_name(name).map(|()| name.to_owned())
}

impl S3Uri {
    /// Parses `s3://bucket/key?versionId=…`; the key may be empty.
    pub fn parse(text: &str) -> Result<S3Uri, String> {
        let text = text.trim();
        let Some(rest) = text.strip_prefix("s3://") else {
            return Err(format!("{:?} is not an s3:// URI", short(text)));
        };
        let (path, query) = match rest.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (rest, None),
        };
        let (bucket, raw_key) = path.split_once('/').unwrap_or((path, ""));
        check_bucket_name(bucket).map_err(|e| format!("in {:?}: {e}", short(text)))?;
        let key = percent_decode_str(raw_key)
            .decode_utf8()
            .map_err(|_| {
                format!(
                    "the key in {:?} is not UTF-8 once percent-decoded",
                    short(text)
                )
            })?
            .into_owned();
        let mut version_id = None;
        if let Some(query) = query {
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                if name != "versionId" {
                    return Err(format!(
                        "{:?} has the query parameter {name:?}; only versionId is accepted",
                        short(text)
                    ));
                }
                let value = percent_decode_str(value)
                    .decode_utf8()
                    .map_err(|_| "the versionId is not UTF-8".to_owned())?
                    .into_owned();
                if value.is_empty() {
                    return Err(format!("{:?} has an empty versionId", short(text)));
                }
                version_id = Some(value);
            }
        }
        Ok(S3Uri {
            bucket: bucket.to_owned(),
            key,
            version_id,
        })
    }

    /// Parses an object URI: the key must not be empty.
    pub fn parse_object(text: &str) -> Result<S3Uri, String> {
        let uri = S3Uri::parse(text)?;
        if uri.key.is_empty() {
            return Err(format!(
                "{:?} names a bucket, not an object (expected s3://bucket/key)",
                short(text)
            ));
        }
        Ok(uri)
    }
}

impl std::fmt::Display for S3Uri {
    /// `s3://bucket/key`, with `?versionId=` when there is a version.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)?;
        if let Some(version) = &self.version_id {
            write!(f, "?versionId={version}")?;
        }
        Ok(())
    }
}

/// Typed arguments are strings in the input schema; the parse adds the checks.
macro_rules! string_argument {
    ($type:ident) => {
        impl JsonSchema for $type {
            fn inline_schema() -> bool {
                true
            }
            fn schema_name() -> Cow<'static, str> {
                Cow::Borrowed("string")
            }
            fn json_schema(generator: &mut SchemaGenerator) -> Schema {
                String::json_schema(generator)
            }
        }
    };
}

/// A bucket argument (`name` or `s3://name`), checked as it is parsed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Bucket(String);

impl Bucket {
    /// The bucket name.
    pub fn name(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Bucket {
    type Error = String;
    fn try_from(text: String) -> Result<Bucket, String> {
        parse_bucket(&text).map(Bucket)
    }
}
string_argument!(Bucket);

/// An object URI argument (`s3://bucket/key`, optionally `?versionId=`), checked as it
/// is parsed: the key is never empty.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ObjectUri(pub S3Uri);

impl TryFrom<String> for ObjectUri {
    type Error = String;
    fn try_from(text: String) -> Result<ObjectUri, String> {
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
pub struct SourceUri(pub S3Uri);

impl SourceUri {
    /// Whether it names a prefix (every object under it) rather than one object.
    pub fn is_prefix(&self) -> bool {
        self.0.key.is_empty() || self.0.key.ends_with('/')
    }
}

impl TryFrom<String> for SourceUri {
    type Error = String;
    fn try_from(text: String) -> Result<SourceUri, String> {
        let uri = S3Uri::parse(&text)?;
        let source = SourceUri(uri);
        if source.is_prefix() && source.0.version_id.is_some() {
            return Err(format!(
                "{:?}: a prefix cannot have a versionId",
                short(&text)
            ));
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

fn short(text: &str) -> String {
    text.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_arguments() {
        let cases: &[(&str, Result<&str, ()>)] = &[
            ("lab-data", Ok("lab-data")),
            ("s3://lab-data", Ok("lab-data")),
            ("s3://lab-data/", Ok("lab-data")),
            (" lab.data ", Ok("lab.data")),
            ("", Err(())),
            ("s3://", Err(())),
            ("s3://lab-data/runs", Err(())),
            ("https://lab-data", Err(())),
            ("lab data", Err(())),
        ];
        for (input, expected) in cases {
            assert_eq!(
                parse_bucket(input).map_err(|_| ()),
                expected.map(str::to_owned),
                "{input:?}"
            );
        }
    }

    #[test]
    fn object_uris() {
        let uri = S3Uri::parse_object("s3://b/dir/my%20file%3F.txt?versionId=abc%2B1").unwrap();
        assert_eq!(
            uri,
            S3Uri {
                bucket: "b".into(),
                key: "dir/my file?.txt".into(),
                version_id: Some("abc+1".into())
            }
        );
        assert_eq!(S3Uri::parse_object("s3://b/k").unwrap().version_id, None);
        assert_eq!(S3Uri::parse("s3://b").unwrap().key, "");
        for bad in [
            "b/k",
            "s3://b",
            "s3://b/",
            "s3:///k",
            "s3://b/k?v=1",
            "s3://b/k?versionId=",
            "s3://b/%ff",
        ] {
            assert!(S3Uri::parse_object(bad).is_err(), "{bad:?}");
        }
    }
}
