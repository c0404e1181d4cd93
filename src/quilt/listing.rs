//! The packages of a registry, named by delimited listings (see `docs/reference.md`,
//! Tools: `package_list`): the namespaces under `.quilt/named_packages/`, then the
//! names in each, so that a package's revision pointers are never listed. Only with
//! details is each listed package's `latest` read, a page's worth at a time.

use futures::StreamExt as _;

use super::NAMED_PACKAGES_PREFIX;
use super::error::QuiltError;
use super::registry::{MAX_SMALL_BYTES, Registry};
use crate::s3::{ListRequest, S3ErrorKind};

/// Namespaces whose names are listed at once.
const NAMESPACE_CONCURRENCY: usize = 8;
/// Namespaces listed at a time.
const NAMESPACE_BATCH: usize = 100;
/// `latest` pointers read at once.
const POINTER_CONCURRENCY: usize = 16;

/// One listed package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listed {
    /// `ns/name`.
    pub name: String,
    /// With details: the top hash `latest` holds.
    pub top_hash: Option<String>,
    /// With details: when `latest` was written, Unix seconds.
    pub modified: Option<i64>,
    /// With details: why `latest` could not be read, for this package alone.
    pub error: Option<String>,
}

/// One page of packages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListPage {
    /// The packages, in key order (a name followed by `/`).
    pub packages: Vec<Listed>,
    /// The last package of this page when more follow.
    pub next_after: Option<String>,
}

/// The names one level below `prefix` (each ending in `/`, without `prefix`) whose
/// keys start with `prefix` + `starts`, after the key `start_after`; at most `max`, and
/// whether the listing may hold more (so that a caller need not list again to learn
/// that it does not).
async fn children(
    registry: &Registry<'_>,
    prefix: &str,
    starts: &str,
    start_after: Option<String>,
    max: usize,
) -> Result<(Vec<String>, bool), QuiltError> {
    let mut pages = registry.s3().list(ListRequest {
        delimiter: Some("/".to_owned()),
        start_after,
        // No more than asked for: S3 then says itself whether more follow.
        max_keys: Some(i32::try_from(max.clamp(1, 1000)).unwrap_or(1000)),
        ..ListRequest::prefix(registry.bucket(), &format!("{prefix}{starts}"))
    });
    let mut names = Vec::new();
    while let Some(page) = pages.next_page().await {
        let page = page?;
        let listed = page.common_prefixes.len();
        for (at, listed_name) in page.common_prefixes.into_iter().enumerate() {
            if let Some(child) = listed_name.strip_prefix(prefix)
                && let Some(name) = child.strip_suffix('/')
                && !name.is_empty()
                && !name.contains('/')
            {
                names.push(name.to_owned());
                if names.len() >= max {
                    return Ok((names, at + 1 < listed || page.is_truncated));
                }
            }
        }
    }
    Ok((names, false))
}

/// The key after which a listing of `dir` (ending in `/`) skips every name up to and
/// including `name`: `name0` (`0` is the byte after `/`, so `name/…` sorts before it).
fn skip(dir: &str, name: &str) -> String {
    format!("{dir}{name}0")
}

/// One page of the packages whose names start with `prefix`: at most `max` after the
/// package `after`, in key order; with `details`, each one's `latest`.
pub(crate) async fn list(
    registry: &Registry<'_>,
    prefix: &str,
    after: Option<&str>,
    max: usize,
    details: bool,
) -> Result<ListPage, QuiltError> {
    let want = max.saturating_add(1);
    let mut names: Vec<String> = Vec::new();
    let (after_ns, after_name) = match after.and_then(|a| a.split_once('/')) {
        Some((ns, name)) => (Some(ns), Some(name)),
        None => (None, None),
    };
    match prefix.split_once('/') {
        // One namespace.
        Some((ns, starts)) => {
            let dir = format!("{NAMED_PACKAGES_PREFIX}{ns}/");
            let start_after = after_name.map(|name| skip(&dir, name));
            for name in children(registry, &dir, starts, start_after, want).await?.0 {
                names.push(format!("{ns}/{name}"));
            }
        }
        None => {
            // The rest of the cursor's namespace, then the namespaces after it.
            if let (Some(ns), Some(name)) = (after_ns, after_name) {
                let dir = format!("{NAMED_PACKAGES_PREFIX}{ns}/");
                for child in children(registry, &dir, "", Some(skip(&dir, name)), want)
                    .await?
                    .0
                {
                    names.push(format!("{ns}/{child}"));
                }
            }
            let mut start_after = after_ns.map(|ns| skip(NAMED_PACKAGES_PREFIX, ns));
            let mut exhausted = false;
            while names.len() < want && !exhausted {
                let (namespaces, more) = children(
                    registry,
                    NAMED_PACKAGES_PREFIX,
                    prefix,
                    start_after.clone(),
                    NAMESPACE_BATCH,
                )
                .await?;
                exhausted = !more;
                let Some(last) = namespaces.last() else {
                    break;
                };
                start_after = Some(skip(NAMED_PACKAGES_PREFIX, last));
                let mut listings = futures::stream::iter(namespaces)
                    .map(|ns| async move {
                        let dir = format!("{NAMED_PACKAGES_PREFIX}{ns}/");
                        children(registry, &dir, "", None, want)
                            .await
                            .map(|(names, _)| (ns, names))
                    })
                    .buffered(NAMESPACE_CONCURRENCY);
                while names.len() < want
                    && let Some(listing) = listings.next().await
                {
                    let (ns, children) = listing?;
                    names.extend(children.into_iter().map(|child| format!("{ns}/{child}")));
                }
            }
        }
    }
    let more = names.len() > max;
    names.truncate(max);
    let next_after = more.then(|| names.last().cloned()).flatten();
    let packages = if details {
        futures::stream::iter(names)
            .map(|name| async move { latest(registry, name).await })
            .buffered(POINTER_CONCURRENCY)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?
    } else {
        names
            .into_iter()
            .map(|name| Listed {
                name,
                top_hash: None,
                modified: None,
                error: None,
            })
            .collect()
    };
    Ok(ListPage {
        packages,
        next_after,
    })
}

/// A package with its `latest`: a missing or corrupt pointer is its own `error`.
async fn latest(registry: &Registry<'_>, name: String) -> Result<Listed, QuiltError> {
    let key = super::latest_key(&name);
    let uri = format!("s3://{}/{key}", registry.bucket());
    let mut listed = Listed {
        name,
        top_hash: None,
        modified: None,
        error: None,
    };
    let too_large =
        || format!("{uri} is larger than {MAX_SMALL_BYTES} bytes: it is not a package pointer");
    let capped = match registry
        .s3()
        .read_capped(&registry.object(&key), MAX_SMALL_BYTES)
        .await
    {
        Ok(capped) => capped,
        Err(error) if error.is_not_found() => {
            listed.error = Some(format!("{uri} does not exist"));
            return Ok(listed);
        }
        Err(error) if matches!(error.kind, S3ErrorKind::OverCap { .. }) => {
            listed.error = Some(too_large());
            return Ok(listed);
        }
        Err(error) => return Err(error.into()),
    };
    listed.modified = capped.last_modified;
    match super::parse_pointer(&capped.bytes) {
        None => listed.error = Some(format!("{uri} does not hold a top hash")),
        Some(hash) => listed.top_hash = Some(hash),
    }
    Ok(listed)
}
