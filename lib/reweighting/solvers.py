"""Many small weighted ridge logistic / multinomial regressions, each solved to tolerance.

Chapter 6 refits the last layer of every trained network on its frozen penultimate features:
a *plain refit*, a *class-weighted refit* and *cRT* (a refit on class-balanced resampling
counts), for each of ``M`` networks at once. Each refit is the convex problem

.. math::

    F_m(W, b) = \\frac{1}{N} \\sum_{i=1}^{N} v_{mi}\\, \\ell(W^\\top h_{mi} + b,\\ y_{mi})
                + \\frac{\\lambda}{2} \\lVert W \\rVert_F^2,

with ``W`` of shape ``(D, K)``, the bias ``b`` unpenalised, ``v`` the sample weights and
``\\ell`` the logistic loss on one logit (``K = 1``, two classes) or the softmax cross-entropy
(``K = C`` classes). :func:`fit_linear` solves all ``M`` of them by Newton's method, each model
with its own step size and its own stopping test, until the largest entry of its gradient is at
most ``tol``, and reports per model whether it got there. The chapter's first version ran one
L-BFGS on the *sum* of the ``M`` objectives for a fixed 100 iterations, with one shared line
search and one shared stopping test and no convergence check, so a model whose problem was
badly conditioned could be left far from its optimum while the others had long converged; the
comparisons the chapter draws between heads need each head at its own optimum, which this
solver certifies.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor

from .validation import check_number

__all__ = ["LinearFit", "fit_linear"]

_ARMIJO = 1e-4  # sufficient-decrease constant c of the Armijo test
_MAX_HALVINGS = 60  # backtracking steps before a model's line search counts as failed
_ROUNDING = 1e-13  # relative slack of the Armijo test, above float64 rounding of the sum
# CG stops at residual min(0.5, |g|^0.5) |g|, or at tol / 2, below which a step is not needed
_FORCING_MAX, _FORCING_POWER, _FLOOR = 0.5, 0.5, 0.5
_CHUNK_BYTES = 2**30  # about 1 GB of float64 working memory per chunk of models
_FAILURE_MODES = ("raise", "warn", "ignore")


@dataclass
class LinearFit:
    """``M`` fitted linear layers ``z = W^T h + b`` and a per-model convergence report.

    Attributes:
        weight (Tensor): ``(M, D, K)`` float64; ``K = 1`` for two classes (one logit), else
            ``K = C``.
        bias (Tensor): ``(M, K)`` float64. For ``K >= 3`` the softmax is unchanged by adding a
            constant to every class's bias; the solver returns the biases centred to sum to 0.
        gradient_norm (Tensor): ``(M,)`` float64, the largest absolute entry of each model's
            objective gradient (with respect to ``W`` and ``b``) at the returned solution.
        iterations (Tensor): ``(M,)`` int64, the Newton iterations each model used.
        converged (Tensor): ``(M,)`` bool, ``gradient_norm <= tol``.
    """

    weight: Tensor
    bias: Tensor
    gradient_norm: Tensor
    iterations: Tensor
    converged: Tensor

    def rows(self, index) -> LinearFit:
        """The fit of some of the models: ``index`` is anything that indexes the model axis
        (a slice, a list of ints, a bool mask), e.g. to warm-start a related fit
        (:func:`fit_linear`'s ``init``)."""
        return LinearFit(*(t[index] for t in (self.weight, self.bias, self.gradient_norm,
                                              self.iterations, self.converged)))

    def logits(self, features: Tensor) -> Tensor:
        """The fitted layers' logits ``z_{mi} = W_m^T h_{mi} + b_m`` in float64.

        Args:
            features (Tensor): ``(M, N, D)``, model ``m``'s own features, or ``(N, D)`` shared
                by all models; any float dtype, moved to the fit's device.

        Returns:
            Tensor: ``(M, N)`` for two classes (``K = 1``), else ``(M, N, K)``; float64.

        Raises:
            ValueError: if ``features`` is not a float ``(N, D)`` or ``(M, N, D)`` tensor with
                this fit's ``M`` and ``D``.
        """
        m, d, k = self.weight.shape
        if not isinstance(features, Tensor) or not features.is_floating_point():
            raise ValueError(f"features must be a float tensor, got {_describe(features)}")
        shape_ok = (features.dim() == 2 and features.shape[1] == d) or (
            features.dim() == 3 and features.shape[0] == m and features.shape[2] == d)
        if not shape_ok:
            raise ValueError(f"features must have shape (N, {d}) or ({m}, N, {d}), got "
                             f"{tuple(features.shape)}")
        h = features.to(device=self.weight.device, dtype=torch.float64)
        z = torch.matmul(h, self.weight) + self.bias[:, None, :]  # (N, D) broadcasts over M
        return z[..., 0] if k == 1 else z


def fit_linear(features: Tensor, labels: Tensor, num_classes: int, *,
               sample_weight: Tensor | None = None, l2: float = 0.0, tol: float = 1e-8,
               max_iter: int = 100, on_failure: str = "raise",
               init: tuple[Tensor, Tensor] | None = None) -> LinearFit:
    """Fit ``M`` weighted ridge logistic / softmax regressions, each to gradient tolerance.

    Chapter 6's last-layer refits (the plain refit, the class-weighted refit and cRT, whose
    sample weights are the class-balanced resampling counts) on every network's frozen
    features. Model ``m`` minimises

    ``F_m(W, b) = (1/N) sum_i v_mi l(W^T h_mi + b, y_mi) + (l2/2) ||W||_F^2``

    (``b`` unpenalised), with ``l(z, y) = log(1 + e^z) - y z`` on one logit for
    ``num_classes == 2`` and ``l(z, y) = logsumexp(z) - z_y`` for ``num_classes >= 3``. Write
    ``x_i = [h_i; 1]``, ``theta = [W; b]`` (``(D+1, K)``), ``p_i`` the predicted probabilities
    and ``Y_i`` the one-hot label. Then the gradient is

    ``g = (1/N) sum_i v_i x_i (p_i - Y_i)^T + l2 [W; 0]``

    and Newton's step ``d`` solves ``H d = -g``, where ``H V = (1/N) sum_i v_i x_i
    (p_i * (x_i^T V) - p_i (p_i^T (x_i^T V)))^T + l2 [V_W; 0]``. For ``K = 1`` the
    ``(D+1) x (D+1)`` Hessian ``(1/N) sum_i v_i p_i (1 - p_i) x_i x_i^T + l2 diag(1, .., 1, 0)``
    is formed and solved by a batched Cholesky factorisation (a pseudo-inverse where it is
    singular). For ``K >= 3`` the ``K(D+1)``-square Hessian is too large to form for many
    models, and ``d`` comes from conjugate gradients on Hessian-vector products (Newton-CG),
    preconditioned by a diagonal approximation of the Hessian, stopped per model when the
    residual ``||H d + g||`` is at most ``min(1/2, sqrt(||g||)) ||g||`` (2-norms; this keeps
    Newton's superlinear convergence) or at most ``tol / 2``. The softmax Hessian is singular
    along ``b -> b + c 1`` (and, for ``l2 = 0``, along the same shift of ``W``'s columns); the
    system ``H d = -g`` is consistent there and CG started at 0 stays in ``H``'s range, and the
    returned biases are centred. Each model then updates ``theta <- theta + t d`` with its own
    step ``t in {1, 1/2, 1/4, ...}``, the first to pass Armijo's test
    ``F(theta + t d) <= F(theta) + 1e-4 t g^T d`` (with a ``1e-13 |F|`` slack for rounding).
    A model stops, and is frozen, as soon as ``max_ij |g_ij| <= tol``; the others go on.
    Samples of weight 0 (cRT's undrawn samples) are skipped, and models are fitted in chunks
    of about 1 GB of working memory.

    Precision: the objective, the gradient, the line search and the stopping test run in
    float64. The binary Hessian and the softmax Hessian-vector products, which only make the
    Newton direction, run in float32 (two to three times faster on a CPU, measured on chapter
    6's refits); an inexact direction can slow the convergence, never move the point where the
    float64 test stops it.

    Each problem is convex and smooth, so Newton's method converges quadratically near the
    optimum and ``tol = 1e-8`` costs about ten iterations; the per-model test certifies every
    refit, where the L-BFGS it replaces took 100 steps on the sum of all the models' objectives,
    with one shared line search and stopping rule and no check that any model had converged.

    Args:
        features (Tensor): ``(M, N, D)`` (model ``m``'s own features) or ``(N, D)`` (shared by
            every model); any float dtype and device. The fit runs in float64 on this device.
        labels (Tensor): ``(M, N)`` or ``(N,)``; integer class indices in ``[0, num_classes)``,
            or, for ``num_classes == 2``, 0/1 of any dtype.
        num_classes (int): ``C >= 2``.
        sample_weight (Tensor, optional): ``(M, N)`` or ``(N,)`` non-negative weights ``v``;
            ``None`` means all ones. Default: ``None``.
        l2 (float): the ridge penalty ``lambda >= 0`` on ``W``. Default: ``0.0``.
        tol (float): the convergence test ``max |g| <= tol``, ``tol > 0``. Default: ``1e-8``.
        max_iter (int): Newton iterations per model, at least 1. Default: ``100``.
        on_failure (str): what to do when some model does not reach ``tol``: ``"raise"`` a
            :class:`RuntimeError`, ``"warn"`` with :func:`warnings.warn`, or ``"ignore"``; the
            fit's ``converged`` says which models did. Default: ``"raise"``.
        init (tuple[Tensor, Tensor], optional): a starting point ``(weight, bias)`` of shapes
            ``(M, D, K)`` and ``(M, K)`` (a :class:`LinearFit`'s ``weight`` and ``bias``, e.g. of
            a related fit); ``None`` starts at ``W = 0`` with ``b`` the log-odds of the weighted
            class frequencies. It changes only how many iterations a model needs, not the
            optimum. Default: ``None``.

    Returns:
        LinearFit: the ``(M, D, K)`` weights, ``(M, K)`` biases and the per-model report.
        ``M`` is the leading size of ``features``, ``labels`` or ``sample_weight`` (they must
        agree), or 1 when none has one.

    Raises:
        ValueError: for shapes that do not match, ``num_classes < 2``, labels out of range,
            negative or non-finite weights or features, ``l2 < 0``, ``tol <= 0``,
            ``max_iter < 1`` or an unknown ``on_failure``; the message names the argument.
        RuntimeError: with ``on_failure="raise"``, when some model did not converge; the
            message gives how many and the worst gradient norm.
    """
    num_classes = check_number(num_classes, "num_classes", 2, integer=True)
    l2 = check_number(l2, "l2", 0.0)
    tol = check_number(tol, "tol", 0.0, low_open=True)
    max_iter = check_number(max_iter, "max_iter", 1, integer=True)
    if on_failure not in _FAILURE_MODES:
        raise ValueError(f"on_failure must be one of {_FAILURE_MODES}, got {on_failure!r}")
    h, y, v = _checked_data(features, labels, num_classes, sample_weight)
    m, n, d = len(y), h.shape[1], h.shape[2]
    k = 1 if num_classes == 2 else num_classes
    start = _checked_init(init, m, d, k, h.device)
    parts = [_fit_chunk(h if h.shape[0] == 1 else h[rows], y[rows], v[rows], k, l2, tol,
                        max_iter, None if start is None else start[rows])
             for rows in _chunks(m, n, d, k, shared=h.shape[0] == 1)]
    theta, grad_norm, iters = (torch.cat(t) for t in zip(*parts))
    fit = LinearFit(weight=theta[:, :d].contiguous(), bias=theta[:, d].contiguous(),
                    gradient_norm=grad_norm, iterations=iters, converged=grad_norm <= tol)
    _report_failures(fit, tol, max_iter, l2, on_failure)
    return fit


# --- arguments ----------------------------------------------------------------------------


def _describe(value) -> str:
    if isinstance(value, Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return type(value).__name__


def _checked_data(features, labels, num_classes, sample_weight):
    """Validate the data; return features ``(M or 1, N, D)``, labels and weights ``(M, N)``.

    Labels are int64 class indices; features and weights are float64, all on the features'
    device (features stay in their dtype here and are converted one chunk at a time).
    """
    if not isinstance(features, Tensor) or not features.is_floating_point() or \
            features.dim() not in (2, 3):
        raise ValueError("features must be a float tensor of shape (N, D) or (M, N, D), got "
                         f"{_describe(features)}")
    n, d = features.shape[-2:]
    if n == 0 or d == 0:
        raise ValueError(f"features must have N >= 1 samples and D >= 1 features, got shape "
                         f"{tuple(features.shape)}")
    if not bool(torch.isfinite(features).all()):
        raise ValueError("features must be finite")
    if not isinstance(labels, Tensor) or labels.dim() not in (1, 2) or labels.shape[-1] != n:
        raise ValueError(f"labels must be a tensor of shape ({n},) or (M, {n}) to match "
                         f"features, got {_describe(labels)}")
    if sample_weight is not None and (
            not isinstance(sample_weight, Tensor) or sample_weight.dim() not in (1, 2)
            or sample_weight.shape[-1] != n or sample_weight.is_complex()):
        raise ValueError(f"sample_weight must be None or a real tensor of shape ({n},) or "
                         f"(M, {n}) to match features, got {_describe(sample_weight)}")
    leading = {name: t.shape[0] for name, t in
               (("features", features), ("labels", labels), ("sample_weight", sample_weight))
               if t is not None and t.dim() == (3 if name == "features" else 2)}
    if len(set(leading.values())) > 1:
        raise ValueError(f"the number of models M must agree; got {leading}")
    m = next(iter(leading.values()), 1)
    if m == 0:
        raise ValueError(f"the number of models M must be at least 1; got {leading}")
    device = features.device
    y = _checked_labels(labels.to(device), num_classes).expand(m, n)
    if sample_weight is None:
        v = torch.ones(m, n, dtype=torch.float64, device=device)
    else:
        v = sample_weight.to(device=device, dtype=torch.float64).expand(m, n)
        if not bool((torch.isfinite(v) & (v >= 0)).all()):
            raise ValueError("sample_weight must be finite and non-negative")
    h = features if features.dim() == 3 else features[None]
    return h, y, v


def _checked_init(init, m: int, d: int, k: int, device) -> Tensor | None:
    """``init`` as one float64 ``(M, D+1, K)`` tensor ``[W; b]``, or ``None``."""
    if init is None:
        return None
    try:
        weight, bias = init
    except (TypeError, ValueError):
        raise ValueError("init must be None or a pair (weight, bias), got "
                         f"{_describe(init)}") from None
    if not (isinstance(weight, Tensor) and isinstance(bias, Tensor)) or \
            tuple(weight.shape) != (m, d, k) or tuple(bias.shape) != (m, k):
        raise ValueError(f"init must be (weight, bias) of shapes ({m}, {d}, {k}) and ({m}, {k}), "
                         f"got {_describe(weight)} and {_describe(bias)}")
    start = torch.cat([weight, bias[:, None, :]], 1).to(device=device, dtype=torch.float64)
    if not bool(torch.isfinite(start).all()):
        raise ValueError("init must be finite")
    return start


def _checked_labels(labels: Tensor, num_classes: int) -> Tensor:
    if num_classes == 2:
        if labels.is_complex() or not bool(((labels == 0) | (labels == 1)).all()):
            raise ValueError("labels must contain only 0 and 1 for num_classes=2")
        return labels.to(torch.int64)
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integer class indices for num_classes={num_classes}, "
                         f"got dtype {labels.dtype}")
    if labels.numel() and not bool(((labels >= 0) & (labels < num_classes)).all()):
        raise ValueError(f"labels must be class indices in [0, {num_classes}), found "
                         f"[{int(labels.min())}, {int(labels.max())}]")
    return labels.to(torch.int64)


def _chunks(m: int, n: int, d: int, k: int, *, shared: bool) -> list[slice]:
    """Slices of models whose float64 working set stays near :data:`_CHUNK_BYTES`.

    Per model: its features with the ones column and their transpose in float64 and float32
    (unless shared), the weighted features and three Hessians of the binary case, and about a
    dozen ``(N, K)`` buffers.
    """
    p = d + 1
    per_model = 8 * ((0 if shared else 3 * n * p) + 12 * n * k
                     + (n * p + 3 * p * p if k == 1 else 8 * p * k))
    size = max(1, _CHUNK_BYTES // per_model)
    return [slice(start, min(start + size, m)) for start in range(0, m, size)]


def _report_failures(fit: LinearFit, tol: float, max_iter: int, l2: float, mode: str) -> None:
    failed = int((~fit.converged).sum())
    if failed == 0 or mode == "ignore":
        return
    message = (f"fit_linear: {failed} of {len(fit.converged)} models did not reach gradient "
               f"max-abs <= tol = {tol:g} (worst {float(fit.gradient_norm.max()):.3g}) within "
               f"max_iter = {max_iter} Newton iterations; try a larger max_iter, or a larger l2 "
               f"(now {l2:g}) if the data are (nearly) separable")
    if mode == "raise":
        raise RuntimeError(message)
    warnings.warn(message, RuntimeWarning, stacklevel=3)


# --- the problem: objective, gradient, Hessian ----------------------------------------------


@dataclass
class _Problem:
    """Some models' float64 data: ``x = [h, 1]``, its transpose, ``y`` and ``v / N``.

    ``x`` is ``(M, N, D+1)``, or ``(1, N, D+1)`` when the features are shared (then ``xt`` is
    ``None`` and the products run as one GEMM over all models); ``scale`` ``(M, D+1)`` is the
    ``v``-weighted mean of ``x^2`` per feature, for the softmax preconditioner. ``x32`` and
    ``xt32`` are float32 copies, for the products that only make a Newton direction.
    """

    x: Tensor
    xt: Tensor | None
    y: Tensor
    v: Tensor
    k: int
    l2: float
    scale: Tensor | None = None
    x32: Tensor | None = None
    xt32: Tensor | None = None

    def __post_init__(self):
        if self.x32 is None:
            self.x32 = self.x.float()
            self.xt32 = None if self.xt is None else self.xt.float()

    def subset(self, keep: Tensor) -> _Problem:
        def pick(t):
            return None if t is None else t[keep]

        shared = self.xt is None
        return _Problem(self.x if shared else self.x[keep], pick(self.xt), self.y[keep],
                        self.v[keep], self.k, self.l2, pick(self.scale),
                        self.x32 if shared else self.x32[keep],
                        pick(self.xt32))

    def features(self, dtype: torch.dtype) -> tuple[Tensor, Tensor | None]:
        """``x`` and its transpose in float64, or their float32 copies."""
        return (self.x, self.xt) if dtype == torch.float64 else (self.x32, self.xt32)

    def scores(self, theta: Tensor) -> Tensor:
        """``Z = x theta``, ``(M, N, K)``, in ``theta``'s dtype (float64 or float32)."""
        x, xt = self.features(theta.dtype)
        if xt is None:
            m, p, k = theta.shape
            z = x[0] @ theta.transpose(0, 1).reshape(p, m * k)
            return z.view(-1, m, k).transpose(0, 1)
        if theta.dtype == torch.float32:  # (K x D+1)(D+1 x N) is ~3x faster than x theta
            return torch.bmm(theta.transpose(1, 2), xt).transpose(1, 2)
        return torch.bmm(x, theta)

    def pullback(self, r: Tensor) -> Tensor:
        """``x^T r``, ``(M, D+1, K)``, for ``r`` ``(M, N, K)``, in ``r``'s dtype."""
        x, xt = self.features(r.dtype)
        if xt is None:
            m, n, k = r.shape
            out = x[0].T @ r.transpose(0, 1).reshape(n, m * k)
            return out.view(-1, m, k).transpose(0, 1)
        if r.dtype == torch.float32:  # (K x N)(N x D+1), as in scores
            return torch.bmm(r.transpose(1, 2), x).transpose(1, 2)
        return torch.bmm(xt, r)

    def penalty_gradient(self, theta: Tensor) -> Tensor:
        """``l2 [W; 0]``."""
        out = self.l2 * theta
        out[:, -1] = 0
        return out

    def objective(self, theta: Tensor, z: Tensor) -> Tensor:
        """``F = sum_i v_i l(z_i, y_i) + (l2/2) ||W||^2``, ``(M,)``, given ``z = x theta``."""
        if self.k == 1:
            z = z[..., 0]
            losses = torch.nn.functional.softplus(z) - self.y * z
        else:
            losses = torch.logsumexp(z, -1) - z.gather(-1, self.y[..., None])[..., 0]
        return (self.v * losses).sum(1) + self.l2 / 2 * theta[:, :-1].square().sum((1, 2))

    def probabilities(self, z: Tensor) -> Tensor:
        return torch.sigmoid(z) if self.k == 1 else torch.softmax(z, -1)

    def gradient(self, theta: Tensor, p: Tensor) -> Tensor:
        """``g = x^T (v (p - Y)) + l2 [W; 0]`` (``v`` already holds the ``1/N``)."""
        if self.k == 1:
            residual = p - self.y[..., None]
        else:
            residual = p.clone()
            residual.scatter_add_(-1, self.y[..., None], torch.full_like(p[..., :1], -1.0))
        return self.pullback(self.v[..., None] * residual) + self.penalty_gradient(theta)


def _weighted_samples_only(h: Tensor, y: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Each model's samples of positive weight first; the columns where all have 0 dropped.

    A sample with ``v = 0`` adds nothing to the objective, its gradient or its Hessian (cRT's
    resampling counts are 0 for the samples never drawn), so the passes over the features can
    skip it. Done for per-model features when it saves at least a fifth of the samples.
    """
    keep = v > 0
    n_keep = max(int(keep.sum(1).max()), 1)
    if h.shape[0] != len(v) or n_keep > 0.8 * v.shape[1]:  # shared features stay shared
        return h, y, v
    order = torch.sort(keep.to(torch.int8), dim=1, descending=True, stable=True).indices
    order = order[:, :n_keep]
    h = h.gather(1, order[..., None].expand(-1, -1, h.shape[2]))
    return h, y.gather(1, order), v.gather(1, order)


def _problem(h: Tensor, y: Tensor, v: Tensor, k: int, l2: float, n: int) -> _Problem:
    """The float64 problem of one chunk of models (``h`` ``(M or 1, N', D)``, ``N`` samples)."""
    x = h.to(torch.float64)
    x = torch.cat([x, torch.ones_like(x[..., :1])], -1)
    shared = x.shape[0] == 1
    problem = _Problem(x, None if shared else x.transpose(1, 2).contiguous(),
                       y.to(torch.float64) if k == 1 else y, v / n, k, l2)
    if k > 1:
        total = v.sum(1, keepdim=True)
        squares = v @ x[0].square() if shared else torch.einsum("mn,mnp->mp", v, x.square())
        problem.scale = torch.where(total > 0, squares / total.clamp(min=1e-300), 1.0)
    return problem


# --- Newton directions --------------------------------------------------------------------


def _binary_direction(problem: _Problem, p: Tensor, g: Tensor) -> Tensor:
    """Solve ``H d = -g`` with the formed ``(D+1)``-square Hessian, by batched Cholesky.

    The Hessian is summed in float32 (the cost of the fit) and factorised in float64."""
    s = (problem.v * (p[..., 0] * (1 - p[..., 0]))).float()  # (M, N)
    x, xt = problem.features(torch.float32)
    xt = x.transpose(1, 2) if xt is None else xt
    hessian = torch.matmul(xt, s[..., None] * x).double()  # (M, D+1, D+1); shared x broadcasts
    ridge = torch.full((x.shape[2],), problem.l2, dtype=x.dtype, device=x.device)
    ridge[-1] = 0
    hessian.diagonal(dim1=1, dim2=2).add_(ridge)
    factor, info = torch.linalg.cholesky_ex(hessian)
    d = torch.cholesky_solve(-g, factor)
    singular = (info != 0) | ~torch.isfinite(d).all(2).all(1)
    if bool(singular.any()):  # rank-deficient features or vanishing curvature: min-norm step
        d[singular] = -torch.linalg.pinv(hessian[singular], hermitian=True) @ g[singular]
    return d


def _softmax_direction(problem: _Problem, p: Tensor, g: Tensor, max_cg: int,
                       floor: float) -> Tensor:
    """Solve ``H d = -g`` by preconditioned conjugate gradients on Hessian-vector products.

    ``H V = x^T (v (p * xV - p (p^T xV))) + l2 [V_W; 0]``, its two products with ``x`` in
    float32 and the CG recurrences in float64. The preconditioner is the diagonal
    approximation ``H_(jk, jk) ~ (sum_i v_i p_ik (1 - p_ik)) scale_j + l2`` (exact for the bias
    row ``j = D+1``). Each model stops when ``||H d + g|| <= min(1/2, sqrt(||g||)) ||g||``
    (2-norms), or ``<= floor / 2``: the step's predicted gradient then passes the test; a model
    with ``g = 0`` gets ``d = 0``.
    """
    vp = problem.v[..., None] * p  # (M, N, K)
    vp32, p32 = vp.float(), p.float()
    curvature_k = (vp * (1 - p)).sum(1)  # (M, K)
    diag = problem.scale[:, :, None] * curvature_k[:, None, :]
    diag[:, :-1] += problem.l2
    inverse = torch.where(diag > 0, 1 / diag.clamp(min=1e-300), 1.0)  # (M, D+1, K)

    def precond(r: Tensor) -> Tensor:
        return inverse * r

    def dot(a: Tensor, b: Tensor) -> Tensor:
        return (a * b).sum((1, 2))

    g_norm = g.square().sum((1, 2)).sqrt()
    target = torch.clamp(g_norm.pow(_FORCING_POWER), max=_FORCING_MAX) * g_norm
    target = torch.clamp(target, min=floor * _FLOOR)
    d = torch.zeros_like(g)
    r = -g
    z = precond(r)
    direction = z
    rz = dot(r, z)
    todo = g_norm > 0
    for _ in range(max_cg):
        if not bool(todo.any()):
            break
        weighted = vp32 * problem.scores(direction.float())  # v p * xV
        weighted.addcmul_(p32, weighted.sum(-1, keepdim=True), value=-1)  # - p (v p^T xV)
        hd = problem.pullback(weighted).double() + problem.penalty_gradient(direction)
        curvature = dot(direction, hd)
        todo = todo & (curvature > 0)
        alpha = torch.where(todo, rz / torch.where(todo, curvature, 1.0), 0.0)[:, None, None]
        d.addcmul_(alpha, direction)
        r.addcmul_(alpha, hd, value=-1)
        z = precond(r)
        rz_new = dot(r, z)
        todo = todo & (r.square().sum((1, 2)).sqrt() > target)
        beta = torch.where(todo, rz_new / torch.where(rz > 0, rz, 1.0), 0.0)[:, None, None]
        direction = torch.addcmul(z, beta, direction)
        rz = rz_new
    stuck = (d == 0).all(2).all(1) & (g_norm > 0)  # no positive curvature: steepest descent
    return torch.where(stuck[:, None, None], -g, d)


# --- the per-model Newton loop ------------------------------------------------------------


def _initial_theta(y: Tensor, v: Tensor, d: int, k: int) -> Tensor:
    """``W = 0`` and ``b`` = the log-odds of the weighted class frequencies (smoothed)."""
    counts = torch.zeros(len(y), max(k, 2), dtype=torch.float64, device=y.device)
    counts.scatter_add_(1, y, v)
    total = counts.sum(1, keepdim=True)
    logs = (counts + 1e-3 * total / counts.shape[1] + 1e-300).log()
    theta = torch.zeros(len(y), d + 1, k, dtype=torch.float64, device=y.device)
    theta[:, d] = logs[:, 1:] - logs[:, :1] if k == 1 else logs - logs.mean(1, keepdim=True)
    return theta


def _line_search(problem: _Problem, theta: Tensor, z: Tensor, d: Tensor, zd: Tensor,
                 g: Tensor) -> tuple[Tensor, Tensor]:
    """Per-model backtracking: the first ``t = 1, 1/2, ...`` with Armijo's sufficient decrease.

    ``z`` and ``zd`` are ``x theta`` and ``x d``, so a trial costs no pass over the features.
    Returns the new ``theta`` and which models found a step.
    """
    f0 = problem.objective(theta, z)
    slope = (g * d).sum((1, 2))
    slack = _ROUNDING * f0.abs().clamp(min=1.0)
    step = torch.ones_like(f0)
    accepted = torch.zeros_like(f0, dtype=torch.bool)
    out = theta.clone()
    for _ in range(_MAX_HALVINGS):
        t = step[:, None, None]
        trial = theta + t * d
        f = problem.objective(trial, z + t * zd)
        ok = ~accepted & (f <= f0 + _ARMIJO * step * slope + slack)
        out[ok] = trial[ok]
        accepted |= ok
        if bool(accepted.all()):
            break
        step = torch.where(accepted, step, step / 2)
    return out, accepted


def _fit_chunk(h: Tensor, y: Tensor, v: Tensor, k: int, l2: float, tol: float,
               max_iter: int, start: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """Newton's method for the models of one chunk; returns ``theta``, ``|g|_max``, iterations.

    Models that stop (converged, or a failed line search) are frozen: their gradient is masked
    to 0, so their step is 0; the working set is compacted when half of it is frozen.
    """
    m, n = y.shape
    problem = _problem(*_weighted_samples_only(h, y, v), k, l2, n)
    max_cg = min(problem.x.shape[2] * k, 1000)
    theta = _initial_theta(y, v, problem.x.shape[2] - 1, k) if start is None else start.clone()
    grad_norm = torch.full((m,), math.inf, dtype=torch.float64, device=theta.device)
    iters = torch.zeros(m, dtype=torch.int64, device=theta.device)
    rows = torch.arange(m, device=theta.device)  # the models of the working set `problem`
    live = torch.ones(m, dtype=torch.bool, device=theta.device)  # those still iterating
    for iteration in range(max_iter + 1):
        th = theta[rows]
        z = problem.scores(th)
        p = problem.probabilities(z)
        g = problem.gradient(th, p)
        norms = g.abs().amax((1, 2))
        grad_norm[rows[live]] = norms[live]
        live &= norms > tol
        n_live = int(live.sum())
        if iteration == max_iter or n_live == 0:
            break
        if n_live <= len(rows) // 2:
            problem, rows, th, z, p, g = (problem.subset(live), rows[live], th[live], z[live],
                                          p[live], g[live])
            live = live[live]
        g = torch.where(live[:, None, None], g, 0.0)
        if k == 1:
            d = _binary_direction(problem, p, g)
        else:
            d = _softmax_direction(problem, p, g, max_cg, tol)
        new, moved = _line_search(problem, th, z, d, problem.scores(d), g)
        if k > 1:  # the softmax's free shift of b
            new[:, -1] -= torch.where(live[:, None], new[:, -1].mean(-1, keepdim=True), 0.0)
        theta[rows] = new
        iters[rows[live]] += 1
        live &= moved  # a failed line search freezes the model (reported unconverged)
    return theta, grad_norm, iters
