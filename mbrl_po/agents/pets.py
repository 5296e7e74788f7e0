"""PETS: plan every action with CEM/iCEM/MPPI on the learned ensemble; retrain it every K steps.

The loop, top to bottom (``PETS.train``):

1. ``loop.init_steps`` random actions, then one action per step from the MPC agent.
2. Every ``loop.train_every`` steps (first at ``init_steps``): score the current model on the transitions it
   has not seen yet (held-out NLL/MSE and H-step open-loop error on fresh real data), then refit it on the
   whole buffer with the configured objective (``nll``, ``mse`` or ``pg``; a learned U keeps learning across
   rounds because the trainer and its bilevel solver persist).
3. Every ``loop.eval_every`` steps: evaluation episodes on a separately seeded env.
4. At episode ends, after ``loop.checkpoint_every`` steps since the last one: a checkpoint. ``--resume``
   restarts from it with the buffer, the model, the trainer and every RNG as they were.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mbrl_po.agents.common import (
    EVAL_SEED_OFFSET,
    AgentLoop,
    RunDir,
    build_model,
    build_trainer,
    env_rng_state,
    set_env_rng_state,
)
from mbrl_po.config import AgentConfig
from mbrl_po.data.replay_buffer import ReplayBuffer
from mbrl_po.envs.task import TaskConfig
from mbrl_po.models.model_env import ModelEnv
from mbrl_po.planning import MPCAgent, make_optimizer
from mbrl_po.planning.evaluator import TrajectoryEvaluator

__all__ = ["EVAL_SEED_OFFSET", "PETS"]


class PETS(AgentLoop):
    """A PETS run (the loop itself is :meth:`AgentLoop.train`).

    Args:
        cfg: the resolved agent config (``kind == "pets"``).
        run: where metrics and checkpoints go (None: nothing is written).
        task: the task (default: ``load_task(cfg.env)``).
        progress: show a progress bar (default: when stderr is a terminal).
    """

    kind = "pets"

    def __init__(self, cfg: AgentConfig, run: RunDir | None = None, task: TaskConfig | None = None,
                 progress: bool | None = None) -> None:
        self._setup(cfg, run, task, progress)  # also the loop state (all of it is checkpointed)
        torch.manual_seed(cfg.seed)  # model initialisation and anything else drawing from the global RNG
        obs_dim = int(np.prod(self.env.observation_space.shape))
        act_dim = int(np.prod(self.env.action_space.shape))
        low = torch.as_tensor(self.env.action_space.low, dtype=torch.float32, device=self.device)
        high = torch.as_tensor(self.env.action_space.high, dtype=torch.float32, device=self.device)

        reward_fn = self.task.planning_reward_fn() if cfg.planner.reward == "task" else None
        self.model = build_model(cfg, obs_dim, act_dim, learn_reward=reward_fn is None, device=self.device)
        self.trainer = build_trainer(cfg, self.model)
        self.buffer = ReplayBuffer(cfg.steps, obs_dim, act_dim, rng=np.random.default_rng(cfg.seed))
        gen = torch.Generator(device=self.device).manual_seed(cfg.seed + 7)
        self.model_env = ModelEnv(self.model, self.task.termination_fn(), reward_fn, cfg.planner.propagation, gen,
                                  precision=cfg.model.inference_precision)
        evaluator = TrajectoryEvaluator(self.model_env, cfg.planner.particles)
        p = cfg.planner
        opt_kwargs = p.optimizer_kwargs()  # the planner's fields and options (validated when cfg was built)
        optimizer = make_optimizer(p.optimizer, p.horizon, low, high, **opt_kwargs)
        self.mpc = MPCAgent(optimizer, evaluator, device=self.device, seed=cfg.seed + 11)
        self.eval_mpc = MPCAgent(
            make_optimizer(p.optimizer, p.horizon, low, high, **opt_kwargs), evaluator, device=self.device
        )

    # ------------------------------------------------------------------ loop hooks
    def _act(self, obs: np.ndarray) -> np.ndarray:
        return self.mpc.act(obs)

    def _learn(self) -> None:
        if self._retrain_due():
            self._retrain(self._elapsed())

    def _eval_act(self, obs: np.ndarray) -> np.ndarray:
        return self.eval_mpc.act(obs)

    def _reset_env(self) -> np.ndarray:
        obs = super()._reset_env()
        self.mpc.reset()
        return obs

    def _reset_eval_agent(self) -> None:
        self.eval_mpc.reset()
        self.eval_mpc.generator.manual_seed(self.cfg.seed + 13 + self.step)

    def _plot_title(self) -> str:
        return f"PETS {self.task.id} objective={self.cfg.objective.label()} seed={self.cfg.seed}"

# ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "episode": self.episode,
            "trained_upto": self.trained_upto,
            "wall_time": self.wall_time,
            "last_eval": self.last_eval,
            **self._model_state(),
            "mpc_generator": self.mpc.generator.get_state(),
            "model_env_generator": self.model_env.generator.get_state(),
            "env_rng": env_rng_state(self.env),
            "torch_rng": torch.get_rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])
        self.episode = int(state["episode"])
        self.trained_upto = int(state["trained_upto"])
        self.wall_time = float(state["wall_time"])
        self.last_eval = float(state["last_eval"])
        self._load_model_state(state)
        self.mpc.generator.set_state(state["mpc_generator"])
        self.model_env.generator.set_state(state["model_env_generator"])
        set_env_rng_state(self.env, state["env_rng"])
        torch.set_rng_state(state["torch_rng"])
