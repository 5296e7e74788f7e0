"""Tests of the trajectory optimizers and of the MPC agent (CPU, seeded, each well under a second)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from mbrl_po.planning import (
    CEMConfig,
    CEMOptimizer,
    ICEMConfig,
    ICEMOptimizer,
    MPCAgent,
    MPPIConfig,
    MPPIOptimizer,
    TrajectoryOptimizer,
    colored_noise,
    make_optimizer,
    sanitize_returns,
    shift_sequence,
)
from mbrl_po.planning.mppi import correlated_noise_filter

H, A = 6, 2
LOW, HIGH = -torch.ones(A), torch.ones(A)

# Settings under which each optimizer converges on a 12-dimensional quadratic. TOL = 0.05
# is 2.5% of the action range. Worst errors over 20 seeds with these settings (seed 0, the
# one tested, in brackets): interior CEM 3e-4 (1e-4), iCEM 0.023 (0.011), MPPI 0.013 (0.011);
# rough target CEM 0.013, iCEM (white) 0.024, MPPI 0.016.
SETTINGS = {
    "cem": dict(population=300, iterations=20),
    "icem": dict(population=300, iterations=20, population_decay=1.1),
    "mppi": dict(population=1000, iterations=20, sigma=0.1, gamma=20.0, beta=1.0),
}
TOL = 0.05
# At a bound, convergence is slower: once close, the clipped coordinate has little influence
# on which samples are elites. iCEM returns its best *sample* (noisier than a mean), and
# MPPI's plan is an average of clipped samples with a *fixed* noise scale sigma = 0.1, hence
# biased inwards by up to ~0.4 * sigma. Worst errors over 20 seeds (seed 0): CEM 0.002
# (5e-4), iCEM 0.071 (0.021), MPPI 0.050 (0.015); hence a 0.1 tolerance for iCEM and MPPI.
BOUND_ITERATIONS = {"cem": 30, "icem": 30, "mppi": 20}
BOUND_TOL = {"cem": TOL, "icem": 0.1, "mppi": 0.1}


@pytest.fixture(autouse=True)
def _single_thread():
    """The tensors here are tiny: intra-op threading (FFT, matmul) only adds overhead, and a
    lot of it when the cores are shared. Restored afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def smooth_target(horizon: int = H, amplitude: float = 0.6) -> torch.Tensor:
    """A smooth (H, A) target strictly inside the bounds."""
    h = torch.arange(horizon, dtype=torch.float32)[:, None]
    phase = torch.tensor([0.0, 1.5])
    return amplitude * torch.sin(2 * math.pi * h / horizon + phase)


def quadratic(target: torch.Tensor):
    def evaluate(actions: torch.Tensor) -> torch.Tensor:  # (N, H, A) -> (N,)
        return -((actions - target) ** 2).sum(dim=(1, 2))

    return evaluate


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def build(name: str, horizon: int = H, **overrides) -> TrajectoryOptimizer:
    return make_optimizer(name, horizon, LOW, HIGH, **{**SETTINGS[name], **overrides})


# --------------------------------------------------------------------------------------------
# Optimum finding.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cem", "icem", "mppi"])
def test_finds_interior_optimum_of_smooth_quadratic(name):
    target = smooth_target()
    opt = build(name)
    plan = opt.optimize(quadratic(target), torch.zeros(H, A), gen())
    assert plan.shape == (H, A)
    assert (plan - target).abs().max() < TOL
    assert opt.best_value is not None and opt.best_value.shape == ()
    assert torch.isfinite(opt.best_value) and opt.best_value <= 0


@pytest.mark.parametrize(
    "name, overrides",
    [("cem", {}), ("icem", {"noise_beta": 0.0}), ("mppi", {})],
    ids=["cem", "icem-white", "mppi"],
)
def test_finds_interior_optimum_of_rough_quadratic(name, overrides):
    # A temporally uncorrelated target in 3-D actions. iCEM's default coloured noise (beta=2)
    # is deliberately biased towards smooth sequences, so it is tested with white noise here.
    horizon, dim = 6, 3
    target = torch.rand(horizon, dim, generator=gen(3)) * 1.6 - 0.8
    low, high = -torch.ones(dim), torch.ones(dim)
    opt = make_optimizer(name, horizon, low, high, **{**SETTINGS[name], **overrides})
    plan = opt.optimize(quadratic(target), torch.zeros(horizon, dim), gen())
    assert (plan - target).abs().max() < TOL


@pytest.mark.parametrize("name", ["cem", "icem", "mppi"])
def test_optimum_on_the_bound(name):
    target = smooth_target()
    target[:, 0] = 1.5  # above the upper bound at every step
    target[:, 1] = 1.5 * torch.cos(2 * math.pi * torch.arange(H) / H)  # outside at some steps
    expected = torch.clamp(target, LOW, HIGH)
    opt = build(name, iterations=BOUND_ITERATIONS[name])
    plan = opt.optimize(quadratic(target), torch.zeros(H, A), gen())
    assert ((plan >= LOW) & (plan <= HIGH)).all()
    assert (plan - expected).abs().max() < BOUND_TOL[name]


@pytest.mark.parametrize("name", ["cem", "icem", "mppi"])
def test_samples_stay_inside_asymmetric_bounds(name):
    low, high = torch.tensor([-0.5, 0.0]), torch.tensor([2.0, 0.1])
    seen = []

    def evaluate(actions):
        seen.append(actions)
        return -actions.square().sum(dim=(1, 2))

    opt = make_optimizer(name, 4, low, high, population=50, iterations=2)
    plan = opt.optimize(evaluate, torch.full((4, 2), 5.0), gen())
    everything = torch.cat([plan[None], *seen])
    assert ((everything >= low) & (everything <= high)).all()


# --------------------------------------------------------------------------------------------
# NaN handling.
# --------------------------------------------------------------------------------------------


def nan_half_space_objective(target: torch.Tensor, cut: float):
    """Quadratic around ``target`` but NaN whenever ``a[0, 0] > cut`` (which holds at ``target``).

    A planner that scores NaN as a number close to 0 (mbrl-lib uses -1e-10) would prefer the
    NaN candidates to all valid ones and drift into the region. The region is a half-space,
    so a mean of valid candidates is valid too; the constrained optimum has ``a[0, 0] = cut``.
    """

    def evaluate(actions):
        values = -((actions - target) ** 2).sum(dim=(1, 2))
        return torch.where(actions[:, 0, 0] > cut, torch.full_like(values, math.nan), values)

    return evaluate


@pytest.mark.parametrize("name", ["cem", "icem", "mppi"])
def test_nan_candidates_are_never_selected(name):
    target = smooth_target()
    target[0, 0] = 0.5
    cut = 0.1
    evaluate = nan_half_space_objective(target, cut)
    opt = build(name)
    plan = opt.optimize(evaluate, torch.zeros(H, A), gen())
    assert plan[0, 0] <= cut + 1e-5
    assert torch.isfinite(opt.best_value)
    assert opt.best_sequence[0, 0] <= cut
    assert torch.isfinite(evaluate(opt.best_sequence[None])).all()
    # The remaining coordinates are still optimised (loosely: the constraint is active and,
    # for iCEM, couples neighbouring steps through the coloured noise).
    assert (plan - target).flatten()[1:].abs().max() < 2 * TOL


def test_naive_nan_replacement_would_have_been_fooled():
    """Sanity check of the objective above: mbrl-lib's replacement picks NaN candidates."""
    target = smooth_target()
    target[0, 0] = 0.5
    evaluate = nan_half_space_objective(target, 0.1)
    samples = torch.rand(200, H, A, generator=gen()) * 2 - 1
    raw = evaluate(samples)
    assert torch.isnan(raw).any()
    naive = torch.nan_to_num(raw, nan=-1e-10)
    assert samples[naive.argmax(), 0, 0] > 0.1
    assert samples[sanitize_returns(raw, 200).argmax(), 0, 0] <= 0.1


@pytest.mark.parametrize("name", ["cem", "icem", "mppi"])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_all_invalid_returns_keep_previous_mean(name, bad):
    init = smooth_target() * 0.5

    def evaluate(actions):
        return torch.full((actions.shape[0],), bad)

    opt = build(name, population=20, iterations=2)
    plan = opt.optimize(evaluate, init, gen())
    assert opt.best_value == -math.inf
    assert torch.equal(opt.last_mean, init)
    assert torch.equal(opt.best_sequence, init)
    # CEM/MPPI return the (unchanged) mean, iCEM the best candidate, i.e. the initial mean.
    assert torch.equal(plan, init)


def test_sanitize_returns_maps_invalid_to_minus_inf():
    values = torch.tensor([1.0, math.nan, math.inf, -math.inf, -2.0])
    out = sanitize_returns(values, 5)
    assert out.tolist() == [1.0, -math.inf, -math.inf, -math.inf, -2.0]
    assert sanitize_returns(values[:, None], 5).shape == (5,)
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        sanitize_returns(values, 4)


# --------------------------------------------------------------------------------------------
# Determinism and noise.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cem", "icem", "mppi"])
def test_same_seed_same_plan(name):
    evaluate = quadratic(smooth_target())
    plans = [
        build(name, population=64, iterations=3).optimize(evaluate, torch.zeros(H, A), gen(s))
        for s in (7, 7, 8)
    ]
    assert torch.equal(plans[0], plans[1])
    assert not torch.equal(plans[0], plans[2])


@pytest.mark.parametrize("oversample", [1, 2])
@pytest.mark.parametrize("horizon", [1, 2, 7, 10])
@pytest.mark.parametrize("beta", [0.0, 2.0])
def test_colored_noise_has_unit_variance(horizon, beta, oversample):
    noise = colored_noise(4000, horizon, 2, beta, gen(), oversample=oversample)
    assert noise.shape == (4000, horizon, 2)
    assert (noise.var(dim=0) - 1).abs().max() < 0.1
    assert noise.mean().abs() < 0.05


def test_colored_noise_correlation():
    white = colored_noise(4000, 10, 1, 0.0, gen())[:, :, 0]
    red = colored_noise(4000, 10, 1, 2.0, gen())[:, :, 0]
    lag1 = lambda x: torch.corrcoef(x[:, :2].T)[0, 1]  # noqa: E731
    assert lag1(white).abs() < 0.1
    assert lag1(red) > 0.5
    # irfft noise is periodic: the last step is as correlated with the first as with its
    # neighbour, unless generated over a longer window and cropped.
    wrap = lambda x: torch.corrcoef(x[:, [0, -1]].T)[0, 1]  # noqa: E731
    assert wrap(red) > 0.5
    assert wrap(colored_noise(4000, 10, 1, 2.0, gen(), oversample=4)[:, :, 0]) < lag1(red) - 0.2


def test_mppi_noise_filter_rows_have_unit_norm():
    filt = correlated_noise_filter(6, 0.5)
    assert torch.allclose(filt.norm(dim=1), torch.ones(6))
    assert torch.equal(filt, filt.tril())
    assert torch.allclose(correlated_noise_filter(4, 1.0), torch.eye(4))


# --------------------------------------------------------------------------------------------
# iCEM specifics.
# --------------------------------------------------------------------------------------------


def test_icem_population_schedule_and_elite_memory():
    cfg = ICEMConfig(horizon=5, population=100, iterations=4, elite_fraction=0.1, keep_elite_fraction=0.3)
    assert [cfg.population_at(i) for i in range(4)] == [100, 80, 64, 51]
    assert ICEMConfig(horizon=5, population=40, iterations=12).population_at(10) == 8  # floor 2K
    sizes = []

    def evaluate(actions):
        sizes.append(actions.shape[0])
        return -actions.square().sum(dim=(1, 2))

    opt = ICEMOptimizer(cfg, -torch.ones(1), torch.ones(1))
    opt.optimize(evaluate, torch.zeros(5, 1), gen())
    # 3 kept elites are carried over from iteration 1 on; the mean is added at the last one.
    assert sizes == [100, 83, 67, 55]
    memory = opt._elite_memory.clone()
    assert memory.shape == (3, 5, 1)
    sizes.clear()
    seen = []
    opt.advance(2)
    opt.optimize(lambda a: seen.append(a) or evaluate(a), torch.zeros(5, 1), gen())
    assert sizes[0] == 103  # shifted elites from the previous call are carried over too
    carried = seen[0][100:]
    assert torch.equal(carried[:, :3], memory[:, 2:])
    opt.reset()
    sizes.clear()
    opt.optimize(evaluate, torch.zeros(5, 1), gen())
    assert sizes[0] == 100


# --------------------------------------------------------------------------------------------
# Config validation and factory.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cls, field, value, pattern",
    [
        (CEMConfig, "horizon", 0, r"CEMConfig\.horizon must be an integer >= 1, got 0"),
        (CEMConfig, "population", 1, r"CEMConfig\.population must be an integer >= 2, got 1"),
        (CEMConfig, "iterations", 2.5, r"CEMConfig\.iterations must be an integer >= 1, got 2\.5"),
        (CEMConfig, "elite_fraction", 0.0, r"CEMConfig\.elite_fraction must be in \(0, 1\], got 0\.0"),
        (CEMConfig, "alpha", 1.0, r"CEMConfig\.alpha must be in \[0, 1\), got 1\.0"),
        (CEMConfig, "init_std", -1.0, r"CEMConfig\.init_std must be a finite number > 0, got -1\.0"),
        (CEMConfig, "min_std", math.nan, r"CEMConfig\.min_std must be a finite number >= 0, got nan"),
        (CEMConfig, "return_mean_elites", 1, r"CEMConfig\.return_mean_elites must be a bool, got 1"),
        (ICEMConfig, "noise_beta", -0.5, r"ICEMConfig\.noise_beta must be a finite number >= 0, got -0\.5"),
        (ICEMConfig, "keep_elite_fraction", 1.5, r"ICEMConfig\.keep_elite_fraction must be in \[0, 1\]"),
        (ICEMConfig, "population_decay", 0.9, r"ICEMConfig\.population_decay must be >= 1, got 0\.9"),
        (ICEMConfig, "shift_elites", "yes", r"ICEMConfig\.shift_elites must be a bool"),
        (MPPIConfig, "gamma", 0.0, r"MPPIConfig\.gamma must be a finite number > 0, got 0\.0"),
        (MPPIConfig, "sigma", math.inf, r"MPPIConfig\.sigma must be a finite number > 0, got inf"),
        (MPPIConfig, "beta", 0.0, r"MPPIConfig\.beta must be in \(0, 1\], got 0\.0"),
        (MPPIConfig, "horizon", True, r"MPPIConfig\.horizon must be an integer >= 1, got True"),
    ],
)
def test_config_validation(cls, field, value, pattern):
    kwargs = {"horizon": 5, field: value}
    with pytest.raises(ValueError, match=pattern):
        cls(**kwargs)


def test_configs_are_frozen_and_have_defaults():
    cfg = CEMConfig(horizon=5)
    assert (cfg.population, cfg.iterations, cfg.elite_fraction, cfg.alpha) == (500, 5, 0.1, 0.1)
    assert cfg.return_mean_elites and cfg.num_elites == 50
    icfg = ICEMConfig(horizon=5)
    assert (icfg.noise_beta, icfg.keep_elite_fraction, icfg.population_decay, icfg.shift_elites) == (
        2.0,
        0.3,
        1.25,
        True,
    )
    with pytest.raises(AttributeError):
        cfg.alpha = 0.5  # type: ignore[misc]


def test_make_optimizer():
    assert isinstance(make_optimizer("cem", 5, LOW, HIGH), CEMOptimizer)
    assert isinstance(make_optimizer("ICEM", 5, LOW, HIGH, noise_beta=1.0), ICEMOptimizer)
    opt = make_optimizer("mppi", 5, np.array([-2.0, -1.0]), np.array([2.0, 1.0]), gamma=3.0)
    assert isinstance(opt, MPPIOptimizer) and opt.config.gamma == 3.0 and opt.config.horizon == 5
    assert opt.action_low.dtype == torch.float32
    with pytest.raises(ValueError, match=r"unknown optimizer 'pso'.*\['cem', 'icem', 'mppi'\]"):
        make_optimizer("pso", 5, LOW, HIGH)
    with pytest.raises(ValueError, match=r"unknown argument\(s\) \['noise_beta', 'temp'\]"):
        make_optimizer("cem", 5, LOW, HIGH, temp=1.0, noise_beta=2.0)
    with pytest.raises(ValueError, match=r"CEMConfig\.horizon"):
        make_optimizer("cem", 0, LOW, HIGH)


def test_bad_bounds_and_init_mean():
    with pytest.raises(ValueError, match="action_low must be <= action_high"):
        make_optimizer("cem", 5, torch.ones(2), torch.zeros(2))
    with pytest.raises(ValueError, match="equal shapes"):
        make_optimizer("cem", 5, torch.zeros(2), torch.ones(3))
    with pytest.raises(ValueError, match="finite"):
        make_optimizer("cem", 5, torch.full((2,), -math.inf), torch.ones(2))
    opt = make_optimizer("cem", 5, LOW, HIGH, population=8, iterations=1)
    with pytest.raises(ValueError, match=r"init_mean must have shape \(5, 2\)"):
        opt.optimize(quadratic(torch.zeros(5, 2)), torch.zeros(4, 2), gen())
    with pytest.raises(ValueError, match=r"objective must return a tensor of shape \(8,\)"):
        opt.optimize(lambda a: a.sum(dim=2), torch.zeros(5, 2), gen())


# --------------------------------------------------------------------------------------------
# MPC agent.
# --------------------------------------------------------------------------------------------

DT = 0.1


def double_integrator_step(state: np.ndarray, action: np.ndarray) -> np.ndarray:
    x, v = state
    return np.array([x + v * DT, v + float(action[0]) * DT])


def double_integrator_evaluator(obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Exact batched rollouts of x' = x + v dt, v' = v + a dt with reward -x^2 per step."""
    x = obs[0].expand(actions.shape[0])
    v = obs[1].expand(actions.shape[0])
    total = torch.zeros_like(x)
    for h in range(actions.shape[1]):
        x = x + v * DT
        v = v + actions[:, h, 0] * DT
        total = total - x.square()
    return total


@pytest.mark.parametrize("name", ["cem", "icem", "mppi"])
def test_mpc_drives_double_integrator_to_origin(name):
    kwargs = {
        "cem": dict(population=100, iterations=3),
        "icem": dict(population=100, iterations=3),
        "mppi": dict(population=200, iterations=2, gamma=5.0, sigma=0.5),
    }[name]
    opt = make_optimizer(name, 20, -2 * torch.ones(1), 2 * torch.ones(1), **kwargs)
    agent = MPCAgent(opt, double_integrator_evaluator, seed=0)
    state = np.array([1.0, 0.0])
    xs = []
    for _ in range(60):
        action = agent.act(state)
        assert action.shape == (1,) and -2 <= action[0] <= 2
        state = double_integrator_step(state, action)
        xs.append(state[0])
    assert max(abs(x) for x in xs[-10:]) < 0.1


class RecordingOptimizer(TrajectoryOptimizer):
    """Returns ``init_mean + call_index`` and records the calls."""

    def __init__(self, horizon, low, high):
        super().__init__(horizon, low, high)
        self.init_means: list[torch.Tensor] = []
        self.advanced: list[int] = []

    def advance(self, steps):
        self.advanced.append(steps)

    def _optimize(self, evaluate, init_mean, generator):
        self.init_means.append(init_mean.clone())
        values = evaluate(init_mean[None])
        assert values.shape == (1,)
        plan = self.clip(init_mean + 0.1 * len(self.init_means) + torch.arange(self.horizon)[:, None] * 0.01)
        return plan, plan, values[0], plan


@pytest.mark.parametrize("replan_every", [1, 2, 3])
def test_mpc_warm_start_shift(replan_every):
    horizon = 5
    low, high = torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 4.0])
    opt = RecordingOptimizer(horizon, low, high)
    obs_seen = []

    def evaluator(obs, actions):
        obs_seen.append(obs)
        return torch.zeros(actions.shape[0])

    agent = MPCAgent(opt, evaluator, low.numpy(), high.numpy(), replan_every=replan_every)
    fill = torch.tensor([0.0, 2.0])
    actions = [agent.act(np.array([float(t)])) for t in range(7)]
    num_plans = math.ceil(7 / replan_every)
    assert len(opt.init_means) == num_plans
    assert torch.equal(opt.init_means[0], fill.expand(horizon, 2))
    for k in range(1, num_plans):
        previous_plan = opt.clip(opt.init_means[k - 1] + 0.1 * k + torch.arange(horizon)[:, None] * 0.01)
        assert torch.allclose(opt.init_means[k], shift_sequence(previous_plan, replan_every, fill))
        assert torch.equal(opt.init_means[k][horizon - replan_every :], fill.expand(replan_every, 2))
    assert opt.advanced == [replan_every] * (num_plans - 1)
    # Executed actions are the successive entries of each plan.
    for t, action in enumerate(actions):
        k, j = divmod(t, replan_every)
        plan = opt.clip(opt.init_means[k] + 0.1 * (k + 1) + torch.arange(horizon)[:, None] * 0.01)
        assert np.allclose(action, plan[j].numpy())
    # Plans were computed from the observation at the time of (re)planning.
    assert [float(o[0]) for o in obs_seen] == [float(t) for t in range(0, 7, replan_every)]
    agent.reset()
    opt.init_means.clear()
    agent.act(np.zeros(1))
    assert torch.equal(opt.init_means[0], fill.expand(horizon, 2))


def test_mpc_plan_then_act_executes_that_plan():
    opt = make_optimizer("cem", 6, LOW, HIGH, population=32, iterations=2)
    agent = MPCAgent(opt, lambda obs, a: -(a - obs).square().sum(dim=(1, 2)), generator=gen(1))
    obs = np.array([0.3, -0.2], dtype=np.float32)
    plan = agent.plan(obs)
    assert plan.shape == (6, 2)
    assert np.array_equal(agent.act(obs), plan[0].numpy())
    assert np.array_equal(agent.act(obs), agent.last_plan[0].numpy())  # replanned
    assert not torch.equal(agent.last_plan, plan)


def test_mpc_same_seed_same_actions():
    def run(seed):
        opt = make_optimizer("icem", 10, -2 * torch.ones(1), 2 * torch.ones(1), population=50, iterations=2)
        agent = MPCAgent(opt, double_integrator_evaluator, seed=seed)
        state, out = np.array([1.0, 0.0]), []
        for _ in range(5):
            out.append(agent.act(state))
            state = double_integrator_step(state, out[-1])
        return np.stack(out)

    assert np.array_equal(run(0), run(0))
    assert not np.array_equal(run(0), run(1))


def test_mpc_argument_validation():
    opt = make_optimizer("cem", 4, LOW, HIGH, population=8, iterations=1)
    with pytest.raises(ValueError, match=r"replan_every must be an int in \[1, 4\], got 5"):
        MPCAgent(opt, double_integrator_evaluator, replan_every=5)
    with pytest.raises(ValueError, match="differ from the optimizer"):
        MPCAgent(opt, double_integrator_evaluator, -2 * torch.ones(2), 2 * torch.ones(2))
    with pytest.raises(ValueError, match="both action_low and action_high"):
        MPCAgent(opt, double_integrator_evaluator, action_low=LOW)


def test_mpc_compile_falls_back_with_warning(monkeypatch):
    def broken_compile(fn, *args, **kwargs):
        def compiled(*a, **k):
            raise RuntimeError("no compiler here")

        return compiled

    monkeypatch.setattr(torch, "compile", broken_compile)
    opt = make_optimizer("cem", 5, -2 * torch.ones(1), 2 * torch.ones(1), population=16, iterations=1)
    agent = MPCAgent(opt, double_integrator_evaluator, compile=True)
    assert agent.is_compiled
    with pytest.warns(RuntimeWarning, match="planning eagerly"):
        action = agent.act(np.array([1.0, 0.0]))
    assert action.shape == (1,) and not agent.is_compiled
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        agent.act(np.array([1.0, 0.0]))  # no second warning

    def unavailable(fn, *args, **kwargs):
        raise RuntimeError("unsupported platform")

    monkeypatch.setattr(torch, "compile", unavailable)
    with pytest.warns(RuntimeWarning, match="planning eagerly"):
        agent = MPCAgent(opt, double_integrator_evaluator, compile=True)
    assert agent.act(np.array([1.0, 0.0])).shape == (1,)


@pytest.mark.slow
def test_mpc_compile_matches_eager(monkeypatch):
    """Real dynamo tracing (eager backend, to keep it to a couple of seconds): no fallback warning,
    and, since all randomness is drawn before the optimisation loop, the same actions as eager."""
    compile_fn = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: compile_fn(fn, backend="eager"))
    torch._dynamo.reset()

    def make(compile):
        opt = make_optimizer("cem", 5, -2 * torch.ones(1), 2 * torch.ones(1), population=16, iterations=2)
        return MPCAgent(opt, double_integrator_evaluator, seed=3, compile=compile)

    compiled, eager = make(True), make(False)
    assert compiled.is_compiled and not eager.is_compiled
    state = np.array([1.0, 0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        for _ in range(3):
            action = compiled.act(state)
            assert np.array_equal(action, eager.act(state))
            state = double_integrator_step(state, action)
    assert compiled.is_compiled
    torch._dynamo.reset()


@pytest.mark.parametrize("name", ["cem", "icem", "mppi"])
def test_optimize_never_synchronises_with_the_host(name, no_host_sync):
    target = smooth_target()
    target[0, 0] = 0.5
    evaluate = nan_half_space_objective(target, 0.1)  # exercises the invalid-value paths too
    opt = build(name, population=32, iterations=3)
    opt.optimize(evaluate, torch.zeros(H, A), gen())
    opt.advance(2)  # iCEM: shifted elites with fresh tails
    with no_host_sync():
        opt.optimize(evaluate, torch.zeros(H, A), gen())
        opt.optimize(lambda a: torch.full((a.shape[0],), math.nan), torch.zeros(H, A), gen())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ["cem", "icem", "mppi"])
def test_optimize_on_cuda_never_synchronises(name):
    device = torch.device("cuda")
    target = smooth_target().to(device)
    opt = make_optimizer(name, H, LOW.to(device), HIGH.to(device), population=64, iterations=3)
    generator = torch.Generator(device=device).manual_seed(0)
    init = torch.zeros(H, A, device=device)
    opt.optimize(quadratic(target), init, generator)  # warm-up (cuFFT plans, allocator)
    opt.advance(1)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        plan = opt.optimize(quadratic(target), init, generator)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert plan.device.type == "cuda" and opt.best_value.device.type == "cuda"
