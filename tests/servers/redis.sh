#!/usr/bin/env bash
# redis.sh WITH_REGISTRY REGISTRYFS LIBTSSX
#
# redis-server on a Unix socket driven by redis-benchmark -s and redis-cli -s,
# first on plain sockets, then with server and clients preloaded over a
# private registry.  Both runs must succeed without errors and leave the
# same data, read back with redis-cli; in the second, every connection must
# have gone through shared memory (TSSX_LOG=info lines).
#
#   REDIS_REQUESTS=N   requests per benchmark test (default 10000)
NAME=redis
source "$(dirname "$0")/lib.sh"
need redis-server redis-server
need redis-benchmark redis-tools
need redis-cli redis-tools

requests=${REDIS_REQUESTS:-10000}
tests=set,get,incr,lpush,lpop,mset

# run CMD...: in the current mode, preloaded or not
run() {
	if [[ $mode == tssx ]]; then
		"${preloaded[@]}" "$@"
	else
		"$@"
	fi
}

start_server() {
	local preload=()
	[[ $mode == plain ]] || preload=("${preloaded[@]}")
	rm -f "$work/redis.sock"
	# not through run(): "$!" must be the server itself
	"${preload[@]}" redis-server --port 0 --unixsocket "$work/redis.sock" --save '' --appendonly no \
		--dir "$work" --logfile '' >"$work/server-$mode.log" 2>&1 &
	server_pid=$!
	for ((i = 0; i < 200; i++)); do
		[[ -S $work/redis.sock ]] && run redis-cli -s "$work/redis.sock" ping 2>>"$work/clients-$mode.log" |
			grep -qx PONG && return 0
		kill -0 "$server_pid" 2>/dev/null || fail "$mode: redis-server exited"
		sleep 0.05
	done
	fail "$mode: redis-server did not come up"
}

stop_server() {
	run redis-cli -s "$work/redis.sock" shutdown nosave 2>>"$work/clients-$mode.log" || true
	wait "$server_pid" || true
	server_pid=
}

benchmark() { # clients
	local out=$work/bench-$mode-$1.csv
	run timeout 60 redis-benchmark -s "$work/redis.sock" -t "$tests" -n "$requests" -c "$1" --csv \
		>"$out" 2>>"$work/clients-$mode.log" || fail "$mode: redis-benchmark -c $1 failed or hung"
	grep -qi error "$out" && fail "$mode: redis-benchmark -c $1 reported errors"
	# one CSV line per test, each with a positive rate
	[[ $(grep -cE '^"(SET|GET|INCR|LPUSH|LPOP|MSET[^"]*)","[0-9.]+"' "$out") == 6 ]] ||
		fail "$mode: redis-benchmark -c $1: incomplete results: $(cat "$out")"
	awk -F'"' 'NR > 1 && $4 + 0 <= 0 { exit 1 }' "$out" || fail "$mode: a zero rate in $out"
}

# Writes of every type through redis-cli, then everything read back.
exercise() {
	local cli=(run redis-cli -s "$work/redis.sock")
	{
		"${cli[@]}" set greeting "hello over $mode"
		"${cli[@]}" set greeting "hello"
		"${cli[@]}" rpush letters a b c d e
		"${cli[@]}" hset user name ada lang c
		"${cli[@]}" sadd tags x y z
		"${cli[@]}" zadd scores 1 one 2 two 3 three
		seq 1 500 | sed 's/^/incrby big /' | "${cli[@]}" >/dev/null
		head -c 300000 /dev/zero | tr '\0' 'v' | "${cli[@]}" -x set blob
	} >/dev/null 2>>"$work/clients-$mode.log"
	{
		"${cli[@]}" dbsize
		"${cli[@]}" get greeting
		"${cli[@]}" lrange letters 0 -1
		"${cli[@]}" hgetall user
		"${cli[@]}" smembers tags | sort
		"${cli[@]}" zrange scores 0 -1 withscores
		"${cli[@]}" get big
		"${cli[@]}" strlen blob
		"${cli[@]}" get blob | sha256sum
		"${cli[@]}" get counter:__rand_int__
		"${cli[@]}" get key:__rand_int__
		"${cli[@]}" llen mylist
		"${cli[@]}" keys '*' | sort
	} >"$work/data-$mode.txt" 2>>"$work/clients-$mode.log"
}

for mode in plain tssx; do
	start_server
	benchmark 1
	benchmark 50
	exercise
	stop_server
done

cmp -s "$work/data-plain.txt" "$work/data-tssx.txt" ||
	fail "different data: $(diff "$work/data-plain.txt" "$work/data-tssx.txt")"
# 51 benchmark connections at least, and redis-cli's, all in shared memory
servers=$(grep -c 'shared memory, server' "$work/server-tssx.log" || true)
clients=$(grep -c 'shared memory, client' "$work/clients-tssx.log" || true)
((servers >= 60 && clients >= 60)) ||
	fail "only $servers server and $clients client connections used shared memory"
if grep -q 'shared memory' "$work/server-plain.log" "$work/clients-plain.log"; then
	fail "shared memory without the library"
fi
