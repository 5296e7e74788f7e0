"""Turn user data (numpy arrays, tensors or an SB3 ReplayBuffer) into validated :class:`TransitionData`."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mbrl_po.types import TransitionData

ArrayLike = np.ndarray | torch.Tensor


def _as_tensor(name: str, value: Any, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        t = value.detach()
    elif isinstance(value, np.ndarray | list | tuple):
        arr = np.asarray(value)
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):  # strings, objects: torch raises
            raise ValueError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
        t = torch.as_tensor(arr)
    else:
        raise ValueError(f"{name}: expected a numpy array or a torch tensor, got {type(value).__name__}")
    if t.dtype == torch.bool and dtype != torch.bool:
        t = t.to(torch.float32)
    if not (t.is_floating_point() or t.dtype in (torch.bool, torch.int8, torch.int16, torch.int32, torch.int64)):
        raise ValueError(f"{name}: expected a numeric array, got dtype {t.dtype}")
    t = t.to(device=device, dtype=dtype)
    if dtype.is_floating_point and not torch.isfinite(t).all():
        bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"{name}: contains {bad} NaN or inf values; all entries must be finite")
    return t


def as_transitions(
    obs: ArrayLike,
    actions: ArrayLike,
    next_obs: ArrayLike,
    rewards: ArrayLike,
    terminated: ArrayLike | None = None,
    device: torch.device | str = "cpu",
) -> TransitionData:
    """Validate and convert transition arrays.

    Args:
        obs: (B, O) observations.
        actions: (B, A) actions ((B,) is read as A = 1).
        next_obs: (B, O) next observations.
        rewards: (B,) or (B, 1) rewards.
        terminated: optional (B,) termination flags.
        device: where the tensors go.

    Raises:
        ValueError: on empty data, NaN/inf, or mismatched lengths or dims, naming the field.
    """
    device = torch.device(device)
    o = _as_tensor("obs", obs, device, torch.float32)
    a = _as_tensor("actions", actions, device, torch.float32)
    no = _as_tensor("next_obs", next_obs, device, torch.float32)
    r = _as_tensor("rewards", rewards, device, torch.float32)
    if a.ndim == 1:
        a = a[:, None]
    if r.ndim == 2 and r.shape[1] == 1:
        r = r[:, 0]
    if o.ndim != 2:
        raise ValueError(f"obs: expected shape (B, O), got {tuple(o.shape)}")
    if a.ndim != 2:
        raise ValueError(f"actions: expected shape (B, A), got {tuple(a.shape)}")
    if no.ndim != 2:
        raise ValueError(f"next_obs: expected shape (B, O), got {tuple(no.shape)}")
    if r.ndim != 1:
        raise ValueError(f"rewards: expected shape (B,) or (B, 1), got {tuple(r.shape)}")
    n = o.shape[0]
    if n == 0:
        raise ValueError("obs: empty data (0 transitions); at least 1 transition is required")
    for name, t in (("actions", a), ("next_obs", no), ("rewards", r)):
        if t.shape[0] != n:
            raise ValueError(f"{name}: has {t.shape[0]} rows but obs has {n}; all fields need the same length")
    if no.shape[1] != o.shape[1]:
        raise ValueError(f"next_obs: has dim {no.shape[1]} but obs has dim {o.shape[1]}; they must match")
    if terminated is None:
        term = torch.zeros(n, dtype=torch.bool, device=device)
    else:
        term = _as_tensor("terminated", terminated, device, torch.float32).reshape(-1)
        if term.shape[0] != n:
            raise ValueError(f"terminated: has {term.shape[0]} rows but obs has {n}")
        term = term > 0.5
    return TransitionData(o, a, no, r, term)


def from_sb3_buffer(buffer: Any, device: torch.device | str = "cpu") -> TransitionData:
    """Read the filled part of a stable-baselines3 ``ReplayBuffer`` (all envs of a vectorised buffer).

    ``dones`` in SB3 are ``terminated and not truncated`` when ``handle_timeout_termination`` is on, which is
    the default; they are used as the termination flags.
    """
    size = buffer.buffer_size if buffer.full else buffer.pos
    if size == 0:
        raise ValueError("replay_buffer: empty (0 transitions stored); at least 1 transition is required")
    if getattr(buffer, "optimize_memory_usage", False):
        next_obs = np.roll(buffer.observations, -1, axis=0)[:size]
    else:
        next_obs = buffer.next_observations[:size]
    obs = buffer.observations[:size]
    actions = buffer.actions[:size]
    rewards = buffer.rewards[:size]
    dones = buffer.dones[:size]
    if hasattr(buffer, "timeouts"):
        dones = dones * (1 - buffer.timeouts[:size])
    n_envs = obs.shape[1]
    return as_transitions(
        obs.reshape(size * n_envs, -1),
        actions.reshape(size * n_envs, -1),
        next_obs.reshape(size * n_envs, -1),
        rewards.reshape(size * n_envs),
        dones.reshape(size * n_envs),
        device=device,
    )
