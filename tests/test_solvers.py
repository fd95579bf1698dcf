"""reweighting.solvers.fit_linear: chapter 6's last-layer refits, each solved to tolerance.

Checked against scikit-learn's LogisticRegression (the same objective: C = 1 / (N l2)), against
autograd's gradient of the stated objective, and for the independence of the batched models.
"""

import time
import warnings

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from reweighting import solvers, train
from reweighting.solvers import LinearFit, fit_linear

TOL = 1e-10  # tighter than the default, so that the comparisons below measure scikit-learn's error


def make_data(m=3, n=400, d=5, num_classes=2, signal=1.0, seed=0, shared=False):
    """Gaussian features, labels drawn from a softmax / logistic model (never separable)."""
    g = torch.Generator().manual_seed(seed)
    k = 1 if num_classes == 2 else num_classes
    h = torch.randn(1 if shared else m, n, d, generator=g, dtype=torch.float64)
    w = signal * torch.randn(m, d, k, generator=g, dtype=torch.float64)
    z = h @ w
    if num_classes == 2:
        y = (torch.rand(m, n, generator=g, dtype=torch.float64) < torch.sigmoid(z[..., 0])).long()
    else:
        y = torch.multinomial(torch.softmax(z, -1).reshape(-1, k), 1, generator=g).view(m, n)
    v = 3 * torch.rand(m, n, generator=g, dtype=torch.float64)
    return (h[0] if shared else h), y, v


def objective(weight, bias, h, y, v, l2, num_classes):
    """The objective fit_linear states, for autograd: (1/N) sum_i v_i l(z_i, y_i) + l2/2 ||W||^2."""
    z = h @ weight + bias[:, None, :]
    if num_classes == 2:
        each = torch.nn.functional.binary_cross_entropy_with_logits(
            z[..., 0], y.double(), reduction="none")
    else:
        each = torch.nn.functional.cross_entropy(z.transpose(1, 2), y, reduction="none")
    return ((v * each).mean(1) + l2 / 2 * weight.square().sum((1, 2))).sum()


def sklearn_fit(h, y, v, l2):
    """scikit-learn's fit of the same objective; its L-BFGS stops near |g| ~ 1e-8 (its ftol)."""
    n = len(y)
    clf = LogisticRegression(C=1 / (n * l2) if l2 > 0 else np.inf, tol=1e-12, max_iter=10_000,
                             solver="lbfgs")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a ConvergenceWarning would void the comparison
        return clf.fit(h.numpy(), y.numpy(), sample_weight=None if v is None else v.numpy())


def relative(ours, reference):
    ours, reference = np.asarray(ours), np.asarray(reference)
    return float(np.abs(ours - reference).max() / np.abs(reference).max())


def assert_no_worse_than(fit, m, clf, h, y, v, l2, num_classes):
    """Model m's objective is at most scikit-learn's: the differences above are sklearn's error."""
    v = torch.ones_like(y[m:m + 1], dtype=torch.float64) if v is None else v[m:m + 1]
    data = (h[m:m + 1], y[m:m + 1], v, l2, num_classes)
    ours = objective(fit.weight[m:m + 1], fit.bias[m:m + 1], *data)
    theirs = objective(torch.from_numpy(clf.coef_.T)[None], torch.from_numpy(clf.intercept_)[None],
                       *data)
    assert ours <= theirs + 1e-14


# --- against scikit-learn -----------------------------------------------------------------


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("l2", [1e-2, 0.0])
def test_binary_matches_sklearn(weighted, l2):
    h, y, v = make_data(num_classes=2)
    v = v if weighted else None
    fit = fit_linear(h, y, 2, sample_weight=v, l2=l2, tol=TOL)
    assert fit.converged.all() and (fit.gradient_norm <= TOL).all()
    assert fit.weight.shape == (3, 5, 1) and fit.bias.shape == (3, 1)
    assert fit.weight.dtype == fit.bias.dtype == torch.float64
    for m in range(3):
        clf = sklearn_fit(h[m], y[m], None if v is None else v[m], l2)
        assert relative(fit.weight[m, :, 0], clf.coef_[0]) < 1e-6
        assert relative(fit.bias[m], clf.intercept_) < 1e-6
        proba = torch.sigmoid(fit.logits(h)[m]).numpy()
        assert np.abs(proba - clf.predict_proba(h[m].numpy())[:, 1]).max() < 1e-6
        assert_no_worse_than(fit, m, clf, h, y, v, l2, 2)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("l2", [1e-2, 0.0])
def test_multinomial_matches_sklearn(weighted, l2):
    h, y, v = make_data(num_classes=4, n=600)
    v = v if weighted else None
    fit = fit_linear(h, y, 4, sample_weight=v, l2=l2, tol=TOL)
    assert fit.converged.all() and (fit.gradient_norm <= TOL).all()
    assert fit.weight.shape == (3, 5, 4) and fit.bias.shape == (3, 4)
    logits = fit.logits(h)
    assert logits.shape == (3, 600, 4)
    for m in range(3):
        clf = sklearn_fit(h[m], y[m], None if v is None else v[m], l2)
        reference = clf.decision_function(h[m].numpy())
        # the softmax is unchanged by a shift common to all classes: compare differences
        assert relative(logits[m] - logits[m, :, :1], reference - reference[:, :1]) < 1e-6
        proba = torch.softmax(logits[m], -1).numpy()
        assert np.abs(proba - clf.predict_proba(h[m].numpy())).max() < 1e-6
        assert_no_worse_than(fit, m, clf, h, y, v, l2, 4)
        if l2 > 0:  # the penalty makes W identifiable (its columns sum to 0)
            assert relative(fit.weight[m].T, clf.coef_) < 1e-6
            assert abs(float(fit.bias[m].sum())) < 1e-12  # the solver centres the biases


# --- convergence and its report -----------------------------------------------------------


@pytest.mark.parametrize("num_classes", [2, 5])
def test_reported_gradient_is_the_objectives_gradient(num_classes):
    h, y, v = make_data(num_classes=num_classes, signal=3.0)
    fit = fit_linear(h, y, num_classes, sample_weight=v, l2=1e-3)
    assert fit.converged.all() and (fit.gradient_norm <= 1e-8).all()
    assert fit.iterations.dtype == torch.int64 and (fit.iterations >= 1).all()
    weight, bias = fit.weight.clone().requires_grad_(), fit.bias.clone().requires_grad_()
    grads = torch.autograd.grad(objective(weight, bias, h, y, v, 1e-3, num_classes),
                                (weight, bias))
    autograd_norm = torch.maximum(grads[0].abs().amax((1, 2)), grads[1].abs().amax(1))
    torch.testing.assert_close(fit.gradient_norm, autograd_norm, rtol=0, atol=1e-13)
    # and a perturbed solution is worse: the returned point is the minimum, not just flat
    base = objective(fit.weight, fit.bias, h, y, v, 1e-3, num_classes)
    assert objective(fit.weight + 1e-3, fit.bias, h, y, v, 1e-3, num_classes) > base


def test_unconverged_fit_raises_warns_or_is_reported():
    h, y, v = make_data(num_classes=3, signal=3.0)
    with pytest.raises(RuntimeError, match=r"3 of 3 models did not reach .* max_iter = 1"):
        fit_linear(h, y, 3, sample_weight=v, l2=1e-3, max_iter=1)
    with pytest.warns(RuntimeWarning, match="larger max_iter"):
        fit = fit_linear(h, y, 3, sample_weight=v, l2=1e-3, max_iter=1, on_failure="warn")
    assert not fit.converged.any() and (fit.iterations == 1).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet = fit_linear(h, y, 3, sample_weight=v, l2=1e-3, max_iter=1, on_failure="ignore")
    torch.testing.assert_close(quiet.weight, fit.weight, rtol=0, atol=0)
    assert (quiet.gradient_norm > 1e-8).all()


def test_rank_deficient_features_fall_back_to_the_pseudo_inverse():
    # a duplicated feature with l2 = 0: the Hessian is singular, the logits are still unique
    h, y, v = make_data(num_classes=2, n=300)
    doubled = torch.cat([h, h[..., :1]], -1)
    fit = fit_linear(doubled, y, 2, sample_weight=v, tol=TOL)
    plain = fit_linear(h, y, 2, sample_weight=v, tol=TOL)
    assert fit.converged.all()
    torch.testing.assert_close(fit.logits(doubled), plain.logits(h), rtol=0, atol=1e-7)


# --- batching -----------------------------------------------------------------------------


@pytest.mark.parametrize("num_classes", [2, 4])
def test_shared_features_equal_expanded_features(num_classes):
    h, y, v = make_data(m=4, num_classes=num_classes, shared=True)
    # the two layouts round their float32 Newton directions differently, so the iterates part;
    # both stop at |g| <= 1e-8, which on these well-conditioned problems pins the optimum to
    # ~1e-6 (the difference of two points each within |g| / curvature of it)
    shared = fit_linear(h, y, num_classes, sample_weight=v, l2=1e-3)
    expanded = fit_linear(h.expand(4, -1, -1), y, num_classes, sample_weight=v, l2=1e-3)
    torch.testing.assert_close(shared.weight, expanded.weight, rtol=0, atol=1e-6)
    torch.testing.assert_close(shared.bias, expanded.bias, rtol=0, atol=1e-6)
    torch.testing.assert_close(shared.logits(h), expanded.logits(h.expand(4, -1, -1)),
                               rtol=0, atol=1e-6)
    # one label vector and one weight vector for all models: M comes from the features
    single = fit_linear(h.expand(2, -1, -1).float(), y[0], num_classes, sample_weight=v[0])
    assert single.weight.shape[0] == 2 and single.weight.dtype == torch.float64


@pytest.mark.parametrize("num_classes", [2, 4])
def test_models_do_not_interact(num_classes):
    # models of very different difficulty: each stops on its own, and equals its lone fit
    h, y, v = make_data(m=3, num_classes=num_classes, signal=1.0)
    h = h * torch.tensor([1.0, 5.0, 0.2], dtype=torch.float64)[:, None, None]
    together = fit_linear(h, y, num_classes, sample_weight=v, l2=1e-3, tol=TOL)
    assert len(set(together.iterations.tolist())) > 1  # so freezing some models is exercised
    for m in range(3):
        alone = fit_linear(h[m:m + 1], y[m:m + 1], num_classes, sample_weight=v[m:m + 1],
                           l2=1e-3, tol=TOL)
        # float32 directions round differently in a batch than alone (GEMM blocking): the
        # points agree to the tolerance's reach, not bit for bit
        torch.testing.assert_close(together.weight[m], alone.weight[0], rtol=0, atol=1e-6)
        torch.testing.assert_close(together.bias[m], alone.bias[0], rtol=0, atol=1e-6)
        assert abs(int(together.iterations[m]) - int(alone.iterations[0])) <= 1


@pytest.mark.parametrize("num_classes", [2, 4])
def test_chunks_of_models_equal_one_batch(num_classes, monkeypatch):
    h, y, v = make_data(m=5, num_classes=num_classes)
    whole = fit_linear(h, y, num_classes, sample_weight=v, l2=1e-3)
    monkeypatch.setattr(solvers, "_CHUNK_BYTES", 1)  # one model per chunk
    chunked = fit_linear(h, y, num_classes, sample_weight=v, l2=1e-3)
    for field in ("weight", "bias"):  # to the tolerance's reach, as above
        torch.testing.assert_close(getattr(chunked, field), getattr(whole, field), rtol=0,
                                   atol=1e-6)
    assert chunked.converged.all() and whole.converged.all()
    assert (chunked.iterations - whole.iterations).abs().max() <= 1


@pytest.mark.parametrize("num_classes", [2, 3])
def test_zero_weights_drop_samples(num_classes):
    # a sample with weight 0 is absent from the objective (cRT's resampling counts are 0 for
    # samples never drawn): each model's fit equals its fit on its weighted samples alone, with
    # the weights rescaled for the 1/N
    h, y, v = make_data(m=3, num_classes=num_classes)
    g = torch.Generator().manual_seed(1)
    v = v * (torch.rand(v.shape, generator=g) < torch.tensor([[0.3], [0.5], [0.7]]))
    fit = fit_linear(h, y, num_classes, sample_weight=v, l2=1e-3, tol=TOL)
    for m in range(3):
        keep = v[m] > 0
        alone = fit_linear(h[m, keep], y[m, keep], num_classes,
                           sample_weight=v[m, keep] * int(keep.sum()) / 400, l2=1e-3, tol=TOL)
        torch.testing.assert_close(fit.logits(h)[m], alone.logits(h[m])[0], rtol=0, atol=1e-6)


def test_logits_validate_their_features():
    h, y, _ = make_data(m=2, num_classes=2)
    fit = fit_linear(h, y, 2)
    assert isinstance(fit, LinearFit) and fit.logits(h[0]).shape == (2, 400)
    with pytest.raises(ValueError, match="features must have shape"):
        fit.logits(h[..., :3])
    with pytest.raises(ValueError, match="features must have shape"):
        fit.logits(torch.zeros(3, 400, 5))


# --- arguments ----------------------------------------------------------------------------


def _bad(**changes):
    h, y, v = make_data(m=2, n=50, num_classes=3)
    args = {"features": h, "labels": y, "num_classes": 3, "sample_weight": v}
    args.update(changes)
    return args


@pytest.mark.parametrize("args, match", [
    (_bad(num_classes=1), "num_classes must be"),
    (_bad(num_classes=3.0), "num_classes must be"),
    (_bad(l2=-1e-3), "l2 must be"),
    (_bad(tol=0.0), "tol must be"),
    (_bad(max_iter=0), "max_iter must be"),
    (_bad(on_failure="silent"), "on_failure must be"),
    (_bad(features=torch.zeros(2, 50, 5, dtype=torch.int64)), "features must be a float"),
    (_bad(features=torch.zeros(50)), "features must be a float"),
    (_bad(features=torch.full((2, 50, 5), float("nan"))), "features must be finite"),
    (_bad(labels=torch.zeros(2, 49, dtype=torch.int64)), "labels must be a tensor of shape"),
    (_bad(labels=torch.zeros(3, 50, dtype=torch.int64)), "number of models M must agree"),
    (_bad(labels=torch.full((2, 50), 3)), r"labels must be class indices in \[0, 3\)"),
    (_bad(labels=torch.full((2, 50), -1)), r"labels must be class indices in \[0, 3\)"),
    (_bad(labels=torch.zeros(2, 50)), "labels must be integer class indices"),
    (_bad(num_classes=2, labels=torch.full((2, 50), 2)), "only 0 and 1"),
    (_bad(sample_weight=-torch.ones(2, 50)), "sample_weight must be finite and non-negative"),
    (_bad(sample_weight=torch.ones(50, 2)), "sample_weight must be None or a real tensor"),
    (_bad(sample_weight=torch.ones(4, 50)), "number of models M must agree"),
])
def test_bad_arguments_raise_value_error(args, match):
    with pytest.raises(ValueError, match=match):
        fit_linear(args.pop("features"), args.pop("labels"), args.pop("num_classes"), **args)


# --- chapter 6's sizes --------------------------------------------------------------------


def chapter_data(m, n, d, num_classes, seed):
    """Standardised features with a learnable class signal, as chapter 6's refits see them."""
    g = torch.Generator().manual_seed(seed)
    if num_classes == 2:  # 2% positives
        y = (torch.rand(m, n, generator=g) < 0.02).long()
        h = torch.randn(m, n, d, generator=g) + 0.15 * y[..., None] * torch.randn(m, 1, d,
                                                                                  generator=g)
    else:  # long-tailed: the rarest class 1/100 as frequent as the commonest
        prior = torch.logspace(0, -2, num_classes)
        y = torch.multinomial(prior / prior.sum(), m * n, replacement=True, generator=g)
        y = y.view(m, n)
        means = torch.randn(m, num_classes, d, generator=g)
        h = torch.randn(m, n, d, generator=g) + 0.5 * means.gather(1, y[..., None].expand(-1, -1,
                                                                                          d))
    h = (h - h.mean(1, keepdim=True)) / h.std(1, keepdim=True)
    counts = torch.zeros(m, num_classes).scatter_add_(1, y, torch.ones(m, n))
    return h, y, (n / (num_classes * counts)).gather(1, y)  # the class-weighted refit's weights


@pytest.mark.parametrize("num_classes, n", [(10, 2_500), (2, 10_000)])
def test_timing_at_chapter_6_sizes(num_classes, n, capsys):
    # all chapter 6's models (M = 60 multi-class, 40 binary) with BOOK_SCALE=full; 4 at quick
    m = train.by_scale(quick=4, full=60 if num_classes > 2 else 40)
    h, y, v = chapter_data(m, n, 256, num_classes, seed=0)
    for head, weights in (("plain refit", None), ("class-weighted refit", v)):
        wall, cpu = time.perf_counter(), time.process_time()
        fit = fit_linear(h, y, num_classes, sample_weight=weights, l2=1e-3)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert fit.converged.all()
        with capsys.disabled():
            print(f"\nfit_linear, {head}: M={m} N={n} D=256 C={num_classes}: {wall:.1f} s wall, "
                  f"{cpu:.1f} s CPU, Newton iterations {int(fit.iterations.min())}-"
                  f"{int(fit.iterations.max())}")


@pytest.mark.parametrize("num_classes", [2, 4])
def test_warm_start_reaches_the_same_optimum_sooner(num_classes):
    # heads.refit's warm start: the plain fit with each class's bias moved by the log of its
    # mean weight (the weighted optimum of the population, chapter 6) is close to the weighted
    # fit, so Newton's method needs fewer iterations and stops at the same point
    from reweighting import heads

    h, y, _ = make_data(m=3, num_classes=num_classes)
    v = heads.inverse_frequency_weights(y, num_classes)
    plain = heads.refit(h, y, num_classes, l2=1e-3, tol=TOL)
    cold = heads.refit(h, y, num_classes, sample_weight=v, l2=1e-3, tol=TOL)
    warm = heads.refit(h, y, num_classes, sample_weight=v, l2=1e-3, tol=TOL, warm_start=plain)
    assert warm.converged.all()
    assert (warm.iterations <= cold.iterations).all() and warm.iterations.sum() < \
        cold.iterations.sum()
    torch.testing.assert_close(warm.logits(h), cold.logits(h), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="warm_start must be None or a LinearFit"):
        heads.refit(h, y, num_classes, warm_start=(plain.weight, plain.bias))
    with pytest.raises(ValueError, match="init must be"):
        fit_linear(h, y, num_classes, init=(plain.weight[:2], plain.bias[:2]))
    assert plain.rows(slice(0, 2)).weight.shape[0] == 2
