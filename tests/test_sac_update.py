"""LeanSACUpdate against stable-baselines3's own SAC.train: same losses, same parameters, same optimizer state."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import SAC as SB3SAC
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from mbrl_po.agents.sac_update import LeanSACUpdate, use_fused_adam


class _Spaces(gym.Env):
    observation_space = gym.spaces.Box(-np.inf, np.inf, (5,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)


class _Batches:
    """A fixed random dataset sampled with its own seeded generator (the same batches for two SACs)."""

    def __init__(self, seed: int, n: int = 500) -> None:
        g = torch.Generator().manual_seed(seed)
        self.obs, self.nxt = torch.randn(n, 5, generator=g), torch.randn(n, 5, generator=g)
        self.act = torch.rand(n, 2, generator=g) * 2 - 1
        self.rew = torch.randn(n, 1, generator=g)
        self.done = (torch.rand(n, 1, generator=g) < 0.1).float()
        self.g = torch.Generator().manual_seed(seed + 1)

    def sample(self, batch_size: int, env: object = None) -> ReplayBufferSamples:
        i = torch.randint(0, len(self.obs), (batch_size,), generator=self.g)
        return ReplayBufferSamples(self.obs[i], self.act[i], self.nxt[i], self.done[i], self.rew[i], None)


def _sac(ent_coef: str | float = "auto", n_critics: int = 2, **kw: object) -> SB3SAC:
    sac = SB3SAC("MlpPolicy", _Spaces(), buffer_size=1, learning_rate=1e-3, batch_size=32, target_entropy=-1.0,
                 ent_coef=ent_coef, policy_kwargs={"net_arch": [32, 32], "n_critics": n_critics}, seed=3,
                 device="cpu", **kw)
    sac.set_logger(Logger(folder=None, output_formats=[]))
    sac.replay_buffer = _Batches(seed=11)  # type: ignore[assignment]
    return sac


def _max_diff(a: SB3SAC, b: SB3SAC) -> float:
    sa, sb = a.policy.state_dict(), b.policy.state_dict()
    assert sa.keys() == sb.keys()
    return max(float((sa[k] - sb[k]).abs().max()) for k in sa)


@pytest.mark.parametrize("ent_coef,n_critics,tui", [("auto", 2, 1), (0.2, 2, 1), ("auto", 3, 2)])
def test_lean_update_matches_sb3_train(ent_coef, n_critics, tui):
    ref, lean = _sac(ent_coef, n_critics, target_update_interval=tui), _sac(ent_coef, n_critics,
                                                                            target_update_interval=tui)
    assert _max_diff(ref, lean) == 0.0
    upd = LeanSACUpdate(lean)
    for _ in range(3):  # several calls: the learning-rate update and n_updates carry across them
        torch.manual_seed(5)
        ref.train(gradient_steps=7, batch_size=32)
        torch.manual_seed(5)
        upd.train(gradient_steps=7, batch_size=32)
        assert _max_diff(ref, lean) < 1e-5
    start = _sac(ent_coef, n_critics)
    assert _max_diff(start, lean) > 1e-3  # it did learn (the comparison is not between untouched nets)
    assert lean._n_updates == ref._n_updates == 21
    for key in ("train/actor_loss", "train/critic_loss", "train/ent_coef"):
        assert lean.logger.name_to_value[key] == pytest.approx(ref.logger.name_to_value[key], rel=1e-5, abs=1e-6)
    if ent_coef == "auto":
        assert float(lean.log_ent_coef.detach()) == pytest.approx(float(ref.log_ent_coef.detach()), abs=1e-6)
    for o_ref, o_lean in ((ref.actor.optimizer, lean.actor.optimizer), (ref.critic.optimizer, lean.critic.optimizer)):
        s_ref, s_lean = o_ref.state_dict()["state"], o_lean.state_dict()["state"]
        for i in s_ref:
            assert torch.allclose(s_ref[i]["exp_avg_sq"], s_lean[i]["exp_avg_sq"], rtol=1e-4, atol=1e-9)


def test_fused_adam_tracks_the_loop_adam_and_survives_a_state_reload():
    ref, fused = _sac(), _sac()
    upd_ref, upd_fused = LeanSACUpdate(ref), LeanSACUpdate(fused, fused_adam=True)
    torch.manual_seed(0)
    upd_ref.train(10, 32)
    torch.manual_seed(0)
    upd_fused.train(10, 32)
    assert fused.critic.optimizer.param_groups[0]["fused"] is True
    assert _max_diff(ref, fused) < 1e-5
    # a checkpoint written by plain Adam loads into the fused one: load_state_dict restores fused=None,
    # and the next train() call switches it back
    fused.critic.optimizer.load_state_dict(ref.critic.optimizer.state_dict())
    assert not fused.critic.optimizer.param_groups[0].get("fused")
    upd_fused.train(1, 32)
    assert fused.critic.optimizer.param_groups[0]["fused"] is True
    with pytest.raises(ValueError, match="allowed torch.optim.Adam"):
        use_fused_adam(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1))


def test_critics_equal_sb3s_and_detached_weights_get_no_gradient():
    sac = _sac(n_critics=3)
    upd = LeanSACUpdate(sac)
    data = _Batches(seed=11).sample(32)
    actions = data.actions.clone().requires_grad_(True)
    q = upd.q_values(upd.critic_layers, data.observations, actions)
    assert q.shape == (3, 32, 1)
    assert torch.allclose(q, torch.stack(sac.critic(data.observations, data.actions)), atol=1e-6)
    qt = upd.q_values(upd.target_layers, data.observations, data.actions)
    assert torch.allclose(qt, torch.stack(sac.critic_target(data.observations, data.actions)), atol=1e-6)
    sac.critic.zero_grad(set_to_none=True)
    upd.q_values(upd.critic_layers, data.observations, actions, detach_weights=True).sum().backward()
    assert all(p.grad is None for p in sac.critic.parameters())
    assert actions.grad is not None and float(actions.grad.abs().sum()) > 0  # the actor still gets its gradient
    q.sum().backward()
    assert all(p.grad is not None for p in sac.critic.parameters())


def test_unsupported_sacs_are_refused_by_name():
    with pytest.raises(ValueError, match="use_sde"):
        LeanSACUpdate(_sac(use_sde=True))
