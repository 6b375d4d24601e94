#!/usr/bin/env bash
# The registry never stands in the way (docs/registry.md, failure model),
# against a daemon of this test's own, at a mount point of its own:
# - daemon stopped (SIGSTOP): listen(), accept() of an inherited listener
#   and connect() each return within the bound and work plain, byte-exact;
#   once the daemon runs again the claim made meanwhile holds and new
#   connections use shared memory;
# - daemon killed (kill -9) and started again at the same mount point: a
#   running preloaded server claims again and a running preloaded client
#   marks itself again, neither restarted, and new connections use shared
#   memory;
# - daemon slow (stopped for 300 ms): a preloaded server's unshare() of a
#   user namespace right after its listen() waits for the claim in flight
#   and succeeds.
# The bounds are checked generously (5 s): this is no speed test.
NAME=registry
NO_REGISTRY=1
source "$(dirname "$0")/lib.sh"
if ((EUID != 0)); then
	echo "$NAME: skipped, mounting a registry needs root" >&2
	exit 77
fi
peer=$(dirname "$0")/registry_peer.py
own_registry

source "$(dirname "$0")/../lib/stopped.sh"
stop_daemon() {
	stop_process "$daemon_pid" || fail "the daemon did not stop"
}

now() { date +%s%N; }

# within_bound START WHAT: START (from now) was less than 5 s ago.
within_bound() {
	local ms=$((($(now) - $1) / 1000000))
	((ms < 5000)) || fail "$2 took $ms ms with the daemon stopped"
}

# client_until_shm SOCKET LOG: a fresh preloaded client, until one uses
# shared memory (the registry's invalidations are asynchronous).
client_until_shm() {
	local i
	for ((i = 0; i < 40; i++)); do
		with_preload yes "${guard[@]}" "$tools/tssx-echo" client "$1" --bytes 1M >"$2" 2>&1 ||
			fail "client of $1"
		grep -q "shared memory, client" "$2" && return 0
		sleep 0.1
	done
	fail "no client of $1 used shared memory"
}

start_daemon

# --- a stopped daemon ---
start_echo_server yes "$work/a.log" "$work/a.sock" --clients 0
client_until_shm "$work/a.sock" "$work/a-client.log"
stop_daemon

start=$(now)
start_echo_server yes "$work/b.log" "$work/b.sock" --clients 0
within_bound "$start" "listen()"
grep -q "did not answer within" "$work/b.log" || fail "no warning of the slow registry"

start=$(now)
with_preload yes "${guard[@]}" "$tools/tssx-echo" client "$work/b.sock" --bytes 1M \
	>"$work/b-client.log" 2>&1 || fail "client of b.sock with the daemon stopped"
within_bound "$start" "connect()"
check_plain "$work/b-client.log"
[[ $(grep -c "did not answer within" "$work/b-client.log") == 1 ]] ||
	fail "not one warning per process"

spawn no "$work/c.log" python3 "$peer" accept-inherited "$work/c.sock" "$lib"
accept_pid=$spawned
wait_for_line "$work/c.log" "accepting"
start=$(now)
"${guard[@]}" "$tools/tssx-echo" client "$work/c.sock" --bytes 1M >"$work/c-client.log" 2>&1 ||
	fail "plain client of the inherited listener"
within_bound "$start" "accept()"
wait_pid "$accept_pid" || fail "the accepting peer"
grep -q "accepted after" "$work/c.log" || fail "accept() did not return"
check_plain "$work/c.log"

kill -CONT "$daemon_pid"
# b's server claimed while the daemon was stopped: made once it runs.
client_until_shm "$work/b.sock" "$work/b-client.log"
check_shm "$work/b-client.log" $((1 << 20))

# --- a slow daemon under a server that unshares ---
# The claim of its listen() is still in flight when it unshares: the
# helper thread can leave only once the daemon answers.
stop_daemon
spawn yes "$work/d.log" python3 "$(dirname "$0")/single_thread.py" server "$work/d.sock" libc
unshare_pid=$spawned
wait_for_line "$work/d.log" "server: claiming"
sleep 0.3
kill -CONT "$daemon_pid"
wait_for_line "$work/d.log" "server: listening"
for ((i = 0; i < 200; i++)); do # the claim's invalidation is asynchronous
	[[ $(cat "$mnt$work/d.sock" 2>/dev/null) == 1 ]] && break
	sleep 0.025
done
with_preload yes "${guard[@]}" "$tools/tssx-echo" client "$work/d.sock" --bytes 64K \
	>"$work/d-client.log" 2>&1 || fail "client of the server that unshared"
wait_pid "$unshare_pid" || fail "the server that unshared"
check_shm "$work/d-client.log" $((64 << 10))

# --- kill -9 and restart under a running server and client ---
# (not this client's bound: a round that times out on a loaded machine
# would be plain; each round is a short connection, which would go plain
# after three without TSSX_SHORT_CALLS=0)
spawn yes "$work/loop.log" env TSSX_REGISTRY_TIMEOUT=2000 TSSX_SHORT_CALLS=0 python3 "$peer" loop "$work/a.sock" \
	"$work/stop"
loop_pid=$spawned
wait_for_line "$work/loop.log" "shared memory, client"
entry=$mnt$work/a.sock
for ((i = 0; i < 200; i++)); do
	[[ $(cat "$entry" 2>/dev/null) == 3 ]] && break
	sleep 0.025
done
[[ $(cat "$entry") == 3 ]] || fail "no server and client bits before the kill"

kill -KILL "$daemon_pid"
wait "$daemon_pid" 2>/dev/null || true
daemon_pid=
start_daemon # over the dead mount, which the peers still hold files of
for ((i = 0; i < 200; i++)); do
	[[ $(cat "$entry" 2>/dev/null) == 3 ]] && break
	sleep 0.025
done
[[ $(cat "$entry" 2>/dev/null) == 3 ]] ||
	fail "server and client did not claim again after the restart (entry: $(cat "$entry" 2>&1))"
client_until_shm "$work/a.sock" "$work/a-client.log"
check_shm "$work/a-client.log" $((1 << 20))
# The looping client's rounds since: the last two used shared memory.
rounds=$(grep -c "round .* ok" "$work/loop.log")
wait_for_line "$work/loop.log" "round $((rounds + 2)) ok"
touch "$work/stop"
wait_pid "$loop_pid" || fail "the looping client"
awk '/shared memory, client/ { shm = 1 } / ok$/ { print shm; shm = 0 }' "$work/loop.log" |
	tail -n 2 | grep -q 0 && fail "the looping client's connections after the restart were plain"
exit 0
