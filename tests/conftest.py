import os

import pytest
import torch

os.environ.setdefault("MUJOCO_GL", "disable")


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    yield
