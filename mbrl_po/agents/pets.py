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

import time
from typing import Any

import numpy as np
import torch

from mbrl_po.agents.common import (
    RunDir,
    build_model,
    build_trainer,
    env_rng_state,
    model_metrics,
    progress_bar,
    resolve_device,
    run_episodes,
    set_env_rng_state,
)
from mbrl_po.config import AgentConfig
from mbrl_po.data.replay_buffer import ReplayBuffer
from mbrl_po.envs.task import TaskConfig, load_task, make_env
from mbrl_po.models.model_env import ModelEnv
from mbrl_po.planning import MPCAgent, make_optimizer
from mbrl_po.planning.evaluator import TrajectoryEvaluator

EVAL_SEED_OFFSET = 10_000


class PETS:
    """A PETS run.

    Args:
        cfg: the resolved agent config (``kind == "pets"``).
        run: where metrics and checkpoints go (None: nothing is written).
        task: the task (default: ``load_task(cfg.env)``).
        progress: show a progress bar (default: when stderr is a terminal).
    """

    def __init__(self, cfg: AgentConfig, run: RunDir | None = None, task: TaskConfig | None = None,
                 progress: bool | None = None) -> None:
        if cfg.kind != "pets":
            raise ValueError(f"kind: PETS needs kind='pets', got {cfg.kind!r}")
        self.cfg = cfg
        self.run = run
        self.progress = progress
        self.task = task or load_task(cfg.env)
        self.device = resolve_device(cfg.device)
        torch.manual_seed(cfg.seed)  # model initialisation and anything else drawing from the global RNG
        self.env = make_env(self.task, seed=cfg.seed)
        self.eval_env = make_env(self.task, seed=cfg.seed + EVAL_SEED_OFFSET)
        self.env.action_space.seed(cfg.seed)
        obs_dim = int(np.prod(self.env.observation_space.shape))
        act_dim = int(np.prod(self.env.action_space.shape))
        low = torch.as_tensor(self.env.action_space.low, dtype=torch.float32, device=self.device)
        high = torch.as_tensor(self.env.action_space.high, dtype=torch.float32, device=self.device)

        reward_fn = self.task.planning_reward_fn() if cfg.planner.reward == "task" else None
        self.model = build_model(cfg, obs_dim, act_dim, learn_reward=reward_fn is None, device=self.device)
        self.trainer = build_trainer(cfg, self.model)
        self.buffer = ReplayBuffer(cfg.steps, obs_dim, act_dim, rng=np.random.default_rng(cfg.seed))
        gen = torch.Generator(device=self.device).manual_seed(cfg.seed + 7)
        self.model_env = ModelEnv(self.model, self.task.termination_fn(), reward_fn, cfg.planner.propagation, gen)
        evaluator = TrajectoryEvaluator(self.model_env, cfg.planner.particles)
        p = cfg.planner
        opt_kwargs: dict[str, Any] = {"population": p.population, "iterations": p.iterations}
        if p.optimizer in ("cem", "icem"):
            opt_kwargs.update(elite_fraction=p.elite_fraction, alpha=p.alpha)
        optimizer = make_optimizer(p.optimizer, p.horizon, low, high, **opt_kwargs)
        self.mpc = MPCAgent(optimizer, evaluator, device=self.device, seed=cfg.seed + 11)
        self.eval_mpc = MPCAgent(
            make_optimizer(p.optimizer, p.horizon, low, high, **opt_kwargs), evaluator, device=self.device
        )
        # loop state (all of it is checkpointed)
        self.step = 0
        self.episode = 0
        self.trained_upto = 0  # buffer rows the model has been trained on
        self.wall_time = 0.0
        self.last_eval = float("nan")

    # ------------------------------------------------------------------ the loop
    def train(self) -> dict[str, float]:
        cfg, loop = self.cfg, self.cfg.loop
        obs = self._reset_env()
        ep_return, ep_len = 0.0, 0
        last_ckpt = self.step
        t0 = time.perf_counter() - self.wall_time
        bar = progress_bar(cfg.steps, f"pets {self.task.name}", self.step, self.progress)
        while self.step < cfg.steps:
            if self.step < loop.init_steps:
                action = self.env.action_space.sample()
            else:
                action = self.mpc.act(obs)
            next_obs, reward, terminated, truncated, _ = self.env.step(action)
            self.buffer.add(obs, action, reward, next_obs, terminated, truncated)
            self.step += 1
            ep_return += float(reward)
            ep_len += 1
            bar.update(1)

            if self.step >= loop.init_steps and (self.step - loop.init_steps) % loop.train_every == 0:
                self._retrain(time.perf_counter() - t0)
            if self.step % loop.eval_every == 0:
                self.last_eval = run_episodes(self.eval_env, self.eval_mpc.act, loop.eval_episodes,
                                              seed=cfg.seed + EVAL_SEED_OFFSET + self.step,
                                              on_reset=self._reset_eval_agent)
                self._log(eval_return=self.last_eval, wall_time=time.perf_counter() - t0)
                bar.set_postfix(eval=f"{self.last_eval:.1f}")

            if terminated or truncated:
                self.episode += 1
                self._log(episode=self.episode, episode_return=ep_return, episode_length=ep_len,
                          wall_time=time.perf_counter() - t0)
                ep_return, ep_len = 0.0, 0
                if self.step - last_ckpt >= loop.checkpoint_every or self.step >= cfg.steps:
                    self.wall_time = time.perf_counter() - t0
                    self.save_checkpoint()
                    last_ckpt = self.step
                obs = self._reset_env()
            else:
                obs = next_obs
        bar.close()
        self.wall_time = time.perf_counter() - t0
        self.save_checkpoint()
        if self.run is not None:
            self.run.plot(f"PETS {self.task.id} objective={cfg.objective.label()} seed={cfg.seed}")
        return {"env_steps": float(self.step), "eval_return": self.last_eval, "wall_time": self.wall_time}

    # ------------------------------------------------------------------ helpers
    def _reset_env(self) -> np.ndarray:
        obs, _ = self.env.reset()
        self.mpc.reset()
        return obs

    def _reset_eval_agent(self) -> None:
        self.eval_mpc.reset()
        self.eval_mpc.generator.manual_seed(self.cfg.seed + 13 + self.step)

    def _retrain(self, wall: float) -> None:
        data = self.buffer.transitions(device=self.device)
        row: dict[str, Any] = {}
        if self.trainer.fits > 0 and len(data) > self.trained_upto:
            fresh = data.index(torch.arange(self.trained_upto, len(data), device=self.device))
            ends = (data.terminated.cpu().numpy() | self.buffer.truncated())[self.trained_upto:]
            row.update(model_metrics(self.model, fresh, ends, self.cfg.loop.rollout_error_horizon))
        report = self.trainer.fit(data)
        self.trained_upto = len(data)
        row["model_fit_s"] = report.wall_time
        if report.outer_steps:
            row["u"] = report.outer_steps[-1].get("u", report.outer_steps[-1].get("u_mean_diag"))
        self._log(wall_time=wall, **row)

    def _log(self, **row: Any) -> None:
        if self.run is not None:
            self.run.log({"env_step": self.step, **row})

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "episode": self.episode,
            "trained_upto": self.trained_upto,
            "wall_time": self.wall_time,
            "last_eval": self.last_eval,
            "model": self.model.state_dict(),
            "trainer": self.trainer.state_dict(),
            "objective_u": getattr(getattr(self.trainer.objective, "reward_matrix", None), "_u", None),
            "mpc_generator": self.mpc.generator.get_state(),
            "model_env_generator": self.model_env.generator.get_state(),
            "env_rng": env_rng_state(self.env),
            "torch_rng": torch.get_rng_state(),
        }

    def save_checkpoint(self) -> None:
        if self.run is not None:
            self.run.save_checkpoint(self.state_dict(), {"buffer": self.buffer})

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])
        self.episode = int(state["episode"])
        self.trained_upto = int(state["trained_upto"])
        self.wall_time = float(state["wall_time"])
        self.last_eval = float(state["last_eval"])
        self.model.load_state_dict(state["model"])
        self.trainer.load_state_dict(state["trainer"])
        rm = getattr(self.trainer.objective, "reward_matrix", None)
        if rm is not None and state.get("objective_u") is not None:
            rm._u = state["objective_u"].to(self.device)
        self.mpc.generator.set_state(state["mpc_generator"])
        self.model_env.generator.set_state(state["model_env_generator"])
        set_env_rng_state(self.env, state["env_rng"])
        torch.set_rng_state(state["torch_rng"])

    @classmethod
    def resume(cls, run: RunDir, progress: bool | None = None) -> PETS:
        """Rebuild a run from its directory and last checkpoint (a run with no checkpoint starts over)."""
        agent = cls(run.config(), run, progress=progress)
        state = run.load_checkpoint()
        if state is None:
            run.truncate_metrics(-1)
            return agent
        agent.load_state_dict(state)
        agent.buffer = run.load_buffer(state, "buffer")
        run.truncate_metrics(agent.step)
        return agent
