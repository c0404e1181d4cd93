//! The difference between two package revisions, as a pure function of their
//! manifests.

use std::collections::BTreeMap;

use serde_json::Value;

use super::manifest::{Manifest, Record, tree_order};

/// What changed from one revision to another; each list in tree order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Diff {
    /// Logical keys only in the new revision.
    pub added: Vec<String>,
    /// Logical keys only in the old revision.
    pub removed: Vec<String>,
    /// Logical keys in both whose hash or size differ.
    pub modified: Vec<String>,
    /// Logical keys in both whose entry metadata differ (a missing `meta` counts as `{}`).
    pub metadata_changed: Vec<String>,
    /// Whether the package's message or `user_meta` differ.
    pub package_metadata_changed: bool,
    /// Entries of the new revision that are neither added nor modified.
    pub unchanged: usize,
}

/// Compares `old` with `new`.
pub(crate) fn diff(old: &Manifest, new: &Manifest) -> Diff {
    let old_entries: BTreeMap<&str, &Record> =
        old.entries().map(|e| (e.logical_key(), e)).collect();
    let new_entries: BTreeMap<&str, &Record> =
        new.entries().map(|e| (e.logical_key(), e)).collect();
    let empty = Value::Object(serde_json::Map::new());
    let meta = |r: &Record| match r.meta() {
        Value::Null => empty.clone(),
        meta => meta.clone(),
    };
    let mut out = Diff::default();
    for (key, entry) in &new_entries {
        match old_entries.get(key) {
            None => out.added.push((*key).to_owned()),
            Some(before) => {
                if before.hash_parts() != entry.hash_parts() || before.size() != entry.size() {
                    out.modified.push((*key).to_owned());
                }
                if meta(before) != meta(entry) {
                    out.metadata_changed.push((*key).to_owned());
                }
            }
        }
    }
    out.removed = old_entries
        .keys()
        .filter(|k| !new_entries.contains_key(*k))
        .map(|k| (*k).to_owned())
        .collect();
    for keys in [
        &mut out.added,
        &mut out.removed,
        &mut out.modified,
        &mut out.metadata_changed,
    ] {
        keys.sort_by(|a, b| tree_order(a, b));
    }
    out.package_metadata_changed = old.header().get("user_meta") != new.header().get("user_meta")
        || old.header().get("message") != new.header().get("message");
    out.unchanged = new_entries.len() - out.added.len() - out.modified.len();
    out
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value, json};

    use super::*;

    fn manifest(message: &str, entries: &[(&str, &str, u64, Value)]) -> Manifest {
        let mut header = Map::new();
        header.insert("version".into(), json!("v0"));
        header.insert("message".into(), json!(message));
        let records = entries
            .iter()
            .map(|(key, hash, size, meta)| {
                let Value::Object(obj) = json!({
                    "logical_key": key,
                    "physical_keys": [format!("s3://b/{key}")],
                    "size": size,
                    "hash": {"type": "SHA256", "value": hash},
                    "meta": meta,
                }) else {
                    unreachable!()
                };
                Record::from_object(obj)
            })
            .collect();
        Manifest::new(header, records)
    }

    #[test]
    fn added_removed_modified_and_metadata() {
        let old = manifest(
            "one",
            &[
                ("a.csv", "h1", 1, json!({})),
                ("b/x.txt", "h2", 2, Value::Null),
                ("gone", "h3", 3, json!({})),
                ("meta", "h4", 4, json!({"k": 1})),
                ("size", "h5", 5, json!({})),
            ],
        );
        let new = manifest(
            "two",
            &[
                ("a.csv", "h1-changed", 1, json!({})),
                // A missing meta and an empty one are the same.
                ("b/x.txt", "h2", 2, json!({})),
                ("b-new", "h6", 6, json!({})),
                ("b/new", "h7", 7, json!({})),
                ("meta", "h4", 4, json!({"k": 2})),
                ("size", "h5", 50, json!({})),
            ],
        );
        let d = diff(&old, &new);
        // Tree order: `b/new` (directory b) before `b-new`.
        assert_eq!(d.added, ["b/new", "b-new"]);
        assert_eq!(d.removed, ["gone"]);
        assert_eq!(d.modified, ["a.csv", "size"]);
        assert_eq!(d.metadata_changed, ["meta"]);
        assert!(d.package_metadata_changed);
        assert_eq!(d.unchanged, 2);
    }

    #[test]
    fn a_revision_equals_itself() {
        let m = manifest("same", &[("a", "h", 1, json!({"x": [1, 2]}))]);
        assert_eq!(
            diff(&m, &m),
            Diff {
                unchanged: 1,
                ..Diff::default()
            }
        );
    }
}
