"""How much faster is training many seeds at once? Plain loop against the batched trainer.

    python benchmarks/trainer.py                       # CPU, quick sizes (about a minute)
    python benchmarks/trainer.py --device cuda --models 100 --n-max 3200 --epochs 60

Trains the same models (one per seed: the 40-256-256-10 MLP of chapters 3 and 4 with
cross-entropy on long-tailed MNIST-1D, Adam) in one run on one device, three ways:

(a) ``plain``: ``lib.train.train_one``, one model after another (timed on the first
    ``--plain-models`` seeds; its time per model does not depend on how many there are);
(b) ``batched``: ``lib.train.train_batched`` with the default (foreach) optimiser;
(c) ``batched+fused``: the same with PyTorch's fused optimiser kernels (``fused=True``), the
    default of ``train_batched`` on CUDA.

It prints the time per model, the speed-up over the plain loop and the samples per second
(models x samples x epochs / seconds), and checks that the batched variants train the same
models as the plain loop: the largest parameter difference between (a) and (b), and between
(c) and the plain loop with the same fused optimiser (one seed, untimed), must stay below
``--tolerance``. (Fused and foreach kernels round differently, and over many steps the two
drift apart like any two float orderings; that drift is printed for information.)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from lib import data, report, train  # noqa: E402


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def largest_difference(ensemble: train.Ensemble, seed: int, model: torch.nn.Module) -> float:
    """Largest absolute difference between one stacked model and a separately trained one."""
    stacked = ensemble.state_dict_of("cross-entropy", seed)
    return max(float((stacked[k] - v).abs().max()) for k, v in model.state_dict().items())


def run(args) -> dict:
    device = torch.device(args.device)
    split = data.long_tailed_split(data.load_mnist1d(num_samples=args.samples), args.n_max,
                                   args.ratio)
    x, y = split.x_train.to(device), split.y_train.to(device)
    make_model = lambda: train.mlp(40, args.hidden, 10)  # noqa: E731
    sizes = [40, *args.hidden, 10]
    # multiply-adds per sample of one forward pass; forward + backward cost about 3 times that,
    # at 2 floating-point operations each
    flops_per_sample = 6 * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    common = dict(epochs=args.epochs, batch_size=args.batch_size, lr=1e-3)
    seeds = list(range(args.models))
    print(f"device {report.device_name(device)}: {args.models} models "
          f"(MLP {'-'.join(map(str, sizes))}), {len(y)} samples, {args.epochs} epochs, "
          f"batch {args.batch_size}; torch {torch.__version__}")

    # warm up every code path once (allocators, thread pools, CUDA context, kernel caches), so
    # that one-off start-up costs do not count against whichever variant runs first
    warm = dict(epochs=1, batch_size=args.batch_size, lr=1e-3)
    train.train_one(make_model, F.cross_entropy, x[:512], y[:512], 0, **warm)
    for fused in (False, True):
        train.train_batched(make_model, {"cross-entropy": F.cross_entropy}, x[:512], y[:512],
                            [0, 1], device=device, fused=fused, progress=False, **warm)

    rows, plain_models = {}, []
    _synchronize(device)
    started = time.perf_counter()
    for seed in seeds[: args.plain_models]:
        plain_models.append(train.train_one(make_model, F.cross_entropy, x, y, seed, **common))
    _synchronize(device)
    rows["plain"] = (time.perf_counter() - started) / args.plain_models

    ensembles = {}
    for name, fused in (("batched", False), ("batched+fused", True)):
        _synchronize(device)
        started = time.perf_counter()
        ensembles[name] = train.train_batched(make_model, {"cross-entropy": F.cross_entropy}, x,
                                              y, seeds, device=device, fused=fused,
                                              progress=False, **common)
        _synchronize(device)
        rows[name] = (time.perf_counter() - started) / args.models

    plain_fused = train.train_one(make_model, F.cross_entropy, x, y, seeds[0], fused=True,
                                  **common)
    differences = {
        "plain vs batched": max(largest_difference(ensembles["batched"], seed, model)
                                for seed, model in zip(seeds, plain_models)),
        "plain+fused vs batched+fused": largest_difference(ensembles["batched+fused"], seeds[0],
                                                           plain_fused),
    }
    drift = max(float((ensembles["batched"].params[k] - ensembles["batched+fused"].params[k])
                      .abs().max()) for k in ensembles["batched"].params)
    samples = len(y) * args.epochs
    print(f"\n{'variant':15s} {'s per model':>12s} {'speed-up':>9s} {'samples/s':>12s} "
          f"{'GFLOP/s':>8s}")
    for name, seconds in rows.items():
        print(f"{name:15s} {seconds:12.3f} {rows['plain'] / seconds:8.1f}x "
              f"{samples / seconds:12.0f} {samples / seconds * flops_per_sample / 1e9:8.1f}")
    print()
    for name, difference in differences.items():
        print(f"largest parameter difference, {name}: {difference:.1e}")
    print(f"(for information: foreach vs fused rounding drift after training: {drift:.1e})")
    return {"seconds_per_model": rows, "differences": differences}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=str(train.default_device()))
    parser.add_argument("--models", type=int, default=24, help="seeds trained by (b) and (c)")
    parser.add_argument("--plain-models", type=int, default=2,
                        help="seeds timed with the plain loop (a)")
    parser.add_argument("--samples", type=int, default=15000,
                        help="size of the generated MNIST-1D (train + test)")
    parser.add_argument("--n-max", type=int, default=1000, help="samples of the largest class")
    parser.add_argument("--ratio", type=float, default=100, help="imbalance ratio")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256],
                        help="hidden layer widths of the MLP (default 256 256)")
    parser.add_argument("--tolerance", type=float, default=1e-3,
                        help="largest parameter difference allowed between the variants")
    args = parser.parse_args(argv)
    if not 1 <= args.plain_models <= args.models:
        parser.error("--plain-models must be between 1 and --models")
    result = run(args)
    worst = max(result["differences"].values())
    if worst > args.tolerance:
        print(f"FAIL: the variants differ by {worst:.1e} > --tolerance {args.tolerance:g}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
