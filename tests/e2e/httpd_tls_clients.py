#!/usr/bin/env python3
"""End-to-end checks of sockserv-httpd over HTTPS with real TLS clients.

    python3 tests/e2e/httpd_tls_clients.py build/examples/httpserver/sockserv-httpd \
        [build/examples/echo/sockserv-echo]

Makes a test CA and a server certificate with the openssl command (ECDSA
P-256, SAN localhost and 127.0.0.1), then, for each mode (thread, fork,
coro, pool, prefork: the last two park idle keep-alive connections),
starts the binary with Python 3.14's flags --tls-cert and
--tls-key on 127.0.0.1 port 0 (--port-file tells the port) and checks:

  - the banner says "Serving HTTPS" and https://;
  - curl --cacert: GET / and /api/status ("tls": true, the mode), and
    several requests on one kept-alive connection;
  - Python's http.client with an ssl context that verifies the server:
    GET and POST /api/echo on one connection, ALPN http/1.1, TLS 1.3;
  - openssl s_client: -tls1_2 and -tls1_3 served, -tls1_1 refused;
  - plaintext HTTP to the HTTPS port: closed, one line on stderr, and the
    server goes on;
  - SIGHUP after the certificate files were replaced: new connections get
    the new certificate (in every process: prefork workers, forked
    children), and a reload of broken files keeps the old one;
  - an encrypted key with --tls-password-file (thread mode).

Then SIGTERM and exit status 0. Given sockserv-echo too, it runs that
with --tls-cert under every --mode, over TCP and a Unix socket, and
checks a TLS echo round trip with Python's ssl: examples/echo's handler,
unchanged, serving TLS under every strategy. One line per check; the first failure
stops the script with exit status 1 and the server's stderr. Needs the
openssl and curl commands; standard library otherwise.
"""
import http.client
import json
import os
import signal
import ssl
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import httpd_clients  # noqa: E402  (the server, check and ok)
from httpd_clients import TIMEOUT, CheckFailed, check, ok  # noqa: E402

MODES = ("thread", "fork", "coro", "pool", "prefork")


def run(args, **kw):
    return subprocess.run(args, capture_output=True, timeout=TIMEOUT, **kw)


def openssl(*args):
    r = run(["openssl", *args])
    check(r.returncode == 0, "openssl " + " ".join(args),
          r.stderr.decode(errors="replace"))


def make_ca(d):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
            "-subj", "/CN=sockserv e2e CA", "-keyout", f"{d}/ca.key",
            "-out", f"{d}/ca.pem")


def make_cert(d, cn, cert, key, password=None):
    """A server certificate for cn (SAN cn, localhost, 127.0.0.1) signed
    by the CA in d, written to cert (leaf, then CA) and key."""
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-subj", f"/CN={cn}", "-keyout", f"{key}.tmp",
            "-out", f"{d}/req.csr")
    with open(f"{d}/ext.cnf", "w") as f:
        f.write(f"subjectAltName=DNS:{cn},DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", f"{d}/req.csr", "-CA", f"{d}/ca.pem",
            "-CAkey", f"{d}/ca.key", "-CAcreateserial", "-days", "2",
            "-extfile", f"{d}/ext.cnf", "-out", f"{cert}.tmp")
    if password:
        openssl("pkey", "-in", f"{key}.tmp", "-aes256", "-passout",
                f"pass:{password}", "-out", f"{key}.enc")
        os.replace(f"{key}.enc", f"{key}.tmp")
    with open(f"{cert}.tmp", "ab") as out, open(f"{d}/ca.pem", "rb") as ca:
        out.write(ca.read())
    # Replaced by rename, as a renewal (certbot) does.
    os.replace(f"{cert}.tmp", cert)
    os.replace(f"{key}.tmp", key)


def Server(binary, mode, d, cert, key, extra=(), name=None):
    """httpd_clients.Server with --tls-cert and --tls-key, serving d."""
    return httpd_clients.Server(binary, d, mode, d,
                                ("--tls-cert", cert, "--tls-key", key,
                                 *extra), name)


def client_context(d):
    ctx = ssl.create_default_context(cafile=f"{d}/ca.pem")
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    return ctx


def server_cn(srv, d):
    """The CN of the certificate a new connection gets."""
    ctx = client_context(d)
    with socket.create_connection(("127.0.0.1", srv.port),
                                  timeout=TIMEOUT) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            subject = dict(x[0] for x in s.getpeercert()["subject"])
            return subject["commonName"]


def wait_until(cond, seconds=TIMEOUT):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def check_mode(binary, mode, d):
    cert, key = f"{d}/cert-{mode}.pem", f"{d}/key-{mode}.pem"
    make_cert(d, "first.test", cert, key)
    srv = Server(binary, mode, d, cert, key)
    try:
        # The banner, as Python 3.14 prints it for HTTPS.
        check(wait_until(lambda: "Serving HTTPS on" in srv.stdout()),
              "banner", srv.stdout())
        check(f"(https://127.0.0.1:{srv.port}/)" in srv.stdout(),
              "banner URL", srv.stdout())
        ok(mode, "banner: " + srv.stdout().strip().splitlines()[0])

        # curl --cacert, several requests on one connection.
        base = f"https://localhost:{srv.port}"
        r = run(["curl", "-sS", "--cacert", f"{d}/ca.pem",
                 "--resolve", f"localhost:{srv.port}:127.0.0.1",
                 "-w", "%{http_code} %{num_connects}\\n",
                 f"{base}/", "-o", "/dev/null", f"{base}/api/status",
                 "-o", "/dev/null", f"{base}/ca.pem", "-o", "/dev/null"])
        check(r.returncode == 0, "curl --cacert", r.stderr.decode())
        lines = r.stdout.decode().split()
        check(lines == ["200", "1", "200", "0", "200", "0"],
              "curl: three 200s on one connection", repr(lines))
        ok(mode, "curl --cacert: 3 requests, 1 connection, all 200")

        # http.client with verification: GET and POST on one connection.
        conn = http.client.HTTPSConnection(
            "localhost", srv.port, timeout=TIMEOUT, context=client_context(d))
        conn.request("GET", "/api/status")
        resp = conn.getresponse()
        status = json.loads(resp.read())
        check(resp.status == 200 and status.get("tls") is True
              and status.get("mode") == mode, "/api/status", repr(status))
        body = b"one\ntwo\nthree"
        conn.request("POST", "/api/echo", body=body)
        resp = conn.getresponse()
        echo = json.loads(resp.read())
        check(echo == {"length": len(body), "lines": 3}, "POST /api/echo",
              repr(echo))
        sock = conn.sock
        check(sock.selected_alpn_protocol() == "http/1.1", "ALPN",
              repr(sock.selected_alpn_protocol()))
        check(sock.version() == "TLSv1.3", "version", sock.version())
        conn.close()
        ok(mode, f"http.client: {json.dumps(status, sort_keys=True)}, "
                 f"POST echo, ALPN http/1.1, TLSv1.3")

        # Pipelined: two requests in two TLS records sent at once (the
        # second waits inside OpenSSL, read ahead, while the first is
        # answered; a parking mode must not park on the socket then),
        # then idle past a park and a third.
        ctx = client_context(d)
        with socket.create_connection(("127.0.0.1", srv.port),
                                      timeout=TIMEOUT) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                req = (b"GET /api/status HTTP/1.1\r\nHost: localhost\r\n"
                       b"\r\n")
                s.sendall(req)
                s.sendall(req)
                answers = b""
                while answers.count(b"HTTP/1.1 200") < 2:
                    chunk = s.recv(65536)
                    check(chunk, "pipelined: early end", repr(answers))
                    answers += chunk
                time.sleep(0.3)
                s.sendall(req)
                while answers.count(b"HTTP/1.1 200") < 3:
                    chunk = s.recv(65536)
                    check(chunk, "after idle: early end", repr(answers))
                    answers += chunk
        ok(mode, "two pipelined requests in two records, then one after "
                 "an idle pause, on one connection")

        # openssl s_client: 1.2 and 1.3 served, 1.1 refused.
        for version, served in (("-tls1_3", True), ("-tls1_2", True),
                                ("-tls1_1", False)):
            extra = ["-cipher", "DEFAULT:@SECLEVEL=0"] if not served else []
            r = run(["openssl", "s_client", "-connect",
                     f"127.0.0.1:{srv.port}", version, "-servername",
                     "localhost", "-CAfile", f"{d}/ca.pem", "-alpn",
                     "http/1.1", "-ign_eof", *extra],
                    input=b"GET /api/status HTTP/1.0\r\n\r\n")
            out = r.stdout.decode(errors="replace")
            if served:
                check(r.returncode == 0 and '"tls":true' in out
                      and "ALPN protocol: http/1.1" in out
                      and "Verify return code: 0 (ok)" in out,
                      f"openssl s_client {version}", out[-800:])
            else:
                check(r.returncode != 0 and '"tls"' not in out,
                      f"openssl s_client {version} refused", out[-800:])
        ok(mode, "openssl s_client: -tls1_3 and -tls1_2 served, "
                 "-tls1_1 refused")
        check(wait_until(lambda: "unsupported protocol" in srv.stderr()),
              "one line for the TLS 1.1 client", srv.stderr())

        # Plaintext HTTP on the HTTPS port.
        with socket.create_connection(("127.0.0.1", srv.port),
                                      timeout=TIMEOUT) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            answer = b""
            while chunk := s.recv(4096):
                answer += chunk
        check(not answer.startswith(b"HTTP/"), "no HTTP answer in plaintext",
              repr(answer[:80]))
        check(wait_until(lambda: "plaintext HTTP request" in srv.stderr()),
              "one line for plaintext", srv.stderr())
        check(server_cn(srv, d) == "first.test", "still serving")
        ok(mode, "plaintext HTTP: closed, one line: " + next(
            l for l in srv.stderr().splitlines() if "plaintext" in l))

        # SIGHUP: the new certificate, in every process.
        make_cert(d, "second.test", cert, key)
        srv.proc.send_signal(signal.SIGHUP)
        check(wait_until(lambda: "reloaded" in srv.stdout()),
              "SIGHUP reload line", srv.stdout() + srv.stderr())
        cns = {server_cn(srv, d) for _ in range(12)}
        check(cns == {"second.test"}, "new certificate after SIGHUP",
              repr(cns))
        with open(cert, "w") as f:
            f.write("broken\n")
        srv.proc.send_signal(signal.SIGHUP)
        check(wait_until(lambda: "reload failed" in srv.stderr()),
              "SIGHUP with broken files", srv.stderr())
        check(server_cn(srv, d) == "second.test", "old certificate kept")
        ok(mode, "SIGHUP: new certificate in every process; broken files "
                 "refused, old one kept")
    except Exception:
        srv.kill()
        sys.stderr.write(f"--- server stderr ({mode}):\n{srv.stderr()}\n")
        raise
    status = srv.stop()
    if status != 0:
        srv.kill()
        raise CheckFailed(f"exit status {status} after SIGTERM")
    ok(mode, "SIGTERM: exit status 0")


def check_password(binary, d):
    cert, key = f"{d}/cert-enc.pem", f"{d}/key-enc.pem"
    make_cert(d, "secret.test", cert, key, password="e2e pass")
    with open(f"{d}/password.txt", "w") as f:
        f.write("e2e pass\n")
    srv = Server(binary, "thread", d, cert, key,
                 ("--tls-password-file", f"{d}/password.txt"),
                 name="password")
    try:
        check(server_cn(srv, d) == "secret.test", "encrypted key served")
    finally:
        status = srv.stop()
        srv.kill()
    check(status == 0, "exit status 0")
    ok("thread", "encrypted key with --tls-password-file")


def check_echo(binary, d):
    cert, key = f"{d}/cert-echo.pem", f"{d}/key-echo.pem"
    make_cert(d, "echo.test", cert, key)
    ctx = client_context(d)
    for mode in ("sync", "thread", "fork", "pool", "prefork", "coro"):
        for family in ("tcp", "unix"):
            where = (["--unix", f"{d}/echo-{mode}.sock"] if family == "unix"
                     else ["--bind", "127.0.0.1", "0"])
            out = open(f"{d}/echo-{mode}-{family}.out", "w+b")
            proc = subprocess.Popen(
                [binary, "--mode", mode, "--tls-cert", cert, "--tls-key", key,
                 *where], stdin=subprocess.DEVNULL, stdout=out, stderr=out)
            try:
                def banner():
                    out.seek(0)
                    return out.read().decode(errors="replace")
                check(wait_until(lambda: "over TLS on" in banner()),
                      "sockserv-echo banner", banner())
                if family == "unix":
                    raw = socket.socket(socket.AF_UNIX)
                    raw.settimeout(TIMEOUT)
                    raw.connect(f"{d}/echo-{mode}.sock")
                else:
                    port = int(banner().split("127.0.0.1:")[1].split()[0])
                    raw = socket.create_connection(("127.0.0.1", port),
                                                   timeout=TIMEOUT)
                with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                    data = os.urandom(100000)
                    s.sendall(data)
                    back = b""
                    while len(back) < len(data):
                        chunk = s.recv(65536)
                        check(chunk, "echo: early end")
                        back += chunk
                    check(back == data, "echo: the same bytes back")
                    s.unwrap()  # close_notify both ways
                proc.send_signal(signal.SIGTERM)
                status = proc.wait(TIMEOUT)
                check(status == 0, f"sockserv-echo exit status {status}",
                      banner())
            finally:
                if proc.poll() is None:
                    proc.kill()  # by PID: Popen holds it
                    proc.wait()
        ok(mode, "sockserv-echo --tls-cert: 100 kB echoed over TCP and "
                 "a Unix socket, close_notify both ways")


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(f"usage: {sys.argv[0]} PATH/TO/sockserv-httpd "
                 f"[PATH/TO/sockserv-echo]")
    binary = os.path.abspath(sys.argv[1])
    with tempfile.TemporaryDirectory(prefix="sockserv-tls-e2e-") as d:
        try:
            make_ca(d)
            for mode in MODES:
                check_mode(binary, mode, d)
            check_password(binary, d)
            if len(sys.argv) == 3:
                check_echo(os.path.abspath(sys.argv[2]), d)
        except CheckFailed as e:
            print(f"FAIL {e}", flush=True)
            sys.exit(1)
    print("all HTTPS checks passed")


if __name__ == "__main__":
    main()
