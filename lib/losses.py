"""The article's losses, as plain functions ``(logits, targets, ...) -> scalar tensor``.

Every loss is averaged over the batch. Binary losses take logits of shape ``(N,)`` and targets
in {0, 1} of the same shape (float, int or bool; they are cast to the logits' dtype).
Multi-class losses take logits of shape ``(N, C)`` and int64 class indices of shape ``(N,)``.

All of them work in log space (``logsigmoid``, ``log_softmax``, PyTorch's own cross-entropies),
so logits of +-1e4 give finite losses and gradients, and all of them run under
``torch.func.vmap``, which is how :mod:`lib.train` trains many seeds at once.

Bad input raises ``ValueError`` naming the argument. Shape checks are free; the checks on
*values* (targets in {0, 1}, class indices in range, a valid prior) read the tensor back,
which costs a device synchronisation and is impossible under ``vmap``. The batched trainer
therefore validates the labels once and trains inside :func:`value_checks_off`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "smooth_accuracy_loss",
    "smooth_f1",
    "f1_weighted_bce",
    "generalized_cross_entropy",
    "logit_adjusted_cross_entropy",
    "class_weighted_bce",
    "class_weighted_cross_entropy",
    "class_balanced_weights",
    "focal_loss",
    "ldam_loss",
    "value_checks_off",
    "check_binary_targets",
    "check_class_targets",
    "check_prior",
]

_value_checks = True


@contextlib.contextmanager
def value_checks_off() -> Iterator[None]:
    """Skip the value checks (not the shape checks) of every loss in this module.

    Use it around a training loop whose labels were checked once beforehand, as
    :func:`lib.train.train_batched` does; the value checks would otherwise synchronise the
    device at every step and cannot run under ``torch.func.vmap``.
    """
    global _value_checks
    previous, _value_checks = _value_checks, False
    try:
        yield
    finally:
        _value_checks = previous


def check_binary_targets(targets: Tensor, name: str = "targets") -> None:
    """Raise ``ValueError`` unless every entry of ``targets`` is 0 or 1."""
    if not bool(((targets == 0) | (targets == 1)).all()):
        bad = targets[(targets != 0) & (targets != 1)]
        raise ValueError(
            f"{name} must contain only 0 and 1 for a binary loss; found {bad[:5].tolist()}"
        )


def check_class_targets(targets: Tensor, num_classes: int, name: str = "targets") -> None:
    """Raise ``ValueError`` unless ``targets`` are int64 class indices in [0, num_classes)."""
    if targets.dtype != torch.int64:
        raise ValueError(f"{name} must be int64 class indices, got dtype {targets.dtype}")
    if targets.numel() and not bool(((targets >= 0) & (targets < num_classes)).all()):
        raise ValueError(
            f"{name} must lie in [0, {num_classes}) for logits with {num_classes} classes; "
            f"found min {int(targets.min())} and max {int(targets.max())}"
        )


def _binary_inputs(logits: Tensor, targets: Tensor) -> Tensor:
    """Check a binary (logits, targets) pair and return the targets in the logits' dtype."""
    if not isinstance(logits, Tensor) or not logits.is_floating_point():
        raise ValueError("logits must be a floating-point tensor")
    if logits.ndim != 1:
        raise ValueError(
            f"logits must have shape (N,) for a binary loss, got shape {tuple(logits.shape)}"
        )
    if not isinstance(targets, Tensor) or targets.shape != logits.shape:
        shape = tuple(targets.shape) if isinstance(targets, Tensor) else type(targets).__name__
        raise ValueError(
            f"targets must be a tensor of the same shape as logits {tuple(logits.shape)}, "
            f"got {shape}"
        )
    if _value_checks:
        check_binary_targets(targets)
    return targets.to(logits.dtype)


def _multiclass_inputs(logits: Tensor, targets: Tensor) -> None:
    """Check a multi-class (logits, targets) pair."""
    if not isinstance(logits, Tensor) or not logits.is_floating_point():
        raise ValueError("logits must be a floating-point tensor")
    if logits.ndim != 2:
        raise ValueError(
            f"logits must have shape (N, C) for a multi-class loss, got {tuple(logits.shape)}"
        )
    if not isinstance(targets, Tensor) or targets.shape != logits.shape[:1]:
        shape = tuple(targets.shape) if isinstance(targets, Tensor) else type(targets).__name__
        raise ValueError(f"targets must have shape ({logits.shape[0]},), got {shape}")
    if targets.dtype != torch.int64:
        raise ValueError(f"targets must be int64 class indices, got dtype {targets.dtype}")
    if _value_checks:
        check_class_targets(targets, logits.shape[1])


def smooth_accuracy_loss(logits: Tensor, targets: Tensor) -> Tensor:
    r"""Negative smooth accuracy, :math:`-\mathrm{ACC}_\mathrm{smooth}` (chapter 1, eq. acc-smooth).

    Binary, logits ``(N,)`` and :math:`p = \sigma(z)`:

    .. math:: -\mathrm{ACC}_\mathrm{smooth} = -\frac1N \sum_n \big[y_n p_n + (1-y_n)(1-p_n)\big]

    Multi-class, logits ``(N, C)`` and :math:`p = \mathrm{softmax}(z)`: the softmax
    generalisation :math:`-\frac1N\sum_n p_{n, y_n}`, the expected probability of the true class.

    Its gradient with respect to the logit is the cross-entropy gradient times :math:`p_y`
    (binary: :math:`p(1-p)` against :math:`1-p`), the factor that vanishes on confidently wrong
    samples; chapter 1 derives this and shows what it does to training.
    """
    if logits.ndim == 1:
        y = _binary_inputs(logits, targets)
        # sigmoid(-z) = 1 - sigmoid(z) without the cancellation of 1 - p near p = 1
        accuracy = y * torch.sigmoid(logits) + (1 - y) * torch.sigmoid(-logits)
        return -accuracy.mean()
    _multiclass_inputs(logits, targets)
    log_p_true = F.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return -log_p_true.exp().mean()


def generalized_cross_entropy(logits: Tensor, targets: Tensor, q: float) -> Tensor:
    r"""Generalized cross-entropy of Zhang & Sabuncu (2018), between CE and -ACC (chapter 1).

    .. math:: L_q = \frac1N \sum_n \frac{1 - p_{n,y_n}^{\,q}}{q}, \qquad 0 < q \le 1,

    with :math:`p_{n,y_n}` the probability of the true class (sigmoid for logits ``(N,)``,
    softmax for logits ``(N, C)``). Its gradient is :math:`p_y^{\,q}` times the cross-entropy
    gradient: ``q -> 0`` gives cross-entropy and ``q = 1`` gives ``1 + smooth_accuracy_loss``.
    ``q = 0`` is accepted and returns plain cross-entropy.
    """
    if isinstance(q, Tensor) or not isinstance(q, (int, float)) or not 0 <= q <= 1:
        raise ValueError(f"q must be a Python number in [0, 1], got {q!r}")
    if logits.ndim == 1:
        y = _binary_inputs(logits, targets)
        log_p_true = -F.binary_cross_entropy_with_logits(logits, y, reduction="none")
    else:
        _multiclass_inputs(logits, targets)
        log_p_true = F.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    if q == 0:
        return -log_p_true.mean()
    # (1 - p^q) / q = -expm1(q log p) / q, accurate for small q
    return (-torch.expm1(q * log_p_true) / q).mean()


def smooth_f1(logits: Tensor, targets: Tensor) -> Tensor:
    r"""Smooth F1 of the positive class, in [0, 1] (chapter 2, eq. f1-smooth).

    .. math:: \mathrm{F1}_\mathrm{smooth} = \frac{2\sum_n y_n p_n}{\sum_n (y_n + p_n)},
              \qquad p_n = \sigma(z_n)

    (the ratio of batch means in the article is the same ratio of sums). It is the soft Dice
    coefficient, so ``1 - smooth_f1`` is the Dice loss. A batch with no positives and every
    :math:`p_n` underflowing to 0 has 0/0; it returns 0 with a zero gradient, the limit along
    every batch without positives.
    """
    y = _binary_inputs(logits, targets)
    p = torch.sigmoid(logits)
    denominator = (y + p).sum()
    return 2 * (y * p).sum() / denominator.clamp_min(torch.finfo(p.dtype).tiny)


def f1_weighted_bce(logits: Tensor, targets: Tensor) -> Tensor:
    r"""Cross-entropy weighted by the batch's smooth F1, held constant (chapter 2, eq. f1-bce).

    .. math:: L = -\frac1N\sum_n\Big[y_n\big(1-\tfrac{F}{2}\big)\log p_n
                  + (1-y_n)\tfrac{F}{2}\log(1-p_n)\Big],
              \qquad F = \mathrm{sg}\big[\mathrm{F1}_\mathrm{smooth}\big]

    where sg means no gradient flows through F. Its gradient is what the article obtains from
    the gradient of :math:`-\mathrm{F1}_\mathrm{smooth}` by the rule
    :math:`\nabla p \to \nabla\log p` (and :math:`-\nabla p \to \nabla\log(1-p)` for negatives),
    up to the global factor :math:`2/\sum_n(y_n+p_n)`.
    """
    y = _binary_inputs(logits, targets)
    f1 = smooth_f1(logits, y).detach()
    weight = y * (1 - f1 / 2) + (1 - y) * (f1 / 2)
    return F.binary_cross_entropy_with_logits(logits, y, weight=weight)


def logit_adjusted_cross_entropy(
    logits: Tensor, targets: Tensor, prior: Tensor, tau: float = 1.0
) -> Tensor:
    r"""Logit-adjusted cross-entropy of Menon et al. (2020) (chapter 3, eq. la-loss).

    .. math:: L = -\frac1N\sum_n \log
              \frac{e^{s_{n,y_n} + \tau\log\pi_{y_n}}}{\sum_i e^{s_{n,i} + \tau\log\pi_i}}

    with scores :math:`s` = ``logits`` of shape ``(N, C)``, class prior :math:`\pi` = ``prior``
    of shape ``(C,)`` (positive, summing to 1) and ``tau`` :math:`\ge 0`; ``tau = 0`` is plain
    cross-entropy. It is cross-entropy on the shifted logits :math:`s + \tau\log\pi`, which
    imposes the class margin :math:`m_y = -\tau\log\pi_y` of the article.
    """
    _multiclass_inputs(logits, targets)
    if not isinstance(prior, Tensor):
        raise ValueError(f"prior must be a tensor of shape ({logits.shape[1]},)")
    if prior.shape != logits.shape[1:]:
        raise ValueError(
            f"prior must have shape ({logits.shape[1]},) to match logits "
            f"{tuple(logits.shape)}, got {tuple(prior.shape)}"
        )
    if isinstance(tau, Tensor) or not isinstance(tau, (int, float)) or not math.isfinite(tau):
        raise ValueError(f"tau must be a finite Python number >= 0, got {tau!r}")
    if tau < 0:
        raise ValueError(f"tau must be >= 0, got {tau}")
    if _value_checks:
        check_prior(prior)
    # the prior may live on another device or in another dtype than the logits (e.g. a CPU
    # prior with CUDA logits): take it to the logits'
    return F.cross_entropy(logits + tau * torch.log(prior.to(logits)), targets)


def check_prior(prior: Tensor, name: str = "prior") -> None:
    """Raise ``ValueError`` unless ``prior`` is a 1-D tensor of positive numbers summing to 1."""
    if not isinstance(prior, Tensor) or prior.ndim != 1 or not prior.is_floating_point():
        raise ValueError(f"{name} must be a 1-D floating-point tensor of class probabilities")
    if not bool((prior > 0).all()):
        raise ValueError(f"{name} must be positive; got minimum {float(prior.min())}")
    total = float(prior.double().sum())
    if abs(total - 1.0) > 1e-4:
        raise ValueError(f"{name} must sum to 1, got {total:.6f}")


def class_weighted_bce(
    logits: Tensor, targets: Tensor, positive_weight: float, negative_weight: float = 1.0
) -> Tensor:
    r"""Binary cross-entropy with one fixed weight per class (chapter 2, eq. weighted-ce).

    .. math:: L = -\frac1N\sum_n \big[w_+\, y_n\log p_n + w_-\,(1-y_n)\log(1-p_n)\big],
              \qquad p_n = \sigma(z_n)

    with :math:`w_+` = ``positive_weight`` and :math:`w_-` = ``negative_weight``, both Python
    numbers :math:`\ge 0`. Inverse-frequency ("balanced") weights for a positive rate
    :math:`\pi` are :math:`w_+ = 1/(2\pi)`, :math:`w_- = 1/(2(1-\pi))`, what
    ``sklearn.utils.class_weight.compute_class_weight("balanced", ...)`` returns. Chapter 2
    shows that its population minimiser, thresholded at 1/2, predicts positive exactly when
    :math:`P(y=1\mid x) > w_-/(w_+ + w_-)`, which is :math:`\pi` for balanced weights.
    :func:`f1_weighted_bce` is the same loss with :math:`w_+ = 1 - F/2`, :math:`w_- = F/2`.
    """
    weights = {"positive_weight": positive_weight, "negative_weight": negative_weight}
    for name, weight in weights.items():
        if (isinstance(weight, (Tensor, bool)) or not isinstance(weight, (int, float))
                or not math.isfinite(weight) or weight < 0):
            raise ValueError(f"{name} must be a finite Python number >= 0, got {weight!r}")
    y = _binary_inputs(logits, targets)
    weight = negative_weight + (positive_weight - negative_weight) * y
    return F.binary_cross_entropy_with_logits(logits, y, weight=weight)


def _number(value, name: str, low: float = 0.0, high: float = math.inf) -> float:
    """``value`` as a float, or ``ValueError`` unless it is a finite number in [low, high]."""
    if (isinstance(value, (Tensor, bool)) or not isinstance(value, (int, float))
            or not math.isfinite(value) or not low <= value <= high):
        raise ValueError(f"{name} must be a finite Python number in [{low}, {high}], "
                         f"got {value!r}")
    return float(value)


def _class_vector(values, num_classes: int, name: str, like: Tensor) -> Tensor:
    """A per-class tensor of shape ``(C,)`` on the logits' device and dtype."""
    values = torch.as_tensor(values)
    if values.shape != (num_classes,):
        raise ValueError(f"{name} must have shape ({num_classes},) to match logits with "
                         f"{num_classes} classes, got {tuple(values.shape)}")
    return values.to(device=like.device, dtype=like.dtype)


def class_weighted_cross_entropy(logits: Tensor, targets: Tensor, weights: Tensor) -> Tensor:
    r"""Cross-entropy with one weight per class, applied after the log (chapters 3 and 4).

    .. math:: L = -\frac1N \sum_n w_{y_n} \log \mathrm{softmax}(z_n)_{y_n}

    with ``weights`` :math:`w` of shape ``(C,)``, non-negative. Note the plain mean over the
    batch: ``F.cross_entropy(..., weight=w)`` divides by :math:`\sum_n w_{y_n}` instead, which
    renormalises every batch and undoes part of the weighting. Its gradient is :math:`w_y`
    times the cross-entropy gradient (chapter 4's table). Weights from counts:
    :func:`class_balanced_weights`.
    """
    _multiclass_inputs(logits, targets)
    w = _class_vector(weights, logits.shape[1], "weights", logits)
    if _value_checks and not bool((w >= 0).all()):
        raise ValueError("weights must be non-negative")
    return (w[targets] * F.cross_entropy(logits, targets, reduction="none")).mean()


def class_balanced_weights(counts, beta: float) -> Tensor:
    r"""Class weights from the "effective number of samples" of Cui et al. (2019) (chapter 4).

    .. math:: w_c \propto \frac{1 - \beta}{1 - \beta^{\,n_c}}, \qquad 0 \le \beta \le 1,

    normalised so that the average weight over the *samples* is 1, :math:`\sum_c n_c w_c =
    \sum_c n_c` (the loss keeps the scale of plain cross-entropy; Cui et al. normalise to
    :math:`\sum_c w_c = C` instead, a global factor). ``beta = 0`` gives equal weights and the
    limit ``beta -> 1``, accepted as ``beta = 1``, gives inverse-frequency weights
    :math:`w_c = n / (C\, n_c)`, scikit-learn's ``"balanced"``. ``counts`` are the positive
    training counts per class; returns float64 of shape ``(C,)``.
    """
    counts = torch.as_tensor(counts, dtype=torch.float64)
    if counts.ndim != 1 or len(counts) < 2 or not bool((counts > 0).all()):
        raise ValueError(f"counts must be a 1-D sequence of at least 2 positive class counts, "
                         f"got {counts.tolist()}")
    beta = _number(beta, "beta", 0.0, 1.0)
    if beta == 1.0:
        raw = 1 / counts
    elif beta == 0.0:
        raw = torch.ones_like(counts)
    else:  # 1 - beta^n = -expm1(n log beta), accurate for beta close to 1
        raw = (1 - beta) / -torch.expm1(counts * math.log(beta))
    return raw * counts.sum() / (raw * counts).sum()


def focal_loss(logits: Tensor, targets: Tensor, gamma: float = 2.0, alpha=None) -> Tensor:
    r"""Focal loss of Lin et al. (2017), binary or multi-class (chapter 4, eq. focal).

    .. math:: L = -\frac1N \sum_n \alpha_{n}\, (1 - p_{n})^{\gamma} \log p_{n}

    with :math:`p_n` the probability of the true label (sigmoid for logits ``(N,)``, softmax for
    ``(N, C)``) and ``gamma`` :math:`\ge 0` (0 gives cross-entropy). Binary: ``alpha`` is a
    number in [0, 1] weighting positives by :math:`\alpha` and negatives by :math:`1 - \alpha`,
    exactly ``torchvision.ops.sigmoid_focal_loss(..., reduction="mean")`` (whose
    ``alpha=-1`` is ``alpha=None`` here). Multi-class: ``alpha`` is a tensor of class weights of
    shape ``(C,)``. Chapter 4 shows its gradient is the cross-entropy gradient times
    :math:`\alpha\,[(1-p)^\gamma - \gamma\, p\, (1-p)^{\gamma-1}\log p]`.
    """
    gamma = _number(gamma, "gamma")
    if logits.ndim == 1:
        y = _binary_inputs(logits, targets)
        ce = F.binary_cross_entropy_with_logits(logits, y, reduction="none")  # -log p_t
        weight = None
        if alpha is not None:
            alpha = _number(alpha, "alpha", 0.0, 1.0)
            weight = alpha * y + (1 - alpha) * (1 - y)
    else:
        _multiclass_inputs(logits, targets)
        ce = F.cross_entropy(logits, targets, reduction="none")
        weight = None
        if alpha is not None:
            weight = _class_vector(alpha, logits.shape[1], "alpha", logits)[targets]
    # 1 - p_t = -expm1(-ce), accurate when p_t is close to 1; kept above 0 so that its power
    # has a finite gradient for gamma < 1
    one_minus_p = (-torch.expm1(-ce)).clamp_min(torch.finfo(ce.dtype).tiny)
    loss = one_minus_p**gamma * ce
    return (loss if weight is None else weight * loss).mean()


def ldam_loss(logits: Tensor, targets: Tensor, counts, max_margin: float = 0.5,
              scale: float = 1.0) -> Tensor:
    r"""Label-distribution-aware margin loss of Cao et al. (2019) (chapter 4, eq. ldam).

    .. math:: L = -\frac1N\sum_n \log
              \frac{e^{s(z_{n,y_n} - \Delta_{y_n})}}
                   {e^{s(z_{n,y_n} - \Delta_{y_n})} + \sum_{i\ne y_n} e^{s z_{n,i}}},
              \qquad \Delta_c = m \Big(\frac{n_{\min}}{n_c}\Big)^{1/4}

    cross-entropy after subtracting a margin :math:`\Delta_y \propto n_y^{-1/4}` from the true
    class's logit (the rarest class gets ``max_margin`` :math:`m`), then multiplying all logits
    by ``scale`` :math:`s`. Cao et al. apply it to a cosine classifier with :math:`s = 30`; on
    the unnormalised logits of the book's MLPs ``scale = 1`` keeps the margins in logit units.
    It shifts logits *before* the log, like logit adjustment, but only the true class's.
    """
    _multiclass_inputs(logits, targets)
    counts = _class_vector(counts, logits.shape[1], "counts", logits)
    if _value_checks and not bool((counts > 0).all()):
        raise ValueError("counts must be positive")
    max_margin = _number(max_margin, "max_margin")
    scale = _number(scale, "scale", low=torch.finfo(torch.float64).tiny)
    margins = max_margin * (counts.min() / counts) ** 0.25
    shifted = logits - F.one_hot(targets, logits.shape[1]).to(logits.dtype) * margins
    return F.cross_entropy(scale * shifted, targets)
