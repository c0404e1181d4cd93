//! quilt-mcp: an MCP server for Quilt data, authorized by the user's enhanced Quilt
//! JWT and by nothing else.
//!
//! # Layout
//!
//! - [`config`]: every environment variable of the contract, read once into [`Config`].
//! - [`auth`]: where the token comes from ([`auth::source`]), how it is verified
//!   ([`auth::verify`]), and how its Quilt claims are decompressed ([`auth::claims`])
//!   into the [`auth::AuthContext`] every tool sees. Failures carry an
//!   [`auth::Reason`] code.
//! - [`aws`]: which AWS credential source a token names; never the environment.
//! - [`tools`]: the tool table ([`tools::spec`]) that the gate reads, the pure
//!   authorization decision ([`tools::policy`]) and one module per tool family.
//! - [`server`]: the rmcp `ServerHandler` and the one gate every tool call passes.
//! - [`status`]: the `quilt-mcp status` diagnosis.
//! - [`stdio`]: JSON-RPC framing in front of rmcp's stdio transport: every line gets an
//!   answer when it needs one, within bounds.
//! - [`logging`]: JSON-lines log files and the plain stderr stream.
//!
//! `main.rs` only parses the command line and wires these together.

pub mod auth;
pub mod aws;
pub mod config;
pub mod error;
pub mod http;
pub mod logging;
pub mod quilt;
pub mod server;
pub mod setup;
pub mod status;
pub mod stdio;
pub mod time;
pub mod tools;

pub use config::Config;
pub use server::QuiltServer;

/// The crate's version, as reported in `initialize` and the logs.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
