#!/usr/bin/env bash
# The README's first command, after the build (contrib/dev.sh demo calls it
# with the build directory): mount a registry at /run/tssx if that is free,
# else a private temporary one, run a short side-by-side benchmark (raw
# shared memory, plain sockets, TSSX), and unmount whatever it mounted,
# also on Ctrl-C or failure.
set -euo pipefail

BUILD=$(readlink -f "${1:?usage: demo.sh BUILD_DIR}")
REGISTRYFS=$BUILD/registryfs/tssx-registryfs
TSSX=$BUILD/contrib/tssx

MOUNTED= # the mount point this script mounted
DAEMON=  # its daemon, run in the foreground so we own its pid
PRIVATE= # the temporary directory this script created
CREATED= # /run/tssx, when this script created it

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# A live registry at the path, as the tssx command tells one (the mount
# table, then its daemon given a second to answer: a stopped one would
# hold a plain statfs for good).
is_registry() { TSSX_REGISTRY=$1 "$TSSX" status >/dev/null 2>&1; }

cleanup() {
	if [[ -n $MOUNTED ]]; then
		fusermount3 -u "$MOUNTED" 2>/dev/null || umount -l "$MOUNTED" 2>/dev/null || true
	fi
	if [[ -n $DAEMON ]]; then
		kill "$DAEMON" 2>/dev/null || true
		wait "$DAEMON" 2>/dev/null || true
	fi
	if [[ -n $PRIVATE$CREATED ]]; then
		rmdir $PRIVATE $CREATED 2>/dev/null || true
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# /run/tssx is free when we may create it and nothing is mounted on it or
# stored in it.
run_tssx_is_free() {
	((EUID == 0)) || return 1
	if [[ ! -e /run/tssx ]]; then
		mkdir /run/tssx 2>/dev/null || return 1
		CREATED=/run/tssx
	fi
	! mountpoint -q /run/tssx && [[ -z $(ls -A /run/tssx) ]]
}

mount_registry() { # mount point
	"$REGISTRYFS" -f "$1" &
	DAEMON=$!
	MOUNTED=$1
	for _ in $(seq 50); do
		is_registry "$1" && return 0
		kill -0 "$DAEMON" 2>/dev/null || break
		sleep 0.1
	done
	echo "demo: the registry did not come up at $1" >&2
	return 1
}

choose_registry() {
	if is_registry /run/tssx; then
		say "using the registry already mounted at /run/tssx"
		REGISTRY=/run/tssx
	elif [[ ! -x $REGISTRYFS ]]; then
		say "no registry daemon in $BUILD: the TSSX column will be skipped"
		REGISTRY=/run/tssx
	elif run_tssx_is_free; then
		say "mounting a registry at /run/tssx"
		REGISTRY=/run/tssx
		mount_registry "$REGISTRY"
	else
		PRIVATE=$(mktemp -d /tmp/tssx-demo.XXXXXX)
		say "/run/tssx is taken: mounting a private registry at $PRIVATE"
		REGISTRY=$PRIVATE
		mount_registry "$REGISTRY"
	fi
}

choose_registry
say "tssx bench --quick: raw shared memory vs plain Unix sockets vs TSSX"
rc=0
TSSX_REGISTRY=$REGISTRY "$TSSX" bench --quick || rc=$?
exit "$rc"
