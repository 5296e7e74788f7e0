"""The reward matrix U of the Mahalanobis reward ``r_U(ŷ, y) = -(ŷ-y)ᵀ U (ŷ-y)``: three small types behind one
base class, each holding its own state.

For Gaussian data the PG optimum is N(μ, (λ/2)U⁻¹): U only sets the predicted covariance, and the likelihood
is maximal at ``U* = (λ/2)Σ⁻¹`` (``../docs/objectives.md``). The types, and the names
:func:`make_reward_matrix` (hence ``PGObjective(reward_matrix=...)`` and the agents' config) maps to them:

* :class:`FixedRewardMatrix`: a given U. ``identity``: U = I; ``fixed``: a user-given positive-definite
  (T, T) matrix, or a scalar u for u·I (``init=`` in the PG options).
* :class:`HeuristicRewardMatrix`: U from an estimate Σ̂ of the noise covariance. ``scaled``:
  U = λT / (2 tr Σ̂) · I (best scalar U); ``inverse_cov``: U = (λ/2) Σ̂⁻¹, ``structure`` "diag" (default: right
  for diagonal models) or "full". Σ̂ is, by ``covariance``, the ``marginal`` covariance of the training targets
  (the paper's code) or the ``residual`` covariance of ``y - μ̂(x)`` on held-out data under the current model
  (the conditional covariance the theory asks for; our default), re-estimated after every epoch.
* state-dependent U(x) (``state_inverse_cov``, ``state_learned``): in
  :mod:`mbrl_po.objectives.state_reward_matrix`, read through :meth:`RewardMatrix.diagonal_at`.
* :class:`LearnedRewardMatrix` (``learned``): U = f(φ) positive definite (:class:`PDMatrix`: ``scalar``,
  ``diag`` or ``full``), φ learned by :class:`~mbrl_po.training.bilevel.BilevelSolver`. It starts at I
  (``init=None``), at a given U, or (``init="residual"``) at the heuristic (λ/2)Σ̂⁻¹ of the first held-out
  residuals the trainer shows it (scalar: λT / (2 tr Σ̂); diag: λ / (2 diag Σ̂)). With ``base="residual"``
  (scalar or diag) the learned part is a correction on top of the residual heuristic, U = U_res(Σ̂_res) · exp(φ),
  Σ̂_res re-estimated after every epoch: at φ = 0 it is the heuristic.

Every type validates its options in its constructor (errors read ``field: got X, allowed Y``), and has
``setup`` / ``observe_residuals`` (the trainer's hooks), ``matrix()``, ``describe()``, and
``state_dict()`` / ``load_state_dict()`` holding everything it learned or estimated (a learned U's φ, its
pending residual init and its base U; a heuristic's Σ̂ and U), which ``PGObjective.state_dict`` and so
``DynamicsTrainer.state_dict`` checkpoint. All of it lives in the model's (normalised) target units.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from mbrl_po.objectives.names import (
    COVARIANCES,
    HEURISTICS,
    LEARNED_BASES,
    LEARNED_INITS,
    REWARD_MATRICES,
    REWARD_MATRIX_OPTIONS,
    STRUCTURES,
)
from mbrl_po.objectives.reward_matrix_base import RewardMatrix
from mbrl_po.objectives.reward_matrix_base import check_lambda as _check_lambda

__all__ = [
    "COVARIANCES",
    "REWARD_MATRICES",
    "STRUCTURES",
    "FixedRewardMatrix",
    "HeuristicRewardMatrix",
    "LearnedRewardMatrix",
    "PDMatrix",
    "RewardMatrix",
    "check_positive_definite",
    "heuristic_u",
    "legacy_state",
    "make_reward_matrix",
]


def check_positive_definite(name: str, matrix: torch.Tensor) -> None:
    """Raise ValueError unless ``matrix`` (T, T) is symmetric positive definite."""
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"{name}: must be a square (T, T) matrix, got shape {tuple(matrix.shape)}")
    if not torch.isfinite(matrix).all():
        raise ValueError(f"{name}: contains NaN or inf; a finite positive-definite matrix is required")
    if not torch.allclose(matrix, matrix.T, atol=1e-6 * (1 + matrix.abs().max().item())):
        raise ValueError(f"{name}: must be symmetric positive definite, got a non-symmetric matrix")
    min_eig = torch.linalg.eigvalsh(matrix.double()).min().item()
    if min_eig <= 0:
        raise ValueError(
            f"{name}: must be positive definite (all eigenvalues > 0), got smallest eigenvalue {min_eig:.4g}"
        )


def _check_u(field: str, value: Any, kind: str) -> torch.Tensor:
    """``value`` as a float32 tensor: a scalar u > 0 (0-dim) or a (T, T) positive-definite matrix."""
    allowed = "a scalar > 0 (U = u·I) or a (T, T) positive-definite matrix"
    if isinstance(value, str | bool):
        raise ValueError(f"{field}: got {value!r} for reward_matrix={kind!r}, allowed {allowed}")
    try:
        u = torch.as_tensor(value, dtype=torch.float32).detach().cpu()
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{field}: got {value!r} for reward_matrix={kind!r}, allowed {allowed}") from None
    if u.ndim == 0:
        if not (math.isfinite(u.item()) and u.item() > 0):
            raise ValueError(f"{field}: a scalar U must be a finite number > 0, got {u.item()}")
    else:
        check_positive_definite(field, u)
    return u




def _check_jitter(jitter: Any) -> float:
    if not (isinstance(jitter, int | float) and math.isfinite(jitter) and jitter >= 0):
        raise ValueError(f"jitter: got {jitter!r}, allowed a finite number >= 0")
    return float(jitter)


def heuristic_u(sigma_hat: torch.Tensor, structure: str, entropy_weight: float, jitter: float = 1e-6) -> torch.Tensor:
    """The likelihood-optimal U of a given ``structure`` for noise covariance Σ̂ (T, T), as (T, T): scalar
    λT / (2 tr Σ̂) I, diag λ / (2 diag Σ̂), full (λ/2) Σ̂⁻¹ (Σ̂'s diagonal jittered by ``jitter`` times its mean)."""
    lam = entropy_weight
    dim = sigma_hat.shape[0]
    eye = torch.eye(dim, device=sigma_hat.device, dtype=sigma_hat.dtype)
    if structure == "scalar":
        return lam * dim / (2.0 * torch.trace(sigma_hat).clamp_min(1e-12)) * eye
    if structure == "diag":
        return torch.diag(lam / (2.0 * sigma_hat.diagonal().clamp_min(1e-12)))
    jit = jitter * sigma_hat.diagonal().mean().clamp_min(1e-12)
    return lam / 2.0 * torch.linalg.inv((sigma_hat + jit * eye).double()).to(sigma_hat.dtype)


def marginal_covariance(train_targets: torch.Tensor) -> torch.Tensor:
    """Σ̂ (T, T) of the (B, T) targets themselves (the paper's choice)."""
    dim = train_targets.shape[-1]
    return torch.cov(train_targets.T.double()).reshape(dim, dim).float()


def residual_covariance(residuals: torch.Tensor) -> torch.Tensor:
    """Σ̂ = E[r rᵀ] (T, T) of (..., T) residuals ``y - μ̂(x)`` (about zero: the model's mean is the centre)."""
    r = residuals.reshape(-1, residuals.shape[-1]).double()
    return (r.T @ r / max(r.shape[0], 1)).float()


class PDMatrix(nn.Module):
    """A positive-definite matrix U = f(φ) with unconstrained parameters φ.

    ``scalar``: U = exp(a)·I, φ = a of shape (1,).  ``diag``: U = diag(exp(a)), φ (T,).  ``full``: U = L Lᵀ with
    L lower triangular and a positive (exp) diagonal (Cholesky factor), φ (T, T) lower triangular.

    Args:
        dim: T.
        structure: one of ``STRUCTURES``.
        init: initial U, a positive scalar (U = init·I) or a (T, T) positive-definite matrix.
    """

    def __init__(self, dim: int, structure: str = "scalar", init: float | torch.Tensor = 1.0) -> None:
        super().__init__()
        if structure not in STRUCTURES:
            raise ValueError(f"structure: got {structure!r}, allowed {list(STRUCTURES)}")
        self.dim = dim
        self.structure = structure
        init_m = torch.as_tensor(init, dtype=torch.float32)
        if init_m.ndim == 0:
            if not init_m.item() > 0:
                raise ValueError(f"init: a scalar U must be > 0, got {init_m.item()}")
            init_m = init_m * torch.eye(dim)
        check_positive_definite("init", init_m)
        if structure == "scalar":
            self.param = nn.Parameter(torch.log(torch.diagonal(init_m).mean()).reshape(1))
        elif structure == "diag":
            self.param = nn.Parameter(torch.log(torch.diagonal(init_m)).clone())
        else:
            chol = torch.linalg.cholesky(init_m.double()).float()
            raw = chol.clone()
            raw.diagonal().copy_(torch.log(chol.diagonal()))
            self.param = nn.Parameter(torch.tril(raw))

    @torch.no_grad()
    def reset_to(self, matrix: torch.Tensor) -> None:
        """Set φ in place (the same Parameter, so an optimizer holding it keeps working) so that U = ``matrix``
        (T, T) positive definite; a scalar structure takes the mean diagonal."""
        m = matrix.detach().cpu().float()
        m = 0.5 * (m + m.T)
        check_positive_definite("matrix", m)
        fresh = PDMatrix(self.dim, self.structure, m)
        self.param.copy_(fresh.param.to(self.param.device))

    def forward(self) -> torch.Tensor:
        """U as a (T, T) matrix."""
        if self.structure == "scalar":
            return torch.exp(self.param) * torch.eye(self.dim, device=self.param.device)
        if self.structure == "diag":
            return torch.diag(torch.exp(self.param))
        low = torch.tril(self.param, diagonal=-1)
        chol = low + torch.diag(torch.exp(torch.diagonal(self.param)))
        return chol @ chol.T

    def describe(self) -> dict[str, float]:
        """A few scalars of U for logging: scalar value, or trace/T and min/max eigenvalue."""
        with torch.no_grad():
            u = self()
            if self.structure == "scalar":
                return {"u": float(torch.exp(self.param).item())}
            eig = torch.linalg.eigvalsh(u.double())
            return {"u_mean_diag": float(u.diagonal().mean()), "u_min_eig": float(eig.min()),
                    "u_max_eig": float(eig.max())}




class _StoredU(RewardMatrix):
    """A U held as a (T, T) tensor (fixed and heuristic U)."""

    def __init__(self) -> None:
        self._u: torch.Tensor | None = None

    @property
    def ready(self) -> bool:
        return self._u is not None

    def matrix(self) -> torch.Tensor:
        """The current U, (T, T) (not differentiable: nothing here is learned)."""
        if self._u is None:
            raise RuntimeError(f"{type(self).__name__}.matrix() called before setup(train_targets)")
        return self._u

    def describe(self) -> dict[str, float]:
        if self._u is None:
            return {}
        d = self._u.diagonal()
        if self.is_diagonal() and torch.allclose(d, d[:1].expand_as(d)):
            return {"u": float(self._u[0, 0])}
        return {"u_mean_diag": float(d.mean())}


class FixedRewardMatrix(_StoredU):
    """A given U: the identity (``u=None``, kind ``identity``) or ``u`` (kind ``fixed``).

    Args:
        u: None for U = I, a scalar u > 0 for U = u·I, or a (T, T) positive-definite matrix (checked here; its T
            is checked against the targets' at :meth:`setup`). A given U is used as a full matrix (the objective
            does not assume it diagonal).
        option: the field name errors give ``u`` (:func:`make_reward_matrix` passes ``"init"``, the PG option).
    """

    def __init__(self, u: float | torch.Tensor | None = None, *, option: str = "u") -> None:
        super().__init__()
        self.kind = "identity" if u is None else "fixed"
        self.option = option
        self.u: torch.Tensor | None = None if u is None else _check_u(option, u, "fixed")

    def setup(self, train_targets: torch.Tensor) -> None:
        dim = train_targets.shape[-1]
        dev = train_targets.device
        if self.u is None:
            self._u = torch.eye(dim, device=dev)
            return
        if self.u.ndim == 2 and self.u.shape[0] != dim:
            raise ValueError(f"{self.option}: U is {tuple(self.u.shape)} but the targets have T={dim}")
        u = self.u.to(dev)
        self._u = u * torch.eye(dim, device=dev) if u.ndim == 0 else u

    def is_diagonal(self) -> bool:
        return self.u is None

    def state_dict(self) -> dict[str, Any]:
        """``kind`` and ``u``: the (T, T) U in use, or None before the first setup."""
        return {"kind": self.kind, "u": None if self._u is None else self._u.detach().clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._check_state(state, ("u",))
        self._u = None if state["u"] is None else state["u"].detach().clone()


class HeuristicRewardMatrix(_StoredU):
    """U from a covariance estimate Σ̂ (T, T): ``scaled`` λT / (2 tr Σ̂) · I, or ``inverse_cov`` (λ/2) Σ̂⁻¹.

    Args:
        kind: ``"scaled"`` or ``"inverse_cov"``.
        entropy_weight: λ (> 0).
        covariance: where Σ̂ comes from: ``"residual"`` (default: E[r rᵀ] of the held-out residuals of the
            current model, re-estimated after every epoch; the marginal covariance of the targets until the
            first residuals arrive) or ``"marginal"`` (the covariance of the training targets, at every fit).
        structure: ``inverse_cov`` only: ``"diag"`` (default) or ``"full"``. For a diagonal-Gaussian model the PG
            optimum is σ_t² = λ / (2 U_tt), so the diagonal U = (λ/2) diag(Σ̂)⁻¹ gives the likelihood-optimal
            σ_t² = Σ̂_tt, while the full (λ/2) Σ̂⁻¹ gives the smaller conditional variances 1 / (Σ̂⁻¹)_tt (exact
            only for a full-covariance model). A ``scaled`` U is always scalar (None).
        jitter: added to Σ̂'s diagonal (relative to its mean diagonal) before inverting (``full``).

    Attributes:
        sigma_hat: the Σ̂ (T, T) the current U was computed from (None before the first setup).
    """

    def __init__(
        self,
        kind: str = "inverse_cov",
        entropy_weight: float = 1.0,
        covariance: str = "residual",
        structure: str | None = None,
        jitter: float = 1e-6,
    ) -> None:
        super().__init__()
        if kind not in HEURISTICS:
            raise ValueError(f"kind: got {kind!r}, allowed {list(HEURISTICS)}")
        self.kind = kind
        self.entropy_weight = _check_lambda(entropy_weight)
        if covariance not in COVARIANCES:
            raise ValueError(f"covariance: got {covariance!r}, allowed {list(COVARIANCES)}")
        self.covariance = covariance
        if kind == "scaled" and structure is not None:
            raise ValueError(f"structure: got {structure!r} for reward_matrix='scaled', allowed [None] "
                             f"(a scaled U is scalar)")
        if kind == "inverse_cov" and structure not in (None, "diag", "full"):
            raise ValueError(f"structure: got {structure!r} for reward_matrix='inverse_cov', allowed ['diag', 'full']")
        self.structure = "scalar" if kind == "scaled" else structure or "diag"
        self.jitter = _check_jitter(jitter)
        self.sigma_hat: torch.Tensor | None = None

    def setup(self, train_targets: torch.Tensor) -> None:
        """Σ̂ from the targets' marginal covariance when ``covariance == "marginal"`` or none is known yet."""
        dev = train_targets.device
        if self.covariance == "marginal" or self.sigma_hat is None:
            self.update_covariance(marginal_covariance(train_targets))
        elif self.sigma_hat.device != dev:  # a loaded state
            self.sigma_hat = self.sigma_hat.to(dev)
            self._u = None if self._u is None else self._u.to(dev)

    def update_covariance(self, sigma_hat: torch.Tensor) -> None:
        """Recompute U from a (T, T) covariance estimate Σ̂."""
        self.sigma_hat = sigma_hat
        self._u = heuristic_u(sigma_hat, self.structure, self.entropy_weight, self.jitter)

    def observe_residuals(self, residuals: torch.Tensor, inputs: torch.Tensor | None = None) -> None:
        """Σ̂ from (..., T) residuals ``y - μ̂(x)`` when ``covariance == "residual"`` (``inputs`` unused)."""
        if self.covariance == "residual":
            self.update_covariance(residual_covariance(residuals))

    def is_diagonal(self) -> bool:
        return self.structure != "full"

    def state_dict(self) -> dict[str, Any]:
        """``kind``, ``u`` (T, T) and ``sigma_hat`` (T, T), each None before the first setup."""
        def clone(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.detach().clone()

        return {"kind": self.kind, "u": clone(self._u), "sigma_hat": clone(self.sigma_hat)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._check_state(state, ("u", "sigma_hat"))
        self._u = None if state["u"] is None else state["u"].detach().clone()
        self.sigma_hat = None if state["sigma_hat"] is None else state["sigma_hat"].detach().clone()


class LearnedRewardMatrix(RewardMatrix):
    """U = f(φ) ≻ 0 learned by :class:`~mbrl_po.training.bilevel.BilevelSolver` (kind ``learned``).

    Args:
        entropy_weight: λ (> 0), which the residual heuristics (``init="residual"``, ``base``) scale with.
        structure: ``"scalar"`` (default, φ (1,)), ``"diag"`` (φ (T,)) or ``"full"`` (φ (T, T), Cholesky).
        init: where U starts: None (U = I), a scalar u > 0 (u·I), a (T, T) positive-definite matrix, or
            ``"residual"``: the heuristic of the first residuals observed (:meth:`observe_residuals`, which the
            trainer calls on the untrained model before its first update), set once, in place.
        base: None, or ``"residual"`` (scalar or diag structure, no ``init``): U = U_res · exp(φ) with U_res the
            heuristic of the latest held-out residuals (``scaled`` for a scalar structure, diagonal
            ``inverse_cov`` for diag), so φ = 0 is the heuristic and φ learns a correction.
        jitter: as in :class:`HeuristicRewardMatrix` (``init="residual"`` with a full structure).

    φ is created at the first :meth:`setup` (T is known then) and kept across fits (warm start); a loaded state
    brings φ, a pending residual init and the base U back.
    """

    kind = "learned"
    learnable = True

    def __init__(
        self,
        entropy_weight: float = 1.0,
        structure: str | None = None,
        init: float | torch.Tensor | str | None = None,
        base: str | None = None,
        jitter: float = 1e-6,
    ) -> None:
        self.entropy_weight = _check_lambda(entropy_weight)
        if structure is not None and structure not in STRUCTURES:
            raise ValueError(f"structure: got {structure!r} for reward_matrix='learned', allowed {list(STRUCTURES)}")
        if isinstance(init, str):
            if init not in LEARNED_INITS:
                raise ValueError(f"init: got {init!r} for reward_matrix='learned', allowed None (U = I), a scalar "
                                 f"> 0, a (T, T) positive-definite matrix or one of {list(LEARNED_INITS)}")
            self._init_u: torch.Tensor | None = None
        else:
            self._init_u = None if init is None else _check_u("init", init, "learned")
        if base is not None:
            if base not in LEARNED_BASES:
                raise ValueError(f"base: got {base!r} for reward_matrix='learned', allowed [None, "
                                 f"{', '.join(map(repr, LEARNED_BASES))}]")
            if structure not in (None, "scalar", "diag"):
                raise ValueError(f"structure: got {structure!r} with base='residual', allowed ['scalar', 'diag']")
            if init is not None:
                raise ValueError("init: not used with base='residual' (the learned factor starts at 1)")
        self.structure = structure or "scalar"
        self.init = init
        self.base = base
        self.jitter = _check_jitter(jitter)
        self._pd: PDMatrix | None = None
        self._pending_residual_init = False  # init="residual": set U from the next residuals seen
        self._base_u: torch.Tensor | None = None  # (T,) diagonal of the residual heuristic, base="residual"

    # ------------------------------------------------------------------ what the solver and the trainer read
    @property
    def parameter(self) -> nn.Parameter | None:
        """φ, the Parameter the bilevel solver optimises (same object across fits), or None before setup."""
        return None if self._pd is None else self._pd.param

    def parameters(self) -> list[nn.Parameter]:
        """``[φ]``, or [] before setup."""
        return [] if self._pd is None else [self._pd.param]

    @property
    def dim(self) -> int | None:
        """T, or None before setup."""
        return None if self._pd is None else self._pd.dim

    @property
    def pending_residual_init(self) -> bool:
        """True while ``init="residual"`` waits for the first residuals."""
        return self._pending_residual_init

    @property
    def base_u(self) -> torch.Tensor | None:
        """(T,) diagonal of the residual heuristic U_res (``base="residual"``), or None."""
        return self._base_u

    @property
    def ready(self) -> bool:
        return self._pd is not None

    # ------------------------------------------------------------------ hooks
    def setup(self, train_targets: torch.Tensor) -> None:
        """Create φ for T (kept if it already has this T) and, with a base, a first U_res from the marginal Σ̂."""
        dim = train_targets.shape[-1]
        dev = train_targets.device
        if self._pd is None or self._pd.dim != dim:  # keep a learned U across fits (warm start)
            if self._init_u is not None and self._init_u.ndim == 2 and self._init_u.shape[0] != dim:
                raise ValueError(f"init: U is {tuple(self._init_u.shape)} but the targets have T={dim}")
            from_residuals = isinstance(self.init, str)
            self._pd = PDMatrix(dim, self.structure, 1.0 if self.init is None or from_residuals else self.init).to(dev)
            self._pending_residual_init = from_residuals
        elif self._pd.param.device != dev:  # a loaded state: moved in place, the same Parameter
            self._pd.to(dev)
        if self.base is not None and (self._base_u is None or self._base_u.numel() != dim):
            u = heuristic_u(marginal_covariance(train_targets), self.structure, self.entropy_weight, self.jitter)
            self._base_u = u.diagonal().clone()

    def observe_residuals(self, residuals: torch.Tensor, inputs: torch.Tensor | None = None) -> None:
        """(..., T) residuals: the base U_res follows them; a pending residual init takes the first ones
        (``inputs`` unused)."""
        learned_base = self.base is not None
        learned_init = self._pending_residual_init and self._pd is not None
        if not (learned_base or learned_init):
            return
        u = heuristic_u(residual_covariance(residuals), self.structure, self.entropy_weight, self.jitter)
        if learned_base:
            self._base_u = u.diagonal().clone()
        else:
            assert self._pd is not None
            self._pd.reset_to(u)
            self._pending_residual_init = False

    def matrix(self) -> torch.Tensor:
        """The current U, (T, T), differentiable in φ."""
        if self._pd is None:
            raise RuntimeError("LearnedRewardMatrix.matrix() called before setup(train_targets)")
        if self.base is not None and self._base_u is not None:
            return torch.diag(self._base_u.to(self._pd.param.device) * torch.diagonal(self._pd()))
        return self._pd()

    def is_diagonal(self) -> bool:
        return self.structure in ("scalar", "diag")

    def describe(self) -> dict[str, float]:
        """``u`` (scalar) or ``u_mean_diag``, ``u_min_eig``, ``u_max_eig``; with a base, U's ``u`` or
        ``u_mean_diag`` and the learned factor's mean ``u_correction``."""
        if self._pd is None:
            return {}
        if self.base is not None and self._base_u is not None:
            with torch.no_grad():
                d = self.matrix().diagonal()
                corr = torch.diagonal(self._pd())
            key = "u" if self.structure == "scalar" else "u_mean_diag"
            return {key: float(d.mean()), "u_correction": float(corr.mean())}
        return self._pd.describe()

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """``kind``, ``structure``, ``dim`` (T) and ``phi`` (φ; both None before setup), ``pending_residual_init``
        and ``base_u`` ((T,) or None)."""
        return {
            "kind": self.kind,
            "structure": self.structure,
            "dim": self.dim,
            "phi": None if self._pd is None else self._pd.param.detach().clone(),
            "pending_residual_init": self._pending_residual_init,
            "base_u": None if self._base_u is None else self._base_u.detach().clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore φ in place when this U already has its T (an optimizer holding φ keeps working), else anew."""
        self._check_state(state, ("structure", "dim", "phi", "pending_residual_init", "base_u"))
        if state["structure"] != self.structure:
            raise ValueError(f"structure: the saved learned U is {state['structure']!r}, this one is "
                             f"{self.structure!r}")
        phi = state["phi"]
        if phi is None:
            self._pd = None
        else:
            dim = int(state["dim"])
            if self._pd is None or self._pd.dim != dim:
                self._pd = PDMatrix(dim, self.structure).to(phi.device)
            with torch.no_grad():
                self._pd.param.copy_(phi)
        self._pending_residual_init = bool(state["pending_residual_init"])
        self._base_u = None if state["base_u"] is None else state["base_u"].detach().clone()


def legacy_state(
    reward_matrix: RewardMatrix,
    *,
    objective_u: torch.Tensor | None = None,
    bilevel: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A :meth:`RewardMatrix.state_dict` for ``reward_matrix`` from a checkpoint written before reward matrices
    had their own state (mbrl_po up to commit dc4d05d).

    Then agents saved a fixed or heuristic U as ``objective_u`` (T, T) (an empty tensor when there was none)
    beside the trainer's state, and ``BilevelSolver.state_dict()`` held a learned U's φ (``phi``) and T
    (``dim``); the rest (Σ̂, a base U) was not saved. As the old load did, what the old checkpoint lacks keeps
    its current value, and a restored φ clears a pending residual init.
    """
    state = reward_matrix.state_dict()
    if isinstance(reward_matrix, LearnedRewardMatrix):
        if bilevel is not None and bilevel.get("phi") is not None:
            state.update(phi=bilevel["phi"], dim=int(bilevel["dim"]), pending_residual_init=False)
    elif objective_u is not None:
        state["u"] = objective_u if objective_u.numel() > 0 else None
    return state


def make_reward_matrix(name: str, entropy_weight: float = 1.0, **options: Any) -> RewardMatrix:
    """The reward matrix called ``name`` (one of ``REWARD_MATRICES``) with λ = ``entropy_weight``.

    ``options`` are PG options (``covariance``, ``structure``, ``init``, ``base``, ``beta``, ``fit_steps``; None =
    not given):
    each name takes those of ``REWARD_MATRIX_OPTIONS[name]`` (``fixed``: ``init`` is U) and any other one raises
    a ValueError naming it; the type's constructor validates the values.
    """
    if name not in REWARD_MATRICES:
        raise ValueError(f"reward_matrix: got {name!r}, allowed {list(REWARD_MATRICES)}")
    known = sorted({o for opts in REWARD_MATRIX_OPTIONS.values() for o in opts})
    given = {k: v for k, v in options.items() if v is not None}
    for key, value in given.items():
        if key not in known:
            raise ValueError(f"{key}: not a reward-matrix option, allowed {known}")
        if key not in REWARD_MATRIX_OPTIONS[name]:
            takers = [n for n, opts in REWARD_MATRIX_OPTIONS.items() if key in opts]
            raise ValueError(f"{key}: got {value!r} for reward_matrix={name!r}, allowed only with reward_matrix "
                             f"in {takers}")
    if name == "identity":
        return FixedRewardMatrix()
    if name == "fixed":
        if "init" not in given:
            raise ValueError("init: reward_matrix='fixed' needs the matrix U (a scalar u > 0 or a (T, T) "
                             "positive-definite matrix)")
        return FixedRewardMatrix(given["init"], option="init")
    if name in HEURISTICS:
        return HeuristicRewardMatrix(name, entropy_weight, **given)
    if name == "state_inverse_cov":
        from mbrl_po.objectives.state_reward_matrix import StateHeuristicRewardMatrix

        return StateHeuristicRewardMatrix(entropy_weight, **given)
    if name == "state_learned":
        from mbrl_po.objectives.state_reward_matrix import StateLearnedRewardMatrix

        if "fit_steps" in given:  # the heuristic's option: there is one only as a base or the residual init
            if given.get("base") is None and given.get("init") != "residual":
                raise ValueError(f"fit_steps: got {given['fit_steps']!r} for reward_matrix='state_learned' with "
                                 f"no heuristic; allowed only with base='residual' or init='residual'")
            given["heuristic"] = {"fit_steps": given.pop("fit_steps")}
        return StateLearnedRewardMatrix(entropy_weight, **given)
    return LearnedRewardMatrix(entropy_weight, **given)
