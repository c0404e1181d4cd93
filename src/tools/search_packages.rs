//! `search_packages`: Quilt packages matching a query in the catalog's search syntax,
//! through the registry's search API (`searchPackages`, then `searchMorePackages` for
//! the pages after the first), in the buckets of the token or the ones named
//! (docs/reference.md, Tools and Results).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::search::{
    self, Cursor, DEFAULT_MAX_RESULTS, MAX_CURSOR_CHARS, MAX_RESULTS, Pin, Query, Searched,
};
use super::uri::{Bounded, Bucket};
use super::{Access, Call, LIST_BUCKET, Params, Tool, ToolError, ToolInfo};
use crate::quilt;
use crate::registry::search::{PackageHit, Page};

/// `search_packages`.
pub(crate) struct SearchPackages;

/// The most matching entries shown per package.
const MAX_MATCHING_ENTRIES: usize = 10;

/// `search_packages` parameters.
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct SearchPackagesParams {
    /// What to find, in the catalog's search syntax: words, `"a phrase"`, `AND`/`OR`/`NOT`, `field:value` (`name:`, `comment:`, `metadata` fields); empty finds every package.
    #[schemars(length(max = search::MAX_QUERY_BYTES))]
    query: Query,
    /// Buckets to search (names or `s3://name`); default every bucket of the token.
    #[serde(default, deserialize_with = "search::buckets")]
    #[schemars(length(min = 1, max = search::MAX_BUCKETS))]
    buckets: Option<Vec<Bucket>>,
    /// Only each package's latest revision (default true); false finds older revisions too.
    #[serde(default)]
    latest_only: Option<bool>,
    /// Most packages to return, 1 to 100 (default 20); `next_cursor` pages on.
    #[serde(default)]
    max_results: Option<Bounded<1, MAX_RESULTS>>,
    /// The `next_cursor` of the page before (same query, buckets and options).
    #[serde(default, deserialize_with = "search::cursor")]
    #[schemars(with = "Option<String>", length(min = 1, max = MAX_CURSOR_CHARS))]
    cursor: Option<Cursor>,
}

impl Params for SearchPackagesParams {
    fn access(&self) -> Access {
        let mut access = Access::needs(&[LIST_BUCKET]);
        for bucket in self.buckets.iter().flatten() {
            access = access.bucket(bucket.name());
        }
        access
    }
}

/// An entry of a found package that matched the query.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct MatchingEntry {
    /// Its logical key in the package.
    logical_key: String,
    /// Its size in bytes.
    size: u64,
}

/// A package revision found.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct PackageResult {
    /// The registry bucket.
    bucket: String,
    /// `namespace/name`.
    name: String,
    /// The revision's top hash.
    top_hash: String,
    /// When the revision was pushed, RFC 3339 (null when the registry's time does not parse).
    modified: Option<String>,
    /// The revision's total size in bytes.
    size: u64,
    /// How many entries it has.
    entry_count: u64,
    /// Its commit message.
    message: Option<String>,
    /// `quilt+s3://bucket#package=name@top_hash`: pass to the package tools.
    uri: String,
    /// The package's page in the catalog (with `QUILT_CATALOG_URL`).
    #[serde(skip_serializing_if = "Option::is_none")]
    catalog_url: Option<String>,
    /// Entries that matched the query (at most 10).
    matching_entries: Vec<MatchingEntry>,
    /// Whether more entries matched than are shown.
    matching_entries_truncated: bool,
}

/// The result of `search_packages`.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct SearchPackagesOutput {
    /// How many package revisions match in all (every page).
    total: u64,
    /// This page's packages, best match first.
    results: Vec<PackageResult>,
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

impl Tool for SearchPackages {
    const INFO: ToolInfo = ToolInfo::searches(
        "search_packages",
        "Search packages",
        "Find Quilt packages by name, commit message, metadata or entry names with the \
            catalog's search syntax, in the token's buckets (or `buckets`). Each result has \
            its top hash and a `uri` for package_browse. Latest revisions only unless \
            `latest_only` is false; page with `next_cursor`.",
    );
    type Params = SearchPackagesParams;
    type Output = SearchPackagesOutput;

    fn example() -> Value {
        json!({"query": "rna", "buckets": ["b"]})
    }

    async fn run(
        call: Call<'_>,
        p: SearchPackagesParams,
    ) -> Result<SearchPackagesOutput, ToolError> {
        let registry = call.registry()?;
        let searched = Searched::of(&call, p.buckets.as_deref())?;
        let latest_only = p.latest_only.unwrap_or(true);
        let size = p.max_results.map_or(DEFAULT_MAX_RESULTS, Bounded::get);
        let pin = Pin::new(
            Self::INFO.name,
            &p.query,
            &searched,
            json!({"latest_only": latest_only}),
        );
        let page: Page<PackageHit> = match &p.cursor {
            Some(cursor) => {
                let (after, total) = cursor.open(&pin)?;
                let mut page = registry.search_more_packages(call.ctx, after, size).await?;
                page.total = Some(total);
                page
            }
            None => {
                registry
                    .search_packages(
                        call.ctx,
                        p.query.search_string(),
                        searched.names(),
                        latest_only,
                        size,
                    )
                    .await?
            }
        };
        let total = page.total.unwrap_or(0);
        let received = page.hits.len();
        let results: Vec<PackageResult> = page
            .hits
            .into_iter()
            .filter(|hit| searched.shows(&call, &hit.bucket))
            .filter_map(|hit| result(hit, call.catalog_url))
            .collect();
        // A page without hits is the last, whatever cursor came with it.
        let next_cursor = page
            .cursor
            .filter(|_| received > 0)
            .and_then(|after| Cursor::issue(&pin, total, &after));
        Ok(SearchPackagesOutput {
            total,
            count: results.len(),
            skipped: received - results.len(),
            results,
            buckets: searched.shown(),
            next_cursor,
        })
    }
}

/// The result for one hit; `None` for a malformed one.
fn result(hit: PackageHit, catalog: Option<&str>) -> Option<PackageResult> {
    let name_ok = quilt::check_name_for_read(&hit.name).is_ok();
    let hash_ok = hit.hash.len() == 64 && hit.hash.bytes().all(|b| b.is_ascii_hexdigit());
    if !(search::fits(&hit.bucket) && search::fits(&hit.name) && name_ok && hash_ok) {
        return None;
    }
    let shown = hit
        .matching_entries
        .iter()
        .filter(|e| search::fits(&e.logical_key))
        .take(MAX_MATCHING_ENTRIES)
        .map(|e| MatchingEntry {
            logical_key: e.logical_key.clone(),
            size: search::bytes(e.size),
        })
        .collect::<Vec<_>>();
    Some(PackageResult {
        uri: quilt::package_uri(&hit.bucket, &hit.name, &hit.hash),
        catalog_url: search::package_link(catalog, &hit.bucket, &hit.name, &hit.hash),
        modified: search::time(&hit.modified),
        size: search::bytes(hit.size),
        entry_count: u64::try_from(hit.total_entries_count).unwrap_or(0),
        message: hit.comment.as_deref().map(search::short_message),
        matching_entries_truncated: hit.matching_entries.len() > shown.len(),
        matching_entries: shown,
        bucket: hit.bucket,
        name: hit.name,
        top_hash: hit.hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: Value) -> Result<SearchPackagesParams, String> {
        serde_json::from_value(args).map_err(|e| e.to_string())
    }

    /// Every bad argument fails as it is parsed, before the gate asks for anything.
    #[test]
    fn bad_arguments_fail_as_they_are_parsed() {
        let ok = parse(json!({"query": "rna"})).unwrap();
        assert_eq!(ok.access(), Access::needs(&[LIST_BUCKET]));
        let named =
            parse(json!({"query": "", "buckets": ["a", "s3://b", "a"], "max_results": 100}))
                .unwrap();
        assert_eq!(named.access().buckets, vec!["a", "b"]);
        for (args, want) in [
            (json!({}), "missing field `query`"),
            (json!({"query": 5}), "invalid type"),
            (json!({"query": "x", "buckets": []}), "names no bucket"),
            (json!({"query": "x", "buckets": ["Bad_Bucket!"]}), ""),
            (json!({"query": "x", "max_results": 0}), "from 1 to 100"),
            (json!({"query": "x", "max_results": 101}), "from 1 to 100"),
            (json!({"query": "x", "latest_only": "yes"}), "invalid type"),
            (
                json!({"query": "x", "cursor": "nope!"}),
                "not a next_cursor",
            ),
            (json!({"query": "x".repeat(4097)}), "more than 4096"),
        ] {
            let error = parse(args.clone()).unwrap_err();
            assert!(error.contains(want), "{args}: {error}");
        }
    }

    #[test]
    fn malformed_hits_are_skipped_and_long_lists_cut() {
        let hit = |name: &str, hash: &str, entries: usize| PackageHit {
            bucket: "b".into(),
            name: name.into(),
            hash: hash.into(),
            size: 10.0,
            modified: "2026-03-04T05:06:07Z".into(),
            total_entries_count: 3,
            comment: Some("m".repeat(5000)),
            matching_entries: (0..entries)
                .map(|i| crate::registry::search::MatchingEntry {
                    logical_key: format!("k{i}"),
                    size: 1.0,
                })
                .collect(),
        };
        let good = "a".repeat(64);
        let shown = result(hit("ns/pkg", &good, 12), Some("https://c")).unwrap();
        assert_eq!(shown.matching_entries.len(), 10);
        assert!(shown.matching_entries_truncated);
        assert_eq!(shown.message.as_ref().unwrap().chars().count(), 1001);
        assert_eq!(shown.uri, format!("quilt+s3://b#package=ns/pkg@{good}"));
        assert_eq!(
            shown.catalog_url.as_deref(),
            Some(format!("https://c/b/b/packages/ns/pkg/tree/{good}/").as_str())
        );
        assert!(result(hit("nopkg", &good, 0), None).is_none());
        assert!(result(hit("ns/pkg", "abc", 0), None).is_none());
    }
}
