"""The likelihood landscape of PG over a fixed scalar reward matrix U = u·I, and where the learned U lands on it.

Why: the bilevel problem of arXiv 2510.07624 picks U so that the PG-trained model has the best likelihood. With
U = u·I restricted to a scalar, that outer problem is one-dimensional, so it can be solved by brute force: fit
one model per u on a grid (``pg-fixed-<u>``, U held fixed during the whole fit, each from the seed's shared
initialisation), score each on the TEST split, and read off the best u. Beside it:

* the u the bilevel solver learned (``pg-learned`` from U = I, ``pg-learned-init-residual`` from the residual
  heuristic) and the u our residual heuristic ended at (``pg-scaled-residual``), with their test scores, from
  the main offline CSV of the same configuration;
* the paper's learned value (the authors' README lists u = 0.08 for halfcheetah medium-v0) and Table 3 scores;
* per-epoch traces of u for those two adaptive variants on one seed, against the u that the model's own error
  calls for, ``u_mse = λ / (2·MSE_holdout)`` (for an isotropic Gaussian, the likelihood-optimal variance is the
  MSE, and PG's optimum has variance λ/(2u)).

Outputs in ``--out``: ``<stem>.csv`` (the grid fits, long format, same columns and config id as
:mod:`benchmarks.harness.offline`), ``u_trace.csv``, ``u_landscape.md`` and ``u_landscape.png``. Every fit is
skipped when its row exists, so an interrupted run resumes.

    python -m benchmarks.harness.u_landscape --setting authors --transitions 62500 --seeds 0 1 2 \\
        --dataset halfcheetah-medium-s0.npz --out docs/results/offline/medium/u_landscape \\
        --reference docs/results/offline/medium/offline_halfcheetah_authors.csv
"""

from __future__ import annotations

import csv
import dataclasses
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.harness.offline import (
    FIXED_PREFIX,
    PAPER_TABLE3,
    OfflineConfig,
    build_parser,
    config_from_args,
    config_id_of,
    data_fingerprint,
    fit_variant,
    fixed_variant,
    load_or_collect,
    predictive_metrics,
    read_rows,
    run_offline,
    save_figure,
    split_by_segment,
)
from benchmarks.harness.stats import format_mean_ci, markdown_table, mean_ci
from mbrl_po.data.collect import validate_transitions

#: the default grid of u (log-spaced around the values seen on HalfCheetah: 0.014 marginal, 0.03-0.11 adaptive)
DEFAULT_US: tuple[float, ...] = (0.01, 0.02, 0.03, 0.05, 0.08, 0.12, 0.2, 0.5)
#: the authors' README ``IMPLICIT_DIFF_U_VALUES`` (halfcheetah Minari datasets; λ not recorded, see
#: ../shared/research/paper.md §3.2)
PAPER_U_IMPLICIT: dict[str, float] = {"medium": 0.08, "expert": 0.15, "simple": 0.115}
#: the adaptive variants whose u is traced per epoch and placed on the landscape
ADAPTIVE_VARIANTS: tuple[str, ...] = ("pg-learned", "pg-learned-init-residual", "pg-scaled-residual")
TRACE_COLUMNS = ("config_id", "variant", "seed", "epoch", "u", "u_mse", "holdout_nll", "holdout_mse")


def fixed_u(variant: str) -> float:
    """The u of a ``pg-fixed-<u>`` variant name."""
    if not variant.startswith(FIXED_PREFIX):
        raise ValueError(f"variant: not a {FIXED_PREFIX}<u> variant: {variant!r}")
    return float(variant[len(FIXED_PREFIX):])


def _validate_us(us: Sequence[float]) -> tuple[float, ...]:
    us = tuple(float(u) for u in us)
    if len(us) < 2:
        raise ValueError(f"us: need at least 2 values of u for a landscape, got {list(us)}")
    for u in us:
        fixed_variant(u)  # raises on u <= 0 / non-finite
    if len({fixed_variant(u) for u in us}) != len(us):
        raise ValueError(f"us: values must be distinct, got {list(us)}")
    return tuple(sorted(us))


# ---------------------------------------------------------------------------------------------------- traces
def trace_adaptive(cfg: OfflineConfig, seed: int, variants: Sequence[str] = ADAPTIVE_VARIANTS,
                   path: str | Path | None = None) -> list[dict[str, Any]]:
    """Fit each adaptive variant on ``seed``'s split and append its per-epoch u to ``path`` (default
    ``<out_dir>/u_trace.csv``); variants already traced for this config and seed are skipped.

    Returns:
        All trace rows of this configuration.
    """
    path = Path(path) if path is not None else Path(cfg.out_dir) / "u_trace.csv"
    data, _ = load_or_collect(cfg)
    data = validate_transitions(data)
    cid = config_id_of(cfg, data_fingerprint(data))
    done = {(r["config_id"], r["variant"], int(r["seed"])) for r in read_rows(path)}
    todo = [v for v in variants if (cid, v, seed) not in done]
    if todo:
        if cfg.threads is not None:
            torch.set_num_threads(cfg.threads)
        tr, _, _ = split_by_segment(data, seed, cfg.test_fraction, cfg.segment_length)
        train = {k: v[tr] for k, v in data.items()}
        for variant in todo:
            log: list[dict[str, float]] = []
            t0 = time.perf_counter()
            fit_variant(cfg, variant, seed, train, trace=log)
            rows = []
            for e in log:
                u = e.get("u", e.get("u_mean_diag", math.nan))
                mse = float(e["holdout_mse"])
                rows.append({"config_id": cid, "variant": variant, "seed": seed, "epoch": int(e["epoch"]),
                             "u": u, "u_mse": cfg.lam / (2.0 * mse) if mse > 0 else math.nan,
                             "holdout_nll": e["holdout_nll"], "holdout_mse": mse})
            new = not path.exists()
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", newline="") as f:  # one write per fit: a crash loses at most the running fit
                w = csv.DictWriter(f, fieldnames=TRACE_COLUMNS)
                if new:
                    w.writeheader()
                w.writerows(rows)
            print(f"[u_landscape] traced {variant} seed {seed}: final u {rows[-1]['u']:.4g} "
                  f"({time.perf_counter() - t0:.0f}s)", flush=True)
    return [r for r in read_rows(path) if r["config_id"] == cid]


# ---------------------------------------------------------------------------------------------------- report
def rollout_key(rows: Sequence[dict[str, Any]]) -> str:
    """The longest-horizon rollout column present in ``rows`` (``rollout_rmse_h<H>``)."""
    hs = [int(k[len("rollout_rmse_h"):]) for r in rows[:1] for k in r if k.startswith("rollout_rmse_h")]
    return f"rollout_rmse_h{max(hs)}" if hs else "rollout_rmse_h1"


def landscape_table(rows: Sequence[dict[str, Any]], lam: float) -> list[dict[str, Any]]:
    """Per grid point u (ascending): mean and CI half-width over seeds of the TEST metrics of ``pg-fixed-u``
    (``rollout`` is the longest-horizon open-loop rollout RMSE)."""
    rk = rollout_key(rows)
    out = []
    for v in sorted({r["variant"] for r in rows if str(r["variant"]).startswith(FIXED_PREFIX)}, key=fixed_u):
        vr = [r for r in rows if r["variant"] == v]
        point: dict[str, Any] = {"u": fixed_u(v), "variant": v, "seeds": len(vr),
                                 "pred_std_theory": math.sqrt(lam / (2.0 * fixed_u(v)))}
        for key, col in (("rmse", "rmse"), ("nll", "nll"), ("cov50", "cov50"), ("cov90", "cov90"),
                         ("pred_std", "pred_std"), ("rollout", rk)):
            vals = [float(r[col]) for r in vr if col in r]
            point[key] = mean_ci(vals)[:2] if vals else (math.nan, math.nan)
        out.append(point)
    return out


def _adaptive_points(reference: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    rk = rollout_key(reference)
    pts = {}
    for v in ADAPTIVE_VARIANTS:
        vr = [r for r in reference if r["variant"] == v]
        if vr:
            pts[v] = {"seeds": len(vr), **{k: mean_ci([float(r[col]) for r in vr])[:2]
                                          for k, col in (("u", "u"), ("rmse", "rmse"), ("nll", "nll"),
                                                         ("cov90", "cov90"), ("rollout", rk))}}
    return pts


def summarize_landscape(rows: Sequence[dict[str, Any]], reference: Sequence[dict[str, Any]],
                        trace: Sequence[dict[str, Any]], lam: float, paper_u: float | None) -> str:
    """Markdown: the grid table, the best u per metric, the adaptive variants and the paper's U_implicit."""
    grid = landscape_table(rows, lam)
    if not grid:
        return "No pg-fixed-<u> rows yet.\n"

    def f(pair: tuple[float, float]) -> str:
        return format_mean_ci(pair[0], pair[1])

    horizon = rollout_key(rows)[len("rollout_rmse_h"):]
    table = [[f"{p['u']:g}", f"{p['pred_std_theory']:.2f}", p["seeds"], f(p["rmse"]), f(p["nll"]), f(p["cov90"]),
              f(p["pred_std"]), f(p["rollout"])] for p in grid]
    out = ["**PG with U = u·I held fixed** (TEST split; mean ± 95% CI over seeds; σ_theory = √(λ/2u), the "
           "predicted std at PG's optimum)\n",
           markdown_table(["u", "σ_theory", "seeds", "RMSE", "NLL/dim", "cov 90%", "pred std", f"rollout H={horizon}"],
                          table), ""]
    best_nll = min(grid, key=lambda p: p["nll"][0])
    best_rmse = min(grid, key=lambda p: p["rmse"][0])
    out.append(f"Best fixed u on the grid: by NLL **u = {best_nll['u']:g}** (NLL {f(best_nll['nll'])}, RMSE "
               f"{f(best_nll['rmse'])}); by RMSE u = {best_rmse['u']:g} (RMSE {f(best_rmse['rmse'])}).\n")
    adaptive = _adaptive_points(reference)
    if adaptive or paper_u is not None:
        arows = [[f"`{v}`", p["seeds"], f(p["u"]), f(p["rmse"]), f(p["nll"]), f(p["cov90"]),
                  f(p["rollout"])] for v, p in adaptive.items()]
        if paper_u is not None and "pg-learned" in PAPER_TABLE3:
            r_m, r_s, n_m, n_s = PAPER_TABLE3["pg-learned"]
            arows.append(["paper's U_implicit (Table 3; u from the authors' README)", "5 runs", f"{paper_u:g}",
                          f"{r_m:.3f} ± {r_s:.3f} (std)", f"{n_m:.3f} ± {n_s:.3f} (std)", "n/a", "n/a"])
        out += ["**Adaptive U, for comparison** (final u; from the main offline CSV of this configuration)\n",
                markdown_table(["variant", "seeds", "final u", "RMSE", "NLL/dim", "cov 90%", f"rollout H={horizon}"],
                               arows),
                ""]
    if trace:
        trows = []
        for (v, s) in sorted({(r["variant"], int(r["seed"])) for r in trace}):
            tr = sorted((r for r in trace if r["variant"] == v and int(r["seed"]) == s), key=lambda r: r["epoch"])
            marks = sorted({len(tr) // 10, len(tr) // 4, len(tr) // 2, len(tr)} - {0})
            trows.append([f"`{v}`", s] + [f"{tr[m - 1]['u']:.3g} / {tr[m - 1]['u_mse']:.3g}" for m in marks])
        heads = [f"epoch {m}" for m in marks]
        out += ["**u during the fit / u the model's own error calls for** (u_mse = λ / (2·MSE) on the trainer's "
                "holdout; a u below u_mse predicts more variance than the model's error)\n",
                markdown_table(["variant", "seed", *heads], trows), ""]
    return "\n".join(out) + "\n"


def plot_landscape(rows: Sequence[dict[str, Any]], reference: Sequence[dict[str, Any]],
                   trace: Sequence[dict[str, Any]], lam: float, paper_u: float | None, path: str | Path,
                   title: str = "") -> Path:
    """A 1x3 PNG: TEST NLL/dim and RMSE against fixed u (log axis; adaptive variants and the paper's U_implicit
    marked), and the per-epoch u of the adaptive variants against u_mse."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = landscape_table(rows, lam)
    adaptive = _adaptive_points(reference)
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    colors = {"pg-learned": "tab:red", "pg-learned-init-residual": "tab:purple", "pg-scaled-residual": "tab:green"}
    us = np.array([p["u"] for p in grid])
    for ax, key, label, paper_col in ((axes[0], "nll", "TEST NLL/dim (nats)", 2), (axes[1], "rmse", "TEST RMSE", 0)):
        m = np.array([p[key][0] for p in grid])
        h = np.nan_to_num(np.array([p[key][1] for p in grid]))
        ax.plot(us, m, "o-", color="tab:blue", label="PG, U = u·I fixed")
        ax.fill_between(us, m - h, m + h, color="tab:blue", alpha=0.2)
        for v, p in adaptive.items():
            ax.errorbar([p["u"][0]], [p[key][0]], xerr=[[np.nan_to_num(p["u"][1])]],
                        yerr=[[np.nan_to_num(p[key][1])]], fmt="s", color=colors.get(v, "k"), capsize=3,
                        label=f"{v} (final u)")
        if paper_u is not None and "pg-learned" in PAPER_TABLE3:
            ax.errorbar([paper_u], [PAPER_TABLE3["pg-learned"][paper_col]],
                        yerr=[[PAPER_TABLE3["pg-learned"][paper_col + 1]]], fmt="D", color="k", capsize=3,
                        label="paper U_implicit (Table 3)")
        ax.set_xscale("log")
        ax.set_xlabel("u")
        ax.set_title(label)
        ax.legend(fontsize=7)
    ax = axes[2]
    for (v, s) in sorted({(r["variant"], int(r["seed"])) for r in trace}):
        tr = sorted((r for r in trace if r["variant"] == v and int(r["seed"]) == s), key=lambda r: r["epoch"])
        ep = [r["epoch"] for r in tr]
        c = colors.get(v, "k")
        ax.plot(ep, [r["u"] for r in tr], color=c, label=f"{v} u (seed {s})")
        ax.plot(ep, [r["u_mse"] for r in tr], color=c, ls=":", label=f"{v} u_mse = λ/(2 MSE)")
    if grid:
        best = min(grid, key=lambda p: p["nll"][0])["u"]
        ax.axhline(best, color="tab:blue", ls="--", lw=1, label=f"best fixed u by NLL ({best:g})")
    if paper_u is not None:
        ax.axhline(paper_u, color="k", ls="-.", lw=1, label=f"paper U_implicit ({paper_u:g})")
    ax.set_yscale("log")
    ax.set_xlabel("epoch (update)")
    ax.set_title("u during the fit")
    ax.legend(fontsize=7)
    return save_figure(fig, path, title)


# ---------------------------------------------------------------------------------------------------- check
def landscape_slope(rows: Sequence[dict[str, Any]], seed: int, u: float) -> float:
    """Finite-difference slope d(TEST NLL/dim)/d(log u) of ``seed``'s grid fits between the nearest grid
    points below and above ``u`` (NaN when ``u`` is not strictly inside the grid)."""
    pts = sorted((fixed_u(r["variant"]), float(r["nll"])) for r in rows
                 if str(r["variant"]).startswith(FIXED_PREFIX) and int(r["seed"]) == seed)
    lo = [p for p in pts if p[0] < u]
    hi = [p for p in pts if p[0] > u]
    if not lo or not hi:
        return math.nan
    (u0, n0), (u1, n1) = lo[-1], hi[0]
    return (n1 - n0) / (math.log(u1) - math.log(u0))


def hypergradient_check(cfg: OfflineConfig, seed: int, us: Sequence[float],
                        rows: Sequence[dict[str, Any]] = ()) -> list[dict[str, float]]:
    """The implicit hypergradient dL/d(log u) of a model fitted with U = u·I held fixed, outer loss on the TEST
    split, beside the landscape's finite-difference slope of the same quantity over full refits.

    The implicit function theorem treats the fitted model as an inner optimum; comparing the two says whether
    the solver's local outer step points where brute force says the likelihood improves.

    Returns:
        One dict per u: u, seed, hypergradient, landscape_slope (NaN off the grid's interior), test_mse, u_mse.
    """
    from mbrl_po.objectives import PGObjective
    from mbrl_po.training.bilevel import BilevelSolver

    data, _ = load_or_collect(cfg)
    data = validate_transitions(data)
    tr, te, _ = split_by_segment(data, seed, cfg.test_fraction, cfg.segment_length)
    train = {k: v[tr] for k, v in data.items()}
    t_train = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in train.items()}
    t_test = {k: torch.as_tensor(v[te], dtype=torch.float32) for k, v in data.items()}
    out = []
    for u in us:
        model, _ = fit_variant(cfg, fixed_variant(u), seed, train)
        objective = PGObjective("learned", entropy_weight=cfg.lam, init=float(u), num_samples=cfg.num_samples,
                                baseline=cfg.pg_baseline)
        xi = model.make_inputs(t_train["obs"], t_train["actions"])
        yi = model.make_targets(t_train["obs"], t_train["next_obs"], t_train["rewards"])
        xo = model.make_inputs(t_test["obs"], t_test["actions"])
        yo = model.make_targets(t_test["obs"], t_test["next_obs"], t_test["rewards"])
        objective.reward_matrix.setup(yi)
        solver = BilevelSolver(objective, method="implicit", iterations=10, max_rows=4096)
        hyper, _ = solver.hypergradient(model, (xi, yi), (xo, yo), generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            pred = model.predict(t_test["obs"], t_test["actions"])
            mse = predictive_metrics(pred.next_obs_mean, pred.next_obs_std, t_test["next_obs"], model.elite_idx)[
                "rmse"] ** 2
        out.append({"u": float(u), "seed": float(seed), "hypergradient": float(hyper.reshape(-1)[0]),
                    "landscape_slope": landscape_slope(rows, seed, float(u)), "test_mse": mse,
                    "u_mse": cfg.lam / (2.0 * mse)})
    return out


# ---------------------------------------------------------------------------------------------------- runner
def run_landscape(cfg: OfflineConfig, us: Sequence[float] = DEFAULT_US, trace_seed: int | None = 0,
                  reference: str | Path | None = None, paper_u: float | None = None,
                  command: str = "") -> dict[str, Any]:
    """Fit ``pg-fixed-<u>`` for every u and seed of ``cfg`` (resumable), trace the adaptive variants on
    ``trace_seed`` (None: no traces), and write ``u_landscape.md`` / ``.png`` into ``cfg.out_dir``.

    Args:
        cfg: the offline configuration (its ``variants`` are replaced by the grid).
        us: the grid of u (>= 2 distinct values > 0).
        reference: the main offline CSV of the same configuration, for the adaptive variants' test scores.
        paper_u: the paper's learned u to mark (e.g. ``PAPER_U_IMPLICIT["medium"]``).
        command: the command line, written into the markdown.

    Returns:
        ``{"rows", "reference", "trace", "md", "png"}``.
    """
    us = _validate_us(us)
    cfg = dataclasses.replace(cfg, variants=tuple(fixed_variant(u) for u in us))
    rows = run_offline(cfg, reports=False)
    cid = rows[0]["config_id"] if rows else None
    ref_rows: list[dict[str, Any]] = []
    if reference is not None:
        if not Path(reference).exists():
            raise FileNotFoundError(f"reference: no such CSV {reference}")
        ref_rows = [r for r in read_rows(reference) if r["config_id"] == cid]
        if not ref_rows:
            print(f"[u_landscape] warning: no rows of config {cid} in {reference}; adaptive points omitted",
                  flush=True)
    trace = trace_adaptive(cfg, trace_seed) if trace_seed is not None else []
    out = Path(cfg.out_dir)
    head = (f"# Likelihood landscape of PG over a fixed scalar U: {cfg.env}, setting `{cfg.setting}`\n\n"
            f"config `{cid}` (the same id as the main offline rows it is compared with), λ = {cfg.lam}, "
            f"{cfg.epochs} epochs/updates, seeds {list(cfg.seeds)}; TEST split as in the main offline table.\n\n"
            + (f"Reproduce: `{command}`\n\n" if command else ""))
    md = out / "u_landscape.md"
    md.write_text(head + summarize_landscape(rows, ref_rows, trace, cfg.lam, paper_u)
                  + "\n![u landscape](u_landscape.png)\n")
    png = plot_landscape(rows, ref_rows, trace, cfg.lam, paper_u, out / "u_landscape.png",
                         title=f"{cfg.env} ({cfg.setting} setting): PG likelihood over fixed U = u·I, config {cid}")
    return {"rows": rows, "reference": ref_rows, "trace": trace, "md": md, "png": png}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Command-line entry point; see ``--help``."""
    import shlex
    import sys

    p = build_parser(prog="python -m benchmarks.harness.u_landscape",
                     description="PG likelihood landscape over a fixed scalar U = u*I, with the learned U on it.")
    p.add_argument("--us", type=float, nargs="+", default=list(DEFAULT_US), help="grid of u (> 0)")
    p.add_argument("--trace-seed", type=int, default=0, help="seed whose adaptive fits are traced (-1: none)")
    p.add_argument("--reference", default=None, help="main offline CSV of the same configuration")
    p.add_argument("--paper-u", type=float, default=None,
                   help=f"the paper's learned u to mark (authors' README: {PAPER_U_IMPLICIT})")
    p.add_argument("--check-hypergradient", type=float, nargs="+", default=None, metavar="U",
                   help="instead: the implicit hypergradient at fixed-u fits of the first seed, beside the "
                        "landscape's finite-difference slope")
    p.set_defaults(out="docs/results/offline/u_landscape")
    args = p.parse_args(argv)
    cfg = config_from_args(args)
    torch.set_num_threads(args.threads)
    if args.check_hypergradient:
        rows = read_rows(Path(cfg.out_dir) / f"{cfg.stem}.csv")
        checks = hypergradient_check(cfg, cfg.seeds[0], args.check_hypergradient, rows)
        table = [[f"{c['u']:g}", int(c["seed"]), f"{c['hypergradient']:+.3f}", f"{c['landscape_slope']:+.3f}",
                  f"{c['test_mse']:.2f}", f"{c['u_mse']:.4f}"] for c in checks]
        print(markdown_table(["u", "seed", "implicit dL/dlog u", "landscape slope", "test MSE", "u_mse"], table))
        return {"checks": checks}
    argv_list = list(sys.argv[1:] if argv is None else argv)
    result = run_landscape(cfg, args.us, None if args.trace_seed < 0 else args.trace_seed, args.reference,
                           args.paper_u, command="python -m benchmarks.harness.u_landscape " + shlex.join(argv_list))
    print(result["md"].read_text())
    return result


if __name__ == "__main__":
    main()
