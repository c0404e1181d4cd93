//! `search_objects`: S3 objects matching a query in the catalog's search syntax,
//! through the registry's search API (`searchObjects`, then `searchMoreObjects`),
//! optionally only some extensions or under a key prefix (docs/reference.md, Tools and
//! Results).

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};

use super::search::{
    self, Cursor, DEFAULT_MAX_RESULTS, MAX_CURSOR_CHARS, MAX_RESULTS, Pin, Query, Searched,
};
use super::uri::{Bounded, Bucket, S3Uri, check_s3_name};
use super::{Access, Call, LIST_BUCKET, Params, Tool, ToolError, ToolInfo};
use crate::registry::search::{ObjectHit, Page};

/// `search_objects`.
pub(crate) struct SearchObjects;

/// The most extensions a call may name.
const MAX_EXTENSIONS: usize = 50;
/// The longest extension, in bytes.
const MAX_EXTENSION_BYTES: usize = 32;

/// A file extension, as the registry indexes it: lower case with its leading dot
/// (`.csv`); given with or without the dot.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
struct Extension(String);

impl TryFrom<String> for Extension {
    type Error = crate::error::ArgumentError;
    fn try_from(text: String) -> Result<Extension, Self::Error> {
        let bare = text.trim().trim_start_matches('.');
        let ok = !bare.is_empty()
            && bare.len() <= MAX_EXTENSION_BYTES
            && bare
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'));
        if !ok {
            return Err(crate::error::ArgumentError::new(format!(
                "{:?} is not a file extension (letters, digits, `.`, `_`, `-`, `+`; at most {MAX_EXTENSION_BYTES} bytes)",
                search::short_message(&text)
                    .chars()
                    .take(40)
                    .collect::<String>()
            )));
        }
        Ok(Extension(format!(".{}", bare.to_lowercase())))
    }
}
super::uri::string_argument!(Extension);

fn extensions<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Extension>>, D::Error> {
    let Some(mut list) = Option::<Vec<Extension>>::deserialize(d)? else {
        return Ok(None);
    };
    if list.is_empty() || list.len() > MAX_EXTENSIONS {
        return Err(serde::de::Error::custom(format!(
            "names {} extensions: give 1 to {MAX_EXTENSIONS}, or leave `extensions` out",
            list.len()
        )));
    }
    list.sort_by(|a, b| a.0.cmp(&b.0));
    list.dedup();
    Ok(Some(list))
}

/// A key prefix, an S3 name (at most 1024 bytes, no NUL).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
struct KeyPrefix(String);

impl TryFrom<String> for KeyPrefix {
    type Error = crate::error::ArgumentError;
    fn try_from(text: String) -> Result<KeyPrefix, Self::Error> {
        check_s3_name("key_prefix", &text)?;
        Ok(KeyPrefix(text))
    }
}
super::uri::string_argument!(KeyPrefix);

impl KeyPrefix {
    /// The registry's keyword wildcard for keys starting with the prefix: `*` and `?`
    /// (and the escape `\`) in the prefix escaped, then `*`.
    fn wildcard(&self) -> String {
        let mut out = String::with_capacity(self.0.len() + 2);
        for c in self.0.chars() {
            if matches!(c, '*' | '?' | '\\') {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('*');
        out
    }
}

/// `search_objects` parameters.
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct SearchObjectsParams {
    /// What to find, in the catalog's search syntax (matched against keys, contents and metadata); empty finds every object.
    #[schemars(length(max = search::MAX_QUERY_BYTES))]
    query: Query,
    /// Buckets to search (names or `s3://name`); default every bucket of the token.
    #[serde(default, deserialize_with = "search::buckets")]
    #[schemars(length(min = 1, max = search::MAX_BUCKETS))]
    buckets: Option<Vec<Bucket>>,
    /// Only these file extensions (`csv` or `.csv`).
    #[serde(default, deserialize_with = "extensions")]
    #[schemars(length(min = 1, max = MAX_EXTENSIONS))]
    extensions: Option<Vec<Extension>>,
    /// Only keys starting with this prefix.
    #[serde(default)]
    #[schemars(length(max = 1024))]
    key_prefix: Option<KeyPrefix>,
    /// Most objects to return, 1 to 100 (default 20); `next_cursor` pages on.
    #[serde(default)]
    max_results: Option<Bounded<1, MAX_RESULTS>>,
    /// The `next_cursor` of the page before (same query, buckets and filters).
    #[serde(default, deserialize_with = "search::cursor")]
    #[schemars(with = "Option<String>", length(min = 1, max = MAX_CURSOR_CHARS))]
    cursor: Option<Cursor>,
}

impl SearchObjectsParams {
    /// The registry's `ObjectsSearchFilter`, or null.
    fn filter(&self) -> Value {
        let mut filter = serde_json::Map::new();
        if let Some(list) = &self.extensions {
            let terms: Vec<&str> = list.iter().map(|e| e.0.as_str()).collect();
            filter.insert("ext".into(), json!({"terms": terms}));
        }
        if let Some(prefix) = self.key_prefix.as_ref().filter(|p| !p.0.is_empty()) {
            filter.insert("key".into(), json!({"wildcard": prefix.wildcard()}));
        }
        if filter.is_empty() {
            Value::Null
        } else {
            Value::Object(filter)
        }
    }
}

impl Params for SearchObjectsParams {
    fn access(&self) -> Access {
        let mut access = Access::needs(&[LIST_BUCKET]);
        for bucket in self.buckets.iter().flatten() {
            access = access.bucket(bucket.name());
        }
        access
    }
}

/// An object found.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct ObjectResult {
    /// The bucket.
    bucket: String,
    /// The key.
    key: String,
    /// `s3://bucket/key`: pass to the bucket_object tools.
    s3_uri: String,
    /// The version the index holds (null for an unversioned object).
    version_id: Option<String>,
    /// Size in bytes.
    size: u64,
    /// Last modified, RFC 3339 (null when the registry's time does not parse).
    modified: Option<String>,
    /// Whether the index records the object as deleted.
    deleted: bool,
    /// The object's page in the catalog (with `QUILT_CATALOG_URL`).
    #[serde(skip_serializing_if = "Option::is_none")]
    catalog_url: Option<String>,
}

/// The result of `search_objects`.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct SearchObjectsOutput {
    /// How many objects match in all (every page).
    total: u64,
    /// This page's objects, best match first.
    results: Vec<ObjectResult>,
    /// How many on this page.
    count: usize,
    /// The buckets searched; null: every bucket the registry searches for a token that allows all.
    buckets: Option<Vec<String>>,
    /// Hits of this page not shown: outside the buckets searched, or malformed.
    skipped: usize,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

impl Tool for SearchObjects {
    const INFO: ToolInfo = ToolInfo::searches(
        "search_objects",
        "Search objects",
        "Find S3 objects by key, contents or metadata with the catalog's search syntax, in \
            the token's buckets (or `buckets`), optionally only some `extensions` or under a \
            `key_prefix`. Each result has an `s3_uri` for the bucket_object tools; page with \
            `next_cursor`.",
    );
    type Params = SearchObjectsParams;
    type Output = SearchObjectsOutput;

    fn example() -> Value {
        json!({"query": "experiment 42", "buckets": ["b"], "extensions": ["parquet"]})
    }

    async fn run(call: Call<'_>, p: SearchObjectsParams) -> Result<SearchObjectsOutput, ToolError> {
        let registry = call.registry()?;
        let searched = Searched::of(&call, p.buckets.as_deref())?;
        let size = p.max_results.map_or(DEFAULT_MAX_RESULTS, Bounded::get);
        let filter = p.filter();
        let pin = Pin::new(Self::INFO.name, &p.query, &searched, filter.clone());
        let page: Page<ObjectHit> = match &p.cursor {
            Some(cursor) => {
                let (after, total) = cursor.open(&pin)?;
                let mut page = registry.search_more_objects(call.ctx, after, size).await?;
                page.total = Some(total);
                page
            }
            None => {
                registry
                    .search_objects(
                        call.ctx,
                        p.query.search_string(),
                        searched.names(),
                        filter,
                        size,
                    )
                    .await?
            }
        };
        let total = page.total.unwrap_or(0);
        let received = page.hits.len();
        let results: Vec<ObjectResult> = page
            .hits
            .into_iter()
            .filter(|hit| searched.shows(&call, &hit.bucket))
            .filter_map(|hit| result(hit, call.catalog_url))
            .collect();
        let next_cursor = page
            .cursor
            .filter(|_| received > 0)
            .and_then(|after| Cursor::issue(&pin, total, &after));
        Ok(SearchObjectsOutput {
            total,
            count: results.len(),
            skipped: received - results.len(),
            results,
            buckets: searched.shown(),
            next_cursor,
        })
    }
}

/// The result for one hit; `None` for a malformed one (a bucket or key no S3 has).
fn result(hit: ObjectHit, catalog: Option<&str>) -> Option<ObjectResult> {
    if !(search::fits(&hit.bucket) && search::fits(&hit.key))
        || super::uri::parse_bucket(&hit.bucket).is_err()
    {
        return None;
    }
    let version_id = Some(hit.version).filter(|v| !v.is_empty() && v != "null");
    Some(ObjectResult {
        s3_uri: S3Uri::new(&hit.bucket, &hit.key).to_string(),
        catalog_url: search::object_link(catalog, &hit.bucket, &hit.key),
        modified: search::time(&hit.modified),
        size: search::bytes(hit.size),
        deleted: hit.deleted,
        version_id: version_id.filter(|v| v.len() <= search::MAX_NAME_BYTES),
        bucket: hit.bucket,
        key: hit.key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: Value) -> Result<SearchObjectsParams, String> {
        serde_json::from_value(args).map_err(|e| e.to_string())
    }

    #[test]
    fn filters_are_what_the_registry_indexes() {
        let p = parse(json!({"query": "x", "extensions": ["CSV", ".parquet", "csv"], "key_prefix": "raw/*x?"})).unwrap();
        assert_eq!(
            p.filter(),
            json!({"ext": {"terms": [".csv", ".parquet"]}, "key": {"wildcard": "raw/\\*x\\?*"}})
        );
        assert_eq!(parse(json!({"query": "x"})).unwrap().filter(), Value::Null);
        assert_eq!(
            parse(json!({"query": "x", "key_prefix": ""}))
                .unwrap()
                .filter(),
            Value::Null
        );
        for (args, want) in [
            (
                json!({"query": "x", "extensions": []}),
                "names 0 extensions",
            ),
            (
                json!({"query": "x", "extensions": ["a/b"]}),
                "not a file extension",
            ),
            (
                json!({"query": "x", "extensions": ["."]}),
                "not a file extension",
            ),
            (json!({"query": "x", "key_prefix": "a\u{0}"}), "NUL"),
            (
                json!({"query": "x", "key_prefix": "k".repeat(1025)}),
                "1024",
            ),
            (json!({"query": "x", "buckets": ["s3://b/k"]}), ""),
            (json!({"query": "x", "cursor": ""}), "not a next_cursor"),
        ] {
            let error = parse(args.clone()).unwrap_err();
            assert!(error.contains(want), "{args}: {error}");
        }
    }

    #[test]
    fn hits_become_results_with_round_tripping_uris() {
        let hit = |bucket: &str, key: &str, version: &str| ObjectHit {
            bucket: bucket.into(),
            key: key.into(),
            version: version.into(),
            size: 5.0,
            modified: "2026-03-04T05:06:07.123Z".into(),
            deleted: false,
        };
        let shown = result(hit("b", "dir/a#b.csv", "v1"), Some("https://c")).unwrap();
        assert_eq!(shown.s3_uri, "s3://b/dir/a%23b.csv");
        assert_eq!(shown.version_id.as_deref(), Some("v1"));
        assert_eq!(shown.modified.as_deref(), Some("2026-03-04T05:06:07Z"));
        assert_eq!(
            shown.catalog_url.as_deref(),
            Some("https://c/b/b/tree/dir/a%23b.csv")
        );
        assert_eq!(
            result(hit("b", "k", "null"), None).unwrap().version_id,
            None
        );
        assert!(result(hit("Not A Bucket", "k", ""), None).is_none());
        assert!(result(hit("b", "", ""), None).is_none());
    }
}
