//! AWS clients built from explicit configuration only, and the per-token cache of
//! credentials and S3 clients.
//!
//! One HTTPS client (one connection pool) serves every S3 and STS client. Each
//! credential set gets one S3 client, kept until five minutes before its credentials
//! expire; concurrent first calls for a token share one STS or registry request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::config::{
    BehaviorVersion, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    retry::RetryConfig, timeout::TimeoutConfig,
};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

use super::credentials::{self, AwsCredentials, CredentialError, Exchanges};
use crate::auth::AuthContext;
use crate::config::Config;
use crate::registry::RegistryClient;
use crate::time::now_unix;

/// Credentials are refreshed this long before they expire.
pub(crate) const REFRESH_MARGIN_SECS: i64 = 300;
/// At most this many tokens' sessions are kept.
pub(crate) const MAX_CACHED_TOKENS: usize = 1024;

/// Credentials and the S3 client built on them.
#[derive(Debug)]
pub(crate) struct AwsSession {
    /// The credentials (secrets redacted in `Debug`).
    pub credentials: AwsCredentials,
    /// The S3 client, reused across calls.
    pub s3: aws_sdk_s3::Client,
}

impl AwsSession {
    fn fresh(&self, now: i64) -> bool {
        match self.credentials.expires_at {
            None => true,
            // Inline credentials cannot be refreshed: use them to the end.
            Some(exp) if self.credentials.source == "inline" => now < exp,
            Some(exp) => now < exp - REFRESH_MARGIN_SECS,
        }
    }
}

struct Slot {
    token_expires_at: i64,
    session: tokio::sync::Mutex<Option<Arc<AwsSession>>>,
}

/// Builds clients and keeps sessions per token.
pub(crate) struct Aws {
    http: aws_sdk_s3::config::SharedHttpClient,
    exchanges: Exchanges,
    default_region: String,
    s3_endpoint: Option<String>,
    force_path_style: bool,
    slots: Mutex<HashMap<[u8; 32], Arc<Slot>>>,
}

impl std::fmt::Debug for Aws {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aws")
            .field("default_region", &self.default_region)
            .field("s3_endpoint", &self.s3_endpoint)
            .finish_non_exhaustive()
    }
}

fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .operation_attempt_timeout(Duration::from_secs(30))
        .operation_timeout(Duration::from_secs(90))
        .build()
}

impl Aws {
    /// Clients for `config`. No network call happens here.
    pub(crate) fn new(config: &Config) -> Aws {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
            .build_https();
        let mut sts = aws_sdk_sts::Config::builder()
            .behavior_version(aws_sdk_sts::config::BehaviorVersion::latest())
            .region(aws_sdk_sts::config::Region::new(config.aws_region.clone()))
            .http_client(http.clone())
            .timeout_config(timeouts())
            .interceptor(crate::metrics::SdkTimer("sts"))
            .retry_config(aws_sdk_sts::config::retry::RetryConfig::standard().with_max_attempts(3));
        if let Some(endpoint) = config
            .endpoint_url_sts
            .as_ref()
            .or(config.endpoint_url.as_ref())
        {
            sts = sts.endpoint_url(endpoint);
        }
        Aws {
            exchanges: Exchanges::new(
                sts.build(),
                config
                    .registry_url
                    .as_deref()
                    .map(|url| Arc::new(RegistryClient::new(url))),
            ),
            http,
            default_region: config.aws_region.clone(),
            s3_endpoint: config
                .endpoint_url_s3
                .clone()
                .or_else(|| config.endpoint_url.clone()),
            force_path_style: config.s3_force_path_style,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// The Quilt registry (`QUILT_REGISTRY_URL`), when one is configured: one client
    /// for the credential exchange and the search tools.
    pub(crate) fn registry(&self) -> Option<&RegistryClient> {
        self.exchanges.registry().map(|client| &**client)
    }

    /// The caller's session: cached credentials and S3 client, or new ones from the
    /// token's credential source. Concurrent callers with the same token wait for one
    /// exchange.
    pub(crate) async fn session(
        &self,
        ctx: &AuthContext,
    ) -> Result<Arc<AwsSession>, CredentialError> {
        let slot = self.slot(ctx);
        let mut guard = slot.session.lock().await;
        let now = now_unix();
        if let Some(session) = guard.as_ref()
            && session.fresh(now)
        {
            crate::metrics::credential_cache(true);
            return Ok(session.clone());
        }
        crate::metrics::credential_cache(false);
        let resolved = credentials::resolve(ctx, &self.exchanges, &self.default_region, now).await;
        match resolved {
            Ok(creds) => {
                tracing::info!(
                    event = "aws_credentials",
                    source = creds.source,
                    status = "ok",
                    expires_at = creds.expires_at.and_then(crate::time::rfc3339).unwrap_or_default(),
                    token_fingerprint = %ctx.token_info.fingerprint,
                );
                let session = Arc::new(AwsSession {
                    s3: self.s3_client(&creds),
                    credentials: creds,
                });
                *guard = Some(session.clone());
                Ok(session)
            }
            Err(error) => {
                let status = match &error {
                    CredentialError::Unauthorized(f) => f.reason.code(),
                    CredentialError::Tool(t) => t.code.as_str(),
                };
                tracing::warn!(
                    event = "aws_credentials",
                    source = ctx.aws.summary(&self.default_region).source,
                    status,
                    expires_at = "",
                    token_fingerprint = %ctx.token_info.fingerprint,
                    "AWS credentials unavailable: {error}"
                );
                Err(error)
            }
        }
    }

    fn slot(&self, ctx: &AuthContext) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = slots.get(ctx.token.digest()) {
            return slot.clone();
        }
        if slots.len() >= MAX_CACHED_TOKENS {
            let now = now_unix();
            slots.retain(|_, slot| slot.token_expires_at > now);
            if slots.len() >= MAX_CACHED_TOKENS {
                slots.retain(|_, slot| Arc::strong_count(slot) > 1);
            }
        }
        let slot = Arc::new(Slot {
            token_expires_at: ctx.expires_at,
            session: tokio::sync::Mutex::new(None),
        });
        slots.insert(*ctx.token.digest(), slot.clone());
        slot
    }

    /// An S3 client for `creds`, sharing the HTTPS connection pool.
    pub(crate) fn s3_client(&self, creds: &AwsCredentials) -> aws_sdk_s3::Client {
        let mut builder = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(creds.region.clone()))
            .credentials_provider(creds.to_sdk())
            .http_client(self.http.clone())
            .timeout_config(timeouts())
            .interceptor(crate::metrics::SdkTimer("s3"))
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .force_path_style(self.force_path_style);
        if let Some(endpoint) = &self.s3_endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        aws_sdk_s3::Client::from_conf(builder.build())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{QuiltClaims, Token};

    fn context(i: usize, expires_at: i64) -> AuthContext {
        let token = Token::new(&format!("token-{i}")).unwrap();
        AuthContext::for_test(
            token,
            &format!("user-{i}"),
            expires_at,
            QuiltClaims::default(),
        )
    }

    #[test]
    fn the_per_token_cache_is_bounded() {
        let aws = Aws::new(&Config::from_lookup(|_| None));
        let now = now_unix();
        // Tokens that expired are dropped first once the cache is full…
        for i in 0..MAX_CACHED_TOKENS {
            let _ = aws.slot(&context(i, now - 10));
        }
        let _ = aws.slot(&context(MAX_CACHED_TOKENS, now + 3600));
        assert_eq!(aws.slots.lock().unwrap().len(), 1);
        // …and live ones not in use when there is nothing else to drop.
        for i in 0..(MAX_CACHED_TOKENS * 2) {
            let _ = aws.slot(&context(10_000 + i, now + 3600));
            assert!(aws.slots.lock().unwrap().len() <= MAX_CACHED_TOKENS);
        }
        // The same token maps to the same slot (single flight).
        let a = aws.slot(&context(7, now + 3600));
        let b = aws.slot(&context(7, now + 3600));
        assert!(Arc::ptr_eq(&a, &b));
    }
}
