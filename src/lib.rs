//! quilt-mcp: an MCP server for Quilt data, authorized by the user's enhanced Quilt
//! JWT and by nothing else.
//!
//! # Layout
//!
//! Layers from the bottom up; a module uses only the layers below it (ARCHITECTURE.md,
//! kept by `tests/it/architecture.rs`):
//!
//! - `version`: the crate's version, named by any layer.
//! - `error`: the error codes of the contract, `ToolError` and `ArgumentError`.
//!   [`metrics`]: the Prometheus metrics of `--metrics`, and the one-line hooks the
//!   layers above record them with (no-ops unless metrics are on).
//! - [`time`], `s3`: clocks; every S3 request, its failure classified once, S3 names and
//!   `s3://` URIs.
//! - [`config`]: every environment variable of the contract, read once into [`Config`].
//! - [`logging`]: JSON-lines log files and the plain stderr stream. [`quilt`]: the
//!   package format (manifests, hashes, Python-exact JSON) and registry I/O.
//! - [`auth`]: where the token comes from ([`auth::source`]), how it is verified
//!   ([`auth::verify`]), how its Quilt claims are decompressed ([`auth::claims`]) and
//!   which AWS credential source they name, into the [`auth::AuthContext`] every tool
//!   sees. Failures carry an [`auth::Reason`] code.
//! - `registry`: the Quilt registry's HTTP API with the caller's registry token: the
//!   credential exchange and the GraphQL search.
//! - `aws`: AWS credentials from that source, never the environment; S3 clients.
//! - `tools`: one type per tool: its description, typed parameters (which declare the
//!   buckets and permissions a call touches), typed result and operation; the pure
//!   authorization decision.
//! - [`server`]: [`QuiltServer`], the rmcp `ServerHandler` with the one gate every tool
//!   call passes, and the rmcp routes built from the tools.
//! - [`http`], [`stdio`]: the transports: streamable HTTP behind a bearer layer; JSON-RPC
//!   lines over stdin/stdout, decoded once and bounded, as an rmcp transport.
//! - [`status`], [`setup`]: the `status`, `login`, `logout` and `config` commands.
//!
//! `main.rs` only parses the command line and wires these together.

#![warn(unreachable_pub)]

pub mod auth;
mod aws;
pub mod config;
mod error;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod quilt;
mod registry;
mod s3;
pub mod server;
pub mod setup;
pub mod status;
pub mod stdio;
pub mod time;
mod tools;
mod version;

pub use config::Config;
pub use server::QuiltServer;
pub use version::VERSION;
