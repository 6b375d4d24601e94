#!/usr/bin/env bash
# Every pairing of preloaded and plain ends is byte-exact: both preloaded go
# through shared memory, any other pairing stays plain.  Blocking and
# non-blocking, 1 byte to 100 MiB; one TSSX server serving a TSSX and a
# plain client at once.
NAME=pairings
source "$(dirname "$0")/lib.sh"

sock=$work/s.sock

# pair SERVER CLIENT BYTES [CLIENT_ARG...]
pair() {
	local server=$1 client=$2 bytes=$3; shift 3
	start_echo_server "$server" "$work/server.log" "$sock" "$@"
	with_preload "$client" "${guard[@]}" "$tools/tssx-echo" client "$sock" --bytes "$bytes" "$@" \
		>"$work/client.log" 2>&1 || fail "client ($server/$client, $bytes bytes $*)"
	wait_pid "$server_pid" || fail "server ($server/$client, $bytes bytes $*)"
	if [[ $server/$client == yes/yes ]]; then
		check_shm "$work/server.log" "$bytes"
		check_shm "$work/client.log" "$bytes"
	else
		check_plain "$work/server.log"
		check_plain "$work/client.log"
	fi
}

for server in yes no; do
	for client in yes no; do
		for bytes in 1 3000000; do
			pair "$server" "$client" "$bytes"
			pair "$server" "$client" "$bytes" --nonblock --chunk 1000
		done
	done
done
pair yes yes $((100 << 20)) --chunk 256K
pair yes yes $((100 << 20)) --nonblock --chunk 100000

# One TSSX server, a TSSX and a plain client at the same time.
start_echo_server yes "$work/server.log" "$sock" --clients 2
spawn yes "$work/aware.log" "$tools/tssx-echo" client "$sock" --bytes 20M
aware=$spawned
with_preload no "${guard[@]}" "$tools/tssx-echo" client "$sock" --bytes 20M >"$work/plain.log" 2>&1 ||
	fail "plain client of a TSSX server"
wait_pid "$aware" || fail "TSSX client next to a plain one"
wait_pid "$server_pid" || fail "server of mixed clients"
check_shm "$work/aware.log" $((20 << 20))
[[ $(grep -c "shared memory, server" "$work/server.log") == 1 ]] || fail "server: not exactly one shm connection"
[[ $(grep -c "echoed 20971520 bytes" "$work/server.log") == 2 ]] || fail "server: not two full echoes"
