"""Write the book's reproducibility page, and its forest plot, from the claims the chapters saved.

    python scripts/claims_page.py           # rewrite reproducibility.md and its figure
    python scripts/claims_page.py --check   # exit 1 if reproducibility.md is out of date

Each chapter ends by saving the claims it tested to ``results/<chapter>.json``
(``lib.report.save_results``). This script turns those files into ``reproducibility.md`` and
``_static/claims-forest.png``, so the page is never typed by hand and cannot drift from the
notebooks; ``tests/test_reproducibility.py`` runs the ``--check``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `lib` without installing the project

from lib import report  # noqa: E402

PAGE = ROOT / "reproducibility.md"
FIGURE = ROOT / "_static" / "claims-forest.png"


def _cell(text) -> str:
    """Text for a Markdown table cell: pipes escaped, no line breaks."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _title(chapter: str) -> str:
    """The first heading of a chapter notebook."""
    cells = json.loads((ROOT / "chapters" / f"{chapter}.ipynb").read_text(encoding="utf-8"))
    for cell in cells["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown" and source.startswith("# "):
            return source.splitlines()[0][2:].strip()
    return chapter


def load(results_dir: Path = ROOT / "results") -> list[dict]:
    """Every ``results/*.json``, in chapter order."""
    records = [json.loads(p.read_text(encoding="utf-8"))
               for p in sorted(results_dir.glob("*.json"))]
    if not records:
        raise SystemExit(f"no results in {results_dir}: run the chapters first")
    return records


def _verdict(c: dict) -> str:
    return c["verdict"] if c["verdict"] == "held" else f"**{c['verdict']}**"


def render(results_dir: Path = ROOT / "results") -> str:
    """The page's Markdown, from every ``results/*.json`` in chapter order."""
    records = load(results_dir)
    counts = {v: sum(c["verdict"] == v for r in records for c in r["claims"])
              for v in report.VERDICTS}
    lines = [
        "# Reproducibility",
        "",
        "Every claim the book tests, with what its chapter measured the last time it ran. Each",
        "claim declares, before it runs, what it says of its measure: greater than a threshold",
        "(usually 0, no difference), less than it, or equivalent to it within a stated margin",
        "±δ. Most measures are paired differences: two methods trained from the same seed on the",
        "same data draw, one difference per seed. The verdict comes from the 95% t-interval of",
        "the mean over seeds (`lib.report.paired_interval`): **held** when the whole interval",
        "lies on the claimed side (or inside ±δ), **not held** when it lies on the other side",
        "(or outside ±δ), **inconclusive** when it straddles the threshold. An *exact* claim",
        "(a float64 identity, a closed form) has no sampling noise and its interval is its",
        "value. A chapter saves its claims before it asserts anything, so a claim that did not",
        "hold is reported here, not lost.",
        "",
        "Each chapter saves its claims when it runs (`lib.report.save_results`) and",
        "`scripts/claims_page.py` writes this page from those files, so nothing here is typed by",
        "hand. A test fails when a chapter's results are missing, or older than its code, its",
        "cell tags, the library or the scale, or when this page is older than the results.",
        "Reproducing on the same machine gives the same numbers; on another machine (another",
        "CPU, another PyTorch build) expect different numbers in the second or third decimal,",
        "because floating-point sums are ordered differently, and the same verdicts within the",
        "intervals.",
        "",
        f"In all: {sum(counts.values())} claims, "
        + ", ".join(f"{n} {v}" for v, n in counts.items()) + ".",
        "",
        "| chapter | claims | held | not held | inconclusive | scale | device | seeds "
        "| training time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        tally = [sum(c["verdict"] == v for c in r["claims"]) for v in report.VERDICTS]
        lines.append(
            f"| {{doc}}`chapters/{r['chapter']}` | {len(r['claims'])} | "
            + " | ".join(map(str, tally))
            + f" | {r['scale']} | {_cell(r['device'])} | {r['seeds']} | {r['seconds']:.0f} s |")
    lines += [
        "",
        "```{figure} _static/claims-forest.png",
        ":name: claims-forest",
        ":alt: Forest plot of every claim's 95% interval against its threshold",
        "",
        "Every claim's 95% interval (bars; exact claims as diamonds) minus its threshold, so the",
        "claimed side is right of 0 for *greater* claims and left of 0 for *less* claims;",
        "equivalence claims show their margin ±δ as a shaded band. The axis is linear within",
        "±0.01 and logarithmic beyond, so that accuracy differences and float64 deviations fit",
        "on one figure. Colours give the verdict.",
        "```",
    ]
    for r in records:
        env = r["versions"]
        lines += [
            "",
            f"## {_title(r['chapter'])}",
            "",
            f"{{doc}}`chapters/{r['chapter']}`, run at scale `{r['scale']}` on "
            f"{_cell(r['device'])} ({_cell(r['cpu'])}, {r['cpu_capability']}) with "
            f"{r['seeds']} seeds: "
            + ", ".join(f"{k} {v}" for k, v in env.items()) + ".",
            "",
            "| id | claim | from | measure | claimed | n | mean | 95% interval | verdict "
            "| details |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for c in r["claims"]:
            lines.append(
                f"| {c['id']} | {_cell(c['claim'])} | {c['source']} | {_cell(c['measure'])} "
                f"| {_cell(report.claimed(c))} | {c['n']} | {report._number(c['mean'])} "
                f"| {report.interval_text(c)} | {_verdict(c)} | {_cell(c['detail'])} |")
    return "\n".join(lines) + "\n"


def forest_plot(records: list[dict], path: Path = FIGURE) -> None:
    """Draw every claim's interval against its threshold, grouped by chapter, into ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"held": "tab:green", "not held": "tab:red", "inconclusive": "tab:orange"}
    rows: list[tuple[str, dict | None]] = []  # a heading row per chapter, then its claims
    for r in records:
        rows.append((_title(r["chapter"]), None))
        rows += [("", c) for c in r["claims"]]
    fig, ax = plt.subplots(figsize=(8.5, 0.3 * len(rows) + 1.6))
    ticks, labels = [], []
    for i, (heading, c) in enumerate(rows):
        y = len(rows) - 1 - i
        if c is None:
            ax.axhline(y - 0.5, color="0.6", lw=0.6)
            ax.text(0.0, y, heading, transform=ax.get_yaxis_transform(), ha="left",
                    va="center", fontsize=8, fontweight="bold")
            continue
        sign = -1.0 if c["direction"] == "less" else 1.0  # the claimed side is always right
        low, high = sorted(sign * (c[end] - c["threshold"]) for end in ("low", "high"))
        mean = sign * (c["mean"] - c["threshold"])
        colour = colours[c["verdict"]]
        if c["direction"] == "equivalent":
            ax.fill_betweenx([y - 0.35, y + 0.35], -c["delta"], c["delta"], color="0.85")
        if c["exact"]:
            ax.plot(mean, y, "D", color=colour, ms=5)
        else:
            ax.plot([max(low, -1e3), min(high, 1e3)], [y, y], color=colour, lw=2.5)
            ax.plot(mean, y, "o", color=colour, ms=4)
        ticks.append(y)
        labels.append(f"{c['id']}  ({report.claimed(c)})")
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xscale("symlog", linthresh=1e-2)
    ax.set_yticks(ticks, labels, fontsize=7)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set(title="Every claim's 95% interval against its threshold, by chapter",
           xlabel="measure minus threshold (sign flipped for '<' claims: the claimed side is > 0)",
           ylabel="claim (what it claims)")
    for verdict_name, colour in colours.items():
        ax.plot([], [], color=colour, lw=2.5, label=verdict_name)
    ax.fill_between([], [], color="0.85", label="equivalence margin ±δ")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="only compare reproducibility.md with the results; exit 1 if stale")
    args = parser.parse_args(argv)
    page = render()
    if args.check:
        if not PAGE.exists() or PAGE.read_text(encoding="utf-8") != page or not FIGURE.exists():
            print("reproducibility.md is out of date: run `python scripts/claims_page.py`")
            return 1
        print("reproducibility.md is up to date")
        return 0
    PAGE.write_text(page, encoding="utf-8")
    forest_plot(load())
    print(f"wrote {PAGE.name} and {FIGURE.relative_to(ROOT)} from "
          f"{len(list((ROOT / 'results').glob('*.json')))} results files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
