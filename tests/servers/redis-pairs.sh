#!/usr/bin/env bash
# redis-pairs.sh WITH_REGISTRY REGISTRYFS LIBTSSX [ROUNDS [REQUESTS]]
#
# Not a test: the load table's Redis rows (docs/benchmark.md).  N independent
# redis-server + redis-benchmark -c 1 -t get pairs at once, N = 1, 2, 4, 8,
# plain and with both ends preloaded, in alternating rounds (default 3 of
# 50000 requests per pair); prints the median of the pairs' summed req/s
# with the range, and the ratio.  HOGS=1 runs one CPU-bound process per CPU
# meanwhile ("with other work running").
NAME=redis-pairs
source "$(dirname "$0")/lib.sh"
need redis-server redis-server
need redis-benchmark redis-tools
source "$(dirname "$0")/compare.sh"

rounds=${4:-3}
requests=${5:-50000}

pairs_round() { # mode pairs
	local prefix=(env) servers=() benches=() i sum
	[[ $1 == tssx ]] && prefix+=(LD_PRELOAD="$lib")
	for ((i = 0; i < $2; i++)); do
		rm -f "$work/r$i.sock"
		"${prefix[@]}" redis-server --port 0 --unixsocket "$work/r$i.sock" --save '' \
			--appendonly no --dir "$work" --logfile '' >/dev/null 2>&1 &
		servers+=($!)
	done
	for ((i = 0; i < $2; i++)); do
		while [[ ! -S $work/r$i.sock ]]; do sleep 0.05; done
	done
	for ((i = 0; i < $2; i++)); do
		"${prefix[@]}" redis-benchmark -s "$work/r$i.sock" -t get -n "$requests" -c 1 --csv \
			>"$work/b$i.csv" 2>/dev/null &
		benches+=($!)
	done
	wait "${benches[@]}"
	kill -TERM "${servers[@]}"
	wait "${servers[@]}" 2>/dev/null || true
	sum=$(cat "$work"/b*.csv | awk -F'"' '$2 == "GET" { s += $4 } END { printf "%.0f", s }')
	rm -f "$work"/b*.csv
	echo "$2 $1 $sum" >>"$work/rates"
}

start_hogs
for ((round = 0; round < rounds; round++)); do
	for pairs in 1 2 4 8; do
		for mode in plain tssx; do
			pairs_round "$mode" "$pairs"
		done
	done
done
stop_hogs

echo "redis-benchmark -c 1 -t get, N pairs at once, total req/s over $rounds rounds: median min-max$(hogs_note)"
compare_table pairs 1 2 4 8
