#!/usr/bin/env bash
# POSIX (fcntl) and BSD (flock) locks on entries contend between processes:
# the daemon implements no lock operation, so the kernel handles them.
source "$(dirname "$0")/lib.sh"

e=$(entry "$WORK/lock.sock")
start_helper keeper --open "$e" --write 2 --hold # keeps the entry alive

locker() { # flock|lockf hold|try: hold touches $WORK/held once locked
	exec /usr/bin/python3 - "$e" "$1" "$2" "$WORK/held" <<'PY'
import fcntl, os, sys, time
path, kind, mode, marker = sys.argv[1:]
fd = os.open(path, os.O_RDWR)
lock = {"flock": fcntl.flock, "lockf": fcntl.lockf}[kind]
if mode == "hold":
    lock(fd, fcntl.LOCK_EX)
    open(marker, "w").close()
    time.sleep(600)
try:
    lock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    print("granted")
except OSError:
    print("refused")
PY
}

contend() { # flock|lockf
	rm -f "$WORK/held"
	locker "$1" hold &
	local holder=$!
	HELPER_PIDS+=("$holder")
	wait_until test -e "$WORK/held"
	expect "$(locker "$1" try)" refused "$1 lock held by another process"
	kill -KILL "$holder"
	wait "$holder" 2>/dev/null || true
	expect "$(locker "$1" try)" granted "$1 lock after its holder died"
}

contend flock
contend lockf
