#!/usr/bin/env bash
# Per-user quotas: run with -o max_user_entries=4.  nobody fills its quota
# (directories count too) and then gets EDQUOT, while root and a third user
# still claim their sockets; a slot nobody frees is its again.
source "$(dirname "$0")/lib.sh"

as_nobody=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
as_third=(setpriv --reuid=4242 --regid=4242 --clear-groups)
dir=$WORK/quota
mkdir "$dir"
chmod 755 "$WORK"
chmod 1777 "$dir"

hold_as_nobody() { # name
	local out=$WORK/$1.out
	"${as_nobody[@]}" "$HELPER" --open "$M/@$1" --hold >"$out" 2>&1 &
	HELPER_PIDS+=($!)
	disown
	wait_until grep -qs '^ready' "$out"
	expect "$(results_of "$1")" ok "nobody's entry $1"
	HELPER_PID=$(awk '/^ready/ { print $2 }' "$out")
	HELPER_PIDS+=("$HELPER_PID")
}

for i in 1 2 3 4; do
	hold_as_nobody "nobody-$i"
done
expect "$("${as_nobody[@]}" "$HELPER" --open "$M/@nobody-5" | paste -sd' ')" EDQUOT \
	"nobody over its quota"
expect "$("${as_nobody[@]}" mkdir "$M/nobody-dir" 2>&1 | grep -c 'quota exceeded')" 1 \
	"a directory counts too"

# root and a third user still claim their sockets.
expect "$(run_helper --listen "$dir/root.sock" --open "$(entry "$dir/root.sock")" --write 1)" \
	"ok ok ok" "root's claim"
expect "$(bits_of "$(entry "$dir/root.sock")")" none "root's entry went with its process"
start_helper root --listen "$dir/root.sock" --open "$(entry "$dir/root.sock")" --write 1 --hold
expect "$("${as_third[@]}" "$HELPER" --listen "$dir/third.sock" --open "$(entry "$dir/third.sock")" \
	--write 1 | paste -sd' ')" "ok ok ok" "a third user's claim"

# A freed slot is nobody's again.
kill -KILL "$HELPER_PID" # root's holder
nobody_4=$(awk '/^ready/ { print $2 }' "$WORK/nobody-4.out")
kill -KILL "$nobody_4"
wait_until test ! -e "$M/@nobody-4"
expect "$("${as_nobody[@]}" "$HELPER" --open "$M/@nobody-5" | paste -sd' ')" ok \
	"after one of its entries went"
