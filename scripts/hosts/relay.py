#!/usr/bin/env python3
"""Runs the command in argv with stdio relayed, and appends to $RELAY_LOG, for each
JSON-RPC message that passes, the ms since this relay started, the direction (`>` to
the server, `<` from it), the id and the method (or result/error). scripts/check-hosts
puts it between Claude Code and quilt-mcp to time initialize and tools/list."""
import json
import os
import subprocess
import sys
import threading
import time

t0 = time.monotonic()
log = open(os.environ["RELAY_LOG"], "a", encoding="utf-8")


def note(direction, line):
    try:
        msg = json.loads(line)
    except ValueError:
        return
    what = msg.get("method") or ("result" if "result" in msg else "error")
    log.write(f"{(time.monotonic() - t0) * 1000:.1f} {direction} {msg.get('id')} {what}\n")
    log.flush()


child = subprocess.Popen(sys.argv[1:], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
log.write(f"{(time.monotonic() - t0) * 1000:.1f} spawned\n")


def pump_in():
    for line in sys.stdin.buffer:
        note(">", line)
        child.stdin.write(line)
        child.stdin.flush()
    child.stdin.close()


threading.Thread(target=pump_in, daemon=True).start()
for line in child.stdout:
    note("<", line)
    sys.stdout.buffer.write(line)
    sys.stdout.buffer.flush()
sys.exit(child.wait())
