//! A new revision made from a parent revision and a set of changes (`package_patch`,
//! docs/reference.md, Tools): the parent's entries in tree order merged with the new
//! entries (which replace an entry of the same logical key) less the removed keys
//! and `dir/` prefixes. Entries that are kept are the parent's records themselves,
//! written back byte for byte (hash, size, physical key and meta untouched).

use std::cmp::Ordering;
use std::collections::HashMap;

use serde_json::{Map, Value};

use super::error::QuiltError;
use super::manifest::{Record, tree_order};
use super::publish::Changes;
use super::registry::{ManifestBody, Registry};
use super::stream::{self, ManifestStream, Next, Order};

/// Most entries a patched revision is made of (the parent's and the new ones): the
/// merged revision is held in memory while it is checked and written, which measured
/// 370-690 MiB of peak RSS for a 100,000-entry parent (`benches/packages.rs`).
pub(crate) const MAX_PATCH_ENTRIES: usize = 200_000;

/// What to remove: logical keys, and prefixes ending in `/` that remove every key
/// under them. Each remembers whether it matched anything in the parent.
#[derive(Debug, Default)]
pub(crate) struct Removals {
    /// Each key or prefix, with whether it matched.
    targets: HashMap<String, bool>,
}

impl Removals {
    /// Removals of `targets` (a prefix ends in `/`).
    pub(crate) fn new(targets: impl IntoIterator<Item = String>) -> Removals {
        Removals {
            targets: targets.into_iter().map(|t| (t, false)).collect(),
        }
    }

    /// Whether `key` is removed (the key itself, or a prefix of it that ends at a
    /// `/`); marks what matched.
    fn hits(&mut self, key: &str) -> bool {
        let mut hit = false;
        if let Some(matched) = self.targets.get_mut(key) {
            *matched = true;
            hit = true;
        }
        for (i, _) in key.match_indices('/') {
            if let Some(matched) = self.targets.get_mut(&key[..=i]) {
                *matched = true;
                hit = true;
            }
        }
        hit
    }

    /// The keys and prefixes that matched nothing, sorted.
    pub(crate) fn unmatched(&self) -> Vec<&str> {
        let mut unmatched: Vec<&str> = self
            .targets
            .iter()
            .filter(|(_, matched)| !**matched)
            .map(|(t, _)| t.as_str())
            .collect();
        unmatched.sort_unstable();
        unmatched
    }
}

/// The merge of a parent's records (fed in tree order) with new entries (in tree
/// order, one per key) and removals.
#[derive(Debug)]
pub(crate) struct Merge {
    adds: std::iter::Peekable<std::vec::IntoIter<Record>>,
    removals: Removals,
    changes: Changes,
    records: Vec<Record>,
}

impl Merge {
    /// A merge of `adds` (tree order, unique keys) and `removals` into a parent.
    pub(crate) fn new(adds: Vec<Record>, removals: Removals) -> Merge {
        Merge {
            adds: adds.into_iter().peekable(),
            removals,
            changes: Changes::default(),
            records: Vec::new(),
        }
    }

    fn emit(&mut self, record: Record) -> Result<(), QuiltError> {
        if self.records.len() >= MAX_PATCH_ENTRIES {
            return Err(QuiltError::TooLarge(format!(
                "a patched revision holds at most {MAX_PATCH_ENTRIES} entries"
            )));
        }
        self.records.push(record);
        Ok(())
    }

    /// Emits the new entries that come before `key` in tree order (all of them for
    /// `None`).
    fn adds_before(&mut self, key: Option<&str>) -> Result<(), QuiltError> {
        while let Some(add) = self.adds.peek() {
            if key.is_some_and(|key| tree_order(add.logical_key(), key) != Ordering::Less) {
                break;
            }
            if let Some(add) = self.adds.next() {
                self.changes.added += 1;
                self.emit(add)?;
            }
        }
        Ok(())
    }

    /// The parent's next record, in tree order.
    pub(crate) fn push(&mut self, record: Record) -> Result<(), QuiltError> {
        let key = record.logical_key().to_owned();
        if record.is_directory() {
            if !self.removals.hits(&key) {
                self.emit(record)?;
            }
            return Ok(());
        }
        self.adds_before(Some(&key))?;
        let removed = self.removals.hits(&key);
        let replaced = self.adds.next_if(|add| add.logical_key() == key.as_str());
        match replaced {
            Some(add) => {
                let same = add.hash() == record.hash() && add.size() == record.size();
                if same {
                    self.changes.unchanged += 1;
                } else {
                    self.changes.modified += 1;
                }
                self.emit(add)
            }
            None if removed => {
                self.changes.removed += 1;
                Ok(())
            }
            None => {
                self.changes.unchanged += 1;
                self.emit(record)
            }
        }
    }

    /// The merged records in tree order, what changed, and the removals (to ask
    /// which matched nothing).
    pub(crate) fn finish(mut self) -> Result<(Vec<Record>, Changes, Removals), QuiltError> {
        self.adds_before(None)?;
        Ok((self.records, self.changes, self.removals))
    }
}

/// The header and records of revision `top_hash` (its top hash verified), in tree
/// order, each record as read (see [`ManifestStream::verbatim`]). A manifest in tree
/// order is read once; one that is not is read again with its top hash checked by
/// sorting, and its records sorted here.
pub(crate) async fn read_parent(
    registry: &Registry<'_>,
    top_hash: &str,
) -> Result<(Map<String, Value>, Vec<Record>), QuiltError> {
    let stream = stream::open(registry, top_hash, Order::Streaming)
        .await?
        .verbatim();
    if let Some(read) = read_all(stream).await? {
        return Ok(read);
    }
    let stream = stream::open(registry, top_hash, Order::Sorting)
        .await?
        .verbatim();
    let Some((header, mut records)) = read_all(stream).await? else {
        return Err(QuiltError::Internal(
            "a sorting read reported an entry out of order".to_owned(),
        ));
    };
    records.sort_by(|a, b| tree_order(a.logical_key(), b.logical_key()));
    Ok((header, records))
}

/// Every record of `stream` and its verified header; `None` when streaming and an
/// entry came out of tree order.
async fn read_all(
    mut stream: ManifestStream<ManifestBody>,
) -> Result<Option<(Map<String, Value>, Vec<Record>)>, QuiltError> {
    let mut records = Vec::new();
    loop {
        match stream.next().await? {
            Next::Entry(record) | Next::Directory(record) => {
                if records.len() >= MAX_PATCH_ENTRIES {
                    return Err(QuiltError::TooLarge(format!(
                        "the parent revision has more than {MAX_PATCH_ENTRIES} entries, the most a patch works on"
                    )));
                }
                records.push(record);
            }
            Next::Unsorted => return Ok(None),
            Next::End => break,
        }
    }
    Ok(Some((stream.finish()?, records)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn entry(key: &str, hash: &str, size: u64) -> Record {
        let mut obj = Map::new();
        obj.insert("logical_key".into(), json!(key));
        obj.insert("physical_keys".into(), json!([format!("s3://b/{key}")]));
        obj.insert("size".into(), json!(size));
        obj.insert(
            "hash".into(),
            json!({"type": "sha2-256-chunked", "value": hash}),
        );
        obj.insert("meta".into(), json!({"parent": key}));
        Record::from_object(obj)
    }

    fn merged(
        parent: &[&str],
        adds: &[(&str, &str)],
        removes: &[&str],
    ) -> (Vec<String>, Changes, Vec<String>) {
        let mut merge = Merge::new(
            adds.iter().map(|(k, h)| entry(k, h, 1)).collect(),
            Removals::new(removes.iter().map(|r| (*r).to_owned())),
        );
        for key in parent {
            merge.push(entry(key, "p", 1)).unwrap();
        }
        let (records, changes, removals) = merge.finish().unwrap();
        let keys = records
            .iter()
            .map(|r| format!("{}:{}", r.logical_key(), r.hash_parts().1))
            .collect();
        let unmatched = removals
            .unmatched()
            .into_iter()
            .map(str::to_owned)
            .collect();
        (keys, changes, unmatched)
    }

    fn counts(added: u64, removed: u64, modified: u64, unchanged: u64) -> Changes {
        Changes {
            added,
            removed,
            modified,
            unchanged,
        }
    }

    #[test]
    fn merges_adds_replacements_and_removals_in_tree_order() {
        type Case<'a> = (
            &'a [&'a str],
            &'a [(&'a str, &'a str)],
            &'a [&'a str],
            &'a [&'a str],
            Changes,
            &'a [&'a str],
        );
        let cases: &[Case] = &[
            // Add before, between and after.
            (
                &["b", "d"],
                &[("a", "n"), ("c", "n"), ("e", "n")],
                &[],
                &["a:n", "b:p", "c:n", "d:p", "e:n"],
                counts(3, 0, 0, 2),
                &[],
            ),
            // Replace with other content, and with the same content.
            (
                &["a", "b"],
                &[("a", "n"), ("b", "p")],
                &[],
                &["a:n", "b:p"],
                counts(0, 0, 1, 1),
                &[],
            ),
            // Remove a key and a prefix; `dir/` does not remove `dir-x` or `dirx/y`.
            (
                &["a", "dir/x", "dir/y/z", "dir-x", "dirx/y"],
                &[],
                &["a", "dir/"],
                &["dir-x:p", "dirx/y:p"],
                counts(0, 3, 0, 2),
                &[],
            ),
            // Remove a directory and add into it: the directory is replaced.
            (
                &["dir/old", "dir/same"],
                &[("dir/new", "n"), ("dir/same", "p")],
                &["dir/"],
                &["dir/new:n", "dir/same:p"],
                counts(1, 1, 0, 1),
                &[],
            ),
            // Removals that match nothing are reported.
            (
                &["a", "b/c"],
                &[],
                &["x", "b/c/", "a/"],
                &["a:p", "b/c:p"],
                counts(0, 0, 0, 2),
                &["a/", "b/c/", "x"],
            ),
            // Tree order, not byte order: `a/b` before `a-c`.
            (
                &["a/b", "a-c"],
                &[("a/a", "n"), ("a.z", "n")],
                &[],
                &["a/a:n", "a/b:p", "a-c:p", "a.z:n"],
                counts(2, 0, 0, 2),
                &[],
            ),
        ];
        for (parent, adds, removes, keys, changes, unmatched) in cases {
            let (got, got_changes, got_unmatched) = merged(parent, adds, removes);
            assert_eq!(got, *keys, "{parent:?} {adds:?} {removes:?}");
            assert_eq!(got_changes, *changes, "{parent:?} {adds:?} {removes:?}");
            assert_eq!(got_unmatched, *unmatched, "{parent:?} {adds:?} {removes:?}");
        }
    }

    #[test]
    fn kept_records_are_the_parents_own() {
        let parent = entry("k", "p", 7);
        let mut merge = Merge::new(vec![entry("n", "n", 1)], Removals::default());
        merge.push(parent.clone()).unwrap();
        let (records, _, _) = merge.finish().unwrap();
        assert_eq!(records[0], parent);
        assert_eq!(records[0].meta(), &json!({"parent": "k"}));
    }
}
