"""The reward-matrix types: their state round-trips, option errors naming the field, one list of names, and
checkpoints of the format before they had a state (up to dc4d05d) resuming to the same U and the same fit."""

import copy
import io
import math
import types

import numpy as np
import pytest
import torch

from mbrl_po import DynamicsTrainer, GaussianEnsemble
from mbrl_po.agents.common import AgentLoop
from mbrl_po.config import REWARD_MATRIX_NAMES
from mbrl_po.objectives import (
    FixedRewardMatrix,
    HeuristicRewardMatrix,
    LearnedRewardMatrix,
    MSEObjective,
    NLLObjective,
    PGObjective,
    StateHeuristicRewardMatrix,
    StateLearnedRewardMatrix,
    make_objective,
    make_reward_matrix,
)
from mbrl_po.objectives.names import NEEDS_A_MATRIX, REWARD_MATRICES, REWARD_MATRIX_OPTIONS

SPD = torch.tensor([[2.0, 0.3, 0.0], [0.3, 1.0, 0.2], [0.0, 0.2, 0.5]])

#: (id, name, options) covering every type and every option that changes its state
SPECS = [
    ("identity", "identity", {}),
    ("fixed-scalar", "fixed", {"init": 0.3}),
    ("fixed-matrix", "fixed", {"init": SPD}),
    ("scaled-marginal", "scaled", {"covariance": "marginal"}),
    ("scaled-residual", "scaled", {}),
    ("inverse_cov-diag", "inverse_cov", {}),
    ("inverse_cov-full", "inverse_cov", {"structure": "full"}),
    ("inverse_cov-full-marginal", "inverse_cov", {"structure": "full", "covariance": "marginal"}),
    ("learned-scalar", "learned", {}),
    ("learned-diag", "learned", {"structure": "diag"}),
    ("learned-full", "learned", {"structure": "full"}),
    ("learned-init-matrix", "learned", {"structure": "full", "init": SPD}),
    ("learned-init-residual", "learned", {"init": "residual"}),
    ("learned-diag-init-residual", "learned", {"structure": "diag", "init": "residual"}),
    ("learned-base", "learned", {"base": "residual"}),
    ("learned-diag-base", "learned", {"structure": "diag", "base": "residual"}),
]


def _targets(seed: int, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(200, 3, generator=g) @ torch.tensor([[1.0, 0.4, 0.0], [0.0, 2.0, 0.3],
                                                                   [0.0, 0.0, 0.5]])


def _through_a_file(state: dict) -> dict:
    """``state`` as a checkpoint brings it back (torch.save, torch.load onto the CPU)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, map_location="cpu", weights_only=False)


def _perturb(rm) -> None:  # noqa: ANN001 - what a solver step does to a learned U
    if isinstance(rm, LearnedRewardMatrix):
        with torch.no_grad():
            rm.parameter.add_(0.1 * torch.arange(rm.parameter.numel()).reshape(rm.parameter.shape).tril()
                              if rm.structure == "full" else 0.1 + 0.05 * torch.arange(rm.parameter.numel()))


def _same(a, b) -> None:  # noqa: ANN001
    assert a.ready == b.ready
    if a.ready:
        assert torch.equal(a.matrix().detach(), b.matrix().detach())
    assert a.describe() == b.describe()


@pytest.mark.parametrize(("name", "options"), [s[1:] for s in SPECS], ids=[s[0] for s in SPECS])
@pytest.mark.parametrize("observed", [False, True], ids=["before-residuals", "after-residuals"])
def test_state_dict_round_trip_restores_u_and_what_happens_next(name, options, observed):
    """A loaded state gives the same U, and the same U after the next fit's setup and residuals: for a learned
    U that takes φ, a pending residual init and the base U; for a heuristic, Σ̂."""
    lam = 2.0
    rm = make_reward_matrix(name, lam, **options)
    fresh = make_reward_matrix(name, lam, **options)
    empty = rm.state_dict()  # before setup: nothing to restore, and loading it leaves U unset
    fresh.load_state_dict(_through_a_file(empty))
    assert not fresh.ready
    rm.setup(_targets(0))
    if observed:
        rm.observe_residuals(_targets(1, 0.3).reshape(2, 100, 3))
    _perturb(rm)
    state = _through_a_file(rm.state_dict())
    _perturb(rm)  # the saved state is a copy: later changes do not reach it
    rm.load_state_dict(copy.deepcopy(state))
    loaded = make_reward_matrix(name, lam, **options)
    loaded.load_state_dict(state)
    _same(rm, loaded)
    if isinstance(rm, LearnedRewardMatrix):
        assert loaded.pending_residual_init == rm.pending_residual_init == (options.get("init") == "residual"
                                                                            and not observed)
        assert (loaded.base_u is None) == (options.get("base") is None)
    for a in (rm, loaded):  # the next fit: new targets, then the residuals of its untrained model
        a.setup(_targets(2, 1.5))
        a.observe_residuals(_targets(3, 0.2))
    _same(rm, loaded)
    if options.get("init") == "residual" and not observed:  # the pending init took these residuals
        assert not loaded.pending_residual_init
        assert not torch.allclose(loaded.matrix().detach(), torch.eye(3))


def test_the_base_u_and_the_pending_init_are_in_the_state():
    lam = 2.0
    base = LearnedRewardMatrix(lam, structure="diag", base="residual")
    base.setup(_targets(0))
    r = _targets(1, 0.3)
    base.observe_residuals(r)
    saved = base.state_dict()
    s = (r.T.double() @ r.double() / r.shape[0]).float()
    torch.testing.assert_close(saved["base_u"], lam / (2 * s.diagonal()))
    loaded = LearnedRewardMatrix(lam, structure="diag", base="residual")
    loaded.load_state_dict(saved)
    loaded.setup(_targets(5, 3.0))  # a setup keeps the loaded base (it would start from the marginal Σ̂ without)
    torch.testing.assert_close(loaded.matrix().diagonal().detach(), lam / (2 * s.diagonal()))
    pending = LearnedRewardMatrix(lam, init="residual")
    pending.setup(_targets(0))
    assert pending.state_dict()["pending_residual_init"] is True
    restored = LearnedRewardMatrix(lam, init="residual")
    restored.load_state_dict(pending.state_dict())
    restored.setup(_targets(0))
    restored.observe_residuals(r)
    assert restored.describe()["u"] == pytest.approx(lam * 3 / (2 * float(s.trace())), rel=1e-5)


def test_a_loaded_learned_u_keeps_its_parameter_so_an_optimizer_holding_it_works_on():
    rm = LearnedRewardMatrix(1.0, structure="diag")
    rm.setup(_targets(0))
    phi = rm.parameter
    other = LearnedRewardMatrix(1.0, structure="diag")
    other.setup(_targets(0))
    _perturb(other)
    rm.load_state_dict(other.state_dict())
    assert rm.parameter is phi and torch.equal(phi, other.parameter)


def test_loading_a_state_of_another_kind_or_structure_names_the_field():
    learned = LearnedRewardMatrix(1.0)
    learned.setup(_targets(0))
    with pytest.raises(ValueError, match="kind: the saved reward matrix is 'learned', this one is 'scaled'"):
        HeuristicRewardMatrix("scaled").load_state_dict(learned.state_dict())
    with pytest.raises(ValueError, match="structure: the saved learned U is 'scalar', this one is 'diag'"):
        LearnedRewardMatrix(1.0, structure="diag").load_state_dict(learned.state_dict())
    with pytest.raises(ValueError, match=r"state: the saved 'identity' reward matrix lacks \['u'\]"):
        FixedRewardMatrix().load_state_dict({"kind": "identity"})
    with pytest.raises(ValueError, match="state: the 'nll' objective keeps no state"):
        NLLObjective().load_state_dict({"reward_matrix": {}})


@pytest.mark.parametrize(("build", "message"), [
    (lambda: make_reward_matrix("magic"), r"reward_matrix: got 'magic', allowed \['identity', 'scaled', "),
    (lambda: make_reward_matrix("learned", bogus=1), r"bogus: not a reward-matrix option, allowed \['base', "),
    (lambda: make_reward_matrix("identity", structure="diag"),
     r"structure: got 'diag' for reward_matrix='identity', allowed only with reward_matrix in \['scaled', "),
    (lambda: make_reward_matrix("learned", covariance="marginal"),
     r"covariance: got 'marginal' for reward_matrix='learned', allowed only with reward_matrix in \['scaled', "
     r"'inverse_cov'\]"),
    (lambda: make_reward_matrix("fixed"), "init: reward_matrix='fixed' needs the matrix U"),
    (lambda: make_reward_matrix("fixed", init=-1.0), "init: a scalar U must be a finite number > 0, got -1.0"),
    (lambda: make_reward_matrix("fixed", init=torch.ones(2, 2)), "init: must be positive definite"),
    (lambda: FixedRewardMatrix(0.0), "u: a scalar U must be a finite number > 0, got 0.0"),
    (lambda: FixedRewardMatrix(float("inf")), "u: a scalar U must be a finite number > 0, got inf"),
    (lambda: FixedRewardMatrix("I"), "u: got 'I' for reward_matrix='fixed', allowed a scalar > 0"),
    (lambda: FixedRewardMatrix(torch.eye(3)).setup(torch.randn(5, 4)), r"u: U is \(3, 3\) but the targets have T=4"),
    (lambda: HeuristicRewardMatrix("learned"), r"kind: got 'learned', allowed \['scaled', 'inverse_cov'\]"),
    (lambda: HeuristicRewardMatrix(covariance="both"), r"covariance: got 'both', allowed \['residual', 'marginal'\]"),
    (lambda: HeuristicRewardMatrix("scaled", structure="diag"),
     r"structure: got 'diag' for reward_matrix='scaled', allowed \[None\]"),
    (lambda: HeuristicRewardMatrix("inverse_cov", structure="scalar"),
     r"structure: got 'scalar' for reward_matrix='inverse_cov', allowed \['diag', 'full'\]"),
    (lambda: HeuristicRewardMatrix(entropy_weight=float("nan")), "entropy_weight: λ must be a finite number > 0"),
    (lambda: HeuristicRewardMatrix(jitter=-1.0), "jitter: got -1.0, allowed a finite number >= 0"),
    (lambda: LearnedRewardMatrix(structure="tri"),
     r"structure: got 'tri' for reward_matrix='learned', allowed \['scalar', 'diag', 'full'\]"),
    (lambda: LearnedRewardMatrix(init="marginal"), "init: got 'marginal' for reward_matrix='learned', allowed None"),
    (lambda: LearnedRewardMatrix(init=0.0), "init: a scalar U must be a finite number > 0"),
    (lambda: LearnedRewardMatrix(base="marginal"),
     r"base: got 'marginal' for reward_matrix='learned', allowed \[None, 'residual'\]"),
    (lambda: LearnedRewardMatrix(structure="full", init=SPD).setup(torch.randn(5, 4)),
     r"init: U is \(3, 3\) but the targets have T=4"),
    (lambda: PGObjective(FixedRewardMatrix(), structure="diag"),
     "structure: got 'diag' with a RewardMatrix object; it is that object's option"),
    (lambda: PGObjective(LearnedRewardMatrix(2.0), entropy_weight=1.0),
     r"entropy_weight: 1.0 differs from the reward matrix's λ \(2.0\)"),
    (lambda: PGObjective(object()), "reward_matrix: got <object object"),
])
def test_bad_options_raise_naming_the_field(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_the_names_are_declared_once_and_map_to_their_types():
    assert REWARD_MATRICES == tuple(REWARD_MATRIX_OPTIONS) == ("identity", "scaled", "inverse_cov", "learned",
                                                              "fixed", "state_inverse_cov", "state_learned")
    assert REWARD_MATRIX_NAMES == tuple(n for n in REWARD_MATRICES if n not in NEEDS_A_MATRIX)  # the config's
    assert "fixed" not in REWARD_MATRIX_NAMES
    valid = {"covariance": "marginal", "structure": "full", "init": SPD, "base": None, "beta": 0.5, "fit_steps": 4}
    expected = {"identity": FixedRewardMatrix, "fixed": FixedRewardMatrix, "scaled": HeuristicRewardMatrix,
                "inverse_cov": HeuristicRewardMatrix, "learned": LearnedRewardMatrix,
                "state_inverse_cov": StateHeuristicRewardMatrix, "state_learned": StateLearnedRewardMatrix}
    for name, takes in REWARD_MATRIX_OPTIONS.items():
        # state_learned: the residual init, whose heuristic takes fit_steps
        opts = {k: ("residual" if name == "state_learned" and k == "init" else valid[k]) for k in takes
                if not (name == "scaled" and k == "structure")}
        rm = make_reward_matrix(name, 1.0, **opts)  # every listed option is one the type takes
        assert type(rm) is expected[name] and rm.kind == name
        assert make_objective("pg", reward_matrix=name, **opts).reward_matrix.kind == name
    assert FixedRewardMatrix().is_diagonal() and not FixedRewardMatrix(0.3).is_diagonal()
    assert FixedRewardMatrix().entropy_weight is None  # a given U does not depend on λ


def test_objectives_state_dicts():
    assert NLLObjective().state_dict() == {} and MSEObjective().state_dict() == {}
    NLLObjective().load_state_dict({})
    pg = PGObjective("inverse_cov", entropy_weight=2.0)
    pg.reward_matrix.setup(_targets(0))
    state = pg.state_dict()
    assert set(state) == {"reward_matrix"} and state["reward_matrix"]["kind"] == "inverse_cov"
    other = PGObjective("inverse_cov", entropy_weight=2.0)
    other.load_state_dict(state)
    assert torch.equal(other.reward_matrix.matrix(), pg.reward_matrix.matrix())


# ---------------------------------------------------------------------------------------------- old checkpoints
def dc4d05d_format(state: dict) -> dict:
    """An agent's model state (``{"model", "trainer", ...}``) as mbrl_po up to commit dc4d05d wrote it: the trainer's
    state had no ``objective``; ``BilevelSolver.state_dict()`` was ``{"phi", "dim", "optimizer", "history"}`` (φ
    None before the first fit); and the agent saved ``objective_u``, the objective's ``RewardMatrix._u`` buffer:
    the (T, T) U of a fixed or heuristic U, an empty tensor for a learned one or before the first fit, None for
    NLL/MSE (no reward matrix)."""
    state = copy.deepcopy(state)
    trainer = state["trainer"]
    rm = trainer.pop("objective").get("reward_matrix")
    if rm is None:
        state["objective_u"] = None
    elif rm["kind"] == "learned":
        state["objective_u"] = torch.empty(0)
        if trainer["bilevel"] is not None:
            trainer["bilevel"] = {"phi": rm["phi"], "dim": rm["dim"], **trainer["bilevel"]}
    else:
        state["objective_u"] = torch.empty(0) if rm["u"] is None else rm["u"]
    return state


def _data(seed: int):
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(300, 3)).astype(np.float32)
    act = rng.uniform(-1, 1, size=(300, 1)).astype(np.float32)
    nxt = obs + 0.1 * np.tanh(obs) + 0.1 * act + 0.1 * rng.normal(size=(300, 3)) * np.array([1, 2, 0.5])
    rew = obs.sum(1) + 0.3 * rng.normal(size=300)
    return obs, act, nxt.astype(np.float32), rew.astype(np.float32)


def _agent(name: str, options: dict):  # noqa: ANN202 - what AgentLoop's checkpoint code sees of an agent
    torch.manual_seed(3)
    model = GaussianEnsemble(3, 1, ensemble_size=3, num_elites=2, hidden_sizes=(16, 16))
    trainer = DynamicsTrainer(model, name, objective_options=options, max_epochs=3, patience=None, batch_size=64,
                              seed=5, progress=False)
    return types.SimpleNamespace(model=model, trainer=trainer, device=torch.device("cpu"))


def _u(agent) -> torch.Tensor | None:  # noqa: ANN001
    rm = getattr(agent.trainer.objective, "reward_matrix", None)
    return None if rm is None or not rm.ready else rm.matrix().detach().clone()


RESUMED = {
    "nll": ("nll", {}),
    "identity": ("pg", {"reward_matrix": "identity"}),
    "fixed": ("pg", {"reward_matrix": "fixed", "init": 0.3}),
    "scaled-marginal": ("pg", {"reward_matrix": "scaled", "covariance": "marginal"}),
    "inverse_cov-full": ("pg", {"reward_matrix": "inverse_cov", "structure": "full"}),
    "learned": ("pg", {"reward_matrix": "learned"}),
    "learned-diag-init-residual": ("pg", {"reward_matrix": "learned", "structure": "diag", "init": "residual"}),
    "learned-base": ("pg", {"reward_matrix": "learned", "base": "residual"}),
}


def _phi(agent) -> torch.Tensor | None:  # noqa: ANN001
    phi = getattr(getattr(agent.trainer.objective, "reward_matrix", None), "parameter", None)
    return None if phi is None else phi.detach().clone()


def _equal(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and torch.equal(a, b))


@pytest.mark.parametrize(("name", "options"), RESUMED.values(), ids=RESUMED.keys())
@pytest.mark.parametrize("fits_before", [0, 1])
def test_an_old_format_checkpoint_restores_the_same_u_and_resumes_identically(name, options, fits_before):
    """Checkpoints written before the objective had a state (up to dc4d05d) load: the same U (a learned U's φ;
    its base U, which they lacked, is re-estimated at the next fit as it was then), and the next fit gives bit for
    bit the weights, metrics and U of the run that was never stopped, as a resume from the new format does."""
    run = _agent(name, options)
    for _ in range(fits_before):
        run.trainer.fit(*_data(0))
    new = copy.deepcopy(AgentLoop._model_state(run))
    assert "objective_u" not in new and "objective" in new["trainer"]
    assert new["trainer"]["bilevel"] is None or "phi" not in new["trainer"]["bilevel"]
    old = _through_a_file(dc4d05d_format(new))
    u_then, phi_then = _u(run), _phi(run)
    report = run.trainer.fit(*_data(1))
    for state in (old, _through_a_file(new)):
        resumed = _agent(name, options)
        AgentLoop._load_model_state(resumed, copy.deepcopy(state))
        assert _equal(_phi(resumed), phi_then)
        if state is old and options.get("base") and fits_before:
            assert resumed.trainer.objective.reward_matrix.base_u is None
        else:
            assert _equal(_u(resumed), u_then)
        again = resumed.trainer.fit(*_data(1))
        assert again.epochs == report.epochs and again.outer_steps == report.outer_steps
        for k, v in run.model.state_dict().items():
            assert torch.equal(v, resumed.model.state_dict()[k]), k
        assert _equal(_u(resumed), _u(run))


def test_an_old_solver_state_restores_phi_and_clears_a_pending_init():
    """``BilevelSolver.load_state_dict`` of the old format (φ inside) on its own, as a resumed agent's trainer
    calls it."""
    from mbrl_po import BilevelSolver

    solver = BilevelSolver(PGObjective("learned", structure="diag", init="residual"))
    rm = solver.reward_matrix
    rm.setup(_targets(0))
    assert rm.pending_residual_init
    phi = torch.log(torch.tensor([0.3, 0.5, 2.0]))
    solver.load_state_dict({"phi": phi, "dim": 3, "optimizer": None, "history": [{"u": 1.0}]})
    assert not rm.pending_residual_init and solver.history == [{"u": 1.0}]
    torch.testing.assert_close(rm.matrix().diagonal().detach(), torch.tensor([0.3, 0.5, 2.0]))
    rm.observe_residuals(_targets(1))
    torch.testing.assert_close(rm.matrix().diagonal().detach(), torch.tensor([0.3, 0.5, 2.0]))
    solver.load_state_dict({"phi": None, "dim": None, "optimizer": None, "history": []})  # before any fit: as it was
    torch.testing.assert_close(rm.matrix().diagonal().detach(), torch.tensor([0.3, 0.5, 2.0]))
    assert math.isclose(rm.parameter.detach()[0].item(), math.log(0.3), rel_tol=1e-6)
