"""Each loss of lib.losses against its closed form (from SymPy, via lambdify) in float64."""

import numpy as np
import pytest
import sympy as sp
import torch
import torch.nn.functional as F

from lib import losses as L

pytestmark = pytest.mark.usefixtures("float64")  # tests/conftest.py


z, y, F1 = sp.symbols("z y F")
p = 1 / (1 + sp.exp(-z))


def closed_form(expr, *symbols):
    """``expr`` as a NumPy function of ``symbols``: the formula the library must match."""
    return sp.lambdify(symbols, expr, "numpy")


def value_and_grad(loss, logits, *args, **kwargs):
    logits = logits.clone().requires_grad_()
    value = loss(logits, *args, **kwargs)
    (grad,) = torch.autograd.grad(value, logits)
    return value.detach(), grad


def binary_batch(n=64, seed=0, all_negative=False):
    g = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(n, generator=g)
    targets = torch.zeros(n) if all_negative else (torch.rand(n, generator=g) < 0.3).double()
    return logits, targets


# --- smooth accuracy ----------------------------------------------------------------------


@pytest.mark.parametrize("all_negative", [False, True])
def test_smooth_accuracy_binary_matches_closed_form(all_negative):
    per_sample = -(y * p + (1 - y) * (1 - p))
    value_f = closed_form(per_sample, z, y)
    grad_f = closed_form(sp.diff(per_sample, z), z, y)
    logits, targets = binary_batch(all_negative=all_negative)
    value, grad = value_and_grad(L.smooth_accuracy_loss, logits, targets)
    n = len(logits)
    torch.testing.assert_close(value, torch.tensor(value_f(logits.numpy(), targets.numpy()).mean()))
    torch.testing.assert_close(grad, torch.from_numpy(grad_f(logits.numpy(), targets.numpy()) / n))


def test_smooth_accuracy_binary_gradient_is_article_form():
    # the article's eq. (3): for y = 1 the gradient is -p(1-p) dz; for y = 0 it is +p(1-p) dz
    logits = torch.linspace(-6, 6, 25)
    _, grad_pos = value_and_grad(L.smooth_accuracy_loss, logits, torch.ones(25))
    _, grad_neg = value_and_grad(L.smooth_accuracy_loss, logits, torch.zeros(25))
    q = torch.sigmoid(logits)
    torch.testing.assert_close(grad_pos * 25, -q * (1 - q))
    torch.testing.assert_close(grad_neg * 25, q * (1 - q))


@pytest.mark.parametrize("absent_class", [None, 2])
def test_smooth_accuracy_multiclass_matches_closed_form(absent_class):
    C = 4
    zs = sp.symbols(f"z0:{C}")
    soft = [sp.exp(zi) / sum(sp.exp(zj) for zj in zs) for zi in zs]
    g = torch.Generator().manual_seed(1)
    logits = 2 * torch.randn(30, C, generator=g)
    targets = torch.randint(0, C, (30,), generator=g)
    if absent_class is not None:
        targets[targets == absent_class] = 0
    value, grad = value_and_grad(L.smooth_accuracy_loss, logits, targets)
    expected_value = np.mean(
        [float(soft[int(t)].subs(dict(zip(zs, row.tolist())))) for row, t in zip(logits, targets)]
    )
    torch.testing.assert_close(value, torch.tensor(-expected_value))
    grads = [[closed_form(-sp.diff(soft[c], zj), *zs) for zj in zs] for c in range(C)]
    expected = torch.tensor(
        [[grads[int(t)][j](*row.tolist()) for j in range(C)] for row, t in zip(logits, targets)]
    )
    torch.testing.assert_close(grad, expected / len(logits))


# --- smooth F1 and the F1-weighted cross-entropy -------------------------------------------


def symbolic_batch_f1(n):
    zs, ys = sp.symbols(f"z0:{n}"), sp.symbols(f"y0:{n}")
    ps = [1 / (1 + sp.exp(-zi)) for zi in zs]
    f1 = 2 * sum(yi * pi for yi, pi in zip(ys, ps)) / sum(yi + pi for yi, pi in zip(ys, ps))
    return zs, ys, f1


@pytest.mark.parametrize("all_negative", [False, True])
def test_smooth_f1_value_and_gradient_match_closed_form(all_negative):
    n = 6
    zs, ys, f1 = symbolic_batch_f1(n)
    value_f = closed_form(f1, *zs, *ys)
    grad_fs = [closed_form(sp.diff(f1, zi), *zs, *ys) for zi in zs]
    logits, targets = binary_batch(n=n, seed=3, all_negative=all_negative)
    args = [*logits.tolist(), *targets.tolist()]
    value, grad = value_and_grad(L.smooth_f1, logits, targets)
    torch.testing.assert_close(value, torch.tensor(float(value_f(*args))))
    torch.testing.assert_close(grad, torch.tensor([float(f(*args)) for f in grad_fs]))


def test_smooth_f1_is_soft_dice_in_unit_interval():
    logits, targets = binary_batch(n=200, seed=4)
    f1 = L.smooth_f1(logits, targets)
    q = torch.sigmoid(logits)
    dice = 2 * (q * targets).sum() / (q.sum() + targets.sum())
    torch.testing.assert_close(f1, dice)
    assert 0 <= f1 <= 1
    assert L.smooth_f1(torch.full((5,), 50.0), torch.ones(5)) == pytest.approx(1.0)


def test_f1_weighted_bce_matches_closed_form_with_f1_held_constant():
    per_sample = -(y * (1 - F1 / 2) * sp.log(p) + (1 - y) * (F1 / 2) * sp.log(1 - p))
    value_f = closed_form(per_sample, z, y, F1)
    grad_f = closed_form(sp.diff(per_sample, z), z, y, F1)  # F is a constant: no dF/dz term
    logits, targets = binary_batch(n=40, seed=5)
    f1 = float(L.smooth_f1(logits, targets))
    value, grad = value_and_grad(L.f1_weighted_bce, logits, targets)
    zn, yn = logits.numpy(), targets.numpy()
    torch.testing.assert_close(value, torch.tensor(value_f(zn, yn, f1).mean()))
    torch.testing.assert_close(grad, torch.from_numpy(grad_f(zn, yn, f1) / len(zn)))


def test_f1_weighted_bce_gradient_is_rule_applied_to_f1_gradient():
    # the article: -grad F1 ∝ -E[(y - F/2) grad p]; replacing grad p by grad log p (positives)
    # and -grad p by grad log(1-p) (negatives) gives the weighted cross-entropy's gradient
    logits, targets = binary_batch(n=50, seed=6)
    f1 = L.smooth_f1(logits, targets)
    q = torch.sigmoid(logits)
    rule = -(targets * (1 - f1 / 2) * (1 - q) - (1 - targets) * (f1 / 2) * q) / len(q)
    _, grad = value_and_grad(L.f1_weighted_bce, logits, targets)
    torch.testing.assert_close(grad, rule)


def test_f1_weighted_bce_without_positives_weights_negatives_by_zero():
    logits, targets = binary_batch(n=20, seed=7, all_negative=True)
    value, grad = value_and_grad(L.f1_weighted_bce, logits, targets)
    assert value == 0 and bool((grad == 0).all())


# --- logit adjustment ----------------------------------------------------------------------


@pytest.mark.parametrize("tau", [0.0, 0.5, 1.0, 2.0])
def test_logit_adjusted_ce_matches_closed_form(tau):
    C = 5
    g = torch.Generator().manual_seed(8)
    logits = 2 * torch.randn(32, C, generator=g)
    targets = torch.randint(0, C - 1, (32,), generator=g)  # class C-1 absent from the batch
    prior = torch.tensor([0.5, 0.25, 0.15, 0.07, 0.03])
    value, grad = value_and_grad(L.logit_adjusted_cross_entropy, logits, targets, prior, tau)
    shifted = logits + tau * prior.log()
    expected_value = -(shifted.gather(1, targets[:, None]) - shifted.logsumexp(1, keepdim=True))
    torch.testing.assert_close(value, expected_value.mean())
    expected_grad = (shifted.softmax(1) - F.one_hot(targets, C)) / len(targets)
    torch.testing.assert_close(grad, expected_grad)


def test_logit_adjusted_ce_with_tau_zero_is_cross_entropy():
    logits = torch.randn(10, 3)
    targets = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    prior = torch.tensor([0.6, 0.3, 0.1])
    torch.testing.assert_close(
        L.logit_adjusted_cross_entropy(logits, targets, prior, tau=0.0),
        F.cross_entropy(logits, targets),
    )


# --- stability ----------------------------------------------------------------------------

BIG = 1e4


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "loss",
    [L.smooth_accuracy_loss, L.smooth_f1, L.f1_weighted_bce],
    ids=["smooth_accuracy", "smooth_f1", "f1_weighted_bce"],
)
def test_binary_losses_finite_at_huge_logits(loss, dtype):
    logits = torch.tensor([BIG, -BIG, BIG, -BIG], dtype=dtype)
    for targets in ([1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]):
        value, grad = value_and_grad(loss, logits, torch.tensor(targets, dtype=dtype))
        assert torch.isfinite(value) and bool(torch.isfinite(grad).all()), targets


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_multiclass_losses_finite_at_huge_logits(dtype):
    logits = torch.tensor([[BIG, -BIG, 0.0], [-BIG, BIG, -BIG]], dtype=dtype)
    targets = torch.tensor([1, 2])
    prior = torch.tensor([0.7, 0.2, 0.1], dtype=dtype)
    for loss, extra in [(L.smooth_accuracy_loss, ()), (L.logit_adjusted_cross_entropy, (prior,))]:
        value, grad = value_and_grad(loss, logits, targets, *extra)
        assert torch.isfinite(value) and bool(torch.isfinite(grad).all())


def test_losses_run_under_vmap_inside_value_checks_off():
    logits, targets = torch.randn(3, 8), (torch.rand(3, 8) < 0.5).double()
    with L.value_checks_off():
        batched = torch.func.vmap(L.f1_weighted_bce)(logits, targets)
    expected = torch.stack([L.f1_weighted_bce(a, b) for a, b in zip(logits, targets)])
    torch.testing.assert_close(batched, expected)


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "loss", [L.smooth_accuracy_loss, L.smooth_f1, L.f1_weighted_bce],
    ids=["smooth_accuracy", "smooth_f1", "f1_weighted_bce"],
)
def test_binary_losses_reject_bad_input(loss):
    with pytest.raises(ValueError, match="targets must be a tensor of the same shape"):
        loss(torch.zeros(4), torch.zeros(5))
    with pytest.raises(ValueError, match="targets must contain only 0 and 1"):
        loss(torch.zeros(3), torch.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="logits must be a floating-point tensor"):
        loss(torch.zeros(3, dtype=torch.int64), torch.zeros(3))


def test_binary_only_losses_reject_matrix_logits():
    with pytest.raises(ValueError, match=r"logits must have shape \(N,\)"):
        L.smooth_f1(torch.zeros(4, 2), torch.zeros(4, 2))


def test_multiclass_losses_reject_bad_input():
    logits = torch.zeros(4, 3)
    with pytest.raises(ValueError, match=r"targets must have shape \(4,\)"):
        L.smooth_accuracy_loss(logits, torch.zeros(5, dtype=torch.int64))
    with pytest.raises(ValueError, match="targets must be int64"):
        L.smooth_accuracy_loss(logits, torch.zeros(4))
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 3\)"):
        L.smooth_accuracy_loss(logits, torch.tensor([0, 1, 2, 3]))


def test_logit_adjusted_ce_rejects_bad_prior_and_tau():
    logits, targets = torch.zeros(4, 3), torch.tensor([0, 1, 2, 0])
    good = torch.tensor([0.5, 0.3, 0.2])
    with pytest.raises(ValueError, match=r"prior must have shape \(3,\)"):
        L.logit_adjusted_cross_entropy(logits, targets, torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match="prior must be positive"):
        L.logit_adjusted_cross_entropy(logits, targets, torch.tensor([0.0, 0.5, 0.5]))
    with pytest.raises(ValueError, match="prior must sum to 1"):
        L.logit_adjusted_cross_entropy(logits, targets, torch.tensor([0.5, 0.5, 0.5]))
    with pytest.raises(ValueError, match="tau must be >= 0"):
        L.logit_adjusted_cross_entropy(logits, targets, good, tau=-1.0)
    with pytest.raises(ValueError, match="tau must be a finite"):
        L.logit_adjusted_cross_entropy(logits, targets, good, tau=float("nan"))


def test_value_checks_off_skips_only_value_checks():
    with L.value_checks_off():
        L.smooth_f1(torch.zeros(3), torch.tensor([0.0, 1.0, 2.0]))  # no value check
        with pytest.raises(ValueError, match="same shape"):
            L.smooth_f1(torch.zeros(3), torch.zeros(4))  # shape checks stay
    with pytest.raises(ValueError, match="only 0 and 1"):
        L.smooth_f1(torch.zeros(3), torch.tensor([0.0, 1.0, 2.0]))


# --- generalized cross-entropy (chapter 1's bridge between CE and -ACC) ---------------------


@pytest.mark.parametrize("q", [0.25, 0.5, 1.0])
def test_generalized_ce_gradient_is_ce_gradient_times_p_true_to_the_q(q):
    g = torch.Generator().manual_seed(9)
    logits, targets = 2 * torch.randn(20, 4, generator=g), torch.randint(0, 4, (20,), generator=g)
    value, grad = value_and_grad(L.generalized_cross_entropy, logits, targets, q)
    p_true = logits.softmax(1).gather(1, targets[:, None])
    torch.testing.assert_close(value, ((1 - p_true**q) / q).mean())
    ce_grad = (logits.softmax(1) - F.one_hot(targets, 4)) / len(targets)
    torch.testing.assert_close(grad, p_true**q * ce_grad)


def test_generalized_ce_ends_are_ce_and_smooth_accuracy():
    logits, targets = binary_batch(n=30, seed=10)
    torch.testing.assert_close(L.generalized_cross_entropy(logits, targets, 0.0),
                               F.binary_cross_entropy_with_logits(logits, targets))
    torch.testing.assert_close(L.generalized_cross_entropy(logits, targets, 1e-7),
                               F.binary_cross_entropy_with_logits(logits, targets))
    torch.testing.assert_close(L.generalized_cross_entropy(logits, targets, 1.0),
                               1 + L.smooth_accuracy_loss(logits, targets))
    value, grad = value_and_grad(L.generalized_cross_entropy, torch.tensor([BIG, -BIG]),
                                 torch.tensor([0.0, 1.0]), 0.5)
    assert torch.isfinite(value) and bool(torch.isfinite(grad).all())
    with pytest.raises(ValueError, match=r"q must be a Python number in \[0, 1\]"):
        L.generalized_cross_entropy(logits, targets, 1.5)
