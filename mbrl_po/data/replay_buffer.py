"""A numpy ring buffer of real transitions with an explicit, checkpointed random generator.

The buffer stores float32 ``obs``, ``actions``, ``next_obs``, ``rewards`` and bool ``terminated``,
``truncated`` in preallocated arrays of ``capacity`` rows; once full, each new row overwrites the oldest.
Sampling draws indices with the buffer's own :class:`numpy.random.Generator`, and :meth:`ReplayBuffer.save`
writes that generator's state and the ring position next to the data, so a run resumed from a checkpoint
samples exactly the minibatches an uninterrupted run would::

    buf = ReplayBuffer(100_000, obs_dim=11, action_dim=3, rng=np.random.default_rng(0))
    buf.add(obs, action, reward, next_obs, terminated, truncated)
    batch = buf.sample(256, device="cuda")        # TransitionData
    buf.save("run/buffer.npz")                    # atomic
    buf = ReplayBuffer.load("run/buffer.npz")     # or buf.load(...) to restore in place
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import torch

from mbrl_po.types import TransitionData

__all__ = ["ReplayBuffer"]

_FORMAT_VERSION = 1
_FIELDS = ("obs", "actions", "next_obs", "rewards", "terminated", "truncated")

_T = TypeVar("_T")


class _class_or_instance_method(Generic[_T]):  # noqa: N801 - used as a decorator
    """Bind to the instance when called on one, to the class otherwise."""

    def __init__(self, fn: Callable[..., _T]) -> None:
        self.fn = fn
        self.__doc__ = fn.__doc__

    def __get__(self, obj: Any, owner: type) -> Callable[..., _T]:
        target = owner if obj is None else obj

        def bound(*args: Any, **kwargs: Any) -> _T:
            return self.fn(target, *args, **kwargs)

        bound.__doc__ = self.fn.__doc__
        return bound


def _check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name}: must be a positive integer, got {value!r}")
    return int(value)


def _as_float_rows(name: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    """``value`` as a float32 array of exactly ``shape``, finite; a ValueError naming ``name`` otherwise."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name}: expected a numeric array of shape {shape}, got {type(value).__name__}") from e
    if arr.shape != shape:
        # size-1 axes may be missing or extra (rewards (B, 1), actions (B,) when A = 1, a scalar reward)
        if tuple(d for d in arr.shape if d != 1) == tuple(d for d in shape if d != 1):
            arr = arr.reshape(shape)
        else:
            raise ValueError(f"{name}: expected shape {shape}, got {arr.shape}")
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise ValueError(f"{name}: contains {bad} NaN or inf values; all entries must be finite")
    return arr


def _as_bool_rows(name: str, value: Any, n: int) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    arr = np.asarray(value)
    if arr.size != n or arr.ndim > 2:
        raise ValueError(f"{name}: expected {n} flags (shape ({n},)), got shape {arr.shape}")
    if arr.dtype != np.bool_:
        if not np.issubdtype(arr.dtype, np.number):
            raise ValueError(f"{name}: expected bool flags, got dtype {arr.dtype}")
        if not np.isin(arr, (0, 1)).all():
            raise ValueError(f"{name}: expected bool (or 0/1) flags, got values {np.unique(arr)[:5]}")
    return arr.reshape(n).astype(np.bool_)


def _physical_memory() -> int | None:
    """Bytes of physical memory on this machine (None where the OS does not say)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def _check_fits_in_memory(capacity: int, obs_dim: int, action_dim: int) -> None:
    """A ValueError naming the size when ``capacity`` rows could never fit in this machine's memory."""
    need = capacity * (4 * (2 * obs_dim + action_dim + 1) + 2)  # float32 obs, next_obs, action, reward; 2 flags
    have = _physical_memory()
    if have is not None and need > have:
        raise ValueError(
            f"capacity: {capacity} transitions (obs_dim {obs_dim}, action_dim {action_dim}) need "
            f"{need / 2**30:.1f} GiB, more than this machine's {have / 2**30:.1f} GiB of memory; lower it (an "
            f"agent's real buffer holds `steps` transitions)"
        )


class ReplayBuffer:
    """Fixed-capacity FIFO buffer of transitions (numpy, host memory).

    Args:
        capacity: maximum number of stored transitions; the oldest is overwritten when full.
        obs_dim: O.
        action_dim: A.
        rng: generator used by :meth:`sample`; None creates an unseeded one. Its state is saved by :meth:`save`.

    Attributes:
        capacity, obs_dim, action_dim: as given.
        rng: the sampling generator.
    """

    def __init__(self, capacity: int, obs_dim: int, action_dim: int, rng: np.random.Generator | None = None) -> None:
        self.capacity = _check_positive_int("capacity", capacity)
        self.obs_dim = _check_positive_int("obs_dim", obs_dim)
        self.action_dim = _check_positive_int("action_dim", action_dim)
        if rng is None:
            rng = np.random.default_rng()
        elif not isinstance(rng, np.random.Generator):
            raise ValueError(f"rng: expected a numpy.random.Generator or None, got {type(rng).__name__}")
        self.rng = rng
        _check_fits_in_memory(self.capacity, self.obs_dim, self.action_dim)
        self._obs = np.zeros((self.capacity, self.obs_dim), dtype=np.float32)
        self._actions = np.zeros((self.capacity, self.action_dim), dtype=np.float32)
        self._next_obs = np.zeros((self.capacity, self.obs_dim), dtype=np.float32)
        self._rewards = np.zeros(self.capacity, dtype=np.float32)
        self._terminated = np.zeros(self.capacity, dtype=np.bool_)
        self._truncated = np.zeros(self.capacity, dtype=np.bool_)
        self._pos = 0  # next row written
        self._size = 0  # rows filled

    # ------------------------------------------------------------------ size
    def __len__(self) -> int:
        return self._size

    @property
    def full(self) -> bool:
        """Whether every row holds a transition (new ones now overwrite the oldest)."""
        return self._size == self.capacity

    @property
    def position(self) -> int:
        """Index of the ring row the next transition is written to."""
        return self._pos

    def __repr__(self) -> str:
        return (
            f"ReplayBuffer(size={self._size}, capacity={self.capacity}, obs_dim={self.obs_dim}, "
            f"action_dim={self.action_dim})"
        )

    # ------------------------------------------------------------------ writing
    def add(
        self,
        obs: Any,
        action: Any,
        reward: float | Any,
        next_obs: Any,
        terminated: bool | Any,
        truncated: bool | Any = False,
    ) -> None:
        """Store one transition.

        Args:
            obs: (O,) observation.
            action: (A,) action (a scalar when A = 1).
            reward: scalar reward.
            next_obs: (O,) next observation.
            terminated: whether the episode ended by termination at ``next_obs``.
            truncated: whether it ended by a time limit (stored, but not part of :class:`TransitionData`).

        Raises:
            ValueError: on a wrong shape or a NaN/inf entry, naming the field.
        """
        self.add_batch(
            _as_float_rows("obs", obs, (self.obs_dim,))[None],
            _as_float_rows("action", action, (self.action_dim,))[None],
            _as_float_rows("reward", reward, (1,)),
            _as_float_rows("next_obs", next_obs, (self.obs_dim,))[None],
            _as_bool_rows("terminated", terminated, 1),
            _as_bool_rows("truncated", truncated, 1),
        )

    def add_batch(
        self,
        obs: Any,
        actions: Any,
        rewards: Any,
        next_obs: Any,
        terminated: Any,
        truncated: Any | None = None,
    ) -> None:
        """Store B transitions, in order (the last ones win when B exceeds the capacity).

        Args:
            obs: (B, O) observations.
            actions: (B, A) actions ((B,) when A = 1).
            rewards: (B,) rewards ((B, 1) accepted).
            next_obs: (B, O) next observations.
            terminated: (B,) bool termination flags.
            truncated: (B,) bool truncation flags; None means all False.

        Raises:
            ValueError: on mismatched lengths, wrong dims or NaN/inf, naming the field. Nothing is written then.
        """
        o_arr = obs.detach().cpu().numpy() if isinstance(obs, torch.Tensor) else np.asarray(obs)
        if o_arr.ndim != 2:
            raise ValueError(f"obs: expected shape (B, {self.obs_dim}), got {o_arr.shape}")
        n = int(o_arr.shape[0])
        if n == 0:
            return
        o = _as_float_rows("obs", o_arr, (n, self.obs_dim))
        a = _as_float_rows("actions", actions, (n, self.action_dim))
        r = _as_float_rows("rewards", rewards, (n,))
        no = _as_float_rows("next_obs", next_obs, (n, self.obs_dim))
        te = _as_bool_rows("terminated", terminated, n)
        tr = np.zeros(n, dtype=np.bool_) if truncated is None else _as_bool_rows("truncated", truncated, n)
        if n > self.capacity:  # only the newest `capacity` rows survive; write them as if added in order
            skip = n - self.capacity
            self._pos = (self._pos + skip) % self.capacity
            o, a, r, no, te, tr = (x[skip:] for x in (o, a, r, no, te, tr))
            n = self.capacity
        idx = (self._pos + np.arange(n)) % self.capacity
        self._obs[idx] = o
        self._actions[idx] = a
        self._rewards[idx] = r
        self._next_obs[idx] = no
        self._terminated[idx] = te
        self._truncated[idx] = tr
        self._pos = int((self._pos + n) % self.capacity)
        self._size = min(self._size + n, self.capacity)

    def clear(self) -> None:
        """Forget every stored transition (the generator is left as it is)."""
        self._pos = 0
        self._size = 0

    # ------------------------------------------------------------------ reading
    def _order(self) -> np.ndarray:
        """Physical row indices of the stored transitions, oldest first."""
        if self._size < self.capacity:
            return np.arange(self._size)
        return (self._pos + np.arange(self.capacity)) % self.capacity

    def _gather(self, idx: np.ndarray, device: torch.device | str) -> TransitionData:
        dev = torch.device(device)

        def t(x: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(x[idx])).to(dev)

        return TransitionData(
            obs=t(self._obs),
            actions=t(self._actions),
            next_obs=t(self._next_obs),
            rewards=t(self._rewards),
            terminated=t(self._terminated),
        )

    def sample(self, batch_size: int, device: torch.device | str = "cpu") -> TransitionData:
        """Draw ``batch_size`` stored transitions uniformly, with replacement, using :attr:`rng`.

        Args:
            batch_size: B.
            device: where the returned tensors go.

        Returns:
            :class:`TransitionData` with (B, ·) float32 fields and (B,) bool ``terminated``.

        Raises:
            ValueError: when the buffer is empty or ``batch_size`` is not a positive integer.
        """
        batch_size = _check_positive_int("batch_size", batch_size)
        if self._size == 0:
            raise ValueError("buffer: empty (0 transitions stored); add transitions before sampling")
        # when not full the stored rows are exactly [0, size); when full every row is stored
        idx = self.rng.integers(0, self._size, size=batch_size)
        return self._gather(idx, device)

    def transitions(self, device: torch.device | str = "cpu") -> TransitionData:
        """Every stored transition, oldest first.

        Args:
            device: where the returned tensors go.

        Returns:
            :class:`TransitionData` with (len(self), ·) fields.

        Raises:
            ValueError: when the buffer is empty.
        """
        if self._size == 0:
            raise ValueError("buffer: empty (0 transitions stored); at least 1 transition is required")
        return self._gather(self._order(), device)

    def truncated(self) -> np.ndarray:
        """(len(self),) bool truncation flags, oldest first (aligned with :meth:`transitions`)."""
        return self._truncated[self._order()].copy()

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Write the stored rows, the ring position and the generator state to ``path`` (.npz), atomically.

        The file is written to a temporary file in the same directory and moved over ``path`` with
        :func:`os.replace`, so an interrupted save never leaves a truncated checkpoint. ``path`` is used
        as given (no ``.npz`` suffix is appended).
        """
        path = Path(path)
        size = self._size
        meta = {
            "version": _FORMAT_VERSION,
            "capacity": self.capacity,
            "obs_dim": self.obs_dim,
            "action_dim": self.action_dim,
            "pos": self._pos,
            "size": size,
            "rng_state": self.rng.bit_generator.state,
        }
        arrays = {
            "obs": self._obs[:size],
            "actions": self._actions[:size],
            "next_obs": self._next_obs[:size],
            "rewards": self._rewards[:size],
            "terminated": self._terminated[:size],
            "truncated": self._truncated[:size],
        }
        directory = path.parent if str(path.parent) else Path(".")
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, meta=np.array(json.dumps(meta)), **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    @_class_or_instance_method
    def load(target: type[ReplayBuffer] | ReplayBuffer, path: str | Path) -> ReplayBuffer:  # noqa: N805
        """Restore a buffer written by :meth:`save`, generator state and ring position included.

        ``ReplayBuffer.load(path)`` returns a new buffer; ``buffer.load(path)`` restores into ``buffer``
        (capacity and dims must match) and returns it. Either way the restored buffer samples exactly as
        the saved one would have.

        Raises:
            ValueError: when the file is not a buffer checkpoint, or (in place) when its capacity or dims differ.
        """
        with np.load(Path(path), allow_pickle=False) as f:
            missing = [k for k in ("meta", *_FIELDS) if k not in f.files]
            if missing:
                raise ValueError(f"path: {str(path)!r} is not a ReplayBuffer checkpoint (missing {missing})")
            meta = json.loads(str(f["meta"]))
            arrays = {k: f[k] for k in _FIELDS}
        if meta.get("version") != _FORMAT_VERSION:
            raise ValueError(f"version: got {meta.get('version')!r}, allowed {_FORMAT_VERSION}")
        rng_state = meta["rng_state"]
        bit_gen_name = rng_state["bit_generator"]
        bit_gen_cls = getattr(np.random, bit_gen_name, None)
        if bit_gen_cls is None:
            raise ValueError(f"rng_state: unknown bit generator {bit_gen_name!r}")
        if isinstance(target, ReplayBuffer):
            buf = target
            for name in ("capacity", "obs_dim", "action_dim"):
                if getattr(buf, name) != meta[name]:
                    raise ValueError(
                        f"{name}: checkpoint has {meta[name]}, this buffer has {getattr(buf, name)}; "
                        "use ReplayBuffer.load(path) to build a matching buffer"
                    )
        else:
            buf = target(meta["capacity"], meta["obs_dim"], meta["action_dim"])
        bit_gen = bit_gen_cls()
        bit_gen.state = rng_state
        buf.rng = np.random.Generator(bit_gen)
        size = int(meta["size"])
        buf._obs[:size] = arrays["obs"]
        buf._actions[:size] = arrays["actions"]
        buf._next_obs[:size] = arrays["next_obs"]
        buf._rewards[:size] = arrays["rewards"]
        buf._terminated[:size] = arrays["terminated"]
        buf._truncated[:size] = arrays["truncated"]
        buf._pos = int(meta["pos"])
        buf._size = size
        return buf
