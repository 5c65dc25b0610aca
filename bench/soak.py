#!/usr/bin/env python3
"""Soak test: every strategy under mixed echo and HTTP load for a while.

    python3 bench/soak.py BUILD [--duration 60] [--json FILE]

BUILD is a build directory with the examples (examples/echo/sockserv-echo,
examples/httpserver/sockserv-httpd). For each strategy (sync, fork,
thread, pool, prefork, coro) it starts four servers on loopback: a TCP echo
server, a UDP echo server, a Unix stream echo server (sockserv-echo) and
sockserv-httpd on a temporary directory of files of several sizes. Then,
for --duration seconds in all (default 60; 600 for a release), four client
processes load all 24 servers at once:

  tcp, unix  sessions of several round trips on one connection (1 byte to
             256 KiB, larger ones in 16 KiB steps), one-shot requests ended
             by a half-close, and now and then a client that sends and
             resets the connection without reading its echo
  udp        datagrams of 1 to 8,192 bytes with a sequence number, resent
             after 2 s without an answer (at most 3 tries)
  http       keep-alive sessions of GET (whole files, byte ranges), HEAD,
             POST /api/echo (Content-Length and chunked bodies) and 404s,
             plus one-request Connection: close and HTTP/1.0 requests

Every byte that comes back is compared with what was sent or what the
file holds. The first 20% of the time (at most 60 s) is warm-up: caches,
thread pools and malloc arenas reach their working size. Each server's
process tree (the server and its children: fork's per-connection
children, prefork's workers) is sampled for open descriptors
(/proc/PID/fd), threads, processes and resident memory (VmRSS, summed
over the tree) at start, once idle after the warm-up ("warm"), every
second under load ("peak") and once idle at the end.

It fails (exit status 1) when:
  - any client saw an error (a refused or reset connection, a timeout, a
    short or malformed answer, a UDP datagram unanswered after 3 tries)
    or any byte differed;
  - a server died, printed anything on stderr besides the "error
    processing request ...: Connection reset by peer / Broken pipe"
    lines that the resetting clients cause, or did not exit with status 0
    within 15 s of SIGTERM, or left a process behind;
  - idle at the end (after up to 15 s for connections to wind down), a
    server tree holds more descriptors than it did idle after the warm-up
    (compared exactly); more threads or processes than at any time in the
    warm-up (a pool may also have grown to its full --threads 4); or more
    resident memory than warm + 2 MiB + 5% (summed over its processes).

Everything stays on loopback and under one temporary directory; every
process it starts is ended by PID on the way out, pass, fail or Ctrl-C.
Orphans are caught too: the script makes itself a child subreaper, so a
server's child that outlives its parent becomes its child, is reported
and ended. Standard library only.
"""

import argparse
import ctypes
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

STRATEGIES = ["sync", "fork", "thread", "pool", "prefork", "coro"]
KINDS = ["tcp", "udp", "unix", "http"]
# RSS may end above its warm value by this much (per server tree).
RSS_SLACK_KIB = 2048
RSS_SLACK_FRACTION = 0.05
# The pool strategy starts its workers as work comes, up to --threads:
# that many (plus the serving thread) is fair at the end whenever reached.
POOL_THREADS = 4
SETTLE_SECONDS = 15.0
IO_TIMEOUT = 15.0
# The stderr lines a resetting client causes; anything else fails.
EXPECTED_STDERR = re.compile(
    r"^sockserv: error processing request from \S+: "
    r"(Connection reset by peer|Broken pipe)$")
# The files sockserv-httpd serves: name -> size.
HTTP_FILES = {"empty.txt": 0, "one.bin": 1, "small.html": 731,
              "page.bin": 4096, "medium.bin": 65537, "large.bin": 1 << 20}


# ---------------------------------------------------------------------------
# Clients (run in child processes: python3 soak.py --client SPEC)
# ---------------------------------------------------------------------------

class Tally:
    """What one client thread did; merged per server at the end."""

    def __init__(self):
        self.ops = 0
        self.bytes = 0
        self.errors = 0
        self.mismatches = 0
        self.resets = 0
        self.udp_resends = 0
        self.messages = []

    def error(self, what, mismatch=False):
        if mismatch:
            self.mismatches += 1
        else:
            self.errors += 1
        if len(self.messages) < 5:
            self.messages.append(what)


class Mismatch(Exception):
    pass


def recv_exact(sock, n):
    chunks = []
    while n > 0:
        chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            raise ConnectionError(f"end of stream with {n} bytes missing")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def recv_to_eof(sock, limit):
    chunks, total = [], 0
    while True:
        chunk = sock.recv(1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            raise Mismatch(f"more than {limit} bytes before end of stream")


def stream_size(rng):
    r = rng.random()
    if r < 0.70:
        return rng.randint(1, 256)
    if r < 0.95:
        return rng.randint(257, 16384)
    return rng.randint(16385, 256 * 1024)


def stream_connect(target):
    if target["family"] == "unix":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(IO_TIMEOUT)
        s.connect(target["address"])
    else:
        s = socket.create_connection(("127.0.0.1", target["port"]),
                                     timeout=IO_TIMEOUT)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def stream_op(target, rng, t):
    r = rng.random()
    if r < 0.03:
        # Send, then reset without reading: the server's write fails.
        s = stream_connect(target)
        try:
            s.sendall(rng.randbytes(rng.randint(1, 65536)))
            if target["family"] != "unix":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             struct.pack("ii", 1, 0))
        finally:
            s.close()
        t.resets += 1
        return 1
    if r < 0.35:
        # One request, ended by a half-close; the echo ends with EOF.
        payload = rng.randbytes(rng.randint(0, 65536))
        with stream_connect(target) as s:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            back = recv_to_eof(s, len(payload))
        if back != payload:
            raise Mismatch(f"one-shot of {len(payload)} bytes: got "
                           f"{len(back)} bytes back, differing")
        t.bytes += len(payload)
        return 1
    # A session: several round trips, large ones in 16 KiB steps so that
    # neither side ever waits for the other with full buffers.
    trips = rng.randint(1, 20)
    with stream_connect(target) as s:
        for _ in range(trips):
            payload = rng.randbytes(stream_size(rng))
            for at in range(0, len(payload), 16384):
                piece = payload[at:at + 16384]
                s.sendall(piece)
                if recv_exact(s, len(piece)) != piece:
                    raise Mismatch(f"round trip of {len(payload)} bytes "
                                   f"differs in bytes {at}..{at + len(piece)}")
            t.bytes += len(payload)
        s.shutdown(socket.SHUT_WR)
        if s.recv(1):
            raise Mismatch("bytes after the last echo")
    return trips


class UdpClient:
    def __init__(self, port):
        self.port = port
        self.sock = None
        self.seq = 0
        self.uses = 0

    def op(self, rng, t):
        if self.sock is None or self.uses >= 200:
            if self.sock:
                self.sock.close()
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.connect(("127.0.0.1", self.port))
            self.uses = 0
        self.uses += 1
        self.seq += 1
        payload = struct.pack("!Q", self.seq) + rng.randbytes(
            rng.randint(0, 8192 - 8))
        for attempt in range(3):
            if attempt:
                t.udp_resends += 1
            self.sock.send(payload)
            deadline = time.monotonic() + 2.0
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.sock.settimeout(left)
                try:
                    back = self.sock.recv(65536)
                except socket.timeout:
                    break
                if len(back) >= 8 and struct.unpack("!Q", back[:8])[0] < self.seq:
                    continue  # a late answer to an earlier datagram
                if back != payload:
                    raise Mismatch(f"datagram of {len(payload)} bytes: got "
                                   f"{len(back)} bytes back, differing")
                t.bytes += len(payload)
                return 1
        raise TimeoutError(f"datagram {self.seq} unanswered after 3 tries")

    def close(self):
        if self.sock:
            self.sock.close()


def http_check_file(status, headers, body, content, want_range=None):
    if want_range is None:
        if status != 200 or body != content:
            raise Mismatch(f"GET: status {status}, {len(body)} of "
                           f"{len(content)} bytes, differing")
    else:
        first, last = want_range
        if status != 206 or body != content[first:last + 1]:
            raise Mismatch(f"range {first}-{last}: status {status}, "
                           f"{len(body)} bytes, differing")


def http_request(conn, method, path, headers=None, body=None, chunked=False):
    conn.request(method, path, body=body, headers=headers or {},
                 encode_chunked=chunked)
    r = conn.getresponse()
    data = r.read()
    return r.status, r, data


def echo_expect(body):
    lines = body.count(b"\n") + (1 if body and not body.endswith(b"\n") else 0)
    return {"length": len(body), "lines": lines}


def http_op(target, files, rng, t):
    names = list(files)
    weights = [8, 4, 8, 6, 3, 1]
    r = rng.random()
    if r < 0.15:
        # One request, Connection: close, read to the end of the stream.
        name = rng.choices(names, weights)[0]
        version = "HTTP/1.0" if rng.random() < 0.5 else "HTTP/1.1"
        with socket.create_connection(("127.0.0.1", target["port"]),
                                      timeout=IO_TIMEOUT) as s:
            s.sendall(f"GET /{name} {version}\r\nHost: soak\r\n"
                      f"Connection: close\r\n\r\n".encode())
            raw = recv_to_eof(s, (2 << 20))
        head, sep, body = raw.partition(b"\r\n\r\n")
        status_line = head.split(b"\r\n")[0].split()
        if not sep or len(status_line) < 2 or status_line[1] != b"200":
            raise Mismatch(f"close GET /{name}: bad answer {head[:60]!r}")
        if body != files[name]:
            raise Mismatch(f"close GET /{name}: {len(body)} of "
                           f"{len(files[name])} bytes, differing")
        t.bytes += len(body)
        return 1
    conn = http.client.HTTPConnection("127.0.0.1", target["port"],
                                      timeout=IO_TIMEOUT)
    requests = rng.randint(1, 10)
    try:
        for _ in range(requests):
            k = rng.random()
            name = rng.choices(names, weights)[0]
            content = files[name]
            if k < 0.55:
                status, r, body = http_request(conn, "GET", f"/{name}")
                http_check_file(status, r, body, content)
                t.bytes += len(body)
            elif k < 0.65 and content:
                first = rng.randrange(len(content))
                last = rng.randrange(first, len(content))
                status, r, body = http_request(
                    conn, "GET", f"/{name}",
                    {"Range": f"bytes={first}-{last}"})
                http_check_file(status, r, body, content, (first, last))
                t.bytes += len(body)
            elif k < 0.72:
                status, r, body = http_request(conn, "HEAD", f"/{name}")
                length = r.getheader("Content-Length")
                if status != 200 or body or length != str(len(content)):
                    raise Mismatch(f"HEAD /{name}: status {status}, "
                                   f"Content-Length {length}")
            elif k < 0.92:
                payload = rng.randbytes(rng.randint(0, 65536))
                if rng.random() < 0.5:
                    pieces = [payload[i:i + 4000]
                              for i in range(0, len(payload), 4000)]
                    status, r, body = http_request(
                        conn, "POST", "/api/echo",
                        {"Transfer-Encoding": "chunked"}, iter(pieces),
                        chunked=True)
                else:
                    status, r, body = http_request(conn, "POST", "/api/echo",
                                                   body=payload)
                if status != 200 or json.loads(body) != echo_expect(payload):
                    raise Mismatch(f"POST /api/echo of {len(payload)} "
                                   f"bytes: status {status}, {body[:80]!r}")
                t.bytes += len(payload)
            else:
                status, r, body = http_request(conn, "GET",
                                               f"/missing-{rng.random()}")
                if status != 404:
                    raise Mismatch(f"GET of a missing file: status {status}")
            if r.will_close:
                raise Mismatch("the server closed a keep-alive connection")
    finally:
        conn.close()
    return requests


def client_main(spec):
    """One client process: a thread per (server, slot) until the deadline."""
    deadline = time.monotonic() + spec["seconds"]
    files = {}
    if spec["kind"] == "http":
        for name in HTTP_FILES:
            with open(os.path.join(spec["docroot"], name), "rb") as f:
                files[name] = f.read()
    tallies = {}
    lock = threading.Lock()

    def worker(target, index):
        rng = random.Random(f"{spec['seed']}/{target['name']}/{index}")
        t = Tally()
        udp = UdpClient(target["port"]) if spec["kind"] == "udp" else None
        while time.monotonic() < deadline:
            done = 1
            try:
                if spec["kind"] == "udp":
                    done = udp.op(rng, t)
                elif spec["kind"] == "http":
                    done = http_op(target, files, rng, t)
                else:
                    done = stream_op(target, rng, t)
            except Mismatch as e:
                t.error(f"{type(e).__name__}: {e}", mismatch=True)
            except Exception as e:  # noqa: BLE001 - every failure counts
                t.error(f"{type(e).__name__}: {e}")
                time.sleep(0.05)  # do not spin on a dead server
            t.ops += done
        if udp:
            udp.close()
        with lock:
            tallies.setdefault(target["name"], []).append(t)

    threads = [threading.Thread(target=worker, args=(target, i))
               for target in spec["targets"]
               for i in range(spec["clients_per_server"])]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    result = {}
    for name, ts in tallies.items():
        merged = {"ops": 0, "bytes": 0, "errors": 0, "mismatches": 0,
                  "resets": 0, "udp_resends": 0, "messages": []}
        for t in ts:
            for key in ("ops", "bytes", "errors", "mismatches", "resets",
                        "udp_resends"):
                merged[key] += getattr(t, key)
            merged["messages"] += t.messages
        result[name] = merged
    json.dump(result, sys.stdout)
    return 0


# ---------------------------------------------------------------------------
# Orchestration
# ---------------------------------------------------------------------------

def process_table():
    """pid -> (ppid, start time) for every process now alive. The start
    time tells a process from a later one that got its PID: on a busy
    machine (fork servers here fork tens of thousands of times a minute)
    PIDs come round again within a minute."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: split after it.
        fields = stat[stat.rfind(")") + 2:].split()
        table[int(entry)] = (int(fields[1]), int(fields[19]))
    return table


def descendants(root, table):
    children = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def sample_tree(root, table):
    """(fds, threads, processes, rss KiB) summed over root's tree."""
    fds = threads = procs = rss = 0
    for pid in descendants(root, table):
        try:
            n = len(os.listdir(f"/proc/{pid}/fd"))
            with open(f"/proc/{pid}/status") as f:
                status = f.read()
        except OSError:
            continue  # it ended between the listing and now
        m = re.search(r"^Threads:\s+(\d+)", status, re.M)
        r = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
        if not m:
            continue
        fds += n
        threads += int(m.group(1))
        rss += int(r.group(1)) if r else 0
        procs += 1
    return {"fds": fds, "threads": threads, "procs": procs, "rss": rss}


class Server:
    def __init__(self, kind, strategy, argv, workdir, port_file=None,
                 unix_path=None):
        self.kind = kind
        self.strategy = strategy
        self.name = f"{kind}/{strategy}"
        self.unix_path = unix_path
        self.port_file = port_file
        slug = self.name.replace("/", "-")
        self.out_path = os.path.join(workdir, slug + ".out")
        self.err_path = os.path.join(workdir, slug + ".err")
        self.argv = argv
        self.proc = None
        self.port = None
        self.samples = {}
        self.peak = {"fds": 0, "threads": 0, "procs": 0, "rss": 0}
        self.warmup_peak = dict(self.peak)
        self.tally = None
        self.problems = []

    def start(self):
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL)

    def wait_ready(self, deadline):
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if self.kind == "http":
                try:
                    with open(self.port_file) as f:
                        text = f.read().strip()
                    if text:
                        self.port = int(text)
                        return
                except OSError:
                    pass
            else:
                with open(self.out_path) as f:
                    text = f.read()
                if self.kind == "unix" and "serving" in text:
                    return
                m = re.search(r"127\.0\.0\.1:(\d+)", text)
                if m:
                    self.port = int(m.group(1))
                    return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start: "
                           f"{self.stderr_text()[-500:]}")

    def stderr_text(self):
        try:
            with open(self.err_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def target(self):
        t = {"name": self.name, "port": self.port, "family": "inet"}
        if self.kind == "unix":
            t.update(family="unix", address=self.unix_path)
        return t


def sample_all(servers, label=None, warming=False):
    table = process_table()
    for s in servers:
        if s.proc.poll() is not None:
            continue
        now = sample_tree(s.proc.pid, table)
        for key, value in now.items():
            s.peak[key] = max(s.peak[key], value)
            if warming:
                s.warmup_peak[key] = max(s.warmup_peak[key], value)
        if label:
            s.samples[label] = now


def settle(servers, against=None):
    """Wait until every server is idle: its counts stop changing (and, given
    a reference sample label, its descriptors are no more than then)."""
    deadline = time.monotonic() + SETTLE_SECONDS
    last = None
    while time.monotonic() < deadline:
        table = process_table()
        now = {s.name: sample_tree(s.proc.pid, table) for s in servers
               if s.proc.poll() is None}
        counts = {n: (v["fds"], v["threads"], v["procs"])
                  for n, v in now.items()}
        back = True
        if against:
            for s in servers:
                ref = s.samples.get(against)
                if ref and s.name in counts and counts[s.name][0] > ref["fds"]:
                    back = False
        if counts == last and back:
            return
        last = counts
        time.sleep(0.5)


def run_clients(script, servers, kinds, seconds, seed, docroot, workdir,
                clients_per_server, phase):
    procs = []
    for kind in kinds:
        spec = {"kind": kind, "seconds": seconds, "seed": f"{seed}/{phase}",
                "docroot": docroot, "clients_per_server": clients_per_server,
                "targets": [s.target() for s in servers if s.kind == kind]}
        if not spec["targets"]:
            continue
        out_path = os.path.join(workdir, f"client-{kind}-{phase}.out")
        out = open(out_path, "w")
        p = subprocess.Popen([sys.executable, script, "--client",
                              json.dumps(spec)], stdout=out,
                             stdin=subprocess.DEVNULL)
        out.close()
        procs.append((kind, p, out_path))
    return procs


def collect_clients(procs, timeout, servers, on_tick):
    deadline = time.monotonic() + timeout
    results = {}
    problems = []
    pending = list(procs)
    while pending:
        on_tick()
        for item in list(pending):
            kind, p, out_path = item
            if p.poll() is None:
                if time.monotonic() > deadline:
                    p.kill()
                    p.wait()
                    problems.append(f"{kind} clients did not finish in time")
                    pending.remove(item)
                continue
            pending.remove(item)
            with open(out_path) as f:
                text = f.read()
            if p.returncode != 0 or not text:
                problems.append(f"{kind} clients exited with {p.returncode}")
                continue
            results.update(json.loads(text))
        if pending:
            time.sleep(1.0)
    return results, problems


def merge_tally(a, b):
    if a is None:
        return b
    for key in ("ops", "bytes", "errors", "mismatches", "resets",
                "udp_resends"):
        a[key] += b[key]
    a["messages"] += b["messages"]
    return a


def make_docroot(path, seed):
    rng = random.Random(f"{seed}/files")
    os.makedirs(path)
    for name, size in HTTP_FILES.items():
        with open(os.path.join(path, name), "wb") as f:
            if name.endswith(".html"):
                f.write((b"<p>soak</p>\n" * (size // 12 + 1))[:size])
            else:
                f.write(rng.randbytes(size))


def set_subreaper():
    """Orphans of our servers become our children (and so are found)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_CHILD_SUBREAPER = 36
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def end_process(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def stop_servers(servers, known_pids):
    """SIGTERM each server; expect exit 0 within 15 s, and no process of its
    tree left afterwards. Returns the PIDs of processes it had to end."""
    table = process_table()
    trees = {s.name: {(pid, table[pid][1])
                      for pid in descendants(s.proc.pid, table)}
             for s in servers if s.proc.poll() is None}
    for s in servers:
        if s.proc.poll() is None:
            s.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15.0
    for s in servers:
        try:
            code = s.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            if code != 0 and "died" not in " ".join(s.problems):
                s.problems.append(f"exit status {code} after SIGTERM")
        except subprocess.TimeoutExpired:
            s.problems.append("still running 15 s after SIGTERM")
            end_process(s.proc.pid)
    # Anything of a server's tree still alive now was left behind.
    time.sleep(0.2)
    table = process_table()
    for s in servers:
        left = [pid for pid, started in trees.get(s.name, ())
                if table.get(pid, (0, None))[1] == started
                and pid != s.proc.pid and pid not in known_pids]
        if left:
            s.problems.append(f"left {len(left)} process(es) behind")
            for pid in left:
                end_process(pid)


def fmt(samples, peak, key, scale=None):
    vals = [samples.get(k, {}).get(key) for k in ("start", "warm", "end")]
    vals.append(peak.get(key))
    if scale:  # KiB shown as MiB with one decimal
        return "/".join("-" if v is None else f"{v / scale:.1f}" for v in vals)
    return "/".join("-" if v is None else str(v) for v in vals)


def main():
    parser = argparse.ArgumentParser(
        description="Soak every strategy under mixed echo and HTTP load.")
    parser.add_argument("build", nargs="?",
                        help="build directory with the examples")
    parser.add_argument("--duration", type=float, default=60.0,
                        help="seconds of load in all (default 60)")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--clients", type=int, default=2,
                        help="client threads per server (default 2)")
    parser.add_argument("--seed", default=str(int(time.time())))
    parser.add_argument("--json", help="write the results here too")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        return client_main(json.loads(args.client))
    if not args.build:
        parser.error("the build directory is required")

    echo = os.path.join(args.build, "examples/echo/sockserv-echo")
    httpd = os.path.join(args.build, "examples/httpserver/sockserv-httpd")
    for program in (echo, httpd):
        if not os.access(program, os.X_OK):
            parser.error(f"{program} is missing: build with the examples")
    strategies = [s for s in args.strategies.split(",") if s]
    kinds = [k for k in args.kinds.split(",") if k]
    for s in strategies:
        if s not in STRATEGIES:
            parser.error(f"unknown strategy {s}")
    for k in kinds:
        if k not in KINDS:
            parser.error(f"unknown kind {k}")
    warmup = min(60.0, max(2.0, args.duration * 0.2))
    main_seconds = max(1.0, args.duration - warmup)
    script = os.path.abspath(__file__)

    subreaper = set_subreaper()
    workdir = tempfile.mkdtemp(prefix="sockserv-soak.")
    servers = []
    clients = []
    failed = []

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)

    began = time.monotonic()
    try:
        docroot = os.path.join(workdir, "www")
        make_docroot(docroot, args.seed)
        for strategy in strategies:
            extra = {"prefork": ["--workers", "2"],
                     "pool": ["--threads", str(POOL_THREADS)]}.get(strategy, [])
            for kind in kinds:
                if kind == "http":
                    port_file = os.path.join(workdir, f"http-{strategy}.port")
                    argv = [httpd, "-q", "-b", "127.0.0.1", "-d", docroot,
                            "--mode", strategy, "--port-file", port_file,
                            *extra, "0"]
                    servers.append(Server(kind, strategy, argv, workdir,
                                          port_file=port_file))
                elif kind == "unix":
                    path = os.path.join(workdir, f"echo-{strategy}.sock")
                    argv = [echo, "--mode", strategy, "--unix", path, *extra]
                    servers.append(Server(kind, strategy, argv, workdir,
                                          unix_path=path))
                else:
                    argv = [echo, "--mode", strategy, "--bind", "127.0.0.1",
                            *(["--udp"] if kind == "udp" else []), *extra, "0"]
                    servers.append(Server(kind, strategy, argv, workdir))
        for s in servers:
            s.start()
        for s in servers:
            s.wait_ready(time.monotonic() + 15.0)
        print(f"soak: {len(servers)} servers ({', '.join(strategies)} x "
              f"{', '.join(kinds)}), {warmup:.0f} s warm-up + "
              f"{main_seconds:.0f} s load, seed {args.seed}", flush=True)
        time.sleep(0.5)
        sample_all(servers, "start")

        phase = "warm-up"

        def tick():
            sample_all(servers, warming=phase == "warm-up")
            for s in servers:
                if s.proc.poll() is not None and not any(
                        "died" in p for p in s.problems):
                    code = s.proc.returncode
                    why = (" - a clean stop: something sent it SIGTERM or "
                           "SIGINT" if code == 0 else
                           f" - killed by signal {-code}" if code < 0 else "")
                    tail = s.stderr_text().strip().splitlines()[-2:]
                    s.problems.append(f"died under load (status {code}"
                                      f"{why}){'; stderr: ' if tail else ''}"
                                      f"{' | '.join(tail)}")

        known = set()
        for phase, seconds in (("warm-up", warmup), ("load", main_seconds)):
            clients = run_clients(script, servers, kinds, seconds, args.seed,
                                  docroot, workdir, args.clients, phase)
            known.update(p.pid for _, p, _ in clients)
            results, problems = collect_clients(clients, seconds + 60.0,
                                                servers, tick)
            clients = []
            failed += problems
            for s in servers:
                if s.name in results:
                    s.tally = merge_tally(s.tally, results[s.name])
            settle([s for s in servers if s.proc.poll() is None],
                   against=None if phase == "warm-up" else "warm")
            sample_all(servers, "warm" if phase == "warm-up" else "end")
            print(f"soak: {phase} done after {time.monotonic() - began:.0f} s",
                  flush=True)

        stop_servers(servers, known)
    except KeyboardInterrupt as e:
        failed.append(f"interrupted ({e})")
    finally:
        # Whatever is still running, by PID: clients, servers, and any
        # orphan that came to us as subreaper.
        for _, p, _ in clients:
            if p.poll() is None:
                end_process(p.pid)
        for s in servers:
            if s.proc and s.proc.poll() is None:
                table = process_table()
                tree = descendants(s.proc.pid, table)
                for pid in reversed(tree):
                    end_process(pid)
        if subreaper:
            table = process_table()
            mine = {s.proc.pid for s in servers if s.proc}
            for pid, (ppid, _) in table.items():
                if ppid == os.getpid() and pid not in mine:
                    failed.append(f"orphan process {pid} (ended)")
                    end_process(pid)
        shutil.rmtree(workdir, ignore_errors=True)

    # ---- verdicts and the table ------------------------------------------
    rows = []
    for s in servers:
        t = s.tally or {"ops": 0, "bytes": 0, "errors": 0, "mismatches": 0,
                        "resets": 0, "udp_resends": 0, "messages": []}
        problems = list(s.problems)
        if t["errors"] or t["mismatches"]:
            problems.append(f"{t['errors']} errors, {t['mismatches']} "
                            f"mismatches: " + "; ".join(t["messages"][:3]))
        if t["ops"] == 0:
            problems.append("no operations")
        stderr = [line for line in s.stderr_text().splitlines() if line]
        unexpected = [line for line in stderr
                      if not (EXPECTED_STDERR.match(line) and t["resets"])]
        if unexpected:
            problems.append(f"stderr: {unexpected[0][:200]}"
                            + (f" (+{len(unexpected) - 1} lines)"
                               if len(unexpected) > 1 else ""))
        warm, end = s.samples.get("warm"), s.samples.get("end")
        if warm and end:
            if end["fds"] > warm["fds"]:
                problems.append(f"fds: {warm['fds']} idle after warm-up, "
                                f"{end['fds']} idle at the end")
            # Any count reached during the warm-up is fair at the end, and
            # so is a pool's full size.
            for key in ("threads", "procs"):
                bound = max(warm[key], s.warmup_peak[key])
                if key == "threads" and s.strategy == "pool":
                    bound = max(bound, 1 + POOL_THREADS)
                if end[key] > bound:
                    problems.append(f"{key}: {end[key]} idle at the end, "
                                    f"more than any time in the warm-up "
                                    f"({bound})")
            limit = warm["rss"] + RSS_SLACK_KIB + warm["rss"] * RSS_SLACK_FRACTION
            if end["rss"] > limit:
                problems.append(f"RSS grew from {warm['rss']} to {end['rss']} "
                                f"KiB (limit {limit:.0f})")
        elif not failed:
            problems.append("not sampled idle after warm-up and at the end")
        rows.append((s, t, problems))

    print()
    print("server         ops   MiB  err  fds s/w/e/pk    threads s/w/e/pk  "
          "procs s/w/e/pk  RSS MiB s/w/e/pk")
    for s, t, problems in rows:
        print(f"{s.name:12s} {t['ops']:6d} {t['bytes'] >> 20:5d} "
              f"{t['errors'] + t['mismatches']:4d}  "
              f"{fmt(s.samples, s.peak, 'fds'):15s} "
              f"{fmt(s.samples, s.peak, 'threads'):17s} "
              f"{fmt(s.samples, s.peak, 'procs'):15s} "
              f"{fmt(s.samples, s.peak, 'rss', 1024):19s} "
              f"{'ok' if not problems else 'FAIL'}")
    print("(s/w/e/pk: at start, idle after warm-up, idle at the end, peak "
          "under load; sums over each server's processes)")
    for s, t, problems in rows:
        for p in problems:
            print(f"FAIL {s.name}: {p}")
    for p in failed:
        print(f"FAIL: {p}")
    total_ops = sum(t["ops"] for _, t, _ in rows)
    total_bad = sum(1 for _, _, p in rows if p) + len(failed)
    print(f"soak: {total_ops} operations in {time.monotonic() - began:.0f} s, "
          f"seed {args.seed}: "
          f"{len(rows) - sum(1 for _, _, p in rows if p)} passed, "
          f"{sum(1 for _, _, p in rows if p)} failed")

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"seed": args.seed, "duration": args.duration,
                       "problems": failed,
                       "servers": [{"name": s.name, "tally": t,
                                    "samples": s.samples, "peak": s.peak,
                                    "problems": p} for s, t, p in rows]},
                      f, indent=1)
    return 1 if total_bad else 0


if __name__ == "__main__":
    sys.exit(main())
