//! An in-process S3 server (s3s-fs over a temporary directory) on 127.0.0.1:0 that
//! counts the requests it receives, so tests can prove a call never reached S3.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::dto::*;
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3, S3Request, S3Response, S3Result};

/// The access key the test S3 accepts.
pub const ACCESS_KEY: &str = "AKIAQUILTMCPTEST";
/// The secret key the test S3 accepts.
pub const SECRET_KEY: &str = "quilt-mcp-test-secret-access-key";

#[derive(Clone)]
struct Counting {
    inner: S3Service,
    requests: Arc<AtomicUsize>,
    ranged_gets: Arc<AtomicUsize>,
}

impl hyper::service::Service<http::Request<Incoming>> for Counting {
    type Response = <S3Service as hyper::service::Service<http::Request<Incoming>>>::Response;
    type Error = <S3Service as hyper::service::Service<http::Request<Incoming>>>::Error;
    type Future = <S3Service as hyper::service::Service<http::Request<Incoming>>>::Future;

    fn call(&self, req: http::Request<Incoming>) -> Self::Future {
        self.requests.fetch_add(1, Ordering::SeqCst);
        if req.method() == http::Method::GET && req.headers().contains_key(http::header::RANGE) {
            self.ranged_gets.fetch_add(1, Ordering::SeqCst);
        }
        hyper::service::Service::call(&self.inner, req)
    }
}

pub struct TestS3 {
    pub endpoint: String,
    pub root: tempfile::TempDir,
    requests: Arc<AtomicUsize>,
    ranged_gets: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestS3 {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestS3 {
    pub async fn start() -> TestS3 {
        let root = tempfile::tempdir().unwrap();
        let fs = s3s_fs::FileSystem::new(root.path()).unwrap();
        let mut builder = S3ServiceBuilder::new(UrlListing(fs));
        builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let requests = Arc::new(AtomicUsize::new(0));
        let ranged_gets = Arc::new(AtomicUsize::new(0));
        let service = Counting {
            inner: builder.build(),
            requests: requests.clone(),
            ranged_gets: ranged_gets.clone(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    break;
                };
                let service = service.clone();
                tokio::spawn(async move {
                    let _ = ConnBuilder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(socket), service)
                        .await;
                });
            }
        });
        TestS3 {
            endpoint,
            root,
            requests,
            ranged_gets,
            task,
        }
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// `GetObject` requests with a `Range` received so far.
    pub fn ranged_gets(&self) -> usize {
        self.ranged_gets.load(Ordering::SeqCst)
    }

    /// A direct SDK client with the test keys.
    pub fn client(&self) -> aws_sdk_s3::Client {
        client(&self.endpoint, ACCESS_KEY, SECRET_KEY)
    }

    pub async fn create_bucket(&self, name: &str) {
        self.client()
            .create_bucket()
            .bucket(name)
            .send()
            .await
            .unwrap();
    }

    pub async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: &[u8],
        content_type: &str,
        metadata: &[(&str, &str)],
    ) {
        let meta: HashMap<String, String> = metadata
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        self.client()
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body.to_vec()))
            .content_type(content_type)
            .set_metadata(Some(meta))
            .send()
            .await
            .unwrap();
    }

    /// Writes an object straight into the backing directory (fast, for bulk data).
    pub fn seed_file(&self, bucket: &str, key: &str, body: &[u8]) {
        let path = self.root.path().join(bucket).join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The environment that points quilt-mcp at this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL_S3", self.endpoint.clone()),
            ("QUILT_MCP_S3_FORCE_PATH_STYLE", "true".into()),
        ]
    }
}

/// A path-style SDK client for the S3 at `endpoint` with a static key pair.
pub fn client(endpoint: &str, access_key: &str, secret_key: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(access_key, secret_key, None, None, "test"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// s3s-fs with S3's `encoding-type=url`: s3s-fs echoes `EncodingType` but sends the
/// names as they are, which a client that decodes (as SDKs and quilt-mcp do) would
/// misread. This encodes them as S3 does (`+` for a space), so a name that XML cannot
/// carry still lists, and only when asked, so a client that does not ask still fails
/// on such a name, as it does against S3.
struct UrlListing(s3s_fs::FileSystem);

fn url_encode(text: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'/')
        .remove(b' ');
    percent_encoding::utf8_percent_encode(text, KEEP)
        .to_string()
        .replace(' ', "+")
}

macro_rules! delegate {
    ($($op:ident($input:ty) -> $output:ty;)*) => {
        #[async_trait::async_trait]
        impl S3 for UrlListing {
            async fn list_objects_v2(
                &self,
                req: S3Request<ListObjectsV2Input>,
            ) -> S3Result<S3Response<ListObjectsV2Output>> {
                let mut response = self.0.list_objects_v2(req).await?;
                let out = &mut response.output;
                if out.encoding_type.as_ref().is_some_and(|e| e.as_str() == EncodingType::URL) {
                    let encode = |name: &mut Option<String>| {
                        if let Some(text) = name.as_mut() {
                            *text = url_encode(text);
                        }
                    };
                    encode(&mut out.prefix);
                    encode(&mut out.delimiter);
                    encode(&mut out.start_after);
                    for object in out.contents.iter_mut().flatten() {
                        encode(&mut object.key);
                    }
                    for prefix in out.common_prefixes.iter_mut().flatten() {
                        encode(&mut prefix.prefix);
                    }
                }
                Ok(response)
            }
            $(
                async fn $op(&self, req: S3Request<$input>) -> S3Result<S3Response<$output>> {
                    self.0.$op(req).await
                }
            )*
        }
    };
}

delegate! {
    create_bucket(CreateBucketInput) -> CreateBucketOutput;
    copy_object(CopyObjectInput) -> CopyObjectOutput;
    delete_bucket(DeleteBucketInput) -> DeleteBucketOutput;
    delete_object(DeleteObjectInput) -> DeleteObjectOutput;
    delete_objects(DeleteObjectsInput) -> DeleteObjectsOutput;
    get_bucket_location(GetBucketLocationInput) -> GetBucketLocationOutput;
    get_object(GetObjectInput) -> GetObjectOutput;
    head_bucket(HeadBucketInput) -> HeadBucketOutput;
    head_object(HeadObjectInput) -> HeadObjectOutput;
    list_buckets(ListBucketsInput) -> ListBucketsOutput;
    list_objects(ListObjectsInput) -> ListObjectsOutput;
    put_object(PutObjectInput) -> PutObjectOutput;
    create_multipart_upload(CreateMultipartUploadInput) -> CreateMultipartUploadOutput;
    upload_part(UploadPartInput) -> UploadPartOutput;
    upload_part_copy(UploadPartCopyInput) -> UploadPartCopyOutput;
    list_parts(ListPartsInput) -> ListPartsOutput;
    complete_multipart_upload(CompleteMultipartUploadInput) -> CompleteMultipartUploadOutput;
    abort_multipart_upload(AbortMultipartUploadInput) -> AbortMultipartUploadOutput;
}
