"""reweighting: class-imbalance losses as reweightings, with the book that derives each one.

The library of the executable companion to Su Jianlin's article "再谈类别不平衡问题：调节权重与
魔改Loss的对比联系" (2020, https://spaces.ac.cn/archives/7708). Each public function's docstring
states its formula and names the chapter that derives or tests it.

For your own training loop:

- :mod:`reweighting.losses`: the article's losses, PyTorch style
  ``(logits, targets, ..., reduction="mean")``: smooth accuracy and F1, F1-weighted and
  class-weighted cross-entropy, logit adjustment, focal, LDAM, generalized cross-entropy;
- :mod:`reweighting.heads`: last layers on frozen features: post-hoc logit adjustment, refits
  (plain, class-weighted, cRT) and tau-normalisation;
- :mod:`reweighting.solvers`: the exact batched solver behind the refits;
- :mod:`reweighting.metrics`: per-model metrics that scikit-learn lacks (balanced accuracy of many
  models, F1 at a tuned threshold, ...);
- :mod:`reweighting.validation`: the argument checks every module shares.

What the book itself runs on: :mod:`reweighting.data` (MNIST-1D, long-tailed and one-vs-rest
draws, Gaussian mixtures; MNIST-1D needs the ``data`` extra), :mod:`reweighting.seeds` (every
seed's independent streams), :mod:`reweighting.train` (the ``BOOK_SCALE`` switch and the batched
multi-seed trainer), :mod:`reweighting.evidence` (claims, intervals, verdicts, saved results) and
:mod:`reweighting.report` (tables, glue, provenance). Importing the package imports none of the
optional dependencies (mnist1d, scikit-learn, SciPy); the functions that need one import it.
"""

from . import (
    data,
    evidence,
    heads,
    losses,
    metrics,
    report,
    seeds,
    solvers,
    train,
    validation,
)

__all__ = ["data", "evidence", "heads", "losses", "metrics", "report", "seeds", "solvers",
           "train", "validation"]
__version__ = "0.2.0"
