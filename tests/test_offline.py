"""Offline objective comparison: known-answer metrics, segment split, config errors, and a tiny resumable run."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch

from benchmarks.harness import offline as off
from benchmarks.harness.stats import format_mean_ci, markdown_table, mean_ci, t_ppf
from mbrl_po.models.ensemble import GaussianEnsemble

# ---------------------------------------------------------------------------------------------------- stats


def test_student_t_and_mean_ci():
    for df, ref in [(1, 12.7062047), (2, 4.3026527), (4, 2.7764451), (29, 2.0452296), (200, 1.9718962)]:
        assert t_ppf(0.975, df) == pytest.approx(ref, rel=1e-6)
    assert t_ppf(0.025, 4) == pytest.approx(-2.7764451, rel=1e-6)
    m, hw, n = mean_ci([1.0, 2.0, 3.0, 4.0, 5.0])
    assert (m, n) == (3.0, 5) and hw == pytest.approx(2.7764451 * math.sqrt(2.5) / math.sqrt(5), rel=1e-6)
    assert math.isnan(mean_ci([1.0])[1]) and math.isnan(mean_ci([])[0])
    assert format_mean_ci(1.23456, 0.0123) == "1.235 ± 0.012" and format_mean_ci(2.0, math.nan) == "2.000"
    table = markdown_table(["a", "b"], [["x", 1]])
    assert table.splitlines() == ["| a | b |", "|:---|---:|", "| x | 1 |"]
    with pytest.raises(ValueError, match=r"rows\[0\]: has 1 cells, expected 2"):
        markdown_table(["a", "b"], [["x"]])
    with pytest.raises(ValueError, match="confidence"):
        mean_ci([1.0, 2.0], confidence=1.5)


# ---------------------------------------------------------------------------------------------------- metrics


def _model(ensemble_size=1, seed=0, learn_delta=True):
    torch.manual_seed(seed)
    return GaussianEnsemble(
        5, 2, ensemble_size=ensemble_size, num_elites=ensemble_size, hidden_sizes=(16,), learn_reward=False,
        learn_delta=learn_delta, normalize_inputs=False, normalize_targets=False,
    ).eval()


@torch.no_grad()
def test_coverage_and_nll_on_data_drawn_from_the_model():
    """Targets sampled from the model's own predictive: coverage 0.5/0.9, NLL = entropy, pred_std = RMSE."""
    model = _model()
    g = torch.Generator().manual_seed(1)
    obs, act = torch.randn(40_000, 5, generator=g), torch.randn(40_000, 2, generator=g)
    pred = model.predict(obs, act)
    mean, std = pred.next_obs_mean, pred.next_obs_std
    target = mean[0] + std[0] * torch.randn(mean.shape[1:], generator=g)
    m = off.predictive_metrics(mean, std, target)
    assert m["cov50"] == pytest.approx(0.5, abs=0.005)
    assert m["cov90"] == pytest.approx(0.9, abs=0.004)
    entropy = float((0.5 * (math.log(2 * math.pi) + 1) + torch.log(std[0].double())).mean())
    assert m["nll"] == pytest.approx(entropy, abs=0.01)
    assert m["pred_std"] == pytest.approx(m["rmse"], rel=0.01)
    assert m["rmse_member"] == pytest.approx(m["rmse"]) and m["nll_member"] == pytest.approx(m["nll"])
    # a too-narrow prediction under-covers, a too-wide one over-covers
    assert off.predictive_metrics(mean, 0.5 * std, target)["cov90"] < 0.7
    assert off.predictive_metrics(mean, 2.0 * std, target)["cov50"] > 0.8
    with pytest.raises(ValueError, match="expected"):
        off.predictive_metrics(mean, std, target[:, :3])


def test_mixture_moments_and_elites():
    g = torch.Generator().manual_seed(0)
    mean, std = torch.randn(3, 4, 2, generator=g, dtype=torch.float64), torch.rand(3, 4, 2, generator=g) + 0.1
    mu, var = off.mixture_moments(mean, std.double())
    samples = mean + std * torch.randn(200_000, 3, 4, 2, generator=g)  # equal-weight mixture, all components
    np.testing.assert_allclose(mu, samples.mean((0, 1)), atol=0.01)
    np.testing.assert_allclose(var, samples.var((0, 1)), rtol=0.02)
    target = torch.zeros(4, 2, dtype=torch.float64)
    only_first = off.predictive_metrics(mean, std, target, elites=[0])
    assert only_first["rmse"] == pytest.approx(float(mean[0].pow(2).mean().sqrt()))


def _segmented_data(n_seg=4, seg_len=6, seed=0):
    rng = np.random.default_rng(seed)
    obs, act, nxt = [], [], []
    for _ in range(n_seg):
        s = rng.normal(size=5).astype(np.float32)
        for _ in range(seg_len):
            a = rng.uniform(-1, 1, size=2).astype(np.float32)
            s2 = (0.9 * s + 0.1 * np.r_[a, a, a[:1]] + 0.01 * rng.normal(size=5)).astype(np.float32)
            obs.append(s), act.append(a), nxt.append(s2)
            s = s2
    seg = np.repeat(np.arange(n_seg), seg_len)
    return {"obs": np.stack(obs), "actions": np.stack(act), "next_obs": np.stack(nxt)}, seg


@torch.no_grad()
@pytest.mark.parametrize("ensemble_size", [1, 3])
def test_rollout_h1_equals_one_step_rmse_and_matches_a_loop(ensemble_size):
    model = _model(ensemble_size)
    test, seg = _segmented_data()
    m = off.evaluate_model(model, test, seg, horizons=(1, 3, 6))
    assert m["rollout_rmse_h1"] == pytest.approx(m["rmse"], rel=1e-6)
    # reference: explicit per-start loop; only starts with >= H steps left in their segment count
    o, a, y = (torch.as_tensor(test[k]) for k in ("obs", "actions", "next_obs"))
    for h in (3, 6):
        sq = []
        for t in range(len(seg)):
            if t + h - 1 >= len(seg) or seg[t + h - 1] != seg[t]:
                continue
            s = o[t : t + 1]
            for k in range(h):
                s = model.predict(s, a[t + k : t + k + 1]).next_obs_mean.mean(0)
            sq.append(((s[0] - y[t + h - 1]) ** 2).double())
        ref = float(torch.stack(sq).mean().sqrt())
        assert m[f"rollout_rmse_h{h}"] == pytest.approx(ref, rel=1e-5), h
    assert len([t for t in range(24) if t % 6 == 0]) == 4  # H = 6: one start per segment
    assert math.isnan(off.rollout_rmse(model, o, a, y, seg, horizons=(7,))[7])


def test_split_by_segment():
    n = 530
    data = {
        "terminated": np.zeros(n, bool), "truncated": np.zeros(n, bool), "episode_starts": np.zeros(n, bool),
    }
    data["episode_starts"][[0, 200]] = True
    data["truncated"][199] = True
    seg = off.segment_ids(data, 50)
    # episode 0: 200 rows -> 4 segments; episode 1: 330 rows -> 6 full + 1 of 30
    assert seg[-1] == 10 and seg[199] == 3 and seg[200] == 4 and np.all(np.diff(seg) >= 0)
    tr, te, te_seg = off.split_by_segment(data, seed=0, test_fraction=0.3, segment_length=50)
    assert len(np.intersect1d(tr, te)) == 0 and len(tr) + len(te) == n
    assert len(np.unique(te_seg)) == 3  # round(0.3 * 11)
    for s in np.unique(te_seg):
        assert set(te[te_seg == s]) == set(np.flatnonzero(seg == s))  # whole segments only
    tr2, te2, _ = off.split_by_segment(data, seed=0, test_fraction=0.3, segment_length=50)
    np.testing.assert_array_equal(te, te2)
    _, te3, _ = off.split_by_segment(data, seed=1, test_fraction=0.3, segment_length=50)
    assert not np.array_equal(te, te3)
    one_episode = {k: v[:200] for k, v in data.items()}
    with pytest.raises(ValueError, match="segment_length: 500 leaves 1 segment"):
        off.split_by_segment(one_episode, seed=0, test_fraction=0.3, segment_length=500)


# ---------------------------------------------------------------------------------------------------- config


def test_config_settings_and_errors(tmp_path):
    ours = off.OfflineConfig(out_dir=tmp_path)
    assert (ours.ensemble_size, ours.hidden_sizes, ours.learn_delta, ours.normalize) == (7, (200,) * 4, True, True)
    assert ours.batch_size == 256 and ours.patience == 5 and ours.pg_baseline == "loo"
    authors = off.OfflineConfig(setting="authors", out_dir=tmp_path)
    assert (authors.ensemble_size, authors.hidden_sizes, authors.activation) == (1, (64, 64), "relu")
    assert (authors.learn_delta, authors.normalize, authors.batch_size, authors.epochs) == (False, False, 0, 400)
    assert authors.patience == 0 and authors.weight_decay == 0.0 and authors.pg_baseline == "none"
    small = off.OfflineConfig(ensemble_size=3, out_dir=tmp_path)
    assert small.num_elites == 3
    name, opts = off.objective_for("pg-inverse_cov-marginal", authors)
    assert name == "pg" and opts["structure"] == "full" and opts["covariance"] == "marginal"
    assert opts["baseline"] == "none" and opts["entropy_weight"] == 1.0
    for kwargs, match in [
        ({"setting": "paper"}, "setting: got 'paper', allowed"),
        ({"variants": ("nll", "pg-foo")}, r"variant: got 'pg-foo', allowed \['mse'"),
        ({"variants": ("pg-fixed-0",)}, r"variant: got 'pg-fixed-0'.*'pg-fixed-<u>' with u > 0"),
        ({"seeds": ()}, "seeds"),
        ({"seeds": (0, 0)}, "seeds"),
        ({"lam": 0.0}, "lam"),
        ({"num_transitions": 5}, "num_transitions"),
        ({"horizons": (1, 200)}, r"horizons: got \(1, 200\)"),
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"activation": "gelu"}, "activation"),
        ({"num_elites": 9}, "num_elites"),
        ({"batch_size": -1}, "batch_size"),
    ]:
        with pytest.raises(ValueError, match=match):
            off.OfflineConfig(out_dir=tmp_path, **kwargs)


# ---------------------------------------------------------------------------------------------------- tiny run


@pytest.mark.mujoco
@pytest.mark.slow
def test_tiny_run_writes_reports_and_resumes_without_refitting(tmp_path, monkeypatch):
    calls = []
    real_fit = off.fit_variant

    def counting_fit(cfg, variant, seed, train):
        calls.append((variant, seed))
        return real_fit(cfg, variant, seed, train)

    monkeypatch.setattr(off, "fit_variant", counting_fit)
    kw = dict(
        num_transitions=300, epochs=2, patience=0, ensemble_size=2, hidden_sizes=(16,), segment_length=20,
        horizons=(1, 5), out_dir=tmp_path / "out", data_path=tmp_path / "data.npz", progress=False,
    )
    cfg = off.OfflineConfig(seeds=(0, 1), **kw)
    rows = off.run_offline(cfg)
    n_var = len(off.VARIANTS)
    assert len(calls) == 2 * n_var and len(rows) == 2 * n_var
    assert (tmp_path / "data.npz").is_file()
    csv_path = tmp_path / "out" / "offline_halfcheetah_ours.csv"
    md = (tmp_path / "out" / "offline_halfcheetah_ours.md").read_text()
    png = tmp_path / "out" / "offline_halfcheetah_ours.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "`pg-learned`" in md and "±" in md and "rollout RMSE H=5" in md
    assert "Paired difference to `nll`" in md and "Δ rollout H=5" in md
    for r in rows:
        assert r["rollout_rmse_h1"] == pytest.approx(r["rmse"], rel=1e-5)
        assert 0.0 <= r["cov50"] <= r["cov90"] <= 1.0
        assert r["train_rows"] + r["test_rows"] == 300 and r["epochs_run"] == 2
        assert all(math.isfinite(r[k]) for k in ("rmse", "nll", "fit_time_s"))
    assert {r["variant"] for r in rows} == set(off.VARIANTS)
    # seeds differ in split and init; within a seed the variants share the split
    by = {(r["variant"], r["seed"]): r for r in rows}
    assert by[("nll", 0)]["rmse"] != by[("nll", 1)]["rmse"]
    assert by[("nll", 0)]["test_rows"] == by[("pg-learned", 0)]["test_rows"]
    stamps = [r["timestamp"] for r in rows]

    # resume: nothing is refitted, the CSV is unchanged
    calls.clear()
    again = off.run_offline(cfg)
    assert calls == [] and [r["timestamp"] for r in again] == stamps
    with open(csv_path) as f:
        assert sum(1 for _ in csv.reader(f)) == 1 + 2 * n_var

    # adding a seed fits only the new rows
    cfg3 = off.OfflineConfig(seeds=(0, 1, 2), variants=("nll", "pg-learned"), **kw)
    rows3 = off.run_offline(cfg3)
    assert sorted(calls) == [("nll", 2), ("pg-learned", 2)]
    assert len(rows3) == 2 * n_var + 2

    # a changed configuration gets its own config_id (no false resume)
    calls.clear()
    off.run_offline(off.OfflineConfig(seeds=(0,), variants=("nll",), **{**kw, "lam": 2.0}))
    assert calls == [("nll", 0)]


@pytest.mark.mujoco
def test_tiny_authors_setting(tmp_path):
    cfg = off.OfflineConfig(
        setting="authors", num_transitions=250, epochs=3, seeds=(0,), segment_length=25, horizons=(1, 2),
        variants=("nll", "pg-inverse_cov-marginal"), out_dir=tmp_path, progress=False,
    )
    rows = off.run_offline(cfg)
    assert len(rows) == 2 and all(r["ensemble"] == "1x64x64 relu" for r in rows)
    assert all(r["epochs_run"] == 3 for r in rows)
    model, facts = off.fit_variant(cfg, "nll", 0, off.load_or_collect(cfg)[0])
    assert model.config.learn_delta is False and model.config.normalize_inputs is False
    # HalfCheetah in the authors' setting: the paper's Table 3 is printed beside our figures
    md = (tmp_path / f"{cfg.stem}.md").read_text()
    assert "Beside the paper's Table 3" in md
    assert "4.594 ± 0.032" in md  # the paper's NLL-trained RMSE
    assert "random-policy transitions" in md


def test_paper_comparison_table():
    rows = [{"variant": "nll", "seed": s, "rmse": 1.0 + s, "nll": 0.5} for s in range(3)]
    rows += [{"variant": "pg-scaled-residual", "seed": 0, "rmse": 2.0, "nll": 1.0}]
    table = off.paper_comparison(rows, ("mse", "nll", "pg-scaled-residual"))
    lines = [ln for ln in table.splitlines() if ln.startswith("| `")]
    assert len(lines) == 2  # mse has no rows here: no line
    assert lines[0].startswith("| `nll` | 3 | 2.000 ± ") and "4.594 ± 0.032" in lines[0] and "0.733 ± 0.008" in lines[0]
    assert "not in the paper" in lines[1]
    assert off.paper_comparison([], ("nll",)) == ""


def test_state_variance_table_matches_a_direct_computation(tmp_path):
    from benchmarks.harness import state_variance as sv

    cfg = off.OfflineConfig(
        setting="authors", num_transitions=250, epochs=3, seeds=(0,), segment_length=25, horizons=(1,),
        variants=("pg-state-inverse_cov-fs4",), out_dir=tmp_path, progress=False,
    )
    data, _ = off.load_or_collect(cfg)
    keep: dict = {}
    off.fit_variant(cfg, "pg-state-inverse_cov-fs4", 0, data, keep=keep)
    trainer = keep["trainer"]
    rm = trainer.objective.reward_matrix
    assert rm.kind == "state_inverse_cov" and rm.fit_steps == 4 and rm.fits >= 3  # one refit per update
    rows = sv.variance_table(trainer, data)
    model = trainer.model
    t = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in data.items()}
    with torch.no_grad():
        x = model.make_inputs(t["obs"], t["actions"])  # authors: raw inputs, absolute next states
        pred = model.predict(t["obs"], t["actions"], members=model.elite_idx)
        s2 = rm.log_variance(x).exp().numpy()
    r2 = (pred.next_obs_mean.mean(0) - t["next_obs"]).pow(2).numpy() if pred.next_obs_mean.ndim == 3 else \
        (pred.next_obs_mean - t["next_obs"]).pow(2).numpy()
    var = pred.next_obs_std.pow(2).numpy()
    var = var.mean(0) if var.ndim == 3 else var  # one member: the mixture is the member
    assert len(rows) == data["obs"].shape[1]
    for d in (0, 5):
        assert rows[d]["r2"] == pytest.approx(r2[:, d].mean(), rel=1e-4)
        assert rows[d]["sigma2_harmonic"] == pytest.approx(1.0 / (1.0 / s2[:, d]).mean(), rel=1e-4)
        assert rows[d]["sigma2_harmonic"] <= rows[d]["sigma2_geo"] <= rows[d]["sigma2_mean"]  # HM <= GM <= AM
        assert rows[d]["model_var_mean"] == pytest.approx(var[:, d].mean(), rel=1e-4)
        assert -1.0 <= rows[d]["corr_log"] <= 1.0
    # the files of a variant whose name has a dot (b0.5) keep it
    cfg2 = off.OfflineConfig(setting="authors", num_transitions=250, epochs=2, seeds=(0,), segment_length=25,
                             horizons=(1,), variants=("pg-state-inverse_cov-b0.5-fs4",), out_dir=tmp_path,
                             progress=False)
    (md,) = sv.run(cfg2)
    assert md.name == "state_variance_authors_pg-state-inverse_cov-b0.5-fs4_score_s0.md"
    assert md.with_name(md.name[:-3] + ".csv").exists() and "harmonic mean" in md.read_text()
    with pytest.raises(ValueError, match="no variance net"):
        keep2: dict = {}
        off.fit_variant(cfg, "nll", 0, data, keep=keep2)
        keep2["trainer"].objective.reward_matrix = type("NoNet", (), {"kind": "identity"})()
        sv.variance_table(keep2["trainer"], data)
