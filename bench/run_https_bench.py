#!/usr/bin/env python3
"""run_https_bench.py -- sockserv-httpd over HTTPS next to nginx, one run.

    bench/run_https_bench.py BUILD_DIR [--rounds 3] [--duration 3] \\
        [--modes thread,coro,prefork] [--idle 10000] [--markdown FILE]

Makes one ECDSA P-256 certificate (openssl req) and a document root with a
1 KiB file and a 64 KiB file, then starts on loopback, each with that same
certificate and OpenSSL's defaults (TLS 1.3, the same library both link):

  * BUILD_DIR/examples/httpserver/sockserv-httpd --tls-cert --tls-key in
    each mode asked for (-q: no access log);
  * nginx (the Debian package) with a generated configuration: as many
    worker processes as CPUs, access_log off, sendfile on, "ssl" on the
    listen line, the same certificate and key, TLSv1.2 and TLSv1.3,
    session tickets on (nginx's default, as ours).

Then wrk measures them round-robin (every server once per workload per
round) and the median over the rounds is printed with the ratio to nginx:

  https-ka     keep-alive, GET /1k.bin (1 KiB)
  https-close  Connection: close on every request, GET /1k.bin: a new TLS
               connection, and so a handshake, per request
  https-64k    keep-alive, GET /64k.bin (64 KiB)

With --idle N (default 10000; 0 to skip) it also measures what an idle TLS
connection costs sockserv-httpd --mode coro: N connections are opened and
their handshakes completed (Python's ssl, the first session resumed by
the rest to keep the client quick), and the server's RSS (all its
processes) is read from /proc before and after: the difference / N.

Needs wrk, nginx and the openssl command (apt-get install -y wrk nginx
openssl). Everything it starts is stopped by PID at the end, on Ctrl-C or
SIGTERM, and on failure (run_http_bench.Servers).
"""

import argparse
import os
import resource
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run_http_bench as hb  # noqa: E402  (servers, wrk, machine info)
import idle_connections  # noqa: E402  (RSS by mapping)

# sockserv-httpd --mode coro's coroutine stacks (ss_coroutine_options'
# default), to tell them apart in /proc/PID/smaps.
STACK_BYTES = 256 * 1024

CPUS = os.cpu_count() or 1

WORKLOADS = {
    "https-ka": ("/1k.bin", False, "HTTPS keep-alive, 1 KiB file"),
    "https-close": ("/1k.bin", True,
                    "HTTPS, a new connection (full handshake) per request, "
                    "1 KiB file"),
    "https-64k": ("/64k.bin", False, "HTTPS keep-alive, 64 KiB file"),
}

# run_http_bench's configuration with "ssl" on the listen line and the
# certificate.
NGINX_CONF = (
    hb.NGINX_CONF.replace("run_http_bench.py", "run_https_bench.py")
    .replace("worker_connections 1024;", "worker_connections 4096;")
    .replace("listen 127.0.0.1:{port};",
             "listen 127.0.0.1:{port} ssl;\n"
             "        ssl_certificate {cert};\n"
             "        ssl_certificate_key {key};\n"
             "        ssl_protocols TLSv1.2 TLSv1.3;"))
assert "ssl_certificate_key {key};" in NGINX_CONF


def make_files(tmp):
    root = os.path.join(tmp, "www")
    os.mkdir(root)
    with open(os.path.join(root, "1k.bin"), "wb") as f:
        f.write(bytes(range(256)) * 4)
    with open(os.path.join(root, "64k.bin"), "wb") as f:
        f.write(bytes(range(256)) * 256)
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj",
         "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", key, "-out", cert],
        check=True, capture_output=True, timeout=30)
    return root, cert, key


def start_nginx(servers, nginx, root, cert, key):
    port = hb.free_port()
    conf = os.path.join(servers.tmp, "nginx.conf")
    user = "user root;\n" if os.geteuid() == 0 else ""
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(user=user, workers=CPUS, tmp=servers.tmp,
                                  port=port, root=root, cert=cert, key=key))
    argv = [nginx, "-p", servers.tmp, "-c", conf, "-e",
            os.path.join(servers.tmp, "nginx-error.log")]
    proc = servers._popen("nginx", argv, subprocess.DEVNULL)
    servers.procs["nginx"] = (proc, port)
    if not hb.wait_listening(port, proc):
        raise RuntimeError("nginx did not start; see nginx-error.log in "
                           + servers.tmp)
    return port


def modes(connections):
    """sockserv-httpd's settings per mode (see run_http_bench.lib_modes)."""
    threads = max(64, connections + 14)
    per_worker = max(32, -(-threads // CPUS))
    return {
        "thread": ["--mode", "thread"],
        "pool": ["--mode", "pool", "--threads", str(threads)],
        "prefork": ["--mode", "prefork", "--workers", str(CPUS),
                    "--threads", str(per_worker)],
        "coro": ["--mode", "coro"],
        "fork": ["--mode", "fork"],
    }


def rss_kib(pid):
    """Resident memory of pid and its descendants, in KiB."""
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo += [int(c) for c in f.read().split()]
        except (OSError, ValueError):
            pass
    return total


def idle_memory(httpd, root, cert, key, count, tmp):
    """Bytes per idle TLS connection of sockserv-httpd --mode coro."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        count = min(count, hard - 100)
    servers = hb.Servers(tmp, False)
    try:
        port = servers.start_httpd("idle", httpd, ["--mode", "coro"] +
                                   ["--tls-cert", cert, "--tls-key", key],
                                   root)
        pid = servers.procs["idle"][0].pid
        ctx = ssl.create_default_context(cafile=cert)
        socks = []
        # Warm up: the first handshakes allocate what every later one
        # reuses (scheduler stacks cache, OpenSSL's tables).
        session = None
        for _ in range(50):
            raw = socket.create_connection(("127.0.0.1", port))
            s = ctx.wrap_socket(raw, server_hostname="127.0.0.1",
                                session=session)
            s.sendall(b"GET /1k.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            s.recv(4096)
            session = session or s.session
            socks.append(s)
        time.sleep(0.5)
        before = rss_kib(pid)
        kinds_before = idle_connections.rss_by_kind(pid, STACK_BYTES)
        start = time.monotonic()
        for _ in range(count):
            raw = socket.create_connection(("127.0.0.1", port))
            socks.append(ctx.wrap_socket(raw, server_hostname="127.0.0.1",
                                         session=session))
        opened = time.monotonic() - start
        time.sleep(1.0)
        after = rss_kib(pid)
        kinds_after = idle_connections.rss_by_kind(pid, STACK_BYTES)
        for s in socks:
            s.close()
        return {"connections": count, "rss_before_kib": before,
                "rss_after_kib": after, "open_seconds": opened,
                "bytes_per_connection": (after - before) * 1024 / count,
                "kib_per_connection_by_kind": {
                    k: (kinds_after[k] - kinds_before[k]) / count
                    for k in kinds_after}}
    finally:
        servers.stop()


def parse_args():
    p = argparse.ArgumentParser(description="HTTPS: sockserv-httpd vs nginx")
    p.add_argument("build_dir")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=int, default=3)
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--wrk-threads", type=int, default=2)
    p.add_argument("--modes", default="thread,coro,prefork")
    p.add_argument("--workloads", default=",".join(WORKLOADS))
    p.add_argument("--idle", type=int, default=10000)
    p.add_argument("--wrk", default=shutil.which("wrk") or "wrk")
    p.add_argument("--nginx", default=shutil.which("nginx") or
                   "/usr/sbin/nginx")
    p.add_argument("--markdown", help="write the tables as Markdown here")
    args = p.parse_args()
    args.modes = [m for m in args.modes.split(",") if m]
    args.workloads = [w for w in args.workloads.split(",") if w]
    args.httpd = os.path.join(args.build_dir, "examples", "httpserver",
                              "sockserv-httpd")
    if not os.access(args.httpd, os.X_OK):
        p.error(f"{args.httpd} not found: build first")
    for tool in (args.wrk, args.nginx, "openssl"):
        if not shutil.which(tool):
            p.error(f"{tool} not found: apt-get install -y wrk nginx openssl")
    return args


def main():
    args = parse_args()
    tmp = tempfile.mkdtemp(prefix="sockserv-httpsbench-")
    root, cert, key = make_files(tmp)
    servers = hb.Servers(tmp, False)
    labels, order = {}, []

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    results = {w: {} for w in args.workloads}
    idle = None
    try:
        settings = modes(args.connections)
        for m in args.modes:
            name = "httpd-" + m
            servers.start_httpd(name, args.httpd, settings[m] +
                                ["--tls-cert", cert, "--tls-key", key], root)
            labels[name] = "sockserv-httpd " + " ".join(settings[m][1:])
            order.append(name)
        start_nginx(servers, args.nginx, root, cert, key)
        labels["nginx"] = f"nginx ({CPUS} workers)"
        order.append("nginx")
        for rnd in range(args.rounds):
            for wl in args.workloads:
                for name in order:
                    r = hb.run_wrk(args, wl, servers.port(name), "https",
                                   WORKLOADS)
                    results[wl].setdefault(name, []).append(r)
                    print(f"  round {rnd + 1} {wl:<12} {name:<14} "
                          f"{hb.fmt(r['rps']):>9} req/s"
                          + (f"  {r['socket_error_detail']}"
                             if r["socket_errors"] else ""), file=sys.stderr)
                    time.sleep(0.2)
                    if not servers.alive(name):
                        raise RuntimeError(f"{name} died; see {tmp}")
        servers.stop()
        if args.idle > 0:
            idle = idle_memory(args.httpd, root, cert, key, args.idle, tmp)
    except KeyboardInterrupt:
        servers.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        return 130
    finally:
        servers.stop()
    shutil.rmtree(tmp, ignore_errors=True)

    machine = hb.machine_description()
    lines = [f"HTTPS, requests per second, median of {args.rounds} rounds of "
             f"{args.duration} s; wrk -t{args.wrk_threads} "
             f"-c{args.connections} on the same {CPUS} CPUs "
             f"({machine['cpu_model']}); {hb.tool_version([args.wrk, '-v'])};"
             f" {hb.tool_version([args.nginx, '-v'])}; "
             f"{ssl.OPENSSL_VERSION} (Python's; the servers link the "
             f"system's)", ""]
    md = []
    for wl in args.workloads:
        ngx = statistics.median(r["rps"] for r in results[wl]["nginx"])
        lines.append(WORKLOADS[wl][2])
        md += [f"**{WORKLOADS[wl][2]}**", "",
               "| server | req/s (min–max) | vs nginx | errors |",
               "|---|---:|---:|---:|"]
        for name in order:
            runs = [r["rps"] for r in results[wl][name]]
            rps = statistics.median(runs)
            errors = sum(r["socket_errors"] + r["non_2xx"]
                         for r in results[wl][name])
            lines.append(f"  {labels[name]:<48} {hb.fmt(rps):>9}  "
                         f"{rps / ngx:5.2f}x  errors {errors}")
            md.append(f"| {labels[name]} | {hb.fmt(rps)} ({hb.fmt(min(runs))}"
                      f"–{hb.fmt(max(runs))}) | **{rps / ngx:.2f}×** | "
                      f"{errors} |")
        lines.append("")
        md.append("")
    if idle:
        text = (f"idle TLS connections, sockserv-httpd --mode coro: "
                f"{idle['connections']} opened in "
                f"{idle['open_seconds']:.1f} s, RSS {idle['rss_before_kib']}"
                f" -> {idle['rss_after_kib']} KiB: "
                f"{idle['bytes_per_connection'] / 1024:.1f} KiB per "
                f"connection (" + ", ".join(
                    f"{k} {v:.1f}" for k, v in
                    idle["kib_per_connection_by_kind"].items()) + " KiB)")
        lines.append(text)
        md.append(text[0].upper() + text[1:] + ".")
    print("\n".join(lines))
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write("\n".join(md) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
