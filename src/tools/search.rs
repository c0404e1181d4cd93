//! What `search_packages` and `search_objects` share (docs/reference.md, Tools): the
//! query and bucket arguments, which buckets a call searches, the cursor that wraps the
//! registry's own, and the bounds and links of their results.
//!
//! **Buckets.** A call searches the buckets it names (each one authorized by the gate:
//! in the token's buckets, with `s3:ListBucket`), else every bucket the token lists.
//! A token whose buckets include `*` allows every bucket: without `buckets` its search
//! covers every bucket the registry searches for its user. Either way a hit in a bucket
//! outside that set is never shown, whatever the registry returns.
//!
//! **Cursors.** A `next_cursor` wraps the registry's cursor with the search it belongs
//! to (tool, query, buckets searched, filters) and the total, under an HMAC with a key
//! drawn when the server process starts: a cursor cannot be altered, replayed for
//! another query or bucket set, or used with another server process.

use std::sync::LazyLock;

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde::{Deserialize, Deserializer};

use super::uri::Bucket;
use super::{Call, ErrorCode, ToolError};
use crate::error::ArgumentError;

/// The longest `query`, in bytes.
pub(crate) const MAX_QUERY_BYTES: usize = 4096;
/// The most buckets a call may name.
pub(crate) const MAX_BUCKETS: usize = 100;
/// Default `max_results`.
pub(crate) const DEFAULT_MAX_RESULTS: u64 = 20;
/// Largest `max_results`.
pub(crate) const MAX_RESULTS: u64 = 100;
/// The longest registry cursor carried, in bytes.
const MAX_REGISTRY_CURSOR: usize = 8 * 1024;
/// The longest `cursor`, in characters.
pub(crate) const MAX_CURSOR_CHARS: usize = 12 * 1024;
/// The longest text (name, key, message) of a hit that is shown, in bytes: S3 keys
/// are at most 1024 bytes, so a longer one is malformed and the hit is skipped.
pub(crate) const MAX_NAME_BYTES: usize = 1024;
/// The longest commit message shown, in characters (then `…`).
pub(crate) const MAX_MESSAGE_CHARS: usize = 1000;

/// The `query`: the catalog's search syntax, at most [`MAX_QUERY_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct Query(String);

impl Query {
    /// The search string for the registry: `None` for an empty query (everything).
    pub(crate) fn search_string(&self) -> Option<&str> {
        let text = self.0.trim();
        (!text.is_empty()).then_some(text)
    }
}

impl TryFrom<String> for Query {
    type Error = ArgumentError;
    fn try_from(text: String) -> Result<Query, ArgumentError> {
        if text.len() > MAX_QUERY_BYTES {
            return Err(ArgumentError::new(format!(
                "is {} bytes long, more than {MAX_QUERY_BYTES}",
                text.len()
            )));
        }
        if text.contains('\0') {
            return Err(ArgumentError::new("holds a NUL character"));
        }
        Ok(Query(text))
    }
}
super::uri::string_argument!(Query);

/// The `buckets` argument: 1 to [`MAX_BUCKETS`] bucket names, without repeats.
pub(crate) fn buckets<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Bucket>>, D::Error> {
    let Some(names) = Option::<Vec<Bucket>>::deserialize(d)? else {
        return Ok(None);
    };
    if names.is_empty() {
        return Err(serde::de::Error::custom(
            "names no bucket; leave `buckets` out to search every bucket of the token",
        ));
    }
    if names.len() > MAX_BUCKETS {
        return Err(serde::de::Error::custom(format!(
            "names {} buckets, more than {MAX_BUCKETS}",
            names.len()
        )));
    }
    let mut unique: Vec<Bucket> = Vec::with_capacity(names.len());
    for name in names {
        if !unique.contains(&name) {
            unique.push(name);
        }
    }
    Ok(Some(unique))
}

/// The buckets a call searches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Searched {
    /// These, sorted: the ones the call named, else the token's.
    These(Vec<String>),
    /// Every bucket the registry searches for the user: a `*` token without `buckets`.
    All,
}

impl Searched {
    /// The buckets of a call that named `asked` (authorized by the gate), else of the
    /// token; `access_denied` for a token that lists no bucket.
    pub(crate) fn of(call: &Call<'_>, asked: Option<&[Bucket]>) -> Result<Searched, ToolError> {
        let mut names: Vec<String> = match asked {
            Some(asked) => asked.iter().map(|b| b.name().to_owned()).collect(),
            None if call.ctx.claims.buckets.iter().any(|b| b == "*") => {
                return Ok(Searched::All);
            }
            None => call.ctx.claims.buckets.clone(),
        };
        names.sort_unstable();
        names.dedup();
        if names.is_empty() {
            return Err(ToolError::new(
                ErrorCode::AccessDenied,
                "the token grants no bucket, so there is nothing to search; ask the Quilt administrator for access to a bucket",
            ));
        }
        Ok(Searched::These(names))
    }

    /// The registry's `buckets` variable: `None` for all.
    pub(crate) fn names(&self) -> Option<&[String]> {
        match self {
            Searched::These(names) => Some(names),
            Searched::All => None,
        }
    }

    /// Whether a hit in `bucket` may be shown to `call`'s caller.
    pub(crate) fn shows(&self, call: &Call<'_>, bucket: &str) -> bool {
        match self {
            Searched::These(names) => names.binary_search_by(|n| n.as_str().cmp(bucket)).is_ok(),
            Searched::All => call.ctx.claims.allows_bucket(bucket),
        }
    }

    /// The buckets for the result: `null` for all.
    pub(crate) fn shown(&self) -> Option<Vec<String>> {
        self.names().map(<[String]>::to_vec)
    }
}

/// The key that signs cursors: drawn once per server process.
static CURSOR_KEY: LazyLock<hmac::Key> = LazyLock::new(|| {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    hmac::Key::generate(hmac::HMAC_SHA256, &rng).unwrap_or_else(|_| {
        // The system's generator failed: two random UUIDs (v4, 244 random bits).
        let mut seed = uuid::Uuid::new_v4().as_bytes().to_vec();
        seed.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        hmac::Key::new(hmac::HMAC_SHA256, &seed)
    })
});

/// The version byte of a cursor.
const CURSOR_VERSION: u8 = 1;
/// Bytes of the HMAC tag.
const TAG_BYTES: usize = 32;

/// A `cursor` as it parses: its parts, not yet checked against the search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cursor {
    tag: Vec<u8>,
    total: u64,
    registry: String,
}

impl Cursor {
    /// The cursor for the page after this one: the registry's `registry` cursor for
    /// the search `pin` with `total` hits.
    pub(crate) fn issue(pin: &Pin, total: u64, registry: &str) -> Option<String> {
        if registry.len() > MAX_REGISTRY_CURSOR {
            return None;
        }
        let tag = hmac::sign(&CURSOR_KEY, &pin.message(total, registry));
        let mut bytes = Vec::with_capacity(1 + TAG_BYTES + 8 + registry.len());
        bytes.push(CURSOR_VERSION);
        bytes.extend_from_slice(tag.as_ref());
        bytes.extend_from_slice(&total.to_be_bytes());
        bytes.extend_from_slice(registry.as_bytes());
        Some(URL_SAFE_NO_PAD.encode(bytes))
    }

    fn decode(text: &str) -> Option<Cursor> {
        if text.len() > MAX_CURSOR_CHARS {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        let (&version, rest) = bytes.split_first()?;
        if version != CURSOR_VERSION || rest.len() < TAG_BYTES + 8 {
            return None;
        }
        let (tag, rest) = rest.split_at(TAG_BYTES);
        let (total, registry) = rest.split_at(8);
        Some(Cursor {
            tag: tag.to_vec(),
            total: u64::from_be_bytes(total.try_into().ok()?),
            registry: String::from_utf8(registry.to_vec()).ok()?,
        })
    }

    /// The registry's cursor and the total, when this cursor was issued by this server
    /// process for the search `pin`; `invalid_argument` otherwise.
    pub(crate) fn open(&self, pin: &Pin) -> Result<(&str, u64), ToolError> {
        hmac::verify(
            &CURSOR_KEY,
            &pin.message(self.total, &self.registry),
            &self.tag,
        )
        .map_err(|_| {
            ToolError::invalid(format!(
                "`cursor` is not a next_cursor of this {} search (another query, other buckets or filters, or another server process); call again without `cursor` to start over",
                pin.tool
            ))
        })?;
        Ok((&self.registry, self.total))
    }
}

/// The `cursor` argument, checked for its shape as it is parsed (and against the
/// search when the call runs, [`Cursor::open`]).
pub(crate) fn cursor<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Cursor>, D::Error> {
    let text = String::deserialize(d)?;
    Cursor::decode(&text).map(Some).ok_or_else(|| {
        serde::de::Error::custom(
            "not a next_cursor of a search; call again without it to start over",
        )
    })
}

/// What a cursor is pinned to: the tool and every argument that decides the hits.
#[derive(Debug, Clone)]
pub(crate) struct Pin {
    tool: &'static str,
    fields: serde_json::Value,
}

impl Pin {
    /// The search of `tool` for `query` over `searched`, with `filters` (the other
    /// arguments that decide the hits).
    pub(crate) fn new(
        tool: &'static str,
        query: &Query,
        searched: &Searched,
        filters: serde_json::Value,
    ) -> Pin {
        Pin {
            tool,
            fields: serde_json::json!([tool, query.0, searched.names(), filters]),
        }
    }

    fn message(&self, total: u64, registry: &str) -> Vec<u8> {
        let mut message = self.fields.to_string().into_bytes();
        message.push(0);
        message.extend_from_slice(&total.to_be_bytes());
        message.extend_from_slice(registry.as_bytes());
        message
    }
}

/// A size the registry gave as a float, as bytes.
pub(crate) fn bytes(size: f64) -> u64 {
    if size.is_finite() && size > 0.0 {
        // Saturating: sizes past 2^64 are not real.
        size as u64
    } else {
        0
    }
}

/// A registry time as RFC 3339 UTC (whole seconds); `None` when it is not a time.
pub(crate) fn time(text: &str) -> Option<String> {
    crate::time::parse_rfc3339(text).and_then(crate::time::rfc3339)
}

/// `text` cut to [`MAX_MESSAGE_CHARS`] characters (then `…`).
pub(crate) fn short_message(text: &str) -> String {
    let mut out: String = text.chars().take(MAX_MESSAGE_CHARS).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

/// Characters escaped in a catalog path segment: controls, space and what a URL
/// would take for its own (`/` stays: keys and names are paths).
const PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// `{catalog}/b/{bucket}/tree/{key}`.
pub(crate) fn object_link(catalog: Option<&str>, bucket: &str, key: &str) -> Option<String> {
    catalog.map(|c| format!("{c}/b/{bucket}/tree/{}", utf8_percent_encode(key, PATH)))
}

/// `{catalog}/b/{bucket}/packages/{name}/tree/{top_hash}/`.
pub(crate) fn package_link(
    catalog: Option<&str>,
    bucket: &str,
    name: &str,
    top_hash: &str,
) -> Option<String> {
    catalog.map(|c| {
        format!(
            "{c}/b/{bucket}/packages/{}/tree/{top_hash}/",
            utf8_percent_encode(name, PATH)
        )
    })
}

/// Whether a registry string may be shown: at most [`MAX_NAME_BYTES`], no NUL.
pub(crate) fn fits(text: &str) -> bool {
    !text.is_empty() && text.len() <= MAX_NAME_BYTES && !text.contains('\0')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(query: &str, buckets: &[&str], filters: serde_json::Value) -> Pin {
        Pin::new(
            "search_packages",
            &Query(query.into()),
            &Searched::These(buckets.iter().map(|b| (*b).to_owned()).collect()),
            filters,
        )
    }

    #[test]
    fn a_cursor_opens_only_for_its_own_search() {
        let mine = pin("rna", &["a"], serde_json::json!({"latest_only": true}));
        let text = Cursor::issue(&mine, 42, "registry-cursor").unwrap();
        let cursor = Cursor::decode(&text).unwrap();
        assert_eq!(cursor.open(&mine).unwrap(), ("registry-cursor", 42));
        for other in [
            pin("dna", &["a"], serde_json::json!({"latest_only": true})),
            pin("rna", &["a", "b"], serde_json::json!({"latest_only": true})),
            pin("rna", &["b"], serde_json::json!({"latest_only": true})),
            pin("rna", &["a"], serde_json::json!({"latest_only": false})),
        ] {
            let error = cursor.open(&other).unwrap_err();
            assert_eq!(error.code, ErrorCode::InvalidArgument);
        }
        // Altered parts do not open.
        let mut altered = cursor.clone();
        altered.registry.push('x');
        assert!(altered.open(&mine).is_err());
        let mut altered = cursor.clone();
        altered.total = 43;
        assert!(altered.open(&mine).is_err());
        // Nothing else decodes.
        for bad in ["", "not base64!", "AAAA", &"A".repeat(MAX_CURSOR_CHARS + 4)] {
            assert_eq!(Cursor::decode(bad), None, "{bad:?}");
        }
        assert_eq!(
            Cursor::issue(&mine, 1, &"x".repeat(MAX_REGISTRY_CURSOR + 1)),
            None
        );
    }

    #[test]
    fn links_and_numbers() {
        assert_eq!(
            object_link(Some("https://c"), "b", "dir/a b#?.csv").as_deref(),
            Some("https://c/b/b/tree/dir/a%20b%23%3F.csv")
        );
        assert_eq!(object_link(None, "b", "k"), None);
        assert_eq!(
            package_link(Some("https://c"), "b", "ns/pkg", "abc").as_deref(),
            Some("https://c/b/b/packages/ns/pkg/tree/abc/")
        );
        assert_eq!(
            (bytes(12.0), bytes(-1.0), bytes(f64::NAN), bytes(1e30)),
            (12, 0, 0, u64::MAX)
        );
        assert_eq!(
            time("2026-01-02T03:04:05.678+00:00").as_deref(),
            Some("2026-01-02T03:04:05Z")
        );
        assert_eq!(time("yesterday"), None);
        assert!(fits("k") && !fits("") && !fits(&"k".repeat(1025)) && !fits("a\0b"));
    }

    #[test]
    fn queries_are_bounded() {
        assert_eq!(
            Query::try_from("  ".to_owned()).unwrap().search_string(),
            None
        );
        assert_eq!(
            Query::try_from(" rna ".to_owned()).unwrap().search_string(),
            Some("rna")
        );
        assert!(Query::try_from("x".repeat(MAX_QUERY_BYTES + 1)).is_err());
        assert!(Query::try_from("a\0".to_owned()).is_err());
    }
}
