"""A stand-in accelerator for CPU-only machines: PyTorch's ``meta`` device, with CUDA's rules.

Code that runs on a GPU fails there in ways a CPU run never shows: an operation that mixes a
CUDA tensor with a CPU tensor, or ``.numpy()`` on a CUDA tensor. ``fake_accelerator()`` makes
those failures visible here. Inside it, ``"meta"`` plays the GPU (tensors there have shapes but
no data, so nothing is computed):

- an operation whose tensor arguments live on two devices raises ``DeviceMixError`` (a 0-dim
  CPU tensor may join a device operation, as CUDA allows);
- moving a ``meta`` tensor to the CPU (``.cpu()``, ``.to("cpu")``) returns a CPU tensor of the
  right shape and dtype, filled with zeros: the transfer a real GPU would do;
- reading values from a ``meta`` tensor (``.numpy()``, ``.item()``, ``bool()``) still fails, as
  it would need a transfer that the code did not make.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

DEVICE = torch.device("meta")
_TRANSFERS = {Tensor.to, Tensor.cpu, Tensor.copy_, Tensor.new_tensor}
# bookkeeping that compares two tensors without computing with them (nn.Module.to uses it)
_NOT_COMPUTATIONS = {torch._has_compatible_shallow_copy_type}


class DeviceMixError(RuntimeError):
    pass


def _devices(args, kwargs) -> set[torch.device]:
    leaves, _ = tree_flatten((args, kwargs))
    return {t.device for t in leaves
            if isinstance(t, Tensor) and not (t.device.type == "cpu" and t.ndim == 0)}


def _transfer_target(args, kwargs) -> tuple[torch.device | None, torch.dtype | None]:
    """The device and dtype a ``Tensor.to`` call asks for."""
    device, dtype = kwargs.get("device"), kwargs.get("dtype")
    for a in args[1:]:
        if isinstance(a, Tensor):
            device, dtype = a.device, a.dtype
        elif isinstance(a, (str, torch.device)):
            device = a
        elif isinstance(a, torch.dtype):
            dtype = a
    return (torch.device(device) if device is not None else None), dtype


class fake_accelerator(TorchFunctionMode):  # noqa: N801 (used like a function: `with fake_accelerator():`)
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        source = args[0] if args and isinstance(args[0], Tensor) else None
        if func in _TRANSFERS:
            if source is not None and source.device.type == "meta":
                if func is Tensor.cpu:
                    return torch.zeros(source.shape, dtype=source.dtype)
                if func is Tensor.to:
                    device, dtype = _transfer_target(args, kwargs)
                    if device is not None and device.type == "cpu":
                        return torch.zeros(source.shape, dtype=dtype or source.dtype)
            return func(*args, **kwargs)
        devices = _devices(args, kwargs)
        if len(devices) > 1 and func not in _NOT_COMPUTATIONS:
            raise DeviceMixError(f"{getattr(func, '__name__', func)} mixes tensors on "
                                 f"{sorted(map(str, devices))}")
        return func(*args, **kwargs)
