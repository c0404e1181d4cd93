//! What quilt-mcp's integration tests, benches and examples share, written once:
//!
//! - [`jwt`]: token minting, well-formed and deliberately broken;
//! - [`s3`]: an in-process S3 (s3s-fs) that counts its requests;
//! - [`fakes`]: loopback STS, registry and slow S3 servers that record what they get;
//! - [`registry_graphql`]: a loopback Quilt registry with the search API, validating
//!   each GraphQL query against the registry's schema;
//! - [`moto`]: moto's S3 server, started through a Python that imports it;
//! - [`server`]: the real `quilt-mcp` binary over stdio with an MCP client.
//!
//! A dev-only workspace member (`publish = false`), a path dev-dependency of
//! quilt-mcp: the product's dependency graph does not see s3s, moto, the GraphQL
//! compiler or the MCP client.
//! The tests use it through `tests/it/common` (`pub use quilt_mcp_testkit::*`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod fakes;
pub mod jwt;
pub mod moto;
pub mod registry_graphql;
pub mod s3;
pub mod server;

pub use jwt::*;
pub use server::*;
