"""Receding-horizon model predictive control agent built on a trajectory optimizer."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from mbrl_po.errors import NonFiniteModelError
from mbrl_po.planning.base import TrajectoryOptimizer, as_bounds, shift_sequence

__all__ = ["MPCAgent", "TrajectoryEvaluatorFn"]

TrajectoryEvaluatorFn = Callable[[Tensor, Tensor], Tensor]
"""``trajectory_evaluator(obs: Tensor[O], action_sequences: Tensor[N, H, A]) -> Tensor[N]``."""


class MPCAgent:
    """Plans with ``optimizer`` and executes the plan in a receding-horizon fashion.

    Every ``replan_every`` steps the agent optimises a new plan of shape (H, A) from the
    current observation, warm-started with the previous distribution mean shifted by the
    number of executed steps (new trailing actions set to the middle of the action box), and
    informs the optimizer through :meth:`TrajectoryOptimizer.advance` so it can shift its own
    memory (iCEM elites). Between replans it executes the stored plan step by step.

    Args:
        optimizer: Trajectory optimizer; it is moved to ``device``.
        trajectory_evaluator: ``(obs: Tensor[O], action_sequences: Tensor[N, H, A]) -> Tensor[N]``,
            the (model-based) value of each candidate from ``obs``; higher is better.
        action_low: Lower action bounds, shape (A,); None uses the optimizer's. If given they
            must match the optimizer's bounds.
        action_high: Upper action bounds, shape (A,); None uses the optimizer's.
        device: Device for planning; None keeps the optimizer's device.
        generator: Random generator on ``device``; None creates one seeded with ``seed``.
        replan_every: Number of plan steps executed between two optimisations, in [1, H].
        compile: Wrap the planning step with ``torch.compile``; if compilation is unavailable
            or fails, a ``RuntimeWarning`` is emitted and eager execution is used.
        seed: Seed of the generator created when ``generator`` is None.
    """

    def __init__(
        self,
        optimizer: TrajectoryOptimizer,
        trajectory_evaluator: TrajectoryEvaluatorFn,
        action_low: Tensor | np.ndarray | None = None,
        action_high: Tensor | np.ndarray | None = None,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
        replan_every: int = 1,
        compile: bool = False,
        seed: int = 0,
    ):
        if device is not None:
            optimizer.to(device)
        self.optimizer = optimizer
        self.device = optimizer.device
        if (action_low is None) != (action_high is None):
            raise ValueError("give both action_low and action_high, or neither")
        if action_low is not None:
            low, high = as_bounds(action_low, action_high, device=self.device, dtype=optimizer.dtype)
            if not (torch.equal(low, optimizer.action_low) and torch.equal(high, optimizer.action_high)):
                raise ValueError(
                    f"action bounds ({low}, {high}) differ from the optimizer's "
                    f"({optimizer.action_low}, {optimizer.action_high})"
                )
        self.action_low = optimizer.action_low
        self.action_high = optimizer.action_high
        if (
            isinstance(replan_every, bool)
            or not isinstance(replan_every, int)
            or not (1 <= replan_every <= optimizer.horizon)
        ):
            raise ValueError(f"replan_every must be an int in [1, {optimizer.horizon}], got {replan_every!r}")
        self.replan_every = replan_every
        self.trajectory_evaluator = trajectory_evaluator
        if generator is None:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(seed)
        elif generator.device.type != self.device.type:
            raise ValueError(f"generator lives on {generator.device}, planning on {self.device}")
        self.generator = generator
        self.compile = compile
        self._solve: Callable[[Tensor, Tensor], Tensor] = self._solve_eager
        if compile:
            self._solve = self._make_compiled()
        self._plan: Tensor | None = None
        self._mean: Tensor | None = None
        self._cursor = 0

    # ---- public API ------------------------------------------------------------------------

    @property
    def horizon(self) -> int:
        """H."""
        return self.optimizer.horizon

    @property
    def fill_action(self) -> Tensor:
        """Tensor[A]: action appended at the end of shifted warm starts (middle of the box)."""
        return self.optimizer.mid_action

    @property
    def is_compiled(self) -> bool:
        """Whether planning currently goes through ``torch.compile`` (False after a fallback)."""
        return self._solve != self._solve_eager  # bound methods compare equal, not identical

    @property
    def last_plan(self) -> Tensor | None:
        """Tensor[H, A]: plan currently being executed (None before the first plan)."""
        return self._plan

    def reset(self) -> None:
        """Starts a new episode: forgets the plan, the warm start and the optimizer memory."""
        self._plan = None
        self._mean = None
        self._cursor = 0
        self.optimizer.reset()

    def initial_mean(self) -> Tensor:
        """Tensor[H, A]: the warm start the next optimisation would use."""
        if self._mean is None:
            return self.fill_action.expand(self.horizon, -1).clone()
        return shift_sequence(self._mean, self._cursor, self.fill_action)

    def plan(self, obs: np.ndarray | Tensor) -> Tensor:
        """Optimises a new plan from ``obs`` and makes it the one being executed.

        The next :meth:`act` executes its first action (``act`` calls ``plan`` itself when a
        replan is due, so calling ``plan`` is only needed for inspection).

        Args:
            obs: Observation, shape (O,).

        Returns:
            The plan, shape (H, A), on the planning device.

        Raises:
            NonFiniteModelError: when every candidate of the optimisation scored NaN/inf (best value ``-inf``,
                e.g. a model with NaN weights): the plan would only be the warm start or the middle of the
                action box, so the agent refuses to act on it.
        """
        init_mean = self.initial_mean()
        if self._mean is not None:
            self.optimizer.advance(self._cursor)
        obs_t = torch.as_tensor(obs, dtype=self.optimizer.dtype, device=self.device)
        plan = self._solve(obs_t, init_mean)
        best = self.optimizer.best_value
        if best is not None and not bool(torch.isfinite(best)):  # one host sync per plan; act() syncs anyway
            raise NonFiniteModelError(
                f"planner: every one of the {self.optimizer.horizon}-step candidate plans scored NaN/inf (best value "
                f"{float(best)}); the model's predictions are non-finite, so there is nothing to act on. Check the "
                "model's weights (a NaN weight) and its last fit (metrics.csv, model_rollback)"
            )
        mean = self.optimizer.last_mean
        self._mean = (plan if mean is None else mean).detach()
        self._plan = plan.detach()
        self._cursor = 0
        return self._plan.clone()

    def act(self, obs: np.ndarray | Tensor) -> np.ndarray:
        """Returns the action to execute for ``obs``, shape (A,), as a numpy array."""
        if self._plan is None or self._cursor >= self.replan_every:
            self.plan(obs)
        assert self._plan is not None
        action = self._plan[self._cursor]
        self._cursor += 1
        return action.cpu().numpy()

    # ---- planning step (optionally compiled) -----------------------------------------------

    def _solve_eager(self, obs: Tensor, init_mean: Tensor) -> Tensor:
        evaluator = self.trajectory_evaluator

        def evaluate(action_sequences: Tensor) -> Tensor:
            return evaluator(obs, action_sequences)

        return self.optimizer.optimize(evaluate, init_mean, self.generator)

    def _make_compiled(self) -> Callable[[Tensor, Tensor], Tensor]:
        compile_fn = getattr(torch, "compile", None)
        if compile_fn is None:
            warnings.warn("torch.compile is unavailable; planning eagerly", RuntimeWarning, stacklevel=3)
            return self._solve_eager
        try:
            compiled = compile_fn(self._solve_eager)
        except Exception as exc:  # noqa: BLE001 - any failure means "run eagerly"
            warnings.warn(f"torch.compile failed ({exc!r}); planning eagerly", RuntimeWarning, stacklevel=3)
            return self._solve_eager

        def solve(obs: Tensor, init_mean: Tensor) -> Tensor:
            if self._solve is not solve:  # fallen back meanwhile
                return self._solve_eager(obs, init_mean)
            try:
                return compiled(obs, init_mean)
            except Exception as exc:  # noqa: BLE001 - compilation errors surface at first call
                warnings.warn(
                    f"torch.compile failed at run time ({exc!r}); planning eagerly",
                    RuntimeWarning,
                    stacklevel=4,
                )
                self._solve = self._solve_eager
                return self._solve_eager(obs, init_mean)

        return solve
