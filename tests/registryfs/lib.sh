# Shared by the registry's integration tests; sourced, run under
# tests/lib/with-registry (which sets TSSX_REGISTRY to a private mount).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
HELPER=$HERE/helper.py
M=${TSSX_REGISTRY:?run under tests/lib/with-registry}
WORK=$(mktemp -d /tmp/tssx-regtest.XXXXXX)
HELPER_PIDS=()

cleanup_helpers() {
	local pid
	for pid in "${HELPER_PIDS[@]}"; do
		kill -KILL "$pid" 2>/dev/null || true
	done
	rm -rf "$WORK"
}
trap cleanup_helpers EXIT

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

expect() { # actual expected what
	[[ $1 == "$2" ]] || fail "$3: expected '$2', got '$1'"
}

# The registry file of a socket path.
entry() {
	echo "$M$1"
}

# Content of an entry, or "none" when it does not exist.
bits_of() {
	cat "$1" 2>/dev/null || echo none
}

# Whether an entry shows these bits ("none": it does not exist); for
# wait_until, which must re-read it each time.
shows() { # entry bits
	[[ $(bits_of "$1") == "$2" ]]
}

is_empty_dir() {
	[[ -z $(ls -A "$1") ]]
}

# Retries a command until it succeeds; fails after 10 s.  Only for changes
# the daemon learns asynchronously (inotify, the abstract-name poll).
wait_until() {
	local i
	for ((i = 0; i < 200; i++)); do
		"$@" && return 0
		sleep 0.05
	done
	fail "timed out waiting for: $*"
}

# Runs the helper in the background with output in $WORK/NAME.out, waits
# for its "ready PID", and sets HELPER_PID (killed at exit in any case).
start_helper() { # name helper-args...
	local name=$1; shift
	local out=$WORK/$name.out
	"$HELPER" "$@" >"$out" 2>&1 &
	HELPER_PIDS+=($!)
	disown # no "Killed" notices when the tests kill it
	wait_until grep -qs '^ready' "$out"
	HELPER_PID=$(awk '/^ready/ { print $2 }' "$out")
	HELPER_PIDS+=("$HELPER_PID")
}

# The helper's step results, one per line, without the ready line.
results_of() {
	grep -v '^ready' "$WORK/$1.out" | paste -sd' '
}

# Runs the helper in the foreground; prints its step results on one line.
run_helper() {
	"$HELPER" "$@" | paste -sd' '
}
