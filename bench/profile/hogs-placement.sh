#!/usr/bin/env bash
# One 64 B ping-pong pair beside a CPU-bound process per CPU, by placement
# (docs/benchmark.md, "One pair beside hogs, by placement"):
#
#   bench/profile/hogs-placement.sh W D ROUNDS N LIB...
#
# W the with-registry script, D the tssx-registryfs binary, LIB a library
# to preload or "plain".  In each of ROUNDS rounds, for every placement
# (both ends on CPU 0, the ends on CPUs 0 and 1, both free) with and
# without the hogs (one busy loop per CPU, each pinned to one), the libraries run
# one after the other: tssx-roundtrip, N round trips, its ends pinned
# after its first 1,000 (so the library counts every CPU).  One line per
# run: the median batch's time per round trip, the round trips whose answer
# was read on the CPU it was written from, per round trip of each end
# its voluntary and involuntary switches and CPU, and the wait statistics
# of both ends summed (TSSX_LOG=info): futex sleeps, yields of yielding
# spins, yields of spins on a CPU, spins, refused and skipped waits.
# PLACEMENTS="0,0 0,1 -,-" chooses the ends' CPUs ("-": free), HOGS the
# hogs, one per CPU: "none each" by default, "last" all on the last CPU,
# "free" unpinned, as tssx-bench --load starts them.  Run as root.
set -euo pipefail

if [[ -z ${TSSX_REGISTRY:-} ]]; then
	(($# >= 5)) || { sed -n 2,17p "$0" >&2; exit 2; }
	W=$1 D=$2
	shift 2
	TSSX_REGISTRYFS=$D exec "$W" bash "$0" "$@"
fi
ROUNDS=$1 N=$2
shift 2
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${TSSX_BUILD_DIR:-$ROOT/build}/bench
DIR=$(mktemp -d)
hogs=()
stop_hogs() {
	for p in "${hogs[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${hogs[@]}"; do wait "$p" 2>/dev/null || true; done
	hogs=()
}
trap 'stop_hogs; rm -rf "$DIR"' EXIT

# The wait statistics of all processes of one run, summed.
waits() {
	sed -n 's/.*waits before sleeping: //p' "$1" | awk '
	{ for (i = 1; i <= NF; i++) { gsub(/[(,;]/, "", $i); f[i] += $i } }
	END {
		# fields: 8 spins, 10 found, 13 yielding spins, 16 found, 19 yields,
		# 21 skipped, 35 refused, 45 futex sleeps, 60 cpu yields, 61 handed,
		# 75 yields of yielding spins that let another task run, 76 of them
		# found nothing after it, 81 slept at once beside the peer
		printf "futex %d yields %d (%d long, %d of them empty) cpu-yields %d (%d handed) spins %d (%d found) yielding %d (%d found) refused %d skipped %d beside %d",
			f[45], f[19], f[75], f[76], f[60], f[61], f[8], f[10], f[13], f[16], f[35], f[21], f[81]
	}'
}

for ((r = 1; r <= ROUNDS; r++)); do
	for place in ${PLACEMENTS:-0,0 0,1 -,-}; do
		for h in ${HOGS:-none each}; do
			last=$(($(nproc) - 1))
			for c in $(seq 0 $last); do
				case $h in
				none) continue ;;
				each) taskset -c "$c" "$BIN/tssx-bench" --load-role hog & ;;
				last) taskset -c "$last" "$BIN/tssx-bench" --load-role hog & ;;
				free) "$BIN/tssx-bench" --load-role hog & ;;
				esac
				hogs+=($!)
			done
			sleep 0.2
			for lib in "$@"; do
				pre=
				[[ $lib == plain ]] || pre=$lib
				TSSX_LOG=info LD_PRELOAD=$pre "$BIN/profile/tssx-roundtrip" socket "$DIR/s" "$N" 64 \
					"${place%,*}" "${place#*,}" >"$DIR/out" 2>"$DIR/err" || { cat "$DIR/err" >&2; exit 1; }
				printf 'round %d place %s hogs %s lib %s load %s | %s, same CPU %s | %s | %s | %s\n' "$r" "$place" \
					"$h" "$(basename "$lib")" "$(cut -d' ' -f1 /proc/loadavg)" \
					"$(sed -n 's/^median \([0-9]*\) ns.*(warm-up) \([0-9]*\)/\1 ns, first 1000 \2 ns/p' "$DIR/out")" \
					"$(sed -n 's/^answers read on the CPU they were written from: //p' "$DIR/out")" \
					"$(sed -n 's/^client per round trip: //p' "$DIR/out")" \
					"$(sed -n 's/^server per round trip: //p' "$DIR/out")" "$(waits "$DIR/err")"
			done
			stop_hogs
		done
	done
done
