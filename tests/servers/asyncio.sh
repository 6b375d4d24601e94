#!/usr/bin/env bash
# asyncio.sh WITH_REGISTRY REGISTRYFS LIBTSSX
#
# A Python asyncio echo server and client (standard library, epoll
# selector), both preloaded over a private registry: 100 MiB echoed
# byte-exact (SHA-256), and both ends' connection through shared memory,
# carrying the whole stream in the rings.
#
#   ASYNCIO_MIB=N   MiB to echo (default 100)
NAME=asyncio
source "$(dirname "$0")/lib.sh"
need python3 python3

mib=${ASYNCIO_MIB:-100}
echo_py=$(dirname "$0")/asyncio_echo.py

"${preloaded[@]}" python3 "$echo_py" server "$work/echo.sock" 2>"$work/server.log" &
server_pid=$!
for ((i = 0; i < 200; i++)); do
	[[ -S $work/echo.sock ]] && break
	kill -0 "$server_pid" 2>/dev/null || fail "the server exited"
	sleep 0.05
done
[[ -S $work/echo.sock ]] || fail "the server did not come up"

# A hang fails with the logs, before meson's own timeout kills it silently.
timeout 90 "${preloaded[@]}" python3 "$echo_py" client "$work/echo.sock" "$mib" 2>"$work/client.log" ||
	fail "the client failed or hung (status $?)"

bytes=$((mib << 20))
grep -q 'shared memory, client' "$work/client.log" || fail "the client did not use shared memory"
grep -q 'shared memory, server' "$work/server.log" || fail "the server did not use shared memory"
# The client's closing line counts the bytes each way through the rings.
grep -qE "ring sent=$bytes received=$bytes," "$work/client.log" ||
	fail "not all $bytes bytes went through the rings: $(grep 'ring sent' "$work/client.log")"
