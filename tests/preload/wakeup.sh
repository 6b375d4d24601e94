#!/usr/bin/env bash
# A multi-threaded event loop never loses a wake-up (tssx-probe wakeup): one
# thread in edge-triggered epoll_wait, others sending and receiving
# non-blocking on the same connection until EAGAIN, in messages of 1, 2 and
# 4 times the ring size, run many times (the race needs many chances; it
# is most likely when the epoll thread arms and sleeps at once, without
# spinning).  Checked plain first (the check itself), then over TSSX with a
# small ring, without and with the spin, again with a CPU-bound process per
# CPU (a yield that stalls behind one ends the spin, so the epoll thread
# sleeps while the hello may still be pending: another thread that takes
# it arms the flags too late for the bytes already written, and the epoll
# thread must re-check; that stalled in 19 of 150 runs before it did), and
# once with the default ring.
source "$(dirname "$0")/lib.sh" "$@"

"${guard[@]}" "$tools/tssx-probe" wakeup "$work/p.sock" >"$work/plain.log" 2>&1 ||
	fail "fails on plain sockets"
for ((run = 1; run <= 20; run++)); do
	TSSX_SPIN_NS=$((run % 2 ? 0 : 20000)) TSSX_YIELD_NS=$((run % 2 ? 0 : 200000)) TSSX_RING_SIZE=64K with_preload yes "${guard[@]}" "$tools/tssx-probe" wakeup "$work/p.sock" \
		>"$work/wakeup.log" 2>&1 || fail "run $run fails over TSSX"
	grep -q "shared memory, client" "$work/wakeup.log" || fail "run $run: not over shared memory"
done
for ((cpu = 0; cpu < $(nproc); cpu++)); do
	sh -c 'while :; do :; done' &
	background+=($!)
done
for ((run = 1; run <= 20; run++)); do
	TSSX_RING_SIZE=64K with_preload yes "${guard[@]}" "$tools/tssx-probe" wakeup "$work/p.sock" \
		>"$work/wakeup.log" 2>&1 || fail "run $run fails over TSSX beside busy processes"
done
for pid in "${background[@]}"; do
	kill -KILL "$pid"
	wait "$pid" 2>/dev/null || true
done
background=()
with_preload yes "${guard[@]}" "$tools/tssx-probe" wakeup "$work/p.sock" >"$work/wakeup.log" 2>&1 ||
	fail "fails over TSSX with the default ring"
