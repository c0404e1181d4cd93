//! Verified bearer tokens, remembered (docs/reference.md, HTTP): a token presented
//! again is not parsed, its signature not checked and its claims not decompressed
//! again; its times (`exp`, `nbf`, `iat`, with the leeway) are checked on every use
//! by the caller, so an expired token is refused even while it is remembered.
//!
//! Entries are keyed by the SHA-256 of the whole token, and a hit also compares the
//! token itself, so no two tokens are ever taken for one another. The cache is
//! bounded in entries and in bytes (the token and its decompressed claims): the least
//! recently used entries go first, and a context too large to keep is not kept (its
//! token is verified on each use, as without a cache).

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use lru::LruCache;

use super::{AuthContext, Token};

/// Most tokens remembered at once.
pub const MAX_VERIFIED_TOKENS: usize = 4096;
/// Most bytes (tokens and their claims, estimated) remembered at once.
pub const MAX_VERIFIED_BYTES: usize = 16 * 1024 * 1024;
/// The largest context remembered; a larger one is verified on each use.
pub const MAX_ENTRY_BYTES: usize = 128 * 1024;

struct Entry {
    ctx: Arc<AuthContext>,
    bytes: usize,
}

struct Inner {
    entries: LruCache<[u8; 32], Entry>,
    bytes: usize,
}

/// Verified contexts by token, bounded in entries and bytes.
pub struct VerifiedTokens {
    inner: Mutex<Inner>,
    max_bytes: usize,
    max_entry_bytes: usize,
}

impl std::fmt::Debug for VerifiedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.lock();
        f.debug_struct("VerifiedTokens")
            .field("entries", &inner.entries.len())
            .field("bytes", &inner.bytes)
            .finish()
    }
}

impl Default for VerifiedTokens {
    fn default() -> Self {
        VerifiedTokens::new(MAX_VERIFIED_TOKENS, MAX_VERIFIED_BYTES, MAX_ENTRY_BYTES)
    }
}

/// What a context costs to keep, estimated: the token (and the registry token) and
/// every string of the claims, plus a fixed part for the rest.
fn cost(ctx: &AuthContext) -> usize {
    let strings = |list: &[String]| list.iter().map(|s| s.len() + 24).sum::<usize>();
    let optional = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    1024 + ctx.token.len()
        + ctx.catalog_token.as_ref().map_or(0, Token::len)
        + strings(&ctx.claims.buckets)
        + strings(&ctx.claims.permissions)
        + strings(&ctx.claims.roles)
        + strings(&ctx.audience)
        + ctx.claims.scope.len()
        + optional(&ctx.subject)
        + optional(&ctx.issuer)
        + optional(&ctx.jti)
}

impl VerifiedTokens {
    /// A cache of at most `max_entries` contexts and `max_bytes` bytes, none larger
    /// than `max_entry_bytes`.
    pub fn new(max_entries: usize, max_bytes: usize, max_entry_bytes: usize) -> VerifiedTokens {
        VerifiedTokens {
            inner: Mutex::new(Inner {
                entries: LruCache::new(NonZeroUsize::new(max_entries).unwrap_or(NonZeroUsize::MIN)),
                bytes: 0,
            }),
            max_bytes,
            max_entry_bytes: max_entry_bytes.min(max_bytes),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The context verified for `token`, if it is remembered. Its times are not
    /// checked here: the caller checks them on every use.
    pub fn get(&self, token: &Token) -> Option<Arc<AuthContext>> {
        let mut inner = self.lock();
        let entry = inner.entries.get(token.digest())?;
        (entry.ctx.token.expose() == token.expose()).then(|| entry.ctx.clone())
    }

    /// Remembers `ctx` (verified just now) under its token, making room by dropping
    /// the least recently used entries; a context over the entry limit is not kept.
    pub fn insert(&self, ctx: Arc<AuthContext>) {
        let bytes = cost(&ctx);
        if bytes > self.max_entry_bytes {
            return;
        }
        let mut inner = self.lock();
        if let Some(old) = inner.entries.pop(ctx.token.digest()) {
            inner.bytes -= old.bytes;
        }
        while inner.bytes + bytes > self.max_bytes {
            match inner.entries.pop_lru() {
                Some((_, old)) => inner.bytes -= old.bytes,
                None => break,
            }
        }
        let key = *ctx.token.digest();
        if let Some((_, old)) = inner.entries.push(key, Entry { ctx, bytes }) {
            // The entry limit pushed out the least recently used one.
            inner.bytes -= old.bytes;
        }
        inner.bytes += bytes;
    }

    /// Forgets `token` (it failed a time check).
    pub fn remove(&self, token: &Token) {
        let mut inner = self.lock();
        if let Some(old) = inner.entries.pop(token.digest()) {
            inner.bytes -= old.bytes;
        }
    }

    /// Entries and bytes remembered now.
    pub fn len_and_bytes(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.entries.len(), inner.bytes)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::auth::QuiltClaims;

    fn context(text: &str, buckets: usize) -> Arc<AuthContext> {
        let token = Token::stripped(text).unwrap();
        let claims = QuiltClaims {
            buckets: (0..buckets).map(|i| format!("bucket-{i:06}")).collect(),
            ..QuiltClaims::default()
        };
        Arc::new(AuthContext::for_test(token, text, i64::MAX, claims))
    }

    #[test]
    fn a_token_finds_its_own_context_only() {
        let cache = VerifiedTokens::default();
        cache.insert(context("aaa.bbb.ccc", 1));
        let hit = cache.get(&Token::stripped("aaa.bbb.ccc").unwrap()).unwrap();
        assert_eq!(hit.subject.as_deref(), Some("aaa.bbb.ccc"));
        // The same prefix (the same fingerprint's first digits do not matter either:
        // the key is the whole digest and the token itself is compared).
        for other in ["aaa.bbb.cc", "aaa.bbb.cccd", "aaa.bbb.ccC", "aaa.bbb.ccc."] {
            assert!(
                cache.get(&Token::stripped(other).unwrap()).is_none(),
                "{other}"
            );
        }
        cache.remove(&Token::stripped("aaa.bbb.ccc").unwrap());
        assert!(
            cache
                .get(&Token::stripped("aaa.bbb.ccc").unwrap())
                .is_none()
        );
        assert_eq!(cache.len_and_bytes(), (0, 0));
    }

    #[test]
    fn the_cache_is_bounded_in_entries_and_bytes() {
        // Entries: the least recently used goes first.
        let cache = VerifiedTokens::new(3, usize::MAX, usize::MAX);
        for i in 0..3 {
            cache.insert(context(&format!("t{i}"), 0));
        }
        assert!(cache.get(&Token::stripped("t0").unwrap()).is_some());
        cache.insert(context("t3", 0));
        assert_eq!(cache.len_and_bytes().0, 3);
        assert!(cache.get(&Token::stripped("t1").unwrap()).is_none());
        assert!(cache.get(&Token::stripped("t0").unwrap()).is_some());

        // Bytes: a context of many buckets pushes out others, and one over the entry
        // limit is not kept at all.
        let small = cost(&context("s0", 0));
        let cache = VerifiedTokens::new(100, small * 4, small * 3);
        for i in 0..4 {
            cache.insert(context(&format!("s{i}"), 0));
        }
        assert_eq!(cache.len_and_bytes(), (4, small * 4));
        let big = context("big", 20);
        assert!(cost(&big) > small && cost(&big) <= small * 3);
        cache.insert(big);
        let (entries, bytes) = cache.len_and_bytes();
        assert!(bytes <= small * 4, "{bytes}");
        assert!(entries < 4 && cache.get(&Token::stripped("big").unwrap()).is_some());
        cache.insert(context("huge", 1000));
        assert!(cache.get(&Token::stripped("huge").unwrap()).is_none());
        assert!(cache.len_and_bytes().1 <= small * 4);

        // The same token inserted again replaces its entry.
        let cache = VerifiedTokens::default();
        cache.insert(context("again", 0));
        cache.insert(context("again", 0));
        assert_eq!(cache.len_and_bytes(), (1, cost(&context("again", 0))));
    }
}
