#!/usr/bin/env bash
# bench/profile/profile.sh [BUILD_DIR [LIBTSSX]]
#
# Where the library's time goes (docs/benchmark.md, "Where the time goes"),
# run from the source tree as root (it mounts a private registry):
#   - callgrind: instructions, locked instructions and function calls per
#     64 B write or read on a TSSX connection with an awake peer (no wait,
#     no doorbell), and per write or read on a pipe (a non-TSSX fd);
#   - perf trace: the system calls of a TSSX connect cycle (socket,
#     connect, accept, 1-byte echo, close), with their median durations;
#   - the CPU time of 2,000 connect cycles, plain and TSSX (a segment at
#     every cycle, and by default);
#   - the shared memory resident per idle connection (2,000 of them).
# LIBTSSX (default BUILD_DIR/preload/libtssx.so) is the library profiled,
# for comparing builds with the same workload.  Needs valgrind, perf
# (linux-perf) and python3.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
here=$root/bench/profile
lib=$(realpath "${2:-$build/preload/libtssx.so}")
probe=$build/bench/profile/tssx-hotpath
out=$(mktemp -d "${TMPDIR:-/tmp}/tssx-profile.XXXXXX")
trap 'rm -rf "$out"' EXIT
calls=10000

if [[ -z ${TSSX_REGISTRY:-} ]]; then
	export TSSX_REGISTRYFS=${TSSX_REGISTRYFS:-$build/registryfs/tssx-registryfs}
	exec "$root/tests/lib/with-registry" "$0" "$build" "$lib"
fi

callgrind() { # name, probe arguments...
	local name=$1
	shift
	LD_PRELOAD=$lib valgrind --tool=callgrind --callgrind-out-file="$out/$name" \
		--dump-instr=yes --compress-pos=no --compress-strings=no \
		"$probe" "$@" 2>"$out/$name.log" || { cat "$out/$name.log" >&2; exit 1; }
}

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs"
echo
echo "== $calls writes of 64 B, then $calls reads, on a TSSX connection"
callgrind stream stream "$out/sock" "$calls" 64
"$here/callgrind-count.py" "$out/stream" "$lib" $((2 * calls))
echo
echo "== $calls writes of 64 B, then $calls reads, on a pipe"
callgrind pipe pipe "$calls" 64
"$here/callgrind-count.py" "$out/pipe" "$lib" $((2 * calls))
echo
# A segment at every cycle: by default (TSSX_SHORT_CALLS) a process's
# one-request connections to a server soon go plain.
echo "== system calls of a TSSX connect cycle (perf trace, 300 cycles, TSSX_SHORT_CALLS=0)"
TSSX_SHORT_CALLS=0 LD_PRELOAD=$lib perf trace -o "$out/trace" "$probe" connect "$out/sock" 300
"$here/trace-medians.py" "$out/trace" 300
echo
echo "== CPU time of 2000 connect cycles (user + system, this process only)"
# tssx: a segment at every cycle; tssx-default: short-lived connections
# go plain after the first few (docs/preload.md, "Short-lived connections").
for round in 1 2 3; do
	for column in plain tssx tssx-default; do
		preload= short=0
		[[ $column != plain ]] && preload=$lib
		[[ $column == tssx-default ]] && short=
		TIMEFORMAT="$column: %R s elapsed, %U s user, %S s system"
		time TSSX_SHORT_CALLS=$short LD_PRELOAD=$preload "$probe" connect "$out/sock" 2000
	done
done
echo
echo "== shared memory per idle connection (Shmem of /proc/meminfo)"
LD_PRELOAD=$lib "$probe" idle "$out/sock" 2000
