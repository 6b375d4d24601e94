#!/usr/bin/env bash
# package.sh SOURCE_DIR TOOLS_DIR WITH_REGISTRY
#
# The Debian package end to end, on this machine: builds it from a copy of
# the tree with dpkg-buildpackage, checks it with lintian (no errors),
# installs it with apt, runs a preloaded echo pair through the INSTALLED
# tssx, libtssx.so and tssx-registryfs (and the installed tssx connections
# and tssx bench --plot), then purges it and checks that
# nothing is left: no file of the package, no unit, no enablement link, no
# mount, no daemon.  Under systemd the unit the package started serves
# /run/tssx; without systemd as PID 1 the installed daemon is started by
# hand on a temporary mount point (tests/lib/with-registry) and the unit
# file is checked with systemd-analyze verify.
#
# Skips when not root.  Installing and purging a system package is
# serialized across concurrent runs by a lock, and the test refuses to
# touch a tssx package that was installed otherwise (skip, with why); one
# that a run of this test left behind when it was killed (its marker file
# says so) is purged first.
set -euo pipefail

src=$(readlink -f "$1") tools=$(readlink -f "$2") with_registry=$(readlink -f "$3")
PACKAGE=tssx
UNIT=tssx-registryfs.service
WANTS=/etc/systemd/system/multi-user.target.wants/$UNIT
LOCK=/run/lock/tssx-package-test.lock
MARKER=/run/lock/tssx-package-test.installed # this test installed it
APT=(apt-get -qq -y -o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0)

if ((EUID != 0)); then
	echo "SKIP: installing a package needs root"
	exit 77
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/tssx-package.XXXXXX")
installed=false
fail() {
	echo "package: FAIL: $*" >&2
	local log
	for log in "$work"/*.log; do
		[[ -e $log ]] && { echo "--- $log" >&2; tail -n 20 "$log" >&2; }
	done
	exit 1
}
purge() {
	"${APT[@]}" purge "$PACKAGE" >"$work/purge.log" 2>&1 && rm -f "$MARKER"
}
cleanup() {
	if $installed; then
		purge || echo "package: could not purge $PACKAGE" >&2
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

exec 9>"$LOCK"
flock -w 600 9 || fail "another package test holds $LOCK"

if dpkg-query -W -f='${Status}' "$PACKAGE" 2>/dev/null | grep -q 'installed'; then
	if [[ ! -e $MARKER ]]; then
		echo "SKIP: a $PACKAGE package is installed on this machine; the test would replace and purge it"
		exit 77
	fi
	echo "package: purging the $PACKAGE package an interrupted run of this test left installed"
	purge || fail "could not purge the $PACKAGE package an earlier run left"
fi
for tool in dpkg-buildpackage dh lintian; do
	command -v "$tool" >/dev/null || fail "$tool is missing (contrib/dev.sh deps installs it)"
done

# A copy of the tree: dpkg-buildpackage writes into the source directory
# and puts the package next to it.  Tracked and new files, not build trees.
mkdir "$work/src"
if git -C "$src" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	git -C "$src" ls-files -z --cached --others --exclude-standard |
		(cd "$src" && xargs -0 tar --ignore-failed-read -cf - 2>/dev/null) | tar -C "$work/src" -xf -
else
	tar -C "$src" --exclude=./build --exclude='./build-*' --exclude='./obj-*' -cf - . |
		tar -C "$work/src" -xf -
fi

(cd "$work/src" && env -u MALLOC_PERTURB_ dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1 ||
	fail "dpkg-buildpackage failed"
deb=$(echo "$work"/${PACKAGE}_*.deb)
[[ -f $deb ]] || fail "dpkg-buildpackage made no $PACKAGE package"

lintian "$work"/${PACKAGE}_*.changes >"$work/lintian.log" 2>&1 || true
! grep -q '^E: ' "$work/lintian.log" || fail "lintian reports errors: $(grep '^E: ' "$work/lintian.log")"

# What the package holds, to check it is all gone after the purge.
dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { sub(/^\./, "", $6); print $6 }' >"$work/files"
for want in /usr/bin/tssx /usr/sbin/tssx-registryfs /lib/systemd/system/$UNIT \
	/usr/share/man/man1/tssx.1.gz /usr/share/man/man8/tssx-registryfs.8.gz \
	/usr/libexec/tssx/tssx-connections /usr/share/tssx/tssx-plot.py; do
	grep -qx "$want" "$work/files" || fail "the package has no $want"
done
lib=$(grep '/libtssx\.so$' "$work/files") || fail "the package has no libtssx.so"

installed=true
touch "$MARKER"
"${APT[@]}" install --no-install-recommends "$deb" >"$work/install.log" 2>&1 || fail "apt-get install failed"
[[ -x /usr/bin/tssx && -x /usr/sbin/tssx-registryfs && -r $lib && -r /lib/systemd/system/$UNIT ]] ||
	fail "installed files missing"
[[ $(/usr/bin/tssx --version) == "tssx "* ]] || fail "the installed tssx does not run"
/usr/bin/tssx --help | grep -q "$lib" || fail "the installed tssx does not preload $lib"
[[ -L $WANTS ]] || fail "installing did not enable $UNIT"
maps=$(env -u TSSX_LIBRARY /usr/bin/tssx run grep -F libtssx.so /proc/self/maps 2>/dev/null) || true
[[ $maps == *" $lib"* ]] || fail "tssx run does not preload the installed $lib"
/usr/bin/tssx connections >"$work/connections.log" 2>&1 || fail "the installed tssx connections failed"
/usr/bin/tssx bench --plot "$work/chart.svg" -t pingpong --duration 0.02 --warmup 0.005 --rounds 1 \
	>"$work/plot.log" 2>&1 || fail "the installed tssx bench --plot failed"
xmllint --noout "$work/chart.svg" || fail "the installed tssx bench --plot drew no valid SVG"

# The pair, through the installed command, library and daemon.
echo_pair() { # registry
	local sock=$work/echo.sock server rc=0
	env -u TSSX_LIBRARY TSSX_REGISTRY="$1" TSSX_LOG=info \
		/usr/bin/tssx run "$tools/tssx-echo" server "$sock" --clients 1 >"$work/server.log" 2>&1 &
	server=$!
	for _ in $(seq 400); do
		grep -q 'server: listening' "$work/server.log" && break
		sleep 0.025
	done
	env -u TSSX_LIBRARY TSSX_REGISTRY="$1" TSSX_LOG=info timeout -s KILL 60 \
		/usr/bin/tssx run "$tools/tssx-echo" client "$sock" --bytes 4M >"$work/client.log" 2>&1 || rc=$?
	wait "$server" || rc=$?
	((rc == 0)) || fail "the echo pair failed ($rc)"
	grep -q 'client: sent 4194304 received 4194304' "$work/client.log" || fail "the client's echo is incomplete"
	grep -q 'ring sent=4194304 received=4194304' "$work/client.log" ||
		fail "the client's bytes did not go through shared memory"
	grep -q 'ring sent=4194304 received=4194304' "$work/server.log" ||
		fail "the server's bytes did not go through shared memory"
}
export -f echo_pair fail
export work tools lib

if [[ -d /run/systemd/system ]]; then
	systemctl is-active -q "$UNIT" || fail "installing did not start $UNIT"
	mountpoint -q /run/tssx || fail "$UNIT does not mount /run/tssx"
	echo_pair /run/tssx
else
	# No systemd to start the unit: the installed daemon by hand.
	if command -v systemd-analyze >/dev/null; then
		systemd-analyze verify "/lib/systemd/system/$UNIT" >"$work/verify.log" 2>&1 ||
			fail "systemd-analyze verify $UNIT: $(cat "$work/verify.log")"
	fi
	"$with_registry" --registryfs /usr/sbin/tssx-registryfs bash -c 'echo_pair "$TSSX_REGISTRY"' ||
		fail "the pair over the installed daemon failed"
fi

purge || fail "apt-get purge failed"
installed=false
dpkg-query -W -f='${Status}' "$PACKAGE" 2>/dev/null | grep -q 'installed' && fail "$PACKAGE is still installed"
while read -r file; do
	[[ ! -e $file && ! -L $file ]] || fail "$file is left after the purge"
done <"$work/files"
[[ ! -e $WANTS && ! -L $WANTS ]] || fail "$WANTS is left after the purge"
[[ -z $(find /var/lib/systemd/deb-systemd-helper-enabled -name "$UNIT*" 2>/dev/null) ]] ||
	fail "deb-systemd-helper still remembers $UNIT"
if [[ -d /run/systemd/system ]]; then
	! mountpoint -q /run/tssx || fail "/run/tssx is still mounted after the purge"
fi
! pgrep -x -f "/usr/sbin/tssx-registryfs.*" >/dev/null || fail "an installed tssx-registryfs still runs"
exit 0
