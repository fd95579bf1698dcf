"""Shared library of the book "Every modified loss is a reweighting".

Modules: :mod:`lib.losses` (the article's losses), :mod:`lib.data` (offline data sets),
:mod:`lib.train` (scale switch and batched multi-seed trainer), :mod:`lib.metrics` and
:mod:`lib.report`. Each public function names the chapter that derives or uses it.
"""

from . import data, losses, metrics, report, train

__all__ = ["data", "losses", "metrics", "report", "train"]
