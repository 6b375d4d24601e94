"""A child of fork() that calls wrapped functions its parent never called.

fork.sh runs it under LD_DEBUG=symbols with LD_BIND_NOW=1 (every PLT
bound at start): the child's symbol lookups are then the library's own
resolutions of the real functions, which the fork() wrapper makes in the
parent before it forks.  Prints the child's pid.
"""
import os
import select

r, w = os.pipe()
pid = os.fork()
if pid == 0:
    ep = select.epoll()
    ep.register(r, select.EPOLLIN)
    ep.poll(0)
    os._exit(0)
os.waitpid(pid, 0)
print(pid)
