#!/usr/bin/env python3
"""A SOCK_SEQPACKET Unix socket pair for the preload tests.

  py_seqpacket.py server PATH   echo each message of one connection until EOF
  py_seqpacket.py client PATH   send messages of several sizes, check that
                                each comes back whole, as one message

The client exits 1 when a message is lost, merged, split or changed.
"""
import os
import socket
import sys

import py_echo

SIZES = [1, 7, 1000, 4096, 60000, 3, 100000]


def client(path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        sock.connect(path)
        for size in SIZES:
            msg = os.urandom(size)
            sock.sendall(msg)
            back = sock.recv(1 << 20)
            if back != msg:
                print(f"client: a {size}-byte message came back as {len(back)} different bytes")
                return 1
        print(f"client: {len(SIZES)} messages echoed whole", flush=True)
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "server":
        py_echo.server(sys.argv[2], socket.SOCK_SEQPACKET, 1 << 20)
        sys.exit(0)
    sys.exit(client(sys.argv[2]))
