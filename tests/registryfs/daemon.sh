#!/usr/bin/env bash
# The daemon's command line: help, version, clear errors, clean unmount,
# and with-registry's promise to remove its mount whatever happens.
source "$(dirname "$0")/lib.sh"
REGISTRYFS=${TSSX_REGISTRYFS:?}
WITH_REGISTRY=$HERE/../lib/with-registry

mounted() {
	awk -v m="$1" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo
}

fuse_answers() {
	[[ $(stat -f -c %t "$1" 2>/dev/null) == 65735546 ]] # FUSE_SUPER_MAGIC
}

"$REGISTRYFS" --help | grep -q 'max_entries=N' || fail "--help lacks the options"
"$REGISTRYFS" --version | grep -q '^tssx-registryfs [0-9]' || fail "--version"

# A clear one-line error, not a second mount.
err=$("$REGISTRYFS" -f "$M" 2>&1) && fail "mounted a second registry on $M"
[[ $err == *"already a registry"* ]] || fail "second mount: unexpected message: $err"
err=$(setpriv --reuid=nobody --regid=nogroup --clear-groups "$REGISTRYFS" -f "$WORK/m" 2>&1) &&
	fail "ran as nobody"
[[ $err == *"must run as root"* ]] || fail "not root: unexpected message: $err"

# SIGTERM unmounts cleanly; the mount point is created if missing.
mnt=$WORK/new/mnt
"$REGISTRYFS" -f "$mnt" &
pid=$!
HELPER_PIDS+=("$pid")
wait_until mounted "$mnt"
"$HELPER" --open "$mnt/@x" --hold >/dev/null &
HELPER_PIDS+=($!)
disown
wait_until test -e "$mnt/@x"
kill -TERM "$pid"
wait "$pid" || fail "exit status after SIGTERM: $?"
mounted "$mnt" && fail "still mounted after SIGTERM"

# A dead mount (daemon killed) with a file still open in it is replaced
# by the next daemon, without a manual unmount.
"$REGISTRYFS" -f "$mnt" &
pid=$!
HELPER_PIDS+=("$pid")
wait_until mounted "$mnt"
"$HELPER" --open "$mnt/@held" --hold >/dev/null &
HELPER_PIDS+=($!)
disown
wait_until test -e "$mnt/@held"
{ kill -KILL "$pid" && wait "$pid"; } 2>/dev/null || true
ls "$mnt" >/dev/null 2>&1 && fail "the killed daemon's mount still answers"
"$REGISTRYFS" -f "$mnt" &
pid=$!
HELPER_PIDS+=("$pid")
# A FUSE file system that answers, not only a directory again: the daemon
# detaches the dead mount before it installs its signal handlers, and a
# SIGTERM in between would kill it (status 143) instead of unmounting.
wait_until fuse_answers "$mnt"
[[ -z $(ls "$mnt") ]] || fail "the new registry is not empty"
kill -TERM "$pid"
wait "$pid" || fail "exit status of the replacing daemon: $?"
mounted "$mnt" && fail "still mounted after SIGTERM"

# with-registry removes its mount when the command fails, and when the
# daemon dies under it (which it reports as a failure).
status=0
"$WITH_REGISTRY" sh -c 'echo "$TSSX_REGISTRY" > "$1"; exit 7' sh "$WORK/m1" 2>/dev/null || status=$?
expect "$status" 7 "with-registry passes the command's status"
"$WITH_REGISTRY" sh -c 'echo "$TSSX_REGISTRY" > "$1"; kill -KILL "$TSSX_REGISTRYFS_PID"' sh "$WORK/m2" \
	2>/dev/null && fail "with-registry hid the daemon's death"
# ... and when the daemon hangs (stopped) with a request waiting on it.
"$WITH_REGISTRY" sh -c 'echo "$TSSX_REGISTRY" > "$1"; kill -STOP "$TSSX_REGISTRYFS_PID"
	cat "$TSSX_REGISTRY/@x" > /dev/null 2>&1 &' sh "$WORK/m3" 2>/dev/null && fail "with-registry hid a hung daemon"
for m in "$(cat "$WORK/m1")" "$(cat "$WORK/m2")" "$(cat "$WORK/m3")"; do
	mounted "$m" && fail "with-registry left $m mounted"
	[[ -e $m ]] && fail "with-registry left $m behind"
done
exit 0
