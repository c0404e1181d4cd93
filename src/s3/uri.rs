//! Bucket names, S3 names and `s3://` URIs: parsed and checked once, and written back
//! so that what the server emits names the same object when it is passed back
//! (docs/reference.md, Tools: "S3 names").

use percent_encoding::percent_decode_str;

use crate::error::ArgumentError;

/// An object URI: `s3://bucket/key` with a percent-encoded key and an optional
/// `?versionId=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct S3Uri {
    /// The bucket.
    pub bucket: String,
    /// The key, decoded (may be empty for a bucket or prefix URI).
    pub key: String,
    /// The version id, decoded.
    pub version_id: Option<String>,
}

/// The most bytes (UTF-8) of an S3 key or prefix (S3's own limit).
pub(crate) const MAX_KEY_BYTES: usize = 1024;

/// Checks an S3 name (a key, prefix or delimiter): at most [`MAX_KEY_BYTES`] bytes of
/// UTF-8 and no NUL (docs/reference.md, Tools: "S3 names").
pub(crate) fn check_s3_name(what: &str, name: &str) -> Result<(), ArgumentError> {
    if name.len() > MAX_KEY_BYTES {
        return Err(ArgumentError::new(format!(
            "{what} is {} bytes long; S3 keys and prefixes are at most {MAX_KEY_BYTES} bytes (UTF-8)",
            name.len()
        )));
    }
    if name.contains('\0') {
        return Err(ArgumentError::new(format!(
            "{what} holds a NUL character, which S3 keys cannot hold"
        )));
    }
    Ok(())
}

/// Checks a bucket name: 1–255 characters of letters, digits, `.`, `-` and `_`
/// (S3's rules plus the legacy names some older buckets still have).
pub(crate) fn check_bucket_name(name: &str) -> Result<(), ArgumentError> {
    if name.is_empty() {
        return Err(ArgumentError::new("the bucket name is empty"));
    }
    if name.len() > 255 {
        return Err(ArgumentError::new(
            "the bucket name is longer than 255 characters",
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(ArgumentError::new(format!(
            "the bucket name {:?} contains {bad:?}",
            short(name)
        )));
    }
    Ok(())
}

/// A bucket argument: `name`, `s3://name` or `s3://name/`.
pub(crate) fn parse_bucket(text: &str) -> Result<String, ArgumentError> {
    let text = text.trim();
    let name = match text.strip_prefix("s3://") {
        Some(rest) => rest.strip_suffix('/').unwrap_or(rest),
        None if text.contains("://") => {
            return Err(ArgumentError::new(format!(
                "{:?} is not a bucket name or an s3:// URI",
                short(text)
            )));
        }
        None => text,
    };
    check_bucket_name(name).map(|()| name.to_owned())
}

impl S3Uri {
    /// The URI of `key` in `bucket`, without a version.
    pub(crate) fn new(bucket: &str, key: &str) -> S3Uri {
        S3Uri {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version_id: None,
        }
    }

    /// The URI of `key` in `bucket` at `version_id`.
    pub(crate) fn versioned(bucket: &str, key: &str, version_id: Option<&str>) -> S3Uri {
        S3Uri {
            version_id: version_id.map(str::to_owned),
            ..S3Uri::new(bucket, key)
        }
    }

    /// Parses `s3://bucket/key?versionId=…`; the key may be empty.
    pub(crate) fn parse(text: &str) -> Result<S3Uri, ArgumentError> {
        let text = text.trim();
        let Some(rest) = text.strip_prefix("s3://") else {
            return Err(ArgumentError::new(format!(
                "{:?} is not an s3:// URI",
                short(text)
            )));
        };
        let (path, query) = match rest.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (rest, None),
        };
        let (bucket, raw_key) = path.split_once('/').unwrap_or((path, ""));
        check_bucket_name(bucket).map_err(|e| e.context(format_args!("in {:?}", short(text))))?;
        let key = percent_decode_str(raw_key)
            .decode_utf8()
            .map_err(|_| {
                ArgumentError::new(format!(
                    "the key in {:?} is not UTF-8 once percent-decoded",
                    short(text)
                ))
            })?
            .into_owned();
        check_s3_name("the key", &key)?;
        let mut version_id = None;
        if let Some(query) = query {
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                if name != "versionId" {
                    return Err(ArgumentError::new(format!(
                        "{:?} has the query parameter {:?}; only versionId is accepted",
                        short(text),
                        short(name)
                    )));
                }
                let value = percent_decode_str(value)
                    .decode_utf8()
                    .map_err(|_| ArgumentError::new("the versionId is not UTF-8"))?
                    .into_owned();
                if value.is_empty() {
                    return Err(ArgumentError::new(format!(
                        "{:?} has an empty versionId",
                        short(text)
                    )));
                }
                check_s3_name("the versionId", &value)?;
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
    pub(crate) fn parse_object(text: &str) -> Result<S3Uri, ArgumentError> {
        let uri = S3Uri::parse(text)?;
        if uri.key.is_empty() {
            return Err(ArgumentError::new(format!(
                "{:?} names a bucket, not an object (expected s3://bucket/key)",
                short(text)
            )));
        }
        Ok(uri)
    }

    /// Whether an HTTP URL with this key in its path would not keep naming this key:
    /// a `.` or `..` segment, which URL parsers (browsers', httpx) resolve, so that
    /// `/bucket/../other/key` fetches another bucket's object from a path-style
    /// endpoint. (Other characters cannot do this: the SDK percent-encodes `%` and `\`
    /// in the path it signs.)
    pub(crate) fn key_moves_in_urls(&self) -> bool {
        self.key
            .split('/')
            .any(|segment| segment == "." || segment == "..")
    }
}

impl std::fmt::Display for S3Uri {
    /// `s3://bucket/key`, with `?versionId=` when there is a version: the URI the
    /// server emits, which [`S3Uri::parse`] reads back as the same object. `%`, `?`,
    /// `#`, whitespace and control characters of the key (and also `&` of the version)
    /// are percent-encoded; everything else, Unicode included, is written as it is.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/", self.bucket)?;
        write_encoded(f, &self.key, &[])?;
        if let Some(version) = &self.version_id {
            f.write_str("?versionId=")?;
            write_encoded(f, version, &['&'])?;
        }
        Ok(())
    }
}

/// Writes `text`, percent-encoding (as UTF-8) `%`, `?`, `#`, whitespace, control
/// characters and `extra`.
fn write_encoded(f: &mut impl std::fmt::Write, text: &str, extra: &[char]) -> std::fmt::Result {
    let mut buffer = [0u8; 4];
    for c in text.chars() {
        if matches!(c, '%' | '?' | '#') || c.is_whitespace() || c.is_control() || extra.contains(&c)
        {
            for byte in c.encode_utf8(&mut buffer).bytes() {
                write!(f, "%{byte:02X}")?;
            }
        } else {
            f.write_char(c)?;
        }
    }
    Ok(())
}

/// At most 200 characters of `text`, for an error message that must not echo a
/// huge argument.
pub(crate) fn short(text: &str) -> String {
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

    /// Over 1024 bytes of UTF-8, or a NUL, is refused at parse time.
    #[test]
    fn s3_names_are_bounded() {
        let at_limit = "k".repeat(MAX_KEY_BYTES);
        assert!(S3Uri::parse_object(&format!("s3://b/{at_limit}")).is_ok());
        assert!(S3Uri::parse_object(&format!("s3://b/{at_limit}x")).is_err());
        // Bytes, not characters: 513 two-byte characters are 1026 bytes.
        assert!(S3Uri::parse_object(&format!("s3://b/{}", "é".repeat(513))).is_err());
        assert!(S3Uri::parse_object("s3://b/a%00b").is_err());
        assert!(S3Uri::parse_object(&format!("s3://b/k?versionId={at_limit}x")).is_err());
    }

    /// `pct%41.txt` was once emitted as a URI naming `pctA.txt`.
    #[test]
    fn emitted_uris_name_the_same_object() {
        let cases = [
            ("pct%41.txt", "s3://b/pct%2541.txt"),
            ("a?b.txt", "s3://b/a%3Fb.txt"),
            ("h#x", "s3://b/h%23x"),
            ("ctl\u{1}.txt", "s3://b/ctl%01.txt"),
            ("dir/ünï €.txt", "s3://b/dir/ünï%20€.txt"),
            (" lead", "s3://b/%20lead"),
        ];
        for (key, uri) in cases {
            let made = S3Uri::new("b", key);
            assert_eq!(made.to_string(), uri);
            assert_eq!(S3Uri::parse(uri).unwrap(), made);
        }
        let versioned = S3Uri::versioned("b", "k", Some("v&1 %"));
        assert_eq!(versioned.to_string(), "s3://b/k?versionId=v%261%20%25");
        assert_eq!(S3Uri::parse(&versioned.to_string()).unwrap(), versioned);
    }

    #[test]
    fn keys_that_move_in_urls() {
        for moves in [
            "../other/secret.txt",
            "a/../../other/k",
            "./k",
            "a/./k",
            "..",
            ".",
            "a/..",
        ] {
            assert!(S3Uri::new("b", moves).key_moves_in_urls(), "{moves:?}");
        }
        for stays in [
            "a/b.txt",
            "...",
            "a/.../b",
            ".hidden",
            "a/..b",
            "a/b..",
            "a//b",
            "/lead",
            "a/%2e%2e/k",
            "a\\..\\b",
            "dir/",
        ] {
            assert!(!S3Uri::new("b", stays).key_moves_in_urls(), "{stays:?}");
        }
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;

        fn key() -> impl Strategy<Value = String> {
            // Every kind of character S3 keys hold, weighted towards the awkward ones.
            let awkward = prop_oneof![
                Just('%'),
                Just('?'),
                Just('#'),
                Just('&'),
                Just('='),
                Just('+'),
                Just('/'),
                Just(' '),
                (1u32..0x20).prop_map(|c| char::from_u32(c).unwrap_or('x')),
                Just('\u{7f}'),
                Just('\u{85}'),
                Just('\u{a0}'),
                Just('\u{2028}'),
            ];
            let any = any::<char>().prop_filter("no NUL", |c| *c != '\0');
            proptest::collection::vec(prop_oneof![awkward, any], 1..64)
                .prop_map(|chars| chars.into_iter().collect::<String>())
                .prop_filter("at most 1024 bytes", |k| k.len() <= MAX_KEY_BYTES)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// parse(format(uri)) == uri for any key and version.
            #[test]
            fn emitted_uris_parse_back_to_themselves(
                key in key(),
                version in proptest::option::of(key()),
            ) {
                let uri = S3Uri { version_id: version, ..S3Uri::new("lab-data", &key) };
                let text = uri.to_string();
                prop_assert_eq!(S3Uri::parse(&text), Ok(uri), "{}", text);
            }

            /// Parsing never panics, and what it accepts is within the S3 name limits.
            #[test]
            fn parsing_any_text_never_panics(text in "(s3://)?[a-z.]{0,4}/?\\PC{0,40}(%[0-9a-fA-F]{2}){0,4}(\\?versionId=.{0,8})?") {
                if let Ok(uri) = S3Uri::parse(&text) {
                    prop_assert!(uri.key.len() <= MAX_KEY_BYTES && !uri.key.contains('\0'));
                }
                let _ = S3Uri::parse_object(&text);
                let _ = parse_bucket(&text);
            }
        }
    }
}
