//! Loopback STS and Quilt registry servers that record what they receive.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Recorded {
    /// The form fields of an `application/x-www-form-urlencoded` body.
    pub fn form(&self) -> HashMap<String, String> {
        self.body
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (decode(k), decode(v)))
            .collect()
    }
}

fn decode(text: &str) -> String {
    percent_encoding::percent_decode_str(&text.replace('+', " "))
        .decode_utf8()
        .unwrap()
        .into_owned()
}

#[derive(Clone)]
struct Fake {
    requests: Arc<Mutex<Vec<Recorded>>>,
    status: StatusCode,
    content_type: &'static str,
    body: String,
    delay: Duration,
}

async fn handle(
    State(fake): State<Fake>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    fake.requests.lock().unwrap().push(Recorded {
        method: method.to_string(),
        path: uri.path().to_owned(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    tokio::time::sleep(fake.delay).await;
    (
        fake.status,
        [("content-type", fake.content_type)],
        fake.body.clone(),
    )
        .into_response()
}

/// A running fake.
pub struct FakeServer {
    pub url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeServer {
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    async fn start(
        status: StatusCode,
        content_type: &'static str,
        body: String,
        delay: Duration,
    ) -> FakeServer {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let fake = Fake {
            requests: requests.clone(),
            status,
            content_type,
            body,
            delay,
        };
        let app = Router::new().fallback(handle).with_state(fake);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeServer {
            url,
            requests,
            task,
        }
    }

    /// STS answering `AssumeRoleWithWebIdentity` with these credentials after `delay`.
    pub async fn sts(
        access_key: &str,
        secret_key: &str,
        session_token: &str,
        expiration: &str,
        delay: Duration,
    ) -> FakeServer {
        let body = format!(
            r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>alice</SubjectFromWebIdentityToken>
    <Audience>quilt-mcp-server</Audience>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/Reader/alice</Arn>
      <AssumedRoleId>AROAEXAMPLE:alice</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>{access_key}</AccessKeyId>
      <SecretAccessKey>{secret_key}</SecretAccessKey>
      <SessionToken>{session_token}</SessionToken>
      <Expiration>{expiration}</Expiration>
    </Credentials>
    <Provider>https://quilt.example.com</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>"#
        );
        FakeServer::start(StatusCode::OK, "text/xml", body, delay).await
    }

    /// An S3 endpoint that answers every request, after `delay`, with a one-object
    /// ListObjectsV2 page.
    pub async fn slow_s3_listing(delay: Duration) -> FakeServer {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>alice-data</Name><Prefix></Prefix><KeyCount>1</KeyCount><MaxKeys>100</MaxKeys><IsTruncated>false</IsTruncated>
  <Contents><Key>slow.txt</Key><LastModified>2026-11-26T10:00:00.000Z</LastModified><ETag>"abc"</ETag><Size>4</Size><StorageClass>STANDARD</StorageClass></Contents>
</ListBucketResult>"#;
        FakeServer::start(StatusCode::OK, "application/xml", body.to_owned(), delay).await
    }

    /// STS refusing `AssumeRoleWithWebIdentity` with HTTP 400, `code` and `message`.
    pub async fn sts_error(code: &str, message: &str) -> FakeServer {
        let body = format!(
            r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>
  <RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId>
</ErrorResponse>"#
        );
        FakeServer::start(StatusCode::BAD_REQUEST, "text/xml", body, Duration::ZERO).await
    }

    /// A Quilt registry answering `get_credentials` with `status` and `body`.
    pub async fn registry(status: u16, body: String) -> FakeServer {
        FakeServer::start(
            StatusCode::from_u16(status).unwrap(),
            "application/json",
            body,
            Duration::ZERO,
        )
        .await
    }
}
