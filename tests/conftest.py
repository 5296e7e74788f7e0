import os

os.environ.setdefault("MUJOCO_GL", "disable")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP: no spinning on a shared CPU

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    # tiny tensors: one thread avoids OpenMP oversubscription on a shared 2-core machine
    torch.set_num_threads(1)
    yield
