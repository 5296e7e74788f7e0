#!/usr/bin/env bash
# First thing in a session: restart the long runs the last session left (they resume from their checkpoints;
# finished trials are skipped). Each core runs MBPO trials, core 0 (the development core) at the lowest priority;
# the finished SAC and PETS patterns are skipped at once. Recreates the fixed worktree at COMMIT when the machine
# is new, and the venv at VENV (default /work/venv) when it is missing.
#
# Each core runs its patterns one after the other (run_locomotion.sh per pattern). A runner takes the unfinished
# trials of a pattern in the suite's order, so put a trial that has a checkpoint first: otherwise an earlier trial
# with none starts from step 0 while the half-done one waits (session 7 started MBPO-nll s1 after its machine lost
# s0's checkpoints; the default below resumes s1 before anything else). Session 8 ran MBPO-nll s1 on core 0 and
# s0 on core 1 (after the PETS trials). Session 9 finished the PETS cells and ran MBPO-pg s0 on core 0 and s1 on
# core 1 (MBPO-nll s0 reached 11k on core 0 first). Session 11 got a new machine (every checkpoint gone, PG at
# 56k/62k) and started the NLL trials from step 0, s0 on core 1 and s1 on core 0; NLL s1 reproduced its lost AMD
# attempt's rows to every digit (same commit, same machine kind), so rerunning it to 30k told nothing new, and
# core 0 moved to MBPO-pg s1 at 6.5k (NLL s1 checkpointed there): a PG/NLL pair on one machine kind. The defaults
# resume each where it ran.
# usage: [CORE1_PATTERNS="p1 p2"] [CORE0_PATTERNS="p3 p4"] benchmarks/longrun/restart.sh [COMMIT]
#   (default commit: the one the running trials use, bb55f71; without the lists, the order comes from
#   `bench online locomotion --plan COMMIT`, written to $LOGS/plan.txt, and the lists below are the fallback)
set -u
here=$(cd "$(dirname "$0")" && pwd)
BENCH=${BENCH:-/work/bench}; MAIN=${MAIN:-/work/main}; LOGS=${LOGS:-/work/logs}; commit=${1:-bb55f71}
# keep the two lists disjoint: a trial is locked by the runner writing it, and a second runner reaching it is refused
CORE1_PATTERNS=${CORE1_PATTERNS:-}; CORE0_PATTERNS=${CORE0_PATTERNS:-${CORE0_PATTERN:-}}
planned=$([ -z "$CORE1_PATTERNS$CORE0_PATTERNS" ] && echo yes)
mkdir -p "$LOGS"
[ -d "$BENCH" ] || { git -C "$MAIN" worktree prune; git -C "$MAIN" worktree add "$BENCH" "$commit" --detach; }
export VENV=${VENV:-/work/venv}
if [ ! -x "$VENV/bin/python" ]; then  # a new machine: the environment the README's quickstart makes (~2 min)
  echo "no venv at $VENV: creating it"
  python3 -m venv "$VENV" && "$VENV/bin/pip" install -q torch==2.13.0 \
    && "$VENV/bin/pip" install -q -e "$MAIN[dev,minari,ray,tensorboard]" || { echo "venv setup failed" >&2; exit 1; }
fi
if pgrep -f "bench online locomotion" >/dev/null; then echo "locomotion runners already running:"; pgrep -af "bench online locomotion"; exit 0; fi
set -f  # the patterns are fnmatch patterns for the runner, not globs for this shell
if [ -n "$planned" ]; then
  # no lists given: the unfinished trials in the order worth running them on this machine (`--plan`: resume the
  # furthest checkpoints; on a new machine, first the trials whose committed rows came from another machine
  # kind or commit, since a rerun on the same kind at the same commit only rewrites its rows), alternately to
  # core 1 and core 0
  plan=$(cd "$MAIN" && "$VENV/bin/python" -m benchmarks.harness.online locomotion --plan "$commit" \
    --runs-dir "${RUNS:-/work/runs/suites}" 2>"$LOGS/plan.txt")
  cat "$LOGS/plan.txt"
  i=0
  for label in $plan; do
    if [ $((i % 2)) -eq 0 ]; then CORE1_PATTERNS="$CORE1_PATTERNS $label"; else CORE0_PATTERNS="$CORE0_PATTERNS $label"; fi
    i=$((i + 1))
  done
  # the plan failed or printed nothing: session 11's lists
  [ -n "$CORE1_PATTERNS$CORE0_PATTERNS" ] || { CORE1_PATTERNS="mbpo/*/nll/s0 mbpo/*/pg*/s0 sac/*"
                                              CORE0_PATTERNS="mbpo/*/pg*/s1 mbpo/*/nll/s1 pets/*"; }
fi
echo "core 1:$CORE1_PATTERNS"; echo "core 0:$CORE0_PATTERNS"
chain() {  # CORE PATTERN...: one runner per pattern, in turn
  local core=$1; shift
  for p in "$@"; do "$here/run_locomotion.sh" "$core" "$p"; done
}
export -f chain; export here
# shellcheck disable=SC2086  # the pattern lists split on spaces
setsid nohup bash -c 'set -f; chain "$@"' chain 1 $CORE1_PATTERNS >> "$LOGS/loco_A.log" 2>&1 < /dev/null &
# shellcheck disable=SC2086
AUTOGROUP_NICE=19 setsid nohup bash -c 'set -f; chain "$@"' chain 0 $CORE0_PATTERNS >> "$LOGS/loco_B.log" 2>&1 < /dev/null &
pgrep -f snapshot_loop.sh >/dev/null || setsid nohup "$here/snapshot_loop.sh" > "$LOGS/snapshot.log" 2>&1 < /dev/null &
sleep 2; pgrep -af "bench online locomotion|snapshot_loop"
