//! The registry's search API as the search tools use it: `searchPackages` /
//! `searchMorePackages` and `searchObjects` / `searchMoreObjects`, one page at a time,
//! with the registry's answers typed and its failures mapped to the error codes of
//! docs/reference.md (Errors).
//!
//! The queries ask only for what the results show. `firstPage` of a package search is
//! a union in newer registries and a plain page in older ones; the query asks for it
//! through `... on PackagesSearchResultSetPage`, which both accept.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::RegistryClient;
use super::graphql::{GraphqlError, quote};
use crate::auth::AuthContext;
use crate::error::{ErrorCode, ToolError};

/// The most bytes of a search answer that are read.
pub(crate) const MAX_ANSWER_BYTES: usize = 8 * 1024 * 1024;
/// The time a search request may take, answer included.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(30);

const PACKAGE_HIT: &str = "fragment PackageHit on SearchHitPackage {
  bucket name hash size modified totalEntriesCount comment
  matchingEntries { logicalKey size }
}";

const OBJECT_HIT: &str = "fragment ObjectHit on SearchHitObject {
  bucket key version size modified deleted
}";

const FAILURES: &str = "... on InvalidInput { errors { path message name } }
    ... on OperationError { name message }";

/// The first page of a package search.
pub(crate) fn packages_query() -> String {
    format!(
        "query SearchPackages($buckets: [String!], $searchString: String, $latestOnly: Boolean!, $size: Int) {{
  searchPackages(buckets: $buckets, searchString: $searchString, latestOnly: $latestOnly) {{
    __typename
    ... on PackagesSearchResultSet {{
      total
      firstPage(size: $size) {{
        __typename
        ... on PackagesSearchResultSetPage {{ cursor hits {{ ...PackageHit }} }}
      }}
    }}
    {FAILURES}
  }}
}}
{PACKAGE_HIT}"
    )
}

/// A further page of a package search.
pub(crate) fn more_packages_query() -> String {
    format!(
        "query SearchMorePackages($after: String!, $size: Int) {{
  searchMorePackages(after: $after, size: $size) {{
    __typename
    ... on PackagesSearchResultSetPage {{ cursor hits {{ ...PackageHit }} }}
    {FAILURES}
  }}
}}
{PACKAGE_HIT}"
    )
}

/// The first page of an object search.
pub(crate) fn objects_query() -> String {
    format!(
        "query SearchObjects($buckets: [String!], $searchString: String, $filter: ObjectsSearchFilter, $size: Int) {{
  searchObjects(buckets: $buckets, searchString: $searchString, filter: $filter) {{
    __typename
    ... on ObjectsSearchResultSet {{
      total
      firstPage(size: $size) {{ __typename cursor hits {{ ...ObjectHit }} }}
    }}
    {FAILURES}
  }}
}}
{OBJECT_HIT}"
    )
}

/// A further page of an object search.
pub(crate) fn more_objects_query() -> String {
    format!(
        "query SearchMoreObjects($after: String!, $size: Int) {{
  searchMoreObjects(after: $after, size: $size) {{
    __typename
    ... on ObjectsSearchResultSetPage {{ cursor hits {{ ...ObjectHit }} }}
    {FAILURES}
  }}
}}
{OBJECT_HIT}"
    )
}

/// One package the registry found.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PackageHit {
    pub(crate) bucket: String,
    pub(crate) name: String,
    pub(crate) hash: String,
    pub(crate) size: f64,
    pub(crate) modified: String,
    pub(crate) total_entries_count: i64,
    #[serde(default)]
    pub(crate) comment: Option<String>,
    #[serde(default)]
    pub(crate) matching_entries: Vec<MatchingEntry>,
}

/// An entry of a found package that matched the query.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MatchingEntry {
    pub(crate) logical_key: String,
    pub(crate) size: f64,
}

/// One object the registry found.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ObjectHit {
    pub(crate) bucket: String,
    pub(crate) key: String,
    pub(crate) version: String,
    pub(crate) size: f64,
    pub(crate) modified: String,
    #[serde(default)]
    pub(crate) deleted: bool,
}

/// One page of hits.
#[derive(Debug, Clone)]
pub(crate) struct Page<H> {
    /// How many hits the whole search has (known on the first page only).
    pub(crate) total: Option<u64>,
    /// The registry's cursor for the next page.
    pub(crate) cursor: Option<String>,
    /// The hits.
    pub(crate) hits: Vec<H>,
}

#[derive(Deserialize)]
struct RawPage<H> {
    #[serde(default)]
    cursor: Option<String>,
    hits: Vec<H>,
}

#[derive(Deserialize)]
struct InputError {
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// What a search field answers: a result set, nothing, or a failure.
#[derive(Deserialize)]
#[serde(tag = "__typename")]
enum SetResult<H> {
    #[serde(rename = "PackagesSearchResultSet", alias = "ObjectsSearchResultSet")]
    Set {
        total: i64,
        #[serde(rename = "firstPage")]
        first_page: PageResult<H>,
    },
    EmptySearchResultSet,
    InvalidInput {
        #[serde(default)]
        errors: Vec<InputError>,
    },
    OperationError {
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        message: Option<String>,
    },
}

/// What a page field answers: a page or a failure.
#[derive(Deserialize)]
#[serde(tag = "__typename")]
enum PageResult<H> {
    #[serde(
        rename = "PackagesSearchResultSetPage",
        alias = "ObjectsSearchResultSetPage"
    )]
    Page(RawPage<H>),
    InvalidInput {
        #[serde(default)]
        errors: Vec<InputError>,
    },
    OperationError {
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        message: Option<String>,
    },
}

/// `invalid_argument` from `InvalidInput`: the registry found the query or a filter
/// wrong.
fn invalid_input(errors: &[InputError]) -> ToolError {
    let said: Vec<String> = errors
        .iter()
        .take(5)
        .map(|e| {
            let message = quote(e.message.as_deref().unwrap_or("invalid"));
            match e.path.as_deref() {
                Some(path) => format!("{}: {message}", quote(path)),
                None => message,
            }
        })
        .collect();
    ToolError::invalid(format!(
        "the Quilt registry refused the search: {}; check the query's syntax (the catalog's search syntax)",
        if said.is_empty() {
            "invalid input".to_owned()
        } else {
            said.join("; ")
        }
    ))
}

/// `upstream_error` from `OperationError`: the registry's search backend failed (a
/// timeout, an unavailable index); a later call may succeed.
fn operation_error(name: Option<&str>, message: Option<&str>) -> ToolError {
    ToolError::retryable(
        ErrorCode::UpstreamError,
        format!(
            "the Quilt registry's search failed ({}): {}",
            quote(name.unwrap_or("OperationError")),
            quote(message.unwrap_or("no message"))
        ),
    )
}

fn page<H>(total: Option<u64>, result: PageResult<H>) -> Result<Page<H>, ToolError> {
    match result {
        PageResult::Page(raw) => Ok(Page {
            total,
            cursor: raw.cursor.filter(|c| !c.is_empty()),
            hits: raw.hits,
        }),
        PageResult::InvalidInput { errors } => Err(invalid_input(&errors)),
        PageResult::OperationError { name, message } => {
            Err(operation_error(name.as_deref(), message.as_deref()))
        }
    }
}

fn first<H>(result: SetResult<H>) -> Result<Page<H>, ToolError> {
    match result {
        SetResult::Set { total, first_page } => {
            page(Some(u64::try_from(total).unwrap_or(0)), first_page)
        }
        SetResult::EmptySearchResultSet => Ok(Page {
            total: Some(0),
            cursor: None,
            hits: Vec::new(),
        }),
        SetResult::InvalidInput { errors } => Err(invalid_input(&errors)),
        SetResult::OperationError { name, message } => {
            Err(operation_error(name.as_deref(), message.as_deref()))
        }
    }
}

impl RegistryClient {
    async fn search<T: serde::de::DeserializeOwned>(
        &self,
        ctx: &AuthContext,
        query: &str,
        variables: Value,
    ) -> Result<T, ToolError> {
        self.graphql(ctx, query, variables, MAX_ANSWER_BYTES, TIMEOUT)
            .await
            .map_err(|error| match error {
                GraphqlError::Registry(error) => error.into_tool_error(ctx.token_info.source),
                other => ToolError::new(ErrorCode::UpstreamError, other.to_string()),
            })
    }

    /// The first page of packages matching `search` in `buckets` (`None`: every bucket
    /// the registry searches for this user).
    pub(crate) async fn search_packages(
        &self,
        ctx: &AuthContext,
        search: Option<&str>,
        buckets: Option<&[String]>,
        latest_only: bool,
        size: u64,
    ) -> Result<Page<PackageHit>, ToolError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Data {
            search_packages: SetResult<PackageHit>,
        }
        let variables = json!({
            "buckets": buckets, "searchString": search, "latestOnly": latest_only, "size": size,
        });
        let data: Data = self.search(ctx, &packages_query(), variables).await?;
        first(data.search_packages)
    }

    /// The page of a package search after the registry's cursor `after`.
    pub(crate) async fn search_more_packages(
        &self,
        ctx: &AuthContext,
        after: &str,
        size: u64,
    ) -> Result<Page<PackageHit>, ToolError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Data {
            search_more_packages: PageResult<PackageHit>,
        }
        let variables = json!({"after": after, "size": size});
        let data: Data = self.search(ctx, &more_packages_query(), variables).await?;
        page(None, data.search_more_packages)
    }

    /// The first page of objects matching `search` in `buckets`, with `filter` (an
    /// `ObjectsSearchFilter`, or null).
    pub(crate) async fn search_objects(
        &self,
        ctx: &AuthContext,
        search: Option<&str>,
        buckets: Option<&[String]>,
        filter: Value,
        size: u64,
    ) -> Result<Page<ObjectHit>, ToolError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Data {
            search_objects: SetResult<ObjectHit>,
        }
        let variables = json!({
            "buckets": buckets, "searchString": search, "filter": filter, "size": size,
        });
        let data: Data = self.search(ctx, &objects_query(), variables).await?;
        first(data.search_objects)
    }

    /// The page of an object search after the registry's cursor `after`.
    pub(crate) async fn search_more_objects(
        &self,
        ctx: &AuthContext,
        after: &str,
        size: u64,
    ) -> Result<Page<ObjectHit>, ToolError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Data {
            search_more_objects: PageResult<ObjectHit>,
        }
        let variables = json!({"after": after, "size": size});
        let data: Data = self.search(ctx, &more_objects_query(), variables).await?;
        page(None, data.search_more_objects)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_of_every_arm_are_typed() {
        let set: SetResult<ObjectHit> = serde_json::from_value(json!({
            "__typename": "ObjectsSearchResultSet", "total": 3,
            "firstPage": {"__typename": "ObjectsSearchResultSetPage", "cursor": "c1", "hits": [
                {"bucket": "b", "key": "k", "version": "v", "size": 1.0, "modified": "2026-01-01T00:00:00Z", "deleted": false}
            ]}
        }))
        .unwrap();
        let got = first(set).unwrap();
        assert_eq!(
            (got.total, got.cursor.as_deref(), got.hits.len()),
            (Some(3), Some("c1"), 1)
        );
        let empty: SetResult<ObjectHit> =
            serde_json::from_value(json!({"__typename": "EmptySearchResultSet", "_": null}))
                .unwrap();
        assert_eq!(first(empty).unwrap().total, Some(0));
        let invalid: SetResult<PackageHit> = serde_json::from_value(json!({
            "__typename": "InvalidInput", "errors": [{"path": "searchString", "message": "bad syntax", "name": "QuerySyntaxError"}]
        }))
        .unwrap();
        let error = first(invalid).unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidArgument);
        assert!(
            error.message.contains("searchString: bad syntax"),
            "{}",
            error.message
        );
        let failed: PageResult<PackageHit> = serde_json::from_value(json!({
            "__typename": "OperationError", "name": "Timeout", "message": "search timed out"
        }))
        .unwrap();
        let error = page(None, failed).unwrap_err();
        assert_eq!(
            (error.code, error.retryable),
            (ErrorCode::UpstreamError, true)
        );
    }
}
