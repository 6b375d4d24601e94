# Sourced by every test in tests/apps. Each test runs one real, unmodified
# server of its kind with real clients: first on plain sockets (the
# reference), then with server and clients preloaded with libtssx.so over a
# registry of its own, then plain clients against that preloaded server,
# then preloaded clients against a plain server. All runs must give the
# same, checked results; every connection between preloaded ends must have
# moved its bytes through shared memory, and no other connection.
#
#   TEST.sh [LIBTSSX WITH_REGISTRY REGISTRYFS]
#
# Without arguments only the reference run happens. A test defines
# start_server, which starts its server with `serve CMD...`; app_run, which
# runs its clients with `app CMD...`, checks their results with `fail` and
# sets APPS_MIN_CONNS and APPS_MIN_RING_BYTES to the connections and bytes it
# made at least; and optionally bench_client, which prints "METRIC VALUE"
# lines, mostly through `measure`. Exit 77 (skip) only when the program cannot be found.
#
# With APPS_BENCH=N in the environment, inside a mounted registry (TSSX_REGISTRY
# set, e.g. by tests/lib/with-registry), the test instead measures: N rounds
# of bench_client against a fresh server, plain then preloaded, and prints the
# median of each metric per mode.

set -euo pipefail

APPS_LIB=${1:-}
APPS_WITH_REGISTRY=${2:-}
APPS_REGISTRYFS=${3:-}
APPS_MODE=${APPS_MODE:-plain}
# The mode of the clients: the server's, but for the pass of plain clients
# against the preloaded server.
APPS_CLIENTS=$APPS_MODE
APPS_NAME=$(basename "$0" .sh)
APPS_MIN_CONNS=1
APPS_MIN_RING_BYTES=1
APPS_CGROUP=
SERVER_PIDS=()

fail() {
	echo "$APPS_NAME ($APPS_MODE server, $APPS_CLIENTS clients): FAIL: $*" >&2
	if [[ -s ${WORK:-}/stderr.log ]]; then
		echo "--- last lines of the programs' stderr:" >&2
		tail -n 40 "$WORK/stderr.log" >&2
	fi
	exit 1
}

skip() {
	echo "$APPS_NAME: SKIP: $*" >&2
	exit 77
}

# need PROGRAM DEBIAN-PACKAGE
need() {
	command -v "$1" >/dev/null || skip "$1 not found (apt-get install $2, or contrib/dev.sh deps)"
}

need socat socat

# Stops every server (gracefully first: a server killed hard proves nothing
# about closing), then removes the work directory.
stop_servers() {
	local pid
	for pid in "${SERVER_PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${SERVER_PIDS[@]}"; do
		wait_gone "$pid" 100 || kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	SERVER_PIDS=()
}

# wait_gone PID TENTHS: whether PID exited within TENTHS tenths of a second.
wait_gone() {
	local i
	for ((i = 0; i < $2; i++)); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.1
	done
	return 1
}

cleanup() {
	stop_servers
	[[ -z ${WORK:-} ]] || rm -rf "$WORK"
}

# in_mode MODE CMD...: sets MODE_CMD to CMD as MODE (plain, tssx) runs it.
in_mode() {
	local mode=$1
	shift
	if [[ $mode == tssx ]]; then
		MODE_CMD=(env LD_PRELOAD="$APPS_LIB" TSSX_LOG=info "$@")
	else
		MODE_CMD=("$@")
	fi
}

# app CMD...: runs a client in its mode, its stderr into stderr.log; one
# that hangs fails the test after a minute rather than at meson's timeout.
app() {
	in_mode "$APPS_CLIENTS" "$@"
	local rc=0
	timeout --foreground 60 "${MODE_CMD[@]}" 2>>"$WORK/stderr.log" || rc=$?
	((rc != 124)) || fail "$1 did not finish within 60 s"
	return "$rc"
}

# serve CMD...: starts a server in the background, in this run's mode; it is
# stopped on exit, whatever happens. CMD is a program, not a function, so
# that the pid is the server's own.
serve() {
	in_mode "$APPS_MODE" "$@"
	"${MODE_CMD[@]}" 2>>"$WORK/stderr.log" &
	SERVER_PIDS+=("$!")
}

# wait_for DESCRIPTION CMD...: retries CMD for up to 20 s while the servers live.
wait_for() {
	local what=$1 i pid
	shift
	for ((i = 0; i < 200; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		for pid in "${SERVER_PIDS[@]}"; do
			kill -0 "$pid" 2>/dev/null || fail "server exited while waiting for $what"
		done
		sleep 0.1
	done
	fail "timed out waiting for $what"
}

# listening SOCKET: whether a server accepts connections at SOCKET (a plain
# probe: the library never sees it).
listening() {
	socat -u OPEN:/dev/null "UNIX-CONNECT:$1"
}

# expect_ok CMD...: runs a client that prints "ok" once all its checks passed.
expect_ok() {
	local out
	out=$(app "$@") || fail "$* failed: $out"
	expect_eq "result of $*" ok "$out"
}

# expect_eq WHAT EXPECTED ACTUAL
expect_eq() {
	[[ $2 == "$3" ]] || fail "$1: expected '$2', got '$3'"
}

sha256_of() {
	sha256sum "$1" | cut -d' ' -f1
}

# The shared-memory proof: the library logs one line per connection and
# side that went into shared memory, and on its close the bytes it moved
# through the rings and through the socket (hello and doorbells only); as
# many connections on the client side as on the server side, at least as many
# as the test made, its bytes in the rings, few on the socket, and no error.
check_shared_memory() {
	local log=$WORK/stderr.log clients servers ring sock
	clients=$(grep -c 'shared memory, client' "$log" || true)
	servers=$(grep -c 'shared memory, server' "$log" || true)
	((clients >= APPS_MIN_CONNS)) ||
		fail "only $clients of at least $APPS_MIN_CONNS client connections used shared memory"
	expect_eq "server-side shared-memory connections" "$clients" "$servers"
	# Both ends of a connection count its bytes, where both log their close
	# (a process may exit without closing): a lower bound either way.
	read -r ring sock < <(sed -nE 's/.* closed: ring sent=([0-9]+) received=([0-9]+), socket sent=([0-9]+) received=([0-9]+) bytes$/\1 \2 \3 \4/p' "$log" |
		awk '{ ring += $1 + $2; sock += $3 + $4 } END { printf "%d %d\n", ring, sock }')
	((ring >= APPS_MIN_RING_BYTES)) ||
		fail "only $ring bytes went through the rings, expected at least $APPS_MIN_RING_BYTES"
	((sock * 10 < ring)) || fail "$sock bytes went through the sockets, against $ring through the rings"
	check_no_errors
}

check_plain_sockets() {
	! grep -q 'shared memory' "$WORK/stderr.log" ||
		fail "a connection to a server without TSSX used shared memory"
	check_no_errors
}

check_no_errors() {
	if grep -q 'tssx\[[0-9]*\]: error' "$WORK/stderr.log"; then
		fail "the library logged errors: $(grep -m3 'tssx\[[0-9]*\]: error' "$WORK/stderr.log")"
	fi
}

new_work() {
	WORK=$(mktemp -d "/tmp/tssx-$APPS_NAME.XXXXXX")
	chmod 755 "$WORK"
}

# CPU nanoseconds used so far by this shell and everything it started since
# apps_bench put it in a cpuacct cgroup of its own; empty without one.
cpu_ns() {
	[[ -z $APPS_CGROUP ]] || cat "$APPS_CGROUP/cpuacct.usage"
}

# measure NAME OPS CMD...: runs the client CMD, which does OPS operations,
# and prints NAME-per-s and, where the CPU is accounted, NAME-cpu-us: the
# microseconds of CPU that server and client spent per operation, which a
# busy machine disturbs much less than the rate.
measure() {
	local name=$1 ops=$2 start cpu end
	shift 2
	start=$(date +%s%N)
	cpu=$(cpu_ns)
	app "$@" >/dev/null || fail "$* failed"
	end=$(date +%s%N)
	echo "$name-per-s $((ops * 1000000000 / (end - start)))"
	[[ -z $APPS_CGROUP ]] || echo "$name-cpu-us $(((($(cpu_ns) - cpu) / ops + 500) / 1000))"
}

leave_cgroup() {
	[[ -n $APPS_CGROUP ]] || return 0
	echo "$BASHPID" >/sys/fs/cgroup/cpuacct/cgroup.procs
	rmdir "$APPS_CGROUP"
}

# N rounds, each mode against a fresh server; medians per metric and mode.
apps_bench() {
	[[ -n $APPS_LIB && -n ${TSSX_REGISTRY:-} ]] || fail "APPS_BENCH needs LIBTSSX and a mounted TSSX_REGISTRY"
	declare -F bench_client >/dev/null || fail "this test measures nothing"
	local round
	APPS_RESULTS=$(mktemp)
	APPS_CGROUP=/sys/fs/cgroup/cpuacct/tssx-apps.$$
	if mkdir "$APPS_CGROUP" 2>/dev/null; then
		echo "$BASHPID" >"$APPS_CGROUP/cgroup.procs"
	else
		APPS_CGROUP=
	fi
	trap 'cleanup; leave_cgroup; rm -f "$APPS_RESULTS"' EXIT
	for ((round = 0; round < APPS_BENCH; round++)); do
		for APPS_MODE in plain tssx; do
			APPS_CLIENTS=$APPS_MODE
			new_work
			start_server
			bench_client | sed "s/^/$APPS_MODE /" >>"$APPS_RESULTS"
			cleanup
		done
	done
	sort -k2,2 -k1,1 -k3,3g "$APPS_RESULTS" | awk -v app="$APPS_NAME" '
		{ key = $2 " " $1; v[key, ++n[key]] = $3 }
		END { for (k in n) { split(k, p, " "); median[p[1], p[2]] = v[k, int((n[k] + 1) / 2)]; metrics[p[1]] }
		      for (m in metrics) printf "%s %s: plain %s, tssx %s, tssx/plain %.2f\n", app, m,
		          median[m, "plain"], median[m, "tssx"], median[m, "tssx"] / median[m, "plain"] }' | sort
}

# Server and clients preloaded; plain clients against the preloaded server,
# on the fds the TSSX connections had before; then preloaded clients of a
# plain server, which must stay on plain sockets.
preloaded_runs() {
	new_work
	start_server
	app_run
	APPS_CLIENTS=plain app_run
	stop_servers
	check_shared_memory
	cleanup
	new_work
	APPS_MODE=plain APPS_CLIENTS=tssx
	start_server
	app_run
	stop_servers
	check_plain_sockets
}

# The reference run on plain sockets; then the preloaded runs in a child of
# with-registry, which mounts a private registry and always unmounts it.
apps_main() {
	if [[ -n ${APPS_BENCH:-} ]]; then
		apps_bench
		return
	fi
	trap cleanup EXIT
	if [[ $APPS_MODE == tssx ]]; then
		preloaded_runs
		return
	fi
	new_work
	start_server
	app_run
	stop_servers
	[[ -n $APPS_LIB ]] || return 0
	cleanup
	trap - EXIT
	APPS_MODE=tssx exec "$APPS_WITH_REGISTRY" --registryfs "$APPS_REGISTRYFS" \
		"$0" "$APPS_LIB" "$APPS_WITH_REGISTRY" "$APPS_REGISTRYFS"
}
