"""Chapter 4's losses and weights in lib against their closed forms (float64)."""


import pytest
import sympy as sp
import torch
import torch.nn.functional as F

from reweighting import data
from reweighting import losses as L

pytestmark = pytest.mark.usefixtures("float64")  # tests/conftest.py


def grad_of(loss, logits, *args, **kwargs):
    logits = logits.clone().requires_grad_()
    value = loss(logits, *args, **kwargs)
    (grad,) = torch.autograd.grad(value, logits)
    return value.detach(), grad


def multiclass_batch(n=40, C=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return 3 * torch.randn(n, C, generator=g), torch.randint(0, C, (n,), generator=g)


@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0])
def test_multiclass_focal_gradient_is_weighted_ce_gradient(gamma):
    p = sp.Symbol("p", positive=True)
    focal = -(1 - p) ** gamma * sp.log(p)
    weight = sp.lambdify(p, -p * sp.diff(focal, p), "numpy")  # w = -p dl/dp (chapter 4)
    logits, targets = multiclass_batch()
    alpha = torch.tensor([0.1, 0.2, 0.3, 0.4])
    value, grad = grad_of(L.focal_loss, logits, targets, alpha, gamma)
    p_true = logits.softmax(1).gather(1, targets[:, None]).squeeze(1)
    ce = F.cross_entropy(logits, targets, reduction="none")
    torch.testing.assert_close(value, (alpha[targets] * (1 - p_true) ** gamma * ce).mean())
    _, ce_grad = grad_of(lambda z, t: F.cross_entropy(z, t, reduction="sum"), logits, targets)
    w = torch.from_numpy(weight(p_true.numpy())) * alpha[targets]
    torch.testing.assert_close(grad, w[:, None] * ce_grad / len(targets))


def test_focal_loss_with_gamma_zero_is_cross_entropy_and_finite_at_extremes():
    logits, targets = multiclass_batch()
    torch.testing.assert_close(L.focal_loss(logits, targets, gamma=0.0),
                               F.cross_entropy(logits, targets))
    for gamma in (0.5, 2.0):
        value, grad = grad_of(L.focal_loss, torch.tensor([1e4, -1e4, 1e4]),
                              torch.tensor([1.0, 0.0, 0.0]), gamma=gamma)
        assert torch.isfinite(value) and bool(torch.isfinite(grad).all())


def test_class_weighted_cross_entropy_is_weight_times_ce():
    logits, targets = multiclass_batch()
    weights = torch.tensor([0.5, 1.0, 2.0, 4.0])
    value, grad = grad_of(L.class_weighted_cross_entropy, logits, targets, weights)
    ce = F.cross_entropy(logits, targets, reduction="none")
    torch.testing.assert_close(value, (weights[targets] * ce).mean())
    _, ce_grad = grad_of(lambda z, t: F.cross_entropy(z, t, reduction="sum"), logits, targets)
    torch.testing.assert_close(grad, weights[targets][:, None] * ce_grad / len(targets))
    # unlike PyTorch's weight=, which divides by the sum of the weights in the batch
    assert not torch.isclose(value, F.cross_entropy(logits, targets, weight=weights))


def test_class_balanced_weights_formula_and_limits():
    counts = [1000, 200, 30, 5]
    n = torch.tensor(counts, dtype=torch.float64)
    for beta in (0.9, 0.99, 0.999):
        raw = (1 - beta) / (1 - beta**n)
        expected = raw * n.sum() / (raw * n).sum()
        torch.testing.assert_close(L.class_balanced_weights(counts, beta), expected)
    w = L.class_balanced_weights(counts, 0.9999)
    assert float((w * n).sum()) == pytest.approx(float(n.sum()))  # average sample weight 1
    torch.testing.assert_close(L.class_balanced_weights(counts, 0.0), torch.ones(4))
    torch.testing.assert_close(L.class_balanced_weights(counts, 1.0), n.sum() / (4 * n))
    # beta -> 1 approaches inverse frequency continuously
    torch.testing.assert_close(L.class_balanced_weights(counts, 1 - 1e-9),
                               L.class_balanced_weights(counts, 1.0), rtol=1e-5, atol=0)
    beta = sp.Symbol("beta", positive=True)
    assert sp.limit((1 - beta) / (1 - beta**7), beta, 1) == sp.Rational(1, 7)


def test_ldam_loss_is_ce_on_margin_shifted_logits():
    logits, targets = multiclass_batch(C=3)
    counts = [400, 100, 25]
    margins = 0.5 * (25 / torch.tensor(counts, dtype=torch.float64)) ** 0.25
    assert margins.max() == pytest.approx(0.5) and margins[0] == pytest.approx(0.5 / 2)
    shifted = logits - F.one_hot(targets, 3) * margins
    for scale in (1.0, 30.0):
        value, grad = grad_of(L.ldam_loss, logits, targets, counts, 0.5, scale)
        expected = F.cross_entropy(scale * shifted, targets)
        torch.testing.assert_close(value, expected)
        probs = (scale * shifted).softmax(1)
        torch.testing.assert_close(grad, scale * (probs - F.one_hot(targets, 3)) / len(targets))
    torch.testing.assert_close(L.ldam_loss(logits, targets, counts, 0.0),
                               F.cross_entropy(logits, targets))


def test_balanced_softmax_is_logit_adjustment_with_tau_one():
    # Ren et al. (2020): -log(n_y e^{z_y} / sum_j n_j e^{z_j}) equals the logit-adjusted loss
    logits, targets = multiclass_batch()
    counts = torch.tensor([500.0, 120.0, 30.0, 6.0])
    balanced_softmax = F.cross_entropy(logits + counts.log(), targets)
    torch.testing.assert_close(
        balanced_softmax,
        L.logit_adjusted_cross_entropy(logits, targets, counts / counts.sum(), tau=1.0))


def test_new_losses_reject_bad_input():
    logits, targets = multiclass_batch(C=3)
    with pytest.raises(ValueError,
                       match=r"^gamma must be a finite real number in \[0, inf\), got -1.0$"):
        L.focal_loss(logits, targets, gamma=-1.0)
    with pytest.raises(ValueError, match=r"^alpha must be a finite real number in \[0, 1\]"):
        L.focal_loss(logits[:, 0], (targets == 0).double(), alpha=1.5)
    with pytest.raises(ValueError, match=r"alpha must have shape \(3,\)"):
        L.focal_loss(logits, targets, alpha=torch.ones(4))
    with pytest.raises(ValueError, match=r"weights must have shape \(3,\)"):
        L.class_weighted_cross_entropy(logits, targets, torch.ones(2))
    with pytest.raises(ValueError, match="weights must be non-negative"):
        L.class_weighted_cross_entropy(logits, targets, torch.tensor([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match="counts must be a 1-D sequence"):
        L.class_balanced_weights([10, 0, 3], 0.9)
    with pytest.raises(ValueError, match=r"^beta must be a finite real number in \[0, 1\]"):
        L.class_balanced_weights([10, 5], 1.5)
    with pytest.raises(ValueError, match="counts must be positive"):
        L.ldam_loss(logits, targets, [10, 0, 3])
    with pytest.raises(ValueError, match=r"counts must have shape \(3,\)"):
        L.ldam_loss(logits, targets, [10, 3])
    with pytest.raises(ValueError, match=r"^max_margin must be a finite real number in \[0, "):
        L.ldam_loss(logits, targets, [10, 5, 3], max_margin=-0.1)
    with pytest.raises(ValueError, match=r"^scale must be a finite real number in \(0, inf\)"):
        L.ldam_loss(logits, targets, [10, 5, 3], scale=0.0)


def test_new_losses_run_under_vmap():
    logits = 2 * torch.randn(3, 16, 4)
    targets = torch.randint(0, 4, (3, 16))
    counts, weights = [50, 20, 8, 2], torch.tensor([0.2, 0.5, 1.0, 3.0])
    fns = [lambda z, t: L.focal_loss(z, t, gamma=2.0),
           lambda z, t: L.class_weighted_cross_entropy(z, t, weights),
           lambda z, t: L.ldam_loss(z, t, counts, 1.0)]
    with L.skip_value_checks():
        for fn in fns:
            batched = torch.func.vmap(fn)(logits, targets)
            torch.testing.assert_close(batched, torch.stack([fn(a, b) for a, b in
                                                             zip(logits, targets)]))


def test_long_tailed_indices_with_a_disjoint_holdout():
    labels = torch.arange(4).repeat(300)
    counts = data.long_tailed_counts(200, 4, 20)
    kept, held = data.long_tailed_indices(labels, counts, seed=3, holdout=[20, 10, 5, 1])
    assert torch.bincount(labels[kept]).tolist() == counts
    assert torch.bincount(labels[held], minlength=4).tolist() == [20, 10, 5, 1]
    assert not set(kept.tolist()) & set(held.tolist())
    again = data.long_tailed_indices(labels, counts, seed=3, holdout=[20, 10, 5, 1])
    assert torch.equal(kept, again[0]) and torch.equal(held, again[1])
    with pytest.raises(ValueError, match="holdout must hold one count per class"):
        data.long_tailed_indices(labels, counts, holdout=[1])
    with pytest.raises(ValueError, match="plus holdout"):
        data.long_tailed_indices(labels, counts, holdout=[200, 0, 0, 0])
