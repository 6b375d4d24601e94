#!/usr/bin/env bash
# A claim belongs to the socket it was made for: the server bit goes once
# the socket file is unlinked or replaced, even while a forked child still
# holds the claiming handle; for abstract names, once no listener is left.
source "$(dirname "$0")/lib.sh"

# Starts a reader that keeps the entry open (page cache filled) and waits.
start_kept_reader() { # name entry digit
	start_helper "$1" --read-kept "$2" --until "$3"
	READER_PID=$HELPER_PID
}

# Tells the kept reader to look, and checks it saw the digit in time.
expect_kept_reader() { # name what
	kill -USR1 "$READER_PID"
	wait_until grep -qE '^(ok|timeout)$' "$WORK/$1.out"
	expect "$(results_of "$1")" ok "$2 (seen through a kept fd)"
}

path_socket_unlinked() {
	local sock=$WORK/unlinked.sock e
	e=$(entry "$sock")
	start_helper holder --listen "$sock" --open "$e" --write 1 --fork-hold
	expect "$(results_of holder)" "ok ok ok" "claim"
	expect "$(cat "$e")" 1 "claim held by the forked child"
	start_kept_reader kept-unlink "$e" 0
	rm "$sock"
	expect "$(cat "$e")" 0 "after unlink of the socket"
	expect_kept_reader kept-unlink "after unlink"
	# The void claim stays void even if the same path comes back.
	"$HELPER" --listen "$sock" >/dev/null
	expect "$(cat "$e")" 0 "after a new socket at the same path"
}

path_socket_replaced() {
	local sock=$WORK/replaced.sock e
	e=$(entry "$sock")
	start_helper old --listen "$sock" --open "$e" --write 1 --fork-hold
	expect "$(cat "$e")" 1 "old server's claim"
	start_kept_reader kept-replace "$e" 0
	start_helper new --listen "$sock" --hold # binds a new socket at the path
	expect "$(cat "$e")" 0 "after a new server replaced the socket"
	expect_kept_reader kept-replace "after replacement"
	expect "$(run_helper --open "$e" --write 1)" "ok ok" "root claims the new socket"
	start_helper new-claim --open "$e" --write 1 --hold
	expect "$(cat "$e")" 1 "the new claim shows"
}

abstract_listener_gone() {
	local name=@tssx-claims-$$ e
	e=$M/$name
	start_helper abs-holder --listen "$name" --open "$e" --write 1 --fork-hold
	expect "$(results_of abs-holder)" "ok ok ok" "abstract claim"
	# The listener closed with the parent: no listener is left.
	expect "$(cat "$e")" 0 "abstract name without a listener"
}

abstract_listener_polled() {
	local name=@tssx-poll-$$ e
	e=$M/$name
	start_helper abs-listener --listen "$name" --hold
	local listener=$HELPER_PID
	# root, but not the listener: refused
	expect "$(run_helper --open "$e" --write 1)" "ok EPERM" "claim without listening"
	start_helper abs-claim --listen "@tssx-poll2-$$" --open "$M/@tssx-poll2-$$" --write 1 --fork-hold
	start_kept_reader kept-abs "$M/@tssx-poll2-$$" 0
	expect_kept_reader kept-abs "listener gone, noticed by the periodic check"
	kill -KILL "$listener"
}

path_socket_unlinked
path_socket_replaced
abstract_listener_gone
abstract_listener_polled
