"""GaussianEnsemble: batched members, bounds, prediction, sampling, persistence."""

import pytest
import torch

from mbrl_po import EnsembleConfig, GaussianEnsemble


def _model(**kw):
    torch.manual_seed(0)
    return GaussianEnsemble(3, 2, ensemble_size=4, num_elites=2, hidden_sizes=(8, 8), **kw)


def test_batched_forward_equals_each_member_alone():
    model = _model()
    x = torch.randn(4, 5, 5)
    mean, logvar = model(x)
    assert mean.shape == logvar.shape == (4, 5, 4)  # T = O + reward
    for e in range(4):
        m_e, lv_e = model(x[e : e + 1], members=torch.tensor([e]))
        torch.testing.assert_close(m_e[0], mean[e])
        torch.testing.assert_close(lv_e[0], logvar[e])
    # (B, I) input: every member sees the same rows
    m_shared, _ = model(x[0])
    torch.testing.assert_close(m_shared[2], model(x[0].expand(4, 5, 5))[0][2])


def test_logvar_is_soft_bounded():
    model = _model()
    with torch.no_grad():
        model.head.bias[..., 4:] = 100.0
    _, lv = model(torch.randn(7, 5))
    assert (lv <= model.max_logvar + 1e-4).all()
    with torch.no_grad():
        model.head.bias[..., 4:] = -100.0
    _, lv = model(torch.randn(7, 5))
    assert (lv >= model.min_logvar - 1e-4).all()
    assert model.logvar_bound_loss() > 0


def test_predict_and_sample_in_raw_units():
    model = _model()
    obs, act = torch.randn(6, 3), torch.randn(6, 2)
    model.fit_normalizers(obs, act, obs + 1.0, torch.ones(6))
    p = model.predict(obs, act)
    assert p.next_obs_mean.shape == (4, 6, 3) and p.reward_mean.shape == (4, 6)
    assert (p.next_obs_std > 0).all()
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    s1, r1 = model.sample(obs, act, generator=g1)
    s2, r2 = model.sample(obs, act, generator=g2)
    torch.testing.assert_close(s1, s2)
    torch.testing.assert_close(r1, r2)
    det, _ = model.sample(obs, act, deterministic=True)
    torch.testing.assert_close(det, p.next_obs_mean)
    # many draws: sample mean and std match the prediction
    big_obs = obs[:1].expand(20000, 3)
    s, _ = model.sample(big_obs, act[:1].expand(20000, 2), generator=g1, members=torch.tensor([1]))
    pm = model.predict(obs[:1], act[:1], members=torch.tensor([1]))
    tol = float(0.05 * pm.next_obs_std.max().detach())
    torch.testing.assert_close(s[0].mean(0), pm.next_obs_mean[0, 0], atol=tol, rtol=0)
    torch.testing.assert_close(s[0].std(0), pm.next_obs_std[0, 0], rtol=0.05, atol=0)


def test_save_load_round_trip(tmp_path):
    model = _model(learn_delta=False)
    model.fit_normalizers(torch.randn(9, 3), torch.randn(9, 2), torch.randn(9, 3), torch.randn(9))
    model.set_elites([3, 1])
    model.save(tmp_path / "m.pt")
    loaded = GaussianEnsemble.load(tmp_path / "m.pt")
    assert loaded.config == model.config
    x = torch.randn(5, 3), torch.randn(5, 2)
    torch.testing.assert_close(loaded.predict(*x).next_obs_mean, model.predict(*x).next_obs_mean)
    assert loaded.elite_idx.tolist() == [3, 1]


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="num_elites"):
        EnsembleConfig(3, 2, ensemble_size=2, num_elites=3)
    with pytest.raises(ValueError, match="activation.*'gelu2'"):
        EnsembleConfig(3, 2, activation="gelu2")
    with pytest.raises(ValueError, match="obs_dim"):
        EnsembleConfig(0, 2)
    with pytest.raises(ValueError, match="elite_idx"):
        _model().set_elites([0, 0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    model = _model()
    x = torch.randn(4, 5, 5)
    cpu = model(x)[0]
    gpu = model.to("cuda")(x.cuda())[0].cpu()
    torch.testing.assert_close(cpu, gpu, atol=1e-4, rtol=1e-4)
