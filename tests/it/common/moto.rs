//! moto's S3 server for the tests that need a real S3 protocol with conditional
//! writes and versioning: the publishing race (publish_race.rs) and the quilt3
//! parity test (workflows.rs). Found through `QUILT_MCP_TEST_MOTO` (the path of
//! `moto_server`) or `PATH`; `scripts/ci-moto` installs it.
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};

/// An S3 client for `endpoint` with the given keys, path-style.
pub fn s3_client(endpoint: &str, access_key: &str, secret_key: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(access_key, secret_key, None, None, "t"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// The `moto_server` to run, if any.
pub fn moto_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("QUILT_MCP_TEST_MOTO") {
        return Some(PathBuf::from(path));
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("moto_server"))
        .find(|p| p.is_file())
}

/// A running `moto_server`, killed when dropped.
pub struct Moto {
    child: std::process::Child,
    pub endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// Starts `moto_server` on a free loopback port and waits until it answers.
    pub async fn start(path: &PathBuf) -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let port_text = port.to_string();
        let args = ["-H", "127.0.0.1", "-p", port_text.as_str()];
        // moto checks a condition, then writes, and serves requests on threads: two
        // conditional writes of one key can both pass. S3 makes them atomic; so does
        // moto when it serves one request at a time, which its own interpreter is
        // told here (the script's `#!` line names it).
        let interpreter = std::fs::read_to_string(path).ok().and_then(|text| {
            let first = text.lines().next()?.strip_prefix("#!")?.trim().to_owned();
            let mut parts = first.split_whitespace().map(str::to_owned);
            let program = parts.next()?;
            Some((program, parts.collect::<Vec<String>>()))
        });
        let mut command = match interpreter {
            Some((program, mut leading)) => {
                let mut command = std::process::Command::new(program);
                leading.extend([
                    "-c".to_owned(),
                    "import sys, moto.server as s\n\
                     run = s.run_simple\n\
                     s.run_simple = lambda *a, **k: run(*a, **{**k, 'threaded': False})\n\
                     s.main(sys.argv[1:])"
                        .to_owned(),
                ]);
                command.args(leading).args(args);
                command
            }
            None => {
                eprintln!(
                    "WARNING: {} is not a Python script: moto serves requests on threads, and two conditional writes of one key may both pass",
                    path.display()
                );
                let mut command = std::process::Command::new(path);
                command.args(args);
                command
            }
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", path.display()));
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let s3 = moto.client();
        let deadline = Instant::now() + Duration::from_secs(30);
        while s3.list_buckets().send().await.is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer on {}",
                moto.endpoint
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        moto
    }

    pub fn client(&self) -> aws_sdk_s3::Client {
        s3_client(&self.endpoint, "testing", "testing")
    }
}
