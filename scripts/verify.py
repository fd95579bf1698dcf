"""Re-run one chapter in a scratch copy and check its claims against the committed results.

    python scripts/verify.py 03_logit_adjustment        # a repeat on the committed seeds
    python scripts/verify.py --from-commit               # the chapter this commit verifies (CI)
    python scripts/verify.py 03_logit_adjustment --seed-offset 100   # a replication

The fingerprint of a saved result vouches for the inputs of a run (code, library, scale, seeds,
versions), not for its numbers: only a rerun can tell a forged or mistaken number. This script
executes the chapter's notebook at the committed record's scale, in a temporary folder (never in
place: the committed notebook and ``results/`` are not touched), with its results written
there, and compares every claim with the committed record:

- **n**: the same number of values (seeds) as committed;
- **verdict**: the same verdict; a verdict that flips between *held* and *not held* is a failure,
  a move to or from *inconclusive* is reported;
- **inside**: the rerun's mean lies inside the committed 95% interval (exact claims: equal to
  the committed value within ``--exact-tolerance``, relative).

It prints one table row per claim and exits with status 1 when a verdict flips between held and
not held, when an ``n`` differs, or when more sampled claims fall outside their committed
intervals than ``--outside-tolerance`` allows. The same machine reproduces the same numbers; a
different CPU (Intel or AMD, with or without AVX-512) computes float32 matrix products in a
different order, so its means differ in the second or third decimal and a claim whose committed
interval is narrow may land just outside it. The default tolerance allows for that (see
``--outside-tolerance``); README.md, "Re-checking a chapter", records how it was chosen.

With ``--seed-offset N`` (``make verify SEED_OFFSET=N``) the chapter runs on fresh seeds: a
replication rather than a repeat. The table then reports how many claims agree, and the script
exits 0 whatever it finds: fresh seeds may honestly move a verdict.

``--from-commit`` picks the chapter from the current commit (its hash modulo the number of
chapters), so that successive CI runs verify every chapter in turn.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "lib"))  # `reweighting` without installing the project
sys.path.insert(0, str(ROOT))

from reweighting import report  # noqa: E402
from scripts import reproduce  # noqa: E402

CHAPTERS = sorted(p.stem for p in (ROOT / "chapters").glob("*.ipynb"))


def chapter_of_commit(commit: str | None = None) -> str:
    """The chapter a commit verifies: its hash (``git rev-parse HEAD``) modulo the chapters."""
    if commit is None:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, check=True,
                                capture_output=True, text=True).stdout.strip()
    return CHAPTERS[int(commit, 16) % len(CHAPTERS)]


def compare(committed: dict, rerun: dict, exact_tolerance: float = 1e-6) -> list[dict]:
    """One row per committed claim: its committed and rerun mean, n and verdict, and whether the
    rerun's mean lies inside the committed interval."""
    new = {c["id"]: c for c in rerun["claims"]}
    rows = []
    for c in committed["claims"]:
        r = new.get(c["id"])
        if r is None:
            rows.append({"id": c["id"], "missing": True, "exact": c["exact"]})
            continue
        if c["exact"]:
            scale = max(abs(c["mean"]), abs(r["mean"]), 1e-300)
            inside = abs(r["mean"] - c["mean"]) <= exact_tolerance * scale or r["verdict"] == \
                c["verdict"] == "held"
        else:
            inside = c["low"] <= r["mean"] <= c["high"]
        rows.append({"id": c["id"], "missing": False, "exact": c["exact"],
                     "committed": c["mean"], "low": c["low"], "high": c["high"],
                     "rerun": r["mean"], "n": (c["n"], r["n"]),
                     "verdicts": (c["verdict"], r["verdict"]), "inside": inside})
    return rows


def problems(rows: list[dict], outside_tolerance: int) -> list[str]:
    """Why a repeat on the committed seeds fails, if it does."""
    found = [f"claim {row['id']} is missing from the rerun" for row in rows if row["missing"]]
    for row in (r for r in rows if not r["missing"]):
        if row["n"][0] != row["n"][1]:
            found.append(f"claim {row['id']}: n {row['n'][1]} in the rerun, {row['n'][0]} "
                         "committed")
        if set(row["verdicts"]) == {"held", "not held"}:
            found.append(f"claim {row['id']}: verdict {row['verdicts'][0]!r} committed, "
                         f"{row['verdicts'][1]!r} in the rerun")
        if row["exact"] and not row["inside"]:
            found.append(f"exact claim {row['id']}: {row['rerun']:.3g} in the rerun, "
                         f"{row['committed']:.3g} committed")
    outside = [row["id"] for row in rows if not row["missing"] and not row["exact"]
               and not row["inside"]]
    if len(outside) > outside_tolerance:
        found.append(f"{len(outside)} sampled claims ({', '.join(outside)}) fall outside their "
                     f"committed 95% intervals; at most {outside_tolerance} may")
    return found


def table(rows: list[dict]) -> str:
    """The comparison as a Markdown table."""
    lines = []
    for row in rows:
        if row["missing"]:
            lines.append([row["id"], "", "", "", "", "missing"])
            continue
        interval = "exact" if row["exact"] else (
            f"[{report.number_text(row['low'])}, {report.number_text(row['high'])}]")
        lines.append([row["id"], f"{row['n'][0]} / {row['n'][1]}",
                      f"{report.number_text(row['committed'])} {interval}",
                      report.number_text(row["rerun"]), "yes" if row["inside"] else "**no**",
                      " → ".join(row["verdicts"]) if row["verdicts"][0] != row["verdicts"][1]
                      else row["verdicts"][0]])
    return report.markdown_table(
        ["claim", "n (committed / rerun)", "committed mean [95%]", "rerun mean", "inside",
         "verdict"], lines).data


def run_chapter(chapter: str, scale: str, seed_offset: int, timeout: int) -> tuple[dict, float]:
    """Execute a scratch copy of the chapter; return the results it saved and its wall time."""
    with tempfile.TemporaryDirectory(prefix=f"verify-{chapter}-") as scratch:
        scratch = Path(scratch)
        notebook = scratch / "chapters" / f"{chapter}.ipynb"
        notebook.parent.mkdir()
        shutil.copy(ROOT / "chapters" / f"{chapter}.ipynb", notebook)
        results = scratch / "results"
        results.mkdir()
        saved_env = {k: os.environ.get(k) for k in ("BOOK_SCALE", "BOOK_SEED_OFFSET",
                                                     "BOOK_RESULTS_DIR")}
        os.environ.update(BOOK_SCALE=scale, BOOK_SEED_OFFSET=str(seed_offset),
                          BOOK_RESULTS_DIR=str(results))
        try:
            seconds, error = reproduce.execute(notebook, timeout)
        finally:
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        if error:
            raise RuntimeError(f"{chapter} failed in the scratch copy: {error}")
        return json.loads((results / f"{chapter}.json").read_text(encoding="utf-8")), seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapter", nargs="?", help=f"one of {CHAPTERS}")
    parser.add_argument("--from-commit", action="store_true",
                        help="verify the chapter this commit's hash picks (CI)")
    parser.add_argument("--seed-offset", type=int, default=None,
                        help="run on fresh seeds (a replication; never fails)")
    parser.add_argument("--outside-tolerance", type=int, default=None,
                        help="sampled claims that may fall outside their committed intervals "
                             "(default: 10%% of the chapter's sampled claims, at least 1)")
    parser.add_argument("--exact-tolerance", type=float, default=1e-6,
                        help="relative tolerance of exact claims' values (default 1e-6)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    args = parser.parse_args(argv)
    if args.from_commit == bool(args.chapter):
        parser.error("give a chapter or --from-commit (not both)")
    chapter = chapter_of_commit() if args.from_commit else args.chapter
    if chapter not in CHAPTERS:
        parser.error(f"chapter must be one of {CHAPTERS}, got {chapter!r}")
    committed_path = ROOT / "results" / f"{chapter}.json"
    committed = json.loads(committed_path.read_text(encoding="utf-8"))
    offset = committed["seed offset"] if args.seed_offset is None else args.seed_offset
    replication = offset != committed["seed offset"]
    print(f"verifying {chapter}: scale {committed['scale']}, seed offset {offset} "
          f"({'a replication on fresh seeds' if replication else 'the committed seeds'}), "
          f"committed on {committed.get('device', '?')}", flush=True)
    rerun, seconds = run_chapter(chapter, committed["scale"], offset, args.timeout)
    rows = compare(committed, rerun, args.exact_tolerance)
    print(table(rows))
    sampled = sum(not c["exact"] for c in committed["claims"])
    tolerance = (args.outside_tolerance if args.outside_tolerance is not None
                 else max(1, math.ceil(0.1 * sampled)))
    agree = sum(not r["missing"] and r["verdicts"][0] == r["verdicts"][1] for r in rows)
    print(f"{chapter}: rerun in {seconds:.0f} s on {rerun.get('device', '?')}; {agree} of "
          f"{len(rows)} verdicts agree; "
          f"{sum(not r['missing'] and not r['inside'] for r in rows)} claims outside their "
          f"committed intervals (tolerance {tolerance})")
    if replication:
        return 0
    found = problems(rows, tolerance)
    for line in found:
        print("FAILED: " + line)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
