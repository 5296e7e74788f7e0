"""MBPO and plain SAC: stable-baselines3's SAC driven by our own loop (``learn()`` is never called).

The loop, top to bottom (``MBPO.train``; ``SAC`` is the same loop without steps 2-3):

1. ``loop.init_steps`` random actions, then one action per step from the stochastic SAC actor. Every real
   transition goes to the real replay buffer.
2. Every ``loop.train_every`` steps (first at ``init_steps``): score the current model on the real
   transitions it has not seen yet, then refit it on the whole real buffer with the configured objective
   (``nll``, ``mse`` or ``pg``; a learned U keeps learning across rounds because the trainer persists). The
   model predicts the reward too: MBPO uses the learned reward; terminations come from the task.
3. Every env step after that: branch ``mbpo.rollouts_per_step`` rollouts of length k from real states (TS-1:
   each row goes to a random elite at every step), acting with the stochastic SAC actor, into the model
   buffer. k follows ``mbpo.rollout_schedule`` in epochs of ``mbpo.epoch_length`` env steps; the model buffer
   holds ``model_retain_epochs`` epochs of rollouts and is resized (keeping the newest) when k changes.
4. ``mbpo.updates_per_step`` SAC gradient steps (``sac.updates_per_step`` for plain SAC) on batches that mix
   ``real_ratio`` real and ``1 - real_ratio`` model transitions (:class:`MixedSampler`), done by
   :class:`~mbrl_po.agents.sac_update.LeanSACUpdate` (SB3's ``SAC.train`` less the wasted critic gradients, fused Adam).
5. Every ``loop.eval_every`` steps: deterministic-actor episodes on a separately seeded env.
6. At episode ends, after ``loop.checkpoint_every`` steps since the last one: a checkpoint (SAC networks and
   optimizers, entropy coefficient, model, trainer, both buffers and every RNG). ``resume`` restarts from it
   and logs exactly what an uninterrupted run would have logged.
"""

from __future__ import annotations

import copy
import random
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import SAC as SB3SAC
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from mbrl_po.agents.common import (
    EVAL_SEED_OFFSET,
    AgentLoop,
    RunDir,
    build_model,
    build_trainer,
    env_rng_state,
    set_env_rng_state,
)
from mbrl_po.agents.sac_update import LeanSACUpdate
from mbrl_po.config import AgentConfig
from mbrl_po.data.replay_buffer import ReplayBuffer
from mbrl_po.envs.task import TaskConfig
from mbrl_po.errors import CheckpointError
from mbrl_po.models.ensemble import GaussianEnsemble
from mbrl_po.models.model_env import ModelEnv
from mbrl_po.training.trainer import DynamicsTrainer

__all__ = ["EVAL_SEED_OFFSET", "MBPO", "MixedSampler", "SACAgent", "SpacesOnlyEnv", "model_buffer_capacity",
           "rollout_length"]


# ---------------------------------------------------------------------------------------------- schedule
def rollout_length(schedule: tuple[int, int, int, int], epoch: int) -> int:
    """MBPO's rollout length k at ``epoch``: ``k_start`` up to ``start_epoch``, then linear, then ``k_end``.

    Args:
        schedule: ``(start_epoch, end_epoch, k_start, k_end)``, as in MBPO's ``rollout_schedule``.
        epoch: ``env_step // mbpo.epoch_length``.

    Returns:
        ``int(k_start + clip((epoch - start) / (end - start), 0, 1) * (k_end - k_start))`` (truncated, as in
        the original code).
    """
    start, end, k_start, k_end = (int(x) for x in schedule)
    if end < start or k_start < 1 or k_end < 1:
        raise ValueError(
            f"mbpo.rollout_schedule: got {list(schedule)}, allowed [start_epoch, end_epoch >= start_epoch, "
            "k_start >= 1, k_end >= 1]"
        )
    if epoch <= start:
        return k_start
    frac = 1.0 if end == start else min((epoch - start) / (end - start), 1.0)
    return int(k_start + frac * (k_end - k_start))


def model_buffer_capacity(cfg: AgentConfig, k: int) -> int:
    """Model transitions kept: ``rollouts_per_step * epoch_length * model_retain_epochs * k``."""
    m = cfg.mbpo
    return m.rollouts_per_step * m.epoch_length * m.model_retain_epochs * k


# ---------------------------------------------------------------------------------------------- sampler
class MixedSampler:
    """Stands in for ``sac.replay_buffer``: SAC batches drawn from the real and the model buffer.

    ``sample(B)`` takes ``round(real_ratio * B)`` rows from the real buffer and the rest from the model buffer
    (all real while the model buffer is None or empty), each drawn with its buffer's own generator. Actions
    are stored at env scale and rescaled to SB3's [-1, 1] here.

    Args:
        real: the real replay buffer.
        model: the model-rollout buffer (None for plain SAC).
        real_ratio: fraction of each batch drawn from ``real``.
        action_low: (A,) lower action bounds of the env.
        action_high: (A,) upper action bounds of the env.
        device: where the batches go (``sac.device``).
    """

    def __init__(self, real: ReplayBuffer, model: ReplayBuffer | None, real_ratio: float,
                 action_low: np.ndarray, action_high: np.ndarray, device: torch.device) -> None:
        if not 0.0 <= real_ratio <= 1.0:
            raise ValueError(f"real_ratio: got {real_ratio!r}, allowed [0, 1]")
        self.real = real
        self.model = model
        self.real_ratio = float(real_ratio)
        self.device = device
        self.low = torch.as_tensor(action_low, dtype=torch.float32, device=device)
        self.high = torch.as_tensor(action_high, dtype=torch.float32, device=device)

    def split(self, batch_size: int) -> tuple[int, int]:
        """(real rows, model rows) of a batch of ``batch_size``."""
        if self.model is None or len(self.model) == 0:
            return batch_size, 0
        n_real = int(round(self.real_ratio * batch_size))
        return n_real, batch_size - n_real

    def sample(self, batch_size: int, env: Any = None) -> ReplayBufferSamples:
        """A mixed batch in SB3's format.

        Args:
            batch_size: B.
            env: SB3's VecNormalize hook; must be None (observations are not normalised here).

        Returns:
            ``ReplayBufferSamples`` with observations (B, O), actions (B, A) in [-1, 1], next_observations
            (B, O), dones (B, 1) (1.0 where terminated; time-limit truncations bootstrap), rewards (B, 1),
            discounts None (SAC then uses gamma); real rows first, then model rows.
        """
        if env is not None:
            raise ValueError("env: MixedSampler does not support VecNormalize; got a normalising env")
        n_real, n_model = self.split(batch_size)
        parts = []
        if n_real:
            parts.append(self.real.sample(n_real, self.device))
        if n_model:
            assert self.model is not None
            parts.append(self.model.sample(n_model, self.device))
        obs, act, nxt, rew, term = (torch.cat([getattr(p, f) for p in parts]) for f in
                                    ("obs", "actions", "next_obs", "rewards", "terminated"))
        scaled = 2.0 * (act - self.low) / (self.high - self.low) - 1.0
        return ReplayBufferSamples(obs, scaled, nxt, term.float().unsqueeze(1), rew.unsqueeze(1), None)


class SpacesOnlyEnv(gym.Env):
    """Gives SB3 the spaces it needs at construction; never stepped (our loop owns the real env).

    The spaces are copies, so SB3's ``action_space.seed(seed)`` cannot touch the real env's RNG. Public so that
    code which builds an SB3 ``SAC`` the way the agents do (the speed benchmark, a test) can use it.

    Args:
        observation_space: the real env's observation space.
        action_space: the action space SAC acts in.
    """

    def __init__(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        self.observation_space = copy.deepcopy(observation_space)
        self.action_space = copy.deepcopy(action_space)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        raise RuntimeError("this env only carries spaces for stable-baselines3; the agent loop steps the real env")

    def step(self, action: Any) -> Any:
        raise RuntimeError("this env only carries spaces for stable-baselines3; the agent loop steps the real env")


_SpacesOnlyEnv = SpacesOnlyEnv  # the former private name, so that anything pickled under it still loads


# ---------------------------------------------------------------------------------------------- agents
class _SACLoop(AgentLoop):
    """What :class:`MBPO` and :class:`SAC` share (see the module docstring); the loop is :meth:`AgentLoop.train`."""

    uses_model = False

    def __init__(self, cfg: AgentConfig, run: RunDir | None = None, task: TaskConfig | None = None,
                 progress: bool | None = None) -> None:
        self._setup(cfg, run, task, progress)  # also the loop state (all of it is checkpointed)
        space = self.env.action_space
        if not isinstance(space, gym.spaces.Box) or not np.all(np.isfinite(space.low) & np.isfinite(space.high)):
            raise ValueError(f"action_space: {type(self).__name__} needs a bounded Box, got {space!r}")
        obs_dim = int(np.prod(self.env.observation_space.shape))
        act_dim = int(np.prod(space.shape))
        self.action_low = torch.as_tensor(space.low, dtype=torch.float32, device=self.device)
        self.action_high = torch.as_tensor(space.high, dtype=torch.float32, device=self.device)

        # SAC from stable-baselines3; we own the loop, so its buffer is replaced by a MixedSampler below
        s = cfg.sac
        self.sac = SB3SAC(
            "MlpPolicy", SpacesOnlyEnv(self.env.observation_space, space), learning_rate=s.learning_rate,
            buffer_size=1, batch_size=s.batch_size, tau=s.tau, gamma=s.gamma, target_entropy=s.target_entropy,
            policy_kwargs={"net_arch": list(s.net_arch)}, seed=cfg.seed, device=self.device,
        )
        # train() records into it; no output formats and no folder (SB3's configure() makes a /tmp/SB3-<date>)
        self.sac.set_logger(Logger(folder=None, output_formats=[]))
        # SB3's SAC.train less its wasted critic gradients, fused Adam (same updates up to rounding; tested)
        self.sac_update = LeanSACUpdate(self.sac, fused_adam=True)

        self.model: GaussianEnsemble | None = None
        self.trainer: DynamicsTrainer | None = None
        self.model_env: ModelEnv | None = None
        self.model_buffer: ReplayBuffer | None = None
        self.rollout_k = 0  # current rollout length k (MBPO)
        if self.uses_model:
            self.model = build_model(cfg, obs_dim, act_dim, learn_reward=True, device=self.device)
            self.trainer = build_trainer(cfg, self.model)
            gen = torch.Generator(device=self.device).manual_seed(cfg.seed + 7)
            self.model_env = ModelEnv(self.model, self.task.termination_fn(), None, "ts1", gen,
                                      precision=cfg.model.inference_precision)
            self.rollout_k = rollout_length(cfg.mbpo.rollout_schedule, 0)
            self.model_buffer = ReplayBuffer(model_buffer_capacity(cfg, self.rollout_k), obs_dim, act_dim,
                                             rng=np.random.default_rng(cfg.seed + 1))
            capacity, real_ratio, self.updates_per_step = cfg.steps, cfg.mbpo.real_ratio, cfg.mbpo.updates_per_step
        else:
            capacity, real_ratio, self.updates_per_step = min(cfg.steps, s.buffer_size), 1.0, s.updates_per_step
        self.buffer = ReplayBuffer(capacity, obs_dim, act_dim, rng=np.random.default_rng(cfg.seed))
        self.sampler = MixedSampler(self.buffer, self.model_buffer, real_ratio, space.low, space.high,
                                    self.sac.device)
        self.sac.replay_buffer = self.sampler  # type: ignore[assignment]

    # ------------------------------------------------------------------ loop hooks
    def _act(self, obs: np.ndarray) -> np.ndarray:
        return self.sac.predict(obs, deterministic=False)[0]

    def _learn(self) -> None:
        if self.step < self.cfg.loop.init_steps:
            return
        if self.uses_model and self._retrain_due():
            self._retrain(self._elapsed())
        if self.trainer is not None and self.trainer.fits > 0:
            self._branch_rollouts()
        self.sac_update.train(gradient_steps=self.updates_per_step, batch_size=self.cfg.sac.batch_size)

    def _plot_title(self) -> str:
        label = f" objective={self.cfg.objective.label()}" if self.uses_model else ""
        return f"{self.kind.upper()} {self.task.id}{label} seed={self.cfg.seed}"

    def _eval_act(self, obs: np.ndarray) -> np.ndarray:
        return self.sac.predict(obs, deterministic=True)[0]

    def _rollout_policy(self, obs: torch.Tensor) -> torch.Tensor:
        """(B, O) model states -> (B, A) env-scale actions from the stochastic SAC actor, batched."""
        scaled = self.sac.actor(obs.to(self.sac.device, torch.float32), deterministic=False)
        return (self.action_low + 0.5 * (scaled.to(self.device) + 1.0) * (self.action_high - self.action_low))

    def _branch_rollouts(self) -> None:
        """``rollouts_per_step`` k-step model rollouts from real states into the model buffer."""
        assert self.model_env is not None and self.model_buffer is not None
        m = self.cfg.mbpo
        k = rollout_length(m.rollout_schedule, self.step // m.epoch_length)
        if k != self.rollout_k:
            self._resize_model_buffer(model_buffer_capacity(self.cfg, k))
            self.rollout_k = k
        start = self.buffer.sample(m.rollouts_per_step, self.device).obs
        rollout = self.model_env.rollout_policy(start, self._rollout_policy, k)
        data = rollout.to_transitions()
        self.model_buffer.add_batch(data.obs, data.actions, data.rewards, data.next_obs, data.terminated)

    def _resize_model_buffer(self, capacity: int) -> None:
        """A model buffer of ``capacity`` with the newest stored rollouts (and the same generator)."""
        old = self.model_buffer
        assert old is not None
        new = ReplayBuffer(capacity, old.obs_dim, old.action_dim, rng=old.rng)
        if len(old):
            d = old.transitions()
            new.add_batch(d.obs, d.actions, d.rewards, d.next_obs, d.terminated)
        self.model_buffer = self.sampler.model = new

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything but the buffers (saved next to it as ``buffer-<step>.npz`` / ``model_buffer-<step>.npz``)."""
        sac = self.sac
        state: dict[str, Any] = {
            "step": self.step,
            "episode": self.episode,
            "wall_time": self.wall_time,
            "last_eval": self.last_eval,
            "buffer_sizes": self._buffer_sizes(),
            "sac_policy": sac.policy.state_dict(),
            "sac_actor_optimizer": sac.actor.optimizer.state_dict(),
            "sac_critic_optimizer": sac.critic.optimizer.state_dict(),
            "sac_log_ent_coef": None if sac.log_ent_coef is None else sac.log_ent_coef.detach().cpu().clone(),
            "sac_ent_coef_optimizer": None if sac.ent_coef_optimizer is None else sac.ent_coef_optimizer.state_dict(),
            "sac_n_updates": sac._n_updates,
            "env_rng": env_rng_state(self.env),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None,
            "numpy_rng": np.random.get_state(),
            "python_rng": random.getstate(),
        }
        if self.uses_model:
            assert self.model is not None and self.trainer is not None and self.model_env is not None
            state.update({
                "trained_upto": self.trained_upto,
                "rollout_k": self.rollout_k,
                **self._model_state(),
                "model_env_generator": self.model_env.generator.get_state(),
            })
        return state

    def _buffers(self) -> dict[str, ReplayBuffer]:
        out = {"buffer": self.buffer}
        if self.model_buffer is not None:
            out["model_buffer"] = self.model_buffer
        return out

    def _buffer_sizes(self) -> dict[str, tuple[int, int]]:
        return {name: (len(b), b.position) for name, b in self._buffers().items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        sac = self.sac
        self.step = int(state["step"])
        self.episode = int(state["episode"])
        self.wall_time = float(state["wall_time"])
        self.last_eval = float(state["last_eval"])
        sac.policy.load_state_dict(state["sac_policy"])
        sac.actor.optimizer.load_state_dict(state["sac_actor_optimizer"])
        sac.critic.optimizer.load_state_dict(state["sac_critic_optimizer"])
        if sac.log_ent_coef is not None:
            with torch.no_grad():  # in place: the entropy optimizer holds this very tensor
                sac.log_ent_coef.copy_(state["sac_log_ent_coef"].to(sac.device))
            sac.ent_coef_optimizer.load_state_dict(state["sac_ent_coef_optimizer"])  # type: ignore[union-attr]
        sac._n_updates = int(state["sac_n_updates"])
        set_env_rng_state(self.env, state["env_rng"])
        torch.set_rng_state(state["torch_rng"])
        if state.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        np.random.set_state(state["numpy_rng"])
        random.setstate(state["python_rng"])
        if self.uses_model:
            assert self.model is not None and self.trainer is not None and self.model_env is not None
            self.trained_upto = int(state["trained_upto"])
            self.rollout_k = int(state["rollout_k"])
            self._load_model_state(state)
            self.model_env.generator.set_state(state["model_env_generator"])

    def _restore_buffers(self, run: RunDir, state: dict[str, Any]) -> None:
        self.buffer = self.sampler.real = run.load_buffer(state, "buffer")
        if self.uses_model:
            self.model_buffer = self.sampler.model = run.load_buffer(state, "model_buffer")
        if self._buffer_sizes() != state["buffer_sizes"]:
            raise CheckpointError(
                f"resume: the buffers in {run.ckpt_dir} (size, position) {self._buffer_sizes()} do not match "
                f"the checkpoint's {state['buffer_sizes']}; the run was killed while saving"
            )


class MBPO(_SACLoop):
    """An MBPO run: SAC on k-step model rollouts branched from real states.

    Args:
        cfg: the resolved agent config (``kind == "mbpo"``).
        run: where metrics and checkpoints go (None: nothing is written).
        task: the task (default: ``load_task(cfg.env)``).
        progress: show a progress bar (default: when stderr is a terminal).
    """

    kind = "mbpo"
    uses_model = True


class SACAgent(_SACLoop):
    """A model-free SAC run with MBPO's loop, logging and checkpoints (model columns stay empty).

    Args:
        cfg: the resolved agent config (``kind == "sac"``).
        run: where metrics and checkpoints go (None: nothing is written).
        task: the task (default: ``load_task(cfg.env)``).
        progress: show a progress bar (default: when stderr is a terminal).
    """

    kind = "sac"
    uses_model = False
