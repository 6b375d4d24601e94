"""fd_numbers.py SOCK N: a server of N connections from a child process,
each answered once; prints the numbers of the accepted sockets, the next
number the kernel gives (a file opened last), and the kernel's fd table
size (FDSize in /proc/self/status).  Plain or preloaded, the numbers
must be the same and the table not much larger (fd_numbers.sh)."""
import os
import socket
import sys

path, n = sys.argv[1], int(sys.argv[2])
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind(path)
listener.listen(64)
ready_r, ready_w = os.pipe()
child = os.fork()
if child == 0:
    os.close(ready_w)
    clients = []
    for _ in range(n):
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.connect(path)
        c.sendall(b"ping")
        assert c.recv(4) == b"pong"
        clients.append(c)
    os.read(ready_r, 1)  # held until the server has looked
    os._exit(0)
os.close(ready_r)
accepted = []
for _ in range(n):
    conn, _ = listener.accept()
    assert conn.recv(4) == b"ping"
    conn.sendall(b"pong")
    accepted.append(conn)
next_fd = os.open("/dev/null", os.O_RDONLY)
with open("/proc/self/status") as status:
    fdsize = next(line.split()[1] for line in status if line.startswith("FDSize:"))
print("accepted", " ".join(str(c.fileno()) for c in accepted))
print("next", next_fd)
print("fdsize", fdsize)
os.write(ready_w, b"x")
os.waitpid(child, 0)
