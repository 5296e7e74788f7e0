"""The bilevel solver on the paper's linear-Gaussian data (paper.md §3.2): y = x + 6 + N(0, 1.25²)."""

import pytest
import torch

from mbrl_po import BilevelSolver, DynamicsTrainer, GaussianEnsemble
from mbrl_po.objectives import PGObjective

SIGMA2 = 1.25**2


def _data(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 2, generator=g) * 10 - 5
    y = x + 6 + 1.25 * torch.randn(n, 2, generator=g)
    return x, torch.zeros(n, 1), y, torch.zeros(n)


def _model(seed: int = 1) -> GaussianEnsemble:
    torch.manual_seed(seed)
    return GaussianEnsemble(
        2, 1, ensemble_size=1, num_elites=1, hidden_sizes=(64, 64), learn_reward=False, learn_delta=False,
        normalize_targets=False, init_max_logvar=4.0, logvar_bound_penalty=0.0,
    )


def _trainer(model, objective, epochs, **kw):  # noqa: ANN001, ANN202
    return DynamicsTrainer(
        model, objective, lr=1e-2, batch_size=100, max_epochs=epochs, patience=None, bootstrap=False,
        weight_decay=0.0, holdout_fraction=1 / 11, progress=False, seed=0, **kw,
    )


@pytest.mark.parametrize("lam", [1.0])
def test_implicit_solver_drives_u_to_lambda_over_2_sigma2(lam):
    data = _data(1100, seed=0)
    obj = PGObjective("learned", entropy_weight=lam)  # starts at U = I
    solver = BilevelSolver(obj, method="implicit", lr=0.1, iterations=5)
    report = _trainer(_model(), obj, 80, bilevel=solver).fit(*data)
    u_star = lam / (2 * SIGMA2)
    u_final = report.outer_steps[-1]["u"]
    assert report.outer_steps[0]["u"] == pytest.approx(1.0, abs=0.15)  # logged from the first outer step
    assert abs(u_final - u_star) / u_star < 0.15, [round(s["u"], 3) for s in report.outer_steps[::10]]
    # U is logged at every outer step and the solver keeps its own history
    assert len(report.outer_steps) == 80 and len(solver.history) == 80
    nll_report = _trainer(_model(), "nll", 80).fit(*data)
    assert report.holdout_nll <= 1.05 * nll_report.holdout_nll, (report.holdout_nll, nll_report.holdout_nll)


def test_one_step_and_neumann_hypergradients_point_like_the_implicit_one():
    """All three approximations agree in sign on a scalar U; diag U: positive cosine with the CG solution."""
    data = _data(600, seed=1)
    for structure in ("scalar", "diag"):
        obj = PGObjective("learned", entropy_weight=1.0, structure=structure)
        model = _model()
        _trainer(model, obj, 15, bilevel=BilevelSolver(obj, lr=1e-6)).fit(*data)  # inner near its optimum
        solver = BilevelSolver(obj)
        x = model.make_inputs(data[0], data[1])
        y = model.make_targets(data[0], data[2], data[3])
        ref, info = solver.hypergradient(model, (x, y), (x, y), method="implicit")
        assert info.residual < 1.0
        for method in ("one_step", "neumann"):
            g, _ = solver.hypergradient(model, (x, y), (x, y), method=method)
            cos = torch.nn.functional.cosine_similarity(g.flatten(), ref.flatten(), dim=0)
            assert cos > 0.5, (structure, method, g, ref)
        # at U = I the model is over-confident (σ² = 0.5 < 1.5625): the hypergradient must push U down
        assert (ref > 0).all(), ref


def test_solver_keeps_u_and_optimizer_state_across_fits_and_through_state_dict():
    data = _data(400, seed=2)
    obj = PGObjective("learned", entropy_weight=1.0)
    trainer = _trainer(_model(), obj, 5)
    trainer.fit(*data)
    u1 = trainer.bilevel.history[-1]["u"]
    trainer.fit(*data)  # warm start: continues from u1, history grows
    assert len(trainer.bilevel.history) == 10
    assert trainer.bilevel.history[5]["u"] != pytest.approx(1.0, abs=1e-3)
    assert abs(trainer.bilevel.history[5]["u"] - u1) < abs(1.0 - u1)
    state = trainer.state_dict()
    obj2 = PGObjective("learned", entropy_weight=1.0)
    trainer2 = _trainer(_model(), obj2, 5)
    trainer2.load_state_dict(state)
    assert obj2.reward_matrix.parameter is not None
    torch.testing.assert_close(obj2.reward_matrix.matrix(), obj.reward_matrix.matrix())
    assert len(trainer2.bilevel.history) == 10


def test_solver_rejects_bad_configuration():
    with pytest.raises(ValueError, match="learned"):
        BilevelSolver(PGObjective("identity"))
    with pytest.raises(ValueError, match="method"):
        BilevelSolver(PGObjective("learned"), method="magic")
    with pytest.raises(ValueError, match="lr"):
        BilevelSolver(PGObjective("learned"), lr=0.0)


def test_restored_u_is_not_overwritten_by_the_residual_init():
    """A resumed agent's learned U survives: the residual init only applies to a fresh U."""
    fresh = BilevelSolver(PGObjective(reward_matrix="learned", init="residual"))
    rm = fresh.reward_matrix
    rm.setup(torch.randn(20, 3))  # a fresh U, waiting for residuals
    fresh.load_state_dict({"phi": torch.log(torch.tensor([0.3])), "dim": 3, "optimizer": None, "history": []})
    rm.setup(torch.randn(20, 3))
    rm.observe_residuals(torch.randn(2, 100, 3) * 5.0)
    assert rm.describe()["u"] == pytest.approx(0.3, rel=1e-6)


def test_learned_correction_on_the_residual_heuristic_keeps_u_at_the_answer():
    """base='residual': U = U_res · exp(φ). The heuristic already sits at λ/(2σ²) on this data, so the learned
    factor stays near 1 and U ends within 15% of the answer, like the solver started at I (test above)."""
    lam = 1.0
    data = _data(1100, seed=0)
    obj = PGObjective("learned", entropy_weight=lam, base="residual")
    solver = BilevelSolver(obj, method="implicit", lr=0.1, iterations=5)
    report = _trainer(_model(), obj, 40, bilevel=solver).fit(*data)
    u_star = lam / (2 * SIGMA2)
    last = report.outer_steps[-1]
    assert abs(last["u"] - u_star) / u_star < 0.15, [round(s["u"], 3) for s in report.outer_steps[::5]]
    assert 0.7 < last["u_correction"] < 1.4
    # the hypergradient reaches φ through the heuristic base
    x = _model().make_inputs(data[0], data[1])
    y = data[2]
    hyper, _ = solver.hypergradient(_model(), (x, y), (x, y))
    assert hyper.shape == (1,) and torch.isfinite(hyper).all() and hyper.abs().item() > 0
