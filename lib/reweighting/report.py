"""How the chapters present results: mean ± spread over seeds, tables, provenance, glue.

The spread is always the sample standard deviation over seeds (``ddof=1``, 0 for a single seed),
in tables (:func:`mean_std`) and plots (:func:`mean_and_std`) alike.

The evidence itself (claims, intervals, verdicts, saved results and their fingerprint) is in
:mod:`reweighting.evidence`; this module only shows it (:func:`declared_markdown`,
:func:`claims_markdown`).
"""

from __future__ import annotations

import platform

import numpy as np
import torch

from .validation import check_number

__all__ = [
    "to_float64",
    "mean_and_std",
    "mean_std",
    "markdown_table",
    "device_name",
    "provenance",
    "claimed",
    "number_text",
    "interval_text",
    "paired_text",
    "words",
    "source_text",
    "declared_markdown",
    "claims_markdown",
    "glue",
    "glue_claims",
]

def to_float64(values) -> np.ndarray:
    """``values`` (a tensor, array or sequence of numbers) as a float64 NumPy array.

    Tensors are detached and moved to the CPU first; the evidence (:mod:`reweighting.evidence`) and
    the tables below compute in float64."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double()
    return np.asarray(values, dtype=np.float64)


def mean_and_std(values, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample standard deviation along ``axis``, for error bars (chapters 1-3, 5).

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
    values = to_float64(values)
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
    values = to_float64(values).ravel()
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
        scale (str): the scale preset, ``"quick"`` or ``"full"``
            (:func:`reweighting.train.by_scale`).
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


def claimed(c: dict) -> str:
    """The claim's declared direction as text, e.g. ``"> 0"`` or ``"within 0 ± 0.005"``."""
    if c["direction"] == "equivalent":
        return f"within {_short(c['threshold'])} ± {_short(c['delta'])}"
    return f"{'>' if c['direction'] == 'greater' else '<'} {_short(c['threshold'])}"


def _short(x: float) -> str:
    if x == 0:
        return "0"
    return f"{x:.0e}" if abs(x) < 1e-3 else f"{x:g}"


def number_text(x: float) -> str:
    """A claim's mean or interval end as the claims tables show it.

    Signed with three decimals (``"+0.012"``, ``"-1.500"``); scientific notation for values
    below 1e-3 in magnitude other than 0 (``"2.0e-05"``); ``"∞"`` or ``"-∞"`` for infinities
    (and ``"-∞"`` for NaN, which a saved claim never holds).

    Args:
        x (float): the number.

    Returns:
        str: its text.
    """
    if not np.isfinite(x):
        return "∞" if x > 0 else "-∞"
    return f"{x:.1e}" if x != 0 and abs(x) < 1e-3 else f"{x:+.3f}"


def interval_text(c: dict) -> str:
    """The claim's 95% interval as text, ``"[low, high]"`` (or ``"exact"``)."""
    return "exact" if c["exact"] else f"[{number_text(c['low'])}, {number_text(c['high'])}]"


def paired_text(values, digits: int = 3, signed: bool = True) -> str:
    """Paired values' mean and 95% t-interval as text, ``"+0.012 [+0.004, +0.020]"`` (all chapters).

    Args:
        values (Tensor, array or sequence): per-seed paired differences (or any per-seed values).
        digits (int): decimals. Default: 3.
        signed (bool): show a ``+`` on positive numbers (differences). Default: ``True``.

    Returns:
        str: the mean and the interval of :func:`reweighting.evidence.paired_interval`.
    """
    from .evidence import paired_interval

    mean, low, high, _ = paired_interval(values)
    form = f"{'+' if signed else ''}.{int(digits)}f"
    return f"{mean:{form}} [{low:{form}}, {high:{form}}]"


def words(values, greater: str, less: str, unresolved: str, *, equivalent: str | None = None,
          threshold: float = 0.0, margin: float | None = None) -> str:
    """The words the prose uses for what a paired interval showed (all chapters).

    The one rule behind every sentence that reads a result: the interval of ``values``
    (:func:`reweighting.evidence.paired_interval`) is read exactly as a claim's verdict
    (:func:`reweighting.evidence.verdict`) with the same ``threshold`` and equivalence
    ``margin``, so the words never disagree with the verdict table:

    - with a ``margin``: ``equivalent`` when the interval lies inside ``threshold ± margin``;
      otherwise, as without one:
    - ``greater`` when it lies above ``threshold``, ``less`` when below (``high < threshold``),
      ``unresolved`` when it contains ``threshold``.

    ``values`` may also be a claim as saved (a dict with ``low``, ``high``, ``direction``,
    ``threshold``, ``delta``); its own threshold and margin are used then.

    Args:
        values (Tensor, array, sequence or dict): per-seed paired values, or a saved claim.
        greater (str), less (str), unresolved (str): the words for each side and for neither.
        equivalent (str, optional): the words for "inside the margin"; required with ``margin``.
        threshold (float): the reference value. Default: 0.
        margin (float, optional): the equivalence margin, > 0.

    Returns:
        str: one of the given words.

    Raises:
        ValueError: for a margin without ``equivalent`` words (or a non-positive margin).
    """
    if isinstance(values, dict):
        low, high = values["low"], values["high"]
        threshold = values["threshold"]
        margin = values.get("delta") if values["direction"] == "equivalent" else None
    else:
        from .evidence import paired_interval

        _, low, high, _ = paired_interval(values)
    if margin is not None:
        margin = check_number(margin, "margin", 0.0, low_open=True)
        if equivalent is None:
            raise ValueError("equivalent must give the words for an interval inside the margin")
        if threshold - margin < low and high < threshold + margin:
            return equivalent
    if low > threshold:
        return greater
    if high < threshold:
        return less
    return unresolved


def source_text(c: dict) -> str:
    """Where a claim comes from: ``"article"``, ``"beyond"``, or ``"literature (key)"``."""
    return f"literature ({c['cite']})" if c["source"] == "literature" else c["source"]


def _escaped(rows):
    return [[str(cell).replace("|", "\\|") for cell in row] for row in rows]


def declared_markdown(claims):
    """The declared claims of a :class:`reweighting.evidence.Claims`, as a Markdown table.

    Each chapter shows it in the cell that declares its claims, before anything trains.
    """
    rows = [[c["id"], c["claim"], source_text(c), c["measure"], claimed(c)]
            for c in claims.declared.values()]
    return markdown_table(["id", "claim", "source", "measure", "claimed"], _escaped(rows))


def claims_markdown(record: dict):
    """The claims of a saved record as a Markdown table (``IPython.display.Markdown``).

    Each chapter displays it right after :func:`reweighting.evidence.save_results`, and a test
    checks that the committed notebook shows exactly the table of its committed
    ``results/<chapter>.json``.
    """
    rows = [[c["id"], c["claim"], claimed(c), c["n"], number_text(c["mean"]),
             interval_text(c),
             c["verdict"] if c["verdict"] == "held" else f"**{c['verdict']}**"]
            for c in record["claims"]]
    return markdown_table(["id", "claim", "claimed", "n", "mean", "95% interval", "verdict"],
                          _escaped(rows))


def glue_claims(record: dict, prefix: str) -> None:
    """Glue every claim's verdict, mean, interval and reading for the prose (every chapter).

    For claim ``"6.5"`` and prefix ``"ch6"`` the names are ``ch6_claim_6_5_verdict``,
    ``..._mean``, ``..._low``, ``..._high`` and, for a claim declared with ``readings``,
    ``..._reading``: the text its verdict selects (:func:`reweighting.evidence.check_readings`).
    A paragraph that says what a claim showed quotes ``{glue:md}`ch6_claim_6_5_reading```, so
    the sentence changes with the verdict.

    Args:
        record (dict): what :func:`reweighting.evidence.save_results` returned.
        prefix (str): the chapter's glue prefix, e.g. ``"ch6"``.
    """
    for c in record["claims"]:
        key = f"{prefix}_claim_" + c["id"].replace(".", "_")
        glue(f"{key}_verdict", c["verdict"])
        for field in ("mean", "low", "high"):
            glue(f"{key}_{field}", c[field])
        if c.get("reading") is not None:
            glue(f"{key}_reading", c["reading"])


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
