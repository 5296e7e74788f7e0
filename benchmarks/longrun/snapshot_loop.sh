#!/usr/bin/env bash
# Every 20 minutes: the locomotion suite's rows so far (partial.csv) and its report, committed on main (only
# docs/results/locomotion), so that a partial curve is evidence already. usage: setsid benchmarks/longrun/snapshot_loop.sh
MAIN=${MAIN:-/work/main}; VENV=${VENV:-/work/venv}; RUNS=${RUNS:-/work/runs/suites}; EVERY=${EVERY:-1200}
cd "$MAIN" || exit 1
source "$VENV/bin/activate"
while true; do
  sleep "$EVERY"
  nice -n 10 python -m benchmarks.harness.online locomotion --snapshot --runs-dir "$RUNS" >/dev/null 2>&1
  nice -n 10 python -m benchmarks.harness.report locomotion >/dev/null 2>&1
  git add docs/results/locomotion >/dev/null 2>&1
  git commit -q -m "locomotion rows so far (partial.csv, summary)" -- docs/results/locomotion >/dev/null 2>&1 || true
done
