"""The article's losses and scores, as plain functions ``(logits, targets, ...) -> tensor``.

**Signs and names.** Every function whose name ends in ``_loss``, and every cross-entropy variant
(``*cross_entropy``, ``*_bce``), is a *training loss*: lower is better, by default averaged over
the batch, ready for ``loss.backward()``. The *scores* :func:`smooth_accuracy` and
:func:`smooth_f1` are higher is better and are not losses; each has its loss ``<score>_loss`` =
minus the score (:func:`smooth_accuracy_loss`, :func:`smooth_f1_loss`).
:func:`class_balanced_weights` is neither: it turns class counts into the weights of
:func:`class_weighted_cross_entropy`. The first argument of every loss and score is called
``logits``, the second ``targets``.

**Reduction.** Like PyTorch's losses, every loss and score takes the keyword argument
``reduction``: ``"mean"`` (the default: the batch mean), ``"sum"`` (the batch sum) or ``"none"``
(the per-sample values, shape ``(N,)``), checked by
:func:`reweighting.validation.check_reduction`. The smooth F1 (:func:`smooth_f1`,
:func:`smooth_f1_loss`) is a ratio over the whole batch, with no per-sample terms: it takes
``"mean"`` only, and ``"sum"`` or ``"none"`` raise ``ValueError``.

**Shapes.** Binary losses take logits of shape ``(N,)`` and targets in {0, 1} of the same shape
(float, int or bool; they are cast to the logits' dtype). Multi-class losses take logits of shape
``(N, C)`` and int64 class indices of shape ``(N,)``. Targets live on the logits' device.

**Devices.** Per-class side arguments (``prior``, ``weights``, ``counts``, ``alpha``) may live on
any device and in any dtype: each loss moves them to the logits' device and dtype itself, so a
CPU prior works with CUDA logits.

**Stability.** All of them work in log space (``logsigmoid``, ``log_softmax``, PyTorch's own
cross-entropies), so logits of +-1e4 give finite losses and gradients, and all of them run under
``torch.func.vmap``, which is how :mod:`reweighting.train` trains many seeds at once.

**Many models at once.** :func:`over_models` is the one way to give the losses a model
dimension. Inside it, every loss of this module takes one leading model dimension: logits
``(M, N)`` (binary) or ``(M, N, C)``, targets ``(M, N)``, and reduces over each model's batch
only: ``"mean"`` and ``"sum"`` return shape ``(M,)``, ``"none"`` shape ``(M, N)``, each row
exactly the loss of one model's batch. :func:`reweighting.train.train_batched` uses it to evaluate
the losses of all its stacked models in one call instead of one ``vmap``-ed call per model.

**Checks.** Bad input raises ``ValueError`` naming the argument and what was expected; the
checks live in :mod:`reweighting.validation`. Scalar arguments go through
:func:`reweighting.validation.check_number`, whose message reads e.g. ``"tau must be a finite
real number in [0, inf), got -1"``. Shape checks always run. The *value* checks (targets in
{0, 1}, class indices in range, a valid prior, non-negative weights, positive counts) read tensor
values back, which costs a device synchronisation and is impossible under ``vmap``; a trainer
that validated its labels once enters :func:`skip_value_checks` around its loss evaluations
only.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from .validation import (
    check_binary_targets,
    check_class_targets,
    check_number,
    check_prior,
    check_reduction,
)

__all__ = [
    "smooth_accuracy",
    "smooth_accuracy_loss",
    "smooth_f1",
    "smooth_f1_loss",
    "f1_weighted_bce",
    "generalized_cross_entropy",
    "cross_entropy",
    "logit_adjusted_cross_entropy",
    "prior_margin_cross_entropy",
    "class_weighted_bce",
    "class_weighted_cross_entropy",
    "class_balanced_weights",
    "focal_loss",
    "ldam_loss",
    "skip_value_checks",
    "over_models",
]

# Whether the value checks run, per thread and per context (a ContextVar, not a global): a
# trainer that skips them in one thread leaves them on everywhere else.
_VALUE_CHECKS: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "reweighting.losses value checks", default=True
)


# Whether the losses take a leading model dimension (see the module docstring), per context.
_OVER_MODELS: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "reweighting.losses over models", default=False
)


@contextlib.contextmanager
def over_models() -> Iterator[None]:
    """Let every loss of this module take a leading model dimension, in the current context.

    Inside it, a loss takes logits ``(M, N)`` (binary) or ``(M, N, C)`` (multi-class) and
    targets ``(M, N)``, treats row ``m`` as model ``m``'s batch, and reduces over each row
    only: ``reduction="mean"`` (the default) returns the ``M`` batch means, shape ``(M,)``, the
    same values as ``torch.func.vmap(loss)(logits, targets)`` without ``vmap``'s per-operation
    dispatch; ``"sum"`` the ``M`` batch sums, ``(M,)``; ``"none"`` the per-sample values,
    ``(M, N)``. Batch-level quantities (the smooth F1 of :func:`smooth_f1` and
    :func:`f1_weighted_bce`) are computed per model. It is the library's one way to give the
    losses a model dimension. :func:`reweighting.train.train_batched` enters it on its
    stacked-MLP path (issue 16). Like :func:`skip_value_checks`, it is a
    :class:`contextvars.ContextVar`: it holds for the context that enters it only, nests, and
    is restored on exit.

    Example:
        ``with over_models(): per_model = focal_loss(logits_mnc, targets_mn)  # shape (M,)``
    """
    token = _OVER_MODELS.set(True)
    try:
        yield
    finally:
        _OVER_MODELS.reset(token)


def _lead() -> int:
    """The number of leading model dimensions the losses take now: 0, or 1 in over_models()."""
    return 1 if _OVER_MODELS.get() else 0


def _reduce(per_sample: Tensor, reduction: str) -> Tensor:
    """Per-sample values ``(N,)`` or ``(M, N)`` reduced over the batch (the last dimension)."""
    if reduction == "mean":
        return per_sample.mean(-1)
    if reduction == "sum":
        return per_sample.sum(-1)
    return per_sample


def _cross_entropy(logits: Tensor, targets: Tensor, reduction: str = "none") -> Tensor:
    """PyTorch's cross-entropy, unchecked, for logits ``(N, C)`` or ``(M, N, C)``.

    Without a model dimension it is ``F.cross_entropy(logits, targets, reduction=reduction)``,
    to the last bit (chapter 3 checks ``tau = 0``). With one it uses PyTorch's K-dimensional
    form, classes in dimension 1 (``(M, C, N)``, a transposed view): the stacked trainer's
    logits are stored that way, and there the softmax runs across contiguous samples, several
    times faster than along a short class dimension.
    """
    if logits.ndim == 3:
        per_sample = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
        return _reduce(per_sample, reduction)
    return F.cross_entropy(logits, targets, reduction=reduction)


# --- checks -------------------------------------------------------------------------------


@contextlib.contextmanager
def skip_value_checks() -> Iterator[None]:
    """Skip the value checks of every loss in this module, in the current thread only.

    The value checks (targets in {0, 1}, class indices in range, a valid prior, non-negative
    weights, positive counts) read tensor values back, which costs a device synchronisation
    and is impossible under ``torch.func.vmap``. A trainer that validated its labels once
    (:func:`reweighting.validation.check_binary_targets`,
    :func:`reweighting.validation.check_class_targets`) enters ``skip_value_checks()`` around
    its loss evaluations only, as :mod:`reweighting.train` does. Shape checks always run.

    The switch is a :class:`contextvars.ContextVar`: it holds for the thread (or context) that
    enters it, never for other threads, nests, and is restored on exit, exception included.

    Example:
        ``with skip_value_checks(): loss = torch.func.vmap(f1_weighted_bce)(logits, targets)``
    """
    token = _VALUE_CHECKS.set(False)
    try:
        yield
    finally:
        _VALUE_CHECKS.reset(token)


def _binary_inputs(logits: Tensor, targets: Tensor) -> Tensor:
    """Check a binary (logits, targets) pair and return the targets in the logits' dtype."""
    if not isinstance(logits, Tensor) or not logits.is_floating_point():
        raise ValueError("logits must be a floating-point tensor")
    if logits.ndim != 1 + _lead():
        shape = "(M, N)" if _lead() else "(N,)"
        raise ValueError(
            f"logits must have shape {shape} for a binary loss, got shape {tuple(logits.shape)}"
        )
    if not isinstance(targets, Tensor) or targets.shape != logits.shape:
        shape = tuple(targets.shape) if isinstance(targets, Tensor) else type(targets).__name__
        raise ValueError(
            f"targets must be a tensor of the same shape as logits {tuple(logits.shape)}, "
            f"got {shape}"
        )
    if _VALUE_CHECKS.get():
        check_binary_targets(targets)
    return targets.to(logits.dtype)


def _multiclass_inputs(logits: Tensor, targets: Tensor) -> None:
    """Check a multi-class (logits, targets) pair."""
    if not isinstance(logits, Tensor) or not logits.is_floating_point():
        raise ValueError("logits must be a floating-point tensor")
    if logits.ndim != 2 + _lead():
        shape = "(M, N, C)" if _lead() else "(N, C)"
        raise ValueError(
            f"logits must have shape {shape} for a multi-class loss, got {tuple(logits.shape)}"
        )
    if not isinstance(targets, Tensor) or targets.shape != logits.shape[:-1]:
        shape = tuple(targets.shape) if isinstance(targets, Tensor) else type(targets).__name__
        raise ValueError(f"targets must have shape {tuple(logits.shape[:-1])}, got {shape}")
    if targets.dtype != torch.int64:
        raise ValueError(f"targets must be int64 class indices, got dtype {targets.dtype}")
    if _VALUE_CHECKS.get():
        check_class_targets(targets, logits.shape[-1])


def _class_vector(values, num_classes: int, name: str, like: Tensor) -> Tensor:
    """A per-class tensor of shape ``(C,)`` on the logits' device and in their dtype."""
    values = torch.as_tensor(values)
    if values.shape != (num_classes,):
        raise ValueError(f"{name} must have shape ({num_classes},) to match logits with "
                         f"{num_classes} classes, got {tuple(values.shape)}")
    return values.to(device=like.device, dtype=like.dtype)


def _is_binary(logits) -> bool:
    """Whether ``logits`` are a binary model's: ``(N,)``, or ``(M, N)`` in over_models()."""
    return isinstance(logits, Tensor) and logits.ndim == 1 + _lead()


def _log_p_true(logits: Tensor, targets: Tensor) -> Tensor:
    """Checked log-probability of the true label per sample, binary or multi-class."""
    if _is_binary(logits):
        y = _binary_inputs(logits, targets)
        return -F.binary_cross_entropy_with_logits(logits, y, reduction="none")
    _multiclass_inputs(logits, targets)
    return -_cross_entropy(logits, targets)


# --- chapter 1: smooth accuracy ------------------------------------------------------------


def smooth_accuracy(logits: Tensor, targets: Tensor, *, reduction: str = "mean") -> Tensor:
    r"""Smooth accuracy, a score in [0, 1], higher is better (chapter 1, eq. acc-smooth).

    Binary, logits ``(N,)`` and :math:`p = \sigma(z)`:

    .. math:: \mathrm{ACC}_\mathrm{smooth} = \frac1N \sum_n \big[y_n p_n + (1-y_n)(1-p_n)\big]

    Multi-class, logits ``(N, C)`` and :math:`p = \mathrm{softmax}(z)`: the softmax
    generalisation :math:`\frac1N\sum_n p_{n, y_n}`, the expected probability of the true class.
    A per-sample mean: ``reduction="none"`` gives each :math:`p_{n, y_n}`. Its loss is
    :func:`smooth_accuracy_loss`.

    Args:
        logits (Tensor): float, shape ``(N,)`` (binary) or ``(N, C)`` (multi-class).
        targets (Tensor): shape ``(N,)``; values in {0, 1} (binary) or int64 in [0, C).
        reduction (str): ``"mean"`` (the batch mean), ``"sum"`` (the batch sum) or ``"none"``
            (the per-sample probabilities of the true label, shape ``(N,)``; ``(M, N)``
            inside :func:`over_models`). Keyword-only. Default: ``"mean"``.

    Returns:
        Tensor: scalar (``"mean"``: in [0, 1]; ``"sum"``: in [0, N]) or ``(N,)`` (``"none"``:
        each in [0, 1]), in the logits' dtype and on their device.

    Raises:
        ValueError: on a bad ``reduction``, a shape mismatch, non-float logits, or (value
            checks) bad targets.
    """
    check_reduction(reduction)
    return _reduce(_log_p_true(logits, targets).exp(), reduction)


def smooth_accuracy_loss(logits: Tensor, targets: Tensor, *, reduction: str = "mean") -> Tensor:
    r"""Negative smooth accuracy, the loss :math:`-\mathrm{ACC}_\mathrm{smooth}` (chapters 1, 5).

    .. math:: L = -\mathrm{ACC}_\mathrm{smooth} = -\frac1N \sum_n p_{n, y_n},

    minus :func:`smooth_accuracy`, with :math:`p_{n,y_n}` the probability of the true label
    (sigmoid for logits ``(N,)``, softmax for ``(N, C)``). Its gradient with respect to the
    logits is :math:`p_y` times the cross-entropy gradient, the factor that vanishes on
    confidently wrong samples. Binary, with :math:`p = \sigma(z)`: :math:`-p(1-p)` against
    cross-entropy's :math:`-(1-p)` for :math:`y = 1`, and :math:`p(1-p)` against :math:`p` for
    :math:`y = 0`. Multi-class: :math:`p_y\,(\mathrm{softmax}(z) - e_y)`. Chapter 1 derives
    this and shows what it does to training.

    Args:
        logits (Tensor): float, shape ``(N,)`` (binary) or ``(N, C)`` (multi-class).
        targets (Tensor): shape ``(N,)``; values in {0, 1} (binary) or int64 in [0, C).
        reduction (str): ``"mean"`` (the batch mean), ``"sum"`` (the batch sum) or ``"none"``
            (the per-sample losses :math:`-p_{n, y_n}`, shape ``(N,)``; ``(M, N)`` inside
            :func:`over_models`). Keyword-only. Default: ``"mean"``.

    Returns:
        Tensor: scalar (``"mean"``: in [-1, 0]; ``"sum"``: in [-N, 0]) or ``(N,)``
        (``"none"``: each in [-1, 0]), in the logits' dtype and on their device.

    Raises:
        ValueError: on a bad ``reduction``, a shape mismatch, non-float logits, or (value
            checks) bad targets.
    """
    return -smooth_accuracy(logits, targets, reduction=reduction)


def generalized_cross_entropy(logits: Tensor, targets: Tensor, q: float, *,
                              reduction: str = "mean") -> Tensor:
    r"""Generalized cross-entropy of Zhang & Sabuncu (2018), between CE and -ACC (chapters 1, 5).

    .. math:: L_q = \frac1N \sum_n \frac{1 - p_{n,y_n}^{\,q}}{q}, \qquad 0 < q \le 1,

    with :math:`p_{n,y_n}` the probability of the true label (sigmoid for logits ``(N,)``,
    softmax for logits ``(N, C)``). Its gradient is :math:`p_y^{\,q}` times the cross-entropy
    gradient: ``q -> 0`` gives cross-entropy and ``q = 1`` gives ``1 + smooth_accuracy_loss``.

    Args:
        logits (Tensor): float, shape ``(N,)`` (binary) or ``(N, C)`` (multi-class).
        targets (Tensor): shape ``(N,)``; values in {0, 1} (binary) or int64 in [0, C).
        q (float): exponent in [0, 1]; ``q = 0`` is accepted and returns plain cross-entropy.
        reduction (str): ``"mean"`` (the batch mean), ``"sum"`` (the batch sum) or ``"none"``
            (the per-sample losses, shape ``(N,)``; ``(M, N)`` inside :func:`over_models`).
            Keyword-only. Default: ``"mean"``.

    Returns:
        Tensor: scalar (``(N,)`` for ``"none"``), >= 0, in the logits' dtype and on their
        device.

    Raises:
        ValueError: on a bad ``q`` or ``reduction``, a shape mismatch, or (value checks) bad
            targets.
    """
    q = check_number(q, "q", 0.0, 1.0)
    check_reduction(reduction)
    log_p_true = _log_p_true(logits, targets)
    if q == 0:
        return _reduce(-log_p_true, reduction)
    # (1 - p^q) / q = -expm1(q log p) / q, accurate for small q
    return _reduce(-torch.expm1(q * log_p_true) / q, reduction)


# --- chapter 2: smooth F1 ------------------------------------------------------------------


def _f1(logits: Tensor, y: Tensor) -> Tensor:
    """Smooth F1 of each batch (the last dimension), shape ``logits.shape[:-1]``."""
    p = torch.sigmoid(logits)
    denominator = (y + p).sum(-1)
    return 2 * (y * p).sum(-1) / denominator.clamp_min(torch.finfo(p.dtype).tiny)


def _check_ratio_reduction(reduction, name: str) -> None:
    """Check the ``reduction`` of a batch ratio (the smooth F1): ``"mean"`` only."""
    check_reduction(reduction)
    if reduction != "mean":
        raise ValueError(
            f"reduction must be 'mean' for {name}, got {reduction!r}: the smooth F1 is a ratio "
            "over the whole batch, with no per-sample terms to return or sum"
        )


def smooth_f1(logits: Tensor, targets: Tensor, *, reduction: str = "mean") -> Tensor:
    r"""Smooth F1 of the positive class, a score in [0, 1], higher is better (chapter 2).

    .. math:: \mathrm{F1}_\mathrm{smooth} = \frac{2\sum_n y_n p_n}{\sum_n (y_n + p_n)},
              \qquad p_n = \sigma(z_n)

    (eq. f1-smooth; the ratio of batch means in the article is the same ratio of sums). It is
    the soft Dice coefficient. A batch with no positives and every :math:`p_n` underflowing to 0
    has 0/0; it returns 0 with a zero gradient, the limit along every batch without positives.
    Its loss is :func:`smooth_f1_loss`. Inside :func:`over_models` it returns one F1 per model,
    shape ``(M,)``.

    Args:
        logits (Tensor): float, shape ``(N,)``.
        targets (Tensor): shape ``(N,)``, values in {0, 1} (float, int or bool).
        reduction (str): ``"mean"`` only: the batch's F1, a ratio over the whole batch
            (eq. f1-smooth). It has no per-sample terms, so ``"none"`` and ``"sum"``
            (PyTorch's batch sum, which gradient accumulation divides by N) raise
            ``ValueError`` instead of returning the batch value under a name that promises
            something else. Keyword-only. Default: ``"mean"``.

    Returns:
        Tensor: scalar, in [0, 1], in the logits' dtype and on their device.

    Raises:
        ValueError: on a ``reduction`` other than ``"mean"``, a shape mismatch, non-float
            logits, or (value checks) bad targets.
    """
    _check_ratio_reduction(reduction, "smooth_f1")
    return _f1(logits, _binary_inputs(logits, targets))


def smooth_f1_loss(logits: Tensor, targets: Tensor, *, reduction: str = "mean") -> Tensor:
    r"""Negative smooth F1, the article's loss :math:`-\mathrm{F1}_\mathrm{smooth}` (chapter 2).

    .. math:: L = -\mathrm{F1}_\mathrm{smooth} = -\frac{2\sum_n y_n p_n}{\sum_n (y_n + p_n)}

    minus :func:`smooth_f1`. The Dice loss ``1 - smooth_f1`` differs by a constant and has the
    same gradient. Not a batch mean: F1 is a ratio over the whole batch.

    Args:
        logits (Tensor): float, shape ``(N,)``.
        targets (Tensor): shape ``(N,)``, values in {0, 1} (float, int or bool).
        reduction (str): ``"mean"`` only: the batch's F1, a ratio over the whole batch
            (eq. f1-smooth). It has no per-sample terms, so ``"none"`` and ``"sum"``
            (PyTorch's batch sum, which gradient accumulation divides by N) raise
            ``ValueError`` instead of returning the batch value under a name that promises
            something else. Keyword-only. Default: ``"mean"``.

    Returns:
        Tensor: scalar, in [-1, 0], in the logits' dtype and on their device.

    Raises:
        ValueError: on a ``reduction`` other than ``"mean"``, a shape mismatch, non-float
            logits, or (value checks) bad targets.
    """
    _check_ratio_reduction(reduction, "smooth_f1_loss")
    return -_f1(logits, _binary_inputs(logits, targets))


def f1_weighted_bce(logits: Tensor, targets: Tensor, *, reduction: str = "mean") -> Tensor:
    r"""Cross-entropy weighted by the batch's smooth F1, held constant (chapters 2, 5; eq. f1-bce).

    .. math::

        \begin{aligned}
        L &= -\frac1N\sum_n\Big[y_n\big(1-\tfrac{F}{2}\big)\log p_n
             + (1-y_n)\tfrac{F}{2}\log(1-p_n)\Big], \\
        F &= \mathrm{sg}\big[\mathrm{F1}_\mathrm{smooth}\big]
        \end{aligned}

    where sg means no gradient flows through F. The gradient of
    :math:`-\mathrm{F1}_\mathrm{smooth}` is
    :math:`-\frac{2}{\sum_n(y_n+p_n)}\sum_n (y_n - \tfrac F2)\nabla p_n`; the article's rule
    :math:`\nabla p \to \nabla\log p` (and :math:`-\nabla p \to \nabla\log(1-p)` for negatives)
    turns it into :math:`\frac{2N}{\sum_n(y_n+p_n)}\,\nabla L`: the gradient of this batch-mean
    loss up to the positive global factor :math:`2N/\sum_n(y_n+p_n)`.

    F is always the whole batch's (each model's inside :func:`over_models`), whatever the
    ``reduction``: ``"none"`` returns the weighted per-sample terms
    :math:`-[y_n(1-\tfrac F2)\log p_n + (1-y_n)\tfrac F2\log(1-p_n)]` with that F held
    constant, so they depend on the batch they were computed in.

    Args:
        logits (Tensor): float, shape ``(N,)``.
        targets (Tensor): shape ``(N,)``, values in {0, 1} (float, int or bool).
        reduction (str): ``"mean"`` (the batch mean), ``"sum"`` (the batch sum) or ``"none"``
            (the per-sample weighted terms, F held constant, shape ``(N,)``; ``(M, N)``
            inside :func:`over_models`). Keyword-only. Default: ``"mean"``.

    Returns:
        Tensor: scalar (``(N,)`` for ``"none"``), >= 0, in the logits' dtype and on their
        device.

    Raises:
        ValueError: on a bad ``reduction``, a shape mismatch, non-float logits, or (value
            checks) bad targets.
    """
    check_reduction(reduction)
    y = _binary_inputs(logits, targets)
    f1 = _f1(logits, y).detach().unsqueeze(-1)
    weight = y * (1 - f1 / 2) + (1 - y) * (f1 / 2)
    per_sample = weight * F.binary_cross_entropy_with_logits(logits, y, reduction="none")
    return _reduce(per_sample, reduction)


def class_weighted_bce(
    logits: Tensor, targets: Tensor, positive_weight: float, negative_weight: float = 1.0, *,
    reduction: str = "mean",
) -> Tensor:
    r"""Binary cross-entropy with one fixed weight per class (chapter 2, eq. weighted-ce; ch. 5).

    .. math:: L = -\frac1N\sum_n \big[w_+\, y_n\log p_n + w_-\,(1-y_n)\log(1-p_n)\big],
              \qquad p_n = \sigma(z_n)

    Inverse-frequency ("balanced") weights for a positive rate :math:`\pi` are
    :math:`w_+ = 1/(2\pi)`, :math:`w_- = 1/(2(1-\pi))`, what
    ``sklearn.utils.class_weight.compute_class_weight("balanced", ...)`` returns. Chapter 2
    shows that its population minimiser, thresholded at 1/2, predicts positive exactly when
    :math:`P(y=1\mid x) > w_-/(w_+ + w_-)`, which is :math:`\pi` for balanced weights.
    :func:`f1_weighted_bce` is the same loss with :math:`w_+ = 1 - F/2`, :math:`w_- = F/2`.
    Chapter 5 derives the minimiser for any weights,
    :math:`q^* = w_+\eta / (w_+\eta + w_-(1-\eta))`, checks it against this function, and
    compares the loss with plain BCE thresholded at :math:`w_-/(w_+ + w_-)`.

    Args:
        logits (Tensor): float, shape ``(N,)``.
        targets (Tensor): shape ``(N,)``, values in {0, 1} (float, int or bool).
        positive_weight (float): :math:`w_+`, a real number >= 0.
        negative_weight (float): :math:`w_-`, a real number >= 0. Default: ``1.0``.
        reduction (str): ``"mean"`` (the batch mean), ``"sum"`` (the batch sum) or ``"none"``
            (the per-sample losses, shape ``(N,)``; ``(M, N)`` inside :func:`over_models`).
            Keyword-only. Default: ``"mean"``.

    Returns:
        Tensor: scalar (``(N,)`` for ``"none"``), >= 0, in the logits' dtype and on their
        device.

    Raises:
        ValueError: on a bad weight or ``reduction``, a shape mismatch, or (value checks) bad
            targets.
    """
    positive_weight = check_number(positive_weight, "positive_weight")
    negative_weight = check_number(negative_weight, "negative_weight")
    check_reduction(reduction)
    y = _binary_inputs(logits, targets)
    weight = negative_weight + (positive_weight - negative_weight) * y
    per_sample = weight * F.binary_cross_entropy_with_logits(logits, y, reduction="none")
    return _reduce(per_sample, reduction)


# --- chapter 3: logit adjustment -----------------------------------------------------------


def cross_entropy(logits: Tensor, targets: Tensor, *, reduction: str = "mean") -> Tensor:
    r"""PyTorch's multi-class cross-entropy, which also takes :func:`over_models`'s dimension.

    .. math:: L = -\frac1N \sum_n \log \mathrm{softmax}(z_n)_{y_n}

    Without a model dimension it is exactly ``torch.nn.functional.cross_entropy(logits,
    targets, reduction=reduction)``, to the last bit, after this module's checks. Inside
    :func:`over_models` it also takes logits ``(M, N, C)`` and targets ``(M, N)``, model
    ``m``'s batch in row ``m`` (where ``F.cross_entropy`` would read ``(M, N, C)`` as
    ``N`` classes of a K-dimensional input), which is how :mod:`reweighting.train` evaluates
    ``F.cross_entropy`` for all its stacked models at once. It is the baseline the chapters
    compare the modified losses with, and what they reduce to: the logit-adjusted and
    prior-margin losses at ``tau = 0`` (chapter 3), focal at ``gamma = 0`` and LDAM at
    ``max_margin = 0`` (chapter 4).

    Args:
        logits (Tensor): float, shape ``(N, C)``.
        targets (Tensor): int64 class indices of shape ``(N,)``, in [0, C).
        reduction (str): ``"mean"`` (the batch mean), ``"sum"`` (the batch sum) or ``"none"``
            (the per-sample losses, shape ``(N,)``; ``(M, N)`` inside :func:`over_models`).
            Keyword-only. Default: ``"mean"``.

    Returns:
        Tensor: scalar (``(N,)`` for ``"none"``), >= 0, in the logits' dtype and on their
        device.

    Raises:
        ValueError: on a bad ``reduction``, a shape mismatch, non-float logits, or (value
            checks) bad targets.
    """
    check_reduction(reduction)
    _multiclass_inputs(logits, targets)
    return _cross_entropy(logits, targets, reduction)


def _prior_inputs(logits: Tensor, targets: Tensor, prior: Tensor, tau: float) -> float:
    """Check the inputs of the prior-based losses below; return ``tau`` as a float."""
    _multiclass_inputs(logits, targets)
    if not isinstance(prior, Tensor):
        raise ValueError(f"prior must be a tensor of shape ({logits.shape[-1]},)")
    if prior.shape != logits.shape[-1:]:
        raise ValueError(
            f"prior must have shape ({logits.shape[-1]},) to match logits "
            f"{tuple(logits.shape)}, got {tuple(prior.shape)}"
        )
    tau = check_number(tau, "tau")
    if _VALUE_CHECKS.get():
        check_prior(prior)
    return tau


def logit_adjusted_cross_entropy(
    logits: Tensor, targets: Tensor, prior: Tensor, tau: float = 1.0, *, reduction: str = "mean"
) -> Tensor:
    r"""Logit-adjusted cross-entropy of Menon et al. (2020) (chapter 3, eq. la-loss; ch. 4, 5).

    .. math::

        \begin{aligned}
        L &= -\frac1N\sum_n \log
             \frac{e^{s_{n,y_n} + \tau\log\pi_{y_n}}}{\sum_i e^{s_{n,i} + \tau\log\pi_i}} \\
          &= \frac1N\sum_n \log\Big[1 + \sum_{i\ne y_n}
             e^{\,s_{n,i} - s_{n,y_n} + \tau\log(\pi_i/\pi_{y_n})}\Big]
        \end{aligned}

    with scores :math:`s` = ``logits`` and class prior :math:`\pi` = ``prior``. It is
    cross-entropy on the shifted logits :math:`s + \tau\log\pi`, which imposes the pairwise
    margins :math:`\tau\log(\pi_i/\pi_y)` between the true class :math:`y` and each other class
    :math:`i`: the true score must beat a more frequent class by more, a rarer one by less.
    ``tau = 0`` is plain cross-entropy.

    Args:
        logits (Tensor): float, shape ``(N, C)``.
        targets (Tensor): int64 class indices of shape ``(N,)``, in [0, C).
        prior (Tensor): class prior of shape ``(C,)``, positive, summing to 1; any device and
            float dtype (it is moved to the logits').
        tau (float): scale of the adjustment, a real number >= 0. Default: ``1.0``.
        reduction (str): ``"mean"`` (the batch mean), ``"sum"`` (the batch sum) or ``"none"``
            (the per-sample losses, shape ``(N,)``; ``(M, N)`` inside :func:`over_models`).
            Keyword-only. Default: ``"mean"``.

    Returns:
        Tensor: scalar (``(N,)`` for ``"none"``), >= 0, in the logits' dtype and on their
        device.

    Raises:
        ValueError: on a bad ``tau`` or ``reduction``, a shape mismatch, or (value checks) bad
            targets or prior.
    """
    check_reduction(reduction)
    tau = _prior_inputs(logits, targets, prior, tau)
    return _cross_entropy(logits + tau * torch.log(prior.to(logits)), targets, reduction)


def prior_margin_cross_entropy(
    logits: Tensor, targets: Tensor, prior: Tensor, tau: float = 1.0, *, reduction: str = "mean"
) -> Tensor:
    r"""Cross-entropy with a prior margin on the true class only (chapter 3, eq. prior-margin).

    .. math::

        \begin{aligned}
        L &= -\frac1N\sum_n \log
             \frac{e^{s_{n,y_n} + \tau\log\pi_{y_n}}}
                  {e^{s_{n,y_n} + \tau\log\pi_{y_n}} + \sum_{i\ne y_n} e^{s_{n,i}}} \\
          &= \frac1N\sum_n \log\Big[1 + \sum_{i\ne y_n}
             e^{\,s_{n,i} - s_{n,y_n} + m_{y_n}}\Big],
             \qquad m_y = -\tau\log\pi_y \ge 0
        \end{aligned}

    with scores :math:`s` = ``logits`` and class prior :math:`\pi` = ``prior``: the
    additive-margin softmax (chapter 3, eq. am-softmax) with the margin :math:`m_y` of the
    article, the step before :func:`logit_adjusted_cross_entropy`. Only the true class's score
    moves (by :math:`\tau\log\pi_y`); the logit-adjusted loss shifts every class by its own
    :math:`\tau\log\pi_i`, so it asks the true class to beat class :math:`i` by
    :math:`m_y - m_i`, where this loss asks it to beat every class by the whole :math:`m_y`.
    Its gradient is :math:`\mathrm{softmax}(s + \tau\log\pi_y\, e_y)_i - \mathbb 1[i = y]`,
    divided by :math:`N`. It has the form of :func:`ldam_loss` with the margins
    :math:`-\tau\log\pi_y` instead of :math:`\propto n_y^{-1/4}`. Chapter 3 shows that in
    the binary case its population minimiser predicts class 1 iff
    :math:`P(y=1\mid x) > (1 + \pi_1^\tau)/(2 + \pi_0^\tau + \pi_1^\tau)`, a threshold that
    never falls below 1/3 (eq. prior-margin-threshold). ``tau = 0`` is plain cross-entropy.

    Args:
        logits (Tensor): float, shape ``(N, C)``.
        targets (Tensor): int64 class indices of shape ``(N,)``, in [0, C).
        prior (Tensor): class prior of shape ``(C,)``, positive, summing to 1; any device and
            float dtype (it is moved to the logits').
        tau (float): scale of the margins, a real number >= 0. Default: ``1.0``.
        reduction (str): ``"mean"`` (the batch mean), ``"sum"`` (the batch sum) or ``"none"``
            (the per-sample losses, shape ``(N,)``; ``(M, N)`` inside :func:`over_models`).
            Keyword-only. Default: ``"mean"``.

    Returns:
        Tensor: scalar (``(N,)`` for ``"none"``), >= 0, in the logits' dtype and on their
        device.

    Raises:
        ValueError: on a bad ``tau`` or ``reduction``, a shape mismatch, or (value checks) bad
            targets or prior.
    """
    check_reduction(reduction)
    tau = _prior_inputs(logits, targets, prior, tau)
    shift = tau * torch.log(prior.to(logits))[targets]  # tau log pi_y, shape of targets
    true_class = F.one_hot(targets, logits.shape[-1]).to(logits.dtype)
    return _cross_entropy(logits + shift.unsqueeze(-1) * true_class, targets, reduction)


# --- chapter 4: reweighting ----------------------------------------------------------------


def class_weighted_cross_entropy(logits: Tensor, targets: Tensor, weights, *,
                                 reduction: str = "mean") -> Tensor:
    r"""Cross-entropy with one weight per class, applied after the log (chapters 3 to 5).

    .. math:: L = -\frac1N \sum_n w_{y_n} \log \mathrm{softmax}(z_n)_{y_n}

    Note the plain mean over the batch: ``F.cross_entropy(..., weight=w)`` divides by
    :math:`\sum_n w_{y_n}` instead, which renormalises every batch and undoes part of the
    weighting. Its gradient is :math:`w_y` times the cross-entropy gradient (chapter 4's table).
    Weights from counts: :func:`class_balanced_weights`.

    Args:
        logits (Tensor): float, shape ``(N, C)``.
        targets (Tensor): int64 class indices of shape ``(N,)``, in [0, C).
        weights (Tensor or sequence of float): :math:`w`, shape ``(C,)``, non-negative; any
            device (it is moved to the logits').
        reduction (str): ``"mean"`` (the batch mean), ``"sum"`` (the batch sum) or ``"none"``
            (the per-sample weighted losses
            :math:`-w_{y_n}\log \mathrm{softmax}(z_n)_{y_n}`, shape ``(N,)``; ``(M, N)``
            inside :func:`over_models`). Keyword-only. Default: ``"mean"``.

    Returns:
        Tensor: scalar (``(N,)`` for ``"none"``), >= 0, in the logits' dtype and on their
        device.

    Raises:
        ValueError: on a bad ``reduction``, a shape mismatch, or (value checks) bad targets or
            a negative weight.
    """
    check_reduction(reduction)
    _multiclass_inputs(logits, targets)
    w = _class_vector(weights, logits.shape[-1], "weights", logits)
    if _VALUE_CHECKS.get() and not bool((w >= 0).all()):
        raise ValueError("weights must be non-negative")
    return _reduce(w[targets] * _cross_entropy(logits, targets), reduction)


def class_balanced_weights(counts, beta: float) -> Tensor:
    r"""Class weights from the "effective number of samples" of Cui et al. (2019) (chapters 4, 5).

    .. math:: w_c \propto \frac{1 - \beta}{1 - \beta^{\,n_c}}, \qquad 0 \le \beta \le 1,

    normalised so that the average weight over the *samples* is 1, :math:`\sum_c n_c w_c =
    \sum_c n_c` (the loss keeps the scale of plain cross-entropy; Cui et al. normalise to
    :math:`\sum_c w_c = C` instead, a global factor). ``beta = 0`` gives equal weights and the
    limit ``beta -> 1``, accepted as ``beta = 1``, gives inverse-frequency weights
    :math:`w_c = n / (C\, n_c)`, scikit-learn's ``"balanced"``. Not a loss: the weights of
    :func:`class_weighted_cross_entropy`.

    Args:
        counts (Tensor or sequence of int): :math:`n_c`, the training count of each class,
            shape ``(C,)`` with C >= 2, all positive.
        beta (float): a real number in [0, 1].

    Returns:
        Tensor: float64 weights of shape ``(C,)``, on the device of ``counts``.

    Raises:
        ValueError: on bad ``counts`` or ``beta``.
    """
    counts = torch.as_tensor(counts, dtype=torch.float64)
    if counts.ndim != 1 or len(counts) < 2 or not bool((counts > 0).all()):
        raise ValueError(f"counts must be a 1-D sequence of at least 2 positive class counts, "
                         f"got {counts.tolist()}")
    beta = check_number(beta, "beta", 0.0, 1.0)
    if beta == 1.0:
        raw = 1 / counts
    elif beta == 0.0:
        raw = torch.ones_like(counts)
    else:  # 1 - beta^n = -expm1(n log beta), accurate for beta close to 1
        raw = (1 - beta) / -torch.expm1(counts * math.log(beta))
    return raw * counts.sum() / (raw * counts).sum()


def focal_loss(logits: Tensor, targets: Tensor, alpha=None, gamma: float = 2.0,
               reduction: str = "mean") -> Tensor:
    r"""Focal loss of Lin et al. (2017), binary or multi-class (chapter 4, eq. recipe; ch. 5).

    .. math:: L = -\frac1N \sum_n \alpha_{n}\, (1 - p_{n})^{\gamma} \log p_{n}

    with :math:`p_n` the probability of the true label (sigmoid for logits ``(N,)``, softmax for
    ``(N, C)``). Chapter 4 shows its gradient is the cross-entropy gradient times
    :math:`\alpha\,[(1-p)^\gamma - \gamma\, p\, (1-p)^{\gamma-1}\log p]`. Chapter 5 derives its
    population minimiser: without ``alpha`` it decides like cross-entropy (at 1/2) but its
    probability is under-confident, so it is not calibrated.

    **torchvision.** The arguments follow the order and names of
    ``torchvision.ops.sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2,
    reduction="none")``, and binary, with the same ``alpha``, ``gamma`` and ``reduction``, the
    values are the same (``tests/test_losses.py`` compares them). Four differences:

    - the first argument is called ``logits``, as in every loss of this library, where
      torchvision calls it ``inputs``;
    - ``alpha`` defaults to ``None``, no weighting; torchvision defaults to ``alpha=0.25``
      and spells "no weighting" ``alpha=-1``, which this function rejects: pass
      ``alpha=0.25`` for torchvision's default, ``alpha=None`` for its ``alpha=-1``;
    - ``reduction`` defaults to ``"mean"``, as in every loss of this library, where
      torchvision defaults to ``"none"``;
    - logits ``(N, C)`` are one softmax over C classes; torchvision applies the sigmoid to
      every element of any shape (multi-label), which here is the binary loss of the
      flattened logits.

    Args:
        logits (Tensor): float, shape ``(N,)`` (binary) or ``(N, C)`` (multi-class).
        targets (Tensor): shape ``(N,)``; values in {0, 1} (binary) or int64 in [0, C).
        alpha (float, Tensor or None): binary: a real number in [0, 1] weighting positives
            by :math:`\alpha` and negatives by :math:`1-\alpha`; multi-class: class weights of
            shape ``(C,)`` on any device (moved to the logits'); ``None``: no weighting.
            Default: ``None``.
        gamma (float): focusing exponent, a real number >= 0; 0 gives cross-entropy.
            Default: ``2.0``.
        reduction (str): ``"mean"`` (the batch mean), ``"sum"`` (the batch sum) or ``"none"``
            (the per-sample losses, shape ``(N,)``; ``(M, N)`` inside :func:`over_models`).
            Default: ``"mean"``.

    Returns:
        Tensor: scalar (``(N,)`` for ``"none"``), >= 0, in the logits' dtype and on their
        device.

    Raises:
        ValueError: on a bad ``alpha``, ``gamma`` or ``reduction``, a shape mismatch, or
            (value checks) bad targets.
    """
    gamma = check_number(gamma, "gamma")
    check_reduction(reduction)
    if _is_binary(logits):
        y = _binary_inputs(logits, targets)
        ce = F.binary_cross_entropy_with_logits(logits, y, reduction="none")  # -log p_t
        weight = None
        if alpha is not None:
            alpha = check_number(alpha, "alpha", 0.0, 1.0)
            weight = alpha * y + (1 - alpha) * (1 - y)
    else:
        _multiclass_inputs(logits, targets)
        ce = _cross_entropy(logits, targets)
        weight = None
        if alpha is not None:
            weight = _class_vector(alpha, logits.shape[-1], "alpha", logits)[targets]
    # 1 - p_t = -expm1(-ce), accurate when p_t is close to 1; kept above 0 so that its power
    # has a finite gradient for gamma < 1
    one_minus_p = (-torch.expm1(-ce)).clamp_min(torch.finfo(ce.dtype).tiny)
    loss = one_minus_p**gamma * ce
    return _reduce(loss if weight is None else weight * loss, reduction)


def ldam_loss(logits: Tensor, targets: Tensor, counts, max_margin: float = 0.5,
              scale: float = 1.0, *, reduction: str = "mean") -> Tensor:
    r"""Label-distribution-aware margin loss of Cao et al. (2019) (chapter 4, eq. shift-weights).

    .. math:: L = -\frac1N\sum_n \log
              \frac{e^{s(z_{n,y_n} - \Delta_{y_n})}}
                   {e^{s(z_{n,y_n} - \Delta_{y_n})} + \sum_{i\ne y_n} e^{s z_{n,i}}},
              \qquad \Delta_c = m \Big(\frac{n_{\min}}{n_c}\Big)^{1/4}

    cross-entropy after subtracting a margin :math:`\Delta_y \propto n_y^{-1/4}` from the true
    class's logit (the rarest class gets ``max_margin`` :math:`m`), then multiplying all logits
    by ``scale`` :math:`s`. Cao et al. apply it to a cosine classifier with :math:`s = 30`; on
    the unnormalised logits of the book's MLPs ``scale = 1`` keeps the margins in logit units.
    It shifts logits *before* the log, like logit adjustment, but only the true class's.

    Args:
        logits (Tensor): float, shape ``(N, C)``.
        targets (Tensor): int64 class indices of shape ``(N,)``, in [0, C).
        counts (Tensor or sequence of int): :math:`n_c`, training count of each class, shape
            ``(C,)``, positive; any device (moved to the logits').
        max_margin (float): :math:`m`, a real number >= 0. Default: ``0.5``.
        scale (float): :math:`s`, a real number > 0. Default: ``1.0``.
        reduction (str): ``"mean"`` (the batch mean), ``"sum"`` (the batch sum) or ``"none"``
            (the per-sample losses, shape ``(N,)``; ``(M, N)`` inside :func:`over_models`).
            Keyword-only. Default: ``"mean"``.

    Returns:
        Tensor: scalar (``(N,)`` for ``"none"``), >= 0, in the logits' dtype and on their
        device.

    Raises:
        ValueError: on bad ``max_margin``, ``scale`` or ``reduction``, a shape mismatch, or
            (value checks) bad targets or counts.
    """
    check_reduction(reduction)
    _multiclass_inputs(logits, targets)
    counts = _class_vector(counts, logits.shape[-1], "counts", logits)
    if _VALUE_CHECKS.get() and not bool((counts > 0).all()):
        raise ValueError("counts must be positive")
    max_margin = check_number(max_margin, "max_margin")
    scale = check_number(scale, "scale", low_open=True)
    margins = max_margin * (counts.min() / counts) ** 0.25
    shifted = logits - F.one_hot(targets, logits.shape[-1]).to(logits.dtype) * margins
    return _cross_entropy(scale * shifted, targets, reduction)
