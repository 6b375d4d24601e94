#!/usr/bin/env python3
"""trace-medians.py TRACE CYCLES

Reads the output of `perf trace -o TRACE` (one line per system call with
its duration) and prints, for every system call made at least once per
cycle, its count per cycle, its median duration and what it adds to a
cycle (count times median), largest first.  perf trace itself adds a few
microseconds to every call: compare the calls with each other, not with
an untraced run.
"""
import collections
import re
import statistics
import sys

if len(sys.argv) != 3:
    sys.exit(__doc__)
cycles = int(sys.argv[2])
durations = collections.defaultdict(list)
with open(sys.argv[1]) as f:
    for line in f:
        m = re.match(r"\s*[\d.]+ \(\s*([\d.]+) ms\): \S+ (\w+)\(", line)
        if m:
            durations[m.group(2)].append(float(m.group(1)) * 1000)
rows = [(statistics.median(v) * len(v) / cycles, len(v) / cycles, statistics.median(v), name)
        for name, v in durations.items() if len(v) >= cycles]
print(f"{'system call':16s} {'per cycle':>9s} {'median':>9s} {'adds':>9s}")
for adds, per_cycle, median, name in sorted(rows, reverse=True):
    print(f"{name:16s} {per_cycle:9.1f} {median:7.1f}us {adds:7.1f}us")
print(f"{'total':16s} {sum(r[1] for r in rows):9.1f} {'':9s} {sum(r[0] for r in rows):7.1f}us")
