#!/usr/bin/env bash
# The registry's helper thread reads the mount table at every change of
# it (registryfs/client/worker.c): the copy of the fd it reads through
# must not take the lowest free number, which a program has often just
# closed (the program would find the closed fd open: ENOTSOCK for EBADF).
# A preloaded server watches that number while mounts come and go in a
# mount namespace of the test's own; it fails on a library that dup()s.
NAME=mount_churn
PRIVATE_MOUNTS=1
source "$(dirname "$0")/lib.sh"

# Two loops of mounts, each change one read of the mount table.
for m in a b; do
	mkdir "$work/$m"
	(
		end=$((SECONDS + 4))
		while ((SECONDS < end)); do
			mount -t tmpfs none "$work/$m" && umount "$work/$m"
		done
	) &
	background+=($!)
done
with_preload yes "${guard[@]}" python3 "$(dirname "$0")/mount_churn.py" "$work/s.sock" 4 \
	>"$work/watch.log" 2>&1 || fail "a closed fd was opened by the library"
grep -q "stayed closed" "$work/watch.log" || fail "the watcher did not finish"
exit 0
