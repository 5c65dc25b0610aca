#!/usr/bin/env python3
"""Scale-out recipe, tested: two sockserv-httpd behind nginx.

    python3 tests/e2e/nginx_scaleout.py build/examples/httpserver/sockserv-httpd

What docs/deployment.md ("Behind a load balancer") describes, run for real
on loopback:

  client (127.0.0.2) --> nginx stream proxy (127.0.0.1:P, proxy_protocol on)
                           |--> sockserv-httpd #1  --mode thread
                           `--> sockserv-httpd #2  --mode coro
                                (--proxy-protocol --trusted-proxy 127.0.0.1)

The client binds to 127.0.0.2, so the address the instances log can be
told from nginx's own (127.0.0.1): it reaches them only through the PROXY
header. Checks, one line each:
  1. both instances serve (each has a different file at the same path);
  2. a keep-alive connection stays on one instance;
  3. every access-log line names the real client, 127.0.0.2;
  4. a connection straight to an instance is refused: without a header
     from the trusted proxy, and from an untrusted address with one;
  5. after SIGKILL of instance #1, 200 requests all succeed (nginx's
     proxy_next_upstream moves the failed connect to #2 and max_fails=1
     marks #1 down), and nginx's error log shows it stopped trying #1.

Needs nginx with the stream module (Debian: nginx + libnginx-mod-stream;
.ci/run installs them). nginx runs in the foreground as one process
(daemon off, master_process off) with its config, pid file and error log
in a temporary directory, so no root is needed and every process started
here is killed by PID on the way out, pass or fail. Bounded: 60 s.
"""
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

CLIENT_ADDRESS = "127.0.0.2"  # ours; nginx connects from 127.0.0.1
TIMEOUT = 5  # seconds, per client call and per wait
DEADLINE = 60  # seconds, the whole script
AFTER_KILL = 200  # requests that must all succeed with one instance dead
STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"

ACCESS_LINE = re.compile(rb'^(\S+) - - \[[^]]*\] "GET (\S+) HTTP/1\.[01]" (\d+)')


class CheckFailed(Exception):
    pass


class OutOfTime(Exception):
    pass


def check(cond, what, detail=""):
    if not cond:
        raise CheckFailed(what + (": " + detail if detail else ""))


passed = 0
children = []  # every process started here; main() stops them all


def start(args, **kwargs):
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, **kwargs)
    children.append(proc)
    return proc


def ok(what):
    global passed
    passed += 1
    print(f"ok   {what}", flush=True)


def wait_for(cond, what, seconds=TIMEOUT):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.02)
    raise CheckFailed(f"timed out waiting for {what}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Httpd:
    def __init__(self, binary, workdir, name, mode):
        self.name = name
        self.root = os.path.join(workdir, name)
        os.mkdir(self.root)
        with open(os.path.join(self.root, "who.txt"), "w") as f:
            f.write(name + "\n")
        self.port_file = os.path.join(workdir, name + ".port")
        self.err_path = os.path.join(workdir, name + ".log")
        self.err = open(self.err_path, "wb")
        self.out = open(os.path.join(workdir, name + ".out"), "wb")
        self.proc = start(
            [binary, "0", "-b", "127.0.0.1", "-d", self.root, "--mode", mode,
             "--proxy-protocol", "--trusted-proxy", "127.0.0.1",
             "--port-file", self.port_file],
            stdout=self.out, stderr=self.err)
        wait_for(lambda: os.path.exists(self.port_file) or
                 self.proc.poll() is not None, f"{name} to listen")
        check(self.proc.poll() is None, f"{name} exited at start",
              self.log().decode(errors="replace"))
        with open(self.port_file) as f:
            self.port = int(f.read())

    def log(self):
        with open(self.err_path, "rb") as f:
            return f.read()

    def access_lines(self):
        return [m for m in map(ACCESS_LINE.match, self.log().splitlines())
                if m]


class Nginx:
    def __init__(self, workdir, upstreams):
        self.workdir = workdir
        self.conf = os.path.join(workdir, "nginx.conf")
        self.err_path = os.path.join(workdir, "nginx-error.log")
        self.proc = None
        # nginx cannot listen on port 0 and tell: pick a free port, and
        # pick again if someone takes it first.
        for _ in range(3):
            self.port = free_port()
            self._write_conf(upstreams)
            self.proc = start(
                ["nginx", "-p", workdir, "-c", self.conf, "-e", self.err_path],
                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
            if self._wait_listening():
                return
            self.stop()
        raise CheckFailed("nginx did not start", self.log())

    def _write_conf(self, upstreams):
        servers = "\n".join(
            f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=30s;"
            for p in upstreams)
        with open(self.conf, "w") as f:
            f.write(f"""\
load_module {STREAM_MODULE};
daemon off;
master_process off;
worker_processes 1;
pid {self.workdir}/nginx.pid;
error_log {self.err_path} info;
events {{ worker_connections 256; }}
stream {{
    upstream sockserv_httpd {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{self.port};
        proxy_pass sockserv_httpd;
        proxy_protocol on;
        proxy_connect_timeout 2s;
        proxy_next_upstream on;
        proxy_next_upstream_tries 2;
    }}
}}
""")

    def _wait_listening(self):
        end = time.monotonic() + TIMEOUT
        while time.monotonic() < end and self.proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", self.port),
                                         timeout=1).close()
                return True
            except OSError:
                time.sleep(0.05)
        return False

    def log(self):
        try:
            with open(self.err_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        stop_process(self.proc)


def stop_process(proc):
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=3)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def get(port, path="/who.txt", conn=None):
    """One GET through nginx from CLIENT_ADDRESS; (status, body)."""
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT,
                                          source_address=(CLIENT_ADDRESS, 0))
    try:
        conn.request("GET", path, headers={} if not own else
                     {"Connection": "close"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        if own:
            conn.close()


def refused_directly(port, source, data):
    """Send data straight to an instance; True when it closes unanswered."""
    with socket.socket() as s:
        s.settimeout(TIMEOUT)
        s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        s.sendall(data)
        try:
            return s.recv(4096) == b""
        except ConnectionResetError:
            return True


def run(binary, workdir):
    one = Httpd(binary, workdir, "instance-1", "thread")
    two = Httpd(binary, workdir, "instance-2", "coro")
    instances = [one, two]
    nginx = Nginx(workdir, [one.port, two.port])
    try:
        # 1. Both serve: nginx's default is round robin.
        seen = {}
        for _ in range(20):
            status, body = get(nginx.port)
            check(status == 200, "GET /who.txt through nginx", str(status))
            seen[body] = seen.get(body, 0) + 1
        check(set(seen) == {b"instance-1\n", b"instance-2\n"},
              "both instances answer", repr(seen))
        ok(f"both instances serve through nginx on port {nginx.port}: "
           + ", ".join(f"{k.decode().strip()} x{v}"
                       for k, v in sorted(seen.items())))

        # 2. A keep-alive connection is one upstream connection.
        conn = http.client.HTTPConnection("127.0.0.1", nginx.port,
                                          timeout=TIMEOUT,
                                          source_address=(CLIENT_ADDRESS, 0))
        bodies = {get(nginx.port, conn=conn)[1] for _ in range(5)}
        conn.close()
        check(len(bodies) == 1, "keep-alive stays on one instance",
              repr(bodies))
        ok("5 requests on one keep-alive connection, one instance")

        # 3. The access logs name the real client, never nginx.
        wait_for(lambda: sum(len(i.access_lines()) for i in instances) >= 25,
                 "25 access-log lines")
        clients = {m.group(1) for i in instances for m in i.access_lines()}
        check(clients == {CLIENT_ADDRESS.encode()},
              "access logs name the client", repr(clients))
        ok(f"25 access-log lines, all from {CLIENT_ADDRESS} (nginx "
           "connects from 127.0.0.1)")

        # 4. Straight to an instance: the trusted proxy's address without
        # a header, and an untrusted address with a header.
        check(refused_directly(two.port, "127.0.0.1",
                               b"GET /who.txt HTTP/1.0\r\n\r\n"),
              "no header from 127.0.0.1 is refused")
        check(refused_directly(two.port, CLIENT_ADDRESS,
                               b"PROXY TCP4 192.0.2.1 127.0.0.1 1 2\r\n"
                               b"GET /who.txt HTTP/1.0\r\n\r\n"),
              "a header from an untrusted address is refused")
        wait_for(lambda: b"Permission denied" in two.log() and
                 b"Protocol error" in two.log(), "two refusal reports")
        ok("straight to an instance: no header, or an untrusted sender, "
           "refused and reported")

        # 5. Kill #1 and keep going.
        one.proc.kill()
        one.proc.wait(timeout=TIMEOUT)
        before = len(two.access_lines())
        failures = []
        start = time.monotonic()
        for n in range(AFTER_KILL):
            try:
                status, body = get(nginx.port)
                if status != 200 or body != b"instance-2\n":
                    failures.append(f"#{n}: {status} {body!r}")
            except (OSError, http.client.HTTPException) as e:
                failures.append(f"#{n}: {e!r}")
        took = time.monotonic() - start
        check(not failures, f"{len(failures)} of {AFTER_KILL} requests failed "
              "after the kill", "; ".join(failures[:5]))
        wait_for(lambda: len(two.access_lines()) >= before + AFTER_KILL,
                 "instance-2 to log every request")
        refusals = nginx.log().count("Connection refused")
        check(1 <= refusals <= 3, "nginx marked instance-1 down",
              f"{refusals} connect failures in its error log")
        ok(f"SIGKILL of instance-1: {AFTER_KILL} of {AFTER_KILL} requests "
           f"succeeded in {took:.1f} s; nginx tried the dead one {refusals} "
           "time(s), then marked it down")
        stop_process(two.proc)
        check(two.proc.returncode == 0, "instance-2 exits 0 on SIGTERM",
              str(two.proc.returncode))
        ok("instance-2 stopped cleanly on SIGTERM")
    except CheckFailed:
        for i in instances:
            sys.stderr.write(f"--- {i.name} stderr (tail)\n")
            sys.stderr.write(i.log()[-2000:].decode(errors="replace"))
        sys.stderr.write("--- nginx error log (tail)\n" + nginx.log()[-2000:])
        raise


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: nginx_scaleout.py PATH/TO/sockserv-httpd")
    binary = os.path.abspath(sys.argv[1])
    if shutil.which("nginx") is None or not os.path.exists(STREAM_MODULE):
        sys.exit("nginx_scaleout.py: needs nginx and its stream module "
                 "(Debian: apt-get install nginx libnginx-mod-stream)")

    def out_of_time(signum, frame):
        raise OutOfTime(f"not done after {DEADLINE} s")

    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(DEADLINE)
    workdir = tempfile.mkdtemp(prefix="sockserv-scaleout-")
    try:
        run(binary, workdir)
    except (CheckFailed, OutOfTime) as e:
        print(f"FAIL {e}", flush=True)
        print(f"{passed} passed, 1 failed")
        sys.exit(1)
    finally:
        signal.alarm(0)
        for proc in children:
            stop_process(proc)
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"{passed} passed, 0 failed")


if __name__ == "__main__":
    main()
