//! Prometheus metrics (`serve --http ADDR --metrics ADDR`; docs/reference.md, HTTP).
//!
//! Off unless [`enable`] was called: every hook below is then one atomic load and
//! nothing else. Names follow OpenTelemetry's MCP semantic conventions where they have
//! one (`mcp.server.operation.duration` → `mcp_server_operation_duration_seconds`
//! with `mcp_method_name`, `gen_ai_tool_name` and `error_type`); the rest are
//! `quilt_mcp_*`. Label values are the server's own codes (tool names, outcomes,
//! reason codes, service names), never anything a caller chose, so every family
//! stays small.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

type Labels<const N: usize> = [(&'static str, String); N];

/// Every metric the server keeps.
struct Metrics {
    registry: Registry,
    operation_duration: Family<Labels<3>, Histogram, fn() -> Histogram>,
    tool_calls: Family<Labels<2>, Counter>,
    auth_failures: Family<Labels<1>, Counter>,
    upstream_duration: Family<Labels<2>, Histogram, fn() -> Histogram>,
    credential_cache: Family<Labels<1>, Counter>,
    open_connections: Gauge,
    calls_in_flight: Gauge,
    rate_limited: Counter,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// 1 ms to ~65 s.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::default();
        let operation_duration: Family<Labels<3>, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(duration_histogram);
        registry.register_with_unit(
            "mcp_server_operation_duration",
            "MCP request duration as observed on the server, by method, tool and error type (empty when the call succeeded)",
            Unit::Seconds,
            operation_duration.clone(),
        );
        let tool_calls = Family::<Labels<2>, Counter>::default();
        registry.register(
            "quilt_mcp_tool_calls",
            "Tool calls by tool and outcome (ok, error, denied, unauthorized)",
            tool_calls.clone(),
        );
        let auth_failures = Family::<Labels<1>, Counter>::default();
        registry.register(
            "quilt_mcp_auth_failures",
            "Requests refused for their token, by reason code",
            auth_failures.clone(),
        );
        let upstream_duration: Family<Labels<2>, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(duration_histogram);
        registry.register_with_unit(
            "quilt_mcp_upstream_request_duration",
            "Requests to S3, STS and the Quilt registry, by service and outcome (ok, error)",
            Unit::Seconds,
            upstream_duration.clone(),
        );
        let credential_cache = Family::<Labels<1>, Counter>::default();
        registry.register(
            "quilt_mcp_credential_cache_requests",
            "Lookups in the per-token AWS credential cache, by result (hit, miss)",
            credential_cache.clone(),
        );
        let open_connections = Gauge::default();
        registry.register(
            "quilt_mcp_http_open_connections",
            "HTTP connections open now",
            open_connections.clone(),
        );
        let calls_in_flight = Gauge::default();
        registry.register(
            "quilt_mcp_http_calls_in_flight",
            "Authorized MCP requests whose handler or answer is not done yet",
            calls_in_flight.clone(),
        );
        let rate_limited = Counter::default();
        registry.register(
            "quilt_mcp_http_rate_limited",
            "Requests refused with 429 by --rate-limit",
            rate_limited.clone(),
        );
        Metrics {
            registry,
            operation_duration,
            tool_calls,
            auth_failures,
            upstream_duration,
            credential_cache,
            open_connections,
            calls_in_flight,
            rate_limited,
        }
    }
}

/// Turns metrics on (idempotent).
pub fn enable() {
    let _ = METRICS.get_or_init(Metrics::new);
}

/// Whether metrics are on.
pub fn enabled() -> bool {
    METRICS.get().is_some()
}

/// The Prometheus text of every metric; empty when metrics are off.
pub fn render() -> String {
    let mut text = String::new();
    if let Some(m) = METRICS.get()
        && encode(&mut text, &m.registry).is_err()
    {
        text.clear();
    }
    text
}

/// A `tools/call` ended with `outcome` (`ok`, `error`, `denied`, `unauthorized`)
/// after `duration`.
pub fn tool_call(tool: &str, outcome: &str, duration: Duration) {
    if let Some(m) = METRICS.get() {
        let error_type = if outcome == "ok" { "" } else { outcome };
        m.operation_duration
            .get_or_create(&[
                ("mcp_method_name", "tools/call".to_owned()),
                ("gen_ai_tool_name", tool.to_owned()),
                ("error_type", error_type.to_owned()),
            ])
            .observe(duration.as_secs_f64());
        m.tool_calls
            .get_or_create(&[
                ("gen_ai_tool_name", tool.to_owned()),
                ("outcome", outcome.to_owned()),
            ])
            .inc();
    }
}

/// A token was refused for `reason` (a reason code).
pub fn auth_failure(reason: &str) {
    if let Some(m) = METRICS.get() {
        m.auth_failures
            .get_or_create(&[("reason", reason.to_owned())])
            .inc();
    }
}

/// A request to `service` (`s3`, `sts`, `registry`) took `duration`.
pub fn upstream(service: &'static str, ok: bool, duration: Duration) {
    if let Some(m) = METRICS.get() {
        let outcome = if ok { "ok" } else { "error" };
        m.upstream_duration
            .get_or_create(&[
                ("service", service.to_owned()),
                ("outcome", outcome.to_owned()),
            ])
            .observe(duration.as_secs_f64());
    }
}

/// `request`, timed as a request to `service` (its outcome: whether it completed).
pub async fn timed<T, E>(
    service: &'static str,
    request: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let started = Instant::now();
    let result = request.await;
    upstream(service, result.is_ok(), started.elapsed());
    result
}

/// A lookup in the credential cache.
pub fn credential_cache(hit: bool) {
    if let Some(m) = METRICS.get() {
        let result = if hit { "hit" } else { "miss" };
        m.credential_cache
            .get_or_create(&[("result", result.to_owned())])
            .inc();
    }
}

/// A request over `--rate-limit` was refused.
pub fn rate_limited() {
    if let Some(m) = METRICS.get() {
        m.rate_limited.inc();
    }
}

/// Counts while alive: an open connection or a call in flight.
#[derive(Debug)]
pub struct Open(Option<&'static Gauge>);

impl Open {
    /// An open HTTP connection, until dropped.
    pub fn connection() -> Open {
        Open::of(METRICS.get().map(|m| &m.open_connections))
    }

    /// A call in flight, until dropped.
    pub fn call() -> Open {
        Open::of(METRICS.get().map(|m| &m.calls_in_flight))
    }

    fn of(gauge: Option<&'static Gauge>) -> Open {
        if let Some(g) = gauge {
            g.inc();
        }
        Open(gauge)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        if let Some(g) = self.0 {
            g.dec();
        }
    }
}

/// An AWS SDK interceptor that times each request attempt to `service`:
/// `.interceptor(crate::metrics::SdkTimer("s3"))` on a client's config.
#[derive(Debug, Clone, Copy)]
pub struct SdkTimer(pub &'static str);

/// When an attempt started, kept in the attempt's config bag.
#[derive(Debug, Clone)]
struct AttemptStarted(Instant);

impl aws_smithy_types::config_bag::Storable for AttemptStarted {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

impl aws_sdk_s3::config::Intercept for SdkTimer {
    fn name(&self) -> &'static str {
        "quilt_mcp_metrics"
    }

    fn read_before_attempt(
        &self,
        _context: &aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _components: &aws_sdk_s3::config::RuntimeComponents,
        cfg: &mut aws_sdk_s3::config::ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        if enabled() {
            cfg.interceptor_state()
                .store_put(AttemptStarted(Instant::now()));
        }
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &aws_sdk_s3::config::interceptors::FinalizerInterceptorContextRef<'_>,
        _components: &aws_sdk_s3::config::RuntimeComponents,
        cfg: &mut aws_sdk_s3::config::ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        if let Some(started) = cfg.load::<AttemptStarted>() {
            let ok = context
                .response()
                .is_some_and(|r| r.status().as_u16() < 400);
            upstream(self.0, ok, started.0.elapsed());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn hooks_show_in_the_text_once_enabled() {
        enable();
        tool_call("auth_status", "ok", Duration::from_millis(3));
        tool_call("bucket_objects_list", "denied", Duration::from_millis(1));
        auth_failure("expired");
        credential_cache(false);
        {
            let _c = Open::call();
            let text = render();
            assert!(text.contains("quilt_mcp_http_calls_in_flight 1"), "{text}");
        }
        let text = render();
        for expected in [
            "mcp_server_operation_duration_seconds_count{mcp_method_name=\"tools/call\",gen_ai_tool_name=\"auth_status\",error_type=\"\"} 1",
            "quilt_mcp_tool_calls_total{gen_ai_tool_name=\"bucket_objects_list\",outcome=\"denied\"} 1",
            "quilt_mcp_auth_failures_total{reason=\"expired\"} 1",
            "quilt_mcp_credential_cache_requests_total{result=\"miss\"} 1",
            "quilt_mcp_http_calls_in_flight 0",
        ] {
            assert!(text.contains(expected), "{expected}\n{text}");
        }
    }
}
