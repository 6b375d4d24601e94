#!/usr/bin/env bash
# stdio (FILE *) on connections, both ends preloaded: glibc's streams read
# and write through its internal calls, which no wrapper sees, so the
# library gives connections streams of its own (docs/preload.md, "stdio").
# Byte-exact, through the rings:
#  - a C server that echoes through streams fdopen() made of the
#    connection (getline, getc, fprintf, fread, fwrite, fclose), and one
#    that dup2()s the connection onto fds 0 and 1 and echoes through
#    stdin and stdout;
#  - filters exec'd on a server's connection as their stdin and stdout
#    (posix_spawnp with file actions): od -c and sed -n p read it and
#    write their output back through stdio;
#  - the same filters exec'd on a client's connection as their stdout
#    only, writing into it.
# Before the library's streams, the servers and the filters read nothing
# (the real socket carries only doorbells) and the filters' writes failed
# the connection.
#
# Streams made before their fd became a connection (tssx-stdio-late):
#  - fdopen(s, "r+") of a socket before its connect(), and a socket
#    dup2()ed onto a fopen()ed stream's fd before its connect(): the
#    connection stays plain, every byte echoes through the stream;
#  - a connection dup2()ed onto a fopen()ed stream's fd, and copies of
#    stdin and stdout taken before the connection landed on fds 0 and 1:
#    those streams' reads and writes fail with EBADF, their unwritten
#    output reaches the peer, the rest echoes through the rings;
#  - a server accepts a TSSX client onto the number of a stream whose fd
#    was closed under it: the stream's read fails with EBADF.
# Before, the first two went into shared memory (the streams wrote
# around the rings, the server failed the connection with EPROTO), the
# old streams of the next two wrote into their buffers and read the
# real socket, and the stale stream read the real socket (EAGAIN).
NAME=stdio
source "$(dirname "$0")/lib.sh"

sock=$work/s.sock
bytes=$((3 << 20))

# Under the sanitizers the Python processes, and the filters they start,
# do not check for leaks (lib.sh, $python); the servers and the filters
# they start do.
py=("${python[@]}" "$(dirname "$0")/py_exec.py")

# check_ring LOG SENT RECEIVED: a connection of LOG closed after moving
# exactly SENT and RECEIVED bytes through the rings.
check_ring() {
	grep -q "closed: ring sent=$2 received=$3," "$1" ||
		fail "$1: no connection moved $2 and $3 bytes through the rings"
}

for mode in --stdio --stdio-std; do
	start_echo_server yes "$work/server.log" "$sock" "$mode"
	with_preload yes "${guard[@]}" "$tools/tssx-echo" client "$sock" --bytes "$bytes" \
		>"$work/client.log" 2>&1 || fail "client of the $mode server"
	wait_pid "$server_pid" || fail "the $mode server"
	check_shm "$work/client.log" "$bytes"
	check_shm "$work/server.log" "$bytes"
done

head -c $((512 << 10)) /dev/urandom >"$work/data"
in=$(stat -c %s "$work/data")
for filter in "od -c" "sed -n p"; do
	read -ra cmd <<<"$filter"
	# What the filter makes of the data: what the connection must carry.
	LC_ALL=C "${cmd[@]}" <"$work/data" >"$work/expected"
	out=$(stat -c %s "$work/expected")
	sum=$(sha256sum <"$work/expected")

	# The filter serves the connection as its stdin and stdout; the
	# client's cat writes the data, the client reads the filter's output.
	rm -f "$sock"
	spawn yes "$work/server.log" env LC_ALL=C "$tools/tssx-echo" spawn "$sock" actions "${cmd[@]}"
	server_pid=$spawned
	wait_for_line "$work/server.log" "server: listening"
	with_preload yes "${guard[@]}" "${py[@]}" writer "$sock" "$work/data" \
		>"$work/client.log" 2>&1 || fail "client of $filter"
	wait_pid "$server_pid" || fail "$filter on a server's connection"
	grep -q "writer: echo sha256 ${sum%% *}" "$work/client.log" || fail "$filter on a server's connection: output differs"
	# The filter's image took the connection over; the client's cat wrote
	# the data into the rings, the client read the filter's output there
	# (the filter need not close its fds: its statistics may not show).
	grep -q "fd 0: shared memory, server" "$work/server.log" || fail "$filter did not take the connection over"
	check_ring "$work/client.log" "$in" 0
	check_ring "$work/client.log" 0 "$out"

	# The filter writes into a client's connection, its stdout only.
	start_echo_server yes "$work/server.log" "$sock"
	with_preload yes "${guard[@]}" env LC_ALL=C "${py[@]}" writer "$sock" "$work/data" "${cmd[@]}" \
		>"$work/writer.log" 2>&1 || fail "$filter writing a client's connection"
	wait_pid "$server_pid" || fail "server of $filter writing"
	grep -q "writer: echo sha256 ${sum%% *}" "$work/writer.log" || fail "$filter writing a client's connection: echo differs"
	check_shm "$work/server.log" "$out"
	check_ring "$work/writer.log" "$out" 0
done
late=$tools/tssx-stdio-late
for mode in fdopen dup2-first onto-stream saved-std; do
	start_echo_server yes "$work/server.log" "$sock"
	with_preload yes "${guard[@]}" "$late" "$mode" "$sock" 1M >"$work/client.log" 2>&1 ||
		fail "$mode: the client"
	wait_pid "$server_pid" || fail "$mode: the server"
	sum=$(grep -o "server: echoed 1048576 bytes checksum [0-9a-f]*" "$work/server.log") ||
		fail "$mode: the server did not echo every byte"
	grep -q "client: ${sum#server: }" "$work/client.log" || fail "$mode: the echo differs"
	case $mode in
	fdopen | dup2-first)
		check_plain "$work/client.log"
		check_plain "$work/server.log"
		;;
	*)
		grep -q "shared memory, client" "$work/client.log" || fail "$mode: the client's connection was plain"
		check_shm "$work/server.log" $((1 << 20))
		;;
	esac
done

rm -f "$sock"
spawn yes "$work/server.log" "$late" stale-accept "$sock"
server_pid=$spawned
wait_for_line "$work/server.log" "server: listening"
with_preload yes "${guard[@]}" "$tools/tssx-echo" client "$sock" --bytes 1M >"$work/client.log" 2>&1 ||
	fail "stale-accept: the client"
wait_pid "$server_pid" || fail "stale-accept: the server"
grep -q "server: echoed 1048576 bytes" "$work/server.log" || fail "stale-accept: the server did not echo"
check_shm "$work/client.log" $((1 << 20))
exit 0
