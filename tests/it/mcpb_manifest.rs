//! The MCP Bundle manifest (packaging/mcpb/manifest.json) against the server itself:
//! its tool list is the server's (regenerate it with `scripts/mcpb-tools`), its version
//! is the crate's, and every setting it asks for reaches the server as a SPEC §3
//! variable.
use std::collections::BTreeSet;

use serde_json::Value;

fn manifest() -> Value {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/mcpb/manifest.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test]
async fn manifest_lists_every_tool_the_server_serves() {
    let server = crate::common::Server::spawn(&[]).await;
    let mut served: Vec<(String, String)> = server
        .client
        .list_all_tools()
        .await
        .unwrap()
        .iter()
        .map(|t| {
            (
                t.name.to_string(),
                t.description.as_deref().unwrap_or("").to_owned(),
            )
        })
        .collect();
    server.stop().await;
    served.sort();

    let manifest = manifest();
    let listed: Vec<(String, String)> = manifest["tools"]
        .as_array()
        .expect("a tools array")
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_owned(),
                t["description"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert!(!served.is_empty());
    assert_eq!(
        listed, served,
        "packaging/mcpb/manifest.json lists other tools than the server: run scripts/mcpb-tools"
    );
    assert_eq!(
        manifest["version"],
        env!("CARGO_PKG_VERSION"),
        "packaging/mcpb/manifest.json: version"
    );
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
