"""The argument checks every module of the library shares: one message format for each kind.

Each check raises ``ValueError`` naming the argument and what was expected, e.g.
``"tau must be a finite real number in [0, inf), got -1"``. :func:`check_number` checks scalar
arguments (Python or NumPy numbers), :func:`check_reduction` the ``reduction`` of every loss in
:mod:`reweighting.losses`, and the tensor checks (:func:`check_binary_targets`,
:func:`check_class_targets`, :func:`check_prior`) read tensor values back, so they cost a device
synchronisation and cannot run under ``torch.func.vmap``: :mod:`reweighting.train` runs them
once on the labels and then skips the losses' own value checks
(:func:`reweighting.losses.skip_value_checks`).
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "check_number",
    "check_reduction",
    "check_binary_targets",
    "check_class_targets",
    "check_prior",
]

_REDUCTIONS = ("mean", "sum", "none")


def _bound(x: float) -> str:
    """A range end as the messages show it: ``0.5``, ``1``, ``inf``."""
    return f"{x:g}" if isinstance(x, float) else str(x)


def _as_number(value, integer: bool) -> int | float | None:
    """``value`` as a Python ``int`` (``integer=True``) or finite ``float``; ``None`` if it is
    not a real (integer) Python or NumPy scalar, is a bool, or is not finite."""
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, kind):
        return None
    if integer:
        return int(value)
    try:
        number = float(value)
    except OverflowError:  # an int beyond float's range
        return None
    return number if math.isfinite(number) else None


def check_number(value, name: str, low: float = 0.0, high: float = math.inf, *,
                 low_open: bool = False, high_open: bool = False, integer: bool = False):
    """Check a scalar argument: a finite real number in a range; every module's scalar check.

    Python ``int`` and ``float`` and NumPy scalars (``numpy.int64``, ``numpy.float32``, ...)
    are accepted: anything registered as :class:`numbers.Real` (:class:`numbers.Integral` when
    ``integer=True``). Bools (Python's and NumPy's), tensors, strings, NaN and infinities are
    rejected. A 0-d tensor is rejected on purpose: reading it back would synchronise the device.

    Args:
        value (int or float): the argument to check.
        name (str): the argument's name, as the message shows it.
        low (float): lower end of the allowed range. Default: ``0.0``.
        high (float): upper end of the allowed range; ``inf`` means unbounded. Default: ``inf``.
        low_open (bool): exclude ``low`` itself. Default: ``False``.
        high_open (bool): exclude ``high`` itself. Default: ``False``.
        integer (bool): require an integer (Python or NumPy) instead of any finite real number;
            a float such as ``3.0`` is rejected. Default: ``False``.

    Returns:
        float (``int`` when ``integer=True``): ``value``, converted to the Python type.

    Raises:
        ValueError: ``"<name> must be a finite real number in [low, high], got <value>"``
            (``"an integer"`` when ``integer=True``; round brackets for open ends and for
            ``inf``), e.g. ``"tau must be a finite real number in [0, inf), got -1"``.
    """
    number = _as_number(value, integer)
    ok = (
        number is not None
        and (low < number if low_open else low <= number)
        and (number < high if high_open else number <= high)
    )
    if not ok:
        left = "(" if low_open or not math.isfinite(low) else "["
        right = ")" if high_open or not math.isfinite(high) else "]"
        kind = "an integer" if integer else "a finite real number"
        raise ValueError(f"{name} must be {kind} in {left}{_bound(low)}, {_bound(high)}{right}, "
                         f"got {value!r}")
    return number


def check_reduction(reduction) -> str:
    """Check the ``reduction`` argument of a loss: ``"mean"``, ``"sum"`` or ``"none"``.

    The values and meanings of PyTorch's losses (``torch.nn.functional.cross_entropy``):
    ``"mean"`` the batch mean, ``"sum"`` the batch sum, ``"none"`` the per-sample losses.

    Args:
        reduction (str): the argument to check.

    Returns:
        str: ``reduction``.

    Raises:
        ValueError: ``"reduction must be 'mean', 'sum' or 'none', got <reduction>"``.
    """
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return reduction


def check_binary_targets(targets: Tensor, name: str = "targets") -> None:
    """Check that binary targets are 0 or 1 (a value check: it synchronises the device).

    Args:
        targets (Tensor): labels of any shape, float, int or bool.
        name (str): the argument's name, as the message shows it. Default: ``"targets"``.

    Raises:
        ValueError: ``"<name> must contain only 0 and 1 for a binary loss; found [...]"``.
    """
    if not bool(((targets == 0) | (targets == 1)).all()):
        bad = targets[(targets != 0) & (targets != 1)]
        raise ValueError(
            f"{name} must contain only 0 and 1 for a binary loss; found {bad[:5].tolist()}"
        )


def check_class_targets(targets: Tensor, num_classes: int, name: str = "targets") -> None:
    """Check that class targets are int64 indices in ``[0, num_classes)`` (a value check).

    Args:
        targets (Tensor): class indices of any shape, int64.
        num_classes (int): the number of classes C.
        name (str): the argument's name, as the message shows it. Default: ``"targets"``.

    Raises:
        ValueError: if the dtype is not int64 or an index lies outside ``[0, num_classes)``.
    """
    if targets.dtype != torch.int64:
        raise ValueError(f"{name} must be int64 class indices, got dtype {targets.dtype}")
    if targets.numel() and not bool(((targets >= 0) & (targets < num_classes)).all()):
        raise ValueError(
            f"{name} must lie in [0, {num_classes}) for logits with {num_classes} classes; "
            f"found min {int(targets.min())} and max {int(targets.max())}"
        )


def check_prior(prior: Tensor, name: str = "prior") -> None:
    """Check a class prior: a 1-D float tensor, positive, summing to 1 (a value check).

    Args:
        prior (Tensor): class probabilities of shape ``(C,)``, on any device.
        name (str): the argument's name, as the message shows it. Default: ``"prior"``.

    Raises:
        ValueError: if ``prior`` is not a 1-D floating-point tensor, has an entry <= 0, or its
            sum differs from 1 by more than 1e-4.
    """
    if not isinstance(prior, Tensor) or prior.ndim != 1 or not prior.is_floating_point():
        raise ValueError(f"{name} must be a 1-D floating-point tensor of class probabilities")
    if not bool((prior > 0).all()):
        raise ValueError(f"{name} must be positive; got minimum {float(prior.min())}")
    total = float(prior.double().sum())
    if abs(total - 1.0) > 1e-4:
        raise ValueError(f"{name} must sum to 1, got {total:.6f}")
