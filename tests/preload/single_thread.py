#!/usr/bin/env python3
"""The preloaded programs of tests/preload/single_thread.sh: each makes a
registry call, then a call that only a single-threaded process may make.

  single_thread.py client PATH HOW     connect to PATH, echo 64 KiB and
      check it, then unshare(CLONE_NEWUSER) (HOW: libc, or syscall for
      syscall(SYS_unshare)), then echo again
  single_thread.py server PATH HOW     print 'server: claiming', listen
      on PATH, unshare the same way, print 'server: listening', echo one
      connection
Exits 1 with the error when the unshare fails.
"""
import ctypes
import hashlib
import os
import socket
import sys

CLONE_NEWUSER = 0x10000000
SYS_UNSHARE = {"x86_64": 272, "aarch64": 97}[os.uname().machine]
PAYLOAD = hashlib.sha256(b"single").digest() * 2048
libc = ctypes.CDLL(None, use_errno=True)


def unshare_user(how):
    if how == "libc":
        r = libc.unshare(CLONE_NEWUSER)
    else:
        r = libc.syscall(ctypes.c_long(SYS_UNSHARE), ctypes.c_long(CLONE_NEWUSER))
    if r != 0:
        sys.exit("unshare(CLONE_NEWUSER) by %s: %s" % (how, os.strerror(ctypes.get_errno())))
    print("unshared by %s" % how, flush=True)


def echo_check(path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(path)
        s.sendall(PAYLOAD)
        s.shutdown(socket.SHUT_WR)
        got = b"".join(iter(lambda: s.recv(65536), b""))
    if got != PAYLOAD:
        sys.exit("echo of %d bytes came back as %d different bytes" % (len(PAYLOAD), len(got)))


def echo_one(conn):
    with conn:
        while True:
            data = conn.recv(65536)
            if not data:
                return
            conn.sendall(data)


def main():
    role, path, how = sys.argv[1:4]
    if role == "client":
        echo_check(path)
        unshare_user(how)
        echo_check(path)
    else:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        print("server: claiming", flush=True)
        listener.listen(4)
        unshare_user(how)
        print("server: listening", flush=True)
        echo_one(listener.accept()[0])


main()
