#!/usr/bin/env bash
# run.sh SOURCE_ROOT BUILD_ROOT SECONDS|-runs=N [TARGET...]
#
# Builds the libFuzzer targets of this directory with clang (ASan and
# UBSan, which abort on their first report) into a temporary directory and
# runs each for SECONDS of fuzzing, or for N executions; prints each
# target's execution count.  A crash, a hang (-timeout), a leak or a
# sanitizer report fails the run, with libFuzzer's report and the input
# that caused it.  Skips (77) where clang or its libFuzzer is missing
# (apt-get install clang).
#
# Targets: hello (the hello parser and the segment it names), ring (the
# ring's checks of peer-written counters and flags), name (the registry
# name codec), registry (the daemon's write parser and table).
#
# Inputs: no seeds are committed (each target reaches its coverage within
# seconds from an empty corpus).  With TSSX_FUZZ_CORPUS=DIR, the corpus
# of TARGET is DIR/TARGET, kept across runs (a long run continues from
# what the last one found), and an input that fails a target is kept as
# DIR/crash-*, leak-*, timeout-* (to run again alone: TARGET FILE, the
# binary built as here); without it, a temporary directory, and the
# report shows the failing input in base64 (docs/data-path.md, "Fuzzing").
set -euo pipefail

src=$1 build=$2 budget=$3
shift 3
targets=("$@")
((${#targets[@]})) || targets=(hello ring name registry)

clang=$(command -v clang || command -v clang-14 || true)
if [[ -z $clang ]] || ! echo 'int LLVMFuzzerTestOneInput(const char *d, long n) { return 0; }' |
	"$clang" -x c -fsanitize=fuzzer -o /dev/null - 2>/dev/null; then
	echo "fuzz: SKIP: clang with libFuzzer not found (apt-get install clang)" >&2
	exit 77
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/tssx-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

core=(preload/core/log.c)
declare -A sources=(
	[hello]="tests/fuzz/fuzz_hello.c preload/core/hello.c preload/core/segment.c preload/core/ring.c ${core[*]}"
	[ring]="tests/fuzz/fuzz_ring.c preload/core/ring.c ${core[*]}"
	[name]="tests/fuzz/fuzz_name.c registryfs/client/name.c"
	[registry]="tests/fuzz/fuzz_registry.c registryfs/daemon/table.c registryfs/daemon/trust.c registryfs/client/name.c ${core[*]}"
)
if [[ $budget == -runs=* ]]; then
	limit=$budget
else
	limit=-max_total_time=$budget
fi

for target in "${targets[@]}"; do
	[[ -n ${sources[$target]:-} ]] || { echo "fuzz: unknown target $target" >&2; exit 2; }
	files=()
	for f in ${sources[$target]}; do files+=("$src/$f"); done
	"$clang" -std=gnu11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
		-I"$src/include" -I"$build" -I"$src/registryfs/daemon" \
		-o "$work/$target" "${files[@]}" || { echo "fuzz: $target does not build" >&2; exit 1; }
	corpus=${TSSX_FUZZ_CORPUS:+$TSSX_FUZZ_CORPUS/$target}
	corpus=${corpus:-$work/corpus-$target}
	mkdir -p "$corpus"
	if ! (cd "$work" && "./$target" "$limit" -timeout=10 -rss_limit_mb=1024 -print_final_stats=1 \
		-artifact_prefix="${TSSX_FUZZ_CORPUS:-$work}/" "$corpus" >"$target.log" 2>&1); then
		echo "fuzz: $target FAILED" >&2
		tail -n 60 "$work/$target.log" >&2
		exit 1
	fi
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$target.log")
	echo "fuzz: $target: $runs executions, no report"
done
