#!/usr/bin/env bash
# The table is bounded: run with -o max_entries=3, a fourth name is ENOSPC.
source "$(dirname "$0")/lib.sh"

start_helper one --open "$M/@bound-1" --hold
start_helper two --open "$M/@bound-2" --hold
start_helper three --open "$M/@bound-3" --hold
expect "$(run_helper --open "$M/@bound-4")" ENOSPC "a fourth entry"
expect "$(mkdir "$M/dir" 2>&1 >/dev/null | grep -c 'No space left')" 1 "a directory counts too"
# Existing entries still open, and a freed slot is usable again.
expect "$(run_helper --open "$M/@bound-1" --write 2)" "ok ok" "an existing entry"
kill -KILL "$HELPER_PID"
wait_until test ! -e "$M/@bound-3"
expect "$(run_helper --open "$M/@bound-4")" ok "after an entry went away"
