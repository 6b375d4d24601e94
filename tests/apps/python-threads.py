#!/usr/bin/env python3
"""A thread-per-connection server (socketserver) and its client, standard
library only: blocking reads through buffered file objects, sendall.

    python-threads.py server SOCKET
        each line "N SEED" is answered with N pseudo-random bytes of SEED,
        then the sha256 of everything the connection sent before it
    python-threads.py check SOCKET THREADS ROUNDS
        each thread, on its own connection, asks ROUNDS times for replies of
        up to 1 MiB and checks each reply and each sha256
"""
import hashlib
import random
import socket
import socketserver
import sys

from threaded_check import run_checks


def payload(size, seed):
    return random.Random(seed).randbytes(size)


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        received = hashlib.sha256()
        for line in self.rfile:
            received.update(line)
            size, seed = map(int, line.split())
            self.wfile.write(payload(size, seed) + received.digest())


def server(path):
    with socketserver.ThreadingUnixStreamServer(path, Handler) as srv:
        srv.daemon_threads = True
        srv.serve_forever()


def check(thread, path, rounds):
    rng = random.Random(thread)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(path)
        replies = sock.makefile("rb")
        sent = hashlib.sha256()
        for _ in range(rounds):
            size, seed = rng.choice([0, 1, 100, 4096, 65536, 1 << 20]), rng.randrange(1 << 30)
            line = f"{size} {seed}\n".encode()
            sock.sendall(line)
            sent.update(line)
            if replies.read(size) != payload(size, seed):
                raise AssertionError(f"reply of {size} bytes differs")
            if replies.read(32) != sent.digest():
                raise AssertionError("the server saw other bytes than were sent")


def main():
    mode, path = sys.argv[1], sys.argv[2]
    if mode == "server":
        server(path)
        return
    run_checks(check, int(sys.argv[3]), path, int(sys.argv[4]))


if __name__ == "__main__":
    main()
