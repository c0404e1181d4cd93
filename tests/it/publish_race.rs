//! Race-safe publishing (docs/reference.md, Tools: `package_create`): concurrent
//! `package_create` calls on one package against an S3 that implements conditional
//! writes (moto's server, started here), and the fallback for an endpoint that does
//! not implement them.
//!
//! The race test needs moto: it is `#[ignore = "needs moto"]`, and CI runs it with
//! `--include-ignored` after `source scripts/ci-moto`. Run by hand, it fails with what
//! to do when no Python can import moto (`quilt_mcp_testkit::moto`).
use std::collections::{BTreeMap, BTreeSet};

use crate::common::moto::Moto;
use crate::common::*;
use aws_sdk_s3::primitives::ByteStream;
use serde_json::json;

/// Concurrent `package_create` calls per round.
const CALLS: usize = 6;
/// Rounds.
const ROUNDS: usize = 4;
const PACKAGE: &str = "team/race";
const POINTERS: &str = ".quilt/named_packages/team/race/";

fn token(access_key: &str, secret_key: &str, permissions: &[&str]) -> String {
    hs256(&claims_with(json!({
        "buckets": ["registry", "sources"],
        "permissions": permissions,
        "level": "write",
        "aws_credentials": {"access_key_id": access_key, "secret_access_key": secret_key},
    })))
}

fn s3_client(endpoint: &str, access_key: &str, secret_key: &str) -> aws_sdk_s3::Client {
    crate::common::s3::client(endpoint, access_key, secret_key)
}

async fn spawn_server(endpoint: &str, token: &str) -> Server {
    let env = [
        ("AWS_ENDPOINT_URL_S3", endpoint),
        ("QUILT_MCP_S3_FORCE_PATH_STYLE", "true"),
        ("QUILT_MCP_JWT_SECRET", SECRET),
        ("QUILT_MCP_TOKEN", token),
    ];
    Server::spawn(&env).await
}

async fn read(s3: &aws_sdk_s3::Client, key: &str) -> Option<String> {
    let out = s3
        .get_object()
        .bucket("registry")
        .key(key)
        .send()
        .await
        .ok()?;
    let bytes = out.body.collect().await.unwrap().into_bytes();
    Some(String::from_utf8(bytes.to_vec()).unwrap())
}

/// Every timestamp pointer of the package: second → top hash.
async fn timestamp_pointers(s3: &aws_sdk_s3::Client) -> BTreeMap<String, String> {
    let listed = s3
        .list_objects_v2()
        .bucket("registry")
        .prefix(POINTERS)
        .send()
        .await
        .unwrap();
    let mut pointers = BTreeMap::new();
    for object in listed.contents() {
        let key = object.key().unwrap();
        let stamp = key.strip_prefix(POINTERS).unwrap();
        if stamp != "latest" {
            pointers.insert(stamp.to_owned(), read(s3, key).await.unwrap());
        }
    }
    pointers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto"]
async fn concurrent_creates_never_share_a_parent() {
    let moto = Moto::start().await;
    let s3 = moto.client();
    for bucket in ["registry", "sources"] {
        s3.create_bucket().bucket(bucket).send().await.unwrap();
    }
    s3.put_object()
        .bucket("sources")
        .key("data/a.csv")
        .body(ByteStream::from_static(b"id,v\n1,2\n"))
        .send()
        .await
        .unwrap();
    // The token may delete, so a publisher that lost removes its timestamp pointer.
    let token = token(
        crate::common::moto::ACCESS_KEY,
        crate::common::moto::SECRET_KEY,
        &[
            "s3:GetObject",
            "s3:ListBucket",
            "s3:PutObject",
            "s3:DeleteObject",
        ],
    );
    let servers =
        futures::future::join_all((0..CALLS).map(|_| spawn_server(&moto.endpoint, &token))).await;

    // (top hash, parent) of every winner, in the order latest moved.
    let mut winners: Vec<(String, Option<String>)> = Vec::new();
    let mut losers = 0;
    for round in 0..ROUNDS {
        let calls = servers.iter().enumerate().map(|(i, server)| {
            server.call(
                "package_create",
                json!({
                    "package_name": PACKAGE,
                    "registry": "registry",
                    "entries": [{"logical_key": "a.csv", "s3_uri": "s3://sources/data/a.csv"}],
                    // Distinct messages: distinct top hashes.
                    "message": format!("round {round}, writer {i}"),
                    // Each round replaces the package on purpose.
                    "overwrite": true,
                }),
            )
        });
        let mut round_winners = Vec::new();
        for result in futures::future::join_all(calls).await {
            let result = result.unwrap_or_else(|e| panic!("JSON-RPC error: {e:?}"));
            let content = result.structured_content.unwrap();
            if result.is_error == Some(true) {
                assert_eq!(content["error"]["code"], "conflict", "{content}");
                losers += 1;
            } else {
                assert_eq!(content["race_safe"], true, "{content}");
                round_winners.push((
                    content["top_hash"].as_str().unwrap().to_owned(),
                    content["previous_top_hash"].as_str().map(str::to_owned),
                ));
            }
        }
        assert!(!round_winners.is_empty(), "round {round}: nobody won");
        // Winners of one round form a chain too: order them by parent.
        while !round_winners.is_empty() {
            let parent = winners.last().map(|(hash, _)| hash.clone());
            let next = round_winners
                .iter()
                .position(|(_, p)| *p == parent)
                .unwrap_or_else(|| {
                    panic!(
                        "round {round}: no winner builds on {parent:?}; winners {round_winners:?}, so far {winners:?}"
                    )
                });
            winners.push(round_winners.remove(next));
        }
    }
    let parents: BTreeSet<_> = winners.iter().map(|(_, p)| p.clone()).collect();
    assert_eq!(parents.len(), winners.len(), "two winners share a parent");
    assert_eq!(winners.len() + losers, CALLS * ROUNDS);
    let last = &winners.last().unwrap().0;
    assert_eq!(
        read(&s3, &format!("{POINTERS}latest")).await.as_ref(),
        Some(last)
    );
    // Every winner has its timestamp pointer; no loser left one behind.
    let pointers = timestamp_pointers(&s3).await;
    let pointed: BTreeSet<&String> = pointers.values().collect();
    let won: BTreeSet<&String> = winners.iter().map(|(h, _)| h).collect();
    assert_eq!(pointed, won, "timestamp pointers {pointers:?}");
    // Time order of the pointers is the order latest moved in.
    let in_time_order: Vec<&String> = pointers.values().collect();
    let in_latest_order: Vec<&String> = winners.iter().map(|(h, _)| h).collect();
    assert_eq!(in_time_order, in_latest_order);
    eprintln!(
        "publishing race: {} calls in {ROUNDS} rounds of {CALLS}: {} winners, {losers} conflicts",
        CALLS * ROUNDS,
        winners.len()
    );
    for server in servers {
        server.stop().await;
    }
}

// ---------------------------------------------------------------------------------
// An S3 without conditional writes: s3s-fs behind a layer that answers 501
// NotImplemented to any PUT carrying If-Match or If-None-Match, as S3-compatible
// stores without conditional writes do.

pub(crate) mod no_conditional {
    use hyper::body::Incoming;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto::Builder as ConnBuilder;
    use s3s::auth::SimpleAuth;
    use s3s::service::{S3Service, S3ServiceBuilder};

    pub const ACCESS_KEY: &str = "AKIAQUILTMCPTEST";
    pub const SECRET_KEY: &str = "quilt-mcp-test-secret-access-key";

    use std::path::PathBuf;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Refuses conditional writes; when `sabotage` is set, a refused timestamp
    /// pointer write also moves `latest` behind the publisher's back (as a
    /// concurrent publisher would, between its two pointer writes).
    #[derive(Clone)]
    struct Refusing {
        inner: S3Service,
        root: PathBuf,
        sabotage: Arc<AtomicBool>,
    }

    impl hyper::service::Service<http::Request<Incoming>> for Refusing {
        type Response = <S3Service as hyper::service::Service<http::Request<Incoming>>>::Response;
        type Error = <S3Service as hyper::service::Service<http::Request<Incoming>>>::Error;
        type Future = <S3Service as hyper::service::Service<http::Request<Incoming>>>::Future;

        fn call(&self, req: http::Request<Incoming>) -> Self::Future {
            let conditional = req.method() == http::Method::PUT
                && (req.headers().contains_key("if-match")
                    || req.headers().contains_key("if-none-match"));
            if conditional {
                let path = req.uri().path();
                if self.sabotage.swap(false, Ordering::SeqCst)
                    && path.contains("/.quilt/named_packages/")
                    && !path.ends_with("/latest")
                {
                    let latest = self
                        .root
                        .join("registry/.quilt/named_packages/team/race/latest");
                    std::fs::write(latest, "e".repeat(64)).unwrap();
                }
                let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NotImplemented</Code><Message>A header you provided implies functionality that is not implemented</Message></Error>";
                let mut response = http::Response::new(s3s::Body::from(body.to_owned()));
                *response.status_mut() = http::StatusCode::NOT_IMPLEMENTED;
                return Box::pin(async move { Ok(response) });
            }
            hyper::service::Service::call(&self.inner, req)
        }
    }

    pub struct Store {
        pub endpoint: String,
        pub sabotage: Arc<AtomicBool>,
        _root: tempfile::TempDir,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for Store {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    pub async fn start() -> Store {
        let root = tempfile::tempdir().unwrap();
        let fs = s3s_fs::FileSystem::new(root.path()).unwrap();
        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let sabotage = Arc::new(AtomicBool::new(false));
        let service = Refusing {
            inner: builder.build(),
            root: root.path().to_owned(),
            sabotage: sabotage.clone(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let service = service.clone();
                tokio::spawn(async move {
                    let _ = ConnBuilder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(socket), service)
                        .await;
                });
            }
        });
        Store {
            endpoint,
            sabotage,
            _root: root,
            task,
        }
    }
}

#[tokio::test]
async fn without_conditional_writes_the_result_and_the_log_say_so() {
    use no_conditional::{ACCESS_KEY, SECRET_KEY};
    let store = no_conditional::start().await;
    let s3 = s3_client(&store.endpoint, ACCESS_KEY, SECRET_KEY);
    for bucket in ["registry", "sources"] {
        s3.create_bucket().bucket(bucket).send().await.unwrap();
    }
    s3.put_object()
        .bucket("sources")
        .key("data/a.csv")
        .body(ByteStream::from_static(b"id,v\n1,2\n"))
        .send()
        .await
        .unwrap();
    let token = token(
        ACCESS_KEY,
        SECRET_KEY,
        &["s3:GetObject", "s3:ListBucket", "s3:PutObject"],
    );
    let server = spawn_server(&store.endpoint, &token).await;
    // Each call replaces the package on purpose.
    let args = json!({
        "package_name": PACKAGE,
        "registry": "registry",
        "entries": [{"logical_key": "a.csv", "s3_uri": "s3://sources/data/a.csv"}],
        "overwrite": true,
    });
    let first = server.ok("package_create", args.clone()).await;
    assert_eq!(first["race_safe"], false, "{first}");
    let mut second_args = args.clone();
    second_args["message"] = json!("second");
    let second = server.ok("package_create", second_args).await;
    assert_eq!(second["race_safe"], false, "{second}");
    assert_eq!(second["previous_top_hash"], first["top_hash"]);
    assert_eq!(
        read(&s3, &format!("{POINTERS}latest")).await.as_deref(),
        second["top_hash"].as_str()
    );
    assert_eq!(timestamp_pointers(&s3).await.len(), 2);

    // Today's check still holds: a latest moved while the timestamp pointer was
    // written is a conflict, and latest keeps what the other writer put there.
    store
        .sabotage
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let mut third_args = args.clone();
    third_args["message"] = json!("third");
    let result = server.call("package_create", third_args).await.unwrap();
    assert_eq!(result.is_error, Some(true), "{result:?}");
    assert_eq!(
        result.structured_content.unwrap()["error"]["code"],
        "conflict"
    );
    assert_eq!(
        read(&s3, &format!("{POINTERS}latest")).await,
        Some("e".repeat(64))
    );
    let (stderr, log_dir) = server.stop().await;

    assert!(
        stderr.contains("does not implement conditional writes"),
        "stderr: {stderr}"
    );
    let warned = log_lines(log_dir.path())
        .into_iter()
        .filter(|l| l["event"] == "conditional_writes_unsupported")
        .count();
    assert!(warned >= 2, "one warning per publish");
}

#[tokio::test]
async fn race_safe_is_reported_on_an_endpoint_with_conditional_writes() {
    // s3s-fs implements If-None-Match and If-Match on PutObject (not atomically:
    // it checks, then writes), enough for sequential calls.
    let s3 = crate::common::s3::TestS3::start().await;
    for bucket in ["registry", "sources"] {
        s3.create_bucket(bucket).await;
    }
    s3.put("sources", "data/a.csv", b"id,v\n1,2\n", "text/csv", &[])
        .await;
    let token = token(
        crate::common::s3::ACCESS_KEY,
        crate::common::s3::SECRET_KEY,
        &["s3:GetObject", "s3:ListBucket", "s3:PutObject"],
    );
    let server = spawn_server(&s3.endpoint, &token).await;
    // Each call replaces the package on purpose.
    let args = json!({
        "package_name": PACKAGE,
        "registry": "registry",
        "entries": [{"logical_key": "a.csv", "s3_uri": "s3://sources/data/a.csv"}],
        "overwrite": true,
    });
    let first = server.ok("package_create", args.clone()).await;
    assert_eq!(first["race_safe"], true, "{first}");
    let mut forced = args.clone();
    forced["force"] = json!(true);
    forced["message"] = json!("forced");
    let second = server.ok("package_create", forced).await;
    assert_eq!(
        second["race_safe"], false,
        "force is not race-safe: {second}"
    );
    server.stop().await;
}
