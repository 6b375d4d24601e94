#!/usr/bin/env bash
# Segments recycled (docs/data-path.md, "Segments recycled"), with
# tssx-recycle: one client process's connections to one server process,
# one after another, kept in step by pipes (TSSX_SHORT_CALLS=0: every
# connection gets a segment; TSSX_RECYCLE=1: recycling is off by default).
# - seq: a connection made while the server has not read the bytes of the
#   one before gets a segment of its own; once the server closed, the
#   next connections reuse the client's segment and the server's mapping
#   of it, and every byte of every connection arrives (also around
#   connections whose rings grew, which are not kept).
# - hostile: a server that writes random bytes into its segments, also
#   into those it released, makes the client's connections fail or carry
#   garbage, never hang or crash it; the connection after it is exact.
# - fork: a forked child of the client neither holds nor uses its
#   parent's pooled segment (nor the server's child its mapping); the
#   parent recycles it afterwards.
# - workers: a worker the server forked, which accepted a connection on
#   the server's listener and is still alive, keeps no mapping of its
#   segment: the client reuses it with the server (the same SO_PEERCRED).
# - TSSX_RECYCLE=0, and without TSSX_RECYCLE (off by default): no segment
#   is reused.
source "$(dirname "$0")/lib.sh" "$@"

sock=$work/s.sock
export TSSX_SHORT_CALLS=0 TSSX_RECYCLE=1

# run LOG MODE N: tssx-recycle preloaded, logging at info.
run() {
	local log=$1; shift
	rm -f "$sock"
	with_preload yes "${guard[@]}" "$tools/tssx-recycle" "$1" "$sock" "$2" >"$log" 2>&1 ||
		fail "tssx-recycle $1 failed"
	grep -qx ok "$log" || fail "tssx-recycle $1 did not finish"
}

# lines LOG PID TEXT: how many of PID's log lines hold TEXT.
lines() {
	grep -c "^tssx\[$2\]: info: .*$3" "$1" || true
}

run "$work/seq.log" seq 50
client=$(sed -n 's/^client //p' "$work/seq.log")
mapfile -t made < <(grep "^tssx\[$client\]: info: fd [0-9]*: shared memory, client" "$work/seq.log")
((${#made[@]} == 52)) || fail "seq: ${#made[@]} client connections in shared memory, not 52"
[[ ${made[0]} != *recycled* && ${made[1]} != *recycled* ]] ||
	fail "seq: a segment reused while the server had not read its bytes"
recycled=$(lines "$work/seq.log" "$client" "segment recycled")
# 50 echo connections: those after a connection whose rings grew (every
# seventh) find no released segment; all the others do.
((recycled >= 40)) || fail "seq: $recycled of 52 connections reused a segment"
mapped=$(grep -c "shared memory, server, mapping recycled" "$work/seq.log" || true)
((mapped == recycled)) || fail "seq: the server reused $mapped mappings for $recycled reused segments"

run "$work/hostile.log" hostile 40
((recycled = $(grep -c "segment recycled" "$work/hostile.log" || true))) ||
	fail "hostile: no connection reused a segment the server wrote into"

run "$work/fork.log" fork 0
client=$(sed -n 's/^client //p' "$work/fork.log")
child=$(sed -n 's/^child //p' "$work/fork.log")
(($(lines "$work/fork.log" "$child" "shared memory, client") == 1)) || fail "fork: the child's connection"
(($(lines "$work/fork.log" "$child" "recycled") == 0)) || fail "fork: the child reused its parent's segment"
last=$(grep "^tssx\[$client\]: info: fd [0-9]*: shared memory, client" "$work/fork.log" | tail -n 1)
[[ $last == *"segment recycled" ]] || fail "fork: the parent did not reuse its segment after the child"

run "$work/workers.log" workers 0
client=$(sed -n 's/^client //p' "$work/workers.log")
last=$(grep "^tssx\[$client\]: info: fd [0-9]*: shared memory, client" "$work/workers.log" | tail -n 1)
[[ $last == *"segment recycled" ]] || fail "workers: the client did not reuse its segment"

TSSX_RECYCLE=0 run "$work/off.log" seq 10
! grep -q recycled "$work/off.log" || fail "TSSX_RECYCLE=0: a segment was reused"

# Off by default (docs/data-path.md, "Segments recycled": who may forge a
# release).
unset TSSX_RECYCLE
run "$work/default.log" seq 10
! grep -q recycled "$work/default.log" || fail "a segment was reused without TSSX_RECYCLE=1"
exit 0
