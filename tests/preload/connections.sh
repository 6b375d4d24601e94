#!/usr/bin/env bash
# tssx connections: a preloaded Python client that sent and got back a
# known number of bytes from a preloaded tssx-echo server, and holds the
# connection, shows as two 'tssx' rows (client and server, each with the
# other's pid and program, the socket path) whose ring counts are exactly
# those bytes and whose socket counts are the hello and the doorbells;
# a plain client of that server, a preloaded client whose program bound
# its socket before connecting (the library's bind finds it bound and
# leaves it plain, byte-exact) and a preloaded client of a plain server
# show as 'plain' with why; closed connections disappear; another user sees
# none of root's connections, and its own.
NAME=connections
source "$(dirname "$0")/lib.sh"

[[ -x ${TSSX_CMD:-} ]] || fail "TSSX_CMD is not set to the tssx command"
lib=$(readlink -f "$lib") # absolute, whatever directory a process runs in
sock=$work/s.sock plain_sock=$work/plain.sock
bytes=123457
HELLO=40 # sizeof(struct tssx_hello): the client sends it, the server receives it

# hold_client SOCKET BYTES [NAME]: (binds to the abstract NAME first,)
# sends BYTES, reads them back and checks them, says "held", and keeps the
# connection until killed; exec: the spawned pid is Python's.
hold_client() {
	exec python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
if len(sys.argv) > 3:
    s.bind("\0" + sys.argv[3])
s.connect(sys.argv[1])
n = int(sys.argv[2])
sent = bytes(i % 251 for i in range(n))
s.sendall(sent)
got = b""
while len(got) < n:
    chunk = s.recv(65536)
    if not chunk:
        sys.exit("early EOF")
    got += chunk
if got != sent:
    sys.exit("echo differs")
print("held", flush=True)
time.sleep(120)' "$@"
}
export -f hold_client

start_echo_server yes "$work/server.log" "$sock" --clients 3
spawn yes "$work/client.log" bash -c 'hold_client "$@"' - "$sock" "$bytes"
client=$spawned
wait_for_line "$work/client.log" held
spawn no "$work/plain-client.log" bash -c 'hold_client "$@"' - "$sock" 5
plain_client=$spawned
wait_for_line "$work/plain-client.log" held
spawn yes "$work/bound-client.log" bash -c 'hold_client "$@"' - "$sock" 11 "bound-by-program.$$"
bound_client=$spawned
wait_for_line "$work/bound-client.log" held
# A plain server, and a preloaded client of it.
spawn no "$work/plain-server.log" "$tools/tssx-echo" server "$plain_sock"
wait_for_line "$work/plain-server.log" "server: listening"
spawn yes "$work/client2.log" bash -c 'hold_client "$@"' - "$plain_sock" 7
client2=$spawned
wait_for_line "$work/client2.log" held

"$TSSX_CMD" connections >"$work/out" 2>"$work/err" || fail "tssx connections failed: $(cat "$work/err")"
# Complaints about this test's processes, or about none in particular:
# the tool reads every preloaded process of the machine, and other suites
# or benchmarks running beside this one may fill their tables.
ours=" $server_pid $client $plain_client $bound_client $client2 "
complaints=$(awk -v ours="$ours" 'match($0, /^tssx-connections: [0-9]+\//) {
	pid = substr($0, 19, RLENGTH - 19); if (index(ours, " " pid " ") == 0) next } { print }' "$work/err")
[[ -z $complaints ]] || fail "tssx connections complained: $complaints"
head -1 "$work/out" | grep -Eq '^STATE +PROCESS +FD +ROLE +PEER +SOCKET +RING-SENT +RING-RECV +SOCK-SENT +SOCK-RECV +BELLS-OUT +BELLS-IN +WHY$' ||
	fail "header: $(head -1 "$work/out")"

# The rows of a socket path, as "STATE PID ROLE PEER-PID COUNTS... WHY".
rows() { # socket
	awk -v s="$1" '$6 == s {
		split($2, p, "/"); split($5, q, "/")
		why = ""; for (i = 13; i <= NF; i++) why = why " " $i
		print $1, p[1], $4, q[1], $7, $8, $9, $10, $11, $12 why }' "$work/out" | sort
}
expect=$(printf '%s\n' \
	"plain $server_pid server $plain_client - - - - - - client not TSSX-aware" \
	"plain $server_pid server $bound_client - - - - - - client not TSSX-aware" \
	"plain $bound_client client $server_pid - - - - - - client socket bound by the program" \
	"tssx $client client $server_pid $bytes $bytes" \
	"tssx $server_pid server $client $bytes $bytes" | sort)
got=$(rows "$sock" | sed -E 's/^(tssx [0-9]+ [a-z]+ [0-9]+ [0-9]+ [0-9]+) [0-9]+ [0-9]+ [0-9]+ [0-9]+ -$/\1/')
[[ $got == "$expect" ]] || fail "rows of $sock:
$got
expected
$expect
$(cat "$work/out")"

# Socket bytes: the hello one way, doorbells both ways, and nothing else.
read -r _ _ _ _ _ _ c_ssent c_srecv c_out c_in _ < <(rows "$sock" | grep "^tssx $client ")
read -r _ _ _ _ _ _ s_ssent s_srecv s_out s_in _ < <(rows "$sock" | grep "^tssx $server_pid ")
((c_ssent == HELLO + c_out && c_srecv == c_in && s_srecv == HELLO + s_in && s_ssent == s_out)) ||
	fail "socket counts: client $c_ssent/$c_srecv ($c_out/$c_in doorbells), server $s_ssent/$s_srecv ($s_out/$s_in)"
# A doorbell may still sit unread in its receiver's socket (a waiter that
# re-checked and found data leaves its flag set: one spare doorbell), so
# what one end sent is what the other got plus what it has queued.
queued() { # pid: bytes unread in its Unix sockets
	ss -xnpH | awk -v p="pid=$1," 'index($0, p) { q += $3 } END { print q + 0 }'
}
c_queued=$(queued "$client")
s_queued=$(queued "$server_pid")
((c_out == s_in + s_queued && s_out == c_in + c_queued)) ||
	fail "doorbells: the client sent $c_out, the server got $s_in ($s_queued queued); server sent $s_out, client got $c_in ($c_queued queued)"

# The TSSX client's socket carries the name the library bound: the
# prefix the server tells TSSX clients by, the client's pid, a counter and
# eight hex digits of the process's random number.
ss -xnpH | grep "pid=$client," | grep -Eq " @tssx-v1\.$client\.[0-9]+\.[0-9a-f]{8} " ||
	fail "the TSSX client's socket name: $(ss -xnpH | grep "pid=$client,")"

grep -Eq "^plain +$client2/python3 +[0-9]+ +client +[0-9]+/tssx-echo +$plain_sock .* server not TSSX-aware$" "$work/out" ||
	fail "the preloaded client of a plain server is not listed as plain: $(cat "$work/out")"

# Another user sees none of root's connections, and is told so.
if id nobody >/dev/null 2>&1 && command -v setpriv >/dev/null; then
	setpriv --reuid=nobody --regid=nogroup --clear-groups "$TSSX_CMD" connections >"$work/nobody" 2>"$work/nobody.err" ||
		fail "tssx connections as nobody failed: $(cat "$work/nobody.err")"
	grep -q "no connection" "$work/nobody" && grep -q "only this user's processes" "$work/nobody.err" ||
		fail "nobody sees: $(cat "$work/nobody" "$work/nobody.err")"

	# ... and sees its own: a preloaded pair run as nobody.
	as_nobody=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
	chmod 711 "$work" && mkdir -m 1777 "$work/nobody-dir"
	own_sock=$work/nobody-dir/s.sock
	spawn yes "$work/nobody-server.log" "${as_nobody[@]}" "$tools/tssx-echo" server "$own_sock"
	own_server=$spawned
	wait_for_line "$work/nobody-server.log" "server: listening"
	spawn yes "$work/nobody-client.log" "${as_nobody[@]}" bash -c 'hold_client "$@"' - "$own_sock" 999
	own_client=$spawned
	wait_for_line "$work/nobody-client.log" held
	"${as_nobody[@]}" "$TSSX_CMD" connections >"$work/nobody" 2>"$work/nobody.err" ||
		fail "tssx connections as nobody failed: $(cat "$work/nobody.err")"
	grep -Eq "^tssx +$own_client/python3 +[0-9]+ +client +$own_server/tssx-echo +$own_sock +999 +999 " "$work/nobody" &&
		grep -Eq "^tssx +$own_server/tssx-echo +[0-9]+ +server +$own_client/python3 +$own_sock +999 +999 " "$work/nobody" ||
		fail "nobody does not see its own pair: $(cat "$work/nobody" "$work/nobody.err")"
	! grep -q " $sock " "$work/nobody" || fail "nobody sees root's connections: $(cat "$work/nobody")"
	kill "$own_client" "$own_server"
	wait "$own_client" "$own_server" 2>/dev/null || true
fi

# Closed connections are gone.
kill "$client" "$plain_client" "$bound_client" "$client2"
wait "$client" "$plain_client" "$bound_client" "$client2" 2>/dev/null || true
wait_pid "$server_pid" || fail "the echo server failed"
"$TSSX_CMD" connections >"$work/out" 2>&1
! grep -q "$sock" "$work/out" || fail "closed connections still listed: $(cat "$work/out")"
