#!/usr/bin/env bash
# The project's one entry point on a fresh Debian 12 machine, as root.
#
#   contrib/dev.sh deps    install whatever is missing (nothing when all is there)
#   contrib/dev.sh build   deps, then configure and build into build/
#   contrib/dev.sh test    build, run the whole suite, then the unit tests, the
#                          daemon and the hostile-peer and semantics tests of
#                          the library again built with -fsanitize=address,undefined
#   contrib/dev.sh demo    build, mount a registry, run a short side-by-side
#                          benchmark: raw shared memory, plain sockets, TSSX
#
# TSSX_TIMEOUT_MULTIPLIER=N stretches the tests' hang guards N times, for a
# machine busy with other suites (default 1).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${TSSX_BUILD_DIR:-$ROOT/build}
BUILD_ASAN=${TSSX_BUILD_ASAN_DIR:-$ROOT/build-asan}

# Build and test dependencies, by Debian package name.
PACKAGES=(
	gcc clang pkg-config meson ninja-build
	libfuse3-dev fuse3 libcmocka-dev uthash-dev
	python3 socat redis-server redis-tools procps psmisc util-linux iproute2
	postgresql-15 nginx-light memcached libmemcached-tools curl nodejs
	systemd
	debhelper dpkg-dev fakeroot lintian gnuplot-nox libxml2-utils
)

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

deps() {
	local missing=() pkg
	for pkg in "${PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
	done
	((${#missing[@]} == 0)) && return 0
	if ((EUID != 0)); then
		echo "dev.sh: missing packages: ${missing[*]} (run as root to install them)" >&2
		exit 1
	fi
	say "installing ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	# The redis package starts a system instance; the tests run their own.
	if command -v systemctl >/dev/null && systemctl is-active -q redis-server 2>/dev/null; then
		systemctl disable --now redis-server >/dev/null 2>&1 || true
	fi
}

# Runs a command silently; when it fails, shows what it printed (ninja and
# meson print compiler and configuration errors on stdout).
quietly() {
	local out rc=0
	out=$(mktemp)
	"$@" >"$out" 2>&1 || rc=$?
	((rc == 0)) || cat "$out" >&2
	rm -f "$out"
	return "$rc"
}

configure() { # dir, extra meson options...
	local dir=$1; shift
	if [[ -f $dir/build.ninja ]]; then
		quietly meson configure "$dir" "$@"
	else
		quietly meson setup "$dir" "$ROOT" "$@"
	fi
}

build() {
	deps
	say "building in $BUILD"
	configure "$BUILD" -Dwerror=true
	quietly ninja -C "$BUILD"
}

# Runs meson test and prints its Ok/Fail counts into the totals.
PASSED=0 FAILED=0 SKIPPED=0
run_suite() { # dir, meson test options...
	local dir=$1; shift
	local log rc=0
	log=$(mktemp)
	meson test -C "$dir" --print-errorlogs "$@" >"$log" 2>&1 || rc=$?
	# Quiet on success: only failures and the summary.
	grep -vE '^ *[0-9]+/[0-9]+ .* (OK|SKIP) ' "$log" | sed -n '/^Summary\|FAIL\|ERROR\|TIMEOUT\|^---/,$p' | grep -v '^$' || true
	local ok fail skip
	ok=$(awk '/^Ok:/{print $2}' "$log"); fail=$(awk '/^Fail:/{print $2}' "$log")
	skip=$(awk '/^Skipped:/{print $2}' "$log")
	local timeout unexpected
	timeout=$(awk '/^Timeout:/{print $2}' "$log"); unexpected=$(awk '/^Unexpected Pass:/{print $3}' "$log")
	PASSED=$((PASSED + ${ok:-0})); FAILED=$((FAILED + ${fail:-0} + ${timeout:-0} + ${unexpected:-0}))
	SKIPPED=$((SKIPPED + ${skip:-0}))
	rm -f "$log"
	return "$rc"
}

test_all() {
	build
	local rc=0
	local stretch=${TSSX_TIMEOUT_MULTIPLIER:-1}
	say "test suite"
	run_suite "$BUILD" --timeout-multiplier "$stretch" || rc=1
	say "unit tests, daemon, hostile peers and semantics under AddressSanitizer and UBSan"
	configure "$BUILD_ASAN" -Db_sanitize=address,undefined -Db_lundef=false -Dwerror=true
	quietly ninja -C "$BUILD_ASAN"
	# The tests' timeouts are hang guards for the plain build: the
	# sanitizers make the same work several times slower (hostile.sh took
	# 78 s of its 120 alone at load 14, and timed out beside the other
	# sanitized tests).
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		run_suite "$BUILD_ASAN" --suite unit --suite sanitize --timeout-multiplier $((3 * stretch)) || rc=1
	echo "tests: $PASSED passed, $FAILED failed, $SKIPPED skipped"
	return "$rc"
}

demo() {
	build
	exec "$ROOT/contrib/demo.sh" "$BUILD"
}

case ${1:-} in
deps) deps ;;
build) build ;;
test) test_all ;;
demo) demo ;;
*)
	sed -n '2,13s/^# \{0,1\}//p' "$0"
	exit 2
	;;
esac
