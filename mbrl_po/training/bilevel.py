"""The bilevel solver behind ``reward_matrix="learned"``: learn U so that the PG-trained model has the
highest held-out likelihood.

Outer:  min_φ  L_out(θ*(φ)) = held-out Gaussian NLL of the model.
Inner:  θ*(φ) = argmin_θ L_in(θ, φ) = -(E_{ŷ~p_θ}[r_{U(φ)}(ŷ, y)] + λ H(p_θ)) / T  on training data.

Hypergradient (implicit function theorem, at an inner stationary point):

    dL_out/dφ = -(∂²L_in/∂φ∂θ) v,      (∇²_θθ L_in + δ I) v = ∇_θ L_out

with v from conjugate gradient (``implicit``) or a truncated Neumann series (``neumann``) on Hessian-vector
products, or the cheap ``one_step`` approximation v ≈ α ∇_θ L_out (differentiating one inner gradient step).
For the Mahalanobis reward and a Gaussian model, E[r_U] has a closed form, so L_in is evaluated exactly
(no Monte-Carlo noise in the Hessian) even when the inner training uses the sampled PG estimator.

Unlike the authors' code, the outer Adam optimizer keeps its state across steps (no signSGD behaviour) and
the solver keeps U between ``fit`` calls, so an agent can go on learning U across training rounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from mbrl_po.objectives.base import gaussian_nll
from mbrl_po.objectives.pg import PGObjective
from mbrl_po.objectives.reward_matrix import RewardMatrix, legacy_state

METHODS = ("implicit", "neumann", "one_step")


@dataclass
class HypergradientInfo:
    outer_nll: float
    inner_objective: float
    residual: float  # relative residual of the linear solve (0 for one_step)


class BilevelSolver:
    """Learns the PG objective's U (``reward_matrix="learned"``) by implicit differentiation.

    Args:
        objective: a :class:`PGObjective` whose reward matrix is learned: a
            :class:`~mbrl_po.objectives.reward_matrix.LearnedRewardMatrix` (``learned``, U(φ)) or a
            :class:`~mbrl_po.objectives.state_reward_matrix.StateLearnedRewardMatrix` (``state_learned``, a
            network U_ψ(x)). The solver optimises ``reward_matrix.parameters()`` (φ, or ψ's weights, at the
            outer rate ``lr * reward_matrix.outer_lr_scale``); U itself is saved with the objective
            (``objective.state_dict()``), the solver's :meth:`state_dict` holds its optimizer and history.
        method: ``"implicit"`` (CG solve), ``"neumann"`` or ``"one_step"``.
        lr: outer Adam learning rate on φ (log-parameterised U).
        iterations: CG iterations or Neumann terms.
        damping: δ added to the inner Hessian (it is not PD for a neural network).
        neumann_alpha: step α of ``one_step``, and the upper limit of the Neumann series' step (which is also
            kept below 1/λ_max of the Hessian, estimated by power iteration).
        hypergrad_clip: max norm of the hypergradient.
        max_rows: rows of inner and outer data used per hypergradient (random subset).
    """

    def __init__(
        self,
        objective: PGObjective,
        method: str = "implicit",
        lr: float = 0.05,
        iterations: int = 10,
        damping: float = 1e-2,
        neumann_alpha: float = 0.1,
        hypergrad_clip: float = 10.0,
        max_rows: int = 2048,
    ) -> None:
        if not (isinstance(objective, PGObjective) and objective.reward_matrix.learnable):
            raise ValueError("objective: BilevelSolver needs a PGObjective with a learned reward matrix "
                             "(reward_matrix='learned' or 'state_learned')")
        if method not in METHODS:
            raise ValueError(f"method: got {method!r}, allowed {list(METHODS)}")
        for name, v in (("lr", lr), ("neumann_alpha", neumann_alpha), ("hypergrad_clip", hypergrad_clip)):
            if not v > 0:
                raise ValueError(f"{name}: must be > 0, got {v}")
        if damping < 0:
            raise ValueError(f"damping: must be >= 0, got {damping}")
        if iterations < 1 or max_rows < 1:
            raise ValueError(f"iterations and max_rows: must be >= 1, got {iterations}, {max_rows}")
        self.objective = objective
        self.method = method
        self.lr = lr
        self.iterations = iterations
        self.damping = damping
        self.neumann_alpha = neumann_alpha
        self.hypergrad_clip = hypergrad_clip
        self.max_rows = max_rows
        self.optimizer: torch.optim.Adam | None = None
        self.history: list[dict[str, float]] = []
        self._pending_state: dict[str, Any] | None = None

    @property
    def reward_matrix(self) -> RewardMatrix:
        rm = self.objective.reward_matrix
        assert rm.learnable
        return rm

    def _parameters(self) -> list[torch.nn.Parameter]:
        params = self.reward_matrix.parameters()
        if not params:
            raise RuntimeError("BilevelSolver: the reward matrix is not set up yet (call trainer.fit first)")
        return params

    def _ensure_optimizer(self) -> torch.optim.Adam:
        params = self._parameters()
        held = [] if self.optimizer is None else self.optimizer.param_groups[0]["params"]
        if len(held) != len(params) or any(a is not b for a, b in zip(held, params, strict=False)):
            self.optimizer = torch.optim.Adam(params, lr=self.lr * self.reward_matrix.outer_lr_scale)
            if self._pending_state is not None:
                self.optimizer.load_state_dict(self._pending_state)
                self._pending_state = None
        return self.optimizer

    @staticmethod
    def _subset(x: torch.Tensor, y: torch.Tensor, n: int, gen: torch.Generator | None):
        if x.shape[0] <= n:
            return x, y
        idx = torch.randperm(x.shape[0], generator=gen, device="cpu")[:n].to(x.device)
        return x[idx], y[idx]

    def hypergradient(
        self,
        model: torch.nn.Module,
        inner: tuple[torch.Tensor, torch.Tensor],
        outer: tuple[torch.Tensor, torch.Tensor],
        method: str | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, HypergradientInfo]:
        """dL_out/dφ for the current model.

        Args:
            model: the ensemble (its ``forward`` maps (B, I) normalised inputs to (E, B, T) mean/logvar).
            inner: (B, I) inputs and (B, T) targets of the inner (training) data.
            outer: (B', I) inputs and (B', T) targets of the outer (held-out) data.
            method: override ``self.method``.

        Returns:
            The hypergradient, shaped like φ (one parameter) or flattened and concatenated over the reward
            matrix's parameters (a network ψ), and diagnostics.
        """
        grads, info = self._hypergradients(model, inner, outer, method, generator)
        if len(grads) == 1:
            return grads[0], info
        return torch.cat([g.reshape(-1) for g in grads]), info

    def _hypergradients(
        self,
        model: torch.nn.Module,
        inner: tuple[torch.Tensor, torch.Tensor],
        outer: tuple[torch.Tensor, torch.Tensor],
        method: str | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[list[torch.Tensor], HypergradientInfo]:
        """dL_out/dφ for each of the reward matrix's parameters (see :meth:`hypergradient`)."""
        method = method or self.method
        rm = self.reward_matrix
        phis = self._parameters()
        params = [p for p in model.parameters() if p.requires_grad]
        xi, yi = self._subset(*inner, self.max_rows, generator)
        xo, yo = self._subset(*outer, self.max_rows, generator)
        with torch.enable_grad():
            mo, lo = model(xo)
            outer_loss = gaussian_nll(mo, lo, yo).mean(dim=(1, 2)).sum()
            g_out = torch.autograd.grad(outer_loss, params, allow_unused=True)
            g_out = [torch.zeros_like(p) if g is None else g for g, p in zip(g_out, params, strict=True)]

            mi, li = model(xi)
            if rm.state_dependent:
                scale = rm.entropy_scale_at(xi)
                inner_loss = -self.objective.analytic_objective(
                    mi, li, yi, u_diag=rm.diagonal_at(xi), entropy_scale=None if scale is None else scale.detach())
            else:
                inner_loss = -self.objective.analytic_objective(mi, li, yi, rm.matrix())
            g_in = torch.autograd.grad(inner_loss, params, create_graph=True, allow_unused=True)
            g_in = [torch.zeros_like(p) if g is None else g for g, p in zip(g_in, params, strict=True)]

            def hvp(v: list[torch.Tensor]) -> list[torch.Tensor]:
                dot = sum((g * vv).sum() for g, vv in zip(g_in, v, strict=True))
                hv = torch.autograd.grad(dot, params, retain_graph=True, allow_unused=True)
                return [
                    (torch.zeros_like(p) if h is None else h) + self.damping * vv
                    for h, vv, p in zip(hv, v, params, strict=True)
                ]

            residual = 0.0
            if method == "one_step":
                v = [self.neumann_alpha * g for g in g_out]
            elif method == "neumann":
                alpha = self._neumann_step(hvp, g_out)
                v = [g.clone() for g in g_out]
                p_k = [g.clone() for g in g_out]
                for _ in range(self.iterations):
                    hp = hvp(p_k)
                    p_k = [p - alpha * h for p, h in zip(p_k, hp, strict=True)]
                    v = [a + b for a, b in zip(v, p_k, strict=True)]
                v = [alpha * a for a in v]
            else:
                v, residual = self._cg(hvp, g_out)
            dot = sum((g * vv.detach()).sum() for g, vv in zip(g_in, v, strict=True))
            mixed = torch.autograd.grad(dot, phis, allow_unused=True)
        hyper = [torch.zeros_like(p) if m is None else -m.detach() for m, p in zip(mixed, phis, strict=True)]
        info = HypergradientInfo(float(outer_loss.detach() / mo.shape[0]), float(-inner_loss.detach()), residual)
        return hyper, info

    def _neumann_step(self, hvp, b: list[torch.Tensor], power_iters: int = 5) -> float:  # noqa: ANN001
        """α = min(neumann_alpha, 1/λ_max(H)) from a few power iterations, so the series converges."""
        v = [t / (torch.sqrt(sum((u * u).sum() for u in b)) + 1e-30) for t in b]
        lam = 0.0
        for _ in range(power_iters):
            hv = hvp(v)
            norm = torch.sqrt(sum((h * h).sum() for h in hv))
            lam = float(norm)
            v = [h / (norm + 1e-30) for h in hv]
        return min(self.neumann_alpha, 1.0 / max(lam, 1e-12))

    def _cg(self, hvp, b: list[torch.Tensor]) -> tuple[list[torch.Tensor], float]:  # noqa: ANN001
        """Conjugate gradient on (H + δI) v = b, returning the iterate with the smallest residual.

        The inner Hessian of a neural network is indefinite, so CG may stall or diverge; stopping on negative
        curvature and keeping the best iterate makes it safe. With no progress at all it falls back to
        ``neumann_alpha * b`` (the one-step approximation).
        """
        x = [torch.zeros_like(t) for t in b]
        r = [t.clone() for t in b]
        p = [t.clone() for t in b]
        rs = sum((t * t).sum() for t in r)
        b_norm = float(torch.sqrt(rs)) + 1e-30
        best_x, best_res = None, 1.0
        for _ in range(self.iterations):
            ap = hvp(p)
            pap = sum((a * c).sum() for a, c in zip(p, ap, strict=True))
            if pap <= 0:  # negative curvature: stop
                break
            alpha = rs / pap
            x = [a + alpha * c for a, c in zip(x, p, strict=True)]
            r = [a - alpha * c for a, c in zip(r, ap, strict=True)]
            rs_new = sum((t * t).sum() for t in r)
            res = float(torch.sqrt(rs_new)) / b_norm
            if res < best_res:
                best_x, best_res = [t.clone() for t in x], res
            if res < 1e-6:
                break
            p = [a + (rs_new / rs) * c for a, c in zip(r, p, strict=True)]
            rs = rs_new
        if best_x is None:
            return [self.neumann_alpha * t for t in b], 1.0
        return best_x, best_res

    def step(
        self,
        model: torch.nn.Module,
        inner: tuple[torch.Tensor, torch.Tensor],
        outer: tuple[torch.Tensor, torch.Tensor],
        generator: torch.Generator | None = None,
    ) -> dict[str, float]:
        """One outer Adam step on φ (or ψ); returns (and appends to ``history``) the logged U and diagnostics."""
        opt = self._ensure_optimizer()
        hyper, info = self._hypergradients(model, inner, outer, generator=generator)
        norm = float(torch.sqrt(sum((h * h).sum() for h in hyper)))
        if norm > self.hypergrad_clip:
            hyper = [h * (self.hypergrad_clip / norm) for h in hyper]
        opt.zero_grad()
        for p, h in zip(self._parameters(), hyper, strict=True):
            p.grad = h
        opt.step()
        row = {"outer_step": float(len(self.history)), "outer_nll": info.outer_nll,
               "hypergrad_norm": norm, "cg_residual": info.residual, **self.reward_matrix.describe()}
        self.history.append(row)
        return row

    # ------------------------------------------------------------------ persistence (warm start / resume)
    def state_dict(self) -> dict[str, Any]:
        """The outer optimizer's state and the history; U (φ) is the objective's (``objective.state_dict()``)."""
        return {
            "optimizer": None if self.optimizer is None else self.optimizer.state_dict(),
            "history": list(self.history),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (after the objective's, when both are loaded: the optimizer is rebuilt on
        the φ the objective holds at the next step). A state written before reward matrices had their own
        (with ``phi`` and ``dim``) also restores the learned U from it."""
        self.history = list(state.get("history", []))
        self._pending_state = state.get("optimizer")
        self.optimizer = None
        if "phi" in state:  # the format up to dc4d05d: φ lived here
            self.reward_matrix.load_state_dict(legacy_state(self.reward_matrix, bilevel=state))
