#!/usr/bin/env bash
# tssx-roundtrip does the same around both kinds of pair: the server puts
# the CPU it answers from in the answer's first byte and the client
# compares it with its own, so that the socket pair moves no cache line
# that the raw pair does not (the server used to store its CPU in a shared
# word of its own, which the client loaded at every round trip, on the
# socket pair only: docs/benchmark.md, "The round trip against the raw
# ring, again").  Both pairs print the count; a pair whose ends are pinned
# to one CPU reads every answer after the warm-up batch on the CPU that
# wrote it.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

line='^answers read on the CPU they were written from: \([0-9]*\) of 2000$'
cpu=$(python3 -c 'import os; print(min(os.sched_getaffinity(0)))')

"$TSSX_ROUNDTRIP" raw 1000 8 - - >"$TMP/raw" 2>&1 || fail "raw pair: $(cat "$TMP/raw")"
[[ -n $(sed -n "s/$line/\1/p" "$TMP/raw") ]] ||
	fail "the raw pair does not count the answers read on the CPU they were written from: $(cat "$TMP/raw")"

"$TSSX_ROUNDTRIP" socket "$TMP/s" 1000 8 "$cpu" "$cpu" >"$TMP/socket" 2>&1 ||
	fail "socket pair: $(cat "$TMP/socket")"
same=$(sed -n "s/$line/\1/p" "$TMP/socket")
[[ -n $same ]] && ((same >= 1000)) ||
	fail "socket pair on CPU $cpu: ${same:-no count of} answers of 2000 read on the CPU they were written from: $(cat "$TMP/socket")"
