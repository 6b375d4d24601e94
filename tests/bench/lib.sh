# Shared by the bench tests: failure reporting and a private temporary
# directory removed on exit.
fail() {
	echo "FAIL: $*" >&2
	exit 1
}

TMP=$(mktemp -d /tmp/tssx-test-bench.XXXXXX)
cleanup_tmp() { rm -rf "$TMP"; }
trap cleanup_tmp EXIT

# Whether the TSSX parts can run: the library is built and a temporary
# registry can be mounted.
have_tssx() {
	[[ -n ${TSSX_TEST_LIBRARY:-} && -r $TSSX_TEST_LIBRARY && -x ${WITH_REGISTRY:-} &&
		-x ${TSSX_REGISTRYFS:-} ]]
}
