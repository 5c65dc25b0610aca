#!/usr/bin/env python3
"""run_ws_bench.py -- WebSocket echo: sockserv-ws-echo next to its peers.

    bench/run_ws_bench.py BUILD_DIR [--rounds 5] [--duration 2] [--idle 10000]

Throughput: 64-byte messages, closed loop, over 50 persistent connections
(build/bench/echo_load; --websocket makes it upgrade each connection and
send masked frames), against three servers started once each:

  ws-coro     build/examples/websocket/sockserv-ws-echo --mode coro
  tcp-coro    build/examples/echo/sockserv-echo --mode coro: the same
              library echoing plain TCP, so the ratio is the cost of the
              WebSocket framing (target: >= 0.8x)
  tcp-bench   build/bench/sockserv-bench-echo --mode coro: the echo
              benchmark's own plain-TCP server, a second plain-TCP
              yardstick
  node-ws     bench/ws_node/server.js, npm's `ws` on Node (`npm ci` there
              first if node_modules is missing; target: sockserv >= 2x)

measured round-robin -- every server once per round -- so that drift of a
shared machine hits all alike; each figure is the median over the rounds.

Memory: resident memory per idle WebSocket connection: a fresh
sockserv-ws-echo --mode coro --threads 1 (and the Node server, for
comparison) with N connections upgraded and left idle; (VmRSS after -
VmRSS before) / N.

Prints a text table, and with --markdown the same as Markdown. The machine
is shared and noisy: compare ratios from one run, not absolute figures
across runs. Standard library only; Linux only (/proc).
"""

import argparse
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_DIR = os.path.join(HERE, "ws_node")
UPGRADE = (b"GET / HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


class Servers:
    def __init__(self, logdir):
        self.logdir = logdir
        self.procs = {}
        self.ports = {}

    def start(self, name, argv, port=None, cwd=None):
        log = open(os.path.join(self.logdir, name + ".log"), "wb")
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log,
                                cwd=cwd)
        if port is None:  # the server prints "... PORT" on its first line
            line = proc.stdout.readline().decode()
            m = re.search(r"(?:listening on |127\.0\.0\.1:)(\d+)", line)
            if not m:
                proc.kill()
                raise RuntimeError(f"{name}: no port in {line!r}")
            port = int(m.group(1))
        wait_port(port, proc)
        self.procs[name] = proc
        self.ports[name] = port
        return proc

    def stop(self, name):
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop_all(self):
        for name in list(self.procs):
            self.stop(name)


def run_load(build, port, websocket, args):
    argv = [os.path.join(build, "bench", "echo_load"), "--port", str(port),
            "--connections", str(args.connections), "--size", str(args.size),
            "--duration", str(args.duration), "--warmup", "0.3"]
    if websocket:
        argv.append("--websocket")
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    fields = dict(kv.split("=", 1) for kv in out.stdout.split()[1:]
                  if "=" in kv)
    if out.returncode != 0 or "rt_per_sec" not in fields:
        raise RuntimeError(f"echo_load failed: {out.stdout}{out.stderr}")
    errors = int(fields["errors"]) + int(fields["mismatches"])
    return float(fields["rt_per_sec"]), errors


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def idle_memory(proc, port, n):
    """Open n WebSocket connections and leave them idle; KiB per one."""
    time.sleep(0.5)
    before = rss_kib(proc.pid)
    socks = []
    began = time.monotonic()
    try:
        for i in range(n):
            s = socket.create_connection(("127.0.0.1", port), 10)
            s.sendall(UPGRADE)
            socks.append(s)
            if len(socks) % 500 == 0:  # read the 101s in batches
                for t in socks[-500:]:
                    read_head(t)
        for t in socks[len(socks) - len(socks) % 500:]:
            read_head(t)
        opened = time.monotonic() - began
        time.sleep(1.0)
        after = rss_kib(proc.pid)
    finally:
        for s in socks:
            s.close()
    return (after - before) / n, before, after, opened


def read_head(s):
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        c = s.recv(4096)
        if not c:
            raise RuntimeError("connection closed during the handshake")
        head += c
    if not head.startswith(b"HTTP/1.1 101 "):
        raise RuntimeError(f"no 101: {head[:60]!r}")


def node_ready(args):
    if args.no_node:
        return False
    if not shutil.which("node"):
        print("node not found: the node-ws column is left out")
        return False
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "ws")):
        print(f"npm ci in {NODE_DIR}")
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR,
                       check=True)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build", help="the build directory (with examples and "
                    "bench built)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=float, default=2.0)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--idle", type=int, default=10000,
                    help="idle connections for the memory figure (0: skip)")
    ap.add_argument("--no-node", action="store_true")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    ws_echo = os.path.join(build, "examples", "websocket", "sockserv-ws-echo")
    tcp_echo = os.path.join(build, "examples", "echo", "sockserv-echo")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.idle and hard < args.idle + 100:
        sys.exit(f"RLIMIT_NOFILE hard limit {hard} is too low for --idle "
                 f"{args.idle}")
    use_node = node_ready(args)

    logdir = tempfile.mkdtemp(prefix="sockserv-ws-bench-")
    servers = Servers(logdir)
    rates = {"ws-coro": [], "tcp-coro": [], "tcp-bench": [], "node-ws": []}
    try:
        servers.start("ws-coro", [ws_echo, "--mode", "coro", "-q", "0"])
        port = free_port()
        servers.start("tcp-coro", [tcp_echo, "--mode", "coro", str(port)],
                      port=port)
        servers.start("tcp-bench", [os.path.join(build, "bench",
                                                  "sockserv-bench-echo"),
                                     "--mode", "coro", "--port", "0"])
        if use_node:
            servers.start("node-ws", ["node", "server.js", "0"], cwd=NODE_DIR)
        for r in range(args.rounds):
            for name in list(servers.procs):
                rate, errors = run_load(build, servers.ports[name],
                                        name.startswith(("ws", "node")),
                                        args)
                if errors:
                    raise RuntimeError(f"{name}: {errors} errors")
                rates[name].append(rate)
            print(f"round {r + 1}/{args.rounds}: " + ", ".join(
                f"{n} {rates[n][-1]:,.0f}" for n in servers.procs),
                flush=True)
        servers.stop_all()

        memory = {}
        if args.idle:
            proc = servers.start("ws-idle", [ws_echo, "--mode", "coro",
                                             "--threads", "1", "-q", "0"])
            memory["sockserv-ws-echo --mode coro"] = idle_memory(
                proc, servers.ports["ws-idle"], args.idle)
            servers.stop("ws-idle")
            if use_node:
                proc = servers.start("node-idle", ["node", "server.js", "0"],
                                     cwd=NODE_DIR)
                memory["node ws"] = idle_memory(
                    proc, servers.ports["node-idle"], args.idle)
                servers.stop("node-idle")
    finally:
        servers.stop_all()

    med = {n: statistics.median(v) for n, v in rates.items() if v}
    ws = med["ws-coro"]
    lines = [f"WebSocket echo, {args.size}-byte messages, {args.connections} "
             f"persistent connections, median of {args.rounds} rounds of "
             f"{args.duration:g} s (round trips/s):"]
    rows = [("sockserv-ws-echo --mode coro (WebSocket)", ws, "1.00")]
    rows.append(("sockserv-echo --mode coro (plain TCP)", med["tcp-coro"],
                 f"{ws / med['tcp-coro']:.2f} (target >= 0.8)"))
    rows.append(("sockserv-bench-echo --mode coro (plain TCP)",
                 med["tcp-bench"], f"{ws / med['tcp-bench']:.2f}"))
    if "node-ws" in med:
        rows.append((f"node {subprocess.run(['node', '--version'], capture_output=True, text=True).stdout.strip()} + ws 8.18.0",
                     med["node-ws"],
                     f"{ws / med['node-ws']:.2f} (target >= 2)"))
    if args.markdown:
        print("| server | round trips/s | sockserv-ws-echo / it |")
        print("| --- | ---: | ---: |")
        for name, rate, ratio in rows:
            print(f"| {name} | {rate:,.0f} | {ratio} |")
    else:
        print(lines[0])
        for name, rate, ratio in rows:
            print(f"  {name:45} {rate:>10,.0f}  ws/it {ratio}")
    for name, (per, before, after, opened) in memory.items():
        print(f"idle memory, {name}: {args.idle} connections opened in "
              f"{opened:.1f} s, VmRSS {before} KiB -> {after} KiB: "
              f"{per:.1f} KiB per connection")


if __name__ == "__main__":
    main()
