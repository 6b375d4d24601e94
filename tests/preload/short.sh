#!/usr/bin/env bash
# Short-lived connections (docs/preload.md, "Short-lived connections"): a
# preloaded client whose connections to one server each moved data in
# fewer than TSSX_SHORT_CALLS calls connects there plain for a while, and
# through shared memory again now and then and after a connection that
# made enough calls; so does a program run once per connection, by the
# history its processes share.  Every echo is checked byte for byte;
# which connections used shared memory is read from the client's log, so
# the test fails on a library that gives every connection a segment.
NAME=short
source "$(dirname "$0")/lib.sh"
client=$(dirname "$0")/short.py

# serve NAME: an echo server of its own for the next plans: a history
# is kept per server, and the user's processes share theirs per program.
serve() {
	sock=$work/$1.sock
	start_echo_server yes "$work/$1-server.log" "$sock" --clients 0
}

# run_plan LOG [ENV=VALUE...] -- [--exit-open] COUNTxCALLS...: the client's
# connections, in one process.
run_plan() {
	local log=$1; shift
	local env=()
	while [[ $1 != -- ]]; do env+=("$1"); shift; done
	shift
	with_preload yes env "${env[@]}" "${guard[@]}" python3 "$client" "$sock" "$@" >"$log" 2>&1 ||
		fail "client ($*) failed"
}

# shm_connections LOG: the numbers of the connections that used shared memory.
shm_connections() {
	awk '/^connection [0-9]+$/ { n = $2 } /shared memory, client/ { printf "%s ", n }' "$1"
}

expect() { # WHAT GOT WANT
	[[ $2 == "$3" ]] || fail "$1: shared memory for connections '$2', expected '$3'"
}

# 40 connections of one round trip: the first three use shared memory,
# then 16 go plain; the 20th looks again, is short again, and the next 32
# go plain.
serve short
run_plan "$work/short.log" -- 40x1
expect "one round trip each" "$(shm_connections "$work/short.log")" "1 2 3 20 "

# TSSX_SHORT_CALLS=0: every connection gets its segment.
run_plan "$work/every.log" TSSX_SHORT_CALLS=0 -- 40x1
expect "TSSX_SHORT_CALLS=0" "$(shm_connections "$work/every.log")" "$(seq -s ' ' 1 40) "

# A connection that looks again and makes enough calls (16 round trips:
# 32 calls) brings them back: the next one uses shared memory too.
serve long
run_plan "$work/long.log" -- 19x1 1x16 3x1
expect "after a long connection" "$(shm_connections "$work/long.log")" "1 2 3 20 21 "
check_shm "$work/long.log" $((100 * 1))

# A connection that moves 1 MiB each way pays for its segment in however
# few calls (TSSX_SHORT_CALLS=1000 here): the next one uses shared memory
# too.
serve bulk
run_plan "$work/bulk.log" TSSX_SHORT_CALLS=1000 -- 19x1 1x1x1048576 1x1
expect "after a connection of 1 MiB" "$(shm_connections "$work/bulk.log")" "1 2 3 20 21 "

# Connections that make enough calls never go plain.
serve kept
run_plan "$work/kept.log" TSSX_SHORT_CALLS=4 -- 10x2
expect "two round trips with TSSX_SHORT_CALLS=4" "$(shm_connections "$work/kept.log")" \
	"$(seq -s ' ' 1 10) "

# A program run once per connection: 24 processes of one round trip
# each, every other one leaving with its connection open (exit(), no
# close).  The program's processes share their history: processes 1-3
# use shared memory, 4-19 go plain, the 20th looks again.
serve once
used=""
for ((i = 1; i <= 24; i++)); do
	exit_open=()
	((i % 2 == 0)) && exit_open=(--exit-open)
	run_plan "$work/once-$i.log" -- "${exit_open[@]}" 1x1
	[[ -n $(shm_connections "$work/once-$i.log") ]] && used+="$i "
done
expect "a process per connection" "$used" "1 2 3 20 "
# Another program there has learnt nothing: its first connection uses
# shared memory; its own short ones then count for it alone.
with_preload yes env "${guard[@]}" "$tools/tssx-echo" client "$sock" --bytes 100 >"$work/other.log" 2>&1 ||
	fail "another program's client failed"
grep -q "shared memory, client" "$work/other.log" || fail "another program: its first connection was plain"
run_plan "$work/again.log" -- 1x1
expect "the first program's 25th process" "$(shm_connections "$work/again.log")" ""
exit 0
