#!/usr/bin/env bash
# memcached: a threaded cache on libevent (two worker threads, connections
# handed from the listener thread). Eight client threads, each on its own
# connection, store 100 values of 1 B to 256 KiB each, read them back singly
# and in multi-gets, append, increment and delete, checking every byte.
source "$(dirname "$0")/lib.sh"
need memcached memcached
need python3 python3

start_server() {
	serve memcached -s "$WORK/memcached.sock" -a 0700 -t 2 -m 256 -c 64 -u root
	wait_for "memcached to listen" listening "$WORK/memcached.sock"
}

app_run() {
	expect_ok python3 "$(dirname "$0")/memcached-client.py" "$WORK/memcached.sock" 8 100
	APPS_MIN_CONNS=8
	APPS_MIN_RING_BYTES=$((8 * 1024 * 1024))
}

# libmemcached's memcslap: 20000 gets by one thread, then by four.
bench_client() {
	command -v memcslap >/dev/null || fail "memcslap not found (apt-get install libmemcached-tools)"
	local threads
	for threads in 1 4; do
		app memcslap -s "$WORK/memcached.sock" --concurrency="$threads" --execute-number=20000 --test=get |
			awk -v t="$threads" '/^Time to get/ { printf "gets/s-%d-threads %d\n", t, $4 / $(NF - 1) }'
	done
}

apps_main "$@"
