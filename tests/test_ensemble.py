"""GaussianEnsemble: batched members, bounds, prediction, sampling, persistence."""

import numpy as np
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


def test_num_elites_defaults_to_what_fits_the_ensemble():
    assert GaussianEnsemble(obs_dim=3, action_dim=1, ensemble_size=3).num_elites == 3
    assert GaussianEnsemble(obs_dim=3, action_dim=1, ensemble_size=1, hidden_sizes=(4,)).elite_idx.tolist() == [0]
    assert EnsembleConfig(3, 1).num_elites == 5  # PETS / MBPO: 5 of 7
    assert EnsembleConfig(3, 1, ensemble_size=10).num_elites == 5
    assert EnsembleConfig(3, 1, ensemble_size=3, num_elites=2).num_elites == 2
    with pytest.raises(ValueError, match=r"num_elites: must be <= ensemble_size \(3\), got 5"):
        EnsembleConfig(3, 1, ensemble_size=3, num_elites=5)
    with pytest.raises(ValueError, match="ensemble_size: must be a positive integer, got 0"):
        EnsembleConfig(3, 1, ensemble_size=0)


def test_predict_accepts_what_fit_accepts():
    model = _model()
    g = torch.Generator().manual_seed(1)
    obs, act = torch.randn(6, 3, generator=g), torch.randn(6, 2, generator=g)
    model.fit_normalizers(obs, act, obs + 0.5, torch.ones(6))
    ref = model.predict(obs, act)
    for o, a in (
        (obs.numpy(), act.numpy()),  # numpy float32
        (obs.double().numpy(), act.double().numpy()),  # numpy float64
        (obs.tolist(), act.tolist()),  # lists
        (obs.double(), act.double()),  # float64 tensors
        (obs.half(), act.half()),  # float16 tensors
    ):
        p = model.predict(o, a)
        assert p.next_obs_mean.dtype == torch.float32 and p.next_obs_mean.device == model.device
        tol = 2e-2 if isinstance(o, torch.Tensor) and o.dtype == torch.float16 else 1e-5
        torch.testing.assert_close(p.next_obs_mean, ref.next_obs_mean, atol=tol, rtol=tol)
        torch.testing.assert_close(p.reward_std, ref.reward_std, atol=tol, rtol=tol)
    ints = model.predict(np.zeros((2, 3), dtype=np.int64), [[1, 0], [0, 1]])
    torch.testing.assert_close(ints.next_obs_mean, model.predict(torch.zeros(2, 3), torch.eye(2)).next_obs_mean)
    # (B,) actions of a 1-D action space; members as a list; a per-member (E', B, ·) layout
    one = GaussianEnsemble(2, 1, ensemble_size=3, hidden_sizes=(4,))
    x = np.ones((5, 2))
    flat, column = one.predict(x, np.zeros(5)), one.predict(x, np.zeros((5, 1)))
    torch.testing.assert_close(flat.next_obs_mean, column.next_obs_mean)
    sub = one.predict(np.ones((2, 5, 2)), np.zeros((2, 5, 1)), members=[2, 0]).next_obs_std
    torch.testing.assert_close(sub[1], one.predict(x, np.zeros(5)).next_obs_std[0])


def test_predict_shape_errors_name_the_argument_and_the_expected_shape():
    model = _model()  # O = 3, A = 2, E = 4
    with pytest.raises(ValueError, match=r"obs: expected shape \(B, 3\) or \(E', B, 3\), got \(6, 2\)"):
        model.predict(np.zeros((6, 2)), np.zeros((6, 2)))
    with pytest.raises(ValueError, match=r"actions: expected shape \(B, 2\) or \(E', B, 2\), got \(6,\)"):
        model.predict(np.zeros((6, 3)), np.zeros(6))
    with pytest.raises(ValueError, match=r"actions: expected shape \(6, 2\) to match obs \(6, 3\), got \(5, 2\)"):
        model.predict(np.zeros((6, 3)), np.zeros((5, 2)))
    with pytest.raises(ValueError, match=r"obs: expected shape \(2, B, 3\) with one slice per evaluated member"):
        model.predict(np.zeros((4, 6, 3)), np.zeros((4, 6, 2)), members=[0, 1])
    with pytest.raises(ValueError, match="obs: expected a numpy array, a list or a torch tensor, got str"):
        model.predict("obs", np.zeros((6, 2)))
    with pytest.raises(ValueError, match="actions: expected a numeric array, got dtype torch.complex64"):
        model.predict(np.zeros((6, 3)), torch.zeros(6, 2, dtype=torch.complex64))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_predict_moves_host_inputs_to_the_model_device():
    model = _model(device="cuda")
    obs, act = np.random.default_rng(0).normal(size=(5, 3)), np.zeros((5, 2))
    p = model.predict(obs, act)
    assert p.next_obs_mean.device.type == "cuda"
    torch.testing.assert_close(p.next_obs_mean.cpu(), model.cpu().predict(obs, act).next_obs_mean, atol=1e-4, rtol=1e-4)
