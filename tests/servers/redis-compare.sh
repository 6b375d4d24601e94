#!/usr/bin/env bash
# redis-compare.sh WITH_REGISTRY REGISTRYFS LIBTSSX [ROUNDS [REQUESTS [MODE...]]]
#
# Not a test: measures redis-benchmark -s against redis-server on a Unix
# socket, plain and with both preloaded, in alternating rounds on a fresh
# server each (default 5 rounds of 100000 requests), for 1 and 50 clients,
# and prints the median req/s of each command per mode, with the range
# (docs/events.md).  The modes are "plain", "tssx" (LIBTSSX), and each
# MODE given as NAME=LIB[,VAR=VALUE...]: LIB preloaded with those
# variables, e.g. spin0=build/preload/libtssx.so,TSSX_SPIN_NS=0.
NAME=redis-compare
source "$(dirname "$0")/lib.sh"
need redis-server redis-server
need redis-benchmark redis-tools
source "$(dirname "$0")/compare.sh"

rounds=${4:-5}
requests=${5:-100000}
declare -A mode_env=([plain]='' [tssx]="LD_PRELOAD=$lib")
modes=(plain tssx)
for mode in "${@:6}"; do
	name=${mode%%=*} settings=${mode#*=}
	modes+=("$name")
	mode_env[$name]="LD_PRELOAD=${settings//,/ }"
done

bench_round() { # mode clients
	local prefix=(env)
	read -ra settings <<<"${mode_env[$1]}"
	prefix+=("${settings[@]}")
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
		for mode in "${modes[@]}"; do
			bench_round "$mode" "$clients"
		done
	done
done

echo "redis-benchmark -s, -n $requests, req/s of $rounds rounds: median min-max"
printf '%-8s %-16s' clients command
printf ' %22s' "${modes[@]}"
echo
awk '{ print $1, $3 }' "$work/rates" | awk '!seen[$0]++' | while read -r clients command; do
	printf '%-8s %-16s' "$clients" "$command"
	for mode in "${modes[@]}"; do
		printf ' %22s' "$(awk -v c="$clients" -v m="$mode" -v t="$command" \
			'$1 == c && $2 == m && $3 == t { print $4 }' "$work/rates" | summary)"
	done
	echo
done
