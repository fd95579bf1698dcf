"""Metrics that scikit-learn does not already give."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

__all__ = ["per_model"]


def per_model(metric: Callable, y_true, y_pred, **kwargs) -> np.ndarray:
    """Apply a scikit-learn ``metric(y_true, y_pred)`` to every model of a batch.

    ``y_pred`` has shape ``(..., N)`` (e.g. ``(L, S, N)`` from :meth:`lib.train.Ensemble.logits`
    after thresholding or ``argmax``); the result has shape ``(...)``. Used by every chapter to
    score all seeds of all losses with the same metric.
    """
    y_true = np.asarray(torch.as_tensor(y_true).cpu())
    y_pred = np.asarray(torch.as_tensor(y_pred).cpu())
    if y_true.ndim != 1 or y_pred.shape[-1:] != y_true.shape:
        raise ValueError(
            f"y_pred must have shape (..., {len(y_true)}) to match y_true, got {y_pred.shape}"
        )
    flat = y_pred.reshape(-1, y_true.shape[0])
    scores = [metric(y_true, row, **kwargs) for row in flat]
    return np.asarray(scores, dtype=np.float64).reshape(y_pred.shape[:-1])
