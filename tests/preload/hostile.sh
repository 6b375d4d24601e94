#!/usr/bin/env bash
# A hostile TSSX client (tssx-forge) breaks the protocol in each way it
# can: the preloaded server logs why and drops that connection, the forger
# sees EOF (no hang), and the server goes on to serve a good client; one
# whose eventfd is blocking and full is served without a hang.  Then
# 1,000 hostile connects must leave the server with as many fds and
# mappings as before, and a server whose segments are attacked (control
# words held, counters racing, pages punched out) keeps serving good
# clients during and after the attack.  Hostile servers: one holds every
# control word at 1, one writes random values into the waiting flags and
# futex bell words while its client sleeps on the futex bell; the client
# ends when the server leaves.  A peer that breaks the ring this end
# writes fails this end's write, not its read of the bytes there.
NAME=hostile
source "$(dirname "$0")/lib.sh"

# serve ARGS...: a preloaded echo server of the case's own on $sock (a
# client process's history of a socket is its program's: docs/preload.md,
# "Short-lived connections").
served=0
serve() {
	sock=$work/s$((++served)).sock
	start_echo_server yes "$work/server.log" "$sock" "$@"
}
declare -A reason=(
	[magic]="bad magic"
	[version]="unsupported protocol version"
	[nofd]="hello without a segment"
	[unsealed]="segment not sealed"
	[short]="segment does not match the hello"
	[indices]="ring counters corrupted"
	[bypass]="stream bytes on the real socket"
	[fds]="hello with 3 fds"
	[fdsplit]="hello with 3 fds"
	[bellfds]="hello with an fd that is no eventfd"
	[huge]="rings larger than TSSX_RING_MAX"
)
cases=(magic version nofd unsealed short indices bypass fds fdsplit bellfds huge)

for how in "${cases[@]}"; do
	serve --clients 2
	"${guard[@]}" "$tools/tssx-forge" "$how" "$sock" >"$work/forge.log" 2>&1 ||
		fail "$how: the forger was not dropped"
	with_preload yes "${guard[@]}" "$tools/tssx-echo" client "$sock" --bytes 1M >"$work/client.log" 2>&1 ||
		fail "$how: no good connection after the forged one"
	wait_pid "$server_pid" && fail "$how: the server did not report the failed connection"
	grep -q "TSSX connection failed: ${reason[$how]}" "$work/server.log" || fail "$how: no clear log line"
	grep -q "echoed 1048576 bytes" "$work/server.log" || fail "$how: good client not served"
	check_shm "$work/client.log" 1048576
done

# A client whose eventfd, the one the server writes to wake it, is
# blocking and full: the server's wake-up (a write of 0) must not block
# its echo, nor the good client after it.
serve --clients 2
"${guard[@]}" "$tools/tssx-forge" bellfull "$sock" >"$work/forge.log" 2>&1 ||
	fail "bellfull: no echo: $(cat "$work/forge.log")"
with_preload yes "${guard[@]}" "$tools/tssx-echo" client "$sock" --bytes 1M >"$work/client.log" 2>&1 ||
	fail "bellfull: no good connection after it"
wait_pid "$server_pid" || fail "bellfull: the server failed: $(cat "$work/server.log")"
check_shm "$work/client.log" 1048576

# A message whose wake-up never comes (a peer that does not ring, or a
# wake-up lost): the server's read, asleep on the futex bell from its
# first call (TSSX_SHORT_CALLS=0), must find it all the same, and say
# that its wake-up never came.
TSSX_SHORT_CALLS=0 serve --clients 1
"${guard[@]}" "$tools/tssx-forge" silent "$sock" >"$work/forge.log" 2>&1 ||
	fail "silent: no echo: $(cat "$work/forge.log")"
wait_pid "$server_pid" || fail "silent: the server failed: $(cat "$work/server.log")"
grep -q "the peer wrote without a wake-up: the reader waited" "$work/server.log" ||
	fail "silent: the server did not say that the wake-up never came"

# An event loop with one connection (tssx-echo server --epoll), or a
# poll() on one connection (--poll: a client library's wait), publishes
# the CPU its waits run on, as a blocking read does, so that its peer can
# spin for it from another CPU beside other work (docs/wait.md, "A peer
# on another CPU beside other work"); before, only the data path did.
for how in --epoll --poll; do
	serve --clients 1 "$how"
	"${guard[@]}" "$tools/tssx-forge" cpuword "$sock" >"$work/forge.log" 2>&1 ||
		fail "cpuword: the server waiting with $how published no CPU: $(cat "$work/forge.log")"
	wait_pid "$server_pid" || fail "cpuword $how: the server failed: $(cat "$work/server.log")"
done

# counts PID: its open fds and its shared mappings (segments, lock pages).
# Not the private ones: glibc keeps the stacks of ended threads for reuse
# (up to 40 MiB), as many as connection threads happened to overlap, and
# a thread's first malloc may add an arena.
counts() {
	echo "$(find "/proc/$1/fd" -mindepth 1 | wc -l) fds, $(awk '$2 ~ /s/' "/proc/$1/maps" | wc -l) shared mappings"
}

threads() { find "/proc/$1/task" -mindepth 1 -maxdepth 1 | wc -l; }

# Each connection gets a thread of its own that ends with it: wait for
# the server to be back to the threads it listened with (its own and the
# registry client's helper), and the futex bell's watcher, which its
# first sleep in a read started and which stays.
settle() {
	local i
	for ((i = 0; i < 400; i++)); do
		(($(threads "$1") <= $2 + 1)) && return 0
		sleep 0.025
	done
	fail "the server still has connection threads"
}

serve --clients 0
listening_threads=$(threads "$server_pid")
for connects in 50 1000; do
	for ((i = 0; i < connects; i++)); do
		"${guard[@]}" "$tools/tssx-forge" "${cases[i % ${#cases[@]}]}" "$sock" >"$work/forge.log" 2>&1 ||
			fail "connect $i (${cases[i % ${#cases[@]}]}): the forger was not dropped"
	done
	settle "$server_pid" "$listening_threads"
	if ((connects == 50)); then
		before=$(counts "$server_pid")
	else
		after=$(counts "$server_pid")
	fi
done
[[ $before == "$after" ]] || fail "1000 hostile connects: $before before, $after after"

# The attack, with good clients served during it and after it (those
# during it with TSSX_SHORT_CALLS=0: three short connections of one
# program would send its next one there plain).
"${guard[@]}" "$tools/tssx-forge" attack 3 "$sock" >"$work/attack.log" 2>&1 &
attacker=$!
background+=("$attacker")
for ((i = 0; i < 3; i++)); do
	with_preload yes env TSSX_SHORT_CALLS=0 "${guard[@]}" "$tools/tssx-echo" client "$sock" --bytes 64K \
		>"$work/client.log" 2>&1 ||
		fail "a good client failed during the attack"
done
wait_pid "$attacker" || fail "the attacker failed"
grep -q "attack: .* connections" "$work/attack.log" || fail "the attacker did not attack"
with_preload yes "${guard[@]}" "$tools/tssx-echo" client "$sock" --bytes 1M >"$work/client.log" 2>&1 ||
	fail "a good client failed after the attack"
check_shm "$work/client.log" 1048576
kill -0 "$server_pid" || fail "the server died under the attack"

# Out of address space: a server that cannot map a segment fails that
# connection with ENOMEM and says so; a client that cannot create one
# stays on the plain socket and says so.
# Not against a library built with AddressSanitizer, whose shadow memory
# needs more address space than any such limit leaves.
kill -KILL "$server_pid"
if [[ -z $sanitized ]]; then
	limited=(bash -c 'ulimit -v 400000 && exec "$@"' limited)
	spawn yes "$work/server.log" TSSX_RING_MAX=256M "${limited[@]}" "$tools/tssx-echo" server "$sock" --clients 2
	server_pid=$spawned
	wait_for_line "$work/server.log" "server: listening"
	with_preload yes env TSSX_RING_SIZE=256M "${guard[@]}" "$tools/tssx-echo" client "$sock" --bytes 64K \
		>"$work/client.log" 2>&1 && fail "a segment the server cannot map carried a connection"
	grep -q "TSSX connection failed: cannot map the segment (Cannot allocate memory)" "$work/server.log" ||
		fail "no clear log line for a segment the server cannot map"
	with_preload yes env TSSX_RING_SIZE=256M "${limited[@]}" "${guard[@]}" "$tools/tssx-echo" client "$sock" \
		--bytes 64K >"$work/client.log" 2>&1 || fail "a client that cannot map its segment did not stay plain"
	check_plain "$work/client.log"
	grep -q "mmap of a .*-byte segment: Cannot allocate memory" "$work/client.log" ||
		fail "no clear log line for a segment the client cannot map"
fi

# A hostile server holds every control word of its client's segment (the
# lock words a preloaded client used to take there): the client's blocking
# and non-blocking sends must not hang; it ends when the server leaves.
for mode in --blocking --nonblock; do
	sock=$work/s$((++served)).sock
	spawn no "$work/serve.log" "$tools/tssx-forge" serve 2 "$sock"
	forger=$spawned
	wait_for_line "$work/serve.log" "serve: listening"
	status=0
	with_preload yes "${guard[@]}" "$tools/tssx-echo" client "$sock" --bytes 64K \
		${mode/--blocking/} >"$work/client.log" 2>&1 || status=$?
	((status != 137)) || fail "a client hung on a hostile server's control words ($mode)"
	grep -q "shared memory, client" "$work/client.log" || fail "the client to the hostile server was plain"
	wait_pid "$forger" || fail "the hostile server failed"
done

# A hostile server writes random values into the waiting flags and the
# futex bell words while its client's read sleeps on the futex bell, and
# never answers: the read ends when the server leaves.  TSSX_SHORT_CALLS=0:
# a connection of a few calls sleeps on the socket otherwise.
sock=$work/s$((++served)).sock
spawn no "$work/serve.log" "$tools/tssx-forge" bells 2 "$sock"
forger=$spawned
wait_for_line "$work/serve.log" "serve: listening"
status=0
with_preload yes env TSSX_SHORT_CALLS=0 "${guard[@]}" "$tools/tssx-echo" client "$sock" --bytes 64K \
	>"$work/client.log" 2>&1 || status=$?
((status != 137)) || fail "a client hung on a hostile server's bell words"
grep -q "data path sleeps: [1-9][0-9]* on the futex bell" "$work/client.log" ||
	fail "the client of the hostile server did not sleep on the futex bell"
wait_pid "$forger" || fail "the hostile server failed"


# A peer that breaks the ring this end writes, with a byte for this end
# there to read (tssx-probe txbroken): a look for POLLIN alone reports the
# byte and the read takes it; the next look for POLLOUT reports the error
# and the write fails with EPROTO.
with_preload yes "${guard[@]}" "$tools/tssx-probe" txbroken "$work/p.sock" >"$work/txbroken.log" 2>&1 ||
	fail "txbroken: the broken tx ring failed a read, or no write"
grep -q "TSSX connection failed: ring counters corrupted" "$work/txbroken.log" || fail "txbroken: no clear log line"
