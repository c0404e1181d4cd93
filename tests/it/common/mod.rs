//! The shared test kit (`testkit/`, the crate `quilt_mcp_testkit`) under the names the
//! tests use: token minting, the in-process S3 (`s3`), loopback fakes (`fakes`), moto
//! (`moto`) and the real binary over stdio (`Server`).

pub use quilt_mcp_testkit::*;
