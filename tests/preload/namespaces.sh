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
#   shared memory;
# - the shared directory bind-mounted at another path inside: plain, both
#   ways; a container's socket at a path that names a plain server's
#   socket outside gives that server no server bit;
# - a container with its own registry daemon (and pid namespace).
NAME=namespaces
source "$(dirname "$0")/lib.sh"

shared=$work/shared
mkdir "$shared"
chmod 755 "$work"
chmod 1777 "$shared"

# in_container_at PATH [unshare options...] -- CMD...: CMD preloaded in
# new mount and network namespaces, with the shared directory bind-mounted
# at PATH and the registry at its own path.  The mounts are the
# namespace's: they go with its last process.
# It execs: started in the background (its own shell), its pid ($!) is
# CMD's, which the test and its clean-up then stop; in the foreground it
# runs in a subshell, ( in_container ... ).
in_container_at() {
	local at=$1 opts=()
	shift
	while [[ $1 != -- ]]; do opts+=("$1"); shift; done
	shift
	exec unshare "${opts[@]}" --mount --net --propagation private -- bash -c '
		mount --bind "$1" "$2" && mount --bind "$TSSX_REGISTRY" "$TSSX_REGISTRY" || exit 99
		shift 2
		exec env LD_PRELOAD="$LIB" TSSX_LOG=info "$@"' in-container "$shared" "$at" "$@"
}

# in_container [unshare options...] -- CMD...: the same, at its own path.
in_container() {
	in_container_at "$shared" "$@"
}
export LIB=$lib

# container_server PATH SOCK: a preloaded tssx-echo server in a container
# (in_container_at PATH), listening on SOCK, its pid in server_pid.
container_server() {
	rm -f "$work/server.log"
	in_container_at "$1" -- "$tools/tssx-echo" server "$2" >"$work/server.log" 2>&1 &
	server_pid=$!
	background+=("$server_pid")
	wait_for_line "$work/server.log" "server: listening"
}

# claimed SOCK: whether SOCK's registry file says a TSSX server listens
# there, within 2 s (a claim's check is asynchronous).
claimed() {
	local i
	for ((i = 0; i < 40; i++)); do
		[[ $(cat "$TSSX_REGISTRY$1" 2>/dev/null) == 1 ]] && return 0
		sleep 0.05
	done
	return 1
}

# Server inside, client outside.
container_server "$shared" "$shared/in.sock"
claimed "$shared/in.sock" || fail "the container's server did not claim its socket"
with_preload yes "${guard[@]}" "$tools/tssx-echo" client "$shared/in.sock" --bytes 1M \
	>"$work/client.log" 2>&1 || fail "client outside, server inside"
wait_pid "$server_pid" || fail "server inside"
check_shm "$work/client.log" $((1 << 20))
check_shm "$work/server.log" $((1 << 20))

# Server outside, client inside.
start_echo_server yes "$work/server.log" "$shared/out.sock"
(in_container -- "${guard[@]}" "$tools/tssx-echo" client "$shared/out.sock" --bytes 1M) \
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

# The shared directory bind-mounted at another path inside ($app): each
# side names the socket by its own path, the names do not meet, and the
# connections are plain, byte-exact, both ways.
app=$work/app
mkdir "$app"
start_echo_server yes "$work/server.log" "$shared/host.sock"
(in_container_at "$app" -- "${guard[@]}" "$tools/tssx-echo" client "$app/host.sock" --bytes 1M) \
	>"$work/client.log" 2>&1 || fail "client inside at another path, server outside"
wait_pid "$server_pid" || fail "server outside, client at another path"
check_plain "$work/client.log"

container_server "$app" "$app/inside.sock"
with_preload yes "${guard[@]}" "$tools/tssx-echo" client "$shared/inside.sock" --bytes 1M \
	>"$work/client.log" 2>&1 || fail "client outside, server inside at another path"
wait_pid "$server_pid" || fail "server inside at another path"
check_plain "$work/client.log"

# Where the container's socket path names another socket outside (here a
# plain server's under $app, which the container's bind mount hides), the
# container's claim must not give that plain server a server bit: its
# TSSX clients would send their hello into its stream.
start_echo_server no "$work/plain.log" "$app/two.sock"
plain_pid=$server_pid
container_server "$app" "$app/two.sock"
! claimed "$app/two.sock" || fail "the container's claim gave the plain server outside a server bit"
with_preload yes "${guard[@]}" "$tools/tssx-echo" client "$app/two.sock" --bytes 1M \
	>"$work/client.log" 2>&1 || fail "client of the plain server the container's path hides"
wait_pid "$plain_pid" || fail "the plain server outside"
check_plain "$work/client.log"
kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null || true

# A container with a registry of its own (its own daemon at its own
# TSSX_REGISTRY, here over the host's, unmounted in its mount namespace):
# its server and client use shared memory.  Its own pid namespace with
# its own /proc: when its first process ends, every other one is killed,
# the daemon too, and its mounts go with the namespace.
unshare --pid --fork --kill-child --mount-proc --mount --net --propagation private -- bash -c '
	umount -l "$TSSX_REGISTRY" || exit 99
	"$1" -f "$TSSX_REGISTRY" 2>"$2/own-daemon.log" &
	for ((i = 0; i < 400; i++)); do
		python3 -c "import os, sys; os.getxattr(sys.argv[1], \"user.tssx.registry\")" \
			"$TSSX_REGISTRY" 2>/dev/null && break
		sleep 0.025
	done
	env LD_PRELOAD="$LIB" TSSX_LOG=info "$3" server "$2/own.sock" >"$2/own-server.log" 2>&1 &
	for ((i = 0; i < 400; i++)); do
		grep -q "server: listening" "$2/own-server.log" 2>/dev/null && break
		sleep 0.025
	done
	for ((i = 0; i < 40; i++)); do
		[[ $(cat "$TSSX_REGISTRY$2/own.sock" 2>/dev/null) == 1 ]] && break
		sleep 0.05
	done
	env LD_PRELOAD="$LIB" TSSX_LOG=info "$3" client "$2/own.sock" --bytes 1M >"$2/client.log" 2>&1' \
	own-registry "$(realpath -- "$registryfs")" "$work" "$tools/tssx-echo" ||
	fail "a container with its own registry"
check_shm "$work/client.log" $((1 << 20))
grep -q "$TSSX_REGISTRY" /proc/self/mountinfo || fail "the host's registry went"

# An abstract name in a network namespace of its own.  The server's log
# is its own (an earlier server's "listening" would let the client try
# too early), and a client that fails takes the server down with it.
unshare --net -- bash -c '
	env LD_PRELOAD="$LIB" TSSX_LOG=info "$1" server @tssx-netns-test >"$2/netns-server.log" 2>&1 &
	server=$!
	for ((i = 0; i < 400; i++)); do
		grep -q "server: listening" "$2/netns-server.log" 2>/dev/null && break
		sleep 0.025
	done
	if ! env LD_PRELOAD="$LIB" TSSX_LOG=info "$1" client @tssx-netns-test --bytes 1M >"$2/client.log" 2>&1; then
		kill -KILL "$server"
		wait "$server"
		exit 1
	fi
	wait "$server"' netns "$tools/tssx-echo" "$work" || fail "abstract name in its own network namespace"
check_shm "$work/client.log" $((1 << 20))
exit 0
