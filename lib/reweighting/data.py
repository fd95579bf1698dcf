"""The book's data sets, all generated offline (DESIGN.md section 4).

- MNIST-1D (Greydanus 2020) through the ``mnist1d`` package's procedural ``make_dataset``,
  cached on disk outside the repository (:func:`cache_dir`);
- long-tailed class counts and subsets (Cao et al. 2019; Menon et al. 2020), chapters 3 to 5;
- an imbalanced one-vs-rest binary task, chapters 2 and 5;
- fresh MNIST-1D samples and :func:`per_seed` stacking, so each seed has its own data;
- Gaussian mixtures whose Bayes-optimal classifier is known in closed form, chapter 3.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .validation import check_number

__all__ = [
    "Split",
    "cache_dir",
    "load_mnist1d",
    "mnist1d_sample",
    "per_seed",
    "load_digits_split",
    "long_tailed_counts",
    "long_tailed_indices",
    "one_vs_rest",
    "one_vs_rest_split",
    "with_label_noise",
    "GaussianMixture",
    "gaussian_bayes_linear_rule",
    "linear_rule_class_errors",
    "linear_rule_balanced_error",
]


@dataclass(frozen=True)
class Split:
    """A train/test split, what every loader of this module returns (chapters 1 to 5).

    Args:
        x_train (Tensor): training features, shape ``(N, d)``, float32 for MNIST-1D.
        y_train (Tensor): training labels, shape ``(N,)``, int64 class indices.
        x_test (Tensor): test features, shape ``(M, d)``.
        y_test (Tensor): test labels, shape ``(M,)``.
    """

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor


def cache_dir() -> Path:
    """Folder for generated data sets: ``$BOOK_DATA_DIR``, else ``~/.cache/reweighting-book``.

    ``$XDG_CACHE_HOME`` replaces ``~/.cache`` when it is set. Used by :func:`load_mnist1d`
    (chapters 1 to 5).

    Returns:
        pathlib.Path: the folder; it is created on demand, not here.
    """
    if os.environ.get("BOOK_DATA_DIR"):
        return Path(os.environ["BOOK_DATA_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "reweighting-book"


def load_mnist1d(
    num_samples: int = 5000, seed: int = 42, train_split: float = 0.8, directory=None
) -> Split:
    """MNIST-1D (Greydanus 2020): 10 classes, 40 features, generated offline and cached.

    The data set of chapters 1 to 5. With the defaults this is the published data set (4,000
    training and 1,000 test samples, seed 42), on which logistic regression reaches about 32%
    test accuracy, an MLP 68% and a CNN 94%. Generation is single-threaded Python (about 2 s
    per 10,000 samples); the result is saved under ``directory`` and reused. The cache is
    derived data: a cached file that cannot be read (e.g. truncated by a full disk) is
    regenerated, with one line on stderr naming it. The generator's seeding of Python's and
    NumPy's global random state is undone afterwards.

    Args:
        num_samples (int): training plus test samples, a positive multiple of 10 (the generator
            makes the same number of each digit). Default: ``5000``.
        seed (int): the generator's seed. Default: ``42``.
        train_split (float): the training fraction, in (0, 1). Default: ``0.8``.
        directory (str, pathlib.Path or None): the cache folder; ``None`` means
            :func:`cache_dir`. Default: ``None``.

    Returns:
        Split: float32 features of shape ``(n, 40)`` and int64 labels in [0, 10).

    Raises:
        ValueError: on a bad ``num_samples`` or ``train_split``.
        RuntimeError: if the data are not cached and the ``mnist1d`` package is missing.
    """
    num_samples = check_number(num_samples, "num_samples", 10, integer=True)
    if num_samples % 10:
        raise ValueError(f"num_samples must be a positive multiple of 10, got {num_samples!r}")
    train_split = check_number(train_split, "train_split", 0.0, 1.0, low_open=True,
                               high_open=True)
    folder = Path(directory) if directory is not None else cache_dir()
    key = _mnist1d_key(num_samples, seed, train_split)
    path = folder / f"mnist1d_n{num_samples}_seed{seed}_split{train_split:g}_{key}.npz"
    if path.exists():
        try:
            with np.load(path) as cached:
                return _split_of({name: cached[name] for name in _MNIST1D_ARRAYS})
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as error:
            reason = " ".join(f"{type(error).__name__}: {error}".split())  # one line
            print(f"reweighting.data: the cached MNIST-1D file {path} is unreadable ({reason}); "
                  "regenerating it", file=sys.stderr)
    arrays = _generate_mnist1d(num_samples, seed, train_split)
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.stem + f".{os.getpid()}.tmp.npz")
    try:
        np.savez(partial, **arrays)
        partial.replace(path)  # atomic: a concurrent reader never sees half a file
    finally:
        partial.unlink(missing_ok=True)  # left only when writing failed (e.g. a full disk)
    return _split_of(arrays)


def mnist1d_sample(num_samples: int, seed: int, directory=None) -> tuple[Tensor, Tensor]:
    """A fresh MNIST-1D sample of its own seed, e.g. one seed's test set (chapters 1 to 5).

    MNIST-1D is procedural, so a test set need not be fixed: each seed of an experiment can
    score its models on its own independent draw, and an interval over seeds then covers the
    test set's sampling too. The draw is ``load_mnist1d(num_samples, seed)`` (cached the same
    way), training and test parts together; the generator makes the same number of every
    digit, so the sample is class-balanced.

    Args:
        num_samples (int): a positive multiple of 10.
        seed (int): the generator's seed, e.g. ``reweighting.seeds.streams(seed).test``; use seeds
            other than 42, the published data set's, and the seeds of the training pools.
        directory (str, pathlib.Path or None): the cache folder, as :func:`load_mnist1d`.

    Returns:
        tuple[Tensor, Tensor]: float32 features ``(num_samples, 40)`` and int64 labels, in the
        generator's order.

    Raises:
        ValueError: on a bad ``num_samples``.
    """
    split = load_mnist1d(num_samples=num_samples, seed=seed, train_split=0.5,
                         directory=directory)
    return torch.cat([split.x_train, split.x_test]), torch.cat([split.y_train, split.y_test])


def per_seed(draw, seeds) -> Tensor | tuple[Tensor, ...]:
    """``draw(seed)`` for every seed, stacked along a new first dimension (chapters 1 to 5).

    The book's experiments give every seed its own data: ``per_seed(lambda s: ..., SEEDS)``
    turns one seed's draw (a tensor, or a tuple of tensors such as ``(x, y)``) into the
    ``(S, ...)`` tensors that :func:`reweighting.train.train_batched` and the metrics take.

    Args:
        draw (callable): ``seed -> Tensor`` or ``seed -> tuple of Tensors``; every seed's
            tensors must have the same shapes.
        seeds (sequence of int): the seeds, e.g. from ``reweighting.train.book_seeds``.

    Returns:
        Tensor or tuple of Tensors: each of shape ``(len(seeds), ...)``.

    Raises:
        ValueError: if ``seeds`` is empty or the draws' shapes differ between seeds.
    """
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds must hold at least one seed")
    draws = [draw(seed) for seed in seeds]
    single = isinstance(draws[0], Tensor)
    parts = [(d,) if single else tuple(d) for d in draws]
    try:
        stacked = tuple(torch.stack(list(column)) for column in zip(*parts))
    except RuntimeError as error:
        shapes = [[tuple(t.shape) for t in p] for p in parts[:3]]
        raise ValueError(f"every seed's draw must have the same shapes, got {shapes} ...") \
            from error
    return stacked[0] if single else stacked


_MNIST1D_ARRAYS = ("x", "y", "x_test", "y_test")


def _split_of(arrays: dict) -> Split:
    return Split(
        x_train=torch.from_numpy(arrays["x"].astype(np.float32)),
        y_train=torch.from_numpy(arrays["y"].astype(np.int64)),
        x_test=torch.from_numpy(arrays["x_test"].astype(np.float32)),
        y_test=torch.from_numpy(arrays["y_test"].astype(np.int64)),
    )


def _mnist1d_args(num_samples: int, seed: int, train_split: float):
    """The generator's arguments: mnist1d's defaults with the three the book sets."""
    try:
        from mnist1d.data import get_dataset_args
    except ImportError as error:  # e.g. a GPU host without the package or its `requests`
        raise RuntimeError(
            f"MNIST-1D with {num_samples} samples (seed {seed}) needs the mnist1d package, to "
            f"generate the data and to key their cache by its generator's settings ({error}); "
            "install the book's requirements (the `data` extra of the library)."
        ) from error
    args = get_dataset_args()
    args.num_samples, args.seed, args.train_split = num_samples, seed, train_split
    return args


def _mnist1d_key(num_samples: int, seed: int, train_split: float) -> str:
    """A short hash of everything that makes the data: the mnist1d version, every generator
    argument (template length, noise and shear scales, ...) and the stored dtype, so that a
    cache made by another version or other settings is never read as this one."""
    from importlib.metadata import version

    settings = {k: v for k, v in vars(_mnist1d_args(num_samples, seed, train_split)).items()
                if k != "url"}  # where get_dataset would download from; make_dataset ignores it
    made_by = {"mnist1d": version("mnist1d"), "args": settings, "dtype": "float32"}
    return hashlib.sha256(json.dumps(made_by, sort_keys=True).encode()).hexdigest()[:12]


def _generate_mnist1d(num_samples: int, seed: int, train_split: float) -> dict:
    from mnist1d.data import make_dataset

    args = _mnist1d_args(num_samples, seed, train_split)
    py_state, np_state = random.getstate(), np.random.get_state()  # noqa: NPY002 (mnist1d seeds it)
    try:
        data = make_dataset(args)  # seeds the global generators; never touches the network
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)  # noqa: NPY002
    # float32, the dtype the book trains in: half the size on disk (and to carry to a GPU host)
    return {"x": data["x"].astype(np.float32), "y": data["y"],
            "x_test": data["x_test"].astype(np.float32), "y_test": data["y_test"]}


def long_tailed_counts(
    n_max: int, num_classes: int, ratio: float, profile: str = "exp"
) -> list[int]:
    r"""Per-class sample counts of a long-tailed data set (chapters 3 to 5).

    ``profile="exp"``: :math:`n_i = \lfloor n_{\max} \cdot \mathrm{ratio}^{-i/(C-1)} \rfloor`, the
    profile of Cao et al. (2019) and Menon et al. (2020); CIFAR-10-LT is
    ``long_tailed_counts(5000, 10, 100)`` (12,406 images). ``profile="step"``: the first half of
    the classes keep :math:`n_{\max}` and the rest get
    :math:`\lfloor n_{\max}/\mathrm{ratio}\rfloor`.

    Args:
        n_max (int): the count of the first (largest) class, >= 1.
        num_classes (int): the number of classes C, >= 2.
        ratio (float): the imbalance ratio :math:`n_{\max} / n_{\min}`, a real number >= 1.
        profile (str): ``"exp"`` or ``"step"``. Default: ``"exp"``.

    Returns:
        list[int]: C counts, non-increasing.

    Raises:
        ValueError: on a bad argument.
    """
    n_max = check_number(n_max, "n_max", 1, integer=True)
    num_classes = check_number(num_classes, "num_classes", 2, integer=True)
    ratio = check_number(ratio, "ratio", 1.0)
    if profile == "exp":
        return [int(n_max * ratio ** (-i / (num_classes - 1))) for i in range(num_classes)]
    if profile == "step":
        half = num_classes // 2
        return [n_max] * half + [int(n_max / ratio)] * (num_classes - half)
    raise ValueError(f"profile must be 'exp' or 'step', got {profile!r}")


def long_tailed_indices(labels: Tensor, counts: list[int], seed: int = 0,
                        holdout: list[int] | None = None) -> Tensor | tuple[Tensor, Tensor]:
    """Indices of a random subset with ``counts[c]`` samples of class ``c`` (chapters 3 to 5).

    With ``holdout``, also a disjoint second subset with ``holdout[c]`` samples of class ``c``
    (a validation set with the same long tail, say). Per seed: ``seed`` from the seed's data
    stream, ``reweighting.seeds.streams(seed).data``, and :func:`per_seed` to stack the draws.

    Args:
        labels (Tensor or array): class labels of shape ``(N,)``.
        counts (list[int]): how many samples of class ``c`` to keep, for ``c = 0 .. C-1``
            (e.g. :func:`long_tailed_counts`).
        seed (int): seed of the draw. Default: ``0``.
        holdout (list[int], optional): per-class counts of the disjoint second subset.

    Returns:
        Tensor: int64 indices into ``labels``, shape ``(sum(counts),)``, in random order; with
        ``holdout``, the tuple ``(indices, holdout_indices)``.

    Raises:
        ValueError: if ``labels`` is not 1-D, the counts are not one per class present, or a
            class has fewer than ``counts[c]`` (plus ``holdout[c]``) samples.
    """
    labels = torch.as_tensor(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {tuple(labels.shape)}")
    extra = [0] * len(counts) if holdout is None else list(holdout)
    if len(extra) != len(counts):
        raise ValueError(f"holdout must hold one count per class ({len(counts)}), got {holdout}")
    generator = torch.Generator().manual_seed(seed)
    chosen, held = [], []
    for c, (n, m) in enumerate(zip(counts, extra)):
        members = torch.nonzero(labels == c).squeeze(1)
        if n < 0 or m < 0 or n + m > len(members):
            also = f" plus holdout[{c}] = {m}" if holdout is not None else ""
            raise ValueError(f"counts[{c}] = {n}{also} but class {c} has only {len(members)} "
                             f"samples in labels")
        shuffled = members[torch.randperm(len(members), generator=generator)]
        chosen.append(shuffled[:n])
        held.append(shuffled[n : n + m])
    indices = torch.cat(chosen)
    indices = indices[torch.randperm(len(indices), generator=generator)]
    if holdout is None:
        return indices
    held_out = torch.cat(held)
    return indices, held_out[torch.randperm(len(held_out), generator=generator)]


def load_digits_split(test_size: float = 0.5, seed: int = 0) -> Split:
    """scikit-learn's bundled 8x8 digits as a standardised, stratified split (chapters 4, 5).

    The second real data set of the book: 1,797 images of 64 pixels in 10 classes, shipped with
    scikit-learn (nothing downloads). The split is stratified by class, and the pixels are
    standardised with the mean and standard deviation of the training part
    (``sklearn.preprocessing.StandardScaler`` fitted on it).

    Args:
        test_size (float): the test fraction, in (0, 1). Default: ``0.5``.
        seed (int): the split's seed (``random_state``). Default: ``0``.

    Returns:
        Split: float32 features of shape ``(n, 64)`` and int64 labels in [0, 10).

    Raises:
        ValueError: on a bad ``test_size``.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    test_size = check_number(test_size, "test_size", 0.0, 1.0, low_open=True, high_open=True)
    digits = load_digits()
    x_tr, x_te, y_tr, y_te = train_test_split(digits.data, digits.target, test_size=test_size,
                                              stratify=digits.target, random_state=seed)
    scaler = StandardScaler().fit(x_tr)
    return Split(*(torch.tensor(a, dtype=dt) for a, dt in (
        (scaler.transform(x_tr), torch.float32), (y_tr, torch.int64),
        (scaler.transform(x_te), torch.float32), (y_te, torch.int64))))


def one_vs_rest(
    x: Tensor, labels: Tensor, positive_class: int, positive_rate: float, seed: int = 0,
    size: int | None = None,
) -> tuple[Tensor, Tensor]:
    """An imbalanced binary task: ``positive_class`` against all others (chapters 2 and 5).

    Without ``size``: keeps every negative and a random subset of the positives so that
    positives make up ``positive_rate`` of the result (rounded to whole samples, at least one).
    With ``size``: a random subset of exactly ``size`` samples, ``round(positive_rate * size)``
    of them positive. Apply it to the training and the test split alike: F1 depends on the
    positive rate.

    Args:
        x (Tensor): features, shape ``(N, ...)``.
        labels (Tensor or array): class labels, shape ``(N,)``.
        positive_class (int): the class that becomes the positive label 1.
        positive_rate (float): the fraction of positives wanted, in (0, 1).
        seed (int): seed of the draw and the shuffle. Default: ``0``.
        size (int, optional): the number of samples kept; default all negatives.

    Returns:
        tuple[Tensor, Tensor]: the kept features and their float32 targets in {0, 1},
        shuffled.

    Raises:
        ValueError: on a bad ``positive_rate`` or ``size``, or a ``positive_class`` that is
            absent or has too few samples (or too few negatives) for that rate and size.
    """
    labels = torch.as_tensor(labels)
    positive_rate = check_number(positive_rate, "positive_rate", 0.0, 1.0, low_open=True,
                                 high_open=True)
    positives = torch.nonzero(labels == positive_class).squeeze(1)
    negatives = torch.nonzero(labels != positive_class).squeeze(1)
    if len(positives) == 0:
        raise ValueError(f"positive_class {positive_class!r} does not occur in labels")
    if size is None:
        wanted = max(1, round(positive_rate / (1 - positive_rate) * len(negatives)))
        n_negatives = len(negatives)
    else:
        size = check_number(size, "size", 2, integer=True)
        wanted = max(1, round(positive_rate * size))
        n_negatives = size - wanted
        if n_negatives > len(negatives):
            raise ValueError(f"size {size} at positive_rate {positive_rate} needs {n_negatives} "
                             f"negatives but labels hold only {len(negatives)}")
    if wanted > len(positives):
        raise ValueError(
            f"positive_rate {positive_rate} needs {wanted} positives but labels hold only "
            f"{len(positives)} of class {positive_class}"
        )
    generator = torch.Generator().manual_seed(seed)
    kept = positives[torch.randperm(len(positives), generator=generator)[:wanted]]
    if n_negatives < len(negatives):
        negatives = negatives[torch.randperm(len(negatives), generator=generator)[:n_negatives]]
    indices = torch.cat([kept, negatives])
    indices = indices[torch.randperm(len(indices), generator=generator)]
    return x[indices], (labels[indices] == positive_class).to(torch.float32)


def one_vs_rest_split(
    x: Tensor, labels: Tensor, positive_class: int, positive_rate: float, n_train: int,
    n_val: int, seed: int = 0,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Disjoint training and validation sets of a one-vs-rest task, at the same rate (ch. 5, 6).

    One :func:`one_vs_rest` draw of ``n_train + n_val`` samples, split so that the training
    set holds exactly ``round(positive_rate * n_train)`` positives and the validation set the
    rest of the draw's positives: both keep the task's positive rate, and no sample is in both.

    Args:
        x (Tensor): features, shape ``(N, ...)``.
        labels (Tensor or array): class labels, shape ``(N,)``.
        positive_class (int): the class that becomes the positive label 1.
        positive_rate (float): the fraction of positives, in (0, 1).
        n_train (int), n_val (int): the sizes of the two sets, each >= 1.
        seed (int): seed of the draw. Default: ``0``.

    Returns:
        tuple[Tensor, Tensor, Tensor, Tensor]: ``(x_train, y_train, x_val, y_val)``, targets
        float32 in {0, 1}.

    Raises:
        ValueError: as :func:`one_vs_rest`, or on a bad ``n_train`` or ``n_val``.
    """
    n_train = check_number(n_train, "n_train", 1, integer=True)
    n_val = check_number(n_val, "n_val", 1, integer=True)
    x_all, y_all = one_vs_rest(x, labels, positive_class, positive_rate, seed=seed,
                               size=n_train + n_val)
    positive = y_all == 1
    within_class = torch.where(positive, positive.cumsum(0), (~positive).cumsum(0)) - 1
    n_positive = round(positive_rate * n_train)
    to_train = torch.where(positive, within_class < n_positive,
                           within_class < n_train - n_positive)
    return x_all[to_train], y_all[to_train], x_all[~to_train], y_all[~to_train]


def with_label_noise(labels: Tensor, rate: float, num_classes: int, seed: int = 0) -> Tensor:
    """Symmetric label noise (chapter 1): each label is replaced with probability ``rate``.

    The replacement is drawn uniformly from all ``num_classes`` classes, so a replaced label
    may stay the same; the expected fraction of changed labels is
    ``rate * (1 - 1 / num_classes)``.

    Args:
        labels (Tensor or array): class labels, shape ``(N,)``, in [0, num_classes).
        rate (float): the replacement probability, in [0, 1].
        num_classes (int): the number of classes, >= 1.
        seed (int): seed of the draws. Default: ``0``.

    Returns:
        Tensor: the noisy labels, shape and dtype of ``labels``.

    Raises:
        ValueError: on a bad ``rate`` or ``num_classes``, or labels out of range.
    """
    labels = torch.as_tensor(labels)
    rate = check_number(rate, "rate", 0.0, 1.0)
    num_classes = check_number(num_classes, "num_classes", 1, integer=True)
    if labels.numel() and not (0 <= int(labels.min()) and int(labels.max()) < num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}) for num_classes={num_classes}")
    generator = torch.Generator().manual_seed(seed)
    replace = torch.rand(labels.shape, generator=generator) < rate
    random_labels = torch.randint(0, num_classes, labels.shape, generator=generator)
    return torch.where(replace, random_labels, labels)


@dataclass(frozen=True)
class GaussianMixture:
    r"""Classes with Gaussian features :math:`x \mid y=k \sim \mathcal N(\mu_k, \sigma^2 I)`.

    The class posterior is known exactly, so the Bayes-optimal classifiers are too (chapter 3):
    the error-minimising one predicts :math:`\arg\max_k\, \log\pi_k - \|x-\mu_k\|^2/2\sigma^2`,
    and the balanced-error-minimising one drops the :math:`\log\pi_k` term (it is the Bayes
    classifier under a uniform prior).

    Args:
        means (Tensor or array): class means :math:`\mu_k`, shape ``(C, d)`` with C >= 2;
            stored as float64.
        priors (Tensor or array): class priors :math:`\pi_k`, shape ``(C,)``, positive,
            summing to 1; stored as float64.
        sigma (float): the shared standard deviation, a real number > 0. Default: ``1.0``.

    Raises:
        ValueError: on bad shapes, priors that are not a distribution, or a bad ``sigma``.
    """

    means: Tensor
    priors: Tensor
    sigma: float = 1.0

    def __post_init__(self):
        means = torch.as_tensor(self.means, dtype=torch.float64)
        priors = torch.as_tensor(self.priors, dtype=torch.float64)
        if means.ndim != 2 or means.shape[0] < 2:
            raise ValueError(f"means must have shape (C, d) with C >= 2, got {tuple(means.shape)}")
        if priors.shape != means.shape[:1]:
            raise ValueError(
                f"priors must have shape ({means.shape[0]},), got {tuple(priors.shape)}"
            )
        if not bool((priors > 0).all()) or abs(float(priors.sum()) - 1) > 1e-9:
            raise ValueError(f"priors must be positive and sum to 1, got {priors.tolist()}")
        sigma = check_number(self.sigma, "sigma", low_open=True)
        object.__setattr__(self, "sigma", sigma)
        object.__setattr__(self, "means", means)
        object.__setattr__(self, "priors", priors)

    def sample(self, n: int, seed: int = 0) -> tuple[Tensor, Tensor]:
        """Draw ``n`` labelled samples i.i.d. from the mixture (chapter 3).

        Args:
            n (int): the number of samples, >= 1.
            seed (int): seed of the draws. Default: ``0``.

        Returns:
            tuple[Tensor, Tensor]: float64 features of shape ``(n, d)`` and int64 labels of
            shape ``(n,)``.

        Raises:
            ValueError: on a bad ``n``.
        """
        n = check_number(n, "n", 1, integer=True)
        generator = torch.Generator().manual_seed(seed)
        y = torch.multinomial(self.priors, n, replacement=True, generator=generator)
        noise = torch.randn(n, self.means.shape[1], generator=generator, dtype=torch.float64)
        return self.means[y] + self.sigma * noise, y

    def log_joint(self, x: Tensor) -> Tensor:
        r"""Log joint density :math:`\log \pi_k + \log p(x\mid y=k)`, up to a constant in k.

        Args:
            x (Tensor or array): features of shape ``(n, d)``.

        Returns:
            Tensor: float64 of shape ``(n, C)``.
        """
        x = torch.as_tensor(x, dtype=torch.float64)
        squared = torch.cdist(x, self.means).square()
        return self.priors.log() - squared / (2 * self.sigma**2)

    def bayes_predict(self, x: Tensor, balanced: bool = False) -> Tensor:
        """Bayes-optimal labels, for the error or the balanced error (chapter 3).

        Args:
            x (Tensor or array): features of shape ``(n, d)``.
            balanced (bool): minimise the balanced error (drop the prior) instead of the error.
                Default: ``False``.

        Returns:
            Tensor: int64 labels of shape ``(n,)``.
        """
        scores = self.log_joint(x)
        if balanced:
            scores = scores - self.priors.log()
        return scores.argmax(dim=1)


def gaussian_bayes_linear_rule(
    mixture: GaussianMixture, balanced: bool = False
) -> tuple[Tensor, Tensor]:
    r"""The Bayes-optimal classifier of a :class:`GaussianMixture` as a linear rule (chapter 3).

    With a shared isotropic covariance :math:`\sigma^2 I` the log joint density is linear in
    :math:`x` up to a term that is the same for every class, so the Bayes rule is
    :math:`\arg\max_k\, (W x + b)_k` with

    .. math:: W_k = \mu_k / \sigma^2, \qquad
              b_k = \log\pi_k - \|\mu_k\|^2 / (2\sigma^2),

    which minimises the error. With ``balanced=True`` the :math:`\log\pi_k` term is dropped:
    :math:`\arg\max_k p(x\mid y=k) = \arg\max_k P(y=k\mid x)/\pi_k` minimises the balanced error
    (the mean of the per-class errors). The predictions agree with
    :meth:`GaussianMixture.bayes_predict`.

    Args:
        mixture (GaussianMixture): the mixture.
        balanced (bool): minimise the balanced error instead of the error. Default: ``False``.

    Returns:
        tuple[Tensor, Tensor]: float64 ``weight`` of shape ``(C, d)`` and ``bias`` of shape
        ``(C,)``, the layout of an ``nn.Linear(d, C)``.

    Raises:
        ValueError: if ``mixture`` is not a :class:`GaussianMixture`.
    """
    if not isinstance(mixture, GaussianMixture):
        raise ValueError(f"mixture must be a GaussianMixture, got {type(mixture).__name__}")
    variance = mixture.sigma**2
    weight = mixture.means / variance
    bias = -mixture.means.square().sum(dim=1) / (2 * variance)
    if not balanced:
        bias = bias + mixture.priors.log()
    return weight, bias


def linear_rule_class_errors(mixture: GaussianMixture, weight, bias) -> np.ndarray:
    r"""Closed-form per-class error of a linear rule on a two-class mixture (chapter 3).

    The rule predicts :math:`\arg\max_k (W x + b)_k`, i.e. class 1 iff
    :math:`\langle w, x\rangle + c > 0` with :math:`w = W_1 - W_0` and :math:`c = b_1 - b_0`.
    Given :math:`y = k`, :math:`\langle w, x\rangle + c \sim
    \mathcal N(\langle w, \mu_k\rangle + c,\ \sigma^2\|w\|^2)`, so with :math:`\Phi` the standard
    normal CDF (``scipy.stats.norm.cdf``)

    .. math:: \mathrm{err}_1 = \Phi\Big(-\frac{\langle w,\mu_1\rangle + c}{\sigma\|w\|}\Big),
              \qquad
              \mathrm{err}_0 = \Phi\Big(\frac{\langle w,\mu_0\rangle + c}{\sigma\|w\|}\Big).

    A rule with :math:`w = 0` is constant: class 1 if :math:`c > 0`, else class 0 (``argmax``
    takes the first of tied scores).

    Args:
        mixture (GaussianMixture): a two-class mixture.
        weight (Tensor or array): :math:`W`, shape ``(..., 2, d)``, e.g. the stacked
            ``nn.Linear(d, 2)`` weights of many models; any device.
        bias (Tensor or array): :math:`b`, shape ``(..., 2)``; any device.

    Returns:
        numpy.ndarray: float64 of shape ``(..., 2)``, the errors of class 0 and class 1.

    Raises:
        ValueError: on a mixture that is not two-class, or mismatched shapes.
    """
    from scipy.stats import norm

    if not isinstance(mixture, GaussianMixture):
        raise ValueError(f"mixture must be a GaussianMixture, got {type(mixture).__name__}")
    num_classes, dim = mixture.means.shape
    if num_classes != 2:
        raise ValueError(f"mixture must have two classes for a closed form, got {num_classes}")
    weight = np.asarray(torch.as_tensor(weight).detach().cpu(), dtype=np.float64)
    bias = np.asarray(torch.as_tensor(bias).detach().cpu(), dtype=np.float64)
    if weight.ndim < 2 or weight.shape[-2:] != (2, dim):
        raise ValueError(f"weight must have shape (..., 2, {dim}), got {weight.shape}")
    if bias.shape != weight.shape[:-1]:
        raise ValueError(f"bias must have shape {weight.shape[:-1]} to match weight, "
                         f"got {bias.shape}")
    means = mixture.means.numpy()
    w = weight[..., 1, :] - weight[..., 0, :]
    c = bias[..., 1] - bias[..., 0]
    scale = mixture.sigma * np.linalg.norm(w, axis=-1)
    # standardised margins of the class means; +-inf for a constant rule (scale 0)
    constant = np.where(c > 0, np.inf, -np.inf)
    safe = np.where(scale > 0, scale, 1.0)
    t1 = np.where(scale > 0, (w @ means[1] + c) / safe, constant)
    t0 = np.where(scale > 0, (w @ means[0] + c) / safe, constant)
    return np.stack([norm.cdf(t0), norm.cdf(-t1)], axis=-1)


def linear_rule_balanced_error(mixture: GaussianMixture, weight, bias) -> np.ndarray:
    r"""Balanced error :math:`(\mathrm{err}_0 + \mathrm{err}_1)/2` of a linear rule (chapter 3).

    The mean of :func:`linear_rule_class_errors` (see there for the formula). For the
    balanced Bayes rule of :func:`gaussian_bayes_linear_rule` it is
    :math:`\Phi(-\|\mu_1-\mu_0\|/2\sigma)`, the least balanced error any classifier can reach
    on the mixture.

    Args:
        mixture (GaussianMixture): a two-class mixture.
        weight (Tensor or array): :math:`W`, shape ``(..., 2, d)``; any device.
        bias (Tensor or array): :math:`b`, shape ``(..., 2)``; any device.

    Returns:
        numpy.ndarray: float64 of shape ``weight.shape[:-2]``.

    Raises:
        ValueError: as :func:`linear_rule_class_errors`.
    """
    return linear_rule_class_errors(mixture, weight, bias).mean(axis=-1)
