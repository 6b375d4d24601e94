"""A forked child's close-all loop, then its own connections.

py_fork.py PATH: echoes 100 bytes over a connection to PATH, forks; the
child closes every fd above 2 that /proc/self/fd lists (each close must
succeed: none of the library's is closed under it), echoes again, forks
a grandchild that echoes too; the parent echoes once more after them.
Exits non-zero on any failure.
"""
import os
import socket
import sys

path = sys.argv[1]


def echo(who):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(path)
        s.sendall(b"x" * 100)
        got = b""
        while len(got) < 100:
            chunk = s.recv(100 - len(got))
            if not chunk:
                sys.exit(f"{who}: EOF after {len(got)} bytes")
            got += chunk


def is_open(fd):
    try:
        os.readlink(f"/proc/self/fd/{fd}")
        return True
    except FileNotFoundError:
        return False


def close_all():
    # The listing's own fd is in it, closed by now.
    fds = [fd for fd in map(int, os.listdir("/proc/self/fd")) if fd > 2 and is_open(fd)]
    for fd in fds:
        try:
            os.close(fd)
        except OSError as e:
            sys.exit(f"child: close({fd}) of its listed fds: {e}")


def reap(pid):
    _, status = os.waitpid(pid, 0)
    if status != 0:
        sys.exit(f"process {pid} failed: {status:#x}")


echo("parent")
pid = os.fork()
if pid == 0:
    close_all()
    echo("child")
    grandchild = os.fork()
    if grandchild == 0:
        echo("grandchild")
        os._exit(0)
    reap(grandchild)
    os._exit(0)
reap(pid)
echo("parent again")
