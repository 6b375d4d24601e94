#!/usr/bin/env bash
# memcached: a threaded cache on libevent (two worker threads, connections
# handed from the listener thread). Eight client threads, each on its own
# connection, store values of 1 B to 256 KiB, read them back singly and in
# multi-gets, append, increment and delete, checking every byte.
source "$(dirname "$0")/lib.sh"
need memcached memcached
need python3 python3

app_run() {
	serve memcached -s "$WORK/memcached.sock" -a 0700 -t 2 -m 256 -c 64 -u root
	wait_for "memcached to listen" listening "$WORK/memcached.sock"
	local out
	out=$(app python3 "$(dirname "$0")/memcached-client.py" "$WORK/memcached.sock" check 8 200) ||
		fail "the client reported errors: $out"
	expect_eq "client result" ok "$out"
	APPS_MIN_CONNS=8
}

apps_main "$@"
