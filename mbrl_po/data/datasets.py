"""Offline datasets: load Minari datasets or ``.npz`` transition files, write Minari datasets, build them.

Everything here speaks the transition dict of :mod:`mbrl_po.data.collect` (obs, actions, next_obs, rewards,
terminated, truncated, episode_starts; all numpy, same length B).

- :func:`load_dataset` reads a ``.npz`` file (:func:`~mbrl_po.data.collect.save_npz`), a local Minari dataset
  folder, or a Minari dataset id such as ``mujoco/halfcheetah/medium-v0`` (looked up in the local Minari root,
  then downloaded when the machine is online).
- :func:`write_minari` writes a transition dict as a Minari dataset, with our provenance in its metadata
  under ``mbrl_po_provenance``.
- :func:`collect_dataset` (``mbrl-po collect``) builds a dataset with a ``random``, ``medium`` or ``expert``
  behaviour policy (:mod:`mbrl_po.data.policies`).

Minari is an optional extra (``pip install 'mbrl-po[minari]'``); the ``.npz`` path works without it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mbrl_po.data.collect import collect, episode_ids, load_npz, save_npz, validate_transitions

__all__ = ["MINARI_ID_RE", "collect_dataset", "default_dataset_id", "episode_returns", "load_dataset",
           "minari_available", "write_minari"]

PROVENANCE_META_KEY = "mbrl_po_provenance"
# Minari's id form: (namespace/)name-v<version>, the namespace itself may hold slashes (mujoco/halfcheetah)
MINARI_ID_RE = re.compile(r"^(?:[\w.-]+/)*[\w.-]+-v\d+$")
FORMATS = ("minari", "npz")
INSTALL_HINT = "install it with `pip install 'mbrl-po[minari]'` (minari>=0.5 with h5py)"


def minari_available() -> bool:
    """Whether ``minari`` and its HDF5 backend (h5py) can be imported."""
    try:
        import h5py  # noqa: F401
        import minari  # noqa: F401
    except ImportError:
        return False
    return True


def _import_minari() -> Any:
    try:
        import h5py  # noqa: F401
        import minari
    except ImportError as e:
        raise ValueError(f"minari: not importable here ({e}); {INSTALL_HINT}, or use a .npz dataset") from e
    return minari


@contextlib.contextmanager
def _minari_root(root: str | Path | None) -> Iterator[None]:
    """Point Minari's datasets root (``MINARI_DATASETS_PATH``) at ``root`` for the duration (None: unchanged)."""
    if root is None:
        yield
        return
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(Path(root).resolve())
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


def _default_minari_root() -> Path:
    return Path(os.environ.get("MINARI_DATASETS_PATH") or Path.home() / ".minari" / "datasets")


# ---------------------------------------------------------------------------------------------- loading
def episode_returns(data: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(returns, finished): the undiscounted return of every episode in ``data`` and whether it ended
    (terminated or truncated) inside the data."""
    ids = episode_ids(data)
    n = int(ids[-1]) + 1
    returns = np.bincount(ids, weights=np.asarray(data["rewards"], np.float64), minlength=n)
    ends = np.asarray(data["terminated"], bool) | np.asarray(data["truncated"], bool)
    finished = np.zeros(n, dtype=bool)
    finished[ids[ends]] = True
    return returns, finished


def _minari_to_transitions(dataset: Any) -> dict[str, np.ndarray]:
    """A MinariDataset's episodes as one transition dict (observations (T+1, O) -> obs/next_obs pairs)."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "actions", "next_obs", "rewards", "terminated",
                                                          "truncated", "episode_starts")}
    for ep in dataset.iterate_episodes():
        obs = ep.observations
        if not isinstance(obs, np.ndarray):
            raise ValueError(f"dataset: episode {ep.id} has {type(obs).__name__} observations; only flat Box "
                             "observations (numpy arrays) are supported")
        obs = obs.reshape(obs.shape[0], -1)
        t = len(ep.rewards)
        if t == 0:
            continue
        if obs.shape[0] != t + 1:
            raise ValueError(f"dataset: episode {ep.id} has {obs.shape[0]} observations for {t} steps (expected T+1)")
        acts = np.asarray(ep.actions)
        parts["obs"].append(obs[:-1].astype(np.float32))
        parts["next_obs"].append(obs[1:].astype(np.float32))
        parts["actions"].append(acts.reshape(t, -1).astype(np.float32))
        parts["rewards"].append(np.asarray(ep.rewards, np.float32).reshape(t))
        parts["terminated"].append(np.asarray(ep.terminations, bool).reshape(t))
        parts["truncated"].append(np.asarray(ep.truncations, bool).reshape(t))
        starts = np.zeros(t, dtype=bool)
        starts[0] = True
        parts["episode_starts"].append(starts)
    if not parts["obs"]:
        raise ValueError("dataset: the Minari dataset holds no transitions")
    return {k: np.concatenate(v) for k, v in parts.items()}


def _load_minari(minari_dataset: Any, source: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    meta = dict(minari_dataset.storage.metadata)
    data = validate_transitions(_minari_to_transitions(minari_dataset))
    spec = meta.get("env_spec")
    env_id = None
    if isinstance(spec, str):
        with contextlib.suppress(ValueError, TypeError):
            env_id = json.loads(spec).get("id")
    prov: dict[str, Any] = {
        "source": source, "format": "minari", "dataset_id": meta.get("dataset_id"), "env_id": env_id,
        "algorithm_name": meta.get("algorithm_name"), "minari_version": meta.get("minari_version"),
        "total_episodes": meta.get("total_episodes"), "total_steps": meta.get("total_steps"),
    }
    ours = meta.get(PROVENANCE_META_KEY)
    if isinstance(ours, Mapping):
        prov.update({k: v for k, v in ours.items() if k not in ("source", "format")})
    return data, {k: v for k, v in prov.items() if v is not None}


def load_dataset(source: str | Path, root: str | Path | None = None,
                 download: bool = True) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Load an offline dataset as a transition dict.

    Args:
        source: one of
            - a ``.npz`` file written by :func:`~mbrl_po.data.collect.save_npz` (no Minari needed);
            - a local Minari dataset folder (the one holding ``data/``, or ``data/`` itself);
            - a Minari dataset id (``mujoco/halfcheetah/medium-v0``): read from ``root`` (default: Minari's own
              root, ``$MINARI_DATASETS_PATH`` or ``~/.minari/datasets``), else downloaded when ``download``.
        root: Minari datasets root to look ids up in.
        download: fetch a Minari id that is not stored locally (needs network access).

    Returns:
        (data, provenance): the validated transition dict (see :mod:`mbrl_po.data.collect`; obs/actions as
        float32) and a provenance dict (for Minari: dataset id, env id, algorithm, versions, plus the
        ``mbrl_po_provenance`` record of datasets built by ``mbrl-po collect``; always ``source`` and
        ``format``).

    Raises:
        ValueError: on a missing file/folder, an unknown or undownloadable id, a malformed dataset, or when a
            Minari source is given and minari is not installed.
    """
    if not isinstance(source, str | Path) or not str(source).strip():
        raise ValueError(f"dataset: expected a .npz path, a Minari dataset folder or id, got {source!r}")
    text = str(source)
    path = Path(text).expanduser()
    if path.suffix == ".npz" or path.is_file():
        if not path.is_file():
            raise ValueError(f"dataset: no such .npz file {text!r}")
        if path.suffix != ".npz":
            raise ValueError(f"dataset: {text!r} is a file but not a .npz transitions file")
        data, prov = load_npz(path)
        return data, {**prov, "source": text, "format": "npz"}
    if path.is_dir():
        data_dir = path / "data" if (path / "data" / "metadata.json").is_file() else path
        if not (data_dir / "metadata.json").is_file():
            raise ValueError(f"dataset: {text!r} is a folder but not a Minari dataset (no data/metadata.json)")
        minari = _import_minari()
        try:
            ds = minari.MinariDataset(data_dir)
        except Exception as e:  # noqa: BLE001 - minari raises many kinds; the user needs one message
            raise ValueError(f"dataset: could not read the Minari dataset at {text!r}: {e}") from e
        return _load_minari(ds, text)
    if path.is_absolute() or text.startswith((".", "~")) or (len(path.parts) > 1 and Path(path.parts[0]).is_dir()):
        raise ValueError(f"dataset: no such file or folder {text!r} (a Minari id would not start with an existing "
                         f"folder {path.parts[0]!r})")
    if not MINARI_ID_RE.match(text):
        raise ValueError(
            f"dataset: {text!r} is neither an existing .npz file or Minari dataset folder nor a Minari dataset "
            "id of the form namespace/name-v<N> (e.g. mujoco/halfcheetah/medium-v0)"
        )
    minari = _import_minari()
    local_root = Path(root) if root is not None else _default_minari_root()
    with _minari_root(root):
        if (local_root / text / "data").is_dir():
            try:
                return _load_minari(minari.load_dataset(text, download=False), text)
            except Exception as e:  # noqa: BLE001
                raise ValueError(f"dataset: could not read the local Minari dataset {text!r}: {e}") from e
        if not download:
            raise ValueError(f"dataset: Minari dataset {text!r} is not stored under {local_root} and download=False")
        try:
            ds = minari.load_dataset(text, download=True)
        except Exception as e:  # noqa: BLE001 - offline: connection errors; unknown ids: minari's own errors
            raise ValueError(
                f"dataset: Minari dataset {text!r} is not stored under {local_root} and could not be downloaded "
                f"({type(e).__name__}: {e}). Downloading needs network access (this machine may be offline); "
                "build a dataset locally with `mbrl-po collect` (docs/datasets.md) and pass its folder or .npz"
            ) from e
        return _load_minari(ds, text)


# ---------------------------------------------------------------------------------------------- writing
def write_minari(dataset_id: str, data: Mapping[str, Any], provenance: Mapping[str, Any] | None = None,
                 root: str | Path | None = None, env: Any = None, description: str | None = None,
                 overwrite: bool = False) -> Path:
    """Write a transition dict as a Minari dataset (HDF5), with ``provenance`` in its metadata.

    Each episode of ``data`` (consecutive rows; ``next_obs[i] == obs[i + 1]`` inside an episode) becomes a Minari
    episode with T+1 observations. An unfinished last episode is kept with neither flag set at its end.

    Args:
        dataset_id: Minari id, ``namespace/name-v<N>`` (e.g. ``mbrl_po/halfcheetah/medium-v0``).
        data: transition dict.
        provenance: JSON-serialisable facts (policy, return, seed, steps, commit...), stored in the metadata
            under ``mbrl_po_provenance``; its ``env_id`` (a Gymnasium id) becomes the dataset's env spec.
        root: Minari datasets root (default: Minari's own root); the dataset goes to ``<root>/<dataset_id>``.
        env: the Gymnasium env (or id) the data came from (default: ``provenance["env_id"]``; without either,
            the dataset carries unbounded Box spaces and no env spec).
        description: free text for the metadata.
        overwrite: replace an existing dataset of that id under ``root``.

    Returns:
        The dataset folder ``<root>/<dataset_id>``.

    Raises:
        ValueError: on invalid data, a malformed id, an existing dataset, missing minari, or episodes whose
            rows are not consecutive.
    """
    minari = _import_minari()
    import gymnasium as gym
    from minari.data_collector import EpisodeBuffer

    if not isinstance(dataset_id, str) or not MINARI_ID_RE.match(dataset_id):
        raise ValueError(f"dataset_id: got {dataset_id!r}, expected namespace/name-v<N> (e.g. "
                         "mbrl_po/halfcheetah/medium-v0)")
    arrays = validate_transitions(data)
    prov = dict(provenance or {})
    try:
        json.dumps(prov)
    except TypeError as e:
        raise ValueError(f"provenance: must be JSON-serialisable: {e}") from e
    root_path = Path(root) if root is not None else _default_minari_root()
    target = root_path / dataset_id
    if target.exists():
        if not overwrite:
            raise ValueError(f"dataset_id: {target} already exists; pass overwrite=True (--overwrite) to replace it")
        shutil.rmtree(target)

    ids = episode_ids(arrays)
    cuts = np.flatnonzero(np.diff(ids)) + 1
    buffers = []
    for k, rows in enumerate(np.split(np.arange(len(ids)), cuts)):
        obs, nxt = arrays["obs"][rows], arrays["next_obs"][rows]
        if len(rows) > 1 and not np.array_equal(nxt[:-1], obs[1:]):
            bad = int(rows[np.flatnonzero((nxt[:-1] != obs[1:]).any(axis=1))[0]])
            raise ValueError(f"data: episode {k} is not consecutive at row {bad} (next_obs[{bad}] != obs[{bad + 1}]); "
                             "Minari stores whole trajectories")
        buffers.append(EpisodeBuffer(
            id=k, seed=int(prov["seed"]) if k == 0 and isinstance(prov.get("seed"), int) else None,
            observations=np.concatenate([obs, nxt[-1:]]).astype(np.float32),
            actions=arrays["actions"][rows].astype(np.float32),
            rewards=arrays["rewards"][rows].astype(np.float64),
            terminations=arrays["terminated"][rows], truncations=arrays["truncated"][rows], infos={},
        ))

    env = env if env is not None else prov.get("env_id")
    spaces: dict[str, Any] = {}
    if isinstance(env, gym.Env):
        spaces = {"observation_space": env.observation_space, "action_space": env.action_space}
        env = env.spec
    elif isinstance(env, str):
        try:
            env = gym.spec(env)
        except Exception:  # noqa: BLE001 - an unregistered id: keep the data, drop the spec
            env = None
    if env is None:
        box = gym.spaces.Box
        spaces = {"observation_space": box(-np.inf, np.inf, arrays["obs"].shape[1:], np.float32),
                  "action_space": box(-np.inf, np.inf, arrays["actions"].shape[1:], np.float32)}
    with _minari_root(root_path), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(author_email|eval_env).*", category=UserWarning)
        try:
            ds = minari.create_dataset_from_buffers(
                dataset_id, buffers, env=env, algorithm_name=str(prov.get("policy", "unknown")),
                author="mbrl-po", code_permalink="mbrl_po/data/datasets.py",
                description=description or _describe(prov), data_format="hdf5", **spaces,
            )
        except Exception as e:  # noqa: BLE001
            shutil.rmtree(target, ignore_errors=True)
            raise ValueError(
                f"minari: could not write {dataset_id!r} under {root_path}: {type(e).__name__}: {e}"
            ) from e
        ds.storage.update_metadata({PROVENANCE_META_KEY: prov})
    return target


def _describe(prov: Mapping[str, Any]) -> str:
    bits = [f"{prov.get('env_id', '?')} transitions from the {prov.get('policy', '?')} policy"]
    if "mean_return" in prov:
        bits.append(f"mean episode return {prov['mean_return']:.1f}")
    bits.append("built by mbrl-po collect; provenance in metadata['mbrl_po_provenance']")
    return "; ".join(bits) + "."


# ---------------------------------------------------------------------------------------------- building
def default_dataset_id(task: str, policy: str) -> str:
    """``mbrl_po/<task>/<policy>-v0`` (a checkpoint path becomes its file stem)."""
    name = policy if policy in ("random", "medium", "expert") else Path(policy).stem
    name = re.sub(r"[^\w.]+", "_", name) or "policy"
    return f"mbrl_po/{task}/{name}-v0"


def collect_dataset(task: str, policy: str, steps: int, seed: int = 0, out: str | Path = "data/datasets",
                    fmt: str = "minari", deterministic: bool = False, dataset_id: str | None = None,
                    policy_dir: str | Path | None = None, overwrite: bool = False,
                    progress: bool | None = None, command: str = "") -> tuple[Path, dict[str, Any]]:
    """Build an offline dataset: ``steps`` transitions of ``policy`` on ``task``, written under ``out``.

    Args:
        task: task name (``halfcheetah``, ``hopper``, ``walker2d``, ...).
        policy: ``random``, ``medium``, ``expert`` (checkpoints in ``benchmarks/policies``) or a ``.pt`` path.
        steps: number of transitions.
        seed: reset seed of the first episode and seed of the policy's action noise.
        out: output folder: the Minari datasets root (``<out>/<dataset_id>``), or the folder of
            ``<task>-<policy>-s<seed>.npz``.
        fmt: ``minari`` or ``npz``.
        deterministic: act with the actor's mean action (default: sample from the SAC policy).
        dataset_id: Minari id (default :func:`default_dataset_id`).
        policy_dir: folder of the level checkpoints.
        overwrite: replace an existing dataset.
        progress: progress bar (None: when stderr is a terminal).
        command: the command line, recorded in the provenance.

    Returns:
        (path written, provenance).
    """
    import gymnasium

    from mbrl_po.data.policies import LEVELS, git_commit, make_policy
    from mbrl_po.envs.task import load_task, make_env

    if fmt not in FORMATS:
        raise ValueError(f"format: got {fmt!r}, allowed {list(FORMATS)}")
    if policy not in LEVELS and not str(policy).endswith(".pt"):
        raise ValueError(f"policy: got {policy!r}, allowed {list(LEVELS)} or a path to a .pt actor checkpoint")
    if fmt == "minari":
        _import_minari()  # fail before collecting
        dataset_id = dataset_id or default_dataset_id(task, policy)
        if not MINARI_ID_RE.match(dataset_id):
            raise ValueError(f"dataset_id: got {dataset_id!r}, expected namespace/name-v<N>")
        target = Path(out) / dataset_id
    else:
        target = Path(out) / f"{task}-{Path(policy).stem if policy not in LEVELS else policy}-s{seed}.npz"
    if target.exists() and not overwrite:
        raise ValueError(f"out: {target} already exists; pass --overwrite to replace it")
    task_cfg = load_task(task)
    env = make_env(task_cfg, seed=None)
    try:
        act, pol_prov = make_policy(env, policy, seed=seed, deterministic=deterministic, root=policy_dir,
                                    task=task)
        t0 = time.perf_counter()
        data = collect(env, int(steps), policy=act, seed=seed, progress=progress)
        wall = time.perf_counter() - t0
    finally:
        env.close()
    returns, finished = episode_returns(data)
    done = returns[finished] if finished.any() else returns
    try:
        import mujoco

        mujoco_version = mujoco.__version__
    except ImportError:
        mujoco_version = None
    prov: dict[str, Any] = {
        "task": task, "env_id": task_cfg.id, **pol_prov, "seed": int(seed), "num_steps": int(steps),
        "num_episodes": int(len(returns)), "finished_episodes": int(finished.sum()),
        "mean_return": float(done.mean()), "std_return": float(done.std()),
        "min_return": float(done.min()), "max_return": float(done.max()),
        "return_over": "finished episodes" if finished.any() else "the unfinished episode",
        "commit": git_commit(), "gymnasium": gymnasium.__version__, "mujoco": mujoco_version,
        "collector": "mbrl_po.data.collect", "collect_wall_s": round(wall, 1),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "command": command,
    }
    if fmt == "npz":
        path = save_npz(target, data, prov)
    else:
        assert dataset_id is not None
        path = write_minari(dataset_id, data, prov, root=out, env=task_cfg.id, overwrite=overwrite)
    return path, prov
