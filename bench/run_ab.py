#!/usr/bin/env python3
"""A/B benchmark: the same workloads against two builds of libsockserv in
one run, interleaved round by round, with the ratio B/A.

For a change that moves a hot path: build the commit before (A) and after
(B) with -DCMAKE_BUILD_TYPE=Release, then

    python3 bench/run_ab.py BUILD_A BUILD_B [--rounds 5] [--duration 3]

Workloads (loopback only, each bounded in time):
  echo-coro    sockserv-bench-echo --mode coro, echo_load 50 persistent
               connections, 64-byte round trips
  echo-thread  the same with --mode thread
  echo-pool    the same with --mode pool --threads 64
  http-coro    sockserv-httpd --mode coro -q, wrk -t1 -c50 keep-alive GET
               of a 100-byte file (needs wrk; skipped without it)
  http-thread  the same with --mode thread
  http-pool    the same with --mode pool (default threads)
  http-prefork the same with --mode prefork (default workers)

Medians of the rounds are compared; the machine is shared and noisy, so
read a ratio within about 5-10% of 1.0 as "unchanged".
"""
import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time


def start(cmd, ready_pattern, timeout=10.0):
    """Start a server; return (process, port) once it prints its port."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        m = re.search(ready_pattern, line)
        if m:
            return proc, int(m.group(1))
    stop(proc)
    sys.exit(f"run_ab: {cmd[0]} did not start")


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def echo_round(build, mode, duration, extra=()):
    server, port = start([os.path.join(build, "bench", "sockserv-bench-echo"),
                          "--mode", mode, "--port", "0", *extra],
                         r"listening on (\d+)")
    try:
        out = subprocess.run(
            [os.path.join(build, "bench", "echo_load"), "--port", str(port),
             "--connections", "50", "--size", "64", "--warmup", "0.5",
             "--duration", str(duration)],
            capture_output=True, text=True, timeout=duration + 30).stdout
    finally:
        stop(server)
    m = re.search(r"rt_per_sec=([0-9.]+)", out)
    if m and not re.search(r"errors=0 mismatches=0", out):
        sys.exit(f"run_ab: echo_load saw errors:\n{out}")
    if not m:
        sys.exit(f"run_ab: echo_load printed no rate:\n{out}")
    return float(m.group(1))


def http_round(build, root, duration, mode="coro"):
    server, port = start(
        [os.path.join(build, "examples", "httpserver", "sockserv-httpd"),
         "--mode", mode, "-q", "-b", "127.0.0.1", "-d", root, "0"],
        r"port (\d+)")
    try:
        out = subprocess.run(
            ["wrk", "-t1", "-c50", f"-d{max(1, round(duration))}s",
             f"http://127.0.0.1:{port}/small.txt"],
            capture_output=True, text=True, timeout=duration + 30).stdout
    finally:
        stop(server)
    m = re.search(r"Requests/sec:\s*([0-9.]+)", out)
    if not m:
        sys.exit(f"run_ab: wrk printed no rate:\n{out}")
    return float(m.group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build_a")
    ap.add_argument("build_b")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--only", help="comma-separated workload names to run")
    args = ap.parse_args()

    root = tempfile.mkdtemp(prefix="sockserv-ab-")
    with open(os.path.join(root, "small.txt"), "w") as f:
        f.write("x" * 99 + "\n")
    workloads = [
        ("echo-coro", lambda b: echo_round(b, "coro", args.duration)),
        ("echo-thread", lambda b: echo_round(b, "thread", args.duration)),
        # A worker for each of the 50 connections, as run_echo_bench.py.
        ("echo-pool", lambda b: echo_round(b, "pool", args.duration,
                                           ("--threads", "64"))),
    ]
    if shutil.which("wrk"):
        for mode in ("coro", "thread", "pool", "prefork"):
            workloads.append(
                (f"http-{mode}",
                 lambda b, m=mode: http_round(b, root, args.duration, m)))
    else:
        print("wrk not found: http-coro skipped")
    if args.only:
        wanted = args.only.split(",")
        workloads = [w for w in workloads if w[0] in wanted]
    results = {name: {"A": [], "B": []} for name, _ in workloads}
    try:
        for r in range(args.rounds):
            for name, run in workloads:
                # Alternate which build goes first, so drift hits both.
                order = ("A", "B") if r % 2 == 0 else ("B", "A")
                for side in order:
                    build = args.build_a if side == "A" else args.build_b
                    results[name][side].append(run(build))
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print(f"{'workload':<12} {'A median':>12} {'B median':>12} {'B/A':>6}")
    for name, _ in workloads:
        a = statistics.median(results[name]["A"])
        b = statistics.median(results[name]["B"])
        print(f"{name:<12} {a:>12,.0f} {b:>12,.0f} {b / a:>6.3f}")


if __name__ == "__main__":
    main()
