#!/usr/bin/env python3
"""An asyncio echo server and client over a Unix socket, standard library only.

    asyncio_echo.py server PATH
    asyncio_echo.py client PATH MIB

The client streams MIB MiB of random bytes in writes of varying sizes while
it reads the echo concurrently, then checks the length and SHA-256 of what
came back against what it sent.  Both insist on the epoll selector.
"""
import asyncio
import hashlib
import os
import selectors
import sys

WRITE_SIZES = (1, 100, 4096, 65536, 65537, 300000, 1 << 20)


def require_epoll():
    if selectors.DefaultSelector is not selectors.EpollSelector:
        sys.exit(f"asyncio_echo: the default selector is {selectors.DefaultSelector.__name__}, not epoll")


async def echo(reader, writer):
    while data := await reader.read(1 << 16):
        writer.write(data)
        await writer.drain()
    writer.close()
    await writer.wait_closed()


async def serve(path):
    server = await asyncio.start_unix_server(echo, path)
    async with server:
        await server.serve_forever()


async def send(writer, total, digest):
    pool = os.urandom(2 << 20)
    offset = sent = turn = 0
    while sent < total:
        size = min(WRITE_SIZES[turn % len(WRITE_SIZES)], total - sent)
        chunk = pool[offset:offset + size]
        digest.update(chunk)
        writer.write(chunk)
        await writer.drain()
        sent += size
        turn += 1
        offset = (offset + 7919) % (len(pool) - max(WRITE_SIZES))
    writer.write_eof()


async def receive(reader, digest):
    received = 0
    while data := await reader.read(1 << 16):
        digest.update(data)
        received += len(data)
    return received


async def client(path, total):
    reader, writer = await asyncio.open_unix_connection(path)
    sent, echoed = hashlib.sha256(), hashlib.sha256()
    _, received = await asyncio.gather(send(writer, total, sent), receive(reader, echoed))
    writer.close()
    await writer.wait_closed()
    if received != total or sent.digest() != echoed.digest():
        sys.exit(f"asyncio_echo: sent {total} bytes ({sent.hexdigest()}), "
                 f"got back {received} ({echoed.hexdigest()})")


def main():
    require_epoll()
    if len(sys.argv) == 3 and sys.argv[1] == "server":
        asyncio.run(serve(sys.argv[2]))
    elif len(sys.argv) == 4 and sys.argv[1] == "client":
        asyncio.run(client(sys.argv[2], int(sys.argv[3]) << 20))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
