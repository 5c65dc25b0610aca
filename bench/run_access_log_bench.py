#!/usr/bin/env python3
"""run_access_log_bench.py -- what sockserv-httpd's access log costs.

    bench/run_access_log_bench.py BUILD_DIR [--modes coro,thread]
                                  [--rounds 3] [--duration 3]

For each mode, three sockserv-httpd servers side by side on loopback, the
same document root (run_http_bench.py's: a 100-byte index.html):

  quiet       -q: no access log (the yardstick)
  buffered    --access-log FILE with the defaults (64 KiB per thread,
              written at least every second)
  unbuffered  --access-log FILE --access-log-buffer 0: one write(2) per
              line, what the log cost before it was buffered

measured with wrk (keep-alive GET /index.html), round-robin so that the
drift of a shared machine reaches all alike, median over the rounds. It
prints requests per second and each log's ratio to quiet (target for the
buffered log: >= 0.95), and checks that the buffered log holds one line
per request wrk counted (after the server's clean stop).

Needs wrk (apt-get install -y wrk). Everything it starts is stopped by PID
(and its process group) at the end, on Ctrl-C or SIGTERM, and on failure.
"""

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run_http_bench as hb  # noqa: E402  (its servers, wrk and docroot)

VARIANTS = {
    "quiet": lambda log: ["-q"],
    "buffered": lambda log: ["--access-log", log],
    "unbuffered": lambda log: ["--access-log", log,
                               "--access-log-buffer", "0"],
}


def start(servers, name, exe, argv, tmp):
    """sockserv-httpd with argv (no -q unless argv has it)."""
    port_file = os.path.join(tmp, name + ".port")
    full = [exe, "0", "-b", "127.0.0.1", "-d", os.path.join(tmp, "www"),
            "--port-file", port_file] + argv
    proc = servers._popen(name, full, subprocess.DEVNULL)
    servers.procs[name] = (proc, None)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with open(port_file) as f:
                port = int(f.read().strip())
            if hb.wait_listening(port, proc):
                servers.procs[name] = (proc, port)
                return port
        except (OSError, ValueError):
            time.sleep(0.05)
    raise RuntimeError(f"{name} did not start: {' '.join(full)}")


def cpu_seconds(pid):
    """User + system CPU time of the server process (all its threads, the
    children it has reaped) and of its live children (prefork workers), in
    seconds."""
    def own(p):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return 0
        return sum(int(x) for x in fields[11:15])  # utime stime cu cs

    ticks = own(pid)
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                ticks += sum(own(int(c)) for c in f.read().split())
    except OSError:
        pass
    return ticks / os.sysconf("SC_CLK_TCK")


def wrk_requests(args, port):
    """wrk's requests per second and its count of requests."""
    argv = [args.wrk, f"-t{args.wrk_threads}", f"-c{args.connections}",
            f"-d{args.duration:g}s", "--timeout", "5s",
            f"http://127.0.0.1:{port}/index.html"]
    out = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         timeout=args.duration + 30, check=True)
    text = out.stdout.decode()
    r = hb.parse_wrk(text)
    import re
    m = re.search(r"(\d+) requests in", text)
    r["requests"] = int(m.group(1)) if m else 0
    return r


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("build_dir")
    p.add_argument("--modes", default="coro,thread")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=3)
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--wrk-threads", type=int, default=1)
    p.add_argument("--wrk", default=shutil.which("wrk") or "wrk")
    args = p.parse_args()
    exe = os.path.join(args.build_dir, "examples/httpserver/sockserv-httpd")
    modes = args.modes.split(",")

    tmp = tempfile.mkdtemp(prefix="sockserv-logbench-")
    hb.make_docroot(tmp)
    servers = hb.Servers(tmp, ignore_sigpipe=False)

    def on_signal(signum, frame):
        servers.stop()
        sys.exit(1)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    results = {}
    served = {}
    cpu = {}  # name -> CPU seconds spent in the measured runs
    try:
        for mode in modes:
            for variant, make in VARIANTS.items():
                name = f"{mode}-{variant}"
                log = os.path.join(tmp, name + ".access.log")
                start(servers, name, exe,
                      ["--mode", mode] + make(log), tmp)
                results[name] = []
                served[name] = 0
                cpu[name] = 0.0
        for rnd in range(args.rounds):
            for name in results:
                pid = servers.procs[name][0].pid
                before = cpu_seconds(pid)
                r = wrk_requests(args, servers.port(name))
                cpu[name] += cpu_seconds(pid) - before
                results[name].append(r["rps"])
                served[name] += r["requests"]
                print(f"round {rnd + 1} {name:22} {r['rps']:>10,.0f} req/s",
                      flush=True)
    finally:
        servers.stop()  # SIGTERM: a clean stop writes the buffered lines

    print(f"\nkeep-alive GET /index.html (100 B), wrk -t{args.wrk_threads} "
          f"-c{args.connections} -d{args.duration:g}s, median of "
          f"{args.rounds}; {os.cpu_count()} CPUs shared with wrk\n")
    print("Throughput (req/s; ratio to -q) and the server's CPU time per "
          "request (µs; the\nratio -q / log: what the log leaves of a "
          "CPU-bound server, robust to a\nbusy machine).\n")
    print(f"| mode | -q req/s | buffered | ratio | unbuffered | ratio "
          f"| CPU µs/req -q | buffered | ratio | unbuffered | ratio "
          f"| lines = requests |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for mode in modes:
        q = statistics.median(results[f"{mode}-quiet"])
        b = statistics.median(results[f"{mode}-buffered"])
        u = statistics.median(results[f"{mode}-unbuffered"])
        log = os.path.join(tmp, f"{mode}-buffered.access.log")
        with open(log, "rb") as f:
            lines = sum(1 for _ in f)
        # wrk counts only the responses it read in time; a request in
        # flight at the end is served (and logged) without being counted.
        want = served[f"{mode}-buffered"]
        ok = want <= lines <= want + args.connections * args.rounds
        us = {v: 1e6 * cpu[f"{mode}-{v}"] / max(1, served[f"{mode}-{v}"])
              for v in VARIANTS}
        print(f"| {mode} | {q:,.0f} | {b:,.0f} | {b / q:.2f} | {u:,.0f} "
              f"| {u / q:.2f} | {us['quiet']:.1f} | {us['buffered']:.1f} "
              f"| {us['quiet'] / us['buffered']:.2f} "
              f"| {us['unbuffered']:.1f} "
              f"| {us['quiet'] / us['unbuffered']:.2f} "
              f"| {lines} / {want} {'ok' if ok else 'MISMATCH'} |")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
