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
    "notebook_code_hash",
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


def notebook_code_hash(notebook: Path) -> str:
    """SHA-256 of the code cells' sources of a notebook: what its results depend on.

    Prose (Markdown cells) and outputs do not enter the hash; :func:`save_results` records it
    and a test compares it with the notebook's current code.

    Args:
        notebook (pathlib.Path or str): path of an ``.ipynb`` file.

    Returns:
        str: 64 hexadecimal digits.
    """
    cells = json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]
    code = [
        "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
        for c in cells
        if c["cell_type"] == "code"
    ]
    return hashlib.sha256("\n\0\n".join(code).encode()).hexdigest()


_CLAIM_FIELDS = {"id", "claim", "source", "measure", "effect", "spread", "held", "detail"}


def save_results(chapter: str, claims: list[dict], *, scale: str, seeds, seconds: float,
                 device=None) -> Path:
    """Save the claims a chapter tested to ``results_dir()/<chapter>.json`` (every chapter).

    The file also records the scale, device, number of seeds, wall time, library versions and
    the hash of the notebook's code (:func:`notebook_code_hash`), by which a test detects
    results that are older than the code; the reproducibility page is generated from it.

    Args:
        chapter (str): the notebook's name without ``.ipynb``; it must exist in ``chapters/``.
        claims (list[dict]): each with exactly the fields ``id``, ``claim`` (one sentence),
            ``source`` (``"article"`` or ``"beyond"``), ``measure`` (what ``effect`` measures),
            ``effect`` and ``spread`` (mean and ``ddof=1`` standard deviation over seeds, as
            :func:`mean_and_std`), ``held`` (bool) and ``detail`` (the numbers behind it).
        scale (str): the scale preset, ``"quick"`` or ``"full"``.
        seeds (sequence): the seeds trained; only their number is saved.
        seconds (float): the chapter's wall time.
        device (torch.device, str or None): as :func:`device_name`. Default: ``None``.

    Returns:
        pathlib.Path: the file written.

    Raises:
        ValueError: on an unknown chapter, a claim with missing or extra fields, or a bad
            ``source``.
    """
    notebook = ROOT / "chapters" / f"{chapter}.ipynb"
    if not notebook.exists():
        raise ValueError(f"chapter must name a notebook in chapters/, got {chapter!r}")
    for claim in claims:
        if set(claim) != _CLAIM_FIELDS:
            raise ValueError(f"each claim needs exactly the fields {sorted(_CLAIM_FIELDS)}, "
                             f"got {sorted(claim)}")
        if claim["source"] not in ("article", "beyond"):
            raise ValueError(f"claim source must be 'article' or 'beyond', got {claim['source']!r}")
    import sympy

    record = {
        "chapter": chapter,
        "code_sha256": notebook_code_hash(notebook),
        "scale": scale,
        "device": device_name(device),
        "seeds": len(seeds),
        "seconds": round(float(seconds), 1),
        "versions": {"torch": torch.__version__, "sympy": sympy.__version__},
        "claims": [
            {**c, "effect": float(c["effect"]), "spread": float(c["spread"]),
             "held": bool(c["held"])}
            for c in claims
        ],
    }
    folder = results_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{chapter}.json"
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
