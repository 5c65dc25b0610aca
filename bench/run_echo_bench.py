#!/usr/bin/env python3
"""run_echo_bench.py -- libsockserv's echo server next to Python's socketserver.

    bench/run_echo_bench.py BUILD_DIR [--rounds 5] [--duration 0.6] ...

Starts every server once, each on its own loopback port (port 0, read back
from the server's "listening on PORT" line):

  * build/bench/sockserv-bench-echo in each mode (sync, fork, thread, pool,
    prefork with a shared listening socket, prefork-reuseport with a socket
    per worker, coro), TCP and UDP;
  * bench/py_echo_server.py: Python's TCPServer, ThreadingTCPServer,
    ForkingTCPServer, UDPServer, ThreadingUDPServer, ForkingUDPServer with
    the same echo handler;
  * build/bench/reference-echo: two yardsticks without any library, shown
    beside the TCP tables (--no-reference skips them).

Then it measures them round-robin -- every server once per round, libsockserv
and its Python peer back to back -- with build/bench/echo_load, so slow
drift of a shared machine hits both sides alike. Each cell is the median
over the rounds. Three workloads:

  persistent   N connections (default 50), closed-loop 64-byte round trips
  cpr          connect per request: connect, send, receive, close
  udp          N connected UDP sockets, closed-loop datagram round trips

It prints one table per workload (round trips per second, libsockserv /
Python ratio) and can write the same as Markdown (--markdown), the raw
numbers as JSON (--json, for bench/plot_echo_bench.py) and a chart (--svg).

--vs-models measures the blocking modes alone, each against the plain C
server of its model in reference_echo.c (thread and pool against a thread
per connection, fork against a child per connection, prefork x thread
against processes x thread per connection), persistent connections,
--runs complete runs (default 2), one ratio per run.

--prefork-compare measures something else: ss_prefork with one shared
listening socket against prefork_reuseport (a socket per worker), at 2
and 4 workers, in the same three workloads plus "cpr-held" (connect per
request while one extra client holds a connection open without sending:
with sync workers that connection occupies one worker). The two are
measured back to back, their order swapped every round, and the table
gives each side's median, the ratio reuseport / shared, and how the load
was spread: the busiest and the idlest worker's share of the requests
(connections; datagrams for UDP) and of the reads (round trips), counted
by the servers themselves (sockserv-bench-echo --count-file).

The script builds nothing: pass a build directory where `cmake --build` has
made bench/echo_load, bench/sockserv-bench-echo and bench/reference-echo (a
Release build is what the numbers in docs/performance.md use). Every server
it starts is stopped by PID at the end, on Ctrl-C or SIGTERM, and on
failure (then its logs are kept and their directory is named).
"""

import argparse
import json
import os
import platform
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))

# Worker counts used everywhere, so a table row means one configuration.
MAX_CHILDREN = 64   # both forking servers: above 50 connections (default 40)
POOL_THREADS = 64   # ss_thread_pool: a worker for each of 50 connections
PREFORK_WORKERS = 2  # one per core

# name -> (argv after the program, label for tables)
LIB_SERVERS = {
    "tcp-sync": (["--mode", "sync"], "sync"),
    "tcp-fork": (["--mode", "fork", "--max-children", str(MAX_CHILDREN)],
                 "fork"),
    "tcp-thread": (["--mode", "thread"], "thread"),
    "tcp-pool": (["--mode", "pool", "--threads", str(POOL_THREADS)],
                 f"pool ({POOL_THREADS} threads)"),
    # 50 persistent connections need concurrency inside each worker.
    "tcp-prefork-thread": (["--mode", "prefork", "--workers",
                            str(PREFORK_WORKERS), "--worker-mode", "thread"],
                           f"prefork ({PREFORK_WORKERS} workers x thread)"),
    # One short request per connection: the classic sync worker.
    "tcp-prefork-sync": (["--mode", "prefork", "--workers",
                          str(PREFORK_WORKERS)],
                         f"prefork ({PREFORK_WORKERS} sync workers)"),
    # The same with a listening socket per worker (prefork_reuseport).
    "tcp-prefork-reuseport-thread": (
        ["--mode", "prefork", "--reuseport", "--workers",
         str(PREFORK_WORKERS), "--worker-mode", "thread"],
        f"prefork-reuseport ({PREFORK_WORKERS} workers x thread)"),
    "tcp-prefork-reuseport-sync": (
        ["--mode", "prefork", "--reuseport", "--workers",
         str(PREFORK_WORKERS)],
        f"prefork-reuseport ({PREFORK_WORKERS} sync workers)"),
    "tcp-coro": (["--mode", "coro"], "coro (coroutines, CPU-count loops)"),
    "udp-sync": (["--udp", "--mode", "sync"], "sync"),
    "udp-fork": (["--udp", "--mode", "fork", "--max-children",
                  str(MAX_CHILDREN)], "fork"),
    "udp-thread": (["--udp", "--mode", "thread"], "thread"),
    "udp-pool": (["--udp", "--mode", "pool", "--threads", str(POOL_THREADS)],
                 f"pool ({POOL_THREADS} threads)"),
    "udp-prefork-sync": (["--udp", "--mode", "prefork", "--workers",
                          str(PREFORK_WORKERS)],
                         f"prefork ({PREFORK_WORKERS} sync workers)"),
    "udp-prefork-reuseport-sync": (
        ["--udp", "--mode", "prefork", "--reuseport", "--workers",
         str(PREFORK_WORKERS)],
        f"prefork-reuseport ({PREFORK_WORKERS} sync workers)"),
    "udp-coro": (["--udp", "--mode", "coro"], "coro"),
}

PY_SERVERS = {
    "py-sync": (["--mode", "sync"], "TCPServer"),
    "py-thread": (["--mode", "thread"], "ThreadingTCPServer"),
    "py-fork": (["--mode", "fork", "--max-children", str(MAX_CHILDREN)],
                "ForkingTCPServer"),
    "py-udp-sync": (["--mode", "udp-sync"], "UDPServer"),
    "py-udp-thread": (["--mode", "udp-thread"], "ThreadingUDPServer"),
    "py-udp-fork": (["--mode", "udp-fork", "--max-children",
                     str(MAX_CHILDREN)], "ForkingUDPServer"),
}

# Yardsticks without any library (bench/reference_echo.c): what the
# machine and load generator allow at all, and what the thread-per-request
# model allows at best. Printed next to the tables, not in the ratios.
REF_SERVERS = {
    "ref-epoll": (["--model", "epoll"], "epoll loop, no library"),
    "ref-thread": (["--model", "thread"],
                   "blocking thread per connection, no library"),
    "ref-fork": (["--model", "fork"],
                 "blocking child per connection, no library"),
    "ref-prefork": (["--model", "prefork", "--workers", str(PREFORK_WORKERS)],
                    f"{PREFORK_WORKERS} processes x blocking thread per "
                    "connection, no library"),
}

# --vs-models: each blocking mode against the plain C server of its model
# (reference_echo.c), persistent connections: (libsockserv, model).
MODEL_ROWS = [
    ("tcp-thread", "ref-thread"),
    ("tcp-pool", "ref-thread"),
    ("tcp-fork", "ref-fork"),
    ("tcp-prefork-thread", "ref-prefork"),
]
# TCP only: reference_echo.c has no UDP server.
SUITE_REFS = {"persistent": ["ref-epoll", "ref-thread"],
              "cpr": ["ref-epoll", "ref-thread"], "udp": []}

# workload -> rows of (libsockserv server, Python peer)
SUITES = {
    "persistent": [
        ("tcp-sync", "py-sync"),
        ("tcp-fork", "py-fork"),
        ("tcp-thread", "py-thread"),
        ("tcp-pool", "py-thread"),
        ("tcp-prefork-thread", "py-fork"),
        ("tcp-prefork-reuseport-thread", "py-fork"),
        ("tcp-coro", "py-thread"),
    ],
    "cpr": [
        ("tcp-sync", "py-sync"),
        ("tcp-fork", "py-fork"),
        ("tcp-prefork-sync", "py-fork"),
        ("tcp-prefork-reuseport-sync", "py-fork"),
        ("tcp-thread", "py-thread"),
        ("tcp-pool", "py-thread"),
        ("tcp-coro", "py-thread"),
    ],
    "udp": [
        ("udp-sync", "py-udp-sync"),
        ("udp-fork", "py-udp-fork"),
        ("udp-thread", "py-udp-thread"),
        ("udp-pool", "py-udp-thread"),
        ("udp-prefork-sync", "py-udp-fork"),
        ("udp-prefork-reuseport-sync", "py-udp-fork"),
        ("udp-coro", "py-udp-thread"),
    ],
}


def suite_title(suite, args):
    if suite == "persistent":
        return (f"TCP, {args.connections} persistent connections, "
                f"{args.size}-byte messages")
    if suite == "cpr":
        return (f"TCP, connect per request, {args.cpr_connections} "
                f"concurrent clients, {args.size}-byte messages")
    return (f"UDP, {args.udp_connections} concurrent clients, "
            f"{args.size}-byte datagrams")


class Servers:
    """The servers this run started: started once, stopped by PID."""

    def __init__(self, logdir):
        self.logdir = logdir
        self.procs = {}  # name -> (Popen, port)

    def start(self, name, argv):
        log = open(os.path.join(self.logdir, name + ".log"), "wb")
        # A session of its own: a forking server's children share the
        # process group, so stop() can end any it leaves behind, and a
        # Ctrl-C in the terminal reaches only this script.
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log,
                                stdin=subprocess.DEVNULL,
                                start_new_session=True)
        log.close()
        self.procs[name] = (proc, None)
        ready, _, _ = select.select([proc.stdout], [], [], 10.0)
        line = proc.stdout.readline().decode() if ready else ""
        if not line.startswith("listening on "):
            raise RuntimeError(
                f"{name} did not start ({' '.join(argv)}); see "
                f"{os.path.join(self.logdir, name + '.log')}")
        port = int(line.split()[2])
        self.procs[name] = (proc, port)
        return port

    def port(self, name):
        return self.procs[name][1]

    def alive(self, name):
        return self.procs[name][0].poll() is None

    def stop(self):
        for proc, _ in self.procs.values():
            if proc.poll() is None:
                proc.terminate()  # SIGTERM to this PID: a clean stop
        deadline = time.monotonic() + 5.0
        for proc, _ in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            # Anything left in the server's own process group (the server
            # itself if it ignored SIGTERM, or forked children) ends now.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                pass
            if proc.stdout:
                proc.stdout.close()
        self.procs.clear()


def run_load(args, suite, port):
    threads = args.cpr_load_threads if suite == "cpr" else args.load_threads
    argv = [args.echo_load, "--host", "127.0.0.1", "--port", str(port),
            "--size", str(args.size), "--duration", str(args.duration),
            "--warmup", str(args.warmup), "--threads", str(threads)]
    if suite == "persistent":
        argv += ["--connections", str(args.connections)]
    elif suite == "cpr":
        argv += ["--connections", str(args.cpr_connections),
                 "--connect-per-request"]
    else:
        argv += ["--connections", str(args.udp_connections), "--udp"]
    timeout = args.duration + args.warmup + 30
    out = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         timeout=timeout, check=False)
    text = out.stdout.decode()
    if out.returncode != 0 or not text.startswith("echo_load "):
        raise RuntimeError(f"echo_load failed ({' '.join(argv)}): "
                           f"{out.stderr.decode().strip()}")
    fields = dict(kv.split("=", 1) for kv in text.split()[1:])
    return {
        "rt_per_sec": float(fields["rt_per_sec"]),
        "errors": int(fields["errors"]),
        "mismatches": int(fields["mismatches"]),
    }


def fmt_rate(x):
    return f"{x:,.0f}"


def summarize(results, args):
    """Median per (suite, server) and the rows of every table."""
    tables = {}
    for suite, rows in SUITES.items():
        if suite not in args.suites:
            continue
        out = []
        for lib, py in rows:
            lib_runs = results[suite][lib]
            py_runs = results[suite][py]
            lib_rate = statistics.median(r["rt_per_sec"] for r in lib_runs)
            py_rate = statistics.median(r["rt_per_sec"] for r in py_runs)
            out.append({
                "mode": LIB_SERVERS[lib][1],
                "lib_server": lib,
                "python_server": py,
                "python_class": PY_SERVERS[py][1],
                "lib_rt_per_sec": lib_rate,
                "python_rt_per_sec": py_rate,
                "ratio": lib_rate / py_rate if py_rate > 0 else float("inf"),
                "lib_runs": [r["rt_per_sec"] for r in lib_runs],
                "python_runs": [r["rt_per_sec"] for r in py_runs],
                "lib_errors": sum(r["errors"] for r in lib_runs),
                "python_errors": sum(r["errors"] for r in py_runs),
                "lib_mismatches": sum(r["mismatches"] for r in lib_runs),
                "python_mismatches": sum(r["mismatches"] for r in py_runs),
            })
        tables[suite] = out
    return tables


def summarize_references(results, args):
    refs = {}
    for suite in args.suites:
        refs[suite] = [{"server": name, "label": REF_SERVERS[name][1],
                        "rt_per_sec": statistics.median(
                            r["rt_per_sec"] for r in results[suite][name])}
                       for name in SUITE_REFS[suite]
                       if name in results[suite]]
    return refs


def text_tables(tables, refs, args):
    lines = []
    for suite, rows in tables.items():
        lines.append("")
        lines.append(suite_title(suite, args))
        lines.append(f"  {'mode':<38} {'libsockserv':>12}  "
                     f"{'Python peer':<20} {'Python':>10} {'ratio':>7}  "
                     f"errors (lib/py)")
        for r in rows:
            lines.append(
                f"  {r['mode']:<38} {fmt_rate(r['lib_rt_per_sec']):>12}  "
                f"{r['python_class']:<20} "
                f"{fmt_rate(r['python_rt_per_sec']):>10} "
                f"{r['ratio']:>6.2f}x  "
                f"{r['lib_errors']}/{r['python_errors']}"
                + ("  MISMATCHES!" if r["lib_mismatches"] or
                   r["python_mismatches"] else ""))
        for ref in refs.get(suite, []):
            lines.append(f"  reference, {ref['label']}: "
                         f"{fmt_rate(ref['rt_per_sec'])}")
    return "\n".join(lines)


def spread(runs):
    return f"{fmt_rate(min(runs))}–{fmt_rate(max(runs))}"


def markdown_tables(tables, refs, args):
    lines = []
    for suite, rows in tables.items():
        lines.append(f"**{suite_title(suite, args)}** (round trips/s, median "
                     f"of {args.rounds} rounds; min–max in brackets)")
        lines.append("")
        lines.append("| libsockserv mode | libsockserv | Python peer | "
                     "Python | ratio |")
        lines.append("|---|---:|---|---:|---:|")
        for r in rows:
            lines.append(f"| {r['mode']} | {fmt_rate(r['lib_rt_per_sec'])} "
                         f"({spread(r['lib_runs'])}) | "
                         f"`{r['python_class']}` | "
                         f"{fmt_rate(r['python_rt_per_sec'])} "
                         f"({spread(r['python_runs'])}) | "
                         f"**{r['ratio']:.2f}×** |")
        for ref in refs.get(suite, []):
            lines.append(f"| *{ref['label']}* | "
                         f"*{fmt_rate(ref['rt_per_sec'])}* | | | |")
        lines.append("")
    return "\n".join(lines)


def machine_description():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


# ---- --prefork-compare: one shared listening socket vs prefork_reuseport --

COMPARE_WORKERS = (2, 4)
# suite -> (echo_load workload, server arguments, what the workers run)
COMPARE_SUITES = {
    # Many connections at once need threads inside each worker.
    "persistent": ("persistent", ["--worker-mode", "thread"],
                   "workers x thread"),
    "cpr": ("cpr", [], "sync workers"),
    # The same, while one more client holds a connection without sending:
    # a sync worker is then busy with it for the whole run.
    "cpr-held": ("cpr", [], "sync workers"),
    "udp": ("udp", ["--udp"], "sync workers"),
}
COMPARE_SIDES = ("shared", "reuseport")
COUNT_ENTRY = struct.Struct("<iIQQ")  # bench/echo_server.c's count_entry
COUNT_ENTRY_SIZE = 64


def compare_title(suite, args):
    if suite == "cpr-held":
        return (suite_title("cpr", args) + ", one more client holding an "
                "idle connection")
    return suite_title(COMPARE_SUITES[suite][0], args)


def compare_server_name(suite, workers, side):
    # cpr-held uses the cpr servers: the held connection ends with its run.
    base = "cpr" if suite == "cpr-held" else suite
    return f"{base}-w{workers}-{side}"


def read_counts(path):
    """pid -> (requests, reads) from a --count-file table."""
    with open(path, "rb") as f:
        data = f.read()
    counts = {}
    for off in range(0, len(data) - COUNT_ENTRY_SIZE + 1, COUNT_ENTRY_SIZE):
        pid, _, requests, reads = COUNT_ENTRY.unpack_from(data, off)
        if pid:
            counts[pid] = (requests, reads)
    return counts


def spread_shares(before, after, index, workers):
    """(busiest, idlest) worker's share of what was counted between two
    snapshots; a worker that handled nothing has no entry and counts 0."""
    deltas = sorted((after[p][index] - before.get(p, (0, 0))[index]
                     for p in after), reverse=True)
    deltas = [d for d in deltas if d > 0]
    total = sum(deltas)
    if total == 0:
        return (0.0, 0.0)
    idlest = deltas[-1] if len(deltas) >= workers else 0
    return (deltas[0] / total, idlest / total)


def hold_connection(port):
    """A client that sends one byte, gets it back (so a worker has taken
    the connection) and then stays silent: it holds that worker."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"x")
    if s.recv(1) != b"x":
        raise RuntimeError("held connection: no echo")
    return s


def run_compare(args, servers, logdir):
    names = {}  # server name -> (argv, count file)
    for suite in args.compare_suites:
        for w in args.compare_workers:
            for side in COMPARE_SIDES:
                name = compare_server_name(suite, w, side)
                count = os.path.join(logdir, name + ".counts")
                argv = ([args.lib_server, "--mode", "prefork", "--workers",
                         str(w), "--count-file", count]
                        + COMPARE_SUITES[suite][1]
                        + (["--reuseport"] if side == "reuseport" else []))
                names[name] = (argv, count)
    for name, (argv, _) in names.items():
        servers.start(name, argv)
    plan = [(suite, w) for suite in args.compare_suites
            for w in args.compare_workers]
    per_run = 2 * (args.duration + args.warmup + 0.1)
    print(f"prefork comparison: {len(plan)} pairs x {args.rounds} rounds x "
          f"{per_run:.2f} s ~ {len(plan) * args.rounds * per_run:.0f} s; "
          f"server logs in {logdir}", file=sys.stderr)
    results = {}  # (suite, workers, side) -> list of run dicts
    for round_no in range(args.rounds):
        for suite, w in plan:
            # Back to back, the order swapped every round, so neither
            # side always runs on the heels of the other.
            sides = COMPARE_SIDES if round_no % 2 == 0 else \
                COMPARE_SIDES[::-1]
            for side in sides:
                name = compare_server_name(suite, w, side)
                if not servers.alive(name):
                    raise RuntimeError(f"server {name} died; see {logdir}")
                port = servers.port(name)
                count_file = names[name][1]
                held = hold_connection(port) if suite == "cpr-held" else None
                before = read_counts(count_file)
                try:
                    r = run_load(args, COMPARE_SUITES[suite][0], port)
                finally:
                    if held:
                        held.close()
                after = read_counts(count_file)
                r["request_shares"] = spread_shares(before, after, 0, w)
                r["read_shares"] = spread_shares(before, after, 1, w)
                results.setdefault((suite, w, side), []).append(r)
                print(f"  round {round_no + 1} {suite:<10} w={w} "
                      f"{side:<9} {fmt_rate(r['rt_per_sec']):>10} rt/s  "
                      f"busiest worker {r['request_shares'][0]:.0%} of "
                      f"requests, {r['read_shares'][0]:.0%} of reads"
                      + (f"  errors={r['errors']}" if r["errors"] else ""),
                      file=sys.stderr)
    return results


def summarize_compare(results, args):
    rows = []
    for suite in args.compare_suites:
        for w in args.compare_workers:
            row = {"suite": suite, "title": compare_title(suite, args),
                   "workers": w, "what": COMPARE_SUITES[suite][2]}
            for side in COMPARE_SIDES:
                runs = results[(suite, w, side)]
                rates = [r["rt_per_sec"] for r in runs]
                row[side] = {
                    "median": statistics.median(rates),
                    "runs": rates,
                    "errors": sum(r["errors"] for r in runs),
                    "mismatches": sum(r["mismatches"] for r in runs),
                    # median over rounds of the busiest / idlest share
                    "requests_busiest": statistics.median(
                        r["request_shares"][0] for r in runs),
                    "requests_idlest": statistics.median(
                        r["request_shares"][1] for r in runs),
                    "reads_busiest": statistics.median(
                        r["read_shares"][0] for r in runs),
                    "reads_idlest": statistics.median(
                        r["read_shares"][1] for r in runs),
                }
            shared, reuse = row["shared"]["runs"], row["reuseport"]["runs"]
            row["ratio"] = (row["reuseport"]["median"] / row["shared"]["median"]
                            if row["shared"]["median"] > 0 else float("inf"))
            # Each round's pair was measured back to back: their ratios
            # show how much of the difference is noise.
            pair = [b / a for a, b in zip(shared, reuse) if a > 0]
            row["round_ratios"] = pair
            rows.append(row)
    return rows


def share_text(side):
    return (f"{side['requests_busiest']:.0%}/{side['requests_idlest']:.0%}",
            f"{side['reads_busiest']:.0%}/{side['reads_idlest']:.0%}")


def compare_text(rows, args):
    lines = ["", f"prefork: shared listening socket vs prefork_reuseport; "
             f"round trips/s, median of {args.rounds} rounds of "
             f"{args.duration:g} s; ratio = reuseport / shared; shares = "
             f"busiest/idlest worker's share of requests, of reads"]
    title = None
    for r in rows:
        if r["title"] != title:
            title = r["title"]
            lines += ["", title,
                      f"  {'workers':<22} {'shared':>10} {'reuseport':>10} "
                      f"{'ratio':>6} {'per round':>12}  "
                      f"{'shares shared':>17}  {'shares reuseport':>17}  "
                      f"errors"]
        sh, ru = r["shared"], r["reuseport"]
        rr = r["round_ratios"]
        lines.append(
            f"  {str(r['workers']) + ' ' + r['what']:<22} "
            f"{fmt_rate(sh['median']):>10} {fmt_rate(ru['median']):>10} "
            f"{r['ratio']:>5.2f}x "
            f"{min(rr):>5.2f}–{max(rr):<5.2f}  "
            f"{'  '.join(share_text(sh)):>17}  "
            f"{'  '.join(share_text(ru)):>17}  "
            f"{sh['errors']}/{ru['errors']}"
            + ("  MISMATCHES!" if sh["mismatches"] or ru["mismatches"]
               else ""))
    return "\n".join(lines)


def compare_markdown(rows, args):
    lines = []
    title = None
    for r in rows:
        if r["title"] != title:
            if title is not None:
                lines.append("")
            title = r["title"]
            lines += [f"**{title}** (round trips/s, median of {args.rounds} "
                      f"rounds; min–max in brackets)", "",
                      "| workers | shared socket | reuseport | ratio "
                      "(per round) | busiest/idlest worker, shared: "
                      "requests, reads | reuseport: requests, reads |",
                      "|---|---:|---:|---:|---:|---:|"]
        sh, ru = r["shared"], r["reuseport"]
        rr = r["round_ratios"]
        lines.append(
            f"| {r['workers']} {r['what']} | {fmt_rate(sh['median'])} "
            f"({spread(sh['runs'])}) | {fmt_rate(ru['median'])} "
            f"({spread(ru['runs'])}) | **{r['ratio']:.2f}×** "
            f"({min(rr):.2f}–{max(rr):.2f}) | "
            f"{', '.join(share_text(sh))} | {', '.join(share_text(ru))} |")
    lines.append("")
    return "\n".join(lines)


def parse_args():
    p = argparse.ArgumentParser(
        description="Echo benchmark: libsockserv vs Python's socketserver.")
    p.add_argument("build_dir", help="CMake build directory (already built)")
    p.add_argument("--rounds", type=int, default=5,
                   help="measurements of every server (default 5)")
    p.add_argument("--duration", type=float, default=0.6,
                   help="measured seconds per run (default 0.6)")
    p.add_argument("--warmup", type=float, default=0.2,
                   help="unmeasured seconds before each run (default 0.2)")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--connections", type=int, default=50,
                   help="persistent connections (default 50)")
    p.add_argument("--cpr-connections", type=int, default=16,
                   help="concurrent connect-per-request clients (default 16)")
    p.add_argument("--udp-connections", type=int, default=50)
    p.add_argument("--load-threads", type=int, default=1,
                   help="echo_load epoll threads for persistent and UDP "
                   "(default 1: one thread already outruns every server)")
    p.add_argument("--cpr-load-threads", type=int, default=2,
                   help="echo_load threads for connect-per-request (default "
                   "2: connect() is costly, one thread caps near the "
                   "servers' rate)")
    p.add_argument("--no-reference", action="store_true",
                   help="skip the yardstick servers of reference_echo.c")
    p.add_argument("--suites", default="persistent,cpr,udp",
                   help="comma-separated subset of persistent,cpr,udp")
    p.add_argument("--python", default=sys.executable,
                   help="interpreter for py_echo_server.py")
    p.add_argument("--json", help="write raw results here")
    p.add_argument("--markdown", help="write the tables as Markdown here")
    p.add_argument("--svg", help="write a bar chart here "
                   "(bench/plot_echo_bench.py)")
    p.add_argument("--vs-models", action="store_true",
                   help="only the blocking modes (thread, pool, fork, "
                   "prefork) against the plain C server of each model "
                   "(reference_echo.c), persistent connections; --runs "
                   "complete runs of --rounds rounds each")
    p.add_argument("--runs", type=int, default=2,
                   help="with --vs-models: how many runs (default 2)")
    p.add_argument("--prefork-compare", action="store_true",
                   help="instead: ss_prefork with a shared listening socket "
                   "vs prefork_reuseport, and how each spreads the load")
    p.add_argument("--compare-suites", default="persistent,cpr,cpr-held,udp",
                   help="with --prefork-compare: a subset of "
                   "persistent,cpr,cpr-held,udp")
    p.add_argument("--compare-workers", default=",".join(
                   str(w) for w in COMPARE_WORKERS),
                   help="with --prefork-compare: worker counts (default "
                   "2,4)")
    args = p.parse_args()
    args.compare_suites = [s for s in args.compare_suites.split(",") if s]
    for s in args.compare_suites:
        if s not in COMPARE_SUITES:
            p.error(f"unknown --compare-suites entry {s!r}")
    try:
        args.compare_workers = [int(w) for w in
                                args.compare_workers.split(",") if w]
    except ValueError:
        p.error("--compare-workers: comma-separated counts")
    if not args.compare_workers or min(args.compare_workers) < 1:
        p.error("--compare-workers: counts of at least 1")
    args.suites = [s for s in args.suites.split(",") if s]
    for s in args.suites:
        if s not in SUITES:
            p.error(f"unknown suite {s!r}")
    bench = os.path.join(args.build_dir, "bench")
    args.echo_load = os.path.join(bench, "echo_load")
    args.lib_server = os.path.join(bench, "sockserv-bench-echo")
    args.ref_server = os.path.join(bench, "reference-echo")
    for exe in (args.echo_load, args.lib_server, args.ref_server):
        if not os.access(exe, os.X_OK):
            p.error(f"{exe} not found: build first (cmake --build "
                    f"{args.build_dir})")
    if args.rounds < 1 or args.duration <= 0:
        p.error("--rounds and --duration must be positive")
    return args


def main():
    args = parse_args()
    logdir = tempfile.mkdtemp(prefix="sockserv-bench-")
    servers = Servers(logdir)

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    # Explicitly, because a shell starts background jobs with SIGINT
    # ignored, and Python then leaves it ignored.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if args.prefork_compare:
        return main_compare(args, servers, logdir)
    if args.vs_models:
        return main_models(args, servers, logdir)
    try:
        # Which servers, in which order: each suite's rows, libsockserv
        # then its Python peer, each server measured once per round.
        plan = []
        for suite in args.suites:
            seen = set()
            for lib, py in SUITES[suite]:
                for name in (lib, py):
                    if name not in seen:
                        seen.add(name)
                        plan.append((suite, name))
            if not args.no_reference:
                plan += [(suite, name) for name in SUITE_REFS[suite]]
        for _, name in plan:
            if name in servers.procs:
                continue
            if name in LIB_SERVERS:
                argv = [args.lib_server] + LIB_SERVERS[name][0]
            elif name in REF_SERVERS:
                argv = [args.ref_server] + REF_SERVERS[name][0]
            else:
                argv = ([args.python, os.path.join(HERE, "py_echo_server.py")]
                        + PY_SERVERS[name][0])
            servers.start(name, argv)

        per_run = args.duration + args.warmup + 0.1
        print(f"echo benchmark: {len(plan)} runs x {args.rounds} rounds x "
              f"{per_run:.2f} s ~ {len(plan) * args.rounds * per_run:.0f} s; "
              f"server logs in {logdir}", file=sys.stderr)
        results = {s: {} for s in args.suites}
        for round_no in range(args.rounds):
            for suite, name in plan:
                if not servers.alive(name):
                    raise RuntimeError(f"server {name} died; see {logdir}")
                r = run_load(args, suite, servers.port(name))
                results[suite].setdefault(name, []).append(r)
                print(f"  round {round_no + 1} {suite:<10} {name:<20} "
                      f"{fmt_rate(r['rt_per_sec']):>10} rt/s"
                      + (f"  errors={r['errors']}" if r["errors"] else "")
                      + (f"  MISMATCHES={r['mismatches']}"
                         if r["mismatches"] else ""),
                      file=sys.stderr)
    except KeyboardInterrupt:
        print("interrupted; stopping servers", file=sys.stderr)
        servers.stop()
        shutil.rmtree(logdir, ignore_errors=True)
        return 130
    except Exception as e:  # report, then stop what we started
        print(f"run_echo_bench: {e}", file=sys.stderr)
        servers.stop()
        return 1
    servers.stop()
    shutil.rmtree(logdir, ignore_errors=True)  # kept only after a failure

    tables = summarize(results, args)
    refs = summarize_references(results, args)
    print(f"\nround trips per second, median of {args.rounds} rounds of "
          f"{args.duration:g} s; ratio = libsockserv / Python")
    print(text_tables(tables, refs, args))
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(markdown_tables(tables, refs, args))
    if args.json:
        settings = {k: getattr(args, k) for k in (
            "rounds", "duration", "warmup", "size", "connections",
            "cpr_connections", "udp_connections", "load_threads",
            "cpr_load_threads")}
        with open(args.json, "w") as f:
            json.dump({"machine": machine_description(),
                       "settings": settings,
                       "titles": {s: suite_title(s, args) for s in tables},
                       "tables": tables,
                       "references": refs}, f, indent=1)
    if args.svg:
        sys.path.insert(0, HERE)
        import plot_echo_bench
        with open(args.svg, "w") as f:
            f.write(plot_echo_bench.svg({
                "titles": {s: suite_title(s, args) for s in tables},
                "tables": tables, "references": refs}))
    return 0


def main_models(args, servers, logdir):
    """--vs-models: ratio of each blocking mode to its plain C model."""
    names = []
    for lib, ref in MODEL_ROWS:
        names += [n for n in (lib, ref) if n not in names]
    runs = []
    try:
        for name in names:
            prog = args.lib_server if name in LIB_SERVERS else args.ref_server
            table = LIB_SERVERS if name in LIB_SERVERS else REF_SERVERS
            servers.start(name, [prog] + table[name][0])
        for run_no in range(args.runs):
            results = {}
            for round_no in range(args.rounds):
                # Rotated each round, so no server always runs right after
                # the same neighbour: a forking server's 50 children still
                # exiting, or a pool's threads going back to sleep, land
                # on every server in turn instead of always on one.
                k = (run_no * args.rounds + round_no) % len(names)
                for name in names[k:] + names[:k]:
                    if not servers.alive(name):
                        raise RuntimeError(f"server {name} died; see {logdir}")
                    r = run_load(args, "persistent", servers.port(name))
                    results.setdefault(name, []).append(r["rt_per_sec"])
                    print(f"  run {run_no + 1} round {round_no + 1} "
                          f"{name:<20} {fmt_rate(r['rt_per_sec']):>10} rt/s",
                          file=sys.stderr)
            runs.append({n: statistics.median(v) for n, v in results.items()})
    except KeyboardInterrupt:
        servers.stop()
        return 130
    except Exception as e:  # report, then stop what we started
        print(f"run_echo_bench: {e}", file=sys.stderr)
        servers.stop()
        return 1
    servers.stop()
    shutil.rmtree(logdir, ignore_errors=True)
    print(f"\necho, {args.size} B over {args.connections} persistent "
          f"connections; round trips/s, median of {args.rounds} rounds of "
          f"{args.duration:g} s per run; ratio = libsockserv / plain C model")
    head = f"  {'libsockserv mode':<34} {'model':<14}"
    for i in range(len(runs)):
        head += f" {'run ' + str(i + 1) + ' lib':>12} {'model':>10} {'ratio':>6}"
    print(head)
    md = ["| libsockserv mode | plain C model | "
          + " | ".join(f"run {i + 1}: lib / model = ratio"
                       for i in range(len(runs))) + " |",
          "|---|---|" + "---:|" * len(runs)]
    for lib, ref in MODEL_ROWS:
        line = f"  {LIB_SERVERS[lib][1]:<34} {ref:<14}"
        cells = []
        for r in runs:
            ratio = r[lib] / r[ref] if r[ref] > 0 else float("inf")
            line += (f" {fmt_rate(r[lib]):>12} {fmt_rate(r[ref]):>10} "
                     f"{ratio:>5.2f}x")
            cells.append(f"{fmt_rate(r[lib])} / {fmt_rate(r[ref])} = "
                         f"**{ratio:.2f}×**")
        print(line)
        md.append(f"| {LIB_SERVERS[lib][1]} | {ref} | "
                  + " | ".join(cells) + " |")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write("\n".join(md) + "\n")
    return 0


def main_compare(args, servers, logdir):
    try:
        results = run_compare(args, servers, logdir)
    except KeyboardInterrupt:
        print("interrupted; stopping servers", file=sys.stderr)
        servers.stop()
        shutil.rmtree(logdir, ignore_errors=True)
        return 130
    except Exception as e:  # report, then stop what we started
        print(f"run_echo_bench: {e}", file=sys.stderr)
        servers.stop()
        return 1
    servers.stop()
    shutil.rmtree(logdir, ignore_errors=True)
    rows = summarize_compare(results, args)
    print(compare_text(rows, args))
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(compare_markdown(rows, args))
    if args.json:
        settings = {k: getattr(args, k) for k in (
            "rounds", "duration", "warmup", "size", "connections",
            "cpr_connections", "udp_connections", "load_threads",
            "cpr_load_threads", "compare_workers", "compare_suites")}
        with open(args.json, "w") as f:
            json.dump({"machine": machine_description(),
                       "settings": settings, "prefork_compare": rows},
                      f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
