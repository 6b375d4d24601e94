#!/usr/bin/env bash
# pgbench-compare.sh WITH_REGISTRY REGISTRYFS LIBTSSX [ROUNDS [SECONDS]]
#
# Not a test: the load table's PostgreSQL rows (docs/benchmark.md).
# pgbench -S (select-only) against PostgreSQL on a Unix socket with 1, 4
# and 16 clients (-j 2), plain and with server and client preloaded, in
# alternating rounds (default 3 of 5 s each) on one database; prints the
# median tps with the range, and the ratio.  HOGS=1 runs one CPU-bound
# process per CPU meanwhile ("with other work running").  COUNT=1 also
# counts, per transaction, the system calls and the CPU time of the
# server (postgres and its backends) and of pgbench, each under
# `perf stat` (the server is started again for every client count).
# CONNECT=1 makes a new connection per transaction (pgbench -C: the
# postmaster forks a backend for each, docs/preload.md, "What a fork costs").
NAME=pgbench-compare
source "$(dirname "$0")/lib.sh"
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[[ -x $PGBIN/postgres ]] || { echo "$NAME: SKIP: postgres not found (apt-get install postgresql-15)" >&2; exit 77; }
PATH=$PGBIN:$PATH
need pgbench postgresql-15
counting=${COUNT:-0}
per_transaction_connect=()
[[ ${CONNECT:-0} == 1 ]] && per_transaction_connect=(-C)
[[ $counting == 1 ]] && need perf linux-perf
id postgres >/dev/null 2>&1 || { echo "$NAME: SKIP: no postgres user" >&2; exit 77; }
source "$(dirname "$0")/compare.sh"

rounds=${4:-3}
seconds=${5:-5}
as_postgres=(setpriv --reuid=postgres --regid=postgres --init-groups)
chmod 755 "$work"
mkdir "$work/pg"
chown postgres: "$work/pg"
"${as_postgres[@]}" initdb -D "$work/pg/data" -A trust -U postgres --no-sync -E UTF8 --locale=C \
	>"$work/initdb.log" 2>&1 || fail "initdb failed"

# Under COUNT=1, `perf stat` counts a command and its children into FILE.
counted() { # FILE COMMAND...
	local file=$1
	shift
	if [[ $counting == 1 ]]; then
		perf stat -x, -o "$file" -e raw_syscalls:sys_enter,task-clock -- "$@"
	else
		"$@"
	fi
}

# per_transaction FILE EVENT TRANSACTIONS: an event of a perf stat file per
# transaction (task-clock, in ms, as µs).
per_transaction() {
	awk -F, -v event="$2" -v tx="$3" '$3 == event { printf "%.2f\n", (event == "task-clock" ? $1 * 1000 : $1) / tx }' "$1"
}

start_postgres() { # mode
	local prefix=(env)
	[[ $1 == tssx ]] && prefix+=(LD_PRELOAD="$lib")
	counted "$work/server.stat" "${prefix[@]}" "${as_postgres[@]}" postgres -D "$work/pg/data" -c listen_addresses= \
		-c unix_socket_directories="$work/pg" -c fsync=off -c max_connections=40 \
		-c shared_buffers=32MB >"$work/postgres.log" 2>&1 &
	server_pid=$!
	until pg_isready -q -h "$work/pg"; do sleep 0.1; done
}

# Signals the postmaster by its pid file: under COUNT=1 $server_pid is
# perf's, which would die of the signal and leave postgres running.
stop_postgres() {
	local pid
	pid=$(head -n 1 "$work/pg/data/postmaster.pid" 2>/dev/null) || pid=$server_pid
	kill -TERM "$pid" 2>/dev/null || true
	wait "$server_pid" 2>/dev/null || true
	server_pid=
}
trap 'stop_hogs; [[ -z $server_pid ]] || stop_postgres; servers_cleanup' EXIT

start_postgres plain
pgbench -h "$work/pg" -U postgres -i -q -s 1 postgres >/dev/null 2>&1 || fail "pgbench -i failed"
stop_postgres

start_hogs
for ((round = 0; round < rounds; round++)); do
	for mode in plain tssx; do
		prefix=(env)
		[[ $mode == tssx ]] && prefix+=(LD_PRELOAD="$lib")
		[[ $counting == 1 ]] || start_postgres "$mode"
		for clients in 1 4 16; do
			[[ $counting == 1 ]] && start_postgres "$mode"
			out=$(counted "$work/client.stat" "${prefix[@]}" pgbench -h "$work/pg" -U postgres -S -n \
				"${per_transaction_connect[@]}" -c "$clients" -j 2 -T "$seconds" postgres 2>&1) || true
			tps=$(awk '/^tps = / { print $3 }' <<<"$out")
			[[ -n $tps ]] || fail "pgbench gave no tps ($mode, $clients clients)"
			echo "$clients $mode $tps" >>"$work/rates"
			[[ $counting == 1 ]] || continue
			stop_postgres
			tx=$(awk '/number of transactions actually processed/ { split($NF, n, "/"); print n[1] }' <<<"$out")
			for side in server client; do
				echo "$clients $mode $(per_transaction "$work/$side.stat" raw_syscalls:sys_enter "$tx")" >>"$work/calls-$side"
				echo "$clients $mode $(per_transaction "$work/$side.stat" task-clock "$tx")" >>"$work/cpu-$side"
			done
		done
		[[ $counting == 1 ]] || stop_postgres
	done
done
stop_hogs

echo "pgbench -S ${per_transaction_connect[*]:+-C }-j 2 -T $seconds, tps over $rounds rounds: median min-max$(hogs_note)"
compare_table clients 1 4 16
[[ $counting == 1 ]] || exit 0
for side in server client; do
	echo "system calls per transaction, $side: median min-max"
	rates=$work/calls-$side digits=1 compare_table clients 1 4 16
	echo "CPU time per transaction (µs), $side: median min-max"
	rates=$work/cpu-$side digits=1 compare_table clients 1 4 16
done
