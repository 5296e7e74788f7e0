"""The planner sweep: setting names, resumable rows, paired episodes, the summary it writes."""

from __future__ import annotations

import pytest

from benchmarks.harness import planner_sweep as ps
from benchmarks.harness.online import read_csv
from mbrl_po.agents.common import RunDir
from mbrl_po.agents.pets import PETS
from mbrl_po.config import load_agent_config


def test_settings_parse_and_bad_ones_name_the_form():
    s = ps.parse_setting("iCEM-100x5x30x3")
    assert (s.optimizer, s.population, s.particles, s.horizon, s.iterations) == ("icem", 100, 5, 30, 3)
    assert s.name == "icem-100x5x30x3" and s.rows_per_action == 100 * 5 * 30 * 3
    assert s.precision == "float32" and ps.parse_setting("cem-1x2x3x4@float32").name == "cem-1x2x3x4"
    b = ps.parse_setting("cem-100x5x30x3@BF16")
    assert (b.precision, b.population, b.name) == ("bf16", 100, "cem-100x5x30x3@bf16")
    for bad in ("cem-64x5x10", "ppo-1x1x1x1", "cem-0x5x10x3", "cem-64x5x10x3x1", "cem-64x5x10x3@fp16"):
        with pytest.raises(ValueError, match="allowed <cem|icem|mppi>"):
            ps.parse_setting(bad)


def test_summary_is_per_setting_in_order():
    rows = [{"setting": "b", "return": r, "ms_per_action": ms, "steps": "5"} for r, ms in ((1, 10), (3, 30))] + \
        [{"setting": "a", "return": 7, "ms_per_action": 60, "steps": "5"}]
    out = ps.summary_rows(rows)
    assert [s["setting"] for s in out] == ["b", "a"]
    assert out[0]["return_mean"] == 2 and out[0]["ms_per_action"] == 20 and out[0]["episodes"] == 2
    assert out[1]["cpu_min_per_1k"] == pytest.approx(1.0)  # 60 ms per action = 60 s per 1k steps


@pytest.mark.mujoco
def test_sweep_on_a_tiny_pets_run_is_paired_and_resumable(tmp_path, capsys):
    cfg = load_agent_config("pets", "inverted_pendulum", {
        "device": "cpu", "steps": 60,
        "model": {"ensemble_size": 2, "num_elites": 2, "hidden_sizes": [16, 16], "max_epochs": 3,
                  "batch_size": 32},
        "planner": {"horizon": 4, "population": 10, "particles": 2, "iterations": 1},
        "loop": {"init_steps": 30, "train_every": 30, "eval_every": 60, "checkpoint_every": 30}})
    run = RunDir.create(tmp_path, cfg, "run")
    PETS(cfg, run, progress=False).train()
    out = tmp_path / "sweep"
    argv = ["--run", str(run.path), "--settings", "cem-8x2x3x1", "mppi-6x1x2x2@bf16", "--episodes", "2",
            "--episode-steps", "5", "--out", str(out)]
    assert ps.main(argv) == 0
    rows = read_csv(out / "sweep.csv")
    assert [(r["setting"], r["episode"]) for r in rows] == [("cem-8x2x3x1", "0"), ("cem-8x2x3x1", "1"),
                                                           ("mppi-6x1x2x2@bf16", "0"), ("mppi-6x1x2x2@bf16", "1")]
    assert {r["env_seed"] for r in rows if r["episode"] == "0"} == {str(ps.ENV_SEED_BASE)}  # paired
    assert all(0 < int(r["steps"]) <= 5 and float(r["ms_per_action"]) > 0 for r in rows)
    assert all(r["model_step"] == "60" for r in rows)
    text = (out / "sweep.md").read_text()
    assert "| cem-8x2x3x1 | 2 |" in text and "mppi-6x1x2x2@bf16" in text
    assert (out / "sweep.png").stat().st_size > 1000
    capsys.readouterr()
    assert ps.main(argv) == 0  # rerun: every episode is already there, nothing is planned again
    assert "episode" not in capsys.readouterr().out.replace("episodes", "")
    assert len(read_csv(out / "sweep.csv")) == 4
