//! A host's `notifications/cancelled` over stdio reaches the running call: a
//! `package_create` whose read of a source S3 never answers ends as soon as it is
//! cancelled, publishes nothing, and the server goes on serving.
use std::sync::Arc;
use std::time::Duration;

use crate::common::s3::{ACCESS_KEY, SECRET_KEY, TestS3};
use crate::common::*;
use rmcp::model::{CallToolRequestParams, ClientRequest, Request};
use rmcp::service::PeerRequestOptions;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::Notify;

/// A TCP proxy in front of the test S3 that forwards everything except requests that
/// begin with `GET /{held}`: those it holds, never answering, and says so.
struct Staller {
    endpoint: String,
    held: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Staller {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Staller {
    async fn start(upstream: &str, held: &str) -> Staller {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let needle = format!("GET /{held}").into_bytes();
        let notify = Arc::new(Notify::new());
        let on_hold = notify.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let needle = needle.clone();
                let on_hold = on_hold.clone();
                tokio::spawn(async move {
                    let server = tokio::net::TcpStream::connect(&upstream).await.unwrap();
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let back = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                    });
                    let mut buffer = vec![0u8; 64 * 1024];
                    while let Ok(n) = client_read.read(&mut buffer).await {
                        if n == 0 {
                            break;
                        }
                        if buffer[..n].windows(needle.len()).any(|w| w == needle) {
                            on_hold.notify_one();
                            // Held: the connection stays open and nothing is answered.
                            std::future::pending::<()>().await;
                        }
                        if server_write.write_all(&buffer[..n]).await.is_err() {
                            break;
                        }
                    }
                    back.abort();
                });
            }
        });
        Staller {
            endpoint,
            held: notify,
            task,
        }
    }
}

#[tokio::test]
async fn a_cancelled_create_stops_while_its_read_is_stalled() {
    let s3 = TestS3::start().await;
    for bucket in ["registry", "sources"] {
        s3.create_bucket(bucket).await;
    }
    s3.put(
        "sources",
        "stall/a.bin",
        b"never read",
        "application/octet-stream",
        &[],
    )
    .await;
    let staller = Staller::start(&s3.endpoint, "sources/stall/").await;
    let token = hs256(&claims_with(json!({
        "buckets": ["registry", "sources"],
        "permissions": ["s3:GetObject", "s3:ListBucket", "s3:PutObject"],
        "level": "write",
        "aws_credentials": {"access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY},
    })));
    let server = Server::spawn(&[
        ("AWS_ENDPOINT_URL_S3", staller.endpoint.as_str()),
        ("QUILT_MCP_S3_FORCE_PATH_STYLE", "true"),
        ("QUILT_MCP_JWT_SECRET", SECRET),
        ("QUILT_MCP_TOKEN", token.as_str()),
    ])
    .await;
    let args = json!({"package_name": "team/stalled", "registry": "registry",
        "s3_uris": ["s3://sources/stall/"]});
    let params = CallToolRequestParams::new("package_create")
        .with_arguments(args.as_object().unwrap().clone());
    let handle = server
        .client
        .send_cancellable_request(
            ClientRequest::CallToolRequest(Request::new(params)),
            PeerRequestOptions::no_options(),
        )
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), staller.held.notified())
        .await
        .expect("package_create reads its source");
    handle.cancel(Some("changed my mind".into())).await.unwrap();

    // S3 never answers that read (the SDK would give up after 30 s): the call can
    // only end this soon because the cancellation reached it.
    let mut ended = None;
    for _ in 0..60 {
        ended = log_lines(server.log_dir.path())
            .into_iter()
            .find(|l| l["event"] == "tool_call" && l["tool"] == "package_create");
        if ended.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let ended = ended.expect("package_create ended within 15 s of its cancellation");
    assert_eq!(ended["outcome"], "error", "{ended:?}");
    assert!(ended["duration_ms"].as_u64().unwrap() < 30_000, "{ended:?}");
    let published = s3
        .client()
        .list_objects_v2()
        .bucket("registry")
        .send()
        .await
        .unwrap();
    assert_eq!(published.key_count(), Some(0), "{:?}", published.contents());
    // Still serving.
    server.ok("auth_status", json!({})).await;
    server.stop().await;
}
