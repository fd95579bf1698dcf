"""Calibration and cost of binary decisions (chapter 5): reweighting.heads.fit_temperature,
reweighting.metrics.expected_calibration_error and reweighting.metrics.expected_cost."""

import numpy as np
import pytest
import torch
from sklearn.calibration import calibration_curve

from reweighting import heads, metrics


def test_expected_calibration_error_is_the_bin_weighted_gap_of_the_reliability_diagram():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=(2, 400))
    y = (rng.uniform(size=(2, 400)) < p ** 2).astype(np.float32)  # over-confident scores
    ece = metrics.expected_calibration_error(y, p, bins=10)
    for s in range(2):  # each model against scikit-learn's per-bin means, weighted by counts
        observed, predicted = calibration_curve(y[s], p[s], n_bins=10)
        counts = np.bincount(np.minimum((p[s] * 10).astype(int), 9), minlength=10)
        weights = counts[counts > 0] / p.shape[-1]
        assert ece[s] == pytest.approx((weights * np.abs(observed - predicted)).sum())
    assert ece.shape == (2,) and (ece > 0.05).all()
    # calibrated by construction (each bin's frequency is its mean probability): ECE 0
    assert metrics.expected_calibration_error([0, 1, 1, 0], [0.5, 0.5, 1.0, 0.0]) == 0.0
    # one set of labels shared by several models
    assert metrics.expected_calibration_error(y[0], p[[0, 0]]).tolist() == [
        pytest.approx(metrics.expected_calibration_error(y[0], p[0]))] * 2
    with pytest.raises(ValueError, match="probabilities must lie in"):
        metrics.expected_calibration_error([0, 1], [0.5, 1.5])
    with pytest.raises(ValueError, match="y_true must be labels"):
        metrics.expected_calibration_error([0, 2], [0.5, 0.5])
    with pytest.raises(ValueError, match="bins"):
        metrics.expected_calibration_error([0, 1], [0.5, 0.5], bins=0)


def test_expected_cost_counts_misses_and_false_alarms_at_their_costs():
    y = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    predicted = torch.tensor([[[True, False, True, False], [False, False, False, False]],
                              [[True, True, True, True], [True, False, False, False]]])
    cost = metrics.expected_cost(y, predicted, cost_fn=9.0, cost_fp=1.0)
    # model 0: one miss and one false alarm; one miss; model 1: two false alarms; none
    np.testing.assert_allclose(cost, [[10 / 4, 9 / 4], [2 / 4, 0.0]])
    assert cost.dtype == np.float64
    with pytest.raises(ValueError, match="cost_fn"):
        metrics.expected_cost(y, predicted, cost_fn=-1.0, cost_fp=1.0)
    with pytest.raises(ValueError, match="predicted must be boolean"):
        metrics.expected_cost(y, predicted.float(), cost_fn=9.0, cost_fp=1.0)


def test_fit_temperature_recovers_the_temperature_that_miscalibrated_the_logits():
    gen = torch.Generator().manual_seed(0)
    # calibrated logits by construction: labels drawn from softmax(z), then sharpened by T
    z = 2 * torch.randn(3, 4000, 4, generator=gen)
    y = torch.multinomial(torch.softmax(z, -1).reshape(-1, 4), 1, generator=gen).reshape(3, 4000)
    temperatures = torch.tensor([0.5, 1.0, 2.0])
    fitted = heads.fit_temperature(z * temperatures[:, None, None], y)
    assert fitted.shape == (3,)
    np.testing.assert_allclose(fitted, temperatures.numpy(), rtol=0.1)
    # binary: one logit per sample, labels shared by two models
    logit = 2 * torch.randn(6000, generator=gen)
    target = torch.bernoulli(torch.sigmoid(logit), generator=gen)
    fitted = heads.fit_temperature(torch.stack([logit, 3 * logit]), target, binary=True)
    np.testing.assert_allclose(fitted, [1.0, 3.0], rtol=0.1)
    with pytest.raises(ValueError, match="labels must broadcast"):
        heads.fit_temperature(z, y[:, :10])
    with pytest.raises(ValueError, match="logits must be a floating-point tensor"):
        heads.fit_temperature(y, y)
