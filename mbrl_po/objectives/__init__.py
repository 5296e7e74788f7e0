"""Dynamics objectives: the axis under study, kept outside the model.

``make_objective("nll" | "mse" | "pg" | "beta_nll", **options)`` builds one; each has
``loss(model, batch) -> (loss, metrics)`` and ``state_dict()`` / ``load_state_dict()``. The PG objective's
reward matrix U is one of the types of :mod:`mbrl_po.objectives.reward_matrix` and
:mod:`mbrl_po.objectives.state_reward_matrix` (``make_reward_matrix(name, **options)``).

The names below load on first use (PEP 562), so :mod:`mbrl_po.objectives.names` can be imported without torch.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from typing import TYPE_CHECKING, Any

from mbrl_po.objectives.names import REWARD_MATRICES

_EXPORTS = {
    "Objective": "mbrl_po.objectives.base",
    "gaussian_entropy": "mbrl_po.objectives.base",
    "gaussian_nll": "mbrl_po.objectives.base",
    "BetaNLLObjective": "mbrl_po.objectives.mle",
    "MSEObjective": "mbrl_po.objectives.mle",
    "NLLObjective": "mbrl_po.objectives.mle",
    "PGObjective": "mbrl_po.objectives.pg",
    "expected_reward": "mbrl_po.objectives.pg",
    "expected_reward_diagonal": "mbrl_po.objectives.pg",
    "mahalanobis_reward": "mbrl_po.objectives.pg",
    "FixedRewardMatrix": "mbrl_po.objectives.reward_matrix",
    "HeuristicRewardMatrix": "mbrl_po.objectives.reward_matrix",
    "LearnedRewardMatrix": "mbrl_po.objectives.reward_matrix",
    "PDMatrix": "mbrl_po.objectives.reward_matrix",
    "StateFixedRewardMatrix": "mbrl_po.objectives.state_reward_matrix",
    "StateHeuristicRewardMatrix": "mbrl_po.objectives.state_reward_matrix",
    "StateLearnedRewardMatrix": "mbrl_po.objectives.state_reward_matrix",
    "VarianceNet": "mbrl_po.objectives.state_reward_matrix",
    "RewardMatrix": "mbrl_po.objectives.reward_matrix",
    "check_positive_definite": "mbrl_po.objectives.reward_matrix",
    "make_reward_matrix": "mbrl_po.objectives.reward_matrix",
}

if TYPE_CHECKING:
    from mbrl_po.objectives.base import Objective, gaussian_entropy, gaussian_nll
    from mbrl_po.objectives.mle import BetaNLLObjective, MSEObjective, NLLObjective
    from mbrl_po.objectives.pg import PGObjective, expected_reward, expected_reward_diagonal, mahalanobis_reward
    from mbrl_po.objectives.reward_matrix import (
        FixedRewardMatrix,
        HeuristicRewardMatrix,
        LearnedRewardMatrix,
        PDMatrix,
        RewardMatrix,
        check_positive_definite,
        make_reward_matrix,
    )
    from mbrl_po.objectives.state_reward_matrix import (
        StateFixedRewardMatrix,
        StateHeuristicRewardMatrix,
        StateLearnedRewardMatrix,
        VarianceNet,
    )


def _objectives() -> dict[str, type]:
    from mbrl_po.objectives.mle import BetaNLLObjective, MSEObjective, NLLObjective
    from mbrl_po.objectives.pg import PGObjective

    return {"nll": NLLObjective, "mse": MSEObjective, "pg": PGObjective, "beta_nll": BetaNLLObjective}


def __getattr__(name: str) -> Any:
    """Import an exported name on first access (PEP 562); ``OBJECTIVES`` maps names to classes."""
    if name == "OBJECTIVES":
        return _objectives()
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mbrl_po.objectives' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def objective_options(name: str) -> tuple[str, ...]:
    """The options :func:`make_objective` takes for objective ``name`` (its constructor's arguments)."""
    objectives = _objectives()
    if name not in objectives:
        hint = difflib.get_close_matches(str(name), objectives, n=1)
        extra = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ValueError(f"objective: got {name!r}, allowed {sorted(objectives)}{extra}")
    params = inspect.signature(objectives[name].__init__).parameters
    return tuple(p for p, v in params.items() if p != "self" and v.kind not in (v.VAR_POSITIONAL, v.VAR_KEYWORD))


def make_objective(name: str, **options: Any) -> Objective:
    """Build an objective by name; unknown names or options raise ValueError listing what is allowed."""
    allowed = list(objective_options(name))
    cls = _objectives()[name]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"objective {name!r}: unknown options {unknown}, allowed {allowed}")
    return cls(**options)


__all__ = [
    "OBJECTIVES",
    "REWARD_MATRICES",
    "BetaNLLObjective",
    "FixedRewardMatrix",
    "HeuristicRewardMatrix",
    "LearnedRewardMatrix",
    "MSEObjective",
    "NLLObjective",
    "Objective",
    "PDMatrix",
    "PGObjective",
    "RewardMatrix",
    "StateFixedRewardMatrix",
    "StateHeuristicRewardMatrix",
    "StateLearnedRewardMatrix",
    "VarianceNet",
    "check_positive_definite",
    "expected_reward",
    "expected_reward_diagonal",
    "gaussian_entropy",
    "gaussian_nll",
    "mahalanobis_reward",
    "make_objective",
    "make_reward_matrix",
    "objective_options",
]
