#!/usr/bin/env bash
# Many processes at once: creating, writing (good and bad), closing, being
# killed, listing and making directories, on shared and private entries.
# The daemon must survive it (under ASan too, in suite 'sanitize'), and end
# with an empty registry once every handle is gone.
source "$(dirname "$0")/lib.sh"

worker() { # id
	exec /usr/bin/python3 - "$M" "$WORK" "$1" <<'PY'
import errno, os, random, sys
mount, work, me = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = random.Random(me)
names = [mount + work + "/shared/%d.sock" % i for i in range(4)] + \
        [mount + work + "/w%d/own.sock" % me, mount + "/@stress-%d" % (me % 3)]
held = []
for step in range(300):
    name = rng.choice(names)
    try:
        os.makedirs(os.path.dirname(name), exist_ok=True)
        fd = os.open(name, os.O_RDWR | os.O_CREAT)
    except OSError as e:
        # a directory removed by a concurrent release (makedirs then
        # fails with ENOENT or EEXIST), or the bound
        assert e.errno in (errno.ENOENT, errno.EEXIST, errno.ENOSPC, errno.ESTALE), e
        continue
    for data in rng.sample([b"2", b"0\n", b"1", b"x", b"33", b"2\n"], 2):
        try:
            os.write(fd, data)
        except OSError as e:
            assert e.errno in (errno.EINVAL, errno.EPERM), e
    os.pread(fd, 2, 0)
    held.append(fd)
    if len(held) > 5 or rng.random() < 0.5:
        os.close(held.pop(rng.randrange(len(held))))
    if rng.random() < 0.05:
        os.listdir(mount)
PY
}

pids=()
for i in $(seq 1 8); do
	worker "$i" &
	pids+=($!)
done
HELPER_PIDS+=("${pids[@]}")
# A listing meanwhile (a directory may vanish under it: ls then fails).
ls -R "$M" >/dev/null 2>&1 || true
# Kill one on its way (wherever it is): its handles go with it.
sleep 0.2
{ kill -KILL "${pids[0]}" && wait "${pids[0]}"; } 2>/dev/null || true
failed=0
for pid in "${pids[@]:1}"; do
	wait "$pid" || failed=$((failed + 1))
done
((failed == 0)) || fail "$failed workers saw an unexpected error"
# Every handle is gone: so is every entry and implied directory (a
# directory made by a worker killed before its create within seconds).
for ((i = 0; i < 400; i++)); do
	is_empty_dir "$M" && break
	sleep 0.05
done
is_empty_dir "$M" || fail "entries left behind: $(cd "$M" && find . | paste -sd' ')"
kill -0 "$TSSX_REGISTRYFS_PID" || fail "the daemon died"
