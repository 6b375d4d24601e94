"""Client of tests/preload/short.sh and answers.sh: connections to an
echo server, each sending `calls` messages of 100 bytes (or SIZE) and
checking the echo byte for byte, as a plan says (COUNTxCALLS[xSIZE]
arguments) or, with the
plan "-", one for each line on stdin (CALLS), answered with "ok N" on
stdout.  Before each connection it writes "connection N" to stderr,
where the library's log lines follow, so the test can tell which
connections went through shared memory.  With --exit-open, the
last connection is not closed: the process leaves through libc's exit()
with it open, as a program run once per request often does."""
import ctypes
import hashlib
import socket
import sys


def one_connection(path, calls, seed, close=True, size=100):
    c = socket.socket(socket.AF_UNIX)
    c.connect(path)
    for i in range(calls):
        digest = hashlib.sha256(b"%d.%d" % (seed, i)).digest()
        message = (digest * (size // len(digest) + 1))[:size]
        c.sendall(message)
        got = b""
        while len(got) < len(message):
            chunk = c.recv(len(message) - len(got))
            if not chunk:
                sys.exit("connection %d: EOF after %d of %d bytes" % (seed, len(got), len(message)))
            got += chunk
        if got != message:
            sys.exit("connection %d: the echo differs" % seed)
    if close:
        c.close()
    else:
        # exit() now: Python's own exit would close the socket first.
        ctypes.CDLL(None).exit(0)


def main():
    args = sys.argv[1:]
    exit_open = "--exit-open" in args
    if exit_open:
        args.remove("--exit-open")
    path, plan = args[0], args[1:]
    total = sum(int(item.split("x")[0]) for item in plan) if plan != ["-"] else 0
    n = 0
    if plan == ["-"]:
        for line in sys.stdin:
            n += 1
            print("connection %d" % n, file=sys.stderr, flush=True)
            one_connection(path, int(line), n)
            print("ok %d" % n, flush=True)
        return
    for item in plan:  # COUNTxCALLS[xSIZE]
        count, calls, size = ([int(x) for x in item.split("x")] + [100])[:3]
        for _ in range(count):
            n += 1
            print("connection %d" % n, file=sys.stderr, flush=True)
            one_connection(path, calls, n, not (exit_open and n == total), size)


main()
