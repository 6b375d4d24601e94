#!/usr/bin/env bash
# tssx enable / disable write and remove a systemd drop-in that preloads
# the library (in a temporary TSSX_SYSTEMD_DIR, so systemd is not reloaded
# and no real unit changes); tssx status lists the enabled services; bad
# unit names are usage errors.  '. tssx on' and '. tssx off' change
# LD_PRELOAD of the sourcing shell and nothing else of it; eval "$(tssx on)"
# does the same.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

export TSSX_SYSTEMD_DIR=$TMP/systemd TSSX_LIBRARY=$TMP/lib/libtssx.so TSSX_REGISTRY=$TMP/no-registry
mkdir -p "$TMP/lib" && : >"$TSSX_LIBRARY"

out=$("$TSSX_CMD" enable nginx postgresql@15-main.service)
[[ $out == *"nginx.service: runs with TSSX"* && $out == *"postgresql@15-main.service: runs with TSSX"* ]] ||
	fail "enable says: $out"
for unit in nginx.service postgresql@15-main.service; do
	conf=$TSSX_SYSTEMD_DIR/$unit.d/tssx.conf
	[[ -f $conf ]] || fail "enable wrote no $conf"
	grep -qx '\[Service\]' "$conf" && grep -qx "Environment=\"LD_PRELOAD=$TSSX_LIBRARY\"" "$conf" ||
		fail "$conf does not preload $TSSX_LIBRARY: $(cat "$conf")"
	grep -qx 'After=tssx-registryfs.service' "$conf" && grep -qx 'Wants=tssx-registryfs.service' "$conf" ||
		fail "$conf does not order the service after the registry"
done
"$TSSX_CMD" enable nginx >/dev/null || fail "enabling twice fails"
[[ $(ls "$TSSX_SYSTEMD_DIR/nginx.service.d") == tssx.conf ]] || fail "enabling twice left more than tssx.conf"
if command -v systemd-analyze >/dev/null; then
	# The drop-in as systemd reads it, on a unit of its own.
	printf '[Service]\nExecStart=/bin/true\n' >"$TSSX_SYSTEMD_DIR/tssx-test.service"
	"$TSSX_CMD" enable tssx-test >/dev/null
	SYSTEMD_UNIT_PATH=$TSSX_SYSTEMD_DIR: systemd-analyze verify "$TSSX_SYSTEMD_DIR/tssx-test.service" \
		>"$TMP/verify" 2>&1 || fail "systemd-analyze verify: $(cat "$TMP/verify")"
	"$TSSX_CMD" disable tssx-test >/dev/null
	rm "$TSSX_SYSTEMD_DIR/tssx-test.service"
fi

# status lists them, also without a registry (and then exits 1).
rc=0; out=$("$TSSX_CMD" status 2>/dev/null) || rc=$?
((rc == 1)) || fail "status without a registry exits $rc"
grep -Eq "^nginx\.service +$TSSX_SYSTEMD_DIR/nginx\.service\.d/tssx\.conf$" <<<"$out" &&
	grep -Eq '^postgresql@15-main\.service ' <<<"$out" || fail "status does not list the services: $out"

# disable removes the drop-in and its directory, and leaves other drop-ins.
echo '[Service]' >"$TSSX_SYSTEMD_DIR/postgresql@15-main.service.d/other.conf"
out=$("$TSSX_CMD" disable nginx.service postgresql@15-main redis)
[[ $out == *"redis.service: not enabled"* ]] || fail "disable of a unit without TSSX says: $out"
[[ ! -e $TSSX_SYSTEMD_DIR/nginx.service.d ]] || fail "disable left $TSSX_SYSTEMD_DIR/nginx.service.d"
[[ $(ls "$TSSX_SYSTEMD_DIR/postgresql@15-main.service.d") == other.conf ]] ||
	fail "disable removed another drop-in or left its own"
out=$("$TSSX_CMD" status 2>/dev/null) || true
[[ $out == *"(no service runs with TSSX"* ]] || fail "status after disable: $out"

for bad in '' '../etc/passwd' 'a b' 'nginx.socket'; do
	rc=0; "$TSSX_CMD" enable "$bad" >/dev/null 2>&1 || rc=$?
	((rc == 2)) || fail "enable '$bad' exits $rc, not 2"
done
rc=0; "$TSSX_CMD" enable >/dev/null 2>&1 || rc=$?
((rc == 2)) || fail "enable without a unit exits $rc, not 2"
[[ $(ls "$TSSX_SYSTEMD_DIR") == postgresql@15-main.service.d ]] || fail "a refused enable wrote something"

# . tssx on / off, in bash (with the caller's -u kept and no -e added),
# and eval "$(tssx on)".
out=$(LD_PRELOAD=libm.so.6 bash -uc '
	. "$TSSX_CMD" on 2>/dev/null; echo "1:$LD_PRELOAD:$-"
	. "$TSSX_CMD" on 2>/dev/null; echo "2:$LD_PRELOAD"
	. "$TSSX_CMD" off; echo "3:$LD_PRELOAD"
	env -u LD_PRELOAD bash -c ". \"\$TSSX_CMD\" on 2>/dev/null; . \"\$TSSX_CMD\" off; echo \"4:\${LD_PRELOAD-unset}\""
	eval "$("$TSSX_CMD" on 2>/dev/null)"; echo "5:$LD_PRELOAD"
	rc=0; . "$TSSX_CMD" status 2>/dev/null || rc=$?; echo "6:$rc"
	set | grep -c "^_tssx" || true')
expected="1:$TSSX_LIBRARY:libm.so.6:hBc
2:$TSSX_LIBRARY:libm.so.6
3:libm.so.6
4:unset
5:$TSSX_LIBRARY:libm.so.6
6:2
0"
expected=${expected/hBc/$(bash -uc 'echo $-')}
[[ $out == "$expected" ]] || fail "on/off: got
$out
expected
$expected"
out=$(LD_PRELOAD="" "$TSSX_CMD" on 2>/dev/null)
[[ $out == "export LD_PRELOAD='$TSSX_LIBRARY'" ]] || fail "tssx on prints: $out"
rc=0; "$TSSX_CMD" on extra >/dev/null 2>&1 || rc=$?
((rc == 2)) || fail "on with an argument exits $rc, not 2"
