"""A multiprocessing forkserver pool: the parent connects to the forkserver
over a Unix stream socket and sends every new worker's fds with SCM_RIGHTS.
Prints "forkserver pool: 40 results ok" when every result is right."""
import hashlib
import multiprocessing
import sys


def work(x):
    return hashlib.sha256(x.to_bytes(4, "little") * 25000).hexdigest()


if __name__ == "__main__":
    ctx = multiprocessing.get_context("forkserver")
    with ctx.Pool(2, maxtasksperchild=5) as pool:
        got = pool.map(work, range(40), chunksize=1)
    ok = got == [work(x) for x in range(40)]
    print(f"forkserver pool: {len(got)} results {'ok' if ok else 'WRONG'}")
    sys.exit(0 if ok else 1)
