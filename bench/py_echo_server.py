#!/usr/bin/env python3
"""py_echo_server.py -- the Python side of the echo benchmark.

    py_echo_server.py --mode sync|thread|fork|udp-sync|udp-thread|udp-fork
                      [--host 127.0.0.1] [--port 0] [--max-children N]

The same echo as bench/echo_server.c, written the way Python's socketserver
documentation writes it, with the standard library only:

  * streams: a StreamRequestHandler whose handle() calls self.request.recv
    and sendall until the client closes (the C handler: ss_read and
    ss_write_all until end of stream, on ss_stream_handler);
  * datagrams: a DatagramRequestHandler that writes the packet it read to
    wfile, which socketserver sends back after finish() (the C handler on
    ss_datagram_handler does the same).

Server settings are aligned with the C server so the comparison measures
request handling and nothing else: allow_reuse_address is on, the listen
backlog is socket.SOMAXCONN (libsockserv's default; Python's is 5), so a
full accept queue never decides a result, and max_children is taken from
--max-children for the forking servers.

Prints "listening on PORT" once bound (PORT is real, so --port 0 works) and
serves until SIGTERM or SIGINT.
"""

import argparse
import signal
import socket
import socketserver
import sys


class StreamEcho(socketserver.StreamRequestHandler):
    def handle(self):
        while True:
            data = self.request.recv(8192)
            if not data:
                break
            self.request.sendall(data)


class DatagramEcho(socketserver.DatagramRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.read())


MODES = {
    "sync": (socketserver.TCPServer, StreamEcho),
    "thread": (socketserver.ThreadingTCPServer, StreamEcho),
    "fork": (socketserver.ForkingTCPServer, StreamEcho),
    "udp-sync": (socketserver.UDPServer, DatagramEcho),
    "udp-thread": (socketserver.ThreadingUDPServer, DatagramEcho),
    "udp-fork": (socketserver.ForkingUDPServer, DatagramEcho),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", required=True, choices=sorted(MODES))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-children", type=int, default=40,
                        help="ForkingMixIn.max_children (default 40)")
    args = parser.parse_args()

    base, handler = MODES[args.mode]

    class Server(base):
        allow_reuse_address = True
        request_queue_size = socket.SOMAXCONN
        daemon_threads = True  # let SIGTERM end the process at once
        max_children = args.max_children

    # SIGTERM ends serve_forever() the way Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    with Server((args.host, args.port), handler) as server:
        print("listening on", server.server_address[1], flush=True)
        try:
            server.serve_forever()
        except (KeyboardInterrupt, SystemExit):
            pass


if __name__ == "__main__":
    main()
