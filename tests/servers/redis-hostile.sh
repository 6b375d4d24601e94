#!/usr/bin/env bash
# redis-hostile.sh WITH_REGISTRY REGISTRYFS LIBTSSX TSSX_FORGE
#
# 1,000 hostile hellos of every kind (tssx-forge) leave a preloaded
# redis-server's fds and mappings as they were.  Then it keeps answering a
# plain redis-cli while a hostile TSSX client (tssx-forge attack) spoils
# the segments of its connections one way after another: control words
# held at 1 and at ~0 (lock words, waiting flags, the waiters word, shut
# flags), random words, counters racing while the server reads, the
# memfd's pages punched out.  And after the attacker left, plain and
# preloaded clients are served alike.  The bound on each answer is
# generous (a hang guard, not a speed check).
NAME=redis-hostile
forge=$4
source "$(dirname "$0")/lib.sh"
need redis-server redis-server
need redis-cli redis-tools

# A server hung in a spin ignores SIGTERM: the cleanup's stop would hang.
hostile_fail() {
	kill -KILL "$server_pid" 2>/dev/null || true
	fail "$@"
}

sock=$work/redis.sock
start_preloaded_redis "$sock"

# ping: one plain request answered within the guard
ping() {
	[[ $(timeout -s KILL 10 redis-cli -s "$sock" ping 2>>"$work/clients.log") == PONG ]]
}

# Hostile connects leave nothing behind: the server's open fds and its
# mappings are the same after 1,000 as after the first 50 (which let
# Redis and its allocator settle).  Each forger is dropped (EOF or a
# reset) before it exits; Redis closes its fd when it next reads it.
# Before the attack: the segments of the attack's connections that ended
# well stay mapped in the server's pool of recycled mappings for up to
# 10 s (docs/data-path.md, "Segments recycled"), and its 16 entries would
# expire between the two counts.
counts() {
	echo "$(find "/proc/$server_pid/fd" -mindepth 1 | wc -l) fds," \
		"$(awk '$2 ~ /s/' "/proc/$server_pid/maps" | wc -l) shared mappings," \
		"$(wc -l <"/proc/$server_pid/maps") mappings"
}
cases=(magic version nofd unsealed short indices bypass fds fdsplit huge)
hostile_connects() {
	local i how
	for ((i = 0; i < $1; i++)); do
		how=${cases[i % ${#cases[@]}]}
		timeout -s KILL 10 "$forge" "$how" "$sock" >"$work/forge.out" 2>&1 ||
			hostile_fail "hostile connect $i ($how): the forger was not dropped"
	done
	ping || hostile_fail "no answer to a plain client after $1 hostile connects"
}
# settled: the counts once Redis freed every client but the one asking
# (CLIENT LIST) and closed that one's fd too (five equal looks in a row).
settled() {
	local i same=0 last= now
	for ((i = 0; i < 200; i++)); do
		if [[ $(timeout -s KILL 10 redis-cli -s "$sock" client list 2>>"$work/clients.log" | wc -l) == 1 ]]; then
			break
		fi
		sleep 0.05
	done
	for ((i = 0; i < 200 && same < 5; i++)); do
		sleep 0.02
		now=$(counts)
		[[ $now == "$last" ]] && same=$((same + 1)) || same=0
		last=$now
	done
	echo "$last"
}
hostile_connects 50
before=$(settled)
hostile_connects 1000
after=$(settled)
[[ $before == "$after" ]] || hostile_fail "1,000 hostile connects: $before before, $after after"

timeout -s KILL 60 "$forge" attack 4 "$sock" >"$work/attack.out" 2>/dev/null &
attacker=$!
answered=0
while kill -0 "$attacker" 2>/dev/null; do
	ping || hostile_fail "no answer to a plain client during the attack"
	answered=$((answered + 1))
done
wait "$attacker" || hostile_fail "the attacker failed"
((answered > 0)) || hostile_fail "no request during the attack"
for ((i = 0; i < 5; i++)); do
	ping || hostile_fail "no answer to a plain client after the attack"
done
[[ $(timeout -s KILL 10 "${preloaded[@]}" redis-cli -s "$sock" ping 2>>"$work/clients.log") == PONG ]] ||
	hostile_fail "no answer to a preloaded client after the attack"
grep -q 'shared memory, client' "$work/clients.log" || hostile_fail "the preloaded client did not use shared memory"
grep -q 'TSSX connection failed' "$work/server.log" || hostile_fail "the server noticed no attack"

echo "redis-hostile: $answered answers during the attack, $(cat "$work/attack.out");" \
	"1,000 hostile connects: $before before and after"
