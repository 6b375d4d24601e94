#!/usr/bin/env bash
# Socket semantics over shared memory, each checked by tssx-probe against
# what a plain Unix stream socket does: the same probe runs plain first
# (checking the check), then preloaded, where both ends must have used
# shared memory.
NAME=semantics
source "$(dirname "$0")/lib.sh"

# under-WAITER-ACTION: a call blocked in one thread (a read, a write for
# room, poll, select, epoll_wait) while another closes,
# replaces or shuts down its fd; closerace: poll, FIONREAD and shutdown
# racing a close; foreignowner: the client holds the server's waiters word;
# forkread, forklate: the server and a forked child read one connection
# (forklate's client is a TSSX client of its own, not preloaded, whose
# hello comes late: only the server's line says shared memory); badfd:
# select and poll with a closed fd beside a connection; shutwr: writers
# asleep for room in two threads while a third shuts the connection down;
# shutsibling: a forked child's SHUT_WR stops the parent's writes too;
# epolladd, epolladdlate, epolladdmore, epollmod, epollwatched: a thread
# asleep in epoll_wait on a set whose other thread adds the connection
# (ready already, ready after, beside another connection), re-arms it
# (EPOLLONESHOT), connects a socket added before (the client's set) or
# adds it to an epoll set nested in its own (epollnested) wakes at once
# with the application's data (the library before 2026-12-04 left it
# asleep);
# forkcall: a child forked while a thread is blocked on the connection
# closes it and keeps nothing of it; forkpair: a child holds its
# connection's lock while the server closes its copy and serves the next
# connection; stalewaker: 64 KiB messages published as the server's
# read arms its flag, from a client whose checks found no sleeper 300
# times in a row, on a CPU it left and came back to around its first
# connection (the lost wake-up of the library before 2026-12-03, which
# hangs the probe); execwrite, execread: the client and the image its
# child exec'd write blocks of 32 KiB at once (each read back whole) or
# drain the connection at once (each byte read once), execwrite2/execread2
# the same with an image exec'd twice, spawnwrite/spawnread with one
# started by posix_spawn, each with a ring that holds all the writers'
# blocks or the readers' run, so that they meet in the ring throughout
# instead of taking turns waiting (with the 1 MiB ring the library of
# before passed now and then, with it the writers failed 5 runs of 5, the
# readers 4-5 of 5); execlie: hand-over records that lie
# about the side locks are refused loudly, stale holders are freed.
# peer-WAITER-ACTION: a read (a write for room) blocked while the peer
# closes, shuts down, is killed (kill -9), or is killed while a fork still
# holds the connection; signal-WAITER-HOW: a signal's handler runs under
# it, without SA_RESTART, with it, with it and a socket timeout; forksleep:
# a child forked after its parent slept sleeps on the connection and wakes
# at the peer's death; bellhold: another thread's shutdown wakes a write
# asleep for room while the peer writes the bell word back (docs/wait.md,
# "Wake-ups of this process"); closeall: a close-all loop under reads asleep leaves
# the watcher its epoll fd and the spin rule its /proc/loadavg (a dup2 onto
# that number moves it), and the peer's death still wakes them;
# sleepcount: a read blocked for half a second sleeps once, and no thread
# of its process is switched in or out while it sleeps (context switches
# from /proc, no timing: a wake-up on a timer fails it); bellpause: rounds
# of a read asleep, then a setns() and a dup2() onto the watcher's epoll
# fd, which stop the watcher and start it again (against the sanitized
# library, a cancelled watcher's exit was reported), and the peer's close
# still wakes the last read.  These
# sleep on the futex bell (docs/wait.md) with TSSX_SHORT_CALLS=0, and the
# statistics line must say so; they run with the default too, where a
# connection's sleeps take the socket until it made 16 calls.
# signal-WAITER-intr and -timeo end at the first handler: when it runs
# before the call sleeps (the call slow to get there under load, e.g. a
# write copying its first 1 MiB under ASan) the call ends without
# sleeping, as it should; they run with the default only.  shortsleep:
# the read of a connection of one call starts no thread (the futex bell's
# watcher) and sleeps on the socket.  signal-WAITER-spin: a handler that
# runs while the call spins or yields ends it as one in its sleep does,
# with spins of up to a second where the machine allows them.
# signal-select-early: a handler that runs in a system call select()
# makes before it waits (its allocation, which the probe signals from)
# ends it too; the probe's allocation is its own but under AddressSanitizer.
under=()
for waiter in read write poll select epoll; do
	for action in close dup2 shutrd shutrdwr; do
		under+=("under-$waiter-$action")
	done
done
bell=(forksleep bellhold closeall sleepcount bellpause)
signals=()
for waiter in read write; do
	for action in close shut kill killfork; do
		bell+=("peer-$waiter-$action")
	done
	bell+=("signal-$waiter-restart")
	signals+=("signal-$waiter-intr" "signal-$waiter-timeo")
done
spinning=()
for waiter in read write poll select epoll; do
	spinning+=("signal-$waiter-spin")
done
spinning+=(signal-select-early)
for probe in peek timeout eintr shutdown shutrd epolldup epolladd epolladdlate epolladdmore epollmod epollwatched epollnested epipe fork forkread forklate threads nonblock addresses cmsg \
	sendfile closing vectors blocked peekoff efault partialfault fdfault cmsgpeek whole badfd "${under[@]}" closerace \
	foreignowner shutwr shutsibling forkcall forkpair stalewaker execwrite execwrite2 execread execread2 spawnwrite \
	spawnread execlie handlers shortsleep "${bell[@]}" "${bell[@]/%/ futex}" "${signals[@]}" "${spinning[@]}"; do
	options=()
	if [[ $probe == *" futex" ]]; then
		probe=${probe% futex}
		options=(TSSX_SHORT_CALLS=0)
	fi
	"${guard[@]}" "$tools/tssx-probe" "$probe" "$work/$probe.sock" >"$work/plain.log" 2>&1 ||
		fail "$probe: fails on plain sockets"
	[[ $probe != exec[wr]* && $probe != spawn* ]] || options=(TSSX_RING_SIZE=64M TSSX_RING_MAX=64M)
	[[ $probe != *-spin && $probe != *-early ]] || options=(TSSX_SPIN_NS=1000000000)
	[[ $probe != stalewaker ]] || options=(TSSX_SHORT_CALLS=1000000 TSSX_SPIN_NS=0)
	with_preload yes env "${options[@]}" "${guard[@]}" "$tools/tssx-probe" "$probe" "$work/$probe.sock" \
		>"$work/$probe.log" 2>&1 || fail "$probe ${options[*]}: fails over TSSX"
	{ [[ $probe == forklate ]] || grep -q "shared memory, client" "$work/$probe.log"; } &&
		grep -q "shared memory, server" "$work/$probe.log" || fail "$probe: not over shared memory"
	if [[ $probe == *-early && -z $sanitized ]]; then
		grep -q "in the call's own allocation in [1-9]" "$work/$probe.log" ||
			fail "$probe: the call's allocation was never signalled"
	fi
	if [[ ${options[*]} == TSSX_SHORT_CALLS=0 ]]; then
		grep -q "data path sleeps: [1-9][0-9]* on the futex bell" "$work/$probe.log" ||
			fail "$probe: no sleep on the futex bell"
	elif [[ $probe == shortsleep ]]; then
		! grep -q "data path sleeps: [1-9][0-9]* on the futex bell" "$work/$probe.log" ||
			fail "$probe: a short connection slept on the futex bell"
	fi
	[[ $probe != shortsleep ]] || grep -q "data path sleeps: 0 on the futex bell, [1-9][0-9]* on the socket" \
		"$work/$probe.log" || fail "$probe: the read did not sleep on the socket"
	[[ $probe != stalewaker ]] || grep -q "data path sleeps: 0 on the futex bell, [1-9][0-9]* on the socket" \
		"$work/$probe.log" || fail "$probe: no read slept on the socket"
	rm -f "$work/$probe.log"
done
