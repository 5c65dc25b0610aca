#!/usr/bin/python3
"""WebSocket conformance of sockserv-ws-echo against an independent client.

tests/http/test_websocket.c drives the library with a client written for
it; this script checks the server against a client written by others --
Debian's python3-websockets -- and, with a raw socket, against the
categories of the Autobahn|Testsuite case list (framing, pings and pongs,
reserved bits, opcodes, fragmentation, UTF-8 handling, close handling,
limits), each with the close code RFC 6455 asks for.

    /usr/bin/python3 tests/e2e/ws_conformance.py build/examples/websocket/sockserv-ws-echo

For each mode (thread, coro, fork) it starts the binary on 127.0.0.1 port
0 (--port-file tells the real port), runs the checks, stops it with
SIGTERM and expects exit status 0. One line per check; the first failure
stops the script with exit status 1 and the server's stderr. Needs the
websockets package (python3-websockets); run it with /usr/bin/python3,
where Debian installs it.
"""
import asyncio
import base64
import hashlib
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

import websockets

MODES = ("thread", "coro", "fork")
TIMEOUT = 20  # seconds; for every client call and every wait
MAX_MESSAGE = 16 << 20  # the server's --max-message
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class CheckFailed(Exception):
    pass


def check(cond, what, detail=""):
    if not cond:
        raise CheckFailed(what + (": " + str(detail) if detail else ""))


def ok(mode, what):
    print(f"ok   [{mode}] {what}", flush=True)


# ---- the server -------------------------------------------------------------

class Server:
    def __init__(self, binary, mode, tmp):
        self.port_file = os.path.join(tmp, "port")
        self.err_path = os.path.join(tmp, "stderr")
        self.err = open(self.err_path, "wb")
        self.proc = subprocess.Popen(
            [binary, "--mode", mode, "-q", "--max-message", str(MAX_MESSAGE),
             "--port-file", self.port_file, "0"],
            stdout=subprocess.DEVNULL, stderr=self.err)
        deadline = time.monotonic() + TIMEOUT
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise CheckFailed("the server did not start")
            time.sleep(0.02)
        with open(self.port_file) as f:
            self.port = int(f.read())

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stderr(self):
        self.err.close()
        with open(self.err_path, "rb") as f:
            return f.read().decode(errors="replace")


# ---- the independent client: python3-websockets -----------------------------

async def websockets_checks(port, mode):
    uri = f"ws://127.0.0.1:{port}/"
    async with websockets.connect(uri, max_size=None, compression=None,
                                  open_timeout=TIMEOUT,
                                  close_timeout=TIMEOUT) as ws:
        sizes = [0, 1, 125, 126, 65535, 65536, 1 << 20, MAX_MESSAGE]
        for n in sizes:
            data = os.urandom(n)
            await ws.send(data)
            back = await asyncio.wait_for(ws.recv(), TIMEOUT)
            check(back == data, f"binary echo of {n} bytes",
                  f"got {len(back)} bytes")
            text = ("\u804a\u5929\u5ba4 abc " * (n // 16 + 1))
            text = text.encode()[:n].decode(errors="ignore")
            await ws.send(text)
            back = await asyncio.wait_for(ws.recv(), TIMEOUT)
            check(back == text, f"text echo of {len(text.encode())} bytes")
        ok(mode, f"websockets: text and binary echo, 0 B to 16 MiB "
                 f"({len(sizes)} sizes each)")
        parts = ["frag", "ment", "ed \u00e9", ""]
        await ws.send(iter(parts))
        back = await asyncio.wait_for(ws.recv(), TIMEOUT)
        check(back == "".join(parts), "a fragmented text message, reassembled")
        await ws.send(iter([b"\x00" * 70000, b"\x01" * 3]))
        back = await asyncio.wait_for(ws.recv(), TIMEOUT)
        check(back == b"\x00" * 70000 + b"\x01" * 3,
              "a fragmented binary message, reassembled")
        ok(mode, "websockets: fragmented sends echoed whole")
        waiter = await ws.ping(b"are you there")
        await asyncio.wait_for(waiter, TIMEOUT)
        ok(mode, "websockets: ping answered by a pong")
        await ws.close(4321, "done here")
        check(ws.close_code == 4321, "our close code echoed",
              f"got {ws.close_code}")
        ok(mode, "websockets: close 4321 'done here' echoed")
    # The server's own 1009 through the independent client: a server with a
    # small limit is not at hand, so a message over the 16 MiB limit.
    async with websockets.connect(uri, max_size=None, compression=None,
                                  open_timeout=TIMEOUT,
                                  close_timeout=TIMEOUT) as ws:
        try:
            await ws.send(b"x" * (MAX_MESSAGE + 1))
            await asyncio.wait_for(ws.recv(), TIMEOUT)
            raise CheckFailed("a message over the limit was echoed")
        except websockets.exceptions.ConnectionClosed as e:
            code = e.rcvd.code if e.rcvd else None
            check(code == 1009, "a message over the limit: close 1009",
                  f"got {code}")
    ok(mode, "websockets: a message over --max-message closed 1009")


# ---- the raw client: the Autobahn categories --------------------------------

class Raw:
    """A client speaking the protocol by hand, able to break every rule."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), TIMEOUT)
        self.sock.settimeout(TIMEOUT)
        key = base64.b64encode(os.urandom(16))
        self.sock.sendall(
            b"GET /raw HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key +
            b"\r\n\r\n")
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            c = self.sock.recv(1)
            check(c, "the 101 head")
            head += c
        check(head.startswith(b"HTTP/1.1 101 "), "101 Switching Protocols",
              head[:40])
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        check(b"\r\nSec-WebSocket-Accept: " + accept + b"\r\n" in head,
              "Sec-WebSocket-Accept as hashlib computes it")
        self.buf = b""
        self.items = []

    def send(self, opcode, payload=b"", fin=True, rsv=0, mask=True,
             chop=None):
        b0 = (0x80 if fin else 0) | rsv | opcode
        n = len(payload)
        m = 0x80 if mask else 0
        if n < 126:
            head = struct.pack("!BB", b0, m | n)
        elif n < 65536:
            head = struct.pack("!BBH", b0, m | 126, n)
        else:
            head = struct.pack("!BBQ", b0, m | 127, n)
        if mask:
            key = os.urandom(4)
            head += key
            payload = bytes(b ^ key[i & 3] for i, b in enumerate(payload)) \
                if n < 100000 else _mask_fast(payload, key)
        frame = head + payload
        if chop:
            for i in range(0, len(frame), chop):
                self.sock.sendall(frame[i:i + chop])
                time.sleep(0.001)
        else:
            self.sock.sendall(frame)

    def send_raw(self, data):
        self.sock.sendall(data)

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise CheckFailed(f"connection closed while {n} bytes "
                                  "were expected")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self):
        b0, b1 = self._read(2)
        check(not b1 & 0x80, "server frames are not masked")
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read(8))[0]
        return bool(b0 & 0x80), b0 & 0x0F, self._read(n)

    def _read_item(self):
        """Read one control frame or one whole data message (the echo sends
        a long message on in parts, and may answer a ping between them):
        control frames met inside a message are queued before it."""
        fin, op, data = self.recv()
        if op & 0x8 or fin:
            self.items.append((fin, op, data))
            return
        check(op in (0x1, 0x2), "a message starts with text or binary",
              f"opcode {op}")
        while not fin:
            last, cont, more = self.recv()
            if cont & 0x8:
                self.items.append((True, cont, more))
                if cont == 0x8:  # closed in the middle: no more parts
                    self.items.append((False, op, data))
                    return
                continue
            fin = last
            check(cont == 0x0, "fragments continue the message",
                  f"opcode {cont}")
            data += more
        self.items.append((fin, op, data))

    def next_item(self, control):
        """The next control frame (control) or data message, in order."""
        while True:
            for i, item in enumerate(self.items):
                if bool(item[1] & 0x8) == control:
                    del self.items[i]
                    return item
            self._read_item()

    def expect(self, opcode, payload, what):
        fin, op, data = self.next_item(bool(opcode & 0x8))
        check(fin and op == opcode and data == payload, what,
              f"got fin={fin} opcode={op} {data[:40]!r}")

    def expect_close(self, code, what):
        fin, op, data = self.next_item(True)
        while op != 0x8 and op in (0x9, 0xA):  # pongs still due
            fin, op, data = self.next_item(True)
        check(op == 0x8, what + ": a close frame",
              f"got opcode {op} {data[:40]!r}")
        got = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
        check(got == code, what + f": close code {code}", f"got {got}")
        # Then the server closes the connection.
        end = time.monotonic() + TIMEOUT
        while time.monotonic() < end:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
        self.sock.close()

    def close(self):
        self.send(0x8, struct.pack("!H", 1000))
        self.expect_close(1000, "our close echoed")


def _mask_fast(payload, key):
    k = int.from_bytes(key * ((len(payload) + 3) // 4), "big")
    v = int.from_bytes(payload, "big")
    return (v ^ (k >> (8 * (-len(payload) % 4)))).to_bytes(len(payload),
                                                            "big")


def raw_checks(port, mode):
    # 1. framing: every length form, and frames cut into tiny writes
    r = Raw(port)
    for n in (0, 1, 125, 126, 127, 65535, 65536, 200000):
        data = bytes(i & 0xFF for i in range(n))
        r.send(0x2, data)
        r.expect(0x2, data, f"binary frame of {n} bytes")
    r.send(0x1, b"Hello, chopped world", chop=1)
    r.expect(0x1, b"Hello, chopped world", "a frame sent a byte at a time")
    r.send(0x2, b"\xAA" * 300, chop=7)
    r.expect(0x2, b"\xAA" * 300, "a 16-bit-length frame in 7-byte writes")
    r.close()
    ok(mode, "raw 1 framing: 7/16/64-bit lengths, chopped writes")

    # 2. pings and pongs
    r = Raw(port)
    r.send(0x9)
    r.expect(0xA, b"", "an empty ping's pong")
    r.send(0x9, b"\xFE" * 125)
    r.expect(0xA, b"\xFE" * 125, "a 125-byte ping's pong")
    r.send(0xA, b"unsolicited")
    for i in range(10):
        r.send(0x9, str(i).encode())
    for i in range(10):
        r.expect(0xA, str(i).encode(), f"pong {i} of 10, in order")
    r.send(0x1, b"after pongs")
    r.expect(0x1, b"after pongs", "an unsolicited pong ignored")
    r.close()
    r = Raw(port)
    r.send(0x9, b"x" * 126)
    r.expect_close(1002, "a 126-byte ping")
    r = Raw(port)
    r.send(0x9, b"x", fin=False)
    r.expect_close(1002, "a fragmented ping")
    ok(mode, "raw 2 pings: answered in order; oversized, fragmented: 1002")

    # 3. reserved bits (no extension negotiated)
    for rsv in (0x40, 0x20, 0x10, 0x70):
        r = Raw(port)
        r.send(0x1, b"rsv", rsv=rsv)
        r.expect_close(1002, f"RSV bits {rsv:#x}")
    r = Raw(port)
    r.send(0x1, b"ok first")
    r.expect(0x1, b"ok first", "a good frame before a bad one")
    r.send(0x9, b"", rsv=0x10)
    r.expect_close(1002, "RSV on a ping")
    ok(mode, "raw 3 reserved bits: 1002")

    # 4. opcodes
    for op in (3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF):
        r = Raw(port)
        r.send(op, b"reserved")
        r.expect_close(1002, f"opcode {op:#x}")
    ok(mode, "raw 4 reserved opcodes: 1002")

    # 5. fragmentation
    r = Raw(port)
    r.send(0x1, b"frag", fin=False)
    r.send(0x9, b"mid")
    r.send(0x0, b"", fin=False)
    r.send(0x0, b"mented", fin=True)
    r.expect(0xA, b"mid", "a ping between fragments answered")
    r.expect(0x1, b"fragmented", "fragments reassembled")
    r.send(0x2, b"", fin=False)
    r.send(0x0, b"", fin=True)
    r.expect(0x2, b"", "an empty fragmented message")
    r.close()
    for what, frames in (
            ("a continuation with no message", [(0x0, True)]),
            ("text inside a fragmented message",
             [(0x1, False), (0x1, True)]),
            ("binary inside a fragmented message",
             [(0x2, False), (0x2, True)])):
        r = Raw(port)
        for op, fin in frames:
            r.send(op, b"abc", fin=fin)
        r.expect_close(1002, what)
    r = Raw(port)
    r.send(0x8, struct.pack("!H", 1000), fin=False)
    r.expect_close(1002, "a fragmented close")
    ok(mode, "raw 5 fragmentation: control frames between fragments; "
             "bad order 1002")

    # 6. UTF-8
    valid = "κόσμε \u00e9 \u4e16\u754c \U0001F600".encode()
    r = Raw(port)
    for cut in range(1, len(valid)):
        r.send(0x1, valid[:cut], fin=False)
        r.send(0x0, valid[cut:], fin=True)
        r.expect(0x1, valid, f"valid UTF-8 cut at byte {cut}")
    r.send(0x1, valid, chop=1)
    r.expect(0x1, valid, "valid UTF-8 sent a byte at a time")
    r.close()
    invalid = [b"\xc0\x80", b"\xc1\xbf", b"\xe0\x80\x80", b"\xed\xa0\x80",
               b"\xed\xbf\xbf", b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80",
               b"\xff", b"\xfe", b"\x80", b"\xce\xba\xe1\xbd\xb9\xcf",
               b"\xf8\x88\x80\x80\x80", b"\xef\xbf"]
    for bad in invalid:
        r = Raw(port)
        r.send(0x1, b"ok" + bad)
        r.expect_close(1007, f"invalid UTF-8 {bad!r}")
    r = Raw(port)  # fail fast: the message never ends
    r.send(0x1, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", fin=False)
    r.send(0x0, b"\xf4\x90\x80\x80", fin=False)
    r.expect_close(1007, "invalid UTF-8 in a middle fragment (fail fast)")
    ok(mode, f"raw 6 UTF-8: valid cut at every byte; {len(invalid) + 1} "
             "invalid sequences 1007, failing fast")

    # 7. close handling
    for code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000,
                 3999, 4000, 4999):
        r = Raw(port)
        r.send(0x8, struct.pack("!H", code) + b"reason")
        r.expect_close(code, f"close {code} echoed")
    r = Raw(port)
    r.send(0x8)
    fin, op, data = r.next_item(True)
    check(op == 0x8 and data == b"", "an empty close answered empty")
    r.sock.close()
    for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999,
                 5000, 65535):
        r = Raw(port)
        r.send(0x8, struct.pack("!H", code))
        r.expect_close(1002, f"invalid close code {code}")
    r = Raw(port)
    r.send(0x8, b"\x03")
    r.expect_close(1002, "a 1-byte close payload")
    r = Raw(port)
    r.send(0x8, struct.pack("!H", 1000) + b"\xff\xfe")
    r.expect_close(1007, "a close reason that is not UTF-8")
    r = Raw(port)
    r.send(0x8, struct.pack("!H", 1000))
    r.send(0x1, b"after close")  # ignored: the server is closing
    r.expect_close(1000, "data after our close ignored")
    ok(mode, "raw 7 close: valid codes echoed, invalid 1002, bad reason 1007")

    # 9. limits, and what RFC 6455 asks of every client frame
    r = Raw(port)
    r.send_raw(struct.pack("!BBQ", 0x82, 0xFF, MAX_MESSAGE + 1) + b"mask")
    r.expect_close(1009, "a 64-bit length over the limit, from the header")
    r = Raw(port)
    r.send_raw(struct.pack("!BBQ", 0x82, 0xFF, 1 << 63) + b"mask")
    r.expect_close(1002, "a 64-bit length with the top bit set")
    r = Raw(port)
    r.send(0x2, b"x" * 1000, fin=False)
    r.send_raw(struct.pack("!BBQ", 0x00, 0xFF, MAX_MESSAGE) + b"mask")
    r.expect_close(1009, "fragments adding up to more than the limit")
    r = Raw(port)
    r.send(0x1, b"unmasked", mask=False)
    r.expect_close(1002, "an unmasked client frame")
    ok(mode, "raw 9 limits: over the limit 1009 before the payload; "
             "unmasked 1002")

    # Handshake refusals
    s = socket.create_connection(("127.0.0.1", port), TIMEOUT)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Version: 8\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
    head = s.recv(4096)
    check(head.startswith(b"HTTP/1.1 426 ") and
          b"\r\nSec-WebSocket-Version: 13\r\n" in head,
          "version 8: 426 with Sec-WebSocket-Version: 13", head[:80])
    s.close()
    s = socket.create_connection(("127.0.0.1", port), TIMEOUT)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n")
    head = s.recv(4096)
    check(head.startswith(b"HTTP/1.1 400 "), "no key: 400", head[:40])
    s.close()
    ok(mode, "handshake: wrong version 426, missing key 400")


def run_mode(binary, mode):
    with tempfile.TemporaryDirectory(prefix=f"sockserv-ws-{mode}-") as tmp:
        srv = None
        try:
            srv = Server(binary, mode, tmp)
            ok(mode, f"listening on 127.0.0.1:{srv.port} "
                     f"(pid {srv.proc.pid})")
            asyncio.run(websockets_checks(srv.port, mode))
            raw_checks(srv.port, mode)
            status = srv.stop()
            check(status is not None, f"stops within {TIMEOUT} s of SIGTERM")
            check(status == 0, "exit status 0 after SIGTERM", f"got {status}")
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
            if isinstance(e, (OSError, asyncio.TimeoutError,
                              websockets.exceptions.WebSocketException)):
                raise CheckFailed(f"[{mode}] {type(e).__name__}: {e}") \
                    from None
            raise


def main():
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} PATH/TO/sockserv-ws-echo")
    binary = os.path.abspath(sys.argv[1])
    if not os.access(binary, os.X_OK):
        sys.exit(f"{sys.argv[0]}: not an executable: {binary}")
    print(f"websockets {websockets.__version__} (python {sys.version.split()[0]})")
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
