"""Client of tests/preload/mount_churn.sh: a preloaded server (its claim
keeps the registry's helper thread watching the mount table) watches the
lowest free fd number for a few seconds while mounts come and go; the
library must never make a closed number open behind the program's back."""
import os
import socket
import sys
import time

path, seconds = sys.argv[1], float(sys.argv[2])
listener = socket.socket(socket.AF_UNIX)
listener.bind(path)
listener.listen(1)
time.sleep(0.3)  # the claim is made and watched
free = os.open("/dev/null", os.O_RDONLY)
os.close(free)  # the lowest free number from now on
print("watching fd %d" % free, flush=True)
opened = 0
end = time.monotonic() + seconds
while time.monotonic() < end:
    for _ in range(1000):
        try:
            os.fstat(free)
            opened += 1
        except OSError:
            pass
if opened:
    sys.exit("fd %d, closed by the program, was open %d times" % (free, opened))
print("fd %d stayed closed" % free)
