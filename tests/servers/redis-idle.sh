#!/usr/bin/env bash
# redis-idle.sh WITH_REGISTRY REGISTRYFS LIBTSSX
#
# A preloaded redis-server holds as many idle preloaded clients as its
# maxclients allows but two (one Python process holds them, each sent PING
# and was answered), then a preloaded redis-benchmark -c 1 and a
# redis-cli must get their answers.  Redis indexes its event loop's table
# by fd and sizes it maxclients + 128: a connection whose socket's number
# is beyond it is accepted and never watched, its requests wait for good.
# On plain sockets a client's number stays below maxclients + 32 or so;
# the library's own fds of each connection (its memfd, its eventfds) must
# not push the program's numbers up (docs/preload.md, "Costs").  The
# bound is a hang guard, not a speed check.
#
#   REDIS_MAXCLIENTS=N   the server's maxclients (default: 1000, less when
#                        the fd limit is below 8 fds a client)
NAME=redis-idle
source "$(dirname "$0")/lib.sh"
need redis-server redis-server
need redis-benchmark redis-tools
need redis-cli redis-tools
need python3 python3

# Room for the clients' sockets, and the library's fds of each in the
# kept numbers above the program's, in both processes.
ulimit -n "$(ulimit -Hn)"
limit=$(ulimit -n)
[[ $limit == unlimited ]] && limit=1048576
maxclients=${REDIS_MAXCLIENTS:-$((limit / 8 < 1000 ? limit / 8 : 1000))}
((maxclients >= 64)) || { echo "$NAME: SKIP: fd limit $limit too low" >&2; exit 77; }
idle=$((maxclients - 2))
sock=$work/redis.sock

# A server hung in a spin ignores SIGTERM: the cleanup's stop would hang.
idle_fail() {
	kill -KILL "$server_pid" 2>/dev/null || true
	[[ -z ${holder:-} ]] || kill -KILL "$holder" 2>/dev/null || true
	fail "$@"
}

start_preloaded_redis "$sock" --maxclients "$maxclients"

# The idle clients: connected, answered once, then held open until
# stdin closes.  "ready" once all were answered.
mkfifo "$work/hold"
"${preloaded[@]}" python3 -c '
import socket, sys
n, path = int(sys.argv[1]), sys.argv[2]
held = []
for i in range(n):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.sendall(b"PING\r\n")
    s.settimeout(60)
    try:
        answer = s.recv(64)
    except socket.timeout:
        answer = b"nothing within 60 s"
    if answer != b"+PONG\r\n":
        print("idle client %d of %d: %r" % (i + 1, n, answer), flush=True)
        sys.exit(1)
    held.append(s)
print("ready", flush=True)
sys.stdin.read()
' "$idle" "$sock" <"$work/hold" >"$work/holder.out" 2>"$work/holder.log" &
holder=$!
exec 3>"$work/hold"
# Each client's answer has its own guard; this one is for the connects.
for ((i = 0; i < 4800; i++)); do
	grep -qx ready "$work/holder.out" && break
	kill -0 "$holder" 2>/dev/null || idle_fail "the idle clients' process failed: $(cat "$work/holder.out")"
	sleep 0.1
done
grep -qx ready "$work/holder.out" || idle_fail "$idle idle clients not connected within 480 s"

timeout -s KILL 60 "${preloaded[@]}" redis-benchmark -s "$sock" -c 1 -n 2000 -t get --csv \
	>"$work/bench.csv" 2>"$work/bench.log" ||
	idle_fail "redis-benchmark -c 1 beside $idle idle clients failed or hung: $(tail -n 3 "$work/bench.log")"
grep -qE '^"GET","[0-9.]+"' "$work/bench.csv" || idle_fail "no GET rate: $(cat "$work/bench.csv")"
grep -q 'shared memory, client' "$work/bench.log" || idle_fail "redis-benchmark did not use shared memory"
[[ $(timeout -s KILL 30 "${preloaded[@]}" redis-cli -s "$sock" ping 2>>"$work/clients.log") == PONG ]] ||
	idle_fail "no answer to a preloaded redis-cli beside $idle idle clients"
exec 3>&-
wait "$holder" || idle_fail "the idle clients' process failed: $(cat "$work/holder.out")"
holder=
