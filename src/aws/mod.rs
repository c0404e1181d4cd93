//! AWS credentials from the token alone (docs/reference.md, Settings), and the clients that use them.
//!
//! The token names its source ([`crate::auth::CredentialSource`]); [`credentials`]
//! turns it into credentials (inline, STS web identity, registry exchange) and
//! [`clients`] keeps one S3 client per credential set. Nothing here reads the
//! environment, a profile or instance metadata.

pub(crate) mod clients;
pub(crate) mod credentials;

pub(crate) use clients::{Aws, AwsSession};
pub(crate) use credentials::CredentialError;
