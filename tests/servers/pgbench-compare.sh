#!/usr/bin/env bash
# pgbench-compare.sh WITH_REGISTRY REGISTRYFS LIBTSSX [ROUNDS [SECONDS]]
#
# Not a test: the load table's PostgreSQL rows (docs/benchmark.md).
# pgbench -S (select-only) against PostgreSQL on a Unix socket with 1, 4
# and 16 clients (-j 2), plain and with server and client preloaded, in
# alternating rounds (default 3 of 5 s each) on one database; prints the
# median tps with the range, and the ratio.  HOGS=1 runs one CPU-bound
# process per CPU meanwhile ("with other work running").
NAME=pgbench-compare
source "$(dirname "$0")/lib.sh"
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[[ -x $PGBIN/postgres ]] || { echo "$NAME: SKIP: postgres not found (apt-get install postgresql-15)" >&2; exit 77; }
PATH=$PGBIN:$PATH
need pgbench postgresql-15
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

start_postgres() { # mode
	local prefix=(env)
	[[ $1 == tssx ]] && prefix+=(LD_PRELOAD="$lib")
	"${prefix[@]}" "${as_postgres[@]}" postgres -D "$work/pg/data" -c listen_addresses= \
		-c unix_socket_directories="$work/pg" -c fsync=off -c max_connections=40 \
		-c shared_buffers=32MB >"$work/postgres.log" 2>&1 &
	server_pid=$!
	until pg_isready -q -h "$work/pg"; do sleep 0.1; done
}

stop_postgres() {
	kill -TERM "$server_pid"
	wait "$server_pid" 2>/dev/null || true
	server_pid=
}

start_postgres plain
pgbench -h "$work/pg" -U postgres -i -q -s 1 postgres >/dev/null 2>&1 || fail "pgbench -i failed"
stop_postgres

start_hogs
for ((round = 0; round < rounds; round++)); do
	for mode in plain tssx; do
		prefix=(env)
		[[ $mode == tssx ]] && prefix+=(LD_PRELOAD="$lib")
		start_postgres "$mode"
		for clients in 1 4 16; do
			tps=$("${prefix[@]}" pgbench -h "$work/pg" -U postgres -S -n -c "$clients" -j 2 -T "$seconds" postgres 2>&1 |
				awk '/^tps = / { print $3 }') || true
			[[ -n $tps ]] || fail "pgbench gave no tps ($mode, $clients clients)"
			echo "$clients $mode $tps" >>"$work/rates"
		done
		stop_postgres
	done
done
stop_hogs

echo "pgbench -S -j 2 -T $seconds, tps over $rounds rounds: median min-max$(hogs_note)"
compare_table clients 1 4 16
