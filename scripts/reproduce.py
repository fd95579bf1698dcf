"""Re-execute chapter notebooks in place, in order, then rewrite the reproducibility page.

    python scripts/reproduce.py                 # every chapter in chapters/
    python scripts/reproduce.py chapters/01_smooth_accuracy.ipynb
    python scripts/reproduce.py --profile chapters/02_smooth_f1.ipynb   # and its slowest cells

The scale is whatever ``BOOK_SCALE`` says (see ``reweighting.train.book_scale``). After each
chapter it
prints one provenance line (device, scale, seeds, wall time, library versions) from the results
the chapter saved, and at the end the total wall time. A chapter that fails is written back
with its outputs up to and including the error, so the error is in the notebook for anyone to
see; the other chapters still run, and the script exits with status 1 at the end, naming the
chapters that failed. It needs only nbclient, nbformat and ipykernel beside the book's
libraries, so it also runs on a machine without network or jupyter-book (see README.md,
"Reproducing on a GPU machine"). Progress bars (tqdm's, on stderr) show while a chapter runs
and are left out of the notebook it writes back. With ``--profile`` it also prints the wall
time of each chapter's slowest cells (the timings are not written into the notebook). Where
sphinx-intl is installed it then updates the Chinese edition's catalogues
(``scripts/catalogues.py update``), which lists any message that needs a translator.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from datetime import datetime
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parent.parent
# `reweighting` without installing the project (e.g. on a GPU host), and `scripts`
sys.path.insert(0, str(ROOT / "lib"))
sys.path.insert(0, str(ROOT))

from reweighting import evidence  # noqa: E402
from scripts import claims_page  # noqa: E402

# A tqdm refresh: carriage return, then a bar ("desc:  40%|####  | 16/40 [...]", padded with
# spaces to cover a longer one) or the blank line tqdm writes when a bar closes (leave=False).
PROGRESS_REFRESH = re.compile(r"\r(?:[^\r\n]*\|[^\r\n]*\| *\d+/\d+ \[[^\r\n]*\] *| *)")


def without_progress_bars(notebook) -> int:
    """Drop tqdm progress bars from the notebook's stderr outputs; return how many went.

    A progress bar is useful while a chapter runs and noise in the committed book (a 40-epoch
    run leaves 40 refreshes in the page). Only stderr streams made of nothing but bar refreshes
    are removed; any other stderr text (a warning, an error) stays.
    """
    removed = 0
    for cell in notebook.cells:
        kept = []
        for output in cell.get("outputs", []):
            if (output.get("output_type") == "stream" and output.get("name") == "stderr"
                    and PROGRESS_REFRESH.sub("", output.get("text", "")) == ""):
                removed += 1
                continue
            kept.append(output)
        if "outputs" in cell:
            cell.outputs = kept
    return removed


def cell_seconds(notebook) -> list[tuple[float, int, str]]:
    """Each executed code cell's wall time from nbclient's timing metadata, slowest first:
    ``(seconds, cell index, first line of the cell)``; the metadata is removed as it is read."""
    timings = []
    for index, cell in enumerate(notebook.cells):
        stamps = cell.get("metadata", {}).pop("execution", None)
        if cell.cell_type != "code" or not stamps or "shell.execute_reply" not in stamps:
            continue
        start = stamps.get("iopub.execute_input", stamps.get("shell.execute_reply.started"))
        seconds = (datetime.fromisoformat(stamps["shell.execute_reply"].replace("Z", "+00:00"))
                   - datetime.fromisoformat(start.replace("Z", "+00:00"))).total_seconds()
        timings.append((seconds, index, (cell.source.strip().splitlines() or [""])[0][:70]))
    return sorted(timings, reverse=True)


def execute(path: Path, timeout: int | None,
            profile: bool = False) -> tuple[float, str | None]:
    """Execute one notebook in its own folder and write it back with fresh outputs.

    Returns the wall time and, if a cell failed, the error's name and message (the notebook is
    written back either way, with the outputs up to the failing cell). ``profile`` prints the
    slowest cells' wall times.
    """
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        # timestamps stay out of the written notebook (diffs show real changes); --profile
        # records them and removes them after reading
        record_timing=profile,
        resources={"metadata": {"path": str(path.parent)}},
    )
    started = time.perf_counter()
    error = None
    try:
        client.execute()
    except CellExecutionError as failure:
        error = f"{failure.ename}: {failure.evalue}"
    seconds = time.perf_counter() - started
    if profile:
        for cell_time, index, first_line in cell_seconds(notebook)[:8]:
            print(f"  {cell_time:7.1f} s  cell {index:3d}: {first_line}", flush=True)
    without_progress_bars(notebook)
    nbformat.write(notebook, path)
    return seconds, error


def provenance_line(path: Path, seconds: float) -> str:
    """What the chapter saved about its run, in one line."""
    saved = evidence.results_dir() / f"{path.stem}.json"
    if not saved.exists():
        return f"{path.stem}: {seconds:.1f} s (no saved results)"
    r = json.loads(saved.read_text(encoding="utf-8"))
    tally = ", ".join(f"{sum(c['verdict'] == v for c in r['claims'])} {v}"
                      for v in evidence.VERDICTS)
    return (f"{path.stem}: device {r['device']} | scale {r['scale']} | seeds "
            f"{len(r['seeds'])} (offset {r['seed offset']}) | "
            f"wall time {seconds:.1f} s (training {r['seconds']:.1f} s) | torch "
            f"{r['versions']['torch']} | claims: {tally}")


def update_catalogues() -> None:
    """Bring the Chinese catalogues up to date with the new outputs and page, where the book's
    tools are installed (``scripts/catalogues.py``: new numbers are filled in by themselves)."""
    import shutil

    if shutil.which("sphinx-intl", path=str(Path(sys.executable).parent)) is None:
        print("the Chinese catalogues were not updated here (no sphinx-intl): run "
              "`make catalogues` where the book's environment is installed")
        return
    from scripts import catalogues

    catalogues.update()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks to execute (default: chapters/*.ipynb)")
    parser.add_argument("--timeout", type=int, default=1800,
                        help="seconds allowed per cell (default 1800)")
    parser.add_argument("--profile", action="store_true",
                        help="print each chapter's slowest cells and their wall times")
    args = parser.parse_args(argv)
    notebooks = args.notebooks or sorted((ROOT / "chapters").glob("*.ipynb"))
    if not notebooks:
        parser.error("no notebooks found")
    total, failed = 0.0, []
    for path in notebooks:
        print(f"executing {path.name} ...", flush=True)
        seconds, error = execute(path.resolve(), args.timeout, args.profile)
        total += seconds
        if error:
            failed.append(path.name)
            print(f"  FAILED after {seconds:.1f} s: {error} (the error is saved in the notebook)",
                  flush=True)
        else:
            print("  " + provenance_line(path, seconds), flush=True)
    print(f"all {len(notebooks)} notebooks executed in {total:.1f} s")
    if evidence.results_dir().resolve() == (ROOT / "results").resolve():
        claims_page.main([])  # the page shows the committed results only
        update_catalogues()
    if failed:
        print(f"{len(failed)} of {len(notebooks)} notebooks failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
