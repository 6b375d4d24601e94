#!/usr/bin/env bash
# PostgreSQL: a database that forks a backend process per connection, which
# inherits the accepted socket and waits on it with epoll and latches. psql
# queries with large checked results in both directions (a query result and a
# COPY FROM STDIN), then pgbench's initialisation and a short concurrent run
# whose balances must add up.
source "$(dirname "$0")/lib.sh"
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[[ -x $PGBIN/postgres ]] || skip "postgres not found (apt-get install postgresql-15)"
PATH=$PGBIN:$PATH
need pgbench postgresql-15
need psql postgresql-client-15
id postgres >/dev/null 2>&1 || skip "no postgres user (apt-get install postgresql-15)"

AS_POSTGRES=(setpriv --reuid=postgres --regid=postgres --init-groups)

sql() {
	app psql -h "$WORK/pg" -U postgres -X -A -t -q -v ON_ERROR_STOP=1 "$@"
}

# Rows that only a correct stream carries: numbers and their md5 in hex.
expected_rows() {
	python3 -c 'import hashlib
for i in range(1, 50001):
    print(f"{i}|{hashlib.md5(str(i).encode()).hexdigest()}")'
}

start_server() {
	mkdir "$WORK/pg"
	chown postgres: "$WORK/pg"
	"${AS_POSTGRES[@]}" initdb -D "$WORK/pg/data" -A trust -U postgres --no-sync -E UTF8 --locale=C \
		>/dev/null 2>>"$WORK/stderr.log" || fail "initdb failed"
	serve "${AS_POSTGRES[@]}" postgres -D "$WORK/pg/data" -c listen_addresses= \
		-c unix_socket_directories="$WORK/pg" -c fsync=off -c max_connections=20 \
		-c shared_buffers=32MB
	wait_for "postgres to accept connections" pg_isready -q -h "$WORK/pg"
}

app_run() {
	expect_eq "a sum" 500000500000 "$(sql -c 'select sum(i) from generate_series(1, 1000000) i')"

	[[ -f $WORK/rows ]] || expected_rows >"$WORK/rows"
	sql -c "select i, md5(i::text) from generate_series(1, 50000) i" >"$WORK/result" ||
		fail "the large query failed"
	expect_eq "sha256 of 50000 rows" "$(sha256_of "$WORK/rows")" "$(sha256_of "$WORK/result")"

	# Upstream: COPY 50000 lines in; the server hashes what it stored.
	tr '|' ' ' <"$WORK/rows" >"$WORK/lines"
	sql -c "create table if not exists lines (id serial primary key, v text)" \
		-c "truncate lines restart identity" \
		-c "\\copy lines (v) from '$WORK/lines'" || fail "COPY failed"
	expect_eq "md5 of the copied lines" "$(head -c -1 "$WORK/lines" | md5sum | cut -d' ' -f1)" \
		"$(sql -c "select md5(string_agg(v, E'\\n' order by id)) from lines")"

	app pgbench -h "$WORK/pg" -U postgres -i -q -s 1 postgres >/dev/null || fail "pgbench -i failed"
	app pgbench -h "$WORK/pg" -U postgres -c 4 -j 2 -t 100 postgres >"$WORK/pgbench" ||
		fail "pgbench failed: $(cat "$WORK/pgbench")"
	grep -q '^number of transactions actually processed: 400/400$' "$WORK/pgbench" ||
		fail "pgbench did not process 400 transactions: $(cat "$WORK/pgbench")"
	expect_eq "pgbench history and balances" "400|t" "$(sql -c "select count(*),
		sum(delta) = (select sum(abalance) from pgbench_accounts)
		and sum(delta) = (select sum(tbalance) from pgbench_tellers)
		and sum(delta) = (select sum(bbalance) from pgbench_branches)
		from pgbench_history")"
	APPS_MIN_CONNS=9
	APPS_MIN_RING_BYTES=$((4 * 1024 * 1024))
}

# pgbench's select-only transactions: 20000 by one client, then by four.
bench_client() {
	app pgbench -h "$WORK/pg" -U postgres -i -q -s 1 postgres >/dev/null 2>&1 || fail "pgbench -i failed"
	measure select-1-client 20000 pgbench -h "$WORK/pg" -U postgres -S -n -c 1 -t 20000 postgres
	measure select-4-clients 20000 pgbench -h "$WORK/pg" -U postgres -S -n -c 4 -j 2 -t 5000 postgres
}

apps_main "$@"
