//! The package manifest: JSON lines, a header then entries, read and written so that a
//! manifest read and written again is byte-identical, and its top hash computed as
//! quilt3 computes it.

use std::cmp::Ordering;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::json::{self, CANONICAL, QUILT3_LINE};

/// Lines longer than this are refused (quilt3 warns at 1 MB per record).
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// What is wrong with a manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("manifest line {line}: {problem}")]
pub struct ManifestError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub problem: String,
}

/// One line after the header.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    obj: Map<String, Value>,
    /// The line as read, kept only when writing `obj` back would not reproduce it.
    raw: Option<Box<str>>,
}

impl Record {
    /// An entry or directory line from its object.
    pub fn from_object(obj: Map<String, Value>) -> Record {
        Record { obj, raw: None }
    }

    /// The logical key.
    pub fn logical_key(&self) -> &str {
        self.obj
            .get("logical_key")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// Whether this is a directory-metadata line (no physical keys).
    pub fn is_directory(&self) -> bool {
        match self.obj.get("physical_keys") {
            Some(Value::Array(items)) => items.is_empty(),
            None | Some(Value::Null) => true,
            Some(_) => false,
        }
    }

    /// The first physical key (an `s3://` URL), for entries.
    pub fn physical_key(&self) -> Option<&str> {
        self.obj
            .get("physical_keys")
            .and_then(Value::as_array)
            .and_then(|keys| keys.first())
            .and_then(Value::as_str)
    }

    /// The size in bytes, for entries.
    pub fn size(&self) -> u64 {
        self.obj.get("size").and_then(Value::as_u64).unwrap_or(0)
    }

    /// The hash object `{type, value}`, for entries.
    pub fn hash(&self) -> &Value {
        self.obj.get("hash").unwrap_or(&Value::Null)
    }

    /// The hash type and value.
    pub fn hash_parts(&self) -> (&str, &str) {
        let h = self.hash();
        (
            h.get("type").and_then(Value::as_str).unwrap_or(""),
            h.get("value").and_then(Value::as_str).unwrap_or(""),
        )
    }

    /// The entry's `meta`, `null` when absent.
    pub fn meta(&self) -> &Value {
        self.obj.get("meta").unwrap_or(&Value::Null)
    }

    /// The whole line object.
    pub fn object(&self) -> &Map<String, Value> {
        &self.obj
    }

    fn line(&self) -> String {
        match &self.raw {
            Some(raw) => raw.to_string(),
            None => json::object_to_string(&self.obj, QUILT3_LINE),
        }
    }

    /// Appends the canonical object hashed into the top hash:
    /// `{"hash", "logical_key", "meta" (`{}` when absent), "size"}`; the range of
    /// `out` that holds `meta`.
    pub(crate) fn write_hash_part(&self, out: &mut String) -> std::ops::Range<usize> {
        out.push_str("{\"hash\":");
        json::write_value(self.hash(), CANONICAL, out);
        out.push_str(",\"logical_key\":");
        json::write_str(self.logical_key(), CANONICAL, out);
        out.push_str(",\"meta\":");
        let start = out.len();
        match self.meta() {
            Value::Null => out.push_str("{}"),
            meta => json::write_value(meta, CANONICAL, out),
        }
        let end = out.len();
        out.push_str(",\"size\":");
        json::write_value(self.obj.get("size").unwrap_or(&Value::Null), CANONICAL, out);
        out.push('}');
        start..end
    }
}

/// Tree order: logical keys compared component by component (`a/b` before `a-c`).
///
/// The same order as comparing `a.split('/')` with `b.split('/')`, computed in one pass
/// over the bytes: past the common prefix, `/` ranks below every other byte (a
/// component that ends first sorts first), and a key that ends first sorts first.
pub fn tree_order(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let common = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    match (a.get(common), b.get(common)) {
        (Some(x), Some(y)) => tree_rank(*x).cmp(&tree_rank(*y)),
        _ => a.len().cmp(&b.len()),
    }
}

/// A byte's rank in [`tree_order`]: `/` first, then every byte in its own order.
fn tree_rank(byte: u8) -> u16 {
    if byte == b'/' { 0 } else { u16::from(byte) + 1 }
}

/// A manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    header: Map<String, Value>,
    header_raw: Option<Box<str>>,
    records: Vec<Record>,
    trailing_newline: bool,
}

/// Parses a manifest line by line, holding only the parsed lines.
#[derive(Debug, Default)]
pub struct ManifestReader {
    manifest: Option<Manifest>,
    line: usize,
    pending_blank: bool,
}

/// A parsed line and, when re-serializing would not reproduce it, its text.
type ParsedLine = (Map<String, Value>, Option<Box<str>>);

fn parse_line(text: &str, line: usize) -> Result<ParsedLine, ManifestError> {
    let obj = parse_object(text, line)?;
    let rewritten = json::object_to_string(&obj, QUILT3_LINE);
    let raw = (rewritten != text).then(|| text.into());
    Ok((obj, raw))
}

/// Checks a line after the header: a string `logical_key`, and for an entry a size, a
/// hash `{type, value}` and a physical key.
pub(crate) fn check_record(record: &Record, line: usize) -> Result<(), ManifestError> {
    if !matches!(record.obj.get("logical_key"), Some(Value::String(_))) {
        return Err(ManifestError {
            line,
            problem: "has no string logical_key".to_owned(),
        });
    }
    if !record.is_directory() {
        let (kind, value) = record.hash_parts();
        if record.obj.get("size").and_then(Value::as_u64).is_none()
            || kind.is_empty()
            || value.is_empty()
        {
            return Err(ManifestError {
                line,
                problem: format!(
                    "entry {:?} lacks a size or a hash {{type, value}}",
                    record.logical_key()
                ),
            });
        }
        if record.physical_key().is_none() {
            return Err(ManifestError {
                line,
                problem: format!(
                    "entry {:?} has no physical key string",
                    record.logical_key()
                ),
            });
        }
    }
    Ok(())
}

/// Parses one line after the header for streaming: the object alone (its text is not
/// kept), checked as [`ManifestReader`] checks it.
pub(crate) fn parse_record(text: &str, line: usize) -> Result<Record, ManifestError> {
    let record = Record::from_object(parse_object(text, line)?);
    check_record(&record, line)?;
    Ok(record)
}

/// Parses one line as a JSON object, within [`MAX_LINE_BYTES`].
pub(crate) fn parse_object(text: &str, line: usize) -> Result<Map<String, Value>, ManifestError> {
    let err = |problem: String| ManifestError { line, problem };
    if text.len() > MAX_LINE_BYTES {
        return Err(err(format!(
            "is {} bytes long, over the {MAX_LINE_BYTES}-byte limit",
            text.len()
        )));
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(obj)) => Ok(obj),
        Ok(_) => Err(err("is not a JSON object".to_owned())),
        Err(e) => Err(err(format!("is not JSON: {e}"))),
    }
}

impl ManifestReader {
    /// A reader.
    pub fn new() -> ManifestReader {
        ManifestReader::default()
    }

    /// How many lines were fed.
    pub fn lines_read(&self) -> usize {
        self.line
    }

    /// Feeds one line, without its `\n`.
    pub fn push_line(&mut self, text: &str) -> Result<(), ManifestError> {
        self.line += 1;
        if text.is_empty() {
            // Only a final newline may leave an empty line.
            self.pending_blank = true;
            return Ok(());
        }
        if self.pending_blank {
            return Err(ManifestError {
                line: self.line - 1,
                problem: "is empty".to_owned(),
            });
        }
        let (obj, raw) = parse_line(text, self.line)?;
        match &mut self.manifest {
            None => {
                self.manifest = Some(Manifest {
                    header: obj,
                    header_raw: raw,
                    records: Vec::new(),
                    trailing_newline: false,
                });
            }
            Some(manifest) => {
                let record = Record { obj, raw };
                check_record(&record, self.line)?;
                manifest.records.push(record);
            }
        }
        Ok(())
    }

    /// The manifest; `trailing_newline` tells whether the text ended with `\n`.
    pub fn finish(self, trailing_newline: bool) -> Result<Manifest, ManifestError> {
        let mut manifest = self.manifest.ok_or(ManifestError {
            line: 1,
            problem: "the manifest is empty".to_owned(),
        })?;
        manifest.trailing_newline = trailing_newline;
        Ok(manifest)
    }
}

/// A SHA-256 state that has hashed the canonical `header` without `top_hash`: the
/// start of a top hash.
pub(crate) fn header_hasher(header: &Map<String, Value>) -> Sha256 {
    let mut hasher = Sha256::new();
    if header.contains_key("top_hash") {
        let mut header = header.clone();
        header.remove("top_hash");
        hasher.update(json::object_to_string(&header, CANONICAL).as_bytes());
    } else {
        hasher.update(json::object_to_string(header, CANONICAL).as_bytes());
    }
    hasher
}

/// Lowercase hex digits of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

impl Manifest {
    /// A new manifest with `header` and `records` (entries and directory lines).
    pub fn new(header: Map<String, Value>, records: Vec<Record>) -> Manifest {
        Manifest {
            header,
            header_raw: None,
            records,
            trailing_newline: true,
        }
    }

    /// Parses a whole manifest held in memory.
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        let mut reader = ManifestReader::new();
        let body = text.strip_suffix('\n');
        for line in body.unwrap_or(text).split('\n') {
            reader.push_line(line)?;
        }
        reader.finish(body.is_some())
    }

    /// The header object.
    pub fn header(&self) -> &Map<String, Value> {
        &self.header
    }

    /// `message`, when it is a string.
    pub fn message(&self) -> Option<&str> {
        self.header.get("message").and_then(Value::as_str)
    }

    /// Entries (not directory lines), in file order.
    pub fn entries(&self) -> impl Iterator<Item = &Record> {
        self.records.iter().filter(|r| !r.is_directory())
    }

    /// Directory-metadata lines, in file order.
    pub fn directories(&self) -> impl Iterator<Item = &Record> {
        self.records.iter().filter(|r| r.is_directory())
    }

    /// The top hash, as quilt3 computes it: SHA-256 over the canonical header (without
    /// `top_hash`) and, in tree order, each entry's `{hash, logical_key, meta, size}`.
    /// Directory-metadata lines and physical keys are not hashed.
    pub fn top_hash(&self) -> String {
        let mut hasher = header_hasher(&self.header);
        let mut entries: Vec<&Record> = self.entries().collect();
        entries.sort_by(|a, b| tree_order(a.logical_key(), b.logical_key()));
        let mut part = String::new();
        for entry in entries {
            part.clear();
            entry.write_hash_part(&mut part);
            hasher.update(part.as_bytes());
        }
        hex(&hasher.finalize())
    }

    /// The manifest's bytes: the lines as read, or as quilt3 writes them.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::new();
        out.push_str(&match &self.header_raw {
            Some(raw) => raw.to_string(),
            None => json::object_to_string(&self.header, QUILT3_LINE),
        });
        for record in &self.records {
            out.push('\n');
            out.push_str(&record.line());
        }
        if self.trailing_newline {
            out.push('\n');
        }
        out.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    /// Every pair of keys of up to four characters from `a`, `b`, `/`, NUL and `é`
    /// (whose UTF-8 bytes rank above ASCII): the one-pass order is the order of the
    /// components.
    #[test]
    fn tree_order_is_the_order_of_the_components() {
        let alphabet = ["a", "b", "/", "\0", "é"];
        let mut keys = vec![String::new()];
        let mut last = vec![String::new()];
        for _ in 0..4 {
            last = last
                .iter()
                .flat_map(|k| alphabet.iter().map(move |c| format!("{k}{c}")))
                .collect();
            keys.extend(last.iter().cloned());
        }
        for a in &keys {
            for b in &keys {
                assert_eq!(
                    tree_order(a, b),
                    a.split('/').cmp(b.split('/')),
                    "{a:?} vs {b:?}"
                );
            }
        }
        assert_eq!(tree_order("a/b", "a-c"), Ordering::Less);
        assert_eq!(tree_order("a", "a/"), Ordering::Less);
    }

    /// JSON values without floats (whose text forms are pinned by golden vectors).
    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map(any::<String>(), inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn record() -> impl Strategy<Value = Record> {
        (
            "\\PC{1,40}",
            0u64..(1 << 53),
            "[0-9a-f]{64}",
            "\\PC{0,40}",
            value(),
        )
            .prop_map(|(logical_key, size, hash, physical, meta)| {
                let mut obj = Map::new();
                obj.insert("logical_key".into(), json!(logical_key));
                obj.insert(
                    "physical_keys".into(),
                    json!([format!("s3://b/{physical}")]),
                );
                obj.insert("size".into(), json!(size));
                obj.insert(
                    "hash".into(),
                    json!({"type": "sha2-256-chunked", "value": hash}),
                );
                obj.insert("meta".into(), meta);
                Record::from_object(obj)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// A reader fed any lines, JSON or not, answers and never panics.
        #[test]
        fn the_reader_never_panics(lines in proptest::collection::vec(
            prop_oneof![
                any::<String>(),
                value().prop_map(|v| v.to_string()),
                "\\{\"logical_key\": \"[a-z]{0,3}\"(, \"size\": -?[0-9]{1,3})?(, \"physical_keys\": (null|\\[\\]|\\[1\\]|\\[\"s3://b/k\"\\]))?(, \"hash\": \\{\"type\": \"x\", \"value\": \"y\"\\})?\\}",
            ],
            0..8,
        ), newline in any::<bool>()) {
            let mut reader = ManifestReader::new();
            let mut failed = false;
            for line in &lines {
                if reader.push_line(line).is_err() {
                    failed = true;
                    break;
                }
            }
            if !failed && let Ok(manifest) = reader.finish(newline) {
                let _ = manifest.top_hash();
                let _ = manifest.to_bytes();
            }
        }

        /// Records written and read back are the same records, the bytes are the
        /// same bytes, and the top hash does not move.
        #[test]
        fn records_round_trip(
            records in proptest::collection::vec(record(), 0..6),
            message in any::<String>(),
            user_meta in value(),
        ) {
            let mut header = Map::new();
            header.insert("version".into(), json!("v0"));
            header.insert("message".into(), json!(message));
            header.insert("user_meta".into(), user_meta);
            let written = Manifest::new(header, records);
            let bytes = written.to_bytes();
            let text = String::from_utf8(bytes.clone()).unwrap();
            let read = Manifest::parse(&text).unwrap();
            prop_assert_eq!(read.header(), written.header());
            let read_records: Vec<&Map<String, Value>> = read.records.iter().map(Record::object).collect();
            let written_records: Vec<&Map<String, Value>> = written.records.iter().map(Record::object).collect();
            prop_assert_eq!(read_records, written_records);
            prop_assert_eq!(read.top_hash(), written.top_hash());
            prop_assert_eq!(read.to_bytes(), bytes);
        }
    }
}
