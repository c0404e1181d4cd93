//! The package tools bounded and fast, end to end over stdio against the in-process S3
//! (issues 20 and 21): pages of a verified revision read from where they start, cursors
//! pinned to their package, `package_list` by name without reading pointers, results
//! and memory bounded whatever a manifest holds (hostile manifests written straight
//! into the store; the server's peak RSS read from `/proc/PID/status`), and a
//! cancelled call that stops.
use crate::common::s3::{ACCESS_KEY, SECRET_KEY, TestS3};
use crate::common::*;
use quilt_mcp::quilt::manifest::tree_order;
use rmcp::model::{CallToolRequestParams, ClientRequest, Request};
use rmcp::service::PeerRequestOptions;
use serde_json::{Value, json};

fn token() -> String {
    hs256(&claims_with(json!({
        "buckets": ["registry"],
        "permissions": ["s3:GetObject", "s3:ListBucket"],
        "level": "read",
        "aws_credentials": {"access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY},
    })))
}

async fn registry() -> TestS3 {
    let s3 = TestS3::start().await;
    s3.create_bucket("registry").await;
    s3
}

async fn start(s3: &TestS3) -> Server {
    start_on(s3, &token(), &[], ()).await
}

/// The server's process id: the child of this process whose environment names the
/// server's own log directory.
pub(crate) fn server_pid(server: &Server) -> u32 {
    let me = std::process::id().to_string();
    let marker = format!("QUILT_MCP_LOG_DIR={}", server.log_dir.path().display());
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid …: comm may hold spaces, so split after the last ')'.
        let ppid = stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().nth(1));
        if ppid != Some(me.as_str()) {
            continue;
        }
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        if environ
            .split(|b| *b == 0)
            .any(|var| var == marker.as_bytes())
        {
            return pid;
        }
    }
    panic!("no server process with {marker}");
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in {status}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The server's peak RSS so far, in MiB.
pub(crate) fn peak_rss_mib(pid: u32) -> u64 {
    status_kib(pid, "VmHWM:") / 1024
}

/// A manifest being written: its lines and its top hash as quilt3 computes it, for
/// entries in tree order whose `meta` is written in canonical form (so that a
/// manifest of tens of megabytes need not be parsed to be named).
pub(crate) struct Writer {
    text: String,
    hasher: sha2::Sha256,
}

impl Writer {
    pub(crate) fn new(message: &str) -> Writer {
        use sha2::Digest as _;
        let mut hasher = sha2::Sha256::new();
        hasher.update(format!("{{\"message\":\"{message}\",\"version\":\"v0\"}}"));
        Writer {
            text: format!("{{\"version\": \"v0\", \"message\": \"{message}\"}}\n"),
            hasher,
        }
    }

    /// An entry line as quilt3 writes it (keys without characters JSON escapes).
    pub(crate) fn entry(&mut self, key: &str, size: usize, meta: &str) {
        use sha2::Digest as _;
        let value = format!("{size:064x}");
        self.text.push_str(&entry(key, size, meta));
        self.hasher.update(format!(
            "{{\"hash\":{{\"type\":\"SHA256\",\"value\":\"{value}\"}},\"logical_key\":\"{key}\",\"meta\":{meta},\"size\":{size}}}"
        ));
    }

    /// A line that is not hashed: a directory-metadata line.
    fn line(&mut self, line: &str) {
        self.text.push_str(line);
        self.text.push('\n');
    }

    pub(crate) fn finish(self) -> (String, String) {
        use sha2::Digest as _;
        let hash = self
            .hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        (hash, self.text)
    }
}

/// An entry line as quilt3 writes it.
fn entry(key: &str, size: usize, meta: &str) -> String {
    format!(
        "{{\"logical_key\": \"{key}\", \"physical_keys\": [\"s3://registry/data/{key}\"], \"size\": {size}, \"hash\": {{\"type\": \"SHA256\", \"value\": \"{size:064x}\"}}, \"meta\": {meta}}}\n"
    )
}

/// Stores `writer`'s manifest as the latest revision of `name`; its top hash.
async fn store(s3: &TestS3, name: &str, writer: Writer) -> String {
    let (hash, text) = writer.finish();
    put_revision(s3, name, &hash, text.as_bytes()).await;
    hash
}

/// A manifest of `n` entries `{prefix}{i:02}` with `{}` metadata.
fn small(name: &str, prefix: &str, n: usize) -> Writer {
    let mut writer = Writer::new(name);
    let mut keys: Vec<String> = (0..n).map(|i| format!("{prefix}{i:02}")).collect();
    keys.sort_by(|a, b| tree_order(a, b));
    for (i, key) in keys.iter().enumerate() {
        writer.entry(key, i, "{}");
    }
    writer
}

pub(crate) async fn put_revision(s3: &TestS3, name: &str, hash: &str, bytes: &[u8]) {
    s3.put(
        "registry",
        &format!(".quilt/packages/{hash}"),
        bytes,
        "application/jsonl",
        &[],
    )
    .await;
    s3.put(
        "registry",
        &format!(".quilt/named_packages/{name}/latest"),
        hash.as_bytes(),
        "text/plain",
        &[],
    )
    .await;
}

/// Every page of `path`, each with its S3 request count; the keys.
async fn read_all(
    server: &Server,
    s3: &TestS3,
    args: Value,
    max: usize,
) -> (Vec<String>, Vec<usize>, Value) {
    let mut keys = Vec::new();
    let mut requests = Vec::new();
    let mut cursor: Option<String> = None;
    let mut first = Value::Null;
    loop {
        let mut call = args.clone();
        call["max_entries"] = json!(max);
        if let Some(c) = &cursor {
            call["cursor"] = json!(c);
        }
        let before = s3.requests();
        let page = server.ok("package_browse", call).await;
        requests.push(s3.requests() - before);
        keys.extend(
            page["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["logical_key"].as_str().unwrap().to_owned()),
        );
        if first.is_null() {
            first = page.clone();
        }
        match page.get("next_cursor").and_then(Value::as_str) {
            Some(next) => cursor = Some(next.to_owned()),
            None => return (keys, requests, first),
        }
    }
}

/// Once a revision in tree order has been verified, each next page is one ranged read
/// (two for a cursor whose offset is checked), for the whole revision and under a
/// path, with whole-revision counts; a path's first page reads only that path's run.
/// The object overwritten after it was verified is verified again.
#[tokio::test]
async fn pages_of_a_verified_revision_read_only_what_they_hold() {
    let s3 = registry().await;
    let mut keys: Vec<String> = (0..6000)
        .map(|i| format!("d{}/s{}/f{i:05}.csv", i % 3, i % 5))
        .collect();
    keys.sort_by(|a, b| tree_order(a, b));
    let mut writer = Writer::new("team/sorted");
    writer.line("{\"logical_key\": \"d1/\", \"meta\": {\"about\": \"one\"}}");
    for (i, key) in keys.iter().enumerate() {
        writer.entry(key, i, if i % 2 == 0 { "{}" } else { "{\"n\":1}" });
    }
    let (hash, text) = writer.finish();
    put_revision(&s3, "team/sorted", &hash, text.as_bytes()).await;
    let server = start(&s3).await;
    let base = json!({"package_name": "team/sorted", "registry": "registry"});

    let (got, requests, first) = read_all(&server, &s3, base.clone(), 500).await;
    assert_eq!(got, keys);
    assert_eq!(first["entry_count"], 6000);
    assert_eq!(first["top_hash"], hash.as_str());
    assert_eq!(requests.len(), 12);
    // The first page reads `latest` and the whole manifest; a later page at most one
    // ranged read from the cursor's offset (checked as it is read), of a few MiB
    // that serve the pages after it too.
    assert_eq!(requests[0], 2);
    assert!(requests[1..].iter().all(|n| *n <= 1), "{requests:?}");
    assert!(requests[1..].iter().sum::<usize>() <= 1, "{requests:?}");

    let under: Vec<String> = keys
        .iter()
        .filter(|k| k.starts_with("d1/"))
        .cloned()
        .collect();
    let mut path = base.clone();
    path["path"] = json!("d1");
    let (got, requests, first) = read_all(&server, &s3, path, 300).await;
    assert_eq!(got, under);
    assert_eq!(first["entry_count"], 2000);
    let dirs: Vec<(&str, u64)> = first["directories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["logical_key"].as_str().unwrap(),
                d["entry_count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        dirs,
        [
            ("d1/s0/", 400),
            ("d1/s1/", 400),
            ("d1/s2/", 400),
            ("d1/s3/", 400),
            ("d1/s4/", 400)
        ]
    );
    // The path's first page reads `latest`, the directory lines, the path's run of
    // entries and the page; every later page one ranged read.
    assert!(requests[0] <= 5, "{requests:?}");
    assert!(requests[1..].iter().all(|n| *n <= 1), "{requests:?}");
    // The whole revision's directories carry their metadata.
    let root = server.ok("package_browse", base.clone()).await;
    assert_eq!(root["directories"][1]["meta"], json!({"about": "one"}));

    // A cursor whose offset was altered still gives the right page.
    let page = server
        .ok(
            "package_browse",
            json!({"package_name": "team/sorted", "registry": "registry", "max_entries": 100}),
        )
        .await;
    let cursor = page["next_cursor"].as_str().unwrap();
    let decoded = {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(cursor)
            .unwrap()
    };
    let mut forged: Value = serde_json::from_slice(&decoded).unwrap();
    assert!(forged["offset"].is_u64(), "{forged}");
    for offset in [json!(7), json!(123_456), json!(u64::MAX)] {
        forged["offset"] = offset;
        let text = {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(forged.to_string())
        };
        let next = server
            .ok("package_browse", json!({"package_name": "team/sorted", "registry": "registry", "max_entries": 100, "cursor": text}))
            .await;
        let first_key = next["entries"][0]["logical_key"].as_str().unwrap();
        assert_eq!(first_key, keys[100], "{forged}");
    }

    // A page served from bytes this server read ahead (of the verified object, with
    // If-Match) needs no request. Two other revisions paged through push those bytes
    // out, so the next page of this one reads S3 again.
    for name in ["team/other1", "team/other2"] {
        store(&s3, name, small(name, "k", 20)).await;
        let args = json!({"package_name": name, "registry": "registry", "max_entries": 5});
        let first = server.ok("package_browse", args.clone()).await;
        let mut next = args;
        next["cursor"] = first["next_cursor"].clone();
        server.ok("package_browse", next).await;
    }
    // The manifest object overwritten after it was verified: read whole again, and
    // it no longer hashes to its name.
    let altered = text.replacen("\"size\": 3,", "\"size\": 4,", 1);
    assert_ne!(altered, text);
    put_revision(&s3, "team/sorted", &hash, altered.as_bytes()).await;
    let result = server
        .call("package_browse", json!({"package_name": "team/sorted", "registry": "registry", "cursor": cursor, "max_entries": 100}))
        .await
        .unwrap();
    assert_eq!(result.is_error, Some(true));
    assert_eq!(
        result.structured_content.unwrap()["error"]["code"],
        "integrity_error"
    );
    server.stop().await;
}

/// A verified revision larger than one read-ahead is kept on local disk as it is
/// verified: its later pages read no byte from S3 again, each read-ahead's worth of
/// pages costs one `HeadObject` with `If-Match` (made with the caller's credentials),
/// and an object overwritten since is still caught.
#[tokio::test]
async fn pages_of_a_large_verified_revision_come_from_its_local_copy() {
    let s3 = registry().await;
    let mut keys: Vec<String> = (0..40_000)
        .map(|i| format!("dir{}/file{i:06}.csv", i % 4))
        .collect();
    keys.sort_by(|a, b| tree_order(a, b));
    let mut writer = Writer::new("team/large");
    for (i, key) in keys.iter().enumerate() {
        writer.entry(key, i, "{}");
    }
    let (hash, text) = writer.finish();
    assert!(text.len() > 8 * 1024 * 1024, "{}", text.len());
    put_revision(&s3, "team/large", &hash, text.as_bytes()).await;
    let server = start(&s3).await;
    let base = json!({"package_name": "team/large", "registry": "registry"});

    let gets = s3.ranged_gets();
    let (got, requests, first) = read_all(&server, &s3, base.clone(), 4000).await;
    assert_eq!(got, keys);
    assert_eq!(first["entry_count"], 40_000);
    assert_eq!(requests.len(), 10);
    assert_eq!(s3.ranged_gets(), gets, "a later page read S3: {requests:?}");
    // One check a read-ahead (4 MiB) of pages: at most three for these 8-9 MiB.
    let later: usize = requests[1..].iter().sum();
    assert!((1..=3).contains(&later), "{requests:?}");

    // The object overwritten since: a page outside the span checked last is checked
    // again, found changed, read whole again, and no longer hashes to its name.
    let page = server
        .ok(
            "package_browse",
            json!({"package_name": "team/large", "registry": "registry", "max_entries": 10}),
        )
        .await;
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let altered = text.replacen("\"size\": 3,", "\"size\": 4,", 1);
    assert_ne!(altered, text);
    put_revision(&s3, "team/large", &hash, altered.as_bytes()).await;
    // Pages near the end first, so that the span checked last is not the first one.
    let mut tail = base.clone();
    tail["path"] = json!("dir3");
    let _ = server.call("package_browse", tail).await;
    let result = server
        .call("package_browse", json!({"package_name": "team/large", "registry": "registry", "cursor": cursor, "max_entries": 10}))
        .await
        .unwrap();
    assert_eq!(result.is_error, Some(true), "{result:?}");
    assert_eq!(
        result.structured_content.unwrap()["error"]["code"],
        "integrity_error"
    );
    server.stop().await;
}

/// Issue 20, N6: a cursor of one package replayed with another package's name (same
/// bucket, even with the first package's full top hash) is refused.
#[tokio::test]
async fn a_cursor_is_pinned_to_its_package() {
    let s3 = registry().await;
    let public = store(&s3, "team/public", small("team/public", "f", 20)).await;
    store(&s3, "team/secret", small("team/secret", "secret", 1)).await;
    let server = start(&s3).await;
    let page = server
        .ok(
            "package_browse",
            json!({"package_name": "team/public", "registry": "registry", "max_entries": 5}),
        )
        .await;
    let cursor = page["next_cursor"].as_str().unwrap();
    for args in [
        json!({"package_name": "team/secret", "registry": "registry", "cursor": cursor}),
        json!({"package_name": "team/secret", "registry": "registry", "cursor": cursor, "top_hash": public}),
        json!({"package_name": "made/up", "registry": "registry", "cursor": cursor}),
    ] {
        let result = server.call("package_browse", args.clone()).await.unwrap();
        assert_eq!(result.is_error, Some(true), "{args}");
        let error = &result.structured_content.unwrap()["error"];
        assert_eq!(error["code"], "invalid_argument", "{args}");
        assert!(
            error["message"].as_str().unwrap().contains("team/public"),
            "{error}"
        );
    }
    server.stop().await;
}

/// Issue 21: `package_list` names packages from delimited listings (never a pointer
/// key, no object read); `include_details` reads each listed `latest`.
#[tokio::test]
async fn package_list_names_without_reading_pointers() {
    let s3 = registry().await;
    let hash = "a".repeat(64);
    for ns in ["alpha", "beta", "gamma"] {
        for i in 0..4 {
            for pointer in ["latest", "1700000000", "1700000001", "1700000002"] {
                s3.seed_file(
                    "registry",
                    &format!(".quilt/named_packages/{ns}/p{i}/{pointer}"),
                    hash.as_bytes(),
                );
            }
        }
    }
    let server = start(&s3).await;
    let before = s3.requests();
    let listing = server
        .ok("package_list", json!({"registry": "registry"}))
        .await;
    // One listing of namespaces, one of names in each.
    assert_eq!(s3.requests() - before, 1 + 3);
    let names: Vec<&str> = listing["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 12);
    assert_eq!(names[0], "alpha/p0");
    assert_eq!(names[11], "gamma/p3");
    assert!(
        listing["packages"][0].get("top_hash").is_none(),
        "{listing}"
    );
    assert!(
        listing["packages"][0].get("modified").is_none(),
        "{listing}"
    );

    // Pages across namespaces, with a prefix, and with details.
    let before = s3.requests();
    let page = server
        .ok(
            "package_list",
            json!({"registry": "registry", "max_packages": 5, "include_details": true}),
        )
        .await;
    assert_eq!(page["count"], 5);
    assert_eq!(page["packages"][4]["name"], "beta/p0");
    assert_eq!(page["packages"][4]["top_hash"], hash.as_str());
    assert!(page["packages"][4]["modified"].is_string(), "{page}");
    assert!(s3.requests() - before <= 1 + 3 + 5);
    let next = server
        .ok(
            "package_list",
            json!({"registry": "registry", "max_packages": 5, "cursor": page["next_cursor"]}),
        )
        .await;
    let names: Vec<&str> = next["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["beta/p1", "beta/p2", "beta/p3", "gamma/p0", "gamma/p1"]
    );
    let prefixed = server
        .ok(
            "package_list",
            json!({"registry": "registry", "prefix": "gamma/p", "max_packages": 3}),
        )
        .await;
    assert_eq!(prefixed["packages"][2]["name"], "gamma/p2");
    assert_eq!(prefixed["truncated"], true);
    let rest = server
        .ok(
            "package_list",
            json!({"registry": "registry", "prefix": "gamma/p", "cursor": prefixed["next_cursor"]}),
        )
        .await;
    assert_eq!(rest["packages"][0]["name"], "gamma/p3");
    assert_eq!(rest["truncated"], false);
    server.stop().await;
}

/// A registry of exactly one batch of namespaces (100) is named in one listing of
/// namespaces and one of names in each: S3's own truncation flag says no namespace
/// follows, so none is listed again to find out.
#[tokio::test]
async fn package_list_lists_namespaces_once() {
    let s3 = registry().await;
    let hash = "a".repeat(64);
    for ns in 0..100 {
        s3.seed_file(
            "registry",
            &format!(".quilt/named_packages/ns{ns:03}/p/latest"),
            hash.as_bytes(),
        );
    }
    let server = start(&s3).await;
    let before = s3.requests();
    let listing = server
        .ok(
            "package_list",
            json!({"registry": "registry", "max_packages": 1000}),
        )
        .await;
    assert_eq!(listing["count"], 100, "{listing}");
    assert_eq!(listing["truncated"], false, "{listing}");
    assert_eq!(s3.requests() - before, 1 + 100);
    // One more namespace: a second listing of namespaces, after the first 100.
    s3.seed_file(
        "registry",
        ".quilt/named_packages/ns100/p/latest",
        hash.as_bytes(),
    );
    let before = s3.requests();
    let listing = server
        .ok(
            "package_list",
            json!({"registry": "registry", "max_packages": 1000}),
        )
        .await;
    assert_eq!(listing["count"], 101, "{listing}");
    assert_eq!(listing["packages"][100]["name"], "ns100/p", "{listing}");
    assert_eq!(s3.requests() - before, 1 + 100 + 1 + 1);
    server.stop().await;
}

fn zeros(n: usize) -> String {
    let mut out = String::with_capacity(2 * n + 2);
    out.push('[');
    for i in 0..n {
        if i > 0 {
            out.push(',');
        }
        out.push('0');
    }
    out.push(']');
    out
}

/// Issue 20, N4: a manifest someone else wrote, full of directory metadata, large
/// entry metadata and one huge `meta`, neither makes the server hold tens of times
/// its size (before: 107 MB of directory lines took 3.7 GB, one 15 MB `meta`
/// 561 MB) nor gives a result over 4 MiB: a page ends early with a cursor, and an
/// entry too large to show is `too_large`.
#[tokio::test]
async fn hostile_manifests_keep_memory_and_results_bounded() {
    let s3 = registry().await;
    // 1,000 directory lines of 20 KB metadata, then 200 entries of 100 KB metadata.
    let dir_meta = zeros(10_000);
    let entry_meta = zeros(50_000);
    let mut writer = Writer::new("team/heavy");
    for i in 0..1000 {
        writer.line(&format!(
            "{{\"logical_key\": \"d{i:04}/\", \"meta\": {dir_meta}}}"
        ));
    }
    for i in 0..200 {
        writer.entry(&format!("d{i:04}/f"), i, &entry_meta);
    }
    store(&s3, "team/heavy", writer).await;
    // One entry whose metadata is 15 MB.
    let mut writer = Writer::new("team/huge");
    writer.entry("huge", 1, &zeros(7_500_000));
    store(&s3, "team/huge", writer).await;

    let server = start(&s3).await;
    let pid = server_pid(&server);
    let before = peak_rss_mib(pid);
    let result = server
        .call(
            "package_browse",
            json!({"package_name": "team/heavy", "registry": "registry"}),
        )
        .await
        .unwrap();
    assert_ne!(result.is_error, Some(true));
    let page = result.structured_content.unwrap();
    assert!(page.to_string().len() < 4 * 1024 * 1024);
    assert_eq!(page["entry_count"], 200);
    assert_eq!(page["truncated"], true);
    let shown = page["entries"].as_array().unwrap().len();
    assert!((1..200).contains(&shown), "{shown} entries");
    assert!(page["next_cursor"].is_string());
    assert!(
        page["directories"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["meta_too_large"] == true)
    );
    let mut peaks = vec![peak_rss_mib(pid)];
    // A page with one entry: still bounded.
    server
        .ok(
            "package_browse",
            json!({"package_name": "team/heavy", "registry": "registry", "max_entries": 1}),
        )
        .await;
    peaks.push(peak_rss_mib(pid));

    let result = server
        .call(
            "package_browse",
            json!({"package_name": "team/huge", "registry": "registry"}),
        )
        .await
        .unwrap();
    assert_eq!(result.is_error, Some(true));
    assert_eq!(
        result.structured_content.unwrap()["error"]["code"],
        "too_large"
    );
    peaks.push(peak_rss_mib(pid));
    eprintln!("peak RSS at start {before} MiB, after each call {peaks:?} MiB");
    assert!(
        peaks.iter().all(|peak| *peak < 128),
        "peak RSS {peaks:?} MiB (at start {before} MiB) for manifests of 40 MB and 15 MB"
    );
    server.stop().await;
}

/// Issue 20, N4: a diff of revisions with 100 KB logical keys: the lists hold a
/// bounded number of bytes (their counts go on), the result stays under 4 MiB and the
/// server under a bound (before: 826 MB for two 80 MB manifests).
#[tokio::test]
async fn a_diff_of_huge_keys_is_bounded() {
    let s3 = registry().await;
    let pad = "k".repeat(100_000);
    let side = |tag: &str| {
        let mut writer = Writer::new("team/keys");
        for i in 0..300 {
            writer.entry(&format!("{tag}{i:03}{pad}"), i, "{}");
        }
        writer
    };
    let old = store(&s3, "team/keys", side("a")).await;
    let new = store(&s3, "team/keys", side("b")).await;
    let server = start(&s3).await;
    let pid = server_pid(&server);
    let result = server
        .call("package_diff", json!({"package1_name": "team/keys", "registry": "registry", "package1_hash": old, "package2_hash": new}))
        .await
        .unwrap();
    assert_ne!(result.is_error, Some(true), "{result:?}");
    let diff = result.structured_content.unwrap();
    assert!(diff.to_string().len() < 4 * 1024 * 1024);
    assert_eq!(diff["added_count"], 300);
    assert_eq!(diff["removed_count"], 300);
    assert_eq!(diff["truncated"], true);
    let peak = peak_rss_mib(pid);
    eprintln!("peak RSS after the diff {peak} MiB");
    assert!(peak < 128, "peak RSS {peak} MiB");
    server.stop().await;
}

/// Issue 20, item 3: a cancelled browse of a large out-of-order manifest stops within
/// a second: no CPU spent after, its temporary files closed, no more S3 reads.
#[tokio::test]
async fn a_cancelled_browse_stops_its_work() {
    let s3 = registry().await;
    let mut text = String::from("{\"version\": \"v0\"}\n");
    for i in (0..400_000).rev() {
        text.push_str(&entry(&format!("d{}/f{i:06}", i % 10), i, "{\"n\": 1}"));
    }
    // A name that is not its top hash: the call would end in integrity_error.
    let hash = "c".repeat(64);
    s3.seed_file(
        "registry",
        &format!(".quilt/packages/{hash}"),
        text.as_bytes(),
    );
    s3.seed_file(
        "registry",
        ".quilt/named_packages/team/big/latest",
        hash.as_bytes(),
    );
    let server = start(&s3).await;
    let pid = server_pid(&server);
    let request = ClientRequest::CallToolRequest(Request::new(
        CallToolRequestParams::new("package_browse").with_arguments(
            json!({"package_name": "team/big", "registry": "registry"})
                .as_object()
                .unwrap()
                .clone(),
        ),
    ));
    let handle = server
        .client
        .send_cancellable_request(request, PeerRequestOptions::no_options())
        .await
        .unwrap();
    // Let it get into the work (reading, sorting, spilling).
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    handle.cancel(Some("enough".into())).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let cpu = || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let fields: Vec<u64> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .skip(11)
            .take(2)
            .map(|f| f.parse().unwrap())
            .collect();
        fields.iter().sum::<u64>()
    };
    let temp_files = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .flatten()
            .filter_map(|fd| std::fs::read_link(fd.path()).ok())
            .filter(|target| target.to_string_lossy().contains("(deleted)"))
            .count()
    };
    let (cpu_then, requests_then) = (cpu(), s3.requests());
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let ticks = cpu() - cpu_then;
    assert!(ticks < 40, "{ticks} clock ticks of CPU after the cancel");
    assert_eq!(temp_files(), 0);
    assert_eq!(s3.requests(), requests_then);
    // The server still answers.
    server
        .ok("package_list", json!({"registry": "registry"}))
        .await;
    server.stop().await;
}
