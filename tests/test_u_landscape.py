"""The fixed-U landscape: variant names, the report's known answers, and a tiny resumable run on HalfCheetah."""

from __future__ import annotations

import math

import pytest

from benchmarks.harness import offline as off
from benchmarks.harness import u_landscape as ul


def test_fixed_variant_names_round_trip_and_errors(tmp_path):
    assert ul.fixed_variant(0.08) == "pg-fixed-0.08" and ul.fixed_variant(1) == "pg-fixed-1"
    assert ul.fixed_u("pg-fixed-0.08") == 0.08
    assert off.variant_spec("pg-fixed-0.08") == ("pg", {"reward_matrix": "fixed", "init": 0.08})
    assert off.variant_spec("nll") == ("nll", {})
    # a state heuristic with another number of refit steps of its variance net (the authors' setting)
    assert off.variant_spec("pg-state-inverse_cov-b0.5-fs4") == \
        ("pg", {"reward_matrix": "state_inverse_cov", "beta": 0.5, "fit_steps": 4})
    assert off.variant_spec("pg-state-learned-on-residual-fs2")[1]["fit_steps"] == 2
    for bad in ("nll-fs4", "pg-state-learned-fs4", "pg-state-inverse_cov-fs0", "pg-state-inverse_cov-fsx",
                "pg-inverse_cov-residual-fs4"):
        with pytest.raises(ValueError, match=f"variant: got '{bad}'.*'-fs<steps>'"):
            off.variant_spec(bad)
    name, opts = off.objective_for("pg-fixed-0.5", off.OfflineConfig(setting="authors", out_dir=tmp_path))
    assert name == "pg" and opts["init"] == 0.5 and opts["baseline"] == "none" and opts["entropy_weight"] == 1.0
    for bad in ("pg-fixed-0", "pg-fixed--1", "pg-fixed-abc", "pg-fixed-inf", "pg-fixed-"):
        with pytest.raises(ValueError, match=f"variant: got '{bad}'"):
            off.variant_spec(bad)
    for u in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="u: a fixed scalar U must be"):
            ul.fixed_variant(u)
    with pytest.raises(ValueError, match="not a pg-fixed-<u> variant"):
        ul.fixed_u("pg-learned")
    with pytest.raises(ValueError, match="at least 2 values"):
        ul._validate_us([0.1])
    with pytest.raises(ValueError, match="distinct"):
        ul._validate_us([0.1, 0.1])
    with pytest.raises(ValueError, match="must be a finite number > 0"):
        ul._validate_us([0.1, -0.2])
    assert ul._validate_us([1, 0.1, 0.5]) == (0.1, 0.5, 1.0)


def _row(variant, seed, rmse, nll, u=math.nan):
    return {"variant": variant, "seed": seed, "rmse": rmse, "nll": nll, "cov50": 0.5, "cov90": 0.9,
            "pred_std": 1.0, "rollout_rmse_h10": 2 * rmse, "u": u}


def test_landscape_table_sorts_by_u_and_report_names_the_best_u():
    # NLL is lowest at u = 0.1, RMSE at u = 1: the report must say so, whatever the row order
    nll_at = {0.01: 3.0, 0.1: 2.0, 1.0: 5.0}
    rmse_at = {0.01: 4.0, 0.1: 3.0, 1.0: 2.5}
    rows = [_row(ul.fixed_variant(u), s, rmse_at[u] + 0.01 * s, nll_at[u] + 0.01 * s)
            for u in (1.0, 0.01, 0.1) for s in range(3)]
    grid = ul.landscape_table(rows, lam=1.0)
    assert [p["u"] for p in grid] == [0.01, 0.1, 1.0]
    assert grid[1]["nll"][0] == pytest.approx(2.01) and grid[1]["seeds"] == 3
    assert grid[0]["pred_std_theory"] == pytest.approx(math.sqrt(1.0 / 0.02))
    ref = [_row("pg-learned", s, 3.5, 2.8, u=0.03) for s in range(2)] + [_row("nll", 0, 4.0, 1.0)]
    trace = [{"config_id": "c", "variant": "pg-learned", "seed": 0, "epoch": e, "u": 1.0 / e, "u_mse": 0.05,
              "holdout_nll": 3.0, "holdout_mse": 10.0} for e in range(1, 21)]
    md = ul.summarize_landscape(rows, ref, trace, lam=1.0, paper_u=0.08)
    assert "by NLL **u = 0.1**" in md and "by RMSE u = 1 " in md
    learned = next(ln for ln in md.splitlines() if ln.startswith("| `pg-learned` | 2 |"))
    assert "0.030" in learned and "3.500" in learned
    assert "paper's U_implicit" in md and "2.317 ± 0.010 (std)" in md
    trace_line = next(ln for ln in md.splitlines() if ln.startswith("| `pg-learned` | 0 |"))
    assert "0.05 / 0.05" in trace_line  # epoch 20: u = 1/20 beside u_mse
    assert ul.summarize_landscape([], ref, trace, 1.0, None).startswith("No pg-fixed")


@pytest.mark.mujoco
@pytest.mark.slow
def test_tiny_landscape_run_uses_the_fixed_u_traces_and_resumes(tmp_path, monkeypatch):
    kw = dict(setting="authors", num_transitions=250, epochs=4, seeds=(0,), segment_length=25, horizons=(1, 2),
              data_path=tmp_path / "data.npz", progress=False)
    # the main offline run of the same configuration: the adaptive variants the landscape compares with
    main_cfg = off.OfflineConfig(variants=ul.ADAPTIVE_VARIANTS, out_dir=tmp_path / "main", **kw)
    main_rows = off.run_offline(main_cfg)
    cfg = off.OfflineConfig(out_dir=tmp_path / "land", **kw)
    result = ul.run_landscape(cfg, us=(1.0, 0.05), trace_seed=0,
                              reference=tmp_path / "main" / f"{cfg.stem}.csv", paper_u=0.08)
    rows = result["rows"]
    assert sorted(r["variant"] for r in rows) == ["pg-fixed-0.05", "pg-fixed-1"]
    for r in rows:  # the fit really held U at the grid value
        assert r["u"] == pytest.approx(ul.fixed_u(r["variant"]), rel=1e-6)
        assert r["config_id"] == main_rows[0]["config_id"]  # same configuration id: comparable rows
    assert len(result["reference"]) == 3
    trace = result["trace"]
    assert sorted({r["variant"] for r in trace}) == sorted(ul.ADAPTIVE_VARIANTS)
    learned = sorted((r for r in trace if r["variant"] == "pg-learned"), key=lambda r: r["epoch"])
    assert [r["epoch"] for r in learned] == [1, 2, 3, 4]
    assert learned[0]["u"] != learned[-1]["u"]  # the solver moved u
    from_resid = sorted((r for r in trace if r["variant"] == "pg-learned-init-residual"), key=lambda r: r["epoch"])
    assert from_resid[0]["u"] < 0.5 * learned[0]["u"]  # started at the (small) residual heuristic, not at 1
    for r in trace:
        assert r["u_mse"] == pytest.approx(1.0 / (2.0 * r["holdout_mse"]), rel=1e-6)
    md = result["md"].read_text()
    assert "Best fixed u on the grid" in md and "Reproduce" not in md and "`pg-scaled-residual`" in md
    assert result["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # resume: no fit runs again
    def no_fit(*args, **kwargs):
        raise AssertionError("refitted a finished fit")

    monkeypatch.setattr(off, "fit_variant", no_fit)
    monkeypatch.setattr(ul, "fit_variant", no_fit)
    again = ul.run_landscape(cfg, us=(0.05, 1.0), trace_seed=0, reference=tmp_path / "main" / f"{cfg.stem}.csv")
    assert [r["timestamp"] for r in again["rows"]] == [r["timestamp"] for r in rows]
    assert len(again["trace"]) == len(trace)
    with pytest.raises(FileNotFoundError, match="reference: no such CSV"):
        ul.run_landscape(cfg, us=(0.05, 1.0), trace_seed=None, reference=tmp_path / "nope.csv")


def test_landscape_slope_is_a_log_u_finite_difference():
    rows = [_row(ul.fixed_variant(u), 0, 1.0, nll) for u, nll in ((0.01, 3.0), (0.1, 2.0), (1.0, 4.0))]
    rows += [_row(ul.fixed_variant(0.1), 1, 1.0, 9.0)]  # another seed: ignored
    assert ul.landscape_slope(rows, 0, 0.05) == pytest.approx(-1.0 / math.log(10))
    assert ul.landscape_slope(rows, 0, 0.1) == pytest.approx(1.0 / math.log(100))  # u itself is skipped
    assert math.isnan(ul.landscape_slope(rows, 0, 1.0)) and math.isnan(ul.landscape_slope(rows, 0, 0.001))


@pytest.mark.mujoco
def test_hypergradient_check_on_a_tiny_fit(tmp_path):
    cfg = off.OfflineConfig(setting="authors", num_transitions=250, epochs=3, seeds=(0,), segment_length=25,
                            horizons=(1, 2), data_path=tmp_path / "data.npz", out_dir=tmp_path, progress=False)
    (check,) = ul.hypergradient_check(cfg, 0, [0.2])
    assert check["u"] == 0.2 and math.isfinite(check["hypergradient"]) and math.isnan(check["landscape_slope"])
    assert check["u_mse"] == pytest.approx(1.0 / (2.0 * check["test_mse"]))
