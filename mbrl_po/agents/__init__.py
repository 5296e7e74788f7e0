"""Agent loops: :class:`PETS` (planning on the ensemble), :class:`MBPO` (SAC on model rollouts) and :class:`SAC`
(the model-free baseline), plus :class:`RunDir` (metrics, checkpoints). See ``docs/agents.md``.

The classes are imported lazily, so ``import mbrl_po.agents`` does not pull in stable-baselines3.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["MBPO", "PETS", "SAC", "RunDir"]

_WHERE = {"MBPO": "mbpo", "SAC": "mbpo", "PETS": "pets", "RunDir": "common"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
