#!/usr/bin/env bash
# Node.js: a language runtime's own event loop (libuv). An echo server on
# net.createServer; six client connections at once, three streaming 16 MiB
# in random-sized writes with sha256 checked, three doing 2000 small round
# trips each.
source "$(dirname "$0")/lib.sh"
need node nodejs

SCRIPT=$(dirname "$0")/node-echo.js

start_server() {
	serve node "$SCRIPT" server "$WORK/node.sock"
	wait_for "node to listen" listening "$WORK/node.sock"
}

app_run() {
	expect_ok node "$SCRIPT" check "$WORK/node.sock" 6 16
	APPS_MIN_CONNS=6
	APPS_MIN_RING_BYTES=$((3 * 2 * 16 * 1024 * 1024))
}

# Small round trips on one connection.
bench_client() {
	measure round-trip 20000 node "$SCRIPT" bench "$WORK/node.sock" 20000
}

apps_main "$@"
