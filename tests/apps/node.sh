#!/usr/bin/env bash
# Node.js: a language runtime's own event loop (libuv). An echo server on
# net.createServer; six client connections at once, three streaming 16 MiB
# in random-sized writes with sha256 checked, three doing 2000 small round
# trips each.
source "$(dirname "$0")/lib.sh"
need node nodejs

app_run() {
	local script
	script=$(dirname "$0")/node-echo.js
	serve node "$script" server "$WORK/node.sock"
	wait_for "node to listen" listening "$WORK/node.sock"
	local out
	out=$(app node "$script" check "$WORK/node.sock" 6 16) || fail "the client failed: $out"
	expect_eq "client result" ok "$out"
	APPS_MIN_CONNS=6
}

apps_main "$@"
