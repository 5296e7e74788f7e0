"""ReplayBuffer: ring wrap-around, deterministic sampling, checkpoint round trip, validation."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from mbrl_po.data.replay_buffer import ReplayBuffer
from mbrl_po.types import TransitionData

O, A = 3, 2


def rows(start: int, n: int) -> dict[str, np.ndarray]:
    """n distinguishable transitions numbered start, start + 1, ..."""
    k = np.arange(start, start + n, dtype=np.float32)
    return {
        "obs": np.repeat(k[:, None], O, axis=1),
        "actions": np.repeat(-k[:, None], A, axis=1),
        "rewards": k * 0.5,
        "next_obs": np.repeat(k[:, None] + 0.25, O, axis=1),
        "terminated": (k % 3 == 0),
        "truncated": (k % 5 == 0),
    }


def fill(buf: ReplayBuffer, start: int, n: int) -> None:
    buf.add_batch(**rows(start, n))


def ids(data: TransitionData) -> list[int]:
    return data.obs[:, 0].to(torch.int64).tolist()


def test_add_single_and_batch_and_transitions_in_insertion_order() -> None:
    buf = ReplayBuffer(10, O, A, rng=np.random.default_rng(0))
    assert len(buf) == 0 and not buf.full
    r = rows(0, 1)
    buf.add(r["obs"][0], r["actions"][0], float(r["rewards"][0]), r["next_obs"][0], True, False)
    fill(buf, 1, 4)
    assert len(buf) == 5
    data = buf.transitions()
    assert isinstance(data, TransitionData)
    assert ids(data) == [0, 1, 2, 3, 4]
    assert data.obs.dtype == data.actions.dtype == data.rewards.dtype == torch.float32
    assert data.terminated.dtype == torch.bool
    assert data.terminated.tolist() == [True, False, False, True, False]
    assert torch.equal(data.actions[:, 0], -data.obs[:, 0])
    assert torch.equal(data.next_obs, data.obs + 0.25)
    assert torch.equal(data.rewards, data.obs[:, 0] * 0.5)
    assert buf.truncated().tolist() == [False, False, False, False, False]  # row 0 added with False


def test_ring_wraps_around_and_keeps_the_newest() -> None:
    buf = ReplayBuffer(5, O, A, rng=np.random.default_rng(0))
    fill(buf, 0, 3)
    fill(buf, 3, 4)  # 7 rows into 5: rows 0 and 1 are overwritten
    assert len(buf) == 5 and buf.full and buf.position == 2
    assert ids(buf.transitions()) == [2, 3, 4, 5, 6]
    buf.add(*(rows(7, 1)[k][0] for k in ("obs", "actions", "rewards", "next_obs", "terminated", "truncated")))
    assert ids(buf.transitions()) == [3, 4, 5, 6, 7]
    assert buf.truncated().tolist() == [False, False, True, False, False]
    fill(buf, 100, 12)  # larger than the capacity: the last 5 survive, in order
    assert ids(buf.transitions()) == [107, 108, 109, 110, 111]
    # and the ring continues as if the 12 rows had been added one by one
    ref = ReplayBuffer(5, O, A)
    for i in range(8):
        fill(ref, i, 1)
    for i in range(12):
        fill(ref, 100 + i, 1)
    assert ref.position == buf.position
    np.testing.assert_array_equal(ref._obs, buf._obs)


def test_sample_is_deterministic_given_the_rng_and_covers_stored_rows_only() -> None:
    a = ReplayBuffer(50, O, A, rng=np.random.default_rng(123))
    b = ReplayBuffer(50, O, A, rng=np.random.default_rng(123))
    for buf in (a, b):
        fill(buf, 0, 20)
    for _ in range(3):
        sa, sb = a.sample(16), b.sample(16)
        assert ids(sa) == ids(sb)
        assert sa.obs.shape == (16, O) and sa.actions.shape == (16, A) and sa.rewards.shape == (16,)
        assert sa.obs.device == torch.device("cpu")
    drawn = set()
    for _ in range(20):
        drawn |= set(ids(a.sample(32)))
    assert drawn == set(range(20))
    # consistency of the fields of each sampled row
    s = a.sample(64)
    assert torch.equal(s.next_obs, s.obs + 0.25) and torch.equal(s.terminated, (s.obs[:, 0] % 3) == 0)


def _assert_same(x: TransitionData, y: TransitionData) -> None:
    for name in ("obs", "actions", "next_obs", "rewards", "terminated"):
        assert torch.equal(getattr(x, name), getattr(y, name)), name


@pytest.mark.parametrize("n_before", [7, 23])  # not full / wrapped around
def test_save_load_round_trip_continues_like_an_uninterrupted_buffer(tmp_path, n_before: int) -> None:
    path = tmp_path / "buffer.npz"
    uninterrupted = ReplayBuffer(16, O, A, rng=np.random.default_rng(7))
    resumed_src = ReplayBuffer(16, O, A, rng=np.random.default_rng(7))
    for buf in (uninterrupted, resumed_src):
        fill(buf, 0, n_before)
        buf.sample(5)  # advance the generator before the checkpoint
    resumed_src.save(path)
    assert sorted(os.listdir(tmp_path)) == ["buffer.npz"]  # no temporary file left behind
    restored = ReplayBuffer.load(path)
    assert (restored.capacity, restored.obs_dim, restored.action_dim) == (16, O, A)
    assert len(restored) == len(uninterrupted) and restored.position == uninterrupted.position
    _assert_same(restored.transitions(), uninterrupted.transitions())
    np.testing.assert_array_equal(restored.truncated(), uninterrupted.truncated())
    in_place = ReplayBuffer(16, O, A, rng=np.random.default_rng(999))
    assert in_place.load(path) is in_place
    for step in range(4):
        for buf in (uninterrupted, restored, in_place):
            fill(buf, 1000 + 10 * step, 3)
        ref = uninterrupted.sample(8)
        _assert_same(restored.sample(8), ref)
        _assert_same(in_place.sample(8), ref)
    _assert_same(restored.transitions(), uninterrupted.transitions())


def test_save_overwrites_atomically_and_keeps_exact_path(tmp_path) -> None:
    path = tmp_path / "ckpt"  # no .npz suffix is added
    buf = ReplayBuffer(4, O, A, rng=np.random.default_rng(0))
    fill(buf, 0, 2)
    buf.save(path)
    fill(buf, 2, 1)
    buf.save(path)
    assert sorted(os.listdir(tmp_path)) == ["ckpt"]
    assert len(ReplayBuffer.load(path)) == 3


def test_load_in_place_requires_matching_shapes(tmp_path) -> None:
    path = tmp_path / "b.npz"
    buf = ReplayBuffer(4, O, A)
    fill(buf, 0, 2)
    buf.save(path)
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(5, O, A).load(path)
    with pytest.raises(ValueError, match="obs_dim"):
        ReplayBuffer(4, O + 1, A).load(path)
    np.savez(tmp_path / "other.npz", x=np.zeros(2))
    with pytest.raises(ValueError, match="not a ReplayBuffer checkpoint"):
        ReplayBuffer.load(tmp_path / "other.npz")


def test_validation_errors() -> None:
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(0, O, A)
    with pytest.raises(ValueError, match="obs_dim"):
        ReplayBuffer(4, -1, A)
    with pytest.raises(ValueError, match="rng"):
        ReplayBuffer(4, O, A, rng=np.random.RandomState(0))  # type: ignore[arg-type]
    buf = ReplayBuffer(4, O, A)
    with pytest.raises(ValueError, match="empty"):
        buf.sample(2)
    with pytest.raises(ValueError, match="empty"):
        buf.transitions()
    good = rows(0, 3)
    for field, bad in (
        ("obs", np.zeros((3, O + 1))),
        ("actions", np.zeros((2, A))),
        ("rewards", np.zeros(4)),
        ("next_obs", np.zeros((3,))),
        ("terminated", np.zeros(2, dtype=bool)),
        ("truncated", np.array([0, 2, 1])),
    ):
        with pytest.raises(ValueError, match=field):
            buf.add_batch(**{**good, field: bad})
    nan_obs = good["next_obs"].copy()
    nan_obs[1, 0] = np.nan
    with pytest.raises(ValueError, match="next_obs: contains 1 NaN"):
        buf.add_batch(**{**good, "next_obs": nan_obs})
    with pytest.raises(ValueError, match="reward"):
        buf.add(np.zeros(O), np.zeros(A), float("inf"), np.zeros(O), False)
    with pytest.raises(ValueError, match="action"):
        buf.add(np.zeros(O), np.zeros(A + 1), 0.0, np.zeros(O), False)
    assert len(buf) == 0  # nothing was written by the failed calls
    fill(buf, 0, 1)
    with pytest.raises(ValueError, match="batch_size"):
        buf.sample(0)


def test_accepts_tensors_and_scalar_conveniences() -> None:
    buf = ReplayBuffer(4, O, 1)
    buf.add_batch(torch.zeros(2, O), torch.ones(2), torch.ones(2, 1), torch.zeros(2, O), torch.tensor([True, False]))
    data = buf.transitions()
    assert data.actions.shape == (2, 1) and data.rewards.tolist() == [1.0, 1.0]
    assert data.terminated.tolist() == [True, False]
    assert buf.truncated().tolist() == [False, False]
