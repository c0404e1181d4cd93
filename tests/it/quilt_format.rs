//! Golden tests of the package format against values computed by real quilt3 8.0.0.
//! The fixtures in tests/fixtures/quilt3/ were made by `generate.py` there
//! (`pip install quilt3==8.0.0 && python3 tests/fixtures/quilt3/generate.py`): each
//! manifest's top hash is `quilt3.Package.load(manifest).top_hash`, each chunked hash
//! `quilt3.checksums.calculate_multipart_checksum_bytes`.
use quilt_mcp::quilt::hash::{ChunkedHasher, chunk_size, chunked};
use quilt_mcp::quilt::manifest::{Manifest, tree_order};
use serde_json::Value;

const TOP_HASH_VECTORS: &str = include_str!("../fixtures/quilt3/top_hash_vectors.json");
const CHUNKED_VECTORS: &str = include_str!("../fixtures/quilt3/chunked_hash_vectors.json");
const QUILT3_MANIFEST: &str = include_str!("../fixtures/quilt3/quilt3_manifest.jsonl");
const QUILT3_MANIFEST_META: &str = include_str!("../fixtures/quilt3/quilt3_manifest.json");

#[test]
fn top_hashes_match_quilt3_and_manifests_round_trip() {
    let vectors: Vec<Value> = serde_json::from_str(TOP_HASH_VECTORS).unwrap();
    assert!(vectors.len() >= 13);
    for vector in &vectors {
        let name = vector["name"].as_str().unwrap();
        let text = vector["manifest"].as_str().unwrap();
        let manifest = Manifest::parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            manifest.top_hash(),
            vector["top_hash"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(
            String::from_utf8(manifest.to_bytes()).unwrap(),
            text,
            "{name}: round trip"
        );
    }
}

#[test]
fn the_issue_vector() {
    let text = "{\"message\": \"\", \"user_meta\": {}, \"version\": \"v0\"}\n{\"logical_key\": \"data.txt\", \"physical_keys\": [\"s3://b/data.txt\"], \"size\": 16, \"hash\": {\"type\": \"sha2-256-chunked\", \"value\": \"Xb1PbjJeWof4zD7zuHc9PI7sLiz/Ykj4gphlaZEt3xA=\"}, \"meta\": {\"type\": \"text\"}}\n";
    assert_eq!(
        Manifest::parse(text).unwrap().top_hash(),
        "9adfc26d4d85bc1a31bd9b45af1c78647415d580a4196becd85f9e4e793c5824"
    );
    assert_eq!(
        chunked(b"0123456789abcdef"),
        "Xb1PbjJeWof4zD7zuHc9PI7sLiz/Ykj4gphlaZEt3xA="
    );
}

#[test]
fn a_manifest_written_by_quilt3_reads_correctly() {
    let manifest = Manifest::parse(QUILT3_MANIFEST).unwrap();
    let meta: Value = serde_json::from_str(QUILT3_MANIFEST_META).unwrap();
    assert_eq!(manifest.top_hash(), meta["top_hash"].as_str().unwrap());
    assert_eq!(manifest.message(), Some("made by quilt3 8.0.0"));
    assert_eq!(manifest.header()["user_meta"]["tags"][1], "ünïcode");
    let keys: Vec<&str> = manifest.entries().map(|e| e.logical_key()).collect();
    assert_eq!(keys, ["README.md", "data/a.csv", "data/b c.csv"]);
    let readme = manifest.entries().next().unwrap();
    assert_eq!(
        readme.physical_key(),
        Some("s3://lab-data/pkg/README.md?versionId=v1")
    );
    assert_eq!(readme.size(), 16);
    assert_eq!(
        readme.hash_parts(),
        (
            "sha2-256-chunked",
            "Xb1PbjJeWof4zD7zuHc9PI7sLiz/Ykj4gphlaZEt3xA="
        )
    );
    assert_eq!(readme.meta()["user_meta"]["kind"], "doc");
    let dirs: Vec<&str> = manifest.directories().map(|d| d.logical_key()).collect();
    assert_eq!(dirs, ["data/"]);
    assert_eq!(
        String::from_utf8(manifest.to_bytes()).unwrap(),
        QUILT3_MANIFEST
    );
}

fn pattern(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i % 251) as u8).collect()
}

#[test]
fn chunked_hashes_match_quilt3() {
    let vectors: Value = serde_json::from_str(CHUNKED_VECTORS).unwrap();
    for vector in vectors["hashes"].as_array().unwrap() {
        let size = vector["size"].as_u64().unwrap() as usize;
        let data = match vector["content"].as_str() {
            Some(content) => content.as_bytes().to_vec(),
            None => pattern(size),
        };
        // Streamed in odd pieces, as bytes arrive from S3.
        let mut hasher = ChunkedHasher::new(size as u64);
        for piece in data.chunks(65_537) {
            hasher.update(piece);
        }
        assert_eq!(
            hasher.finish(),
            vector["hash"].as_str().unwrap(),
            "size {size}"
        );
    }
    for (size, expected) in vectors["chunksizes"].as_object().unwrap() {
        assert_eq!(
            chunk_size(size.parse().unwrap()),
            expected.as_u64().unwrap(),
            "size {size}"
        );
    }
}

#[test]
fn tree_order_compares_components() {
    let mut keys = vec!["a-c", "a/b", "a/a/z", "B", "a.txt", "a0", "a"];
    keys.sort_by(|a, b| tree_order(a, b));
    assert_eq!(keys, ["B", "a", "a/a/z", "a/b", "a-c", "a.txt", "a0"]);
}

#[test]
fn malformed_manifests_are_refused() {
    for (text, line) in [
        ("", 1),
        ("[1]\n", 1),
        ("{\"version\": \"v0\"}\nnot json\n", 2),
        (
            "{\"version\": \"v0\"}\n{\"physical_keys\": [\"s3://b/k\"]}\n",
            2,
        ),
        (
            "{\"version\": \"v0\"}\n{\"logical_key\": \"k\", \"physical_keys\": [\"s3://b/k\"]}\n",
            2,
        ),
        (
            "{\"version\": \"v0\"}\n\n{\"logical_key\": \"k/\", \"meta\": {}}\n",
            2,
        ),
    ] {
        let err = Manifest::parse(text).unwrap_err();
        assert_eq!(err.line, line, "{text:?}: {err}");
    }
}
