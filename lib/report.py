"""How the chapters report: mean ± spread over seeds, tables, provenance, and saved claims.

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

__all__ = [
    "mean_std",
    "markdown_table",
    "device_name",
    "provenance",
    "results_dir",
    "notebook_code_hash",
    "save_results",
]

ROOT = Path(__file__).resolve().parent.parent


def mean_std(values, digits: int = 3) -> str:
    """``"mean ± std"`` of per-seed values, std with ``ddof=1`` (0 for a single value)."""
    values = np.asarray(torch.as_tensor(values).detach().cpu(), dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("values must hold at least one number")
    std = values.std(ddof=1) if values.size > 1 else 0.0
    return f"{values.mean():.{digits}f} ± {std:.{digits}f}"


def markdown_table(headers, rows):
    """A Markdown table (``IPython.display.Markdown``), rendered as a table in the book."""
    from IPython.display import Markdown

    headers = [str(h) for h in headers]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"every row must have {len(headers)} cells, got {len(row)}: {row}")
        lines.append("| " + " | ".join(str(cell) for cell in row) + " |")
    return Markdown("\n".join(lines))


def device_name(device: torch.device | str | None = None) -> str:
    """A readable name for a device: the GPU's model, or the CPU with its thread count."""
    device = torch.device(device) if device is not None else None
    if device is None:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"


def provenance(scale: str, seeds, seconds: float, device=None) -> str:
    """One line saying where and how a result was produced, printed under each experiment."""
    import sympy

    return (
        f"provenance: device {device_name(device)} | scale {scale} | seeds {len(seeds)} | "
        f"wall time {seconds:.1f} s | torch {torch.__version__} | sympy {sympy.__version__}"
    )


def results_dir() -> Path:
    """Where chapters save their claims: ``$BOOK_RESULTS_DIR``, else ``results/`` in the repo.

    The test suite points ``$BOOK_RESULTS_DIR`` at a temporary folder, so that running the
    notebooks under test never overwrites the committed results.
    """
    return Path(os.environ.get("BOOK_RESULTS_DIR") or ROOT / "results")


def notebook_code_hash(notebook: Path) -> str:
    """SHA-256 of the code cells' sources of a notebook: what its results depend on."""
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
    """Save the claims a chapter tested to ``results_dir()/<chapter>.json``.

    ``chapter`` is the notebook's name without ``.ipynb`` (it must exist in ``chapters/``).
    Each claim is a dict with ``id``, ``claim`` (one sentence), ``source`` ("article" or
    "beyond"), ``measure`` (what ``effect`` measures), ``effect`` and ``spread`` (mean and
    standard deviation over seeds), ``held`` (bool) and ``detail`` (the numbers behind it).
    The file also records the scale, device, number of seeds, wall time, library versions and
    the hash of the notebook's code (:func:`notebook_code_hash`), by which a test detects
    results that are older than the code.
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
