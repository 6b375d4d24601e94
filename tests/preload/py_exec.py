"""Connections handed to exec'd images by Python's subprocess.

py_exec.py server PATH: accepts one connection and echoes it from a child
    started with subprocess.Popen(..., pass_fds=(fd,)); the parent closes
    its copy at once.
py_exec.py echo FD: the child: echoes FD until EOF.
py_exec.py writer PATH FILE [CMD...]: connects, lets CMD (default cat; Popen,
    stdin FILE, stdout the socket) write into the connection, shuts down
    writing and prints the SHA-256 of what the peer echoed."""
import hashlib
import os
import socket
import subprocess
import sys
import threading


def echo(fd):
    while data := os.read(fd, 65536):
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]


def main():
    mode = sys.argv[1]
    if mode == "echo":
        echo(int(sys.argv[2]))
        return
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if mode == "server":
        sock.bind(sys.argv[2])
        sock.listen()
        print("server: listening", flush=True)
        conn, _ = sock.accept()
        child = subprocess.Popen([sys.executable, __file__, "echo", str(conn.fileno())],
                                 pass_fds=(conn.fileno(),))
        conn.close()
        sys.exit(child.wait())
    sock.connect(sys.argv[2])
    digest = hashlib.sha256()

    def read_echo():
        while chunk := sock.recv(65536):
            digest.update(chunk)

    # The echo is read meanwhile: more than the buffers hold comes back.
    reader = threading.Thread(target=read_echo)
    reader.start()
    with open(sys.argv[3], "rb") as data:
        subprocess.run(sys.argv[4:] or ["cat"], stdin=data, stdout=sock.fileno(), check=True)
    sock.shutdown(socket.SHUT_WR)
    reader.join()
    print("writer: echo sha256", digest.hexdigest(), flush=True)


main()
