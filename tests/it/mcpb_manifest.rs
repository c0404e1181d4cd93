//! The MCP Bundle manifest (packaging/mcpb/manifest.json) against the server itself:
//! its `tools` are the server's `tools/list` (names and descriptions, by name) and its
//! `version` the crate's, written by this test (`QUILT_MCP_UPDATE_MANIFEST=1 cargo test
//! --test it mcpb_manifest`) and checked by it otherwise; every setting it asks for
//! reaches the server as one of its variables.
use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::{Value, json};

fn manifest_path() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/mcpb/manifest.json")
}

fn manifest() -> Value {
    serde_json::from_str(&std::fs::read_to_string(manifest_path()).unwrap()).unwrap()
}

/// The manifest's text as it should be: `manifest` with the server's `version` and
/// `tools`, two-space indented as the bundle tools write it.
fn regenerated(mut manifest: Value, version: &str, tools: &[rmcp::model::Tool]) -> String {
    let mut listed: Vec<Value> = tools
        .iter()
        .map(|t| json!({"name": t.name, "description": t.description.as_deref().unwrap_or("")}))
        .collect();
    listed.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    manifest["version"] = json!(version);
    manifest["tools"] = Value::Array(listed);
    serde_json::to_string_pretty(&manifest).unwrap() + "\n"
}

#[tokio::test]
async fn manifest_lists_every_tool_the_server_serves() {
    // Not read-only and with a registry (never contacted at start-up), so every tool is
    // listed.
    let server = crate::common::Server::spawn(&[
        ("QUILT_MCP_READ_ONLY", "false"),
        ("QUILT_REGISTRY_URL", "http://127.0.0.1:9"),
    ])
    .await;
    let version = server
        .client
        .peer_info()
        .and_then(|info| {
            info.server_info
                .as_ref()
                .map(|server| server.version.clone())
        })
        .unwrap();
    let tools = server.client.list_all_tools().await.unwrap();
    server.stop().await;
    assert!(!tools.is_empty());
    assert_eq!(version, env!("CARGO_PKG_VERSION"));

    let committed = std::fs::read_to_string(manifest_path()).unwrap();
    let current = regenerated(manifest(), &version, &tools);
    if std::env::var_os("QUILT_MCP_UPDATE_MANIFEST").is_some() {
        std::fs::write(manifest_path(), &current).unwrap();
        return;
    }
    assert!(
        committed == current,
        "packaging/mcpb/manifest.json lists other tools (or another version) than the server: \
         review, then rerun with QUILT_MCP_UPDATE_MANIFEST=1 cargo test --test it mcpb_manifest"
    );
}

/// The writer keeps everything but `version` and `tools` as it is, in its order.
#[test]
fn regenerating_touches_only_version_and_tools() {
    let before = manifest();
    let after: Value = serde_json::from_str(&regenerated(before.clone(), "9.9.9", &[])).unwrap();
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&before), keys(&after));
    for (key, value) in before.as_object().unwrap() {
        match key.as_str() {
            "version" => assert_eq!(after[key], "9.9.9"),
            "tools" => assert_eq!(after[key], json!([])),
            _ => assert_eq!(&after[key], value, "{key}"),
        }
    }
}

#[test]
fn every_bundle_setting_reaches_the_server() {
    let manifest = manifest();
    let server = &manifest["server"];
    assert_eq!(server["type"], "binary");
    let env = server["mcp_config"]["env"].as_object().unwrap();
    let asked: BTreeSet<&str> = manifest["user_config"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut used = BTreeSet::new();
    for (variable, value) in env {
        assert!(
            variable.starts_with("QUILT_") || variable == "MCP_ENHANCED_JWT_SECRET",
            "{variable} is not a quilt-mcp variable"
        );
        let key = value
            .as_str()
            .and_then(|v| v.strip_prefix("${user_config."))
            .and_then(|v| v.strip_suffix('}'))
            .unwrap_or_else(|| panic!("{variable}: {value} is not a user_config placeholder"));
        used.insert(key);
    }
    assert_eq!(
        asked, used,
        "user_config fields and mcp_config.env disagree"
    );
    for secret in ["token", "jwt_secret"] {
        assert_eq!(
            manifest["user_config"][secret]["sensitive"], true,
            "{secret} must be kept in the OS keychain"
        );
    }
    assert_eq!(manifest["user_config"]["token"]["required"], false);
}
