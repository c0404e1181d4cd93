//! What one caller (one token) may hold at once (docs/reference.md, HTTP): calls in
//! flight, the memory its request bodies will cost once parsed, and, with
//! `--rate-limit`, calls per second.
//!
//! Callers are told apart by token fingerprint. Their state lives in one map under a
//! short lock; a caller with nothing in flight whose bucket has refilled is forgotten
//! when the map grows, so the map stays as large as the set of active callers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Calls one token may have in flight at once (docs/reference.md, HTTP).
pub const CALLS_PER_TOKEN: usize = 16;
/// The estimated parse cost of the request bodies one token may have in flight; a
/// body that would cost more on its own is refused (413).
pub const BODY_BUDGET_PER_TOKEN: usize = 64 * 1024 * 1024;
/// Estimated memory per JSON value of a request body once parsed: rmcp first buffers
/// the message untyped, then builds the typed request and the tool's arguments
/// (measured: about 280 bytes per value of a body of `[]`s). A 4 MiB body of
/// ordinary arguments (say 50,000 package entries) costs well under the budget.
pub const BYTES_PER_JSON_VALUE: usize = 256;

/// A caller's admission state.
struct Caller {
    /// One permit per call in flight.
    calls: Arc<Semaphore>,
    /// Permits in KiB of estimated body parse cost.
    body_budget: Arc<Semaphore>,
    bucket: Mutex<Bucket>,
}

/// A token bucket: `rate` calls per second, bursts of up to `rate` calls.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
    /// Whether the last call was refused: the first refusal of a burst is logged.
    limited: bool,
}

/// Why a call was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Over `--rate-limit`; retry after this many seconds. `first` is true for the
    /// first refusal of a burst (the one that is logged).
    RateLimited { retry_after: u64, first: bool },
    /// All of the caller's call slots stayed taken for the whole wait.
    Busy,
}

/// The admission state of every caller.
pub struct Callers {
    callers: Mutex<HashMap<String, Arc<Caller>>>,
    /// Map size above which idle callers are forgotten (grows with the active set).
    sweep_at: Mutex<usize>,
    calls_per_token: usize,
    body_budget_kib: usize,
    rate: Option<f64>,
}

/// A call slot, held until the call's handler and its response are both done.
#[derive(Clone)]
pub struct CallSlot(#[allow(dead_code)] Arc<(OwnedSemaphorePermit, crate::metrics::Open)>);

impl CallSlot {
    fn new(permit: OwnedSemaphorePermit) -> CallSlot {
        CallSlot(Arc::new((permit, crate::metrics::Open::call())))
    }
}

/// A share of a caller's body budget, held like a [`CallSlot`].
#[derive(Clone)]
pub struct BodyShare(#[allow(dead_code)] Arc<OwnedSemaphorePermit>);

const MIN_SWEEP: usize = 1024;

impl Callers {
    /// `rate`: calls per second per token, `None` for no rate limit.
    pub fn new(calls_per_token: usize, body_budget: usize, rate: Option<u32>) -> Callers {
        Callers {
            callers: Mutex::new(HashMap::new()),
            sweep_at: Mutex::new(MIN_SWEEP),
            calls_per_token: calls_per_token.max(1),
            body_budget_kib: (body_budget / 1024).max(1),
            rate: rate.filter(|r| *r > 0).map(f64::from),
        }
    }

    fn caller(&self, fingerprint: &str) -> Arc<Caller> {
        let mut callers = self.callers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(caller) = callers.get(fingerprint) {
            return caller.clone();
        }
        let mut sweep_at = self.sweep_at.lock().unwrap_or_else(|p| p.into_inner());
        if callers.len() >= *sweep_at {
            let now = Instant::now();
            callers.retain(|_, c| Arc::strong_count(c) > 1 || !self.idle(c, now));
            *sweep_at = (callers.len() * 2).max(MIN_SWEEP);
        }
        drop(sweep_at);
        let caller = Arc::new(Caller {
            calls: Arc::new(Semaphore::new(self.calls_per_token)),
            body_budget: Arc::new(Semaphore::new(self.body_budget_kib)),
            bucket: Mutex::new(Bucket {
                tokens: self.rate.unwrap_or(0.0),
                updated: Instant::now(),
                limited: false,
            }),
        });
        callers.insert(fingerprint.to_owned(), caller.clone());
        caller
    }

    /// Nothing in flight and a full bucket: forgetting the caller changes nothing.
    fn idle(&self, caller: &Caller, now: Instant) -> bool {
        let calls_free = caller.calls.available_permits() == self.calls_per_token;
        let refilled = self.rate.is_none_or(|_| {
            let bucket = caller.bucket.lock().unwrap_or_else(|p| p.into_inner());
            now.duration_since(bucket.updated) > Duration::from_secs(1)
        });
        calls_free && refilled
    }

    /// Admits a call of the caller `fingerprint`: takes one from its bucket (with
    /// `--rate-limit`), then waits at most `wait` for one of its call slots.
    pub async fn admit(&self, fingerprint: &str, wait: Duration) -> Result<CallSlot, Refusal> {
        let caller = self.caller(fingerprint);
        if let Some(rate) = self.rate {
            let mut bucket = caller.bucket.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let elapsed = now.duration_since(bucket.updated).as_secs_f64();
            bucket.tokens = (bucket.tokens + elapsed * rate).min(rate);
            bucket.updated = now;
            if bucket.tokens >= 1.0 {
                bucket.tokens -= 1.0;
                bucket.limited = false;
            } else {
                let first = !bucket.limited;
                bucket.limited = true;
                let seconds = ((1.0 - bucket.tokens) / rate).ceil();
                // At least 1 s: `Retry-After` counts whole seconds.
                let retry_after = if seconds >= 1.0 { seconds as u64 } else { 1 };
                return Err(Refusal::RateLimited { retry_after, first });
            }
        }
        let calls = caller.calls.clone();
        drop(caller);
        match calls.clone().try_acquire_owned() {
            Ok(permit) => Ok(CallSlot::new(permit)),
            Err(_) => match tokio::time::timeout(wait, calls.acquire_owned()).await {
                Ok(Ok(permit)) => Ok(CallSlot::new(permit)),
                _ => Err(Refusal::Busy),
            },
        }
    }

    /// Waits for `cost` bytes of the caller's body budget (all of it when `cost` is
    /// larger), at most `wait`.
    pub async fn body_share(
        &self,
        fingerprint: &str,
        cost: usize,
        wait: Duration,
    ) -> Result<BodyShare, Refusal> {
        let budget = self.caller(fingerprint).body_budget.clone();
        let kib = u32::try_from((cost / 1024).clamp(1, self.body_budget_kib)).unwrap_or(u32::MAX);
        match tokio::time::timeout(wait, budget.acquire_many_owned(kib)).await {
            Ok(Ok(permit)) => Ok(BodyShare(Arc::new(permit))),
            _ => Err(Refusal::Busy),
        }
    }

    /// Callers known right now (for tests).
    #[cfg(test)]
    fn known(&self) -> usize {
        self.callers.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// The estimated memory a JSON body costs once parsed: its bytes plus
/// [`BYTES_PER_JSON_VALUE`] per value (containers, and one per element or member
/// separator). One pass, no allocation; string contents are skipped.
pub fn parse_cost(bytes: &[u8]) -> usize {
    let mut values = 1usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' | b',' => values += 1,
            _ => {}
        }
    }
    bytes
        .len()
        .saturating_add(values.saturating_mul(BYTES_PER_JSON_VALUE))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn parse_cost_counts_values_not_string_contents() {
        let v = BYTES_PER_JSON_VALUE;
        let cases: &[(&str, usize)] = &[
            ("", 1),
            ("1", 1),
            ("[]", 2),
            ("[[],[],[]]", 7),
            (r#"{"a":1,"b":[1,2]}"#, 5),
            (r#"{"a":"[,{,\",["}"#, 2),
            (r#""\\",[""#, 3),
        ];
        for (text, values) in cases {
            assert_eq!(
                parse_cost(text.as_bytes()),
                text.len() + values * v,
                "{text}"
            );
        }
    }

    #[tokio::test]
    async fn a_caller_gets_its_slots_and_waits_for_more() {
        let callers = Callers::new(2, 1024 * 1024, None);
        let a = callers.admit("a", Duration::ZERO).await.unwrap();
        let _b = callers.admit("a", Duration::ZERO).await.unwrap();
        assert_eq!(
            callers.admit("a", Duration::from_millis(10)).await.err(),
            Some(Refusal::Busy)
        );
        // Another caller has its own slots.
        assert!(callers.admit("b", Duration::ZERO).await.is_ok());
        // A slot freed while waiting is taken.
        let waiting = callers.admit("a", Duration::from_secs(5));
        let free = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(a);
        };
        let (slot, ()) = tokio::join!(waiting, free);
        assert!(slot.is_ok());
    }

    #[tokio::test]
    async fn body_shares_are_bounded_by_the_budget() {
        let callers = Callers::new(16, 1024 * 1024, None);
        let big = callers
            .body_share("a", 10 * 1024 * 1024, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(
            callers
                .body_share("a", 2048, Duration::from_millis(10))
                .await
                .err(),
            Some(Refusal::Busy)
        );
        drop(big);
        assert!(callers.body_share("a", 2048, Duration::ZERO).await.is_ok());
    }

    #[tokio::test]
    async fn the_rate_limit_refuses_a_burst_once_logged_and_refills() {
        let callers = Callers::new(100, 1024 * 1024, Some(5));
        let mut slots = Vec::new();
        for _ in 0..5 {
            slots.push(callers.admit("a", Duration::ZERO).await.unwrap());
        }
        assert_eq!(
            callers.admit("a", Duration::ZERO).await.err(),
            Some(Refusal::RateLimited {
                retry_after: 1,
                first: true
            })
        );
        assert_eq!(
            callers.admit("a", Duration::ZERO).await.err(),
            Some(Refusal::RateLimited {
                retry_after: 1,
                first: false
            })
        );
        // Another token is not limited by the first one's burst.
        assert!(callers.admit("b", Duration::ZERO).await.is_ok());
        // 0.45 s refills two calls; the next refusal starts a new burst, logged again.
        tokio::time::sleep(Duration::from_millis(450)).await;
        assert!(callers.admit("a", Duration::ZERO).await.is_ok());
        assert!(callers.admit("a", Duration::ZERO).await.is_ok());
        assert!(matches!(
            callers.admit("a", Duration::ZERO).await,
            Err(Refusal::RateLimited { first: true, .. })
        ));
    }

    #[tokio::test]
    async fn idle_callers_are_forgotten_when_the_map_grows() {
        let callers = Callers::new(4, 1024 * 1024, None);
        let held = callers.admit("held", Duration::ZERO).await.unwrap();
        for i in 0..MIN_SWEEP + 10 {
            let _ = callers
                .admit(&format!("t{i}"), Duration::ZERO)
                .await
                .unwrap();
        }
        assert!(callers.known() < MIN_SWEEP, "{}", callers.known());
        // The caller with a call in flight is kept: its slots still count.
        assert_eq!(callers.caller("held").calls.available_permits(), 3);
        drop(held);
    }
}
