"""Write the book's reproducibility page, and its forest plots, from the claims the chapters saved.

    python scripts/claims_page.py           # rewrite reproducibility.md and its figures
    python scripts/claims_page.py --check   # exit 1 if reproducibility.md is out of date
    python scripts/claims_page.py --snapshot "why"   # before a rerun: keep today's verdicts

Each chapter ends by saving the claims it tested to ``results/<chapter>.json``
(``reweighting.evidence.save_results``). This script turns those files into
``reproducibility.md`` and
one forest plot per chapter, ``_static/claims-forest-<chapter>.png``, so the page is never
typed by hand and cannot drift from the notebooks; ``tests/test_reproducibility.py`` runs the
``--check``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "lib"))  # `reweighting` without installing the project

import numpy as np  # noqa: E402

from reweighting import evidence, report  # noqa: E402

PAGE = ROOT / "reproducibility.md"
FIGURES = ROOT / "_static"  # one forest plot per chapter: claims-forest-<chapter>.png


def figure(chapter: str, folder: Path = FIGURES) -> Path:
    """Where the forest plot of ``chapter``'s claims is."""
    return folder / f"claims-forest-{chapter}.png"


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


def stale_chapters(records: list[dict], scale: str = "full") -> dict[str, list[str]]:
    """Each chapter whose saved results no longer match its code, library, scale, seeds or
    environment (:func:`reweighting.evidence.stale_reasons`), or whose claims do not hold one
    value per seed (:func:`reweighting.evidence.claim_problems`), with the reasons."""
    stale = {}
    for r in records:
        notebook = ROOT / "chapters" / f"{r['chapter']}.ipynb"
        reasons = (evidence.stale_reasons(r, notebook, scale=scale) if notebook.exists()
                   else [f"its notebook {notebook.name} is gone"])
        reasons += evidence.claim_problems(r)
        if reasons:
            stale[r["chapter"]] = reasons
    return stale


def _stale_warning(stale: dict[str, list[str]]) -> list[str]:
    """A warning at the top of the page for every chapter whose results are stale."""
    if not stale:
        return []
    lines = ["", ":::{warning}",
             f"**The results of {len(stale)} chapters are stale**: they no longer match what "
             "their chapter would run now, so the numbers below are not the current book's "
             "until the chapters are rerun (`make reproduce`).", ""]
    for chapter, reasons in stale.items():
        shown = "; ".join(reasons[:3]) + (f"; and {len(reasons) - 3} more" if len(reasons) > 3
                                          else "")
        lines.append(f"- {{doc}}`chapters/{chapter}`: {shown.replace('`', '')}")
    return lines + [":::"]


def _verdict(verdict: str) -> str:
    return verdict if verdict == "held" else f"**{verdict}**"


SNAPSHOT = ROOT / "results" / "previous" / "verdicts.json"
#: What the snapshot keeps of each claim: its result and what it declared, so that a claim
#: whose direction, threshold, margin or source was edited between two runs is named.
DECLARED_FIELDS = ("direction", "threshold", "delta", "source", "cite", "measure")
SNAPSHOT_FIELDS = ("id", "mean", "low", "high", "verdict", "exact", "n", *DECLARED_FIELDS)


def redeclared(old: dict, now: dict) -> list[str]:
    """The declared fields of a claim that differ between the snapshot and now, as text.

    A snapshot made before the declared fields were kept has none of them: nothing is
    reported for it (there is nothing to compare)."""
    return [f"{key} {old[key]!r} → {now.get(key)!r}" for key in DECLARED_FIELDS
            if key in old and old[key] != now.get(key)]


def snapshot(reason: str, results_dir: Path = ROOT / "results", path: Path = SNAPSHOT) -> None:
    """Keep the current results' intervals and verdicts as "the last committed run".

    Run it before a rerun that will change the results, with the reason of the rerun; the page
    then lists every verdict that moved, with its old and new interval.
    """
    import subprocess

    # the commit that last changed the results (not HEAD, which may carry later code changes)
    commit = subprocess.run(["git", "log", "-1", "--format=%h", "--", str(results_dir / "*.json")],
                            cwd=ROOT, capture_output=True, text=True).stdout.strip() or "unknown"
    chapters = {r["chapter"]: [{key: c.get(key) for key in SNAPSHOT_FIELDS} for c in r["claims"]]
                for r in load(results_dir)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"commit": commit, "reason": reason, "chapters": chapters},
                               indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def _changes(records: list[dict], path: Path) -> list[str]:
    """The section on verdicts that moved since the snapshot (:func:`snapshot`)."""
    if not path.exists():
        return []
    before = json.loads(path.read_text(encoding="utf-8"))
    old = {c["id"]: c for claims in before["chapters"].values() for c in claims}
    now = [c for r in records for c in r["claims"]]
    both = [c for c in now if c["id"] in old]
    moved = [c for c in both if c["verdict"] != old[c["id"]]["verdict"]]
    edited = [(c, redeclared(old[c["id"]], c)) for c in both if redeclared(old[c["id"]], c)]
    new = [c["id"] for c in now if c["id"] not in old]
    gone = sorted(set(old) - {c["id"] for c in now})
    lines = [
        "",
        "## Since the last committed run",
        "",
        f"Compared with the results committed at `{before['commit']}`: {len(moved)} of the "
        f"{len(both)} claims that both runs tested changed their 95% verdict"
        + (f"; new claims: {', '.join(new)}" if new else "")
        + (f"; claims no longer tested: {', '.join(gone)}" if gone else "") + ". "
        f"What changed between the runs: {before['reason']}",
    ]
    if edited:
        lines += ["", f"**{len(edited)} claims were declared differently** in the two runs: a "
                  "verdict read against an edited direction, threshold or margin is not the "
                  "same test.", "", "| id | what changed in its declaration |", "|---|---|"]
        lines += [f"| {c['id']} | {'; '.join(changes)} |" for c, changes in edited]
    if moved:
        lines += ["", "| id | before: interval | verdict | now: interval | verdict |",
                  "|---|---|---|---|---|"]
        for c in moved:
            o = old[c["id"]]
            lines.append(f"| {c['id']} | {report.interval_text(o)} | {o['verdict']} "
                         f"| {report.interval_text(c)} | {c['verdict']} |")
    return lines


def _holm_or_exact(c: dict, holm: dict) -> str:
    """A claim's verdict under Holm's correction; an exact claim has no sampling and keeps its."""
    return c["verdict"] if c["exact"] else holm[c["id"]]


def render(results_dir: Path = ROOT / "results", snapshot_path: Path = SNAPSHOT) -> str:
    """The page's Markdown, from every ``results/*.json`` in chapter order."""
    records = load(results_dir)
    claims = [c for r in records for c in r["claims"]]
    holm = evidence.holm_verdicts(claims)
    counts = {v: sum(c["verdict"] == v for c in claims) for v in evidence.VERDICTS}
    sampled = [c for c in claims if not c["exact"]]
    changed = [c["id"] for c in sampled if holm[c["id"]] != c["verdict"]]
    own_test = sum(not c["test_set"] for c in sampled)
    lines = [
        "# Reproducibility",
        "",
        "Every claim the book tests, with what its chapter measured the last time it ran. Each",
        "claim is declared in its chapter before anything trains (`reweighting.evidence.Claims`):",
        "what it",
        "says of its measure, greater than a threshold (usually 0, no difference), less than it,",
        "or equivalent to it within a stated margin ±δ. Most measures are paired differences:",
        "two methods trained from the same seed on the same data draw, one difference per seed.",
        "The verdict comes from the 95% t-interval of the mean over seeds",
        "(`reweighting.evidence.paired_interval`): **held** when the whole interval lies on the",
        "claimed",
        "side (or inside ±δ), **not held** when it lies on the other side (or outside ±δ),",
        "**inconclusive** when it straddles the threshold. An *exact* claim (a float64 identity,",
        "a closed form) has no sampling noise and its interval is its value; a sampled claim",
        "whose seeds all gave the same value has an unknown spread and is inconclusive. Each",
        "claim says where it comes from: *article* where Su's article states it, *literature*",
        "with the paper whose finding it is, *beyond* for the book's own claims and checks.",
        "",
        "**What an interval covers.** A seed is one repetition of the whole experiment: it draws",
        "its own training (and validation) data, its own initial weights and minibatch order,",
        "and, for every claim whose *test set* column below is empty, its own test set (a fresh",
        "MNIST-1D sample), all from independent streams of the seed",
        "(`reweighting.seeds.streams`). So",
        "the interval of such a claim covers the sampling of training and test data and the",
        "randomness of training, for this data set, architecture and recipe; "
        f"{own_test} of the {len(sampled)}",
        "sampled claims are of this kind. A claim with an entry in that column was measured",
        "elsewhere and the entry says where: on each seed's own split of the same 1,797 digits",
        "(the interval covers the split, not fresh images), on the seeds' training sets, or in",
        "the population. No interval covers other data sets, other",
        "architectures or training recipes, the finite pools from which training sets are drawn,",
        "or another machine's rounding, and each interval is a 95% interval on its own, not",
        "corrected for the number of claims.",
        "",
        f"**Multiplicity.** The book tests {len(sampled)} sampled claims, each at 95%, so a few",
        "verdicts would be expected to come out wrong by chance alone. The column *Holm* gives",
        "each sampled claim's verdict under Holm's correction over the whole book's family",
        "(`reweighting.evidence.holm_verdicts`: the one-sided t-tests behind each verdict, two",
        "one-sided",
        "tests for equivalence claims, step-down adjusted so that the chance of any wrong verdict",
        "in the family is at most 5%): a verdict that does not survive becomes inconclusive. The",
        "per-claim 95% verdict stays the headline.",
        f"Under Holm's correction {len(changed)} of the {len(sampled)} verdicts change"
        + (f" ({', '.join(changed)})." if changed else "."),
        "",
        "Each chapter saves its claims when it runs (`reweighting.evidence.save_results`), with",
        "the list",
        "of seeds, the seed offset (`BOOK_SEED_OFFSET`, 0 for the committed book) and the package",
        "versions, and `scripts/claims_page.py` writes this page from those files, so nothing",
        "here is typed by hand. A test fails when a chapter's results are missing, were made on",
        "other seeds, or are older than its code, its cell tags, the library's code (its",
        "docstrings and comments do not count), the scale, the seed offset or the pinned",
        "versions of torch, numpy, scikit-learn, scipy, sympy and mnist1d; another recomputes",
        "every interval and verdict below from its stored values. Reproducing on the same",
        "machine gives the same numbers; on another machine (another CPU, another PyTorch build)",
        "expect different numbers in the second or third decimal, because floating-point sums",
        "are ordered differently, and the same verdicts within the intervals.",
        "",
        f"In all: {len(claims)} claims, "
        + ", ".join(f"{n} {v}" for v, n in counts.items())
        + f"; {sum(_holm_or_exact(c, holm) == 'held' for c in claims)} held under Holm's "
        "correction (exact claims keep their verdict).",
        "",
        "| chapter | claims | held | not held | inconclusive | held (Holm) | scale | device "
        "| seeds | training time |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        tally = [sum(c["verdict"] == v for c in r["claims"]) for v in evidence.VERDICTS]
        holm_held = sum(_holm_or_exact(c, holm) == "held" for c in r["claims"])
        lines.append(
            f"| {{doc}}`chapters/{r['chapter']}` | {len(r['claims'])} | "
            + " | ".join(map(str, tally))
            + f" | {holm_held} | {r['scale']} | {_cell(r['device'])} | {len(r['seeds'])} "
            f"| {r['seconds']:.0f} s |")
    lines += _stale_warning(stale_chapters(records))
    lines += _changes(records, snapshot_path)
    lines += [
        "",
        "**The forest plots.** Each chapter's section below opens with a plot of its claims: each",
        "claim's 95% interval (bars; exact claims as diamonds) minus its threshold, so that the",
        "claimed side is right of 0 for *greater* claims and left of 0 for *less* claims;",
        "equivalence claims show their margin ±δ as a shaded band. The axis is linear within",
        "±0.01 and logarithmic beyond, so that accuracy differences and float64 deviations fit",
        "on one axis, the same for every chapter. Colours give the verdict.",
    ]
    for r in records:
        env = r["versions"]
        seeds = r["seeds"]
        lines += [
            "",
            f"## {_title(r['chapter'])}",
            "",
            f"```{{figure}} {figure(r['chapter']).relative_to(ROOT).as_posix()}",
            f":name: claims-forest-{r['chapter'][:2]}",
            ":width: 100%",
            ":alt: Forest plot of the chapter's claims: each 95% interval against its threshold",
            "",
            "The chapter's claims: each 95% interval minus its threshold, coloured by verdict.",
            "```",
            "",
            f"{{doc}}`chapters/{r['chapter']}`, run at scale `{r['scale']}` on "
            f"{_cell(r['device'])} ({_cell(r['cpu'])}, {r['cpu_capability']}) with "
            f"{len(seeds)} seeds ({seeds[0]} to {seeds[-1]}, seed offset {r['seed offset']}): "
            + ", ".join(f"{k} {v}" for k, v in env.items()) + ".",
            "",
            "| id | claim | source | measure | test set | claimed | n | mean | 95% interval "
            "| verdict | Holm | details |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for c in r["claims"]:
            test_set = "exact" if c["exact"] else c["test_set"]
            adjusted = "—" if c["exact"] else _verdict(holm[c["id"]])
            lines.append(
                f"| {c['id']} | {_cell(c['claim'])} | {_cell(report.source_text(c))} "
                f"| {_cell(c['measure'])} | {_cell(test_set)} | {_cell(report.claimed(c))} "
                f"| {c['n']} | {report.number_text(c['mean'])} | {report.interval_text(c)} "
                f"| {_verdict(c['verdict'])} | {adjusted} | {_cell(c['detail'])} |")
    return "\n".join(lines) + "\n"


def forest_plots(records: list[dict], folder: Path = FIGURES) -> list[Path]:
    """One forest plot per chapter (see :func:`forest_plot`), on one x-axis for all."""
    ends = [sign * (c[end] - c["threshold"]) for r in records for c in r["claims"]
            for sign in [-1.0 if c["direction"] == "less" else 1.0] for end in ("low", "high")]
    ends = np.clip(np.nan_to_num(ends, nan=0.0), -1e3, 1e3)
    limits = (min(ends.min(), -0.02) * 1.5, max(ends.max(), 0.02) * 1.5)
    return [forest_plot(r, figure(r["chapter"], folder), limits) for r in records]


def forest_plot(record: dict, path: Path, limits: tuple[float, float] | None = None) -> Path:
    """The forest plot of one chapter's claims, written to ``path`` (a PNG)."""
    import matplotlib.pyplot as plt

    colours = {"held": "tab:green", "not held": "tab:red", "inconclusive": "tab:orange"}
    claims = record["claims"]
    fig, ax = plt.subplots(figsize=(8.5, 0.3 * len(claims) + 1.4))
    for i, c in enumerate(claims):
        y = len(claims) - 1 - i
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
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xscale("symlog", linthresh=1e-2)
    if limits:
        ax.set_xlim(*limits)
    ax.set_yticks(range(len(claims))[::-1],
                  [f"{c['id']}  ({report.claimed(c)})" for c in claims], fontsize=8)
    ax.set_ylim(-0.7, len(claims) - 0.3)
    ax.set(title=f"{_title(record['chapter'])}: each claim's 95% interval against its threshold",
           xlabel="measure minus threshold (sign flipped for '<' claims: the claimed side is > 0)",
           ylabel="claim (what it claims)")
    ax.title.set_fontsize(10)
    for verdict_name, colour in colours.items():
        ax.plot([], [], color=colour, lw=2.5, label=verdict_name)
    ax.fill_between([], [], color="0.85", label="equivalence margin ±δ")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    # twice the pixels of the page's display width: sharp on fine screens and in the PDF
    fig.savefig(path, dpi=220, metadata={"Software": None})
    plt.close(fig)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="only compare reproducibility.md with the results; exit 1 if stale")
    parser.add_argument("--snapshot", metavar="REASON",
                        help="before a rerun: keep the current verdicts as the last committed "
                             "run's, with the reason of the rerun, and exit")
    args = parser.parse_args(argv)
    if args.snapshot:
        snapshot(args.snapshot)
        print(f"kept the current verdicts in {SNAPSHOT.relative_to(ROOT)}")
        return 0
    page = render()
    if args.check:
        records = load()
        if (not PAGE.exists() or PAGE.read_text(encoding="utf-8") != page
                or not all(figure(r["chapter"]).exists() for r in records)):
            print("reproducibility.md is out of date: run `python scripts/claims_page.py`")
            return 1
        print("reproducibility.md is up to date")
        return 0
    PAGE.write_text(page, encoding="utf-8")
    figures = forest_plots(load())
    print(f"wrote {PAGE.name} and {len(figures)} forest plots in "
          f"{FIGURES.relative_to(ROOT)} from {len(list((ROOT / 'results').glob('*.json')))} "
          "results files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
