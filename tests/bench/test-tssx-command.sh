#!/usr/bin/env bash
# The tssx command: help, version and usage errors; `tssx run` preloads the
# library first in LD_PRELOAD and says when no registry is mounted; `tssx
# status` lists a socket claimed by a server started with `tssx run`, in
# columns, and forgets it when the server dies; neither waits for a
# stopped daemon.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# Whole outputs first: grep -q stops reading at its match, and a writer
# still writing then dies of SIGPIPE, which pipefail reports.
help=$("$TSSX_CMD" --help)
grep -q '^Usage: tssx run' <<<"$help" || fail "--help has no usage"
[[ $("$TSSX_CMD" --version) =~ ^tssx\ [0-9]+\.[0-9]+ ]] || fail "--version"
rc=0; "$TSSX_CMD" frobnicate 2>/dev/null || rc=$?
((rc == 2)) || fail "unknown command exits $rc, not 2"
rc=0; "$TSSX_CMD" run 2>/dev/null || rc=$?
((rc == 2)) || fail "run without a command exits $rc, not 2"
help=$("$TSSX_CMD" bench --help)
grep -q '^Usage: tssx-bench' <<<"$help" || fail "tssx bench does not run tssx-bench"
rc=0; out=$(TSSX_REGISTRY=$TMP "$TSSX_CMD" status 2>&1) || rc=$?
((rc == 1)) && [[ $out == *"no registry mounted at $TMP"* ]] ||
	fail "status without a registry: exit $rc, '$out'"

if ! have_tssx; then
	echo "SKIP: libtssx.so or tests/lib/with-registry not built yet"
	exit 77
fi

# tssx run: library first, the caller's other entries kept, an old
# libtssx.so dropped; the child really maps it; one line about the registry.
export TSSX_LIBRARY=$TSSX_TEST_LIBRARY
mkdir "$TMP/old" && ln -s "$TSSX_TEST_LIBRARY" "$TMP/old/libtssx.so"
out=$(TSSX_REGISTRY=$TMP LD_PRELOAD="$TMP/old/libtssx.so libm.so.6" \
	"$TSSX_CMD" run -- sh -c 'echo "$LD_PRELOAD"; echo "$TSSX_REGISTRY"; grep -c "/libtssx.so" /proc/self/maps' \
	2>"$TMP/stderr")
expected=$(printf '%s\n%s\n' "$TSSX_TEST_LIBRARY:libm.so.6" "$TMP")
[[ $out == "$expected"$'\n'[1-9]* ]] || fail "tssx run environment or maps: '$out'"
[[ $(wc -l <"$TMP/stderr") == 1 ]] && grep -q "no registry mounted at $TMP" "$TMP/stderr" ||
	fail "tssx run without a registry: '$(cat "$TMP/stderr")'"

# tssx status, inside a temporary registry.
SOCKET=$TMP/server.sock "$WITH_REGISTRY" bash -c '
	set -euo pipefail
	. "$(dirname "$0")/lib.sh"
	"$TSSX_CMD" run python3 -c "
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen()
time.sleep(60)" "$SOCKET" &
	server=$!
	trap "kill $server 2>/dev/null || true; wait; cleanup_tmp" EXIT
	for _ in $(seq 100); do
		out=$("$TSSX_CMD" status)
		[[ $out == *"$SOCKET "* ]] && break
		sleep 0.1
	done
	[[ $(head -1 <<<"$out") =~ ^SOCKET\ +SERVER\ +CLIENT$ ]] || fail "status header: $out"
	grep -Eq "^$SOCKET +yes +no\$" <<<"$out" || fail "status does not show the server: $out"
	# root made the entry and its directories: one line, a count of at
	# least the depth of the socket path
	grep -Eq "^root +[0-9]+\$" <<<"$(sed -En "/^USER +ENTRIES/,/^\$/p" <<<"$out")" ||
		fail "status does not show who holds the entries: $out"
	kill $server
	wait $server 2>/dev/null || true
	for _ in $(seq 50); do
		out=$("$TSSX_CMD" status)
		[[ $out != *"$SOCKET "* ]] && exit 0
		sleep 0.1
	done
	fail "status still shows a dead server: $out"
' "$0"

# tssx run with the registry's daemon stopped (SIGSTOP) does not hang
# (the wrapper of 12593af did, in a statfs of the mount) and says in one
# line that the registry does not answer; so does tssx status, exit 1.
"$WITH_REGISTRY" bash -c '
	set -euo pipefail
	. "$(dirname "$0")/lib.sh"
	. "$(dirname "$0")/../lib/stopped.sh"
	trap "kill -CONT $TSSX_REGISTRYFS_PID; cleanup_tmp" EXIT
	stop_process "$TSSX_REGISTRYFS_PID" || fail "the daemon did not stop"
	rc=0
	timeout -s KILL 20 "$TSSX_CMD" run true 2>"$TMP/stderr" || rc=$?
	((rc == 0)) && [[ $(wc -l <"$TMP/stderr") == 1 ]] && grep -q "does not answer" "$TMP/stderr" ||
		fail "tssx run with the daemon stopped: exit $rc, $(cat "$TMP/stderr")"
	rc=0
	timeout -s KILL 20 "$TSSX_CMD" status >/dev/null 2>"$TMP/stderr" || rc=$?
	((rc == 1)) && grep -q "does not answer" "$TMP/stderr" ||
		fail "tssx status with the daemon stopped: exit $rc, $(cat "$TMP/stderr")"
' "$0"

# A registry whose daemon was killed leaves its mount dead: tssx run says
# that no registry is mounted there, and --start-registry mounts a new one
# over it (the wrapper of 12593af failed in its mkdir of the mount point).
if ((EUID == 0)); then
	dead=$TMP/dead
	mkdir "$dead"
	trap 'fusermount3 -u -z "$dead" 2>/dev/null || umount -l "$dead" 2>/dev/null; cleanup_tmp' EXIT
	"$TSSX_REGISTRYFS" -f "$dead" 2>/dev/null &
	daemon=$!
	for _ in $(seq 200); do
		awk -v m="$dead" '$5 == m { f = 1 } END { exit !f }' /proc/self/mountinfo && break
		sleep 0.025
	done
	kill -KILL "$daemon"
	wait "$daemon" 2>/dev/null || true
	rc=0
	out=$(TSSX_REGISTRY=$dead timeout -s KILL 20 "$TSSX_CMD" run true 2>&1) || rc=$?
	((rc == 0)) && [[ $out == *"no registry mounted at $dead"* ]] ||
		fail "tssx run over a dead registry: exit $rc, $out"
	TSSX_REGISTRY=$dead timeout -s KILL 20 "$TSSX_CMD" run --start-registry true ||
		fail "tssx run --start-registry over a dead registry"
	[[ $(TSSX_REGISTRY=$dead timeout -s KILL 20 "$TSSX_CMD" status 2>&1) == SOCKET* ]] ||
		fail "no live registry after tssx run --start-registry over a dead one"
fi
