#!/usr/bin/env bash
# redis-compare.sh WITH_REGISTRY REGISTRYFS LIBTSSX [ROUNDS [REQUESTS]]
#
# Not a test: measures redis-benchmark -s against redis-server on a Unix
# socket, plain and with both preloaded, in alternating rounds on a fresh
# server each (default 5 rounds of 100000 requests), for 1 and 50 clients,
# and prints the median req/s of each command per mode (docs/events.md).
NAME=redis-compare
source "$(dirname "$0")/lib.sh"
need redis-server redis-server
need redis-benchmark redis-tools

rounds=${4:-5}
requests=${5:-100000}

bench_round() { # mode clients
	local prefix=()
	[[ $1 == plain ]] || prefix=(env LD_PRELOAD="$lib")
	rm -f "$work/redis.sock"
	"${prefix[@]}" redis-server --port 0 --unixsocket "$work/redis.sock" --save '' \
		--appendonly no --dir "$work" --logfile '' >/dev/null 2>&1 &
	server_pid=$!
	while [[ ! -S $work/redis.sock ]]; do sleep 0.05; done
	"${prefix[@]}" redis-benchmark -s "$work/redis.sock" -t set,get,incr,lpush,lpop,mset \
		-n "$requests" -c "$2" --csv 2>/dev/null |
		awk -F'"' -v mode="$1" -v c="$2" 'NR > 1 { gsub(/ /, "_", $2); print c, mode, $2, $4 }' >>"$work/rates"
	kill -TERM "$server_pid"
	wait "$server_pid" || true
	server_pid=
}

for ((round = 0; round < rounds; round++)); do
	for clients in 1 50; do
		bench_round plain "$clients"
		bench_round tssx "$clients"
	done
done

median() { # the median of the numbers on stdin
	sort -n | awk '{ v[NR] = $1 } END { print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo "redis-benchmark -s, -n $requests, median req/s of $rounds rounds"
printf '%-8s %-16s %12s %12s\n' clients command plain tssx
awk '{ print $1, $3 }' "$work/rates" | awk '!seen[$0]++' | while read -r clients command; do
	plain=$(awk -v c="$clients" -v t="$command" '$1 == c && $2 == "plain" && $3 == t { print $4 }' "$work/rates" | median)
	tssx=$(awk -v c="$clients" -v t="$command" '$1 == c && $2 == "tssx" && $3 == t { print $4 }' "$work/rates" | median)
	printf '%-8s %-16s %12.0f %12.0f\n' "$clients" "$command" "$plain" "$tssx"
done
