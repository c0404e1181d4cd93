#!/usr/bin/env python3
"""Drives a quilt-mcp binary over stdio with plain MCP JSON-RPC (standard library only).

    mcp_stdio.py smoke BINARY MANIFEST [--bundle-env]
                                         initialize, tools/list (must name MANIFEST's
                                         tools) and auth_status with a demo token; with
                                         --bundle-env, the environment is MANIFEST's
                                         mcp_config.env as a launcher passes it with only
                                         the token and secret filled in (every other
                                         ${user_config.*} left unsubstituted)
    mcp_stdio.py token                   print a demo token signed with DEMO_SECRET
    mcp_stdio.py measure BINARY [RUNS]   size, median startup (spawn to initialize
                                         answered) and peak RSS (Linux) over RUNS runs

Used by scripts/release-check and scripts/bench_vs_quilt3.py. Exits non-zero on any failure.
"""

import base64
import hashlib
import hmac
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time

TIMEOUT_SECS = 20
DEMO_SECRET = "release-check-demo-secret-release-check-demo-secret!!"
DEMO_SUBJECT = "release-check"


class Failure(Exception):
    pass


def demo_token(secret: str) -> str:
    """An HS256 enhanced-JWT-shaped token for user DEMO_SUBJECT, an hour long."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    now = int(time.time())
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {
        "sub": DEMO_SUBJECT,
        "aud": "quilt-mcp-server",
        "iat": now,
        "exp": now + 3600,
        "level": "read",
        "buckets": ["demo-data"],
        "permissions": ["s3:GetObject", "s3:ListBucket"],
    }
    signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(signature)


class Session:
    """One server process; requests and responses as JSON lines."""

    def __init__(self, binary: str, env: dict):
        self.log_dir = tempfile.TemporaryDirectory(prefix="quilt-mcp-logs-")
        self.stderr = tempfile.TemporaryFile()
        full_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "QUILT_MCP_LOG_DIR": self.log_dir.name,
            # A keyring entry nobody uses: only the environment may supply the token.
            "QUILT_MCP_KEYRING_SERVICE": f"quilt-mcp-release-check-{os.getpid()}",
            "QUILT_MCP_KEYRING_USER": "nobody",
        }
        full_env.update(env)
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [binary],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=full_env,
        )
        self.lines: "queue.Queue[bytes]" = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.next_id = 0

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(b"")

    def send(self, message: dict) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()

    def request(self, method: str, params: dict) -> dict:
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        deadline = time.monotonic() + TIMEOUT_SECS
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise Failure(f"{method}: no answer within {TIMEOUT_SECS} s") from None
            if not line:
                raise Failure(f"{method}: the server closed stdout; stderr:\n{self.stderr_text()}")
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                raise Failure(f"stdout carried a line that is not JSON-RPC: {line[:200]!r}") from None
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise Failure(f"{method}: JSON-RPC error {message['error']}")
                return message["result"]

    def initialize(self) -> dict:
        result = self.request(
            "initialize",
            {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "quilt-mcp-release-check", "version": "1"},
            },
        )
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return result

    def list_tools(self) -> list:
        tools, cursor = [], None
        while True:
            result = self.request("tools/list", {"cursor": cursor} if cursor else {})
            tools.extend(result["tools"])
            cursor = result.get("nextCursor")
            if not cursor:
                return tools

    def stderr_text(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def close(self) -> int:
        """Closes stdin (the server's cue to end) and waits; the exit code."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            return self.proc.wait(timeout=TIMEOUT_SECS)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise Failure("the server did not exit within 20 s of stdin closing") from None
        finally:
            self.log_dir.cleanup()


def smoke(binary: str, manifest_path: str, bundle_env: bool) -> None:
    with open(manifest_path, encoding="utf-8") as f:
        manifest = json.load(f)
    expected = sorted(t["name"] for t in manifest["tools"])
    filled = {"token": demo_token(DEMO_SECRET), "jwt_secret": DEMO_SECRET}
    if bundle_env:
        env = dict(manifest["server"]["mcp_config"]["env"])
        for key, value in filled.items():
            placeholder = "${user_config.%s}" % key
            names = [name for name, v in env.items() if v == placeholder]
            if not names:
                raise Failure(f"the manifest's mcp_config.env does not use {placeholder}")
            for name in names:
                env[name] = value
    else:
        env = {"QUILT_MCP_JWT_SECRET": filled["jwt_secret"], "QUILT_MCP_TOKEN": filled["token"]}
    session = Session(binary, env)
    try:
        init = session.initialize()
        startup_ms = (time.monotonic() - session.started) * 1000
        server = init.get("serverInfo", {})
        if server.get("name") != "quilt-mcp" or server.get("version") != manifest["version"]:
            raise Failure(f"initialize: serverInfo {server}, the bundle manifest is version {manifest['version']}")
        names = sorted(t["name"] for t in session.list_tools())
        if names != expected:
            raise Failure(f"tools/list names {names}, the bundle manifest lists {expected}")
        result = session.request("tools/call", {"name": "auth_status", "arguments": {}})
        content = result.get("structuredContent") or {}
        if result.get("isError") or content.get("subject") != DEMO_SUBJECT or content.get("token", {}).get("source") != "env":
            raise Failure(f"auth_status: {json.dumps(result)[:500]}")
    except Failure:
        session.close()
        raise
    code = session.close()
    if code != 0:
        raise Failure(f"the server exited with {code} after stdin closed")
    print(
        f"mcp: initialize ({server.get('name')} {server.get('version')}, {startup_ms:.0f} ms), "
        f"tools/list ({len(names)} tools), auth_status (subject {DEMO_SUBJECT}, source env): ok"
    )


def peak_rss_kib(pid: int) -> int:
    """VmHWM (peak resident set) of a live process, from /proc (Linux only)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise Failure(f"no VmHWM for process {pid}")


def measure(binary: str, runs: int) -> None:
    """Median time from spawn to the initialize answer, and the peak RSS after
    initialize, tools/list and auth_status, over `runs` fresh processes."""
    env = {"QUILT_MCP_JWT_SECRET": DEMO_SECRET, "QUILT_MCP_TOKEN": demo_token(DEMO_SECRET)}
    startup, rss = [], []
    for _ in range(runs):
        session = Session(binary, env)
        try:
            session.initialize()
            startup.append((time.monotonic() - session.started) * 1000)
            session.list_tools()
            session.request("tools/call", {"name": "auth_status", "arguments": {}})
            rss.append(peak_rss_kib(session.proc.pid))
        finally:
            session.close()
    startup.sort()
    rss.sort()
    print(
        f"{binary}: {os.path.getsize(binary)} bytes, startup (spawn to initialize answered) "
        f"median {startup[runs // 2]:.1f} ms (min {startup[0]:.1f}), peak RSS median "
        f"{rss[runs // 2] / 1024:.1f} MiB, over {runs} runs"
    )


def main(argv: list) -> int:
    command, args = (argv[1], argv[2:]) if len(argv) > 1 else ("", [])
    try:
        if command == "token" and not args:
            print(demo_token(DEMO_SECRET))
        elif command == "measure" and len(args) in (1, 2):
            measure(args[0], int(args[1]) if len(args) == 2 else 20)
        elif command == "smoke" and len(args) in (2, 3) and args[2:] in ([], ["--bundle-env"]):
            smoke(args[0], args[1], bundle_env=len(args) == 3)
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except (Failure, OSError, KeyError, ValueError) as e:
        print(f"error: {command} {' '.join(args[:1])}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
