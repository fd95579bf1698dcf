"""Chapter 3's library pieces: the Gaussian Bayes rule and the closed-form balanced error of a
linear rule (reweighting.data), post-hoc logit adjustment (reweighting.heads) and per-group
accuracy (reweighting.metrics)."""

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score, recall_score

from reweighting import data, heads, metrics

MENON = data.GaussianMixture(means=[[-1.0, -1.0], [1.0, 1.0]], priors=[0.95, 0.05])


def _phi(t):
    """The standard normal CDF."""
    return 0.5 * math.erfc(-t / math.sqrt(2))


def test_bayes_linear_rule_predicts_like_bayes_predict():
    three = data.GaussianMixture(means=[[0.0, 0.0], [2.0, 0.0], [0.0, 3.0]],
                                 priors=[0.7, 0.2, 0.1], sigma=1.5)
    for mixture in (MENON, three):
        x, _ = mixture.sample(5000, seed=4)
        for balanced in (False, True):
            weight, bias = data.gaussian_bayes_linear_rule(mixture, balanced=balanced)
            assert weight.dtype == bias.dtype == torch.float64
            assert weight.shape == mixture.means.shape and bias.shape == mixture.priors.shape
            predicted = (x @ weight.T + bias).argmax(dim=1)
            assert torch.equal(predicted, mixture.bayes_predict(x, balanced=balanced))


def test_bayes_linear_rule_closed_form():
    weight, bias = data.gaussian_bayes_linear_rule(MENON, balanced=True)
    torch.testing.assert_close(weight, MENON.means)
    torch.testing.assert_close(bias, torch.tensor([-1.0, -1.0], dtype=torch.float64))
    _, bias_error = data.gaussian_bayes_linear_rule(MENON)
    torch.testing.assert_close(bias_error - bias, MENON.priors.log())


def test_balanced_bayes_rule_reaches_phi_of_half_the_mean_distance():
    # Phi(-|mu_1 - mu_0| / (2 sigma)) = Phi(-sqrt(2)) = erfc(1) / 2 for Menon et al.'s set-up
    weight, bias = data.gaussian_bayes_linear_rule(MENON, balanced=True)
    errors = data.linear_rule_class_errors(MENON, weight, bias)
    assert errors.dtype == np.float64 and errors.shape == (2,)
    np.testing.assert_allclose(errors, [math.erfc(1) / 2] * 2, rtol=1e-12)
    np.testing.assert_allclose(data.linear_rule_balanced_error(MENON, weight, bias),
                               math.erfc(1) / 2, rtol=1e-12)
    wide = data.GaussianMixture(means=[[0.0], [3.0]], priors=[0.5, 0.5], sigma=2.0)
    weight, bias = data.gaussian_bayes_linear_rule(wide, balanced=True)
    np.testing.assert_allclose(data.linear_rule_balanced_error(wide, weight, bias),
                               0.5 * math.erfc(0.75 / math.sqrt(2)), rtol=1e-12)


def test_class_errors_match_hand_computed_values():
    # predict 1 iff x_1 > 0.5: err_1 = Phi(-(1 - 0.5)) and err_0 = Phi(-1 - 0.5)
    weight = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    bias = torch.tensor([0.0, -0.5])
    np.testing.assert_allclose(data.linear_rule_class_errors(MENON, weight, bias),
                               [_phi(-1.5), _phi(-0.5)], rtol=1e-12)


def test_balanced_error_matches_monte_carlo():
    x, y = MENON.sample(400_000, seed=7)
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        weight = torch.randn(2, 2, generator=generator, dtype=torch.float64)
        bias = torch.randn(2, generator=generator, dtype=torch.float64)
        predicted = (x @ weight.T + bias).argmax(dim=1)
        monte_carlo = 1 - balanced_accuracy_score(y, predicted)
        closed = data.linear_rule_balanced_error(MENON, weight, bias)
        # standard error of the rare class's error estimate dominates: n_1 is about 20,000
        assert abs(monte_carlo - closed) < 0.01, (monte_carlo, closed)


def test_balanced_bayes_rule_is_the_minimum():
    weight, bias = data.gaussian_bayes_linear_rule(MENON, balanced=True)
    best = data.linear_rule_balanced_error(MENON, weight, bias)
    generator = torch.Generator().manual_seed(1)
    weights = weight + 0.3 * torch.randn(500, 2, 2, generator=generator, dtype=torch.float64)
    biases = bias + 0.3 * torch.randn(500, 2, generator=generator, dtype=torch.float64)
    errors = data.linear_rule_balanced_error(MENON, weights, biases)
    assert errors.shape == (500,) and (errors >= best - 1e-15).all()
    _, bias_error = data.gaussian_bayes_linear_rule(MENON)
    assert data.linear_rule_balanced_error(MENON, weight, bias_error) > best + 0.1


def test_class_errors_are_batched_and_scale_free():
    weight, bias = data.gaussian_bayes_linear_rule(MENON)
    stacked_w = torch.stack([weight, 3 * weight]).expand(4, 2, 2, 2)
    stacked_b = torch.stack([bias, 3 * bias]).expand(4, 2, 2)
    errors = data.linear_rule_class_errors(MENON, stacked_w, stacked_b)
    assert errors.shape == (4, 2, 2)
    np.testing.assert_allclose(errors[:, 0], errors[:, 1], rtol=1e-12)  # scaling the rule
    assert data.linear_rule_balanced_error(MENON, stacked_w, stacked_b).shape == (4, 2)


def test_constant_rule_errs_on_one_whole_class():
    zero = torch.zeros(2, 2)
    np.testing.assert_array_equal(
        data.linear_rule_class_errors(MENON, zero, torch.tensor([0.0, 1.0])), [1.0, 0.0])
    # a tie goes to class 0, as argmax does
    np.testing.assert_array_equal(
        data.linear_rule_class_errors(MENON, zero, torch.tensor([0.0, 0.0])), [0.0, 1.0])
    assert data.linear_rule_balanced_error(MENON, zero, torch.zeros(2)) == 0.5


def test_linear_rule_errors_reject_bad_input():
    three = data.GaussianMixture(means=[[0.0], [1.0], [2.0]], priors=[0.5, 0.3, 0.2])
    weight, bias = torch.zeros(2, 2), torch.zeros(2)
    with pytest.raises(ValueError, match="mixture must have two classes"):
        data.linear_rule_class_errors(three, torch.zeros(3, 1), torch.zeros(3))
    with pytest.raises(ValueError, match="mixture must be a GaussianMixture"):
        data.linear_rule_class_errors("menon", weight, bias)
    with pytest.raises(ValueError, match="mixture must be a GaussianMixture"):
        data.gaussian_bayes_linear_rule(None)
    with pytest.raises(ValueError, match=r"weight must have shape \(\.\.\., 2, 2\)"):
        data.linear_rule_class_errors(MENON, torch.zeros(2, 3), bias)
    with pytest.raises(ValueError, match=r"weight must have shape"):
        data.linear_rule_class_errors(MENON, torch.zeros(2), bias)
    with pytest.raises(ValueError, match="bias must have shape"):
        data.linear_rule_balanced_error(MENON, weight, torch.zeros(3))


def test_posthoc_adjustment_formula_and_tau_zero():
    generator = torch.Generator().manual_seed(2)
    logits = torch.randn(3, 5, 4, generator=generator, dtype=torch.float64)
    prior = torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64)
    for tau in (0.5, 1, 2.0):
        adjusted = heads.posthoc_adjusted_logits(logits, prior, tau=tau)
        torch.testing.assert_close(adjusted, logits - tau * torch.log(prior), rtol=0, atol=0)
    assert torch.equal(heads.posthoc_adjusted_logits(logits, prior, tau=0), logits)
    half = heads.posthoc_adjusted_logits(logits.float(), prior, tau=1.0)
    assert half.dtype == torch.float32 and half.shape == logits.shape


def test_posthoc_adjustment_turns_the_bayes_rule_into_the_balanced_one():
    # argmax_i P(y=i|x) / pi_i: the error-optimal scores, adjusted with tau = 1
    weight, bias = data.gaussian_bayes_linear_rule(MENON)
    weight_bal, bias_bal = data.gaussian_bayes_linear_rule(MENON, balanced=True)
    x, _ = MENON.sample(1000, seed=3)
    adjusted = heads.posthoc_adjusted_logits(x @ weight.T + bias, MENON.priors)
    torch.testing.assert_close(adjusted, x @ weight_bal.T + bias_bal)


def test_posthoc_adjustment_rejects_bad_input():
    logits, prior = torch.zeros(5, 3), torch.tensor([0.5, 0.3, 0.2])
    with pytest.raises(ValueError, match="logits must be a floating-point tensor"):
        heads.posthoc_adjusted_logits(torch.zeros(5, 3, dtype=torch.int64), prior)
    with pytest.raises(ValueError, match="logits must be a floating-point tensor"):
        heads.posthoc_adjusted_logits([[0.0, 1.0, 2.0]], prior)
    with pytest.raises(ValueError, match=r"prior must be a tensor of shape \(3,\)"):
        heads.posthoc_adjusted_logits(logits, torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match=r"prior must be a tensor of shape \(3,\)"):
        heads.posthoc_adjusted_logits(logits, [0.5, 0.3, 0.2])
    with pytest.raises(ValueError, match="prior must sum to 1"):
        heads.posthoc_adjusted_logits(logits, torch.tensor([0.5, 0.3, 0.3]))
    with pytest.raises(ValueError, match="prior must be positive"):
        heads.posthoc_adjusted_logits(logits, torch.tensor([0.8, 0.2, 0.0]))
    for tau in (-0.5, math.inf, torch.tensor(1.0), True, "1"):
        with pytest.raises(ValueError, match=r"^tau must be a finite real number in \[0, inf\)"):
            heads.posthoc_adjusted_logits(logits, prior, tau=tau)


def test_head_medium_tail_splits_by_count():
    counts = data.long_tailed_counts(1000, 10, 100)
    assert metrics.head_medium_tail(counts) == {
        "head": [0, 1, 2], "medium": [3, 4, 5, 6], "tail": [7, 8, 9]}
    # ranked by count, not by index; ties by index
    assert metrics.head_medium_tail([5, 50, 5, 1]) == {
        "head": [1], "medium": [0, 2], "tail": [3]}
    assert metrics.head_medium_tail(torch.tensor([3, 2, 1])) == {
        "head": [0], "medium": [1], "tail": [2]}
    with pytest.raises(ValueError, match="counts must hold at least 3"):
        metrics.head_medium_tail([10, 1])
    with pytest.raises(ValueError, match="counts must hold at least 3"):
        metrics.head_medium_tail([10, 5, -1])


def test_group_accuracy_by_hand_and_against_sklearn():
    y_true = torch.tensor([0, 0, 1, 1, 1, 1, 2, 2])
    y_pred = torch.tensor([0, 1, 1, 1, 1, 0, 0, 0])  # per-class accuracy 1/2, 3/4, 0
    got = metrics.group_accuracy(y_true, y_pred, {"a": [0, 1], "b": [2], "all": [0, 1, 2]})
    assert got["a"].shape == () and got["a"] == pytest.approx((0.5 + 0.75) / 2)
    assert got["b"] == 0.0
    assert got["all"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    generator = torch.Generator().manual_seed(5)
    y_true = torch.randint(0, 4, (200,), generator=generator)
    y_pred = torch.randint(0, 4, (3, 2, 200), generator=generator)
    got = metrics.group_accuracy(y_true, y_pred, {str(c): [c] for c in range(4)})
    assert got["0"].shape == (3, 2) and got["0"].dtype == np.float64
    for i in range(3):
        for j in range(2):
            per_class = recall_score(y_true, y_pred[i, j], average=None)
            assert [got[str(c)][i, j] for c in range(4)] == pytest.approx(per_class.tolist())


def test_group_accuracy_scores_each_seed_on_its_own_labels():
    y_true = torch.tensor([[0, 1, 2, 2], [2, 1, 0, 0]])  # (seeds, N): each seed its own set
    y_pred = torch.stack([y_true, torch.zeros_like(y_true)])  # (losses, seeds, N)
    got = metrics.group_accuracy(y_true, y_pred, {"all": [0, 1, 2]})["all"]
    assert got.shape == (2, 2)
    np.testing.assert_allclose(got[0], 1.0)
    np.testing.assert_allclose(got[1], 1 / 3)  # class 0 right, classes 1 and 2 wrong
    per = metrics.per_model(balanced_accuracy_score, y_true, y_pred)
    np.testing.assert_allclose(per, got)
    with pytest.raises(ValueError, match="do not occur"):
        metrics.group_accuracy(torch.tensor([[0, 1, 2], [0, 1, 1]]), torch.zeros(2, 3), {"a": [2]})


def test_group_accuracy_rejects_bad_input():
    y_true, y_pred = torch.tensor([0, 1, 2]), torch.tensor([0, 1, 1])
    with pytest.raises(ValueError, match=r"y_pred must have shape \(\.\.\., 3\)"):
        metrics.group_accuracy(y_true, torch.tensor([0, 1]), {"a": [0]})
    with pytest.raises(ValueError, match="does not broadcast"):
        metrics.group_accuracy(y_true[None], y_pred, {"a": [0]})
    with pytest.raises(ValueError, match="groups must map each name to a non-empty list"):
        metrics.group_accuracy(y_true, y_pred, {"a": []})
    with pytest.raises(ValueError, match="groups must map each name to a non-empty list"):
        metrics.group_accuracy(y_true, y_pred, {})
    with pytest.raises(ValueError, match=r"classes \[3\] that do not occur"):
        metrics.group_accuracy(y_true, y_pred, {"a": [0, 3]})
