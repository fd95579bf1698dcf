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
   depend on (:func:`fingerprint_parts`), so that a test can tell when they went stale and why
   (:func:`stale_reasons`), and recompute every verdict from its stored values
   (:func:`recompute`).

The reproducibility page adds, beside each per-claim 95% verdict, the verdict under Holm's
correction over the whole book's family of sampled claims (:func:`holm_verdicts`).
How the claims are shown (tables, the interval as text) is in :mod:`lib.report`.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from .losses import check_number
from .report import device_name, to_float64
from .seeds import offset as seed_offset

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
    "results_dir",
    "code_fingerprint",
    "fingerprint_parts",
    "results_fingerprint",
    "stale_reasons",
    "environment",
    "save_results",
]

ROOT = Path(__file__).resolve().parent.parent
LIB = Path(__file__).resolve().parent

DIRECTIONS = ("greater", "less", "equivalent")
VERDICTS = ("held", "not held", "inconclusive")
SOURCES = ("article", "literature", "beyond")
#: The packages whose versions the results depend on: a different version makes them stale.
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
          detail: str = "", cite: str | None = None, test_set: str = "") -> dict:
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

    Returns:
        dict: the fields above plus ``n``, ``mean``, ``std``, ``low``, ``high`` (the 95%
        interval of :func:`paired_interval`) and ``verdict``.

    Raises:
        ValueError: for a bad ``source``/``cite``, ``direction`` or ``delta``, or empty values.
    """
    _check_source(source, cite)
    _check_claim_form(direction, delta)
    values = to_float64(values).ravel()
    if exact:
        if values.size != 1:
            raise ValueError(f"an exact claim has one value, got {values.size}")
        mean = low = high = float(values[0])
        n = 1
    else:
        mean, low, high, n = paired_interval(values)
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return {"id": str(id), "claim": text, "source": source, "cite": cite, "measure": measure,
            "direction": direction, "threshold": float(threshold),
            "delta": None if delta is None else float(delta), "exact": bool(exact),
            "test_set": test_set, "values": [float(v) for v in values], "n": n, "mean": mean,
            "std": std, "low": float(low), "high": float(high),
            "verdict": verdict(low, high, direction, threshold, delta), "detail": detail}


_DECLARED = ("id", "claim", "source", "cite", "measure", "direction", "threshold", "delta",
             "exact", "test_set")


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
                exact: bool = False, cite: str | None = None, test_set: str = "") -> None:
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
        self.declared[str(id)] = dict(zip(_DECLARED, (
            str(id), text, source, cite, measure, direction, float(threshold),
            None if delta is None else float(delta), bool(exact), test_set)))

    def fill(self, id: str, values, detail: str = "") -> dict:  # noqa: A002
        """The declared claim ``id`` with its values, interval and verdict (:func:`claim`).

        Raises:
            ValueError: for an undeclared or already filled id, or bad values.
        """
        if str(id) not in self.declared:
            raise ValueError(f"claim {id!r} was not declared; declared: {list(self.declared)}")
        if str(id) in self.filled:
            raise ValueError(f"claim {id!r} is already filled")
        spec = dict(self.declared[str(id)])
        spec["text"] = spec.pop("claim")
        filled = claim(**spec, values=values, detail=detail)
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
    """SHA-256 of Python code without its docstrings and comments (its AST), for ``lib/``.

    Editing a docstring, a comment or the layout keeps the fingerprint; any change to what the
    code does (a name, a constant, a statement) changes it.
    """
    tree = _without_docstrings(ast.parse(source))
    return hashlib.sha256(ast.dump(tree, annotate_fields=True).encode()).hexdigest()


def _pinned_versions() -> dict[str, str]:
    import importlib.metadata

    versions = {}
    for package in PINNED:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def fingerprint_parts(notebook: Path, scale: str, lib_dir: Path = LIB,
                      offset: int | None = None, versions: dict | None = None) -> dict:
    """Everything a chapter's saved results depend on, part by part (every chapter).

    Returns:
        dict: ``"notebook"`` (SHA-256 of the code cells with their tags; prose and outputs do
        not count), ``"lib"`` (SHA-256 of every ``lib/*.py``'s code, by
        :func:`code_fingerprint`), ``"scale"``, ``"seed offset"`` (:func:`lib.seeds.offset`) and
        ``"versions"`` (of the :data:`PINNED` packages).
    """
    notebook_digest = hashlib.sha256()
    for cell in json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        tags = sorted(cell.get("metadata", {}).get("tags", []))
        notebook_digest.update(json.dumps([source, tags]).encode())
    lib_digest = hashlib.sha256()
    for module in sorted(Path(lib_dir).glob("*.py")):
        lib_digest.update(module.name.encode() + b"\0"
                          + code_fingerprint(module.read_text(encoding="utf-8")).encode())
    return {"notebook": notebook_digest.hexdigest(), "lib": lib_digest.hexdigest(),
            "scale": scale, "seed offset": seed_offset() if offset is None else int(offset),
            "versions": _pinned_versions() if versions is None else dict(versions)}


def results_fingerprint(notebook: Path, scale: str, lib_dir: Path = LIB, **parts) -> str:
    """SHA-256 of :func:`fingerprint_parts`, saved with the results (every chapter).

    A test fails when it differs from the saved one, and :func:`stale_reasons` says which part
    changed.

    Returns:
        str: 64 hexadecimal digits.
    """
    found = fingerprint_parts(notebook, scale, lib_dir, **parts)
    return hashlib.sha256(json.dumps(found, sort_keys=True).encode()).hexdigest()


def stale_reasons(record: dict, notebook: Path, lib_dir: Path = LIB) -> list[str]:
    """Why a saved record no longer matches the code and environment; empty when it does.

    Args:
        record (dict): a saved ``results/<chapter>.json``.
        notebook (pathlib.Path): its chapter.
        lib_dir (pathlib.Path): the library folder. Default: this ``lib/``.

    Returns:
        list[str]: one sentence per part that changed (the notebook's code, ``lib/``'s code,
        the scale, the seed offset, each package version).
    """
    saved = record.get("fingerprint parts")
    if not saved:
        return ["the results predate fingerprints by part: rerun the chapter"]
    now = fingerprint_parts(notebook, record["scale"], lib_dir)
    reasons = []
    if saved["notebook"] != now["notebook"]:
        reasons.append(f"the code cells or tags of {Path(notebook).name} changed")
    if saved["lib"] != now["lib"]:
        reasons.append("the code of lib/ changed (docstrings and comments do not count)")
    if saved["seed offset"] != now["seed offset"]:
        reasons.append(f"BOOK_SEED_OFFSET is {now['seed offset']}, the results used "
                       f"{saved['seed offset']}")
    for package in sorted(set(saved["versions"]) | set(now["versions"])):
        was, is_now = saved["versions"].get(package), now["versions"].get(package)
        if was != is_now:
            reasons.append(f"{package} is {is_now}, the results were made with {was}")
    if record.get("fingerprint") != hashlib.sha256(
            json.dumps(saved, sort_keys=True).encode()).hexdigest():
        reasons.append("the saved fingerprint does not match its saved parts")
    return reasons


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
    wall time, library versions, CPU, and the fingerprint by parts
    (:func:`fingerprint_parts`), by which a test detects results older than the notebook's
    code, the library, the scale, the seed offset or the pinned packages. The reproducibility
    page is generated from these files.

    Args:
        chapter (str): the notebook's name without ``.ipynb``; it must exist in ``chapters/``.
        claims (Claims): the chapter's claims, every declared one filled.
        scale (str): the scale preset, ``"quick"`` or ``"full"``.
        seeds (sequence of int): the seeds trained; saved as a list.
        seconds (float): the chapter's training wall time.
        device (torch.device, str or None): as :func:`lib.report.device_name`.

    Returns:
        dict: the record written (show it with :func:`lib.report.claims_markdown`); its
        ``"path"`` is the file.

    Raises:
        ValueError: on an unknown chapter, a scale other than ``quick``/``full``, claims that
            are not a :class:`Claims` or have declared claims left unfilled.
    """
    notebook = ROOT / "chapters" / f"{chapter}.ipynb"
    if not notebook.exists():
        raise ValueError(f"chapter must name a notebook in chapters/, got {chapter!r}")
    if scale not in ("quick", "full"):
        raise ValueError(f"scale must be 'quick' or 'full', got {scale!r}")
    if not isinstance(claims, Claims):
        raise ValueError(f"claims must be a lib.evidence.Claims, declared before the run, got "
                         f"{type(claims).__name__}")
    filled = claims.results()
    parts = fingerprint_parts(notebook, scale)
    record = {
        "chapter": chapter,
        "fingerprint": hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest(),
        "fingerprint parts": parts,
        "scale": scale,
        "device": device_name(device),
        "seeds": [int(s) for s in seeds],
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
