import os

import pytest
import torch

os.environ.setdefault("MUJOCO_GL", "disable")


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    # tiny tensors: one thread avoids OpenMP oversubscription on a shared 2-core machine
    torch.set_num_threads(1)
    yield
