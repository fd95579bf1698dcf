"""Shared library of the book "Every modified loss is a reweighting".

Modules: :mod:`lib.losses` (the article's losses), :mod:`lib.data` (offline data sets),
:mod:`lib.seeds` (every seed's independent streams), :mod:`lib.train` (scale switch and batched
multi-seed trainer), :mod:`lib.metrics`, :mod:`lib.evidence` (claims, intervals, verdicts,
saved results) and :mod:`lib.report` (tables, glue, provenance). Each public function names the
chapter that derives or uses it.
"""

from . import data, evidence, losses, metrics, report, seeds, train

__all__ = ["data", "evidence", "losses", "metrics", "report", "seeds", "train"]
