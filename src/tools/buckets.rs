//! The bucket tools. `bucket_list` answers from the token alone.

use serde_json::{Value, json};

use crate::auth::AuthContext;

/// The structured result of `bucket_list`: the token's buckets with the S3
/// permissions the token grants on them (Quilt grants permissions across all of a
/// token's buckets).
pub fn bucket_list(ctx: &AuthContext) -> Value {
    let c = &ctx.claims;
    let mut seen: Vec<&str> = Vec::new();
    let buckets: Vec<Value> = c
        .buckets
        .iter()
        .filter(|b| {
            let new = !seen.contains(&b.as_str());
            seen.push(b);
            new
        })
        .map(|name| json!({"name": name, "permissions": c.permissions}))
        .collect();
    json!({
        "buckets": buckets,
        "count": buckets.len(),
        "all_buckets": c.buckets.iter().any(|b| b == "*"),
        "level": c.level,
    })
}
