#!/usr/bin/env bash
# A registry answer that changes between the connects of one client
# process (docs/registry.md, Speed): the client remembers what it looked
# up, hits and misses alike, and must follow every change the registry's
# generation announces.  Its server is plain, then preloaded, then plain
# again after a restart, then preloaded, and then a plain server's socket
# is renamed over the preloaded one's.  Every echo is checked byte for
# byte (a hello sent to a plain server comes back as data, and the
# client's rings would never be answered); which connections used shared
# memory is read from the client's log.  A client that kept a miss after
# a server claimed fails the third step; one that kept a server bit,
# the fourth or the last.
source "$(dirname "$0")/lib.sh"
sock=$work/echo.sock
client_log=$work/client.log

# The registry's generation: every change of bits raises it, after the
# kernel's caches dropped what it changed.
generation() { od -An -tu8 "$TSSX_REGISTRY/%generation" | tr -d ' '; }

wait_generation_past() { # OLD
	local i
	for ((i = 0; i < 400; i++)); do
		[[ $(generation) != "$1" ]] && return 0
		sleep 0.025
	done
	fail "the registry's generation stayed at $1"
}

# TSSX_SHORT_CALLS=0: one-round-trip connections never go plain on their
# own, only because the registry says so.
coproc CLIENT { with_preload yes env TSSX_SHORT_CALLS=0 "${guard[@]}" python3 "$(dirname "$0")/short.py" "$sock" - 2>"$client_log"; }
background+=("$CLIENT_PID")
n=0

# connect_expect shm|plain: one connection of two round trips.
connect_expect() {
	local reply line
	n=$((n + 1))
	echo 2 >&"${CLIENT[1]}"
	read -r -t 30 reply <&"${CLIENT[0]}" || fail "connection $n: no answer from the client"
	[[ $reply == "ok $n" ]] || fail "connection $n: client said '$reply'"
	line=$(awk -v n="$n" '/^connection [0-9]+$/ { c = $2 } c == n && /shared memory, client/' "$client_log")
	if [[ $1 == shm && -z $line ]]; then
		fail "connection $n: plain, expected shared memory"
	elif [[ $1 == plain && -n $line ]]; then
		fail "connection $n: shared memory, expected plain"
	fi
}

stop_server() {
	local g
	g=$(generation)
	kill "$server_pid"
	wait "$server_pid" 2>/dev/null || true
	rm -f "$sock"
	[[ $1 == tssx ]] && wait_generation_past "$g"
	return 0
}

# 1. A plain server: no entry; the second miss is the remembered one.
start_echo_server no "$work/plain1.log" "$sock" --clients 0
connect_expect plain
connect_expect plain
stop_server plain

# 2. Restarted with TSSX: its claim moves the generation past the miss.
g=$(generation)
start_echo_server yes "$work/tssx1.log" "$sock" --clients 0
wait_generation_past "$g"
connect_expect shm
connect_expect shm

# 3. Restarted without TSSX: the server bit the client saw is gone.
stop_server tssx
start_echo_server no "$work/plain2.log" "$sock" --clients 0
connect_expect plain

# 4. With TSSX again; then a plain server's socket replaces its file: the
# claim no longer holds.
stop_server plain
g=$(generation)
start_echo_server yes "$work/tssx2.log" "$sock" --clients 0
wait_generation_past "$g"
connect_expect shm
tssx_pid=$server_pid
start_echo_server no "$work/plain3.log" "$work/new.sock" --clients 0
g=$(generation)
mv "$work/new.sock" "$sock"
wait_generation_past "$g"
connect_expect plain
connect_expect plain
kill "$tssx_pid"

exec {CLIENT[1]}>&-
wait "$CLIENT_PID" || fail "client failed"
check_shm "$client_log" 200
exit 0
