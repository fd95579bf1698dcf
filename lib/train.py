"""Devices, the ``BOOK_SCALE`` switch, and a trainer that trains many models at once.

Small models trained one at a time leave a GPU idle, and the book wants many seeds per
configuration (DESIGN.md section 5). :func:`train_batched` therefore stacks the parameters of
all models (every seed of every loss) into one set of tensors with
``torch.func.stack_module_state``, runs them with ``torch.func.vmap`` over
``torch.func.functional_call``, and steps one ordinary PyTorch optimiser on the stacked tensors.
Because the summed loss of independent models has, for each model, exactly that model's
gradient, and Adam and SGD update every parameter entry independently, this is the same
computation as the plain per-model loop :func:`train_one` (which the tests check), only batched.

Every chapter trains its seeds with :func:`train_batched`; :func:`train_one` exists to teach and
to test it.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap
from tqdm import tqdm

from . import losses as _losses

__all__ = [
    "SCALES",
    "book_scale",
    "by_scale",
    "default_device",
    "mlp",
    "train_one",
    "train_batched",
    "Ensemble",
]

SCALES = ("quick", "full")
LossFn = Callable[[Tensor, Tensor], Tensor]


def default_device() -> torch.device:
    """``cuda`` when PyTorch sees a GPU, else ``cpu``."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def book_scale() -> str:
    """The scale of every experiment: ``$BOOK_SCALE`` if set, else ``full`` on CUDA, else ``quick``.

    ``quick`` runs each chapter on 2 CPU cores in a minute or two; ``full`` uses more data,
    at least 50 seeds per configuration and the sweeps, and is meant for a GPU.
    """
    scale = os.environ.get("BOOK_SCALE", "").strip().lower()
    if not scale:
        return "full" if torch.cuda.is_available() else "quick"
    if scale not in SCALES:
        raise ValueError(f"BOOK_SCALE must be one of {SCALES}, got {os.environ['BOOK_SCALE']!r}")
    return scale


def by_scale(quick, full, scale: str | None = None):
    """Return ``quick`` or ``full`` according to ``scale`` (default :func:`book_scale`)."""
    scale = book_scale() if scale is None else scale
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    return quick if scale == "quick" else full


def mlp(in_features: int, hidden: Sequence[int], num_outputs: int) -> nn.Sequential:
    """A ReLU multilayer perceptron ``in_features -> hidden... -> num_outputs``.

    With ``num_outputs=1`` it returns one logit per sample, shape ``(N,)``, the form the binary
    losses of :mod:`lib.losses` take; otherwise logits of shape ``(N, num_outputs)``.
    """
    sizes = [in_features, *hidden]
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(a, b), nn.ReLU()]
    layers.append(nn.Linear(sizes[-1], num_outputs))
    if num_outputs == 1:
        layers.append(nn.Flatten(start_dim=-2))  # (N, 1) -> (N,)
    return nn.Sequential(*layers)


def _seeded_model(make_model: Callable[[], nn.Module], seed: int) -> nn.Module:
    """``make_model()`` with its initial weights drawn from ``seed``, leaving global RNGs alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make_model()


def _make_optimizer(params, optimizer: str, lr: float, weight_decay: float, momentum: float,
                    fused: bool = False):
    # fused=True updates every parameter tensor in one kernel: the same arithmetic as the
    # default (foreach) implementation up to float rounding, and faster on a GPU
    if optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=fused)
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay,
                               fused=fused)
    raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")


def _check_training_args(x, y, seeds, epochs, batch_size, lr):
    if not isinstance(x, Tensor) or not isinstance(y, Tensor):
        raise ValueError("x and y must be tensors")
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"x and y must hold the same positive number of samples, got "
                         f"{len(x)} and {len(y)}")
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    if len(seeds) == 0 or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be a non-empty sequence of distinct integers, got {seeds!r}")


def _check_labels(y: Tensor, num_outputs: int) -> None:
    """Validate the whole label set once, so the losses can skip their per-step value checks."""
    if num_outputs == 1:
        _losses.check_binary_targets(y, name="y")
    else:
        _losses.check_class_targets(y, num_outputs, name="y")


def train_one(
    make_model: Callable[[], nn.Module],
    loss_fn: LossFn,
    x: Tensor,
    y: Tensor,
    seed: int,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    optimizer: str = "adam",
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    fused: bool = False,
) -> nn.Module:
    """Train one model with a plain minibatch loop: the reference for :func:`train_batched`.

    The initial weights come from ``torch.manual_seed(seed)`` before ``make_model()``; each
    epoch visits the samples in the order of ``torch.randperm`` drawn from a generator seeded
    with ``seed``. Runs on the device of ``x``. ``fused`` as in :func:`train_batched`.
    """
    _check_training_args(x, y, [seed], epochs, batch_size, lr)
    model = _seeded_model(make_model, seed).to(x.device)
    opt = _make_optimizer(model.parameters(), optimizer, lr, weight_decay, momentum, fused)
    order = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        permutation = torch.randperm(len(x), generator=order).to(x.device)
        for start in range(0, len(x), batch_size):
            batch = permutation[start : start + batch_size]
            loss = loss_fn(model(x[batch]), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model


@dataclass
class Ensemble:
    """Models trained together by :func:`train_batched`: every loss crossed with every seed.

    ``params`` maps each parameter name to a tensor of shape ``(L * S, ...)``; model
    ``k * S + s`` was trained with loss ``loss_names[k]`` from seed ``seeds[s]``.
    ``history["loss"]`` is the mean training loss per epoch, shape ``(epochs, L, S)``.
    """

    model: nn.Module
    params: dict[str, Tensor]
    buffers: dict[str, Tensor]
    loss_names: list[str]
    seeds: list[int]
    history: dict[str, Tensor] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def shape(self) -> tuple[int, int]:
        """``(number of losses, number of seeds)``."""
        return len(self.loss_names), len(self.seeds)

    def _forward(self, params, buffers, x):
        return functional_call(self.model, (params, buffers), (x,))

    def logits(self, x: Tensor, batch_size: int = 65536) -> Tensor:
        """Logits of every model on the same inputs ``x``: shape ``(L, S, N, ...)``."""
        device = next(iter(self.params.values())).device
        with torch.no_grad():
            chunks = [
                vmap(self._forward, in_dims=(0, 0, None))(
                    self.params, self.buffers, x[i : i + batch_size].to(device)
                )
                for i in range(0, len(x), batch_size)
            ]
        out = torch.cat(chunks, dim=1)
        return out.reshape(*self.shape, *out.shape[1:])

    def state_dict_of(self, loss_name: str, seed: int) -> dict[str, Tensor]:
        """The parameters and buffers of one model, as a ``state_dict`` for ``model``'s class."""
        k, s = self.loss_names.index(loss_name), self.seeds.index(seed)
        i = k * len(self.seeds) + s
        return {name: t[i].detach().clone() for name, t in {**self.params, **self.buffers}.items()}


def train_batched(
    make_model: Callable[[], nn.Module],
    losses: Mapping[str, LossFn],
    x: Tensor,
    y: Tensor,
    seeds: Sequence[int],
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    optimizer: str = "adam",
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    device: torch.device | str | None = None,
    fused: bool | None = None,
    callback: Callable[[int, Ensemble], None] | None = None,
    progress: bool = True,
    description: str = "training",
) -> Ensemble:
    """Train ``len(losses) * len(seeds)`` models of one architecture in a single batched loop.

    Model (loss ``k``, seed ``s``) starts from the weights ``make_model()`` draws after
    ``torch.manual_seed(seeds[s])`` and sees the minibatches in the seed's own order, exactly as
    :func:`train_one` with the same arguments, so losses are compared on paired seeds. The
    stacked parameters are updated by one ``torch.optim`` optimiser (``"adam"`` or ``"sgd"``).

    ``losses`` maps a name to a function ``(logits, targets) -> scalar``, the batch mean, as in
    :mod:`lib.losses`; it is called under ``torch.func.vmap`` (one model's batch at a time), so
    it must not branch on tensor values. The labels ``y`` are validated once up front, and the
    losses run inside :func:`lib.losses.value_checks_off`. Models must be deterministic (no
    dropout). ``callback(epoch, ensemble)``, if given, runs after every epoch (1-based), e.g. to
    record test metrics. A tqdm bar shows the epochs unless ``progress=False``.

    ``fused`` selects PyTorch's fused optimiser kernels (one kernel per step for all parameter
    tensors); the default ``None`` uses them on CUDA, where they are faster, and not on the
    CPU, so that CPU results stay those of the default (foreach) kernels, which
    :func:`train_one` uses too (the tests check agreement to 1e-5). ``benchmarks/trainer.py``
    measures all of these variants.
    """
    seeds = list(seeds)
    _check_training_args(x, y, seeds, epochs, batch_size, lr)
    if not losses:
        raise ValueError("losses must map at least one name to a loss function")
    device = torch.device(device) if device is not None else default_device()
    models = [_seeded_model(make_model, seed) for seed in seeds]
    num_outputs = _num_outputs(models[0], x[:1])
    _check_labels(y, num_outputs)
    # every loss starts from the same seeded initial weights: stack L copies of the S models
    params, buffers = stack_module_state([m for _ in losses for m in models])
    params = {k: v.to(device).detach().requires_grad_() for k, v in params.items()}
    buffers = {k: v.to(device) for k, v in buffers.items()}
    template = copy.deepcopy(models[0]).to("meta")
    ensemble = Ensemble(template, params, buffers, list(losses), seeds)
    fused = device.type == "cuda" if fused is None else fused
    opt = _make_optimizer(list(params.values()), optimizer, lr, weight_decay, momentum, fused)
    forward = vmap(ensemble._forward)
    per_model_losses = [vmap(fn) for fn in losses.values()]
    x, y = x.to(device), y.to(device)
    num_losses, num_seeds, n = len(losses), len(seeds), len(x)
    orders = [torch.Generator().manual_seed(seed) for seed in seeds]
    epoch_losses = []
    started = time.perf_counter()
    with _losses.value_checks_off():
        for epoch in tqdm(range(1, epochs + 1), desc=description, disable=not progress,
                          mininterval=2.0, leave=False):
            permutations = torch.stack([torch.randperm(n, generator=g) for g in orders])
            permutations = permutations.to(device).repeat(num_losses, 1)  # (L*S, n)
            total = torch.zeros(num_losses, num_seeds, device=device)
            for start in range(0, n, batch_size):
                batch = permutations[:, start : start + batch_size]
                logits = forward(params, buffers, x[batch])
                logits = logits.reshape(num_losses, num_seeds, *logits.shape[1:])
                targets = y[batch].reshape(num_losses, num_seeds, -1)
                batch_losses = torch.stack(
                    [fn(logits[k], targets[k]) for k, fn in enumerate(per_model_losses)]
                )  # (L, S)
                opt.zero_grad(set_to_none=True)
                batch_losses.sum().backward()
                opt.step()
                total += batch_losses.detach() * batch.shape[1]
            epoch_losses.append(total / n)
            if callback is not None:
                callback(epoch, ensemble)
    for t in params.values():
        t.requires_grad_(False)
    ensemble.history["loss"] = torch.stack(epoch_losses).cpu()
    ensemble.seconds = time.perf_counter() - started
    return ensemble


def _num_outputs(model: nn.Module, x: Tensor) -> int:
    """1 for a binary model (logits of shape (N,)), else the number of classes."""
    with torch.no_grad():
        out = model(x)
    return 1 if out.ndim == 1 else out.shape[-1]
