"""How the chapters report: mean ± spread over seeds, tables, provenance, and saved claims.

The spread is always the sample standard deviation over seeds (``ddof=1``, 0 for a single seed),
in tables (:func:`mean_std`) and plots (:func:`mean_and_std`) alike.

Every chapter ends by saving the claims it tested with :func:`save_results`; the
reproducibility page of the book is generated from those files, and a test checks that each
file is there and was produced by the notebook's current code.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path

import numpy as np
import torch

from .losses import check_number

__all__ = [
    "mean_and_std",
    "mean_std",
    "markdown_table",
    "device_name",
    "provenance",
    "results_dir",
    "paired_interval",
    "verdict",
    "claim",
    "claimed",
    "interval_text",
    "claims_markdown",
    "glue",
    "results_fingerprint",
    "environment",
    "save_results",
]

ROOT = Path(__file__).resolve().parent.parent


def _float_array(values) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double()
    return np.asarray(values, dtype=np.float64)


def mean_and_std(values, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample standard deviation along ``axis``, for error bars (every chapter).

    The spread of the chapters' plots, the same as :func:`mean_std` gives their tables: the
    standard deviation with ``ddof=1``, and 0 where ``axis`` holds a single value.

    Args:
        values (Tensor, array or sequence): numbers of any shape (e.g. ``(L, S)``, losses by
            seeds), any device.
        axis (int): the axis to reduce, usually the seeds' axis; negative counts from the end.

    Returns:
        tuple[numpy.ndarray, numpy.ndarray]: ``(mean, std)``, float64, each of the shape of
        ``values`` without ``axis``.

    Raises:
        ValueError: if ``axis`` is out of range or holds no values.
    """
    values = _float_array(values)
    axis = check_number(axis, "axis", -values.ndim, values.ndim, high_open=True, integer=True)
    count = values.shape[axis]
    if count == 0:
        raise ValueError("values must hold at least one number along axis")
    mean = np.asarray(values.mean(axis=axis))
    std = np.asarray(values.std(axis=axis, ddof=1)) if count > 1 else np.zeros_like(mean)
    return mean, std


def mean_std(values, digits: int = 3) -> str:
    """``"mean ± std"`` of per-seed values, for tables (every chapter).

    The spread is :func:`mean_and_std`'s: the standard deviation with ``ddof=1``, 0 for a
    single value.

    Args:
        values (Tensor, array or sequence): per-seed numbers, any shape (flattened), any device.
        digits (int): decimals of both numbers. Default: ``3``.

    Returns:
        str: e.g. ``"0.800 ± 0.100"``.

    Raises:
        ValueError: if ``values`` is empty.
    """
    values = _float_array(values).ravel()
    if values.size == 0:
        raise ValueError("values must hold at least one number")
    mean, std = mean_and_std(values, axis=0)
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def markdown_table(headers, rows):
    """A Markdown table, rendered as a table in the book (every chapter).

    Args:
        headers (sequence): the column titles; each is shown with ``str``.
        rows (sequence of sequences): the cells, each row as long as ``headers``.

    Returns:
        IPython.display.Markdown: the table, one header line, one rule, one line per row.

    Raises:
        ValueError: if a row has a different number of cells than ``headers``.
    """
    from IPython.display import Markdown

    headers = [str(h) for h in headers]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"every row must have {len(headers)} cells, got {len(row)}: {row}")
        lines.append("| " + " | ".join(str(cell) for cell in row) + " |")
    return Markdown("\n".join(lines))


def device_name(device: torch.device | str | None = None) -> str:
    """A readable name for a device: the GPU's model, or the CPU with its thread count.

    Used in every chapter's :func:`provenance` line and saved results.

    Args:
        device (torch.device, str or None): the device; ``None`` means CUDA when available,
            else the CPU. Default: ``None``.

    Returns:
        str: e.g. ``"cuda (NVIDIA H200)"`` or ``"cpu (x86_64, 2 threads)"``.
    """
    device = torch.device(device) if device is not None else None
    if device is None:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"


def provenance(scale: str, seeds, seconds: float, device=None) -> str:
    """One line saying where and how a result was produced, printed under each experiment.

    Args:
        scale (str): the scale preset, ``"quick"`` or ``"full"`` (:func:`lib.train.by_scale`).
        seeds (sequence): the seeds trained; only their number is shown.
        seconds (float): the experiment's wall time.
        device (torch.device, str or None): as :func:`device_name`. Default: ``None``.

    Returns:
        str: ``"provenance: device ... | scale ... | seeds ... | wall time ... s | torch ... |
        sympy ..."``.
    """
    import sympy

    return (
        f"provenance: device {device_name(device)} | scale {scale} | seeds {len(seeds)} | "
        f"wall time {seconds:.1f} s | torch {torch.__version__} | sympy {sympy.__version__}"
    )


def results_dir() -> Path:
    """Where chapters save their claims: ``$BOOK_RESULTS_DIR``, else ``results/`` in the repo.

    The test suite points ``$BOOK_RESULTS_DIR`` at a temporary folder, so that running the
    notebooks under test never overwrites the committed results.

    Returns:
        pathlib.Path: the folder (not created here; :func:`save_results` creates it).
    """
    return Path(os.environ.get("BOOK_RESULTS_DIR") or ROOT / "results")


DIRECTIONS = ("greater", "less", "equivalent")
VERDICTS = ("held", "not held", "inconclusive")


def paired_interval(values, confidence: float = 0.95) -> tuple[float, float, float, int]:
    """Mean and two-sided t confidence interval of per-seed (paired) values (every chapter).

    Args:
        values (array-like or Tensor): one number per seed, e.g. the per-seed difference between
            two methods trained from the same seed on the same data draw.
        confidence (float): the interval's coverage, in (0, 1). Default: 0.95.

    Returns:
        tuple: ``(mean, low, high, n)``. The interval is ``mean ± t * s / sqrt(n)`` with ``s``
        the sample standard deviation and ``t`` the quantile of Student's t with ``n - 1``
        degrees of freedom (``scipy.stats.t``). With one value the spread is unknown and the
        interval is ``(-inf, inf)``; with zero spread it is the point ``[mean, mean]``.

    Raises:
        ValueError: if ``values`` is empty or not finite, or ``confidence`` is out of range.
    """
    from scipy import stats

    check_number(confidence, "confidence", 0, 1, low_open=True, high_open=True)
    values = _float_array(values).ravel()
    if values.size == 0 or not np.isfinite(values).all():
        raise ValueError(f"values must hold at least one finite number, got {values.tolist()}")
    n, mean = values.size, float(values.mean())
    if n == 1:
        return mean, -np.inf, np.inf, 1
    if np.ptp(values) == 0:  # every seed gave the same value
        return float(values[0]), float(values[0]), float(values[0]), n
    sem = float(values.std(ddof=1)) / np.sqrt(n)
    half = float(stats.t.ppf(0.5 + confidence / 2, df=n - 1)) * sem
    return mean, mean - half, mean + half, n


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
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if (direction == "equivalent") != (delta is not None):
        raise ValueError(f"delta must be given for direction 'equivalent' and only then, got "
                         f"direction {direction!r} and delta {delta!r}")
    if low > high:
        raise ValueError(f"low must not exceed high, got [{low}, {high}]")
    if direction == "greater":
        return "held" if low > threshold else "not held" if high <= threshold else "inconclusive"
    if direction == "less":
        return "held" if high < threshold else "not held" if low >= threshold else "inconclusive"
    delta = check_number(delta, "delta", 0, low_open=True)
    if threshold - delta < low and high < threshold + delta:
        return "held"
    if low >= threshold + delta or high <= threshold - delta:
        return "not held"
    return "inconclusive"


def claim(id: str, text: str, *, source: str, measure: str, values, direction: str,  # noqa: A002
          threshold: float = 0.0, delta: float | None = None, exact: bool = False,
          detail: str = "") -> dict:
    """One claim a chapter tests, with its verdict (every chapter; saved by :func:`save_results`).

    Args:
        id (str): e.g. ``"3.1"``.
        text (str): the claim, one sentence.
        source (str): ``"article"`` (the article's claim) or ``"beyond"`` (the book's own).
        measure (str): what ``values`` measure, e.g. "balanced accuracy, LA minus CE (paired)".
        values (array-like): one number per seed (paired differences where two methods are
            compared), or, with ``exact=True``, the one value of a deterministic computation.
        direction (str), threshold (float), delta (float, optional): the claim, declared before
            it runs, as in :func:`verdict`.
        exact (bool): the measure has no sampling noise (a float64 identity, a closed form), so
            its interval is the value itself. Default: False.
        detail (str): the numbers behind it, for the reader.

    Returns:
        dict: the fields above plus ``n``, ``mean``, ``std``, ``low``, ``high`` (the 95%
        interval of :func:`paired_interval`) and ``verdict``.

    Raises:
        ValueError: for a bad ``source``, ``direction`` or ``delta``, or empty values.
    """
    if source not in ("article", "beyond"):
        raise ValueError(f"source must be 'article' or 'beyond', got {source!r}")
    values = _float_array(values).ravel()
    if exact:
        if values.size != 1:
            raise ValueError(f"an exact claim has one value, got {values.size}")
        mean = low = high = float(values[0])
        n = 1
    else:
        mean, low, high, n = paired_interval(values)
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return {"id": str(id), "claim": text, "source": source, "measure": measure,
            "direction": direction, "threshold": float(threshold),
            "delta": None if delta is None else float(delta), "exact": bool(exact),
            "values": [float(v) for v in values], "n": n, "mean": mean, "std": std,
            "low": float(low), "high": float(high),
            "verdict": verdict(low, high, direction, threshold, delta), "detail": detail}


def claimed(c: dict) -> str:
    """The claim's declared direction as text, e.g. ``"> 0"`` or ``"within 0 ± 0.005"``."""
    if c["direction"] == "equivalent":
        return f"within {_short(c['threshold'])} ± {_short(c['delta'])}"
    return f"{'>' if c['direction'] == 'greater' else '<'} {_short(c['threshold'])}"


def _short(x: float) -> str:
    if x == 0:
        return "0"
    return f"{x:.0e}" if abs(x) < 1e-3 else f"{x:g}"


def _number(x: float) -> str:
    if not np.isfinite(x):
        return "∞" if x > 0 else "-∞"
    return f"{x:.1e}" if x != 0 and abs(x) < 1e-3 else f"{x:+.3f}"


def interval_text(c: dict) -> str:
    """The claim's 95% interval as text, ``"[low, high]"`` (or ``"exact"``)."""
    return "exact" if c["exact"] else f"[{_number(c['low'])}, {_number(c['high'])}]"


def claims_markdown(record: dict):
    """The claims of a saved record as a Markdown table (``IPython.display.Markdown``).

    Each chapter displays it right after :func:`save_results`, and a test checks that the
    committed notebook shows exactly the table of its committed ``results/<chapter>.json``.
    """
    rows = [[c["id"], c["claim"], claimed(c), c["n"], _number(c["mean"]), interval_text(c),
             c["verdict"] if c["verdict"] == "held" else f"**{c['verdict']}**"]
            for c in record["claims"]]
    return markdown_table(["id", "claim", "claimed", "n", "mean", "95% interval", "verdict"],
                          [[str(cell).replace("|", "\\|") for cell in row] for row in rows])


def glue(name: str, value) -> None:
    """Record ``value`` under ``name`` for the chapter's prose (every chapter).

    The same output as myst-nb's ``glue(name, value, display=False)``, without importing
    myst-nb (which pulls in Sphinx), so that a chapter runs where only the numerical stack is
    installed. The prose quotes a number with ``{glue:text}`name:.3f``` and a string with
    ``{glue:md}`name```, so what the text states is always what the run produced.

    Args:
        name (str): a name unique in the book.
        value: a number, or a string (glued as Markdown).
    """
    from IPython.core.formatters import format_display_data
    from IPython.display import display

    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    if isinstance(value, str):  # quoted with {glue:md}`name`, e.g. a verdict
        from IPython.display import Markdown

        value = Markdown(value)
    bundle, metadata = format_display_data(value)
    prefix = "application/papermill.record/"
    metadata["scrapbook"] = {"name": name, "mime_prefix": prefix}
    display({prefix + key: v for key, v in bundle.items()}, raw=True, metadata=metadata)


LIB = Path(__file__).resolve().parent


def results_fingerprint(notebook: Path, scale: str, lib_dir: Path = LIB) -> str:
    """SHA-256 of everything a chapter's saved results depend on (every chapter).

    It covers the notebook's code cells with their tags (prose and outputs do not count), the
    source of every module in ``lib/``, and the scale. :func:`save_results` records it, and a
    test fails when the notebook's code or tags, the library or the scale changed since the
    chapter last ran.

    Args:
        notebook (pathlib.Path or str): path of an ``.ipynb`` file.
        scale (str): the scale the results were produced at.
        lib_dir (pathlib.Path): the library folder. Default: this ``lib/``.

    Returns:
        str: 64 hexadecimal digits.
    """
    digest = hashlib.sha256()
    cells = json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        tags = sorted(cell.get("metadata", {}).get("tags", []))
        digest.update(json.dumps([source, tags]).encode())
    for module in sorted(Path(lib_dir).glob("*.py")):
        digest.update(module.name.encode() + b"\0" + module.read_bytes())
    digest.update(b"scale\0" + scale.encode())
    return digest.hexdigest()


def environment() -> dict:
    """Library versions, Python, and the CPU with its vector instruction set (every chapter)."""
    import importlib.metadata

    import sympy

    versions = {"python": platform.python_version(), "torch": torch.__version__,
                "sympy": sympy.__version__, "numpy": np.__version__}
    for package in ("scikit-learn", "scipy", "mnist1d"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
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


def save_results(chapter: str, claims: list[dict], *, scale: str, seeds, seconds: float,
                 device=None) -> dict:
    """Save the claims a chapter tested to ``results_dir()/<chapter>.json`` (every chapter).

    Call it before asserting anything, so that a claim that did not hold is saved and reported
    rather than lost. The file also records the scale, device, number of seeds, wall time,
    library versions, CPU, and the :func:`results_fingerprint`, by which a test detects
    results older than the notebook's code, the library or the scale. The reproducibility page
    is generated from these files.

    Args:
        chapter (str): the notebook's name without ``.ipynb``; it must exist in ``chapters/``.
        claims (list[dict]): each made by :func:`claim`.
        scale (str): the scale preset, ``"quick"`` or ``"full"``.
        seeds (sequence): the seeds trained; their number is saved.
        seconds (float): the chapter's training wall time.
        device (torch.device, str or None): as :func:`device_name`. Default: ``None``.

    Returns:
        dict: the record written (show it with :func:`claims_markdown`); its ``"path"`` is the
        file.

    Raises:
        ValueError: on an unknown chapter, a scale other than ``quick``/``full``, a claim not
            made by :func:`claim`, or repeated claim ids.
    """
    notebook = ROOT / "chapters" / f"{chapter}.ipynb"
    if not notebook.exists():
        raise ValueError(f"chapter must name a notebook in chapters/, got {chapter!r}")
    if scale not in ("quick", "full"):
        raise ValueError(f"scale must be 'quick' or 'full', got {scale!r}")
    for c in claims:
        if not isinstance(c, dict) or "verdict" not in c or "values" not in c:
            raise ValueError("each claim must be made by lib.report.claim")
    ids = [c["id"] for c in claims]
    if len(set(ids)) != len(ids):
        raise ValueError(f"claim ids must be distinct, got {ids}")
    record = {
        "chapter": chapter,
        "fingerprint": results_fingerprint(notebook, scale),
        "scale": scale,
        "device": device_name(device),
        "seeds": len(seeds),
        "seconds": round(float(seconds), 1),
        **environment(),
        "claims": claims,
    }
    folder = results_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{chapter}.json"
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return {**record, "path": path}
