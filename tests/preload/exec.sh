#!/usr/bin/env bash
# Connections that live on in an exec'd image, both ends preloaded: the
# image keeps using the shared memory, byte-exact in both directions.
#  - socat EXEC:cat,nofork, and a shell script 'exec cat' under socat EXEC:
#    a TSSX server that execs cat (directly, and through sh) on the
#    accepted connection;
#  - subprocess.Popen(pass_fds=...): a Python server hands the connection
#    to an echoing child and closes its copy;
#  - the client side: a Python client lets an exec'd cat write a file into
#    its connection, then reads the echo itself.
# An image that cannot take the connection over (not preloaded, static,
# set-user-ID, or Go) must not lose bytes silently: the client either gets the whole
# echo or an error, never a short echo with a clean EOF.
NAME=exec
source "$(dirname "$0")/lib.sh"

command -v socat >/dev/null || { echo "$NAME: SKIP: socat not found (apt-get install socat)" >&2; exit 77; }
bytes=$((3 << 20))
py=$(dirname "$0")/py_exec.py
served=0

# socat_server LOG ADDRESS: a preloaded socat serving one client on a
# socket of its own, $sock (a client process's history of a socket is its
# program's: docs/preload.md, "Short-lived connections").
socat_server() {
	sock=$work/s$((++served)).sock
	# -d -d: "listening on" once listen() (and with it the claim) is done.
	spawn yes "$1" socat -d -d "UNIX-LISTEN:$sock" "$2"
	server_pid=$spawned
	wait_for_line "$1" "listening on"
}

# echo_client: a preloaded tssx-echo client, byte-exact through shared memory.
echo_client() {
	with_preload yes "${guard[@]}" "$tools/tssx-echo" client "$sock" --bytes "$bytes" \
		>"$work/client.log" 2>&1 || fail "client of $1"
	check_shm "$work/client.log" "$bytes"
}

# check_image LOG: the server side used shared memory and nothing failed;
# only the exec'd image reads and writes, and the client's statistics show
# that the rings carried the echo.
check_image() {
	grep -q "shared memory, server" "$1" || fail "$1: the server side never used shared memory"
	! grep -q "TSSX connection failed\|not taken over" "$1" || fail "$1: a connection failed"
}

# A shell that execs cat (socat's SYSTEM would run it through system(),
# whose exec no wrapper sees; see docs/preload.md).
printf '#!/bin/sh\nexec cat\n' >"$work/exec-cat"
chmod +x "$work/exec-cat"
for address in EXEC:cat,nofork "EXEC:$work/exec-cat,nofork"; do
	socat_server "$work/socat.log" "$address"
	echo_client "socat $address"
	wait_pid "$server_pid" || fail "socat $address"
	check_image "$work/socat.log"
done

sock=$work/s$((++served)).sock
spawn yes "$work/py.log" python3 "$py" server "$sock"
server_pid=$spawned
wait_for_line "$work/py.log" "server: listening"
echo_client "Popen(pass_fds)"
wait_pid "$server_pid" || fail "Popen(pass_fds) server"
check_image "$work/py.log"

sock=$work/s$((++served)).sock
start_echo_server yes "$work/server.log" "$sock"
head -c "$bytes" /dev/urandom >"$work/data"
with_preload yes "${guard[@]}" python3 "$py" writer "$sock" "$work/data" >"$work/writer.log" 2>&1 ||
	fail "exec'd writer"
wait_pid "$server_pid" || fail "server of the exec'd writer"
sum=$(sha256sum <"$work/data")
grep -q "writer: echo sha256 ${sum%% *}" "$work/writer.log" || fail "exec'd writer: echo differs"
check_shm "$work/server.log" "$bytes"

# image_fails WHAT ADDRESS: socat EXECs an image that cannot take the
# connection over: the whole echo (impossible without the rings) or a loud
# error on the client, and the reason in socat's log.
image_fails() {
	local status=0
	socat_server "$work/socat.log" "$2"
	with_preload yes "${guard[@]}" "$tools/tssx-echo" client "$sock" --bytes "$bytes" \
		>"$work/client.log" 2>&1 || status=$?
	check_no_silent_loss "$status" "$work/client.log" "$bytes" "$1"
	wait_pid "$server_pid" || true
	grep -q "TSSX connection failed at exec" "$work/socat.log" || fail "$1: no log line"
}

# Not preloaded after the exec.
image_fails "unpreloaded image" "EXEC:env -u LD_PRELOAD cat,nofork"
# A static image, whatever LD_PRELOAD says, has no loader to preload the
# library: tssx-static-cat is what a Go program built without cgo is (no
# PT_INTERP, no libc, raw system calls).  (The hand-over took it for
# preloaded: it read doorbells as data and echoed them, and only that
# failed the client, as bytes written around the library, with no line
# saying why.)  Built on x86-64 and arm64.
if [[ -x $tools/tssx-static-cat ]]; then
	image_fails "static image" "EXEC:$tools/tssx-static-cat,nofork"
fi
# A Go program built with cgo: the loader preloads the library, but Go's
# runtime reads and writes by raw system calls (tssx-go-cat: the same,
# with Go's build-ID note).  It read doorbells as data and echoed them.
image_fails "Go image" "EXEC:$tools/tssx-go-cat,nofork"
# A set-user-ID image of another user: the loader runs it in secure mode
# and ignores an LD_PRELOAD path, so it must not be handed the connection.
install -m 4755 -o nobody "$(command -v cat)" "$work/setuid-cat"
image_fails "set-uid image" "EXEC:$work/setuid-cat,nofork"
