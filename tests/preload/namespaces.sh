#!/usr/bin/env bash
# TSSX across namespaces (docs/registry.md, Containers), with unshare:
# - a socket in a directory bind-mounted into a "container" (its own
#   mount and network namespaces, the registry bind-mounted in at the same
#   path), used from both sides: server inside and client outside, and
#   the reverse; both use shared memory;
# - the same from a user namespace made by nobody (unshare -r): its claim
#   counts as nobody's, who owns the socket file;
# - an abstract name in a network namespace of its own, server and client
#   in it: the daemon checks the claim in the writer's namespace, both use
#   shared memory.
NAME=namespaces
source "$(dirname "$0")/lib.sh"

shared=$work/shared
mkdir "$shared"
chmod 755 "$work"
chmod 1777 "$shared"

# in_container [unshare options...] -- CMD...: CMD preloaded in new mount
# and network namespaces, with the shared directory and the registry
# bind-mounted at their own paths.
in_container() {
	local opts=()
	while [[ $1 != -- ]]; do opts+=("$1"); shift; done
	shift
	unshare "${opts[@]}" --mount --net --propagation private -- bash -c '
		mount --bind "$1" "$1" && mount --bind "$TSSX_REGISTRY" "$TSSX_REGISTRY" || exit 99
		shift
		exec env LD_PRELOAD="$LIB" TSSX_LOG=info "$@"' in-container "$shared" "$@"
}
export LIB=$lib

# Server inside, client outside.
rm -f "$work/server.log"
in_container -- "$tools/tssx-echo" server "$shared/in.sock" >"$work/server.log" 2>&1 &
server_pid=$!
background+=("$server_pid")
wait_for_line "$work/server.log" "server: listening"
for ((i = 0; i < 40; i++)); do # the claim's invalidation is asynchronous
	[[ $(cat "$TSSX_REGISTRY$shared/in.sock" 2>/dev/null) == 1 ]] && break
	sleep 0.05
done
with_preload yes "${guard[@]}" "$tools/tssx-echo" client "$shared/in.sock" --bytes 1M \
	>"$work/client.log" 2>&1 || fail "client outside, server inside"
wait_pid "$server_pid" || fail "server inside"
check_shm "$work/client.log" $((1 << 20))
check_shm "$work/server.log" $((1 << 20))

# Server outside, client inside.
start_echo_server yes "$work/server.log" "$shared/out.sock"
in_container -- "${guard[@]}" "$tools/tssx-echo" client "$shared/out.sock" --bytes 1M \
	>"$work/client.log" 2>&1 || fail "client inside, server outside"
wait_pid "$server_pid" || fail "server outside"
check_shm "$work/client.log" $((1 << 20))

# A user namespace made by nobody, as its root: the socket is nobody's.
rm -f "$work/server.log"
setpriv --reuid=nobody --regid=nogroup --clear-groups \
	unshare --user --map-root-user --mount --net --propagation private -- bash -c '
		exec env LD_PRELOAD="$LIB" TSSX_LOG=info "$@"' userns \
	"$tools/tssx-echo" server "$shared/userns.sock" >"$work/server.log" 2>&1 &
server_pid=$!
background+=("$server_pid")
wait_for_line "$work/server.log" "server: listening"
[[ $(stat -c %U "$shared/userns.sock") == nobody ]] || fail "the socket is not nobody's"
with_preload yes "${guard[@]}" "$tools/tssx-echo" client "$shared/userns.sock" --bytes 1M \
	>"$work/client.log" 2>&1 || fail "client outside, server in nobody's user namespace"
wait_pid "$server_pid" || fail "server in nobody's user namespace"
check_shm "$work/client.log" $((1 << 20))

# An abstract name in a network namespace of its own.
unshare --net -- bash -c '
	env LD_PRELOAD="$LIB" TSSX_LOG=info "$1" server @tssx-netns-test >"$2/server.log" 2>&1 &
	for ((i = 0; i < 400; i++)); do
		grep -q "server: listening" "$2/server.log" && break
		sleep 0.025
	done
	env LD_PRELOAD="$LIB" TSSX_LOG=info "$1" client @tssx-netns-test --bytes 1M >"$2/client.log" 2>&1 &&
		wait' netns "$tools/tssx-echo" "$work" || fail "abstract name in its own network namespace"
check_shm "$work/client.log" $((1 << 20))
exit 0
