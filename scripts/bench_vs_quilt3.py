#!/usr/bin/env python3
"""quilt-mcp and quilt3 side by side on one moto S3 server (run by scripts/bench-vs-quilt3).

Builds the data with quilt3 and boto3, then times each piece of work on both sides:

* quilt-mcp: the release binary, one fresh server process per row, driven over stdio
  (scripts/mcp_stdio.py); the time is from the tools/call request to its answer on an
  initialized server that has made one S3 call already (bucket_objects_list), the
  memory is the server's peak RSS (VmHWM in /proc/PID/status).
* quilt3: one fresh Python process per row (`--worker`); the time is the work alone
  (after `import quilt3`), the memory is that process's peak RSS (VmHWM), imports
  included.
* the floor for creating: 16 parallel boto3 GETs of the same objects, bodies read
  whole, in a fresh process.

The browse revisions are built with quilt3's own API: `Package.set` of a
`PackageEntry` with a given size and SHA256 (the physical objects are not read or
created: browsing reads only the manifest), then `Package.build`. The create objects
are real (4 KiB each) and both sides read every one.

The patch row starts both sides from one revision built that way (under two names):
quilt-mcp's `package_patch` adds 10 real objects; quilt3 browses the revision, `set`s
the same 10 and pushes (entries left where they are, the parent checked against
`latest`). Both make the same revision, which the note checks by top hash. The
revisions row lists a package of 1,000 one-entry revisions, each with its own message:
quilt-mcp's `package_revisions`, every page; quilt3's `list_package_versions`, then
`Package.browse` of each revision for its message.
"""

import argparse
import concurrent.futures
import hashlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SECRET = "bench-vs-quilt3-shared-secret-bench-vs-quilt3-shared-secret!!"
REGISTRY = "bench-registry"
MANY = "bench-many"
SOURCES = "bench-sources"
GOVERNED = "bench-governed"
WORKFLOW_FIELDS = 20
CREATE_OBJECT_BYTES = 4096
FLOOR_CONCURRENCY = 16
ACCESS_KEY = "testing"
REVISIONS_PER_PACKAGE = 5
PATCH_ADDS = 10
SECRET_KEY = "testing"


def count(text: str) -> int:
    text = text.strip().lower()
    for suffix, factor in (("k", 1_000), ("m", 1_000_000)):
        if text.endswith(suffix):
            return int(float(text[:-1]) * factor)
    return int(text)


def label(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


def sizes(text: str) -> list:
    return [count(part) for part in text.split(",") if part.strip()]


def vm_hwm_mb(pid="self") -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def aws_env(endpoint: str) -> dict:
    return {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ENDPOINT_URL_S3": endpoint,
    }


# ---------------------------------------------------------------------------------
# The quilt3 side and the floor: one process per measurement.


def worker(op: str, spec: dict) -> None:
    import quilt3  # noqa: F401 (imported before the clock starts)
    import boto3
    import botocore.config

    started = time.monotonic()
    note = ""
    if op == "browse":
        pkg = quilt3.Package.browse(spec["name"], registry=spec["registry"], top_hash=spec["top_hash"])
        note = f"{sum(1 for _ in pkg.walk())} entries"
    elif op == "diff":
        one = quilt3.Package.browse(spec["name"], registry=spec["registry"], top_hash=spec["hash1"])
        two = quilt3.Package.browse(spec["name"], registry=spec["registry"], top_hash=spec["hash2"])
        added, modified, deleted = one.diff(two)
        note = f"+{len(added)} ~{len(modified)} -{len(deleted)}"
    elif op == "list":
        names = list(quilt3.list_packages(spec["registry"]))
        note = f"{len(names)} names"
    elif op == "create":
        pkg = quilt3.Package()
        pkg.set_dir("", spec["source"])
        built = pkg.push(
            spec["name"], registry=spec["registry"], selector_fn=lambda *a: False, force=True
        )
        note = f"{len(list(built.walk()))} entries"
    elif op == "create-workflow":
        pkg = quilt3.Package()
        pkg.set_dir("", spec["source"])
        pkg.set_meta(spec["metadata"])
        built = pkg.push(
            spec["name"], registry=spec["registry"], message=spec["message"],
            selector_fn=lambda *a: False, force=True,
        )
        note = f"{len(list(built.walk()))} entries, workflow {built._workflow['id']}"
    elif op == "patch":
        pkg = quilt3.Package.browse(spec["name"], registry=spec["registry"], top_hash=spec["top_hash"])
        for logical_key, uri in spec["set"]:
            pkg.set(logical_key, uri)
        built = pkg.push(
            spec["name"], registry=spec["registry"], message=spec["message"],
            selector_fn=lambda *a: False,
        )
        note = built.top_hash
    elif op == "revisions":
        versions = list(quilt3.list_package_versions(spec["name"], registry=spec["registry"]))
        listed = time.monotonic() - started
        messages = [
            quilt3.Package.browse(spec["name"], registry=spec["registry"], top_hash=top_hash)._meta.get("message")
            for _, top_hash in versions
        ]
        note = (
            f"{len(versions)} versions (latest too) listed in {listed:.2f} s, "
            f"{sum(1 for m in messages if m)} messages"
        )
    elif op == "floor":
        s3 = boto3.client(
            "s3", config=botocore.config.Config(max_pool_connections=FLOOR_CONCURRENCY)
        )
        keys = spec["keys"]
        started = time.monotonic()

        def get(key):
            return len(s3.get_object(Bucket=spec["bucket"], Key=key)["Body"].read())

        with concurrent.futures.ThreadPoolExecutor(FLOOR_CONCURRENCY) as pool:
            total = sum(pool.map(get, keys))
        note = f"{len(keys)} GETs, {total} bytes"
    else:
        raise SystemExit(f"unknown worker op {op}")
    seconds = time.monotonic() - started
    print(json.dumps({"seconds": seconds, "rss_mb": vm_hwm_mb(), "note": note}))


def run_worker(op: str, spec: dict, endpoint: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-quilt3-") as home:
        env = dict(os.environ)
        env.update(aws_env(endpoint))
        # A fresh quilt3 home each time: no manifest cache carried between runs.
        env.update(
            {
                "HOME": home,
                "XDG_CONFIG_HOME": os.path.join(home, "config"),
                "XDG_DATA_HOME": os.path.join(home, "data"),
                "XDG_CACHE_HOME": os.path.join(home, "cache"),
                "QUILT_DISABLE_USAGE_METRICS": "true",
                "QUILT_MINIMIZE_STDOUT": "true",
            }
        )
        # The spec on stdin: 10,000 keys are more than one argument may hold.
        out = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--worker", op],
            env=env,
            check=True,
            input=json.dumps(spec).encode(),
            stdout=subprocess.PIPE,
        )
    return json.loads(out.stdout.decode().strip().splitlines()[-1])


# ---------------------------------------------------------------------------------
# The quilt-mcp side.


def hs256_token() -> str:
    import base64
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    now = int(time.time())
    claims = {
        "sub": "bench",
        "aud": "quilt-mcp-server",
        "iat": now,
        "exp": now + 6 * 3600,
        "level": "write",
        "buckets": [REGISTRY, MANY, SOURCES, GOVERNED],
        "permissions": ["s3:GetObject", "s3:ListBucket", "s3:PutObject"],
        "aws_credentials": {"access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY},
    }
    signing_input = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + b64(
        json.dumps(claims).encode()
    )
    signature = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(signature)


def warm_session(binary: str, endpoint: str):
    """A server process over stdio, initialized, that has made one S3 call, so that the
    time measured is the work's, not the process's first client set-up (a fixed cost,
    once per process). Returns the session and the `mcp_stdio` module."""
    sys.dont_write_bytecode = True
    sys.path.insert(0, HERE)
    import mcp_stdio

    mcp_stdio.TIMEOUT_SECS = 3600
    env = {
        "QUILT_MCP_JWT_SECRET": SECRET,
        "QUILT_MCP_TOKEN": hs256_token(),
        "QUILT_MCP_S3_FORCE_PATH_STYLE": "true",
        "QUILT_MCP_READ_ONLY": "false",
    }
    env.update(aws_env(endpoint))
    session = mcp_stdio.Session(binary, env)
    try:
        session.initialize()
        session.request(
            "tools/call",
            {"name": "bucket_objects_list", "arguments": {"bucket": SOURCES, "max_keys": 1}},
        )
    except BaseException:
        session.close()
        raise
    return session, mcp_stdio


def call_and_wait(session, mcp_stdio, params: dict) -> tuple:
    """Sends one `tools/call` and reads until its answer: the answer, the progress
    notifications seen on the way, and the seconds spent decoding what was read (the
    client's own share of the time: a page's JSON comes twice, as structuredContent
    and as its text)."""
    tool = params["name"]
    session.next_id += 1
    session.send({"jsonrpc": "2.0", "id": session.next_id, "method": "tools/call", "params": params})
    notifications, decode = 0, 0.0
    while True:
        line = session.lines.get(timeout=mcp_stdio.TIMEOUT_SECS)
        if not line:
            raise RuntimeError(f"{tool}: the server closed stdout: {session.stderr_text()}")
        decode_started = time.monotonic()
        message = json.loads(line)
        decode += time.monotonic() - decode_started
        if message.get("method") == "notifications/progress":
            notifications += 1
        if message.get("id") == session.next_id:
            return message, notifications, decode


def mcp_call(binary: str, endpoint: str, tool: str, arguments: dict, progress=False) -> dict:
    session, mcp_stdio = warm_session(binary, endpoint)
    try:
        params = {"name": tool, "arguments": arguments}
        if progress:
            params["_meta"] = {"progressToken": "bench"}
        started = time.monotonic()
        message, notifications, _ = call_and_wait(session, mcp_stdio, params)
        seconds = time.monotonic() - started
        rss = vm_hwm_mb(session.proc.pid)
    finally:
        session.close()
    result = message.get("result") or {}
    if "error" in message or result.get("isError"):
        raise RuntimeError(f"{tool} failed: {json.dumps(message)[:2000]}")
    return {
        "seconds": seconds,
        "rss_mb": rss,
        "structured": result.get("structuredContent", {}),
        "notifications": notifications,
    }


def mcp_pages(binary: str, endpoint: str, arguments: dict) -> dict:
    """Every page of a revision in one server process: the first page (the whole
    revision read and verified), then each next page by `next_cursor`."""
    return mcp_all_pages(binary, endpoint, "package_browse", arguments, "entries")


def mcp_all_pages(binary: str, endpoint: str, tool: str, arguments: dict, items: str) -> dict:
    """Every page of `tool` in one server process, each next page by `next_cursor`;
    `entries` counts the `items` of every page."""
    session, mcp_stdio = warm_session(binary, endpoint)
    try:
        entries, pages, first, cursor, decode = 0, 0, None, None, 0.0
        started = time.monotonic()
        while True:
            args = dict(arguments)
            if cursor:
                args["cursor"] = cursor
            page_started = time.monotonic()
            message, _, decoded = call_and_wait(
                session, mcp_stdio, {"name": tool, "arguments": args}
            )
            decode += decoded
            if "error" in message:
                raise RuntimeError(f"{tool}: JSON-RPC error {json.dumps(message)[:2000]}")
            result = message["result"]
            if result.get("isError"):
                raise RuntimeError(f"{tool} failed: {json.dumps(result)[:2000]}")
            out = result["structuredContent"]
            if first is None:
                first = time.monotonic() - page_started
            entries += len(out[items])
            pages += 1
            cursor = out.get("next_cursor")
            if not cursor:
                break
        seconds = time.monotonic() - started
        rss = vm_hwm_mb(session.proc.pid)
    finally:
        session.close()
    return {
        "seconds": seconds,
        "rss_mb": rss,
        "first": first,
        "pages": pages,
        "entries": entries,
        "decode": decode,
    }


# ---------------------------------------------------------------------------------
# Data.


def start_moto(moto: str):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [moto, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=2).read()
            return proc, endpoint
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise RuntimeError(f"moto_server did not start: {log.read().decode()[-2000:]}")
            time.sleep(0.2)


def entries(n: int, seed: str = ""):
    """n (logical key, size, sha256 hex) triples, 1000 files a directory."""
    for i in range(n):
        digest = hashlib.sha256(f"{seed}{i}".encode()).hexdigest()
        yield f"dir{i // 1000:04d}/file{i:07d}.csv", 1000 + i % 9000, digest


def build_revision(name: str, items, message: str) -> str:
    import quilt3
    from quilt3.packages import PackageEntry
    from quilt3.util import PhysicalKey

    pkg = quilt3.Package()
    for logical_key, size, digest in items:
        entry = PackageEntry(
            PhysicalKey(SOURCES, f"data/{logical_key}", None),
            size,
            {"type": "SHA256", "value": digest},
            None,
        )
        pkg.set(logical_key, entry)
    return pkg.build(name, registry=f"s3://{REGISTRY}", message=message)


def parallel(fn, items, workers=32):
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(fn, items):
            pass


def seed_create_objects(s3, n: int) -> list:
    prefix = f"create-{label(n)}/"
    keys = [f"{prefix}part{i // 1000:03d}/obj{i:06d}.bin" for i in range(n)]
    rng = random.Random(n)
    body = bytes(rng.getrandbits(8) for _ in range(CREATE_OBJECT_BYTES))
    parallel(
        lambda key: s3.put_object(Bucket=SOURCES, Key=key, Body=key.encode() + body), keys
    )
    return keys


def seed_many(s3, n: int) -> None:
    """n packages in 100 namespaces, each with `latest` and five timestamp pointers to
    one tiny manifest."""
    manifest = (
        json.dumps({"version": "v0", "message": "tiny"}) + "\n"
        + json.dumps(
            {
                "logical_key": "a.txt",
                "physical_keys": [f"s3://{SOURCES}/a.txt"],
                "size": 1,
                "hash": {"type": "SHA256", "value": "0" * 64},
                "meta": {},
            }
        )
        + "\n"
    ).encode()
    top_hash = hashlib.sha256(manifest).hexdigest()  # a stand-in: only pointers are listed
    s3.put_object(Bucket=MANY, Key=f".quilt/packages/{top_hash}", Body=manifest)
    now = int(time.time())

    def put(i):
        base = f".quilt/named_packages/ns{i % 100:02d}/pkg{i:05d}/"
        s3.put_object(Bucket=MANY, Key=base + "latest", Body=top_hash.encode())
        for k in range(REVISIONS_PER_PACKAGE):
            s3.put_object(Bucket=MANY, Key=base + str(now - k), Body=top_hash.encode())

    parallel(put, range(n))


def seed_patch(s3, n: int) -> tuple:
    """A revision of n entries built by quilt3, under one name for each side (the
    second only pointers to the same manifest); the PATCH_ADDS objects a patch adds.
    The names and the top hash."""
    mcp_name, q3_name = f"bench/patch-mcp-{label(n)}", f"bench/patch-q3-{label(n)}"
    top_hash = build_revision(mcp_name, entries(n, "patch"), f"{n} entries")
    now = str(int(time.time()))
    for pointer in ("latest", now):
        s3.put_object(
            Bucket=REGISTRY, Key=f".quilt/named_packages/{q3_name}/{pointer}", Body=top_hash.encode()
        )
    rng = random.Random(PATCH_ADDS)
    body = bytes(rng.getrandbits(8) for _ in range(CREATE_OBJECT_BYTES))
    for i in range(PATCH_ADDS):
        key = f"patch-add/obj{i:02d}.bin"
        s3.put_object(Bucket=SOURCES, Key=key, Body=key.encode() + body)
    return mcp_name, q3_name, top_hash


def seed_revisions(s3, name: str, n: int) -> None:
    """A package of n revisions: n one-entry manifests (made and hashed by quilt3,
    each with its own message) and n timestamp pointers one second apart, the newest
    also `latest`."""
    import io

    import quilt3
    from quilt3.packages import PackageEntry
    from quilt3.util import PhysicalKey

    now = int(time.time())

    def put(i):
        pkg = quilt3.Package()
        pkg.set(
            "a.csv",
            PackageEntry(PhysicalKey(SOURCES, "data/a.csv", None), 10, {"type": "SHA256", "value": "0" * 64}, None),
        )
        pkg._set_commit_message(f"revision {i} of {n}")
        top_hash = pkg.top_hash
        manifest = io.BytesIO()
        pkg.dump(manifest)
        s3.put_object(Bucket=REGISTRY, Key=f".quilt/packages/{top_hash}", Body=manifest.getvalue())
        base = f".quilt/named_packages/{name}/"
        s3.put_object(Bucket=REGISTRY, Key=base + str(now - n + i), Body=top_hash.encode())
        if i == n - 1:
            s3.put_object(Bucket=REGISTRY, Key=base + "latest", Body=top_hash.encode())

    parallel(put, range(n))


def seed_governed(s3) -> dict:
    """A registry whose default workflow needs a message, a name pattern and a
    WORKFLOW_FIELDS-field metadata schema (read from S3 on every create); the metadata
    that passes it."""
    fields = {f"field{i:02d}": {"type": "string", "minLength": 1} for i in range(1, WORKFLOW_FIELDS + 1)}
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "required": sorted(fields),
        "properties": fields,
    }
    s3.create_bucket(Bucket=GOVERNED)
    s3.put_bucket_versioning(Bucket=GOVERNED, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=GOVERNED, Key="schemas/meta.json", Body=json.dumps(schema).encode())
    config = (
        'version: "1"\n'
        "default_workflow: governed\n"
        "workflows:\n"
        "  governed:\n"
        "    name: Governed\n"
        "    handle_pattern: ^bench/\n"
        "    is_message_required: true\n"
        "    metadata_schema: meta\n"
        "schemas:\n"
        f"  meta: {{url: 's3://{GOVERNED}/schemas/meta.json'}}\n"
    )
    s3.put_object(Bucket=GOVERNED, Key=".quilt/workflows/config.yml", Body=config.encode())
    return {name: f"value {name}" for name in fields}


def bench_create_with_workflow(args, endpoint, rows, n: int, metadata: dict) -> None:
    """package_create and quilt3 push of n objects into the governed registry."""
    source = f"s3://{SOURCES}/create-{label(n)}/"
    registry = f"s3://{GOVERNED}"
    message = "governed create"
    mcp = mcp_call(
        args.binary, endpoint, "package_create",
        {"package_name": f"bench/governed-mcp-{label(n)}", "registry": registry, "s3_uris": [source],
         "message": message, "metadata": metadata},
        progress=True,
    )
    q3 = run_worker(
        "create-workflow",
        {"name": f"bench/governed-q3-{label(n)}", "registry": registry, "source": source,
         "message": message, "metadata": metadata},
        endpoint,
    )
    row(
        rows,
        f"create from {n:,} objects with a workflow ({WORKFLOW_FIELDS}-field metadata schema)",
        mcp,
        q3,
        f"quilt-mcp: workflow {mcp['structured'].get('workflow')}, {mcp['structured'].get('entry_count')} entries; "
        f"quilt3: {q3['note']}",
    )


# ---------------------------------------------------------------------------------


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def row(rows, work, mcp, q3, note=""):
    def cell(m):
        if m is None:
            return "—"
        return f"{m['seconds']:.2f} s, {m['rss_mb']:.1f} MB"

    rows.append((work, cell(mcp), cell(q3), note))
    print(f"  {work}: quilt-mcp {cell(mcp)} | quilt3 {cell(q3)} | {note}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", required=True)
    parser.add_argument("--moto", required=True)
    parser.add_argument("--sizes", default="10k,100k", help="browse revisions (entries)")
    parser.add_argument("--full", action="store_true", help="also browse 1M entries")
    parser.add_argument("--diff", default="100k", help="entries of each diffed revision")
    parser.add_argument("--create", default="1k,10k", help="objects to create from")
    parser.add_argument("--packages", default="2000", help="packages in the listed registry (one count)")
    parser.add_argument("--pages", default="100k", help="revisions read page by page (entries; --full adds 1M)")
    parser.add_argument(
        "--workflow-create", default="1k", help="objects to create from in a registry with a workflow"
    )
    parser.add_argument(
        "--patch", default="100k", help=f"entries of the revision {PATCH_ADDS} entries are patched onto"
    )
    parser.add_argument("--revisions", default="1000", help="revisions of the package whose revisions are listed")
    args = parser.parse_args()
    browse_sizes = sizes(args.sizes) + ([1_000_000] if args.full else [])
    diff_sizes = sizes(args.diff)
    create_sizes = sizes(args.create)
    package_counts = sizes(args.packages)
    page_sizes = sizes(args.pages) + ([1_000_000] if args.full else [])
    workflow_sizes = sizes(args.workflow_create)
    patch_sizes = sizes(args.patch)
    revision_counts = sizes(args.revisions)

    moto, endpoint = start_moto(args.moto)
    os.environ.update(aws_env(endpoint))
    quilt_home = tempfile.mkdtemp(prefix="bench-quilt3-build-")
    os.environ.update(
        {
            "XDG_CONFIG_HOME": os.path.join(quilt_home, "config"),
            "XDG_DATA_HOME": os.path.join(quilt_home, "data"),
            "XDG_CACHE_HOME": os.path.join(quilt_home, "cache"),
            "QUILT_DISABLE_USAGE_METRICS": "true",
                "QUILT_MINIMIZE_STDOUT": "true",
        }
    )
    rows = []
    try:
        import boto3
        import botocore.config

        s3 = boto3.client("s3", config=botocore.config.Config(max_pool_connections=32))
        for bucket in (REGISTRY, MANY, SOURCES):
            s3.create_bucket(Bucket=bucket)
        registry = f"s3://{REGISTRY}"

        # Everything is built first, so that building does not overlap a measurement.
        browse = []
        for n in sorted(set(browse_sizes) | set(page_sizes)):
            t = time.monotonic()
            name = f"bench/browse-{label(n)}"
            browse.append((n, name, build_revision(name, entries(n), f"{n} entries")))
            say(f"built {name} with quilt3 in {time.monotonic() - t:.1f} s")
        diffs = []
        for n in diff_sizes:
            t = time.monotonic()
            name = f"bench/diff-{label(n)}"
            base = list(entries(n))
            hash1 = build_revision(name, base, "base")
            changed = base[50:]  # 50 removed
            changed[:100] = [
                (k, s + 1, hashlib.sha256(d.encode()).hexdigest()) for k, s, d in changed[:100]
            ]  # 100 modified
            changed += [
                (f"added/new{i:03d}.csv", 10, hashlib.sha256(b"n%d" % i).hexdigest()) for i in range(50)
            ]  # 50 added
            hash2 = build_revision(name, changed, "changed")
            diffs.append((n, name, hash1, hash2))
            say(f"built two {label(n)} revisions of {name} with quilt3 in {time.monotonic() - t:.1f} s")
        creates = []
        for n in create_sizes:
            t = time.monotonic()
            creates.append((n, seed_create_objects(s3, n)))
            say(f"put {n} objects of {CREATE_OBJECT_BYTES} bytes in {time.monotonic() - t:.1f} s")
        seeded = {n for n, _ in creates}
        for n in workflow_sizes:
            if n not in seeded:
                t = time.monotonic()
                seed_create_objects(s3, n)
                seeded.add(n)
                say(f"put {n} objects of {CREATE_OBJECT_BYTES} bytes in {time.monotonic() - t:.1f} s")
        governed_metadata = seed_governed(s3) if workflow_sizes else {}
        for n in package_counts[:1]:
            t = time.monotonic()
            seed_many(s3, n)
            say(f"wrote {n} packages' pointers in {time.monotonic() - t:.1f} s")
        patches = []
        for n in patch_sizes:
            t = time.monotonic()
            patches.append((n, *seed_patch(s3, n)))
            say(f"built a {label(n)} revision to patch with quilt3 in {time.monotonic() - t:.1f} s")
        histories = []
        for n in revision_counts[:1]:
            t = time.monotonic()
            name = f"bench/revisions-{label(n)}"
            seed_revisions(s3, name, n)
            histories.append((n, name))
            say(f"wrote {n} revisions of {name} in {time.monotonic() - t:.1f} s")

        for n, name, top_hash in browse:
            if n not in browse_sizes:
                continue
            mcp = mcp_call(
                args.binary, endpoint, "package_browse",
                {"package_name": name, "registry": registry, "top_hash": top_hash},
            )
            q3 = run_worker("browse", {"name": name, "registry": registry, "top_hash": top_hash}, endpoint)
            row(rows, f"browse a {n:,}-entry revision", mcp, q3, f"quilt3: {q3['note']}")

        for n, name, top_hash in browse:
            if n not in page_sizes:
                continue
            pages = mcp_pages(
                args.binary, endpoint,
                {"package_name": name, "registry": registry, "top_hash": top_hash},
            )
            q3 = run_worker("browse", {"name": name, "registry": registry, "top_hash": top_hash}, endpoint)
            row(
                rows,
                f"every entry of a {n:,}-entry revision, page by page (default page)",
                pages,
                q3,
                f"quilt-mcp: {pages['pages']} pages, {pages['entries']:,} entries, "
                f"{q3['seconds'] / pages['seconds']:.1f}x faster than quilt3; "
                f"the first page (whole revision read and verified) {pages['first']:.2f} s, "
                f"all pages = {pages['seconds'] / pages['first']:.2f}x it; the client's JSON decoding of "
                f"the answers {pages['decode']:.2f} s of the time; quilt3: whole revision, {q3['note']}",
            )

        for n, name, hash1, hash2 in diffs:
            spec = {"name": name, "registry": registry, "hash1": hash1, "hash2": hash2}
            mcp = mcp_call(
                args.binary, endpoint, "package_diff",
                {"package1_name": name, "registry": registry, "package1_hash": hash1, "package2_hash": hash2},
            )
            out = mcp["structured"]
            mcp_counts = (
                f"+{out.get('added_count')} ~{out.get('modified_count')} -{out.get('removed_count')}"
            )
            q3 = run_worker("diff", spec, endpoint)
            row(rows, f"diff two {n:,}-entry revisions", mcp, q3, f"quilt-mcp {mcp_counts}; quilt3 {q3['note']}")

        for n, keys in creates:
            source = f"s3://{SOURCES}/create-{label(n)}/"
            floor = run_worker("floor", {"bucket": SOURCES, "keys": keys}, endpoint)
            mcp = mcp_call(
                args.binary, endpoint, "package_create",
                {"package_name": f"bench/create-mcp-{label(n)}", "registry": registry, "s3_uris": [source]},
                progress=True,
            )
            q3 = run_worker(
                "create", {"name": f"bench/create-q3-{label(n)}", "registry": registry, "source": source}, endpoint
            )
            ratio = mcp["seconds"] / floor["seconds"]
            row(
                rows,
                f"create a revision from {n:,} objects",
                mcp,
                q3,
                f"floor (16 parallel GETs, boto3): {floor['seconds']:.2f} s; quilt-mcp = {ratio:.2f}× floor, "
                f"{mcp['notifications']} progress notifications",
            )

        for n in workflow_sizes:
            bench_create_with_workflow(args, endpoint, rows, n, governed_metadata)

        for n, mcp_name, q3_name, top_hash in patches:
            adds = [
                (f"added/obj{i:02d}.bin", f"s3://{SOURCES}/patch-add/obj{i:02d}.bin") for i in range(PATCH_ADDS)
            ]
            mcp = mcp_call(
                args.binary, endpoint, "package_patch",
                {"package_name": mcp_name, "registry": registry, "message": "patched",
                 "add": [{"logical_key": k, "s3_uri": u} for k, u in adds]},
            )
            q3 = run_worker(
                "patch",
                {"name": q3_name, "registry": registry, "top_hash": top_hash, "set": adds, "message": "patched"},
                endpoint,
            )
            out = mcp["structured"]
            same = "the same top hash" if out.get("top_hash") == q3["note"] else "DIFFERENT top hashes"
            row(
                rows,
                f"patch {PATCH_ADDS} entries onto a {n:,}-entry revision",
                mcp,
                q3,
                f"quilt-mcp: package_patch, {out.get('entry_count'):,} entries, changes {out.get('changes')}; "
                f"quilt3: Package.browse, set x{PATCH_ADDS}, push (parent checked, entries left in place); "
                f"{same}; {q3['seconds'] / mcp['seconds']:.1f}x faster",
            )

        for n, name in histories:
            pages = mcp_all_pages(
                args.binary, endpoint, "package_revisions",
                {"package_name": name, "registry": registry}, "revisions",
            )
            q3 = run_worker("revisions", {"name": name, "registry": registry}, endpoint)
            row(
                rows,
                f"revisions of a package with {n:,} revisions, with messages",
                pages,
                q3,
                f"quilt-mcp: package_revisions, every page ({pages['pages']} pages of the default 100, "
                f"{pages['entries']:,} revisions, each message from a ranged GET of its manifest's first line); "
                f"quilt3: list_package_versions (one GET per pointer, a boto3 client built for each), then "
                f"Package.browse of each revision for its message: {q3['note']}; "
                f"{q3['seconds'] / pages['seconds']:.1f}x faster",
            )

        for n in package_counts[:1]:
            many = f"s3://{MANY}"
            mcp = mcp_call(args.binary, endpoint, "package_list", {"registry": many, "max_packages": min(n, 10_000)})
            q3 = run_worker("list", {"registry": many}, endpoint)
            row(
                rows,
                f"package_list over {n:,} packages of {REVISIONS_PER_PACKAGE} revisions",
                mcp,
                q3,
                f"quilt-mcp: {mcp['structured'].get('count')} names, "
                f"{q3['seconds'] / mcp['seconds']:.1f}x faster; quilt3: {q3['note']} (names only)",
            )
            details = mcp_call(
                args.binary, endpoint, "package_list",
                {"registry": many, "max_packages": min(n, 10_000), "include_details": True},
            )
            row(
                rows,
                f"package_list over {n:,} packages, include_details",
                details,
                None,
                f"{details['structured'].get('count')} packages, each latest read",
            )
    finally:
        moto.terminate()
        moto.wait(timeout=30)
        shutil.rmtree(quilt_home, ignore_errors=True)

    print()
    print("| work | quilt-mcp time, peak RSS | quilt3 time, peak RSS | note |")
    print("|---|---|---|---|")
    for work, mcp, q3, note in rows:
        print(f"| {work} | {mcp} | {q3} | {note} |")


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--worker":
        worker(sys.argv[2], json.load(sys.stdin))
    else:
        main()
