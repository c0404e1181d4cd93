//! `package_patch`: a new revision of a package made from its `latest` (or a given
//! parent that must still be `latest`) by adding or replacing entries and removing
//! keys or `dir/` prefixes, published with the same race-safe writes as
//! `package_create` (docs/reference.md, Tools and Results).
//!
//! Only the new sources are read and hashed, and only the changes are held in
//! memory: the parent streams past (its top hash verified) and is merged with them
//! into a temporary file ([`crate::quilt::patch`]), which is uploaded as the new
//! manifest. Kept entries are the parent's manifest lines, byte for byte.

use std::collections::HashSet;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::package_uri::{PackageUri, WriteTarget, same_revision};
use super::packages::{
    ChangeCounts, CreateEntry, DELETE_OBJECT, MAX_CREATE_ENTRIES, SchemaAccess, check_logical_key,
    list_sources, present, registry_uri, sources_access,
};
use super::uri::{Bucket, SourceUri, blank_is_none, checked_params, short};
use super::{
    Access, Call, ErrorCode, GET_OBJECT, LIST_BUCKET, PUT_OBJECT, Params, Tool, ToolError,
    ToolInfo, Toolset,
};
use crate::error::ArgumentError;
use crate::quilt::error::QuiltError;
use crate::quilt::patch::{self, Removals};
use crate::quilt::publish;
use crate::quilt::registry::Registry;
use crate::quilt::workflow;
use crate::quilt::{self, HashPrefix, NewPackageName};
use crate::time::rfc3339;

/// `package_patch`.
pub(crate) struct PackagePatch;

/// Most entries of a patched revision checked at once against a workflow's
/// `entries_schema` (the whole list is one JSON value to the schema), as many as
/// `package_create` makes.
pub(crate) const MAX_CHECKED_ENTRIES: usize = MAX_CREATE_ENTRIES;

/// Most keys and prefixes one `remove` names.
pub(crate) const MAX_REMOVALS: usize = MAX_CREATE_ENTRIES;

/// `package_patch` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct PatchArgs {
    /// The package to change, `namespace/name` (or give `uri`).
    #[serde(default)]
    package_name: Option<NewPackageName>,
    /// The registry bucket: `s3://bucket` or a bucket name (or give `uri`).
    #[serde(default)]
    registry: Option<Bucket>,
    /// The package as the catalog names it, in place of `registry` and `package_name`:
    /// `quilt+s3://BUCKET#package=NS/NAME`, with `@TOP_HASH` for the `parent_hash`
    /// (a `path` in it is refused: a patch names a package).
    #[serde(default)]
    uri: Option<PackageUri>,
    /// The revision to build on, a full top hash or a unique prefix of at least 6
    /// characters (default: the current latest). It must still be the latest
    /// revision: when another was published since, the call is refused with
    /// `conflict`.
    #[serde(default, deserialize_with = "blank_is_none")]
    parent_hash: Option<HashPrefix>,
    /// Files to add, each an S3 object with its path in the package; one whose path is
    /// already in the package replaces that entry.
    #[serde(default)]
    #[schemars(length(max = MAX_CREATE_ENTRIES))]
    add: Vec<CreateEntry>,
    /// More files to add: an object URI adds that object under its file name; a URI
    /// ending in `/` adds every object under it, keyed relative to it.
    #[serde(default)]
    #[schemars(length(max = MAX_CREATE_ENTRIES))]
    add_s3_uris: Vec<SourceUri>,
    /// Entries to remove from the parent: a logical key, or a prefix ending in `/`
    /// such as `data/raw/` for every entry under it. One that matches nothing is
    /// refused.
    #[serde(default)]
    #[schemars(length(max = MAX_REMOVALS))]
    remove: Vec<String>,
    /// The new revision's commit message (default: none).
    #[serde(default)]
    message: Option<String>,
    /// Package-level metadata (a JSON object) that replaces the parent's `user_meta`
    /// (default: the parent's is kept).
    #[serde(default)]
    metadata: Option<serde_json::Map<String, Value>>,
    /// In a registry with a workflows config (`.quilt/workflows/config.yml`): the id
    /// of the workflow the new revision must pass (default: the config's
    /// `default_workflow`); `null` for none, where the config does not require one.
    #[serde(default, deserialize_with = "present")]
    workflow: Option<Option<String>>,
}

/// `package_patch` parameters: the arguments, checked together, and the package and
/// parent named by `uri` or by `registry`, `package_name` and `parent_hash`.
#[derive(Debug, Deserialize)]
#[serde(try_from = "PatchArgs")]
pub(crate) struct PatchParams {
    bucket: String,
    package_name: NewPackageName,
    parent_hash: Option<HashPrefix>,
    /// The rest: what to change.
    args: PatchArgs,
}
checked_params!(PatchParams, PatchArgs);

/// Checks one `remove` item: a logical key, or a prefix of one ending in `/`.
fn check_removal(target: &str) -> Result<(), ArgumentError> {
    check_logical_key(target.strip_suffix('/').unwrap_or(target)).map_err(|e| {
        ArgumentError::new(format!(
            "`remove`: {target:?} is neither a logical key nor a prefix ending in `/` ({e})"
        ))
    })
}

impl TryFrom<PatchArgs> for PatchParams {
    type Error = ArgumentError;
    fn try_from(mut args: PatchArgs) -> Result<PatchParams, ArgumentError> {
        let target = WriteTarget::named(
            args.registry.take(),
            args.package_name.take(),
            args.uri.take(),
        )?;
        if let Some(path) = &target.path {
            return Err(ArgumentError::new(format!(
                "`uri` names the file {:?}; a patch names a package, not a file: leave `&path=` out (`add` and `remove` name the files)",
                short(path)
            )));
        }
        let parent_hash = same_revision("parent_hash", args.parent_hash.take(), target.top_hash)?;
        let nothing = args.add.is_empty()
            && args.add_s3_uris.is_empty()
            && args.remove.is_empty()
            && args.message.is_none()
            && args.metadata.is_none()
            && args.workflow.is_none();
        if nothing {
            return Err(ArgumentError::new(
                "give something to change: `add`, `add_s3_uris`, `remove`, `message`, `metadata` or `workflow`",
            ));
        }
        let mut seen = HashSet::new();
        for target in &args.remove {
            check_removal(target)?;
            if !seen.insert(target.as_str()) {
                return Err(ArgumentError::new(format!(
                    "`remove` names {target:?} twice"
                )));
            }
        }
        let mut keys = HashSet::new();
        for entry in &args.add {
            if !keys.insert(entry.logical_key.0.as_str()) {
                return Err(ArgumentError::new(format!(
                    "`add` names the logical key {:?} twice",
                    entry.logical_key.0
                )));
            }
        }
        Ok(PatchParams {
            bucket: target.bucket,
            package_name: target.name,
            parent_hash,
            args,
        })
    }
}

impl Params for PatchParams {
    /// As `package_create`: writing and reading the registry, reading every source
    /// (listing prefixes); listing the registry to resolve a hash prefix.
    fn access(&self) -> Access {
        let a = &self.args;
        let mut access = Access::needs(&[PUT_OBJECT, GET_OBJECT]).bucket(&self.bucket);
        if self.parent_hash.as_ref().is_some_and(|h| !h.is_full()) {
            access.also_needs(LIST_BUCKET);
        }
        sources_access(access, &a.add, &a.add_s3_uris)
    }
}

/// The result of `package_patch`.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct PatchOutput {
    /// `s3://bucket`.
    registry: String,
    /// `namespace/name`.
    package_name: String,
    /// The new revision.
    top_hash: String,
    /// Its `quilt+s3://` URI.
    uri: String,
    /// How many entries it has.
    entry_count: usize,
    /// Their total size.
    total_size: u64,
    /// The id of the workflow it passed; `null` when the registry has no workflows
    /// config or none was used.
    workflow: Option<String>,
    /// The revision it was made from.
    parent_top_hash: String,
    /// The revision it replaces as latest: the parent.
    previous_top_hash: String,
    /// Its entries against the parent, by logical key.
    changes: ChangeCounts,
    /// When it was published, RFC 3339.
    created_at: Option<String>,
    /// Whether `latest` and the timestamp pointer were written with S3 conditional
    /// writes, so that no concurrent publish was overwritten (false when the S3
    /// endpoint does not implement them: then only a read-and-compare check guarded
    /// `latest`).
    race_safe: bool,
    /// The new revision's page in the Quilt catalog, when the server knows the catalog
    /// (`QUILT_CATALOG_URL`).
    #[serde(skip_serializing_if = "Option::is_none")]
    catalog_url: Option<String>,
}

/// The conflict of a parent that is not (or no longer) `latest`.
fn not_latest(name: &str, parent: &str, latest: &str) -> ToolError {
    ToolError::new(
        ErrorCode::Conflict,
        format!(
            "{name}: the parent {parent} is not the latest revision ({latest} is); nothing was published; look at the latest revision and patch it instead"
        ),
    )
}

impl Tool for PackagePatch {
    const INFO: ToolInfo = ToolInfo {
        name: "package_patch",
        toolset: Toolset::Packages,
        title: "Change some entries of a package",
        description: "Make a new revision of an existing package from its latest revision: \
            add files (an entry with the same path is replaced), remove entries or whole \
            dir/ prefixes, replace the message and metadata (the parent's metadata is kept \
            unless given). Only the new files are read and hashed; every other entry is kept \
            exactly as it was. In a registry with a workflows config the new revision must \
            pass its workflow, as with quilt3. Refused with conflict if another revision \
            became latest since the parent (nothing is published then). The result counts \
            what was added, removed, modified and unchanged. Sends progress notifications \
            when the client asks for them.",
        read_only: false,
        destructive: true,
        idempotent: false,
        open_world: true,
        registry: false,
    };
    type Params = PatchParams;
    type Output = PatchOutput;

    fn example() -> serde_json::Value {
        serde_json::json!({
            "registry": "b", "package_name": "ns/pkg",
            "add": [{"logical_key": "a", "s3_uri": "s3://src/a"}],
            "add_s3_uris": ["s3://src/dir/"],
            "remove": ["old/"]
        })
    }

    async fn run(call: Call<'_>, p: PatchParams) -> Result<PatchOutput, ToolError> {
        let PatchParams {
            bucket,
            package_name,
            parent_hash,
            args: p,
        } = p;
        let s3 = call.s3()?;
        let bucket = bucket.as_str();
        let registry = Registry::new(s3, bucket);
        let name: &str = &package_name;
        let Some(latest) = registry.latest_pointer(name).await? else {
            return Err(ToolError::new(
                ErrorCode::NotFound,
                format!(
                    "package {name} does not exist in s3://{bucket}; use package_create to make it"
                ),
            ));
        };
        let parent = match &parent_hash {
            None => latest.top_hash.clone(),
            Some(prefix) => registry.resolve(name, Some(prefix)).await?,
        };
        if parent != latest.top_hash {
            return Err(not_latest(name, &parent, &latest.top_hash));
        }
        let choice = match &p.workflow {
            None => workflow::Choice::Default,
            Some(None) => workflow::Choice::Skip,
            Some(Some(id)) => workflow::Choice::Named(id.clone()),
        };
        let gate = SchemaAccess {
            info: &Self::INFO,
            claims: &call.ctx.claims,
            read_only: call.read_only,
        };
        let governing = workflow::load(s3, bucket, &choice, &gate).await?;
        let parent_header = patch::read_header(&registry, &parent).await?;
        let metadata = match p.metadata {
            Some(metadata) => Some(Value::Object(metadata)),
            None => parent_header
                .raw("user_meta")
                .map(|_| parent_header.value("user_meta")),
        };
        // Name, message and metadata first: a revision that fails them is not hashed.
        if let Some(w) = &governing {
            let found = w.check_package(name, p.message.as_deref(), metadata.as_ref());
            if !found.is_empty() {
                w.verdict(found).map_err(QuiltError::from)?;
            }
        }
        let sources = list_sources(s3, &p.add, &p.add_s3_uris).await?;
        let adds = publish::hash_sources(s3, sources, call.progress, call.cancel).await?;
        let header = publish::new_header(
            p.message,
            metadata,
            governing.as_ref().map(workflow::Workflow::manifest_object),
        );
        let checks_entries = governing.as_ref().is_some_and(|w| w.checks_entries());
        let mut plan = patch::Patch::new(
            &header,
            &adds,
            Removals::new(p.remove),
            checks_entries.then_some(MAX_CHECKED_ENTRIES),
        );
        drop(adds);
        let patched =
            patch::merge(&registry, &parent, &parent_header, &mut plan, call.cancel).await?;
        let unmatched = patched.removals.unmatched();
        if !unmatched.is_empty() {
            return Err(ToolError::invalid(format!(
                "`remove` names what {name} at {parent} does not hold: {}; nothing was published",
                unmatched.join(", ")
            )));
        }
        if let (Some(w), Some(entries)) = (&governing, &patched.entries) {
            let found = w.check_entries(entries);
            if !found.is_empty() {
                w.verdict(found).map_err(QuiltError::from)?;
            }
        }
        if call.cancel.is_cancelled() {
            return Err(QuiltError::Cancelled.into());
        }
        let stored = publish::Stored {
            top_hash: patched.top_hash.clone(),
            entry_count: patched.entry_count,
            total_size: patched.total_size,
        };
        let published = publish::publish_file(
            &registry,
            name,
            patched.path(),
            stored,
            &latest,
            call.ctx.claims.has_permission(DELETE_OBJECT.as_str()),
        )
        .await?;
        let changes = patched.changes;
        drop(patched);
        let catalog_url =
            super::search::package_link(call.catalog_url, bucket, name, &published.top_hash, "");
        Ok(PatchOutput {
            registry: registry_uri(bucket),
            uri: quilt::package_uri(bucket, name, &published.top_hash),
            package_name: package_name.into_string(),
            top_hash: published.top_hash,
            entry_count: published.entry_count,
            total_size: published.total_size,
            workflow: governing.as_ref().and_then(|w| w.id().map(str::to_owned)),
            parent_top_hash: parent,
            previous_top_hash: latest.top_hash,
            changes: ChangeCounts::from(changes),
            created_at: rfc3339(published.created_at),
            race_safe: published.race_safe,
            catalog_url,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: serde_json::Value) -> Result<PatchParams, String> {
        serde_json::from_value(args).map_err(|e| e.to_string())
    }

    #[test]
    fn arguments_are_checked_together() {
        let base = serde_json::json!({"package_name": "ns/p", "registry": "b"});
        let with = |extra: serde_json::Value| {
            let mut args = base.clone();
            for (k, v) in extra.as_object().unwrap() {
                args[k] = v.clone();
            }
            args
        };
        for bad in [
            base.clone(),
            with(serde_json::json!({"remove": ["/a"]})),
            with(serde_json::json!({"remove": ["a//"]})),
            with(serde_json::json!({"remove": [""]})),
            with(serde_json::json!({"remove": ["a/../b"]})),
            with(serde_json::json!({"remove": ["a", "a"]})),
            with(serde_json::json!({"add": [
                {"logical_key": "k", "s3_uri": "s3://s/a"},
                {"logical_key": "k", "s3_uri": "s3://s/b"}
            ]})),
            with(serde_json::json!({"parent_hash": "abc", "message": "m"})),
        ] {
            assert!(parse(bad.clone()).is_err(), "{bad}");
        }
        for good in [
            with(serde_json::json!({"remove": ["a", "dir/"]})),
            with(serde_json::json!({"message": "m"})),
            with(serde_json::json!({"workflow": null})),
            with(serde_json::json!({"metadata": {}})),
            with(serde_json::json!({"add_s3_uris": ["s3://s/dir/"], "parent_hash": "abcdef"})),
        ] {
            assert!(parse(good.clone()).is_ok(), "{good}");
        }
    }

    #[test]
    fn a_uri_names_the_package_and_its_hash_the_parent() {
        let hash = "abcdef0123";
        let p = parse(serde_json::json!({
            "uri": format!("quilt+s3://reg#package=ns/p@{hash}"), "message": "m"
        }))
        .unwrap();
        assert_eq!(
            (
                p.bucket.as_str(),
                &*p.package_name,
                p.parent_hash.as_ref().map(HashPrefix::as_str)
            ),
            ("reg", "ns/p", Some(hash))
        );
        // Given both ways, they must agree; the longer hash is kept.
        let p = parse(serde_json::json!({
            "uri": "quilt+s3://reg#package=ns/p@abcdef", "parent_hash": hash,
            "registry": "s3://reg", "package_name": "ns/p", "message": "m"
        }))
        .unwrap();
        assert_eq!(p.parent_hash.as_ref().map(HashPrefix::as_str), Some(hash));
        for (bad, names) in [
            (
                serde_json::json!({"uri": "quilt+s3://reg#package=ns/p&path=a.csv"}),
                "not a file",
            ),
            (
                serde_json::json!({"uri": "quilt+s3://reg#package=ns/p@abcdef", "parent_hash": "abcd00"}),
                "`parent_hash`",
            ),
            (
                serde_json::json!({"uri": "quilt+s3://reg#package=ns/p", "registry": "other"}),
                "`registry`",
            ),
            (
                serde_json::json!({"uri": "quilt+s3://reg#package=ns/p", "package_name": "ns/q"}),
                "`package_name`",
            ),
            // A name that can be read but not written.
            (
                serde_json::json!({"uri": "quilt+s3://reg#package=ns/p%C3%A9"}),
                "not a package name to write",
            ),
            (serde_json::json!({"registry": "reg"}), "`uri`"),
        ] {
            let mut args = bad.clone();
            args["message"] = "m".into();
            let error = parse(args).unwrap_err();
            assert!(error.contains(names), "{bad}: {error}");
        }
    }
}
