# Sourced by the tests in tests/servers, after they set NAME and with their
# arguments: WITH_REGISTRY REGISTRYFS LIBTSSX.
#
# Re-runs the test inside one private registry; then gives it $work, a
# temporary directory, and $preloaded, the command prefix that preloads the
# library with info logging (a command, not a function, so that "$!" of a
# server started in the background is the server itself).  On exit,
# $server_pid is stopped and $work removed, whatever happened.
set -euo pipefail

with_registry=$1 registryfs=$2 lib=$3

# need PROGRAM PACKAGE: skip, with the reason, when PROGRAM is absent
need() {
	command -v "$1" >/dev/null || { echo "$NAME: SKIP: $1 not found (apt-get install $2)" >&2; exit 77; }
}

if [[ -z ${TSSX_SERVERS_TEST_INSIDE:-} ]]; then
	export TSSX_SERVERS_TEST_INSIDE=1
	exec "$with_registry" --registryfs "$registryfs" "$0" "$@"
fi
unset TSSX_SERVERS_TEST_INSIDE

work=$(mktemp -d "${TMPDIR:-/tmp}/tssx-$NAME.XXXXXX")
preloaded=(env LD_PRELOAD="$lib" TSSX_LOG=info)
server_pid=

servers_cleanup() {
	if [[ -n $server_pid ]]; then
		kill -TERM "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap servers_cleanup EXIT

fail() {
	echo "$NAME: FAIL: $*" >&2
	tail -n 20 "$work"/*.log >&2 2>/dev/null || true
	exit 1
}

# start_preloaded_redis SOCK [ARGS...]: a preloaded redis-server with ARGS
# on the Unix socket SOCK, logging to $work/server.log, its pid in
# $server_pid; returns once a plain redis-cli got PONG.
start_preloaded_redis() {
	local sock=$1 i
	shift
	"${preloaded[@]}" redis-server "$@" --port 0 --unixsocket "$sock" --save '' --appendonly no \
		--dir "$work" --logfile '' >"$work/server.log" 2>&1 &
	server_pid=$!
	for ((i = 0; i < 200; i++)); do
		[[ -S $sock ]] && redis-cli -s "$sock" ping 2>/dev/null | grep -qx PONG && return 0
		kill -0 "$server_pid" 2>/dev/null || fail "redis-server exited"
		sleep 0.05
	done
	fail "redis-server did not come up"
}
