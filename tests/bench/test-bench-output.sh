#!/usr/bin/env bash
# tssx-bench with a tiny duration: the shape of its JSON (every key, numbers
# in every measured cell, ratios wherever both sides were measured, the
# targets) and of its table, never its speed.  Without TSSX first, then
# inside a temporary registry with the library, where the TSSX column must
# be measured and must really have used shared memory.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

TINY=(--duration 0.02 --warmup 0.005 --rounds 1)

check_json() { # file, 0|1: with the TSSX column
	python3 - "$@" <<'PY'
import json, math, sys

doc = json.load(open(sys.argv[1]))
tssx = sys.argv[2] == "1"
errors = []

def expect(cond, what):
    if not cond:
        errors.append(what)

def number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

def cell_ok(row, col):
    c = row[col]
    where = f"{row['label']}/{col}"
    if not isinstance(c, dict) or "error" in c:
        errors.append(f"{where}: not measured: {c}")
        return False
    for key in ("median", "p99", "min", "max"):
        expect(number(c.get(key)) and c[key] >= 0, f"{where}: {key}")
    expect(c["min"] <= c["median"] <= c["max"] and c["p99"] <= c["max"], f"{where}: order")
    expect(isinstance(c.get("samples"), int) and c["samples"] >= 1, f"{where}: samples")
    if row["test"] in ("stream", "drain"):
        expect(abs(c["messages_per_s"] * c["median"] / 1e9 - 1) < 1e-3, f"{where}: messages/s")
        expect(abs(c["gb_per_s"] * c["median"] / row["size"] - 1) < 1e-3, f"{where}: GB/s")
    return True

def ratio_ok(row, key, over, under):
    if tssx and row[over] and row[under]:
        want = row[over]["median"] / row[under]["median"]
        expect(number(row[key]) and abs(row[key] / want - 1) < 1e-3, f"{row['label']}: {key}")
    else:
        expect(row[key] is None, f"{row['label']}: {key} without both sides")

expect(doc["version"] and doc["interrupted"] is False, "version, interrupted")
m = doc["machine"]
expect(isinstance(m["nproc"], int) and m["nproc"] > 0 and m["cpu"] and m["kernel"], "machine")
expect(doc["config"]["duration_s"] == 0.02 and doc["config"]["blocked_s"] == 0.02 and
       doc["config"]["rounds"] == 1, "config")
expect(doc["tssx"]["available"] is tssx, "tssx.available")
expect(tssx or doc["tssx"]["reason"], "tssx.reason when unavailable")

tests = [r["test"] for r in doc["results"]]
SIZES = [8, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304]
expect(tests == ["pingpong"] * len(SIZES) + ["stream"] * len(SIZES) + ["drain"] * 2 +
       ["connect", "connect_default", "connect_tssx_client_plain_server", "pipe", "blocked", "blocked", "idle"],
       f"rows {tests}")
expect([r["size"] for r in doc["results"][:len(SIZES)]] == SIZES, "sizes")
for row in doc["results"]:
    # The connect row with a segment each has the limit of a connection
    # with memory of its own; the other connect rows have none.
    with_raw = row["test"] in ("pingpong", "stream", "drain", "connect")
    if with_raw:
        cell_ok(row, "raw")
    else:
        expect(row["raw"] is None, f"{row['label']}: raw")
    cell_ok(row, "plain")
    if tssx:
        if cell_ok(row, "tssx") and (with_raw or row["test"] == "idle"):
            expect(row["tssx"]["shared_memory"] is True, f"{row['label']}: TSSX used no shared memory")
    else:
        expect(row["tssx"] is None, f"{row['label']}: tssx without TSSX")
    if row["test"] == "idle":
        expect(row["tssx_vs_plain"] is None and row["tssx_vs_raw"] is None, "idle: no ratios")
    else:
        ratio_ok(row, "tssx_vs_plain", "plain", "tssx")
    if with_raw:
        ratio_ok(row, "tssx_vs_raw", "tssx", "raw")
    if row["test"] == "idle":
        # Bytes per connection: none for plain sockets, at least the
        # segment's first page (header, control blocks, small rings).
        expect(row["unit"] == "bytes_per_connection", "idle: unit")
        expect(row["plain"] and row["plain"]["median"] == 0, "idle: plain sockets hold no shared memory")
        if tssx and row["tssx"]:
            expect(row["tssx"]["median"] >= 4096, f"idle: TSSX {row['tssx']['median']} bytes per connection")
    if row["test"] == "pipe":
        expect(number(row["overhead_percent"]) if tssx else row["overhead_percent"] is None, "overhead")

expect(len(doc["targets"]) == 17, "seventeen targets")
for t in doc["targets"]:
    expect(number(t["limit"]), f"target {t['name']}: limit")
    if tssx:
        expect(number(t["value"]) and isinstance(t["met"], bool), f"target {t['name']}")
    else:
        expect(t["value"] is None and t["met"] is None, f"target {t['name']} without TSSX")
if errors:
    print("\n".join(errors), file=sys.stderr)
    sys.exit(1)
PY
}

check_table() { # file
	grep -q '^round trip  *raw shm  *plain socket  *TSSX  *vs plain  *vs raw$' "$1" || fail "table header"
	# Ten sizes: round trip, streaming in messages/s and GB/s; 8 B and 64 B
	# to a draining reader.
	[[ $(grep -cE '^  (8 B|64 B|256 B|1 KiB|4 KiB|16 KiB|64 KiB|256 KiB|1 MiB|4 MiB) ' "$1") == 32 ]] ||
		fail "table rows"
	grep -q '^targets, from this run:$' "$1" || fail "targets"
	grep -q '^  of [0-9]*, per connection  *–  *0\.000 KiB ' "$1" || fail "idle connection row"
}

# Without TSSX: the column is skipped with one line on stderr.
TSSX_REGISTRY=$TMP "$TSSX_BENCH" "${TINY[@]}" --json >"$TMP/plain.json" 2>"$TMP/stderr" ||
	fail "bench without TSSX failed: $(cat "$TMP/stderr")"
[[ $(wc -l <"$TMP/stderr") == 1 ]] && grep -q "TSSX column skipped" "$TMP/stderr" ||
	fail "stderr without TSSX: $(cat "$TMP/stderr")"
check_json "$TMP/plain.json" 0 || fail "JSON without TSSX"
TSSX_REGISTRY=$TMP "$TSSX_BENCH" "${TINY[@]}" --tests pingpong,stream,drain,idle >"$TMP/table" 2>/dev/null ||
	fail "table run failed"
check_table "$TMP/table"
rc=0; "$TSSX_BENCH" --duration 0 2>/dev/null || rc=$?
((rc == 2)) || fail "--duration 0 exits $rc, not 2"
help=$("$TSSX_BENCH" --help) # whole: grep -q would stop reading (SIGPIPE)
grep -q '^Usage: tssx-bench' <<<"$help" || fail "--help"
for bad in "--load -t pairs,bogus" "-t hogs"; do # names of the other table
	rc=0; "$TSSX_BENCH" $bad 2>/dev/null || rc=$?
	((rc == 2)) || fail "$bad exits $rc, not 2"
done
# The error names every scenario (a list written out by hand left some out).
rc=0; "$TSSX_BENCH" --load -t bogus 2>"$TMP/stderr" || rc=$?
((rc == 2)) && grep -q "(pairs,hogs,clients,chain,relay,fresh,idle)" "$TMP/stderr" ||
	fail "--load -t bogus: exit $rc, $(cat "$TMP/stderr")"
# --load -t: only the scenarios named, in the table's order.
TSSX_REGISTRY=$TMP "$TSSX_BENCH" --load -t chain,pairs --duration 0.02 --rounds 1 --json \
	>"$TMP/load.json" 2>/dev/null || fail "--load -t chain,pairs failed"
python3 -c 'import json, sys; print(" ".join(r["scenario"] for r in json.load(open(sys.argv[1]))["load"]))' \
	"$TMP/load.json" >"$TMP/scenarios" || fail "--load JSON"
[[ $(cat "$TMP/scenarios") == "pairs pairs pairs pairs pairs chain via epoll proxy chain via epoll proxy" ]] ||
	fail "--load -t chain,pairs ran: $(cat "$TMP/scenarios")"
# A server role outlives a client that goes away before its answer (as at
# the end of every round, when its clients are killed first): it must
# not die of SIGPIPE, which left the clients still running to print a
# refused connect.  The client shuts its reading side first, so the echo
# meets EPIPE for certain; then a second client must still be answered.
"$TSSX_BENCH" --load-role fresh-server "$TMP/role.sock" 3>"$TMP/role.ready" 4>/dev/null &
role=$!
python3 - "$TMP/role.sock" "$TMP/role.ready" <<'PY' || { kill "$role" 2>/dev/null; fail "fresh-server died with a client"; }
import os, socket, sys, time

path, ready = sys.argv[1:]
deadline = time.monotonic() + 10
while os.path.getsize(ready) < 1:
    assert time.monotonic() < deadline, "the role never listened"
    time.sleep(0.01)
gone = socket.socket(socket.AF_UNIX)
gone.connect(path)
gone.shutdown(socket.SHUT_RD)
gone.sendall(b"x" * 64)
time.sleep(0.2)
kept = socket.socket(socket.AF_UNIX)
kept.settimeout(10)
kept.connect(path)
kept.sendall(b"y" * 64)
got = b""
while len(got) < 64:
    chunk = kept.recv(64 - len(got))
    assert chunk, "no answer"
    got += chunk
assert got == b"y" * 64, got
PY
kill "$role"
wait "$role" 2>/dev/null || true
# One pair beside hogs, a lottery of placements: three times the rounds,
# each counted as on one CPU or on two (docs/benchmark.md, "One pair beside
# hogs, by placement").
TSSX_REGISTRY=$TMP "$TSSX_BENCH" --load -t hogs --duration 0.02 --rounds 1 --json \
	>"$TMP/hogs.json" 2>/dev/null || fail "--load -t hogs failed"
python3 - "$TMP/hogs.json" <<'PY' || fail "--load -t hogs: one pair's rounds by placement"
import json, sys

row = json.load(open(sys.argv[1]))["load"][0]
plain = row["plain"]
assert row["n"] == 1 and plain["req_per_s"]["rounds"] == 3, row
placed = [plain.get(k) for k in ("req_per_s_one_cpu", "req_per_s_two_cpus")]
assert sum(p["rounds"] for p in placed if p) == 3, row
PY
TSSX_REGISTRY=$TMP "$TSSX_BENCH" --load -t hogs --duration 0.02 --rounds 1 >"$TMP/hogs" 2>/dev/null ||
	fail "--load -t hogs failed"
grep -q "^  pairs + hogs 1, by where the pair's two ends ran" "$TMP/hogs" || fail "--load -t hogs: no placement lines"
grep -q '^    on two CPUs  *plain [0-3] of 3 rounds' "$TMP/hogs" || fail "--load -t hogs: $(cat "$TMP/hogs")"

if ! have_tssx; then
	echo "SKIP: libtssx.so or tests/lib/with-registry not built yet"
	exit 77
fi
TSSX_LIBRARY=$TSSX_TEST_LIBRARY "$WITH_REGISTRY" "$TSSX_BENCH" "${TINY[@]}" --json \
	>"$TMP/tssx.json" 2>"$TMP/stderr" || fail "bench with TSSX failed: $(cat "$TMP/stderr")"
check_json "$TMP/tssx.json" 1 || fail "JSON with TSSX"
# The proxy chains with TSSX: kept-alive upstream connections, and one per
# request (the proxy opens it for each request and closes it once the
# answer is relayed): every row measured in both columns, the clients'
# connections to the proxy through shared memory.
TSSX_LIBRARY=$TSSX_TEST_LIBRARY "$WITH_REGISTRY" "$TSSX_BENCH" --load -t relay,chain --duration 0.1 \
	--warmup 0.02 --rounds 1 --json >"$TMP/chains.json" 2>"$TMP/stderr" ||
	fail "--load -t relay,chain with TSSX failed: $(cat "$TMP/stderr")"
python3 - "$TMP/chains.json" <<'PY' || fail "--load -t relay,chain with TSSX"
import json, sys

rows = json.load(open(sys.argv[1]))["load"]
assert [r["label"] for r in rows] == ["chain via epoll proxy 1", "chain via epoll proxy 8",
                                      "chain, upstream per req 1", "chain, upstream per req 8"], rows
for r in rows:
    assert r["error"] is None and r["shared_memory"], r
    for col in ("plain", "tssx"):
        assert r[col]["req_per_s"]["median"] > 0, r
PY
# A connection per request with TSSX: measured in both columns and
# counted as shared memory, although the clients that start after three
# short connections follow their program's shared history and connect
# plain from their first request (the bench wanted every client's first
# connection in shared memory until fc2ea8d, and flagged the row of
# eight clients in three rounds out of three).
TSSX_LIBRARY=$TSSX_TEST_LIBRARY "$WITH_REGISTRY" "$TSSX_BENCH" --load -t fresh --duration 0.1 \
	--warmup 0.02 --rounds 3 --json >"$TMP/fresh.json" 2>"$TMP/stderr" ||
	fail "--load -t fresh with TSSX failed: $(cat "$TMP/stderr")"
python3 - "$TMP/fresh.json" <<'PY' || fail "--load -t fresh with TSSX"
import json, sys

rows = json.load(open(sys.argv[1]))["load"]
assert [r["label"] for r in rows] == ["connection per request 1", "connection per request 8"], rows
for r in rows:
    assert r["error"] is None and r["shared_memory"], r
    for col in ("plain", "tssx"):
        assert r[col]["req_per_s"]["median"] > 0, r
PY
