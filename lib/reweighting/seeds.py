"""One seed, four independent random streams: the book's single way to seed anything.

A seed of the book (``reweighting.train.book_seeds``) stands for one repetition of an
experiment. Its training data, its test data, its models' initial weights and their minibatch
order must be random and independent of one another, and the same whichever chapter draws them.
Every
chapter and the trainer therefore derive them here, from NumPy's ``SeedSequence(seed).spawn``,
rather than each in its own way (``seed`` itself, ``1000 * seed + rate``, ...).
"""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np

__all__ = ["Streams", "streams", "child", "offset"]


class Streams(NamedTuple):
    """The integer seeds of one repetition's independent random draws (every chapter).

    Attributes:
        data (int): the training (and validation) data draw, e.g. a long-tailed subset.
        test (int): the test data draw, e.g. a fresh MNIST-1D test set or digits split.
        init (int): the initial weights (used by :mod:`reweighting.train`).
        order (int): the minibatch order (used by :mod:`reweighting.train`).
    """

    data: int
    test: int
    init: int
    order: int


def streams(seed: int) -> Streams:
    """The four independent streams of ``seed``: ``SeedSequence(seed).spawn(4)`` (every chapter).

    Each stream is a 32-bit integer, usable as ``torch.Generator().manual_seed``,
    ``numpy.random.default_rng`` or scikit-learn's ``random_state``. A chapter that needs more
    than one data draw per seed (a training set and a label noise, say) spawns further from
    the stream: ``numpy.random.SeedSequence(streams(seed).data).spawn(2)``.

    Args:
        seed (int): a non-negative integer, e.g. from ``reweighting.train.book_seeds``.

    Returns:
        Streams: ``(data, test, init, order)``.

    Raises:
        ValueError: if ``seed`` is not a non-negative integer.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    children = np.random.SeedSequence(int(seed)).spawn(len(Streams._fields))
    return Streams(*(int(child.generate_state(1, np.uint32)[0]) for child in children))


def child(stream: int, index: int) -> int:
    """The seed of draw number ``index`` of a stream: ``SeedSequence(stream).spawn(...)[index]``.

    A chapter that needs several independent draws from one stream of a seed (a training set
    at each positive rate, a validation resample, a test subset) numbers them and takes
    ``child(streams(seed).data, k)`` for draw ``k``. The child of ``SeedSequence.spawn`` at
    position ``k`` does not depend on how many children are spawned, so adding a draw at the
    end of a chapter's list leaves the earlier draws unchanged (chapters 2, 4 to 7).

    Args:
        stream (int): a stream of :func:`streams`, e.g. ``streams(seed).test``.
        index (int): the draw's number, >= 0.

    Returns:
        int: a 32-bit seed, independent of the stream's other draws.

    Raises:
        ValueError: if ``stream`` or ``index`` is not a non-negative integer.
    """
    for name, value in (("stream", stream), ("index", index)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    # what SeedSequence(stream).spawn(n)[index] is, for any n > index
    return int(np.random.SeedSequence(int(stream), spawn_key=(int(index),)).generate_state(1)[0])


def offset() -> int:
    """``$BOOK_SEED_OFFSET`` (default 0): ``reweighting.train.book_seeds`` shifts every seed by it.

    Saved results record it, and it is part of their fingerprint (:mod:`reweighting.evidence`): the
    committed book is the run on the default seeds.

    Raises:
        ValueError: if it is not a non-negative integer.
    """
    raw = os.environ.get("BOOK_SEED_OFFSET", "").strip() or "0"
    if not raw.isdigit():
        raise ValueError(f"BOOK_SEED_OFFSET must be a non-negative integer, got {raw!r}")
    return int(raw)
