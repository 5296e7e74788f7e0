"""Failing loudly and safely (issue 16): non-finite models, one writer per run directory, one-line errors."""

import csv
import math
import shutil

import numpy as np
import pytest
import torch

from mbrl_po.agents.common import RunDir
from mbrl_po.agents.pets import PETS
from mbrl_po.config import load_agent_config
from mbrl_po.errors import NonFiniteModelError
from mbrl_po.planning import MPCAgent, make_optimizer

TINY = {
    "device": "cpu", "steps": 60,
    "model": {"ensemble_size": 2, "num_elites": 1, "hidden_sizes": [16], "max_epochs": 2, "batch_size": 32},
    "planner": {"horizon": 4, "population": 16, "particles": 1, "iterations": 1},
    "loop": {"init_steps": 20, "train_every": 20, "eval_every": 1000, "checkpoint_every": 20},
}


def _pets(tmp_path, name="run", **over):  # noqa: ANN001, ANN003
    cfg = load_agent_config("pets", "inverted_pendulum", {**TINY, **over})
    run = RunDir.create(tmp_path, cfg, name)
    return PETS(cfg, run, progress=False), run


def _nan_weight(model) -> None:  # noqa: ANN001
    with torch.no_grad():
        next(p for n, p in model.named_parameters() if "hidden" in n and p.ndim == 3)[:, 0, 0] = math.nan


# ---------------------------------------------------------------------------------------------- non-finite
def test_mpc_refuses_to_act_when_every_candidate_is_invalid():
    low, high = torch.tensor([-1.0]), torch.tensor([1.0])
    agent = MPCAgent(make_optimizer("cem", 5, low, high, population=8, iterations=2),
                     lambda obs, seqs: torch.full((seqs.shape[0],), math.nan), seed=0)
    with pytest.raises(NonFiniteModelError, match="every one of the 5-step candidate plans scored NaN/inf"):
        agent.act(np.zeros(2, dtype=np.float32))


def test_a_nan_pets_model_never_plans_and_the_next_fit_restores_it(tmp_path):
    agent, run = _pets(tmp_path)
    obs = agent._reset_env()
    for _ in range(20):  # the random steps, then the first fit
        action = agent.env.action_space.sample()
        nxt, r, term, trunc, _ = agent.env.step(action)
        agent.buffer.add(obs, action, r, nxt, term, trunc)
        agent.step += 1
        obs = agent._reset_env() if term or trunc else nxt
    agent._learn()
    assert np.all(np.isfinite(agent._act(obs)))
    _nan_weight(agent.model)
    agent.mpc.reset()
    with pytest.raises(NonFiniteModelError, match="planner: every one"):
        agent._act(obs)
    with pytest.warns(RuntimeWarning, match="restored"):
        agent._retrain(0.0)
    rows = run.read_metrics()
    assert rows[-1]["model_rollback"] == "1" and rows[0]["model_rollback"] == ""
    agent.mpc.reset()
    assert np.all(np.isfinite(agent._act(obs)))  # planning on the restored, finite weights


def test_nan_metrics_are_written_as_nan_not_blank(tmp_path):
    _, run = _pets(tmp_path)
    run.log({"env_step": 3, "model_nll": math.nan, "rollout_error": float("nan"), "model_mse": 0.5})
    with open(run.metrics_path, newline="") as f:
        row = list(csv.DictReader(f))[-1]
    assert (row["model_nll"], row["rollout_error"], row["model_mse"], row["u"]) == ("nan", "nan", "0.5", "")


# ---------------------------------------------------------------------------------------------- one writer
HOLDER = """
import fcntl, os, sys, time
f = open(sys.argv[1], "a+"); fcntl.flock(f, fcntl.LOCK_EX); f.seek(0); f.truncate()
f.write(f"{os.getpid()}\\n"); f.flush(); print("locked", flush=True); time.sleep(60)
"""


def _hold_lock(path):  # noqa: ANN001, ANN202
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_writer_is_refused_naming_the_holder_and_a_killed_holder_is_no_obstacle(tmp_path, capsys):
    from mbrl_po.cli import main
    from mbrl_po.errors import RunDirLockedError

    cfg = load_agent_config("pets", "inverted_pendulum", TINY)
    run = RunDir.create(tmp_path, cfg, "busy")
    proc = _hold_lock(run.lock_path)
    try:
        assert main(["train", "--resume", str(run.path)]) == 2
        err = capsys.readouterr().err
        assert f"is in use by process {proc.pid}" in err and err.count("\n") == 1, err
        with pytest.raises(RunDirLockedError, match=f"process {proc.pid}"):
            RunDir(run.path).acquire_lock()
    finally:
        proc.kill()  # SIGKILL: no cleanup; the kernel drops the flock, the pid stays in the file
        proc.wait()
    assert run.lock_path.read_text().strip() == str(proc.pid)
    again = RunDir(run.path)
    again.acquire_lock()  # the stale lock is recognised
    assert again.lock_path.read_text().strip() == str(__import__("os").getpid())
    with pytest.raises(RunDirLockedError):  # held by this process now: a second writer here is refused too
        RunDir(run.path).acquire_lock()
    again.release_lock()
    RunDir(run.path).acquire_lock()


def test_default_names_never_collide_and_names_stay_inside_the_runs_dir(tmp_path):
    cfg = load_agent_config("pets", "inverted_pendulum", TINY)
    names = {RunDir.default_name(cfg) for _ in range(50)}
    assert len(names) == 50 and all(n.startswith("pets-inverted_pendulum-nll-s0-") for n in names)
    a, b = RunDir.create(tmp_path, cfg), RunDir.create(tmp_path, cfg)
    assert a.path != b.path and a.path.parent == b.path.parent == tmp_path
    for bad in ("../x", "a/b", "..", "."):
        with pytest.raises(ValueError, match="--name: got"):
            RunDir.create(tmp_path, cfg, bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([a.path.name, b.path.name])


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "sac.gamma=5", "--agent", "sac"], "sac.gamma: got 5.0"),
    (["--agent", "/nonexistent.toml"], "agent: '/nonexistent.toml' does not exist"),
    (["--env", "BADID"], "env: task 'bad' has id 'InvertedPendulum-v6', which gymnasium cannot make"),
    (["--steps", "10000000000"], "GiB, more than this machine's"),
    (["--name", "../escape"], "--name: got '../escape'"),
])
def test_failed_starts_print_one_line_and_leave_nothing_on_disk(tmp_path, capsys, args, message):
    from mbrl_po.cli import main

    bad_task = tmp_path / "tasks" / "bad.toml"
    bad_task.parent.mkdir()
    bad_task.write_text('id = "InvertedPendulum-v6"\n')
    args = [str(bad_task) if a == "BADID" else a for a in args]
    runs = tmp_path / "runs"
    assert main(["train", "--runs-dir", str(runs), "--device", "cpu", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not runs.exists()


def test_an_unwritable_runs_dir_is_one_line(tmp_path, capsys):
    from mbrl_po.cli import main

    (tmp_path / "file").write_text("")
    assert main(["train", "--runs-dir", str(tmp_path / "file"), "--device", "cpu", "--env", "inverted_pendulum",
                 "--steps", "5"]) == 2
    err = capsys.readouterr().err
    assert "--runs-dir: cannot create" in err and "choose a folder you can write to" in err and err.count("\n") == 1


def test_resume_refuses_config_flags_instead_of_ignoring_them(tmp_path, capsys):
    from mbrl_po.cli import main

    run = RunDir.create(tmp_path, load_agent_config("pets", "inverted_pendulum", TINY), "r")
    assert main(["train", "--resume", str(run.path), "--steps", "500"]) == 2
    assert "--resume: a resumed run keeps the config" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path / "nope")]) == 2
    assert "has no config.toml" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- checkpoints
def _strip(rows):  # noqa: ANN001, ANN202
    return [{k: v for k, v in r.items() if k not in ("wall_time", "model_fit_s")} for r in rows]


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage", "buffer truncated", "buffer missing"])
def test_a_broken_latest_checkpoint_falls_back_to_the_previous_one_and_resumes_exactly(tmp_path, damage):
    full, full_run = _pets(tmp_path, "full", steps=67)
    full.train()
    agent, run = _pets(tmp_path, "broken", steps=67)
    agent.train()
    assert run.previous_checkpoint_path.exists() and not list(run.ckpt_dir.glob("*.tmp"))
    assert len(list(run.ckpt_dir.glob("*.npz"))) == len(list(run.previous_dir.glob("*.npz"))) == 1
    prev_step = RunDir._read_checkpoint(run.previous_checkpoint_path)["step"]
    if damage.startswith("buffer"):  # latest.pt is fine, the buffer it names is not
        buf = run.ckpt_dir / RunDir._read_checkpoint(run.checkpoint_path)["buffer_files"]["buffer"]
        if damage == "buffer missing":
            buf.unlink()
        else:
            buf.write_bytes(buf.read_bytes()[:100])
    else:
        data = run.checkpoint_path.read_bytes()
        run.checkpoint_path.write_bytes({"truncated": data[: len(data) // 2], "empty": b"",
                                         "garbage": b"not a checkpoint" * 10}[damage])
    with pytest.warns(RuntimeWarning, match=f"resuming from the previous checkpoint \\(env step {prev_step}\\)"):
        resumed = PETS.resume(RunDir(run.path), progress=False)
    assert resumed.step == prev_step < full.step, (prev_step, full.step)
    resumed.train()
    assert _strip(run.read_metrics()) == _strip(full_run.read_metrics())
    assert (run.ckpt_dir / "latest.pt.corrupt").exists() and run.previous_checkpoint_path.exists()
    prev = RunDir._read_checkpoint(run.previous_checkpoint_path)  # the new previous/ is whole: a usable fallback
    assert sorted(p.name for p in run.previous_dir.iterdir()) == sorted(["latest.pt", *prev["buffer_files"].values()])


def test_broken_buffers_metrics_and_leftover_tmp_files_are_one_line_errors(tmp_path, capsys):
    from mbrl_po.cli import main

    agent, run = _pets(tmp_path)
    agent.train()
    shutil.rmtree(run.previous_dir)  # nothing to fall back to: each broken file is a one-line error
    (run.ckpt_dir / ".buffer-000000999.npz.abc.tmp").write_bytes(b"half a buffer")
    state = RunDir._read_checkpoint(run.checkpoint_path)
    buf = run.ckpt_dir / state["buffer_files"]["buffer"]
    data = buf.read_bytes()
    buf.write_bytes(data[: len(data) // 3])
    assert main(["train", "--resume", str(run.path)]) == 2
    err = capsys.readouterr().err
    assert f"the buffer file {buf} cannot be read" in err and err.count("\n") == 1, err
    buf.unlink()
    assert main(["train", "--resume", str(run.path)]) == 2
    assert f"the buffer file {buf} named by the checkpoint is missing" in capsys.readouterr().err
    buf.write_bytes(data)
    run.metrics_path.unlink()
    assert main(["train", "--resume", str(run.path)]) == 2
    assert f"metrics: {run.metrics_path} is missing" in capsys.readouterr().err
    run.save_checkpoint(agent.state_dict(), agent._buffers())  # a save clears what an interrupted one left
    assert not list(run.ckpt_dir.glob("*.tmp")) and not list(run.ckpt_dir.glob(".*.tmp"))


def test_a_value_error_inside_a_run_keeps_its_traceback(tmp_path, monkeypatch):
    from mbrl_po.cli import main

    def broken_train(self):  # noqa: ANN001, ANN202 - a bug hours into a run
        raise ValueError("shapes (3,) and (4,) not aligned")

    monkeypatch.setattr(PETS, "train", broken_train)
    with pytest.raises(RuntimeError, match="not a configuration error") as e:
        main(["train", "--agent", "pets", "--env", "inverted_pendulum", "--steps", "50", "--runs-dir",
              str(tmp_path), "--name", "r", "--set", "device=cpu"])
    assert isinstance(e.value.__cause__, ValueError)  # the original error and its traceback are kept
    # a configuration error still is one line
    assert main(["show-config", "--set", "model.lr=-1"]) == 2
