"""Shared by the Python clients in tests/apps: one check per thread."""
import sys
import threading


def run_checks(check, threads, *args):
    """Runs check(thread, *args) in THREADS threads at once; prints "ok" when
    none raised, else exits with every thread's failure."""
    errors = []

    def guarded(thread):
        try:
            check(thread, *args)
        except Exception as e:  # every failure is reported, not only the first
            errors.append(f"thread {thread}: {e!r}")

    workers = [threading.Thread(target=guarded, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if errors:
        sys.exit("\n".join(errors))
    print("ok")
