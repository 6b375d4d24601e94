#!/usr/bin/env bash
# A SOCK_SEQPACKET Unix socket, both ends preloaded, stays plain and keeps
# its message boundaries: the registry claims nothing for its path, no
# connection goes to shared memory, and every message comes back whole
# (py_seqpacket.py).  The same check of the registry on a stream socket
# first: it must show the claim there.
NAME=seqpacket
source "$(dirname "$0")/lib.sh"

py=$(dirname "$0")/py_seqpacket.py
entries() { find "$TSSX_REGISTRY" -mindepth 1 | wc -l; }

before=$(entries)
start_echo_server yes "$work/stream.log" "$work/stream.sock" --clients 1
(($(entries) > before)) || fail "a stream listener made no registry entry: the check cannot see a claim"
with_preload yes "${guard[@]}" "$tools/tssx-echo" client "$work/stream.sock" --bytes 64K >"$work/client.log" 2>&1 ||
	fail "stream client"
check_shm "$work/client.log" 65536
wait_pid "$server_pid" || fail "stream server"

before=$(entries)
spawn yes "$work/server.log" python3 "$py" server "$work/seq.sock"
server_pid=$spawned
wait_for_line "$work/server.log" "server: listening"
(($(entries) == before)) || fail "the registry claimed the SOCK_SEQPACKET listener"
with_preload yes "${guard[@]}" python3 "$py" client "$work/seq.sock" >"$work/client.log" 2>&1 ||
	fail "SOCK_SEQPACKET messages were not echoed whole"
wait_pid "$server_pid" || fail "SOCK_SEQPACKET server"
(($(entries) == before)) || fail "the registry claimed the SOCK_SEQPACKET path"
check_plain "$work/server.log"
check_plain "$work/client.log"
! grep -q "TSSX connection failed\|warn\|error" "$work/server.log" "$work/client.log" ||
	fail "the library complained about a SOCK_SEQPACKET socket"
