"""Long runs under faults, at a tiny budget: kill -9 a suite runner at random moments until it finishes, and fill
the disk in the middle of a checkpoint write. Every trial must end with exactly the rows of an uninterrupted run,
and no temporary file may be left behind."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from benchmarks.harness.online import Sweep, read_csv
from benchmarks.harness.suites import load_suite
from mbrl_po.agents.common import RunDir
from mbrl_po.agents.mbpo import SACAgent
from mbrl_po.config import load_agent_config
from mbrl_po.data.replay_buffer import ReplayBuffer

# the locomotion suite's shape (MBPO-style SAC loop, PETS with training episodes as evaluation, per-cell seeds),
# scaled down to seconds
FAULT_SUITE = """
name = "faulty"
seeds = [0]

[objectives.nll]
name = "nll"

[tasks.ip40]
base = "inverted_pendulum"
max_episode_steps = 40

[[cells]]
agent = "pets"
tasks = ["ip40"]
steps = 160
[cells.set]
device = "cpu"
model = { ensemble_size = 2, num_elites = 1, hidden_sizes = [16, 16], max_epochs = 2, batch_size = 32 }
planner = { horizon = 4, population = 12, particles = 2, iterations = 1 }
loop = { init_steps = 40, train_every = 40, eval_every = 40, eval_episodes = 0, checkpoint_every = 1 }

[[cells]]
agent = "sac"
tasks = ["ip40"]
steps = 160
seeds = [0, 1]
[cells.set]
device = "cpu"
sac = { batch_size = 16, net_arch = [16, 16] }
loop = { init_steps = 30, eval_every = 40, eval_episodes = 2, checkpoint_every = 1 }
"""

VOLATILE = ("wall_time", "machine", "commit")


def _rows(path: Path) -> list[tuple]:
    """runs.csv rows without the columns that differ between two runs of the same code (times, host)."""
    return sorted(tuple(v for k, v in r.items() if k not in VOLATILE) for r in read_csv(path))


def _leftovers(*roots: Path) -> list[Path]:
    return [p for root in roots if root.exists() for p in root.rglob("*")
            if p.name.endswith(".tmp") or p.name.startswith(".config-") or ".partial" in p.name]


@pytest.mark.mujoco
@pytest.mark.slow  # several runner processes, each importing torch, gymnasium and SB3
def test_a_suite_runner_killed_at_random_moments_ends_with_the_uninterrupted_rows(tmp_path):
    suite = tmp_path / "suites" / "faulty.toml"
    suite.parent.mkdir()
    suite.write_text(FAULT_SUITE)
    trials = load_suite(suite).trials()
    assert len(trials) == 3
    ref = Sweep(trials, tmp_path / "ref" / "results", tmp_path / "ref" / "runs", threads=1, commit="x",
                log=lambda s: None)
    assert ref.run() == 0

    results, runs = tmp_path / "killed" / "results", tmp_path / "killed" / "runs"
    cmd = [sys.executable, "-m", "benchmarks.harness.online", str(suite), "--results-dir", str(results),
           "--runs-dir", str(runs), "--name", "faulty", "--threads", "1", "--retries", "0"]
    # the runner imports the harness from this checkout, wherever pytest was started
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONHASHSEED": "0",
           "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    rng = np.random.default_rng(7)

    def progress() -> int:  # metrics rows logged so far by all trials of the killed sweep
        # metrics.csv sits at runs/<sweep>/<trial>/; a deeper walk would race the runner renaming its
        # checkpoints/previous.tmp folder (FileNotFoundError mid-walk)
        return sum(len(read_csv(p)) for p in runs.glob("*/*/metrics.csv"))

    kills = 0
    for attempt in range(4):  # three kills at random moments of real work, then one run to the end
        before = progress()
        log = open(tmp_path / f"runner-{attempt}.log", "w")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        if attempt == 3:
            break
        while proc.poll() is None and progress() <= before:  # wait until this runner has done some work
            time.sleep(0.02)
        time.sleep(float(rng.uniform(0.0, 1.5)))  # then die while training, evaluating or writing
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        log.close()
    proc.wait(timeout=600)
    log.close()
    assert proc.returncode == 0, (tmp_path / "runner-3.log").read_text()[-2000:]
    assert kills >= 2, "no kill happened mid-run: the test would check nothing"
    assert _rows(results / "faulty" / "runs.csv") == _rows(ref.runs_csv)
    assert not read_csv(results / "faulty" / "failures.csv")
    assert _leftovers(results, runs) == []


@pytest.mark.mujoco
def test_a_full_disk_during_a_checkpoint_write_loses_nothing_already_committed(tmp_path, monkeypatch):
    cfg = load_agent_config("sac", "inverted_pendulum", {
        "device": "cpu", "steps": 120, "sac": {"batch_size": 16, "net_arch": [16, 16]},
        "loop": {"init_steps": 30, "eval_every": 40, "checkpoint_every": 1}})
    full = RunDir.create(tmp_path, cfg, "full")
    SACAgent(cfg, full, progress=False).train()

    run = RunDir.create(tmp_path, cfg, "disk")
    saves = {"n": 0}
    original = ReplayBuffer.save

    def save_until_full(self, path):  # noqa: ANN001, ANN202 - the disk fills in the 4th buffer write
        saves["n"] += 1
        if saves["n"] == 4:
            with open(f"{path}.tmp", "wb") as f:  # a half-written file, as a real ENOSPC leaves one
                f.write(b"\0" * 100)
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, path)

    monkeypatch.setattr(ReplayBuffer, "save", save_until_full)
    with pytest.raises(OSError, match="No space left"):
        SACAgent(cfg, run, progress=False).train()
    monkeypatch.setattr(ReplayBuffer, "save", original)
    committed = run.load_checkpoint()
    assert committed is not None and 0 < committed["step"] < 120  # the checkpoint before the failed write
    resumed = SACAgent.resume(run, progress=False)
    assert resumed.step == committed["step"]
    resumed.train()

    def strip(rows):  # noqa: ANN001, ANN202
        return [{k: v for k, v in r.items() if k not in ("wall_time", "model_fit_s")} for r in rows]

    assert strip(run.read_metrics()) == strip(full.read_metrics())
    assert _leftovers(run.path) == []
