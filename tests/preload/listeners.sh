#!/usr/bin/env bash
# Listeners a server listened on under another name than it bound: it
# serves preloaded clients through shared memory, byte-exact, from the
# first client on.  Bind to a temporary name, rename into place, then
# listen, as servers that replace their socket atomically do.
NAME=listeners
source "$(dirname "$0")/lib.sh"

sock=$work/s.sock
bytes=$((3 << 20))

# client N: preloaded echo client N in the background; sets $client_pid.
client() {
	spawn yes "$work/client$1.log" "$tools/tssx-echo" client "$sock" --bytes "$bytes"
	client_pid=$spawned
}

# client_done N: client N exited, echo byte-exact, through shared memory.
client_done() {
	wait_pid "$client_pid" || fail "client $1"
	check_shm "$work/client$1.log" "$bytes"
}

start_echo_server yes "$work/rename.log" "$sock" --clients 2 --rename
for i in 1 2; do client "$i"; client_done "$i"; done
wait_pid "$server_pid" || fail "renamed server"
[[ $(grep -c "closed: ring sent=$bytes" "$work/rename.log") == 2 ]] || fail "renamed server: not 2 connections in shared memory"
