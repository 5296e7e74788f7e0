"""Offline comparison of dynamics objectives (MSE, NLL and the PG variants of arXiv 2510.07624) on real
transitions, evaluated on a held-out TEST split of contiguous trajectory segments.

For each seed the data are split anew (by segment, so the test split holds whole trajectory pieces that the
H-step open-loop rollout metric can follow) and every variant is fitted from the same seed-specific
initialisation (paired across variants, different across seeds; the authors shared one init and one split
across all runs). Metrics, all in raw units over the observation dims:

* ``rmse`` / ``rmse_member``: one-step RMSE of the ensemble-mean (elites) prediction / mean over members of
  each member's RMSE;
* ``nll`` / ``nll_member``: per-dim Gaussian NLL (nats) of the moment-matched elite mixture / mean over members;
* ``cov50`` / ``cov90``: share of test targets inside the central 50% / 90% interval of the moment-matched
  Gaussian predictive (calibrated: 0.5 / 0.9);
* ``pred_std``: RMS of the predicted std (compare with ``rmse``: a calibrated model has them about equal);
* ``rollout_rmse_h{H}``: RMSE of the H-th state of an open-loop rollout that feeds the model its own
  ensemble-mean predictions along real test segments with the real actions (H = 1 equals ``rmse``);
* ``fit_time_s``: wall time of ``DynamicsTrainer.fit``.

Run ``python -m benchmarks.harness.offline --help``; :func:`demo` is the quick README version.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.harness.stats import format_mean_ci, markdown_table, mean_ci
from mbrl_po.data.collect import collect, episode_ids, load_npz, save_npz, validate_transitions
from mbrl_po.models.ensemble import EnsembleConfig, GaussianEnsemble
from mbrl_po.training.bilevel import BilevelSolver
from mbrl_po.training.trainer import DynamicsTrainer

#: variant name -> (objective name, objective options). The PG estimator/baseline/λ/G are added per setting.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "mse": ("mse", {}),
    "nll": ("nll", {}),
    "pg-identity": ("pg", {"reward_matrix": "identity"}),
    "pg-scaled-marginal": ("pg", {"reward_matrix": "scaled", "covariance": "marginal"}),
    # the authors' (λ/2) Σ̂⁻¹ with the marginal Σ̂ and a full matrix
    "pg-inverse_cov-marginal": ("pg", {"reward_matrix": "inverse_cov", "covariance": "marginal", "structure": "full"}),
    "pg-scaled-residual": ("pg", {"reward_matrix": "scaled", "covariance": "residual"}),
    "pg-inverse_cov-residual": ("pg", {"reward_matrix": "inverse_cov", "covariance": "residual", "structure": "diag"}),
    "pg-learned": ("pg", {"reward_matrix": "learned"}),
    # the same solver, U started at the residual heuristic of the untrained model instead of at I
    "pg-learned-init-residual": ("pg", {"reward_matrix": "learned", "init": "residual"}),
    # a learned correction on the residual heuristics: U = U_res · exp(φ), scalar (on scaled) and diag (on inverse_cov)
    "pg-learned-on-residual": ("pg", {"reward_matrix": "learned", "base": "residual"}),
    "pg-learned-diag-on-residual": ("pg", {"reward_matrix": "learned", "structure": "diag", "base": "residual"}),
    # β-NLL (Seitzer et al. 2022) at the paper's β = 0.5; other β: ``beta_nll-<β>``
    "beta_nll": ("beta_nll", {"beta": 0.5}),
    # state-dependent U(x) (issue 17): the heuristic (λ/2)/σ̂²(x), σ̂²(x) a net fitted to held-out residuals
    "pg-state-inverse_cov": ("pg", {"reward_matrix": "state_inverse_cov"}),
    # tempered like β-NLL: the same optimum variance σ̂²(x), the mean's per-sample weight σ̂^{2(β-1)}(x)
    "pg-state-inverse_cov-b0.5": ("pg", {"reward_matrix": "state_inverse_cov", "beta": 0.5}),
    "pg-state-inverse_cov-b1": ("pg", {"reward_matrix": "state_inverse_cov", "beta": 1.0}),
    # a learned network U_ψ(x): from U = I, from the heuristic of the first residuals, and as a correction on it
    "pg-state-learned": ("pg", {"reward_matrix": "state_learned"}),
    "pg-state-learned-init-residual": ("pg", {"reward_matrix": "state_learned", "init": "residual"}),
    "pg-state-learned-on-residual": ("pg", {"reward_matrix": "state_learned", "base": "residual"}),
}
#: prefix of the fixed-scalar-U variants ``pg-fixed-<u>`` (U = u·I held constant, e.g. ``pg-fixed-0.08``), the
#: points of the likelihood landscape over u (:mod:`benchmarks.harness.u_landscape`).
FIXED_PREFIX = "pg-fixed-"
#: prefix of the β-NLL variants ``beta_nll-<β>`` (β in [0, 1], e.g. ``beta_nll-1``)
BETA_PREFIX = "beta_nll-"
#: suffix of a state heuristic variant with another ``fit_steps`` (Adam steps per refit of its variance net),
#: e.g. ``pg-state-inverse_cov-b0.5-fs4``: in the authors' setting it is refitted after each of 400 full-batch
#: updates, and 4 steps per refit give the net the steps that the default 50 give it over 30 epochs in ``ours``
FIT_STEPS_SUFFIX = "-fs"
SETTINGS = ("ours", "authors")


def fixed_variant(u: float) -> str:
    """The variant name of PG with U = u·I held fixed, e.g. ``fixed_variant(0.08) == "pg-fixed-0.08"``."""
    if not (isinstance(u, int | float) and math.isfinite(u) and u > 0):
        raise ValueError(f"u: a fixed scalar U must be a finite number > 0, got {u!r}")
    return f"{FIXED_PREFIX}{u:g}"


def variant_spec(variant: str) -> tuple[str, dict[str, Any]]:
    """(objective name, objective options) of a variant: a key of :data:`VARIANTS`, ``pg-fixed-<u>``,
    ``beta_nll-<β>`` or a state heuristic variant with :data:`FIT_STEPS_SUFFIX` (``...-fs<steps>``).

    Raises:
        ValueError: naming the variant and the allowed names.
    """
    if variant in VARIANTS:
        name, opts = VARIANTS[variant]
        return name, dict(opts)
    if isinstance(variant, str) and variant.startswith(FIXED_PREFIX):
        try:
            u = float(variant[len(FIXED_PREFIX):])
        except ValueError:
            u = math.nan
        if math.isfinite(u) and u > 0:
            return "pg", {"reward_matrix": "fixed", "init": u}
    if isinstance(variant, str) and variant.startswith(BETA_PREFIX):
        try:
            beta = float(variant[len(BETA_PREFIX):])
        except ValueError:
            beta = math.nan
        if 0.0 <= beta <= 1.0:
            return "beta_nll", {"beta": beta}
    base, sep, steps = variant.rpartition(FIT_STEPS_SUFFIX) if isinstance(variant, str) else ("", "", "")
    if sep and steps.isdigit() and int(steps) >= 1 and base in VARIANTS:
        name, opts = VARIANTS[base]
        heuristic = opts.get("reward_matrix") == "state_inverse_cov" or (
            opts.get("reward_matrix") == "state_learned" and ("base" in opts or opts.get("init") == "residual"))
        if heuristic:
            return name, {**opts, "fit_steps": int(steps)}
    raise ValueError(f"variant: got {variant!r}, allowed {list(VARIANTS)}, '{FIXED_PREFIX}<u>' with u > 0, "
                     f"'{BETA_PREFIX}<β>' with β in [0, 1], or a variant with a state heuristic followed by "
                     f"'{FIT_STEPS_SUFFIX}<steps>' (steps >= 1)")

#: per-setting defaults of the fields of :class:`OfflineConfig` that are None by default.
SETTING_DEFAULTS: dict[str, dict[str, Any]] = {
    "ours": {
        "ensemble_size": 7, "num_elites": 5, "hidden_sizes": (200, 200, 200, 200), "activation": "silu",
        "learn_delta": True, "normalize": True, "batch_size": 256, "epochs": 50, "patience": 5,
        "bootstrap": True, "weight_decay": 5e-5, "holdout_fraction": 0.1, "pg_baseline": "loo",
        "init_max_logvar": 0.5, "init_min_logvar": -10.0, "logvar_bound_penalty": 0.01,
    },
    # arXiv 2510.07624 / nll_to_po scripts/mbrl.py: one 2x64 ReLU MLP on absolute next states, raw units,
    # full batch, 400 Adam updates, no early stopping, no weight decay; the paper's std is exp(log-std),
    # unbounded, so the log-variance bounds are put far away and not penalised.
    "authors": {
        "ensemble_size": 1, "num_elites": 1, "hidden_sizes": (64, 64), "activation": "relu",
        "learn_delta": False, "normalize": False, "batch_size": 0, "epochs": 400, "patience": 0,
        "bootstrap": False, "weight_decay": 0.0, "holdout_fraction": 0.2, "pg_baseline": "none",
        "init_max_logvar": 12.0, "init_min_logvar": -20.0, "logvar_bound_penalty": 0.0,
    },
}

Z50 = 0.6744897501960817  # Φ⁻¹(0.75)
Z90 = 1.6448536269514722  # Φ⁻¹(0.95)
LOG_2PI = math.log(2.0 * math.pi)


def is_int(v: Any) -> bool:
    """An integer (numpy integers included), not a bool."""
    return isinstance(v, int | np.integer) and not isinstance(v, bool)


def _progress_enabled(flag: bool | None) -> bool:
    if flag is not None:
        return flag
    return sys.stderr.isatty() and not os.environ.get("CI")


@dataclass
class OfflineConfig:
    """What to run. Fields left at None take the ``setting``'s default (:data:`SETTING_DEFAULTS`).

    Attributes:
        env: task name (``mbrl_po.envs.load_task``), e.g. ``"halfcheetah"``.
        num_transitions: transitions collected with a uniformly random policy (>= 20 per seed split).
        seeds: one split + one initialisation + one trainer seed each.
        setting: ``"ours"`` (normalised delta-target SiLU ensemble, minibatches, early stopping) or
            ``"authors"`` (the paper's 1-member 2x64 ReLU MLP on absolute next states, full batch, 400 updates).
        epochs: max epochs (``ours``) or full-batch updates (``authors``).
        lam: λ, the PG entropy weight.
        variants: names from :data:`VARIANTS`, or ``pg-fixed-<u>`` (PG with U = u·I held fixed).
        out_dir: where the CSV, markdown summary and PNG go.
        data_path: optional ``.npz`` cache: loaded if it exists, else the data are collected and saved there.
        data_seed: seed of the data collection.
        dataset: an offline dataset to use instead of collecting random data: a ``.npz`` file, a Minari dataset
            folder or a Minari id (:func:`mbrl_po.data.datasets.load_dataset`); its first ``num_transitions``.
        test_fraction: share of trajectory segments held out as the TEST split.
        segment_length: length of the contiguous segments the episodes are cut into for the split.
        horizons: rollout horizons H reported.
        num_samples: G, PG samples per data point.
        estimator: PG gradient estimator, ``"score"`` (the paper's) or ``"pathwise"``.
        pg_baseline: score-function baseline, ``"loo"`` or ``"none"`` (None: by setting).
        lr: Adam learning rate.
        grad_clip: max gradient norm.
        outer_every: epochs (updates for ``authors``) between bilevel outer steps of ``pg-learned``.
        bilevel_lr: outer learning rate of ``pg-learned`` (None: the solver's default).
        ensemble_size, num_elites, hidden_sizes, activation, learn_delta, normalize, batch_size (0 = full
            batch), patience (0 = no early stopping), bootstrap, weight_decay, holdout_fraction,
            init_max_logvar, init_min_logvar, logvar_bound_penalty: model/trainer overrides.
        threads: ``torch.set_num_threads`` for the run (None: leave as is).
        progress: show progress bars (None: when stderr is a terminal).
    """

    env: str = "halfcheetah"
    num_transitions: int = 20_000
    seeds: tuple[int, ...] = (0, 1, 2)
    setting: str = "ours"
    epochs: int | None = None
    lam: float = 1.0
    variants: tuple[str, ...] = tuple(VARIANTS)
    out_dir: str | Path = "docs/results/offline"
    data_path: str | Path | None = None
    data_seed: int = 0
    dataset: str | Path | None = None
    test_fraction: float = 0.2
    segment_length: int = 100
    horizons: tuple[int, ...] = (1, 5, 10)
    num_samples: int = 5
    estimator: str = "score"
    pg_baseline: str | None = None
    lr: float = 1e-3
    grad_clip: float = 10.0
    outer_every: int = 1
    bilevel_lr: float | None = None
    ensemble_size: int | None = None
    num_elites: int | None = None
    hidden_sizes: tuple[int, ...] | None = None
    activation: str | None = None
    learn_delta: bool | None = None
    normalize: bool | None = None
    batch_size: int | None = None
    patience: int | None = None
    bootstrap: bool | None = None
    weight_decay: float | None = None
    holdout_fraction: float | None = None
    init_max_logvar: float | None = None
    init_min_logvar: float | None = None
    logvar_bound_penalty: float | None = None
    threads: int | None = None
    progress: bool | None = None

    def __post_init__(self) -> None:
        if self.setting not in SETTINGS:
            raise ValueError(f"setting: got {self.setting!r}, allowed {list(SETTINGS)}")
        self.seeds = tuple(self.seeds)
        self.variants = tuple(self.variants)
        self.horizons = tuple(sorted({int(h) for h in self.horizons}))
        defaults = SETTING_DEFAULTS[self.setting]
        defaulted = {k for k in defaults if getattr(self, k) is None}
        for k in defaulted:
            setattr(self, k, defaults[k])
        if "num_elites" in defaulted and is_int(self.ensemble_size):  # e.g. a 3-member "ours": 3 elites
            self.num_elites = min(self.num_elites, self.ensemble_size)
        self.hidden_sizes = tuple(int(h) for h in self.hidden_sizes)
        self._validate()

    def _validate(self) -> None:
        def bad(name: str, allowed: str) -> ValueError:
            return ValueError(f"{name}: got {getattr(self, name)!r}, allowed {allowed}")

        if not isinstance(self.env, str) or not self.env:
            raise bad("env", "a task name such as 'halfcheetah'")
        if not is_int(self.num_transitions) or self.num_transitions < 20:
            raise bad("num_transitions", "an integer >= 20")
        if not self.seeds or not all(is_int(s) and s >= 0 for s in self.seeds):
            raise bad("seeds", "a non-empty list of integers >= 0")
        if len(set(self.seeds)) != len(self.seeds):
            raise bad("seeds", "distinct seeds")
        if not self.variants:
            raise bad("variants", f"a non-empty subset of {list(VARIANTS)}")
        for v in self.variants:
            variant_spec(v)  # raises, naming the variant and the allowed names
        if len(set(self.variants)) != len(self.variants):
            raise bad("variants", "distinct names")
        if not is_int(self.epochs) or self.epochs < 1:
            raise bad("epochs", "an integer >= 1")
        if not (isinstance(self.lam, int | float) and math.isfinite(self.lam) and self.lam > 0):
            raise bad("lam", "a finite number > 0")
        if not is_int(self.data_seed) or self.data_seed < 0:
            raise bad("data_seed", "an integer >= 0")
        if not 0.0 < self.test_fraction < 1.0:
            raise bad("test_fraction", "in (0, 1)")
        if not is_int(self.segment_length) or self.segment_length < 2:
            raise bad("segment_length", "an integer >= 2")
        if not self.horizons or self.horizons[0] < 1:
            raise bad("horizons", "a non-empty list of integers >= 1")
        if self.horizons[-1] > self.segment_length:
            raise bad("horizons", f"horizons <= segment_length ({self.segment_length})")
        if not is_int(self.num_samples) or self.num_samples < 2:
            raise bad("num_samples", "an integer >= 2")
        if self.estimator not in ("score", "pathwise"):
            raise bad("estimator", "'score' or 'pathwise'")
        if self.pg_baseline not in ("loo", "none"):
            raise bad("pg_baseline", "'loo' or 'none'")
        if not self.lr > 0:
            raise bad("lr", "> 0")
        if not self.grad_clip > 0:
            raise bad("grad_clip", "> 0")
        if not is_int(self.outer_every) or self.outer_every < 1:
            raise bad("outer_every", "an integer >= 1")
        if self.bilevel_lr is not None and not self.bilevel_lr > 0:
            raise bad("bilevel_lr", "None or > 0")
        if not is_int(self.ensemble_size) or self.ensemble_size < 1:
            raise bad("ensemble_size", "an integer >= 1")
        if not is_int(self.num_elites) or not 1 <= self.num_elites <= self.ensemble_size:
            raise bad("num_elites", f"an integer in [1, ensemble_size={self.ensemble_size}]")
        if not self.hidden_sizes or min(self.hidden_sizes) < 1:
            raise bad("hidden_sizes", "a non-empty list of widths >= 1")
        if not is_int(self.batch_size) or self.batch_size < 0:
            raise bad("batch_size", "an integer >= 1, or 0 for full batch")
        if not is_int(self.patience) or self.patience < 0:
            raise bad("patience", "an integer >= 1, or 0 to disable early stopping")
        if not self.weight_decay >= 0:
            raise bad("weight_decay", ">= 0")
        if not 0.0 < self.holdout_fraction < 1.0:
            raise bad("holdout_fraction", "in (0, 1)")
        if self.threads is not None and (not is_int(self.threads) or self.threads < 1):
            raise bad("threads", "None or an integer >= 1")
        # the model validates activation and the log-variance bounds
        EnsembleConfig(
            obs_dim=1, action_dim=1, ensemble_size=self.ensemble_size, num_elites=self.num_elites,
            hidden_sizes=self.hidden_sizes, activation=self.activation, init_max_logvar=self.init_max_logvar,
            init_min_logvar=self.init_min_logvar, logvar_bound_penalty=self.logvar_bound_penalty,
        )

    def fingerprint_fields(self) -> dict[str, Any]:
        """Every field that changes a (variant, seed) result; seeds, variants, output and runtime knobs excluded."""
        skip = {"seeds", "variants", "out_dir", "data_path", "dataset", "threads", "progress"}  # data: fingerprint
        out = {}
        for f in dataclasses.fields(self):
            if f.name in skip:
                continue
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    @property
    def stem(self) -> str:
        """File stem of the outputs: ``offline_<env>_<setting>``."""
        return f"offline_{self.env}_{self.setting}"


# ---------------------------------------------------------------------------------------------------- data
def load_or_collect(cfg: OfflineConfig) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The transitions of ``cfg``: from ``cfg.data_path`` if it exists, else collected (and cached there).

    Raises:
        ValueError: when a cached file holds a different number of transitions or another env.
    """
    if cfg.dataset is not None:
        from mbrl_po.data.datasets import load_dataset
        from mbrl_po.envs.task import load_task

        if cfg.data_path is not None:
            raise ValueError("dataset: give either dataset or data_path (the random-data cache), not both")
        data, prov = load_dataset(cfg.dataset)
        env_id = load_task(cfg.env).id
        if prov.get("env_id") not in (None, env_id):
            raise ValueError(f"dataset: {cfg.dataset} holds {prov['env_id']} data, not {env_id} (env={cfg.env!r})")
        if len(data["obs"]) < cfg.num_transitions:
            raise ValueError(f"dataset: {cfg.dataset} holds {len(data['obs'])} transitions, fewer than "
                             f"num_transitions={cfg.num_transitions}")
        return {k: v[: cfg.num_transitions] for k, v in data.items()}, prov
    path = Path(cfg.data_path) if cfg.data_path is not None else None
    if path is not None and path.is_file():
        data, prov = load_npz(path)
        if len(data["obs"]) < cfg.num_transitions:
            raise ValueError(
                f"data_path: {path} holds {len(data['obs'])} transitions, fewer than "
                f"num_transitions={cfg.num_transitions}"
            )
        if prov.get("task") not in (None, cfg.env):
            raise ValueError(f"data_path: {path} was collected on {prov.get('task')!r}, not env={cfg.env!r}")
        data = {k: v[: cfg.num_transitions] for k, v in data.items()}
        return data, prov
    from mbrl_po.envs.task import load_task

    task = load_task(cfg.env)
    import gymnasium

    data = collect(task, cfg.num_transitions, policy=None, seed=cfg.data_seed, progress=cfg.progress)
    prov = {
        "task": cfg.env, "env_id": task.id, "policy": "uniform random", "seed": cfg.data_seed,
        "num_steps": cfg.num_transitions, "gymnasium": gymnasium.__version__, "collector": "mbrl_po.data.collect",
    }
    if path is not None:
        save_npz(path, data, prov)
    return data, prov


def data_fingerprint(data: dict[str, np.ndarray]) -> str:
    """Short sha1 of the transition arrays."""
    h = hashlib.sha1()
    for k in ("obs", "actions", "next_obs", "rewards"):
        h.update(np.ascontiguousarray(data[k], dtype=np.float32).tobytes())
    return h.hexdigest()[:12]


def segment_ids(data: dict[str, np.ndarray], segment_length: int) -> np.ndarray:
    """(B,) id of the contiguous segment of each row: episodes cut into pieces of ``segment_length`` rows."""
    ep = episode_ids(data)
    starts = np.r_[True, ep[1:] != ep[:-1]]
    start_idx = np.flatnonzero(starts)
    lengths = np.diff(np.r_[start_idx, len(ep)])
    pos = np.arange(len(ep)) - np.repeat(start_idx, lengths)
    key = np.stack([ep, pos // segment_length], 1)
    new = np.r_[True, (key[1:] != key[:-1]).any(1)]
    return np.cumsum(new) - 1


def split_by_segment(
    data: dict[str, np.ndarray], seed: int, test_fraction: float, segment_length: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random segment-level train/test split.

    Returns:
        (train_rows, test_rows, test_segment_ids): sorted row indices and the (len(test_rows),) segment id of
        each test row. Both splits are non-empty.
    """
    seg = segment_ids(data, segment_length)
    n_seg = int(seg[-1]) + 1
    if n_seg < 2:
        raise ValueError(
            f"segment_length: {segment_length} leaves {n_seg} segment(s) in {len(seg)} rows; need >= 2 to split"
        )
    rng = np.random.default_rng(np.random.SeedSequence([seed, 20251008]))
    n_test = min(max(1, int(round(test_fraction * n_seg))), n_seg - 1)
    test_segs = np.zeros(n_seg, bool)
    test_segs[rng.permutation(n_seg)[:n_test]] = True
    is_test = test_segs[seg]
    return np.flatnonzero(~is_test), np.flatnonzero(is_test), seg[is_test]


# ---------------------------------------------------------------------------------------------------- metrics
def mixture_moments(mean: torch.Tensor, std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Moment-matched Gaussian of an equal-weight mixture: (E, B, O) means/stds -> (B, O) mean and variance."""
    mu = mean.mean(0)
    var = (std**2 + mean**2).mean(0) - mu**2
    return mu, var.clamp_min(torch.finfo(var.dtype).tiny)


def gaussian_metrics(mean: torch.Tensor, var: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """RMSE, per-dim NLL (nats), 50%/90% central-interval coverage and RMS predicted std.

    Args:
        mean: (B, O) predictive mean.
        var: (B, O) predictive variance.
        target: (B, O) observed values.
    """
    mean, var, target = mean.double(), var.double(), target.double()
    err = target - mean
    z = err.abs() / var.sqrt()
    nll = 0.5 * (LOG_2PI + torch.log(var) + err**2 / var)
    return {
        "rmse": float(torch.sqrt((err**2).mean())),
        "nll": float(nll.mean()),
        "cov50": float((z <= Z50).double().mean()),
        "cov90": float((z <= Z90).double().mean()),
        "pred_std": float(torch.sqrt(var.mean())),
    }


def predictive_metrics(
    mean: torch.Tensor, std: torch.Tensor, target: torch.Tensor, elites: Sequence[int] | torch.Tensor | None = None
) -> dict[str, float]:
    """One-step metrics of an ensemble prediction.

    Args:
        mean: (E, B, O) per-member predicted means, raw units.
        std: (E, B, O) per-member predicted stds.
        target: (B, O) true next observations.
        elites: members forming the ensemble prediction (default: all).

    Returns:
        ``rmse``, ``nll``, ``cov50``, ``cov90``, ``pred_std`` of the moment-matched elite mixture, and
        ``rmse_member`` / ``nll_member``: each member's RMSE / NLL averaged over all E members.
    """
    if mean.shape != std.shape or mean.ndim != 3 or mean.shape[1:] != target.shape:
        raise ValueError(
            f"mean/std/target: expected (E, B, O), (E, B, O), (B, O), got {tuple(mean.shape)}, "
            f"{tuple(std.shape)}, {tuple(target.shape)}"
        )
    idx = torch.arange(mean.shape[0]) if elites is None else torch.as_tensor(elites, dtype=torch.long)
    mu, var = mixture_moments(mean[idx].double(), std[idx].double())
    out = gaussian_metrics(mu, var, target)
    members = [gaussian_metrics(mean[e], std[e] ** 2, target) for e in range(mean.shape[0])]
    out["rmse_member"] = float(np.mean([m["rmse"] for m in members]))
    out["nll_member"] = float(np.mean([m["nll"] for m in members]))
    return out


@torch.no_grad()
def rollout_rmse(
    model: GaussianEnsemble,
    obs: torch.Tensor,
    actions: torch.Tensor,
    next_obs: torch.Tensor,
    segments: np.ndarray,
    horizons: Sequence[int],
) -> dict[int, float]:
    """Open-loop H-step error along contiguous segments, feeding back the elite-mean prediction.

    From every test row t (as a start) the model predicts s_{t+1}, ..., s_{t+h} from its own mean predictions
    and the real actions a_t, ..., a_{t+h-1}; step h is scored only for starts with at least h transitions
    left in their segment. Rows must be in time order within each segment.

    Args:
        model: the fitted ensemble.
        obs: (B, O) test observations; actions (B, A); next_obs (B, O).
        segments: (B,) segment id of each row (rows of a segment contiguous and in order).
        horizons: H values to report.

    Returns:
        {H: RMSE over the obs dims of the H-th predicted state} (NaN if no start has H steps left).
    """
    n = obs.shape[0]
    seg = np.asarray(segments)
    if seg.shape != (n,):
        raise ValueError(f"segments: expected shape ({n},), got {seg.shape}")
    new = np.r_[True, seg[1:] != seg[:-1]]
    start_idx = np.flatnonzero(new)
    ends = np.r_[start_idx[1:], n] - 1  # last row of each segment
    last_row = np.repeat(ends, np.diff(np.r_[start_idx, n]))
    remaining = torch.as_tensor(last_row - np.arange(n) + 1)  # transitions left from each start (>= 1)
    h_max = max(horizons)
    elites = model.elite_idx
    state = obs.clone()
    rows = torch.arange(n)
    out: dict[int, float] = {}
    for h in range(1, h_max + 1):
        idx = torch.minimum(rows + (h - 1), torch.as_tensor(last_row))
        pred = model.predict(state, actions[idx]).next_obs_mean[elites].mean(0)
        if h in horizons:
            valid = remaining >= h
            err = (pred[valid].double() - next_obs[idx[valid]].double()) ** 2
            out[h] = float(torch.sqrt(err.mean())) if bool(valid.any()) else math.nan
        state = pred
    return out


@torch.no_grad()
def evaluate_model(
    model: GaussianEnsemble, test: dict[str, np.ndarray], segments: np.ndarray, horizons: Sequence[int]
) -> dict[str, float]:
    """All TEST metrics of a fitted model (see the module docstring).

    Args:
        model: fitted ensemble.
        test: transition dict of the test rows (in time order within each segment).
        segments: (B,) segment id of each test row.
        horizons: rollout horizons.
    """
    model.eval()
    dev = model.device
    obs = torch.as_tensor(test["obs"], dtype=torch.float32, device=dev)
    act = torch.as_tensor(test["actions"], dtype=torch.float32, device=dev)
    nxt = torch.as_tensor(test["next_obs"], dtype=torch.float32, device=dev)
    pred = model.predict(obs, act)
    out = predictive_metrics(pred.next_obs_mean, pred.next_obs_std, nxt, model.elite_idx)
    for h, v in rollout_rmse(model, obs, act, nxt, segments, horizons).items():
        out[f"rollout_rmse_h{h}"] = v
    return out


# ---------------------------------------------------------------------------------------------------- fitting
def objective_for(variant: str, cfg: OfflineConfig) -> tuple[str, dict[str, Any]]:
    """(objective name, options for :func:`~mbrl_po.objectives.make_objective`) of a variant under ``cfg``."""
    name, opts = variant_spec(variant)
    if name == "pg":
        opts.update(entropy_weight=float(cfg.lam), num_samples=cfg.num_samples, estimator=cfg.estimator,
                    baseline=cfg.pg_baseline)
    return name, opts


def build_model(cfg: OfflineConfig, obs_dim: int, action_dim: int, seed: int) -> GaussianEnsemble:
    """The ensemble of ``cfg``, initialised from ``torch.manual_seed(seed)`` (same init for every variant)."""
    torch.manual_seed(seed)
    return GaussianEnsemble(config=EnsembleConfig(
        obs_dim=obs_dim, action_dim=action_dim, ensemble_size=cfg.ensemble_size, num_elites=cfg.num_elites,
        hidden_sizes=cfg.hidden_sizes, activation=cfg.activation, learn_reward=False, learn_delta=cfg.learn_delta,
        normalize_inputs=cfg.normalize, normalize_targets=cfg.normalize, init_max_logvar=cfg.init_max_logvar,
        init_min_logvar=cfg.init_min_logvar, logvar_bound_penalty=cfg.logvar_bound_penalty,
    ))


def fit_variant(
    cfg: OfflineConfig, variant: str, seed: int, train: dict[str, np.ndarray],
    trace: list[dict[str, float]] | None = None, keep: dict[str, Any] | None = None,
) -> tuple[GaussianEnsemble, dict[str, float]]:
    """Fit one variant on the training rows of one seed.

    Args:
        trace: if given, the trainer's per-epoch log (epoch, train_loss, holdout_nll, holdout_mse, U) is
            appended to it.
        keep: if given, ``keep["trainer"]`` is set to the fitted :class:`DynamicsTrainer` (its objective and
            reward matrix, for diagnostics such as :mod:`benchmarks.harness.state_variance`).

    Returns:
        The fitted model and fit facts: ``fit_time_s``, ``epochs_run``, ``best_epoch``, ``stopped_early``,
        ``holdout_nll`` (trainer's internal holdout, raw units), ``u`` (final U: scalar or mean diagonal).
    """
    name, opts = objective_for(variant, cfg)
    model = build_model(cfg, train["obs"].shape[1], train["actions"].shape[1], seed)
    n = len(train["obs"])
    batch = cfg.batch_size if cfg.batch_size > 0 else n  # full batch: one update per epoch
    trainer = DynamicsTrainer(
        model, name, objective_options=opts, lr=cfg.lr, weight_decay=cfg.weight_decay, batch_size=batch,
        holdout_fraction=cfg.holdout_fraction, max_epochs=cfg.epochs,
        patience=cfg.patience if cfg.patience > 0 else None, grad_clip=cfg.grad_clip, bootstrap=cfg.bootstrap,
        outer_every=cfg.outer_every, seed=seed, progress=cfg.progress,
    )
    if trainer.bilevel is not None and cfg.bilevel_lr is not None:
        trainer.bilevel = BilevelSolver(trainer.objective, lr=cfg.bilevel_lr)
    t0 = time.perf_counter()
    report = trainer.fit(train["obs"], train["actions"], train["next_obs"], train["rewards"])
    fit_time = time.perf_counter() - t0
    if trace is not None:
        trace.extend(dict(row) for row in report.epochs)
    if keep is not None:
        keep["trainer"] = trainer
    extra = trainer.objective.extra_metrics()
    u = extra.get("u", extra.get("u_mean_diag", math.nan))
    return model, {
        "fit_time_s": fit_time, "epochs_run": float(len(report.epochs)), "best_epoch": float(report.best_epoch),
        "stopped_early": float(report.stopped_early), "holdout_nll": float(report.holdout_nll), "u": float(u),
    }


# ---------------------------------------------------------------------------------------------------- CSV
KEY_COLUMNS = ("config_id", "env", "setting", "variant", "seed")
INFO_COLUMNS = ("num_transitions", "lam", "epochs", "ensemble", "train_rows", "test_rows", "data_fingerprint",
                "timestamp")
METRIC_COLUMNS = ("rmse", "rmse_member", "nll", "nll_member", "cov50", "cov90", "pred_std")
FIT_COLUMNS = ("fit_time_s", "epochs_run", "best_epoch", "stopped_early", "holdout_nll", "u")


def csv_columns(horizons: Sequence[int]) -> list[str]:
    """Header of the results CSV for these rollout horizons."""
    return [*KEY_COLUMNS, *INFO_COLUMNS, *METRIC_COLUMNS, *(f"rollout_rmse_h{h}" for h in horizons), *FIT_COLUMNS]


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a results CSV, numbers parsed to float (keys and strings kept)."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            row: dict[str, Any] = {}
            for k, v in r.items():
                if k in ("config_id", "env", "setting", "variant", "ensemble", "data_fingerprint", "timestamp"):
                    row[k] = v
                elif k == "seed":
                    row[k] = int(v)
                else:
                    try:
                        row[k] = float(v)
                    except (TypeError, ValueError):
                        row[k] = v
            rows.append(row)
    return rows


def _append_row(path: Path, row: dict[str, Any], columns: list[str]) -> None:
    exists = path.is_file() and path.stat().st_size > 0
    if exists:
        with open(path, newline="") as f:
            header = next(csv.reader(f), [])
        if header != columns:
            raise ValueError(
                f"out_dir: {path} has columns {header}, expected {columns} (other horizons?); "
                f"use another out_dir or delete the file"
            )
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        if not exists:
            w.writeheader()
        w.writerow({k: row.get(k, "") for k in columns})
        f.flush()


# ---------------------------------------------------------------------------------------------------- reports
SUMMARY_METRICS = (
    ("rmse", "RMSE", 3), ("rmse_member", "RMSE (member)", 3), ("nll", "NLL/dim", 3),
    ("nll_member", "NLL/dim (member)", 3), ("cov50", "cov 50%", 3), ("cov90", "cov 90%", 3),
    ("pred_std", "pred. std", 3),
)
PROBABILISTIC = {"nll", "nll_member", "cov50", "cov90", "pred_std"}


def summarize(rows: Sequence[dict[str, Any]], variants: Sequence[str], horizons: Sequence[int]) -> str:
    """Markdown tables (mean ± 95% Student-t CI over seeds) of the given rows, one line per variant.

    The MSE model's variance head is never trained, so its probabilistic columns show ``n/a``.
    """
    one_step = [*SUMMARY_METRICS]
    multi = [(f"rollout_rmse_h{h}", f"rollout RMSE H={h}", 3) for h in horizons]
    multi += [("fit_time_s", "fit time (s)", 1), ("epochs_run", "epochs", 1), ("u", "final U (mean diag)", 3)]
    out = []
    for title, metrics in (("One-step TEST metrics", one_step), ("Rollout error and fitting", multi)):
        table_rows = []
        for v in variants:
            vr = [r for r in rows if r["variant"] == v]
            if not vr:
                continue
            cells: list[str] = [f"`{v}`", str(len(vr))]
            for key, _, digits in metrics:
                if (v == "mse" and key in PROBABILISTIC) or (key == "u" and not v.startswith("pg")):
                    cells.append("n/a")
                    continue
                m, hw, _ = mean_ci([float(r[key]) for r in vr])
                cells.append(format_mean_ci(m, hw, digits))
            table_rows.append(cells)
        out.append(f"**{title}** (mean ± 95% CI over seeds)\n\n")
        out.append(markdown_table(["variant", "seeds", *(t for _, t, _ in metrics)], table_rows))
        out.append("\n")
    paired = paired_differences(rows, variants, horizons)
    if paired:
        out.append(paired)
    return "".join(out)


def paired_differences(
    rows: Sequence[dict[str, Any]], variants: Sequence[str], horizons: Sequence[int], baseline: str = "nll"
) -> str:
    """Markdown table of per-seed differences ``variant - baseline`` (same split and init), mean ± 95% CI.

    Columns: one-step RMSE, NLL/dim, 50% coverage and the rollout RMSE at the longest horizon. Only seeds
    present for both are paired. Returns "" when the baseline has no rows.
    """
    base = {int(r["seed"]): r for r in rows if r["variant"] == baseline}
    if not base:
        return ""
    h = max(horizons)
    metrics = [("rmse", "Δ RMSE"), ("nll", "Δ NLL/dim"), ("cov50", "Δ cov 50%"),
               (f"rollout_rmse_h{h}", f"Δ rollout H={h}")]
    table_rows = []
    for v in variants:
        if v == baseline:
            continue
        mine = {int(r["seed"]): r for r in rows if r["variant"] == v and int(r["seed"]) in base}
        if not mine:
            continue
        cells: list[str] = [f"`{v}`", str(len(mine))]
        for key, _ in metrics:
            if v == "mse" and key in PROBABILISTIC:
                cells.append("n/a")
                continue
            m, hw, _ = mean_ci([float(r[key]) - float(base[s][key]) for s, r in sorted(mine.items())])
            cells.append(format_mean_ci(m, hw, 3))
        table_rows.append(cells)
    if not table_rows:
        return ""
    return (
        f"**Paired difference to `{baseline}`** (variant − {baseline} per seed, same split and init; "
        f"mean ± 95% CI; negative RMSE/NLL = better than {baseline})\n\n"
        + markdown_table(["variant", "pairs", *(t for _, t in metrics)], table_rows)
        + "\n"
    )


def plot_results(rows: Sequence[dict[str, Any]], variants: Sequence[str], horizons: Sequence[int],
                 path: str | Path, title: str = "",
                 reference: dict[str, tuple[float, float, float | None, float | None]] | None = None) -> Path:
    """A 2x3 PNG: bars (mean, 95% CI) of RMSE, NLL, 50%/90% coverage, fit time, and rollout RMSE vs H."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    present = [v for v in variants if any(r["variant"] == v for r in rows)]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    if len(present) > len(colors):  # one distinct colour per variant
        colors = list(plt.get_cmap("tab20").colors)

    def stat(v: str, key: str) -> tuple[float, float]:
        m, hw, _ = mean_ci([float(r[key]) for r in rows if r["variant"] == v])
        return m, (0.0 if math.isnan(hw) else hw)

    panels = [("rmse", "one-step RMSE (raw units)", None, axes[0, 0]),
              ("nll", "per-dim NLL (nats)", None, axes[0, 1]),
              ("cov90", "90% interval coverage", 0.9, axes[0, 2]),
              ("cov50", "50% interval coverage", 0.5, axes[1, 0]),
              ("fit_time_s", "fit wall time (s)", None, axes[1, 1])]
    for key, label, ref, ax in panels:
        vs = [v for v in present if not (v == "mse" and key in PROBABILISTIC)]
        ms = [stat(v, key) for v in vs]
        x = np.arange(len(vs))
        ax.bar(x, [m for m, _ in ms], yerr=[h for _, h in ms], capsize=3,
               color=[colors[present.index(v) % len(colors)] for v in vs])
        ax.set_xticks(x, vs, rotation=35, ha="right", fontsize=8)
        ax.set_title(label)
        if ref is not None:
            ax.axhline(ref, color="k", ls="--", lw=1)
        if reference and key in ("rmse", "nll"):  # e.g. the paper's Table 3: black diamonds, mean ± its std
            col = 0 if key == "rmse" else 2
            pts = [(i, reference[v][col], reference[v][col + 1]) for i, v in enumerate(vs)
                   if v in reference and reference[v][col] is not None]
            if pts:
                ax.errorbar([i for i, _, _ in pts], [m for _, m, _ in pts], yerr=[e for _, _, e in pts], fmt="D",
                            color="k", ms=5, capsize=3, label="paper (Table 3)")
                ax.legend(fontsize=7)
        if key == "nll":
            finite = [m for m, _ in ms if math.isfinite(m)]
            if finite and max(finite) - min(finite) > 50:
                ax.set_yscale("symlog")
    ax = axes[1, 2]
    for i, v in enumerate(present):
        ms = [stat(v, f"rollout_rmse_h{h}") for h in horizons]
        ax.errorbar(horizons, [m for m, _ in ms], yerr=[h for _, h in ms], marker="o", capsize=3,
                    label=v, color=colors[i % len(colors)])
    ax.set_xlabel("open-loop horizon H")
    ax.set_title("rollout RMSE at step H")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    return save_figure(fig, path, title)


def save_figure(fig: Any, path: str | Path, title: str = "") -> Path:
    """Title, lay out, write ``fig`` as a PNG at ``path`` (folders created) and close it; returns the path."""
    import matplotlib.pyplot as plt

    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# The paper's Table 3 (arXiv 2510.07624 §6.2; ../shared/research/paper.md §5.1): halfcheetah medium-v0, 10% of
# the transitions, 2x64 MLP, 400 full-batch updates, lr 1e-3, 5 runs sharing one split and one init. Mean and
# std over runs as printed by the authors (std, not a CI). Keys are our variant names.
PAPER_TABLE3: dict[str, tuple[float, float, float | None, float | None]] = {
    "mse": (1.8778, 0.0000, None, None),
    "nll": (4.5936, 0.0317, 0.7326, 0.0081),
    "pg-identity": (2.4144, 0.0463, 7.9670, 0.7013),
    "pg-scaled-marginal": (2.7489, 0.0078, 2.8667, 0.0091),
    "pg-inverse_cov-marginal": (6.0146, 0.0915, 2.5380, 0.2355),
    "pg-learned": (2.3171, 0.0096, 2.3230, 0.0177),
}


def paper_comparison(rows: Sequence[dict[str, Any]], variants: Sequence[str]) -> str:
    """Markdown table: our TEST RMSE and NLL/dim (mean ± 95% CI) beside the paper's Table 3 (mean ± std)."""
    table_rows = []
    for v in variants:
        vr = [r for r in rows if r["variant"] == v]
        if not vr:
            continue
        rm, rh, _ = mean_ci([float(r["rmse"]) for r in vr])
        if v == "mse":
            ours_nll = "n/a"
        else:
            nm, nh, _ = mean_ci([float(r["nll"]) for r in vr])
            ours_nll = format_mean_ci(nm, nh, 3)
        paper = PAPER_TABLE3.get(v)
        if paper is None:
            p_rmse = p_nll = "not in the paper"
        else:
            p_rmse = f"{paper[0]:.3f} ± {paper[1]:.3f}"
            p_nll = "n/a" if paper[2] is None else f"{paper[2]:.3f} ± {paper[3]:.3f}"
        table_rows.append([f"`{v}`", str(len(vr)), format_mean_ci(rm, rh, 3), p_rmse, ours_nll, p_nll])
    if not table_rows:
        return ""
    return (
        "**Beside the paper's Table 3** (ours: mean ± 95% CI over seeds, each seed its own split and init; "
        "paper: mean ± std over 5 runs sharing one split and one init, halfcheetah medium-v0 from Minari, "
        "10% of it; `pg-learned` is the paper's U_implicit)\n\n"
        + markdown_table(["variant", "seeds", "RMSE (ours)", "RMSE (paper)", "NLL/dim (ours)", "NLL/dim (paper)"],
                         table_rows)
        + "\n"
    )


def _data_description(cfg: OfflineConfig, rows: Sequence[dict[str, Any]], prov: dict[str, Any]) -> str:
    """One phrase naming the data: the dataset file and its provenance (as loaded by :func:`load_or_collect`),
    or the random-policy collection."""
    if cfg.dataset is None:
        return f"{cfg.num_transitions} random-policy transitions (data seed {cfg.data_seed}"

    def show(v: Any) -> str:
        return f"{v:.1f}" if isinstance(v, float) else str(v)

    what = ", ".join(f"{k} {show(prov[k])}" for k in ("env_id", "policy", "policy_return", "mean_return", "seed")
                     if k in prov)
    return (f"the first {cfg.num_transitions} transitions of dataset `{Path(str(cfg.dataset)).name}`"
            f"{' (' + what + ')' if what else ''} (data fingerprint {rows[0].get('data_fingerprint', '?')}")


def write_reports(cfg: OfflineConfig, rows: Sequence[dict[str, Any]], config_id: str,
                  provenance: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Write ``<stem>.md`` and ``<stem>.png`` in ``cfg.out_dir`` from the rows of ``config_id``.

    In the authors' setting on HalfCheetah the paper's Table 3 is printed beside our figures."""
    out = Path(cfg.out_dir)
    mine = [r for r in rows if r["config_id"] == config_id]
    seeds = sorted({int(r["seed"]) for r in mine})
    any_row = mine[0] if mine else {}
    head = (
        f"# Offline dynamics objectives: {cfg.env}, setting `{cfg.setting}`\n\n"
        f"config `{config_id}`; {_data_description(cfg, mine, provenance or {})}, "
        f"{any_row.get('train_rows', '?'):.0f} train / {any_row.get('test_rows', '?'):.0f} test rows per seed), "
        f"model {any_row.get('ensemble', '?')}, λ = {cfg.lam}, max epochs {cfg.epochs}, seeds {seeds}.\n"
        f"Held-out TEST split of contiguous {cfg.segment_length}-step segments; raw units over the obs dims.\n\n"
        if mine else f"# Offline dynamics objectives: {cfg.env}, setting `{cfg.setting}`\n\n(no rows yet)\n"
    )
    md = out / f"{cfg.stem}.md"
    paper = paper_comparison(mine, cfg.variants) if (cfg.setting == "authors" and cfg.env == "halfcheetah") else ""
    md.write_text(head + (paper + "\n" if paper else "") + summarize(mine, cfg.variants, cfg.horizons))
    png = out / f"{cfg.stem}.png"
    if mine:
        with_paper = cfg.setting == "authors" and cfg.env == "halfcheetah"
        plot_results(mine, cfg.variants, cfg.horizons, png,
                     title=f"{cfg.env} offline, setting {cfg.setting}, {len(seeds)} seeds (mean ± 95% CI)"
                     + (" ; black: the paper's Table 3" if with_paper else ""),
                     reference=PAPER_TABLE3 if with_paper else None)
    return md, png


# ---------------------------------------------------------------------------------------------------- driver
def config_id_of(cfg: OfflineConfig, fingerprint: str) -> str:
    """The id of the rows of ``cfg`` on data with ``fingerprint``: a hash of every field that changes a result."""
    return hashlib.sha1(
        json.dumps({**cfg.fingerprint_fields(), "data": fingerprint}, sort_keys=True, default=str).encode()
    ).hexdigest()[:10]


def run_offline(cfg: OfflineConfig, reports: bool = True) -> list[dict[str, Any]]:
    """Run every (variant, seed) of ``cfg`` not yet in ``<out_dir>/<stem>.csv``, appending one row each.

    Args:
        reports: also (re)write ``<stem>.md`` and ``<stem>.png`` from all rows of this configuration.

    Returns:
        All CSV rows of this configuration (old and new), as dicts.
    """
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data, provenance = load_or_collect(cfg)
    data = validate_transitions(data)
    fp = data_fingerprint(data)
    config_id = config_id_of(cfg, fp)
    csv_path = out / f"{cfg.stem}.csv"
    columns = csv_columns(cfg.horizons)
    done = {(r["config_id"], r["variant"], int(r["seed"])) for r in read_rows(csv_path)}
    jobs = [(s, v) for s in cfg.seeds for v in cfg.variants if (config_id, v, s) not in done]
    ensemble = f"{cfg.ensemble_size}x{'x'.join(map(str, cfg.hidden_sizes))} {cfg.activation}"
    bar = None
    if jobs and _progress_enabled(cfg.progress):
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), desc=f"offline[{cfg.setting}]")
    split_cache: dict[int, tuple] = {}
    for seed, variant in jobs:
        if seed not in split_cache:
            tr, te, seg = split_by_segment(data, seed, cfg.test_fraction, cfg.segment_length)
            split_cache[seed] = ({k: v[tr] for k, v in data.items()}, {k: v[te] for k, v in data.items()}, seg)
        train, test, seg = split_cache[seed]
        if bar is not None:
            bar.set_postfix(seed=seed, variant=variant)
        model, facts = fit_variant(cfg, variant, seed, train)
        metrics = evaluate_model(model, test, seg, cfg.horizons)
        row = {
            "config_id": config_id, "env": cfg.env, "setting": cfg.setting, "variant": variant, "seed": seed,
            "num_transitions": cfg.num_transitions, "lam": cfg.lam, "epochs": cfg.epochs, "ensemble": ensemble,
            "train_rows": len(train["obs"]), "test_rows": len(test["obs"]), "data_fingerprint": fp,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"), **metrics, **facts,
        }
        _append_row(csv_path, row, columns)
        if bar is not None:
            bar.update(1)
        else:
            print(
                f"[offline] seed {seed} {variant}: rmse {metrics['rmse']:.4f} nll {metrics['nll']:.3f} "
                f"cov90 {metrics['cov90']:.3f} h{cfg.horizons[-1]} {metrics[f'rollout_rmse_h{cfg.horizons[-1]}']:.3f}"
                f" ({facts['fit_time_s']:.1f}s, {facts['epochs_run']:.0f} ep)",
                flush=True,
            )
    if bar is not None:
        bar.close()
    rows = [r for r in read_rows(csv_path) if r["config_id"] == config_id]
    if reports:
        write_reports(cfg, rows, config_id, provenance)
    return rows


def demo(
    out_dir: str | Path = "offline_demo",
    transitions: int = 3000,
    epochs: int = 30,
    seeds: Sequence[int] = (0,),
    bilevel_lr: float = 0.2,
    progress: bool | None = None,
) -> list[dict[str, Any]]:
    """Quick offline comparison (about 1-2 min on one CPU core): a few thousand random-policy HalfCheetah-v5
    transitions, a small 3x2x128 SiLU ensemble fitted with MSE, NLL and PG with a learned U; prints the table
    and writes ``offline_halfcheetah_ours.{csv,md,png}`` in ``out_dir``.

    Args:
        out_dir: output folder.
        transitions: transitions collected (data seed 0).
        epochs: max epochs per fit (early stopping on).
        seeds: one fit per variant and seed.
        bilevel_lr: outer learning rate of the learned U (the solver's default 0.05 is too slow for 30 epochs).
        progress: progress bars (None: when stderr is a terminal).

    Returns:
        The CSV rows of this run.
    """
    cfg = OfflineConfig(
        env="halfcheetah", num_transitions=transitions, seeds=tuple(seeds), setting="ours", epochs=epochs,
        variants=("mse", "nll", "pg-learned"), out_dir=out_dir, ensemble_size=3, num_elites=3,
        hidden_sizes=(128, 128), segment_length=50, bilevel_lr=bilevel_lr, progress=progress,
    )
    rows = run_offline(cfg)
    print(summarize(rows, cfg.variants, cfg.horizons))
    print(f"plot: {Path(out_dir) / (cfg.stem + '.png')}")
    return rows


def build_parser(prog: str = "python -m benchmarks.harness.offline", description: str | None = None
                 ) -> argparse.ArgumentParser:
    """The command-line options of an offline run (shared with :mod:`benchmarks.harness.u_landscape`)."""
    p = argparse.ArgumentParser(
        prog=prog,
        description=description or "Offline comparison of dynamics objectives (MSE, NLL, PG variants).",
    )
    p.add_argument("--env", default="halfcheetah")
    p.add_argument("--transitions", type=int, default=20_000, help="number of transitions to collect / use")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--setting", choices=SETTINGS, default="ours")
    p.add_argument("--epochs", type=int, default=None, help="max epochs (ours) or full-batch updates (authors)")
    p.add_argument("--lambda", dest="lam", type=float, default=1.0, help="PG entropy weight λ")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS),
                   help=f"subset of {list(VARIANTS)}, or {FIXED_PREFIX}<u> (U = u*I fixed)")
    p.add_argument("--out", default="docs/results/offline", help="output folder (csv, md, png)")
    p.add_argument("--data", default=None, help="npz cache of the transitions (collected and saved if missing)")
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--dataset", default=None, metavar="PATH_OR_MINARI_ID",
                   help="use this dataset (.npz, Minari folder or id; see docs/datasets.md) instead of random data")
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument("--segment-length", type=int, default=100)
    p.add_argument("--horizons", type=int, nargs="+", default=[1, 5, 10])
    p.add_argument("--num-samples", type=int, default=5, help="PG samples G per data point")
    p.add_argument("--estimator", choices=("score", "pathwise"), default="score")
    p.add_argument("--ensemble-size", type=int, default=None)
    p.add_argument("--num-elites", type=int, default=None)
    p.add_argument("--hidden", type=int, nargs="+", default=None, help="hidden widths, e.g. 200 200 200")
    p.add_argument("--batch-size", type=int, default=None, help="0 = full batch")
    p.add_argument("--patience", type=int, default=None, help="0 = no early stopping")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--outer-every", type=int, default=1, help="epochs between bilevel outer steps (pg-learned)")
    p.add_argument("--bilevel-lr", type=float, default=None)
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--no-progress", action="store_true")
    return p


def config_from_args(args: argparse.Namespace) -> OfflineConfig:
    """The :class:`OfflineConfig` of parsed :func:`build_parser` options (validated)."""
    return OfflineConfig(
        env=args.env, num_transitions=args.transitions, seeds=tuple(args.seeds), setting=args.setting,
        epochs=args.epochs, lam=args.lam, variants=tuple(args.variants), out_dir=args.out, data_path=args.data,
        data_seed=args.data_seed, dataset=args.dataset, test_fraction=args.test_fraction,
        segment_length=args.segment_length,
        horizons=tuple(args.horizons), num_samples=args.num_samples, estimator=args.estimator,
        ensemble_size=args.ensemble_size, num_elites=args.num_elites,
        hidden_sizes=tuple(args.hidden) if args.hidden else None, batch_size=args.batch_size,
        patience=args.patience, lr=args.lr, outer_every=args.outer_every, bilevel_lr=args.bilevel_lr,
        threads=args.threads, progress=False if args.no_progress else None,
    )


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = build_parser()
    p.add_argument("--demo", action="store_true", help="quick README demo (3000 transitions, small ensemble)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Command-line entry point; see ``--help``."""
    args = _parse_args(argv)
    torch.set_num_threads(args.threads)
    progress = False if args.no_progress else None
    if args.demo:
        return demo(args.out if args.out != "docs/results/offline" else "offline_demo", progress=progress)
    cfg = config_from_args(args)
    t0 = time.perf_counter()
    rows = run_offline(cfg)
    print(summarize(rows, cfg.variants, cfg.horizons))
    print(f"[offline] {len(rows)} rows in {Path(cfg.out_dir) / (cfg.stem + '.csv')} ({time.perf_counter() - t0:.0f}s)")
    return rows


if __name__ == "__main__":
    main()
