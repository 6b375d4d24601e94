#!/usr/bin/env bash
# SIGINT stops tssx-bench cleanly: it kills its role processes (none is
# left in its session), prints what it has and exits 130.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# Its own session, so that whatever it leaves behind can be found.  Only
# the orchestrator gets the signal: killing the roles is its job.
setsid "$TSSX_BENCH" --duration 5 --json --tests pingpong >"$TMP/out.json" 2>"$TMP/stderr" &
bench=$!
for _ in $(seq 100); do
	pgrep -s "$bench" -f -- '--role client' >/dev/null && break
	sleep 0.05
done
sleep 0.3
kill -INT "$bench"
rc=0; wait "$bench" || rc=$?
((rc == 130)) || fail "exit status $rc, not 130"
left=$(pgrep -s "$bench" || true)
[[ -z $left ]] || { kill -9 $left; fail "processes left behind: $left"; }
python3 -c '
import json, sys
doc = json.load(open(sys.argv[1]))
assert doc["interrupted"] is True, "not marked interrupted"
cell = doc["results"][0]["raw"]
assert cell == {"error": "interrupted"} or "median" in cell, cell
' "$TMP/out.json" || fail "output after SIGINT"
