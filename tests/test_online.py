"""Online suites: suite validation, the distractor wrapper, a tiny sweep end to end (runs.csv schema, report from
the CSV alone, no re-run of finished trials), failure -> retry -> failures.csv -> resume, the gpu suite at a
tiny scale on CPU, and the process-pool and Ray backends."""

from __future__ import annotations

import csv
import importlib.util
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from benchmarks.harness import online, report
from benchmarks.harness.online import FAILURE_COLUMNS, ROW_COLUMNS, Sweep, append_rows, read_csv
from benchmarks.harness.suites import DerivedTask, load_suite, make_wrapped_env, suite_from_dict
from mbrl_po.agents.common import RunDir

TINY_SUITE = """
name = "tiny"
seeds = 2

[objectives.nll]
name = "nll"
[objectives.pg-learned]
name = "pg"
reward_matrix = "learned"

[tasks.ip50]
base = "inverted_pendulum"
max_episode_steps = 50

[[cells]]
agent = "pets"
tasks = ["ip50"]
objectives = ["nll"]
steps = 120
[cells.set]
device = "cpu"
model = { ensemble_size = 2, num_elites = 1, hidden_sizes = [16, 16], max_epochs = 2, batch_size = 32 }
planner = { horizon = 5, population = 16, particles = 2, iterations = 1 }
loop = { init_steps = 60, train_every = 60, eval_every = 60, checkpoint_every = 30 }

[[cells]]
agent = "sac"
tasks = ["ip50"]
steps = 120
[cells.set]
device = "cpu"
sac = { batch_size = 16, net_arch = [16, 16] }
loop = { init_steps = 40, eval_every = 60, checkpoint_every = 30 }
"""


def _suite_file(tmp_path: Path, text: str = TINY_SUITE, name: str = "tiny") -> Path:
    path = tmp_path / "suites" / f"{name}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _sweep(tmp_path: Path, suite: Path, log: list[str] | None = None, **kw) -> Sweep:  # noqa: ANN003
    only = kw.pop("only", None)
    trials = load_suite(suite).trials(only=only)
    return Sweep(trials, tmp_path / "results" / "tiny", tmp_path / "runs" / "tiny", threads=1, commit="test",
                 log=(log.append if log is not None else (lambda s: None)), **kw)


# ---------------------------------------------------------------------------------------------- suites
def test_suite_validation_names_the_field(tmp_path):
    base = {"seeds": 2, "objectives": {"nll": {"name": "nll"}},
            "cells": [{"agent": "pets", "tasks": ["inverted_pendulum"], "steps": 1000}]}
    suite_from_dict(base, "ok")
    bad = [
        ({**base, "seed": 3}, "seed: unknown key"),
        ({**base, "objectives": {"x": {"name": "mle"}}}, "objective.name: got 'mle'"),
        ({**base, "cells": [{**base["cells"][0], "agent": "dreamer"}]}, "agent: got 'dreamer'"),
        ({**base, "cells": [{**base["cells"][0], "tasks": ["nope"]}]}, "unknown task 'nope'"),
        ({**base, "cells": [{**base["cells"][0], "objectives": ["pg"]}]}, "objectives: got 'pg'"),
        ({**base, "cells": [{**base["cells"][0], "steps": 1001}]}, "multiple of loop.eval_every"),
        ({**base, "cells": [{**base["cells"][0], "set": {"planner": {"horizon": 0}}}]}, "planner.horizon: got 0"),
        ({**base, "cells": [{**base["cells"][0], "set": {"seed": 1}}]}, "set.seed"),
        ({**base, "tasks": {"d": {"base": "inverted_pendulum", "distractor_dims": -1}}}, "distractor_dims: got -1"),
        ({**base, "cells": [{**base["cells"][0], "seeds": [1, 1]}]}, "cells[0].seeds: got [1, 1]"),
        ({**base, "seeds": 0}, "seeds: got 0"),
    ]
    for data, msg in bad:
        with pytest.raises(ValueError, match=re.escape(msg)):
            suite_from_dict(data, "bad")


def test_trial_ids_are_stable_and_cover_config_and_seed(tmp_path):
    path = _suite_file(tmp_path)
    a, b = load_suite(path).trials(), load_suite(path).trials()
    assert [t.trial_id for t in a] == [t.trial_id for t in b]
    assert len({t.trial_id for t in a}) == len(a) == 4
    assert [t.seed for t in a] == [0, 0, 1, 1]  # seed-major
    t = a[0]
    assert (t.agent, t.task, t.env_id, t.objective, t.seed) == ("pets", "ip50", "InvertedPendulum-v5", "nll", 0)
    scaled = load_suite(path).trials(budget_scale=0.5)
    assert scaled[0].steps == 60 and scaled[0].trial_id != t.trial_id
    other = load_suite(path).trials(overrides={"model": {"lr": 3e-4}})
    assert other[0].trial_id != t.trial_id and other[0].config.config_hash() != t.config.config_hash()
    assert [x.label for x in load_suite(path).trials(only="sac/*/s1")] == ["sac/ip50/model-free/s1"]


def test_shipped_suites_load_with_the_requested_cells():
    cpu = load_suite("cpu").trials()
    cells = {(t.agent, t.env_id, t.objective_label) for t in cpu}
    for env in ("InvertedPendulum-v5", "InvertedDoublePendulum-v5", "Reacher-v5"):
        for obj in ("nll", "pg-learned", "pg-inverse_cov-residual"):
            assert ("pets", env, obj) in cells
    for env in ("InvertedPendulum-v5", "Hopper-v5"):
        assert {("mbpo", env, o) for o in ("nll", "pg-learned", "pg-inverse_cov-residual")} <= cells
    assert {e for a, e, _ in cells if a == "sac"} == {"InvertedPendulum-v5", "InvertedDoublePendulum-v5",
                                                     "Reacher-v5", "Hopper-v5"}
    assert {t.seed for t in cpu} == set(range(5)) and len(cpu) == 95
    stress = load_suite("cpu-stress").trials()
    assert {t.config.model.hidden_sizes for t in stress} == {(64, 64, 64)} and len(stress) == 120
    assert {t.objective_label for t in stress} == {"nll", "pg-learned", "pg-learned-diag", "pg-inverse_cov-residual",
                                                   "pg-learned-diag-init-residual", "pg-learned-diag-on-residual",
                                                   "pg-state_inverse_cov-pathwise-b0.5", "beta_nll"}
    state = [t for t in stress if t.objective_label == "pg-state_inverse_cov-pathwise-b0.5"]
    assert len(state) == 15 and {t.config.objective.estimator for t in state} == {"pathwise"}
    assert {t.config.objective.options["beta"] for t in state} == {0.5}
    assert any("distractors=16" in t.env_variant for t in stress)
    gpu = load_suite("gpu").trials()
    steps = {(t.agent, t.env_id): t.steps for t in gpu}
    assert steps[("pets", "HalfCheetah-v5")] == 300_000 and steps[("mbpo", "Hopper-v5")] == 125_000
    assert steps[("mbpo", "Walker2d-v5")] == 300_000
    loco = load_suite("locomotion").trials()
    seeds: dict[tuple[str, str, str], set[int]] = {}
    for t in loco:
        seeds.setdefault((t.agent, t.env_id, t.objective_label), set()).add(t.seed)
        assert t.config.loop.eval_episodes == 5 or t.agent == "pets"
    assert seeds[("mbpo", "Hopper-v5", "nll")] == seeds[("mbpo", "Hopper-v5", "pg-inverse_cov-residual")] == {0, 1}
    assert seeds[("sac", "Hopper-v5", "model-free")] == seeds[("sac", "HalfCheetah-v5", "model-free")] == {0, 1, 2}
    assert seeds[("pets", "HalfCheetah-v5", "nll")] == seeds[("pets", "HalfCheetah-v5", "pg-inverse_cov-residual")] \
        == {0, 1}
    pets = next(t for t in loco if t.agent == "pets")
    assert pets.steps == 20_000 and pets.config.loop.eval_episodes == 0 and pets.config.planner.horizon == 30
    assert len(loco) == 14
    mbpo = next(t for t in loco if t.agent == "mbpo")
    assert mbpo.steps == 100_000 and mbpo.config.mbpo.updates_per_step == 20
    assert mbpo.config.mbpo.rollout_schedule == (20, 150, 1, 15) and mbpo.config.loop.train_every == 250


def test_cell_seeds_replace_the_suite_seeds_and_seeds_arg_replaces_both():
    data = {"seeds": 2, "objectives": {"nll": {"name": "nll"}},
            "cells": [{"agent": "pets", "tasks": ["inverted_pendulum"], "steps": 1000},
                      {"agent": "sac", "tasks": ["inverted_pendulum"], "steps": 1000, "seeds": [0, 3, 5]}]}
    suite = suite_from_dict(data, "s")
    got = [(t.agent, t.seed) for t in suite.trials()]
    assert sorted(got) == [("pets", 0), ("pets", 1), ("sac", 0), ("sac", 3), ("sac", 5)]
    assert [s for _, s in got] == sorted(s for _, s in got)  # seed-major across cells
    assert sorted((t.agent, t.seed) for t in suite.trials(seeds=1)) == [("pets", 0), ("sac", 0)]


def test_u_option_names_non_default_structures():
    from benchmarks.harness.suites import u_option
    from mbrl_po.config import ObjectiveSection

    assert u_option(ObjectiveSection(name="nll")) == ""
    assert u_option(ObjectiveSection(name="pg")) == "learned"
    assert u_option(ObjectiveSection(name="pg", structure="scalar")) == "learned"
    assert u_option(ObjectiveSection(name="pg", structure="diag")) == "learned-diag"
    assert u_option(ObjectiveSection(name="pg", structure="diag", learned_init="residual")) \
        == "learned-diag-init-residual"
    assert u_option(ObjectiveSection(name="pg", structure="diag", learned_base="residual")) \
        == "learned-diag-on-residual"
    assert u_option(ObjectiveSection(name="pg", reward_matrix="inverse_cov")) == "inverse_cov-residual"
    diag = ObjectiveSection(name="pg", reward_matrix="inverse_cov", structure="diag")
    assert u_option(diag) == "inverse_cov-residual"
    assert u_option(ObjectiveSection(name="pg", reward_matrix="inverse_cov", structure="full",
                                     covariance="marginal")) == "inverse_cov-marginal-full"
    # a non-default estimator and the objective's options are part of the name (issue 17's online cell)
    state = ObjectiveSection(name="pg", reward_matrix="state_inverse_cov", estimator="pathwise", options={"beta": 0.5})
    assert u_option(state) == "state_inverse_cov-pathwise-b0.5"
    assert u_option(ObjectiveSection(name="pg", reward_matrix="state_inverse_cov")) == "state_inverse_cov"
    assert u_option(ObjectiveSection(name="pg", reward_matrix="state_inverse_cov", options={"beta": 0.5,
                                                                                            "fit_steps": 4})) \
        == "state_inverse_cov-b0.5-fs4"
    assert u_option(ObjectiveSection(name="beta_nll", options={"beta": 1.0})) == "b1"
    assert u_option(ObjectiveSection(name="beta_nll")) == ""


def test_distractor_wrapper_appends_noise_dims_and_is_seeded():
    env = make_wrapped_env("InvertedPendulum-v5", distractor_dims=3, distractor_std=2.0, obs_noise_std=0.1)
    assert env.observation_space.shape == (7,)
    o1, _ = env.reset(seed=3)
    o2, *_ = env.step(np.zeros(1))
    o1b, _ = env.reset(seed=3)
    assert o1.shape == (7,) and np.allclose(o1, o1b)
    assert not np.allclose(o1[4:], o2[4:])  # fresh noise every step
    d = DerivedTask("ipd", "inverted_pendulum", distractor_dims=3)
    task = d.task_config()
    assert task.env_kwargs["env_id"] == "InvertedPendulum-v5" and "distractors=3" in d.variant()
    assert 'id = "mbrl_po.envs.wrappers:make_wrapped_env"' in d.task_toml()


# ---------------------------------------------------------------------------------------------- sweeps
@pytest.mark.mujoco
def test_tiny_sweep_end_to_end_report_and_no_rerun(tmp_path, monkeypatch):
    suite = _suite_file(tmp_path)
    log: list[str] = []
    sweep = _sweep(tmp_path, suite, log)
    assert sweep.run() == 0
    rows = read_csv(sweep.runs_csv)
    with open(sweep.runs_csv) as f:
        assert next(csv.reader(f)) == list(ROW_COLUMNS)
    assert len({r["trial_id"] for r in rows}) == 4
    assert len(rows) == 8  # one row per eval point: steps 60 and 120
    pets = [r for r in rows if r["agent"] == "pets"]
    assert {r["env_id"] for r in rows} == {"InvertedPendulum-v5"} and {r["task"] for r in rows} == {"ip50"}
    assert all(r["model_nll"] != "" for r in pets if r["env_step"] == "120")
    assert all(r["model_nll"] == "" and r["objective"] == "none" for r in rows if r["agent"] == "sac")
    assert all(r["commit"] == "test" and "host=" in r["machine"] and float(r["wall_time"]) > 0 for r in rows)

    # the report needs runs.csv and nothing else
    alone = tmp_path / "alone" / "tiny"
    alone.mkdir(parents=True)
    shutil.copy(sweep.runs_csv, alone / "runs.csv")
    summary, pngs = report.write_report(tmp_path / "alone", "tiny")
    text = summary.read_text()
    assert "InvertedPendulum-v5" in text and "pets nll" in text and "sac model-free" in text
    assert "return @ 120 steps" in text and "(n=2)" in text and "`test`" in text
    assert [p.name for p in pngs] == ["curve_ip50.png"] and pngs[0].stat().st_size > 1000

    # a second sweep finds every trial finished: nothing runs, no run dir is touched
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs" / "tiny").glob("*/metrics.csv")}
    calls = []
    monkeypatch.setattr(online, "run_trial", lambda *a, **k: calls.append(a))
    again = _sweep(tmp_path, suite)
    assert again.pending() == [] and again.run() == 0 and calls == []
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes
    assert len(read_csv(sweep.runs_csv)) == 8


@pytest.mark.mujoco
def test_failing_trial_is_retried_recorded_then_resumed(tmp_path, monkeypatch):
    suite = _suite_file(tmp_path)
    original = RunDir.log

    def flaky(self, row):  # noqa: ANN001, ANN202 - dies after its first checkpoints, on every attempt
        if row.get("env_step", 0) >= 100:
            raise RuntimeError("simulated crash at step 100")
        original(self, row)

    monkeypatch.setattr(RunDir, "log", flaky)
    sweep = _sweep(tmp_path, suite, retries=1, only="sac/*/s0")
    assert sweep.run() == 1
    fails = read_csv(sweep.failures_csv)
    assert [f["attempt"] for f in fails] == ["1", "2"] and [f["final"] for f in fails] == ["False", "True"]
    assert "simulated crash" in fails[0]["error"] and "flaky" in fails[0]["traceback_tail"]
    with open(sweep.failures_csv) as f:
        assert next(csv.reader(f)) == list(FAILURE_COLUMNS)
    assert read_csv(sweep.runs_csv) == []  # a failed trial writes no rows
    trial_dir = tmp_path / "runs" / "tiny" / sweep.trials[0].trial_id
    assert (trial_dir / "checkpoints" / "latest.pt").exists()

    monkeypatch.setattr(RunDir, "log", original)
    log: list[str] = []
    again = _sweep(tmp_path, suite, log, only="sac/*/s0")
    assert again.status()[0][1].startswith("resume@")
    assert again.run() == 0
    assert any("resumed at step" in line for line in log), log
    rows = read_csv(again.runs_csv)
    assert [int(r["env_step"]) for r in rows] == [60, 120]


def _append_many(path: str, who: int) -> None:
    for i in range(25):
        append_rows(path, [{"a": who, "b": i}, {"a": who, "b": -i}], ["a", "b"])


def test_concurrent_appends_lose_no_rows(tmp_path):
    import multiprocessing as mp

    path = str(tmp_path / "c.csv")
    procs = [mp.get_context("fork").Process(target=_append_many, args=(path, w)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    rows = read_csv(path)
    assert len(rows) == 150 and len({(r["a"], r["b"]) for r in rows}) == 3 * 49
    assert [p.exitcode for p in procs] == [0, 0, 0]


def test_append_rows_checks_columns_and_header(tmp_path):
    path = tmp_path / "x.csv"
    append_rows(path, [{"a": 1}], ["a", "b"])
    append_rows(path, [{"a": 2, "b": 1.5}], ["a", "b"])
    assert read_csv(path) == [{"a": "1", "b": ""}, {"a": "2", "b": "1.5"}]
    with pytest.raises(ValueError, match="unknown columns"):
        append_rows(path, [{"c": 1}], ["a", "b"])
    with pytest.raises(ValueError, match="header got"):
        append_rows(path, [{"a": 1}], ["a"])


@pytest.mark.mujoco
def test_gpu_suite_runs_at_a_tiny_scale_on_cpu(tmp_path):
    tiny = ["device=cpu", "model.hidden_sizes=[8]", "model.ensemble_size=2", "model.num_elites=1",
            "model.max_epochs=1", "model.batch_size=32", "planner.population=8", "planner.particles=1",
            "planner.iterations=1", "planner.horizon=3", "mbpo.updates_per_step=1", "mbpo.rollouts_per_step=4",
            "sac.batch_size=16", "sac.net_arch=[8]"]
    argv = ["gpu", "--budget-scale", "0.0004", "--seeds", "1", "--max-episode-steps", "10", "--threads", "1",
            "--only", "pets/*/nll/*,mbpo/*/nll/*,sac/hopper*", "--results-dir", str(tmp_path / "res"),
            "--runs-dir", str(tmp_path / "runs")]
    for s in tiny:
        argv += ["--set", s]
    assert online.main(argv) == 0
    rows = read_csv(tmp_path / "res" / "gpu-x0.0004-custom" / "runs.csv")
    cells = {(r["agent"], r["env_id"]) for r in rows}
    assert cells == {("pets", "HalfCheetah-v5"), ("mbpo", "Hopper-v5"), ("mbpo", "Walker2d-v5"),
                     ("sac", "Hopper-v5")}
    assert report.main(["gpu-x0.0004-custom", "--results-dir", str(tmp_path / "res")]) == 0


@pytest.mark.mujoco
@pytest.mark.slow  # two spawned workers import torch, gymnasium and SB3
def test_process_pool_backend(tmp_path):
    sweep = _sweep(tmp_path, _suite_file(tmp_path), workers=2, only="sac/*")
    assert sweep.run() == 0
    assert len({r["trial_id"] for r in read_csv(sweep.runs_csv)}) == 2


@pytest.mark.mujoco
@pytest.mark.slow  # starts a local Ray instance
@pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                    reason="ray is not installed (optional extra: pip install 'mbrl-po[ray]')")
def test_ray_backend_on_a_local_instance(tmp_path):
    sweep = _sweep(tmp_path, _suite_file(tmp_path), workers=2, ray_address="local", only="sac/*")
    assert sweep.run() == 0
    rows = read_csv(sweep.runs_csv)
    assert len({r["trial_id"] for r in rows}) == 2 and len(rows) == 4


def test_report_from_a_synthetic_csv_pairs_pg_with_nll(tmp_path):
    rows = []
    for obj, u, shift in (("nll", "", 0.0), ("pg", "learned", 50.0), ("beta_nll", "", 10.0), ("none", "", -100.0)):
        agent = "sac" if obj == "none" else "pets"
        for seed in range(3):
            for step in (500, 1000):
                rows.append({"agent": agent, "env_id": "Reacher-v5", "task": "reacher", "objective": obj,
                             "u_option": u, "seed": seed, "env_step": step,
                             "eval_return": step / 10 + shift + seed,
                             "model_nll": "" if agent == "sac" else 1.0 - shift / 100,
                             "rollout_error": "" if agent == "sac" else 0.5 - shift / 1000, "machine": "m",
                             "commit": "abc", "config_hash": f"h{obj}", "trial_id": f"{obj}{seed}"})
    # a second agent on the same task with a longer budget: each agent is compared at its own final step
    for obj, shift in (("nll", 0.0), ("pg", -20.0)):
        for seed in range(3):
            for step in (1000, 2000):
                rows.append({"agent": "mbpo", "env_id": "Reacher-v5", "task": "reacher", "objective": obj,
                             "u_option": "learned" if obj == "pg" else "", "seed": seed, "env_step": step,
                             "eval_return": step / 20 + shift + seed, "model_nll": 2.0, "rollout_error": 0.3,
                             "machine": "m", "commit": "abc", "config_hash": f"m{obj}", "trial_id": f"m{obj}{seed}"})
    append_rows(tmp_path / "r" / "runs.csv", rows + rows[:2], ROW_COLUMNS)  # duplicated rows count once
    summary, pngs = report.write_report(tmp_path, "r")
    text = summary.read_text()
    assert "| pets nll | 101.0 ± 2.5 (n=3) | — |" in text  # budgets: each agent's final step
    assert "pets pg-learned − pets nll | 1000 | eval_return | 50.000 ± 0.000 | 3 | PG better" in text
    assert "pets pg-learned − pets nll | 1000 | rollout_error | -0.050 ± 0.000 | 3 | PG better" in text
    assert "mbpo pg-learned − mbpo nll | 2000 | eval_return | -20.000 ± 0.000 | 3 | PG worse" in text
    assert "pets pg-learned − pets nll | 1000 | model_nll | -0.500 ± 0.000 | 3 | PG better" in text
    # any model objective is paired with NLL, under its own name
    assert "pets beta_nll − pets nll | 1000 | eval_return | 10.000 ± 0.000 | 3 | beta_nll better" in text
    assert "pets beta_nll − pets nll | 1000 | model_nll | -0.100 ± 0.000 | 3 | beta_nll better" in text
    assert "sac model-free − " not in text
    assert "| pets nll | 1000 | 1.0000 ± 0.0000 (n=3) |" in text
    assert "| mbpo nll | 2000 | 2.0000 ± 0.0000 (n=3) |" in text
    assert "sac model-free" in text and len(pngs) == 1


def test_prune_superseded_moves_rows_of_old_trials_and_keeps_them(tmp_path):
    runs = tmp_path / "cpu" / "runs.csv"
    row = {c: "" for c in ROW_COLUMNS}
    append_rows(runs, [{**row, "trial_id": "old", "env_step": "10"}, {**row, "trial_id": "new", "env_step": "10"},
                       {**row, "trial_id": "old", "env_step": "20"}], ROW_COLUMNS)
    assert online.prune_superseded(runs, keep={"new"}) == ["old"]
    assert [r["trial_id"] for r in read_csv(runs)] == ["new"]
    moved = read_csv(runs.with_name("superseded.csv"))
    assert [(r["trial_id"], r["env_step"]) for r in moved] == [("old", "10"), ("old", "20")]
    assert online.prune_superseded(runs, keep={"new"}) == []  # nothing left to move: a no-op
    append_rows(runs, [{**row, "trial_id": "older", "env_step": "5"}], ROW_COLUMNS)
    assert online.prune_superseded(runs, keep={"new"}) == ["older"]
    assert [r["trial_id"] for r in read_csv(runs.with_name("superseded.csv"))] == ["old", "old", "older"]
    assert list(read_csv(runs)[0].keys()) == list(ROW_COLUMNS)


def test_report_shows_partial_rows_as_running_beside_anchors_and_every_seed(tmp_path):
    def row(tid: str, seed: int, step: int, ret: float, wall: float) -> dict:
        return {"agent": "mbpo", "env_id": "Hopper-v5", "task": "hopper", "objective": "nll", "u_option": "",
                "seed": seed, "env_step": step, "eval_return": ret, "model_nll": -3.0, "rollout_error": 0.5,
                "wall_time": wall, "machine": "m", "commit": "c1", "config_hash": "h", "trial_id": tid}

    folder = tmp_path / "loco"
    done = [row("a", 0, s, s / 10, s * 0.3) for s in range(1000, 21000, 1000)]
    # seed 1 is still running; the partial file also holds a stale copy of the finished trial's first row
    part = [row("b", 1, s, s / 20, s * 0.6) for s in range(1000, 11000, 1000)] + [{**done[0], "eval_return": -1}]
    append_rows(folder / "runs.csv", done, ROW_COLUMNS)
    append_rows(folder / "partial.csv", part, ROW_COLUMNS)
    anchors = tmp_path / "anchors.csv"
    anchors.write_text("env,agent,source,step,return_mean,return_min,return_max,n_seeds\n"
                       "Hopper,mbpo,paperX,9000,400,,,5\nHopper,mbpo,paperX,11000,600,,,5\n"
                       "Hopper,mbpo,paperX,20000,1000,,,5\nHopper,sac,distantpub,0,0,,,3\nHopper,sac,distantpub,90000,9,,,3\n"
                       "Walker2d,mbpo,paperY,10000,77,,,5\n")
    summary, pngs = report.write_report(tmp_path, "loco", anchors_csv=anchors)
    text = summary.read_text()
    assert "1 finished trials, 1 still running" in text
    assert "| agent objective | return @ 10000 steps | return @ 20000 steps |" in text  # round budgets
    assert "| mbpo nll | 750.0 ± 3176.6 (n=2) | 2000.0 (n=1) |" in text  # seed 0: 1000, seed 1: 500 at 10k
    assert "| *published: mbpo (paperX, n=5)* | *500* | *1000* |" in text  # interpolated at 10k
    assert "paperY" not in text  # another env family's anchor is not shown
    assert "distantpub" not in text  # nor one with no point near a budget (0 and 90k: too far apart)
    # every seed: state, last step, last-10% mean and CPU minutes per 1k steps (wall 0.3 s/step = 5.0 min)
    assert "| mbpo nll | 0 | done | 20000 | 2000.0 | 1900.0 (n=3) | 2000.0 | 5.0 |" in text  # 18k..20k
    assert "| mbpo nll | 1 | running | 10000 | 500.0 | 475.0 (n=2) | 500.0 | 10.0 |" in text
    assert pngs[0].stat().st_size > 1000


@pytest.mark.mujoco
def test_snapshot_writes_rows_of_unfinished_trials_only(tmp_path):
    suite = _suite_file(tmp_path)
    sweep = _sweep(tmp_path, suite, only="sac/*/s0")
    assert sweep.run() == 0
    # a second trial that was started and stopped: its metrics.csv holds one eval so far
    other = _sweep(tmp_path, suite, only="sac/*/s1")
    t = other.trials[0]
    run = other.runs_root / t.trial_id
    run.mkdir(parents=True)
    (run / "commits.txt").write_text("abc\ndef\n")
    (run / "metrics.csv").write_text("env_step,episode,episode_return,episode_length,eval_return,model_nll,"
                                     "model_mse,rollout_error,u,model_fit_s,wall_time\n"
                                     "60,,,,12.5,,,,,,3.0\n61,1,10,61,,,,,,,3.1\n")
    both = _sweep(tmp_path, suite)
    rows, labels = both.snapshot()
    assert labels == [f"{t.label}@60"]
    assert [(r["trial_id"], r["env_step"], r["eval_return"], r["commit"]) for r in rows] == \
        [(t.trial_id, 60, "12.5", "abc+def")]
    assert read_csv(both.partial_csv)[0]["trial_id"] == t.trial_id
    assert not list(both.partial_csv.parent.glob(".partial*"))  # replaced atomically, no temp file left
    assert online.main([str(suite), "--snapshot", "--results-dir", str(tmp_path / "results"), "--runs-dir",
                        str(tmp_path / "runs"), "--name", "tiny"]) == 0


def _eval(step: int, ret: float, wall: float) -> dict[str, str]:
    return {"env_step": str(step), "eval_return": str(ret), "wall_time": str(wall)}


def test_an_attempt_is_lost_when_restarted_or_when_no_checkpoint_can_bring_its_steps_back():
    before = [_eval(1000, 5.0, 10.0), _eval(2000, 7.0, 20.0), _eval(3000, 9.0, 30.0)]
    # resumed from its checkpoint at 2000: the rows to 2000 are the same (wall times too), 3000 comes back
    assert not online.attempt_lost(before, before[:2], has_checkpoint=True)
    assert not online.attempt_lost(before, [*before, _eval(4000, 1.0, 40.0)], has_checkpoint=False)
    # the run directory went with the machine: nothing, and no checkpoint
    assert online.attempt_lost(before, [], has_checkpoint=False)
    # restarted from step 0: the same returns in the random phase, but other wall times
    assert online.attempt_lost(before, [_eval(1000, 5.0, 11.5)], has_checkpoint=True)
    assert online.attempt_lost(before, before[:2], has_checkpoint=False)  # 3000 cannot come back
    assert not online.attempt_lost([], [], has_checkpoint=False)


@pytest.mark.mujoco
def test_snapshot_keeps_the_rows_of_an_attempt_whose_run_dir_was_lost(tmp_path):
    suite = _suite_file(tmp_path)
    sweep = _sweep(tmp_path, suite, only="sac/*/s1")
    t = sweep.trials[0]
    run = sweep.runs_root / t.trial_id
    header = "env_step,episode,episode_return,episode_length,eval_return,model_nll,model_mse,rollout_error,u," \
             "model_fit_s,wall_time\n"
    run.mkdir(parents=True)
    (run / "metrics.csv").write_text(header + "20,,,,1.5,,,,,,2.0\n40,,,,2.5,,,,,,4.0\n")
    sweep.snapshot()
    assert not sweep.lost_csv.exists()  # still there: nothing lost
    shutil.rmtree(run)  # a replaced machine: the run directory is gone
    rows, _ = sweep.snapshot()
    assert rows == [] and read_csv(sweep.partial_csv) == []
    lost = read_csv(sweep.lost_csv)
    assert [(r["trial_id"], r["env_step"], r["eval_return"], r["lost_attempt"]) for r in lost] == \
        [(t.trial_id, "20", "1.5", "1"), (t.trial_id, "40", "2.5", "1")]
    # the trial restarts from step 0 (other wall times); a second loss is attempt 2; repeats add nothing
    run.mkdir(parents=True)
    (run / "metrics.csv").write_text(header + "20,,,,1.5,,,,,,2.7\n")
    sweep.snapshot()
    sweep.snapshot()
    assert len(read_csv(sweep.lost_csv)) == 2
    shutil.rmtree(run)
    sweep.snapshot()
    assert [(r["wall_time"], r["lost_attempt"]) for r in read_csv(sweep.lost_csv)] == \
        [("2.0", "1"), ("4.0", "1"), ("2.7", "2")]
    # the report lists the lost attempts per task, apart from the tables
    append_rows(sweep.runs_csv, [{**r, "trial_id": "other", "seed": 0} for r in read_csv(sweep.lost_csv)[:2]
                                 for r in [{k: r[k] for k in ROW_COLUMNS}]], ROW_COLUMNS)
    summary, _ = report.write_report(sweep.results_dir.parent, sweep.results_dir.name)
    text = summary.read_text()
    assert "Lost attempts" in text
    assert re.search(r"\| sac model-free \| 1 \| 1 \| 40 \| 2\.5 \|", text)
    assert re.search(r"\| sac model-free \| 1 \| 2 \| 20 \| 1\.5 \|", text)


@pytest.mark.mujoco
def test_a_trial_held_by_another_sweep_is_refused_not_joined(tmp_path):
    sweep = _sweep(tmp_path, _suite_file(tmp_path), only="sac/*/s0")
    t = sweep.trials[0]
    held = RunDir.create(sweep.runs_root, t.config, t.trial_id, lock=True)  # another sweep runs this trial
    res = online.run_trial_safe(t.payload(), str(sweep.runs_root), "test")
    assert "in use by process" in res["error"]
    assert held.read_metrics() == []  # nothing was written into it
    held.release_lock()
    assert "rows" in online.run_trial_safe(t.payload(), str(sweep.runs_root), "test")


def test_read_csv_of_a_file_being_written_returns_only_its_whole_rows(tmp_path):
    path = tmp_path / "metrics.csv"
    assert read_csv(path) == []  # not created yet
    path.write_text("env_step,return")  # the header is being written
    assert read_csv(path) == []
    path.write_text("env_step,return\r\n1,2.5\r\n3,4")  # the second row is being written: it may be cut short
    assert read_csv(path) == [{"env_step": "1", "return": "2.5"}]
    path.write_text("env_step,return\r\n1,2.5\r\n3,4.25\r\n")  # finished: nothing is left out
    assert read_csv(path) == [{"env_step": "1", "return": "2.5"}, {"env_step": "3", "return": "4.25"}]
    path.write_text("env_step,return\r\n1,2.5\r\n3,4.25")  # edited by hand: its last line lacks its newline
    assert read_csv(path, whole_lines=False)[-1] == {"env_step": "3", "return": "4.25"}


def test_the_curve_band_is_drawn_from_three_seeds_on():
    assert report.band([100.0, 300.0]) == (200.0, 200.0, 200.0)  # n = 2: the t band (±1,270) would hide the plot
    m, lo, hi = report.band([100.0, 200.0, 300.0])
    half = 4.302653 * 100.0 / np.sqrt(3)  # t(0.975, 2) x sd / sqrt(n)
    assert m == pytest.approx(200.0) and lo == pytest.approx(200.0 - half, rel=1e-5)
    assert hi == pytest.approx(200.0 + half, rel=1e-5)


def test_equal_step_table_sets_every_seed_and_lost_attempt_side_by_side_per_window():
    def rows(tid: str, obj: str, seed: int, last: int, scale: float) -> list[dict]:
        return [{"agent": "mbpo", "env_id": "Hopper-v5", "task": "hopper", "objective": obj,
                 "u_option": "" if obj == "nll" else "inverse_cov-residual", "seed": str(seed), "env_step": str(s),
                 "eval_return": str(s * scale), "trial_id": tid, "config_hash": "h", "commit": "c",
                 "wall_time": "1", "lost_attempt": "1"} for s in range(1000, last + 1, 1000)]

    groups = report.build_groups(rows("n0", "nll", 0, 20000, 0.1) + rows("p0", "pg", 0, 15000, 0.2))["hopper"]
    lost = report.lost_attempts(rows("n0", "nll", 0, 12000, 0.3))["hopper"]
    text = report.equal_step_table(groups, lost, running={"p0"})
    lines = [ln for ln in text.splitlines() if ln.startswith("| mbpo")]
    # 20k steps -> 2k windows; window (0, 2k] holds the evaluations at 1k and 2k
    assert lines[0] == ("| mbpo nll | 0 | done | 20000 | 150 | 350 | 550 | 750 | 950 | 1150 | 1350 | 1550 | 1750 "
                        "| 1950 |")
    assert lines[1] == ("| mbpo nll | 0 | lost attempt 1 | 12000 | 450 | 1050 | 1650 | 2250 | 2850 | 3450 "
                        "| — | — | — | — |")
    # the running PG trial stopped at 15k: its 14-16k window is not covered, so it is not compared
    assert lines[2] == ("| mbpo pg-inverse_cov-residual | 0 | running | 15000 | 300 | 700 | 1100 | 1500 | 1900 "
                        "| 2300 | 2700 | — | — | — |")
    assert "2000-step window" in text and "| 0–2k | 2–4k |" in text
    assert "Lost attempts are listed" in text and "Lost attempts" not in report.equal_step_table(groups)
    assert report.equal_step_table(report.build_groups(rows("n0", "nll", 0, 5000, 1.0))["hopper"]) == ""
    assert [report.window_width(s) for s in (1000, 5000, 20000, 21000, 100000, 125000)] == \
        [100, 500, 2000, 5000, 10000, 20000]
    small = report.build_groups(rows("n0", "nll", 0, 1000, 1.0) + rows("p0", "pg", 0, 1000, 1.0))["hopper"]
    assert "| mbpo nll | 0 | done | 1000 | — | — | — | — | — | — | — | — | — | 1000 |" in report.equal_step_table(small)
    assert "0.9–1k" in report.equal_step_table(small)


@pytest.mark.parametrize(("a", "b", "lower", "verdict"), [
    ({0: 5.0, 1: 7.0}, {0: 5.0, 1: 7.0}, False, "equal in every pair"),   # identical curves: no interval
    ({0: 6.0, 1: 8.0}, {0: 5.0, 1: 7.0}, False, "PG better"),             # +1 in each pair: zero-width CI off 0
    ({0: 6.0, 1: 8.0}, {0: 5.0, 1: 7.0}, True, "PG worse"),               # the same, where lower is better
    ({0: 6.0, 1: 6.0}, {0: 5.0, 1: 7.0}, False, "inside the CI"),         # +1 and -1
    ({0: 6.0}, {0: 5.0, 1: 7.0}, False, "too few seeds"),
])
def test_paired_verdict_names_equal_pairs_and_reads_the_interval(a, b, lower, verdict):
    m, h, n = report.paired_difference(a, b)
    assert report._verdict(m, h, n, lower_is_better=lower) == verdict


def test_early_stop_harness_replays_the_refit_schedule_for_each_metric(tmp_path):
    """benchmarks/harness/early_stop.py: a first fit and warm refits per criterion, from the same start."""
    from benchmarks.harness import early_stop
    from mbrl_po.data.collect import save_npz

    rng = np.random.default_rng(0)

    def npz(name, n):
        obs = rng.normal(size=(n, 11)).astype(np.float32)
        act = rng.uniform(-1, 1, size=(n, 3)).astype(np.float32)
        ends = np.zeros(n, dtype=bool)
        ends[24::25] = True
        starts = np.roll(ends, 1)  # row 0 starts an episode: the last row ends one
        return save_npz(tmp_path / name, {
            "obs": obs, "actions": act, "next_obs": obs + 0.1 * np.tanh(obs) + 0.05 * act.sum(1)[:, None],
            "rewards": obs[:, 0], "terminated": ends, "truncated": np.zeros(n, dtype=bool), "episode_starts": starts},
            {"mean_return": 1.5, "command": f"made for {name}"})

    train, test = npz("train.npz", 400), npz("test.npz", 100)
    out = tmp_path / "out"
    args = ["--data", str(train), "--test", str(test), "--start", "300", "--refits", "2", "--every", "50",
            "--max-epochs", "2", "--out", str(out)]
    assert early_stop.main(args) == 0
    rows = read_csv(out / "refits.csv")
    assert [(r["metric"], r["seed"], r["fit"], r["rows"]) for r in rows] == [
        (m, "0", f, n) for m in ("nll", "mse") for f, n in (("first", "300"), ("warm 1", "350"), ("warm 2", "400"))]
    assert all(1 <= int(r["epochs"]) <= 2 and np.isfinite(float(r["test_rollout_rmse"])) for r in rows)
    text = (out / "summary.md").read_text()
    assert "| nll | 2 |" in text and "| mse | 2 |" in text  # the warm-refit means, one row per metric
    assert "`train.npz` (400 rows, mean return 1.5; `made for train.npz`)" in text  # the sources' provenance
    assert (out / "refits.png").read_bytes()[:4] == b"\x89PNG"
    # --append runs only the seeds the table lacks and keeps the rows it has
    assert early_stop.main([*args, "--seeds", "0", "1", "--append"]) == 0
    again = read_csv(out / "refits.csv")
    assert again[:6] == rows
    assert [(r["metric"], r["seed"]) for r in again[6:]] == [("nll", "1")] * 3 + [("mse", "1")] * 3
    text = (out / "summary.md").read_text()
    assert "| nll | 4 |" in text and len((out / "runs.txt").read_text().splitlines()) == 2
    assert text.count("\n| 0 | ") == 1 and text.count("\n| 1 | ") == 1  # the MSE - NLL row of each seed
    with pytest.raises(SystemExit):  # more rows asked for than the data has
        early_stop.main([*args[:-6], "--refits", "3", "--every", "50", "--out", str(out)])
    with pytest.raises(SystemExit):  # appending another schedule to these rows
        early_stop.main([*args[:-6], "--refits", "1", "--every", "50", "--out", str(out), "--append"])


def test_run_order_resumes_checkpoints_first_and_puts_reruns_of_known_rows_last(tmp_path, capsys, monkeypatch):
    """``--plan``: a rerun on the same machine kind at the same commit only rewrites committed rows."""
    suite = _suite_file(tmp_path)
    sweep = _sweep(tmp_path, suite)
    here, other = "host=vm; cpu=A (2 cores); gpu=none", "host=vm; cpu=B (2 cores); gpu=none"
    t = {x.label: x for x in sweep.trials}
    labels = list(t)
    a, b, c, d = labels[:4]
    sweep.partial_csv.parent.mkdir(parents=True, exist_ok=True)

    def rows(label, step, machine, commit):
        return [{"trial_id": t[label].trial_id, "env_step": s, "eval_return": 1.0, "machine": machine,
                 "commit": commit} for s in range(20, step + 1, 20)]

    append_rows(sweep.partial_csv, rows(a, 60, here, "c1"), ROW_COLUMNS)   # its own attempt, checkpointed at 60
    append_rows(sweep.lost_csv, [*rows(b, 100, here, "c1"),               # a lost attempt here: rerun rewrites it
                                 *rows(c, 100, other, "c1"),              # lost on another machine kind: new here
                                 *rows(d, 100, here, "c0+c1")], ROW_COLUMNS)  # begun at another commit: new here
    run = sweep.runs_root / t[a].trial_id
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "latest.pt").write_bytes(b"x")
    (run / "metrics.csv").write_text("env_step,eval_return\n30,\n60,1.0\n")
    order = [(x.label, start, redundant) for x, start, redundant in sweep.run_order(here, "c1")]
    rest = [(x, 0, 0) for x in labels if x not in (a, b, c, d)]
    assert order == [(a, 60, 0), (c, 0, 0), (d, 0, 0), *rest, (b, 0, 100)]
    # a finished trial is not planned
    append_rows(sweep.runs_csv, [{"trial_id": t[c].trial_id, "env_step": 120, "eval_return": 2.0}], ROW_COLUMNS)
    assert c not in [x.label for x, *_ in sweep.run_order(here, "c1")]
    # the command line prints the labels in that order, one per line (restart.sh splits them over the cores)
    monkeypatch.setattr(online, "machine_string", lambda: here)
    assert online.main([str(suite), "--plan", "c1", "--results-dir", str(tmp_path / "results"), "--runs-dir",
                        str(tmp_path / "runs"), "--name", "tiny"]) == 0
    out = capsys.readouterr()
    assert out.out.split() == [a, d, *(x for x, *_ in rest), b] and "redundant steps" in out.err
