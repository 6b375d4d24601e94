#!/usr/bin/env bash
# Entries, bits and handles: the issue's "done when", the OR of handles
# across processes, SIGKILL, trust, malformed writes and names, listing.
source "$(dirname "$0")/lib.sh"

done_when() {
	# A process listening at /tmp/x.sock writes 1 to MOUNT/tmp/x.sock (a
	# name of this run's own in /tmp: suites may run side by side).
	local sock e
	sock=$(mktemp -u /tmp/x.XXXXXX.sock)
	e=$(entry "$sock")
	start_helper server --listen "$sock" --open "$e" --write '1' --hold
	local server=$HELPER_PID
	expect "$(results_of server)" "ok ok ok" "server steps"
	expect "$(cat "$e")" 1 "cat after the server's claim"
	# The same write by nobody is refused.
	expect "$(setpriv --reuid=nobody --regid=nogroup --clear-groups \
		"$HELPER" --open "$e" --write 1 | paste -sd' ')" "ok EPERM" "nobody's claim"
	# After kill -9 of the server, the entry is gone.
	kill -KILL "$server"
	wait_until test ! -e "$e"
	rm -f "$sock"
}

or_across_processes() {
	local sock=$WORK/or.sock e
	e=$(entry "$sock")
	start_helper or-server --listen "$sock" --open "$e" --write 1 --hold
	local server=$HELPER_PID
	start_helper or-client --open "$e" --write '2\n' --hold
	local client=$HELPER_PID
	expect "$(results_of or-client)" "ok ok" "client bit"
	expect "$(cat "$e")" 3 "server | client"
	# A handle rewrites its own contribution only.
	expect "$(run_helper --open "$e" --write 0 --write 2 --write 0)" "ok ok ok ok" "third handle"
	expect "$(cat "$e")" 3 "after a third handle came and went"
	# SIGKILL of a holder clears its bits, the other's stay.
	kill -KILL "$client"
	wait_until shows "$e" 1
	kill -KILL "$server"
	wait_until shows "$e" none
	# Directories implied by the entry went with it.
	expect "$(ls -A "$M")" "" "empty registry"
}

malformed_writes() {
	local e
	e=$(entry "$WORK/garbage.sock")
	expect "$(run_helper --open "$e" --write 4 --write x --write '1\n\n' --write '' --write '12' --write '\n' --write 2)" \
		"ok EINVAL EINVAL EINVAL ok EINVAL EINVAL ok" "garbage writes"
	# (an empty write never reaches the daemon)
	# The server bit of a file that is not a socket.
	touch "$WORK/plain"
	expect "$(run_helper --open "$(entry "$WORK/plain")" --write 1 --write 2)" "ok EPERM ok" "claim of a plain file"
	# ... and of a path where nothing exists.
	expect "$(run_helper --open "$(entry "$WORK/nothing")" --write 1)" "ok EPERM" "claim of a missing socket"
}

bad_names() {
	local long
	long=$(printf 'x%.0s' {1..120})
	expect "$(run_helper --open "$(entry "/tmp/$long")")" ENAMETOOLONG "name longer than a sun_path"
	expect "$(run_helper --open "$M/@bad name")" EINVAL "unescaped abstract name"
	expect "$(run_helper --open "$M/tmp/%zz")" EINVAL "bad escape"
	expect "$(run_helper --open "$(entry "$M/inside")")" EINVAL "a name inside the registry itself"
	if rm "$M" 2>/dev/null; then fail "removed the mount"; fi
}

listing_and_stat() {
	local a=$WORK/dir/a.sock b=$WORK/b.sock
	start_helper list-a --open "$(entry "$a")" --write 2 --hold
	start_helper list-b --open "$M/@abs%20name" --write 2 --hold
	local listing
	listing=$(cd "$M" && find . -type f | sort | paste -sd' ')
	expect "$listing" "./@abs%20name .$a" "find lists live entries"
	ls -R "$M" | grep -qx 'a.sock' || fail "ls -R misses a.sock"
	expect "$(stat -c '%s %a %U' "$(entry "$a")")" "2 666 root" "stat of an entry"
	expect "$(stat -c '%F' "$M$WORK")" "directory" "implied directory"
	[[ -e $(entry "$b") ]] && fail "a missing entry exists"
	# An entry cannot be unlinked: it belongs to its handles.
	if rm -f "$(entry "$a")" 2>/dev/null; then fail "unlinked an entry"; fi
	return 0
}

shell_redirection() {
	# A shell's '>' opens with O_TRUNC: accepted, the content stays a digit.
	local e
	e=$(entry "$WORK/shell.sock")
	mkdir -p "$(dirname "$e")"
	exec 3>"$e"
	echo 2 >&3
	expect "$(cat "$e")" 2 "written through a shell redirection"
	exec 3>&-
	wait_until test ! -e "$e"
}

done_when
or_across_processes
malformed_writes
bad_names
listing_and_stat
shell_redirection
