#!/usr/bin/env bash
# Other programs as peers: a Python (standard library) client and server
# under the preload exchange 100 MiB through shared memory; socat, plain,
# talks to a preloaded server and serves a preloaded client byte-exact.
NAME=peers
source "$(dirname "$0")/lib.sh"

sock=$work/s.sock
py=$(dirname "$0")/py_echo.py
bytes=$((100 << 20))

spawn yes "$work/server.log" python3 "$py" server "$sock"
server_pid=$spawned
wait_for_line "$work/server.log" "server: listening"
with_preload yes "${guard[@]}" python3 "$py" client "$sock" "$bytes" >"$work/client.log" 2>&1 ||
	fail "python client"
wait_pid "$server_pid" || fail "python server"
sum=$(sed -n 's/^client: .* sha256 //p' "$work/client.log")
grep -q "server: echoed $bytes bytes sha256 $sum" "$work/server.log" || fail "python: checksums differ"
check_shm "$work/server.log" "$bytes"
check_shm "$work/client.log" "$bytes"

command -v socat >/dev/null || { echo "$NAME: SKIP: socat not found (apt-get install socat)" >&2; exit 77; }
head -c 3000000 /dev/urandom >"$work/data"

# A plain socat client of a preloaded server.
start_echo_server yes "$work/server.log" "$sock"
"${guard[@]}" socat -t 5 "UNIX-CONNECT:$sock" STDIO <"$work/data" >"$work/echoed" 2>"$work/socat.log" ||
	fail "socat client"
wait_pid "$server_pid" || fail "server of socat"
cmp -s "$work/data" "$work/echoed" || fail "socat client: echo differs"
check_plain "$work/server.log"

# A preloaded client of a plain socat server.
rm -f "$sock"
spawn no "$work/socat.log" socat "UNIX-LISTEN:$sock" EXEC:cat
server_pid=$spawned
for ((i = 0; i < 400; i++)); do [[ -S $sock ]] && break; sleep 0.025; done
with_preload yes "${guard[@]}" "$tools/tssx-echo" client "$sock" --bytes 3M >"$work/client.log" 2>&1 ||
	fail "client of socat"
wait_pid "$server_pid" || fail "socat server"
check_plain "$work/client.log"
