"""The names of the reward matrices and their options, declared once (torch-free, so ``mbrl_po.config`` can
import them without loading torch).

:func:`mbrl_po.objectives.reward_matrix.make_reward_matrix` maps each name to its type and routes the PG options
by :data:`REWARD_MATRIX_OPTIONS`; the types' constructors validate the values.
"""

from __future__ import annotations

#: each reward-matrix name and the options of :class:`~mbrl_po.objectives.PGObjective` it takes (besides λ)
REWARD_MATRIX_OPTIONS: dict[str, tuple[str, ...]] = {
    "identity": (),
    "scaled": ("covariance", "structure"),
    "inverse_cov": ("covariance", "structure"),
    "learned": ("structure", "init", "base"),
    "fixed": ("init",),
    # state-dependent U(x) (mbrl_po.objectives.state_reward_matrix): the heuristic (λ/2)/σ̂²(x) and a learned U_ψ(x)
    "state_inverse_cov": ("beta", "fit_steps"),
    "state_learned": ("init", "base", "fit_steps"),
}
REWARD_MATRICES: tuple[str, ...] = tuple(REWARD_MATRIX_OPTIONS)
#: names whose U must be given as a value (``fixed``: ``init`` is U), so they cannot be chosen by name alone
NEEDS_A_MATRIX: tuple[str, ...] = ("fixed",)
#: heuristic U: Σ̂ estimated from the data
HEURISTICS: tuple[str, ...] = ("scaled", "inverse_cov")
#: U depends on the input x (a function U(x), diagonal)
STATE_DEPENDENT: tuple[str, ...] = ("state_inverse_cov", "state_learned")
#: U is learned by the bilevel solver
LEARNED: tuple[str, ...] = ("learned", "state_learned")
#: where Σ̂ comes from
COVARIANCES: tuple[str, ...] = ("residual", "marginal")
#: parameterisations of a learned U (and ``inverse_cov``'s "diag"/"full")
STRUCTURES: tuple[str, ...] = ("scalar", "diag", "full")
#: the named ``init`` of a learned U
LEARNED_INITS: tuple[str, ...] = ("residual",)
#: the ``base`` a learned U can be a correction on
LEARNED_BASES: tuple[str, ...] = ("residual",)
