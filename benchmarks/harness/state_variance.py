"""Does a PG model with a state-dependent U(x) reach its optimum variance σ̂²(x)? Per target dim, on the TEST split.

Why: PG with U(x) = (λ/2)/σ̂²(x) (``state_inverse_cov``) has, at every x, the optimum predictive variance σ̂²(x), the
heuristic's variance net fitted to the held-out residuals. Whether a fit gets there is a separate question from
whether σ̂²(x) is right. This fits one variant on one seed's split (exactly as :mod:`benchmarks.harness.offline`
does, same config id) and compares, per dim of the model's target units on the TEST rows:

* the squared residual r² of the model's mean (what a calibrated variance should match on average);
* σ̂²(x) (arithmetic, geometric and harmonic means over x) and the model's own predicted variance;
* corr(log σ̂²(x), log model variance) over x: whether the model learned σ̂²(x)'s variation at all.

A model whose variance cannot follow x but sees the varying U(x) ends, per dim, at the optimum of one constant
variance under that U: σ² = λ / (2·mean U(x)), the *harmonic* mean of σ̂²(x), far below r² when σ̂² is
heavy-tailed. Outputs ``state_variance_<setting>_<variant>_<estimator>_s<seed>.md`` and ``.csv`` in ``--out``.

    python -m benchmarks.harness.state_variance --setting authors --variants pg-state-inverse_cov-fs4 --seeds 0 \\
        --data /work/offline_data/halfcheetah_20k_seed0.npz --out docs/results/offline/state_dependent/variance
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.harness.offline import (
    OfflineConfig,
    build_parser,
    config_from_args,
    config_id_of,
    data_fingerprint,
    fit_variant,
    load_or_collect,
    mixture_moments,
    split_by_segment,
)
from benchmarks.harness.stats import markdown_table
from mbrl_po.data.collect import validate_transitions

COLUMNS = ("dim", "r2", "sigma2_mean", "sigma2_geo", "sigma2_harmonic", "model_var_mean", "model_var_geo",
           "corr_log", "r2_over_sigma2", "r2_over_model_var")


@torch.no_grad()
def variance_table(trainer: Any, test: dict[str, np.ndarray]) -> list[dict[str, float]]:
    """Per target dim (model units) on ``test``: r², σ̂²(x) means, the model's variance, their log correlation.

    Args:
        trainer: a fitted :class:`~mbrl_po.training.trainer.DynamicsTrainer` whose objective has a state
            heuristic (``reward_matrix.log_variance``; for ``state_learned``, its base's).
        test: the TEST rows (``obs`` (B, O), ``actions`` (B, A), ``next_obs`` (B, O), ``rewards`` (B,)).
    """
    model = trainer.model
    rm = trainer.objective.reward_matrix
    heur = rm if hasattr(rm, "log_variance") else getattr(rm, "heuristic", None)
    if heur is None:
        raise ValueError(f"variant: its reward matrix {rm.kind!r} has no variance net σ̂²(x) to compare with")
    t = {k: torch.as_tensor(v, dtype=torch.float32, device=model.device) for k, v in test.items()}
    x = model.make_inputs(t["obs"], t["actions"])
    y = model.make_targets(t["obs"], t["next_obs"], t["rewards"])
    mean, logvar = model(x, model.elite_idx)
    mu, var = mixture_moments(mean, (0.5 * logvar).exp())  # moment-matched over the elites
    r2 = (y - mu).pow(2)
    s2 = heur.log_variance(x).exp()
    ls, lm = s2.log(), var.clamp_min(1e-30).log()
    corr = ((ls - ls.mean(0)) * (lm - lm.mean(0))).mean(0) / (ls.std(0, unbiased=False) * lm.std(0, unbiased=False))
    rows = []
    for d in range(y.shape[1]):
        rows.append({
            "dim": d, "r2": float(r2[:, d].mean()), "sigma2_mean": float(s2[:, d].mean()),
            "sigma2_geo": float(ls[:, d].mean().exp()), "sigma2_harmonic": float(1.0 / (1.0 / s2[:, d]).mean()),
            "model_var_mean": float(var[:, d].mean()), "model_var_geo": float(lm[:, d].mean().exp()),
            "corr_log": float(corr[d]), "r2_over_sigma2": float((r2[:, d] / s2[:, d]).mean()),
            "r2_over_model_var": float((r2[:, d] / var[:, d]).mean()),
        })
    return rows


def run(cfg: OfflineConfig) -> list[Path]:
    """Fit each (variant, seed) of ``cfg`` and write its per-dim table; returns the .md paths."""
    data, _ = load_or_collect(cfg)
    data = validate_transitions(data)
    fp = data_fingerprint(data)
    cid = config_id_of(cfg, fp)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for seed in cfg.seeds:
        tr, te, _ = split_by_segment(data, seed, cfg.test_fraction, cfg.segment_length)
        train, test = {k: v[tr] for k, v in data.items()}, {k: v[te] for k, v in data.items()}
        for variant in cfg.variants:
            keep: dict[str, Any] = {}
            fit_variant(cfg, variant, seed, train, keep=keep)
            rows = variance_table(keep["trainer"], test)
            stem = f"state_variance_{cfg.setting}_{variant}_{cfg.estimator}_s{seed}"  # no with_suffix: "b0.5"
            md, csv_path = out / f"{stem}.md", out / f"{stem}.csv"
            with open(csv_path, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
                w.writeheader()
                w.writerows(rows)
            g = {k: float(np.exp(np.mean(np.log([r[k] for r in rows])))) for k in ("r2", "sigma2_mean",
                                                                                  "sigma2_harmonic",
                                                                                  "model_var_mean")}
            text = [
                f"# σ̂²(x) against the model's variance: `{variant}`, setting `{cfg.setting}`, estimator "
                f"`{cfg.estimator}`, seed {seed}\n",
                f"config `{cid}` (the offline harness's), data `{fp}`, {len(te)} TEST rows; per target dim in the "
                "model's units (raw for `authors`, normalised for `ours`). Written by "
                "`python -m benchmarks.harness.state_variance`.\n",
                f"Geometric mean over dims: r² {g['r2']:.4g}, mean σ̂²(x) {g['sigma2_mean']:.4g}, harmonic mean "
                f"σ̂²(x) {g['sigma2_harmonic']:.4g}, model variance {g['model_var_mean']:.4g}; median "
                f"corr(log σ̂², log model var) {np.median([r['corr_log'] for r in rows]):.3f}.\n",
                markdown_table(["dim", "r²", "σ̂² mean", "σ̂² geo", "σ̂² harmonic", "model var mean",
                                "model var geo", "corr(log σ̂², log var)", "mean r²/σ̂²", "mean r²/var"],
                               [[str(r["dim"]), *(f"{r[k]:.4g}" for k in COLUMNS[1:])] for r in rows]),
            ]
            md.write_text("\n".join(text))
            written.append(md)
            print(f"[state_variance] {variant} seed {seed}: {text[2].strip()}", flush=True)
    return written


def main(argv: Sequence[str] | None = None) -> list[Path]:
    p = build_parser("python -m benchmarks.harness.state_variance", __doc__.split("\n\n")[0])
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    return run(config_from_args(args))


if __name__ == "__main__":
    main()
