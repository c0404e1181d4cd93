//! The layering rule of ARCHITECTURE.md, kept: a module of `src/` may name only the
//! modules of lower layers (`crate::…` in code, comments aside). An upward edge, or an
//! edge between two modules of one layer, fails with the line that makes it.

use std::path::Path;

/// Layers from the bottom up; a module may use only modules of lower layers.
const LAYERS: &[&[&str]] = &[
    &["error", "metrics"],
    &["time"],
    &["config"],
    &["logging", "quilt"],
    &["auth"],
    &["aws"],
    &["tools"],
    &["server"],
    &["http", "stdio"],
    &["status", "setup"],
];

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The `crate::NAME` paths of a line of code.
fn crate_paths(line: &str) -> Vec<&str> {
    line.match_indices("crate::")
        .filter(|(at, _)| {
            // `crate::` itself, not the end of another identifier.
            !line[..*at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
        })
        .map(|(at, m)| {
            let rest = &line[at + m.len()..];
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect()
}

#[test]
fn modules_use_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    let mut modules_seen = Vec::new();
    for file in files {
        let relative = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let module = relative
            .split('/')
            .next()
            .unwrap()
            .trim_end_matches(".rs")
            .to_owned();
        if module == "lib" || module == "main" {
            continue;
        }
        let Some(own) = layer(&module) else {
            violations.push(format!(
                "{relative}: module `{module}` has no layer in LAYERS"
            ));
            continue;
        };
        modules_seen.push(module.clone());
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            for target in crate_paths(code) {
                let Some(theirs) = layer(target) else {
                    continue; // a root item such as `crate::VERSION`
                };
                if target != module && theirs >= own {
                    violations.push(format!(
                        "{relative}:{}: `{module}` uses `{target}`, which is not below it: {}",
                        n + 1,
                        code.trim()
                    ));
                }
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
    // Every layer names modules that exist, so the rule cannot go stale quietly.
    for module in LAYERS.iter().flat_map(|l| l.iter()) {
        assert!(
            modules_seen.iter().any(|m| m == module),
            "LAYERS names `{module}`, which src/ does not have"
        );
    }
}

#[test]
fn the_path_reader_finds_crate_paths_only() {
    assert_eq!(
        crate_paths("use crate::auth::{A, B}; let x = crate::time::now();"),
        ["auth", "time"]
    );
    assert!(crate_paths("use rmcp_crate::x; // notcrate::y").is_empty());
}
