"""Metrics that scikit-learn does not already give.

Every function takes labels, predictions and logits as tensors on any device (or as NumPy
arrays or lists) and returns NumPy results on the CPU, ready for tables and plots. Transforms of
logits (post-hoc adjustment, tau-normalisation) are last layers: :mod:`reweighting.heads`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .validation import check_binary_targets, check_number

__all__ = [
    "per_model",
    "binary_scores",
    "f1_at_thresholds",
    "best_threshold",
    "head_medium_tail",
    "group_accuracy",
    "balanced_accuracy",
    "tuned_thresholds",
    "f1_at_tuned_threshold",
    "expected_cost",
    "expected_calibration_error",
]


def _to_numpy(values) -> np.ndarray:
    """``values`` (a tensor on any device, an array or a list) as a NumPy array on the CPU."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu()
        if values.dtype == torch.bfloat16:  # NumPy has no bfloat16
            values = values.float()
        return values.numpy()
    return np.asarray(values)


def _labels_for(y_true: np.ndarray, shape: tuple, name: str) -> np.ndarray:
    """``y_true`` of shape ``(N,)`` or ``(..., N)`` broadcast to the models' ``shape (..., N)``.

    Per-seed labels (each seed scored on its own test draw) have shape ``(S, N)`` and broadcast
    against ``(L, S, N)``, the labels of one shared set have shape ``(N,)``.
    """
    if y_true.ndim < 1 or len(shape) < 1 or y_true.shape[-1] != shape[-1]:
        n = y_true.shape[-1] if y_true.ndim else "N"
        raise ValueError(f"{name} must have shape (..., {n}) to match y_true of shape "
                         f"{y_true.shape}, got {shape}")
    try:
        return np.broadcast_to(y_true, shape)
    except ValueError as error:
        raise ValueError(f"y_true of shape {y_true.shape} (one set, or one per seed) does not "
                         f"broadcast to {name}'s shape {shape}") from error


def per_model(metric: Callable, y_true, y_pred, **kwargs) -> np.ndarray:
    """Apply a scikit-learn ``metric(y_true, y_pred)`` to every model of a batch (chapters 3-5).

    Used by chapters 3 to 5 to score all seeds of all losses with the same metric, e.g.
    ``per_model(accuracy_score, y_test, logits.argmax(-1))``.

    Args:
        metric (callable): ``metric(y_true, y_pred, **kwargs) -> float``, e.g. from
            ``sklearn.metrics``.
        y_true (Tensor, array or list): true labels, shape ``(N,)`` for one shared set, or
            ``(S, N)`` (any shape that broadcasts to ``y_pred``'s) for each seed's own set, any
            device.
        y_pred (Tensor, array or list): predictions of every model, shape ``(..., N)`` (e.g.
            ``(L, S, N)`` from :meth:`reweighting.train.Ensemble.logits` after thresholding or
            ``argmax``), any device.
        **kwargs: passed on to ``metric``.

    Returns:
        numpy.ndarray: float64 of shape ``y_pred.shape[:-1]``.

    Raises:
        ValueError: if ``y_true`` does not broadcast to ``y_pred``'s shape ``(..., N)``.
    """
    y_true = _to_numpy(y_true)
    y_pred = _to_numpy(y_pred)
    labels = _labels_for(y_true, y_pred.shape, "y_pred").reshape(-1, y_pred.shape[-1])
    flat = y_pred.reshape(-1, y_pred.shape[-1])
    scores = [metric(truth, row, **kwargs) for truth, row in zip(labels, flat)]
    return np.asarray(scores, dtype=np.float64).reshape(y_pred.shape[:-1])


def _as_float_array(values, name: str) -> np.ndarray:
    try:
        return np.asarray(_to_numpy(values), dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be numbers (an array or a tensor)") from error


def _binary_decisions(y_true, predicted) -> tuple[torch.Tensor, torch.Tensor]:
    """Checked binary labels and boolean decisions, the labels broadcast to the decisions'
    shape ``(..., N)`` on their device (:func:`binary_scores`, :func:`expected_cost`)."""
    y = torch.as_tensor(y_true)
    predicted = torch.as_tensor(predicted)
    if y.ndim < 1:
        raise ValueError(f"y_true must have shape (N,) or (..., N), got shape {tuple(y.shape)}")
    check_binary_targets(y, "y_true")
    if predicted.dtype != torch.bool:
        raise ValueError(f"predicted must be boolean decisions, got dtype {predicted.dtype}")
    _labels_for(np.empty(y.shape, dtype=bool), tuple(predicted.shape), "predicted")
    return y.bool().to(predicted.device).expand(predicted.shape), predicted


def binary_scores(y_true, predicted) -> dict[str, np.ndarray]:
    r"""Positive-class F1, precision and recall of every model at once (chapters 2 and 5).

    The numbers of scikit-learn's ``f1_score``, ``precision_score`` and ``recall_score`` with
    ``zero_division=0``, for a whole batch of models' decisions in one pass:
    :math:`F_1 = 2\,TP / (\#\text{predicted} + \#\text{positive})`, precision
    :math:`TP / \#\text{predicted}`, recall :math:`TP / \#\text{positive}`, each 0 where its
    denominator is 0.

    Args:
        y_true (Tensor, array or list): labels of shape ``(N,)``, or ``(S, N)`` for each seed's
            own set (any shape that broadcasts to ``predicted``'s), values in {0, 1}, any device.
        predicted (Tensor, array or list): booleans of shape ``(..., N)``, every model's decisions
            (e.g. ``probabilities >= threshold``), on the device of ``y_true``.

    Returns:
        dict[str, numpy.ndarray]: ``"F1"``, ``"precision"`` and ``"recall"``, each float64 of
        shape ``predicted.shape[:-1]``.

    Raises:
        ValueError: if ``y_true`` has values outside {0, 1}, ``predicted`` is not boolean, or
            ``y_true`` does not broadcast to ``predicted``'s shape ``(..., N)``.
    """
    y, predicted = _binary_decisions(y_true, predicted)
    true_positives = (predicted & y).sum(-1).double()
    n_predicted = predicted.sum(-1).double()
    n_positive = y.sum(-1).double()

    def ratio(numerator, denominator):
        return torch.where(denominator > 0, numerator / denominator.clamp(min=1), 0.0).cpu().numpy()

    return {"F1": ratio(2 * true_positives, n_predicted + n_positive),
            "precision": ratio(true_positives, n_predicted),
            "recall": ratio(true_positives, n_positive)}


def f1_at_thresholds(y_true, probabilities, thresholds) -> np.ndarray:
    r"""Positive-class F1 of every model at every decision threshold (chapters 2, 5).

    Model ``m`` predicts positive where ``probabilities[m] >= t``. With TP, FP and FN counted
    against ``y_true``,

    .. math:: \mathrm{F1}(t) = \frac{2\,\mathrm{TP}}{2\,\mathrm{TP} + \mathrm{FP} + \mathrm{FN}},

    and 0 where the denominator is 0, the numbers of scikit-learn's
    ``f1_score(y_true, probabilities[m] >= t, zero_division=0)`` for every model and threshold
    in one vectorised pass (``precision_recall_curve`` gives F1 at each model's own thresholds,
    not on a grid shared by many models).

    Args:
        y_true (Tensor, array or list): labels of shape ``(N,)``, or ``(S, N)`` for each seed's
            own set (any shape that broadcasts to ``probabilities``'), values in {0, 1}.
        probabilities (Tensor, array or list): scores of every model, shape ``(..., N)`` (e.g.
            ``(L, S, N)``), any device.
        thresholds (Tensor, array or list): decision thresholds, shape ``(T,)``, finite.

    Returns:
        numpy.ndarray: float64 of shape ``(..., T)``, in [0, 1].

    Raises:
        ValueError: on non-numeric input, labels outside {0, 1}, mismatched shapes, or empty
            or non-finite thresholds.
    """
    y = _as_float_array(y_true, "y_true")
    probs = _as_float_array(probabilities, "probabilities")
    thresholds = _as_float_array(thresholds, "thresholds")
    if y.ndim < 1 or not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("y_true must be an array of labels in {0, 1}, of shape (N,) or (..., N)")
    y = _labels_for(y, probs.shape, "probabilities")
    if thresholds.ndim != 1 or thresholds.size == 0 or not np.isfinite(thresholds).all():
        raise ValueError("thresholds must be a non-empty 1-D array of finite numbers")
    positives = y.sum(-1)
    scores = np.empty(probs.shape[:-1] + thresholds.shape)
    for k, t in enumerate(thresholds):
        predicted = probs >= t
        tp = (predicted * y).sum(-1)
        denominator = predicted.sum(-1) + positives  # 2 TP + FP + FN = predicted + actual
        scores[..., k] = np.divide(2 * tp, denominator, out=np.zeros_like(tp),
                                   where=denominator > 0)
    return scores


def best_threshold(y_true, probabilities, thresholds) -> np.ndarray:
    """For every model, the threshold of ``thresholds`` with the highest F1 (chapters 2, 5).

    F1 as in :func:`f1_at_thresholds`; on ties the first of the tied thresholds in the order
    given. Tune it on a validation split and apply it to the test split.

    Args:
        y_true (Tensor, array or list): labels of shape ``(N,)`` or ``(S, N)``, as
            :func:`f1_at_thresholds`.
        probabilities (Tensor, array or list): scores of every model, shape ``(..., N)``.
        thresholds (Tensor, array or list): candidate thresholds, shape ``(T,)``, finite.

    Returns:
        numpy.ndarray: float64 of shape ``probabilities.shape[:-1]``.

    Raises:
        ValueError: as :func:`f1_at_thresholds`.
    """
    scores = f1_at_thresholds(y_true, probabilities, thresholds)
    return _as_float_array(thresholds, "thresholds")[scores.argmax(-1)]


def head_medium_tail(counts) -> dict[str, list[int]]:
    """Split the classes of a long-tailed training set into head, medium and tail (chapters 3, 4).

    Classes are ranked by their training count ``counts[c]``, largest first (ties by class
    index); the first ``C // 3`` are the head, the last ``C // 3`` the tail and the rest the
    medium group, so 10 classes split 3 / 4 / 3.

    Args:
        counts (Tensor, array or sequence of int): training count of each class, shape
            ``(C,)`` with C >= 3, non-negative, any device.

    Returns:
        dict[str, list[int]]: ``{"head": [...], "medium": [...], "tail": [...]}``, the class
        indices of each group in increasing order: the ``groups`` of :func:`group_accuracy`.

    Raises:
        ValueError: if there are fewer than 3 counts or a negative one.
    """
    counts = [int(n) for n in _to_numpy(counts).ravel()]
    if len(counts) < 3 or min(counts) < 0:
        raise ValueError(f"counts must hold at least 3 non-negative class counts, got {counts}")
    order = sorted(range(len(counts)), key=lambda c: (-counts[c], c))
    k = len(counts) // 3
    return {"head": sorted(order[:k]), "medium": sorted(order[k:len(counts) - k]),
            "tail": sorted(order[len(counts) - k:])}


def group_accuracy(y_true, y_pred, groups) -> dict[str, np.ndarray]:
    r"""Mean per-class accuracy within groups of classes, for every model (chapters 3 and 4).

    .. math:: \mathrm{acc}_G = \frac{1}{|G|}\sum_{c\in G} P(\hat y = c \mid y = c)

    where :math:`P(\hat y = c\mid y = c)` is the accuracy on the test samples of class ``c``
    (its recall: the numbers of scikit-learn's ``recall_score(..., average=None)``, computed
    for every model at once). With one group holding every class this is the balanced accuracy
    (``balanced_accuracy_score``); with :func:`head_medium_tail` it gives head, medium and tail
    accuracy (chapters 3 and 4), and with one class per group the per-class accuracies
    (chapter 3).

    Args:
        y_true (Tensor, array or list): class labels of shape ``(N,)``, or ``(S, N)`` for each
            seed's own test set (any shape that broadcasts to ``y_pred``'s), any device.
        y_pred (Tensor, array or list): predicted labels of every model, shape ``(..., N)``
            (e.g. ``(L, S, N)``), any device.
        groups (dict[str, list[int]]): a name for each group and its non-empty list of
            classes, each of which must occur in every set of ``y_true``.

    Returns:
        dict[str, numpy.ndarray]: ``{name: float64 array of shape y_pred.shape[:-1]}``.

    Raises:
        ValueError: on mismatched shapes, an empty group, or a class absent from ``y_true``.
    """
    y_true = _to_numpy(y_true)
    y_pred = _to_numpy(y_pred)
    labels = _labels_for(y_true, y_pred.shape, "y_pred").reshape(-1, y_pred.shape[-1])
    if not groups or any(len(members) == 0 for members in groups.values()):
        raise ValueError(f"groups must map each name to a non-empty list of classes, got {groups}")
    classes = sorted({int(c) for members in groups.values() for c in members})
    missing = [c for c in classes if not (labels == c).any(-1).all()]
    if missing:
        raise ValueError(f"groups name classes {missing} that do not occur in (every set of) "
                         f"y_true")
    flat = y_pred.reshape(-1, y_pred.shape[-1])
    hits = flat == labels
    # recall of class c per row: correct predictions among the row's samples of class c
    recalls = np.stack([(hits & (labels == c)).sum(-1) / (labels == c).sum(-1) for c in classes],
                       axis=-1)
    column = {c: i for i, c in enumerate(classes)}
    return {
        name: recalls[:, [column[int(c)] for c in members]].mean(axis=1).reshape(y_pred.shape[:-1])
        for name, members in groups.items()
    }


def balanced_accuracy(logits, y_true) -> np.ndarray:
    r"""Balanced accuracy of every model from its logits (chapters 3 to 6).

    .. math:: \mathrm{BA} = \frac1C\sum_{c} P(\hat y = c\mid y = c),
              \qquad \hat y = \arg\max_i z_i

    scikit-learn's ``balanced_accuracy_score`` of every model at once, the mean of the
    per-class recalls (:func:`group_accuracy` with one group of all classes present).

    Args:
        logits (Tensor, array or list): scores of shape ``(..., N, C)``, e.g. ``(L, S, N, C)``
            from :meth:`reweighting.train.Ensemble.logits`, any device.
        y_true (Tensor, array or list): class labels of shape ``(N,)``, or ``(S, N)`` for each
            seed's own test set (broadcasting to ``logits.shape[:-1]``); every class of the
            logits must occur in each set.

    Returns:
        numpy.ndarray: float64 of shape ``logits.shape[:-2]``.

    Raises:
        ValueError: on mismatched shapes or a class absent from ``y_true``.
    """
    scores = _to_numpy(logits)
    if scores.ndim < 2:
        raise ValueError(f"logits must have shape (..., N, C), got {scores.shape}")
    groups = {"all": list(range(scores.shape[-1]))}
    return group_accuracy(y_true, scores.argmax(-1), groups)["all"]


def tuned_thresholds(scores, y_true) -> np.ndarray:
    r"""For every model, the threshold on its validation scores that maximises F1 (chapters 2, 6).

    Every cut between two consecutive distinct sorted scores is a candidate, so the search is
    as fine as the validation set allows wherever the scores lie: a grid of probabilities
    (0.01, ..., 0.99) is coarse exactly where a re-balanced model's threshold falls (near
    :math:`p = 0.95` after a shift of :math:`\log 49`, chapter 6), which biases a comparison
    against it. Predicting the top :math:`k` scores positive gives

    .. math:: \mathrm{F1}_k = \frac{2\,\mathrm{TP}_k}{k + P},

    maximised over :math:`k` (the smallest :math:`k` on ties); the threshold is the midpoint
    between the :math:`k`-th and the :math:`(k+1)`-th score, in the scores' own units (logits
    in the book). A model then predicts positive where ``score > threshold``.

    Args:
        scores (Tensor, array or list): real scores (logits or probabilities) of every model,
            shape ``(..., N)``, any device.
        y_true (Tensor, array or list): labels in {0, 1} of shape ``(N,)`` or broadcasting to
            ``scores``' shape, with at least one positive in each set.

    Returns:
        numpy.ndarray: float64 thresholds of shape ``scores.shape[:-1]``.

    Raises:
        ValueError: on mismatched shapes, labels outside {0, 1}, a set without positives or
            non-finite scores.
    """
    z = _as_float_array(scores, "scores")
    y = _as_float_array(y_true, "y_true")
    if z.ndim < 1 or not np.isfinite(z).all():
        raise ValueError("scores must be finite numbers of shape (..., N)")
    if y.ndim < 1 or not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("y_true must be labels in {0, 1} of shape (N,) or (..., N)")
    y = _labels_for(y, z.shape, "scores")
    if not (y.sum(-1) > 0).all():
        raise ValueError("y_true must contain at least one positive in every set")
    order = np.argsort(-z, axis=-1, kind="stable")
    z_sorted = np.take_along_axis(z, order, -1)
    true_positives = np.cumsum(np.take_along_axis(y, order, -1), axis=-1)
    k = np.arange(1, z.shape[-1] + 1)
    f1 = 2 * true_positives / (k + y.sum(-1, keepdims=True))
    # a cut after position k is possible only between two distinct scores (or after the last)
    distinct = np.concatenate([z_sorted[..., :-1] > z_sorted[..., 1:],
                               np.ones(z.shape[:-1] + (1,), dtype=bool)], axis=-1)
    best = np.where(distinct, f1, -np.inf).argmax(-1)[..., None]
    above = np.take_along_axis(z_sorted, best, -1)[..., 0]
    below = np.take_along_axis(np.concatenate([z_sorted[..., 1:], z_sorted[..., -1:] - 1.0],
                                              axis=-1), best, -1)[..., 0]
    return (above + below) / 2


def f1_at_tuned_threshold(val_scores, val_true, test_scores, test_true) -> np.ndarray:
    """Test F1 of every model at the threshold tuned on its validation scores (chapters 2, 6).

    The threshold is :func:`tuned_thresholds` of the validation scores; a test sample is
    predicted positive where its score exceeds it, and F1 is :func:`binary_scores`'.

    Args:
        val_scores (Tensor, array or list): validation scores, shape ``(..., N_val)``.
        val_true: validation labels in {0, 1}, broadcasting to ``val_scores``.
        test_scores (Tensor, array or list): test scores of the same models, ``(..., N_test)``.
        test_true: test labels in {0, 1}, broadcasting to ``test_scores``.

    Returns:
        numpy.ndarray: float64 test F1 of shape ``test_scores.shape[:-1]``.
    """
    thresholds = tuned_thresholds(val_scores, val_true)
    z_test = _as_float_array(test_scores, "test_scores")
    if z_test.shape[:-1] != thresholds.shape:
        raise ValueError(f"test_scores must have the models' shape {thresholds.shape} + (N,), "
                         f"got {z_test.shape}")
    return binary_scores(test_true, torch.from_numpy(z_test > thresholds[..., None]))["F1"]


def expected_cost(y_true, predicted, cost_fn: float, cost_fp: float) -> np.ndarray:
    r"""Expected cost per sample of every model's binary decisions (chapter 5).

    .. math:: \frac{1}{N}\big(c_\mathrm{FN}\,\#\{\hat y = 0, y = 1\}
              + c_\mathrm{FP}\,\#\{\hat y = 1, y = 0\}\big)

    The cost that the threshold :math:`c_\mathrm{FP}/(c_\mathrm{FP} + c_\mathrm{FN})` on the
    true posterior minimises (Elkan 2001; chapter 5, eq. cw-threshold).

    Args:
        y_true (Tensor, array or list): labels in {0, 1} of shape ``(N,)``, or ``(S, N)`` for
            each seed's own set (any shape that broadcasts to ``predicted``'s).
        predicted (Tensor, array or list): booleans of shape ``(..., N)``, every model's
            decisions.
        cost_fn (float): the cost of a missed positive, >= 0.
        cost_fp (float): the cost of a false alarm, >= 0.

    Returns:
        numpy.ndarray: float64 of shape ``predicted.shape[:-1]``.

    Raises:
        ValueError: as :func:`binary_scores`, or on a negative or non-finite cost.
    """
    cost_fn = check_number(cost_fn, "cost_fn")
    cost_fp = check_number(cost_fp, "cost_fp")
    y, predicted = _binary_decisions(y_true, predicted)
    missed, false_alarms = (~predicted & y).sum(-1).double(), (predicted & ~y).sum(-1).double()
    return ((cost_fn * missed + cost_fp * false_alarms) / y.shape[-1]).cpu().numpy()


def expected_calibration_error(y_true, probabilities, bins: int = 15) -> np.ndarray:
    r"""Expected calibration error of every model's positive-class probabilities (chapter 5).

    .. math:: \mathrm{ECE} = \sum_b \frac{n_b}{N}\,\big\lvert \bar y_b - \bar p_b \big\rvert
              = \frac1N \sum_b \Big\lvert \sum_{i \in b} (y_i - p_i) \Big\rvert

    over ``bins`` equal-width bins of :math:`[0, 1]` (a probability of exactly 1 falls in the
    last), with :math:`\bar y_b` the frequency of positives and :math:`\bar p_b` the mean
    probability in bin :math:`b` (Guo et al. 2017, for the binary case). The reliability
    diagram plots the same two numbers per bin (scikit-learn's ``calibration_curve``).

    Args:
        y_true (Tensor, array or list): labels in {0, 1} of shape ``(N,)``, or ``(S, N)`` for
            each seed's own set (any shape that broadcasts to ``probabilities``').
        probabilities (Tensor, array or list): every model's probabilities of the positive
            class, in [0, 1], shape ``(..., N)``.
        bins (int): the number of bins, >= 1. Default: 15.

    Returns:
        numpy.ndarray: float64 of shape ``probabilities.shape[:-1]``.

    Raises:
        ValueError: on probabilities outside [0, 1], labels outside {0, 1}, mismatched shapes
            or a bad ``bins``.
    """
    bins = check_number(bins, "bins", 1, integer=True)
    p = _as_float_array(probabilities, "probabilities")
    y = _as_float_array(y_true, "y_true")
    if p.ndim < 1 or not ((p >= 0) & (p <= 1)).all():
        raise ValueError("probabilities must lie in [0, 1], with shape (..., N)")
    if y.ndim < 1 or not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("y_true must be labels in {0, 1} of shape (N,) or (..., N)")
    y = _labels_for(y, p.shape, "probabilities")
    which = np.minimum((p * bins).astype(int), bins - 1)
    error, n = np.zeros(p.shape[:-1]), p.shape[-1]
    for in_bin in (which == b for b in range(bins)):
        error += np.abs((in_bin * y).sum(-1) - (in_bin * p).sum(-1)) / n
    return error
