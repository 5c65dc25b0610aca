#!/usr/bin/env python3
"""The lesson's file server, the way the lesson builds it: os.fork() by hand
for every client, SIGCHLD ignored so that no zombies pile up.

It speaks sockserv-fileserver's protocol (docs/fileserver.md), so the same
client, sockserv-filecli, works with both, and the differences that remain
are the ones worth seeing: here an upload is written in place under its
name (interrupt it and half a file stays), a silent client holds its process
forever (no timeout), and symlinks are followed. For comparison only.

    python3 lesson_fileserver.py [PORT [DIRECTORY]]     (default 8888 .)
"""
import os
import signal
import socket
import sys


def answer(conn, text):
    conn.sendall((text + "\n").encode("utf-8", "surrogateescape"))


def name_ok(name):
    return name != "" and "/" not in name and not name.startswith(".")


def handle(conn, directory):
    rfile = conn.makefile("rb")
    for raw in rfile:  # one command per line, until the client hangs up
        line = raw.rstrip(b"\r\n").decode("utf-8", "surrogateescape")
        command, _, args = line.partition(" ")
        command = command.upper()
        if command == "LIST" and not args:
            names = sorted(
                n for n in os.listdir(directory)
                if name_ok(n) and os.path.isfile(os.path.join(directory, n)))
            answer(conn, "200 %d files" % len(names))
            for n in names:
                size = os.path.getsize(os.path.join(directory, n))
                answer(conn, "%d %s" % (size, n))
        elif command == "GET" and name_ok(args):
            try:
                f = open(os.path.join(directory, args), "rb")
            except OSError:
                answer(conn, "404 no such file: " + args)
                continue
            with f:
                answer(conn, "200 %d bytes" % os.fstat(f.fileno()).st_size)
                conn.sendfile(f)
        elif command == "PUT":
            size, _, name = args.partition(" ")
            if not size.isdigit() or not name_ok(name):
                answer(conn, "400 usage: PUT SIZE NAME")
                continue
            answer(conn, "100 send %s bytes" % size)
            remaining = int(size)
            with open(os.path.join(directory, name), "wb") as f:
                while remaining > 0:
                    data = rfile.read(min(remaining, 65536))
                    if not data:
                        return  # the client vanished: the partial file stays
                    f.write(data)
                    remaining -= len(data)
            answer(conn, "201 stored %s bytes as %s" % (size, name))
        elif command == "QUIT" and not args:
            answer(conn, "200 bye")
            return
        else:
            answer(conn, "400 unknown command")


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8888
    directory = sys.argv[2] if len(sys.argv) > 2 else "."
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(5)
    # The kernel reaps the children: nobody has to wait() for them.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    print("pid %d serving %s on port %d" % (os.getpid(), directory, port))
    while True:
        try:
            conn, address = server.accept()
        except KeyboardInterrupt:
            break
        pid = os.fork()
        if pid == 0:  # the child serves this client, then exits
            server.close()
            try:
                handle(conn, directory)
            except OSError as e:
                print("client %s: %s" % (address, e), file=sys.stderr)
            finally:
                conn.close()
                os._exit(0)
        conn.close()  # the parent goes back to accept()
    server.close()


if __name__ == "__main__":
    main()
