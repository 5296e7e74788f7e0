"""The reward matrix U of the Mahalanobis reward ``r_U(ŷ, y) = -(ŷ-y)ᵀ U (ŷ-y)``.

For Gaussian data the PG optimum is N(μ, (λ/2)U⁻¹): U only sets the predicted covariance, and the likelihood
is maximal at ``U* = (λ/2)Σ⁻¹`` (``../docs/objectives.md``). The choices:

* ``identity``: U = I.
* ``scaled``: U = λT / (2 tr Σ̂) · I (best scalar U).
* ``inverse_cov``: U = (λ/2) Σ̂⁻¹, ``structure`` "diag" (default: right for diagonal models) or "full".
* ``learned``: U = f(φ) positive definite, φ learned by :class:`~mbrl_po.training.bilevel.BilevelSolver`;
  it starts at I (``init=None``), at a given U, or (``init="residual"``) at the heuristic (λ/2)Σ̂⁻¹ of the
  first held-out residuals the trainer shows it (scalar: λT / (2 tr Σ̂); diag: λ / (2 diag Σ̂)). With
  ``base="residual"`` (scalar or diag) the learned part is a correction on top of the residual heuristic,
  U = U_res(Σ̂_res) · exp(φ), Σ̂_res re-estimated after every epoch: at φ = 0 it is the heuristic.
* ``fixed``: a user-given positive-definite matrix (or a scalar u for u·I).

Σ̂ is, by ``covariance``, the ``marginal`` covariance of the training targets (the paper's code) or the
``residual`` covariance of ``y - μ̂(x)`` on held-out data under the current model (the conditional covariance
the theory asks for; our default). All of it lives in the model's (normalised) target units.
"""

from __future__ import annotations

import math

import torch
from torch import nn

REWARD_MATRICES = ("identity", "scaled", "inverse_cov", "learned", "fixed")
COVARIANCES = ("residual", "marginal")
STRUCTURES = ("scalar", "diag", "full")


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


class PDMatrix(nn.Module):
    """A positive-definite matrix U = f(φ) with unconstrained parameters φ.

    ``scalar``: U = exp(a)·I.  ``diag``: U = diag(exp(a)).  ``full``: U = L Lᵀ with L lower triangular and a
    positive (exp) diagonal (Cholesky factor).

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


class RewardMatrix(nn.Module):
    """Holds the current U for the PG objective and keeps it in step with the data.

    Args:
        kind: one of ``REWARD_MATRICES``.
        entropy_weight: λ (> 0), which the heuristics scale with.
        covariance: Σ̂ source for ``scaled``/``inverse_cov``: ``residual`` (default) or ``marginal``.
        structure: ``inverse_cov``: "diag" (default) or "full"; ``learned``: "scalar" (default), "diag", "full".
            For a diagonal-Gaussian model the PG optimum is σ_t² = λ / (2 U_tt), so the diagonal
            U = (λ/2) diag(Σ̂)⁻¹ gives the likelihood-optimal σ_t² = Σ̂_tt, while the full (λ/2) Σ̂⁻¹ gives the
            smaller conditional variances 1 / (Σ̂⁻¹)_tt (exact only for a full-covariance model).
        init: ``learned``: initial U (default 1.0 = identity), or ``"residual"``: the heuristic of the first
            residuals observed (:meth:`observe_residuals`, which the trainer calls on the untrained model before
            its first update); ``fixed``: the U to use (scalar or matrix).
        base: ``learned`` only, ``None`` or ``"residual"``: U = U_res · exp(φ) with U_res the heuristic of the
            latest held-out residuals (``scaled`` for a scalar structure, diagonal ``inverse_cov`` for diag).
        jitter: added to Σ̂'s diagonal (relative to its mean diagonal) before inverting.
    """

    def __init__(
        self,
        kind: str = "learned",
        entropy_weight: float = 1.0,
        covariance: str = "residual",
        structure: str | None = None,
        init: float | torch.Tensor | str | None = None,
        jitter: float = 1e-6,
        base: str | None = None,
    ) -> None:
        super().__init__()
        if kind not in REWARD_MATRICES:
            raise ValueError(f"reward_matrix: got {kind!r}, allowed {list(REWARD_MATRICES)}")
        if not entropy_weight > 0 or not math.isfinite(entropy_weight):
            raise ValueError(f"entropy_weight: λ must be a finite number > 0, got {entropy_weight}")
        if covariance not in COVARIANCES:
            raise ValueError(f"covariance: got {covariance!r}, allowed {list(COVARIANCES)}")
        allowed = {"inverse_cov": ("full", "diag"), "learned": STRUCTURES}.get(kind)
        if structure is not None and (allowed is None or structure not in allowed):
            raise ValueError(
                f"structure: got {structure!r} for reward_matrix={kind!r}, allowed {list(allowed or [])}"
            )
        if kind == "fixed" and init is None:
            raise ValueError("init: reward_matrix='fixed' needs the matrix U (a scalar u or a (T, T) matrix)")
        if isinstance(init, str) and (init != "residual" or kind != "learned"):
            raise ValueError(f"init: got {init!r} for reward_matrix={kind!r}; the only named init is 'residual', "
                             f"for reward_matrix='learned' (otherwise a positive scalar or a (T, T) matrix)")
        if base is not None:
            if base != "residual" or kind != "learned":
                raise ValueError(f"base: got {base!r} for reward_matrix={kind!r}; allowed None, or 'residual' for "
                                 f"reward_matrix='learned'")
            if structure not in (None, "scalar", "diag"):
                raise ValueError(f"structure: got {structure!r} with base='residual', allowed ['scalar', 'diag']")
            if init is not None:
                raise ValueError("init: not used with base='residual' (the learned factor starts at 1)")
        self.base = base
        self._base_u: torch.Tensor | None = None  # (T,) diagonal of the residual heuristic, base="residual"
        self.kind = kind
        self.entropy_weight = float(entropy_weight)
        self.covariance = covariance
        self.structure = structure or {"inverse_cov": "diag", "learned": "scalar"}.get(kind, "full")
        self.init = init
        self.jitter = jitter
        self.learned: PDMatrix | None = None
        self._init_from_residuals = False  # learned, init="residual": set U from the next residuals seen
        self.register_buffer("_u", torch.empty(0))
        self.sigma_hat: torch.Tensor | None = None

    @property
    def ready(self) -> bool:
        return self._u.numel() > 0 or self.learned is not None

    def setup(self, train_targets: torch.Tensor) -> None:
        """Initialise U for targets of dim T from the (B, T) training targets (marginal Σ̂ first)."""
        dim = train_targets.shape[-1]
        dev = train_targets.device
        if self.kind == "learned":
            if self.learned is None or self.learned.dim != dim:  # keep a learned U across fits (warm start)
                from_residuals = isinstance(self.init, str)
                self.learned = PDMatrix(dim, self.structure, 1.0 if self.init is None or from_residuals
                                        else self.init).to(dev)
                self._init_from_residuals = from_residuals
            if self.base is not None and (self._base_u is None or self._base_u.numel() != dim):
                marginal = torch.cov(train_targets.T.double()).reshape(dim, dim).float()
                self._base_u = self.heuristic_u(marginal, self.structure).diagonal().clone()
            return
        if self.kind == "identity":
            self._u = torch.eye(dim, device=dev)
        elif self.kind == "fixed":
            init = torch.as_tensor(self.init, dtype=torch.float32, device=dev)
            u = init * torch.eye(dim, device=dev) if init.ndim == 0 else init
            if init.ndim == 0 and not init.item() > 0:
                raise ValueError(f"init: a fixed scalar U must be > 0, got {init.item()}")
            check_positive_definite("reward matrix U", u)
            self._u = u
        else:
            if self.covariance == "marginal" or self.sigma_hat is None:
                self.update_covariance(torch.cov(train_targets.T.double()).reshape(dim, dim).float())

    def update_covariance(self, sigma_hat: torch.Tensor) -> None:
        """Recompute a heuristic U from a (T, T) covariance estimate Σ̂."""
        self.sigma_hat = sigma_hat
        if self.kind == "scaled":
            self._u = self.heuristic_u(sigma_hat, "scalar")
        elif self.kind == "inverse_cov":
            self._u = self.heuristic_u(sigma_hat, self.structure)

    def observe_residuals(self, residuals: torch.Tensor) -> None:
        """Residual Σ̂ from (..., T) residuals ``y - μ̂(x)`` (used when ``covariance == 'residual'``)."""
        heuristic = self.kind in ("scaled", "inverse_cov") and self.covariance == "residual"
        learned_base = self.kind == "learned" and self.base is not None
        learned_init = self.kind == "learned" and self._init_from_residuals and self.learned is not None
        if not (heuristic or learned_base or learned_init):
            return
        r = residuals.reshape(-1, residuals.shape[-1]).double()
        sigma_hat = (r.T @ r / max(r.shape[0], 1)).float()
        if heuristic:
            self.update_covariance(sigma_hat)
        elif learned_base:
            self._base_u = self.heuristic_u(sigma_hat, self.structure).diagonal().clone()
        else:
            self.learned.reset_to(self.heuristic_u(sigma_hat, self.structure))
            self._init_from_residuals = False

    def heuristic_u(self, sigma_hat: torch.Tensor, structure: str) -> torch.Tensor:
        """The likelihood-optimal U of a given ``structure`` for noise covariance Σ̂ (T, T): scalar
        λT / (2 tr Σ̂) I, diag λ / (2 diag Σ̂), full (λ/2) Σ̂⁻¹ (Σ̂ jittered)."""
        lam = self.entropy_weight
        dim = sigma_hat.shape[0]
        eye = torch.eye(dim, device=sigma_hat.device, dtype=sigma_hat.dtype)
        if structure == "scalar":
            return lam * dim / (2.0 * torch.trace(sigma_hat).clamp_min(1e-12)) * eye
        if structure == "diag":
            return torch.diag(lam / (2.0 * sigma_hat.diagonal().clamp_min(1e-12)))
        jit = self.jitter * sigma_hat.diagonal().mean().clamp_min(1e-12)
        return lam / 2.0 * torch.linalg.inv((sigma_hat + jit * eye).double()).to(sigma_hat.dtype)

    def matrix(self) -> torch.Tensor:
        """The current U, (T, T). Differentiable in φ when ``kind == 'learned'``."""
        if self.learned is not None:
            if self.base is not None and self._base_u is not None:
                return torch.diag(self._base_u.to(self.learned.param.device) * torch.diagonal(self.learned()))
            return self.learned()
        if not self.ready:
            raise RuntimeError("RewardMatrix.matrix() called before setup(train_targets)")
        return self._u

    def is_diagonal(self) -> bool:
        if self.kind == "learned":
            return self.structure in ("scalar", "diag")
        return self.kind in ("identity", "scaled") or (self.kind == "inverse_cov" and self.structure == "diag")

    def describe(self) -> dict[str, float]:
        """Scalars of U for logging."""
        if self.learned is not None:
            if self.base is not None and self._base_u is not None:
                with torch.no_grad():
                    d = self.matrix().diagonal()
                    corr = torch.diagonal(self.learned())
                key = "u" if self.structure == "scalar" else "u_mean_diag"
                return {key: float(d.mean()), "u_correction": float(corr.mean())}
            return self.learned.describe()
        if not self.ready:
            return {}
        u = self._u
        if self.is_diagonal() and torch.allclose(u.diagonal(), u.diagonal()[:1].expand_as(u.diagonal())):
            return {"u": float(u[0, 0])}
        return {"u_mean_diag": float(u.diagonal().mean())}
