#!/usr/bin/env python
"""Speed peer: mbrl-lib 0.2.0 (PyPI ``mbrl``) on the workloads that mbrl-po is timed on.

Run it with the interpreter of the separate venv made by ``setup_mbrl_lib.sh`` (mbrl-lib is not a
dependency of mbrl-po and never imported by it)::

    /work/venv-mbrllib/bin/python benchmarks/peers/mbrl_lib.py train-epoch --device cpu
    /work/venv-mbrllib/bin/python benchmarks/peers/mbrl_lib.py plan --rungs 64x5x10x3
    /work/venv-mbrllib/bin/python benchmarks/peers/mbrl_lib.py mbpo-step
    /work/venv-mbrllib/bin/python benchmarks/peers/mbrl_lib.py pets-ip --max-seconds 900
    /work/venv-mbrllib/bin/python benchmarks/peers/mbrl_lib.py combine a.json b.json --out all.json

Workloads (each one subcommand; see ``--help`` of each):

* ``train-epoch``: one NLL training epoch of ``mbrl.models.ModelTrainer`` on HalfCheetah-v5
  random-action transitions (default 100k), ``GaussianMLP`` ensemble of 7, 4 x 200 SiLU, batch
  256, normalised inputs, delta + reward targets. Times the train pass alone
  (``train(evaluate=False)``), the epoch as mbrl-lib runs it (train pass + validation pass +
  best-weight bookkeeping, ``train(evaluate=True)``) and the validation pass alone.
* ``plan``: CEM latency per action of ``TrajectoryOptimizerAgent`` (built by
  ``create_trajectory_optim_agent_for_model``) over a ``ModelEnv`` with TS-1 propagation
  (``random_model``, 7 members, 5 elites), for a ladder of population x particles x horizon x
  iterations rungs, on InvertedPendulum-v5 (obs 4, act 1) and HalfCheetah-v5 (obs 17, act 6).
* ``mbpo-step``: per-env-step cost of ``mbrl.algorithms.mbpo.train`` itself on Hopper-v5, split
  into SAC updates, model rollouts (amortised), model retraining (amortised) and the env step.
* ``pets-ip``: wall time of ``mbrl.algorithms.pets.train`` on InvertedPendulum-v5 until an episode
  return reaches a target (default 900), under a wall-clock cap.

Only mbrl-lib's public API is used. The sole adaptations to the current stack (gymnasium 1.x,
hydra-core 1.3, torch 2.x) are ``_recursive_: False`` on the configs handed to
``hydra.utils.instantiate`` (hydra >= 1.1 instantiates nested ``_target_`` nodes eagerly, mbrl-lib
was written for hydra 1.0), and timers wrapped around mbrl-lib functions (instrumentation only,
no change of behaviour). Every log line goes to stderr; the last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

# MuJoCo 4 imports its renderer eagerly; nothing here renders, and on GPU hosts without EGL
# libraries MUJOCO_GL=egl fails at import. "disable" is harmless on a desktop too.
os.environ.setdefault("MUJOCO_GL", "disable")

import gymnasium as gym  # noqa: E402
import mbrl.algorithms.mbpo as mbrl_mbpo  # noqa: E402
import mbrl.algorithms.pets as mbrl_pets  # noqa: E402
import mbrl.env.reward_fns as mbrl_reward_fns  # noqa: E402
import mbrl.env.termination_fns as mbrl_term_fns  # noqa: E402
import mbrl.models as mbrl_models  # noqa: E402
import mbrl.planning as mbrl_planning  # noqa: E402
import mbrl.util as mbrl_util  # noqa: E402
import mbrl.util.common as mbrl_common  # noqa: E402
import numpy as np  # noqa: E402
import omegaconf  # noqa: E402
import torch  # noqa: E402
from mbrl.third_party.pytorch_sac_pranz24.sac import SAC as MbrlSAC  # noqa: E402

warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", category=UserWarning)

DEFAULT_RUNGS = ("64x5x10x3", "100x10x15x5", "350x20x15x5", "400x20x30x5")
PLAN_ENVS = {
    # name: (termination fn, reward fn or None for the learned reward head)
    "InvertedPendulum-v5": (mbrl_term_fns.inverted_pendulum, mbrl_reward_fns.inverted_pendulum),
    "HalfCheetah-v5": (mbrl_term_fns.no_termination, None),
}
DIM_ALIASES = {"ip": "InvertedPendulum-v5", "hc": "HalfCheetah-v5"}


def log(msg: str) -> None:
    print(f"[mbrl_lib peer] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def stats(values: Sequence[float], scale: float = 1.0, digits: int = 4) -> dict[str, Any]:
    """Median and spread of a list of timings (scaled, e.g. 1e3 for ms)."""
    a = np.asarray(values, dtype=float) * scale
    if a.size == 0:
        return {"n": 0}
    r = lambda x: round(float(x), digits)  # noqa: E731
    return {
        "n": int(a.size),
        "median": r(np.median(a)),
        "mean": r(a.mean()),
        "min": r(a.min()),
        "max": r(a.max()),
        "p25": r(np.percentile(a, 25)),
        "p75": r(np.percentile(a, 75)),
        "std": r(a.std(ddof=1) if a.size > 1 else 0.0),
        "values": [r(x) for x in a],
    }


def loadavg() -> dict[str, Any]:
    """CPU contention right now: os.getloadavg() and, where the kernel has it, the PSI
    "some" CPU pressure (% of time runnable tasks waited for a CPU, 10 s / 60 s averages)."""
    out: dict[str, Any] = {}
    try:
        out["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not on every platform
        out["loadavg"] = None
    try:
        with open("/proc/pressure/cpu") as f:
            some = f.readline().split()
        vals = dict(kv.split("=") for kv in some[1:])
        out["cpu_pressure_some_avg10_avg60"] = [float(vals["avg10"]), float(vals["avg60"])]
    except (OSError, KeyError, ValueError):
        pass
    return out


def _version(dist: str) -> str | None:
    try:
        import importlib.metadata as md

        return md.version(dist)
    except Exception:  # pragma: no cover - informational only
        return None


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def machine_info(device: str) -> dict[str, Any]:
    cuda = torch.cuda.is_available()
    return {
        "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "gpu": torch.cuda.get_device_name(0) if cuda and device.startswith("cuda") else None,
        "versions": {
            "mbrl": _version("mbrl"),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "gymnasium": gym.__version__,
            "mujoco": _version("mujoco"),
            "hydra-core": _version("hydra-core"),
            "omegaconf": omegaconf.__version__,
        },
    }


def seed_all(seed: int) -> None:
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_env(name: str, seed: int, max_episode_steps: int | None = None) -> gym.Env:
    env = gym.make(name, max_episode_steps=max_episode_steps) if max_episode_steps else gym.make(name)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    env.observation_space.seed(seed)
    return env


def gaussian_mlp(
    in_size: int, out_size: int, device: str, ensemble: int, hid: int, layers: int, propagation: str | None
) -> Any:
    return mbrl_models.GaussianMLP(
        in_size=in_size,
        out_size=out_size,
        device=device,
        num_layers=layers,
        ensemble_size=ensemble,
        hid_size=hid,
        deterministic=False,
        propagation_method=propagation,
        learn_logvar_bounds=False,
        activation_fn_cfg={"_target_": "torch.nn.SiLU"},
    )


def random_buffer(env: gym.Env, n: int, seed: int) -> Any:
    """n random-action transitions collected with mbrl-lib's RandomAgent."""
    buf = mbrl_util.ReplayBuffer(
        n, env.observation_space.shape, env.action_space.shape, rng=np.random.default_rng(seed)
    )
    mbrl_common.rollout_agent_trajectories(env, n, mbrl_planning.RandomAgent(env), {}, replay_buffer=buf)
    return buf


def synthetic_buffer(obs_dim: int, act_dim: int, n: int, seed: int) -> Any:
    rng = np.random.default_rng(seed)
    buf = mbrl_util.ReplayBuffer(n, (obs_dim,), (act_dim,), rng=np.random.default_rng(seed))
    obs = rng.standard_normal((n, obs_dim)).astype(np.float32)
    act = rng.uniform(-1, 1, (n, act_dim)).astype(np.float32)
    nxt = (obs + 0.1 * rng.standard_normal((n, obs_dim))).astype(np.float32)
    rew = rng.standard_normal(n).astype(np.float32)
    zeros = np.zeros(n, dtype=bool)
    buf.add_batch(obs, act, nxt, rew, zeros, zeros)
    return buf


# ------------------------------------------------------------------------------------------------
# train-epoch
# ------------------------------------------------------------------------------------------------
def run_train_epoch(a: argparse.Namespace) -> dict[str, Any]:
    seed_all(a.seed)
    env = make_env(a.env, a.seed)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    t0 = time.perf_counter()
    if a.data == "collect":
        buf = random_buffer(env, a.transitions, a.seed)
    else:
        buf = synthetic_buffer(obs_dim, act_dim, a.transitions, a.seed)
    collect_s = time.perf_counter() - t0
    log(f"train-epoch: {buf.num_stored} {a.data} transitions ({obs_dim}+{act_dim} dims) in {collect_s:.1f}s")

    net = gaussian_mlp(obs_dim + act_dim, obs_dim + 1, a.device, a.ensemble, a.hid, a.layers, None)
    dyn = mbrl_models.OneDTransitionRewardModel(
        net,
        target_is_delta=True,
        normalize=True,
        normalize_double_precision=True,
        learned_rewards=True,
        num_elites=a.elites,
    )
    dyn.update_normalizer(buf.get_all())
    train_it, val_it = mbrl_common.get_basic_buffer_iterators(
        buf,
        a.batch_size,
        a.val_ratio,
        ensemble_size=a.ensemble,
        shuffle_each_epoch=True,
        bootstrap_permutes=False,
    )
    trainer = mbrl_models.ModelTrainer(dyn, optim_lr=a.lr, weight_decay=a.wd)
    n_batches = len(train_it)
    n_train = int(train_it.num_stored)
    n_val = int(val_it.num_stored) if val_it is not None else 0

    stamps: list[float] = []
    cpu_stamps: list[float] = []

    def on_epoch(*_args: Any) -> None:
        sync(a.device)
        stamps.append(time.perf_counter())
        cpu_stamps.append(time.process_time())

    # warm-up epoch (allocations, first-touch), untimed
    trainer.train(train_it, dataset_val=val_it, num_epochs=a.warmup, evaluate=False, silent=True)

    # (1) train pass only: ModelTrainer.train(evaluate=False)
    load0 = loadavg()
    stamps.clear()
    cpu_stamps.clear()
    sync(a.device)
    t_start, c_start = time.perf_counter(), time.process_time()
    losses, _ = trainer.train(
        train_it, dataset_val=val_it, num_epochs=a.repeats, evaluate=False, callback=on_epoch, silent=True
    )
    train_only = np.diff([t_start] + stamps)
    train_only_cpu = np.diff([c_start] + cpu_stamps)

    # (2) the epoch as mbrl-lib runs it: train pass + validation pass + best-weights bookkeeping.
    # train(evaluate=True) first evaluates once before epoch 0, so one extra epoch is run and
    # the first interval (which contains that initial evaluation) is dropped.
    with_val: np.ndarray = np.zeros(0)
    with_val_cpu: np.ndarray = np.zeros(0)
    val_only: list[float] = []
    if val_it is not None and not a.skip_val:
        stamps.clear()
        cpu_stamps.clear()
        trainer.train(
            train_it,
            dataset_val=val_it,
            num_epochs=a.repeats + 1,
            evaluate=True,
            patience=None,
            callback=on_epoch,
            silent=True,
        )
        with_val = np.diff(stamps)
        with_val_cpu = np.diff(cpu_stamps)
        # (3) validation pass alone: ModelTrainer.evaluate over the validation split
        for _ in range(a.repeats):
            sync(a.device)
            t = time.perf_counter()
            trainer.evaluate(val_it)
            sync(a.device)
            val_only.append(time.perf_counter() - t)
    load1 = loadavg()
    med = float(np.median(train_only))
    return {
        "workload": "train-epoch",
        "env_dims": a.env,
        "obs_dim": obs_dim,
        "act_dim": act_dim,
        "data": (
            "random-action transitions collected with mbrl.planning.RandomAgent"
            if a.data == "collect"
            else "synthetic random data of the env's dims"
        ),
        "transitions": int(buf.num_stored),
        "collect_s": round(collect_s, 2),
        "train_rows": n_train,
        "val_rows": n_val,
        "val_ratio": a.val_ratio,
        "batches_per_epoch": n_batches,
        "model": {
            "class": "OneDTransitionRewardModel(GaussianMLP)",
            "ensemble": a.ensemble,
            "elites": a.elites,
            "hidden": [a.hid] * a.layers,
            "activation": "SiLU",
            "inputs": "z-scored (double precision), [obs, act]",
            "targets": "[next_obs - obs, reward]",
            "loss": "Gaussian NLL (mbrl-lib form)",
            "bootstrap": "with replacement, one index set per member",
            "batch_size": a.batch_size,
            "lr": a.lr,
            "weight_decay": a.wd,
        },
        "repeats": a.repeats,
        "warmup_epochs": a.warmup,
        "epoch_train_pass_s": stats(train_only),
        "epoch_train_pass_process_cpu_s": stats(train_only_cpu),
        "epoch_with_validation_s": stats(with_val) if with_val.size else None,
        "epoch_with_validation_process_cpu_s": stats(with_val_cpu) if with_val.size else None,
        "validation_pass_s": stats(val_only) if val_only else None,
        "train_pass_ms_per_batch_median": round(1e3 * med / max(n_batches, 1), 3),
        "train_pass_s_per_100k_rows_median": round(med * 1e5 / max(n_train, 1), 4),
        "train_loss_first_last": [round(float(losses[0]), 4), round(float(losses[-1]), 4)],
        "notes": (
            "epoch_train_pass_s = one bootstrap pass over the train split "
            "(ModelTrainer.train(evaluate=False)); epoch_with_validation_s = an epoch as "
            "mbrl-lib runs it by default (train pass + ModelTrainer.evaluate on the "
            "validation split + deep copy of the state dict when a member improves)"
        ),
        "load_before": load0,
        "load_after": load1,
    }


# ------------------------------------------------------------------------------------------------
# plan
# ------------------------------------------------------------------------------------------------
def parse_rung(text: str) -> tuple[int, int, int, int]:
    parts = text.lower().replace("*", "x").split("x")
    if len(parts) != 4:
        raise argparse.ArgumentTypeError(f"rung {text!r}: want POPxPARTICLESxHORIZONxITERS")
    pop, part, hor, it = (int(p) for p in parts)
    return pop, part, hor, it


def cem_agent_cfg(pop: int, hor: int, iters: int, a: argparse.Namespace) -> omegaconf.DictConfig:
    return omegaconf.OmegaConf.create(
        {
            "_target_": "mbrl.planning.TrajectoryOptimizerAgent",
            "_recursive_": False,  # hydra >= 1.1 would instantiate optimizer_cfg eagerly
            "action_lb": "???",
            "action_ub": "???",
            "planning_horizon": hor,
            "replan_freq": 1,
            "verbose": False,
            "optimizer_cfg": {
                "_target_": "mbrl.planning.CEMOptimizer",
                "num_iterations": iters,
                "elite_ratio": a.elite_ratio,
                "population_size": pop,
                "alpha": a.alpha,
                "lower_bound": "???",
                "upper_bound": "???",
                "return_mean_elites": True,
                "device": a.device,
                "clipped_normal": False,
            },
        }
    )


def run_plan(a: argparse.Namespace) -> dict[str, Any]:
    rungs = [parse_rung(r) for r in a.rungs.split(",")] if a.rungs else [parse_rung(r) for r in DEFAULT_RUNGS]
    dims = [DIM_ALIASES.get(d.strip(), d.strip()) for d in a.dims.split(",")]
    out: dict[str, Any] = {
        "workload": "plan",
        "optimizer": "CEMOptimizer via TrajectoryOptimizerAgent (create_trajectory_optim_agent_for_model)",
        "propagation": "random_model (TS-1)",
        "ensemble": a.ensemble,
        "elites": a.elites,
        "hidden": [a.hid] * a.layers,
        "elite_ratio": a.elite_ratio,
        "alpha": a.alpha,
        "return_mean_elites": True,
        "replan_freq": 1,
        "warm_start": "mbrl-lib's shift of the previous plan between actions",
        "model_weights": (
            f"trained {a.fit_epochs} epoch(s) on {a.fit_transitions} random transitions"
            if a.fit_epochs
            else f"untrained (normaliser fitted on {a.fit_transitions} random "
            "transitions); latency does not depend on the weights"
        ),
        "rung_budget_s": a.rung_budget,
        "results": [],
        "load_before": loadavg(),
    }
    for env_name in dims:
        if env_name not in PLAN_ENVS:
            raise SystemExit(f"plan: unknown dims {env_name!r} (use ip, hc or {list(PLAN_ENVS)})")
        term_fn, reward_fn = PLAN_ENVS[env_name]
        seed_all(a.seed)
        env = make_env(env_name, a.seed)
        obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
        buf = random_buffer(env, a.fit_transitions, a.seed)
        learned = reward_fn is None
        net = gaussian_mlp(
            obs_dim + act_dim, obs_dim + int(learned), a.device, a.ensemble, a.hid, a.layers, "random_model"
        )
        dyn = mbrl_models.OneDTransitionRewardModel(
            net,
            target_is_delta=True,
            normalize=True,
            normalize_double_precision=True,
            learned_rewards=learned,
            num_elites=a.elites,
        )
        dyn.update_normalizer(buf.get_all())
        if a.fit_epochs:
            tr, va = mbrl_common.get_basic_buffer_iterators(buf, 256, 0.1, ensemble_size=a.ensemble)
            mbrl_models.ModelTrainer(dyn, optim_lr=1e-3, weight_decay=5e-5).train(
                tr, dataset_val=va, num_epochs=a.fit_epochs, silent=True
            )
        else:
            dyn.set_elite(list(range(a.elites)))  # what training would do: 5 elites of 7
        gen = torch.Generator(device=a.device)
        gen.manual_seed(a.seed)
        model_env = mbrl_models.ModelEnv(env, dyn, term_fn, reward_fn, generator=gen)
        for pop, part, hor, iters in rungs:
            name = f"{pop}x{part}x{hor}x{iters}"
            if (pop * part) % a.elites:
                log(f"plan: skip {name}: pop*particles not a multiple of {a.elites} elites")
                continue
            agent = mbrl_planning.create_trajectory_optim_agent_for_model(
                model_env, cem_agent_cfg(pop, hor, iters, a), num_particles=part
            )
            obs, _ = env.reset(seed=a.seed)
            agent.reset()
            load0 = loadavg()
            times: list[float] = []
            cpu_times: list[float] = []
            warm: list[float] = []
            n_target = a.repeats
            i = 0
            while i < a.warmup + n_target:
                sync(a.device)
                t, c = time.perf_counter(), time.process_time()
                act = agent.act(obs)
                sync(a.device)
                dt, dc = time.perf_counter() - t, time.process_time() - c
                if i < a.warmup:
                    warm.append(dt)
                    if i == a.warmup - 1:  # cap the repeats of slow rungs by the budget
                        n_target = max(1, min(a.repeats, int(a.rung_budget // max(dt, 1e-9))))
                else:
                    times.append(dt)
                    cpu_times.append(dc)
                obs, _, terminated, truncated, _ = env.step(act)
                if terminated or truncated:
                    obs, _ = env.reset()
                    agent.reset()
                i += 1
            st = stats(times, 1e3, 2)
            log(f"plan {env_name} {name}: median {st['median']} ms/action over {st['n']}")
            out["results"].append(
                {
                    "env_dims": env_name,
                    "obs_dim": obs_dim,
                    "act_dim": act_dim,
                    "rung": name,
                    "population": pop,
                    "particles": part,
                    "horizon": hor,
                    "iterations": iters,
                    "model_batch_rows": pop * part,
                    "reward": "learned head" if learned else "known fn (mbrl.env.reward_fns)",
                    "ms_per_action": st,
                    "process_cpu_ms_per_action": stats(cpu_times, 1e3, 2),
                    "warmup_ms": [round(1e3 * w, 2) for w in warm],
                    "repeats_capped": len(times) < a.repeats,
                    "load_before": load0,
                    "load_after": loadavg(),
                }
            )
    out["load_after"] = loadavg()
    return out


# ------------------------------------------------------------------------------------------------
# mbpo-step
# ------------------------------------------------------------------------------------------------
class TimedEnv(gym.Wrapper):
    """Times env.step (the simulator alone)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.last_step_s = 0.0

    def step(self, action: Any) -> Any:
        t = time.perf_counter()
        out = self.env.step(action)
        self.last_step_s = time.perf_counter() - t
        return out


class _Stop(Exception):
    """Raised from inside an mbrl-lib loop to end a run at a chosen point."""


class StepProbe:
    """Attributes wall time to MBPO loop steps through wrappers around mbrl-lib functions.

    mbrl-lib's MBPO loop checks ``num_steps`` only at epoch ends (every ``epoch_length`` steps),
    so the run is ended by raising ``_Stop`` at the start of loop step ``stop_at``."""

    def __init__(self, init_steps: int, stop_at: int, device: str, env: TimedEnv) -> None:
        self.init_steps = init_steps
        self.stop_at = stop_at
        self.device = device
        self.env = env
        self.calls = 0
        self.step_start: list[float] = []  # wall at the start of loop step i
        self.step_cpu: list[float] = []  # process CPU time at the start of loop step i
        self.buckets: list[dict[str, float]] = []
        self.sac_updates: list[int] = []
        self.explore_s = 0.0
        self.t_explore0: float | None = None
        self.t_end = 0.0
        self.c_end = 0.0
        self.retrain_epochs: list[int] = []

    def _bucket(self) -> dict[str, float] | None:
        return self.buckets[-1] if self.buckets else None

    def _count_epoch(self, *_args: Any) -> None:
        self.retrain_epochs[-1] += 1

    def wrap_step(self, fn: Callable[..., tuple]) -> Callable[..., tuple]:
        def timed(*args: Any, **kwargs: Any) -> tuple:
            t, c = time.perf_counter(), time.process_time()
            if self.t_explore0 is None:
                self.t_explore0 = t
            if self.calls - self.init_steps == self.stop_at:
                self.t_end, self.c_end = t, c
                raise _Stop
            out = fn(*args, **kwargs)
            dt = time.perf_counter() - t
            self.calls += 1
            if self.calls == self.init_steps:
                self.explore_s = time.perf_counter() - self.t_explore0
            elif self.calls > self.init_steps:
                self.step_start.append(t)
                self.step_cpu.append(c)
                self.buckets.append(
                    {
                        "env_step": self.env.last_step_s,
                        "act_and_buffer": dt - self.env.last_step_s,
                        "sac_updates": 0.0,
                        "model_rollouts": 0.0,
                        "model_retrain": 0.0,
                        "eval": 0.0,
                    }
                )
                self.sac_updates.append(0)
                i = len(self.buckets) - 1
                if i and i % 50 == 0:
                    prev = self.buckets[i - 50 : i]
                    n_upd = sum(self.sac_updates[i - 50 : i])
                    sac_s = sum(x["sac_updates"] for x in prev)
                    log(
                        f"mbpo-step: loop step {i}: last 50 steps {t - self.step_start[i - 50]:.1f}s"
                        f" wall, {n_upd} SAC updates ({1e3 * sac_s / max(n_upd, 1):.1f} ms each)"
                    )
            return out

        return timed

    def wrap_phase(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if name == "model_retrain" and kwargs.get("callback") is None:
                # count epochs through the trainer's public per-epoch callback
                self.retrain_epochs.append(0)
                kwargs["callback"] = self._count_epoch
            sync(self.device)
            t = time.perf_counter()
            out = fn(*args, **kwargs)
            sync(self.device)
            b = self._bucket()
            if b is not None:
                b[name] += time.perf_counter() - t
                if name == "sac_updates":
                    self.sac_updates[-1] += 1
            return out

        return timed


def mbpo_cfg(a: argparse.Namespace, work_dir: str) -> omegaconf.DictConfig:
    return omegaconf.OmegaConf.create(
        {
            "seed": a.seed,
            "device": a.device,
            "debug_mode": False,
            "log_frequency_agent": 1000,
            "save_video": False,
            "root_dir": work_dir,
            "dynamics_model": {
                "_target_": "mbrl.models.GaussianMLP",
                "_recursive_": False,
                "device": a.device,
                "num_layers": a.layers,
                "ensemble_size": a.ensemble,
                "hid_size": a.hid,
                "deterministic": False,
                "propagation_method": "random_model",
                "learn_logvar_bounds": False,
                "activation_fn_cfg": {"_target_": "torch.nn.SiLU"},
            },
            "algorithm": {
                "name": "mbpo",
                "normalize": True,
                "normalize_double_precision": True,
                "target_is_delta": True,
                "learned_rewards": True,
                "freq_train_model": a.freq_train,
                "real_data_ratio": 0.0,
                "sac_samples_action": True,
                "initial_exploration_steps": a.init_steps,
                "random_initial_explore": False,
                "num_eval_episodes": 1,
                "agent": {
                    "_target_": "mbrl.third_party.pytorch_sac_pranz24.sac.SAC",
                    "_recursive_": False,  # action_space names gym.env.Box: keep it a config
                    "num_inputs": "???",
                    "action_space": {"_target_": "gym.env.Box", "low": "???", "high": "???", "shape": "???"},
                    "args": {
                        "gamma": 0.99,
                        "tau": 0.005,
                        "alpha": 0.2,
                        "policy": "Gaussian",
                        "target_update_interval": 4,
                        "automatic_entropy_tuning": False,
                        "target_entropy": 1,
                        "hidden_size": a.sac_hidden,
                        "device": a.device,
                        "lr": 3e-4,
                    },
                },
            },
            "overrides": {
                "env": a.env,
                "term_fn": "hopper",
                # only sizes the replay buffer here (mbrl-lib's mbpo_hopper value); the run is
                # ended by StepProbe after the window
                "num_steps": 125_000,
                "epoch_length": a.epoch_length,
                "num_elites": a.elites,
                "patience": 5,
                "model_lr": 1e-3,
                "model_wd": 1e-5,
                "model_batch_size": 256,
                "validation_ratio": 0.2,
                "freq_train_model": a.freq_train,
                "effective_model_rollouts_per_step": a.rollouts_per_step,
                "rollout_schedule": [20, 150, a.rollout_length, a.rollout_length],
                "num_sac_updates_per_step": a.sac_updates,
                "sac_updates_every_steps": 1,
                "num_epochs_to_retain_sac_buffer": 1,
                "sac_batch_size": 256,
            },
        }
    )


def run_mbpo_step(a: argparse.Namespace) -> dict[str, Any]:
    seed_all(a.seed)
    env = TimedEnv(make_env(a.env, a.seed))
    test_env = make_env(a.env, a.seed + 1)
    lo, hi = a.warmup_steps, a.warmup_steps + a.window_steps
    probe = StepProbe(a.init_steps, hi, a.device, env)
    patched = [
        (mbrl_common, "step_env_and_add_to_buffer", probe.wrap_step),
        (mbrl_common, "train_model_and_save_model_and_data", lambda f: probe.wrap_phase("model_retrain", f)),
        (mbrl_mbpo, "rollout_model_and_populate_sac_buffer", lambda f: probe.wrap_phase("model_rollouts", f)),
        (mbrl_mbpo, "evaluate", lambda f: probe.wrap_phase("eval", f)),
        (MbrlSAC, "update_parameters", lambda f: probe.wrap_phase("sac_updates", f)),
    ]
    originals = [(obj, name, getattr(obj, name)) for obj, name, _ in patched]
    load0 = loadavg()
    try:
        for obj, name, wrap in patched:
            setattr(obj, name, wrap(getattr(obj, name)))
        with tempfile.TemporaryDirectory(prefix="mbrl_lib_peer_") as work_dir:
            cfg = mbpo_cfg(a, work_dir)
            try:
                with contextlib.redirect_stdout(sys.stderr):
                    mbrl_mbpo.train(env, test_env, mbrl_term_fns.hopper, cfg, silent=True, work_dir=work_dir)
            except _Stop:
                pass
    finally:
        for obj, name, orig in originals:
            setattr(obj, name, orig)
    load1 = loadavg()
    if probe.t_end == 0.0:
        raise SystemExit("mbpo-step: the run ended before the measurement window closed")
    step_wall = np.diff(probe.step_start + [probe.t_end])
    step_cpu = np.diff(probe.step_cpu + [probe.c_end])
    win = slice(lo, hi)
    buckets = probe.buckets[win]
    n = len(buckets)
    comp = {k: float(sum(b[k] for b in buckets)) for k in buckets[0]}
    total = float(step_wall[win].sum())
    n_upd = int(sum(probe.sac_updates[win]))
    retrains = [b["model_retrain"] for b in probe.buckets if b["model_retrain"]]
    rollouts = [b["model_rollouts"] for b in probe.buckets if b["model_rollouts"]]
    upd_steps = [i for i in range(lo, hi) if probe.sac_updates[i]]
    # Amortised steady state: per-step costs measured on the window's steps that ran SAC
    # updates, plus one retrain and one model-rollout batch spread over freq_train steps.
    steady = [probe.buckets[i] for i in upd_steps]
    k = max(len(steady), 1)
    steady_wall = (
        float(
            sum(
                step_wall[i] - probe.buckets[i]["model_retrain"] - probe.buckets[i]["model_rollouts"] for i in upd_steps
            )
        )
        / k
    )
    amort = {
        "sac_updates": sum(b["sac_updates"] for b in steady) / k,
        "model_rollouts": float(np.mean(rollouts)) / a.freq_train if rollouts else None,
        "model_retrain": float(np.mean(retrains)) / a.freq_train if retrains else None,
        "env_step": sum(b["env_step"] for b in steady) / k,
        "policy_act_and_buffer_add": sum(b["act_and_buffer"] for b in steady) / k,
    }
    amort["other_loop_overhead"] = steady_wall - sum(
        amort[x] for x in ("sac_updates", "env_step", "policy_act_and_buffer_add")
    )
    amort_total = steady_wall + sum(v for x, v in amort.items() if x in ("model_rollouts", "model_retrain") and v)
    ms = lambda v: None if v is None else round(1e3 * v, 3)  # noqa: E731
    return {
        "workload": "mbpo-step",
        "env": a.env,
        "method": "mbrl.algorithms.mbpo.train itself, timed by wrappers around "
        "step_env_and_add_to_buffer, train_model_and_save_model_and_data, "
        "rollout_model_and_populate_sac_buffer and SAC.update_parameters; the run is "
        "stopped after the window (mbrl-lib checks num_steps only per epoch)",
        "settings": {
            "initial_exploration_steps": a.init_steps,
            "initial_explore_policy": "SAC (untrained), as mbrl-lib's MBPO",
            "sac_updates_per_env_step": a.sac_updates,
            "model_rollouts_per_env_step": a.rollouts_per_step,
            "rollout_batch_per_retrain": a.rollouts_per_step * a.freq_train,
            "rollout_length": a.rollout_length,
            "freq_train_model": a.freq_train,
            "model": f"GaussianMLP E={a.ensemble} ({a.elites} elites) {a.layers}x{a.hid} SiLU",
            "model_retrain": "warm-started, patience 5, val 0.2, batch 256, lr 1e-3, wd 1e-5, "
            "no epoch cap (mbrl-lib mbpo_hopper); includes mbrl-lib's save of "
            "model + replay buffer to its work dir",
            "sac": f"pranz24 SAC (mbrl.third_party), hidden {a.sac_hidden}, batch 256, lr 3e-4, "
            "alpha 0.2 fixed, target update every 4 (mbrl-lib mbpo_hopper)",
            "epoch_length": a.epoch_length,
        },
        "window": f"loop steps [{lo}, {hi}) after the {a.init_steps} exploration steps; the "
        f"first retrain + rollout happen at loop step {a.freq_train - 1} and SAC "
        "updates start there (the model-data buffer is empty before)",
        "window_steps": n,
        "window_wall_s": round(total, 2),
        "window_ms_per_env_step": round(1e3 * total / n, 3),
        "window_process_cpu_ms_per_env_step": round(1e3 * float(step_cpu[win].sum()) / n, 3),
        "window_breakdown_ms_per_env_step": {
            **{x: round(1e3 * v / n, 3) for x, v in comp.items()},
            "other_loop_overhead": round(1e3 * (total - sum(comp.values())) / n, 3),
        },
        "amortised_ms_per_env_step": ms(amort_total),
        "amortised_breakdown_ms_per_env_step": {x: ms(v) for x, v in amort.items()},
        "amortisation": "steps with SAC updates in the window, plus the mean model retrain and "
        f"model-rollout batch ({a.rollouts_per_step} x {a.freq_train} start "
        f"states) divided by freq_train ({a.freq_train})",
        "sac_updates_in_window": n_upd,
        "ms_per_sac_update": round(1e3 * comp["sac_updates"] / max(n_upd, 1), 3),
        "model_retrain_s_each": [round(x, 3) for x in retrains],
        "model_retrain_epochs_each": probe.retrain_epochs,
        "model_rollout_s_each": [round(x, 3) for x in rollouts],
        "step_wall_ms": stats(step_wall[win], 1e3, 3),
        "initial_exploration_wall_s": round(probe.explore_s, 2),
        "load_before": load0,
        "load_after": load1,
    }


# ------------------------------------------------------------------------------------------------
# pets-ip
# ------------------------------------------------------------------------------------------------
def run_pets_ip(a: argparse.Namespace) -> dict[str, Any]:
    seed_all(a.seed)
    env = make_env("InvertedPendulum-v5", a.seed, max_episode_steps=1000)
    learned = a.reward == "learned"
    state: dict[str, Any] = {
        "t0": None,
        "calls": 0,
        "ret": 0.0,
        "len": 0,
        "episodes": [],
        "reached_s": None,
        "reached_step": None,
        "stop": None,
        "train_s": [],
        "explore_s": None,
    }

    def wrap_step(fn: Callable[..., tuple]) -> Callable[..., tuple]:
        def timed(*args: Any, **kwargs: Any) -> tuple:
            out = fn(*args, **kwargs)
            state["calls"] += 1
            if state["calls"] <= a.init_steps:
                if state["calls"] == a.init_steps:
                    state["explore_s"] = time.perf_counter() - state["t0"]
                return out
            _, reward, terminated, truncated, _ = out
            state["ret"] += float(reward)
            state["len"] += 1
            now = time.perf_counter() - state["t0"]
            agent_steps = state["calls"] - a.init_steps
            if state["ret"] >= a.target:
                state["reached_s"], state["reached_step"] = now, agent_steps
                state["stop"] = "target reached"
                state["episodes"].append(
                    {
                        "return": round(state["ret"], 2),
                        "length": state["len"],
                        "end_s": round(now, 2),
                        "cut": "target reached",
                    }
                )
                raise _Stop
            if terminated or truncated:
                state["episodes"].append(
                    {"return": round(state["ret"], 2), "length": state["len"], "end_s": round(now, 2)}
                )
                state["ret"], state["len"] = 0.0, 0
            if now >= a.max_seconds:
                state["stop"] = "wall-clock cap"
                if state["len"]:
                    state["episodes"].append(
                        {
                            "return": round(state["ret"], 2),
                            "length": state["len"],
                            "end_s": round(now, 2),
                            "cut": "wall-clock cap",
                        }
                    )
                raise _Stop
            return out

        return timed

    def wrap_train(fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            out = fn(*args, **kwargs)
            state["train_s"].append(round(time.perf_counter() - t, 3))
            return out

        return timed

    cfg = omegaconf.OmegaConf.create(
        {
            "seed": a.seed,
            "device": a.device,
            "debug_mode": False,
            "dynamics_model": {
                "_target_": "mbrl.models.GaussianMLP",
                "_recursive_": False,
                "device": a.device,
                "num_layers": a.layers,
                "ensemble_size": a.ensemble,
                "hid_size": a.hid,
                "deterministic": False,
                "propagation_method": "random_model",
                "learn_logvar_bounds": False,
                "activation_fn_cfg": {"_target_": "torch.nn.SiLU"},
            },
            "algorithm": {
                "name": "pets",
                "normalize": True,
                "normalize_double_precision": True,
                "target_is_delta": True,
                "initial_exploration_steps": a.init_steps,
                "freq_train_model": a.freq_train,
                "learned_rewards": learned,
                "num_particles": a.particles,
                "agent": {
                    "_target_": "mbrl.planning.TrajectoryOptimizerAgent",
                    "_recursive_": False,
                    "action_lb": "???",
                    "action_ub": "???",
                    "planning_horizon": a.horizon,
                    "replan_freq": 1,
                    "verbose": False,
                    "optimizer_cfg": {
                        "_target_": "mbrl.planning.CEMOptimizer",
                        "num_iterations": a.iterations,
                        "elite_ratio": a.elite_ratio,
                        "population_size": a.population,
                        "alpha": a.alpha,
                        "lower_bound": "???",
                        "upper_bound": "???",
                        "return_mean_elites": True,
                        "device": a.device,
                        "clipped_normal": False,
                    },
                },
            },
            "overrides": {
                "env": "InvertedPendulum-v5",
                "learned_rewards": learned,
                # agent-step budget, also the replay-buffer size; the wall-clock cap or the target
                # normally ends the run first
                "num_steps": a.max_steps,
                "trial_length": 1000,
                "num_elites": a.elites,
                "model_lr": a.lr,
                "model_wd": a.wd,
                "model_batch_size": 256,
                "validation_ratio": a.val_ratio,
                "freq_train_model": a.freq_train,
                "patience": a.patience,
                "num_epochs_train_model": a.epochs,
                "planning_horizon": a.horizon,
            },
        }
    )
    o_step = mbrl_common.step_env_and_add_to_buffer
    o_train = mbrl_common.train_model_and_save_model_and_data
    load0 = loadavg()
    try:
        mbrl_common.step_env_and_add_to_buffer = wrap_step(o_step)
        mbrl_common.train_model_and_save_model_and_data = wrap_train(o_train)
        with tempfile.TemporaryDirectory(prefix="mbrl_lib_peer_") as work_dir:
            state["t0"], c0 = time.perf_counter(), time.process_time()
            try:
                with contextlib.redirect_stdout(sys.stderr):
                    mbrl_pets.train(
                        env,
                        mbrl_term_fns.inverted_pendulum,
                        None if learned else mbrl_reward_fns.inverted_pendulum,
                        cfg,
                        silent=True,
                        work_dir=work_dir,
                    )
            except _Stop:
                pass
            wall, cpu = time.perf_counter() - state["t0"], time.process_time() - c0
    finally:
        mbrl_common.step_env_and_add_to_buffer = o_step
        mbrl_common.train_model_and_save_model_and_data = o_train
    eps = state["episodes"]
    agent_steps = max(state["calls"] - a.init_steps, 0)
    best = max((e["return"] for e in eps), default=None)
    return {
        "workload": "pets-ip",
        "env": "InvertedPendulum-v5",
        "method": "mbrl.algorithms.pets.train itself; every PETS episode is acted by the CEM "
        "planner without exploration noise, so each episode return is the evaluation "
        "return. The clock starts at pets.train (includes the random exploration and "
        "every model fit) and stops when the running episode return reaches the target "
        "(IP rewards are >= 0, so that episode's return is >= target).",
        "target": a.target,
        "max_seconds": a.max_seconds,
        "reached": state["reached_s"] is not None,
        "time_to_target_s": round(state["reached_s"], 2) if state["reached_s"] else None,
        "agent_steps_to_target": state["reached_step"],
        "best_return": best,
        "stop_reason": state["stop"] or "pets.train returned",
        "wall_s": round(wall, 2),
        "process_cpu_s": round(cpu, 2),
        "agent_steps": agent_steps,
        "s_per_agent_step": round(wall / max(agent_steps, 1), 4),
        "episodes": len(eps),
        "episode_log": eps,
        "model_train_s_each": state["train_s"],
        "initial_exploration_steps": a.init_steps,
        "initial_exploration_wall_s": round(state["explore_s"], 2) if state["explore_s"] else None,
        "settings": {
            "ensemble": a.ensemble,
            "elites": a.elites,
            "hidden": [a.hid] * a.layers,
            "population": a.population,
            "particles": a.particles,
            "horizon": a.horizon,
            "iterations": a.iterations,
            "elite_ratio": a.elite_ratio,
            "alpha": a.alpha,
            "propagation": "random_model (TS-1)",
            "freq_train_model": a.freq_train,
            "epochs_per_fit_max": a.epochs,
            "patience": a.patience,
            "lr": a.lr,
            "wd": a.wd,
            "val_ratio": a.val_ratio,
            "batch": 256,
            "reward": "learned head" if learned else "known fn mbrl.env.reward_fns.inverted_pendulum (exact for v5)",
        },
        "load_before": load0,
        "load_after": loadavg(),
    }


# ------------------------------------------------------------------------------------------------
# combine
# ------------------------------------------------------------------------------------------------
def run_combine(a: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"peer": "mbrl-lib", "workloads": {}}
    for path in a.files:
        with open(path) as f:
            lines = [ln for ln in f.read().splitlines() if ln.strip()]
        res = json.loads(lines[-1])
        out.setdefault("machine", res.get("machine"))
        out["workloads"][res["result"]["workload"]] = {
            "command": res.get("command"),
            "machine": res.get("machine"),
            **res["result"],
        }
    if a.note:
        out["notes"] = a.note
    return out


# ------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    common = argparse.ArgumentParser(add_help=False, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    common.add_argument("--device", default="cpu", help="torch device: cpu or cuda")
    common.add_argument("--seed", type=int, default=0)
    common.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    common.add_argument("--out", default=None, help="also write the JSON line to this file")

    def model_args(ensemble: int = 7, elites: int = 5) -> argparse.ArgumentParser:
        # a fresh parent per subcommand: argparse shares parent actions, so set_defaults on one
        # subcommand would leak into the others
        m = argparse.ArgumentParser(add_help=False)
        m.add_argument("--ensemble", type=int, default=ensemble, help="ensemble members")
        m.add_argument("--elites", type=int, default=elites, help="elite members used to plan")
        m.add_argument("--hid", type=int, default=200, help="hidden width")
        m.add_argument("--layers", type=int, default=4, help="hidden layers")
        return m

    sub = p.add_subparsers(dest="cmd", required=True)
    fmt = argparse.ArgumentDefaultsHelpFormatter

    s = sub.add_parser(
        "train-epoch",
        parents=[common, model_args()],
        formatter_class=fmt,
        help="ModelTrainer NLL epoch on HalfCheetah-v5 transitions",
    )
    s.add_argument("--repeats", type=int, default=3, help="timed epochs per variant")
    s.add_argument("--warmup", type=int, default=1, help="untimed warm-up epochs")
    s.add_argument("--env", default="HalfCheetah-v5")
    s.add_argument("--transitions", type=int, default=100_000)
    s.add_argument("--data", choices=["collect", "synthetic"], default="collect")
    s.add_argument("--val-ratio", type=float, default=0.2, help="mbrl-lib MBPO default")
    s.add_argument("--batch-size", type=int, default=256)
    s.add_argument("--lr", type=float, default=1e-3)
    s.add_argument("--wd", type=float, default=1e-5)
    s.add_argument("--skip-val", action="store_true", help="time the train pass only")
    s.set_defaults(func=run_train_epoch)

    s = sub.add_parser(
        "plan", parents=[common, model_args()], formatter_class=fmt, help="CEM ms per action over a ladder of rungs"
    )
    s.add_argument("--repeats", type=int, default=5, help="timed actions per rung (max)")
    s.add_argument("--warmup", type=int, default=1, help="untimed actions per rung")
    s.add_argument("--rungs", default=",".join(DEFAULT_RUNGS), help="comma list of POPxPARTICLESxHORIZONxITERS")
    s.add_argument("--dims", default="ip,hc", help="ip (InvertedPendulum-v5), hc (HalfCheetah-v5)")
    s.add_argument(
        "--rung-budget",
        type=float,
        default=20.0,
        help="seconds per rung: timed actions = min(repeats, budget / warm-up time)",
    )
    s.add_argument("--elite-ratio", type=float, default=0.1)
    s.add_argument("--alpha", type=float, default=0.1)
    s.add_argument("--fit-transitions", type=int, default=1000)
    s.add_argument("--fit-epochs", type=int, default=0)
    s.set_defaults(func=run_plan)

    s = sub.add_parser(
        "mbpo-step",
        parents=[common, model_args()],
        formatter_class=fmt,
        help="per-env-step cost of mbrl.algorithms.mbpo.train on Hopper-v5",
    )
    s.add_argument("--env", default="Hopper-v5")
    s.add_argument("--init-steps", type=int, default=5000, help="mbrl-lib MBPO default")
    s.add_argument(
        "--warmup-steps",
        type=int,
        default=249,
        help="loop steps before the window (SAC updates start with the 1st retrain, at loop step freq_train - 1)",
    )
    s.add_argument("--window-steps", type=int, default=100, help="timed loop steps")
    s.add_argument("--sac-updates", type=int, default=20)
    s.add_argument("--rollouts-per-step", type=int, default=400)
    s.add_argument(
        "--rollout-length",
        type=int,
        default=1,
        help="model rollout length (mbrl-lib's Hopper schedule starts at 1, grows to 15 by epoch 150)",
    )
    s.add_argument("--freq-train", type=int, default=250)
    s.add_argument("--epoch-length", type=int, default=1000)
    s.add_argument("--sac-hidden", type=int, default=512, help="mbrl-lib mbpo_hopper: 512")
    s.add_argument("--repeats", type=int, default=1, help="accepted for symmetry; 1 run")
    s.set_defaults(func=run_mbpo_step)

    s = sub.add_parser(
        "pets-ip",
        parents=[common, model_args(5, 5)],
        formatter_class=fmt,
        help="PETS wall time to an InvertedPendulum-v5 return >= target",
    )
    s.add_argument("--max-seconds", type=float, default=900.0)
    s.add_argument("--target", type=float, default=900.0)
    s.add_argument(
        "--max-steps", type=int, default=50_000, help="agent-step budget (mbrl-lib's pets_inv_pendulum: 20k)"
    )
    s.add_argument("--population", type=int, default=64)
    s.add_argument("--particles", type=int, default=5)
    s.add_argument("--horizon", type=int, default=10)
    s.add_argument("--iterations", type=int, default=3)
    s.add_argument("--elite-ratio", type=float, default=0.1)
    s.add_argument("--alpha", type=float, default=0.1)
    s.add_argument("--freq-train", type=int, default=250)
    s.add_argument("--init-steps", type=int, default=1000, help="random steps first (mbrl-lib: trial length)")
    s.add_argument("--epochs", type=int, default=20, help="max epochs per model fit")
    s.add_argument("--patience", type=int, default=10)
    s.add_argument("--lr", type=float, default=1e-3)
    s.add_argument("--wd", type=float, default=5e-5)
    s.add_argument("--val-ratio", type=float, default=0.1)
    s.add_argument("--reward", choices=["true", "learned"], default="true")
    s.add_argument("--repeats", type=int, default=1, help="accepted for symmetry; 1 run")
    s.set_defaults(func=run_pets_ip)

    s = sub.add_parser(
        "combine", formatter_class=fmt, help="merge result files (last JSON line of each) into one object"
    )
    s.add_argument("files", nargs="+")
    s.add_argument("--out", default=None)
    s.add_argument("--note", action="append", default=None)
    s.set_defaults(func=run_combine)
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    if args.cmd == "combine":
        obj = args.func(args)
        text = json.dumps(obj, indent=1)
        if args.out:
            with open(args.out, "w") as f:
                f.write(text + "\n")
        print(json.dumps(obj, separators=(",", ":")), flush=True)
        return obj
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda requested but torch.cuda.is_available() is False")
    if args.threads:
        torch.set_num_threads(args.threads)
    if getattr(args, "repeats", 1) < 1:
        raise SystemExit("--repeats must be >= 1")
    t0 = time.perf_counter()
    result = args.func(args)
    obj = {
        "peer": "mbrl-lib",
        "command": " ".join([os.path.basename(sys.argv[0])] + (argv if argv is not None else sys.argv[1:])),
        "machine": machine_info(args.device),
        "seed": args.seed,
        "wall_s": round(time.perf_counter() - t0, 2),
        "result": result,
    }
    line = json.dumps(obj, separators=(",", ":"))
    if args.out:
        with open(args.out, "w") as f:
            f.write(line + "\n")
    print(line, flush=True)
    return obj


if __name__ == "__main__":
    main()
