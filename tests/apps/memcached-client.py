#!/usr/bin/env python3
"""A memcached text-protocol client over a Unix socket, standard library only.

    memcached-client.py SOCKET THREADS KEYS

Each thread on its own connection stores KEYS values of 1 B to 256 KiB,
reads them back one by one and in multi-gets, appends, increments and
deletes, and checks every reply byte for byte.
"""
import random
import socket
import sys

from threaded_check import run_checks


class Memcached:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = b""

    def close(self):
        self.sock.close()

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exactly(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def _fill(self):
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("memcached closed the connection")
        self.buf += chunk

    def _command(self, line, data=None):
        msg = line.encode() + b"\r\n"
        if data is not None:
            msg += data + b"\r\n"
        self.sock.sendall(msg)
        return self._line()

    def store(self, verb, key, value):
        reply = self._command(f"{verb} {key} 0 0 {len(value)}", value)
        if reply != b"STORED":
            raise AssertionError(f"{verb} {key}: {reply!r}")

    def get(self, *keys):
        self.sock.sendall(b"get " + " ".join(keys).encode() + b"\r\n")
        values = {}
        while True:
            line = self._line()
            if line == b"END":
                return values
            word, key, _flags, size = line.split()
            if word != b"VALUE":
                raise AssertionError(f"get: {line!r}")
            values[key.decode()] = self._exactly(int(size))
            if self._exactly(2) != b"\r\n":
                raise AssertionError("get: value not followed by CRLF")

    def simple(self, line):
        return self._command(line)


def check(thread, path, keys):
    rng = random.Random(thread)
    mc = Memcached(path)
    expected = {}
    for i in range(keys):
        key = f"t{thread}k{i}"
        expected[key] = rng.randbytes(rng.choice([1, 10, 100, 1000, 4096, 65536, 262144])
                                      + rng.randrange(100))
        mc.store("set", key, expected[key])
    for key, value in expected.items():
        if mc.get(key) != {key: value}:
            raise AssertionError(f"get {key}: wrong value")
    names = list(expected)
    for i in range(0, len(names), 16):
        batch = names[i:i + 16]
        if mc.get(*batch) != {k: expected[k] for k in batch}:
            raise AssertionError(f"multi-get from {batch[0]}: wrong values")
    mc.store("append", names[0], b"+tail")
    if mc.get(names[0]) != {names[0]: expected[names[0]] + b"+tail"}:
        raise AssertionError("append: wrong value")
    mc.store("set", f"t{thread}n", b"41")
    if mc.simple(f"incr t{thread}n 1") != b"42":
        raise AssertionError("incr: wrong value")
    if mc.simple(f"delete {names[1]}") != b"DELETED" or mc.get(names[1]) != {}:
        raise AssertionError("delete: key still there")
    mc.close()


def main():
    run_checks(check, int(sys.argv[2]), sys.argv[1], int(sys.argv[3]))


if __name__ == "__main__":
    main()
