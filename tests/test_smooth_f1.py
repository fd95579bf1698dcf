"""What chapter 2 added to lib: the class-weighted BCE and the F1-over-thresholds metrics."""

import numpy as np
import pytest
import sympy as sp
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score
from torch.func import vmap

from reweighting import losses as L
from reweighting import metrics

pytestmark = pytest.mark.usefixtures("float64")  # tests/conftest.py


def binary_batch(n=64, seed=0, rate=0.3):
    g = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(n, generator=g)
    targets = (torch.rand(n, generator=g) < rate).double()
    return logits, targets


def value_and_grad(loss, logits, *args):
    logits = logits.clone().requires_grad_()
    value = loss(logits, *args)
    (grad,) = torch.autograd.grad(value, logits)
    return value.detach(), grad


# --- class_weighted_bce ---------------------------------------------------------------------


@pytest.mark.parametrize(("w_pos", "w_neg"), [(1.0, 1.0), (25.0, 0.51), (0.0, 2.0), (3, 0)])
def test_class_weighted_bce_matches_closed_form(w_pos, w_neg):
    z, y, wp, wn = sp.symbols("z y w_p w_n")
    p = 1 / (1 + sp.exp(-z))
    per_sample = -(wp * y * sp.log(p) + wn * (1 - y) * sp.log(1 - p))
    value_f = sp.lambdify((z, y, wp, wn), per_sample, "numpy")
    grad_f = sp.lambdify((z, y, wp, wn), sp.diff(per_sample, z), "numpy")
    logits, targets = binary_batch()
    value, grad = value_and_grad(
        lambda zz, yy: L.class_weighted_bce(zz, yy, w_pos, w_neg), logits, targets)
    args = (logits.numpy(), targets.numpy(), w_pos, w_neg)
    torch.testing.assert_close(value, torch.tensor(value_f(*args).mean()))
    torch.testing.assert_close(grad, torch.from_numpy(grad_f(*args) / len(logits)))


def test_class_weighted_bce_special_cases():
    logits, targets = binary_batch(seed=1)
    plain = F.binary_cross_entropy_with_logits(logits, targets)
    torch.testing.assert_close(L.class_weighted_bce(logits, targets, 1.0), plain)
    torch.testing.assert_close(L.class_weighted_bce(logits, targets, 2.0, 2.0), 2 * plain)
    # with the weights 1 - F/2 and F/2 of the batch it is the F1-weighted BCE, value and gradient
    f1 = float(L.smooth_f1(logits, targets))

    def weighted(zz, yy):
        return L.class_weighted_bce(zz, yy, 1 - f1 / 2, f1 / 2)

    for a, b in zip(value_and_grad(weighted, logits, targets),
                    value_and_grad(L.f1_weighted_bce, logits, targets)):
        torch.testing.assert_close(a, b)


def test_class_weighted_bce_is_finite_for_extreme_logits_and_runs_under_vmap():
    logits = torch.tensor([1e4, -1e4, 1e4, -1e4])
    targets = torch.tensor([0.0, 1.0, 1.0, 0.0])
    value, grad = value_and_grad(lambda zz, yy: L.class_weighted_bce(zz, yy, 10.0, 0.5),
                                 logits, targets)
    assert torch.isfinite(value) and torch.isfinite(grad).all()
    torch.testing.assert_close(value, torch.tensor((0.5 * 1e4 + 10.0 * 1e4) / 4))
    batch_logits, batch_targets = torch.randn(3, 8), (torch.rand(3, 8) < 0.5).double()
    with L.skip_value_checks():
        batched = vmap(lambda zz, yy: L.class_weighted_bce(zz, yy, 5.0, 0.5))(
            batch_logits, batch_targets)
    for k in range(3):
        torch.testing.assert_close(
            batched[k], L.class_weighted_bce(batch_logits[k], batch_targets[k], 5.0, 0.5))


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), torch.tensor(2.0), True, "2"])
@pytest.mark.parametrize("argument", ["positive_weight", "negative_weight"])
def test_class_weighted_bce_rejects_bad_weights(bad, argument):
    logits, targets = binary_batch(n=4)
    weights = {"positive_weight": 1.0, "negative_weight": 1.0, argument: bad}
    message = rf"^{argument} must be a finite real number in \[0, inf\), got "
    with pytest.raises(ValueError, match=message):
        L.class_weighted_bce(logits, targets, **weights)


def test_class_weighted_bce_rejects_bad_targets_and_shapes():
    logits, targets = binary_batch(n=4)
    with pytest.raises(ValueError, match="targets must contain only 0 and 1"):
        L.class_weighted_bce(logits, torch.tensor([0.0, 1.0, 0.5, 1.0]), 2.0)
    with pytest.raises(ValueError, match="targets must be a tensor of the same shape"):
        L.class_weighted_bce(logits, targets[:3], 2.0)
    with pytest.raises(ValueError, match=r"logits must have shape \(N,\)"):
        L.class_weighted_bce(logits[:, None], targets[:, None], 2.0)


# --- f1_at_thresholds and best_threshold ----------------------------------------------------


def sklearn_f1_grid(y, probs, thresholds):
    flat = probs.reshape(-1, probs.shape[-1])
    rows = [[f1_score(y, row >= t, zero_division=0) for t in thresholds] for row in flat]
    return np.asarray(rows).reshape(*probs.shape[:-1], len(thresholds))


def test_f1_at_thresholds_matches_sklearn_for_a_batch_of_models():
    g = np.random.default_rng(0)
    y = (g.random(300) < 0.1).astype(np.float64)
    probs = g.random((2, 3, 300)) ** 2 + 0.5 * y  # some signal, some overlap, values up to 1.5
    thresholds = np.linspace(0, 1.6, 33)  # includes 0 (all positive) and > max (none positive)
    got = metrics.f1_at_thresholds(y, torch.from_numpy(probs), thresholds)
    assert got.shape == (2, 3, 33) and got.dtype == np.float64
    np.testing.assert_allclose(got, sklearn_f1_grid(y, probs, thresholds), rtol=0, atol=1e-15)
    np.testing.assert_allclose(got[..., 0], 2 * y.mean() / (1 + y.mean()))  # all predicted 1
    assert (got[..., -1] == 0).all()  # nothing predicted positive


def test_f1_at_thresholds_edge_cases():
    # no positive labels and nothing predicted positive: 0/0, returned as 0 (sklearn's choice)
    np.testing.assert_array_equal(
        metrics.f1_at_thresholds([0, 0, 0], [0.1, 0.2, 0.3], [0.5, 0.2]), [0.0, 0.0])
    # a single model (probabilities of shape (N,)) gives shape (T,); boolean labels are fine
    np.testing.assert_allclose(
        metrics.f1_at_thresholds(np.array([True, False, True]), [0.9, 0.8, 0.1], [0.5]), [0.5])
    # the threshold itself counts as positive (probability >= threshold)
    assert metrics.f1_at_thresholds([1], [0.5], [0.5])[0] == 1.0


def test_best_threshold_takes_the_first_maximum_and_tunes_per_model():
    y = [0, 1, 1, 0]
    probs = torch.tensor([[0.1, 0.6, 0.4, 0.7], [0.1, 0.9, 0.8, 0.2]])
    thresholds = [0.3, 0.5, 0.35, 0.9]
    # model 0: F1 0.8 at 0.3 and 0.35 (first wins); model 1: F1 1 at 0.3, 0.5 and 0.35
    np.testing.assert_array_equal(metrics.best_threshold(y, probs, thresholds), [0.3, 0.3])
    grid = metrics.f1_at_thresholds(y, probs, thresholds)
    np.testing.assert_allclose(grid, [[0.8, 0.5, 0.8, 0.0], [1.0, 1.0, 1.0, 2 / 3]])


@pytest.mark.parametrize(
    ("y", "probs", "thresholds", "message"),
    [
        ([0, 1, 2], [0.1, 0.2, 0.3], [0.5], "y_true must be an array of labels in {0, 1}"),
        ([[0, 1]], [0.1, 0.2], [0.5], "does not broadcast"),
        ([0, 1, 1], [0.1, 0.2], [0.5], r"probabilities must have shape \(\.\.\., 3\)"),
        ([0, 1], 0.5, [0.5], r"probabilities must have shape \(\.\.\., 2\)"),
        ([0, 1], [0.1, 0.2], [], "thresholds must be a non-empty 1-D array"),
        ([0, 1], [0.1, 0.2], [[0.5]], "thresholds must be a non-empty 1-D array"),
        ([0, 1], [0.1, 0.2], [float("nan")], "thresholds must be a non-empty 1-D array"),
        ([0, 1], ["a", "b"], [0.5], "probabilities must be numbers"),
        (["a", "b"], [0.1, 0.2], [0.5], "y_true must be numbers"),
        ([0, 1], [0.1, 0.2], ["x"], "thresholds must be numbers"),
    ],
)
def test_f1_metrics_reject_bad_input(y, probs, thresholds, message):
    for function in (metrics.f1_at_thresholds, metrics.best_threshold):
        with pytest.raises(ValueError, match=message):
            function(y, probs, thresholds)


def test_binary_scores_are_sklearns_for_every_model():
    from sklearn.metrics import precision_score, recall_score

    g = torch.Generator().manual_seed(3)
    y = (torch.rand(200, generator=g) < 0.1).double()
    predicted = torch.rand(4, 3, 200, generator=g) < 0.2
    predicted[0, 0] = False  # no predicted positive: precision and F1 have a zero denominator
    got = metrics.binary_scores(y, predicted)
    for i in range(4):
        for j in range(3):
            args = (y.numpy(), predicted[i, j].numpy())
            assert got["F1"][i, j] == pytest.approx(f1_score(*args, zero_division=0), abs=1e-12)
            assert got["precision"][i, j] == pytest.approx(
                precision_score(*args, zero_division=0), abs=1e-12)
            assert got["recall"][i, j] == pytest.approx(recall_score(*args, zero_division=0),
                                                        abs=1e-12)
    no_positives = metrics.binary_scores(torch.zeros(5), torch.zeros(2, 5, dtype=torch.bool))
    assert (no_positives["F1"] == 0).all() and (no_positives["recall"] == 0).all()


def test_binary_scores_reject_bad_inputs():
    y = torch.tensor([0.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="predicted must be boolean"):
        metrics.binary_scores(y, torch.tensor([0.2, 0.7, 0.9]))
    with pytest.raises(ValueError, match=r"predicted must have shape \(\.\.\., 3\)"):
        metrics.binary_scores(y, torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="y_true"):
        metrics.binary_scores(torch.tensor([0.0, 2.0, 1.0]), torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="does not broadcast"):
        metrics.binary_scores(torch.ones(2, 3), torch.ones(3, dtype=torch.bool))


def test_f1_metrics_score_each_seed_on_its_own_labels():
    y = np.array([[1, 0, 0, 1], [0, 0, 1, 0]])  # (seeds, N): each seed its own test set
    probs = np.array([[[0.9, 0.1, 0.6, 0.8], [0.2, 0.3, 0.7, 0.1]]])  # (losses, seeds, N)
    grid = metrics.f1_at_thresholds(y, probs, [0.5])
    expected = [[f1_score(y[s], probs[0, s] >= 0.5) for s in range(2)]]
    np.testing.assert_allclose(grid[..., 0], expected)
    scores = metrics.binary_scores(torch.as_tensor(y), torch.as_tensor(probs) >= 0.5)
    np.testing.assert_allclose(scores["F1"], expected)
