#!/usr/bin/env python3
"""run_cache_bench.py -- sockserv-httpd's file cache, A/B and against h2o.

    bench/run_cache_bench.py BUILD_DIR [--rounds 3] [--duration 3]
                             [--mode coro] [--threads 2] [--markdown]

Serves one temporary directory (a 1 KiB file and a 64 KiB file) with

  * cache    BUILD_DIR/examples/httpserver/sockserv-httpd --mode MODE
             --threads N -q (the file cache on, its default);
  * nocache  the same with --no-file-cache;
  * h2o      (Debian's h2o) with num-threads N, no access log, file.dir on
             the same directory;

and measures them with wrk (-t1 -c50 by default), round-robin: every
server once per workload per round (each round starting with another
one), so slow drift of a shared machine reaches all alike; the median
over the rounds is kept. Workloads:

  1k-ka      keep-alive GET of the 1 KiB file
  64k-ka     keep-alive GET of the 64 KiB file
  1k-close   Connection: close on every request, the 1 KiB file

Besides requests per second it records CPU per request: the server's
utime + stime (/proc/PID/stat, all its threads; children's for a
prefork) over the run, divided by the requests wrk counted. It prints the
ratios cache/nocache and cache/h2o, and Markdown with --markdown.

Needs wrk and h2o on PATH (apt-get install -y wrk h2o). Everything it
starts is stopped by PID at the end, on Ctrl-C and on failure.
"""

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

TICKS = os.sysconf("SC_CLK_TCK")

WORKLOADS = {
    "1k-ka": ("/1k.txt", False),
    "64k-ka": ("/64k.bin", False),
    "1k-close": ("/1k.txt", True),
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, proc, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


def cpu_seconds(pid):
    """utime + stime of pid and its waited-for children, in seconds, plus
    the same of its live children (prefork workers)."""
    def one(p):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        # fields[0] is state (field 3): utime 14, stime 15, cutime 16, cstime 17
        return sum(int(x) for x in fields[11:15]) / TICKS
    total = one(pid)
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            for child in f.read().split():
                total += one(int(child))
    except OSError:
        pass
    return total


def run_wrk(args, path, close, port):
    argv = [args.wrk, f"-t{args.wrk_threads}", f"-c{args.connections}",
            f"-d{args.duration:g}s", "--timeout", "5s"]
    if close:
        argv += ["-H", "Connection: close"]
    argv.append(f"http://127.0.0.1:{port}{path}")
    out = subprocess.run(argv, capture_output=True, text=True,
                         timeout=args.duration + 30, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed: {out.stderr.strip()}")
    m = re.search(r"(\d+) requests in", out.stdout)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)
    if not m or not rps:
        raise RuntimeError(f"no result in wrk output:\n{out.stdout}")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out.stdout)
    if bad:
        raise RuntimeError(f"{bad.group(0)} from {argv[-1]}")
    return int(m.group(1)), float(rps.group(1))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("build_dir")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=3)
    p.add_argument("--mode", default="coro")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--wrk-threads", type=int, default=1)
    p.add_argument("--wrk", default=shutil.which("wrk") or "wrk")
    p.add_argument("--h2o", default=shutil.which("h2o") or "h2o")
    p.add_argument("--markdown", action="store_true")
    args = p.parse_args()
    exe = os.path.join(args.build_dir, "examples/httpserver/sockserv-httpd")
    for tool, name in ((exe, "sockserv-httpd"), (args.wrk, "wrk"),
                       (args.h2o, "h2o")):
        if not shutil.which(tool):
            p.error(f"{name} not found ({tool})")

    tmp = tempfile.mkdtemp(prefix="sockserv-cache-bench-")
    os.chmod(tmp, 0o755)  # h2o started as root serves as nobody
    root = os.path.join(tmp, "www")
    os.mkdir(root)
    with open(os.path.join(root, "1k.txt"), "wb") as f:
        f.write(b"x" * 1023 + b"\n")
    with open(os.path.join(root, "64k.bin"), "wb") as f:
        f.write(os.urandom(65536))

    procs = {}

    def stop_all(*_):
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)

    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))
    ports = {}
    try:
        base = [exe, "--mode", args.mode, "--threads", str(args.threads),
                "-q", "-b", "127.0.0.1", "-d", root]
        for name, extra in (("cache", []), ("nocache", ["--no-file-cache"])):
            ports[name] = free_port()
            procs[name] = subprocess.Popen(
                base + extra + [str(ports[name])],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ports["h2o"] = free_port()
        conf = os.path.join(tmp, "h2o.conf")
        with open(conf, "w") as f:
            f.write(f"listen:\n  host: 127.0.0.1\n  port: {ports['h2o']}\n"
                    f"num-threads: {args.threads}\n"
                    f"error-log: {tmp}/h2o-error.log\n"
                    f"hosts:\n  default:\n    paths:\n      /:\n"
                    f"        file.dir: {root}\n")
        procs["h2o"] = subprocess.Popen([args.h2o, "-c", conf],
                                        stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        for name in procs:
            wait_listening(ports[name], procs[name])

        results = {(s, w): [] for s in procs for w in WORKLOADS}
        for r in range(args.rounds):
            names = list(procs)
            # Each round starts with another server: none is always first
            # after a change of workload.
            order = names[r % len(names):] + names[:r % len(names)]
            for w, (path, close) in WORKLOADS.items():
                for s in order:
                    before = cpu_seconds(procs[s].pid)
                    try:
                        n, rps = run_wrk(args, path, close, ports[s])
                    except RuntimeError as e:
                        raise RuntimeError(f"{s}: {e}") from None
                    cpu = cpu_seconds(procs[s].pid) - before
                    results[(s, w)].append((rps, cpu / n * 1e6))
                    print(f"round {r + 1} {w:9} {s:8} {rps:10.0f} req/s "
                          f"{cpu / n * 1e6:6.2f} us CPU/req", file=sys.stderr)
    finally:
        stop_all()

    def med(s, w, i):
        return statistics.median(x[i] for x in results[(s, w)])

    print(f"\nsockserv-httpd --mode {args.mode} --threads {args.threads}, "
          f"h2o num-threads {args.threads}; wrk -t{args.wrk_threads} "
          f"-c{args.connections} -d{args.duration:g}s, median of "
          f"{args.rounds} rounds")
    rows = []
    for w in WORKLOADS:
        c, n, h = (med(s, w, 0) for s in ("cache", "nocache", "h2o"))
        cc, nc, hc = (med(s, w, 1) for s in ("cache", "nocache", "h2o"))
        rows.append((w, c, n, h, c / n, c / h, cc, nc, hc))
    if args.markdown:
        print("\n| workload | cache req/s | --no-file-cache | h2o | "
              "cache / no cache | cache / h2o | CPU µs/req cache | "
              "no cache | h2o |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for w, c, n, h, rn, rh, cc, nc, hc in rows:
            print(f"| {w} | {c:,.0f} | {n:,.0f} | {h:,.0f} | {rn:.2f} | "
                  f"{rh:.2f} | {cc:.1f} | {nc:.1f} | {hc:.1f} |")
    else:
        for w, c, n, h, rn, rh, cc, nc, hc in rows:
            print(f"{w:9} cache {c:9.0f}  nocache {n:9.0f}  h2o {h:9.0f}  "
                  f"cache/nocache {rn:.2f}  cache/h2o {rh:.2f}  "
                  f"CPU us/req {cc:.1f} / {nc:.1f} / {hc:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
