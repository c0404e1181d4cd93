//! The crate's version: a leaf that any layer may name.

/// The crate's version, as reported in `initialize`, `--version`, `status` and the logs.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
