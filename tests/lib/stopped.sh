# Sourced by tests that stop a registry's daemon (SIGSTOP) to see what a
# hung daemon does to their callers.
#
# stop_process PID: sends SIGSTOP and returns once every thread of PID is
# stopped (10 s at most; 1 if they were not by then).  kill(2) returns
# before the stop takes effect: each thread stops when it next runs, and
# a thread woken for it may first take a request the caller makes next
# and answer it (a test that then expected no answer failed under load).
stop_process() {
	local pid=$1 i
	kill -STOP "$pid" || return 1
	for ((i = 0; i < 400; i++)); do
		! grep -qv '^[^)]*) [Tt]' /proc/"$pid"/task/*/stat 2>/dev/null && return 0
		sleep 0.025
	done
	return 1
}
