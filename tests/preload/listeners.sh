#!/usr/bin/env bash
# Listeners a server did not listen() on itself, or listened on under
# another name: each serves preloaded clients through shared memory,
# byte-exact, from the first client on.
#  - a listener passed over exec by a small C program (tssx-echo
#    listen-exec), and by systemd-socket-activate without --accept: the
#    first client connects before the exec'd server accepts at all (a
#    shell waits at a gate first), so the claim must survive the exec;
#  - systemd-socket-activate --accept --inetd: the launcher accepts each
#    connection and execs cat on it;
#  - systemd-socket-activate without the library, starting a preloaded
#    server: its first accept claims the listener it inherited;
#  - bind to a temporary name, rename into place, then listen;
#  - bind to a temporary name, listen, then rename into place: the claim
#    follows at the first accept (of a client that found none and stayed
#    plain, byte-exact); the next client goes through shared memory.
NAME=listeners
source "$(dirname "$0")/lib.sh"

sock=$work/s.sock
gate=$work/gate
bytes=$((3 << 20))
# A claim or a lookup that the registry does not answer within the timeout
# (50 ms by default) leaves a server plain until its claim is made, or a
# client plain: on a loaded machine a client that must find the claim
# found none now and then.  Every process here waits up to 10 s for it.
export TSSX_REGISTRY_TIMEOUT=10000

# client N: preloaded echo client N in the background; sets $client_pid.
client() {
	spawn yes "$work/client$1.log" "$tools/tssx-echo" client "$sock" --bytes "$bytes"
	client_pid=$spawned
}

# client_done N: client N exited, echo byte-exact, through shared memory.
client_done() {
	wait_pid "$client_pid" || fail "client $1"
	check_shm "$work/client$1.log" "$bytes"
}

# plain_then_shared WHAT: the server ($server_pid) has no claim under the
# name yet: its first client stays plain, byte-exact; the accept of that
# client claims the name, and client 2 goes through shared memory.
plain_then_shared() {
	with_preload yes "${guard[@]}" "$tools/tssx-echo" client "$sock" --bytes "$bytes" \
		>"$work/client1.log" 2>&1 || fail "first client of the $1"
	check_plain "$work/client1.log"
	client 2
	client_done 2
	wait_pid "$server_pid" || fail "$1"
}

# serve LOG READY CMD...: CMD, preloaded, serves 2 clients on $sock once
# LOG shows READY, the first of which connects before the gate opens.
serve() {
	local log=$1 ready=$2; shift 2
	rm -f "$sock" "$gate"
	mkfifo "$gate"
	spawn yes "$log" "$@"
	server_pid=$spawned
	wait_for_line "$log" "$ready"
	client 1
	wait_for_line "$work/client1.log" "shared memory"
	echo go >"$gate"
	client_done 1
	client 2
	client_done 2
	wait_pid "$server_pid" || fail "server: $*"
	[[ $(grep -c "server: echoed $bytes bytes" "$log") == 2 ]] || fail "$log: not 2 echoes"
	[[ $(grep -c "closed: ring sent=$bytes" "$log") == 2 ]] || fail "$log: not 2 connections in shared memory"
}

# The server a gate holds back: a shell that execs tssx-echo (started by
# systemd-socket-activate only at the first connection).
gated_server=(sh -c 'echo gated && read -r go <"$0" && exec "$1" server fd:3 --clients 2' "$gate" "$tools/tssx-echo")

# bind-rename-listen: no gate needed, the name is claimed at listen().
rm -f "$sock"
start_echo_server yes "$work/rename.log" "$sock" --clients 2 --rename
for i in 1 2; do client "$i"; client_done "$i"; done
wait_pid "$server_pid" || fail "renamed server"

# bind-listen-rename: the first client finds no claim under the final name.
rm -f "$sock"
start_echo_server yes "$work/renamed-after.log" "$sock" --clients 2 --rename-after
plain_then_shared "server renamed after listen"

# Ready once the image exec'd behind the gate has claimed the listener
# again (its constructor does, before the shell says "gated"): a client
# that came during the exec would find no claim and stay plain.
serve "$work/exec.log" "gated" "$tools/tssx-echo" listen-exec "$sock" "${gated_server[@]}"

command -v systemd-socket-activate >/dev/null ||
	{ echo "$NAME: SKIP: systemd-socket-activate not found (apt-get install systemd)" >&2; exit 77; }
# It passes only the variables named with -E to what it runs.
activate=(systemd-socket-activate -E LD_PRELOAD -E TSSX_REGISTRY -E TSSX_LOG -E TSSX_REGISTRY_TIMEOUT)
serve "$work/activate.log" "Listening on" "${activate[@]}" -l "$sock" "${gated_server[@]}"

# A launcher without the library (systemd itself): it starts the preloaded
# server at the first connection, and the server's first sight of the
# listener is its first accept, which claims it.  The first client found
# no claim: plain, byte-exact; the next one goes through shared memory.
rm -f "$sock"
spawn no "$work/unpreloaded.log" systemd-socket-activate -E TSSX_REGISTRY -E TSSX_REGISTRY_TIMEOUT -l "$sock" \
	env LD_PRELOAD="$preload" TSSX_LOG=info "$tools/tssx-echo" server fd:3 --clients 2
server_pid=$spawned
wait_for_line "$work/unpreloaded.log" "Listening on"
plain_then_shared "server an unpreloaded launcher started"
[[ $(grep -c "server: echoed $bytes bytes" "$work/unpreloaded.log") == 2 ]] || fail "unpreloaded launcher: not 2 echoes"

# --accept: the launcher accepts each connection and execs cat on it.
rm -f "$sock"
spawn yes "$work/accept.log" "${activate[@]}" --accept --inetd -l "$sock" cat
server_pid=$spawned
wait_for_line "$work/accept.log" "Listening on"
for i in 1 2; do client "$i"; client_done "$i"; done
! grep -q "TSSX connection failed" "$work/accept.log" || fail "accept: a connection failed"
