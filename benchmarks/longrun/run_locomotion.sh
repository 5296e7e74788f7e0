#!/usr/bin/env bash
# One runner of the locomotion suite's long trials, on one core, from a fixed worktree (see docs/results/README.md,
# "Long runs"): run directories (checkpoints, buffers) outside the work tree, result rows into main's docs/results.
# Resumes unfinished trials from their checkpoints; skips finished ones.
#
# usage: [AUTOGROUP_NICE=19] setsid benchmarks/longrun/run_locomotion.sh CORE [ONLY-PATTERN]
#   CORE           the CPU core (taskset)
#   ONLY-PATTERN   the trials (--only), e.g. 'mbpo/*'; two runners must take disjoint patterns
#   AUTOGROUP_NICE the priority of this job's scheduling group: with autogroup scheduling plain `nice` only ranks
#                  processes inside one session, so start the job with setsid and give it 19 to yield a core
# paths (defaults: the dev VM's): BENCH=/work/bench (worktree at the trials' commit), MAIN=/work/main,
# VENV=/work/venv, RUNS=/work/runs/suites
set -u
core=${1:?usage: run_locomotion.sh CORE [ONLY-PATTERN]}; only=${2:-}
BENCH=${BENCH:-/work/bench}; MAIN=${MAIN:-/work/main}; VENV=${VENV:-/work/venv}; RUNS=${RUNS:-/work/runs/suites}
echo "${AUTOGROUP_NICE:-0}" > /proc/self/autogroup 2>/dev/null || true
cd "$BENCH" || exit 1
source "$VENV/bin/activate"
export PYTHONPATH=$BENCH
exec taskset -c "$core" python -m mbrl_po.cli bench online locomotion --threads 1 \
  --runs-dir "$RUNS" --results-dir "$MAIN/docs/results" ${only:+--only "$only"}
