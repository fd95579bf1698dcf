"""The book's evidence: claims declared before a run, their intervals, verdicts and provenance.

A chapter's claims go through three steps, each in its own place of the notebook:

1. **Declared** before anything trains (:class:`Claims`, :meth:`Claims.declare`): the claim's
   id, text, where it comes from (:data:`SOURCES`), its measure, and what it says of that
   measure, ``"greater"`` or ``"less"`` than a threshold, or ``"equivalent"`` within ±δ.
   A test fails when a chapter declares a claim after its first training cell.
2. **Filled** after the run (:meth:`Claims.fill`): one value per seed (paired differences
   where two methods are compared), from which :func:`claim` computes the mean, the 95%
   t-interval (:func:`paired_interval`) and the verdict (:func:`verdict`).
3. **Saved** (:func:`save_results`) to ``results/<chapter>.json`` with the seeds that made
   them, the seed offset, the package versions and a fingerprint of everything the results
   depend on (:func:`fingerprint_parts`), the library code among it only as far as the
   chapter reaches it (:func:`library_reach`), so that a test can tell when they went stale
   and why, naming each library function that changed (:func:`stale_reasons`), check that
   every sampled claim holds one value per seed (:func:`claim_problems`), and recompute every
   verdict from its stored values (:func:`recompute`).

The reproducibility page adds, beside each per-claim 95% verdict, the verdict under Holm's
correction over the whole book's family of sampled claims (:func:`holm_verdicts`).
How the claims are shown (tables, the interval as text) is in :mod:`reweighting.report`.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .report import device_name, to_float64
from .seeds import offset as seed_offset
from .train import book_scale, default_device
from .validation import check_number

__all__ = [
    "DIRECTIONS",
    "VERDICTS",
    "SOURCES",
    "PINNED",
    "paired_interval",
    "verdict",
    "claim",
    "Claims",
    "recompute",
    "p_values",
    "holm_verdicts",
    "book_holm_verdicts",
    "results_dir",
    "code_fingerprint",
    "MODULE_STATEMENTS",
    "library_reach",
    "fingerprint_parts",
    "results_fingerprint",
    "stale_reasons",
    "claim_problems",
    "environment",
    "save_results",
    "check_readings",
    "device_class",
]

ROOT = Path(__file__).resolve().parent.parent.parent
LIB = Path(__file__).resolve().parent

#: tuple[str, ...]: What a claim may say of its measure, greater or less than a threshold, or
#: equivalent to it within ±δ.
DIRECTIONS = ("greater", "less", "equivalent")
#: tuple[str, ...]: The verdicts of a claim, from its interval (:func:`verdict`).
VERDICTS = ("held", "not held", "inconclusive")
#: tuple[str, ...]: Where a claim comes from, the article, a cited paper, or the book itself.
SOURCES = ("article", "literature", "beyond")
#: tuple[str, ...]: The packages whose versions the results depend on; a different version
#: makes them stale.
PINNED = ("torch", "numpy", "scikit-learn", "scipy", "sympy", "mnist1d")
#: The confidence of every per-claim interval; a verdict's one-sided tests run at (1 - it) / 2.
CONFIDENCE = 0.95


def paired_interval(values, confidence: float = CONFIDENCE) -> tuple[float, float, float, int]:
    """Mean and two-sided t confidence interval of per-seed (paired) values (every chapter).

    Args:
        values (array-like or Tensor): one number per seed, e.g. the per-seed difference between
            two methods trained from the same seed on the same data draw.
        confidence (float): the interval's coverage, in (0, 1). Default: 0.95.

    Returns:
        tuple: ``(mean, low, high, n)``. The interval is ``mean ± t * s / sqrt(n)`` with ``s``
        the sample standard deviation and ``t`` the quantile of Student's t with ``n - 1``
        degrees of freedom (``scipy.stats.t``). When the spread is unknown (one value) or zero
        (every seed gave the same value, so ``s`` estimates nothing) the interval is
        ``(-inf, inf)``: a sampled measure that never varied over the seeds says nothing of
        how much it could.

    Raises:
        ValueError: if ``values`` is empty or not finite, or ``confidence`` is out of range.
    """
    from scipy import stats

    check_number(confidence, "confidence", 0, 1, low_open=True, high_open=True)
    values = to_float64(values).ravel()
    if values.size == 0 or not np.isfinite(values).all():
        raise ValueError(f"values must hold at least one finite number, got {values.tolist()}")
    n, mean = values.size, float(values.mean())
    if n == 1 or np.ptp(values) == 0:
        return mean, -np.inf, np.inf, n
    sem = float(values.std(ddof=1)) / np.sqrt(n)
    half = float(stats.t.ppf(0.5 + confidence / 2, df=n - 1)) * sem
    return mean, mean - half, mean + half, n


def _check_claim_form(direction: str, delta) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if (direction == "equivalent") != (delta is not None):
        raise ValueError(f"delta must be given for direction 'equivalent' and only then, got "
                         f"direction {direction!r} and delta {delta!r}")
    if delta is not None:
        check_number(delta, "delta", 0, low_open=True)


def verdict(low: float, high: float, direction: str, threshold: float = 0.0,
            delta: float | None = None) -> str:
    """Whether a claim held, from the confidence interval of its measure (every chapter).

    Args:
        low (float), high (float): the interval, e.g. from :func:`paired_interval`.
        direction (str): what the claim says of the measure, declared before it runs:
            ``"greater"`` (above ``threshold``), ``"less"`` (below ``threshold``) or
            ``"equivalent"`` (within ``threshold ± delta``).
        threshold (float): the reference value. Default: 0 (no difference).
        delta (float, optional): the equivalence margin, positive; only for ``"equivalent"``.

    Returns:
        str: ``"held"`` when the interval lies entirely on the claimed side (strictly above or
        below the threshold, or strictly inside ``threshold ± delta``); ``"not held"`` when it
        lies entirely on the other side (at or below / at or above the threshold, or entirely
        outside the margin); ``"inconclusive"`` otherwise, e.g. an interval that contains the
        threshold.

    Raises:
        ValueError: for an unknown direction, or a missing or superfluous ``delta``.
    """
    _check_claim_form(direction, delta)
    if low > high:
        raise ValueError(f"low must not exceed high, got [{low}, {high}]")
    if direction == "greater":
        return "held" if low > threshold else "not held" if high <= threshold else "inconclusive"
    if direction == "less":
        return "held" if high < threshold else "not held" if low >= threshold else "inconclusive"
    if threshold - delta < low and high < threshold + delta:
        return "held"
    if low >= threshold + delta or high <= threshold - delta:
        return "not held"
    return "inconclusive"


def _check_source(source: str, cite: str | None) -> None:
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    if (source == "literature") != bool(cite):
        raise ValueError(f"cite (the bibliography key of the paper whose finding it is) must be "
                         f"given for source 'literature' and only then, got source {source!r} "
                         f"and cite {cite!r}")


def claim(id: str, text: str, *, source: str, measure: str, values, direction: str,  # noqa: A002
          threshold: float = 0.0, delta: float | None = None, exact: bool = False,
          detail: str = "", cite: str | None = None, test_set: str = "",
          readings: dict[str, str] | None = None) -> dict:
    """One claim with its verdict, from its values (used by :meth:`Claims.fill`).

    Args:
        id (str): e.g. ``"3.1"``.
        text (str): the claim, one sentence.
        source (str): one of :data:`SOURCES`: ``"article"`` only where the article itself
            states the claim, ``"literature"`` for a cited paper's finding (name it in
            ``cite``), ``"beyond"`` for the book's own claims and checks.
        measure (str): what ``values`` measure, e.g. "balanced accuracy, LA minus CE (paired)".
        values (array-like): one number per seed (paired differences where two methods are
            compared), or, with ``exact=True``, the one value of a deterministic computation.
        direction (str), threshold (float), delta (float, optional): the claim, declared before
            it runs, as in :func:`verdict`.
        exact (bool): the measure has no sampling noise (a float64 identity, a closed form), so
            its interval is the value itself. Default: False.
        detail (str): the numbers behind it, for the reader.
        cite (str, optional): the bibliography key(s) of the paper, for ``"literature"`` only.
        test_set (str): what the values were measured on, when it is not each seed's own test
            draw: e.g. ``"fixed: ..."`` with the reason, or ``"population"``. Default: ``""``,
            each seed's own draw (or no test set, for an exact claim).
        readings (dict[str, str], optional): what the prose says for each verdict, one
            sentence or clause per verdict (``"held"``, ``"not held"``, ``"inconclusive"``;
            an exact claim needs no ``"inconclusive"``), written when the claim is declared.
            :func:`reweighting.report.glue_claims` glues the one its verdict selects, so a
            rerun that moves the verdict changes the sentence (:func:`check_readings`).

    Returns:
        dict: the fields above plus ``n``, ``mean``, ``std``, ``low``, ``high`` (the 95%
        interval of :func:`paired_interval`), ``verdict`` and ``reading`` (the reading of
        the verdict, or ``None``).

    Raises:
        ValueError: for a bad ``source``/``cite``, ``direction`` or ``delta``, or empty values.
    """
    _check_source(source, cite)
    _check_claim_form(direction, delta)
    check_readings(readings, exact)
    values = to_float64(values).ravel()
    if exact:
        if values.size != 1:
            raise ValueError(f"an exact claim has one value, got {values.size}")
        mean = low = high = float(values[0])
        n = 1
    else:
        mean, low, high, n = paired_interval(values)
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    result = verdict(low, high, direction, threshold, delta)
    return {"id": str(id), "claim": text, "source": source, "cite": cite, "measure": measure,
            "direction": direction, "threshold": float(threshold),
            "delta": None if delta is None else float(delta), "exact": bool(exact),
            "test_set": test_set, "values": [float(v) for v in values], "n": n, "mean": mean,
            "std": std, "low": float(low), "high": float(high),
            "verdict": result, "detail": detail,
            "readings": None if readings is None else dict(readings),
            "reading": None if readings is None else readings[result]}


_DECLARED = ("id", "claim", "source", "cite", "measure", "direction", "threshold", "delta",
             "exact", "test_set", "readings")


def check_readings(readings: dict[str, str] | None, exact: bool = False) -> None:
    """Check a claim's readings: one non-empty text per verdict it can reach (every chapter).

    Args:
        readings (dict[str, str] or None): verdict -> the words of the prose; ``None`` for a
            claim the prose does not read (its verdict is shown in the claims table only).
        exact (bool): an exact claim is held or not held, never inconclusive.

    Raises:
        ValueError: for a missing or unknown verdict, or an empty reading.
    """
    if readings is None:
        return
    needed = {"held", "not held"} if exact else set(VERDICTS)
    if not isinstance(readings, dict) or not needed <= set(readings) <= set(VERDICTS) or not all(
            isinstance(text, str) and text.strip() for text in readings.values()):
        raise ValueError(f"readings must map each of {sorted(needed)} to a non-empty text, got "
                         f"{readings!r}")


class Claims:
    """A chapter's claims: declared before it trains, filled with values after (every chapter).

    ``claims = evidence.Claims()``, then ``claims.declare(...)`` for each claim in a cell before
    the first training cell, then ``claims.fill(id, values, detail)`` for each after the runs,
    and ``evidence.save_results(chapter, claims, ...)``. Once one claim is filled no claim can
    be declared, and :func:`save_results` refuses a chapter whose declared claims are not all
    filled, so that what the chapter claims is fixed before any number is seen.
    """

    def __init__(self) -> None:
        self.declared: dict[str, dict] = {}
        self.filled: dict[str, dict] = {}

    def declare(self, id: str, text: str, *, source: str, measure: str,  # noqa: A002
                direction: str, threshold: float = 0.0, delta: float | None = None,
                exact: bool = False, cite: str | None = None, test_set: str = "",
                readings: dict[str, str] | None = None) -> None:
        """Declare one claim, before anything trains; the arguments are those of :func:`claim`.

        Raises:
            ValueError: for a repeated id, a bad field, or a declaration after a claim was
                filled.
        """
        if self.filled:
            raise ValueError(f"claim {id!r} is declared after claims were filled: declare "
                             f"every claim before the run")
        if str(id) in self.declared:
            raise ValueError(f"claim {id!r} is already declared")
        _check_source(source, cite)
        _check_claim_form(direction, delta)
        check_readings(readings, exact)
        self.declared[str(id)] = dict(zip(_DECLARED, (
            str(id), text, source, cite, measure, direction, float(threshold),
            None if delta is None else float(delta), bool(exact), test_set,
            None if readings is None else dict(readings))))

    def fill(self, id: str, values, detail: str = "", seeds=None) -> dict:  # noqa: A002
        """The declared claim ``id`` with its values, interval and verdict (:func:`claim`).

        ``seeds`` (sequence of int, optional) lists the seeds a sampled claim's values were
        computed over, one per value, when they are not the chapter's (those given to
        :func:`save_results`), e.g. chapter 3's 200 Gaussian training sets beside its 60
        network seeds; it is saved with the claim as ``"seeds"`` (:func:`claim_problems`).

        Raises:
            ValueError: for an undeclared or already filled id, bad values, or ``seeds`` given
                for an exact claim or not one distinct non-negative integer per value.
        """
        if str(id) not in self.declared:
            raise ValueError(f"claim {id!r} was not declared; declared: {list(self.declared)}")
        if str(id) in self.filled:
            raise ValueError(f"claim {id!r} is already filled")
        spec = dict(self.declared[str(id)])
        spec["text"] = spec.pop("claim")
        filled = claim(**spec, values=values, detail=detail)
        if seeds is not None:
            filled["seeds"] = _own_seeds(seeds, filled)
        self.filled[str(id)] = filled
        return filled

    def results(self) -> list[dict]:
        """The filled claims in the order declared.

        Raises:
            ValueError: if a declared claim was not filled.
        """
        missing = [i for i in self.declared if i not in self.filled]
        if missing:
            raise ValueError(f"claims {missing} were declared but never filled")
        return [self.filled[i] for i in self.declared]


def recompute(c: dict) -> dict:
    """A saved claim rebuilt from its declared fields and stored values (:func:`claim`).

    A test compares it with the saved claim field by field, so that no interval or verdict on
    the page can differ from what its values give.
    """
    spec = {key: c.get(key) for key in _DECLARED}
    spec["text"] = spec.pop("claim")
    spec["test_set"] = spec["test_set"] or ""
    return claim(**spec, values=c["values"], detail=c.get("detail", ""))


def p_values(c: dict) -> tuple[float, float]:
    """One-sided t-test p-values of a sampled claim: ``(for held, for not held)``.

    The tests behind :func:`verdict` at 95%: a claim is held when the first is below 0.025 and
    not held when the second is (``scipy.stats.t`` with ``n - 1`` degrees of freedom). For
    ``"greater"``, held tests mean > threshold and not held tests mean < threshold; for
    ``"less"`` the reverse; for ``"equivalent"``, held is the two one-sided tests of the margin
    (TOST, the larger p) and not held the smaller p of mean > threshold + δ and
    mean < threshold − δ. A claim whose values have zero spread gets ``(1, 1)``.

    Raises:
        ValueError: for an exact claim (it has no sampling noise, so no p-value).
    """
    from scipy import stats

    if c["exact"]:
        raise ValueError(f"claim {c['id']} is exact: it has no p-value")
    values = np.asarray(c["values"], dtype=np.float64)
    n = values.size
    if n < 2 or np.ptp(values) == 0:
        return 1.0, 1.0
    sem = values.std(ddof=1) / np.sqrt(n)
    t = stats.t(df=n - 1)

    def above(reference):  # p of "mean > reference"
        return float(t.sf((values.mean() - reference) / sem))

    def below(reference):  # p of "mean < reference"
        return float(t.cdf((values.mean() - reference) / sem))

    threshold = c["threshold"]
    if c["direction"] == "greater":
        return above(threshold), below(threshold)
    if c["direction"] == "less":
        return below(threshold), above(threshold)
    delta = c["delta"]
    return (max(above(threshold - delta), below(threshold + delta)),
            min(above(threshold + delta), below(threshold - delta)))


def holm_verdicts(claims: list[dict], confidence: float = CONFIDENCE) -> dict[str, str]:
    """Each sampled claim's verdict under Holm's correction over ``claims`` (the whole book).

    The family is every sampled (not exact) claim. A claim's verdict is tested by the p-value
    of :func:`p_values` that matches it (held or not held; an inconclusive claim stays
    inconclusive); Holm's step-down procedure at family-wise level ``(1 - confidence) / 2``
    for each one-sided test keeps the verdicts whose adjusted p-value stays below it and makes
    the rest inconclusive. With one claim in the family this is the per-claim verdict.

    Args:
        claims (list[dict]): saved claims, e.g. every ``results/*.json``'s; ids must be unique
            (prefix them with the chapter if they are not).
        confidence (float): as :func:`paired_interval`. Default: 0.95.

    Returns:
        dict[str, str]: the adjusted verdict of each sampled claim, by id.
    """
    alpha = (1 - check_number(confidence, "confidence", 0, 1, low_open=True, high_open=True)) / 2
    sampled = [c for c in claims if not c["exact"]]
    tested = {}
    for c in sampled:
        held, not_held = p_values(c)
        tested[c["id"]] = held if c["verdict"] == "held" else not_held if (
            c["verdict"] == "not held") else 1.0
    order = sorted(tested, key=tested.get)
    m, running, adjusted = len(order), 0.0, {}
    for rank, claim_id in enumerate(order):
        running = max(running, min(1.0, (m - rank) * tested[claim_id]))
        adjusted[claim_id] = running
    return {c["id"]: c["verdict"] if adjusted[c["id"]] < alpha else "inconclusive"
            for c in sampled}


def book_holm_verdicts(folder: Path | str | None = None,
                       confidence: float = CONFIDENCE) -> dict[str, str]:
    """The Holm verdicts of every sampled claim the chapters saved (chapter 5; the claims page).

    Reads every ``<chapter>.json`` directly inside ``folder`` (not its subfolders, such as the
    snapshot in ``previous/``), takes all their claims as one family and returns
    :func:`holm_verdicts` of it: the adjusted verdicts that the reproducibility page shows. A
    chapter that calls it right after :func:`save_results` reads its own claims together with
    those of every chapter saved before it.

    Args:
        folder (Path, str or None): the results folder. Default: :func:`results_dir`.
        confidence (float): as :func:`holm_verdicts`. Default: 0.95.

    Returns:
        dict[str, str]: the adjusted verdict of each sampled claim, by id.

    Raises:
        ValueError: if ``folder`` holds no results, or two saved claims share an id.
    """
    folder = results_dir() if folder is None else Path(folder)
    claims = [c for path in sorted(folder.glob("*.json"))
              for c in json.loads(path.read_text(encoding="utf-8"))["claims"]]
    if not claims:
        raise ValueError(f"folder must hold saved results (<chapter>.json), found none in {folder}")
    ids = [c["id"] for c in claims]
    if len(set(ids)) != len(ids):
        raise ValueError(f"claim ids must be unique across the saved results, got "
                         f"{sorted({i for i in ids if ids.count(i) > 1})} more than once")
    return holm_verdicts(claims, confidence)


def results_dir() -> Path:
    """Where chapters save their claims: ``$BOOK_RESULTS_DIR``, else ``results/`` in the repo.

    The test suite points ``$BOOK_RESULTS_DIR`` at a temporary folder, so that running the
    notebooks under test never overwrites the committed results.

    Returns:
        pathlib.Path: the folder (not created here; :func:`save_results` creates it).
    """
    return Path(os.environ.get("BOOK_RESULTS_DIR") or ROOT / "results")


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(
                    getattr(body[0], "value", None), ast.Constant) and isinstance(
                    body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def code_fingerprint(source: str) -> str:
    """SHA-256 of Python code without its docstrings and comments (its AST), for the library.

    Editing a docstring, a comment or the layout keeps the fingerprint; any change to what the
    code does (a name, a constant, a statement) changes it.
    """
    tree = _without_docstrings(ast.parse(source))
    return hashlib.sha256(ast.dump(tree, annotate_fields=True).encode()).hexdigest()


#: The name, in :func:`library_reach`, of a module's statements that are neither definitions
#: nor imports (e.g. an ``if``/``try`` block, a call): ``reweighting.x.<module-level statements>``.
MODULE_STATEMENTS = "<module-level statements>"


@dataclass
class _Module:
    """A library module as :func:`library_reach` reads it (or a notebook, with name ``""``).

    ``definitions``: module-level functions, classes and assignments to names, by name;
    ``bindings``: imported names, each ``("module", qualified name)``, ``("name", module,
    name)`` for a name of a sibling module, ``("external", import statement)``, or ``None`` for
    an import inside a function or notebook that binds no library name; ``header``: the other
    module-level statements (:data:`MODULE_STATEMENTS`).
    """

    name: str
    source: str = ""
    is_package: bool = False
    definitions: dict[str, ast.stmt] = field(default_factory=dict)
    bindings: dict[str, tuple | None] = field(default_factory=dict)
    header: list[ast.stmt] = field(default_factory=list)


def _in_package(module: str | None, package: str) -> bool:
    return module is not None and (module == package or module.startswith(package + "."))


def _absolute(node: ast.ImportFrom, importer: _Module) -> str | None:
    """The module an ``from ... import`` names, with a relative one made absolute."""
    if not node.level:
        return node.module
    parts = importer.name.split(".") if importer.name else []
    if not importer.is_package:
        parts = parts[:-1]
    if node.level - 1 >= len(parts):
        return None
    parts = parts[:len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def _import_bindings(node: ast.Import | ast.ImportFrom, importer: _Module, modules,
                     package: str, local: bool) -> dict[str, tuple | None]:
    """The names an import binds; outside the library ``("external", ...)``, or ``None`` when
    ``local`` (inside a function, or in a notebook: part of that code, not of the library)."""
    found = {}
    if isinstance(node, ast.Import):
        for alias in node.names:
            if _in_package(alias.name, package):
                found[alias.asname or package] = ("module", alias.name if alias.asname
                                                  else package)
            else:
                found[alias.asname or alias.name.split(".")[0]] = None if local else (
                    "external", ast.unparse(ast.Import(names=[alias])))
        return found
    base = _absolute(node, importer)
    if base == "__future__":
        return found
    for alias in node.names:
        name = alias.asname or alias.name
        if alias.name == "*":
            continue
        if not _in_package(base, package):
            found[name] = None if local else (
                "external", ast.unparse(ast.ImportFrom(module=base, names=[alias], level=0)))
        elif f"{base}.{alias.name}" in modules:
            found[name] = ("module", f"{base}.{alias.name}")
        else:
            found[name] = ("name", base, alias.name)
    return found


def _assigned_names(node: ast.stmt) -> list[str] | None:
    """The names a module-level ``x = ...``, ``x: T = ...`` or ``a, b = ...`` assigns; ``None``
    for any other statement."""
    if isinstance(node, ast.AnnAssign):
        targets = [node.target]
    elif isinstance(node, ast.Assign):
        targets = node.targets
    else:
        return None
    names = []
    for target in targets:
        items = target.elts if isinstance(target, (ast.Tuple, ast.List)) else [target]
        if not all(isinstance(item, ast.Name) for item in items):
            return None
        names += [item.id for item in items]
    return names


def _parse_module(name: str, path: Path, modules, package: str) -> _Module:
    source = path.read_text(encoding="utf-8")
    module = _Module(name, source, is_package=path.name == "__init__.py")
    for index, node in enumerate(ast.parse(source).body):
        if index == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the module's docstring
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            module.bindings.update(_import_bindings(node, module, modules, package, local=False))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            module.definitions[node.name] = node
        elif (assigned := _assigned_names(node)) is not None:
            module.definitions.update(dict.fromkeys(assigned, node))
        else:
            module.header.append(node)
    return module


def _library_modules(lib_dir: Path) -> dict[str, _Module]:
    """Every module of the library folder, by qualified name (the folder's name is the
    package's: ``lib/reweighting/losses.py`` is ``reweighting.losses``)."""
    lib_dir = Path(lib_dir)
    package = lib_dir.name
    paths = {package if path.stem == "__init__" else f"{package}.{path.stem}": path
             for path in sorted(lib_dir.glob("*.py"))}
    return {name: _parse_module(name, path, set(paths), package) for name, path in paths.items()}


def _header_defines(module: _Module, name: str) -> bool:
    """Whether the module's other statements (an ``if``/``try`` block) bind ``name``."""
    for node in ast.walk(ast.Module(body=module.header, type_ignores=[])):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and node.id == name:
            return True
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and (
                node.name == name):
            return True
        if isinstance(node, ast.alias) and (node.asname or node.name.split(".")[0]) == name:
            return True
    return False


def _target(modules: dict, module: _Module, name: str, binding, seen=frozenset()):
    """What the imported ``name`` of ``module`` is: ``("module", m)``, ``("key", (m, n))`` or
    ``None`` (not the library)."""
    if binding is None:
        return None
    if binding[0] == "module":
        return binding if binding[1] in modules else None
    if binding[0] == "external":
        return "key", (module.name, name)
    return _lookup(modules, binding[1], binding[2], seen)


def _lookup(modules: dict, module_name: str, name: str, seen=frozenset()):
    """What ``module_name.name`` is in the library, re-exports followed (as :func:`_target`)."""
    module = modules.get(module_name)
    if module is None or (module_name, name) in seen:
        return None
    if name in module.definitions:
        return "key", (module_name, name)
    if name in module.bindings:
        return _target(modules, module, name, module.bindings[name],
                       seen | {(module_name, name)})
    if f"{module_name}.{name}" in modules:
        return "module", f"{module_name}.{name}"
    if module.header and _header_defines(module, name):
        return "key", (module_name, MODULE_STATEMENTS)
    return None  # not in the library (e.g. a typo): nothing to fingerprint


def _whole(module: _Module) -> set[tuple[str, str]]:
    keys = {(module.name, name) for name in module.definitions}
    return keys | ({(module.name, MODULE_STATEMENTS)} if module.header else set())


def _resolve(modules: dict, module: _Module, bindings: dict, chain: list[str]) -> set:
    """The library definitions a name or attribute chain (``losses.focal_loss``) refers to."""
    head, *rest = chain
    if head in module.definitions:
        target = "key", (module.name, head)
    elif head in bindings:
        target = _target(modules, module, head, bindings[head])
    elif module.header and _header_defines(module, head):
        target = "key", (module.name, MODULE_STATEMENTS)
    else:
        return set()
    for attribute in rest:
        if target is None or target[0] != "module":
            break
        target = _lookup(modules, target[1], attribute)
    if target is None:
        return set()
    # a library module passed as a value (not one of its names): all of it may be used
    return _whole(modules[target[1]]) if target[0] == "module" else {target[1]}


def _chain(node: ast.AST) -> list[str] | None:
    """``["losses", "focal_loss"]`` for ``losses.focal_loss`` read (not assigned); else None."""
    attributes = []
    while isinstance(node, ast.Attribute):
        attributes.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or not isinstance(node.ctx, ast.Load):
        return None
    return [node.id, *reversed(attributes)]


def _references(node: ast.AST, module: _Module, modules: dict, package: str) -> set:
    """The library definitions the code of ``node`` (in ``module``) refers to by name."""
    bindings = dict(module.bindings)
    for inner in ast.walk(node):
        if isinstance(inner, (ast.Import, ast.ImportFrom)):
            bindings.update(_import_bindings(inner, module, modules, package, local=True))
    found, stack = set(), [node]
    while stack:
        inner = stack.pop()
        chain = _chain(inner)
        if chain:
            found |= _resolve(modules, module, bindings, chain)
        else:
            stack.extend(ast.iter_child_nodes(inner))
    return found


def _cell_code(source: str) -> list[ast.stmt]:
    """A code cell's statements as IPython runs them: magics and shell lines become calls
    (IPython's own input transformer), and the Python a magic runs (``%time f()``,
    ``%%timeit``'s body) counts as code where it parses."""
    from IPython.core.inputtransformer2 import TransformerManager

    tree = ast.parse(TransformerManager().transform_cell(source))
    body = list(tree.body)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and (
                node.func.attr in ("run_line_magic", "run_cell_magic")):
            for argument in node.args[1:]:
                if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                    with contextlib.suppress(SyntaxError):
                        body += _cell_code(argument.value)
    return body


def _code_cells(notebook: Path) -> list[tuple[str, list[str]]]:
    """Each code cell's source and sorted tags."""
    cells = []
    for cell in json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] == "code":
            source = cell["source"]
            cells.append(("".join(source) if isinstance(source, list) else source,
                          sorted(cell.get("metadata", {}).get("tags", []))))
    return cells


def _notebook_code(notebook: Path) -> ast.Module:
    body = []
    for index, (source, _) in enumerate(_code_cells(notebook)):
        try:
            body += _cell_code(source)
        except SyntaxError as error:
            raise ValueError(f"notebook must hold Python code cells: code cell {index} of "
                             f"{Path(notebook).name} does not parse ({error.msg}, line "
                             f"{error.lineno})") from None
    return ast.Module(body=body, type_ignores=[])


def _reached(notebook: Path, lib_dir: Path) -> tuple[dict[str, _Module], set[tuple[str, str]]]:
    """The library modules, and every (module, name) the notebook's code reaches."""
    modules = _library_modules(lib_dir)
    package = Path(lib_dir).name
    todo = _references(_notebook_code(notebook), _Module(""), modules, package)
    reached = set()
    while todo:
        key = todo.pop()
        if key in reached:
            continue
        reached.add(key)
        module_name, name = key
        module = modules[module_name]
        if module.header:
            todo.add((module_name, MODULE_STATEMENTS))
        if name == MODULE_STATEMENTS:
            nodes = module.header
        elif name in module.definitions:
            nodes = [module.definitions[name]]
        else:
            nodes = []  # an import of another package: its statement is all there is
        for node in nodes:
            todo |= _references(node, module, modules, package) - reached
    return modules, reached


def _source_of(module: _Module, name: str) -> str:
    """The code of a reached name: its statement(s), decorators included, or its import."""
    if name == MODULE_STATEMENTS:
        nodes = module.header
    elif name in module.definitions:
        nodes = [module.definitions[name]]
    else:
        return module.bindings[name][1]
    lines = module.source.splitlines()
    return "\n".join("\n".join(lines[min([node.lineno] + [d.lineno for d in getattr(
        node, "decorator_list", [])]) - 1:node.end_lineno]) for node in nodes)


def library_reach(notebook: Path, lib_dir: Path | None = None) -> dict[str, str]:
    """The library code a chapter reaches, each piece with its fingerprint (every chapter).

    The roots are the library names the notebook's code cells use, read by their AST (magics
    and shell lines as IPython reads them, ``_cell_code``): ``losses.focal_loss`` after
    ``from reweighting import losses``, ``focal_loss`` after ``from reweighting.losses import
    focal_loss``, ``reweighting.losses.focal_loss`` after ``import reweighting``, called or
    passed as a value (``partial(losses.focal_loss, ...)``). From them the library's call graph
    is walked: a reached module-level function, class (all its methods) or assignment brings
    every name its code refers to that is a module-level definition of its module, or a name
    imported from a sibling module (``from .losses import x``, ``from . import losses as
    _losses`` then ``_losses.x``, ``from .seeds import offset as seed_offset``), re-exports
    followed to where the name is defined. What a module runs at import beyond its definitions
    is reached as follows: an assignment to a name (a constant, a ``ContextVar``) where reached
    code refers to it; an import of another package (``import torch.nn.functional as F``) where
    reached code uses the name, as its import statement; and the module's other statements
    (an ``if``/``try`` block, a call; :data:`MODULE_STATEMENTS`) whenever anything of the
    module is reached. The walk over-approximates and never under-approximates what static
    names say: a local variable that shadows a module-level name reaches that name, and a
    library module passed as a value (not one of its names) reaches all of it. Names that are
    not in the library (a typo, ``F.cross_entropy``) are skipped.

    Args:
        notebook (pathlib.Path): the chapter.
        lib_dir (pathlib.Path, optional): the package folder, whose name is the package's
            import name. Default: this package, ``lib/reweighting/``.

    Returns:
        dict[str, str]: qualified name (``"reweighting.losses.focal_loss"``) -> the
        :func:`code_fingerprint` of its code, so that editing a docstring or comment keeps it.

    Raises:
        ValueError: if a code cell is not Python.
    """
    modules, reached = _reached(notebook, LIB if lib_dir is None else lib_dir)
    return {f"{module}.{name}": code_fingerprint(_source_of(modules[module], name))
            for module, name in sorted(reached)}


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def _pinned_versions() -> dict[str, str]:
    import importlib.metadata

    versions = {}
    for package in PINNED:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def device_class(device=None) -> str:
    """``"cpu"`` or ``"cuda"`` (or another ``torch.device`` type): where a chapter trains.

    Part of a result's fingerprint: a run on a GPU computes in another order (and with other
    kernels) than the book's CPU run, so it is its own run, not the committed one.

    Args:
        device (torch.device, str or None): the training device; ``None`` means
            :func:`reweighting.train.default_device`.
    """
    import torch

    return torch.device(device).type if device is not None else default_device().type


def _parts_and_reach(notebook: Path, scale: str, lib_dir: Path | None = None,
                     offset: int | None = None, versions: dict | None = None,
                     device=None) -> tuple[dict, dict[str, str]]:
    """:func:`fingerprint_parts` and the :func:`library_reach` its ``"library"`` part hashes."""
    reach = library_reach(notebook, lib_dir)
    parts = {"notebook": _digest(_code_cells(notebook)), "library": _digest(reach),
             "scale": scale, "seed offset": seed_offset() if offset is None else int(offset),
             "versions": _pinned_versions() if versions is None else dict(versions),
             "device class": device_class(device)}
    return parts, reach


def fingerprint_parts(notebook: Path, scale: str, lib_dir: Path | None = None,
                      offset: int | None = None, versions: dict | None = None,
                      device=None) -> dict:
    """Everything a chapter's saved results depend on, part by part (every chapter).

    Args:
        notebook (pathlib.Path): the chapter.
        scale (str): the scale it runs at.
        lib_dir (pathlib.Path, optional): as :func:`library_reach`.
        offset (int, optional): the seed offset. Default: :func:`reweighting.seeds.offset`.
        versions (dict, optional): the package versions. Default: the installed ones.
        device (torch.device, str or None): the training device, as :func:`device_class`.

    Returns:
        dict: ``"notebook"`` (SHA-256 of the code cells with their tags; prose and outputs do
        not count), ``"library"`` (SHA-256 of :func:`library_reach`: only the library code the
        chapter reaches counts, docstrings and comments not), ``"scale"``, ``"seed offset"``,
        ``"versions"`` (of the :data:`PINNED` packages) and ``"device class"``
        (:func:`device_class`).
    """
    return _parts_and_reach(notebook, scale, lib_dir, offset, versions, device)[0]


def results_fingerprint(notebook: Path, scale: str, lib_dir: Path | None = None,
                        **parts) -> str:
    """SHA-256 of :func:`fingerprint_parts`, saved with the results (every chapter).

    A test fails when it differs from the saved one, and :func:`stale_reasons` says which part
    changed.

    Returns:
        str: 64 hexadecimal digits.
    """
    return _digest(fingerprint_parts(notebook, scale, lib_dir, **parts))


_KINDS = ((ast.FunctionDef, "function"), (ast.AsyncFunctionDef, "function"),
          (ast.ClassDef, "class"), (ast.Assign, "variable"), (ast.AnnAssign, "variable"))


def _kind(modules: dict[str, _Module], key: str) -> str:
    """``"function"``, ``"class"``, ``"variable"``, ``"import"`` or ``"code"`` (module-level
    statements): what a :func:`library_reach` name is in the library now."""
    module_name, _, name = key.rpartition(".")
    module = modules.get(module_name)
    if name == MODULE_STATEMENTS:
        return "code"
    if module is not None and name in module.definitions:
        return next(kind for node_type, kind in _KINDS
                    if isinstance(module.definitions[name], node_type))
    if module is not None and name in module.bindings:
        return "import"
    return "definition"  # gone from the library


def _library_reasons(saved: dict[str, str], now: dict[str, str], lib_dir: Path) -> list[str]:
    """One sentence per library name that changed, entered the reach or left it."""
    modules = _library_modules(lib_dir)
    reasons = []
    for key in sorted(set(saved) | set(now)):
        kind = _kind(modules, key)
        if key not in saved:
            reasons.append(f"library {kind} {key} is now reached by the chapter and was not "
                           f"when it ran")
        elif key not in now:
            reasons.append(f"library {kind} {key} is no longer reached by the chapter")
        elif saved[key] != now[key]:
            reasons.append(f"library {kind} {key} changed since the run (docstrings and "
                           f"comments do not count)")
    return reasons


#: The fingerprint parts in the order :func:`stale_reasons` reports them.
PARTS = ("notebook", "library", "scale", "seed offset", "versions", "device class")


def _part_reasons(part: str, was, now, notebook: Path) -> list[str]:
    """Why a fingerprint part other than the library differs, naming both values."""
    if part == "notebook":
        return [f"the code cells or tags of {Path(notebook).name} changed"]
    if part == "scale":
        return [f"the scale is {now}, the results were made at scale {was}"]
    if part == "seed offset":
        return [f"BOOK_SEED_OFFSET is {now}, the results used {was}"]
    if part == "device class":
        return [f"the results were made on {was}, this machine trains on {now}: a run on "
                f"another kind of device is its own run, not the committed one"]
    if part == "versions" and isinstance(was, dict) and isinstance(now, dict):
        return [f"{package} is {now.get(package)}, the results were made with "
                f"{was.get(package)}" for package in sorted(set(was) | set(now))
                if was.get(package) != now.get(package)]
    return [f"the fingerprint part {part!r} is {now!r}, the results used {was!r}"]


def _record_disagrees(record: dict, saved: dict) -> list[str]:
    """Where the record's own fields (shown on the page) differ from its fingerprint parts."""
    reasons = [f"the record's {key} is {record[key]}, its fingerprint's {saved.get(key)}"
               for key in ("scale", "seed offset", "device class")
               if key in record and record[key] != saved.get(key)]
    shown = record.get("versions", {})
    reasons += [f"the record's {package} version is {shown[package]}, its fingerprint's {version}"
                for package, version in sorted(saved.get("versions", {}).items())
                if package in shown and shown[package] != version]
    if _digest(record["library"]) != saved["library"]:
        reasons.append("the saved library fingerprint does not match the record's library "
                       "functions")
    return reasons


def stale_reasons(record: dict, notebook: Path, lib_dir: Path | None = None, *,
                  scale: str | None = None) -> list[str]:
    """Why a saved record no longer matches the code and environment; empty when it does.

    Every saved fingerprint part is compared with the current one: the notebook's code, the
    library code the chapter reaches (:func:`library_reach`, named function by function), the
    scale, the seed offset and each pinned package's version; then the record's own scale,
    seed offset, versions and library functions with its parts, and its fingerprint with the
    hash of its parts.

    Args:
        record (dict): a saved ``results/<chapter>.json``.
        notebook (pathlib.Path): its chapter.
        lib_dir (pathlib.Path, optional): as :func:`library_reach`.
        scale (str, optional): the scale the results must have been made at. Default:
            :func:`reweighting.train.book_scale` (``$BOOK_SCALE``, else ``"full"``); the test
            of the committed results passes ``"full"``, the book's run.

    Returns:
        list[str]: one sentence per difference, naming the part (or library function) and,
        for scale, seed offset and versions, both values. A record made before fingerprints
        by part, or before per-chapter library fingerprints, gets one sentence saying so.
    """
    saved = record.get("fingerprint parts")
    if not saved:
        return ["the results predate fingerprints by part: rerun the chapter"]
    if "library" not in saved or not isinstance(record.get("library"), dict):
        return ["the results were made before per-chapter library fingerprints (they "
                "fingerprint all of lib/): rerun the chapter"]
    now, reach = _parts_and_reach(notebook, book_scale() if scale is None else scale, lib_dir)
    reasons = []
    for part in sorted(set(saved) | set(now),
                       key=lambda p: (PARTS.index(p) if p in PARTS else len(PARTS), p)):
        if saved.get(part) == now.get(part):
            continue
        if part == "library":
            reasons += _library_reasons(record["library"], reach,
                                        LIB if lib_dir is None else lib_dir)
        else:
            reasons += _part_reasons(part, saved.get(part), now.get(part), notebook)
    reasons += _record_disagrees(record, saved)
    if record.get("fingerprint") != _digest(saved):
        reasons.append("the saved fingerprint does not match its saved parts")
    return reasons


def _own_seeds(seeds, c: dict) -> list[int]:
    """The seeds a claim's values were computed over, checked (:meth:`Claims.fill`)."""
    if c["exact"]:
        raise ValueError(f"seeds must not be given for claim {c['id']}: it is exact, with no "
                         f"sampling over seeds")
    listed = list(seeds)
    if not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 0
               for s in listed):
        raise ValueError(f"seeds must be non-negative integers, got {listed!r}")
    if len(set(listed)) != len(listed) or len(listed) != c["n"]:
        raise ValueError(f"seeds must list {c['n']} distinct seeds, one per value of claim "
                         f"{c['id']}, got {len(listed)} ({len(set(listed))} distinct)")
    return [int(s) for s in listed]


def claim_problems(record: dict) -> list[str]:
    """Claims whose number of values is not their number of seeds; empty when none is.

    A sampled claim holds one value per seed: ``n`` and the number of its ``values`` must equal
    the number of seeds it was computed over, the chapter's (``record["seeds"]``, those given
    to :func:`save_results`) unless the claim lists its own (``Claims.fill(..., seeds=...)``,
    e.g. chapter 3's Gaussian training sets, more than its network seeds), which must be
    distinct. An exact claim (``exact=True``) is no sample over seeds: it holds one value,
    ``n`` is 1, and it lists no seeds. A claim with a value dropped (and its interval
    recomputed from the rest, so that :func:`recompute` agrees) is named here.

    Args:
        record (dict): a saved ``results/<chapter>.json``, or ``{"seeds": ..., "claims":
            ...}``.

    Returns:
        list[str]: one sentence per claim that does not match.
    """
    problems = []
    for c in record["claims"]:
        count, own = len(c["values"]), c.get("seeds")
        if c["exact"]:
            if c["n"] != 1 or count != 1 or own is not None:
                problems.append(f"claim {c['id']} is exact but has n {c['n']}, {count} values"
                                + ("" if own is None else " and seeds")
                                + ": an exact claim holds one value and no seeds")
            continue
        seeds, whose = (own, "its own") if own is not None else (record["seeds"], "the chapter's")
        if c["n"] != len(seeds) or count != len(seeds):
            problems.append(f"claim {c['id']} has n {c['n']} and {count} values, but "
                            f"{len(seeds)} seeds ({whose}): a sampled claim holds one value per "
                            f"seed")
        elif own is not None and len(set(own)) != len(own):
            problems.append(f"claim {c['id']} lists a seed more than once")
    return problems


def environment() -> dict:
    """Library versions, Python, and the CPU with its vector instruction set (every chapter)."""
    import platform

    import torch

    versions = {"python": platform.python_version(), **_pinned_versions()}
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"versions": versions, "cpu": cpu,
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def save_results(chapter: str, claims: Claims, *, scale: str, seeds, seconds: float,
                 device=None) -> dict:
    """Save the claims a chapter tested to ``results_dir()/<chapter>.json`` (every chapter).

    Call it before asserting anything, so that a claim that did not hold is saved and reported
    rather than lost. The file also records the scale, device, the seeds and the seed offset,
    wall time, library versions, CPU, the fingerprint by parts (:func:`fingerprint_parts`) and,
    under ``"library"``, the fingerprint of each piece of library code the chapter reaches
    (:func:`library_reach`), by which a test detects results older than the notebook's code,
    the library functions it uses (named), the scale, the seed offset or the pinned packages
    (:func:`stale_reasons`). The reproducibility page is generated from these files.

    Args:
        chapter (str): the notebook's name without ``.ipynb``; it must exist in ``chapters/``.
        claims (Claims): the chapter's claims, every declared one filled.
        scale (str): the scale preset, ``"quick"`` or ``"full"``.
        seeds (sequence of int): the seeds trained; saved as a list. Every sampled claim
            holds one value per seed, of these or of its own (:func:`claim_problems`).
        seconds (float): the chapter's training wall time.
        device (torch.device, str or None): as :func:`reweighting.report.device_name`.

    Returns:
        dict: the record written (show it with :func:`reweighting.report.claims_markdown`); its
        ``"path"`` is the file.

    Raises:
        ValueError: on an unknown chapter, a scale other than ``quick``/``full``, claims that
            are not a :class:`Claims`, have declared claims left unfilled, or a sampled claim
            whose number of values is not its number of seeds (:func:`claim_problems`).
    """
    notebook = ROOT / "chapters" / f"{chapter}.ipynb"
    if not notebook.exists():
        raise ValueError(f"chapter must name a notebook in chapters/, got {chapter!r}")
    if scale not in ("quick", "full"):
        raise ValueError(f"scale must be 'quick' or 'full', got {scale!r}")
    if not isinstance(claims, Claims):
        raise ValueError(f"claims must be a reweighting.evidence.Claims, declared before the "
                         f"run, got {type(claims).__name__}")
    filled, seeds = claims.results(), [int(s) for s in seeds]
    problems = claim_problems({"seeds": seeds, "claims": filled})
    if problems:
        raise ValueError("claims must hold one value per seed: " + "; ".join(problems))
    parts, reach = _parts_and_reach(notebook, scale, device=device)
    record = {
        "chapter": chapter,
        "fingerprint": _digest(parts),
        "fingerprint parts": parts,
        "library": reach,
        "scale": scale,
        "device": device_name(device),
        "device class": parts["device class"],
        "seeds": seeds,
        "seed offset": parts["seed offset"],
        "seconds": round(float(seconds), 1),
        **environment(),
        "claims": filled,
    }
    folder = results_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{chapter}.json"
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return {**record, "path": path}
