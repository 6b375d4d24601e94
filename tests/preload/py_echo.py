#!/usr/bin/env python3
"""Echo pair in plain Python (standard library only) for the preload tests.

  py_echo.py server PATH          echo one connection until EOF
  py_echo.py client PATH BYTES    send BYTES, read the echo back, compare

Both print the SHA-256 of what they saw; the client exits 1 when the echo
differs from what it sent.
"""
import hashlib
import socket
import sys
import threading

CHUNK = 1 << 16


def pattern(nbytes):
    """Deterministic bytes: a hash chain, so that any shift shows."""
    block = hashlib.sha512(b"tssx").digest() * 1024
    sent = 0
    while sent < nbytes:
        piece = block[: min(len(block), nbytes - sent)]
        yield piece
        sent += len(piece)
        block = hashlib.sha512(block[:64]).digest() * 1024


def server(path, kind=socket.SOCK_STREAM, chunk=CHUNK):
    """Echoes what one connection sends; of a SOCK_SEQPACKET socket, each
    message (up to chunk bytes) as one."""
    with socket.socket(socket.AF_UNIX, kind) as listener:
        listener.bind(path)
        listener.listen(1)
        print("server: listening", flush=True)
        conn, _ = listener.accept()
        digest, total = hashlib.sha256(), 0
        with conn:
            while True:
                data = conn.recv(chunk)
                if not data:
                    break
                digest.update(data)
                total += len(data)
                conn.sendall(data)
        print(f"server: echoed {total} bytes sha256 {digest.hexdigest()}", flush=True)


def client(path, nbytes):
    sent_digest = hashlib.sha256()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(path)

        def send_all():
            for piece in pattern(nbytes):
                sent_digest.update(piece)
                conn.sendall(piece)
            conn.shutdown(socket.SHUT_WR)

        writer = threading.Thread(target=send_all)
        writer.start()
        digest, total = hashlib.sha256(), 0
        buf = bytearray(CHUNK)
        while True:
            n = conn.recv_into(buf)
            if n == 0:
                break
            digest.update(buf[:n])
            total += n
        writer.join()
    print(f"client: sent {nbytes} received {total} sha256 {digest.hexdigest()}", flush=True)
    return 0 if total == nbytes and digest.digest() == sent_digest.digest() else 1


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server(sys.argv[2])
    else:
        sys.exit(client(sys.argv[2], int(sys.argv[3])))
