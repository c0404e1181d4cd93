//! The `quilt-mcp` command line: parses flags and wires the library together.

// rmcp's request handling nests every handler's future in one async block; with
// resources and completions served, computing its layout passes the default limit.
#![recursion_limit = "256"]

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use quilt_mcp::server::Transport;
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
    /// Serve MCP over stdio (the default), or over streamable HTTP with --http.
    Serve {
        /// Serve streamable HTTP at this address (`/mcp`) instead of stdio; each
        /// request must carry `Authorization: Bearer <token>`.
        #[arg(long, value_name = "ADDR")]
        http: Option<std::net::SocketAddr>,
        /// A `Host` header value to accept in HTTP mode: a host name with an optional
        /// `:port` (repeatable; default: loopback names only). Set it to the public name
        /// when serving behind a proxy. A value that is not a host name is an error.
        #[arg(long = "allowed-host", value_name = "HOST", value_parser = quilt_mcp::http::parse_allowed_host)]
        allowed_hosts: Vec<String>,
        /// Largest HTTP request body, in bytes.
        #[arg(long, value_name = "BYTES", default_value_t = quilt_mcp::http::DEFAULT_MAX_BODY_BYTES)]
        max_body_bytes: usize,
        /// The externally visible base URL (`https://mcp.example.com`) for the metadata
        /// and challenge URLs behind a proxy; `X-Forwarded-*` headers are never trusted.
        /// Default: QUILT_MCP_PUBLIC_URL, else `http://` and the request's Host.
        #[arg(long, value_name = "URL", value_parser = quilt_mcp::config::parse_public_url)]
        public_url: Option<String>,
        /// Most HTTP connections open at once; beyond it, new connections wait to be
        /// accepted.
        #[arg(long, value_name = "N", default_value_t = quilt_mcp::http::DEFAULT_MAX_CONNECTIONS, value_parser = at_least_one)]
        max_connections: usize,
        /// Serve Prometheus metrics at http://ADDR/metrics, on a listener of its own
        /// (never the MCP port). Default: no metrics.
        #[arg(long, value_name = "ADDR")]
        metrics: Option<std::net::SocketAddr>,
        /// Calls per second per token (a token bucket with bursts of N); a token over
        /// it gets HTTP 429 with Retry-After. Default: no rate limit.
        #[arg(long, value_name = "N", value_parser = rate_limit)]
        rate_limit: Option<u32>,
    },
    /// Diagnose the configuration without serving: token source, verification,
    /// claims, AWS credential source, log directory. Exit 0 when the token
    /// verifies, 1 when it is missing or fails, 2 when the configuration is wrong.
    Status {
        /// Print the diagnosis as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check a token and store it in the OS keyring entry (read from the file, else
    /// from stdin; at most 16 KiB). A token that fails is refused and nothing is
    /// stored. Where no verification key is configured (it lives in the host's
    /// settings), every check but the signature is made, and the server checks that.
    Login {
        /// Read the token from this file instead of stdin.
        #[arg(long, value_name = "PATH")]
        token_file: Option<std::path::PathBuf>,
    },
    /// Delete the token from the OS keyring entry.
    Logout,
    /// Print the last refused calls from the log files, with their reasons.
    Logs {
        /// How many refusals to print.
        #[arg(long, value_name = "N", default_value_t = 20)]
        last: usize,
        /// Print them as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a ready-to-paste MCP configuration for a host, running this binary.
    Config {
        /// The host: claude-desktop (or claude), claude-code, vscode, cursor or gemini.
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(quilt_mcp::setup::HOSTS))]
        host: String,
        /// For claude-code: print the JSON object `claude mcp add-json quilt` takes
        /// instead of a `claude mcp add` command line.
        #[arg(long)]
        json: bool,
    },
}

/// A whole number of at least 1.
fn at_least_one(text: &str) -> anyhow::Result<usize> {
    match text.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(anyhow::anyhow!(
            "expected a whole number of at least 1, got {text:?}"
        )),
    }
}

/// A rate limit: a whole number of calls per second, at least 1.
fn rate_limit(text: &str) -> anyhow::Result<u32> {
    match text.trim().parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(anyhow::anyhow!(
            "expected a whole number of calls per second, at least 1, got {text:?}"
        )),
    }
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
        let default = Command::Serve {
            http: None,
            allowed_hosts: Vec::new(),
            max_body_bytes: quilt_mcp::http::DEFAULT_MAX_BODY_BYTES,
            public_url: None,
            max_connections: quilt_mcp::http::DEFAULT_MAX_CONNECTIONS,
            rate_limit: None,
            metrics: None,
        };
        match cli.command.unwrap_or(default) {
            Command::Serve { http: None, .. } => serve_stdio().await.map(|()| ExitCode::SUCCESS),
            Command::Serve {
                http: Some(addr),
                allowed_hosts,
                max_body_bytes,
                public_url,
                max_connections,
                rate_limit,
                metrics,
            } => {
                let mut options = quilt_mcp::http::HttpOptions {
                    max_body_bytes,
                    public_url,
                    max_connections,
                    rate_limit,
                    ..Default::default()
                };
                if !allowed_hosts.is_empty() {
                    options.allowed_hosts = allowed_hosts;
                }
                serve_http(addr, options, metrics)
                    .await
                    .map(|()| ExitCode::SUCCESS)
            }
            Command::Status { json } => status(json).await,
            Command::Login { token_file } => login(token_file).await,
            Command::Logout => logout().await,
            Command::Logs { last, json } => logs(last, json),
            Command::Config { host, json } => host_config(&host, json),
        }
    });
    // A blocking read of stdin may still be parked on the blocking pool (the session
    // ended by a signal while the host keeps stdin open): do not wait for it. Logs
    // were flushed when the session ended.
    runtime.shutdown_background();
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("quilt-mcp: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Reads the configuration, starts logging and builds the server, warning about
/// configuration problems (what is refused because of them: `refused`).
fn start(refused: &str, transport: Transport) -> (QuiltServer, logging::LogGuard) {
    let config = Config::from_env();
    // Over stdio every line carries the session's id; over HTTP, the request's.
    let session = (transport == Transport::Stdio).then(logging::new_session_id);
    let guard = logging::init(&config, session.as_deref());
    for problem in &config.errors {
        tracing::warn!(event = "config_error", "configuration problem: {problem}");
    }
    let server = match transport {
        Transport::Stdio => QuiltServer::new(config),
        Transport::Http => QuiltServer::new_http(config),
    };
    if let Some(e) = server.verifier().key_error() {
        tracing::warn!(
            event = "config_error",
            "{e}; {refused} will be refused with verification_not_configured"
        );
    }
    (server, guard)
}

async fn serve_stdio() -> anyhow::Result<()> {
    // Signal handlers first: a host may quit while the server is still starting.
    let signal = quilt_mcp::http::shutdown_signal();
    // Each line from the host is decoded once by the stdio transport, which answers
    // what rmcp cannot take and writes everything to stdout. From a host's pipe it
    // starts reading now, so that the host's `initialize` is read and decoded while
    // the server is built; from a terminal only after saying what this is (a process
    // in the terminal's background is stopped as soon as it reads it).
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stdin());
    let early = (!interactive)
        .then(|| quilt_mcp::stdio::transport(tokio::io::stdin(), tokio::io::stdout()));
    let (server, guard) = start("every tool call", Transport::Stdio);
    tracing::info!(
        event = "server_started",
        version = quilt_mcp::VERSION,
        transport = "stdio",
        token_source = server.token_source().as_str(),
        key_kind = server.verifier().key_kind(),
        log_dir = guard
            .dir
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_default(),
    );
    let check = server.check_token().await;
    if let Some(failure) = &check.failure {
        tracing::warn!(
            event = "startup_warning",
            reason = failure.reason.code(),
            "tool calls will be refused until this is fixed: {}",
            quilt_mcp::auth::printable(&failure.message())
        );
    }
    if interactive {
        eprintln!(
            "quilt-mcp: waiting for an MCP host on stdin. This is an MCP server: a host (Claude, VS Code, Cursor, Gemini) starts it; `quilt-mcp config HOST` prints the configuration, `quilt-mcp --help` lists the commands. Ctrl-C quits."
        );
    }
    let (transport, session) = early
        .unwrap_or_else(|| quilt_mcp::stdio::transport(tokio::io::stdin(), tokio::io::stdout()));
    // The session ends when the host closes stdin, or on SIGINT/SIGTERM (hosts send
    // one when they quit), at any point, even before `initialize`; either way the
    // last log lines are flushed.
    let cancel = tokio_util::sync::CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        signal.await;
        tracing::info!(
            event = "server_stopping",
            "signal received: ending the session"
        );
        on_signal.cancel();
    });
    match server.serve_with_ct(transport, cancel.clone()).await {
        Ok(service) => {
            service
                .waiting()
                .await
                .context("the MCP session ended with an error")?;
        }
        Err(_) if cancel.is_cancelled() => {}
        // A host that closes stdin before `initialize` (it quit, or only probed the
        // binary) ends the session as a signal does: not an error.
        Err(rmcp::service::ServerInitializeError::ConnectionClosed(_)) => {
            tracing::info!(
                event = "stdio_closed",
                "the host closed stdin before initializing: ending the session"
            );
        }
        Err(e) => return Err(e).context("the MCP session could not start"),
    }
    // rmcp's last answers reach stdout before the process ends.
    if let Err(e) = session.finish().await {
        tracing::debug!(event = "stdio_closed", "writing stdout stopped: {e}");
    }
    tracing::info!(event = "server_stopped");
    drop(guard);
    Ok(())
}

async fn serve_http(
    addr: std::net::SocketAddr,
    options: quilt_mcp::http::HttpOptions,
    metrics: Option<std::net::SocketAddr>,
) -> anyhow::Result<()> {
    let signal = quilt_mcp::http::shutdown_signal();
    let (server, guard) = start("every request", Transport::Http);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr().context("no local address")?;
    if let Some(metrics_addr) = metrics {
        quilt_mcp::metrics::enable();
        let metrics_listener = tokio::net::TcpListener::bind(metrics_addr)
            .await
            .with_context(|| format!("cannot listen on {metrics_addr} for metrics"))?;
        let metrics_local = metrics_listener.local_addr().context("no local address")?;
        // A scraper needs few connections; the same timeouts bound it.
        let metrics_options = quilt_mcp::http::HttpOptions {
            max_connections: 16,
            metered: false,
            ..Default::default()
        };
        tokio::spawn(async move {
            let router = quilt_mcp::http::metrics_router();
            let never = std::future::pending::<()>();
            if let Err(e) =
                quilt_mcp::http::run(metrics_listener, router, &metrics_options, never).await
            {
                tracing::warn!(
                    event = "metrics_failed",
                    "the metrics listener stopped: {e}"
                );
            }
        });
        eprintln!("quilt-mcp: serving metrics at http://{metrics_local}/metrics");
    }
    tracing::info!(
        event = "server_started",
        version = quilt_mcp::VERSION,
        transport = "http",
        token_source = "http",
        key_kind = server.verifier().key_kind(),
        log_dir = guard.dir.as_ref().map(|d| d.display().to_string()).unwrap_or_default(),
        address = %local,
        allowed_hosts = %options.allowed_hosts.join(","),
        rate_limit = options.rate_limit.unwrap_or(0),
    );
    eprintln!("quilt-mcp: serving MCP at http://{local}/mcp");
    let router = quilt_mcp::http::router(server, &options);
    quilt_mcp::http::run(listener, router, &options, async {
        signal.await;
        tracing::info!(
            event = "server_stopping",
            "shutting down: finishing in-flight requests"
        );
    })
    .await
    .context("the HTTP server failed")?;
    tracing::info!(event = "server_stopped");
    drop(guard);
    Ok(())
}

async fn login(token_file: Option<std::path::PathBuf>) -> anyhow::Result<ExitCode> {
    use quilt_mcp::setup::read_token;
    let text = match &token_file {
        Some(path) => {
            let file = std::fs::File::open(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            read_token(file).with_context(|| format!("cannot read {}", path.display()))?
        }
        None => {
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                eprintln!("Paste the token from the Quilt catalog, then press Ctrl-D:");
            }
            read_token(std::io::stdin()).context("cannot read the token from stdin")?
        }
    };
    let config = Config::from_env();
    let now = quilt_mcp::time::now_unix();
    let entry = format!("{}/{}", config.keyring_service, config.keyring_user);
    let result = tokio::task::spawn_blocking(move || quilt_mcp::setup::login(&config, &text, now))
        .await
        .context("the keyring writer stopped")?;
    match result {
        Ok(stored) => {
            let store = quilt_mcp::auth::store::store_in_use()
                .map_or_else(|_| "?".to_owned(), str::to_owned);
            eprintln!(
                "Stored the token of {} (expires {}) in the keyring ({store}) entry {entry}.",
                stored
                    .subject
                    .as_deref()
                    .map_or_else(|| "an unnamed subject".into(), quilt_mcp::auth::printable),
                quilt_mcp::time::human(stored.expires_at)
            );
            if !stored.signature_checked {
                eprintln!(
                    "Its signature was not checked here: no verification key is configured in this shell (the key belongs in the MCP host's settings). Its structure, expiry, audience and issuer were checked; the server checks the signature at every call, and the token line the host shows (or its log) says whether it was accepted."
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(quilt_mcp::setup::LoginError::Refused(failure)) => {
            eprintln!(
                "quilt-mcp: not stored: {} ({})",
                quilt_mcp::auth::printable(&failure.message()),
                failure.reason.code()
            );
            Ok(ExitCode::from(1))
        }
        Err(other) => {
            eprintln!("quilt-mcp: not stored: {other}");
            Ok(ExitCode::from(2))
        }
    }
}

/// `quilt-mcp logs`: the last refused calls, from the log files.
fn logs(last: usize, json: bool) -> anyhow::Result<ExitCode> {
    let config = Config::from_env();
    if config.log_target == quilt_mcp::config::LogTarget::Stderr {
        eprintln!(
            "quilt-mcp: QUILT_MCP_LOG_TARGET=stderr: the server writes its log lines to stderr, where its host or supervisor keeps them, not to files"
        );
        return Ok(ExitCode::from(2));
    }
    let Some(dir) = logging::log_dir(&config) else {
        eprintln!("quilt-mcp: no log directory: set QUILT_MCP_LOG_DIR");
        return Ok(ExitCode::from(2));
    };
    let refusals = match logging::refusals(&dir, last) {
        Ok(found) => found,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&refusals).context("cannot render the refusals")?
        );
        return Ok(ExitCode::SUCCESS);
    }
    if refusals.is_empty() {
        println!("No refused calls in the logs in {}.", dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    println!("The last refused calls in {}:", dir.display());
    for r in &refusals {
        let who = match (&r.pid, &r.session) {
            (Some(pid), Some(session)) => format!("pid {pid} {session}"),
            (Some(pid), None) => format!("pid {pid}"),
            (None, Some(session)) => session.clone(),
            (None, None) => "-".to_owned(),
        };
        println!(
            "{}  {who}  {}  {} ({})",
            r.timestamp,
            r.tool.as_deref().unwrap_or("(HTTP request)"),
            if r.outcome == "denied" {
                "forbidden"
            } else {
                "unauthorized"
            },
            r.reason.as_deref().unwrap_or("?")
        );
        let why = [r.detail.as_deref(), r.hint.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("; ");
        if !why.is_empty() {
            println!("    {}", quilt_mcp::auth::printable(&why));
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn logout() -> anyhow::Result<ExitCode> {
    let config = Config::from_env();
    let entry = format!("{}/{}", config.keyring_service, config.keyring_user);
    let result = tokio::task::spawn_blocking(move || quilt_mcp::setup::logout(&config))
        .await
        .context("the keyring writer stopped")?;
    match result {
        Ok(true) => eprintln!("Deleted the token in the keyring entry {entry}."),
        Ok(false) => eprintln!("There was no token in the keyring entry {entry}."),
        Err(e) => anyhow::bail!("cannot delete the token: {}", e.sentence(&entry)),
    }
    Ok(ExitCode::SUCCESS)
}

fn host_config(host: &str, json: bool) -> anyhow::Result<ExitCode> {
    use quilt_mcp::setup::HostConfig;
    let config = Config::from_env();
    let binary = std::env::current_exe().context("cannot find this binary's path")?;
    let binary = binary.canonicalize().unwrap_or(binary);
    // VS Code prompts for the token unless the keyring already holds one; every host
    // is told whether `login` is still to do.
    let stored = match &config.token {
        Some(_) => None,
        None => quilt_mcp::auth::store::read_entry(&config.keyring_service, &config.keyring_user)
            .ok()
            .flatten(),
    };
    let token_stored = stored.is_some();
    let snippet = quilt_mcp::setup::host_config(
        host,
        &binary,
        &config,
        token_stored || config.token.is_some(),
        json,
    )
    .with_context(|| format!("unknown host {host:?}"))?;
    eprintln!("{}", quilt_mcp::setup::host_config_path(host));
    match &config.key {
        quilt_mcp::config::KeyConfig::Secret(_) | quilt_mcp::config::KeyConfig::None => eprintln!(
            "Replace the QUILT_MCP_JWT_SECRET placeholder with the catalog's signing secret: until then every call is refused with verification_not_configured, naming the placeholder."
        ),
        quilt_mcp::config::KeyConfig::Placeholder { variable, .. } => eprintln!(
            "Replace the {variable} placeholder with the real value: until then every call is refused with verification_not_configured, naming the placeholder."
        ),
        _ => {}
    }
    for (name, url) in [
        ("QUILT_REGISTRY_URL", config.registry_url.as_deref()),
        ("QUILT_CATALOG_URL", config.catalog_url.as_deref()),
        ("AWS_ENDPOINT_URL", config.endpoint_url.as_deref()),
        ("AWS_ENDPOINT_URL_S3", config.endpoint_url_s3.as_deref()),
        ("AWS_ENDPOINT_URL_STS", config.endpoint_url_sts.as_deref()),
    ] {
        if url.is_some_and(quilt_mcp::setup::has_userinfo) {
            eprintln!(
                "{name} carries a user name and password: the snippet has <user:password> in their place; put them in the host's settings yourself."
            );
        }
    }
    match (&config.token, &stored) {
        (Some(_), _) => eprintln!(
            "The token comes from QUILT_MCP_TOKEN here; the snippet does not carry it: store it with `quilt-mcp login`, or add QUILT_MCP_TOKEN to the server's environment."
        ),
        (None, Some(token)) => eprintln!(
            "A token is stored in the keyring entry {}/{} ({}); the server reads it from there.",
            config.keyring_service,
            config.keyring_user,
            token.fingerprint()
        ),
        (None, None) if host == "vscode" => eprintln!(
            "VS Code asks for the token when it starts the server; or store it first with `quilt-mcp login`."
        ),
        (None, None) => eprintln!(
            "Then store your token with `quilt-mcp login` (or add QUILT_MCP_TOKEN to the server's environment)."
        ),
    }
    match snippet {
        HostConfig::Json(value) => println!(
            "{}",
            serde_json::to_string_pretty(&value).context("cannot render the snippet")?
        ),
        HostConfig::Command(line) => println!("{line}"),
    }
    Ok(ExitCode::SUCCESS)
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
