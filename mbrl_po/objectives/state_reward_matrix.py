"""State-dependent reward matrices U(x): the PG optimum for a conditional Gaussian.

For data y | x ~ N(f(x), Σ(x)), PG with ``r_U(ŷ, y) = -(ŷ-y)ᵀ U(x) (ŷ-y)`` has, at every x, the optimum
N(f(x), (λ/2) U(x)⁻¹) (the constant-U result of ``docs/objectives.md`` applied pointwise). So the likelihood is
maximal at ``U*(x) = (λ/2) Σ(x)⁻¹``, which depends on x: a constant U can only give an input-independent predictive
variance, while NLL learns a heteroscedastic one. A diagonal model reaches σ_t²(x) = λ / (2 U_tt(x)). Three
diagonal types, all in the model's normalised units and all functions of the model's normalised inputs:

* :class:`StateFixedRewardMatrix`: a given function U(x) (an oracle; object only, no name).
* :class:`StateHeuristicRewardMatrix` (``state_inverse_cov``): U(x) = (λ/2) / σ̂²(x), with log σ̂²(x) a small
  network (:class:`VarianceNet`) fitted by Gaussian NLL to the held-out residuals ``y - μ̂(x)`` of the current
  (detached) mean after every held-out evaluation: the state-dependent version of ``inverse_cov`` with
  ``covariance="residual"``. No gradient reaches the mean or the dynamics model from it. ``beta`` tempers it
  as β-NLL tempers NLL (same optimum variance, the mean's per-sample weight σ̂^{2(β-1)}(x)).
* :class:`StateLearnedRewardMatrix` (``state_learned``): U_ψ(x) from a small network ψ, learned by the bilevel
  solver (the implicit hypergradient of the held-out NLL, as for ``learned``). It starts constant (U = I or a
  given u·I), at the heuristic of the first held-out residuals (``init="residual"``), or with
  ``base="residual"`` as a bounded correction on the heuristic, U_ψ(x) = U_heur(x) · exp(c_ψ(x)) with c_ψ = 0 at
  the start and U_heur re-fitted after every evaluation.

Each has ``diagonal_at(inputs) -> (..., T)``; :meth:`matrix` raises (there is no single U). ``state_dict`` holds
the networks' weights, their optimizer state and what they were set up with, so checkpoints resume.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from mbrl_po.objectives.names import LEARNED_BASES, LEARNED_INITS
from mbrl_po.objectives.reward_matrix_base import RewardMatrix
from mbrl_po.objectives.reward_matrix_base import check_lambda as _check_lambda

__all__ = [
    "StateFixedRewardMatrix",
    "StateHeuristicRewardMatrix",
    "StateLearnedRewardMatrix",
    "VarianceNet",
    "fit_log_variance",
]

#: the soft bounds of a :class:`VarianceNet`'s log-variance, relative to the log marginal variance per dim
LOGVAR_BELOW = 16.0
LOGVAR_ABOVE = 4.0
#: rows of the last held-out inputs kept for :meth:`describe` (and saved with the state)
DESCRIBE_ROWS = 256


def _check_hidden(hidden: Any) -> tuple[int, ...]:
    ok = isinstance(hidden, Sequence) and not isinstance(hidden, str) and len(hidden) > 0
    if not (ok and all(isinstance(h, int) and not isinstance(h, bool) and h >= 1 for h in hidden)):
        raise ValueError(f"hidden: got {hidden!r}, allowed a non-empty list of widths >= 1")
    return tuple(int(h) for h in hidden)


def _check_positive(name: str, value: Any, integer: bool = False, allow_zero: bool = False) -> Any:
    kind = int if integer else int | float
    ok = isinstance(value, kind) and not isinstance(value, bool) and math.isfinite(value)
    if not (ok and (value >= 0 if allow_zero else value > 0)):
        raise ValueError(f"{name}: got {value!r}, allowed {'an integer' if integer else 'a finite number'} "
                         f"{'>= 0' if allow_zero else '> 0'}")
    return value


def _mlp(in_dim: int, out_dim: int, hidden: tuple[int, ...]) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = in_dim
    for h in hidden:
        layers += [nn.Linear(width, h), nn.SiLU()]
        width = h
    head = nn.Linear(width, out_dim)
    nn.init.zeros_(head.weight)  # a constant output at the start, whatever the hidden weights
    nn.init.zeros_(head.bias)
    layers.append(head)
    return nn.Sequential(*layers)



def _log_marginal_var(train_targets: torch.Tensor) -> torch.Tensor:
    """(B, T) targets -> (T,) log of their marginal variance (floored at 1e-8): where a U(x) net starts and
    around which its log-variances are bounded."""
    return torch.log(train_targets.detach().float().var(0, unbiased=False).clamp_min(1e-8))

class VarianceNet(nn.Module):
    """log σ²(x): an MLP (SiLU) from (..., I) inputs to (..., T) log-variances, soft-bounded (as the ensemble's
    head) to ``[center - 16, center + 4]`` per dim (``center`` the log marginal variance), and constant at
    ``init`` (per dim) until trained (zero output weights).

    Args:
        in_dim: I.
        out_dim: T.
        hidden: hidden widths.
        center: (T,) log-variance the bounds are placed around.
        init: (T,) log-variance at the start (kept inside the bounds with a margin of 1).
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: tuple[int, ...], center: torch.Tensor,
                 init: torch.Tensor | None = None) -> None:
        super().__init__()
        self.in_dim, self.out_dim, self.hidden = in_dim, out_dim, tuple(hidden)
        center = center.detach().float().reshape(out_dim)
        init = center if init is None else init.detach().float().reshape(out_dim)
        self.register_buffer("max_logvar", torch.maximum(center + LOGVAR_ABOVE, init + 1.0))
        self.register_buffer("min_logvar", torch.minimum(center - LOGVAR_BELOW, init - 1.0))
        # a per-dim shift of the log-variance before the bounds, set by calibrate() (not a trained weight)
        self.register_buffer("offset", torch.zeros(out_dim))
        self.net = _mlp(in_dim, out_dim, self.hidden)
        self.set_constant(init)

    @torch.no_grad()
    def set_constant(self, logvar: torch.Tensor) -> None:
        """Make the output the constant ``logvar`` (T,) exactly: zero output weights, the bias the bounds'
        inverse of it."""
        head = self.net[-1]
        lv = logvar.to(self.max_logvar).double()
        hi, lo = self.max_logvar.double(), self.min_logvar.double()
        lv = torch.minimum(torch.maximum(lv, lo + 1e-4), hi - 1e-4)
        t = lo + torch.log(torch.expm1(lv - lo))  # = hi - softplus(hi - raw)
        raw = hi - torch.log(torch.expm1(hi - t))
        head.weight.zero_()
        head.bias.copy_(raw.to(head.bias.dtype))
        self.offset.zero_()

    @torch.no_grad()
    def calibrate(self, inputs: torch.Tensor, sq_residuals: torch.Tensor, iterations: int = 3) -> None:
        """Shift log σ²(x) per dim so that the mean of r²/σ²(x) over these rows is 1 (the NLL-optimal shift,
        a fixed point of ``offset += log mean(r² e^{-s})``): T numbers, so all the rows can set them without
        overfitting, and the net's overall scale follows the residuals even when its weights are kept."""
        for _ in range(iterations):
            s = self(inputs)
            ratio = (sq_residuals * torch.exp(-s)).mean(0).clamp_min(1e-12)
            self.offset.add_(torch.log(ratio).clamp(-5.0, 5.0))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        raw = self.net(inputs) + self.offset
        lv = self.max_logvar - nn.functional.softplus(self.max_logvar - raw)
        return self.min_logvar + nn.functional.softplus(lv - self.min_logvar)


def _squared_residuals(residuals: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """(B, T) mean squared residual per row: (E, B, T) residuals averaged over the members (the pooled NLL of
    all members' residuals under one σ̂²(x) depends on them only through it), (B, T) as they are."""
    r = residuals.detach().float()
    if r.ndim == 3:
        sq = (r * r).mean(0)
    elif r.ndim == 2:
        sq = r * r
    else:
        raise ValueError(f"residuals: expected (E, B, T) or (B, T), got shape {tuple(r.shape)}")
    if inputs.ndim != 2 or inputs.shape[0] != sq.shape[0]:
        raise ValueError(f"inputs: expected (B, I) with B = {sq.shape[0]} rows (the residuals'), got shape "
                         f"{tuple(inputs.shape)}")
    return sq


def fit_log_variance(
    net: VarianceNet,
    optimizer: torch.optim.Optimizer,
    inputs: torch.Tensor,
    sq_residuals: torch.Tensor,
    steps: int,
    val_fraction: float = 0.2,
    seed: int = 0,
    check_every: int = 10,
) -> float:
    """Fit ``net`` by the Gaussian NLL ``½(s(x) + r²e^{-s(x)})`` of zero-mean residuals: ``steps`` full-batch
    steps of ``optimizer`` on (B, I) ``inputs`` and (B, T) squared residuals, keeping the weights with the lowest
    NLL on a fixed random ``val_fraction`` of the rows (checked every ``check_every`` steps, and before the first:
    a warm-started net that the new residuals do not improve stays as it was).

    Afterwards the per-dim scale is calibrated on all the rows (:meth:`VarianceNet.calibrate`).

    Returns:
        The kept weights' validation NLL per element before the calibration (the fit NLL when there are too few
        rows to hold any out).
    """
    n = inputs.shape[0]
    x = inputs.detach().float()
    sq = sq_residuals.detach().float()
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).to(x.device)
    n_val = int(round(n * val_fraction)) if n >= 10 else 0
    val, fit = perm[:n_val], perm[n_val:]
    if n_val == 0:
        val = fit

    def nll(idx: torch.Tensor) -> torch.Tensor:
        s = net(x[idx])
        return 0.5 * (s + sq[idx] * torch.exp(-s)).mean()

    with torch.enable_grad():
        with torch.no_grad():
            best = float(nll(val))
        best_state = copy.deepcopy(net.state_dict())
        for k in range(steps):
            optimizer.zero_grad(set_to_none=True)
            loss = nll(fit)
            loss.backward()
            optimizer.step()
            if (k + 1) % check_every == 0 or k == steps - 1:
                with torch.no_grad():
                    v = float(nll(val))
                if v < best:
                    best, best_state = v, copy.deepcopy(net.state_dict())
    net.load_state_dict(best_state)
    net.calibrate(x, sq)
    return best


def _clone_state(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.detach().clone()
    if isinstance(x, dict):
        return {k: _clone_state(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return type(x)(_clone_state(v) for v in x)
    return x


def _describe_u(u: torch.Tensor) -> dict[str, float]:
    """``u_mean_diag`` (mean of U(x) over rows and dims) and ``u_log_sd_x`` (std over rows of log U(x), averaged
    over dims: 0 for a U that does not depend on x) of (B, T) diagonals."""
    log_u = torch.log(u.double())
    return {"u_mean_diag": float(u.mean()),
            "u_log_sd_x": float(log_u.std(0, unbiased=False).mean()) if u.shape[0] > 1 else 0.0}


class _StateRewardMatrix(RewardMatrix):
    """What the diagonal U(x) types share: T (``_dim``) from :meth:`setup`, the last held-out inputs for
    :meth:`describe` (``_ref``), no single :meth:`matrix`. The networked types also keep ``_center`` (T,), the log
    marginal variance of the first targets (:meth:`_setup_center`)."""

    state_dependent = True
    _dim: int | None
    _center: torch.Tensor | None
    _ref: torch.Tensor | None

    @property
    def ready(self) -> bool:
        return self._dim is not None

    def _setup_center(self, train_targets: torch.Tensor) -> bool:
        """T and the log marginal variance at the first setup (or a new T), then True (the caller resets its
        nets); at a later setup on another device, everything moved there (:meth:`_move`), then False."""
        dim = int(train_targets.shape[-1])
        dev = train_targets.device
        if self._dim != dim or self._center is None:
            self._dim, self._center, self._ref = dim, _log_marginal_var(train_targets).to(dev), None
            return True
        if self._center.device != dev:
            self._center = self._center.to(dev)
            if self._ref is not None:
                self._ref = self._ref.to(dev)
            self._move(dev)
        return False

    def _move(self, dev: torch.device) -> None:
        """Move the type's own nets (and their optimizer state) to ``dev``, in place."""

    def _remember(self, inputs: torch.Tensor) -> None:
        self._ref = inputs[:DESCRIBE_ROWS].detach().clone()

    def matrix(self) -> torch.Tensor:
        raise ValueError(f"reward_matrix: {self.kind!r} depends on x; use diagonal_at(inputs)")

    def is_diagonal(self) -> bool:
        return True

    def describe(self) -> dict[str, float]:
        """``u_mean_diag`` and ``u_log_sd_x`` over the last held-out inputs ({} before any)."""
        if self._ref is None:
            return {}
        with torch.no_grad():
            return _describe_u(self.diagonal_at(self._ref))


class StateFixedRewardMatrix(_StateRewardMatrix):
    """A given diagonal U(x) (kind ``state_fixed``; an object, not a name): e.g. the oracle (λ/2)/σ²(x) of known
    data, or any other weighting.

    Args:
        fn: maps (..., I) normalised inputs to the (..., T) positive diagonal of U(x).
        entropy_weight: the λ ``fn`` was scaled with, if any (None: not checked against the objective's).
        entropy_scale_fn: optional, maps the inputs to a (..., T) positive factor w(x) on λ
            (:meth:`RewardMatrix.entropy_scale_at`).
    """

    kind = "state_fixed"

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], entropy_weight: float | None = None,
                 entropy_scale_fn: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        if not callable(fn):
            raise ValueError(f"fn: got {fn!r}, allowed a function of the (..., I) inputs")
        if entropy_scale_fn is not None and not callable(entropy_scale_fn):
            raise ValueError(f"entropy_scale_fn: got {entropy_scale_fn!r}, allowed None or a function of the inputs")
        self.fn = fn
        self.entropy_scale_fn = entropy_scale_fn
        self.entropy_weight = None if entropy_weight is None else _check_lambda(entropy_weight)
        self._dim: int | None = None
        self._ref: torch.Tensor | None = None

    def setup(self, train_targets: torch.Tensor) -> None:
        self._dim = int(train_targets.shape[-1])

    def observe_residuals(self, residuals: torch.Tensor, inputs: torch.Tensor | None = None) -> None:
        if inputs is not None:
            self._remember(inputs)

    def diagonal_at(self, inputs: torch.Tensor) -> torch.Tensor:
        u = self.fn(inputs)
        if u.shape[:-1] != inputs.shape[:-1] or (self._dim is not None and u.shape[-1] != self._dim):
            raise ValueError(f"fn: returned shape {tuple(u.shape)} for inputs {tuple(inputs.shape)}, expected "
                             f"(..., T) with T = {self._dim}")
        return u

    def entropy_scale_at(self, inputs: torch.Tensor) -> torch.Tensor | None:
        return None if self.entropy_scale_fn is None else self.entropy_scale_fn(inputs)

    def state_dict(self) -> dict[str, Any]:
        """``kind`` and ``dim`` (the function is code, not state)."""
        return {"kind": self.kind, "dim": self._dim}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._check_state(state, ("dim",))
        self._dim = state["dim"]


class StateHeuristicRewardMatrix(_StateRewardMatrix):
    """U(x) = (λ/2) / σ̂²(x) per dim (kind ``state_inverse_cov``), σ̂²(x) a :class:`VarianceNet` fitted by NLL to
    the held-out residuals of the current mean after every held-out evaluation.

    The net is created at the first residuals (I is known then), constant at the marginal variance of the
    training targets until it has seen them (U then equals ``inverse_cov`` with ``covariance="marginal"``), and
    warm-started from its last weights at every later evaluation and fit (its own Adam state is kept too).
    Each fit takes ``fit_steps`` full-batch steps (``first_fit_steps`` the first time) on the held-out rows and
    keeps the weights with the lowest NLL on a fixed ``val_fraction`` of them, so that a net fitted again after
    every epoch on the same ~10³ rows does not learn their noise.

    **Tempering** (``beta`` = β in [0, 1], the PG counterpart of β-NLL): U(x) = (λ/2) σ̂^{2β-2}(x) with the
    entropy weight λ σ̂^{2β}(x) per sample and dim (:meth:`entropy_scale_at`), i.e. the PG objective of each
    sample multiplied by w(x) = sg(σ̂^{2β}(x)). The optimum variance is still σ̂²(x) (λw / (2wU) = λ/(2U)), while
    the mean's gradient weight becomes w·U ∝ σ̂^{2(β-1)}(x): β = 0 is the plain heuristic (the NLL-like weight
    1/σ̂²), β = 1 a constant U = λ/2 with a state-dependent entropy weight (every sample pulls on the mean
    equally, as in MSE), exactly β-NLL's interpolation with the model's σ replaced by the heuristic's σ̂.

    Args:
        entropy_weight: λ (> 0).
        beta: the tempering β in [0, 1] (0: none).
        hidden: the variance net's hidden widths.
        fit_steps, first_fit_steps: Adam steps per fit.
        lr, weight_decay: of the variance net's Adam.
        val_fraction: share of the held-out rows that choose the kept weights (0: keep the last).
        seed: of the validation rows and the net's initial weights.
    """

    kind = "state_inverse_cov"

    def __init__(
        self,
        entropy_weight: float = 1.0,
        beta: float = 0.0,
        hidden: Sequence[int] = (64, 64),
        fit_steps: int = 50,
        first_fit_steps: int = 200,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        val_fraction: float = 0.2,
        seed: int = 0,
    ) -> None:
        self.entropy_weight = _check_lambda(entropy_weight)
        ok = isinstance(beta, int | float) and not isinstance(beta, bool) and math.isfinite(beta)
        if not (ok and 0.0 <= beta <= 1.0):
            raise ValueError(f"beta: got {beta!r} for reward_matrix='state_inverse_cov', allowed a number in [0, 1]")
        self.beta = float(beta)
        self.hidden = _check_hidden(hidden)
        self.fit_steps = _check_positive("fit_steps", fit_steps, integer=True, allow_zero=True)
        self.first_fit_steps = _check_positive("first_fit_steps", first_fit_steps, integer=True, allow_zero=True)
        self.lr = float(_check_positive("lr", lr))
        self.weight_decay = float(_check_positive("weight_decay", weight_decay, allow_zero=True))
        ok = isinstance(val_fraction, int | float) and not isinstance(val_fraction, bool)
        if not (ok and 0.0 <= val_fraction < 1.0):
            raise ValueError(f"val_fraction: got {val_fraction!r}, allowed a number in [0, 1)")
        self.val_fraction = float(val_fraction)
        self.seed = _check_positive("seed", seed, integer=True, allow_zero=True)
        self._dim: int | None = None
        self._center: torch.Tensor | None = None  # (T,) log marginal variance of the first setup's targets
        self.net: VarianceNet | None = None
        self._optimizer: torch.optim.Adam | None = None
        self._ref: torch.Tensor | None = None  # (≤ DESCRIBE_ROWS, I) last held-out inputs, for describe()
        self.fits = 0
        self.last_val_nll = math.nan

    # ------------------------------------------------------------------ hooks
    def setup(self, train_targets: torch.Tensor) -> None:
        """T and, at the first setup (or a new T), the marginal variance the net starts at and is bounded around."""
        if self._setup_center(train_targets):
            self.net, self._optimizer, self.fits = None, None, 0

    def _move(self, dev: torch.device) -> None:
        if self.net is not None:
            self.net.to(dev)  # in place: the optimizer keeps the same parameters
            if self._optimizer is not None:
                self._optimizer.load_state_dict(self._optimizer.state_dict())  # moves its state to the params'

    def _ensure_net(self, in_dim: int, device: torch.device) -> VarianceNet:
        if self._dim is None or self._center is None:
            raise RuntimeError(f"{type(self).__name__}: call setup(train_targets) first")
        if self.net is None or self.net.in_dim != in_dim:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                self.net = VarianceNet(in_dim, self._dim, self.hidden, self._center.cpu()).to(device)
            self._optimizer = torch.optim.Adam(self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            self.fits = 0
        return self.net

    def observe_residuals(self, residuals: torch.Tensor, inputs: torch.Tensor | None = None) -> None:
        """Fit σ̂²(x) to (E, B, T) or (B, T) held-out residuals at their (B, I) normalised ``inputs``."""
        if inputs is None:
            raise ValueError(f"inputs: reward_matrix={self.kind!r} fits U(x) to the held-out residuals and needs "
                             f"their (B, I) inputs")
        sq = _squared_residuals(residuals, inputs)
        net = self._ensure_net(inputs.shape[-1], inputs.device)
        assert self._optimizer is not None
        steps = self.first_fit_steps if self.fits == 0 else self.fit_steps
        self.last_val_nll = fit_log_variance(net, self._optimizer, inputs, sq, steps, self.val_fraction, self.seed)
        self.fits += 1
        self._remember(inputs)

    # ------------------------------------------------------------------ U
    def log_variance(self, inputs: torch.Tensor) -> torch.Tensor:
        """log σ̂²(x), (..., I) -> (..., T) (the marginal variance before the first residuals)."""
        if self.net is None:
            if self._center is None:
                raise RuntimeError(f"{type(self).__name__}: call setup(train_targets) first")
            return self._center.to(inputs.device).expand(*inputs.shape[:-1], self._center.shape[0])
        return self.net(inputs)

    def diagonal_at(self, inputs: torch.Tensor) -> torch.Tensor:
        """(λ/2) / σ̂²(x) (tempered: (λ/2) σ̂^{2β-2}(x)), (..., I) -> (..., T), without gradient."""
        with torch.no_grad():
            return 0.5 * self.entropy_weight * torch.exp((self.beta - 1.0) * self.log_variance(inputs))

    def entropy_scale_at(self, inputs: torch.Tensor) -> torch.Tensor | None:
        """σ̂^{2β}(x), (..., T), with tempering (β > 0); None without."""
        if self.beta == 0.0:
            return None
        with torch.no_grad():
            return torch.exp(self.beta * self.log_variance(inputs))

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """``kind``, ``dim``, ``center`` (T,), ``in_dim``, ``net`` and ``optimizer`` (the variance net's weights
        and Adam state; None before the first residuals), ``ref`` (rows for describe), ``fits``."""
        return {
            "kind": self.kind, "dim": self._dim, "center": _clone_state(self._center),
            "hidden": list(self.hidden), "in_dim": None if self.net is None else self.net.in_dim,
            "net": None if self.net is None else _clone_state(self.net.state_dict()),
            "optimizer": None if self._optimizer is None else _clone_state(self._optimizer.state_dict()),
            "ref": _clone_state(self._ref), "fits": self.fits,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._check_state(state, ("dim", "center", "hidden", "in_dim", "net", "optimizer", "ref", "fits"))
        if tuple(state["hidden"]) != self.hidden:
            raise ValueError(f"hidden: the saved variance net is {list(state['hidden'])}, this one is "
                             f"{list(self.hidden)}")
        self._dim = state["dim"]
        self._center = _clone_state(state["center"])
        self._ref = _clone_state(state["ref"])
        self.fits = int(state["fits"])
        if state["net"] is None or self._center is None:
            self.net, self._optimizer = None, None
            return
        dev = self._center.device
        if self.net is None or self.net.in_dim != state["in_dim"] or self.net.out_dim != self._dim:
            self.net = VarianceNet(int(state["in_dim"]), int(self._dim), self.hidden, self._center.cpu()).to(dev)
            self._optimizer = torch.optim.Adam(self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        self.net.load_state_dict(state["net"])
        assert self._optimizer is not None
        if state["optimizer"] is not None:
            self._optimizer.load_state_dict(state["optimizer"])


class StateLearnedRewardMatrix(_StateRewardMatrix):
    """U_ψ(x) ≻ 0 diagonal, ψ a small network learned by :class:`~mbrl_po.training.bilevel.BilevelSolver`
    (kind ``state_learned``).

    Without a base, U_ψ(x) = (λ/2) exp(-s_ψ(x)) with s_ψ a :class:`VarianceNet` (so s_ψ is the log-variance
    the PG optimum predicts, soft-bounded around the targets' log marginal variance). It starts:

    * constant (``init`` None: U = I; a scalar u > 0: U = u·I), the output weights zero;
    * at the heuristic (``init="residual"``): s_ψ fitted by NLL to the first held-out residuals it sees, as
      :class:`StateHeuristicRewardMatrix` would (set once, never over a loaded ψ).

    With ``base="residual"``, U_ψ(x) = U_heur(x) · exp(b·tanh(c_ψ(x)/b)), U_heur a
    :class:`StateHeuristicRewardMatrix` re-fitted after every held-out evaluation and c_ψ an MLP that starts at
    0 (zero output weights): the solver learns a correction factor in [e^{-b}, e^{b}] on the heuristic.

    Args:
        entropy_weight: λ (> 0).
        init: None, a scalar u > 0, or ``"residual"`` (no base only).
        base: None or ``"residual"``.
        hidden: ψ's hidden widths (and the heuristic's, with a base).
        outer_lr_scale: the solver's outer learning rate is multiplied by this for ψ (default 0.05: the
            agents' 0.05 gives 2.5e-3 per Adam step on ψ's weights, the offline benchmark's 0.2 gives 0.01).
        correction_bound: b of the base form.
        seed: ψ's initial weights (and the heuristic's seed).
        heuristic: options of the :class:`StateHeuristicRewardMatrix` used by ``base`` and ``init="residual"``
            (``fit_steps``, ``lr``, ...).
    """

    kind = "state_learned"
    learnable = True

    def __init__(
        self,
        entropy_weight: float = 1.0,
        init: float | str | None = None,
        base: str | None = None,
        hidden: Sequence[int] = (64, 64),
        outer_lr_scale: float = 0.05,
        correction_bound: float = 4.0,
        seed: int = 0,
        heuristic: dict[str, Any] | None = None,
    ) -> None:
        self.entropy_weight = _check_lambda(entropy_weight)
        if isinstance(init, str):
            if init not in LEARNED_INITS:
                raise ValueError(f"init: got {init!r} for reward_matrix='state_learned', allowed None (U = I), a "
                                 f"scalar > 0 or one of {list(LEARNED_INITS)}")
        elif init is not None:
            ok = isinstance(init, int | float) and not isinstance(init, bool) and math.isfinite(init) and init > 0
            if not ok:
                raise ValueError(f"init: got {init!r} for reward_matrix='state_learned', allowed None (U = I), a "
                                 f"scalar > 0 or one of {list(LEARNED_INITS)}")
        if base is not None:
            if base not in LEARNED_BASES:
                raise ValueError(f"base: got {base!r} for reward_matrix='state_learned', allowed [None, "
                                 f"{', '.join(map(repr, LEARNED_BASES))}]")
            if init is not None:
                raise ValueError("init: not used with base='residual' (the learned correction starts at 1)")
        self.init = init
        self.base = base
        self.hidden = _check_hidden(hidden)
        self.outer_lr_scale = float(_check_positive("outer_lr_scale", outer_lr_scale))
        self.correction_bound = float(_check_positive("correction_bound", correction_bound))
        self.seed = _check_positive("seed", seed, integer=True, allow_zero=True)
        if heuristic is not None and not isinstance(heuristic, dict):
            raise ValueError(f"heuristic: got {heuristic!r}, allowed None or a dict of StateHeuristicRewardMatrix "
                             f"options")
        self.heuristic_options = dict(heuristic or {})
        self.heuristic: StateHeuristicRewardMatrix | None = None
        if base is not None or init == "residual":
            self.heuristic = StateHeuristicRewardMatrix(self.entropy_weight, **{"hidden": self.hidden,
                                                                                "seed": self.seed,
                                                                                **self.heuristic_options})
        self._dim: int | None = None
        self._center: torch.Tensor | None = None
        self.psi: nn.Module | None = None  # VarianceNet (no base) or an MLP c_ψ (base)
        self._pending_residual_init = False
        self._ref: torch.Tensor | None = None

    # ------------------------------------------------------------------ what the solver reads
    def parameters(self) -> list[nn.Parameter]:
        """ψ's parameters (the same objects across fits), or [] before ψ exists (it is created at the first
        residuals or inputs it sees: I is known then)."""
        return [] if self.psi is None else list(self.psi.parameters())

    @property
    def pending_residual_init(self) -> bool:
        """True while ``init="residual"`` waits for the first residuals."""
        return self._pending_residual_init

    # ------------------------------------------------------------------ hooks
    def setup(self, train_targets: torch.Tensor) -> None:
        if self._setup_center(train_targets):
            self.psi = None
            self._pending_residual_init = self.init == "residual"
        if self.heuristic is not None:
            self.heuristic.setup(train_targets)

    def _move(self, dev: torch.device) -> None:
        if self.psi is not None:
            self.psi.to(dev)  # in place: the same Parameters

    def _ensure_psi(self, in_dim: int, device: torch.device) -> nn.Module:
        if self._dim is None or self._center is None:
            raise RuntimeError(f"{type(self).__name__}: call setup(train_targets) first")
        if self.psi is None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                if self.base is not None:
                    self.psi = _mlp(in_dim, self._dim, self.hidden).to(device)
                else:
                    u0 = 1.0 if self.init is None or isinstance(self.init, str) else float(self.init)
                    init = torch.full((self._dim,), math.log(0.5 * self.entropy_weight / u0))
                    self.psi = VarianceNet(in_dim, self._dim, self.hidden, self._center.cpu(), init).to(device)
        return self.psi

    def observe_residuals(self, residuals: torch.Tensor, inputs: torch.Tensor | None = None) -> None:
        """With a base, re-fit the heuristic; with ``init="residual"``, fit ψ to the first residuals."""
        if inputs is None:
            raise ValueError(f"inputs: reward_matrix={self.kind!r} is a function of x and needs the (B, I) inputs "
                             f"of the held-out residuals")
        psi = self._ensure_psi(inputs.shape[-1], inputs.device)
        if self.heuristic is not None and (self.base is not None or self._pending_residual_init):
            self.heuristic.observe_residuals(residuals, inputs)
        if self._pending_residual_init:
            assert self.heuristic is not None and self.heuristic.net is not None
            psi.load_state_dict(self.heuristic.net.state_dict())  # the same architecture and bounds
            self._pending_residual_init = False
            self.heuristic = None  # used once
        self._remember(inputs)

    # ------------------------------------------------------------------ U
    def diagonal_at(self, inputs: torch.Tensor) -> torch.Tensor:
        """U_ψ(x), (..., I) -> (..., T), differentiable in ψ."""
        psi = self._ensure_psi(inputs.shape[-1], inputs.device)
        if self.base is None:
            return 0.5 * self.entropy_weight * torch.exp(-psi(inputs))
        assert self.heuristic is not None
        b = self.correction_bound
        return self.heuristic.diagonal_at(inputs) * torch.exp(b * torch.tanh(psi(inputs) / b))

    def entropy_scale_at(self, inputs: torch.Tensor) -> torch.Tensor | None:
        """The base heuristic's (a tempered one's σ̂^{2β}(x)); None without a base."""
        return None if self.base is None or self.heuristic is None else self.heuristic.entropy_scale_at(inputs)

    def describe(self) -> dict[str, float]:
        """``u_mean_diag`` and ``u_log_sd_x`` over the last held-out inputs ({} before any); with a base also
        ``u_correction``, the mean learned factor."""
        if self._ref is None or self.psi is None:
            return {}
        out = super().describe()
        with torch.no_grad():
            if self.base is not None:
                b = self.correction_bound
                out["u_correction"] = float(torch.exp(b * torch.tanh(self.psi(self._ref) / b)).mean())
        return out

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """``kind``, ``dim``, ``center``, ``in_dim`` and ``psi`` (ψ's weights; None before it exists),
        ``pending_residual_init``, ``ref`` and ``heuristic`` (the base's, or a pending init's, state)."""
        in_dim = None
        if self.psi is not None:
            first = next(m for m in self.psi.modules() if isinstance(m, nn.Linear))
            in_dim = first.in_features
        return {
            "kind": self.kind, "dim": self._dim, "center": _clone_state(self._center), "in_dim": in_dim,
            "psi": None if self.psi is None else _clone_state(self.psi.state_dict()),
            "pending_residual_init": self._pending_residual_init, "ref": _clone_state(self._ref),
            "heuristic": None if self.heuristic is None else self.heuristic.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ψ in place when it exists with the same shapes (an optimizer holding it keeps working)."""
        self._check_state(state, ("dim", "center", "in_dim", "psi", "pending_residual_init", "ref", "heuristic"))
        self._dim = state["dim"]
        self._center = _clone_state(state["center"])
        self._ref = _clone_state(state["ref"])
        self._pending_residual_init = bool(state["pending_residual_init"])
        if state["psi"] is None:
            self.psi = None
        else:
            assert self._center is not None
            if self.psi is None:
                self._ensure_psi(int(state["in_dim"]), self._center.device)
            assert self.psi is not None
            with torch.no_grad():
                self.psi.load_state_dict(state["psi"])
        if state["heuristic"] is None:
            if self.base is None:
                self.heuristic = None
        else:
            if self.heuristic is None:
                self.heuristic = StateHeuristicRewardMatrix(self.entropy_weight, **{"hidden": self.hidden,
                                                                                    "seed": self.seed,
                                                                                    **self.heuristic_options})
            self.heuristic.load_state_dict(state["heuristic"])
