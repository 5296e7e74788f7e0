"""Batched rollouts of a learned :class:`~mbrl_po.models.GaussianEnsemble`, entirely on the model's device.

:class:`ModelEnv` steps B rows ("particles") through the ensemble at once. How a row's next state is drawn
from the E' members in use (the elites by default) is the *propagation* mode (PETS, Chua et al. 2018):

``"ts1"`` (TS-1)
    every step, each row is sent to a fresh uniformly random member and a sample of that member's
    Gaussian is drawn.
``"ts_inf"`` (TS-∞)
    each row is bound to one member at :meth:`ModelEnv.reset` and keeps it for the whole rollout;
    a sample of that member's Gaussian is drawn every step.
``"mean"``
    like ``"ts_inf"`` (one member per row, fixed at reset) but the member's *mean* is used: no sampling
    noise. With a single member (or all members equal) this is a plain deterministic model.
``"expectation"``
    every member predicts its mean on every row and the E' means are averaged (next state and learned
    reward). Deterministic; costs E' evaluations per row.

TS-1 / TS-∞ / mean never evaluate every member on every row: the B rows are permuted into E' equal groups,
reshaped to (E', B/E', ·), pushed through one batched :meth:`GaussianEnsemble.sample_joint` call (group e goes to
member e) and un-permuted. When E' does not divide B, the permuted layout is padded with copies of real rows
whose outputs are discarded, so the groups stay equal; a row's member is then uniform over the E' members
(exactly balanced over the padded slots).

Rewards come from ``reward_fn(obs, action, next_obs)`` when one is given, else from the model's learned
reward head. ``termination_fn(obs, action, next_obs)`` flags terminal next states; once a row has terminated
it stays terminated, its state is frozen and its later rewards are 0.

Nothing in :meth:`ModelEnv.step`, :meth:`ModelEnv.rollout` or :meth:`ModelEnv.rollout_policy` (before
:meth:`ModelRollout.to_transitions`) synchronises with the host. Rollouts run under ``torch.no_grad()``.

:class:`ModelVectorEnv` wraps a :class:`ModelEnv` as a ``gymnasium.vector.VectorEnv`` (numpy in and out).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from mbrl_po.models.ensemble import GaussianEnsemble, precision_dtype
from mbrl_po.types import TransitionData, TransitionFn

__all__ = ["PROPAGATIONS", "ModelEnv", "ModelRollout", "ModelVectorEnv"]


PROPAGATIONS = ("ts1", "ts_inf", "mean", "expectation")
"""Allowed ``propagation`` modes of :class:`ModelEnv`."""


@dataclass(frozen=True)
class ModelRollout:
    """H steps of B model rows, time-major, as returned by :meth:`ModelEnv.rollout_policy`.

    Attributes:
        obs: (H, B, O) observations.
        actions: (H, B, A) actions chosen by the policy.
        rewards: (H, B) rewards (0 where not ``valid``).
        next_obs: (H, B, O) next observations.
        terminated: (H, B) bool, true where ``next_obs`` is terminal (it stays true afterwards).
        valid: (H, B) bool, true where the row had not terminated before step t, i.e. the transition really
            happened in the model; transitions with ``valid`` false must be ignored.
    """

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor
    valid: torch.Tensor

    @property
    def horizon(self) -> int:
        return int(self.obs.shape[0])

    def to_transitions(self) -> TransitionData:
        """The valid transitions flattened to (M, ·) (M = ``valid.sum()``, time-major order).

        This selects rows with a boolean mask and therefore synchronises with the host once.
        """
        v = self.valid.reshape(-1)
        o_dim, a_dim = self.obs.shape[-1], self.actions.shape[-1]
        return TransitionData(
            obs=self.obs.reshape(-1, o_dim)[v],
            actions=self.actions.reshape(-1, a_dim)[v],
            next_obs=self.next_obs.reshape(-1, o_dim)[v],
            rewards=self.rewards.reshape(-1)[v],
            terminated=self.terminated.reshape(-1)[v],
        )


def _same_device_type(a: torch.device, b: torch.device) -> bool:
    if a.type != b.type:
        return False
    if a.index is None or b.index is None:
        return True
    return a.index == b.index


class ModelEnv:
    """Batched, stateful rollouts of a learned ensemble.

    Args:
        model: the dynamics ensemble; rollouts run on ``model.device``.
        termination_fn: ``fn(obs, action, next_obs) -> (B,) bool``; None means episodes never terminate.
        reward_fn: ``fn(obs, action, next_obs) -> (B,)``; None uses the model's learned reward
            (``model.config.learn_reward`` must then be true).
        propagation: one of :data:`PROPAGATIONS` (see the module docstring).
        generator: ``torch.Generator`` on the model's device, the source of all randomness (member
            assignment and sampling noise); None creates one seeded from torch's global CPU generator.
        use_elites: roll out with the E' = ``num_elites`` members of ``model.elite_idx`` (read at every
            step, so later :meth:`GaussianEnsemble.set_elites` calls take effect); False uses all E members.
        precision: the network's matmul precision in rollouts, one of :data:`~mbrl_po.models.ensemble.PRECISIONS`:
            ``"float32"`` (default), or ``"bf16"`` (weights cast once per training, inputs per step, outputs
            and everything after the network in float32): several times faster on CPUs with bf16 matrix
            instructions and on CUDA, far slower where bf16 is emulated.

    Raises:
        ValueError: on an unknown propagation, a generator on another device, or no source of reward.
    """

    def __init__(
        self,
        model: GaussianEnsemble,
        termination_fn: TransitionFn | None = None,
        reward_fn: TransitionFn | None = None,
        propagation: str = "ts1",
        generator: torch.Generator | None = None,
        use_elites: bool = True,
        precision: str = "float32",
    ) -> None:
        if not isinstance(model, GaussianEnsemble):
            raise ValueError(f"model: expected a GaussianEnsemble, got {type(model).__name__}")
        if propagation not in PROPAGATIONS:
            raise ValueError(f"propagation: got {propagation!r}, allowed {list(PROPAGATIONS)}")
        if reward_fn is None and not model.config.learn_reward:
            raise ValueError(
                "reward_fn: required because the model does not learn the reward (config.learn_reward=False)"
            )
        for name, fn in (("termination_fn", termination_fn), ("reward_fn", reward_fn)):
            if fn is not None and not callable(fn):
                raise ValueError(f"{name}: expected a callable fn(obs, action, next_obs) or None, got {fn!r}")
        if generator is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())  # global CPU generator: reproducible, no device sync
            generator = torch.Generator(device=model.device)
            generator.manual_seed(seed)
        elif not _same_device_type(generator.device, model.device):
            raise ValueError(
                f"generator: lives on {generator.device} but the model is on {model.device}; they must match"
            )
        self.model = model
        self.termination_fn = termination_fn
        self.reward_fn = reward_fn
        self.propagation = propagation
        self.generator = generator
        self.use_elites = bool(use_elites)
        self.precision = precision
        self._compute_dtype = precision_dtype(precision)
        self._obs: torch.Tensor | None = None
        self._terminated: torch.Tensor | None = None
        # permuted layout of the rows: slot j holds row src[j]; row i sits at slot inv[i]
        self._src: torch.Tensor | None = None
        self._inv: torch.Tensor | None = None
        self._ramp: torch.Tensor | None = None  # cached arange of the padded batch (layout draws)

    # ------------------------------------------------------------------ properties
    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.max_logvar.dtype

    @property
    def obs_dim(self) -> int:
        return self.model.config.obs_dim

    @property
    def action_dim(self) -> int:
        return self.model.config.action_dim

    @property
    def num_members(self) -> int:
        """E', the number of members rolled out with (elites or all)."""
        return self.model.num_elites if self.use_elites else self.model.ensemble_size

    def _members(self) -> torch.Tensor | None:
        return self.model.elite_idx if self.use_elites else None

    @property
    def obs(self) -> torch.Tensor:
        """(B, O) current observations."""
        if self._obs is None:
            raise RuntimeError("ModelEnv: call reset(obs) before reading obs")
        return self._obs

    @property
    def terminated(self) -> torch.Tensor:
        """(B,) bool, rows that have terminated."""
        if self._terminated is None:
            raise RuntimeError("ModelEnv: call reset(obs) before reading terminated")
        return self._terminated

    @property
    def row_members(self) -> torch.Tensor:
        """(B,) long model-member index of each row: the fixed one (``ts_inf``, ``mean``) or the one used at
        the last step (``ts1``). Not defined for ``expectation``."""
        if self.propagation == "expectation":
            raise RuntimeError("row_members: rows are not assigned to members under propagation='expectation'")
        if self._inv is None or self._src is None:
            raise RuntimeError("row_members: no assignment yet (reset, and for 'ts1' step, first)")
        group = self._inv // (self._src.shape[0] // self.num_members)
        members = self._members()
        return group if members is None else members[group]

    # ------------------------------------------------------------------ core
    def _check_rows(self, name: str, x: torch.Tensor, dim: int, rows: int | None) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 2 or x.shape[1] != dim or (rows is not None and x.shape[0] != rows):
            b = "B" if rows is None else str(rows)
            raise ValueError(f"{name}: expected shape ({b}, {dim}), got {tuple(x.shape)}")
        if x.shape[0] == 0:
            raise ValueError(f"{name}: got 0 rows; at least 1 is required")
        return x.to(device=self.device, dtype=self.dtype)

    def _draw_layout(self, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A random assignment of ``b`` rows to E' equal groups of a padded layout (one ``randperm``).

        Returns:
            src (Bp,) the row held by each slot (padding slots copy real rows), and inv (B,) the slot of
            each row; slot j belongs to group j // (Bp / E').
        """
        e = self.num_members
        bp = -(-b // e) * e
        perm = torch.randperm(bp, generator=self.generator, device=self.device)
        ramp = self._ramp
        if ramp is None or ramp.shape[0] != bp or ramp.device != perm.device:
            ramp = self._ramp = torch.arange(bp, device=self.device)
        inv = torch.empty_like(perm).index_put_((perm,), ramp)
        if bp == b:
            return perm, inv
        return torch.remainder(perm, b), inv[:b]

    def _propagate(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, O), (B, A) -> next_obs (B, O), learned reward (B,) or None (see the module docstring).

        Observations and actions are joined once and permuted by one gather into the (E', Bp/E', I) layout, the
        model returns ``[next_obs, reward]`` as one tensor (:meth:`GaussianEnsemble.sample_joint`) and one
        gather un-permutes it."""
        members = self._members()
        model = self.model
        o = self.obs_dim
        learn_reward = model.config.learn_reward
        x = torch.cat([obs, actions], dim=1)
        if self.propagation == "expectation":
            y = model.sample_joint(x, self.generator, members, True, self._compute_dtype).mean(0)
            return y[:, :o], (y[:, o] if learn_reward else None)
        if self.propagation == "ts1":
            self._src, self._inv = self._draw_layout(obs.shape[0])
        src, inv = self._src, self._inv
        assert src is not None and inv is not None
        e, bp = self.num_members, src.shape[0]
        x = x.index_select(0, src).view(e, bp // e, x.shape[1])
        y = model.sample_joint(x, self.generator, members, self.propagation == "mean", self._compute_dtype)
        y = y.view(bp, y.shape[-1]).index_select(0, inv)
        return y[:, :o], (y[:, o] if learn_reward else None)

    # ------------------------------------------------------------------ API
    @torch.no_grad()
    def reset(self, obs: torch.Tensor) -> torch.Tensor:
        """Start B rows at ``obs``; with ``ts_inf``/``mean``, bind each row to a random member.

        Args:
            obs: (B, O) initial observations (moved to the model's device and dtype).

        Returns:
            (B, O) the initial observations on the model's device.
        """
        obs = self._check_rows("obs", obs, self.obs_dim, None)
        b = obs.shape[0]
        self._obs = obs
        self._terminated = torch.zeros(b, dtype=torch.bool, device=self.device)
        self._src = self._inv = None
        if self.propagation in ("ts_inf", "mean"):
            self._src, self._inv = self._draw_layout(b)
        return obs

    @torch.no_grad()
    def reset_rows(self, mask: torch.Tensor, obs: torch.Tensor) -> None:
        """Restart the rows where ``mask`` is true at ``obs`` (other rows are untouched).

        Member bindings (``ts_inf``/``mean``) are kept. Used for the autoreset of :class:`ModelVectorEnv`.

        Args:
            mask: (B,) bool.
            obs: (B, O); only the masked rows are read.
        """
        cur = self.obs
        b = cur.shape[0]
        obs = self._check_rows("obs", obs, self.obs_dim, b)
        if not isinstance(mask, torch.Tensor) or mask.shape != (b,):
            raise ValueError(f"mask: expected a bool tensor of shape ({b},), got {getattr(mask, 'shape', mask)}")
        mask = mask.to(device=self.device, dtype=torch.bool)
        self._obs = torch.where(mask[:, None], obs, cur)
        self._terminated = self.terminated & ~mask

    @torch.no_grad()
    def step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Advance every row one step.

        Args:
            actions: (B, A) actions.

        Returns:
            next_obs (B, O), reward (B,) and terminated (B,) bool. Rows terminated at an earlier step keep
            their observation, get reward 0 and stay terminated; the reward of the terminating step counts.
        """
        actions = self._check_rows("actions", actions, self.action_dim, self.obs.shape[0])
        return self._step(actions)

    def _step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`step` on actions already checked and on the model's device and dtype."""
        obs = self.obs
        done = self.terminated
        b = obs.shape[0]
        next_obs, reward = self._propagate(obs, actions)
        if self.reward_fn is not None:
            reward = self.reward_fn(obs, actions, next_obs).reshape(b).to(self.dtype)
        assert reward is not None
        terminated = done
        if self.termination_fn is not None:
            terminated = done | self.termination_fn(obs, actions, next_obs).reshape(b).to(torch.bool)
        reward = reward.masked_fill(done, 0.0)
        next_obs = torch.where(done[:, None], obs, next_obs)
        self._obs = next_obs
        self._terminated = terminated
        return next_obs, reward, terminated

    @torch.no_grad()
    def rollout(self, obs0: torch.Tensor, action_sequences: torch.Tensor, discount: float = 1.0) -> torch.Tensor:
        """Return of each row under an open-loop action sequence (calls :meth:`reset`).

        Args:
            obs0: (B, O) initial observations.
            action_sequences: (B, H, A) actions.
            discount: gamma; the return is ``sum_t gamma^t r_t``.

        Returns:
            (B,) returns (NaN/inf propagate: a diverging row yields a non-finite return).
        """
        if not isinstance(action_sequences, torch.Tensor) or action_sequences.ndim != 3:
            got = getattr(action_sequences, "shape", type(action_sequences).__name__)
            raise ValueError(f"action_sequences: expected a tensor of shape (B, H, A), got {got}")
        b, h, a = action_sequences.shape
        if a != self.action_dim or b != obs0.shape[0]:
            raise ValueError(
                f"action_sequences: expected shape ({obs0.shape[0]}, H, {self.action_dim}), "
                f"got {tuple(action_sequences.shape)}"
            )
        self.reset(obs0)
        actions = action_sequences.to(device=self.device, dtype=self.dtype)
        actions = actions.transpose(0, 1).contiguous()  # time-major: each step reads contiguous rows
        total = torch.zeros(b, device=self.device, dtype=self.dtype)
        scale = 1.0
        for t in range(h):
            _, reward, _ = self._step(actions[t])  # checked once above, not at every step
            total = total.add_(reward) if scale == 1.0 else total + scale * reward
            scale *= discount
        return total

    @torch.no_grad()
    def rollout_policy(
        self, obs0: torch.Tensor, policy_fn: Callable[[torch.Tensor], torch.Tensor], horizon: int
    ) -> ModelRollout:
        """Closed-loop rollout for MBPO-style data generation (calls :meth:`reset`).

        Args:
            obs0: (B, O) start observations (e.g. sampled from the real replay buffer).
            policy_fn: ``(B, O) tensor -> (B, A) tensor`` of actions; it is called on every row, including
                terminated ones whose actions are then ignored.
            horizon: H >= 1 steps.

        Returns:
            A :class:`ModelRollout`; transitions after a row's termination are flagged ``valid=False``
            (:meth:`ModelRollout.to_transitions` drops them).
        """
        if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
            raise ValueError(f"horizon: must be a positive integer, got {horizon!r}")
        obs = self.reset(obs0)
        seq: dict[str, list[torch.Tensor]] = {k: [] for k in ("o", "a", "r", "n", "t", "v")}
        for _ in range(horizon):
            valid = ~self.terminated
            act = torch.as_tensor(policy_fn(obs), device=self.device, dtype=self.dtype)
            nxt, rew, term = self.step(act)
            for k, x in zip("oarntv", (obs, act, rew, nxt, term, valid), strict=True):
                seq[k].append(x)
            obs = nxt
        o, a, r, n, t, v = (torch.stack(seq[k]) for k in "oarntv")
        return ModelRollout(obs=o, actions=a, rewards=r, next_obs=n, terminated=t, valid=v)


InitialObs = np.ndarray | torch.Tensor | Callable[[np.random.Generator, int], Any]


class ModelVectorEnv(VectorEnv):
    """A :class:`ModelEnv` seen as a ``gymnasium.vector.VectorEnv`` of ``num_envs`` model rows.

    Observations, rewards and flags are numpy arrays (observations in the dtype of
    ``single_observation_space``, rewards float64, flags bool); actions may be numpy or anything array-like
    of shape (num_envs, A).

    Autoreset follows Gymnasium's default ``AutoresetMode.NEXT_STEP`` (``metadata["autoreset_mode"]``): the
    step that terminates or truncates a sub-environment returns its final observation; on the *next*
    ``step`` that sub-environment ignores its action, restarts from a new initial observation and returns
    reward 0 and ``terminated = truncated = False``. ``reset(options={"reset_mask": mask})`` restarts only the
    masked sub-environments. Member bindings (``ts_inf``/``mean``) are drawn at a full reset and kept across
    autoresets.

    Args:
        model_env: the model environment to step.
        num_envs: number of sub-environments (model rows).
        single_observation_space: ``Box`` of shape (O,).
        single_action_space: ``Box`` of shape (A,).
        initial_obs: where episodes start: an (M, O) array of start states (sampled uniformly with
            :attr:`np_random`), or a callable ``(np_random, n) -> (n, O) array``. ``reset(options={"obs": x})``
            overrides it with explicit (num_envs, O) observations.
        max_episode_steps: truncate sub-episodes after this many steps; None never truncates.
    """

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        model_env: ModelEnv,
        num_envs: int,
        single_observation_space: gym.spaces.Box,
        single_action_space: gym.spaces.Box,
        initial_obs: InitialObs,
        max_episode_steps: int | None = None,
    ) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs: must be a positive integer, got {num_envs!r}")
        o, a = model_env.obs_dim, model_env.action_dim
        for name, space, dim in (
            ("single_observation_space", single_observation_space, o),
            ("single_action_space", single_action_space, a),
        ):
            if not isinstance(space, gym.spaces.Box) or space.shape != (dim,):
                raise ValueError(f"{name}: expected a Box of shape ({dim},), got {space!r}")
        if max_episode_steps is not None and (
            isinstance(max_episode_steps, bool) or not isinstance(max_episode_steps, int) or max_episode_steps < 1
        ):
            raise ValueError(f"max_episode_steps: must be a positive integer or None, got {max_episode_steps!r}")
        if callable(initial_obs):
            self._initial_fn: Callable[[np.random.Generator, int], Any] | None = initial_obs
            self._initial_pool: np.ndarray | None = None
        else:
            pool = initial_obs.detach().cpu().numpy() if isinstance(initial_obs, torch.Tensor) else initial_obs
            pool = np.asarray(pool, dtype=np.float64)
            if pool.ndim != 2 or pool.shape[0] < 1 or pool.shape[1] != o:
                raise ValueError(f"initial_obs: expected an (M, {o}) array or a callable, got shape {pool.shape}")
            self._initial_fn, self._initial_pool = None, pool
        self.model_env = model_env
        self.num_envs = num_envs
        self.single_observation_space = single_observation_space
        self.single_action_space = single_action_space
        self.observation_space = batch_space(single_observation_space, num_envs)
        self.action_space = batch_space(single_action_space, num_envs)
        self.max_episode_steps = max_episode_steps
        self.metadata = dict(type(self).metadata)
        self._steps = np.zeros(num_envs, dtype=np.int64)
        self._autoreset = np.zeros(num_envs, dtype=np.bool_)
        self._started = False

    def _draw_initial(self, n: int) -> np.ndarray:
        if self._initial_fn is not None:
            x = np.asarray(self._initial_fn(self.np_random, n), dtype=np.float64)
            if x.shape != (n, self.model_env.obs_dim):
                raise ValueError(
                    f"initial_obs: the callable returned shape {x.shape}, expected ({n}, {self.model_env.obs_dim})"
                )
            return x
        assert self._initial_pool is not None
        return self._initial_pool[self.np_random.integers(0, self._initial_pool.shape[0], size=n)]

    def _to_numpy_obs(self, obs: torch.Tensor) -> np.ndarray:
        return obs.detach().cpu().numpy().astype(self.single_observation_space.dtype, copy=False)

    def _tensor(self, x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x), device=self.model_env.device, dtype=self.model_env.dtype)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every sub-environment (or those of ``options["reset_mask"]``).

        Args:
            seed: seeds :attr:`np_random` (initial states) and the model env's torch generator.
            options: ``{"obs": (num_envs, O) array}`` explicit start states; ``{"reset_mask": (num_envs,) bool
                array}`` restart only those sub-environments (requires an earlier full reset).

        Returns:
            (num_envs, O) observations and an empty info dict.
        """
        super().reset(seed=seed)
        if seed is not None:
            self.model_env.generator.manual_seed(int(seed))
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        explicit = options.pop("obs", None)
        if options:
            raise ValueError(f"options: unknown keys {sorted(options)}, allowed ['obs', 'reset_mask']")
        n, o = self.num_envs, self.model_env.obs_dim
        if mask is not None:
            mask = np.asarray(mask)
            if mask.shape != (n,) or mask.dtype != np.bool_:
                raise ValueError(f"reset_mask: expected a bool array of shape ({n},), got {mask.dtype} {mask.shape}")
            if not self._started:
                raise ValueError("reset_mask: a full reset() must come before a masked one")
        if explicit is not None:
            new = np.asarray(explicit, dtype=np.float64)
            if new.shape != (n, o):
                raise ValueError(f"obs: expected shape ({n}, {o}), got {new.shape}")
        else:
            new = np.zeros((n, o))
            rows = np.arange(n) if mask is None else np.flatnonzero(mask)
            new[rows] = self._draw_initial(len(rows))
        if mask is None:
            obs = self.model_env.reset(self._tensor(new))
            self._steps[:] = 0
            self._autoreset[:] = False
            self._started = True
        else:
            self.model_env.reset_rows(torch.as_tensor(mask, device=self.model_env.device), self._tensor(new))
            obs = self.model_env.obs
            self._steps[mask] = 0
            self._autoreset[mask] = False
        return self._to_numpy_obs(obs), {}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every sub-environment (autoresetting those that ended at the previous step).

        Args:
            actions: (num_envs, A) actions.

        Returns:
            observations (num_envs, O), rewards (num_envs,) float64, terminations and truncations
            (num_envs,) bool, and an empty info dict.
        """
        if not self._started:
            raise RuntimeError("ModelVectorEnv: call reset() before step()")
        n, a_dim = self.num_envs, self.model_env.action_dim
        act = actions.detach().cpu().numpy() if isinstance(actions, torch.Tensor) else np.asarray(actions)
        if act.size != n * a_dim:
            raise ValueError(f"actions: expected shape ({n}, {a_dim}), got {act.shape}")
        next_obs, reward, term = self.model_env.step(self._tensor(act.reshape(n, a_dim)))
        obs_np = self._to_numpy_obs(next_obs).copy()
        rew_np = reward.detach().cpu().numpy().astype(np.float64)
        term_np = term.detach().cpu().numpy().astype(np.bool_)
        self._steps += 1
        if self.max_episode_steps is None:
            trunc_np = np.zeros(n, dtype=np.bool_)
        else:
            trunc_np = self._steps >= self.max_episode_steps
        restart = self._autoreset
        if restart.any():
            new = np.zeros((n, self.model_env.obs_dim))
            new[restart] = self._draw_initial(int(restart.sum()))
            self.model_env.reset_rows(torch.as_tensor(restart, device=self.model_env.device), self._tensor(new))
            obs_np[restart] = self._to_numpy_obs(self.model_env.obs)[restart]
            rew_np[restart] = 0.0
            term_np[restart] = False
            trunc_np[restart] = False
            self._steps[restart] = 0
        self._autoreset = term_np | trunc_np
        return obs_np, rew_np, term_np, trunc_np, {}
