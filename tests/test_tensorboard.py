"""Runs log through stable-baselines3's logger to TensorBoard beside metrics.csv (when tensorboard is installed)."""

from __future__ import annotations

import pytest

from mbrl_po.agents.common import TENSORBOARD_DIR, TENSORBOARD_VAR, RunDir
from mbrl_po.config import load_agent_config

pytest.importorskip("tensorboard", reason="optional extra: pip install 'mbrl-po[tensorboard]'")


def _scalars(folder):  # noqa: ANN001, ANN202 - {tag: [(step, value), ...]} of a TensorBoard log folder
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_metrics_rows_also_go_to_tensorboard(tmp_path, monkeypatch):
    monkeypatch.delenv(TENSORBOARD_VAR, raising=False)
    cfg = load_agent_config("sac", "inverted_pendulum", {"device": "cpu"})
    run = RunDir.create(tmp_path, cfg, "r")
    run.log({"env_step": 10, "episode": 1, "episode_return": 9.5, "episode_length": 10, "wall_time": 0.5})
    run.log({"env_step": 20, "eval_return": 42.0, "model_nll": float("nan"), "u": 0.25, "wall_time": 1.0})
    got = _scalars(run.path / TENSORBOARD_DIR)
    assert got["rollout/episode_return"] == [(10, 9.5)] and got["eval/eval_return"] == [(20, 42.0)]
    assert got["model/u"] == [(20, 0.25)] and [s for s, _ in got["time/wall_time"]] == [10, 20]
    assert "model/model_nll" not in got  # NaN cells stay in metrics.csv as nan, not in the curves
    assert [r["eval_return"] for r in run.read_metrics()] == ["", "42"]  # metrics.csv is unchanged


def test_tensorboard_can_be_switched_off(tmp_path, monkeypatch):
    monkeypatch.setenv(TENSORBOARD_VAR, "0")
    cfg = load_agent_config("sac", "inverted_pendulum", {"device": "cpu"})
    run = RunDir.create(tmp_path, cfg, "r")
    run.log({"env_step": 10, "eval_return": 1.0})
    assert not (run.path / TENSORBOARD_DIR).exists()
