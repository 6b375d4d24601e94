#!/usr/bin/env bash
# preloaded.sh WITH_REGISTRY REGISTRYFS LIBTSSX CMD [ARG...]
#
# Runs CMD with libtssx preloaded over a private registry, and a private
# directory for its sockets in TSSX_TEST_DIR, removed afterwards.  Small
# rings (4 KiB) so that a thousand connections stay cheap and wrap often.
set -uo pipefail
with_registry=$1 registryfs=$2 lib=$3
shift 3
dir=$(mktemp -d "${TMPDIR:-/tmp}/tssx-events.XXXXXX") || exit 1
trap 'rm -rf "$dir"' EXIT
"$with_registry" --registryfs "$registryfs" \
	env LD_PRELOAD="$lib" TSSX_TEST_DIR="$dir" TSSX_RING_SIZE=4096 "$@"
