"""Each loss of reweighting.losses against its closed form (from SymPy, via lambdify) in float64."""

import math
import threading

import numpy as np
import pytest
import sympy as sp
import torch
import torch.nn.functional as F

from reweighting import losses as L

pytestmark = pytest.mark.usefixtures("float64")  # tests/conftest.py

# every public loss and score: everything in __all__ but the weights and the two contexts
NOT_LOSSES = {"class_balanced_weights", "skip_value_checks", "over_models"}
LOSSES_AND_SCORES = sorted(set(L.__all__) - NOT_LOSSES)


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


@pytest.mark.parametrize("shape", [(40,), (40, 3)], ids=["binary", "multiclass"])
def test_smooth_accuracy_is_the_score_and_its_loss_is_minus_it(shape):
    g = torch.Generator().manual_seed(11)
    logits = 2 * torch.randn(shape, generator=g)
    targets = ((torch.rand(40, generator=g) < 0.3).double() if len(shape) == 1
               else torch.randint(0, 3, (40,), generator=g))
    score = L.smooth_accuracy(logits, targets)
    assert 0 <= score <= 1
    torch.testing.assert_close(L.smooth_accuracy_loss(logits, targets), -score)
    if len(shape) == 1:
        q = torch.sigmoid(logits)
        torch.testing.assert_close(score, (targets * q + (1 - targets) * (1 - q)).mean())


@pytest.mark.parametrize("shape", [(40,), (40, 3)], ids=["binary", "multiclass"])
def test_smooth_accuracy_loss_gradient_is_p_true_times_ce_gradient(shape):
    # the docstring's claim, for either label: binary -p(1-p) vs -(1-p) (y = 1), p(1-p) vs p
    # (y = 0); multi-class p_y (softmax - onehot)
    g = torch.Generator().manual_seed(12)
    logits = 2 * torch.randn(shape, generator=g)
    if len(shape) == 1:
        targets = (torch.rand(40, generator=g) < 0.5).double()
        _, ce_grad = value_and_grad(F.binary_cross_entropy_with_logits, logits, targets)
        p_true = torch.where(targets == 1, torch.sigmoid(logits), torch.sigmoid(-logits))
    else:
        targets = torch.randint(0, 3, (40,), generator=g)
        _, ce_grad = value_and_grad(F.cross_entropy, logits, targets)
        p_true = logits.softmax(1).gather(1, targets[:, None])
    _, grad = value_and_grad(L.smooth_accuracy_loss, logits, targets)
    torch.testing.assert_close(grad, p_true * ce_grad)


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


def test_smooth_f1_loss_is_minus_the_score_with_the_dice_gradient():
    logits, targets = binary_batch(n=50, seed=13)
    value, grad = value_and_grad(L.smooth_f1_loss, logits, targets)
    f1, f1_grad = value_and_grad(L.smooth_f1, logits, targets)
    torch.testing.assert_close(value, -f1)
    assert -1 <= value <= 0
    _, dice_grad = value_and_grad(lambda z, t: 1 - L.smooth_f1(z, t), logits, targets)
    torch.testing.assert_close(grad, dice_grad)
    torch.testing.assert_close(grad, -f1_grad)


def test_f1_weighted_bce_global_factor_is_2n_over_sum_of_y_plus_p():
    # the docstring: the rule grad p -> grad log p (positives), -grad p -> grad log(1-p)
    # (negatives) divides sample n's component of grad(-F1) by p_n or by 1 - p_n, and gives
    # 2N / sum(y + p) times the gradient of the batch-mean loss
    logits, targets = binary_batch(n=30, seed=14)
    _, minus_f1_grad = value_and_grad(L.smooth_f1_loss, logits, targets)
    q = torch.sigmoid(logits)
    p_true = torch.where(targets == 1, q, 1 - q)
    _, grad = value_and_grad(L.f1_weighted_bce, logits, targets)
    factor = 2 * len(logits) / (targets + q).sum()
    torch.testing.assert_close(minus_f1_grad / p_true, factor * grad)


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
    # reduction="none": the weighted per-sample terms, with the whole batch's F held constant
    torch.testing.assert_close(L.f1_weighted_bce(logits, targets, reduction="none"),
                               torch.from_numpy(value_f(zn, yn, f1)))


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


def long_tailed_batch(n, seed, C=5):
    """Logits (n, C), targets without class C-1 (absent from the batch) and a long-tailed prior."""
    g = torch.Generator().manual_seed(seed)
    logits = 2 * torch.randn(n, C, generator=g)
    targets = torch.randint(0, C - 1, (n,), generator=g)
    return logits, targets, torch.tensor([0.5, 0.25, 0.15, 0.07, 0.03])


@pytest.mark.parametrize("tau", [0.0, 0.5, 1.0, 2.0])
def test_logit_adjusted_ce_matches_closed_form(tau):
    C = 5
    logits, targets, prior = long_tailed_batch(32, seed=8, C=C)
    value, grad = value_and_grad(L.logit_adjusted_cross_entropy, logits, targets, prior, tau)
    shifted = logits + tau * prior.log()
    expected_value = -(shifted.gather(1, targets[:, None]) - shifted.logsumexp(1, keepdim=True))
    torch.testing.assert_close(value, expected_value.mean())
    expected_grad = (shifted.softmax(1) - F.one_hot(targets, C)) / len(targets)
    torch.testing.assert_close(grad, expected_grad)


def test_logit_adjusted_ce_imposes_pairwise_margins():
    # L = log(1 + sum_{i != y} exp(s_i - s_y + tau log(pi_i / pi_y))), the docstring's form
    g = torch.Generator().manual_seed(15)
    logits, targets = torch.randn(12, 4, generator=g), torch.randint(0, 4, (12,), generator=g)
    prior, tau = torch.tensor([0.6, 0.25, 0.1, 0.05]), 1.5
    margins = tau * (prior.log()[None, :] - prior.log()[targets][:, None])  # (N, C)
    terms = (logits - logits.gather(1, targets[:, None]) + margins).exp()
    terms = terms.scatter(1, targets[:, None], 0.0)  # i != y
    torch.testing.assert_close(L.logit_adjusted_cross_entropy(logits, targets, prior, tau),
                               terms.sum(1).log1p().mean())


def test_logit_adjusted_ce_with_tau_zero_is_cross_entropy():
    logits = torch.randn(10, 3)
    targets = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    prior = torch.tensor([0.6, 0.3, 0.1])
    torch.testing.assert_close(
        L.logit_adjusted_cross_entropy(logits, targets, prior, tau=0.0),
        F.cross_entropy(logits, targets),
    )


def prior_margin_by_hand(logits, targets, prior, tau):
    """Per sample: -log(e^{t} / (e^{t} + sum_{i != y} e^{s_i})), with t = s_y + tau log pi_y."""
    s_true = logits.gather(1, targets[:, None]).squeeze(1) + tau * prior.log()[targets]
    others = logits.exp().sum(1) - logits.gather(1, targets[:, None]).squeeze(1).exp()
    return -(s_true - (s_true.exp() + others).log())


@pytest.mark.parametrize("tau", [0.0, 0.5, 1.0, 2.0])
def test_prior_margin_ce_matches_closed_form_and_gradient(tau):
    C = 5
    logits, targets, prior = long_tailed_batch(40, seed=21, C=C)
    value, grad = value_and_grad(L.prior_margin_cross_entropy, logits, targets, prior, tau)
    torch.testing.assert_close(value, prior_margin_by_hand(logits, targets, prior, tau).mean())
    # d/ds_i = softmax(s + tau log pi_y e_y)_i - [i = y], divided by the batch size
    onehot = F.one_hot(targets, C).double()
    shifted = logits + tau * prior.log()[targets][:, None] * onehot
    torch.testing.assert_close(grad, (shifted.softmax(1) - onehot) / len(targets))


def test_prior_margin_ce_is_a_margin_against_every_other_class():
    # L = log(1 + sum_{i != y} exp(s_i - s_y + m_y)), m_y = -tau log pi_y, the docstring's form;
    # the logit-adjusted loss has m_y - m_i in its place
    g = torch.Generator().manual_seed(22)
    logits, targets = torch.randn(12, 4, generator=g), torch.randint(0, 4, (12,), generator=g)
    prior, tau = torch.tensor([0.6, 0.25, 0.1, 0.05]), 1.5
    margin = -tau * prior.log()[targets][:, None]  # (N, 1)
    terms = (logits - logits.gather(1, targets[:, None]) + margin).exp()
    terms = terms.scatter(1, targets[:, None], 0.0)  # i != y
    torch.testing.assert_close(L.prior_margin_cross_entropy(logits, targets, prior, tau),
                               terms.sum(1).log1p().mean())
    # with a uniform prior every margin is tau log C: the same for every class, unlike LA (= CE)
    uniform = torch.full((4,), 0.25)
    torch.testing.assert_close(
        L.prior_margin_cross_entropy(logits, targets, uniform, 1.0),
        L.ldam_loss(logits, targets, [1, 1, 1, 1], max_margin=math.log(4)))
    torch.testing.assert_close(L.logit_adjusted_cross_entropy(logits, targets, uniform, 1.0),
                               F.cross_entropy(logits, targets))


def test_prior_margin_ce_with_tau_zero_is_cross_entropy_exactly():
    g = torch.Generator().manual_seed(23)
    logits, targets = torch.randn(10, 3, generator=g), torch.randint(0, 3, (10,), generator=g)
    prior = torch.tensor([0.6, 0.3, 0.1])
    zero = lambda z, t: L.prior_margin_cross_entropy(z, t, prior, tau=0.0)  # noqa: E731
    for got, expected in zip(value_and_grad(zero, logits, targets),
                             value_and_grad(F.cross_entropy, logits, targets)):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_prior_margin_ce_over_models_is_each_models_loss():
    g = torch.Generator().manual_seed(24)
    logits, targets = torch.randn(3, 16, 4, generator=g), torch.randint(0, 4, (3, 16), generator=g)
    prior = torch.tensor([0.6, 0.25, 0.1, 0.05])
    with L.over_models():
        per_model = L.prior_margin_cross_entropy(logits, targets, prior, 1.0)
    assert per_model.shape == (3,)
    for m in range(3):
        torch.testing.assert_close(per_model[m],
                                   L.prior_margin_cross_entropy(logits[m], targets[m], prior))


# --- stability ----------------------------------------------------------------------------

BIG = 1e4


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "loss",
    [L.smooth_accuracy_loss, L.smooth_accuracy, L.smooth_f1, L.smooth_f1_loss, L.f1_weighted_bce],
    ids=["smooth_accuracy_loss", "smooth_accuracy", "smooth_f1", "smooth_f1_loss",
         "f1_weighted_bce"],
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
    for loss, extra in [(L.smooth_accuracy_loss, ()), (L.logit_adjusted_cross_entropy, (prior,)),
                        (L.prior_margin_cross_entropy, (prior,))]:
        value, grad = value_and_grad(loss, logits, targets, *extra)
        assert torch.isfinite(value) and bool(torch.isfinite(grad).all())


def test_losses_run_under_vmap_inside_skip_value_checks():
    logits, targets = torch.randn(3, 8), (torch.rand(3, 8) < 0.5).double()
    with L.skip_value_checks():
        batched = torch.func.vmap(L.f1_weighted_bce)(logits, targets)
    expected = torch.stack([L.f1_weighted_bce(a, b) for a, b in zip(logits, targets)])
    torch.testing.assert_close(batched, expected)


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "loss",
    [L.smooth_accuracy_loss, L.smooth_accuracy, L.smooth_f1, L.smooth_f1_loss, L.f1_weighted_bce],
    ids=["smooth_accuracy_loss", "smooth_accuracy", "smooth_f1", "smooth_f1_loss",
         "f1_weighted_bce"],
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


@pytest.mark.parametrize("loss", [L.logit_adjusted_cross_entropy, L.prior_margin_cross_entropy])
def test_prior_based_losses_reject_bad_prior_tau_and_targets(loss):
    logits, targets = torch.zeros(4, 3), torch.tensor([0, 1, 2, 0])
    good = torch.tensor([0.5, 0.3, 0.2])
    with pytest.raises(ValueError, match=r"prior must have shape \(3,\)"):
        loss(logits, targets, torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match=r"prior must be a tensor of shape \(3,\)"):
        loss(logits, targets, [0.5, 0.3, 0.2])
    with pytest.raises(ValueError, match="prior must be positive"):
        loss(logits, targets, torch.tensor([0.0, 0.5, 0.5]))
    with pytest.raises(ValueError, match="prior must sum to 1"):
        loss(logits, targets, torch.tensor([0.5, 0.5, 0.5]))
    with pytest.raises(ValueError,
                       match=r"^tau must be a finite real number in \[0, inf\), got -1.0$"):
        loss(logits, targets, good, tau=-1.0)
    with pytest.raises(ValueError, match=r"tau must be a finite real number in \[0, inf\)"):
        loss(logits, targets, good, tau=float("nan"))
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 3\)"):
        loss(logits, torch.tensor([0, 1, 2, 3]), good)


# --- skip_value_checks: switched per thread and context, shape checks stay ------------------

BAD_TARGETS = torch.tensor([0.0, 1.0, 2.0])


def test_skip_value_checks_skips_only_value_checks():
    with L.skip_value_checks():
        L.smooth_f1(torch.zeros(3), BAD_TARGETS)  # no value check
        with pytest.raises(ValueError, match="same shape"):
            L.smooth_f1(torch.zeros(3), torch.zeros(4))  # shape checks stay
    with pytest.raises(ValueError, match="only 0 and 1"):
        L.smooth_f1(torch.zeros(3), BAD_TARGETS)


def test_skip_value_checks_nests_and_restores_on_exception():
    with pytest.raises(RuntimeError, match="inside"):
        with L.skip_value_checks():
            with L.skip_value_checks():
                pass
            L.smooth_f1(torch.zeros(3), BAD_TARGETS)  # still skipped after the inner exit
            raise RuntimeError("inside")
    with pytest.raises(ValueError, match="only 0 and 1"):
        L.smooth_f1(torch.zeros(3), BAD_TARGETS)


def checks_run() -> bool:
    try:
        L.smooth_f1(torch.zeros(3), BAD_TARGETS)
    except ValueError:
        return True
    return False


def test_skip_value_checks_in_one_thread_leaves_other_threads_checking():
    # this thread skips; a thread started inside still checks
    results = {}
    with L.skip_value_checks():
        worker = threading.Thread(target=lambda: results.update(worker=checks_run()))
        worker.start()
        worker.join(timeout=60)
        results["main"] = checks_run()
    assert results == {"worker": True, "main": False}

    # another thread skips while this one checks, and it is restored there on exit
    entered, release = threading.Event(), threading.Event()

    def skipping_thread():
        with L.skip_value_checks():
            results["inside"] = checks_run()
            entered.set()
            release.wait(timeout=60)
        results["after"] = checks_run()

    worker = threading.Thread(target=skipping_thread)
    worker.start()
    try:
        assert entered.wait(timeout=60)
        assert checks_run()
    finally:
        release.set()
        worker.join(timeout=60)
    assert results["inside"] is False and results["after"] is True


# --- devices: side arguments follow the logits -----------------------------------------------

META_MULTICLASS = {
    "smooth_accuracy_loss": lambda z, t, side: L.smooth_accuracy_loss(z, t),
    "smooth_accuracy": lambda z, t, side: L.smooth_accuracy(z, t),
    "generalized_cross_entropy": lambda z, t, side: L.generalized_cross_entropy(z, t, 0.5),
    "logit_adjusted_cross_entropy":
        lambda z, t, side: L.logit_adjusted_cross_entropy(z, t, side["prior"], 1.0),
    "prior_margin_cross_entropy":
        lambda z, t, side: L.prior_margin_cross_entropy(z, t, side["prior"], 1.0),
    "class_weighted_cross_entropy":
        lambda z, t, side: L.class_weighted_cross_entropy(z, t, side["weights"]),
    "focal_loss": lambda z, t, side: L.focal_loss(z, t, gamma=2.0, alpha=side["weights"]),
    "cross_entropy": lambda z, t, side: L.cross_entropy(z, t),
    "ldam_loss": lambda z, t, side: L.ldam_loss(z, t, side["counts"], 0.5),
}
META_BINARY = {
    "smooth_accuracy_loss": L.smooth_accuracy_loss,
    "smooth_accuracy": L.smooth_accuracy,
    "smooth_f1": L.smooth_f1,
    "smooth_f1_loss": L.smooth_f1_loss,
    "f1_weighted_bce": L.f1_weighted_bce,
    "generalized_cross_entropy": lambda z, t: L.generalized_cross_entropy(z, t, 0.5),
    "class_weighted_bce": lambda z, t: L.class_weighted_bce(z, t, 4.0, 0.5),
    "focal_loss": lambda z, t: L.focal_loss(z, t, gamma=2.0, alpha=0.25),
}


def test_device_tests_cover_every_loss_and_score():
    assert set(META_MULTICLASS) | set(META_BINARY) == set(LOSSES_AND_SCORES)


@pytest.mark.parametrize("name", sorted(META_MULTICLASS))
def test_multiclass_losses_take_cpu_side_arguments_to_the_logits_device(name):
    # meta tensors have no data: a loss that mixed devices, or read values back, would fail
    logits = torch.empty(8, 4, device="meta", dtype=torch.float32, requires_grad=True)
    targets = torch.empty(8, device="meta", dtype=torch.int64)
    side = {"prior": torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64),
            "weights": torch.tensor([0.5, 1.0, 2.0, 4.0], dtype=torch.float64),
            "counts": torch.tensor([400, 300, 20, 10])}
    with L.skip_value_checks():
        value = META_MULTICLASS[name](logits, targets, side)
    assert value.device.type == "meta" and value.shape == () and value.dtype == torch.float32
    (grad,) = torch.autograd.grad(value, logits)
    assert grad.device.type == "meta" and grad.shape == logits.shape


@pytest.mark.parametrize("name", sorted(META_BINARY))
def test_binary_losses_run_on_the_logits_device(name):
    logits = torch.empty(8, device="meta", dtype=torch.float32, requires_grad=True)
    targets = torch.empty(8, device="meta", dtype=torch.float32)
    with L.skip_value_checks():
        value = META_BINARY[name](logits, targets)
    assert value.device.type == "meta" and value.shape == () and value.dtype == torch.float32
    (grad,) = torch.autograd.grad(value, logits)
    assert grad.device.type == "meta" and grad.shape == logits.shape


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
    with pytest.raises(ValueError, match=r"^q must be a finite real number in \[0, 1\], got 1.5"):
        L.generalized_cross_entropy(logits, targets, 1.5)


def test_over_models_takes_a_leading_model_dimension_and_checks_it():
    g = torch.Generator().manual_seed(3)
    logits, targets = torch.randn(4, 10, 3, generator=g), torch.randint(0, 3, (4, 10), generator=g)
    with L.over_models():
        per_model = L.focal_loss(logits, targets, gamma=2.0)
        assert per_model.shape == (4,)
        with pytest.raises(ValueError, match=r"logits must have shape \(M, N, C\)"):
            L.ldam_loss(logits[0], targets[0], [5, 3, 2])
        with pytest.raises(ValueError, match=r"targets must have shape \(4, 10\)"):
            L.logit_adjusted_cross_entropy(logits, targets[:, :5], torch.full((3,), 1 / 3))
        with pytest.raises(ValueError, match=r"logits must have shape \(M, N\) for a binary"):
            L.f1_weighted_bce(logits[..., 0].flatten(), (targets[..., 0] > 0).float().flatten())
        with pytest.raises(ValueError, match="targets must lie in"):  # value checks still run
            L.ldam_loss(logits, targets + 3, [5, 3, 2])
    for m in range(4):  # each row is one model's batch mean, as outside the context
        torch.testing.assert_close(per_model[m], L.focal_loss(logits[m], targets[m], gamma=2.0))
    with pytest.raises(ValueError, match=r"logits must have shape \(N, C\)"):  # restored
        L.focal_loss(logits, targets)


# --- reduction: PyTorch's "mean" | "sum" | "none" on every loss and score --------------------

PRIOR = torch.tensor([0.4, 0.3, 0.2, 0.1])
WEIGHTS = torch.tensor([0.5, 1.0, 2.0, 4.0])
COUNTS = [400, 300, 20, 10]
# name -> (binary?, loss(logits, targets, **kw)); a loss that takes both shapes appears twice
PER_SAMPLE = {
    "smooth_accuracy/binary": (True, L.smooth_accuracy),
    "smooth_accuracy/multiclass": (False, L.smooth_accuracy),
    "smooth_accuracy_loss/binary": (True, L.smooth_accuracy_loss),
    "smooth_accuracy_loss/multiclass": (False, L.smooth_accuracy_loss),
    "f1_weighted_bce": (True, L.f1_weighted_bce),
    "generalized_cross_entropy/binary":
        (True, lambda z, t, **kw: L.generalized_cross_entropy(z, t, 0.5, **kw)),
    "generalized_cross_entropy/multiclass":
        (False, lambda z, t, **kw: L.generalized_cross_entropy(z, t, 0.0, **kw)),
    "cross_entropy": (False, L.cross_entropy),
    "logit_adjusted_cross_entropy":
        (False, lambda z, t, **kw: L.logit_adjusted_cross_entropy(z, t, PRIOR, 1.0, **kw)),
    "prior_margin_cross_entropy":
        (False, lambda z, t, **kw: L.prior_margin_cross_entropy(z, t, PRIOR, 1.0, **kw)),
    "class_weighted_bce": (True, lambda z, t, **kw: L.class_weighted_bce(z, t, 4.0, 0.5, **kw)),
    "class_weighted_cross_entropy":
        (False, lambda z, t, **kw: L.class_weighted_cross_entropy(z, t, WEIGHTS, **kw)),
    "focal_loss/binary": (True, lambda z, t, **kw: L.focal_loss(z, t, 0.25, 2.0, **kw)),
    "focal_loss/multiclass": (False, lambda z, t, **kw: L.focal_loss(z, t, WEIGHTS, **kw)),
    "ldam_loss": (False, lambda z, t, **kw: L.ldam_loss(z, t, COUNTS, 0.5, **kw)),
}
# ratios over the whole batch, with no per-sample terms: "mean" only (see their docstrings)
BATCH_RATIOS = {"smooth_f1": L.smooth_f1, "smooth_f1_loss": L.smooth_f1_loss}
EVERY_REDUCING = {**{n: f for n, (_, f) in PER_SAMPLE.items()}, **BATCH_RATIOS}


def reduction_batch(binary: bool, models: int | None = None, n: int = 24, seed: int = 31):
    """Logits and targets of ``n`` samples (``models`` leading rows when given), 4 classes."""
    g = torch.Generator().manual_seed(seed)
    lead = () if models is None else (models,)
    if binary:
        return (3 * torch.randn(*lead, n, generator=g),
                (torch.rand(*lead, n, generator=g) < 0.3).double())
    return 2 * torch.randn(*lead, n, 4, generator=g), torch.randint(0, 4, (*lead, n), generator=g)


def test_reduction_tests_cover_every_loss_and_score():
    assert {name.split("/")[0] for name in EVERY_REDUCING} == set(LOSSES_AND_SCORES)


@pytest.mark.parametrize("name", sorted(EVERY_REDUCING))
@pytest.mark.parametrize("bad", ["avg", "Mean", None, 1])
def test_every_loss_rejects_an_unknown_reduction(name, bad):
    binary = name in BATCH_RATIOS or PER_SAMPLE[name][0]
    logits, targets = reduction_batch(binary)
    message = r"^reduction must be 'mean', 'sum' or 'none', got "
    with pytest.raises(ValueError, match=message):
        EVERY_REDUCING[name](logits, targets, reduction=bad)


@pytest.mark.parametrize("name", sorted(PER_SAMPLE))
def test_sum_is_n_times_mean_and_none_is_per_sample(name):
    binary, loss = PER_SAMPLE[name]
    logits, targets = reduction_batch(binary)
    n = len(targets)
    mean = loss(logits, targets)
    torch.testing.assert_close(loss(logits, targets, reduction="mean"), mean)
    assert mean.shape == ()
    torch.testing.assert_close(loss(logits, targets, reduction="sum"), n * mean)
    none = loss(logits, targets, reduction="none")
    assert none.shape == (n,) and none.dtype == logits.dtype
    torch.testing.assert_close(none.mean(), mean)
    # sample n's value does not depend on the other samples (f1_weighted_bce's F aside)
    if name != "f1_weighted_bce":
        torch.testing.assert_close(loss(logits[:5], targets[:5], reduction="none"), none[:5])


@pytest.mark.parametrize("name", sorted(PER_SAMPLE))
def test_over_models_reduces_each_models_batch(name):
    binary, loss = PER_SAMPLE[name]
    logits, targets = reduction_batch(binary, models=3)
    with L.over_models():
        per_model = {r: loss(logits, targets, reduction=r) for r in ("mean", "sum", "none")}
    assert per_model["mean"].shape == per_model["sum"].shape == (3,)
    assert per_model["none"].shape == (3, len(targets[0]))
    for m in range(3):
        for reduction, values in per_model.items():
            torch.testing.assert_close(values[m],
                                       loss(logits[m], targets[m], reduction=reduction))


@pytest.mark.parametrize("name", sorted(BATCH_RATIOS))
def test_batch_ratios_take_mean_only(name):
    logits, targets = reduction_batch(True)
    loss = BATCH_RATIOS[name]
    torch.testing.assert_close(loss(logits, targets, reduction="mean"), loss(logits, targets))
    for reduction in ("sum", "none"):
        with pytest.raises(ValueError, match=rf"^reduction must be 'mean' for {name}, got "
                                             rf"'{reduction}': the smooth F1 is a ratio"):
            loss(logits, targets, reduction=reduction)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_is_pytorchs_to_the_last_bit(reduction):
    logits, targets = reduction_batch(False)
    for got, expected in zip(
            value_and_grad(lambda z, t: L.cross_entropy(z, t, reduction=reduction).sum(),
                           logits, targets),
            value_and_grad(lambda z, t: F.cross_entropy(z, t, reduction=reduction).sum(),
                           logits, targets)):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 4\)"):
        L.cross_entropy(logits, targets + 4)
    with pytest.raises(ValueError, match=r"logits must have shape \(N, C\)"):
        L.cross_entropy(logits[None], targets[None])  # a model dimension needs over_models()


# --- focal loss: torchvision's sigmoid_focal_loss, binary -----------------------------------


def torchvision_sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2, reduction="none"):
    """``torchvision.ops.sigmoid_focal_loss`` (torchvision 0.15 to 0.2x), written out."""
    p = torch.sigmoid(inputs)
    ce_loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss
    if reduction == "mean":
        loss = loss.mean()
    elif reduction == "sum":
        loss = loss.sum()
    return loss


FOCAL_SETTINGS = [(0.25, 2.0), (None, 2.0), (0.75, 0.0), (0.5, 0.5), (None, 5.0)]


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize(("alpha", "gamma"), FOCAL_SETTINGS)
def test_binary_focal_loss_is_torchvisions_formula(alpha, gamma, reduction):
    logits, targets = reduction_batch(True, n=50, seed=32)
    theirs_alpha = -1 if alpha is None else alpha  # torchvision's "no weighting"
    ours, our_grad = value_and_grad(lambda z, t: L.focal_loss(z, t, alpha, gamma, reduction)
                                    .sum(), logits, targets)
    theirs, their_grad = value_and_grad(
        lambda z, t: torchvision_sigmoid_focal_loss(z, t, theirs_alpha, gamma, reduction).sum(),
        logits, targets)
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(our_grad, their_grad)
    # the same arguments by name: torchvision's names but the first (logits, not inputs)
    torch.testing.assert_close(
        L.focal_loss(logits, targets, alpha=alpha, gamma=gamma, reduction=reduction),
        torchvision_sigmoid_focal_loss(inputs=logits, targets=targets, alpha=theirs_alpha,
                                       gamma=gamma, reduction=reduction))


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize(("alpha", "gamma"), FOCAL_SETTINGS)
def test_binary_focal_loss_is_torchvisions_own(alpha, gamma, reduction):
    try:  # PyPI's torchvision raises RuntimeError (not ImportError) beside the CPU torch
        import torchvision.ops as ops
    except (ImportError, RuntimeError) as error:
        pytest.skip(f"torchvision does not import beside this torch: {error}")
    logits, targets = reduction_batch(True, n=50, seed=33)
    torch.testing.assert_close(
        L.focal_loss(logits, targets, alpha, gamma, reduction),
        ops.sigmoid_focal_loss(logits, targets, -1 if alpha is None else alpha, gamma,
                               reduction))


def test_focal_loss_defaults_differ_from_torchvisions_as_documented():
    logits, targets = reduction_batch(True, n=40, seed=34)
    # alpha=None (no weighting) and reduction="mean" here; torchvision: alpha=0.25, "none"
    torch.testing.assert_close(L.focal_loss(logits, targets),
                               torchvision_sigmoid_focal_loss(logits, targets, -1, 2.0, "mean"))
    torch.testing.assert_close(L.focal_loss(logits, targets, 0.25, reduction="none"),
                               torchvision_sigmoid_focal_loss(logits, targets))
    with pytest.raises(ValueError, match=r"^alpha must be a finite real number in \[0, 1\]"):
        L.focal_loss(logits, targets, alpha=-1)  # torchvision's "no weighting" is None here
    # the old order (gamma third) fails loudly instead of weighting by alpha = gamma
    with pytest.raises(ValueError, match=r"^alpha must be a finite real number in \[0, 1\]"):
        L.focal_loss(logits, targets, 2.0)
    multi_logits, multi_targets = reduction_batch(False)
    with pytest.raises(ValueError, match=r"^alpha must have shape \(4,\)"):
        L.focal_loss(multi_logits, multi_targets, 2.0)
