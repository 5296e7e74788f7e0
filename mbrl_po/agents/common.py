"""Pieces every agent loop shares: run directory, metrics CSV, checkpoints, model metrics, evaluation, and
:class:`AgentLoop`, the episode / evaluation / checkpoint skeleton that PETS, MBPO and SAC all run."""

from __future__ import annotations

import csv
import math
import os
import shutil
import sys
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import gymnasium as gym
import numpy as np
import torch

from mbrl_po.config import AgentConfig, load_run_config
from mbrl_po.data.replay_buffer import ReplayBuffer
from mbrl_po.envs.task import TaskConfig, load_task, make_env
from mbrl_po.errors import CheckpointError, RunDirLockedError
from mbrl_po.models.ensemble import GaussianEnsemble
from mbrl_po.objectives.base import gaussian_nll
from mbrl_po.training.bilevel import BilevelSolver
from mbrl_po.training.trainer import DynamicsTrainer
from mbrl_po.types import TransitionData

EVAL_SEED_OFFSET = 10_000
"""The evaluation env is seeded with ``seed + EVAL_SEED_OFFSET`` and reset with ``+ env_step`` at each evaluation."""

METRIC_COLUMNS = (
    "env_step",
    "episode",
    "episode_return",
    "episode_length",
    "eval_return",
    "model_nll",
    "model_mse",
    "rollout_error",
    "u",
    "model_fit_s",
    "wall_time",
    "model_rollback",
)
"""Columns of ``metrics.csv``; a row fills only what happened at that step (episode end, evaluation, retrain).
``model_rollback`` came last so that older files keep their column positions (a resume rewrites the header)."""

TENSORBOARD_DIR = "tensorboard"
"""Where a run's TensorBoard events go (``<run>/tensorboard/``), when the ``tensorboard`` package is installed."""
TENSORBOARD_VAR = "MBRL_PO_TENSORBOARD"
"""Set to ``0`` to write no TensorBoard events even when ``tensorboard`` is installed."""
_TB_GROUPS = {"episode_return": "rollout", "episode_length": "rollout", "eval_return": "eval", "model_nll": "model",
              "model_mse": "model", "rollout_error": "model", "u": "model", "model_fit_s": "time",
              "wall_time": "time", "model_rollback": "model"}


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without CUDA is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: got 'cuda' but CUDA is not available here; allowed 'cpu' or 'auto'")
    return torch.device(name)


# ---------------------------------------------------------------------------------------------- run dir
LOCK_FILE = ".lock"
"""The run directory's lock file: ``fcntl.flock``-ed by the one process writing the run, which writes its pid."""


def check_run_name(name: str) -> str:
    """``name`` if it is a plain directory name (it stays inside ``--runs-dir``); a ValueError otherwise."""
    if not name or name in (".", "..") or "/" in name or os.sep in name or "\0" in name:
        raise ValueError(f"--name: got {name!r}, allowed a plain directory name (no '/', not '.' or '..')")
    return name


class RunDir:
    """A run's directory: ``config.toml``, ``metrics.csv``, ``checkpoints/``, ``learning_curve.png``.

    One process writes a run directory: :meth:`acquire_lock` takes an exclusive ``fcntl.flock`` on
    ``<run>/.lock`` (the command line does, for ``train`` and ``train --resume``) and holds it until
    :meth:`release_lock` or the process ends; the kernel releases it when the process dies, so a lock left by a
    killed process is never in the way.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.ckpt_dir = self.path / "checkpoints"
        self._lock: Any = None
        self._files: dict[str, str] | None = None  # buffer files named by latest.pt, once known
        self._tb: Any = None  # stable-baselines3 Logger writing TensorBoard events (False: none), made on first log

    @staticmethod
    def default_name(cfg: AgentConfig) -> str:
        """``<kind>-<env>-<objective label | modelfree>-s<seed>-<YYYYmmdd-HHMMSS>-<6 hex>``: the random suffix
        keeps two runs started in the same second apart."""
        label = cfg.objective.label() if cfg.kind != "sac" else "modelfree"
        env = Path(cfg.env).stem if "/" in cfg.env or cfg.env.endswith(".toml") else cfg.env
        return f"{cfg.kind}-{env}-{label}-s{cfg.seed}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"

    @classmethod
    def create(cls, root: str | Path, cfg: AgentConfig, name: str | None = None, lock: bool = False) -> RunDir:
        """Make ``root/name`` (default :meth:`default_name`) with ``config.toml`` and the metrics header.

        Args:
            root: parent folder (``--runs-dir``); made if missing.
            cfg: the resolved config, written as ``config.toml``.
            name: a plain directory name (no ``/``, not ``..``).
            lock: take the run's lock (:meth:`acquire_lock`) before writing anything into it.

        Raises:
            ValueError: a bad name, a root that cannot be written, or a directory that already holds a run.
            RunDirLockedError: ``lock`` and another live process holds the directory.
        """
        run = cls(Path(root) / check_run_name(name or cls.default_name(cfg)))
        try:
            run.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ValueError(f"--runs-dir: cannot create {run.path} ({e.strerror or e}); choose a folder you can "
                             f"write to") from None
        if lock:
            run.acquire_lock()
        if any(p.name != LOCK_FILE for p in run.path.iterdir()):
            run.release_lock()
            raise ValueError(f"run_dir: {run.path} exists and is not empty; use --resume to continue it")
        try:
            run.ckpt_dir.mkdir(parents=True, exist_ok=True)
            (run.path / "config.toml").write_text(cfg.to_toml())
            with open(run.metrics_path, "w", newline="") as f:
                csv.writer(f).writerow(METRIC_COLUMNS)
        except OSError as e:
            raise ValueError(f"--runs-dir: cannot write into {run.path} ({e.strerror or e}); choose a folder you "
                             f"can write to") from None
        return run

    # ------------------------------------------------------------------ one writer
    @property
    def lock_path(self) -> Path:
        return self.path / LOCK_FILE

    def acquire_lock(self) -> None:
        """Take the run's exclusive lock for this process (a no-op when this object holds it already).

        Raises:
            RunDirLockedError: another live process holds it; the message names its pid.
            ValueError: the directory does not exist or the lock file cannot be written.
        """
        if self._lock is not None:
            return
        try:
            import fcntl
        except ImportError:  # no flock on this platform: one writer is then up to the user
            return
        if not self.path.is_dir():
            raise ValueError(f"run_dir: {self.path} does not exist or is not a directory")
        try:
            f = open(self.lock_path, "a+")  # noqa: SIM115 - held open for the run's life
        except OSError as e:
            raise ValueError(f"run_dir: cannot write the lock file {self.lock_path} ({e.strerror or e})") from None
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            f.close()
            raise RunDirLockedError(
                f"run_dir: {self.path} is in use by process {holder} (it holds {self.lock_path}); one process "
                f"writes a run: wait for it to end or stop it, then continue with --resume"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._lock = f

    def release_lock(self) -> None:
        """Give the lock back (closing the file releases the flock); a no-op when not held."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def checkpoint_path(self) -> Path:
        return self.ckpt_dir / "latest.pt"

    def config(self) -> AgentConfig:
        path = self.path / "config.toml"
        if not path.exists():
            raise ValueError(f"resume: {self.path} has no config.toml; is it a run directory?")
        return load_run_config(path)

    def log(self, row: dict[str, Any]) -> None:
        unknown = set(row) - set(METRIC_COLUMNS)
        if unknown:
            raise ValueError(f"metrics: unknown columns {sorted(unknown)}, allowed {list(METRIC_COLUMNS)}")
        with open(self.metrics_path, "a", newline="") as f:
            csv.writer(f).writerow([_fmt(row.get(c)) for c in METRIC_COLUMNS])
            f.flush()
        tb = self._tensorboard()
        if tb is not None and row.get("env_step") is not None:
            for k, v in row.items():
                if k in _TB_GROUPS and isinstance(v, int | float | np.floating | np.integer) and math.isfinite(v):
                    tb.record(f"{_TB_GROUPS[k]}/{k}", float(v))
            tb.dump(step=int(row["env_step"]))

    def _tensorboard(self) -> Any:
        """stable-baselines3's ``Logger`` with a TensorBoard output in ``<run>/tensorboard/`` (so ``tensorboard
        --logdir runs`` shows every run), or None without the ``tensorboard`` package or with
        ``$MBRL_PO_TENSORBOARD=0``. metrics.csv stays the record: events are a view of it."""
        if self._tb is None:
            import importlib.util

            self._tb = False
            if os.environ.get(TENSORBOARD_VAR, "1") != "0" and importlib.util.find_spec("tensorboard") is not None:
                from stable_baselines3.common.logger import Logger, TensorBoardOutputFormat

                folder = str(self.path / TENSORBOARD_DIR)
                self._tb = Logger(folder=folder, output_formats=[TensorBoardOutputFormat(folder)])
        return self._tb or None

    def read_metrics(self) -> list[dict[str, str]]:
        if not self.metrics_path.is_file():
            raise CheckpointError(f"metrics: {self.metrics_path} is missing; restore it, or delete "
                                  f"{self.ckpt_dir} and {self.metrics_path.name} to start the run over")
        with open(self.metrics_path, newline="") as f:
            return list(csv.DictReader(f))

    def truncate_metrics(self, env_step: int) -> None:
        """Drop rows logged after ``env_step`` (they will be logged again by the resumed run); rewrites the
        header with the current :data:`METRIC_COLUMNS`. A run without a checkpoint (``env_step < 0``) and
        without a metrics file gets a fresh one."""
        if env_step < 0 and not self.metrics_path.exists():
            rows: list[dict[str, str]] = []
        else:
            rows = [r for r in self.read_metrics() if int(r["env_step"]) <= env_step]
        tmp = self.metrics_path.with_suffix(".tmp")
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=METRIC_COLUMNS)
            w.writeheader()
            w.writerows(rows)
        os.replace(tmp, self.metrics_path)

    @property
    def previous_dir(self) -> Path:
        """``checkpoints/previous/``: the checkpoint before ``latest.pt`` (its ``latest.pt`` and buffer files)."""
        return self.ckpt_dir / "previous"

    @property
    def previous_checkpoint_path(self) -> Path:
        return self.previous_dir / "latest.pt"

    def save_checkpoint(self, state: dict[str, Any], buffers: dict[str, ReplayBuffer]) -> None:
        """Write a checkpoint so that a kill at any moment leaves the previous one intact.

        The current checkpoint (``latest.pt`` and the buffer files it names) is first hard-linked into
        ``checkpoints/previous/`` (no copy); each buffer then goes to a new file named after the checkpoint's
        env step, and ``latest.pt`` (which names those files) is replaced atomically; only after that are the
        older buffer files in ``checkpoints/`` removed, with any ``.tmp`` left by an interrupted save. A
        resume whose ``latest.pt`` is unreadable falls back to ``previous/``.
        """
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        self._remove_tmp_files()
        if self.checkpoint_path.exists():
            self._keep_as_previous()
        tag = f"{int(state.get('step', 0)):09d}"
        files = {}
        for name, buf in buffers.items():
            files[name] = f"{name}-{tag}.npz"
            buf.save(self.ckpt_dir / files[name])
        tmp = self.checkpoint_path.with_suffix(".tmp")
        torch.save({**state, "buffer_files": files}, tmp)
        os.replace(tmp, self.checkpoint_path)
        self._files = dict(files)
        keep = set(files.values())
        for old in self.ckpt_dir.glob("*.npz"):
            if old.name not in keep:
                old.unlink()

    def _keep_as_previous(self) -> None:
        """Hard-link ``latest.pt`` and its buffer files into ``previous/`` (built aside, then swapped in)."""
        files = getattr(self, "_files", None)
        if files is None:
            try:
                files = dict(self._read_checkpoint(self.checkpoint_path).get("buffer_files", {}))
            except CheckpointError:
                return  # an unreadable latest.pt is not worth keeping
        staging = self.ckpt_dir / "previous.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        for name in [self.checkpoint_path.name, *files.values()]:
            if not (self.ckpt_dir / name).exists():
                shutil.rmtree(staging, ignore_errors=True)
                return
            os.link(self.ckpt_dir / name, staging / name)
        shutil.rmtree(self.previous_dir, ignore_errors=True)
        os.replace(staging, self.previous_dir)

    def _remove_tmp_files(self) -> None:
        """Delete what an interrupted save left (``*.tmp``: buffer temp files, ``latest.tmp``, ``previous.tmp/``)."""
        shutil.rmtree(self.ckpt_dir / "previous.tmp", ignore_errors=True)
        for tmp in list(self.ckpt_dir.glob("*.tmp")) + list(self.ckpt_dir.glob(".*.tmp")):
            tmp.unlink(missing_ok=True)

    @staticmethod
    def _read_checkpoint(path: Path) -> dict[str, Any]:
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e:  # noqa: BLE001 - truncated, empty or garbage files raise many kinds of errors
            raise CheckpointError(f"resume: {path} cannot be read ({type(e).__name__}: {e})") from None
        if not isinstance(state, dict) or "step" not in state:
            raise CheckpointError(f"resume: {path} is not an mbrl-po checkpoint (no 'step')")
        return state

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The last checkpoint's state, None when the run has none.

        An unreadable ``latest.pt`` (truncated, empty, garbage) is moved aside to ``latest.pt.corrupt`` and the
        run resumes from ``previous/`` with a warning; a :class:`CheckpointError` naming the file when there
        is no readable previous checkpoint either.
        """
        if not self.checkpoint_path.exists():
            return None
        try:
            state = self._read_checkpoint(self.checkpoint_path)
        except CheckpointError as e:
            state = self._fall_back(str(e).removeprefix(f"resume: {self.checkpoint_path} "), error=e)
        self._files = dict(state.get("buffer_files", {}))
        return state

    def _fall_back(self, why: str, error: CheckpointError) -> dict[str, Any]:
        prev = self.previous_checkpoint_path
        if not prev.exists():
            raise CheckpointError(f"resume: {self.checkpoint_path} {why} and there is no previous checkpoint; "
                                  f"delete {self.ckpt_dir} to start the run over") from error
        try:
            state = self._read_checkpoint(prev)
        except CheckpointError:
            raise CheckpointError(f"resume: {self.checkpoint_path} {why} and {prev} cannot be read either; delete "
                                  f"{self.ckpt_dir} to start the run over") from error
        os.replace(self.checkpoint_path, self.checkpoint_path.with_suffix(".pt.corrupt"))
        for f in self.previous_dir.iterdir():  # the previous checkpoint becomes the current one
            if f.name != prev.name:
                os.replace(f, self.ckpt_dir / f.name)
        os.replace(prev, self.checkpoint_path)
        self.previous_dir.rmdir()
        self._files = dict(state.get("buffer_files", {}))  # what latest.pt names now
        msg = (f"resume: {self.checkpoint_path} {why}; resuming from the previous checkpoint (env step "
               f"{state['step']}) instead")
        warnings.warn(msg, RuntimeWarning, stacklevel=3)
        print(f"mbrl-po: warning: {msg}", file=sys.stderr)
        return state

    def load_buffer(self, state: dict[str, Any], name: str) -> ReplayBuffer:
        """The replay buffer ``name`` saved with the checkpoint ``state``."""
        files = state.get("buffer_files", {})
        if name not in files:
            raise CheckpointError(f"resume: checkpoint has no buffer {name!r} (has {sorted(files)})")
        path = self.ckpt_dir / files[name]
        if not path.is_file():
            raise CheckpointError(f"resume: the buffer file {path} named by the checkpoint is missing; the run "
                                  f"cannot resume exactly: delete {self.ckpt_dir} to start it over")
        try:
            return ReplayBuffer.load(path)
        except Exception as e:  # noqa: BLE001 - truncated zip, bad pickle, bad header: one message
            raise CheckpointError(f"resume: the buffer file {path} cannot be read ({type(e).__name__}: {e}); "
                                  f"delete {self.ckpt_dir} to start the run over") from None

    def plot(self, title: str) -> Path | None:
        """Learning curve (episode and eval returns vs env steps) next to metrics.csv."""
        rows = self.read_metrics()
        if not rows:
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        for col, style in (("episode_return", "."), ("eval_return", "o-")):
            pts = [(int(r["env_step"]), float(r[col])) for r in rows if r[col] not in ("", None)]
            if pts:
                ax.plot(*zip(*pts, strict=True), style, label=col.replace("_", " "), alpha=0.8)
        ax.set_xlabel("env steps")
        ax.set_ylabel("return")
        ax.set_title(title, fontsize=9)
        ax.legend()
        fig.tight_layout()
        out = self.path / "learning_curve.png"
        fig.savefig(out, dpi=110)
        plt.close(fig)
        return out


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.6g}"  # a NaN metric is a value, not an empty cell
    return str(v)


# ---------------------------------------------------------------------------------------------- RNG state
def env_rng_state(env: gym.Env) -> dict[str, Any]:
    """The env's and its action space's numpy RNG states (enough to replay resets and random actions)."""
    return {
        "np_random": env.unwrapped.np_random.bit_generator.state,
        "action_space": env.action_space.np_random.bit_generator.state,
    }


def set_env_rng_state(env: gym.Env, state: dict[str, Any]) -> None:
    env.unwrapped.np_random.bit_generator.state = state["np_random"]
    env.action_space.np_random.bit_generator.state = state["action_space"]


# ---------------------------------------------------------------------------------------------- model
def build_model(cfg: AgentConfig, obs_dim: int, action_dim: int, learn_reward: bool, device: torch.device):
    """The ensemble described by ``cfg.model`` (delta targets, normalised, PETS bounds)."""
    m = cfg.model
    return GaussianEnsemble(
        obs_dim, action_dim, ensemble_size=m.ensemble_size, num_elites=m.num_elites, hidden_sizes=m.hidden_sizes,
        activation=m.activation, learn_reward=learn_reward, device=device,
    )


def build_trainer(cfg: AgentConfig, model: GaussianEnsemble) -> DynamicsTrainer:
    """The trainer for ``cfg.objective`` (a learned U gets a bilevel solver that persists across rounds)."""
    o, m = cfg.objective, cfg.model
    trainer = DynamicsTrainer(
        model, o.name, objective_options=o.objective_kwargs(), lr=m.lr, weight_decay=m.weight_decay,
        batch_size=m.batch_size, holdout_fraction=m.holdout_fraction, max_epochs=m.max_epochs, patience=m.patience,
        early_stop_metric=m.early_stop_metric, grad_clip=m.grad_clip, precision=m.precision, seed=cfg.seed,
        progress=False,
    )
    if trainer.bilevel is not None:
        trainer.bilevel = BilevelSolver(
            trainer.objective, method=o.bilevel_method, lr=o.bilevel_lr, iterations=o.bilevel_iterations
        )
    return trainer


@torch.no_grad()
def model_metrics(model: GaussianEnsemble, fresh: TransitionData, ends: np.ndarray, horizon: int) -> dict[str, float]:
    """Quality of the current model on real transitions it has not been trained on.

    Args:
        model: the ensemble (its elites are used).
        fresh: (B, ·) real transitions in time order.
        ends: (B,) bool, true where an episode ended (terminated or truncated) at that transition.
        horizon: H of the open-loop rollout error.

    Returns:
        ``model_nll``: Gaussian NLL per output dim (raw units, elite mean); ``model_mse``: MSE of the elite-mean
        next-state prediction; ``rollout_error``: RMSE of the next state after H open-loop steps (elite-mean
        predictions fed back, real actions), over every start whose H steps stay inside one episode
        (NaN when there is none).
    """
    if len(fresh) == 0:
        return {}
    elites = model.elite_idx
    x = model.make_inputs(fresh.obs, fresh.actions)
    y = model.make_targets(fresh.obs, fresh.next_obs, fresh.rewards)
    mean, logvar = model(x, elites)
    nll = (gaussian_nll(mean, logvar, y) + torch.log(model.target_normalizer.std)).mean()
    pred = model.predict(fresh.obs, fresh.actions, elites).next_obs_mean.mean(0)
    out = {"model_nll": float(nll), "model_mse": float(((pred - fresh.next_obs) ** 2).mean())}
    n = len(fresh)
    ends_t = torch.as_tensor(ends[:n], dtype=torch.int64)
    csum = torch.cat([torch.zeros(1, dtype=torch.int64), ends_t.cumsum(0)])
    starts = torch.arange(0, max(n - horizon + 1, 0))
    # a segment [i, i+H) is valid when no episode ends at i..i+H-2 (the last step may end the episode)
    valid = starts[(csum[starts + horizon - 1] - csum[starts]) == 0] if len(starts) else starts
    if len(valid) == 0:
        out["rollout_error"] = float("nan")
        return out
    valid = valid[:: max(1, len(valid) // 256)].to(fresh.obs.device)
    obs = fresh.obs[valid]
    for h in range(horizon):
        obs = model.predict(obs, fresh.actions[valid + h], elites).next_obs_mean.mean(0)
    out["rollout_error"] = float(((obs - fresh.next_obs[valid + horizon - 1]) ** 2).mean().sqrt())
    return out


def run_episodes(env: gym.Env, act: Callable[[np.ndarray], np.ndarray], episodes: int, seed: int,
                 on_reset: Callable[[], None] | None = None) -> float:
    """Mean return of ``episodes`` episodes of ``act`` on ``env``, reset with seeds seed, seed+1, ..."""
    returns = []
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        if on_reset is not None:
            on_reset()
        total, done = 0.0, False
        while not done:
            obs, r, term, trunc, _ = env.step(act(obs))
            total += float(r)
            done = term or trunc
        returns.append(total)
    return float(np.mean(returns))


def progress_bar(total: int, desc: str, initial: int = 0, enabled: bool | None = None):  # noqa: ANN201
    """A tqdm bar on stderr when it is a terminal (or when forced), else a no-op object."""
    import sys

    on = enabled if enabled is not None else (sys.stderr.isatty() and not os.environ.get("CI"))
    if not on:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True)


class _NoBar:
    def update(self, n: int = 1) -> None: ...

    def set_postfix(self, *args: Any, **kwargs: Any) -> None: ...

    def close(self) -> None: ...


# ---------------------------------------------------------------------------------------------- the loop
class AgentLoop:
    """The skeleton every agent runs: act, step the env, store the transition, learn, evaluate, log, checkpoint.

    :meth:`train`, top to bottom, per env step:

    1. ``loop.init_steps`` random actions (``env.action_space.sample()``), then :meth:`_act`; the transition
       goes to ``self.buffer``.
    2. :meth:`_learn` (the agent's own work: refit the model, plan, update SAC, ...).
    3. At an episode end: a metrics row with its return and length.
    4. Every ``loop.eval_every`` steps: ``loop.eval_episodes`` episodes of :meth:`_eval_act` on ``eval_env``
       (reset with seeds ``seed + EVAL_SEED_OFFSET + step``, ...; :meth:`_reset_eval_agent` after each reset);
       a metrics row with ``eval_return``. With ``loop.eval_episodes = 0`` no episode is run: the eval return
       is the mean return of the training episodes that ended since the last evaluation (nan when none did).
    5. At an episode end: a checkpoint when ``loop.checkpoint_every`` steps have passed since the last one (or
       the run is done); :meth:`_reset_env`.

    A last checkpoint and the learning curve follow the loop. :meth:`resume` rebuilds a run from its last
    checkpoint. Subclasses call :meth:`_setup` first in ``__init__``, then build ``self.buffer`` (and, to use
    :meth:`_retrain`, ``self.model`` and ``self.trainer``), and provide :meth:`_act`, :meth:`_learn`,
    :meth:`_eval_act`, :meth:`state_dict`, :meth:`load_state_dict`, :meth:`_buffers` and :meth:`_plot_title`.
    """

    kind = ""

    cfg: AgentConfig
    run: RunDir | None
    task: TaskConfig
    buffer: ReplayBuffer
    model: GaussianEnsemble | None
    trainer: DynamicsTrainer | None

    def _setup(self, cfg: AgentConfig, run: RunDir | None, task: TaskConfig | None, progress: bool | None) -> None:
        """Config checks, device, the seeded training and evaluation envs and the (checkpointed) loop state."""
        if cfg.kind != self.kind:
            raise ValueError(f"kind: {type(self).__name__} needs kind={self.kind!r}, got {cfg.kind!r}")
        self.cfg = cfg
        self.run = run
        self.progress = progress
        self.task = task or load_task(cfg.env)
        self.device = resolve_device(cfg.device)
        self.env = make_env(self.task, seed=cfg.seed)
        self.eval_env = make_env(self.task, seed=cfg.seed + EVAL_SEED_OFFSET)
        self.env.action_space.seed(cfg.seed)
        self.step = 0
        self.episode = 0
        self.trained_upto = 0  # buffer rows the model has been trained on
        self.wall_time = 0.0
        self.last_eval = float("nan")
        # returns of the training episodes that ended since the last evaluation (rebuilt from metrics.csv on
        # resume); with loop.eval_episodes = 0 their mean is the evaluation
        self.recent_returns: list[float] = []
        self._t0 = time.perf_counter()

    # ------------------------------------------------------------------ the loop
    def train(self) -> dict[str, float]:
        cfg, loop = self.cfg, self.cfg.loop
        obs = self._reset_env()
        ep_return, ep_len = 0.0, 0
        last_ckpt = self.step
        self._t0 = time.perf_counter() - self.wall_time
        bar = progress_bar(cfg.steps, f"{self.kind} {self.task.name}", self.step, self.progress)
        while self.step < cfg.steps:
            action = self.env.action_space.sample() if self.step < loop.init_steps else self._act(obs)
            next_obs, reward, terminated, truncated, _ = self.env.step(action)
            self.buffer.add(obs, action, reward, next_obs, terminated, truncated)
            self.step += 1
            ep_return += float(reward)
            ep_len += 1
            bar.update(1)

            self._learn()
            done = terminated or truncated
            if done:
                self.episode += 1
                self._log(episode=self.episode, episode_return=ep_return, episode_length=ep_len,
                          wall_time=self._elapsed())
                self.recent_returns.append(ep_return)
                ep_return, ep_len = 0.0, 0
            if self.step % loop.eval_every == 0:
                if loop.eval_episodes:
                    self.last_eval = run_episodes(self.eval_env, self._eval_act, loop.eval_episodes,
                                                  seed=cfg.seed + EVAL_SEED_OFFSET + self.step,
                                                  on_reset=self._reset_eval_agent)
                else:  # the training episodes are the evaluation (PETS acts with its planner in every episode)
                    self.last_eval = float(np.mean(self.recent_returns)) if self.recent_returns else float("nan")
                self.recent_returns.clear()
                self._log(eval_return=self.last_eval, wall_time=self._elapsed())
                bar.set_postfix(eval=f"{self.last_eval:.1f}")

            if done:
                if self.step - last_ckpt >= loop.checkpoint_every or self.step >= cfg.steps:
                    self.wall_time = self._elapsed()
                    self.save_checkpoint()
                    last_ckpt = self.step
                obs = self._reset_env()
            else:
                obs = next_obs
        bar.close()
        self.wall_time = self._elapsed()
        self.save_checkpoint()
        if self.run is not None:
            self.run.plot(self._plot_title())
        return {"env_steps": float(self.step), "eval_return": self.last_eval, "wall_time": self.wall_time}

    # ------------------------------------------------------------------ hooks
    def _act(self, obs: np.ndarray) -> np.ndarray:
        """The training action at ``obs`` once the random ``init_steps`` are over."""
        raise NotImplementedError

    def _learn(self) -> None:
        """The agent's work after each env step (``self.step`` already counts it)."""
        raise NotImplementedError

    def _eval_act(self, obs: np.ndarray) -> np.ndarray:
        """The evaluation action at ``obs``."""
        raise NotImplementedError

    def _reset_eval_agent(self) -> None:
        """Called after each evaluation episode's reset (default: nothing)."""

    def _reset_env(self) -> np.ndarray:
        obs, _ = self.env.reset()
        return obs

    def _plot_title(self) -> str:
        raise NotImplementedError

    def _elapsed(self) -> float:
        """Seconds of training so far, including those before a resume."""
        return time.perf_counter() - self._t0

    def _retrain_due(self) -> bool:
        """True at ``init_steps`` and every ``train_every`` steps after it."""
        loop = self.cfg.loop
        return self.step >= loop.init_steps and (self.step - loop.init_steps) % loop.train_every == 0

    def _retrain(self, wall: float) -> None:
        """Score the model on the rows it has not seen (after its first fit), refit it on the buffer, log both."""
        assert self.model is not None and self.trainer is not None
        data = self.buffer.transitions(device=self.device)
        row: dict[str, Any] = {}
        if self.trainer.fits > 0 and len(data) > self.trained_upto:
            fresh = data.index(torch.arange(self.trained_upto, len(data), device=self.device))
            ends = (data.terminated.cpu().numpy() | self.buffer.truncated())[self.trained_upto:]
            row.update(model_metrics(self.model, fresh, ends, self.cfg.loop.rollout_error_horizon))
        report = self.trainer.fit(data)
        self.trained_upto = len(data)
        row["model_fit_s"] = report.wall_time
        if report.rolled_back:
            row["model_rollback"] = 1
        if report.outer_steps:
            row["u"] = report.outer_steps[-1].get("u", report.outer_steps[-1].get("u_mean_diag"))
        self._log(wall_time=wall, **row)

    def _log(self, **row: Any) -> None:
        if self.run is not None:
            self.run.log({"env_step": self.step, **row})

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def _model_state(self) -> dict[str, Any]:
        """The model's and the trainer's part of a checkpoint (the objective's U is in the trainer's)."""
        assert self.model is not None and self.trainer is not None
        return {"model": self.model.state_dict(), "trainer": self.trainer.state_dict()}

    def _load_model_state(self, state: dict[str, Any]) -> None:
        assert self.model is not None and self.trainer is not None
        self.model.load_state_dict(state["model"])
        trainer_state = state["trainer"]
        if "objective" not in trainer_state and state.get("objective_u") is not None:
            # a checkpoint of up to dc4d05d kept a fixed or heuristic U here, beside the trainer's state
            trainer_state = {**trainer_state, "objective_u": state["objective_u"]}
        self.trainer.load_state_dict(trainer_state)

    def _buffers(self) -> dict[str, ReplayBuffer]:
        """The replay buffers saved with each checkpoint, by name."""
        return {"buffer": self.buffer}

    def _restore_buffers(self, run: RunDir, state: dict[str, Any]) -> None:
        """Load the buffers saved with the checkpoint ``state`` into the agent."""
        self.buffer = run.load_buffer(state, "buffer")

    def save_checkpoint(self) -> None:
        if self.run is not None:
            self.run.save_checkpoint(self.state_dict(), self._buffers())

    @classmethod
    def resume(cls, run: RunDir, progress: bool | None = None) -> Self:
        """Rebuild a run from its directory and last checkpoint (a run with no checkpoint starts over)."""
        agent = cls(run.config(), run, progress=progress)  # type: ignore[call-arg]
        state = run.load_checkpoint()
        if state is None:
            run.truncate_metrics(-1)
            return agent
        agent.load_state_dict(state)
        try:
            agent._restore_buffers(run, state)
        except CheckpointError as e:  # buffers that do not fit latest.pt: the previous checkpoint, if any
            state = run._fall_back(f"does not match its buffers ({e})", error=e)
            agent = cls(run.config(), run, progress=progress)  # type: ignore[call-arg]
            agent.load_state_dict(state)
            agent._restore_buffers(run, state)
        run.truncate_metrics(agent.step)
        for row in run.read_metrics():
            if row.get("episode_return", "") != "":
                agent.recent_returns.append(float(row["episode_return"]))
            if row.get("eval_return", "") != "":
                agent.recent_returns.clear()
        return agent
