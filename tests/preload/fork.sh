#!/usr/bin/env bash
# fork() in a preloaded process (docs/preload.md, "What a fork costs"):
#  - it costs the child about the same with 64 connections open as with
#    one: the child's fork handlers write no page of a connection whose
#    count is already right.  Counted, not timed: the child's minor page
#    faults per fork (tssx-hotpath fork, getrusage), a process with 1 and
#    with 64 connections to itself.  The library of before wrote every
#    connection's count in the child, a page copy each (30 faults more
#    at 64 connections); what is left is the side locks' shared pages (a
#    pair per connection end, 32 to a page: 4 at 64);
#  - a child whose registry client settles its parent's state only at
#    its first call: its close-all loop closes every fd it lists without
#    an error, then it, its own child and the parent after them connect
#    over shared memory (py_fork.py);
#  - a child looks up no symbol: the fork() wrapper resolved every real
#    function in the parent, so a child's first epoll_create1, epoll_ctl,
#    epoll_wait and getpeername walk no library's symbol table (counted:
#    the child's lookups under LD_DEBUG=symbols, every PLT bound at start;
#    the library of before made 8, py_fork_resolve.py).
NAME=fork
source "$(dirname "$0")/lib.sh"

faults_per_fork() { # connections
	local out
	out=$(with_preload yes "${guard[@]}" "$TSSX_HOTPATH" fork "$work/s.sock" 40 "$1" 2>"$work/hotpath.log") ||
		fail "tssx-hotpath fork with $1 connections"
	(($(grep -c "shared memory" "$work/hotpath.log") == 2 * $1)) ||
		fail "not every connection on shared memory"
	awk '/^child:/ { printf "%d", $2 }' <<<"$out"
}

one=$(faults_per_fork 1)
many=$(faults_per_fork 64)
[[ -n $one && -n $many ]] || fail "no fault counts"
((many - one <= 8)) || fail "a fork's child: $one page faults with 1 connection, $many with 64"

start_echo_server yes "$work/server.log" "$work/echo.sock" --clients 4
with_preload yes "${guard[@]}" python3 "$(dirname "$0")/py_fork.py" "$work/echo.sock" \
	>"$work/py_fork.log" 2>&1 || fail "py_fork.py"
wait_pid "$server_pid" || fail "echo server"
(($(grep -c "shared memory" "$work/py_fork.log") == 4)) || fail "not every echo over shared memory"

mkdir "$work/ld"
child=$(LD_BIND_NOW=1 LD_DEBUG=symbols LD_DEBUG_OUTPUT="$work/ld/debug" env LD_PRELOAD="$preload" \
	"${guard[@]}" python3 "$(dirname "$0")/py_fork_resolve.py") || fail "py_fork_resolve.py"
[[ $child =~ ^[0-9]+$ ]] || fail "py_fork_resolve.py printed no pid"
lookups=$(cat "$work/ld"/debug.* | grep -c "^ *$child:.*symbol=" || true)
((lookups == 0)) || fail "a fork's child looked up $lookups symbols: $(cat "$work/ld"/debug.* |
	grep "^ *$child:.*symbol=" | grep -o "symbol=[^;]*" | sort -u | tr '\n' ' ')"
exit 0
