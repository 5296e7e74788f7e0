"""One drop-in trainer for dynamics ensembles, whatever the objective (MLE or bilevel PG)."""

from __future__ import annotations

import copy
import inspect
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch

from mbrl_po.data.transitions import as_transitions, from_sb3_buffer
from mbrl_po.errors import NonFiniteModelError
from mbrl_po.models.ensemble import PRECISIONS, GaussianEnsemble
from mbrl_po.objectives import Objective, PGObjective, gaussian_nll, make_objective
from mbrl_po.objectives.reward_matrix import legacy_state
from mbrl_po.training.bilevel import BilevelSolver
from mbrl_po.types import ModelBatch, TransitionData

EARLY_STOP_METRICS = ("nll", "mse")
"""The held-out score per member that early stopping and the elites use: ``nll`` (Gaussian NLL per output dim,
normalised targets) or ``mse`` (squared error of the mean in raw units: MBPO's and mbrl-lib's criterion)."""


@dataclass
class FitReport:
    """What ``DynamicsTrainer.fit`` did.

    Attributes:
        epochs: one dict of metrics per epoch (keys: epoch, train_loss, holdout_nll, holdout_mse, U, ...).
        best_epoch: epoch whose weights were kept (per member: the mean of the members' best epochs).
        stopped_early: whether patience ran out before ``max_epochs``.
        holdout_nll: held-out Gaussian NLL per output dim in raw units (nats), mean over members, kept weights.
        holdout_nll_per_dim: (T,) list, same, per output dim.
        holdout_mse: held-out MSE of the mean in raw units, mean over members.
        elites: indices of the elite members.
        train_size, holdout_size: rows used.
        wall_time: seconds.
        outer_steps: bilevel outer steps taken (learned U only), each with the logged U.
        rolled_back: the model (weights, optimizer state, the objective's U and a learned U's solver state) was
            restored to the last finite point, because they were non-finite before the fit or became non-finite
            during it (see ``nonfinite``); the
            holdout metrics are then those of the restored model. A ``RuntimeWarning`` says so too.
        nonfinite: what was found non-finite (``""`` when nothing was): ``"weights before the fit"``,
            ``"weights"``, ``"optimizer state"``, ``"learned U"`` or ``"held-out loss"``.
    """

    epochs: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False
    holdout_nll: float = math.nan
    holdout_nll_per_dim: list[float] = field(default_factory=list)
    holdout_mse: float = math.nan
    elites: list[int] = field(default_factory=list)
    train_size: int = 0
    holdout_size: int = 0
    wall_time: float = 0.0
    outer_steps: list[dict[str, float]] = field(default_factory=list)
    rolled_back: bool = False
    nonfinite: str = ""

    @property
    def holdout_rmse(self) -> float:
        return math.sqrt(self.holdout_mse)


def _progress_enabled(flag: bool | None) -> bool:
    if flag is not None:
        return flag
    return sys.stderr.isatty() and not os.environ.get("CI")


def _fused_adam_supported(device: torch.device | str) -> bool | None:
    """``fused=True`` for Adam where torch has a fused kernel for this device (CPU and CUDA in torch >= 2.4):
    one kernel over all parameters instead of ~10 elementwise passes (docs/perf_notes.md, fused Adam). Same
    update rule; results agree with the unfused Adam to float rounding. ``None`` (torch's default) elsewhere."""
    kind = torch.device(device).type
    if kind not in ("cpu", "cuda"):
        return None
    major, minor = (int(v) for v in torch.__version__.split(".")[:2])
    return True if (major, minor) >= (2, 4) else None


class DynamicsTrainer:
    """Fits a :class:`GaussianEnsemble` with any objective.

    Args:
        model: the ensemble to train (in place).
        objective: an objective object or a name (``"nll"``, ``"mse"``, ``"pg"``).
        objective_options: options for :func:`make_objective` when ``objective`` is a name.
        lr: Adam learning rate.
        weight_decay: L2 on the network weights (not on the log-variance bounds).
        batch_size: rows per member per step.
        holdout_fraction: share of the data held out for early stopping, elites and the bilevel outer level.
        max_holdout: cap on held-out rows.
        max_epochs: default epoch budget of ``fit``.
        patience: stop after this many epochs with no member improving its held-out score
            (``early_stop_metric``) by ``min_delta`` (relative); None disables early stopping.
        early_stop_metric: the held-out score per member for early stopping, the kept (best) weights and the
            elites: ``"nll"`` or ``"mse"`` (:data:`EARLY_STOP_METRICS`).
        grad_clip: max gradient norm (None: off).
        bootstrap: each member trains on its own bootstrap resample (PETS).
        bilevel: solver for a learned U; built automatically for ``pg`` + ``learned`` unless given.
        outer_every: epochs between bilevel outer steps.
        precision: ``"float32"`` or ``"bf16"`` (autocast for the forward passes).
        seed: seeds the split, bootstrap, minibatch order and PG samples.
        progress: show a progress bar (default: when stderr is a terminal and ``CI`` is unset).
    """

    def __init__(
        self,
        model: GaussianEnsemble,
        objective: Objective | str = "nll",
        *,
        objective_options: dict[str, Any] | None = None,
        lr: float = 1e-3,
        weight_decay: float = 5e-5,
        batch_size: int = 256,
        holdout_fraction: float = 0.1,
        max_holdout: int = 5000,
        max_epochs: int = 50,
        patience: int | None = 5,
        min_delta: float = 0.01,
        early_stop_metric: str = "nll",
        grad_clip: float | None = 10.0,
        bootstrap: bool = True,
        bilevel: BilevelSolver | None = None,
        outer_every: int = 1,
        precision: str = "float32",
        seed: int = 0,
        progress: bool | None = None,
    ) -> None:
        if not isinstance(model, GaussianEnsemble):
            raise ValueError(f"model: expected a GaussianEnsemble, got {type(model).__name__}")
        if isinstance(objective, str):
            objective = make_objective(objective, **(objective_options or {}))
        elif objective_options:
            raise ValueError("objective_options: only allowed when objective is given by name")
        checks = {
            "lr": lr > 0, "weight_decay": weight_decay >= 0, "batch_size": batch_size >= 1,
            "holdout_fraction": 0 <= holdout_fraction < 1, "max_epochs": max_epochs >= 1,
            "min_delta": min_delta >= 0, "outer_every": outer_every >= 1, "max_holdout": max_holdout >= 1,
        }
        allowed = {
            "lr": "> 0", "weight_decay": ">= 0", "batch_size": ">= 1", "holdout_fraction": "in [0, 1)",
            "max_epochs": ">= 1", "min_delta": ">= 0", "outer_every": ">= 1", "max_holdout": ">= 1",
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"{name}: got {locals()[name]!r}, allowed {allowed[name]}")
        if patience is not None and patience < 1:
            raise ValueError(f"patience: got {patience!r}, allowed None or >= 1")
        if grad_clip is not None and not grad_clip > 0:
            raise ValueError(f"grad_clip: got {grad_clip!r}, allowed None or > 0")
        if early_stop_metric not in EARLY_STOP_METRICS:
            raise ValueError(f"early_stop_metric: got {early_stop_metric!r}, allowed {list(EARLY_STOP_METRICS)}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision: got {precision!r}, allowed {list(PRECISIONS)}")
        self.model = model
        self.objective = objective
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.holdout_fraction = holdout_fraction
        self.max_holdout = max_holdout
        self.max_epochs = max_epochs
        self.patience = patience
        self.min_delta = min_delta
        self.early_stop_metric = early_stop_metric
        self.grad_clip = grad_clip
        self.bootstrap = bootstrap
        self.outer_every = outer_every
        self.precision = precision
        self.seed = seed
        self.progress = progress
        if bilevel is None and isinstance(objective, PGObjective) and objective.reward_matrix.learnable:
            bilevel = BilevelSolver(objective)
        self.bilevel = bilevel
        self.generator = torch.Generator(device="cpu").manual_seed(seed)
        self.device_generator = torch.Generator(device=model.device).manual_seed(seed + 1)
        if hasattr(objective, "generator"):
            objective.generator = self.device_generator
        net = [p for n, p in model.named_parameters() if "logvar" not in n]
        bounds = [p for n, p in model.named_parameters() if "logvar" in n]
        self.optimizer = torch.optim.Adam(
            [{"params": net, "weight_decay": weight_decay}, {"params": bounds, "weight_decay": 0.0}], lr=lr,
            fused=_fused_adam_supported(model.device),
        )
        self.fits = 0
        try:
            observe = inspect.signature(objective.observe_holdout).parameters
        except (TypeError, ValueError):  # a builtin or C callable: assume the old two-argument form
            observe = {}
        self._observe_takes_inputs = "inputs" in observe
        # model + optimizer state of the last finite point: the start of the current fit, the end of the last one
        self._last_finite: dict[str, Any] | None = None

    def _observe_holdout(self, mean: torch.Tensor, targets: torch.Tensor, inputs: torch.Tensor) -> None:
        """``objective.observe_holdout``, with the held-out ``inputs`` when it takes them (a state-dependent U
        is fitted to them; objectives written before that keyword get the two arguments they expect)."""
        if self._observe_takes_inputs:
            self.objective.observe_holdout(mean, targets, inputs=inputs)
        else:
            self.objective.observe_holdout(mean, targets)

    # ------------------------------------------------------------------ non-finite weights
    def _nonfinite_part(self) -> str:
        """``""`` when the model's weights and the optimizer's state are all finite, else which part is not."""
        def finite(tensors: list[torch.Tensor]) -> bool:  # one host sync
            return not tensors or bool(torch.stack([torch.isfinite(v).all() for v in tensors]).all())

        if not finite([v for v in self.model.state_dict().values() if v.is_floating_point()]):
            return "weights"
        phis = [] if self.bilevel is None else self.bilevel.reward_matrix.parameters()
        if phis and not finite([p.detach() for p in phis]):
            return "learned U"
        moments = [v for st in self.optimizer.state.values() for v in st.values()
                   if isinstance(v, torch.Tensor) and v.is_floating_point()]
        return "" if finite(moments) else "optimizer state"

    def _snapshot(self) -> dict[str, Any]:
        """Model weights, optimizer state, the objective's state (U) and a learned U's solver state (its
        optimizer, its history)."""
        return {
            "model": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "objective": copy.deepcopy(self.objective.state_dict()),
            "bilevel": None if self.bilevel is None else copy.deepcopy(self.bilevel.state_dict()),
        }

    def _restore(self, snap: dict[str, Any]) -> None:
        self.model.load_state_dict(snap["model"])
        self.optimizer.load_state_dict(copy.deepcopy(snap["optimizer"]))
        self.objective.load_state_dict(copy.deepcopy(snap["objective"]))
        if self.bilevel is not None and snap.get("bilevel") is not None:
            self.bilevel.load_state_dict(copy.deepcopy(snap["bilevel"]))

    # ------------------------------------------------------------------ data
    def _data(self, args: tuple, kwargs: dict) -> TransitionData:
        dev = self.model.device
        if len(args) == 1 and not kwargs:
            src = args[0]
            if isinstance(src, TransitionData):
                return _check_finite(src.to(dev))
            if hasattr(src, "transitions") and callable(src.transitions):  # mbrl_po ReplayBuffer
                return src.transitions(device=dev)
            if hasattr(src, "observations") and hasattr(src, "buffer_size"):  # SB3 ReplayBuffer
                return _check_finite(from_sb3_buffer(src, device=dev))
            raise ValueError(
                f"data: a single argument must be a TransitionData, an mbrl_po or SB3 ReplayBuffer, "
                f"got {type(src).__name__}; or pass obs, actions, next_obs, rewards[, terminated]"
            )
        names = ["obs", "actions", "next_obs", "rewards", "terminated"]
        if len(args) > len(names):
            raise ValueError(f"fit: takes at most {len(names)} arrays ({names}), got {len(args)}")
        given = dict(zip(names, args, strict=False))
        for k in kwargs:
            if k not in names:
                raise ValueError(f"fit: unknown argument {k!r}, allowed {names}")
            if k in given:
                raise ValueError(f"fit: {k!r} given twice")
        given.update(kwargs)
        missing = [n for n in names[:4] if given.get(n) is None]
        if missing:
            raise ValueError(f"fit: missing {missing}; obs, actions, next_obs and rewards are required")
        data = as_transitions(**given, device=dev)
        c = self.model.config
        if data.obs.shape[1] != c.obs_dim:
            raise ValueError(f"obs: has dim {data.obs.shape[1]} but the model expects obs_dim={c.obs_dim}")
        if data.actions.shape[1] != c.action_dim:
            raise ValueError(
                f"actions: has dim {data.actions.shape[1]} but the model expects action_dim={c.action_dim}"
            )
        return data

    def _split(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        perm = torch.randperm(n, generator=self.generator)
        n_hold = min(int(round(n * self.holdout_fraction)), self.max_holdout)
        if self.holdout_fraction > 0 and n >= 2:
            n_hold = max(n_hold, 1)
        n_hold = min(n_hold, n - 1)
        return perm[n_hold:], perm[:n_hold]

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self, inputs: torch.Tensor, targets: torch.Tensor, chunk: int = 8192) -> dict[str, Any]:
        """Per-member held-out metrics on (B, I) normalised inputs and (B, T) normalised targets.

        Returns a dict with ``nll_member`` (E,) normalised NLL per dim, ``nll_per_dim`` (T,) raw-unit NLL
        averaged over members, ``nll`` and ``mse`` (raw units, member mean), ``mse_member`` (E,) raw-unit MSE
        per member, and ``mean`` (E, B, T) predictions.
        """
        model = self.model
        means, nll_sum = [], None
        for s in range(0, inputs.shape[0], chunk):
            with self._autocast():
                m, lv = model(inputs[s : s + chunk])
            m, lv = m.float(), lv.float()
            part = gaussian_nll(m, lv, targets[s : s + chunk]).sum(1)  # (E, T)
            nll_sum = part if nll_sum is None else nll_sum + part
            means.append(m)
        mean = torch.cat(means, dim=1)
        n = inputs.shape[0]
        log_std = torch.log(model.target_normalizer.std)
        nll_norm = nll_sum / n  # (E, T)
        nll_raw = nll_norm + log_std  # change of variables to raw units
        sq = ((mean - targets) * model.target_normalizer.std) ** 2  # raw units
        return {
            "nll_member": nll_norm.mean(1),
            "nll_per_dim": nll_raw.mean(0),
            "nll": float(nll_raw.mean()),
            "mse": float(sq.mean()),
            "mse_member": sq.mean(dim=(1, 2)),
            "mean": mean,
        }

    def _score(self, ev: dict[str, Any]) -> torch.Tensor:
        """(E,) held-out score per member from :meth:`evaluate` (lower is better): ``early_stop_metric``'s."""
        return ev["nll_member"] if self.early_stop_metric == "nll" else ev["mse_member"]

    def _autocast(self):  # noqa: ANN202
        if self.precision == "bf16":
            return torch.autocast(self.model.device.type, dtype=torch.bfloat16)
        return torch.autocast(self.model.device.type, enabled=False)

    # ------------------------------------------------------------------ fit
    def fit(self, *args: Any, max_epochs: int | None = None, **kwargs: Any) -> FitReport:
        """Train the model.

        Call as ``fit(obs, actions, next_obs, rewards, terminated=None)`` with numpy arrays or tensors
        ((B, O), (B, A), (B, O), (B,)), or ``fit(buffer)`` with an mbrl_po or stable-baselines3 ReplayBuffer.
        Normalisers are refitted on the training split each call; weights, optimizer state and a learned U
        carry over between calls (warm start).
        """
        t0 = time.perf_counter()
        data = self._data(args, kwargs)
        epochs = self.max_epochs if max_epochs is None else max_epochs
        if epochs < 1:
            raise ValueError(f"max_epochs: got {epochs}, allowed >= 1")
        model = self.model
        restored_before = False
        if self._nonfinite_part():
            if self._last_finite is None:
                raise NonFiniteModelError(
                    "model: its weights (or the optimizer's state) are NaN/inf before the fit and this trainer has "
                    "no earlier finite weights to restore; rebuild the model or load a finite checkpoint"
                )
            warnings.warn("fit: the model's weights were NaN/inf before the fit; restored the weights the last "
                          "finite fit ended with and fitting from them", RuntimeWarning,
                          stacklevel=2)
            self._restore(self._last_finite)
            restored_before = True
        else:
            self._last_finite = self._snapshot()
        E = model.ensemble_size
        train_idx, hold_idx = self._split(len(data))
        train = data.index(train_idx.to(data.obs.device))
        model.fit_normalizers(train.obs, train.actions, train.next_obs, train.rewards)
        x_train = model.make_inputs(train.obs, train.actions)
        y_train = model.make_targets(train.obs, train.next_obs, train.rewards)
        has_holdout = hold_idx.numel() > 0
        if not has_holdout and self.holdout_fraction > 0:
            warnings.warn(f"fit: {len(data)} transition(s) leave no held-out row (holdout_fraction="
                          f"{self.holdout_fraction}); early stopping and the elites use the training rows",
                          RuntimeWarning, stacklevel=2)
        if has_holdout:
            hold = data.index(hold_idx.to(data.obs.device))
            x_hold = model.make_inputs(hold.obs, hold.actions)
            y_hold = model.make_targets(hold.obs, hold.next_obs, hold.rewards)
        else:
            x_hold, y_hold = x_train, y_train
        self.objective.setup(model, y_train)
        n = x_train.shape[0]
        if self.bootstrap:
            members_rows = torch.randint(n, (E, n), generator=self.generator)
        else:
            members_rows = torch.arange(n).expand(E, n)
        members_rows = members_rows.to(model.device)

        report = FitReport(train_size=n, holdout_size=int(hold_idx.numel()))
        ev = self.evaluate(x_hold, y_hold)
        self._observe_holdout(ev["mean"], y_hold, x_hold)
        best = self._score(ev).clone()
        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        best_epoch = torch.zeros(E, dtype=torch.long)
        bad_epochs = 0
        steps_per_epoch = math.ceil(n / self.batch_size)
        bar = None
        if _progress_enabled(self.progress):
            from tqdm.auto import tqdm

            bar = tqdm(total=epochs, desc=f"fit[{getattr(self.objective, 'name', 'obj')}]", leave=False)
        for epoch in range(1, epochs + 1):
            model.train()
            order = torch.argsort(torch.rand(E, n, generator=self.generator), dim=1).to(model.device)
            rows = torch.gather(members_rows, 1, order)
            loss_sum = torch.zeros((), device=model.device)
            for s in range(steps_per_epoch):
                idx = rows[:, s * self.batch_size : (s + 1) * self.batch_size]
                batch = ModelBatch(x_train[idx], y_train[idx])
                with self._autocast():
                    loss, _ = self.objective.loss(model, batch)
                    loss = loss + model.logvar_bound_loss()
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if self.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), self.grad_clip)
                self.optimizer.step()
                loss_sum = loss_sum + loss.detach()
            row: dict[str, float] = {"epoch": float(epoch), "train_loss": float(loss_sum) / steps_per_epoch / E}
            if self.bilevel is not None and epoch % self.outer_every == 0:
                out = self.bilevel.step(model, (x_train, y_train), (x_hold, y_hold), generator=self.generator)
                report.outer_steps.append(out)
            model.eval()
            ev = self.evaluate(x_hold, y_hold)
            self._observe_holdout(ev["mean"], y_hold, x_hold)
            row.update(holdout_nll=ev["nll"], holdout_mse=ev["mse"])
            row.update(self.objective.extra_metrics())
            report.epochs.append(row)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(nll=f"{ev['nll']:.3f}", mse=f"{ev['mse']:.4g}")
            score = self._score(ev)
            improved = (best - score) / best.abs().clamp_min(1e-8) > self.min_delta
            if self.patience is None:
                improved = torch.ones_like(improved)
            # a member gone NaN/inf is never kept
            improved = improved & torch.isfinite(score) & torch.isfinite(ev["nll_member"])
            if bool(improved.any()):
                self._keep_members(best_state, improved)
                best = torch.where(improved, score, best)
                best_epoch[improved.cpu()] = epoch
                bad_epochs = 0
            else:
                bad_epochs += 1
                if self.patience is not None and bad_epochs >= self.patience:
                    report.stopped_early = True
                    break
        if bar is not None:
            bar.close()
        model.load_state_dict(best_state)
        model.eval()
        ev = self.evaluate(x_hold, y_hold)
        bad = self._nonfinite_part() or ("" if math.isfinite(ev["nll"]) and math.isfinite(ev["mse"])
                                         else "held-out loss")
        if bad:
            assert self._last_finite is not None  # set (or restored) at the start of this fit
            warnings.warn(f"fit: the model's {bad} became NaN/inf during this fit; rolled back to the weights "
                          f"before it (FitReport.rolled_back, the metrics row's model_rollback)", RuntimeWarning,
                          stacklevel=2)
            self._restore(self._last_finite)
            model.eval()
            scored = hold if has_holdout else train  # inputs again, with the restored model's normalisers
            ev = self.evaluate(model.make_inputs(scored.obs, scored.actions),
                               model.make_targets(scored.obs, scored.next_obs, scored.rewards))
            report.rolled_back, report.nonfinite = True, bad
            report.elites = model.elite_idx.tolist()
        else:
            self._observe_holdout(ev["mean"], y_hold, x_hold)
            elites = torch.argsort(self._score(ev))[: model.num_elites]
            model.set_elites(elites)
            report.elites = elites.tolist()
            self._last_finite = self._snapshot()
        if restored_before and not report.rolled_back:
            report.rolled_back, report.nonfinite = True, "weights before the fit"
        report.best_epoch = int(best_epoch.float().mean().round())
        report.holdout_nll = ev["nll"]
        report.holdout_nll_per_dim = ev["nll_per_dim"].tolist()
        report.holdout_mse = ev["mse"]
        report.wall_time = time.perf_counter() - t0
        self.fits += 1
        return report

    def _keep_members(self, best_state: dict[str, torch.Tensor], improved: torch.Tensor) -> None:
        """Copy the current weights of the improved members into ``best_state``."""
        E = self.model.ensemble_size
        imp = improved.to(self.model.device)
        for k, v in self.model.state_dict().items():
            if v.ndim >= 1 and v.shape[0] == E and ("hidden" in k or "head" in k):
                mask = imp.view(E, *([1] * (v.ndim - 1)))
                best_state[k] = torch.where(mask, v.detach(), best_state[k])
            else:
                best_state[k] = v.detach().clone()

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        """Optimizer, RNG, objective (``objective.state_dict()``: U) and bilevel state, for resuming an agent.
        The model's weights are the model's own ``state_dict``."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "device_generator": self.device_generator.get_state(),
            "objective": self.objective.state_dict(),
            "bilevel": None if self.bilevel is None else self.bilevel.state_dict(),
            "fits": self.fits,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`. Also reads the format up to dc4d05d, which had no ``objective``: a
        learned U's φ was in the solver's state (:meth:`BilevelSolver.load_state_dict` reads it there) and agents
        kept a fixed or heuristic U beside the trainer's state, passed in here as ``objective_u`` (T, T)."""
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.device_generator.set_state(state["device_generator"])
        if "objective" in state:
            self.objective.load_state_dict(state["objective"])
        elif state.get("objective_u") is not None and isinstance(self.objective, PGObjective):  # the old format
            rm = self.objective.reward_matrix
            rm.load_state_dict(legacy_state(rm, objective_u=state["objective_u"].to(self.model.device)))
        if self.bilevel is not None and state.get("bilevel") is not None:
            self.bilevel.load_state_dict(state["bilevel"])
        self.fits = int(state.get("fits", 0))


def _check_finite(data: TransitionData) -> TransitionData:
    """``data`` unchanged; a ValueError naming the field when any entry is NaN/inf."""
    for name in ("obs", "actions", "next_obs", "rewards"):
        bad = int((~torch.isfinite(getattr(data, name))).sum())
        if bad:
            raise ValueError(f"{name}: contains {bad} NaN or inf values; all entries must be finite")
    return data

