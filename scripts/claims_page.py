"""Write the book's reproducibility page from the claims the chapters saved.

    python scripts/claims_page.py           # rewrite reproducibility.md from results/*.json
    python scripts/claims_page.py --check   # exit 1 if reproducibility.md is out of date

Each chapter ends by saving the claims it tested to ``results/<chapter>.json``
(``lib.report.save_results``). This script turns those files into ``reproducibility.md``, so the
page is never typed by hand and cannot drift from the notebooks; ``tests/test_reproducibility.py``
runs the ``--check``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "reproducibility.md"


def _cell(text) -> str:
    """Text for a Markdown table cell: pipes escaped, no line breaks."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _number(x: float) -> str:
    return f"{x:.1e}" if x != 0 and abs(x) < 1e-3 else f"{x:+.3f}"


def _title(chapter: str) -> str:
    """The first heading of a chapter notebook."""
    cells = json.loads((ROOT / "chapters" / f"{chapter}.ipynb").read_text(encoding="utf-8"))
    for cell in cells["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown" and source.startswith("# "):
            return source.splitlines()[0][2:].strip()
    return chapter


def render(results_dir: Path = ROOT / "results") -> str:
    """The page's Markdown, from every ``results/*.json`` in chapter order."""
    records = [json.loads(p.read_text(encoding="utf-8"))
               for p in sorted(results_dir.glob("*.json"))]
    if not records:
        raise SystemExit(f"no results in {results_dir}: run the chapters first")
    lines = [
        "# Reproducibility",
        "",
        "Every claim the book tests, with the effect measured the last time its chapter ran.",
        "Each chapter saves its claims when it runs (`lib.report.save_results`), and",
        "`scripts/claims_page.py` writes this page from those files, so nothing here is typed",
        "by hand; a test fails when a chapter's saved results are missing or older than its",
        "code, or when this page is older than the results. *Effect* is the mean over seeds",
        "(± one standard deviation) of the quantity in *measure*; paired differences compare",
        "two methods trained from the same seeds. *Held* says whether the claim held in that",
        "run. A claim that did not hold is reported, not removed.",
        "",
        "| chapter | claims | held | scale | device | seeds | training time |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in records:
        held = sum(c["held"] for c in r["claims"])
        lines.append(
            f"| {{doc}}`chapters/{r['chapter']}` | {len(r['claims'])} | {held} | {r['scale']} "
            f"| {_cell(r['device'])} | {r['seeds']} | {r['seconds']:.0f} s |")
    for r in records:
        lines += [
            "",
            f"## {_title(r['chapter'])}",
            "",
            f"{{doc}}`chapters/{r['chapter']}`, run at scale `{r['scale']}` on "
            f"{_cell(r['device'])} with {r['seeds']} seeds (torch {r['versions']['torch']}, "
            f"sympy {r['versions']['sympy']}).",
            "",
            "| id | claim | from | measure | effect | held | details |",
            "|---|---|---|---|---|---|---|",
        ]
        for c in r["claims"]:
            effect = f"{_number(c['effect'])} ± {abs(c['spread']):.3f}" if c["spread"] else \
                _number(c["effect"])
            lines.append(
                f"| {c['id']} | {_cell(c['claim'])} | {c['source']} | {_cell(c['measure'])} "
                f"| {effect} | {'yes' if c['held'] else '**no**'} | {_cell(c['detail'])} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="only compare reproducibility.md with the results; exit 1 if stale")
    args = parser.parse_args(argv)
    page = render()
    if args.check:
        if not PAGE.exists() or PAGE.read_text(encoding="utf-8") != page:
            print("reproducibility.md is out of date: run `python scripts/claims_page.py`")
            return 1
        print("reproducibility.md is up to date")
        return 0
    PAGE.write_text(page, encoding="utf-8")
    print(f"wrote {PAGE.name} from {len(list((ROOT / 'results').glob('*.json')))} results files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
