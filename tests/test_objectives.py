"""Known answers of the objectives (paper.md §2): the PG optimum is N(μ, (λ/2)U⁻¹)."""

import math

import pytest
import torch

from mbrl_po import DynamicsTrainer, GaussianEnsemble
from mbrl_po.objectives import (
    FixedRewardMatrix,
    NLLObjective,
    PGObjective,
    expected_reward,
    gaussian_nll,
    make_objective,
    make_reward_matrix,
)
from mbrl_po.types import ModelBatch


def _full_sigma(d: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g)
    sigma = a @ a.T / d + 0.3 * torch.eye(d)
    assert (sigma - torch.diag(sigma.diagonal())).abs().max() > 0.1  # genuinely non-diagonal
    return sigma


def _gaussian_data(mu: torch.Tensor, sigma: torch.Tensor, n: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return mu + torch.randn(n, mu.shape[0], generator=g) @ torch.linalg.cholesky(sigma).T


def _constant_input_model(d: int) -> GaussianEnsemble:
    """A one-member model whose input is constant: it must learn a single Gaussian over d dims."""
    return GaussianEnsemble(
        d, 1, ensemble_size=1, num_elites=1, hidden_sizes=(16,), learn_reward=False, learn_delta=False,
        normalize_inputs=False, normalize_targets=False, init_max_logvar=5.0, logvar_bound_penalty=0.0,
    )


def _fit_constant(model: GaussianEnsemble, objective, y: torch.Tensor, epochs: int, lr: float = 3e-3):  # noqa: ANN001
    n, d = y.shape
    trainer = DynamicsTrainer(
        model, objective, lr=lr, batch_size=500, max_epochs=epochs, patience=None, bootstrap=False,
        weight_decay=0.0, holdout_fraction=0.1, progress=False,
    )
    trainer.fit(torch.zeros(n, d), torch.zeros(n, 1), y, torch.zeros(n))
    p = model.predict(torch.zeros(1, d), torch.zeros(1, 1))
    return p.next_obs_mean[0, 0], p.next_obs_std[0, 0] ** 2


def test_nll_matches_closed_form():
    g = torch.Generator().manual_seed(0)
    mean, logvar, y = (torch.randn(3, 7, 4, generator=g) for _ in range(3))
    ref = -torch.distributions.Normal(mean, torch.exp(0.5 * logvar)).log_prob(y)
    torch.testing.assert_close(gaussian_nll(mean, logvar, y), ref)

    class Fixed(torch.nn.Module):
        def forward(self, x):  # noqa: ANN001, ANN202
            return mean, logvar

    loss, _ = NLLObjective().loss(Fixed(), ModelBatch(torch.zeros(3, 7, 2), y))
    torch.testing.assert_close(loss, ref.mean(dim=(1, 2)).sum())


@pytest.mark.parametrize("estimator", ["score", "pathwise"])
def test_full_covariance_pg_with_optimal_u_recovers_mu_and_sigma(estimator):
    """Full-covariance policy, U = (λ/2)Σ⁻¹: PG recovers μ and Σ (diagonal within 10%)."""
    d, lam = 4, 0.7
    sigma = _full_sigma(d)
    mu = torch.tensor([1.0, -2.0, 0.5, 3.0])
    y = _gaussian_data(mu, sigma, 4000)
    obj = PGObjective(FixedRewardMatrix(lam / 2 * torch.linalg.inv(sigma)), entropy_weight=lam,
                      estimator=estimator, num_samples=8)
    obj.setup(None, y)
    obj.generator = torch.Generator().manual_seed(3)
    m = torch.nn.Parameter(torch.zeros(d))
    raw = torch.nn.Parameter(torch.zeros(d, d))
    opt = torch.optim.Adam([m, raw], lr=0.02)
    g = torch.Generator().manual_seed(4)
    for step in range(1500):
        if step == 1000:
            opt.param_groups[0]["lr"] = 0.005
        batch = y[torch.randint(len(y), (500,), generator=g)]
        tril = torch.tril(raw, -1) + torch.diag(torch.exp(raw.diagonal()))
        loss, _ = obj.loss_full_covariance(m.expand(500, d), tril.expand(500, d, d), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    tril = torch.tril(raw, -1) + torch.diag(torch.exp(raw.diagonal()))
    sigma_hat = (tril @ tril.T).detach()
    assert torch.allclose(m.detach(), mu, atol=0.1 * mu.abs().max())
    rel = (sigma_hat.diagonal() - sigma.diagonal()).abs() / sigma.diagonal()
    assert rel.max() < 0.10, (sigma_hat.diagonal(), sigma.diagonal())


def test_diagonal_ensemble_pg_reaches_lambda_over_2u_per_dim():
    """A diagonal Gaussian model under PG reaches σ_t² = λ/(2 U_tt): the diagonal inverse-covariance U gives
    the diagonal of Σ, the full one the conditional variances 1/(Σ⁻¹)_tt; the mean is unbiased in both."""
    d, lam = 3, 1.0
    sigma = _full_sigma(d, seed=2)
    mu = torch.tensor([2.0, -1.0, 0.5])
    y = _gaussian_data(mu, sigma, 4000)
    for structure, expected in (
        ("diag", sigma.diagonal()),
        ("full", 1.0 / torch.linalg.inv(sigma).diagonal()),
    ):
        u = lam / 2 * (torch.diag(1 / sigma.diagonal()) if structure == "diag" else torch.linalg.inv(sigma))
        obj = PGObjective(FixedRewardMatrix(u), entropy_weight=lam, num_samples=8)
        torch.manual_seed(0)
        mean, var = _fit_constant(_constant_input_model(d), obj, y, epochs=150)
        assert torch.allclose(mean, mu, atol=0.1), (structure, mean)
        rel = (var - expected).abs() / expected
        assert rel.max() < 0.10, (structure, var, expected)


@pytest.mark.parametrize("u_value", [0.5, 2.0])
def test_pg_with_scalar_u_predicts_lambda_over_2u(u_value):
    d, lam = 3, 1.0
    y = _gaussian_data(torch.zeros(d), torch.eye(d), 3000)
    obj = PGObjective(FixedRewardMatrix(u_value), entropy_weight=lam, estimator="pathwise")
    torch.manual_seed(0)
    _, var = _fit_constant(_constant_input_model(d), obj, y, epochs=100)
    expected = lam / (2 * u_value)
    assert ((var - expected).abs() / expected).max() < 0.10, var


@pytest.mark.parametrize("lam", [0.3, 1.0, 3.0])
def test_scaled_u_gives_trace_over_n_for_any_lambda(lam):
    d = 3
    sigma = torch.diag(torch.tensor([0.5, 1.0, 2.5]))
    y = _gaussian_data(torch.zeros(d), sigma, 3000)
    obj = PGObjective("scaled", entropy_weight=lam, covariance="marginal", estimator="pathwise")
    torch.manual_seed(0)
    _, var = _fit_constant(_constant_input_model(d), obj, y, epochs=100)
    expected = float(torch.cov(y.T).trace() / d)
    assert ((var - expected).abs() / expected).max() < 0.10, (lam, var, expected)


def test_gradient_estimators_match_analytic_gradient():
    """Score-function and pathwise gradients of E[r_U] + λH agree with the closed form within MC error."""
    torch.manual_seed(0)
    lam = 0.8
    u = torch.tensor([[1.0, 0.3, 0.0], [0.3, 2.0, -0.2], [0.0, -0.2, 0.7]])
    y = torch.tensor([[0.5, -1.0, 0.2]])
    mean0 = torch.tensor([[[0.1, 0.4, -0.3]]])
    logvar0 = torch.tensor([[[-0.5, 0.2, 0.1]]])

    def grads(loss_fn):  # noqa: ANN001, ANN202
        mean = mean0.clone().requires_grad_(True)
        logvar = logvar0.clone().requires_grad_(True)
        loss_fn(mean, logvar).backward()
        return torch.cat([mean.grad.flatten(), logvar.grad.flatten()])

    ref_obj = PGObjective(FixedRewardMatrix(u), entropy_weight=lam)
    ref_obj.reward_matrix.setup(y)
    analytic = grads(lambda m, lv: -ref_obj.analytic_objective(m, lv, y, u))
    for estimator, n in (("score", 200_000), ("pathwise", 50_000)):
        obj = PGObjective(FixedRewardMatrix(u), entropy_weight=lam, estimator=estimator,
                          num_samples=n)
        obj.reward_matrix.setup(y)
        obj.generator = torch.Generator().manual_seed(1)
        est = grads(lambda m, lv, o=obj: o.loss_from_prediction(m, lv, y)[0])
        # MC standard error: estimate from 10 independent batches
        reps = []
        for k in range(10):
            obj.num_samples = n // 10
            obj.generator = torch.Generator().manual_seed(100 + k)
            reps.append(grads(lambda m, lv, o=obj: o.loss_from_prediction(m, lv, y)[0]))
        se = torch.stack(reps).std(0) / math.sqrt(10)
        assert ((est - analytic).abs() <= 4 * se + 1e-4).all(), (estimator, est, analytic, se)


def test_expected_reward_closed_form_matches_monte_carlo():
    torch.manual_seed(0)
    u = torch.tensor([[2.0, 0.5], [0.5, 1.0]])
    mean, logvar, y = torch.randn(1, 1, 2), torch.randn(1, 1, 2) * 0.3, torch.randn(1, 2)
    s = mean + torch.exp(0.5 * logvar) * torch.randn(400_000, 1, 1, 2)
    d = s - y
    mc = -((d @ u) * d).sum(-1).mean()
    torch.testing.assert_close(expected_reward(mean, logvar, y, u).squeeze(), mc, atol=0.02, rtol=0.01)


def test_make_objective_errors_name_the_field():
    with pytest.raises(ValueError, match="objective.*'nl'.*did you mean 'nll'"):
        make_objective("nl")
    with pytest.raises(ValueError, match="unknown options.*bogus"):
        make_objective("pg", bogus=1)
    with pytest.raises(ValueError, match="reward_matrix.*'magic'"):
        make_objective("pg", reward_matrix="magic")
    for lam in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="entropy_weight"):
            make_objective("pg", entropy_weight=lam)
    with pytest.raises(ValueError, match="estimator"):
        make_objective("pg", estimator="reparam")
    with pytest.raises(ValueError, match="reward_transform"):
        make_objective("pg", reward_transform="log")


def test_reward_matrix_must_be_positive_definite():
    not_pd = torch.tensor([[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(ValueError, match="positive definite.*eigenvalue"):
        FixedRewardMatrix(not_pd).setup(torch.randn(10, 2))
    with pytest.raises(ValueError, match="symmetric"):
        FixedRewardMatrix(torch.tensor([[1.0, 0.5], [0.0, 1.0]])).setup(torch.randn(10, 2))
    with pytest.raises(ValueError, match="> 0"):
        FixedRewardMatrix(-2.0).setup(torch.randn(10, 2))
    with pytest.raises(ValueError, match="positive definite"):
        make_reward_matrix("learned", 1.0, init=not_pd).setup(torch.randn(10, 2))


def test_heuristic_u_formulas():
    lam = 2.0
    y = _gaussian_data(torch.zeros(3), torch.diag(torch.tensor([1.0, 2.0, 3.0])), 2000)
    cov = torch.cov(y.T)
    scaled = make_reward_matrix("scaled", lam, covariance="marginal")
    scaled.setup(y)
    torch.testing.assert_close(scaled.matrix(), lam * 3 / (2 * cov.trace()) * torch.eye(3))
    full = make_reward_matrix("inverse_cov", lam, covariance="marginal", structure="full")
    full.setup(y)
    torch.testing.assert_close(full.matrix(), lam / 2 * torch.linalg.inv(cov), rtol=1e-4, atol=1e-5)
    # residual covariance: the conditional noise, not the spread of the targets
    resid = make_reward_matrix("inverse_cov", lam, covariance="residual")
    resid.setup(y + 100 * torch.randn(2000, 3))
    resid.observe_residuals(y)
    torch.testing.assert_close(resid.matrix().diagonal(), lam / (2 * (y**2).mean(0)), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("structure", ["scalar", "diag", "full"])
def test_learned_u_starts_at_the_residual_heuristic_once(structure):
    """init='residual': U is I until the first residuals arrive, then the heuristic of those residuals, in
    place (an optimizer holding φ keeps working); later residuals leave it to the solver."""
    lam = 2.0
    sigma = torch.diag(torch.tensor([0.5, 2.0, 4.0])) if structure != "full" else _full_sigma(3)
    r = _gaussian_data(torch.zeros(3), sigma, 4000)
    rm = make_reward_matrix("learned", lam, structure=structure, init="residual")
    rm.setup(torch.randn(50, 3))
    torch.testing.assert_close(rm.matrix().detach(), torch.eye(3))
    param = rm.parameter
    rm.observe_residuals(r.reshape(2, 2000, 3))  # (E, B, T) residuals, as the trainer passes them
    s = (r.T.double() @ r.double() / r.shape[0]).float()
    expected = {"scalar": lam * 3 / (2 * s.trace()) * torch.eye(3), "diag": torch.diag(lam / (2 * s.diagonal())),
                "full": lam / 2 * torch.linalg.inv(s)}[structure]
    torch.testing.assert_close(rm.matrix().detach(), expected, rtol=1e-4, atol=1e-5)
    assert rm.parameter is param
    rm.observe_residuals(10 * r)  # only the first residuals initialise U
    torch.testing.assert_close(rm.matrix().detach(), expected, rtol=1e-4, atol=1e-5)
    # a warm start (second fit) keeps the learned U
    rm.setup(torch.randn(50, 3))
    rm.observe_residuals(10 * r)
    torch.testing.assert_close(rm.matrix().detach(), expected, rtol=1e-4, atol=1e-5)


def test_named_init_errors():
    with pytest.raises(ValueError, match="init: got 'marginal' for reward_matrix='learned'"):
        make_reward_matrix("learned", 1.0, init="marginal")
    with pytest.raises(ValueError, match="init: got 'residual' for reward_matrix='fixed'"):
        make_reward_matrix("fixed", 1.0, init="residual")
    with pytest.raises(ValueError, match=r"init: got 'residual' for reward_matrix='scaled', allowed only with "
                                         r"reward_matrix in \['learned', 'fixed', 'state_learned'\]"):
        make_objective("pg", reward_matrix="scaled", init="residual")


@pytest.mark.parametrize("structure", ["scalar", "diag"])
def test_learned_correction_on_the_residual_heuristic(structure):
    lam = 2.0
    r = _gaussian_data(torch.zeros(3), torch.diag(torch.tensor([0.5, 2.0, 4.0])), 4000)
    rm = make_reward_matrix("learned", lam, structure=structure, base="residual")
    rm.setup(3.0 * torch.randn(50, 3))
    rm.observe_residuals(r)
    s = (r.T.double() @ r.double() / r.shape[0]).float()
    heur = lam * 3 / (2 * s.trace()) * torch.ones(3) if structure == "scalar" else lam / (2 * s.diagonal())
    torch.testing.assert_close(rm.matrix().diagonal().detach(), heur, rtol=1e-4, atol=1e-6)  # φ = 0: the heuristic
    with torch.no_grad():
        rm.parameter.fill_(0.5)
    torch.testing.assert_close(rm.matrix().diagonal().detach(), heur * math.exp(0.5), rtol=1e-4, atol=1e-6)
    rm.matrix().sum().backward()  # differentiable in φ
    assert rm.parameter.grad is not None and (rm.parameter.grad > 0).all()
    rm.observe_residuals(2.0 * r)  # the base follows the residuals, the learned factor stays
    torch.testing.assert_close(rm.matrix().diagonal().detach(), heur / 4 * math.exp(0.5), rtol=1e-4, atol=1e-6)
    assert rm.describe()["u_correction"] == pytest.approx(math.exp(0.5), rel=1e-5)


def test_residual_base_errors():
    with pytest.raises(ValueError, match="base: got 'residual' for reward_matrix='inverse_cov'"):
        make_reward_matrix("inverse_cov", 1.0, base="residual")
    with pytest.raises(ValueError, match=r"structure: got 'full' with base='residual'"):
        make_reward_matrix("learned", 1.0, structure="full", base="residual")
    with pytest.raises(ValueError, match="init: not used with base='residual'"):
        make_reward_matrix("learned", 1.0, init="residual", base="residual")
