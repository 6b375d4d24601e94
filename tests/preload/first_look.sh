#!/usr/bin/env bash
# A new client process asks the registry's daemon only what it must
# (docs/registry.md, "Speed"): it opens the root (whose type it reads in
# the mount table, not with a getxattr), opens the generation page and
# the entry and reads the entry (without a getattr first: the daemon
# turns the kernel's automatic invalidation off), and, if it still runs
# 250 ms later (not these), sets its client bit: four requests, six for a
# slow one.  Each request wakes the daemon and the client's helper thread,
# which on a busy machine wait for a CPU each time.  Counted in the
# daemon's debug log for the third client process of a server, once the
# kernel has cached the names.  And a registry reached through a symlink
# is still one.
NAME=first_look
REGISTRY_OPTIONS=debug
source "$(dirname "$0")/lib.sh"
log=${TSSX_REGISTRYFS_LOG:?run under tests/lib/with-registry}

# requests_since OFFSET: the opcodes of the requests that processes made
# (not the kernel's own: pid 0) after byte OFFSET of the daemon's log.
requests_since() {
	tail -c +$(($1 + 1)) "$log" |
		sed -n 's/^unique: [0-9]*, opcode: \([A-Z_]*\) .*, pid: [1-9][0-9]*$/\1/p'
}

start_echo_server yes "$work/server.log" "$work/s.sock" --clients 3
for i in 1 2 3; do
	offset=$(stat -c %s "$log")
	spawn yes "$work/client.log" "$tools/tssx-echo" client "$work/s.sock" --bytes 64
	wait_pid "$spawned" || fail "client $i"
	check_shm "$work/client.log" 64
done
wait_pid "$server_pid" || fail "echo server"

asked=$(requests_since "$offset" | tr '\n' ' ')
count() { grep -o "\b$1\b" <<<"$asked" | wc -l; }
(($(count GETXATTR) == 0)) || fail "the client asked the daemon for the root's xattr: $asked"
(($(count GETATTR) == 0)) || fail "the client asked the daemon for attributes: $asked"
(($(count OPENDIR) == 1)) || fail "the client opened the root $(count OPENDIR) times: $asked"
n=$(wc -w <<<"$asked")
((n >= 3 && n <= 6)) || fail "the client made $n requests to the daemon: $asked"

# The root is told from a plain directory by the mount table's type for
# its device, not by the path: a TSSX_REGISTRY that reaches the mount
# through a symlink is a registry too.
ln -s "$TSSX_REGISTRY" "$work/registry"
start_echo_server yes "$work/server.log" "$work/link.sock" --clients 1
TSSX_REGISTRY=$work/registry with_preload yes "${guard[@]}" "$tools/tssx-echo" client \
	"$work/link.sock" --bytes 64 >"$work/client.log" 2>&1 || fail "client through a symlink"
wait_pid "$server_pid" || fail "echo server of the client through a symlink"
check_shm "$work/client.log" 64
