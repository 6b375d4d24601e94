#!/usr/bin/env bash
# Rings start small and grow with the traffic (docs/data-path.md, "The
# ring"): a connection whose messages fit the small areas keeps them (no
# "ring grew" line on either end); a stream that does not fit grows the
# ring of its direction, also with bytes still in the small area when it
# grows (700-byte writes: the second one does not fit), and every byte
# arrives in order (tssx-echo compares the echo with the stream it sent
# and both ends report the same checksum).
source "$(dirname "$0")/lib.sh" "$@"

sock=$work/s.sock

# echo_pair BYTES CHUNK: one preloaded tssx-echo client and server moving
# BYTES each way in writes of CHUNK bytes, through the rings.
echo_pair() {
	local bytes=$1 chunk=$2 sum
	start_echo_server yes "$work/server.log" "$sock"
	with_preload yes "${guard[@]}" "$tools/tssx-echo" client "$sock" --bytes "$bytes" --chunk "$chunk" \
		>"$work/client.log" 2>&1 || fail "client ($bytes bytes in $chunk)"
	wait_pid "$server_pid" || fail "server ($bytes bytes in $chunk)"
	check_shm "$work/client.log" "$bytes"
	check_shm "$work/server.log" "$bytes"
	sum=$(sed -nE 's/^client: sent .* checksum ([0-9a-f]+)$/\1/p' "$work/client.log")
	grep -q "server: echoed $bytes bytes checksum $sum" "$work/server.log" || fail "checksums differ"
}

# grew LOG: how many rings this end's writes grew.
grew() {
	grep -c "a ring grew from 1024 to" "$1" || true
}

echo_pair 1000 1000
[[ $(grew "$work/client.log") == 0 && $(grew "$work/server.log") == 0 ]] ||
	fail "a ring grew for a 1000-byte message"

for chunk in 700 65536; do
	echo_pair 3000000 "$chunk"
	[[ $(grew "$work/client.log") == 1 ]] || fail "the client's ring did not grow once ($chunk-byte writes)"
	[[ $(grew "$work/server.log") == 1 ]] || fail "the server's ring did not grow once ($chunk-byte writes)"
done
