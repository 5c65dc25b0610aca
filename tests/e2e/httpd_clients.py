#!/usr/bin/env python3
"""End-to-end checks of sockserv-httpd with real HTTP clients.

tests/programs/test_httpd.c already talks raw HTTP to the server; this script adds
the clients people actually use -- Python's http.client and curl -- so
that what they send (and how they parse the answers) is covered too.

    python3 tests/e2e/httpd_clients.py build/examples/httpserver/sockserv-httpd

For each mode (thread, coro, fork) it builds a temporary directory, starts
the binary on 127.0.0.1 port 0 (--port-file tells the real port), runs the
checks, stops it with SIGTERM and expects exit status 0. One line per
check; the first failure stops the script with exit status 1 and the
server's stderr. Standard library only; curl must be on PATH.
"""
import email.utils
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

MODES = ("thread", "coro", "fork")
TIMEOUT = 10  # seconds; for every client call and every wait

TEXT = b"hello from sockserv-httpd\nsecond line\n"
BINARY = bytes(range(256)) * 4  # every byte value, 1024 bytes
LATIN1_NAME = b"caf\xe9.txt"  # not valid UTF-8: names are bytes
LATIN1_BODY = b"latin-1 name\n"
ODD_NAME = '<b>&"x".txt'
INDEX = b"<!DOCTYPE html><title>sub</title><p>index of sub</p>\n"
PASSWD_MARK = b"root:"  # in /etc/passwd; must never be served


class CheckFailed(Exception):
    pass


def check(cond, what, detail=""):
    if not cond:
        raise CheckFailed(what + (": " + detail if detail else ""))


def ok(mode, what):
    print(f"ok   [{mode}] {what}", flush=True)


def make_docroot(root):
    """The served directory. The root has no index.html, so / is a listing
    (the escaping and the hrefs are what matter); sub/ has one."""
    with open(os.path.join(root, "file.txt"), "wb") as f:
        f.write(TEXT)
    with open(os.path.join(root, "all-bytes.bin"), "wb") as f:
        f.write(BINARY)
    with open(os.path.join(os.fsencode(root), LATIN1_NAME), "wb") as f:
        f.write(LATIN1_BODY)
    with open(os.path.join(root, ODD_NAME), "wb") as f:
        f.write(b"odd name\n")
    os.mkdir(os.path.join(root, "sub"))
    with open(os.path.join(root, "sub", "index.html"), "wb") as f:
        f.write(INDEX)
    with open(os.path.join(root, "sub", "inner.txt"), "wb") as f:
        f.write(b"inner\n")
    # Well in the past, so If-Modified-Since "now" is surely after it.
    past = time.time() - 3600
    for dirpath, _, files in os.walk(os.fsencode(root)):
        for name in files:
            os.utime(os.path.join(dirpath, name), (past, past))


class Server:
    """sockserv-httpd on 127.0.0.1, port 0 (the port from --port-file),
    serving root in mode, with extra options after the usual ones (the
    HTTPS script's --tls-cert…). Its stdout and stderr go to files named
    after name (default: the mode) in workdir."""

    def __init__(self, binary, root, mode, workdir, extra=(), name=None):
        name = name or mode
        self.port_file = os.path.join(workdir, f"port-{name}")
        self.log = open(os.path.join(workdir, f"stderr-{name}"), "w+b")
        self.out = open(os.path.join(workdir, f"stdout-{name}"), "w+b")
        self.proc = subprocess.Popen(
            [binary, "0", "-b", "127.0.0.1", "-d", root, "--mode", mode,
             "-q", "--port-file", self.port_file, *extra],
            stdin=subprocess.DEVNULL, stdout=self.out, stderr=self.log)
        deadline = time.monotonic() + TIMEOUT
        self.port = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise CheckFailed(f"server exited with status "
                                  f"{self.proc.returncode} before listening")
            try:
                with open(self.port_file) as f:
                    self.port = int(f.read())
                break
            except (FileNotFoundError, ValueError):
                time.sleep(0.05)
        check(self.port is not None,
              f"no port in {self.port_file} within {TIMEOUT} s")

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self):
        """SIGTERM, then the exit status; None if it did not stop."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()  # by PID: Popen holds it
            self.proc.wait()

    def stderr(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stdout(self):
        self.out.seek(0)
        return self.out.read().decode(errors="replace")


def request(srv, method, path, headers=None, body=None, conn=None):
    """One request; returns (response, body). A fresh connection unless
    conn is given (then it is left open for the next request)."""
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", srv.port,
                                          timeout=TIMEOUT)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp, data
    finally:
        if own:
            conn.close()


def curl(args, workdir, name="curl.out"):
    """Runs curl -sS -o FILE -w '%{http_code}' ARGS; returns (code, body,
    stderr). -q first: no ~/.curlrc; --noproxy: loopback stays loopback."""
    out = os.path.join(workdir, name)
    if os.path.exists(out):
        os.unlink(out)
    cmd = ["curl", "-q", "-sS", "--noproxy", "*", "--max-time", str(TIMEOUT),
           "-o", out, "-w", "%{http_code}"] + args
    p = subprocess.run(cmd, capture_output=True, timeout=TIMEOUT + 5)
    check(p.returncode == 0, f"curl {' '.join(args)} exited {p.returncode}",
          p.stderr.decode(errors="replace").strip())
    body = b""
    if os.path.exists(out):
        with open(out, "rb") as f:
            body = f.read()
    return p.stdout.decode().strip(), body, p.stderr.decode(errors="replace")


def http_client_checks(srv, mode):
    # Listing of / : names escaped, hrefs percent-encoded.
    resp, body = request(srv, "GET", "/")
    check(resp.status == 200, "GET / is 200", f"got {resp.status}")
    check(resp.getheader("Content-Type", "").startswith("text/html"),
          "GET / is text/html", resp.getheader("Content-Type", ""))
    page = body.decode("utf-8", errors="replace")
    for expect in ("file.txt", "all-bytes.bin", 'href="sub/"',
                   "&lt;b&gt;&amp;&quot;x&quot;.txt",
                   'href="%3Cb%3E%26%22x%22.txt"', 'href="caf%E9.txt"'):
        check(expect in page, f"listing of / contains {expect!r}", page)
    check("<b>" not in page, "listing of / has no raw <b>", page)
    ok(mode, "GET / lists the directory, names escaped, hrefs encoded")

    resp, body = request(srv, "GET", "/sub/")
    check(resp.status == 200 and body == INDEX,
          "GET /sub/ serves sub/index.html", f"{resp.status} {body[:80]!r}")
    ok(mode, "GET /sub/ serves index.html")

    # A file: exact body and type.
    get, body = request(srv, "GET", "/file.txt")
    check(get.status == 200, "GET /file.txt is 200", f"got {get.status}")
    check(body == TEXT, "GET /file.txt body is exact", repr(body))
    ctype = get.getheader("Content-Type", "")
    check(ctype.startswith("text/plain"), "GET /file.txt is text/plain", ctype)
    check(get.getheader("Content-Length") == str(len(TEXT)),
          "GET /file.txt Content-Length", get.getheader("Content-Length"))
    ok(mode, f"GET /file.txt: exact body, {ctype}")

    # HEAD: the same head, no body.
    head, hbody = request(srv, "HEAD", "/file.txt")
    check(head.status == 200 and hbody == b"", "HEAD /file.txt: 200, no body",
          f"{head.status} {hbody!r}")
    for name in ("Content-Type", "Content-Length", "Last-Modified", "ETag",
                 "Accept-Ranges"):
        check(head.getheader(name) == get.getheader(name),
              f"HEAD {name} equals GET's",
              f"{head.getheader(name)!r} != {get.getheader(name)!r}")
    ok(mode, "HEAD /file.txt: same headers as GET, no body")

    # Keep-alive: two requests, one socket.
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=TIMEOUT)
    try:
        r1, b1 = request(srv, "GET", "/file.txt", conn=conn)
        sock1 = conn.sock
        check(sock1 is not None and not r1.will_close,
              "first response keeps the connection open")
        local1 = sock1.getsockname()
        r2, b2 = request(srv, "GET", "/sub/inner.txt", conn=conn)
        check(conn.sock is sock1 and conn.sock.getsockname() == local1,
              "second request went over the same connection")
        check(r1.status == r2.status == 200 and b1 == TEXT
              and b2 == b"inner\n", "both keep-alive answers are right",
              f"{r1.status} {r2.status}")
    finally:
        conn.close()
    ok(mode, "keep-alive: two requests on one HTTPConnection")

    # Directory without its slash: 301 to it with the slash.
    resp, _ = request(srv, "GET", "/sub")
    loc = resp.getheader("Location", "")
    check(resp.status == 301 and loc.endswith("/sub/"),
          "GET /sub is 301 to /sub/", f"{resp.status} Location: {loc!r}")
    ok(mode, f"GET /sub: 301, Location: {loc}")

    resp, _ = request(srv, "GET", "/file.txt/")
    check(resp.status == 404, "GET /file.txt/ is 404", f"got {resp.status}")
    ok(mode, "GET /file.txt/: 404")

    # Traversal, plain and encoded: never the password file.
    for path in ("/../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd",
                 "/../../../../../../etc/passwd"):
        resp, body = request(srv, "GET", path)
        check(PASSWD_MARK not in body, f"GET {path} does not leak passwd",
              f"status {resp.status}")
        check(resp.status in (400, 404), f"GET {path} is 400 or 404",
              f"got {resp.status}")
        ok(mode, f"GET {path}: {resp.status}, no passwd")

    # Conditional requests.
    now = email.utils.formatdate(time.time(), usegmt=True)
    resp, body = request(srv, "GET", "/file.txt",
                         {"If-Modified-Since": now})
    check(resp.status == 304 and body == b"",
          "If-Modified-Since now → 304, no body", f"got {resp.status}")
    resp, body = request(srv, "GET", "/file.txt",
                         {"If-Modified-Since": get.getheader("Last-Modified")})
    check(resp.status == 304, "If-Modified-Since Last-Modified → 304",
          f"got {resp.status}")
    ok(mode, "If-Modified-Since: 304")
    etag = get.getheader("ETag")
    check(bool(etag), "GET /file.txt has an ETag")
    resp, body = request(srv, "GET", "/file.txt", {"If-None-Match": etag})
    check(resp.status == 304 and body == b"", "If-None-Match ETag → 304",
          f"got {resp.status}")
    resp, body = request(srv, "GET", "/file.txt",
                         {"If-None-Match": '"not-the-etag"'})
    check(resp.status == 200 and body == TEXT,
          "If-None-Match other → 200", f"got {resp.status}")
    ok(mode, f"ETag {etag} + If-None-Match: 304 (other tag: 200)")

    # Ranges.
    resp, body = request(srv, "GET", "/all-bytes.bin",
                         {"Range": "bytes=0-9"})
    check(resp.status == 206 and body == BINARY[:10],
          "Range bytes=0-9 → 206, ten exact bytes", f"{resp.status} {body!r}")
    cr = resp.getheader("Content-Range")
    check(cr == f"bytes 0-9/{len(BINARY)}", "Content-Range of 0-9", repr(cr))
    ok(mode, f"Range bytes=0-9: 206, {cr}")
    resp, body = request(srv, "GET", "/all-bytes.bin",
                         {"Range": "bytes=999999-"})
    cr = resp.getheader("Content-Range")
    check(resp.status == 416, "Range bytes=999999- → 416",
          f"got {resp.status}")
    check(cr == f"bytes */{len(BINARY)}", "416 Content-Range", repr(cr))
    ok(mode, f"Range bytes=999999-: 416, {cr}")

    # The JSON API.
    resp, body = request(srv, "GET", "/api/status")
    check(resp.status == 200, "GET /api/status is 200", f"got {resp.status}")
    status = json.loads(body)
    check(status.get("mode") == mode, "/api/status mode", repr(status))
    check(isinstance(status.get("requests_served"), int)
          and status["requests_served"] > 1, "/api/status requests_served",
          repr(status))
    check(isinstance(status.get("uptime_seconds"), (int, float)),
          "/api/status uptime_seconds", repr(status))
    ok(mode, f"GET /api/status: {json.dumps(status, sort_keys=True)}")
    resp, body = request(srv, "POST", "/api/echo", body=b"one\ntwo\nthree",
                         headers={"Content-Type": "text/plain"})
    check(resp.status == 200, "POST /api/echo is 200", f"got {resp.status}")
    echo = json.loads(body)
    check(echo == {"length": 13, "lines": 3}, "POST /api/echo answer",
          repr(echo))
    ok(mode, f"POST /api/echo: {json.dumps(echo, sort_keys=True)}")


def curl_checks(srv, mode, workdir):
    code, body, _ = curl([srv.url("/all-bytes.bin")], workdir)
    check(code == "200" and body == BINARY, "curl: binary file byte-exact",
          f"{code}, {len(body)} bytes")
    ok(mode, "curl: /all-bytes.bin byte-exact (all 256 values)")

    code, body, _ = curl([srv.url("/caf%E9.txt")], workdir)
    check(code == "200" and body == LATIN1_BODY,
          "curl: /caf%E9.txt reaches the Latin-1 name", f"{code} {body!r}")
    ok(mode, "curl: /caf%E9.txt (Latin-1 name)")

    code, body, _ = curl(["-r", "0-0", srv.url("/all-bytes.bin")], workdir)
    check(code == "206" and body == b"\x00", "curl -r 0-0 → 206, one byte",
          f"{code} {body!r}")
    ok(mode, "curl -r 0-0: 206, one byte")

    # -z DATE: only if modified since; the files are an hour old.
    now = email.utils.formatdate(time.time(), usegmt=True)
    code, body, _ = curl(["-z", now, srv.url("/file.txt")], workdir)
    check(code == "304" and body == b"", "curl -z now → 304",
          f"{code} {body!r}")
    old = email.utils.formatdate(time.time() - 86400, usegmt=True)
    code, body, _ = curl(["-z", old, srv.url("/file.txt")], workdir)
    check(code == "200" and body == TEXT, "curl -z yesterday → 200",
          f"{code} {body!r}")
    ok(mode, "curl -z: 304 when unchanged, 200 when changed since")

    for path in ("/../etc/passwd", "/../../../../etc/passwd",
                 "/sub/../../etc/passwd"):
        code, body, _ = curl(["--path-as-is", srv.url(path)], workdir)
        check(PASSWD_MARK not in body,
              f"curl --path-as-is {path} does not leak passwd", code)
        check(code == "404", f"curl --path-as-is {path} → 404", code)
        ok(mode, f"curl --path-as-is {path}: 404")

    # Two URLs, one curl: the second must reuse the first connection. (-o
    # names one output per URL, so curl() is not used here.)
    outs = [os.path.join(workdir, f"reuse-{i}.out") for i in (1, 2)]
    p = subprocess.run(
        ["curl", "-q", "-sS", "-v", "--noproxy", "*", "--max-time",
         str(TIMEOUT), "-w", "%{http_code} ", "-o", outs[0],
         srv.url("/file.txt"), "-o", outs[1], srv.url("/sub/inner.txt")],
        capture_output=True, timeout=TIMEOUT + 5)
    err = p.stderr.decode(errors="replace")
    check(p.returncode == 0, f"curl -v URL URL exited {p.returncode}",
          err[-2000:])
    codes = p.stdout.decode().split()
    check(codes == ["200", "200"], "curl URL URL: both 200", repr(codes))
    bodies = []
    for out in outs:
        with open(out, "rb") as f:
            bodies.append(f.read())
    check(bodies == [TEXT, b"inner\n"], "curl URL URL: both bodies",
          repr(bodies))
    check("Re-using existing connection" in err,
          "curl URL URL reuses the connection", err[-2000:])
    ok(mode, "curl -v URL URL: Re-using existing connection")


def run_mode(binary, mode):
    with tempfile.TemporaryDirectory(prefix=f"sockserv-e2e-{mode}-") as tmp:
        root = os.path.join(tmp, "root")
        os.mkdir(root)
        make_docroot(root)
        srv = None
        try:
            srv = Server(binary, root, mode, tmp)
            ok(mode, f"listening on 127.0.0.1:{srv.port} "
                     f"(pid {srv.proc.pid})")
            http_client_checks(srv, mode)
            curl_checks(srv, mode, tmp)
            status = srv.stop()
            check(status is not None, f"stops within {TIMEOUT} s of SIGTERM")
            check(status == 0, "exit status 0 after SIGTERM",
                  f"got {status}")
            ok(mode, "SIGTERM: exit status 0")
        except BaseException as e:
            if srv is not None:
                srv.kill()
                log = srv.stderr().strip()
                if log:
                    print(f"--- server stderr ({mode}) ---\n{log}",
                          file=sys.stderr)
            if isinstance(e, CheckFailed):
                raise CheckFailed(f"[{mode}] {e}") from None
            if isinstance(e, (OSError, http.client.HTTPException,
                              ValueError, subprocess.TimeoutExpired)):
                raise CheckFailed(f"[{mode}] {type(e).__name__}: {e}") \
                    from None
            raise
        finally:
            if srv is not None:
                srv.kill()
                srv.log.close()


def main():
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} PATH/TO/sockserv-httpd")
    binary = os.path.abspath(sys.argv[1])
    if not os.access(binary, os.X_OK):
        sys.exit(f"{sys.argv[0]}: not an executable: {binary}")
    started = time.monotonic()
    try:
        for mode in MODES:
            run_mode(binary, mode)
    except CheckFailed as e:
        print(f"FAIL {e}", file=sys.stderr)
        sys.exit(1)
    print(f"all checks passed in {len(MODES)} modes "
          f"({time.monotonic() - started:.1f} s)")


if __name__ == "__main__":
    main()
