#!/usr/bin/env bash
# tssx bench --plot: a tiny real run drawn by gnuplot into a valid SVG with
# both panels and every measured column (TSSX too, inside a temporary
# registry), and the same for the load table (--load); --from draws a
# saved run the same way; --json still prints the
# results; bad uses are usage errors and results with nothing to draw an
# error, none of which leaves a chart behind.  Never a speed.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

TINY=(-t pingpong,stream --duration 0.02 --warmup 0.005 --rounds 1)

# check_svg FILE LEGEND...: well-formed XML, an <svg> root, both panels,
# and each legend entry.
check_svg() {
	local svg=$1; shift
	[[ -s $svg ]] || fail "no chart at $svg"
	xmllint --noout "$svg" 2>"$TMP/xmllint" || fail "$svg is not well-formed: $(cat "$TMP/xmllint")"
	python3 - "$svg" "$@" <<'PY' || fail "$svg is not the chart"
import sys
import xml.etree.ElementTree as ET

root = ET.parse(sys.argv[1]).getroot()
text = " ".join(t.strip() for t in root.itertext())
missing = [w for w in ["round trip", "streaming", "message size"] + sys.argv[2:] if w not in text]
if not root.tag.endswith("svg") or missing:
    sys.exit(f"root {root.tag}, missing {missing}")
PY
}

if have_tssx; then
	export TSSX_LIBRARY=$TSSX_TEST_LIBRARY
	"$WITH_REGISTRY" "$TSSX_CMD" bench --plot "$TMP/run.svg" --json "${TINY[@]}" >"$TMP/run.json" 2>"$TMP/err" ||
		fail "tssx bench --plot failed: $(cat "$TMP/err")"
	check_svg "$TMP/run.svg" "raw shared memory" "plain Unix socket" "TSSX"
else
	echo "note: libtssx.so or the registry daemon not built: the chart without a TSSX column"
	TSSX_REGISTRY=$TMP/none "$TSSX_CMD" bench --plot "$TMP/run.svg" --json "${TINY[@]}" >"$TMP/run.json" 2>"$TMP/err" ||
		fail "tssx bench --plot failed: $(cat "$TMP/err")"
	check_svg "$TMP/run.svg" "raw shared memory" "plain Unix socket"
fi
grep -q "chart written to $TMP/run.svg" "$TMP/err" || fail "--plot does not say where the chart is"
python3 -c 'import json, sys; json.load(open(sys.argv[1]))["results"][0]["raw"]["median"]' "$TMP/run.json" ||
	fail "--plot --json did not print the results"

# The load table: every scenario, both panels, plain and TSSX (TSSX only
# when it can run).
columns=("plain Unix socket")
have_tssx && columns+=("TSSX")
run_load=("$TSSX_CMD" bench --load --plot "$TMP/load.svg" --json --duration 0.02 --rounds 1)
if have_tssx; then
	"$WITH_REGISTRY" "${run_load[@]}" >"$TMP/load.json" 2>"$TMP/err" || fail "--load --plot failed: $(cat "$TMP/err")"
else
	TSSX_REGISTRY=$TMP/none "${run_load[@]}" >"$TMP/load.json" 2>"$TMP/err" || fail "--load --plot failed: $(cat "$TMP/err")"
fi
xmllint --noout "$TMP/load.svg" || fail "$TMP/load.svg is not well-formed"
python3 - "$TMP/load.svg" "${columns[@]}" <<'PY' || fail "$TMP/load.svg is not the load chart"
import sys
import xml.etree.ElementTree as ET

text = " ".join(t.strip() for t in ET.parse(sys.argv[1]).getroot().itertext())
wanted = ["64 B round trips", "CPU time per request", "pairs 1", "pairs + hogs 16",
          "epoll server, clients 64", "chain via epoll proxy 8", "connection per request 8"] + sys.argv[2:]
missing = [w for w in wanted if w not in text]
if missing:
    sys.exit(f"missing {missing}")
PY

"$TSSX_CMD" bench --plot "$TMP/saved.svg" --from "$TMP/run.json" 2>/dev/null || fail "--from failed"
check_svg "$TMP/saved.svg" "raw shared memory" "plain Unix socket"

for bad in "--plot $TMP/bad.png --from $TMP/run.json" "--from $TMP/run.json" "--plot" \
	"--plot $TMP/bad.svg --from $TMP/run.json --quick"; do
	rc=0
	# shellcheck disable=SC2086 # the words are the arguments
	"$TSSX_CMD" bench $bad >/dev/null 2>&1 || rc=$?
	((rc == 2)) || fail "tssx bench $bad exits $rc, not 2"
done
echo '{"results": []}' >"$TMP/empty.json"
rc=0; "$TSSX_CMD" bench --plot "$TMP/bad.svg" --from "$TMP/empty.json" 2>"$TMP/err" || rc=$?
((rc == 1)) && grep -q "nothing\|no round-trip" "$TMP/err" || fail "empty results: exit $rc, '$(cat "$TMP/err")'"
[[ ! -e $TMP/bad.svg && ! -e $TMP/bad.png ]] || fail "a refused plot left a file"
