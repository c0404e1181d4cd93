//! `cargo xtask <task>`: quilt-mcp's own tasks, in Rust (the alias is in
//! `.cargo/config.toml`). Shell stays only for installing system tools
//! (`scripts/ci-moto`, `scripts/ci-keyring`, `scripts/lib/tools.sh`).
//!
//! - `codegen [--check]`: regenerates what is generated from the code: the reference
//!   document `docs/reference.md` and the MCP bundle manifest's tool list and version
//!   `packaging/mcpb/manifest.json`. Each is written by the test that checks it (one
//!   generator, in the code that holds the facts); `--check` runs those tests without
//!   writing, failing on drift.
//! - `release-inspect`: the release check's inspection of an unpacked archive and MCP
//!   bundle (`scripts/release-check` unpacks them and runs the binaries).
//! - `artifacts FILE...`: the size of each file, as the release check prints them.
//!
//! Its one dependency is serde_json, so it builds in seconds and rebuilds nothing of
//! the product.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// A generated file: where it is, the test that writes and checks it, and the variable
/// that tells that test to write.
struct Generated {
    file: &'static str,
    test: &'static [&'static str],
    update: &'static str,
}

const GENERATED: &[Generated] = &[
    Generated {
        file: "docs/reference.md",
        test: &["--test", "it", "reference::"],
        update: "QUILT_MCP_UPDATE_REFERENCE",
    },
    Generated {
        file: "packaging/mcpb/manifest.json",
        test: &["--test", "it", "mcpb_manifest::"],
        update: "QUILT_MCP_UPDATE_MANIFEST",
    },
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("codegen") => codegen(&args[1..]),
        Some("artifacts") => artifacts(&args[1..]),
        Some("release-inspect") => release_inspect(&args[1..]),
        Some("help" | "--help" | "-h") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown task {other:?}\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "usage: cargo xtask <task>
  codegen [--check]   regenerate docs/reference.md and packaging/mcpb/manifest.json
                      (--check: fail when either differs from the code, write nothing)
  artifacts FILE...   the size in bytes of each file
  release-inspect ARCHIVE_DIR BUNDLE_DIR VERSION HOST
                      check an unpacked release archive and MCP bundle: their files,
                      the same binary in both, the repository's LICENSE, the bundle
                      manifest's version, platform and command
";

/// The workspace root (xtask's parent directory).
fn root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

fn codegen(args: &[String]) -> Result<(), String> {
    let check = match args {
        [] => false,
        [flag] if flag == "--check" => true,
        other => return Err(format!("codegen takes only --check, not {other:?}")),
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut stale = Vec::new();
    for generated in GENERATED {
        let mut command = Command::new(&cargo);
        command
            .current_dir(root())
            .args(["test", "--locked", "--quiet"])
            .args(generated.test);
        if check {
            command.env_remove(generated.update);
        } else {
            command.env(generated.update, "1");
        }
        eprintln!(
            "xtask: {} {}",
            if check { "checking" } else { "writing" },
            generated.file
        );
        let status = command
            .status()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !status.success() {
            stale.push(generated.file);
        }
    }
    match (stale.is_empty(), check) {
        (true, _) => Ok(()),
        (false, true) => Err(format!(
            "stale (differs from the code): {}; review, then run `cargo xtask codegen`",
            stale.join(" and ")
        )),
        (false, false) => Err(format!("writing {} failed", stale.join(" and "))),
    }
}

fn artifacts(files: &[String]) -> Result<(), String> {
    if files.is_empty() {
        return Err("artifacts needs at least one file".to_owned());
    }
    println!("{:<48} {:>12}", "artifact", "bytes");
    for file in files {
        let path = Path::new(file);
        let bytes = std::fs::metadata(path)
            .map_err(|e| format!("{file}: {e}"))?
            .len();
        let name = path
            .file_name()
            .map_or_else(|| file.clone(), |name| name.to_string_lossy().into_owned());
        println!("{name:<48} {bytes:>12}");
    }
    Ok(())
}

fn release_inspect(args: &[String]) -> Result<(), String> {
    let [archive, bundle, version, host] = args else {
        return Err(format!(
            "release-inspect takes 4 arguments, not {}\n{USAGE}",
            args.len()
        ));
    };
    let (archive, bundle) = (Path::new(archive), Path::new(bundle));
    let read = |path: &Path| std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()));
    for file in ["quilt-mcp", "LICENSE", "README.md", "CHANGELOG.md"] {
        if !archive.join(file).is_file() {
            return Err(format!("the archive holds no {file}"));
        }
    }
    if read(&archive.join("LICENSE"))? != read(&root().join("LICENSE"))? {
        return Err("the archive's LICENSE differs from the repository's".to_owned());
    }
    for file in ["manifest.json", "icon.png", "LICENSE", "server/quilt-mcp"] {
        if !bundle.join(file).is_file() {
            return Err(format!("the bundle holds no {file}"));
        }
    }
    let binary = bundle.join("server/quilt-mcp");
    if !is_executable(&binary)? {
        return Err("the bundle's server/quilt-mcp is not executable once unpacked".to_owned());
    }
    if read(&binary)? != read(&archive.join("quilt-mcp"))? {
        return Err("the bundle's binary is not the archive's".to_owned());
    }
    let manifest: serde_json::Value = serde_json::from_slice(&read(&bundle.join("manifest.json"))?)
        .map_err(|e| format!("the bundle's manifest.json: {e}"))?;
    manifest_problems(&manifest, version, host).map_or(Ok(()), |problem| {
        Err(format!("the bundle's manifest: {problem}"))
    })?;
    println!("release-inspect: archive and bundle ok for {host}, quilt-mcp {version}");
    Ok(())
}

/// What is wrong with a bundle manifest for this release, if anything.
fn manifest_problems(manifest: &serde_json::Value, version: &str, host: &str) -> Option<String> {
    let platform = if host.contains("apple-darwin") {
        "darwin"
    } else {
        "linux"
    };
    let checks = [
        ("/version", serde_json::json!(version)),
        ("/server/type", serde_json::json!("binary")),
        ("/compatibility/platforms", serde_json::json!([platform])),
        (
            "/server/mcp_config/command",
            serde_json::json!("${__dirname}/server/quilt-mcp"),
        ),
    ];
    checks.into_iter().find_map(|(pointer, want)| {
        let got = manifest.pointer(pointer);
        (got != Some(&want)).then(|| format!("{pointer} is {got:?}, expected {want}"))
    })
}

#[cfg(unix)]
fn is_executable(path: &Path) -> Result<bool, String> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .permissions()
        .mode();
    Ok(mode & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(_path: &Path) -> Result<bool, String> {
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_manifest_is_checked_field_by_field() {
        let good = serde_json::json!({
            "version": "1.2.3",
            "server": {"type": "binary", "mcp_config": {"command": "${__dirname}/server/quilt-mcp"}},
            "compatibility": {"platforms": ["linux"]},
        });
        assert_eq!(
            manifest_problems(&good, "1.2.3", "x86_64-unknown-linux-gnu"),
            None
        );
        let problem =
            manifest_problems(&good, "1.2.4", "x86_64-unknown-linux-gnu").unwrap_or_default();
        assert!(problem.starts_with("/version is"), "{problem}");
        let problem = manifest_problems(&good, "1.2.3", "aarch64-apple-darwin").unwrap_or_default();
        assert!(problem.starts_with("/compatibility/platforms"), "{problem}");
    }
}
