"""What each option of the stacked trainer's step is worth, measured one at a time (issue 16).

    python benchmarks/trainer_options.py                  # the book's 40-256-256-10 MLP
    python benchmarks/trainer_options.py --hidden 32 32   # a small MLP, where overhead dominates

``reweighting.train.train_batched`` trains the book's MLPs on its stacked path. This script writes
that path's training loop out (a few lines: the library's public ``train.seeded_model`` and
``Recipe.optimizer_for``, and the stacked forward pass and epoch gather written out below, as
the library computes them) so that one option at a time can be changed, and times every variant
on the same data, interleaved over ``--repeats`` rounds after one warm-up round (medians):

- ``library``: ``train_batched`` itself, the reference (the written-out loop must match it);
- ``written out``: the loop below with the library's choices (activations as columns, fused
  Adam, gradients set to ``None`` between steps, the default thread count);
- ``foreach Adam``: ``fused=False``;
- ``keep gradient buffers``: ``zero_grad(set_to_none=False)``;
- ``flush denormals``: ``torch.set_flush_denormal(True)`` around the run;
- ``1 thread``: ``torch.set_num_threads(1)`` around the run;
- ``rows layout``: activations as rows, ``(M, B, in) @ (M, in, out)``, the first layout tried;
- ``torch.compile``: the forward pass and loss compiled with ``torch.compile`` (its compile
  time is reported apart and left out of the median).

Each line reports seconds per model and the ratio to ``written out``; below 1 is faster.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))
from reweighting import data, report, train  # noqa: E402


def layers(model: nn.Sequential) -> list[tuple[str, str | None]]:
    """The steps of a :func:`reweighting.train.mlp` of several outputs: ``("linear", name)``
    for each ``nn.Linear`` (its parameters are ``name.weight`` and ``name.bias``) and
    ``("relu", None)`` for each ``nn.ReLU``."""
    kinds = {nn.Linear: "linear", nn.ReLU: "relu"}
    steps = [(kinds.get(type(module)), name) for name, module in model.named_children()]
    if any(kind is None for kind, _ in steps):
        raise ValueError(f"the benchmark takes an MLP of Linear and ReLU only, got {model}")
    return [(kind, name if kind == "linear" else None) for kind, name in steps]


def columns_forward(plan, params, x):
    """The stacked MLP as the library runs it, activations as columns ``(M, features, B)``:
    ``baddbmm(b, W, h)``, the weight gradient in the weights' own layout; each ReLU in place."""
    h = x.transpose(1, 2)  # (M, in, B), a view
    for i, (kind, name) in enumerate(plan):
        if kind == "linear":
            h = torch.baddbmm(params[f"{name}.bias"].unsqueeze(2), params[f"{name}.weight"], h)
        else:
            h = torch.relu(h) if i == 0 else torch.relu_(h)
    return h.transpose(1, 2)


def rows_forward(plan, params, x):
    """The stacked MLP with activations as rows: ``baddbmm(b, h, W^T)``; autograd then copies
    every weight gradient into the weights' layout."""
    h = x
    for i, (kind, name) in enumerate(plan):
        if kind == "linear":
            h = torch.baddbmm(params[f"{name}.bias"].unsqueeze(1), h,
                              params[f"{name}.weight"].transpose(1, 2))
        else:
            h = torch.relu(h) if i == 0 else torch.relu_(h)
    return h


def in_order(t, orders):
    """Seed ``s``'s samples in the order ``orders[s]``, ``(S, n, ...)`` from the shared ``t``:
    one ``index_select``, as the library gathers each epoch."""
    return t.index_select(0, orders.flatten()).unflatten(0, orders.shape)


def written_out(make_model, x, y, seeds, recipe, *, forward=columns_forward, set_to_none=True,
                compiled=False):
    """The stacked path of ``train_batched`` for one loss (cross-entropy), written out."""
    models = [train.seeded_model(make_model, seed) for seed in seeds]
    params, _ = torch.func.stack_module_state(models)
    params = {k: v.detach().requires_grad_() for k, v in params.items()}
    plan = layers(models[0])
    opt = recipe.optimizer_for(list(params.values()), torch.device("cpu"))

    def step_loss(params, xb, yb):
        logits = forward(plan, params, xb)  # (S, B, C)
        return F.cross_entropy(logits.transpose(1, 2), yb, reduction="none").mean(-1).sum()

    if compiled:
        step_loss = torch.compile(step_loss)
    orders = [torch.Generator().manual_seed(seed) for seed in seeds]
    n = len(y)
    for _ in range(recipe.epochs):
        order = torch.stack([torch.randperm(n, generator=g) for g in orders])
        x_epoch, y_epoch = in_order(x, order), in_order(y, order)
        for start in range(0, n, recipe.batch_size):
            loss = step_loss(params, x_epoch[:, start : start + recipe.batch_size],
                             y_epoch[:, start : start + recipe.batch_size])
            opt.zero_grad(set_to_none=set_to_none)
            loss.backward()
            opt.step()
    return params


class switched:
    """A global torch setting changed for the duration of a ``with`` block."""

    def __init__(self, get, set_, value):
        self.get, self.set, self.value = get, set_, value

    def __enter__(self):
        self.before = self.get()
        self.set(self.value)

    def __exit__(self, *exc):
        self.set(self.before)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=24)
    parser.add_argument("--samples", type=int, default=15000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile row")
    args = parser.parse_args(argv)
    pool = data.load_mnist1d(num_samples=args.samples)
    keep = data.long_tailed_indices(pool.y_train, data.long_tailed_counts(1000, 10, 100))
    x, y = pool.x_train[keep], pool.y_train[keep]
    seeds = list(range(args.models))
    make_model = lambda: train.mlp(40, args.hidden, 10)  # noqa: E731
    recipe = {fused: train.Recipe(args.epochs, args.batch_size, lr=1e-3, fused=fused)
              for fused in (True, False)}
    threads = torch.get_num_threads()
    print(f"device {report.device_name(torch.device('cpu'))}, torch {torch.__version__}: "
          f"{args.models} models (MLP 40-{'-'.join(map(str, args.hidden))}-10), {len(y)} "
          f"samples, {args.epochs} epochs, batch {args.batch_size}, median of {args.repeats}")

    def run(**kwargs):
        return lambda: written_out(make_model, x, y, seeds, recipe[kwargs.pop("fused", True)],
                                   **kwargs)

    def under(setting, fn):
        def go():
            with setting:
                return fn()
        return go

    variants = {
        "library": lambda: train.train_batched(make_model, {"ce": F.cross_entropy}, x, y, seeds,
                                               recipe[True], progress=False),
        "written out": run(),
        "foreach Adam": run(fused=False),
        "keep gradient buffers": run(set_to_none=False),
        "flush denormals": under(switched(lambda: False, torch.set_flush_denormal, True), run()),
        "1 thread": under(switched(torch.get_num_threads, torch.set_num_threads, 1), run()),
        "rows layout": run(forward=rows_forward),
    }
    if not args.no_compile:
        started = time.perf_counter()
        try:
            written_out(make_model, x[:256], y[:256], seeds, train.Recipe(1, args.batch_size,
                        lr=1e-3), compiled=True)
            print(f"torch.compile: first (compiling) run {time.perf_counter() - started:.1f} s")
            variants["torch.compile"] = run(compiled=True)
        except Exception as error:  # noqa: BLE001 - report why compile is unavailable here
            print(f"torch.compile failed here: {type(error).__name__}: {str(error)[:300]}")
    times = {name: [] for name in variants}
    for repeat in range(args.repeats + 1):  # round 0 warms every variant up and is not counted
        for name, fn in variants.items():
            started = time.perf_counter()
            fn()
            if repeat:
                times[name].append((time.perf_counter() - started) / args.models)
    assert torch.get_num_threads() == threads
    base = statistics.median(times["written out"])
    print(f"\n{'variant':24s} {'s per model':>12s} {'vs written out':>15s}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:24s} {median:12.4f} {median / base:14.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
