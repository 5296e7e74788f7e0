"""Dynamics objectives: the axis under study, kept outside the model.

``make_objective("nll" | "mse" | "pg", **options)`` builds one; each has ``loss(model, batch) -> (loss, metrics)``.
"""

from __future__ import annotations

import difflib
import inspect
from typing import Any

from mbrl_po.objectives.base import Objective, gaussian_entropy, gaussian_nll
from mbrl_po.objectives.mle import MSEObjective, NLLObjective
from mbrl_po.objectives.pg import PGObjective, expected_reward, mahalanobis_reward
from mbrl_po.objectives.reward_matrix import REWARD_MATRICES, PDMatrix, RewardMatrix, check_positive_definite

OBJECTIVES: dict[str, type] = {"nll": NLLObjective, "mse": MSEObjective, "pg": PGObjective}


def objective_options(name: str) -> tuple[str, ...]:
    """The options :func:`make_objective` takes for objective ``name`` (its constructor's arguments)."""
    if name not in OBJECTIVES:
        hint = difflib.get_close_matches(str(name), OBJECTIVES, n=1)
        extra = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ValueError(f"objective: got {name!r}, allowed {sorted(OBJECTIVES)}{extra}")
    params = inspect.signature(OBJECTIVES[name].__init__).parameters
    return tuple(p for p, v in params.items() if p != "self" and v.kind not in (v.VAR_POSITIONAL, v.VAR_KEYWORD))


def make_objective(name: str, **options: Any) -> Objective:
    """Build an objective by name; unknown names or options raise ValueError listing what is allowed."""
    allowed = list(objective_options(name))
    cls = OBJECTIVES[name]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"objective {name!r}: unknown options {unknown}, allowed {allowed}")
    return cls(**options)


__all__ = [
    "OBJECTIVES",
    "REWARD_MATRICES",
    "MSEObjective",
    "NLLObjective",
    "Objective",
    "PDMatrix",
    "PGObjective",
    "RewardMatrix",
    "check_positive_definite",
    "expected_reward",
    "gaussian_entropy",
    "gaussian_nll",
    "mahalanobis_reward",
    "make_objective",
    "objective_options",
]
