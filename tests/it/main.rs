//! The integration tests, one crate (one link): each module drives the real binary or
//! the real server over a real transport, checks the package format against quilt3's
//! vectors, or checks a rule of the codebase.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

mod architecture;
mod arguments;
mod diagnostics;
mod hostile_inputs;
mod http;
mod http_fuzz;
mod http_limits;
mod http_metrics;
mod http_router;
mod keyring;
mod keyring_real;
mod mcpb_manifest;
mod package_pages;
mod package_patch;
mod package_revisions;
mod package_uris;
mod properties;
mod publish_race;
mod quilt_format;
mod reference;
mod resources;
mod schemas;
mod search;
mod status;
mod stdio_auth;
mod stdio_bounds;
mod stdio_cancel;
mod stdio_fuzz;
mod stdio_packages;
mod stdio_s3;
mod verify_table;
mod workflows;
