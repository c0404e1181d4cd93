//! One manifest line after the header, parsed for streaming: only the fields a page or
//! the top hash needs, borrowed from the line (`logical_key`, `size`, `hash`, the first
//! physical key), with `meta` left as raw JSON text until someone asks for it. Lines
//! the quick parse does not take exactly as written (duplicate keys, odd types) go
//! through the full [`Record`] parse, so both give the same answers and the same errors
//! (see `docs/reference.md`, Results: `package_browse`).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::ops::Range;

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::json::{self, CANONICAL};
use super::manifest::{self, ManifestError, Record};

/// At most how many JSON values `raw` (valid JSON) holds: one, and one more for each
/// `,`, `:`, `[` or `{` (those in strings too).
pub(crate) fn values_in(raw: &str) -> usize {
    1 + raw
        .bytes()
        .filter(|b| matches!(b, b',' | b':' | b'[' | b'{'))
        .count()
}

/// A manifest's header line, kept as text: its fields are parsed when asked for, and
/// the canonical form hashed into the top hash is written from the text, so that a
/// large `user_meta` costs about its own size, not tens of times it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    text: Box<str>,
}

type HeaderFields<'a> = std::collections::BTreeMap<String, &'a RawValue>;

impl Header {
    /// Parses line `line_no`: a JSON object.
    pub(crate) fn parse(text: &str, line_no: usize) -> Result<Header, ManifestError> {
        if text.len() > manifest::MAX_LINE_BYTES {
            return Err(ManifestError {
                line: line_no,
                problem: format!(
                    "is {} bytes long, over the {}-byte limit",
                    text.len(),
                    manifest::MAX_LINE_BYTES
                ),
            });
        }
        if let Err(e) = serde_json::from_str::<HeaderFields<'_>>(text) {
            // The same message as a whole-object parse gives.
            return Err(match manifest::parse_object(text, line_no) {
                Err(error) => error,
                Ok(_) => ManifestError {
                    line: line_no,
                    problem: format!("is not JSON: {e}"),
                },
            });
        }
        Ok(Header { text: text.into() })
    }

    fn fields(&self) -> HeaderFields<'_> {
        // Parsed once already in `parse`.
        serde_json::from_str(&self.text).unwrap_or_default()
    }

    /// The bytes of the header line.
    pub(crate) fn len(&self) -> usize {
        self.text.len()
    }

    /// Field `name` as written, if present.
    pub(crate) fn raw(&self, name: &str) -> Option<&str> {
        self.fields().get(name).map(|raw| raw.get())
    }

    /// Field `name` as a value, `null` when absent.
    pub(crate) fn value(&self, name: &str) -> Value {
        self.raw(name)
            .and_then(|raw| serde_json::from_str(raw).ok())
            .unwrap_or(Value::Null)
    }

    /// Field `name` in canonical form, `None` when absent.
    pub(crate) fn canonical(&self, name: &str) -> Option<String> {
        let raw = self.raw(name)?;
        let mut out = String::new();
        json::write_canonical_raw(raw, &mut out).ok()?;
        Some(out)
    }

    /// The fields a result shows of a header.
    pub(crate) const SHOWN: [&'static str; 3] = ["message", "user_meta", "workflow"];

    /// What the fields a result shows cost in it, at most: their bytes as written, and
    /// `growth` for each JSON value in them.
    pub(crate) fn shown_bytes(&self, growth: usize) -> usize {
        let fields = self.fields();
        Self::SHOWN
            .iter()
            .filter_map(|name| fields.get(*name))
            .map(|raw| raw.get().len() + growth * values_in(raw.get()))
            .sum()
    }

    /// A header of the fields a result shows alone (not for hashing).
    pub(crate) fn shown(&self) -> Header {
        let fields = self.fields();
        let mut text = String::from("{");
        for name in Self::SHOWN {
            if let Some(raw) = fields.get(name) {
                if text.len() > 1 {
                    text.push_str(", ");
                }
                json::write_str(name, CANONICAL, &mut text);
                text.push_str(": ");
                text.push_str(raw.get());
            }
        }
        text.push('}');
        Header { text: text.into() }
    }

    /// `message`, when it is a string.
    pub(crate) fn message(&self) -> Option<String> {
        match self.value("message") {
            Value::String(message) => Some(message),
            _ => None,
        }
    }

    /// A SHA-256 state that has hashed the canonical header without `top_hash`, as
    /// [`manifest::header_hasher`] does.
    pub(crate) fn hasher(&self) -> sha2::Sha256 {
        use sha2::Digest as _;
        let mut out = String::with_capacity(self.text.len());
        out.push('{');
        let mut first = true;
        for (key, raw) in self.fields() {
            if key == "top_hash" {
                continue;
            }
            if !first {
                out.push(',');
            }
            first = false;
            json::write_str(&key, CANONICAL, &mut out);
            out.push(':');
            let mark = out.len();
            if json::write_canonical_raw(raw.get(), &mut out).is_err() {
                out.truncate(mark);
                out.push_str("null");
            }
        }
        out.push('}');
        let mut hasher = sha2::Sha256::new();
        hasher.update(out.as_bytes());
        hasher
    }
}

/// The fields read of a line, borrowed from its text.
#[derive(Debug, Deserialize)]
struct Fields<'a> {
    #[serde(borrow)]
    logical_key: Option<Cow<'a, str>>,
    #[serde(borrow)]
    physical_keys: Option<FirstKey<'a>>,
    size: Option<u64>,
    #[serde(borrow)]
    hash: Option<HashFields<'a>>,
    #[serde(borrow)]
    meta: Option<&'a RawValue>,
}

/// `{type, value}` and nothing else.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HashFields<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    value: Cow<'a, str>,
}

/// The first item of `physical_keys` (a string), the others skipped; `None` for `[]`.
#[derive(Debug)]
struct FirstKey<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for FirstKey<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<FirstKey<'a>, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = FirstKey<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array of strings")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<FirstKey<'a>, A::Error> {
                #[derive(Deserialize)]
                struct Key<'k>(#[serde(borrow)] Cow<'k, str>);
                let first = seq.next_element::<Key<'a>>()?.map(|k| k.0);
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(FirstKey(first))
            }
        }
        d.deserialize_seq(V(std::marker::PhantomData))
    }
}

#[derive(Debug)]
enum Parsed<'a> {
    /// Read quickly: an entry has a size, a hash and a physical key.
    Quick {
        logical_key: Cow<'a, str>,
        size: u64,
        hash: Option<HashFields<'a>>,
        physical_key: Option<Cow<'a, str>>,
        meta: Option<&'a RawValue>,
        directory: bool,
    },
    /// Read as a whole object.
    Full(Record),
}

/// A line after the header: an entry or a directory-metadata line.
#[derive(Debug)]
pub(crate) struct Line<'a> {
    text: &'a str,
    parsed: Parsed<'a>,
}

fn quick(text: &str) -> Option<Parsed<'_>> {
    // A struct also deserializes from an array; a line must be an object.
    if !text.trim_start().starts_with('{') {
        return None;
    }
    let fields: Fields<'_> = serde_json::from_str(text).ok()?;
    let directory = fields
        .physical_keys
        .as_ref()
        .is_none_or(|keys| keys.0.is_none());
    let physical_key = match fields.physical_keys {
        Some(FirstKey(first)) => first,
        None => None,
    };
    if !directory {
        let hash = fields.hash.as_ref()?;
        if hash.kind.is_empty() || hash.value.is_empty() || fields.size.is_none() {
            return None;
        }
    }
    Some(Parsed::Quick {
        logical_key: fields.logical_key?,
        size: fields.size.unwrap_or(0),
        hash: fields.hash,
        physical_key,
        meta: fields.meta,
        directory,
    })
}

impl<'a> Line<'a> {
    /// Parses and checks line `line_no` (`text` without its `\n`), as
    /// [`manifest::parse_record`] does.
    pub(crate) fn parse(text: &'a str, line_no: usize) -> Result<Line<'a>, ManifestError> {
        let parsed = match quick(text) {
            Some(parsed) => parsed,
            None => Parsed::Full(manifest::parse_record(text, line_no)?),
        };
        Ok(Line { text, parsed })
    }

    /// The line's text.
    pub(crate) fn text(&self) -> &'a str {
        self.text
    }

    /// The logical key.
    pub(crate) fn logical_key(&self) -> &str {
        match &self.parsed {
            Parsed::Quick { logical_key, .. } => logical_key,
            Parsed::Full(record) => record.logical_key(),
        }
    }

    /// Whether this is a directory-metadata line.
    pub(crate) fn is_directory(&self) -> bool {
        match &self.parsed {
            Parsed::Quick { directory, .. } => *directory,
            Parsed::Full(record) => record.is_directory(),
        }
    }

    /// The size (entries).
    pub(crate) fn size(&self) -> u64 {
        match &self.parsed {
            Parsed::Quick { size, .. } => *size,
            Parsed::Full(record) => record.size(),
        }
    }

    /// The hash type and value (entries).
    pub(crate) fn hash_parts(&self) -> (&str, &str) {
        match &self.parsed {
            Parsed::Quick { hash, .. } => hash
                .as_ref()
                .map_or(("", ""), |h| (h.kind.as_ref(), h.value.as_ref())),
            Parsed::Full(record) => record.hash_parts(),
        }
    }

    /// The first physical key (entries).
    pub(crate) fn physical_key(&self) -> Option<&str> {
        match &self.parsed {
            Parsed::Quick { physical_key, .. } => physical_key.as_deref(),
            Parsed::Full(record) => record.physical_key(),
        }
    }

    /// `meta` as written, `None` when absent or null.
    pub(crate) fn meta_raw(&self) -> Option<Cow<'_, str>> {
        match &self.parsed {
            Parsed::Quick { meta, .. } => meta.map(|raw| Cow::Borrowed(raw.get())),
            Parsed::Full(record) => match record.meta() {
                Value::Null => None,
                meta => Some(Cow::Owned(meta.to_string())),
            },
        }
    }

    /// `meta` as a value, `null` when absent.
    pub(crate) fn meta(&self) -> Value {
        match &self.parsed {
            Parsed::Quick { meta: None, .. } => Value::Null,
            // Already parsed once as valid JSON.
            Parsed::Quick {
                meta: Some(raw), ..
            } => serde_json::from_str(raw.get()).unwrap_or(Value::Null),
            Parsed::Full(record) => record.meta().clone(),
        }
    }

    /// Appends `{"hash", "logical_key", "meta" ({} when absent), "size"}` in the
    /// canonical form hashed into the top hash, as [`Record::write_hash_part`] does;
    /// the range of `out` that holds `meta`.
    pub(crate) fn write_hash_part(&self, out: &mut String) -> Range<usize> {
        match &self.parsed {
            Parsed::Quick {
                logical_key,
                size,
                hash,
                meta,
                ..
            } => {
                out.push_str("{\"hash\":");
                match hash {
                    Some(h) => {
                        out.push_str("{\"type\":");
                        json::write_str(&h.kind, CANONICAL, out);
                        out.push_str(",\"value\":");
                        json::write_str(&h.value, CANONICAL, out);
                        out.push('}');
                    }
                    None => out.push_str("null"),
                }
                out.push_str(",\"logical_key\":");
                json::write_str(logical_key, CANONICAL, out);
                out.push_str(",\"meta\":");
                let start = out.len();
                match meta {
                    None => out.push_str("{}"),
                    Some(raw) if raw.get() == "{}" => out.push_str("{}"),
                    Some(raw) => {
                        // Already parsed once as valid JSON.
                        let mark = out.len();
                        if json::write_canonical_raw(raw.get(), out).is_err() {
                            out.truncate(mark);
                            out.push_str("null");
                        }
                    }
                }
                let end = out.len();
                out.push_str(",\"size\":");
                let _ = write!(out, "{size}");
                out.push('}');
                start..end
            }
            Parsed::Full(record) => record.write_hash_part(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The hash part of an entry line (directory lines are not hashed).
    fn full_part(text: &str) -> Option<(String, String)> {
        let record = manifest::parse_record(text, 2).ok()?;
        if record.is_directory() {
            return None;
        }
        let mut part = String::new();
        let range = record.write_hash_part(&mut part);
        let meta = part[range].to_owned();
        Some((part, meta))
    }

    fn quick_part(text: &str) -> Option<(String, String)> {
        let line = Line::parse(text, 2).ok()?;
        if line.is_directory() {
            return None;
        }
        let mut part = String::new();
        let range = line.write_hash_part(&mut part);
        let meta = part[range].to_owned();
        Some((part, meta))
    }

    /// The quick parse answers exactly as the full one, for lines quilt3 writes and
    /// for odd ones.
    #[test]
    fn quick_and_full_agree() {
        let lines = [
            r#"{"logical_key": "a/b.csv", "physical_keys": ["s3://b/a/b.csv?versionId=1"], "size": 16, "hash": {"type": "sha2-256-chunked", "value": "X="}, "meta": {"user_meta": {"z": 1.5e-7, "a": "é"}}}"#,
            r#"{"logical_key": "ü\u00fc", "physical_keys": ["s3://b/x", 3], "size": 0, "hash": {"type": "SHA256", "value": "00"}}"#,
            r#"{"logical_key": "k", "physical_keys": ["s3://b/x"], "size": 1, "hash": {"type": "SHA256", "value": "00", "extra": [1]}, "meta": null}"#,
            r#"{"logical_key": "k", "logical_key": "j", "physical_keys": ["s3://b/x"], "size": 1, "hash": {"type": "SHA256", "value": "00"}}"#,
            r#"{"logical_key": "d/", "meta": {"about": "dir"}}"#,
            r#"{"logical_key": "d/", "physical_keys": [], "size": "x"}"#,
            r#"{"logical_key": "d/", "physical_keys": null}"#,
            r#"{"logical_key": "k", "physical_keys": ["s3://b/x"], "size": 1.0, "hash": {"type": "SHA256", "value": "00"}}"#,
            r#"{"logical_key": "k", "physical_keys": ["s3://b/x"], "size": -0, "hash": {"type": "SHA256", "value": "00"}}"#,
            r#"{"logical_key": "k", "physical_keys": [1], "size": 1, "hash": {"type": "SHA256", "value": "00"}}"#,
            r#"{"logical_key": "k", "physical_keys": "s3://b/x", "size": 1, "hash": {"type": "SHA256", "value": "00"}}"#,
            r#"{"logical_key": "k", "physical_keys": ["s3://b/x"], "size": 1, "hash": {"type": "", "value": "00"}}"#,
            r#"{"logical_key": 3, "physical_keys": ["s3://b/x"], "size": 1, "hash": {"type": "SHA256", "value": "00"}}"#,
            r#"["k", ["s3://b/x"], 1]"#,
            r#"{"logical_key": "k", "physical_keys": ["s3://b/x"], "size": 1, "hash": {"type": "SHA256", "value": "00"}, "meta": {"m": 1, "m": 2}}"#,
            "not json",
        ];
        for text in lines {
            assert_eq!(quick_part(text), full_part(text), "{text}");
            let quick = Line::parse(text, 2);
            let full = manifest::parse_record(text, 2);
            match (quick, full) {
                (Ok(q), Ok(f)) => {
                    assert_eq!(q.logical_key(), f.logical_key(), "{text}");
                    assert_eq!(q.is_directory(), f.is_directory(), "{text}");
                    assert_eq!(q.size(), f.size(), "{text}");
                    assert_eq!(q.hash_parts(), f.hash_parts(), "{text}");
                    assert_eq!(q.physical_key(), f.physical_key(), "{text}");
                    assert_eq!(&q.meta(), f.meta(), "{text}");
                }
                (Err(q), Err(f)) => assert_eq!(q, f, "{text}"),
                (q, f) => panic!("{text}: {q:?} vs {f:?}"),
            }
        }
    }

    #[test]
    fn headers_hash_as_whole_objects_do() {
        for text in [
            r#"{"version": "v0", "message": "m", "user_meta": {"b": 1.5e-7, "a": ["é"]}}"#,
            r#"{"version": "v0", "top_hash": {"alpha": "x"}, "message": null}"#,
            r#"{"version": "v0", "version": "v1"}"#,
            "{}",
        ] {
            use sha2::Digest as _;
            let header = Header::parse(text, 1).unwrap();
            let object = manifest::parse_object(text, 1).unwrap();
            assert_eq!(
                header.hasher().finalize(),
                manifest::header_hasher(&object).finalize(),
                "{text}"
            );
            assert_eq!(
                header.value("message"),
                object.get("message").cloned().unwrap_or(Value::Null)
            );
        }
        for bad in ["[]", "nope", "{\"a\": }", "1"] {
            assert_eq!(
                Header::parse(bad, 1).unwrap_err(),
                manifest::parse_object(bad, 1).unwrap_err(),
                "{bad}"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any entry line quilt3 could write gives the same hash part both ways.
        #[test]
        fn quick_hash_parts_are_the_full_ones(
            key in "\\PC{1,20}",
            size in any::<u64>(),
            kind in "\\PC{1,8}",
            value in "\\PC{1,8}",
            meta in "(null|\\{\\}|\\{\"[a-zé]{0,3}\": (1|2\\.5|\"\\PC{0,5}\"|\\[1, \\{\"b\": null\\}\\])(, \"[a-c]\": [0-9])?\\})",
        ) {
            let text = format!(
                "{{\"logical_key\": {}, \"physical_keys\": [\"s3://b/x\"], \"size\": {size}, \"hash\": {{\"type\": {}, \"value\": {}}}, \"meta\": {meta}}}",
                serde_json::to_string(&key).unwrap(),
                serde_json::to_string(&kind).unwrap(),
                serde_json::to_string(&value).unwrap(),
            );
            prop_assert_eq!(quick_part(&text), full_part(&text));
        }
    }
}
