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

bench_client() {
	app node "$SCRIPT" bench "$WORK/node.sock" 4 | sed 's/^\([0-9]*\) round trips\/s/round-trips\/s \1/'
}

apps_main "$@"
