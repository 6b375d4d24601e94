#!/usr/bin/python3
"""Acts as a registry user for the integration tests.

    helper.py [--listen ADDR] [--open ENTRY] [--write DATA]... [--hold]

--listen binds and listens on ADDR (a path, or @name for an abstract
socket); --open opens the registry file ENTRY read-write, creating it and
its directories; each --write writes DATA through that handle.  Each step
prints one line: "ok", or the errno name (EPERM, EINVAL, ...).  --hold then
prints "ready PID" and sleeps until killed; --fork-hold does the same in a
forked child (which inherits the handle) after the parent closed its own
socket and exited.

    helper.py --read-kept ENTRY --until DIGIT

opens ENTRY read-only and reads it (so its page cache is filled), prints
"ready PID", waits for SIGUSR1, then re-reads the same fd until it shows
DIGIT: prints "ok", or "timeout" after 10 s.
"""
import argparse
import errno
import os
import signal
import socket
import sys
import time


def report(fn):
    try:
        result = fn()
        print("ok", flush=True)
        return result
    except OSError as e:
        print(errno.errorcode.get(e.errno, str(e.errno)), flush=True)
        return None


def listen(addr):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if addr.startswith("@"):
        s.bind("\0" + addr[1:])
    else:
        if os.path.exists(addr):
            os.unlink(addr)
        s.bind(addr)
    s.listen()
    return s


def open_entry(entry):
    os.makedirs(os.path.dirname(entry), exist_ok=True)
    return os.open(entry, os.O_RDWR | os.O_CREAT, 0o644)


def hold():
    print("ready", os.getpid(), flush=True)
    while True:
        time.sleep(3600)


def read_kept(entry, digit):
    fd = os.open(entry, os.O_RDONLY)
    os.pread(fd, 2, 0)
    signal.signal(signal.SIGUSR1, lambda *_: None)
    print("ready", os.getpid(), flush=True)
    signal.pause()
    deadline = time.monotonic() + 10
    while os.pread(fd, 2, 0) != (digit + "\n").encode():
        if time.monotonic() > deadline:
            print("timeout", flush=True)
            return 1
        time.sleep(0.02)
    print("ok", flush=True)
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--listen")
    p.add_argument("--open")
    p.add_argument("--write", action="append", default=[])
    p.add_argument("--hold", action="store_true")
    p.add_argument("--fork-hold", action="store_true")
    p.add_argument("--read-kept")
    p.add_argument("--until")
    args = p.parse_args()

    if args.read_kept:
        return read_kept(args.read_kept, args.until)
    sock = report(lambda: listen(args.listen)) if args.listen else None
    fd = report(lambda: open_entry(args.open)) if args.open else None
    for data in args.write:
        report(lambda: os.write(fd, data.encode().decode("unicode_escape").encode("latin-1")))
    if args.fork_hold:
        if os.fork() == 0:
            if sock:
                sock.close()
            hold()
        return 0
    if args.hold:
        hold()
    return 0


if __name__ == "__main__":
    sys.exit(main())
