#!/usr/bin/env bash
# Python's socketserver: a thread per connection, blocking reads through
# buffered files. Six client threads on their own connections ask 50 times
# each for replies of up to 1 MiB; every reply and the server's sha256 of
# what it received are checked.
source "$(dirname "$0")/lib.sh"
need python3 python3
SCRIPT=$(dirname "$0")/python-threads.py

start_server() {
	serve python3 "$SCRIPT" server "$WORK/python.sock"
	wait_for "python to listen" listening "$WORK/python.sock"
}

app_run() {
	expect_ok python3 "$SCRIPT" check "$WORK/python.sock" 6 50
	APPS_MIN_CONNS=6
	APPS_MIN_RING_BYTES=$((16 * 1024 * 1024))
}

apps_main "$@"
