"""ModelEnv propagation semantics, termination, rollouts, the VectorEnv adapter and the TrajectoryEvaluator.

Most tests use an engineered ensemble (as in mbrl-lib's model-env test) whose member i predicts the constant
i + 10 for every target (next-obs dims and reward) with negligible noise, so the member each row used can be
read off its next observation.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

from mbrl_po.envs.toy import (
    POINT_MASS_DT,
    PointMassEnv,
    point_mass_reward,
    point_mass_termination,
)
from mbrl_po.models.ensemble import GaussianEnsemble
from mbrl_po.models.model_env import ModelEnv, ModelVectorEnv
from mbrl_po.planning.evaluator import TrajectoryEvaluator

OBS_DIM, ACT_DIM = 2, 1


def constant_ensemble(ensemble_size: int = 7, elites: list[int] | None = None, learn_reward: bool = True):
    """Member i outputs i + 10 for every target, with log-variance at its (tiny) lower bound."""
    num_elites = ensemble_size if elites is None else len(elites)
    model = GaussianEnsemble(
        OBS_DIM,
        ACT_DIM,
        ensemble_size=ensemble_size,
        num_elites=num_elites,
        hidden_sizes=(4,),
        learn_reward=learn_reward,
        learn_delta=False,
        normalize_inputs=False,
        normalize_targets=False,
        init_min_logvar=-40.0,  # std ~ 2e-9: far below float32 resolution at 10
    )
    t = model.config.target_dim
    with torch.no_grad():
        model.head.weight.zero_()
        for i in range(ensemble_size):
            model.head.bias[i, 0, :t] = i + 10.0
            model.head.bias[i, 0, t:] = -1000.0
    if elites is not None:
        model.set_elites(elites)
    return model


def members_of(next_obs: torch.Tensor) -> torch.Tensor:
    """(B, O) next observations of the constant ensemble -> (B,) member used by each row."""
    m = next_obs[:, 0] - 10.0
    assert torch.equal(m, m.round()), "the constant ensemble should output exact integers"
    assert torch.equal(next_obs[:, 0], next_obs[:, 1])
    return m.long()


def make_env(propagation: str, elites: list[int] | None = None, seed: int = 0, **kw) -> ModelEnv:
    model = constant_ensemble(elites=elites)
    gen = torch.Generator().manual_seed(seed)
    return ModelEnv(model, propagation=propagation, generator=gen, **kw)


ELITES = [0, 2, 3, 5, 6]


def assert_close(actual: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-5, atol: float = 1e-5) -> None:
    # torch.testing.assert_close costs ~1 s on its first call (lazy imports)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert torch.allclose(actual, expected, rtol=rtol, atol=atol), (actual, expected)


# ---------------------------------------------------------------------------- propagation


@pytest.mark.parametrize("batch", [20, 23, 3])
def test_ts_inf_keeps_each_row_on_one_elite_member(batch: int) -> None:
    env = make_env("ts_inf", elites=ELITES)
    env.reset(torch.zeros(batch, OBS_DIM))
    first = None
    for _ in range(4):
        next_obs, reward, term = env.step(torch.zeros(batch, ACT_DIM))
        assert next_obs.shape == (batch, OBS_DIM) and reward.shape == (batch,) and term.shape == (batch,)
        m = members_of(next_obs)
        assert torch.equal(reward, next_obs[:, 0])  # the learned reward comes from the same member
        if first is None:
            first = m
        assert torch.equal(m, first)
    assert set(first.tolist()) <= set(ELITES)
    assert torch.equal(env.row_members, first)
    if batch >= 20:  # groups of >= 4 real rows: every elite is used
        assert set(first.tolist()) == set(ELITES)
    if batch == 20:  # divisible: exactly balanced
        assert torch.bincount(first, minlength=7)[ELITES].tolist() == [4] * 5


def test_ts_inf_reassigns_members_at_reset() -> None:
    env = make_env("ts_inf", elites=ELITES)
    seen = []
    for _ in range(3):
        env.reset(torch.zeros(40, OBS_DIM))
        seen.append(members_of(env.step(torch.zeros(40, ACT_DIM))[0]))
    assert not torch.equal(seen[0], seen[1]) or not torch.equal(seen[1], seen[2])


def test_ts1_draws_fresh_members_every_step_and_covers_all() -> None:
    env = make_env("ts1", elites=ELITES)
    b, steps = 40, 6
    env.reset(torch.zeros(b, OBS_DIM))
    history = []
    for _ in range(steps):
        next_obs, reward, _ = env.step(torch.zeros(b, ACT_DIM))
        m = members_of(next_obs)
        assert torch.equal(reward, next_obs[:, 0])
        assert torch.equal(env.row_members, m)
        # b divisible by E' = 5: each elite gets exactly b / 5 rows at every step
        assert torch.bincount(m, minlength=7)[ELITES].tolist() == [b // 5] * 5
        history.append(m)
    h = torch.stack(history)  # (steps, B)
    changed = (h[1:] != h[:-1]).float().mean()
    assert changed > 0.5  # a fresh uniform draw changes member with probability 4/5
    assert (h != h[0]).any(dim=0).float().mean() > 0.9


def test_ts1_pads_batches_not_divisible_by_the_elites() -> None:
    env = make_env("ts1", elites=ELITES)
    for b in (1, 4, 7, 13):
        env.reset(torch.zeros(b, OBS_DIM))
        next_obs, reward, term = env.step(torch.zeros(b, ACT_DIM))
        assert next_obs.shape == (b, OBS_DIM) and reward.shape == (b,) and term.shape == (b,)
        assert set(members_of(next_obs).tolist()) <= set(ELITES)


def test_all_members_used_when_use_elites_is_false() -> None:
    env = make_env("ts1", elites=ELITES, use_elites=False)
    assert env.num_members == 7
    env.reset(torch.zeros(70, OBS_DIM))
    m = members_of(env.step(torch.zeros(70, ACT_DIM))[0])
    assert torch.bincount(m, minlength=7).tolist() == [10] * 7


def test_expectation_averages_the_elite_means() -> None:
    env = make_env("expectation", elites=ELITES)
    env.reset(torch.zeros(6, OBS_DIM))
    next_obs, reward, _ = env.step(torch.zeros(6, ACT_DIM))
    expected = sum(ELITES) / len(ELITES) + 10.0
    assert_close(next_obs, torch.full((6, OBS_DIM), expected))
    assert_close(reward, torch.full((6,), expected))


def test_mean_propagation_is_deterministic_per_fixed_member() -> None:
    model = constant_ensemble(elites=ELITES)
    with torch.no_grad():
        model.min_logvar.fill_(0.0)  # large noise: "mean" must ignore it
        model.max_logvar.fill_(0.5)
    env = ModelEnv(model, propagation="mean", generator=torch.Generator().manual_seed(0))
    env.reset(torch.zeros(15, OBS_DIM))
    first = members_of(env.step(torch.zeros(15, ACT_DIM))[0])
    for _ in range(3):
        assert torch.equal(members_of(env.step(torch.zeros(15, ACT_DIM))[0]), first)
    noisy = ModelEnv(model, propagation="ts_inf", generator=torch.Generator().manual_seed(0))
    noisy.reset(torch.zeros(15, OBS_DIM))
    out = noisy.step(torch.zeros(15, ACT_DIM))[0]
    assert not torch.equal(out, out.round())


def test_same_generator_seed_reproduces_rollouts() -> None:
    model = constant_ensemble()
    with torch.no_grad():
        model.min_logvar.fill_(-2.0)
    outs = []
    for _ in range(2):
        env = ModelEnv(model, propagation="ts1", generator=torch.Generator().manual_seed(3))
        outs.append(env.rollout(torch.zeros(9, OBS_DIM), torch.zeros(9, 5, ACT_DIM)))
    assert torch.equal(outs[0], outs[1])


# ---------------------------------------------------------------------------- rewards and termination


def _action_terminates(obs, action, next_obs):
    return action[..., 0] > 0.5


def test_termination_is_sticky_and_zeroes_later_rewards() -> None:
    env = make_env("ts_inf", termination_fn=_action_terminates)
    b = 4
    env.reset(torch.zeros(b, OBS_DIM))
    acts = torch.zeros(5, b, ACT_DIM)
    acts[1, 0] = 1.0  # row 0 terminates at step 1
    acts[3, 1] = 1.0  # row 1 at step 3
    rewards, terms, obs_hist = [], [], []
    for t in range(5):
        next_obs, r, term = env.step(acts[t])
        rewards.append(r)
        terms.append(term)
        obs_hist.append(next_obs)
    r = torch.stack(rewards)  # (H, B)
    term = torch.stack(terms)
    assert term[:, 0].tolist() == [False, True, True, True, True]
    assert term[:, 1].tolist() == [False, False, False, True, True]
    assert not term[:, 2:].any()
    assert (r[:2, 0] >= 10).all() and (r[2:, 0] == 0).all()  # the terminating step's reward counts
    assert (r[:4, 1] >= 10).all() and (r[4:, 1] == 0).all()
    assert (r[:, 2:] >= 10).all()
    # the observation of a terminated row is frozen
    assert torch.equal(obs_hist[4][0], obs_hist[1][0])
    assert torch.equal(env.terminated, term[-1])


def test_reward_fn_overrides_the_learned_reward_and_is_required_without_one() -> None:
    env = make_env("ts1", reward_fn=lambda o, a, n: n[..., 0] * 0 - 1.0 + a[..., 0])
    env.reset(torch.zeros(5, OBS_DIM))
    _, r, _ = env.step(torch.full((5, ACT_DIM), 0.25))
    assert_close(r, torch.full((5,), -0.75))
    with pytest.raises(ValueError, match="reward_fn"):
        ModelEnv(constant_ensemble(learn_reward=False))
    ModelEnv(constant_ensemble(learn_reward=False), reward_fn=lambda o, a, n: a[..., 0])


def test_errors() -> None:
    model = constant_ensemble()
    with pytest.raises(ValueError, match="propagation"):
        ModelEnv(model, propagation="ts2")
    env = ModelEnv(model)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(torch.zeros(3, ACT_DIM))
    with pytest.raises(ValueError, match="obs"):
        env.reset(torch.zeros(3, OBS_DIM + 1))
    env.reset(torch.zeros(3, OBS_DIM))
    with pytest.raises(ValueError, match="actions"):
        env.step(torch.zeros(4, ACT_DIM))
    with pytest.raises(ValueError, match="action_sequences"):
        env.rollout(torch.zeros(3, OBS_DIM), torch.zeros(3, 4))
    with pytest.raises(ValueError, match="horizon"):
        env.rollout_policy(torch.zeros(3, OBS_DIM), lambda o: o[:, :1], 0)


def test_rollout_sums_discounted_rewards() -> None:
    env = make_env("ts_inf", elites=ELITES)
    obs0 = torch.zeros(10, OBS_DIM)
    ret = env.rollout(obs0, torch.zeros(10, 3, ACT_DIM), discount=0.5)
    m = env.row_members.float()
    assert_close(ret, (m + 10) * (1 + 0.5 + 0.25))


def test_rollout_policy_flags_transitions_after_termination() -> None:
    env = make_env("ts1", termination_fn=lambda o, a, n: o[..., 0] > 0)  # terminal from the 2nd step
    b, h = 6, 4
    obs0 = torch.zeros(b, OBS_DIM)
    obs0[:3, 0] = 1.0  # these rows terminate at their first step
    roll = env.rollout_policy(obs0, lambda o: -o[:, :1], h)
    assert roll.obs.shape == (h, b, OBS_DIM) and roll.actions.shape == (h, b, ACT_DIM)
    assert roll.rewards.shape == roll.valid.shape == roll.terminated.shape == (h, b)
    assert roll.valid[0].all()
    assert not roll.valid[1:, :3].any() and roll.terminated[:, :3].all()
    assert roll.valid[:2, 3:].all() and not roll.valid[2:, 3:].any()  # terminal at step 1
    assert_close(roll.actions[0], -obs0[:, :1])
    assert torch.equal(roll.obs[1:], roll.next_obs[:-1])
    data = roll.to_transitions()
    assert len(data) == 3 + 2 * 3
    assert data.terminated.sum() == 6 and (data.rewards >= 10).all()


# ---------------------------------------------------------------------------- exact toy dynamics


def point_mass_ensemble(ensemble_size: int = 3) -> GaussianEnsemble:
    """A ReLU ensemble computing the point mass' exact (linear, for |a| <= 1) dynamics in every member."""
    dt = POINT_MASS_DT
    model = GaussianEnsemble(
        2,
        1,
        ensemble_size=ensemble_size,
        num_elites=ensemble_size,
        hidden_sizes=(6,),
        activation="relu",
        learn_reward=False,
        learn_delta=False,
        normalize_inputs=False,
        normalize_targets=False,
        init_min_logvar=-40.0,
    )
    eye = torch.eye(3)
    lin = torch.tensor([[1.0, 0.0], [dt, 1.0], [dt * dt, dt]])  # [x, v, a] -> [x', v']
    with torch.no_grad():
        model.hidden[0].weight.copy_(torch.cat([eye, -eye], dim=1))  # relu(z), relu(-z)
        model.hidden[0].bias.zero_()
        model.head.weight.zero_()
        model.head.weight[:, :, :2] = torch.cat([lin, -lin], dim=0)  # relu(z) - relu(-z) = z
        model.head.bias.zero_()
        model.head.bias[:, :, 2:] = -1000.0
    return model


@pytest.mark.parametrize("propagation", ["ts1", "ts_inf", "expectation", "mean"])
def test_exact_toy_dynamics_give_the_real_returns(propagation: str) -> None:
    b, h = 6, 30
    rng = np.random.default_rng(0)
    x0 = rng.uniform(-1, 1, size=b)
    actions = rng.uniform(-1, 1, size=(b, h, 1))
    actions[0] = 1.0  # pushed out of |x| <= 2: terminates mid-horizon
    actions[1] = -1.0
    expected, terminated_rows = np.zeros(b), []
    for i in range(b):
        env = PointMassEnv(x0=float(x0[i]), max_steps=h)
        env.reset()
        for t in range(h):
            _, r, term, _, _ = env.step(actions[i, t])
            expected[i] += r
            if term:
                terminated_rows.append(i)
                break
    assert {0, 1} <= set(terminated_rows)
    menv = ModelEnv(
        point_mass_ensemble(),
        termination_fn=point_mass_termination,
        reward_fn=point_mass_reward,
        propagation=propagation,
        generator=torch.Generator().manual_seed(0),
    )
    obs0 = torch.tensor(np.stack([x0, np.zeros(b)], axis=1), dtype=torch.float32)
    returns = menv.rollout(obs0, torch.tensor(actions, dtype=torch.float32))
    np.testing.assert_allclose(returns.numpy(), expected, rtol=1e-5, atol=1e-4)
    assert sorted(torch.nonzero(menv.terminated).flatten().tolist()) == sorted(terminated_rows)


# ---------------------------------------------------------------------------- evaluator


def test_evaluator_averages_particles_and_scores_nan_candidates_minus_inf() -> None:
    def reward_fn(obs, action, next_obs):
        r = next_obs[..., 0]
        r = torch.where(action[..., 0] > 0.5, torch.full_like(r, math.nan), r)
        return torch.where(action[..., 0] < -0.5, torch.full_like(r, math.inf), r)

    env = make_env("expectation", elites=ELITES, reward_fn=reward_fn)
    ev = TrajectoryEvaluator(env, num_particles=4)
    n, h = 6, 3
    plans = torch.zeros(n, h, ACT_DIM)
    plans[1, 2] = 1.0  # NaN at the last step
    plans[4, 0] = -1.0  # +inf
    values = ev(torch.zeros(OBS_DIM), plans)
    assert values.shape == (n,) and values.dtype == torch.float32
    mean_reward = sum(ELITES) / len(ELITES) + 10.0
    for i in range(n):
        if i in (1, 4):
            assert values[i] == -math.inf
        else:
            assert_close(values[i], torch.tensor(h * mean_reward))


def test_evaluator_minus_inf_when_only_some_particles_are_nan() -> None:
    def reward_fn(obs, action, next_obs):  # member 2 (output 12) diverges
        r = next_obs[..., 0]
        return torch.where(r == 12.0, torch.full_like(r, math.nan), r)

    env = make_env("ts1", elites=ELITES, reward_fn=reward_fn)
    ev = TrajectoryEvaluator(env, num_particles=20)
    values = ev(torch.zeros(OBS_DIM), torch.zeros(8, 3, ACT_DIM))
    assert (values == -math.inf).all()  # P(no particle hits member 2 in 3 steps) = 0.8**60
    env_ok = make_env("ts_inf", elites=[0, 3, 5, 6, 1])  # member 2 not an elite: always finite
    env_ok.reward_fn = reward_fn
    values = TrajectoryEvaluator(env_ok, num_particles=20)(torch.zeros(OBS_DIM), torch.zeros(8, 3, ACT_DIM))
    assert torch.isfinite(values).all()
    assert ((values >= 30) & (values <= 48)).all()


def test_evaluator_makes_no_host_sync(no_host_sync) -> None:
    for propagation in ("ts1", "ts_inf", "expectation", "mean"):
        env = make_env(propagation, elites=ELITES, termination_fn=_action_terminates)
        ev = TrajectoryEvaluator(env, num_particles=3)
        obs, plans = torch.zeros(OBS_DIM), torch.rand(7, 4, ACT_DIM)
        with no_host_sync():
            values = ev(obs, plans)
        assert values.shape == (7,)


def test_evaluator_errors() -> None:
    env = make_env("ts1")
    with pytest.raises(ValueError, match="num_particles"):
        TrajectoryEvaluator(env, 0)
    ev = TrajectoryEvaluator(env, 2)
    with pytest.raises(ValueError, match="action_sequences"):
        ev(torch.zeros(OBS_DIM), torch.zeros(3, 4))
    with pytest.raises(ValueError, match="obs"):
        ev(torch.zeros(OBS_DIM + 1), torch.zeros(3, 4, ACT_DIM))


# ---------------------------------------------------------------------------- VectorEnv adapter


def _vector_env(num_envs: int = 4, max_episode_steps: int | None = 3, **kw) -> ModelVectorEnv:
    menv = ModelEnv(constant_ensemble(elites=ELITES), propagation="ts_inf", **kw)
    box = gym.spaces.Box(-np.inf, np.inf, shape=(OBS_DIM,), dtype=np.float32)
    act = gym.spaces.Box(-1.0, 1.0, shape=(ACT_DIM,), dtype=np.float32)
    starts = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])
    return ModelVectorEnv(menv, num_envs, box, act, starts, max_episode_steps=max_episode_steps)


def test_vector_env_next_step_autoreset_and_truncation() -> None:
    venv = _vector_env(termination_fn=_action_terminates)
    assert isinstance(venv, gym.vector.VectorEnv)
    assert venv.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    assert venv.observation_space.shape == (4, OBS_DIM) and venv.action_space.shape == (4, ACT_DIM)
    obs, info = venv.reset(seed=1)
    assert obs.shape == (4, OBS_DIM) and obs.dtype == np.float32 and info == {}
    assert set(obs[:, 0].tolist()) <= {0.0, 1.0, 2.0}
    a = np.zeros((4, ACT_DIM), dtype=np.float32)
    a[0] = 1.0  # env 0 terminates at the first step
    obs, rew, term, trunc, _ = venv.step(a)
    assert rew.dtype == np.float64 and term.dtype == np.bool_ and trunc.dtype == np.bool_
    assert term.tolist() == [True, False, False, False] and not trunc.any()
    assert (obs[:, 0] >= 10).all()  # final observation of env 0 is returned
    obs, rew, term, trunc, _ = venv.step(np.ones((4, ACT_DIM)))  # env 0 autoresets, ignoring its action
    assert obs[0, 0] in (0.0, 1.0, 2.0) and rew[0] == 0.0 and not term[0] and not trunc[0]
    assert term[1:].all() and (rew[1:] >= 10).all()
    obs, rew, term, trunc, _ = venv.step(np.zeros((4, ACT_DIM)))
    assert not term[0] and (obs[0] >= 10).all() and rew[0] >= 10  # restarted env 0 steps normally
    assert (rew[1:] == 0).all() and not term[1:].any()  # envs 1..3 autoreset


def test_vector_env_truncates_and_is_reproducible() -> None:
    runs = []
    for _ in range(2):
        venv = _vector_env(num_envs=3, max_episode_steps=2)
        obs0, _ = venv.reset(seed=7)
        steps = [venv.step(np.zeros((3, ACT_DIM))) for _ in range(3)]
        assert [s[3].tolist() for s in steps] == [[False] * 3, [True] * 3, [False] * 3]
        runs.append((obs0, [s[0] for s in steps]))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    for a, b in zip(runs[0][1], runs[1][1], strict=True):
        np.testing.assert_array_equal(a, b)


def test_vector_env_explicit_obs_and_reset_mask() -> None:
    venv = _vector_env(num_envs=3, max_episode_steps=None)
    start = np.array([[0.5, 0.5], [1.5, 1.5], [2.5, 2.5]], dtype=np.float32)
    with pytest.raises(ValueError, match="reset_mask"):
        venv.reset(options={"reset_mask": np.array([True, False, False])})
    obs, _ = venv.reset(options={"obs": start})
    np.testing.assert_array_equal(obs, start)
    stepped, *_ = venv.step(np.zeros((3, ACT_DIM)))
    obs, _ = venv.reset(options={"reset_mask": np.array([False, True, False]), "obs": start})
    np.testing.assert_array_equal(obs[1], start[1])
    np.testing.assert_array_equal(obs[[0, 2]], stepped[[0, 2]])
    with pytest.raises(ValueError, match="actions"):
        venv.step(np.zeros((2, ACT_DIM)))
    with pytest.raises(ValueError, match="options"):
        venv.reset(options={"foo": 1})
