#!/usr/bin/env bash
# A registry call does not leave the process multi-threaded for calls
# that need a single thread (docs/registry.md, Failure model): preloaded
# programs that connect (a client) or listen (a server: its claim keeps
# the helper thread watching) and then unshare(CLONE_NEWUSER), through
# libc and through syscall(2); the unshare succeeds and the connections
# still echo byte-exact over shared memory.  And a client's first
# connection, which asks the registry for the root and the entry and,
# 250 ms later if it still runs, for its client bit, starts one helper
# thread for all, which lingers 500 ms after its last work.  And a
# close-all loop of the program once that thread has ended (here stopped
# by an unshare(CLONE_VM); the loop closes the eventfd and the mount
# table's fd that stay open between threads) leaves the registry usable:
# the next connection, to a server it has not asked about, uses shared
# memory.
NAME=single_thread
source "$(dirname "$0")/lib.sh"
peer=$(dirname "$0")/single_thread.py

start_echo_server yes "$work/server.log" "$work/first.sock" --clients 1
with_preload yes "${guard[@]}" "$tools/tssx-echo" client "$work/first.sock" --bytes 64 \
	>"$work/client.log" 2>&1 || fail "first client"
wait_pid "$server_pid" || fail "echo server of the first client"
check_shm "$work/client.log" 64
threads=$(sed -n 's/.*registry: helper threads started: \([0-9]*\)$/\1/p' "$work/client.log")
[[ $threads == 1 ]] || fail "a first connection started ${threads:-no} helper threads"

for how in libc syscall; do
	# A client: its lookup ran on the helper thread.
	start_echo_server yes "$work/server.log" "$work/$how.sock" --clients 2
	with_preload yes "${guard[@]}" "${python[@]}" "$peer" client "$work/$how.sock" "$how" \
		>"$work/client.log" 2>&1 || fail "client unshare by $how"
	wait_pid "$server_pid" || fail "echo server of the $how client"
	check_shm "$work/client.log" $((64 << 10))

	# A server: its claim is held across the unshare.
	spawn yes "$work/server.log" "${python[@]}" "$peer" server "$work/$how-server.sock" "$how"
	server_pid=$spawned
	wait_for_line "$work/server.log" "server: listening"
	for ((i = 0; i < 40; i++)); do # the claim's invalidation is asynchronous
		[[ $(cat "$TSSX_REGISTRY$work/$how-server.sock" 2>/dev/null) == 1 ]] && break
		sleep 0.05
	done
	with_preload yes "${guard[@]}" "$tools/tssx-echo" client "$work/$how-server.sock" \
		--bytes 64K >"$work/client.log" 2>&1 || fail "client of the $how server"
	wait_pid "$server_pid" || fail "server unshare by $how"
	check_shm "$work/client.log" $((64 << 10))
	check_shm "$work/server.log" $((64 << 10))
done

for s in 1 2; do
	start_echo_server yes "$work/close-all-$s-server.log" "$work/close-all-$s.sock" --clients 1
done
with_preload yes "${guard[@]}" env TSSX_SHORT_CALLS=0 "${python[@]}" "$(dirname "$0")/registry_peer.py" close-all \
	"$work/close-all-1.sock" "$work/close-all-2.sock" >"$work/close-all.log" 2>&1 || fail "the client that closes all its fds"
grep -q "round 2 ok" "$work/close-all.log" || fail "the client that closes all its fds"
(($(grep -c "shared memory, client" "$work/close-all.log") == 2)) ||
	fail "the connection after a close-all loop did not use shared memory"
exit 0
