"""Agent loops: :class:`PETS` (planning on the ensemble), :class:`MBPO` (SAC on model rollouts) and
:class:`SACAgent` (the model-free baseline; stable-baselines3's ``SAC`` inside), plus :class:`RunDir` (metrics,
checkpoints) and :func:`agent_class` (the loop of an agent kind). See ``docs/agents.md``.

The classes are imported lazily, so ``import mbrl_po.agents`` does not pull in stable-baselines3.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["MBPO", "PETS", "RunDir", "SACAgent", "agent_class"]

_WHERE = {"MBPO": "mbpo", "SACAgent": "mbpo", "PETS": "pets", "RunDir": "common"}
_KINDS = {"pets": "PETS", "mbpo": "MBPO", "sac": "SACAgent"}


def agent_class(kind: str) -> Any:
    """The loop class of agent ``kind`` (``"pets"``, ``"mbpo"`` or ``"sac"``, :data:`mbrl_po.config.AGENT_KINDS`);
    a ValueError naming the allowed kinds otherwise."""
    if kind not in _KINDS:
        raise ValueError(f"kind: got {kind!r}, allowed {list(_KINDS)}")
    return __getattr__(_KINDS[kind])


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
