#!/usr/bin/env python3
"""The preloaded peers of tests/preload/registry.sh.

  registry_peer.py accept-inherited PATH LIB   bind and listen on PATH
      without the library, then exec a preloaded python that only
      accepts on the inherited listener (its first sight of it) and
      echoes one connection
  registry_peer.py loop PATH STOPFILE          connect, echo 64 KiB,
      check it, close, every 0.1 s until STOPFILE exists
  registry_peer.py close-all PATH1 PATH2       one such round with PATH1;
      then unshare(CLONE_VM), a no-op for one thread, for which the
      library stops its registry helper thread; then close every fd from
      3 up (a daemon's close-all loop) and make a round with PATH2, which
      the registry must be asked about
"""
import ctypes
import hashlib
import os
import socket
import sys
import time

ECHO_BYTES = 64 * 1024
CLONE_VM = 0x100


def echo_one(conn):
    while True:
        data = conn.recv(65536)
        if not data:
            return
        conn.sendall(data)


def accept_inherited(path, lib):
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(4)
    os.set_inheritable(listener.fileno(), True)
    env = dict(os.environ, LD_PRELOAD=lib, TSSX_LOG="info")
    code = ("import socket, sys, time\n"
            "sys.path.insert(0, sys.argv[2])\n"
            "import registry_peer\n"
            "s = socket.socket(fileno=int(sys.argv[1]))\n"
            "print('accepting', flush=True)\n"
            "t = time.monotonic()\n"
            "c, _ = s.accept()\n"
            "print('accepted after %.3f s' % (time.monotonic() - t), flush=True)\n"
            "registry_peer.echo_one(c)\n")
    os.execve(sys.executable, [sys.executable, "-c", code, str(listener.fileno()),
                               os.path.dirname(os.path.abspath(__file__))], env)


def echo_round(path, rounds):
    payload = hashlib.sha256(b"tssx").digest() * (ECHO_BYTES // 32)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(path)
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        got = b""
        while True:
            data = s.recv(65536)
            if not data:
                break
            got += data
    if got != payload:
        print("round %d: echo differs" % rounds, flush=True)
        sys.exit(1)
    print("round %d ok" % rounds, flush=True)


def loop(path, stopfile):
    rounds = 0
    while not os.path.exists(stopfile):
        rounds += 1
        echo_round(path, rounds)
        time.sleep(0.1)


def close_all(first, second):
    echo_round(first, 1)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_VM) != 0:
        sys.exit("unshare(CLONE_VM): " + os.strerror(ctypes.get_errno()))
    os.closerange(3, 1024)
    echo_round(second, 2)


if __name__ == "__main__":
    if sys.argv[1] == "accept-inherited":
        accept_inherited(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "loop":
        loop(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "close-all":
        close_all(sys.argv[2], sys.argv[3])
    else:
        sys.exit("usage: registry_peer.py accept-inherited PATH LIB | loop PATH STOPFILE"
                 " | close-all PATH1 PATH2")
