#!/usr/bin/env bash
# fd passing (SCM_RIGHTS, SCM_CREDENTIALS) over TSSX connections, in stream
# order: tssx-fdpass passes 2000 messages each way, fds and data
# interleaved, first plain (the checks hold against the kernel), then with
# both ends preloaded (shared memory asserted); then Python's
# multiprocessing forkserver, which hands its workers their fds this way.
NAME=fdpass
source "$(dirname "$0")/lib.sh"

sock=$work/s.sock
bytes=3003000 # what 2000 messages of tssx-fdpass carry each way

# fdpass_pair yes|no [ARG...]: a server and a client of tssx-fdpass.
fdpass_pair() {
	local mode=$1; shift
	spawn "$mode" "$work/server.log" "$tools/tssx-fdpass" server "$sock" "$@"
	server_pid=$spawned
	wait_for_line "$work/server.log" "server: listening"
	with_preload "$mode" "${guard[@]}" "$tools/tssx-fdpass" client "$sock" "$@" >"$work/client.log" 2>&1 ||
		fail "fdpass client ($mode $*)"
	wait_pid "$server_pid" || fail "fdpass server ($mode $*)"
	grep -q "received $bytes bytes" "$work/client.log" || fail "client: bytes missing"
	grep -q "received $bytes bytes" "$work/server.log" || fail "server: bytes missing"
}

# check_ring LOG: the connection went through shared memory and its rings
# carried the stream both ways.
check_ring() {
	grep -q "shared memory" "$1" || fail "$1: no connection in shared memory"
	grep -q "closed: ring sent=$bytes received=$bytes," "$1" || fail "$1: the rings did not carry the stream"
}

for opts in "" "--creds"; do
	fdpass_pair no $opts
	check_plain "$work/server.log"
	fdpass_pair yes $opts
	check_ring "$work/server.log"
	check_ring "$work/client.log"
done

# multiprocessing's forkserver (an exec'd Python that accepts on the
# listener it inherited) receives each new worker's fds with SCM_RIGHTS.
with_preload yes "${guard[@]}" python3 "$(dirname "$0")/py_forkserver.py" >"$work/python.log" 2>&1 ||
	fail "forkserver pool"
grep -q "forkserver pool: 40 results ok" "$work/python.log" || fail "forkserver pool: wrong results"
grep -q "shared memory" "$work/python.log" || fail "forkserver: no connection in shared memory"
! grep -q "TSSX connection failed" "$work/python.log" || fail "forkserver: a connection failed"
