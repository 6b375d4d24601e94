#!/usr/bin/env bash
# Without a registry mounted (a daemon never started, or stopped), a
# preloaded process learns so from the mount table itself and starts no
# helper thread (docs/registry.md, "Failure model"): a client that
# connects ten times a second stays single-threaded and plain, and a
# server's listen() does not wait out the registry's bound for it.  Once a
# daemon mounts the registry, the same running client notices the mount
# table's change and its next connections use shared memory.
NAME=no_registry
# In a mount namespace of the test's own, without the registries that
# other tests running beside it mounted.
PRIVATE_MOUNTS=1
NO_REGISTRY=1
source "$(dirname "$0")/lib.sh"
awk '{ for (i = 7; $i != "-"; i++); if ($(i + 1) == "fuse.tssx-registryfs") print $5 }' /proc/self/mountinfo |
	while read -r point; do umount -l "$point"; done

own_registry

start_echo_server yes "$work/server.log" "$work/s.sock" --clients 64
# Short connections would soon go plain whatever the registry says.
spawn yes "$work/loop.log" env TSSX_SHORT_CALLS=0 "${python[@]}" "$(dirname "$0")/registry_peer.py" loop \
	"$work/s.sock" "$work/stop"
loop_pid=$spawned
wait_for_line "$work/loop.log" "round 5 ok"
grep -q "registry: none in the mount table ($mnt)" "$work/loop.log" ||
	fail "the client did not find the mount table without a registry"
threads=$(ls "/proc/$loop_pid/task" | wc -l)
((threads == 1)) || fail "the client runs $threads threads without a registry"
! grep -q "shared memory" "$work/loop.log" || fail "a connection used shared memory without a registry"
! grep -q "did not answer" "$work/server.log" || fail "the server's listen() waited for a registry that is not there"

offset=$(stat -c %s "$work/loop.log")
start_daemon
since() { tail -c +$((offset + 1)) "$work/loop.log"; }
for ((i = 0; i < 200; i++)); do
	since | grep -q "shared memory, client" && break
	kill -0 "$loop_pid" 2>/dev/null || fail "the looping client"
	sleep 0.025
done
since | grep -q "shared memory, client" || fail "the running client did not find the registry mounted after it"
touch "$work/stop"
wait_pid "$loop_pid" || fail "the looping client"
exit 0
