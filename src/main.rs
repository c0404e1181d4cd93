//! The `quilt-mcp` command line: parses flags and wires the library together.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use quilt_mcp::{Config, QuiltServer, logging};
use rmcp::ServiceExt as _;

/// An MCP server for Quilt data, authorized by your Quilt JWT alone.
#[derive(Debug, Parser)]
#[command(name = "quilt-mcp", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve MCP over stdio (the default).
    Serve,
    /// Diagnose the configuration without serving: token source, verification,
    /// claims, AWS credential source, log directory. Exit 0 when the token
    /// verifies, 1 when it is missing or fails, 2 when the configuration is wrong.
    Status {
        /// Print the diagnosis as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("quilt-mcp: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve_stdio().await.map(|()| ExitCode::SUCCESS),
            Command::Status { json } => status(json).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("quilt-mcp: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve_stdio() -> anyhow::Result<()> {
    let config = Config::from_env();
    let guard = logging::init(&config);
    for problem in &config.errors {
        tracing::warn!(event = "config_error", "configuration problem: {problem}");
    }
    let server = QuiltServer::new(config);
    if let Some(e) = server.verifier().key_error() {
        tracing::warn!(
            event = "config_error",
            "{e}; every tool call will be refused with verification_not_configured"
        );
    }
    tracing::info!(
        event = "server_started",
        version = quilt_mcp::VERSION,
        transport = "stdio",
        token_source = server.token_source().as_str(),
        key_kind = server.verifier().key_kind(),
        log_dir = guard.dir.as_ref().map(|d| d.display().to_string()),
    );
    let check = server.check_token().await;
    if let Some(failure) = &check.failure {
        tracing::warn!(
            event = "startup_warning",
            reason = failure.reason.code(),
            "tool calls will be refused until this is fixed: {}",
            failure.message()
        );
    }
    let service = server
        .serve(rmcp::transport::io::stdio_pipes())
        .await
        .context("the MCP session could not start")?;
    service
        .waiting()
        .await
        .context("the MCP session ended with an error")?;
    drop(guard);
    Ok(())
}

async fn status(json: bool) -> anyhow::Result<ExitCode> {
    let config = Config::from_env();
    let report = quilt_mcp::status::diagnose(&config, quilt_mcp::time::now_unix()).await;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).context("cannot render the report")?
        );
    } else {
        print!("{}", report.to_text());
    }
    Ok(ExitCode::from(u8::try_from(report.exit_code).unwrap_or(1)))
}
