# Sourced by the measuring scripts of tests/servers (redis-compare.sh,
# redis-pairs.sh, pgbench-compare.sh) after lib.sh: medians and ranges of
# alternating rounds, the plain/TSSX table, and the CPU-bound processes
# that HOGS=1 runs meanwhile.

hogs=()

# start_hogs: one busy process per CPU when HOGS=1 ("other work running").
start_hogs() {
	local i
	[[ ${HOGS:-0} == 1 ]] || return 0
	for ((i = 0; i < $(nproc); i++)); do
		sh -c 'while :; do :; done' &
		hogs+=($!)
	done
}

stop_hogs() {
	((${#hogs[@]})) || return 0
	kill -KILL "${hogs[@]}" 2>/dev/null || true
	wait "${hogs[@]}" 2>/dev/null || true
	hogs=()
}
trap 'stop_hogs; servers_cleanup' EXIT

hogs_note() {
	[[ ${HOGS:-0} == 1 ]] && echo ", one CPU-bound process per CPU running"
}

summary() { # "median min-max" of the numbers on stdin, with $digits decimals (0)
	sort -n | awk -v d="${digits:-0}" '{ v[NR] = $1 }
		END { f = "%." d "f"; printf f " " f "-" f, NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2, v[1], v[NR] }'
}

# compare_table LABEL ROWS...: from $rates, default $work/rates ("ROW MODE
# VALUE" lines), one line per row: plain and tssx as median min-max, and
# their ratio.
compare_table() {
	local label=$1 row plain tssx file=${rates:-$work/rates}
	shift
	printf '%-8s %24s %24s %7s\n' "$label" plain TSSX ratio
	for row in "$@"; do
		plain=$(awk -v r="$row" '$1 == r && $2 == "plain" { print $3 }' "$file" | summary)
		tssx=$(awk -v r="$row" '$1 == r && $2 == "tssx" { print $3 }' "$file" | summary)
		printf '%-8s %24s %24s %6.2fx\n' "$row" "$plain" "$tssx" \
			"$(awk -v a="${tssx%% *}" -v b="${plain%% *}" 'BEGIN { print b ? a / b : 0 }')"
	done
}
