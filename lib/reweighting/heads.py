r"""Last layers on frozen features: post-hoc adjustment, refits, cRT and tau-normalisation.

Chapter 6 asks where a reweighting's gain lives, in the representation or in the last layer, by
crossing every trained network's frozen features (:meth:`reweighting.train.Ensemble.features`)
with new last layers. This module holds those last layers ("heads"), each a small function on
tensors, usable on any model's features:

- :func:`posthoc_adjusted_logits`: the trained layer, decided by
  :math:`\arg\max_i s_i - \tau\log\pi_i` (Menon et al. 2020; chapter 3);
- :func:`refit`: a new linear layer fitted to convergence (:func:`reweighting.solvers.fit_linear`),
  plain, class-weighted (:func:`inverse_frequency_weights`) or on a class-balanced resample
  (:func:`class_balanced_resample`, the classifier re-training "cRT" of Kang et al. 2020);
- :func:`tau_normalised_logits` with :func:`best_tau`: the trained weights divided by their norms
  to the power :math:`\tau` (Kang et al. 2020), :math:`\tau` chosen on validation.

Shapes follow the trainer: features ``(..., N, D)``, a layer's weight in PyTorch's
``(..., K, D)`` layout, logits ``(..., N, K)``, or ``(..., N)`` for one binary logit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from . import solvers
from .validation import check_number, check_prior

__all__ = [
    "posthoc_adjusted_logits",
    "inverse_frequency_weights",
    "class_balanced_resample",
    "standardise",
    "refit",
    "tau_normalised_logits",
    "best_tau",
    "fit_temperature",
]


def posthoc_adjusted_logits(logits, prior, tau: float = 1.0) -> Tensor:
    r"""Post-hoc logit adjustment of Menon et al. (2020) (chapter 3, eq. posthoc; chapters 4-6).

    .. math:: \tilde s_i = s_i - \tau \log \pi_i, \qquad \hat y = \arg\max_i \tilde s_i

    Predict by ``argmax`` over the last axis. When ``softmax(s)`` estimates
    :math:`P(y\mid x)`, ``tau = 1`` gives :math:`\arg\max_i P(y=i\mid x)/\pi_i`, the rule that
    minimises the balanced error; ``tau = 0`` returns the logits unchanged. Chapter 5 shows
    that it is the rule the logit-adjusted loss's population minimiser makes, and that
    dividing the logits by a temperature :math:`T` first is the same as using ``tau * T``.

    Args:
        logits (Tensor): float scores :math:`s` of shape ``(..., C)`` (e.g. ``(L, S, N, C)``
            from :meth:`reweighting.train.Ensemble.logits`), any device.
        prior (Tensor): training class prior :math:`\pi` of shape ``(C,)``, positive, summing
            to 1; any device and float dtype (it is moved to the logits').
        tau (float): scale of the adjustment, a real number >= 0. Default: ``1.0``.

    Returns:
        Tensor: the adjusted logits, shape, dtype and device of ``logits``.

    Raises:
        ValueError: on non-float logits, a prior of the wrong shape or not a distribution, or a
            bad ``tau``.
    """
    if not isinstance(logits, Tensor) or not logits.is_floating_point() or logits.ndim < 1:
        raise ValueError("logits must be a floating-point tensor of shape (..., C)")
    if not isinstance(prior, Tensor) or prior.shape != logits.shape[-1:]:
        shape = tuple(prior.shape) if isinstance(prior, Tensor) else type(prior).__name__
        raise ValueError(f"prior must be a tensor of shape ({logits.shape[-1]},) to match "
                         f"logits {tuple(logits.shape)}, got {shape}")
    check_prior(prior)
    tau = check_number(tau, "tau")
    return logits - tau * prior.to(dtype=logits.dtype, device=logits.device).log()


def _class_counts(labels: Tensor, num_classes: int) -> Tensor:
    """Counts ``(..., C)`` of each class in every row of ``labels (..., N)``; all positive."""
    if not isinstance(labels, Tensor) or labels.ndim < 1:
        raise ValueError("labels must be a tensor of class indices of shape (..., N)")
    if labels.is_floating_point() and not bool((labels == labels.round()).all()):
        raise ValueError("labels must be whole numbers (class indices), got fractions")
    num_classes = check_number(num_classes, "num_classes", 2, integer=True)
    flat = labels.long().reshape(-1, labels.shape[-1])
    if flat.numel() and (int(flat.min()) < 0 or int(flat.max()) >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), found {int(flat.min())} to "
                         f"{int(flat.max())}")
    counts = torch.stack([torch.bincount(row, minlength=num_classes) for row in flat])
    if not bool((counts > 0).all()):
        raise ValueError(f"labels must contain every one of the {num_classes} classes in each "
                         "row (a class without samples has no weight)")
    return counts.reshape(*labels.shape[:-1], num_classes)


def inverse_frequency_weights(labels: Tensor, num_classes: int) -> Tensor:
    r"""The inverse-frequency weight :math:`N / (C\,n_{y_i})` of every sample (chapter 6).

    .. math:: v_i = \frac{N}{C\, n_{y_i}}, \qquad \frac1N\sum_i v_i = 1

    scikit-learn's ``"balanced"`` class weights, per sample, and
    :func:`reweighting.losses.class_balanced_weights` with ``beta = 1`` read at each label.
    Chapter 6 derives (eq. balanced-sampling) that a class-balanced draw has the expected
    gradient of the loss weighted this way; its class-weighted refit uses them.

    Args:
        labels (Tensor): class indices of shape ``(..., N)``, e.g. ``(S, N)``, one row per
            seed's training set; each row must contain every class.
        num_classes (int): :math:`C`, at least 2.

    Returns:
        Tensor: float64 weights of the shape of ``labels``.

    Raises:
        ValueError: on labels that are not class indices in ``[0, C)`` or miss a class.
    """
    counts = _class_counts(labels, num_classes).double()
    weights = labels.shape[-1] / (counts.shape[-1] * counts)
    return weights.gather(-1, labels.long())


def class_balanced_resample(labels: Tensor, num_classes: int, seed: int) -> Tensor:
    r"""How often each sample appears in one class-balanced resample (cRT; chapter 6).

    Kang et al. (2020) re-train the last layer on class-balanced batches: every class equally
    likely, samples uniform within their class. One such resample of the training set's size
    :math:`N` draws :math:`\lfloor N / C\rfloor` samples per class with replacement; the
    returned multiplicities, used as sample weights of :func:`refit`, turn the refit into that
    re-training, up to the randomness of one draw. Their expectation is
    :func:`inverse_frequency_weights` (times :math:`\lfloor N/C\rfloor C / N`).

    Args:
        labels (Tensor): class indices of shape ``(N,)``, containing every class.
        num_classes (int): :math:`C`, at least 2.
        seed (int): seeds the draw (a ``torch.Generator``); the book passes one of the seed's
            own streams.

    Returns:
        Tensor: float64 multiplicities of shape ``(N,)``, summing to
        :math:`C\lfloor N/C\rfloor`.

    Raises:
        ValueError: on bad labels or ``seed``.
    """
    if not isinstance(labels, Tensor) or labels.ndim != 1:
        raise ValueError("labels must be a 1-D tensor of class indices (one training set)")
    _class_counts(labels, num_classes)
    seed = check_number(seed, "seed", integer=True)
    generator = torch.Generator().manual_seed(seed)
    multiplicity = torch.zeros(len(labels), dtype=torch.float64)
    per_class = len(labels) // num_classes
    for c in range(num_classes):
        members = torch.nonzero(labels.long().cpu() == c).squeeze(1)
        picks = members[torch.randint(len(members), (per_class,), generator=generator)]
        multiplicity += torch.bincount(picks, minlength=len(labels)).double()
    return multiplicity


def standardise(train_features: Tensor, *others: Tensor) -> list[Tensor]:
    """Centre and scale features by the training set's mean and standard deviation (chapter 6).

    Each model (every leading index) uses its own training features' statistics, so the
    refits' ridge penalty means the same on every network. A constant feature (a dead ReLU)
    is left at 0 (its standard deviation is replaced by 1).

    Args:
        train_features (Tensor): ``(..., N, D)``.
        *others (Tensor): more feature sets ``(..., N', D)`` of the same models (validation,
            test), standardised with the training statistics.

    Returns:
        list[Tensor]: the training features, then each of ``others``, standardised, in float64.
    """
    mean = train_features.double().mean(-2, keepdim=True)
    std = train_features.double().std(-2, keepdim=True)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return [(f.double() - mean) / std for f in (train_features, *others)]


def refit(features: Tensor, labels: Tensor, num_classes: int, *, sample_weight=None,
          l2: float = 0.0, tol: float = 1e-8, max_iter: int = 100,
          warm_start: solvers.LinearFit | None = None) -> solvers.LinearFit:
    r"""A new linear last layer for every model, fitted to convergence (chapter 6).

    .. math:: \min_{W, b}\ \frac1N\sum_i v_i\, \ell(W h_i + b, y_i) + \frac{\lambda}{2}\|W\|^2

    on frozen features :math:`h_i`, with :math:`\ell` the logistic loss (two classes) or the
    softmax cross-entropy, sample weights :math:`v_i` (ones: the plain refit;
    :func:`inverse_frequency_weights`: the class-weighted refit; :func:`class_balanced_resample`:
    cRT) and ridge :math:`\lambda`. Solved per model by Newton's method in float64 until the
    gradient's largest entry is at most ``tol`` (:func:`reweighting.solvers.fit_linear`); a model
    that does not converge raises. Chapter 6 shows why the weights move only the bias when the
    last layer is well specified and :math:`\lambda = 0`, and how far they move the weights
    otherwise. That result also gives a good starting point: with ``warm_start``, a weighted
    refit starts from an unweighted fit on the same features with each class's bias moved by
    the log of its mean sample weight, :math:`b_k + \log \bar v_k` (for two classes, the one
    logit's bias by :math:`\log(\bar v_1 / \bar v_0)`), and Newton's method goes on from there
    to the weighted optimum; the optimum does not depend on the start.

    Args:
        features (Tensor): ``(..., N, D)``, e.g. ``(L, S, N, D)`` from
            :meth:`reweighting.train.Ensemble.features` (standardise them first).
        labels (Tensor): ``(..., N)`` or any shape that broadcasts to ``features.shape[:-1]``
            (e.g. ``(S, N)`` for ``(L, S, N, D)`` features): class indices, or 0/1.
        num_classes (int): the number of classes; 2 fits one logit.
        sample_weight (Tensor, optional): non-negative, broadcasting like ``labels``.
        l2 (float): :math:`\lambda \ge 0`. Default: 0.
        tol (float): the convergence tolerance on the gradient. Default: ``1e-8``.
        max_iter (int): Newton iterations at most. Default: 100.
        warm_start (reweighting.solvers.LinearFit, optional): a fit on the same features (e.g.
            the plain refit) to start from, its bias shifted as above when ``sample_weight`` is
            given. Default: ``None`` (start at :math:`W = 0`).

    Returns:
        reweighting.solvers.LinearFit: with the leading shape ``features.shape[:-2]`` flattened
        into one model axis; :meth:`~reweighting.solvers.LinearFit.logits` of features
        flattened the same way gives the new logits, and ``gradient_norm`` shows the
        convergence of each model.

    Raises:
        ValueError: on mismatched shapes or bad arguments.
        RuntimeError: if a model does not converge within ``max_iter``.
    """
    if not isinstance(features, Tensor) or features.ndim < 2:
        raise ValueError("features must be a tensor of shape (..., N, D)")
    lead = features.shape[:-1]
    try:
        labels = torch.as_tensor(labels).broadcast_to(lead)
        if sample_weight is not None:
            sample_weight = torch.as_tensor(sample_weight).broadcast_to(lead)
    except RuntimeError as error:
        raise ValueError(f"labels and sample_weight must broadcast to the features' "
                         f"{tuple(lead)}") from error
    models = int(np.prod(lead[:-1])) if len(lead) > 1 else 1
    flat = features.reshape(models, *features.shape[-2:])
    labels = labels.reshape(models, -1)
    sample_weight = None if sample_weight is None else sample_weight.reshape(models, -1)
    init = None
    if warm_start is not None:
        if not isinstance(warm_start, solvers.LinearFit):
            raise ValueError(f"warm_start must be None or a LinearFit, got "
                             f"{type(warm_start).__name__}")
        bias = warm_start.bias.clone()
        if sample_weight is not None:
            bias += _log_mean_weight_shift(labels, sample_weight, num_classes).to(bias)
        init = (warm_start.weight, bias)
    return solvers.fit_linear(flat, labels, num_classes, sample_weight=sample_weight, l2=l2,
                              tol=tol, max_iter=max_iter, init=init)


def _log_mean_weight_shift(labels: Tensor, sample_weight: Tensor, num_classes: int) -> Tensor:
    """Per model, ``log`` of each class's mean sample weight, ``(M, K)`` (``K = 1``: the
    positive class's minus the negative's), the bias shift of the weighted optimum."""
    y = labels.long().cpu()
    v = sample_weight.double().cpu()
    totals = torch.zeros(len(y), num_classes, dtype=torch.float64).scatter_add_(1, y, v)
    counts = torch.zeros_like(totals).scatter_add_(1, y, torch.ones_like(v))
    log_mean = (totals.clamp(min=1e-300) / counts.clamp(min=1)).log()
    return log_mean[:, 1:] - log_mean[:, :1] if num_classes == 2 else log_mean


def tau_normalised_logits(features: Tensor, weight: Tensor, tau) -> Tensor:
    r"""Scores of the tau-normalised trained last layer of Kang et al. (2020) (chapter 6).

    .. math:: s_k = \frac{\langle h, w_k\rangle}{\|w_k\|^{\tau}}

    with :math:`w_k` the trained weight vector of class :math:`k`, and no bias (as in Kang et
    al.'s classifier). ``tau = 0`` is the trained layer without its bias; ``tau = 1`` compares
    the cosines scaled by :math:`\|h\|`, so a head class's larger weight norm no longer wins.

    Args:
        features (Tensor): ``(..., N, D)``.
        weight (Tensor): ``(..., K, D)``, e.g. the weight of
            :meth:`reweighting.train.Ensemble.last_layer`.
        tau (float or Tensor): a real number >= 0, or a tensor of one :math:`\tau` per model,
            of the leading shape ``(...)``.

    Returns:
        Tensor: logits ``(..., N, K)``, in the promoted dtype of features and weight.
    """
    tau = torch.as_tensor(tau, dtype=weight.dtype)
    if tau.ndim == 0:
        check_number(float(tau), "tau")
    elif bool((tau < 0).any()):
        raise ValueError("tau must be >= 0 for every model")
    norms = weight.norm(dim=-1, keepdim=True) ** tau[..., None, None]
    return features @ (weight / norms).transpose(-1, -2)


def best_tau(features: Tensor, labels: Tensor, weight: Tensor, taus: Sequence[float],
             score: Callable[[Tensor, Tensor], np.ndarray]) -> np.ndarray:
    r"""The :math:`\tau` of :func:`tau_normalised_logits` that scores best, per model (chapter 6).

    Kang et al. choose :math:`\tau` on a balanced validation set; the book does the same with
    each seed's own validation draw. Ties go to the first (smallest) :math:`\tau` of ``taus``.

    Args:
        features (Tensor): validation features ``(..., N, D)``.
        labels (Tensor): validation labels broadcasting to ``(..., N)``.
        weight (Tensor): the trained weights ``(..., K, D)``.
        taus (sequence of float): the candidates, each >= 0.
        score (callable): ``score(logits (..., N, K), labels) -> array (...)``, higher is
            better, e.g. :func:`reweighting.metrics.balanced_accuracy`.

    Returns:
        numpy.ndarray: the chosen :math:`\tau` of every model, shape ``features.shape[:-2]``.
    """
    taus = [check_number(t, "taus") for t in taus]
    if not taus:
        raise ValueError("taus must contain at least one candidate")
    scores = np.stack([score(tau_normalised_logits(features, weight, t), labels) for t in taus])
    return np.asarray(taus)[scores.argmax(0)]


def fit_temperature(logits: Tensor, labels: Tensor, *, binary: bool = False) -> np.ndarray:
    r"""Temperature scaling (Guo et al. 2017): one temperature per model, fitted on validation.

    .. math:: T^* = \arg\min_{T} \; \frac1N \sum_i \ell\big(z_i / T,\; y_i\big)

    with :math:`\ell` the cross-entropy (or, ``binary``, the logistic loss), minimised over
    :math:`\log T \in [-3, 3]` by SciPy's bounded scalar search. Dividing the logits by
    :math:`T` keeps the argmax and the threshold 1/2 but moves every other rule: before prior
    division it acts as :func:`posthoc_adjusted_logits` with :math:`\tau T`, and on a binary
    logit it moves a threshold :math:`t` to :math:`T\,\mathrm{logit}(t)` (chapter 5).
    Needs SciPy (the ``data`` extra).

    Args:
        logits (Tensor): validation logits of every model, ``(..., N, C)``, or ``(..., N)``
            with ``binary``.
        labels (Tensor): class labels (int64) broadcasting to ``(..., N)``, or, ``binary``,
            targets in {0, 1} of the logits' dtype broadcasting to ``(..., N)``.
        binary (bool): one logit per sample. Default: ``False``.

    Returns:
        numpy.ndarray: the fitted :math:`T` of every model, shape ``(...)``.

    Raises:
        ValueError: on non-float logits or labels that do not broadcast to them.
    """
    from scipy import optimize

    if not isinstance(logits, Tensor) or not logits.is_floating_point() or logits.ndim < (
            1 if binary else 2):
        raise ValueError(f"logits must be a floating-point tensor of shape "
                         f"{'(..., N)' if binary else '(..., N, C)'}")
    models = logits.shape[:-1] if binary else logits.shape[:-2]
    targets = logits.shape if binary else logits.shape[:-1]
    try:
        labels = torch.broadcast_to(torch.as_tensor(labels), targets)
    except RuntimeError as error:
        raise ValueError(f"labels must broadcast to {tuple(targets)}, got shape "
                         f"{tuple(torch.as_tensor(labels).shape)}") from error
    nll = F.binary_cross_entropy_with_logits if binary else F.cross_entropy

    def fit(z: Tensor, y: Tensor) -> float:
        found = optimize.minimize_scalar(lambda log_t: float(nll(z / np.exp(log_t), y)),
                                         bounds=(-3, 3), method="bounded")
        return float(np.exp(found.x))

    k = len(models)
    return np.array([fit(z, y) for z, y in zip(logits.reshape(-1, *logits.shape[k:]),
                                               labels.reshape(-1, *labels.shape[k:]))],
                    dtype=np.float64).reshape(tuple(models))
