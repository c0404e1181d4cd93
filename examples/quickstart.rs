//! A guided tour of quilt-mcp, entirely on this machine:
//!
//! 1. starts an in-process S3 server with a small sample bucket,
//! 2. mints a demo enhanced Quilt JWT that carries credentials for it,
//! 3. runs the real `quilt-mcp` binary and talks to it over stdio with an MCP client,
//! 4. prints what a user would see: who the token is, a listing, a file, a refusal.
//!
//! ```sh
//! cargo run --example quickstart
//! ```

use quilt_mcp_testkit::s3;

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use rmcp::ServiceExt as _;
use rmcp::model::CallToolRequestParams;
use rmcp::service::ServiceError;
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};

const SECRET: &str = "quickstart-demo-secret";

/// The quilt-mcp binary next to this example, built first when run through cargo.
fn server_binary() -> anyhow::Result<PathBuf> {
    if let Ok(path) = std::env::var("QUILT_MCP_BIN") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(|examples| examples.parent())
        .context("cannot find the target directory")?;
    if let Ok(cargo) = std::env::var("CARGO") {
        let mut build = std::process::Command::new(cargo);
        build.args(["build", "--quiet", "--bin", "quilt-mcp"]);
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        if !build.status()?.success() {
            bail!("building quilt-mcp failed");
        }
    }
    let binary = profile_dir.join(format!("quilt-mcp{}", std::env::consts::EXE_SUFFIX));
    if !binary.exists() {
        bail!(
            "{} not found; run `cargo build` first or set QUILT_MCP_BIN",
            binary.display()
        );
    }
    Ok(binary)
}

fn demo_token() -> anyhow::Result<String> {
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "sub": "ada@example.com",
        "iss": "quilt-mcp-quickstart",
        "aud": "quilt-mcp-server",
        "iat": now,
        "exp": now + 3600,
        "l": "read",
        "p": ["g", "l", "p"],
        "b": ["demo-data"],
        "aws_credentials": {
            "access_key_id": s3::ACCESS_KEY,
            "secret_access_key": s3::SECRET_KEY,
            "region": "us-east-1",
        },
    });
    Ok(quilt_mcp_testkit::mint_hs256(SECRET.as_bytes(), &claims)?)
}

fn show(title: &str) {
    println!(
        "\n── {title} {}",
        "─".repeat(64_usize.saturating_sub(title.chars().count()))
    );
}

/// A JSON value as a person reads it: strings without quotes, lists comma-separated.
fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(plain).collect::<Vec<_>>().join(", "),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let binary = server_binary()?;

    // 1. A local S3 with a sample bucket.
    let s3 = s3::TestS3::start().await;
    s3.create_bucket("demo-data").await;
    s3.create_bucket("someone-elses-data").await;
    s3.put(
        "demo-data",
        "README.md",
        b"# Demo data\nMeasurements from the quickstart lab.\n",
        "text/markdown",
        &[("owner", "ada")],
    )
    .await;
    s3.put(
        "demo-data",
        "runs/2026-11-26/measurements.csv",
        b"sample,temperature_c,ph\nA1,21.4,7.1\nA2,22.0,6.9\nA3,21.8,7.0\n",
        "text/csv",
        &[],
    )
    .await;
    s3.put(
        "demo-data",
        "runs/2026-11-26/notes.txt",
        "Calibrated at 09:00. Ambient 21 °C.\n".as_bytes(),
        "text/plain",
        &[],
    )
    .await;
    println!("In-process S3 at {} with bucket demo-data.", s3.endpoint);

    // 2 and 3. The real server, configured as a host would configure it.
    let log_dir = std::env::temp_dir().join("quilt-mcp-quickstart-logs");
    let mut command = tokio::process::Command::new(&binary);
    command
        .env("QUILT_MCP_JWT_SECRET", SECRET)
        .env("QUILT_MCP_TOKEN", demo_token()?)
        .env("QUILT_MCP_LOG_DIR", &log_dir)
        .env("AWS_ENDPOINT_URL_S3", &s3.endpoint)
        .env("QUILT_MCP_S3_FORCE_PATH_STYLE", "true");
    let client = ().serve(TokioChildProcess::new(command)?).await?;
    let info = client.peer_info().context("no server info")?;
    if let Some(server) = &info.server_info {
        println!(
            "Connected to {} {} over stdio.",
            server.name, server.version
        );
    }
    let tools = client.list_all_tools().await?;
    println!(
        "Tools: {}",
        tools
            .iter()
            .map(|t| t.name.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );

    let call = |name: &'static str, args: Value| {
        let client = &client;
        async move {
            let mut params = CallToolRequestParams::new(name);
            if let Value::Object(map) = args {
                params = params.with_arguments(map);
            }
            client.call_tool(params).await
        }
    };

    // 4. The tour.
    show("auth_status: who am I?");
    let status = call("auth_status", json!({}))
        .await?
        .structured_content
        .unwrap_or_default();
    println!("subject      {}", plain(&status["subject"]));
    println!("level        {}", plain(&status["level"]));
    println!("buckets      {}", plain(&status["buckets"]));
    println!("permissions  {}", plain(&status["permissions"]));
    println!("expires_at   {}", plain(&status["expires_at"]));
    println!("AWS from     {}", plain(&status["aws"]["source"]));

    show("bucket_objects_list s3://demo-data/runs/2026-11-26/");
    let listing = call(
        "bucket_objects_list",
        json!({"bucket": "demo-data", "prefix": "runs/2026-11-26/"}),
    )
    .await?
    .structured_content
    .unwrap_or_default();
    for object in listing["objects"].as_array().into_iter().flatten() {
        println!(
            "{:>6} B  {}  {}",
            object["size"],
            object["last_modified"].as_str().unwrap_or(""),
            object["key"].as_str().unwrap_or("")
        );
    }

    show("bucket_object_text …/measurements.csv");
    let text = call(
        "bucket_object_text",
        json!({"s3_uri": "s3://demo-data/runs/2026-11-26/measurements.csv"}),
    )
    .await?
    .structured_content
    .unwrap_or_default();
    print!("{}", text["text"].as_str().unwrap_or(""));
    println!(
        "({} of {} bytes, truncated: {})",
        text["bytes_read"], text["size"], text["truncated"]
    );

    show("a refused call: listing someone else's bucket");
    match call(
        "bucket_objects_list",
        json!({"bucket": "someone-elses-data"}),
    )
    .await
    {
        Err(ServiceError::McpError(error)) => {
            println!("error {}: {}", error.code.0, error.message);
            println!("data  {}", error.data.unwrap_or_default());
        }
        other => println!("unexpected: {other:?}"),
    }

    show("a refused call: writing with a read-level token");
    match call(
        "bucket_objects_put",
        json!({"bucket": "demo-data", "items": [{"key": "x.txt", "text": "x"}]}),
    )
    .await
    {
        Err(ServiceError::McpError(error)) => println!("error {}: {}", error.code.0, error.message),
        other => println!("unexpected: {other:?}"),
    }

    client.cancel().await?;
    println!(
        "\nThe server's JSON log of this run is in {}.",
        log_dir.display()
    );
    Ok(())
}
