"""Devices, the ``BOOK_SCALE`` switch, and a trainer that trains many models at once.

The book trains every seed of every loss it compares (DESIGN.md section 5), and small models
trained one at a time use a CPU's cores, and a GPU, poorly. :func:`train_batched` therefore
stacks the parameters of all models into one set of tensors with
``torch.func.stack_module_state`` and steps one ordinary PyTorch optimiser on the stacked
tensors. Because the summed loss of independent models has, for each model, exactly that
model's gradient, and Adam and SGD update every parameter entry independently, this is the
same computation as the plain per-model loop :func:`train_one` (which the tests check), only
batched. It runs the stacked models one of two ways:

- **stacked MLP** (every model of the book, :func:`mlp`; any ``nn.Sequential`` of ``Linear``
  and ``ReLU`` with an optional final ``Flatten`` of a single output, or one ``nn.Linear``):
  each layer of all ``M`` models is one batched matrix product, ``torch.baddbmm`` of the
  ``(M, B, in)`` activations with the ``(M, out, in)`` stacked weights, and the losses take
  the ``(M, B, ...)`` logits directly (:func:`reweighting.losses.over_models`);
- **generic** (any other model): ``torch.func.vmap`` over ``torch.func.functional_call``.

Both train the same models (``tests/test_train.py``); ``benchmarks/trainer.py`` measures both.

Three rules keep the chapters free of device code:

- the trainer takes its data on any device and moves it to the training device itself
  (``device``, default :func:`default_device`);
- :meth:`Ensemble.logits` and :meth:`Ensemble.state_dict_of` always return CPU tensors, so a
  chapter can hand them straight to NumPy and scikit-learn;
- the losses of :mod:`reweighting.losses` move their per-class constants (prior, weights, counts) to
  the logits' device themselves.

``tests/test_train.py`` trains on PyTorch's ``meta`` device under a check that rejects any
operation mixing two devices, which is how a CPU-only machine catches device mix-ups.

Each seed may train on its own data: pass ``x`` of shape ``(S, N, ...)`` and ``y`` of shape
``(S, N)`` (one training set per seed, e.g. its own long-tailed subset or label-noise draw),
and every loss of seed ``s`` sees seed ``s``'s set, so the losses stay paired.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap
from tqdm import tqdm

from . import losses as _losses
from .seeds import offset as seed_offset
from .seeds import streams
from .validation import check_binary_targets, check_class_targets, check_number

__all__ = [
    "SCALES",
    "book_scale",
    "by_scale",
    "book_seeds",
    "default_device",
    "mlp",
    "Recipe",
    "seeded_model",
    "train_one",
    "train_batched",
    "Ensemble",
]

#: tuple[str, str]: The scales ``$BOOK_SCALE`` may name (:func:`book_scale`), the tests'
#: and the book's.
SCALES = ("quick", "full")
LossFn = Callable[[Tensor, Tensor], Tensor]


def default_device() -> torch.device:
    """The device the trainers use when none is given.

    Returns:
        torch.device: ``cuda`` when PyTorch sees a GPU, else ``cpu``.
    """
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def book_scale() -> str:
    """The scale of every experiment: ``$BOOK_SCALE``, default ``full``, the book's own run.

    ``full`` is what the committed book shows: at least 20 seeds per configuration, each chapter
    sized to run in at most 15 minutes on a 2-core CPU (and faster, unchanged, on a GPU).
    ``quick`` is the test scale, about two minutes a chapter; the tests set it (the repository's
    ``conftest.py`` and ``make test``).

    Returns:
        str: ``"quick"`` or ``"full"``.

    Raises:
        ValueError: if ``$BOOK_SCALE`` is set to anything else.
    """
    scale = os.environ.get("BOOK_SCALE", "").strip().lower()
    if not scale:
        return "full"
    if scale not in SCALES:
        raise ValueError(f"BOOK_SCALE must be one of {SCALES}, got {os.environ['BOOK_SCALE']!r}")
    return scale


def by_scale(quick, full, scale: str | None = None):
    """Pick a setting by scale.

    Args:
        quick: the value at scale ``quick``.
        full: the value at scale ``full``.
        scale (str, optional): ``"quick"`` or ``"full"``; default :func:`book_scale`.

    Returns:
        ``quick`` or ``full``.

    Raises:
        ValueError: if ``scale`` is not one of :data:`SCALES`.
    """
    scale = book_scale() if scale is None else scale
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    return quick if scale == "quick" else full


def book_seeds(quick: int, full: int, scale: str | None = None) -> list[int]:
    """The seeds of an experiment: ``by_scale(quick, full)`` of them, from ``$BOOK_SEED_OFFSET``.

    The offset (default 0) shifts every seed of every chapter at once, so the whole book can be
    rerun on fresh seeds (``BOOK_SEED_OFFSET=1000 make reproduce``) to see which results depend
    on the seeds drawn; the test suite uses it to check that the notebooks' asserts do not.

    Args:
        quick (int): the number of seeds at scale ``quick``.
        full (int): the number of seeds at scale ``full``.
        scale (str, optional): as :func:`by_scale`.

    Returns:
        list[int]: ``[offset, offset + 1, ...]``.

    Raises:
        ValueError: if ``$BOOK_SEED_OFFSET`` is not a non-negative integer.
    """
    start = seed_offset()
    return list(range(start, start + by_scale(quick, full, scale)))


def mlp(in_features: int, hidden: Sequence[int], num_outputs: int) -> nn.Sequential:
    """A ReLU multilayer perceptron ``in_features -> hidden... -> num_outputs`` (chapters 1-5).

    Args:
        in_features (int): the size of one input sample.
        hidden (Sequence[int]): the widths of the hidden layers, e.g. ``[256, 256]``.
        num_outputs (int): 1 for a binary model, else the number of classes.

    Returns:
        nn.Sequential: a model mapping ``(N, in_features)`` to logits of shape ``(N,)`` when
        ``num_outputs == 1`` (the form the binary losses of :mod:`reweighting.losses` take), else
        ``(N, num_outputs)``.
    """
    sizes = [in_features, *hidden]
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(a, b), nn.ReLU()]
    layers.append(nn.Linear(sizes[-1], num_outputs))
    if num_outputs == 1:
        layers.append(nn.Flatten(start_dim=-2))  # (N, 1) -> (N,)
    return nn.Sequential(*layers)


@dataclass(frozen=True)
class Recipe:
    """How to train: the schedule and the optimiser, shared by :func:`train_one` and
    :func:`train_batched`.

    Args:
        epochs (int): passes over the training set, at least 1.
        batch_size (int): samples per optimiser step, at least 1 (the last batch of an epoch
            may be smaller).
        lr (float): the learning rate, positive.
        optimizer (str): ``"adam"`` (``torch.optim.Adam``) or ``"sgd"`` (``torch.optim.SGD``).
        momentum (float): SGD's momentum, in [0, 1); ignored by Adam. Default 0.9.
        weight_decay (float): L2 penalty, at least 0. Default 0.
        fused (bool, optional): use PyTorch's fused optimiser kernel (one kernel per step for
            all parameter tensors). ``None`` (default) uses it where PyTorch has it, on the CPU
            and CUDA (measured 25% faster than the foreach kernels for the book's MLP on two CPU
            cores), and the foreach kernels elsewhere. Fused and foreach kernels round
            differently, so over many steps their models drift apart like any two float
            orderings (``benchmarks/trainer.py`` reports by how much).

    Raises:
        ValueError: naming the first setting out of range.
    """

    epochs: int
    batch_size: int
    lr: float
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    fused: bool | None = None

    def __post_init__(self):
        check = check_number
        check(self.epochs, "epochs", 1, integer=True)
        check(self.batch_size, "batch_size", 1, integer=True)
        check(self.lr, "lr", 0, low_open=True)
        check(self.momentum, "momentum", 0, 1, high_open=True)
        check(self.weight_decay, "weight_decay", 0)
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        if self.fused not in (None, True, False):
            raise ValueError(f"fused must be None, True or False, got {self.fused!r}")

    def optimizer_for(self, params, device: torch.device) -> torch.optim.Optimizer:
        """The optimiser of this recipe over ``params``, which live on ``device``."""
        fused = device.type in ("cpu", "cuda") if self.fused is None else self.fused
        if self.optimizer == "adam":
            return torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay,
                                    fused=fused)
        return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum,
                               weight_decay=self.weight_decay, fused=fused)


def seeded_model(make_model: Callable[[], nn.Module], seed: int) -> nn.Module:
    """``make_model()`` with its initial weights drawn from ``seed``'s ``init`` stream.

    The model every trainer of this module starts seed ``seed`` from: ``make_model()`` run
    after ``torch.manual_seed(reweighting.seeds.streams(seed).init)`` inside
    ``torch.random.fork_rng``, so the global RNGs are left as they were.

    Args:
        make_model (callable): builds one model, e.g. ``lambda: mlp(40, [256, 256], 10)``.
        seed (int): the seed whose ``init`` stream (:func:`reweighting.seeds.streams`) draws
            the initial weights.

    Returns:
        nn.Module: the model ``make_model()`` returns, with those weights.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(streams(seed).init)
        return make_model()


def _order_generator(seed: int) -> torch.Generator:
    """The CPU generator of ``seed``'s minibatch order: its ``order`` stream."""
    return torch.Generator().manual_seed(streams(seed).order)


def _epoch_order(generator: torch.Generator, n: int) -> Tensor:
    """The order in which one seed visits its ``n`` samples in one epoch (CPU)."""
    return torch.randperm(n, generator=generator)


def _num_outputs(template: nn.Module, sample_shape: tuple, dtype: torch.dtype) -> int:
    """1 for a binary model (logits of shape (N,)), else the number of classes.

    Runs the model on PyTorch's ``meta`` device, which computes shapes without data, so the
    probe costs nothing and cannot mix devices.
    """
    with torch.no_grad():
        out = template(torch.empty((1, *sample_shape), dtype=dtype, device="meta"))
    return 1 if out.ndim == 1 else out.shape[-1]


def _check_labels(y: Tensor, num_outputs: int) -> None:
    """Validate every label once, so the losses can skip their per-step value checks."""
    if num_outputs == 1:
        check_binary_targets(y, name="y")
    else:
        check_class_targets(y, num_outputs, name="y")


def _check_data(x, y, seeds) -> bool:
    """Check the shapes of the training data; return True when each seed has its own set."""
    if not isinstance(x, Tensor) or not isinstance(y, Tensor):
        raise ValueError(f"x and y must be tensors, got {type(x).__name__} and "
                         f"{type(y).__name__}")
    if y.ndim == 1:
        if x.ndim < 2 or len(x) != len(y) or len(y) == 0:
            raise ValueError(f"x must have shape (N, ...) to match y of shape (N,) with N > 0, "
                             f"got x {tuple(x.shape)} and y {tuple(y.shape)}")
        return False
    if y.ndim == 2:
        if y.shape[0] != len(seeds) or y.shape[1] == 0 or x.ndim < 3 or x.shape[:2] != y.shape:
            raise ValueError(
                f"per-seed training sets need y of shape (S, N) with S = {len(seeds)} seeds and "
                f"x of shape (S, N, ...), got x {tuple(x.shape)} and y {tuple(y.shape)}")
        return True
    raise ValueError(f"y must have shape (N,) (one training set shared by every seed) or "
                     f"(S, N) (one per seed), got {tuple(y.shape)}")


def _check_seeds(seeds) -> list[int]:
    seeds = list(seeds)
    if not seeds or len(set(seeds)) != len(seeds) or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise ValueError(f"seeds must be a non-empty sequence of distinct non-negative integers, "
                         f"got {seeds!r}")
    return seeds


def _check_recipe(recipe) -> Recipe:
    if not isinstance(recipe, Recipe):
        raise ValueError(f"recipe must be a reweighting.train.Recipe, got {type(recipe).__name__}")
    return recipe


def _check_finite(x: Tensor) -> None:
    """Reject inputs with NaN or infinity, which would train silently to NaN models."""
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        nan, inf = int(torch.isnan(x).sum()), int(torch.isinf(x).sum())
        raise ValueError(f"x must be finite: it holds {nan} NaN and {inf} infinite values "
                         f"(of {x.numel()})")


def _check_epoch_loss(epoch_loss: Tensor, epoch: int, loss_names: Sequence[str],
                      seeds: Sequence[int]) -> None:
    """Stop training when a model's mean training loss of the epoch is NaN or infinite.

    One check per epoch on the accumulated losses ``(L, S)``, read on the CPU: no per-step
    synchronisation.
    """
    epoch_loss = epoch_loss.cpu()
    bad = ~torch.isfinite(epoch_loss)
    if bool(bad.any()):
        k, s = (int(i) for i in bad.nonzero()[0])
        raise FloatingPointError(
            f"the training loss {loss_names[k]!r} became {float(epoch_loss[k, s])} in epoch "
            f"{epoch} for seed {seeds[s]} ({int(bad.sum())} of {bad.numel()} models are "
            f"non-finite): lower the learning rate, or check the loss and the data")


# --- the stacked-MLP path of train_batched -----------------------------------------------------


@dataclass(frozen=True)
class _Layer:
    """One step of a stacked MLP: ``"linear"`` (with its parameter names), ``"relu"`` or
    ``"squeeze"`` (the final ``Flatten`` of a single-output model)."""

    kind: str
    weight: str = ""
    bias: str | None = None


def _stacked_plan(template: nn.Module, sample_shape: tuple) -> list[_Layer] | None:
    """The layers of ``template`` for the stacked-MLP path, or ``None`` for the generic path.

    Accepted: one ``nn.Linear``, or an ``nn.Sequential`` of ``nn.Linear`` and ``nn.ReLU``
    whose last module may be ``nn.Flatten(start_dim=-2)`` after a ``Linear`` with one output
    (the binary form of :func:`mlp`), on samples of shape ``(in_features,)``, with no buffers.
    Subclasses do not count: their ``forward`` may differ.
    """
    if len(sample_shape) != 1 or any(True for _ in template.buffers()):
        return None
    if type(template) is nn.Linear:
        modules = [("", template)]
    elif type(template) is nn.Sequential:
        modules = list(template.named_children())
    else:
        return None
    plan: list[_Layer] = []
    for i, (name, module) in enumerate(modules):
        prefix = f"{name}." if name else ""
        if type(module) is nn.Linear:
            plan.append(_Layer("linear", prefix + "weight",
                               None if module.bias is None else prefix + "bias"))
        elif type(module) is nn.ReLU:
            plan.append(_Layer("relu"))
        elif (type(module) is nn.Flatten and i == len(modules) - 1 and i > 0
              and (module.start_dim, module.end_dim) == (-2, -1)
              and type(modules[i - 1][1]) is nn.Linear and modules[i - 1][1].out_features == 1):
            plan.append(_Layer("squeeze"))
        else:
            return None
    return plan if any(layer.kind == "linear" for layer in plan) else None


def _stacked_forward(plan: list[_Layer], params: Mapping[str, Tensor], x: Tensor) -> Tensor:
    """The logits of ``M`` stacked MLPs: ``x`` of shape ``(M, B, in)``, model ``m`` on ``x[m]``.

    The activations flow as columns, ``(M, features, B)``: each ``Linear`` is one ``baddbmm``
    of the stacked weights ``(M, out, in)`` with them, plus the biases ``(M, out)``. In this
    layout the weight gradient comes out in the weights' own layout, so autograd accumulates it
    without a copy (rows, ``(M, B, in) @ (M, in, out)``, cost 13% of a step in copies). Each
    ``ReLU`` after a ``Linear`` runs in place (``baddbmm``'s backward does not need its output).

    Returns:
        Tensor: ``(M, B, out)``, or ``(M, B)`` for single-output models ending in ``Flatten``.
    """
    h = x.transpose(1, 2)  # (M, in, B), a view
    is_input, squeeze = True, False
    for layer in plan:
        if layer.kind == "linear":
            weight = params[layer.weight]
            h = (torch.bmm(weight, h) if layer.bias is None
                 else torch.baddbmm(params[layer.bias].unsqueeze(2), weight, h))
            is_input = False
        elif layer.kind == "relu":
            h = torch.relu(h) if is_input else torch.relu_(h)
        else:
            squeeze = True
    h = h.transpose(1, 2)
    return h.squeeze(-1) if squeeze else h


def _in_order(t: Tensor, orders: Tensor, per_seed: bool) -> Tensor:
    """Seed ``s``'s samples in the order ``orders[s]``: ``(S, n, ...)`` from ``t`` of shape
    ``(n, ...)`` (shared) or ``(S, n, ...)`` (per seed). One ``index_select``, measured twice as
    fast as advanced indexing for the book's data."""
    if per_seed:  # the rows of the flattened (S * n, ...) tensor
        orders = orders + torch.arange(0, t.shape[0] * t.shape[1], t.shape[1],
                                       device=orders.device)[:, None]
        t = t.flatten(0, 1)
    return t.index_select(0, orders.flatten()).unflatten(0, orders.shape)


def _cross_entropy_over_models(logits: Tensor, targets: Tensor) -> Tensor:
    with _losses.over_models():
        return _losses.cross_entropy(logits, targets)


def _bce_over_models(logits: Tensor, targets: Tensor) -> Tensor:
    return F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype),
                                              reduction="none").mean(-1)


# PyTorch's own losses read a leading dimension as part of their batch; their per-model forms
_OVER_MODELS_FORMS = ((F.cross_entropy, _cross_entropy_over_models),
                      (F.binary_cross_entropy_with_logits, _bce_over_models))


def _loss_over_models(loss_fn: LossFn, logits: Tensor, targets: Tensor) -> LossFn:
    """``loss_fn`` for ``S`` models' batches at once, ``(S, B, ...) -> (S,)``: the fastest form
    that gives ``vmap(loss_fn)``'s values on this first batch.

    The direct form, ``loss_fn`` called inside :func:`reweighting.losses.over_models` (or the
    per-model form of a PyTorch loss), serves every loss of :mod:`reweighting.losses` and anything
    built from them; a loss it does not give the same values for (one that mixes models, or
    raises on the extra dimension) keeps ``vmap``, as on the generic path.
    """
    per_model = vmap(loss_fn)
    with torch.no_grad():
        reference = per_model(logits, targets)
        direct = next((form for known, form in _OVER_MODELS_FORMS if loss_fn is known), loss_fn)
        try:
            with _losses.over_models():
                values = direct(logits, targets)
        except Exception:  # noqa: BLE001 - a loss that cannot take the model dimension: vmap
            return per_model
    if not (isinstance(values, Tensor) and values.shape == reference.shape
            and torch.allclose(values.cpu(), reference.cpu(), rtol=1e-4, atol=1e-6)):
        return per_model
    if direct is not loss_fn:  # PyTorch's loss in its per-model form: no context needed
        return direct

    def over_models(logits: Tensor, targets: Tensor) -> Tensor:
        with _losses.over_models():
            return direct(logits, targets)

    return over_models


def train_one(
    make_model: Callable[[], nn.Module],
    loss_fn: LossFn,
    x: Tensor,
    y: Tensor,
    seed: int,
    recipe: Recipe,
    *,
    device: torch.device | str | None = None,
) -> nn.Module:
    """Train one model with a plain minibatch loop: the reference for :func:`train_batched`.

    The initial weights are those ``make_model()`` draws after
    ``torch.manual_seed(reweighting.seeds.streams(seed).init)``; each epoch visits the samples
    in the order of ``torch.randperm`` drawn from a CPU generator seeded with the seed's
    ``order`` stream.

    Args:
        make_model (callable): builds the model, e.g. ``lambda: mlp(40, [256, 256], 10)``.
        loss_fn (callable): ``(logits, targets) -> scalar``, the batch mean, e.g. from
            :mod:`reweighting.losses`.
        x (Tensor): inputs of shape ``(N, ...)``, on any device.
        y (Tensor): targets of shape ``(N,)``: float in {0, 1} for a binary model, int64
            class indices otherwise; on any device.
        seed (int): the seed of the initial weights and of the minibatch order.
        recipe (Recipe): epochs, batch size and optimiser.
        device (torch.device or str, optional): where to train; default :func:`default_device`.

    Returns:
        nn.Module: the trained model, on ``device``.

    Raises:
        ValueError: for mismatched shapes, invalid labels, non-finite inputs or a bad recipe.
        FloatingPointError: when the mean training loss of an epoch is NaN or infinite.
    """
    seed = _check_seeds([seed])[0]
    recipe = _check_recipe(recipe)
    if _check_data(x, y, [seed]):
        raise ValueError(f"train_one takes one training set: y must have shape (N,), "
                         f"got {tuple(y.shape)}")
    device = torch.device(device) if device is not None else default_device()
    model = seeded_model(make_model, seed)
    _check_labels(y, _num_outputs(copy.deepcopy(model).to("meta"), tuple(x.shape[1:]), x.dtype))
    _check_finite(x)
    model = model.to(device)
    x, y = x.to(device), y.to(device)
    opt = recipe.optimizer_for(list(model.parameters()), device)
    order = _order_generator(seed)
    for epoch in range(1, recipe.epochs + 1):
        permutation = _epoch_order(order, len(x)).to(device)
        total = torch.zeros((), device=device)
        for start in range(0, len(x), recipe.batch_size):
            batch = permutation[start : start + recipe.batch_size]
            with _losses.skip_value_checks():  # the labels were checked above
                loss = loss_fn(model(x[batch]), y[batch])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach() * len(batch)
        _check_epoch_loss((total / len(x)).reshape(1, 1), epoch, ["loss_fn"], [seed])
    return model


@dataclass
class Ensemble:
    """Models trained together by :func:`train_batched`: every loss crossed with every seed.

    Attributes:
        model (nn.Module): the architecture, on the ``meta`` device (it holds no weights).
        params (dict[str, Tensor]): each parameter stacked over models, shape ``(L * S, ...)``
            on the training device; model ``k * S + s`` was trained with loss
            ``loss_names[k]`` from seed ``seeds[s]``.
        buffers (dict[str, Tensor]): the models' buffers, stacked the same way.
        loss_names (list[str]): the names of the ``L`` losses, in order.
        seeds (list[int]): the ``S`` seeds, in order.
        sample_shape (tuple): the shape of one input sample.
        history (dict[str, Tensor]): ``history["loss"]``, the mean training loss of every
            model in every epoch, shape ``(epochs, L, S)``, on the CPU.
        seconds (float): the wall time of the training loop.
        plan (list or None): the layers of the stacked-MLP path, which then also computes
            :meth:`logits`; ``None`` on the generic (``vmap``) path. Left out, it is found from
            ``model``, so an ``Ensemble`` built by hand from part of another runs as fast.
    """

    model: nn.Module
    params: dict[str, Tensor]
    buffers: dict[str, Tensor]
    loss_names: list[str]
    seeds: list[int]
    sample_shape: tuple
    history: dict[str, Tensor] = field(default_factory=dict)
    seconds: float = 0.0
    plan: list[_Layer] | None = field(default=None, repr=False)

    def __post_init__(self):
        if self.plan is None:
            self.plan = _stacked_plan(self.model, self.sample_shape)

    @property
    def stacked(self) -> bool:
        """Whether the models run as stacked MLPs (``baddbmm``) rather than through ``vmap``."""
        return self.plan is not None

    @property
    def shape(self) -> tuple[int, int]:
        """``(L, S)``: the number of losses and the number of seeds."""
        return len(self.loss_names), len(self.seeds)

    @property
    def device(self) -> torch.device:
        """The device the models' parameters live on."""
        return next(iter(self.params.values())).device

    def _forward(self, params, buffers, x):
        return functional_call(self.model, (params, buffers), (x,))

    def _seed_of_model(self) -> Tensor:
        """For each stacked model ``k * S + s``, its seed's position ``s``."""
        return torch.arange(len(self.seeds)).repeat(len(self.loss_names))

    def _forward_all(self, params, buffers, x, per_model: bool) -> Tensor:
        """Logits ``(L * S, B, ...)``; ``x`` is ``(B, ...)`` for every model or ``(L * S, B, ...)``.

        Stacked MLPs run :func:`_stacked_forward` (shared inputs are expanded without a copy);
        any other model one ``vmap`` level over all models, measured faster on the CPU than an
        outer ``vmap`` over losses that shares each seed's minibatch without copying it.
        """
        if self.plan is not None:
            if not per_model:
                x = x.expand(len(self.loss_names) * len(self.seeds), *x.shape)
            return _stacked_forward(self.plan, params, x)
        return vmap(self._forward, in_dims=(0, 0, 0 if per_model else None))(params, buffers, x)

    def _stacked_part(self, plan: list[_Layer], x: Tensor, per_model: bool) -> Tensor:
        """The first layers ``plan`` of every stacked MLP, as :meth:`_forward_all` runs all."""
        if not per_model:
            x = x.expand(len(self.loss_names) * len(self.seeds), *x.shape)
        return _stacked_forward(plan, self.params, x)

    def logits(self, x: Tensor, batch_size: int | None = None) -> Tensor:
        """The logits of every model, always returned on the CPU.

        Args:
            x (Tensor): inputs on any device, either ``(N, ...)`` (the same inputs for every
                model, e.g. a test set) or ``(S, N, ...)`` (seed ``s``'s models see
                ``x[s]``, e.g. each seed's own training set).
            batch_size (int, optional): samples evaluated at once by every model, to bound
                memory; default ``2**18`` divided by the number of models (at least 256), about
                a quarter of a GB of activations for a 256-wide layer.

        Returns:
            Tensor: logits of shape ``(L, S, N)`` for binary models or ``(L, S, N, C)``, on
            the CPU.

        Raises:
            ValueError: if ``x`` does not have one of the two shapes.
        """
        return self._evaluate(x, batch_size, self.plan)

    def _evaluate(self, x: Tensor, batch_size: int | None, plan: list[_Layer] | None) -> Tensor:
        """The outputs of ``plan`` (the whole model, or its first layers) for every model."""
        sample_ndim = len(self.sample_shape)
        per_seed = x.ndim == sample_ndim + 2
        if tuple(x.shape[x.ndim - sample_ndim:]) != tuple(self.sample_shape) or not (
                x.ndim == sample_ndim + 1 or (per_seed and x.shape[0] == len(self.seeds))):
            raise ValueError(
                f"x must have shape (N, {', '.join(map(str, self.sample_shape))}) or "
                f"({len(self.seeds)}, N, {', '.join(map(str, self.sample_shape))}), "
                f"got {tuple(x.shape)}")
        if batch_size is None:
            batch_size = max(256, 2**18 // (len(self.loss_names) * len(self.seeds)))
        if per_seed:  # model k * S + s sees x[s]
            x = x[self._seed_of_model().to(x.device)]
        axis = 1 if per_seed else 0
        chunks = []
        with torch.no_grad():
            for chunk in torch.split(x, batch_size, dim=axis):
                chunk = chunk.to(self.device)
                out = (self._forward_all(self.params, self.buffers, chunk, per_seed)
                       if plan is self.plan else self._stacked_part(plan, chunk, per_seed))
                chunks.append(out.cpu())
        return torch.cat(chunks, dim=1).unflatten(0, self.shape)

    def _last_linear(self) -> int:
        """The position in :attr:`plan` of the last ``Linear`` (the last layer, chapter 6)."""
        if self.plan is None:
            raise ValueError(
                "the features and last layer are defined for stacked MLPs (an nn.Sequential of "
                "Linear and ReLU, e.g. train.mlp), not for a model on the generic vmap path")
        return max(i for i, layer in enumerate(self.plan) if layer.kind == "linear")

    def features(self, x: Tensor, batch_size: int | None = None) -> Tensor:
        """The input of every model's last ``Linear`` layer, its penultimate features (chapter 6).

        The network up to (not including) its last layer: for :func:`mlp` the activations of
        the last hidden ``ReLU``; for a single ``nn.Linear`` the inputs themselves. The
        decoupled heads of :mod:`reweighting.heads` (refits, cRT, tau-normalisation) start
        from them, and ``heads`` on them with :meth:`last_layer` give back :meth:`logits`.

        Args:
            x (Tensor): inputs on any device, ``(N, ...)`` (shared) or ``(S, N, ...)`` (seed
                ``s``'s models see ``x[s]``), as in :meth:`logits`.
            batch_size (int, optional): as in :meth:`logits`.

        Returns:
            Tensor: ``(L, S, N, D)`` on the CPU, in the parameters' dtype.

        Raises:
            ValueError: on a bad ``x``, or for a model that is not a stacked MLP.
        """
        return self._evaluate(x, batch_size, self.plan[: self._last_linear()])

    def last_layer(self) -> tuple[Tensor, Tensor]:
        """The trained last ``Linear`` layer of every model (chapter 6), on the CPU.

        Returns:
            tuple[Tensor, Tensor]: ``(weight, bias)`` of shapes ``(L, S, K, D)`` and
            ``(L, S, K)``, PyTorch's ``(out, in)`` layout, with ``K = 1`` for a binary model;
            a layer without bias gives zeros. ``features(x) @ weight^T + bias`` are the logits.

        Raises:
            ValueError: for a model that is not a stacked MLP.
        """
        layer = self.plan[self._last_linear()]
        weight = self.parameter(layer.weight)
        bias = (self.parameter(layer.bias) if layer.bias is not None
                else weight.new_zeros(weight.shape[:-1]))
        return weight, bias

    def parameter(self, name: str) -> Tensor:
        """One parameter of every model, on the CPU.

        Args:
            name (str): a parameter name of the model, e.g. ``"weight"`` or ``"0.bias"``.

        Returns:
            Tensor: shape ``(L, S, ...)``; entry ``[k, s]`` belongs to loss ``k``, seed ``s``.
        """
        if name not in self.params:
            raise ValueError(f"name must be one of the model's parameters {list(self.params)}, "
                             f"got {name!r}")
        return self.params[name].detach().cpu().unflatten(0, self.shape)

    def select(self, loss_names: Sequence[str]) -> Ensemble:
        """The models of some of the losses, as an ``Ensemble`` of their own (chapters 2, 6).

        Args:
            loss_names (sequence of str): some of :attr:`loss_names`, in the order wanted.

        Returns:
            Ensemble: with a copy of those losses' models only, run the same way as this one.

        Raises:
            ValueError: for a name that is not one of :attr:`loss_names`.
        """
        unknown = [name for name in loss_names if name not in self.loss_names]
        if unknown or not loss_names:
            raise ValueError(f"loss_names must be some of {self.loss_names}, got "
                             f"{list(loss_names)}")
        rows = torch.cat([torch.arange(len(self.seeds)) + self.loss_names.index(name)
                          * len(self.seeds) for name in loss_names]).to(self.device)
        chosen = Ensemble(self.model,
                          {name: t.index_select(0, rows) for name, t in self.params.items()},
                          {name: t.index_select(0, rows) for name, t in self.buffers.items()},
                          list(loss_names), self.seeds, self.sample_shape, plan=self.plan)
        chosen.plan = self.plan  # None (the generic path) stays None
        return chosen

    def state_dict_of(self, loss_name: str, seed: int) -> dict[str, Tensor]:
        """The parameters and buffers of one model, on the CPU.

        Args:
            loss_name (str): one of :attr:`loss_names`.
            seed (int): one of :attr:`seeds`.

        Returns:
            dict[str, Tensor]: a ``state_dict`` for a model built by ``make_model()``.
        """
        if loss_name not in self.loss_names or seed not in self.seeds:
            raise ValueError(f"no model for loss {loss_name!r} and seed {seed!r}: losses are "
                             f"{self.loss_names}, seeds {self.seeds}")
        i = self.loss_names.index(loss_name) * len(self.seeds) + self.seeds.index(seed)
        return {name: t[i].detach().cpu().clone()
                for name, t in {**self.params, **self.buffers}.items()}


def train_batched(
    make_model: Callable[[], nn.Module],
    losses: Mapping[str, LossFn],
    x: Tensor,
    y: Tensor,
    seeds: Sequence[int],
    recipe: Recipe,
    *,
    device: torch.device | str | None = None,
    callback: Callable[[int, Ensemble], None] | None = None,
    progress: bool = True,
    stacked: bool | None = None,
) -> Ensemble:
    """Train ``len(losses) * len(seeds)`` models of one architecture in a single batched loop.

    Model (loss ``k``, seed ``s``) starts from the weights ``make_model()`` draws from the
    seed's ``init`` stream (:func:`reweighting.seeds.streams`) and sees the minibatches in the
    seed's own order, exactly as :func:`train_one` with the same arguments would train it on seed
    ``s``'s data, so the losses are compared on paired seeds. One optimiser steps the stacked
    parameters.

    The book's MLPs (:func:`mlp`) train on the stacked-MLP path (see the module docstring):
    every layer of every model in one ``baddbmm``, each seed's epoch of data gathered once in
    its order and sliced per step, and the losses evaluated on the ``(S, B, ...)`` logits of
    all seeds at once where they take a leading model dimension
    (:func:`reweighting.losses.over_models`; decided per loss on the first batch by comparing
    with ``vmap``). Other models take the generic ``vmap`` path. Both give the same models as
    :func:`train_one`.

    Args:
        make_model (callable): builds one model; it must be deterministic (no dropout).
        losses (Mapping[str, callable]): name -> ``(logits, targets) -> scalar`` (the batch
            mean), as in :mod:`reweighting.losses`. They run inside
            :func:`reweighting.losses.skip_value_checks`, either on all seeds' batches at once (see
            above) or under ``torch.func.vmap`` (one model's batch at a time), so they must
            not branch on tensor values; the labels are validated once up front instead.
        x (Tensor): inputs on any device: ``(N, ...)``, one training set for every seed, or
            ``(S, N, ...)``, seed ``s``'s own set in ``x[s]``.
        y (Tensor): targets matching ``x``: ``(N,)`` or ``(S, N)``; float in {0, 1} for a
            binary model (logits of shape ``(N,)``), int64 class indices otherwise.
        seeds (Sequence[int]): ``S`` distinct seeds.
        recipe (Recipe): epochs, batch size and optimiser.
        device (torch.device or str, optional): where to train; default
            :func:`default_device`.
        callback (callable, optional): ``callback(epoch, ensemble)`` after every epoch
            (1-based), e.g. to record test metrics with :meth:`Ensemble.logits`.
        progress (bool): show a tqdm bar over the epochs. Default True.
        stacked (bool, optional): ``None`` (default) takes the stacked-MLP path whenever the
            model allows it; ``False`` forces the generic ``vmap`` path (the benchmark's and
            the tests' reference); ``True`` requires the stacked path.

    Returns:
        Ensemble: the trained models, their training-loss history and wall time.

    Raises:
        ValueError: for mismatched shapes, invalid or non-finite data, repeated seeds, no
            losses, a bad recipe, or ``stacked=True`` for a model the stacked path cannot run.
        FloatingPointError: when a model's mean training loss of an epoch is NaN or infinite,
            naming the loss, the seed and the epoch (checked once per epoch).
    """
    seeds = _check_seeds(seeds)
    recipe = _check_recipe(recipe)
    per_seed = _check_data(x, y, seeds)
    if not losses:
        raise ValueError("losses must map at least one name to a loss function")
    if stacked not in (None, True, False):
        raise ValueError(f"stacked must be None, True or False, got {stacked!r}")
    device = torch.device(device) if device is not None else default_device()
    sample_shape = tuple(x.shape[2:] if per_seed else x.shape[1:])
    models = [seeded_model(make_model, seed) for seed in seeds]
    template = copy.deepcopy(models[0]).to("meta")
    _check_labels(y, _num_outputs(template, sample_shape, x.dtype))
    _check_finite(x)
    plan = None if stacked is False else _stacked_plan(template, sample_shape)
    if stacked and plan is None:
        raise ValueError("stacked=True needs an nn.Sequential of Linear and ReLU (optionally "
                         f"ending in Flatten of one output) on 1-D samples, got "
                         f"{type(template).__name__} on samples of shape {sample_shape}")

    # every loss starts from the same seeded initial weights: stack L copies of the S models
    params, buffers = stack_module_state([m for _ in losses for m in models])
    params = {k: v.detach().to(device).requires_grad_() for k, v in params.items()}
    buffers = {k: v.to(device) for k, v in buffers.items()}
    ensemble = Ensemble(template, params, buffers, list(losses), seeds, sample_shape, plan=plan)
    if plan is None:
        ensemble.plan = None  # the generic path, also for the ensemble's logits
    opt = recipe.optimizer_for(list(params.values()), device)
    loss_fns = list(losses.values())
    per_model_losses: list[LossFn | None] = (
        [None] * len(loss_fns) if plan is not None  # chosen on the first batch
        else [vmap(fn) for fn in loss_fns])  # over seeds: (S, B) -> (S,)
    x, y = x.to(device), y.to(device)
    n = y.shape[-1]
    num_losses = len(loss_fns)
    model_rows = ensemble._seed_of_model().to(device)[:, None]  # model k * S + s -> s
    seed_rows = torch.arange(len(seeds), device=device)[:, None]
    orders = [_order_generator(seed) for seed in seeds]
    epoch_losses = []
    started = time.perf_counter()
    for epoch in tqdm(range(1, recipe.epochs + 1), desc=f"training {num_losses} x {len(seeds)}",
                      disable=not progress, mininterval=2.0, leave=False):
        orders_now = torch.stack([_epoch_order(g, n) for g in orders]).to(device)  # (S, n)
        if plan is not None:  # each seed's epoch, gathered once in its order: (S, n, ...)
            x_epoch, y_epoch = _in_order(x, orders_now, per_seed), _in_order(y, orders_now,
                                                                              per_seed)
        total = torch.zeros(ensemble.shape, device=device)
        for start in range(0, n, recipe.batch_size):
            if plan is not None:
                xb = x_epoch[:, start : start + recipe.batch_size]  # (S, B, in), a view
                yb = y_epoch[:, start : start + recipe.batch_size]  # (S, B)
                if num_losses > 1:  # model k * S + s sees seed s's batch
                    xb = xb.expand(num_losses, *xb.shape).flatten(0, 1)
                logits = _stacked_forward(plan, params, xb)
            else:
                batch = orders_now[:, start : start + recipe.batch_size]  # (S, B)
                model_batch = batch[model_rows.squeeze(1)]  # (L * S, B): each model's batch
                xb = x[model_rows, model_batch] if per_seed else x[model_batch]
                yb = y[seed_rows, batch] if per_seed else y[batch]  # (S, B), shared by losses
                logits = ensemble._forward_all(params, buffers, xb, per_model=True)
            logits = logits.unflatten(0, ensemble.shape)  # (L, S, B, ...)
            with _losses.skip_value_checks():  # the labels were checked above
                for k, fn in enumerate(loss_fns):
                    if per_model_losses[k] is None:
                        per_model_losses[k] = _loss_over_models(fn, logits[k], yb)
                batch_losses = (per_model_losses[0](logits[0], yb)[None] if num_losses == 1
                                else torch.stack([fn(logits[k], yb) for k, fn in
                                                  enumerate(per_model_losses)]))  # (L, S)
            opt.zero_grad(set_to_none=True)
            batch_losses.sum().backward()
            opt.step()
            total.add_(batch_losses.detach(), alpha=yb.shape[1])
        epoch_losses.append(total / n)
        _check_epoch_loss(epoch_losses[-1], epoch, ensemble.loss_names, seeds)
        if callback is not None:
            callback(epoch, ensemble)
    for t in params.values():
        t.requires_grad_(False)
    ensemble.history["loss"] = torch.stack(epoch_losses).cpu()
    ensemble.seconds = time.perf_counter() - started
    return ensemble
