#!/usr/bin/env bash
# The library's own fds (each connection's memfd and eventfds, the side
# locks' arena) take none of the program's numbers, and the kernel's fd table, which grows to the power of two
# above the highest fd and is copied at every fork, stays within 8 times
# the program's own on plain sockets (docs/preload.md, "Where the
# library's fds go"): a Python server with 1, then 300 connections, its
# sockets accepted as the library's fds of the earlier ones are placed.
# At the fd limit of servers (the hard one here), where the library of
# before kept them in the upper half of the limit: a table of 16,384 at
# 20,000.  Counts, not times.
source "$(dirname "$0")/lib.sh" "$@"

ulimit -n "$(ulimit -Hn)"

# numbers yes|no N: the script's three lines, preloaded or plain.
numbers() {
	local mode=$1 n=$2
	rm -f "$work/s.sock"
	with_preload "$mode" "${guard[@]}" python3 "$(dirname "$0")/fd_numbers.py" "$work/s.sock" "$n" \
		>"$work/$mode-$n.out" 2>"$work/$mode-$n.log" || fail "$n connections, preloaded: $mode"
}

# numbers_of OUT: the accepted sockets' numbers and the next one, a line each.
numbers_of() {
	sed -nE 's/^(accepted|next) //p' "$1" | tr ' ' '\n'
}

for n in 1 300; do
	numbers no "$n"
	numbers yes "$n"
	grep -q 'shared memory' "$work/yes-$n.log" || fail "$n connections did not use shared memory"
	# The registry client's fds, made at the first socket call at the
	# lowest free numbers as any library's, shift every later number of
	# the program by as many; nothing else may.
	shifts=$(paste -d' ' <(numbers_of "$work/no-$n.out") <(numbers_of "$work/yes-$n.out") |
		awk '{ print $2 - $1 }' | sort -u)
	[[ $(wc -l <<<"$shifts") == 1 ]] && ((shifts <= 4)) ||
		fail "$n connections: the program's numbers moved by $(tr '\n' ' ' <<<"$shifts")"
	plain=$(sed -n 's/^fdsize //p' "$work/no-$n.out")
	preloaded=$(sed -n 's/^fdsize //p' "$work/yes-$n.out")
	((preloaded <= 8 * plain)) ||
		fail "$n connections: an fd table of $preloaded, $plain on plain sockets"
done
exit 0
