#!/usr/bin/env bash
# First thing in a session: restart the long runs the last session left (they resume from their checkpoints;
# finished trials are skipped). Core 1: the MBPO trials; core 0 (the development core, lowest priority): the SAC
# floors, then PETS. Recreates the fixed worktree at COMMIT when the machine is new.
# usage: benchmarks/longrun/restart.sh [COMMIT]   (default: the commit the running trials use, bb55f71)
set -u
here=$(cd "$(dirname "$0")" && pwd)
BENCH=${BENCH:-/work/bench}; MAIN=${MAIN:-/work/main}; LOGS=${LOGS:-/work/logs}; commit=${1:-bb55f71}
mkdir -p "$LOGS"
[ -d "$BENCH" ] || git -C "$MAIN" worktree add "$BENCH" "$commit" --detach
if pgrep -f "bench online locomotion" >/dev/null; then echo "locomotion runners already running:"; pgrep -af "bench online locomotion"; exit 0; fi
setsid nohup "$here/run_locomotion.sh" 1 'mbpo/*' >> "$LOGS/loco_A.log" 2>&1 < /dev/null &
AUTOGROUP_NICE=19 setsid nohup "$here/run_locomotion.sh" 0 "${CORE0_PATTERN:-sac/*}" >> "$LOGS/loco_B.log" 2>&1 < /dev/null &
pgrep -f snapshot_loop.sh >/dev/null || setsid nohup "$here/snapshot_loop.sh" > "$LOGS/snapshot.log" 2>&1 < /dev/null &
sleep 2; pgrep -af "bench online locomotion|snapshot_loop"
