# Sourced by the tests in tests/preload with their arguments:
#   WITH_REGISTRY REGISTRYFS LIBTSSX TOOLS_DIR
#
# Re-runs the test inside a private registry (unless NO_REGISTRY=1; with
# the daemon's options in REGISTRY_OPTIONS, e.g. debug), then
# gives it $work (a temporary directory), $tools, and helpers to start
# preloaded or plain servers and check that shared memory carried the
# bytes.  Every background process is killed and $work removed on exit.
set -euo pipefail

with_registry=$1 registryfs=$2 lib=$3 tools=$4
# Absolute: programs under test may change directory (pyenv's shims do).
lib=$(realpath -- "$lib")
NAME=${NAME:-$(basename "$0" .sh)}

# PRIVATE_MOUNTS=1: the test, its registry too, runs in a mount namespace
# of its own (skipped where none can be made).
if [[ -n ${PRIVATE_MOUNTS:-} && -z ${TSSX_PRIVATE_MOUNTS_INSIDE:-} ]]; then
	unshare -m --propagation private true 2>/dev/null ||
		{ echo "$NAME: SKIP: cannot make a mount namespace" >&2; exit 77; }
	export TSSX_PRIVATE_MOUNTS_INSIDE=1
	exec unshare -m --propagation private "$0" "$@"
fi

if [[ -z ${TSSX_PRELOAD_TEST_INSIDE:-} && -z ${NO_REGISTRY:-} ]]; then
	export TSSX_PRELOAD_TEST_INSIDE=1
	exec "$with_registry" --registryfs "$registryfs" ${REGISTRY_OPTIONS:+-o "$REGISTRY_OPTIONS"} "$0" "$@"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/tssx-$NAME.XXXXXX")
background=()

preload_cleanup() {
	local pid
	for pid in "${background[@]}"; do
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap preload_cleanup EXIT

fail() {
	echo "$NAME: FAIL: $*" >&2
	local log
	for log in "$work"/*.log; do
		[[ -e $log ]] && { echo "--- $log" >&2; tail -n 15 "$log" >&2; }
	done
	exit 1
}

# unmount_if_mounted DIR: lazily, if something is mounted at DIR.
unmount_if_mounted() {
	if awk -v m="$1" '$5 == m { f = 1 } END { exit !f }' /proc/self/mountinfo; then
		fusermount3 -u -z "$1" 2>/dev/null || umount -l "$1"
	fi
}

# own_registry: a registry daemon of the test's own (with NO_REGISTRY=1)
# at $mnt, which TSSX_REGISTRY names; start_daemon mounts it, and at exit
# it is stopped and unmounted, after the peers that may hold its files.
own_registry() {
	mnt=$work/registry
	mkdir -p "$mnt"
	export TSSX_REGISTRY=$mnt
	daemon_pid=
	trap own_registry_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

own_registry_cleanup() {
	local status=$?
	if [[ -n $daemon_pid ]]; then
		kill -CONT "$daemon_pid" 2>/dev/null
		kill -TERM "$daemon_pid" 2>/dev/null
		wait "$daemon_pid" 2>/dev/null
	fi
	preload_cleanup # the peers; $work but the mount point
	unmount_if_mounted "$mnt"
	rm -rf "$work"
	exit "$status"
}

start_daemon() {
	local i
	"$registryfs" -f "$mnt" 2>>"$work/daemon.log" &
	daemon_pid=$!
	for ((i = 0; i < 400; i++)); do
		python3 -c 'import os, sys; os.getxattr(sys.argv[1], "user.tssx.registry")' "$mnt" \
			2>/dev/null && return 0
		sleep 0.025
	done
	fail "the daemon did not mount $mnt"
}

# Hang guard only: every command here finishes in seconds.
guard=(timeout -s KILL 60)

# A library built with AddressSanitizer (contrib/dev.sh test runs some of
# these tests against one, in suite 'sanitize') needs the sanitizer's
# runtime loaded before it in programs that were not built with it (env,
# bash); $sanitized says so to the tests that must leave something out.
preload=$lib
sanitized=
asan_runtime=$(ldd "$lib" 2>/dev/null | awk '/libasan/ { print $3 }')
if [[ -n $asan_runtime ]]; then
	preload="$asan_runtime $lib"
	sanitized=1
fi

# Python's interpreter leaks by LeakSanitizer's count (its own memory at
# exit): under the sanitizers, "${python[@]}" runs it without the leak
# check, which the tests' C programs keep.
python=(python3)
[[ -z $sanitized ]] || python=(env ASAN_OPTIONS=detect_leaks=0 python3)

# with_preload yes|no CMD...: runs CMD preloaded (info logging) or plain.
with_preload() {
	local mode=$1; shift
	if [[ $mode == yes ]]; then
		env LD_PRELOAD="$preload" TSSX_LOG=info "$@"
	else
		"$@"
	fi
}

# spawn yes|no LOG CMD...: CMD in the background, preloaded or not, as
# $! itself (env execs it), so that it can be killed; sets $spawned.
spawn() {
	local mode=$1 log=$2; shift 2
	# The background job truncates LOG only once it runs: an earlier
	# process's lines in it must not answer a wait_for_line for this one.
	rm -f "$log"
	if [[ $mode == yes ]]; then
		env LD_PRELOAD="$preload" TSSX_LOG=info "$@" >"$log" 2>&1 &
	else
		env "$@" >"$log" 2>&1 &
	fi
	spawned=$!
	background+=("$spawned")
}

# wait_pid PID: its exit status; a process still running after a minute
# has hung: killed, and the test fails.
wait_pid() {
	local i
	for ((i = 0; i < 1200; i++)); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.05
	done
	if kill -0 "$1" 2>/dev/null; then
		kill -KILL "$1"
		fail "process $1 hung"
	fi
	wait "$1"
}

# wait_for_line FILE TEXT: until FILE has a line containing TEXT.
wait_for_line() {
	local i
	for ((i = 0; i < 400; i++)); do
		grep -qF -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.025
	done
	fail "no '$2' in $1"
}

# start_echo_server yes|no LOG SOCKET [ARG...]: sets $server_pid.
start_echo_server() {
	local mode=$1 log=$2 sock=$3; shift 3
	spawn "$mode" "$log" "$tools/tssx-echo" server "$sock" "$@"
	server_pid=$spawned
	wait_for_line "$log" "server: listening"
}

# check_shm LOG BYTES: every connection closed in LOG moved BYTES each way
# through the rings, and the real socket carried only the hello and
# doorbells (a small fraction of the stream).
check_shm() {
	local log=$1 bytes=$2 line sent received ssent sreceived
	grep -q "shared memory" "$log" || fail "$log: no connection in shared memory"
	line=$(grep "closed: ring sent=" "$log" | tail -n 1)
	[[ -n $line ]] || fail "$log: no statistics line"
	read -r sent received ssent sreceived < <(sed -E \
		's/.*ring sent=([0-9]+) received=([0-9]+), socket sent=([0-9]+) received=([0-9]+).*/\1 \2 \3 \4/' <<<"$line")
	((sent == bytes && received == bytes)) || fail "$log: ring moved $sent/$received bytes, not $bytes"
	((ssent + sreceived <= 256 + bytes / 64)) || fail "$log: socket carried $ssent+$sreceived bytes for $bytes"
}

# check_plain LOG: no connection of LOG went through shared memory.
check_plain() {
	! grep -q "shared memory" "$1" || fail "$1: a connection used shared memory"
}

# check_no_silent_loss STATUS LOG BYTES WHAT: a tssx-echo client (exit
# STATUS, output LOG) whose server handed the connection to an image that
# cannot use it got the whole echo or an error: never a hang, never a
# short echo that ended cleanly.
check_no_silent_loss() {
	case $1 in
	0) grep -q "received $3 " "$2" || fail "$4: short echo reported as success" ;;
	137) fail "$4: the client hung" ;;
	*) ! grep -q "echo incomplete" "$2" || fail "$4: a clean EOF lost bytes" ;;
	esac
}
