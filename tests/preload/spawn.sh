#!/usr/bin/env bash
# Connections inherited through system() and posix_spawn(), whose exec
# no exec wrapper sees (glibc calls its internal execve): a TSSX server
# lets `cat` echo the accepted connection as cat's stdin and stdout, so
# the child reads what the client sends and writes it back.
#  - system("cat") with the connection on the server's fds 0 and 1;
#  - posix_spawn("/bin/cat") without file actions, the same;
#  - posix_spawnp("cat") with file actions that dup2 the connection (kept
#    O_CLOEXEC by the server) onto 0 and 1;
#  - popen("cat >&0", "r") with the connection on the server's fds 0 and 1
#    (glibc's popen spawns with its internal posix_spawn too: before the
#    library wrapped popen, cat wrote the doorbells it read back into the
#    socket, and the connection failed).
# A preloaded child keeps using the shared memory: byte-exact, the client's
# statistics show the rings carried the echo.  A child without the library
# must not lose bytes silently: the client gets an error, never a clean EOF
# after a short echo, nor a hang, and the server's log says why.
NAME=spawn
source "$(dirname "$0")/lib.sh"

bytes=$((3 << 20))
served=0

# spawn_server HOW CMD...: a preloaded tssx-echo spawn server on a socket
# of its own, $sock (a client process's history there is the program's:
# docs/preload.md, "Short-lived connections").
spawn_server() {
	sock=$work/s$((++served)).sock
	spawn yes "$work/server.log" "$tools/tssx-echo" spawn "$sock" "$@"
	server_pid=$spawned
	wait_for_line "$work/server.log" "server: listening"
}

for how in system:cat spawn:/bin/cat actions:cat popen:cat; do
	spawn_server "${how%%:*}" "${how#*:}"
	with_preload yes "${guard[@]}" "$tools/tssx-echo" client "$sock" --bytes "$bytes" \
		>"$work/client.log" 2>&1 || fail "client of ${how%%:*}"
	check_shm "$work/client.log" "$bytes"
	wait_pid "$server_pid" || fail "${how%%:*}: the server or its child failed"
	grep -q "shared memory, server" "$work/server.log" || fail "${how%%:*}: no shared memory on the server side"
	! grep -q "TSSX connection failed\|not taken over" "$work/server.log" || fail "${how%%:*}: a connection failed"
done

# Not preloaded: the whole echo (impossible without the rings) or a loud
# error on the client, and a log line on the server.
for how in system-plain:cat spawn-plain:/bin/cat actions-plain:cat popen-plain:cat; do
	spawn_server "${how%%:*}" "${how#*:}"
	status=0
	with_preload yes "${guard[@]}" "$tools/tssx-echo" client "$sock" --bytes "$bytes" \
		>"$work/client.log" 2>&1 || status=$?
	check_no_silent_loss "$status" "$work/client.log" "$bytes" "${how%%:*}"
	wait_pid "$server_pid" || true
	grep -q "TSSX connection failed" "$work/server.log" || fail "${how%%:*}: no log line on the server"
done
