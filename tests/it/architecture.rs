//! The layering rule of ARCHITECTURE.md, kept: a module of `src/` may name only the
//! modules of lower layers (`crate::…` in code, comments aside). An upward edge, or an
//! edge between two modules of one layer, fails with the line that makes it. A module
//! names no item of the crate root either (`crate::VERSION`): everything it uses has a
//! layer. Inside a module, its files form no cycle: two sibling files (not `mod.rs`,
//! the module's face) never use each other, directly or round a longer loop.

use std::path::Path;

/// Layers from the bottom up; a module may use only modules of lower layers.
const LAYERS: &[&[&str]] = &[
    &["version", "error", "metrics"],
    &["time", "s3"],
    &["config"],
    &["logging", "quilt"],
    &["auth"],
    &["registry"],
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
                    violations.push(format!(
                        "{relative}:{}: `{module}` names `crate::{target}`, an item of the crate root with no layer: {}",
                        n + 1,
                        code.trim()
                    ));
                    continue;
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

/// Cycles between files that are known and being removed: each must still exist (so
/// the list cannot go stale quietly); delete its line once the cycle is gone.
const KNOWN_FILE_CYCLES: &[&[&str]] = &[];

/// The code of a file without its comment lines, joined, so that a `use` spread over
/// lines reads as one.
fn code_of(text: &str) -> String {
    text.lines()
        .map(str::trim_start)
        .filter(|line| !line.starts_with("//"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The first path segments after each `prefix` in `code`: `prefix::a::…` gives `a`,
/// `prefix::{a::x, b, c::{…}}` gives `a`, `b`, `c`.
fn segments_after<'a>(code: &'a str, prefix: &str) -> Vec<&'a str> {
    let ident = |text: &'a str| {
        let text = text.trim_start();
        let end = text
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(text.len());
        &text[..end]
    };
    let mut out = Vec::new();
    for (at, m) in code.match_indices(prefix) {
        if code[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
        {
            continue;
        }
        let rest = &code[at + m.len()..];
        let Some(group) = rest.strip_prefix('{') else {
            out.push(ident(rest));
            continue;
        };
        // The top-level items of the brace group.
        let (mut depth, mut start) = (0usize, 0usize);
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    out.push(ident(&group[start..i]));
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    out.push(ident(&group[start..i]));
                    start = i + 1;
                }
                _ => {}
            }
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

/// The sibling files each file of `src/` uses: `super::file` from a file, and
/// `crate::module::file` from anywhere in that module; `mod.rs` files are left out.
fn file_edges(
    src: &Path,
) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let relative = |f: &Path| f.strip_prefix(src).unwrap().to_string_lossy().into_owned();
    let mut edges = std::collections::BTreeMap::new();
    for file in &files {
        let name = relative(file);
        let Some((module, stem)) = name.rsplit_once('/') else {
            continue; // a module that is one file
        };
        if stem == "mod.rs" {
            continue;
        }
        let sibling = |s: &str| {
            let candidate = format!("{module}/{s}.rs");
            (s != "mod" && files.iter().any(|f| relative(f) == candidate)).then_some(candidate)
        };
        let code = code_of(&std::fs::read_to_string(file).unwrap());
        let mut used = std::collections::BTreeSet::new();
        let prefixes = [
            "super::".to_owned(),
            format!("crate::{}::", module.replace('/', "::")),
        ];
        for prefix in &prefixes {
            for segment in segments_after(&code, prefix) {
                if let Some(target) = sibling(segment).filter(|t| *t != name) {
                    used.insert(target);
                }
            }
        }
        edges.insert(name, used);
    }
    edges
}

/// Every cycle of `edges`, each as its sorted files, once.
fn cycles(
    edges: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
) -> std::collections::BTreeSet<Vec<String>> {
    fn walk(
        node: &str,
        edges: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
        path: &mut Vec<String>,
        found: &mut std::collections::BTreeSet<Vec<String>>,
    ) {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut cycle = path[at..].to_vec();
            cycle.sort();
            found.insert(cycle);
            return;
        }
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            walk(next, edges, path, found);
        }
        path.pop();
    }
    let mut found = std::collections::BTreeSet::new();
    for node in edges.keys() {
        walk(node, edges, &mut Vec::new(), &mut found);
    }
    found
}

#[test]
fn files_of_a_module_form_no_cycle() {
    let edges = file_edges(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(
        edges.values().any(|used| !used.is_empty()),
        "no edge between files found: the reader is broken"
    );
    let found = cycles(&edges);
    let known: std::collections::BTreeSet<Vec<String>> = KNOWN_FILE_CYCLES
        .iter()
        .map(|c| {
            let mut c: Vec<String> = c.iter().map(|s| (*s).to_owned()).collect();
            c.sort();
            c
        })
        .collect();
    let new: Vec<_> = found.difference(&known).collect();
    assert!(new.is_empty(), "files that use each other: {new:?}");
    let gone: Vec<_> = known.difference(&found).collect();
    assert!(
        gone.is_empty(),
        "KNOWN_FILE_CYCLES lists cycles that are gone, delete them: {gone:?}"
    );
}

#[test]
fn the_file_reader_sees_uses_and_cycles() {
    let code = code_of(
        "use super::{\n    a::X,\n    b,\n    c::{d, e},\n};\n// super::commented\nlet y = super::f::g(); not_super::h;",
    );
    assert_eq!(segments_after(&code, "super::"), ["a", "b", "c", "f"]);
    let edge = |a: &str, b: &[&str]| {
        (
            a.to_owned(),
            b.iter()
                .map(|s| (*s).to_owned())
                .collect::<std::collections::BTreeSet<_>>(),
        )
    };
    let graph = [
        edge("m/a.rs", &["m/b.rs"]),
        edge("m/b.rs", &["m/c.rs"]),
        edge("m/c.rs", &["m/a.rs"]),
        edge("m/d.rs", &["m/a.rs"]),
    ]
    .into_iter()
    .collect();
    let found = cycles(&graph);
    assert_eq!(
        found.into_iter().collect::<Vec<_>>(),
        [vec![
            "m/a.rs".to_owned(),
            "m/b.rs".to_owned(),
            "m/c.rs".to_owned()
        ]]
    );
}
