import os

os.environ.setdefault("MUJOCO_GL", "disable")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP: no spinning on a shared CPU

import pytest  # noqa: E402
import torch  # noqa: E402
from torch.overrides import TorchFunctionMode  # noqa: E402


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    # tiny tensors: one thread avoids OpenMP oversubscription on a shared 2-core machine
    torch.set_num_threads(1)
    yield


class NoHostSync(TorchFunctionMode):
    """Raises on the tensor ops that copy data to the host (a sync on an accelerator), on CPU: ``.item()``,
    ``.tolist()``, ``.cpu()``, ``bool/float/int/index`` of a tensor, ``nonzero``, ``masked_select``, ``unique``
    and boolean-mask indexing. Cheaper than running on the ``meta`` device, whose first use imports
    torch._dynamo (seconds)."""

    SYNCING = frozenset(
        {
            torch.Tensor.item,
            torch.Tensor.tolist,
            torch.Tensor.numpy,
            torch.Tensor.cpu,
            torch.Tensor.__bool__,
            torch.Tensor.__float__,
            torch.Tensor.__int__,
            torch.Tensor.__index__,
            torch.Tensor.nonzero,
            torch.nonzero,
            torch.Tensor.masked_select,
            torch.masked_select,
            torch.unique,
            torch.Tensor.unique,
        }
    )

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        name = getattr(func, "__name__", str(func))
        if func in self.SYNCING:
            raise AssertionError(f"host sync: {name}")
        if func in (torch.Tensor.__getitem__, torch.Tensor.__setitem__):
            index = args[1] if isinstance(args[1], tuple) else (args[1],)
            if any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in index):
                raise AssertionError(f"host sync: boolean-mask {name}")
        return func(*args, **(kwargs or {}))


@pytest.fixture
def no_host_sync() -> type[NoHostSync]:
    """The :class:`NoHostSync` mode: ``with no_host_sync(): ...`` fails on any host sync inside the block."""
    return NoHostSync
