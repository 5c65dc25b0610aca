#!/usr/bin/env python3
"""Resident memory per idle keep-alive HTTP connection in sockserv-httpd.

Starts sockserv-httpd (with RLIMIT_NOFILE raised to its hard limit, on a
loopback port 0, serving a temporary directory), opens N connections, sends
one `GET / HTTP/1.1` on each and reads the whole response, so that every
connection is left open and idle in the server. The server's VmRSS is read
from /proc/PID/status before and after; the difference divided by N is the
cost of one idle connection. The server is stopped by its PID at the end.

Everything must finish within the server's idle timeout (15 s by default),
or the server starts closing the first connections before the "after"
reading; the script prints how long opening took so that can be checked.

    python3 bench/idle_connections.py build-bench/examples/httpserver/sockserv-httpd
    python3 bench/idle_connections.py HTTPD --connections 10000 --mode coro --threads 1

Standard library only; Linux only (/proc, prlimit).
"""

import argparse
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time


def vm_field(pid, name):
    """A field of /proc/PID/status, in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{name} not in /proc/{pid}/status")


def rss_by_kind(pid, stack_bytes):
    """Rss (KiB) of /proc/PID/smaps grouped: coroutine stacks (read-write
    anonymous mappings of exactly the stack size), [heap], other anonymous
    memory (malloc arenas of other threads, thread stacks), file-backed."""
    kinds = {"coro stacks": 0, "heap": 0, "other anon": 0, "files": 0}
    kind = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            fields = line.split()
            if "-" in fields[0] and len(fields) >= 5:
                start, end = (int(x, 16) for x in fields[0].split("-"))
                name = fields[5] if len(fields) > 5 else ""
                if name == "[heap]":
                    kind = "heap"
                elif name and not name.startswith("["):
                    kind = "files"
                elif end - start == stack_bytes and fields[1].startswith("rw"):
                    kind = "coro stacks"
                else:
                    kind = "other anon"
            elif fields[0] == "Rss:":
                kinds[kind] += int(fields[1])
    return kinds


def raise_nofile():
    """Soft RLIMIT_NOFILE up to the hard limit; returns the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def read_response(sock):
    """Reads one HTTP response with a Content-Length; raises on anything else."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed before the response head")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0]
    if b" 200 " not in status + b" ":
        raise RuntimeError(f"unexpected status line {status!r}")
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length is None:
        raise RuntimeError("response without Content-Length")
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed in the response body")
        body += chunk


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("httpd", help="path to sockserv-httpd")
    ap.add_argument("--connections", type=int, default=10000)
    ap.add_argument("--mode", default="coro")
    ap.add_argument("--threads", type=int, default=None,
                    help="passed to sockserv-httpd --threads")
    ap.add_argument("--stack-kib", type=int, default=256,
                    help="coroutine stack size, to find the stacks in smaps")
    ap.add_argument("--settle", type=float, default=0.5,
                    help="seconds to wait before each VmRSS reading")
    args = ap.parse_args()

    limit = raise_nofile()
    if limit < args.connections + 100:
        sys.exit(f"RLIMIT_NOFILE hard limit {limit} is too low for "
                 f"{args.connections} connections")

    with tempfile.TemporaryDirectory(prefix="sockserv-idle-") as root:
        docroot = os.path.join(root, "www")
        os.mkdir(docroot)
        with open(os.path.join(docroot, "index.html"), "wb") as f:
            f.write(b"<!doctype html><title>idle</title><p>hello</p>\n")
        port_file = os.path.join(root, "port")
        # Every connection is idle here and holds one descriptor, not the
        # three the default --max-connections budgets for each: no limit,
        # so that all N are accepted (the check above leaves the room).
        cmd = [args.httpd, "-q", "--mode", args.mode, "-b", "127.0.0.1",
               "-d", docroot, "--port-file", port_file,
               "--max-connections", "0"]
        if args.threads is not None:
            cmd += ["--threads", str(args.threads)]
        cmd.append("0")
        # The server inherits the raised limit (set above, before fork);
        # its own process group lets the cleanup reach any children.
        server = subprocess.Popen(cmd, start_new_session=True)
        socks = []
        try:
            deadline = time.monotonic() + 10
            port = 0
            while not port:
                if server.poll() is not None:
                    sys.exit(f"server exited with {server.returncode}")
                if time.monotonic() > deadline:
                    sys.exit("server did not write its port file")
                try:
                    with open(port_file) as f:
                        port = int(f.read().strip() or 0)
                except (FileNotFoundError, ValueError):
                    pass
                time.sleep(0.02)

            request = (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       b"Connection: keep-alive\r\n\r\n")

            # One request on a connection that is then closed, so that
            # first-use allocations (malloc arenas, thread stacks, a first
            # coroutine stack) land in the baseline, not in the difference.
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(request)
                read_response(s)
            time.sleep(args.settle)
            before = vm_field(server.pid, "VmRSS")
            kinds_before = rss_by_kind(server.pid, args.stack_kib * 1024)

            t0 = time.monotonic()
            for _ in range(args.connections):
                s = socket.create_connection(("127.0.0.1", port))
                socks.append(s)
                s.sendall(request)
                read_response(s)
            opened = time.monotonic() - t0
            time.sleep(args.settle)
            after = vm_field(server.pid, "VmRSS")
            kinds_after = rss_by_kind(server.pid, args.stack_kib * 1024)
            elapsed = time.monotonic() - t0
            if server.poll() is not None:
                sys.exit(f"server exited with {server.returncode}")
            # Still open? A closed connection reads as end of stream.
            alive = 0
            for s in socks:
                s.setblocking(False)
                try:
                    alive += s.recv(1) != b""
                except BlockingIOError:
                    alive += 1
            per = (after - before) / args.connections
            print(f"mode={args.mode} threads={args.threads or 'default'} "
                  f"connections={args.connections} still_open={alive} "
                  f"opened_in={opened:.2f}s measured_at={elapsed:.2f}s "
                  f"vmrss_before={before}KiB vmrss_after={after}KiB "
                  f"per_connection={per:.2f}KiB")
            print("per connection by mapping kind: " + ", ".join(
                f"{k} {(kinds_after[k] - kinds_before[k]) / args.connections:.2f}KiB"
                for k in kinds_after))
        finally:
            for s in socks:
                s.close()
            if server.poll() is None:
                server.send_signal(signal.SIGTERM)
                try:
                    server.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    os.killpg(server.pid, signal.SIGKILL)
                    server.wait()


if __name__ == "__main__":
    main()
