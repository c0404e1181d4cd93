//! The reference document, `docs/reference.md`, against the code: every part between
//! `<!-- generated: NAME -->` and `<!-- end: NAME -->` is written here from what the
//! code holds, and compared byte for byte with the committed file.
//!
//! - Commands: the binary's own `--help` of every command.
//! - Settings: every variable `Config::from_lookup` reads.
//! - Tools and Results: the server's `tools/list` (names, annotations, input and output
//!   schemas with their descriptions and bounds), each tool's toolset (what
//!   `QUILT_MCP_TOOLSETS` offers it under).
//! - Resources: the server's `resources/templates/list`.
//! - Errors: the -32001 reasons (`auth::Reason`), the -32003 reasons (the `DenyReason`
//!   enum of `src/tools/policy.rs`) and the tool error codes (the `ErrorCode` of every
//!   output schema).
//! - Logs: every `event = "…"` of a `tracing` macro in `src/`, with its level and fields.
//!
//! In the tables of settings, reasons and log events, the last column ("Meaning") is
//! prose that the code cannot hold: it is kept from the committed file, row by row, and
//! a new row without one fails until it is written.
//!
//! After a deliberate change: `cargo xtask codegen` (or
//! `QUILT_MCP_UPDATE_REFERENCE=1 cargo test --test it reference::`), then review the diff.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use quilt_mcp::auth::Reason;
use serde_json::{Map, Value};

const MEANING_TODO: &str = "(describe)";

fn reference_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/reference.md")
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The committed text between the markers of `name`, if any.
fn block<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let start = format!("<!-- generated: {name} -->\n");
    let end = format!("<!-- end: {name} -->");
    let from = text.find(&start)? + start.len();
    let to = from + text[from..].find(&end)?;
    Some(&text[from..to])
}

/// `text` with the block `name` replaced by `body`.
fn replace_block(text: &str, name: &str, body: &str) -> String {
    let start = format!("<!-- generated: {name} -->\n");
    let end = format!("<!-- end: {name} -->");
    let from = text
        .find(&start)
        .unwrap_or_else(|| panic!("docs/reference.md has no `{}`", start.trim()))
        + start.len();
    let to = from
        + text[from..]
            .find(&end)
            .unwrap_or_else(|| panic!("docs/reference.md has no `{end}`"));
    format!("{}{body}{}", &text[..from], &text[to..])
}

/// The "Meaning" cells of a committed table, by the first column's text.
fn meanings(block: Option<&str>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in block.unwrap_or("").lines() {
        let cells: Vec<&str> = line.split(" | ").collect();
        if cells.len() >= 2 && line.starts_with("| `") {
            let key = cells[0].trim_start_matches("| ").to_owned();
            let meaning = cells[cells.len() - 1].trim_end_matches(" |").to_owned();
            out.insert(key, meaning);
        }
    }
    out
}

/// A table whose last column is kept prose.
fn table(header: &[&str], rows: Vec<Vec<String>>, kept: &BTreeMap<String, String>) -> String {
    let mut out = format!(
        "| {} |\n|{}\n",
        header.join(" | "),
        "---|".repeat(header.len())
    );
    for mut row in rows {
        let meaning = kept
            .get(&row[0])
            .cloned()
            .unwrap_or_else(|| MEANING_TODO.to_owned());
        row.push(meaning);
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out
}

/// Markdown-safe text in one table cell.
fn cell(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

// ---------------------------------------------------------------------------------
// Commands

fn help(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_quilt-mcp"))
        .args(args)
        .arg("--help")
        .env_clear()
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?} --help");
    String::from_utf8(out.stdout).unwrap()
}

fn commands() -> String {
    let mut out = String::new();
    let top = help(&[]);
    out.push_str(&format!("### `quilt-mcp`\n\n```text\n{}```\n", top));
    let listed = top
        .split("Commands:\n")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .next()
        .unwrap();
    for line in listed.lines() {
        let name = line.split_whitespace().next().unwrap();
        if name == "help" {
            continue;
        }
        out.push_str(&format!(
            "\n### `quilt-mcp {name}`\n\n```text\n{}```\n",
            help(&[name])
        ));
    }
    out
}

// ---------------------------------------------------------------------------------
// Settings

fn settings(kept: &BTreeMap<String, String>) -> String {
    let read = Mutex::new(BTreeSet::new());
    let _ = quilt_mcp::Config::from_lookup(|name| {
        read.lock().unwrap().insert(name.to_owned());
        None
    });
    let rows = read
        .into_inner()
        .unwrap()
        .into_iter()
        .map(|name| vec![format!("`{name}`")])
        .collect();
    table(&["Variable", "Meaning"], rows, kept)
}

// ---------------------------------------------------------------------------------
// Tools and results

/// A schema's type, as a reader says it.
fn type_of(schema: &Value) -> String {
    if let Some(reference) = schema["$ref"].as_str() {
        return format!("`{}`", reference.rsplit('/').next().unwrap());
    }
    if let Some(choices) = schema["oneOf"].as_array().or(schema["anyOf"].as_array()) {
        let consts: Vec<String> = choices
            .iter()
            .filter_map(|c| c["const"].as_str().map(|c| format!("`{c}`")))
            .collect();
        if consts.len() == choices.len() {
            return consts.join(", ");
        }
        let types: Vec<String> = choices.iter().map(type_of).collect();
        return types.join(" or ");
    }
    if let Some(values) = schema["enum"].as_array() {
        return values
            .iter()
            .map(|v| format!("`{}`", v.as_str().unwrap_or("?")))
            .collect::<Vec<_>>()
            .join(", ");
    }
    let types: Vec<String> = match &schema["type"] {
        Value::String(t) => vec![t.clone()],
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .map(str::to_owned)
            .collect(),
        _ => vec!["any".to_owned()],
    };
    let nullable = schema["type"]
        .as_array()
        .is_some_and(|ts| ts.iter().any(|t| t == "null"));
    let mut text = types
        .iter()
        .map(|t| match t.as_str() {
            "array" => format!("array of {}", type_of(&schema["items"])),
            other => other.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" or ");
    if nullable {
        text.push_str(" or null");
    }
    text
}

/// `minimum`–`maximum`, lengths and item counts of a schema.
fn bounds(schema: &Value) -> String {
    let mut out = Vec::new();
    for (key, word) in [
        ("minimum", "≥"),
        ("maximum", "≤"),
        ("minLength", "length ≥"),
        ("maxLength", "length ≤"),
        ("minItems", "items ≥"),
        ("maxItems", "items ≤"),
    ] {
        if let Some(n) = schema.get(key) {
            out.push(format!("{word} {n}"));
        }
    }
    out.join(", ")
}

/// The rows of an object schema's properties: name, type, required, bounds, description.
fn properties(schema: &Value) -> Vec<Vec<String>> {
    let required: BTreeSet<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let empty = Map::new();
    schema["properties"]
        .as_object()
        .unwrap_or(&empty)
        .iter()
        .map(|(name, p)| {
            vec![
                format!("`{name}`"),
                type_of(p),
                if required.contains(name.as_str()) {
                    "yes".to_owned()
                } else {
                    "no".to_owned()
                },
                bounds(p),
                cell(p["description"].as_str().unwrap_or("")),
            ]
        })
        .collect()
}

fn rows(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut out = format!(
        "| {} |\n|{}\n",
        header.join(" | "),
        "---|".repeat(header.len())
    );
    for row in rows {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out
}

/// The definitions an object schema refers to, in the order first met, but not the
/// error branch's (the Errors section has those).
fn referenced(schema: &Value, defs: &Map<String, Value>, seen: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            if let Some(name) = map
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.rsplit('/').next())
                && !["ToolError", "ErrorCode"].contains(&name)
                && !seen.iter().any(|s| s == name)
            {
                seen.push(name.to_owned());
                if let Some(def) = defs.get(name) {
                    referenced(def, defs, seen);
                }
            }
            for value in map.values() {
                referenced(value, defs, seen);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| referenced(v, defs, seen)),
        _ => {}
    }
}

fn yes(flag: Option<bool>) -> &'static str {
    if flag == Some(true) { "yes" } else { "no" }
}

fn tools_section(tools: &[rmcp::model::Tool], toolsets: &BTreeMap<String, String>) -> String {
    let mut out = rows(
        &[
            "Tool",
            "Toolset",
            "Title",
            "readOnlyHint",
            "destructiveHint",
            "idempotentHint",
            "openWorldHint",
        ],
        tools
            .iter()
            .map(|t| {
                let a = t.annotations.clone().unwrap_or_default();
                vec![
                    format!("[`{}`](#{})", t.name, t.name),
                    toolsets
                        .get(t.name.as_ref())
                        .map_or_else(|| "?".to_owned(), |set| format!("`{set}`")),
                    cell(a.title.as_deref().or(t.title.as_deref()).unwrap_or("")),
                    yes(a.read_only_hint).to_owned(),
                    yes(a.destructive_hint).to_owned(),
                    yes(a.idempotent_hint).to_owned(),
                    yes(a.open_world_hint).to_owned(),
                ]
            })
            .collect(),
    );
    for tool in tools {
        out.push_str(&format!(
            "\n### `{}`\n\n{}\n",
            tool.name,
            tool.description.as_deref().unwrap_or("")
        ));
        let input = Value::Object(tool.input_schema.as_ref().clone());
        let params = properties(&input);
        if params.is_empty() {
            out.push_str("\nNo parameters.\n");
        } else {
            out.push('\n');
            out.push_str(&rows(
                &["Parameter", "Type", "Required", "Bounds", "Description"],
                params,
            ));
        }
        let defs = input["$defs"].as_object().cloned().unwrap_or_default();
        let mut seen = Vec::new();
        referenced(&input, &defs, &mut seen);
        for name in seen {
            let def = &defs[&name];
            out.push_str(&format!(
                "\n`{name}`: {}\n\n",
                cell(def["description"].as_str().unwrap_or(""))
            ));
            out.push_str(&rows(
                &["Field", "Type", "Required", "Bounds", "Description"],
                properties(def),
            ));
        }
    }
    out
}

fn results_section(tools: &[rmcp::model::Tool]) -> String {
    let mut out = String::new();
    for tool in tools {
        let output = Value::Object(tool.output_schema.as_ref().unwrap().as_ref().clone());
        let success = &output["anyOf"][0];
        out.push_str(&format!("\n### `{}` result\n\n", tool.name));
        out.push_str(&rows(
            &["Field", "Type", "Always", "Bounds", "Description"],
            properties(success),
        ));
        let defs = output["$defs"].as_object().cloned().unwrap_or_default();
        let mut seen = Vec::new();
        referenced(success, &defs, &mut seen);
        for name in seen {
            let def = &defs[&name];
            let described = cell(def["description"].as_str().unwrap_or(""));
            if def["properties"].is_object() {
                out.push_str(&format!("\n`{name}`: {described}\n\n"));
                out.push_str(&rows(
                    &["Field", "Type", "Always", "Bounds", "Description"],
                    properties(def),
                ));
            } else {
                out.push_str(&format!("\n`{name}`: {}. {described}\n", type_of(def)));
            }
        }
    }
    out.trim_start().to_owned()
}

/// The tool error codes, from the `ErrorCode` definition every output schema carries.
fn tool_errors(tools: &[rmcp::model::Tool]) -> String {
    let mut codes: Option<Vec<Vec<String>>> = None;
    for tool in tools {
        let output = tool.output_schema.as_ref().unwrap();
        let these: Vec<Vec<String>> = output["$defs"]["ErrorCode"]["oneOf"]
            .as_array()
            .unwrap_or_else(|| panic!("{}: no ErrorCode in the output schema", tool.name))
            .iter()
            .map(|c| {
                vec![
                    format!("`{}`", c["const"].as_str().unwrap()),
                    cell(c["description"].as_str().unwrap_or("")),
                ]
            })
            .collect();
        if let Some(codes) = &codes {
            assert_eq!(codes, &these, "{}: another ErrorCode", tool.name);
        }
        codes = Some(these);
    }
    rows(&["Code", "Meaning"], codes.unwrap_or_default())
}

// ---------------------------------------------------------------------------------
// Resources

fn resources_section(templates: &[rmcp::model::ResourceTemplate]) -> String {
    rows(
        &["URI template", "Name", "MIME type", "Description"],
        templates
            .iter()
            .map(|t| {
                vec![
                    format!("`{}`", t.uri_template),
                    cell(&t.name),
                    t.mime_type
                        .as_deref()
                        .map_or_else(String::new, |m| format!("`{m}`")),
                    cell(t.description.as_deref().unwrap_or("")),
                ]
            })
            .collect(),
    )
}

// ---------------------------------------------------------------------------------
// Errors

/// Every -32001 reason. The match has no wildcard: a new reason fails to compile here
/// until it is listed.
fn unauthorized_reasons() -> Vec<&'static str> {
    use Reason::*;
    let all = [
        MissingToken,
        TokenTooLarge,
        MalformedToken,
        UnsupportedAlgorithm,
        CriticalHeader,
        UnknownKey,
        InvalidSignature,
        MissingClaim,
        Expired,
        NotYetValid,
        IssuedInFuture,
        WrongAudience,
        WrongIssuer,
        InvalidClaims,
        VerificationNotConfigured,
        AwsCredentialsExpired,
        NoAwsCredentials,
        RegistryRejected,
    ];
    for reason in all {
        match reason {
            MissingToken
            | TokenTooLarge
            | MalformedToken
            | UnsupportedAlgorithm
            | CriticalHeader
            | UnknownKey
            | InvalidSignature
            | MissingClaim
            | Expired
            | NotYetValid
            | IssuedInFuture
            | WrongAudience
            | WrongIssuer
            | InvalidClaims
            | VerificationNotConfigured
            | AwsCredentialsExpired
            | NoAwsCredentials
            | RegistryRejected => {}
        }
    }
    all.into_iter().map(Reason::code).collect()
}

/// `CamelCase` as serde's `snake_case` writes it.
fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The variants of `enum NAME` in `file` (under `src/`), as serde's `snake_case`.
fn enum_variants(file: &str, name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(src_dir().join(file)).unwrap();
    let start = text
        .find(&format!("enum {name} {{"))
        .unwrap_or_else(|| panic!("src/{file} has no enum {name}"));
    let body = &text[start..];
    let body = &body[body.find('{').unwrap() + 1..body.find('}').unwrap()];
    body.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("//") && !l.starts_with('#'))
        .map(|l| snake(l.trim_end_matches(',')))
        .collect()
}

// ---------------------------------------------------------------------------------
// Logs

/// One log event as the code writes it.
#[derive(Default)]
struct Event {
    levels: BTreeSet<String>,
    fields: BTreeSet<String>,
    files: BTreeSet<String>,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The arguments of the macro call that starts at `open` (the `(`), up to its `)`.
fn macro_args(text: &str, open: usize) -> &str {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (i, c) in text[open..].char_indices() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => {
                depth -= 1;
                if depth == 0 {
                    return &text[open + 1..open + i];
                }
            }
            _ => {}
        }
    }
    panic!("an unclosed macro call")
}

/// The top-level, comma-separated arguments of a macro call.
fn split_args(args: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut depth, mut in_string, mut escaped, mut current) = (0i32, false, false, String::new());
    for c in args.chars() {
        if in_string {
            current.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(current.trim().to_owned());
                current.clear();
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_owned());
    }
    out
}

/// Every event of every `tracing::<level>!(…, event = "…", …)` in `src/`.
fn events() -> BTreeMap<String, Event> {
    let mut files = Vec::new();
    rust_files(&src_dir(), &mut files);
    files.sort();
    let mut events: BTreeMap<String, Event> = BTreeMap::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file
            .strip_prefix(Path::new(env!("CARGO_MANIFEST_DIR")))
            .unwrap()
            .display()
            .to_string();
        for level in ["trace", "debug", "info", "warn", "error"] {
            let call = format!("tracing::{level}!(");
            let mut at = 0;
            while let Some(found) = text[at..].find(&call) {
                let open = at + found + call.len() - 1;
                at = open + 1;
                let args = split_args(macro_args(&text, open));
                let Some(event) = args.iter().find_map(|a| {
                    a.strip_prefix("event = \"")
                        .and_then(|rest| rest.strip_suffix('"'))
                }) else {
                    continue;
                };
                let entry = events.entry(event.to_owned()).or_default();
                entry.levels.insert(level.to_owned());
                entry.files.insert(name.clone());
                // Fields come before the message (the first string literal); what
                // follows it are format arguments.
                for arg in args.iter().take_while(|a| !a.starts_with('"')) {
                    if arg.starts_with("event =") || arg.contains(": ") {
                        continue;
                    }
                    // `name = value`, `%name`, `?name`, `name`: a field; anything else
                    // (a format argument after the message) is not.
                    let field = arg
                        .split_once(" = ")
                        .map_or(arg.trim_start_matches(['%', '?']), |(n, _)| n);
                    let field = field.rsplit('.').next().unwrap_or(field);
                    if !field.is_empty()
                        && field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    {
                        entry.fields.insert(field.to_owned());
                    }
                }
            }
        }
    }
    events
}

fn logs(kept: &BTreeMap<String, String>) -> String {
    let rows = events()
        .into_iter()
        .map(|(name, event)| {
            vec![
                format!("`{name}`"),
                event.levels.into_iter().collect::<Vec<_>>().join(", "),
                event
                    .fields
                    .iter()
                    .map(|f| format!("`{f}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                event
                    .files
                    .iter()
                    .map(|f| format!("`{f}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ]
        })
        .collect();
    table(
        &["Event", "Level", "Fields", "Written in", "Meaning"],
        rows,
        kept,
    )
}

// ---------------------------------------------------------------------------------

/// The document as the code says it should be.
async fn regenerated(committed: &str) -> String {
    // Not read-only and with a registry (never contacted at start-up): every tool.
    let everything = [
        ("QUILT_MCP_READ_ONLY", "false"),
        ("QUILT_REGISTRY_URL", "http://127.0.0.1:9"),
    ];
    let server = crate::common::Server::spawn(&everything).await;
    let mut tools = server.client.list_all_tools().await.unwrap();
    let templates = server.client.list_all_resource_templates().await.unwrap();
    server.stop().await;
    tools.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(!tools.is_empty());
    let toolsets = toolsets(&everything).await;

    let keyed = |name: &str| meanings(block(committed, name));
    let unauthorized = rows_of(
        unauthorized_reasons().into_iter().map(str::to_owned),
        &keyed("unauthorized-reasons"),
    );
    let forbidden = rows_of(
        enum_variants("tools/policy.rs", "DenyReason").into_iter(),
        &keyed("forbidden-reasons"),
    );
    let mut text = committed.to_owned();
    for (name, body) in [
        ("commands", commands()),
        ("settings", settings(&keyed("settings"))),
        ("tools", tools_section(&tools, &toolsets)),
        ("results", results_section(&tools)),
        ("unauthorized-reasons", unauthorized),
        ("forbidden-reasons", forbidden),
        ("tool-errors", tool_errors(&tools)),
        ("resources", resources_section(&templates)),
        ("logs", logs(&keyed("logs"))),
    ] {
        text = replace_block(&text, name, &body);
    }
    text
}

/// Each tool's toolset, as the server offers them: a tool listed under every
/// `QUILT_MCP_TOOLSETS` value is always offered (`core`).
async fn toolsets(env: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut offered: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    let names = ["buckets", "packages", "search"];
    for name in names {
        let mut env = env.to_vec();
        env.push(("QUILT_MCP_TOOLSETS", name));
        let server = crate::common::Server::spawn(&env).await;
        for tool in server.client.list_all_tools().await.unwrap() {
            offered.entry(tool.name.to_string()).or_default().push(name);
        }
        server.stop().await;
    }
    offered
        .into_iter()
        .map(|(tool, sets)| {
            let set = match sets.as_slice() {
                [one] => (*one).to_owned(),
                all if all.len() == names.len() => "core".to_owned(),
                other => panic!("{tool} is offered under {other:?}"),
            };
            (tool, set)
        })
        .collect()
}

fn rows_of(codes: impl Iterator<Item = String>, kept: &BTreeMap<String, String>) -> String {
    table(
        &["Reason", "Meaning"],
        codes.map(|code| vec![format!("`{code}`")]).collect(),
        kept,
    )
}

#[tokio::test]
async fn the_reference_is_the_code() {
    let committed = std::fs::read_to_string(reference_path()).unwrap();
    let current = regenerated(&committed).await;
    if std::env::var_os("QUILT_MCP_UPDATE_REFERENCE").is_some() {
        std::fs::write(reference_path(), &current).unwrap();
    } else {
        assert!(
            committed == current,
            "docs/reference.md differs from the code: review, then run `cargo xtask codegen` \
             (or QUILT_MCP_UPDATE_REFERENCE=1 cargo test --test it reference::)"
        );
    }
    let todo: Vec<&str> = current
        .lines()
        .filter(|l| l.ends_with(&format!("| {MEANING_TODO} |")))
        .collect();
    assert!(
        todo.is_empty(),
        "docs/reference.md: write the meaning of {todo:?}"
    );
}

/// The pieces the generator relies on read what they should.
#[test]
fn the_generator_reads_the_code() {
    assert_eq!(snake("BucketNotAllowed"), "bucket_not_allowed");
    assert_eq!(
        enum_variants("tools/policy.rs", "DenyReason"),
        [
            "missing_permission",
            "bucket_not_allowed",
            "write_not_allowed",
            "read_only_mode"
        ]
    );
    let events = events();
    let call = &events["tool_call"];
    assert!(call.fields.contains("tool") && call.fields.contains("outcome"));
    assert!(events.contains_key("server_started"));
    let args = split_args(r#"event = "x", a = %b.c, ?d, "msg {}", e(f, g)"#);
    assert_eq!(
        args,
        ["event = \"x\"", "a = %b.c", "?d", "\"msg {}\"", "e(f, g)"]
    );
    // A format argument after the message is not a field.
    assert!(!events.values().any(|e| e.fields.contains("e")));
    let kept = meanings(Some(
        "| Reason | Meaning |\n|---|---|\n| `a` | says a \\| b |\n",
    ));
    assert_eq!(kept["`a`"], "says a \\| b");
    let doc = "x\n<!-- generated: n -->\nold\n<!-- end: n -->\ny";
    assert_eq!(
        replace_block(doc, "n", "new\n"),
        "x\n<!-- generated: n -->\nnew\n<!-- end: n -->\ny"
    );
}
