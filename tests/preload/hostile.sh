#!/usr/bin/env bash
# A hostile TSSX client (tssx-forge) breaks the protocol in each way it
# can: the preloaded server logs why and drops that connection, the forger
# sees EOF (no hang), and the server goes on to serve a good client.
NAME=hostile
source "$(dirname "$0")/lib.sh"

sock=$work/s.sock
declare -A reason=(
	[magic]="bad magic"
	[version]="unsupported protocol version"
	[nofd]="hello without a segment"
	[unsealed]="segment not sealed"
	[short]="segment does not match the hello"
	[indices]="ring counters corrupted"
	[bypass]="stream bytes on the real socket"
)

for how in magic version nofd unsealed short indices bypass; do
	start_echo_server yes "$work/server.log" "$sock" --clients 2
	"${guard[@]}" "$tools/tssx-forge" "$how" "$sock" >"$work/forge.log" 2>&1 ||
		fail "$how: the forger was not dropped"
	with_preload yes "${guard[@]}" "$tools/tssx-echo" client "$sock" --bytes 1M >"$work/client.log" 2>&1 ||
		fail "$how: no good connection after the forged one"
	wait_pid "$server_pid" && fail "$how: the server did not report the failed connection"
	grep -q "TSSX connection failed: ${reason[$how]}" "$work/server.log" || fail "$how: no clear log line"
	grep -q "echoed 1048576 bytes" "$work/server.log" || fail "$how: good client not served"
	check_shm "$work/client.log" 1048576
done
