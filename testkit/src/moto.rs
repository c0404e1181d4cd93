//! moto's S3 server (a Python package) on a free loopback port, for the tests that need
//! an S3 with conditional writes (`#[ignore = "needs moto"]`, run by CI with
//! `--include-ignored` after `source scripts/ci-moto`).
//!
//! moto is started as `<python> -c <launcher>` through a Python that can import it,
//! never through the `moto_server` script itself: what `moto_server` on `PATH` is
//! (a venv's script, a pyenv shim that is a shell script, a wrapper) does not matter.
//! The Python is the first of these that imports `moto.server`:
//!
//! 1. `QUILT_MCP_TEST_MOTO`: a Python, or a `moto_server` script (then the Python
//!    beside it in its directory, or the one its `#!` line names);
//! 2. the venv `scripts/ci-moto` installs, `target/venv`;
//! 3. `python3` on `PATH`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// moto serves requests on threads, and checks a write's condition before it writes:
/// two conditional writes of one key could both pass. S3 makes them atomic; so does
/// moto when it serves one request at a time, which this launcher tells it.
const LAUNCHER: &str = "import sys, moto.server as s\n\
run = s.run_simple\n\
s.run_simple = lambda *a, **k: run(*a, **{**k, 'threaded': False})\n\
s.main(sys.argv[1:])";

/// The key pair moto accepts (any).
pub const ACCESS_KEY: &str = "testing";
/// The secret key moto accepts (any).
pub const SECRET_KEY: &str = "testing";

/// The Pythons to try, in order, each with where it came from.
fn candidates() -> Vec<(PathBuf, String)> {
    candidates_for(std::env::var_os("QUILT_MCP_TEST_MOTO").as_deref())
}

/// The Pythons to try for this value of `QUILT_MCP_TEST_MOTO`.
fn candidates_for(setting: Option<&std::ffi::OsStr>) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    if let Some(value) = setting {
        let path = PathBuf::from(value);
        let from = format!("QUILT_MCP_TEST_MOTO={}", path.display());
        let is_python = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("python"));
        if is_python {
            out.push((path.clone(), from.clone()));
        } else {
            if let Some(dir) = path.parent() {
                for name in ["python3", "python", "python.exe"] {
                    out.push((dir.join(name), format!("{from} (its directory)")));
                }
            }
            if let Some(interpreter) = shebang_python(&path) {
                out.push((interpreter, format!("{from} (its #! line)")));
            }
        }
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/venv");
    for bin in ["bin/python3", "bin/python", "Scripts/python.exe"] {
        out.push((venv.join(bin), "target/venv".to_owned()));
    }
    out.push((PathBuf::from("python3"), "python3 on PATH".to_owned()));
    out
}

/// The interpreter a script's `#!` line names, when it is a Python named by path
/// (`#!/usr/bin/env bash`, a shim, names none).
fn shebang_python(script: &Path) -> Option<PathBuf> {
    let text = std::fs::read(script).ok()?;
    let first = text.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(first).ok()?.strip_prefix("#!")?.trim();
    let program = PathBuf::from(line.split_whitespace().next()?);
    program
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("python"))
        .then_some(program)
}

/// Whether `python` runs and imports moto's server.
fn imports_moto(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import moto.server"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// The first Python that imports moto, or what was tried.
pub fn python() -> Result<PathBuf, String> {
    let mut tried = Vec::new();
    for (python, from) in candidates() {
        if imports_moto(&python) {
            return Ok(python);
        }
        tried.push(format!("{} ({from})", python.display()));
    }
    Err(format!(
        "no Python that can import moto: tried {}. Run `source scripts/ci-moto` (installs \
         moto[server] into target/venv and sets QUILT_MCP_TEST_MOTO), or set \
         QUILT_MCP_TEST_MOTO to a Python that has moto[server] (or to its moto_server)",
        tried.join(", ")
    ))
}

/// A running moto S3 server; stopped when dropped.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    log: tempfile::NamedTempFile,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// Starts moto on a free loopback port and waits until it answers; panics with
    /// what to do when no Python has moto, or with moto's own output when it fails.
    pub async fn start() -> Moto {
        let python = python().unwrap_or_else(|e| panic!("{e}"));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new(&python)
            .args(["-c", LAUNCHER, "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", python.display()));
        let mut moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            log,
        };
        let s3 = moto.client();
        let deadline = Instant::now() + Duration::from_secs(30);
        while s3.list_buckets().send().await.is_err() {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!(
                    "moto ({}) exited with {status}: {}",
                    python.display(),
                    moto.output()
                );
            }
            assert!(
                Instant::now() < deadline,
                "moto ({}) did not answer on {} within 30 s: {}",
                python.display(),
                moto.endpoint,
                moto.output()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        moto
    }

    /// What moto wrote to stderr so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// An SDK client for it.
    pub fn client(&self) -> aws_sdk_s3::Client {
        crate::s3::client(&self.endpoint, ACCESS_KEY, SECRET_KEY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    /// A pyenv shim (a shell script) names no Python: moto is not started through it.
    #[test]
    fn only_a_python_named_by_path_is_taken_from_a_shebang() {
        let shim = script("#!/usr/bin/env bash\nexec pyenv exec moto_server \"$@\"\n");
        assert_eq!(shebang_python(shim.path()), None);
        let venv = script("#!/work/target/venv/bin/python3\nimport moto.server\n");
        assert_eq!(
            shebang_python(venv.path()),
            Some(PathBuf::from("/work/target/venv/bin/python3"))
        );
        let env_python = script("#!/usr/bin/env python3\n");
        assert_eq!(shebang_python(env_python.path()), None);
        assert_eq!(shebang_python(Path::new("/no/such/moto_server")), None);
    }

    /// `QUILT_MCP_TEST_MOTO` naming a `moto_server` puts the Pythons beside it first.
    #[test]
    fn a_moto_server_path_offers_the_python_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let server = dir.path().join("moto_server");
        std::fs::write(&server, "#!/usr/bin/env bash\n").unwrap();
        let found: Vec<PathBuf> = candidates_for(Some(server.as_os_str()))
            .into_iter()
            .map(|(path, _)| path)
            .collect();
        assert_eq!(found.first(), Some(&dir.path().join("python3")));
        assert!(found.ends_with(&[PathBuf::from("python3")]));
    }
}
