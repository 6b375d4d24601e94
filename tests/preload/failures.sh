#!/usr/bin/env bash
# When TSSX must stay out of the way, and when a peer dies:
# - no registry at TSSX_REGISTRY, TSSX_DISABLE=1, an excluded path: plain
#   sockets, byte-exact (a stray hello would break the echo);
# - kill -9 of either side in the middle of a transfer: the other side
#   sees EOF or EPIPE and ends, it does not hang.
NAME=failures
source "$(dirname "$0")/lib.sh"

sock=$work/s.sock

# plain_pair ENV...: both ends preloaded with ENV, still plain.
plain_pair() {
	start_echo_server yes "$work/server.log" "$sock"
	with_preload yes env "$@" "${guard[@]}" "$tools/tssx-echo" client "$sock" --bytes 2M \
		>"$work/client.log" 2>&1 || fail "client with $*"
	wait_pid "$server_pid" || fail "server with $*"
	check_plain "$work/client.log"
	check_plain "$work/server.log"
}

mkdir "$work/empty"
plain_pair TSSX_REGISTRY="$work/empty"
plain_pair TSSX_DISABLE=1
plain_pair TSSX_EXCLUDE="$work/*"

# kill_mid_transfer VICTIM: VICTIM (server|client) dies with SIGKILL once
# both ends are in shared memory; the survivor must end by itself.
kill_mid_transfer() {
	local victim=$1 client_pid survivor victim_pid
	start_echo_server yes "$work/server.log" "$sock"
	spawn yes "$work/client.log" "$tools/tssx-echo" client "$sock" --bytes 100G
	client_pid=$spawned
	wait_for_line "$work/server.log" "shared memory, server"
	wait_for_line "$work/client.log" "shared memory, client"
	sleep 0.2 # well into the transfer
	if [[ $victim == server ]]; then
		victim_pid=$server_pid survivor=$client_pid
	else
		victim_pid=$client_pid survivor=$server_pid
	fi
	kill -KILL "$victim_pid"
	{ wait "$victim_pid"; } 2>/dev/null || true # no "Killed" line
	# The survivor fails (EPIPE) or sees EOF, and ends.
	wait_pid "$survivor" || true
	grep -qE "Broken pipe|Connection reset|echoed|incomplete" "$work/$([[ $victim == server ]] && echo client || echo server).log" ||
		fail "the $victim's peer ended without EOF or EPIPE"
}

kill_mid_transfer client
kill_mid_transfer server
