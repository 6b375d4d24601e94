#!/usr/bin/env python3
"""callgrind-count.py OUT LIB CALLS

Reads a callgrind profile made with --dump-instr=yes --compress-pos=no
--compress-strings=no and prints, for the functions of the shared object
LIB, per one of CALLS calls into it: instructions executed (Ir), locked
instructions executed (lock-prefixed, xchg with memory, mfence: the
instructions that serialise the CPU's store buffer and cost 20-100 cycles
each), and function calls made, with their callee.  The counts are totals
over the run divided by CALLS; the set-up (connect, accept) adds a few
dozen instructions in all, noise at 10,000 calls.
"""
import collections
import re
import subprocess
import sys


def locked_addresses(lib):
    dis = subprocess.run(["objdump", "-d", "--no-show-raw-insn", lib],
                         capture_output=True, text=True, check=True).stdout
    locked = set()
    for line in dis.splitlines():
        m = re.match(r"^\s+([0-9a-f]+):\s+(.*)$", line)
        if not m:
            continue
        ins = m.group(2)
        if ins.startswith(("lock ", "mfence")) or (ins.startswith("xchg") and "(" in ins):
            locked.add(int(m.group(1), 16))
    return locked


def count(profile, lib):
    """Self Ir, locked instructions and calls, by function of lib."""
    name = lib.rsplit("/", 1)[-1]
    locked = locked_addresses(lib)
    ir, lock, calls = collections.Counter(), collections.Counter(), collections.Counter()
    ob = fn = cfn = None
    skip = False
    with open(profile) as f:
        for line in f:
            line = line.rstrip("\n")
            if skip:  # the inclusive cost line after calls=
                skip = False
                continue
            key, _, value = line.partition("=")
            if key == "ob":
                ob = value
            elif key == "fn":
                fn = value
            elif key == "cfn":
                cfn = value
            elif key == "calls":
                if ob.endswith(name):
                    calls[(fn, cfn)] += int(value.split()[0])
                skip = True
            else:
                m = re.match(r"^(0x[0-9a-f]+) \S+ (\d+)$", line)
                if m and ob and ob.endswith(name):
                    ir[fn] += int(m.group(2))
                    if int(m.group(1), 16) in locked:
                        lock[fn] += int(m.group(2))
    return ir, lock, calls


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    profile, lib, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ir, lock, calls = count(profile, lib)
    print(f"per call, in {lib.rsplit('/', 1)[-1]} (callee's own cost not included):")
    # A function on the path runs at least once per two calls (a write
    # path and a read path); the set-up's functions run a few times.
    def on_path(c):
        return 2 * c >= n

    print(f"  instructions {sum(ir.values()) / n:8.1f}")
    for fn, c in ir.most_common():
        if on_path(c):
            print(f"    {c / n:8.1f}  {fn}")
    print(f"  locked instructions {sum(lock.values()) / n:5.2f}")
    for fn, c in lock.most_common():
        if on_path(c):
            print(f"    {c / n:8.2f}  {fn}")
    print(f"  function calls {sum(c for c in calls.values() if on_path(c)) / n:5.2f}")
    for (fn, callee), c in calls.most_common():
        if on_path(c):
            print(f"    {c / n:8.2f}  {fn} -> {callee}")


main()
