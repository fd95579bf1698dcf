"""The book's evidence (reweighting.evidence): intervals, verdicts, declared claims, Holm,
fingerprints by chapter, and one value per seed."""

import json

import numpy as np
import pytest
import torch

from reweighting import evidence, report, seeds


def test_paired_interval_is_scipys_t_interval():
    from scipy import stats

    values = np.array([0.02, 0.05, -0.01, 0.04, 0.03])
    mean, low, high, n = evidence.paired_interval(values)
    expected = stats.t.interval(0.95, df=4, loc=values.mean(), scale=stats.sem(values))
    assert n == 5 and mean == pytest.approx(values.mean())
    assert (low, high) == pytest.approx(expected)


def test_paired_interval_edge_cases():
    assert evidence.paired_interval([0.3]) == (0.3, -np.inf, np.inf, 1)  # one seed: no spread
    # every seed the same: the spread is unknown, not zero, so the interval is unbounded
    assert evidence.paired_interval([0.2, 0.2, 0.2]) == (pytest.approx(0.2), -np.inf, np.inf, 3)
    with pytest.raises(ValueError, match="values must hold at least one finite number"):
        evidence.paired_interval([])
    with pytest.raises(ValueError, match="values must hold at least one finite number"):
        evidence.paired_interval([0.1, np.nan])
    with pytest.raises(ValueError, match=r"confidence must be a finite real number in \(0, 1\)"):
        evidence.paired_interval([0.1, 0.2], confidence=1.0)


@pytest.mark.parametrize("low, high, direction, threshold, delta, expected", [
    (0.01, 0.05, "greater", 0.0, None, "held"),
    (-0.05, -0.01, "greater", 0.0, None, "not held"),
    (-0.01, 0.05, "greater", 0.0, None, "inconclusive"),
    (0.0, 0.0, "greater", 0.0, None, "not held"),  # a point at the threshold: not above it
    (-np.inf, np.inf, "greater", 0.0, None, "inconclusive"),  # one seed, or zero spread
    (-0.05, -0.01, "less", 0.0, None, "held"),
    (0.01, 0.05, "less", 0.0, None, "not held"),
    (1e-15, 1e-15, "less", 1e-9, None, "held"),  # an exact check below its tolerance
    (-0.003, 0.004, "equivalent", 0.0, 0.005, "held"),
    (0.006, 0.02, "equivalent", 0.0, 0.005, "not held"),
    (-0.02, -0.005, "equivalent", 0.0, 0.005, "not held"),
    (-0.003, 0.009, "equivalent", 0.0, 0.005, "inconclusive"),
    (0.5, 0.5, "equivalent", 0.5, 0.01, "held"),
])
def test_verdict_has_three_outcomes(low, high, direction, threshold, delta, expected):
    assert evidence.verdict(low, high, direction, threshold, delta) == expected


def test_verdict_rejects_bad_claims():
    with pytest.raises(ValueError, match="direction must be one of"):
        evidence.verdict(0, 1, "bigger")
    with pytest.raises(ValueError, match="delta must be given for direction 'equivalent'"):
        evidence.verdict(0, 1, "equivalent")
    with pytest.raises(ValueError, match="delta must be given for direction 'equivalent'"):
        evidence.verdict(0, 1, "greater", delta=0.1)
    with pytest.raises(ValueError, match=r"delta must be a finite real number in \(0, inf\)"):
        evidence.verdict(0, 1, "equivalent", delta=0.0)
    with pytest.raises(ValueError, match="low must not exceed high"):
        evidence.verdict(1, 0, "greater")


def make_claim(values=(0.05, 0.07, 0.06), claim_id="9.1", **overrides):
    settings = dict(source="beyond", measure="test accuracy, A minus B (paired)",
                    direction="greater", detail="A 0.8, B 0.74") | overrides
    return evidence.claim(claim_id, "A beats B.", values=values, **settings)


def test_claim_records_interval_and_verdict():
    c = make_claim()
    assert c["n"] == 3 and c["mean"] == pytest.approx(0.06) and c["std"] == pytest.approx(0.01)
    assert c["low"] > 0 and c["verdict"] == "held" and c["values"] == [0.05, 0.07, 0.06]
    assert report.claimed(c) == "> 0" and report.interval_text(c).startswith("[+0.0")
    tie = make_claim(values=[0.001, -0.002, 0.0], direction="equivalent", delta=0.005)
    assert tie["verdict"] == "held" and report.claimed(tie) == "within 0 ± 0.005"
    exact = make_claim(values=[3e-15], direction="less", threshold=1e-9, exact=True)
    assert (exact["n"], exact["low"], exact["high"], exact["verdict"]) == (1, 3e-15, 3e-15,
                                                                           "held")
    assert report.interval_text(exact) == "exact" and report.claimed(exact) == "< 1e-09"
    with pytest.raises(ValueError, match="an exact claim has one value"):
        make_claim(exact=True)


def test_a_sampled_claim_whose_seeds_all_agree_is_inconclusive():
    same = make_claim(values=[0.01] * 20)
    assert same["verdict"] == "inconclusive" and same["low"] == -np.inf
    assert make_claim(values=[0.01], exact=True)["verdict"] == "held"  # exact: no sampling


def test_sources_are_tagged_as_they_are():
    assert make_claim(source="literature", cite="menon2020logit")["cite"] == "menon2020logit"
    assert report.source_text(make_claim(source="literature", cite="x2020")) == "literature (x2020)"
    with pytest.raises(ValueError, match="source must be one of"):
        make_claim(source="blog")
    with pytest.raises(ValueError, match="cite .* must be given for source 'literature'"):
        make_claim(source="literature")
    with pytest.raises(ValueError, match="cite .* must be given for source 'literature'"):
        make_claim(source="article", cite="su2020reweighting")


def test_claims_are_declared_before_any_is_filled():
    claims = evidence.Claims()
    claims.declare("9.1", "A beats B.", source="beyond", measure="m", direction="greater")
    claims.declare("9.2", "A ties B.", source="beyond", measure="m", direction="equivalent",
                   delta=0.01, test_set="fixed: the only split")
    assert "| 9.2 | A ties B. | beyond | m | within 0 ± 0.01 |" in report.declared_markdown(
        claims).data
    with pytest.raises(ValueError, match="already declared"):
        claims.declare("9.1", "again", source="beyond", measure="m", direction="less")
    with pytest.raises(ValueError, match="delta must be given"):
        claims.declare("9.3", "bad", source="beyond", measure="m", direction="equivalent")
    filled = claims.fill("9.2", [0.001, -0.001, 0.002], detail="d")
    assert filled["verdict"] == "held" and filled["test_set"] == "fixed: the only split"
    with pytest.raises(ValueError, match="declared after claims were filled"):
        claims.declare("9.4", "late", source="beyond", measure="m", direction="greater")
    with pytest.raises(ValueError, match="already filled"):
        claims.fill("9.2", [0.1, 0.2])
    with pytest.raises(ValueError, match="was not declared"):
        claims.fill("9.9", [0.1, 0.2])
    with pytest.raises(ValueError, match=r"claims \['9.1'\] were declared but never filled"):
        claims.results()
    claims.fill("9.1", [0.1, 0.2, 0.15])
    assert [c["id"] for c in claims.results()] == ["9.1", "9.2"]  # in the order declared


def test_recompute_rebuilds_the_saved_claim_and_catches_an_edited_verdict():
    c = make_claim(source="literature", cite="k", test_set="fixed: x")
    assert evidence.recompute(json.loads(json.dumps(c))) == c
    edited = dict(c, low=0.0001, verdict="held", values=[0.05, -0.07, 0.06])
    rebuilt = evidence.recompute(edited)
    assert rebuilt["verdict"] == "inconclusive" and rebuilt != edited


def test_p_values_match_the_per_claim_verdicts():
    rng = np.random.default_rng(0)
    for _ in range(200):
        direction = rng.choice(["greater", "less", "equivalent"])
        delta = 0.02 if direction == "equivalent" else None
        c = make_claim(values=rng.normal(rng.normal(0, 0.02), 0.02, size=8),
                       direction=str(direction), delta=delta)
        held, not_held = evidence.p_values(c)
        expected = "held" if held < 0.025 else "not held" if not_held < 0.025 else "inconclusive"
        assert c["verdict"] == expected
        # a family of one: Holm changes nothing
        assert evidence.holm_verdicts([c]) == {"9.1": c["verdict"]}
    with pytest.raises(ValueError, match="exact"):
        evidence.p_values(make_claim(values=[1e-12], exact=True, direction="less",
                                     threshold=1e-9))


def test_holm_keeps_strong_verdicts_and_drops_marginal_ones():
    strong = make_claim(values=[0.05, 0.07, 0.06, 0.055, 0.065], claim_id="a")
    marginal = make_claim(values=[0.01, 0.03, -0.002, 0.02, 0.015, 0.0, 0.025], claim_id="b")
    assert evidence.p_values(marginal)[0] < 0.025  # held on its own ...
    family = [strong, marginal] + [make_claim(values=[-0.01, 0.01, 0.0, 0.02], claim_id=f"n{i}")
                                   for i in range(20)]
    exact = make_claim(values=[1e-12], exact=True, direction="less", threshold=1e-9,
                       claim_id="e")
    adjusted = evidence.holm_verdicts(family + [exact])
    assert adjusted["a"] == "held" and adjusted["b"] == "inconclusive"  # ... not among 22
    assert "e" not in adjusted and len(adjusted) == 22


def test_book_holm_verdicts_reads_every_saved_chapter_as_one_family(tmp_path, monkeypatch):
    strong = make_claim(values=[0.05, 0.07, 0.06, 0.055, 0.065], claim_id="1.1")
    marginal = make_claim(values=[0.01, 0.03, -0.002, 0.02, 0.015, 0.0, 0.025], claim_id="2.1")
    noise = [make_claim(values=[-0.01, 0.01, 0.0, 0.02], claim_id=f"2.{i}") for i in range(2, 22)]
    for chapter, claims in (("01_a", [strong]), ("02_b", [marginal, *noise])):
        (tmp_path / f"{chapter}.json").write_text(json.dumps({"claims": claims}))
    (tmp_path / "previous").mkdir()  # a snapshot in a subfolder is not part of the family
    (tmp_path / "previous" / "verdicts.json").write_text(json.dumps({"claims": [strong]}))
    adjusted = evidence.book_holm_verdicts(tmp_path)
    assert adjusted == evidence.holm_verdicts([strong, marginal, *noise])
    assert adjusted["1.1"] == "held" and adjusted["2.1"] == "inconclusive"
    # alone, the second chapter's marginal claim keeps its verdict: the family is the book's
    assert evidence.holm_verdicts([marginal])["2.1"] == "held"
    monkeypatch.setenv("BOOK_RESULTS_DIR", str(tmp_path))
    assert evidence.book_holm_verdicts() == adjusted  # the default folder is results_dir()
    (tmp_path / "03_c.json").write_text(json.dumps({"claims": [strong]}))
    with pytest.raises(ValueError, match="claim ids must be unique"):
        evidence.book_holm_verdicts(tmp_path)
    with pytest.raises(ValueError, match="folder must hold saved results"):
        evidence.book_holm_verdicts(tmp_path / "previous" / "empty")


def write_notebook(path, cells):
    path.write_text(json.dumps({"cells": cells}))


def code_cell(source, tags=()):
    return {"cell_type": "code", "metadata": {"tags": list(tags)}, "source": source}


# A small library with the shapes of the real one: module-level functions calling each other,
# a constant and a ContextVar, sibling imports by name, by alias and as a module, a class.
FAKE_LIBRARY = {
    "__init__.py": '"""A fake library."""\n\nfrom . import losses, metrics, seeds, train\n',
    "losses.py": '''"""Fake losses."""

import math
from contextvars import ContextVar

_CHECKS = ContextVar("checks", default=True)
SCALE = 2.0


def _helper(x):
    """Scale x."""
    return x * SCALE


def focal_loss(x):
    """The focal loss."""
    return _helper(x) + 1


def checked(x):
    return math.sqrt(x) if _CHECKS.get() else x


def unused(x):
    return x - 1
''',
    "metrics.py": '''from . import losses as _losses
from .losses import focal_loss as fl


def score(x):
    return _losses.checked(x) + fl(x)


def other(x):
    return 0
''',
    "seeds.py": "def offset():\n    return 0\n",
    "train.py": '''from .seeds import offset as seed_offset


class Trainer:
    def fit(self, x):
        return seed_offset() + x
''',
}
FAKE_CHAPTER = [
    '%config InlineBackend.figure_format = "retina"\nfrom functools import partial\n\n'
    "import torch.nn.functional as F\n\nfrom reweighting import losses, metrics\n"
    "from reweighting.train import Trainer",
    "score = partial(metrics.score, 1)  # passed as a value\nlosses.typo\nF.cross_entropy\n"
    "Trainer().fit(1)",
]
# what FAKE_CHAPTER reaches: score, what score calls (directly and through focal_loss), the
# names those use (a constant, a ContextVar, imports of other packages), the class and what
# its method calls; not losses.unused or metrics.other
FAKE_REACH = {"losses._CHECKS", "losses.ContextVar", "losses.SCALE", "losses._helper",
              "losses.checked", "losses.focal_loss", "losses.math", "metrics.score",
              "seeds.offset", "train.Trainer"}


def fake_library(folder):
    library = folder / "reweighting"
    library.mkdir()
    for name, source in FAKE_LIBRARY.items():
        (library / name).write_text(source)
    return library


def edit(path, old, new):
    source = path.read_text()
    assert source.count(old) == 1, old
    path.write_text(source.replace(old, new))


def reach_of(cells, tmp_path, library):
    notebook = tmp_path / "99_test.ipynb"
    write_notebook(notebook, [code_cell(source) for source in cells])
    return {name.removeprefix("reweighting.") for name in evidence.library_reach(notebook,
                                                                                   library)}


def test_library_reach_follows_the_chapters_uses_through_the_library(tmp_path):
    library = fake_library(tmp_path)
    assert reach_of(FAKE_CHAPTER, tmp_path, library) == FAKE_REACH
    helper = {"losses._helper", "losses.SCALE"}
    # every way of naming a library function reaches it and what it calls, and only that
    assert reach_of(["import reweighting\nreweighting.losses.focal_loss(1)"], tmp_path,
                    library) == {"losses.focal_loss"} | helper
    assert reach_of(["from reweighting.losses import focal_loss as f\nf(1)"], tmp_path,
                    library) == {"losses.focal_loss"} | helper
    assert reach_of(["import reweighting.metrics as m\nm.other"], tmp_path,
                    library) == {"metrics.other"}
    # magics as IPython reads them: the Python a magic runs counts, a shell line does not
    assert reach_of(["from reweighting import losses\n%time losses.unused(1)\n!ls losses"],
                    tmp_path, library) == {"losses.unused"}
    # a library module passed as a value may be used whole
    assert reach_of(["from reweighting import seeds\nhelp(seeds)"], tmp_path,
                    library) == {"seeds.offset"}
    assert reach_of(["import torch\nfrom reweighting import losses\nlosses.typo"], tmp_path,
                    library) == set()
    with pytest.raises(ValueError, match="code cell 1 of 99_test.ipynb does not parse"):
        reach_of(["x = 1", "def broken("], tmp_path, library)


def test_library_reach_of_a_real_chapter_is_what_it_uses():
    chapter = evidence.ROOT / "chapters" / "04_reweighting.ipynb"
    reach = evidence.library_reach(chapter)
    assert {"reweighting.losses.focal_loss", "reweighting.evidence.save_results",
            "reweighting.train.train_batched"} <= set(reach)
    assert "reweighting.evidence.holm_verdicts" not in reach  # the page's, not the chapter's
    assert all(len(digest) == 64 for digest in reach.values())


def test_fingerprint_covers_code_tags_library_scale_offset_and_versions(tmp_path, monkeypatch):
    notebook = tmp_path / "99_test.ipynb"
    cells = [code_cell(FAKE_CHAPTER[0]), code_cell(FAKE_CHAPTER[1]),
             {"cell_type": "markdown", "metadata": {}, "source": "prose"}]
    write_notebook(notebook, cells)
    lib = fake_library(tmp_path)
    monkeypatch.delenv("BOOK_SEED_OFFSET", raising=False)
    base = evidence.results_fingerprint(notebook, "full", lib)
    assert base == evidence.results_fingerprint(notebook, "full", lib)  # deterministic
    cells[2]["source"] = "other prose"  # prose does not count
    write_notebook(notebook, cells)
    assert evidence.results_fingerprint(notebook, "full", lib) == base
    assert evidence.results_fingerprint(notebook, "quick", lib) != base  # the scale does
    cells[0]["metadata"]["tags"] = ["nbval-skip"]  # a tag does
    write_notebook(notebook, cells)
    assert evidence.results_fingerprint(notebook, "full", lib) != base
    cells[0]["metadata"]["tags"] = []
    write_notebook(notebook, cells)
    assert evidence.results_fingerprint(notebook, "full", lib) == base
    monkeypatch.setenv("BOOK_SEED_OFFSET", "1000")  # the seed offset does
    assert evidence.results_fingerprint(notebook, "full", lib) != base
    monkeypatch.delenv("BOOK_SEED_OFFSET")
    versions = evidence.fingerprint_parts(notebook, "full", lib)["versions"]
    assert set(versions) == set(evidence.PINNED)
    assert evidence.results_fingerprint(notebook, "full", lib,
                                        versions=versions | {"torch": "2.0.0"}) != base
    edit(lib / "seeds.py", "return 0", "return 1")  # library code the chapter reaches does
    assert evidence.results_fingerprint(notebook, "full", lib) != base
    edit(lib / "seeds.py", "return 1", "return 0")
    edit(lib / "metrics.py", "return 0", "return 1")  # code it never reaches does not
    assert evidence.results_fingerprint(notebook, "full", lib) == base
    assert evidence.code_fingerprint("x = 1  # one") == evidence.code_fingerprint("x = 1")
    assert evidence.code_fingerprint("x = 1") != evidence.code_fingerprint("x = 2")


@pytest.fixture
def book(tmp_path, monkeypatch):
    """A scratch book root with one chapter, chapters/99_test.ipynb, saving to tmp_path/out."""
    (tmp_path / "chapters").mkdir()
    notebook = tmp_path / "chapters" / "99_test.ipynb"
    write_notebook(notebook, [{"cell_type": "code", "metadata": {}, "source": "x = 1"}])
    monkeypatch.setattr(evidence, "ROOT", tmp_path)
    monkeypatch.setenv("BOOK_RESULTS_DIR", str(tmp_path / "out"))
    return notebook


@pytest.fixture
def fake_book(book, tmp_path, monkeypatch):
    """The scratch book's chapter runs FAKE_CHAPTER on the library FAKE_LIBRARY."""
    write_notebook(book, [code_cell(source) for source in FAKE_CHAPTER])
    monkeypatch.setattr(evidence, "LIB", fake_library(tmp_path))
    monkeypatch.delenv("BOOK_SEED_OFFSET", raising=False)
    return book


def saved(seeds=(0, 1, 2), values=(0.05, 0.07, 0.06)):
    claims = evidence.Claims()
    claims.declare("9.1", "A beats B.", source="beyond", measure="m", direction="greater")
    claims.fill("9.1", list(values))
    return evidence.save_results("99_test", claims, scale="quick", seeds=list(seeds),
                                 seconds=3.21)


def test_a_library_change_stales_the_chapters_that_reach_it_and_names_it(fake_book):
    record, losses = saved(), evidence.LIB / "losses.py"
    assert set(record["library"]) == {f"reweighting.{name}" for name in FAKE_REACH}
    assert evidence.stale_reasons(record, fake_book, scale="quick") == []
    original = losses.read_text()
    # a function the chapter reaches through two others (metrics.score -> focal_loss)
    edit(losses, "return x * SCALE", "return x * SCALE * 2")
    assert evidence.stale_reasons(record, fake_book, scale="quick") == [
        "library function reweighting.losses._helper changed since the run (docstrings and "
        "comments do not count)"]
    losses.write_text(original)
    edit(losses, "SCALE = 2.0", "SCALE = 3.0")  # a constant it reads
    assert evidence.stale_reasons(record, fake_book, scale="quick") == [
        "library variable reweighting.losses.SCALE changed since the run (docstrings and "
        "comments do not count)"]
    losses.write_text(original)
    # docstrings, comments, a new function, and a change to one the chapter never reaches
    edit(losses, '"""The focal loss."""', '"""The focal loss, fixed. """  # a comment')
    edit(losses, "return x - 1", "return x - 2")
    losses.write_text(losses.read_text() + "\n\ndef new_loss(x):\n    return x\n")
    edit(evidence.LIB / "metrics.py", "return 0", "return 1")
    assert evidence.stale_reasons(record, fake_book, scale="quick") == []
    # the chapter now also calls losses.unused: it enters the reach, named
    write_notebook(fake_book, [code_cell(source) for source in FAKE_CHAPTER]
                   + [code_cell("losses.unused(1)")])
    assert evidence.stale_reasons(record, fake_book, scale="quick") == [
        "the code cells or tags of 99_test.ipynb changed",
        "library function reweighting.losses.unused is now reached by the chapter and was not "
        "when it ran"]
    rerun = saved()
    write_notebook(fake_book, [code_cell(source) for source in FAKE_CHAPTER])
    assert evidence.stale_reasons(rerun, fake_book, scale="quick") == [
        "the code cells or tags of 99_test.ipynb changed",
        "library function reweighting.losses.unused is no longer reached by the chapter"]


def rehashed(record, **parts):
    """The record with fingerprint parts replaced and its fingerprint recomputed from them."""
    old = json.loads(json.dumps(record, default=str))
    old["fingerprint parts"].update(parts)
    old["fingerprint"] = evidence._digest(old["fingerprint parts"])
    return old


def test_every_stored_fingerprint_part_is_compared_even_when_rehashed(fake_book, monkeypatch):
    record = saved()
    parts = record["fingerprint parts"]
    # the stored scale edited and the fingerprint rehashed: stale, naming the scale
    forged = rehashed(record, scale="full")
    assert evidence.stale_reasons(forged, fake_book, scale="quick") == [
        "the scale is quick, the results were made at scale full",
        "the record's scale is quick, its fingerprint's full"]
    forged["scale"] = "full"  # the record's own scale edited too: still not the expected one
    assert evidence.stale_reasons(forged, fake_book, scale="quick") == [
        "the scale is quick, the results were made at scale full"]
    monkeypatch.setenv("BOOK_SCALE", "full")  # by default, the scale of the environment
    assert evidence.stale_reasons(record, fake_book) == [
        "the scale is full, the results were made at scale quick"]
    monkeypatch.delenv("BOOK_SCALE")  # unset: the book's run, full
    assert evidence.stale_reasons(record, fake_book)[0].startswith("the scale is full")
    assert "BOOK_SEED_OFFSET is 0, the results used 4" in evidence.stale_reasons(
        rehashed(record, **{"seed offset": 4}), fake_book, scale="quick")
    old_torch = rehashed(record, versions=parts["versions"] | {"torch": "1.0"})
    assert f"torch is {torch.__version__}, the results were made with 1.0" in (
        evidence.stale_reasons(old_torch, fake_book, scale="quick"))
    assert evidence.stale_reasons(rehashed(record, notebook="0" * 64), fake_book,
                                  scale="quick") == [
        "the code cells or tags of 99_test.ipynb changed"]
    # the stored library functions edited, their part and the fingerprint rehashed
    forged = json.loads(json.dumps(record, default=str))
    forged["library"]["reweighting.losses.focal_loss"] = "0" * 64
    forged = rehashed(forged, library=evidence._digest(forged["library"]))
    assert evidence.stale_reasons(forged, fake_book, scale="quick") == [
        "library function reweighting.losses.focal_loss changed since the run (docstrings and "
        "comments do not count)"]
    # a part edited without rehashing, and the library functions edited without their part
    assert evidence.stale_reasons(dict(record, fingerprint="0" * 64), fake_book,
                                  scale="quick") == [
        "the saved fingerprint does not match its saved parts"]
    forged["fingerprint parts"]["library"] = parts["library"]
    forged["fingerprint"] = record["fingerprint"]
    assert "the saved library fingerprint does not match the record's library functions" in (
        evidence.stale_reasons(forged, fake_book, scale="quick"))


def test_results_made_before_per_chapter_library_fingerprints_say_so(fake_book):
    record = saved()
    old = json.loads(json.dumps(record, default=str))
    old["fingerprint parts"]["lib"] = old["fingerprint parts"].pop("library")
    del old["library"]
    assert evidence.stale_reasons(old, fake_book, scale="quick") == [
        "the results were made before per-chapter library fingerprints (they fingerprint all "
        "of lib/): rerun the chapter"]
    del old["fingerprint parts"]
    assert evidence.stale_reasons(old, fake_book, scale="quick") == [
        "the results predate fingerprints by part: rerun the chapter"]


def test_stale_reasons_name_what_changed(book, monkeypatch):
    notebook = book
    monkeypatch.delenv("BOOK_SEED_OFFSET", raising=False)
    record = saved()
    assert evidence.stale_reasons(record, notebook, scale="quick") == []
    monkeypatch.setenv("BOOK_SEED_OFFSET", "7")
    assert evidence.stale_reasons(record, notebook, scale="quick") == [
        "BOOK_SEED_OFFSET is 7, the results used 0"]
    monkeypatch.delenv("BOOK_SEED_OFFSET")
    write_notebook(notebook, [{"cell_type": "code", "metadata": {}, "source": "x = 2"}])
    assert evidence.stale_reasons(record, notebook, scale="quick") == [
        "the code cells or tags of 99_test.ipynb changed"]


def test_a_claim_needs_one_value_per_seed(book):
    record = saved()
    assert evidence.claim_problems(record) == []
    # one seed's value dropped and the interval recomputed: recompute agrees, the seeds do not
    dropped = json.loads(json.dumps(record, default=str))
    dropped["claims"][0] = evidence.recompute(dict(dropped["claims"][0], values=[0.05, 0.07]))
    assert evidence.recompute(dropped["claims"][0]) == dropped["claims"][0]
    assert evidence.claim_problems(dropped) == [
        "claim 9.1 has n 2 and 2 values, but 3 seeds (the chapter's): a sampled claim holds "
        "one value per seed"]
    with pytest.raises(ValueError, match="claims must hold one value per seed: claim 9.1 has n "
                                         "3 and 3 values, but 2 seeds"):
        saved(seeds=[0, 1])
    # a claim over other seeds than the chapter's lists them; an exact claim has one value
    claims = evidence.Claims()
    claims.declare("9.1", "A beats B.", source="beyond", measure="m", direction="greater")
    claims.declare("9.2", "Over 5 draws.", source="beyond", measure="m", direction="greater")
    claims.declare("9.3", "Exact.", source="beyond", measure="m", direction="less",
                   threshold=1e-9, exact=True)
    with pytest.raises(ValueError, match="seeds must not be given for claim 9.3: it is exact"):
        claims.fill("9.3", [1e-12], seeds=[0])
    claims.fill("9.1", [0.05, 0.07, 0.06])
    for bad in ([0, 1, 2, 3], [0, 1, 2, 3, 3]):
        with pytest.raises(ValueError, match="seeds must list 5 distinct seeds, one per value"):
            claims.fill("9.2", [0.1, 0.2, 0.15, 0.12, 0.11], seeds=bad)
    claims.fill("9.2", [0.1, 0.2, 0.15, 0.12, 0.11], seeds=range(10, 15))
    claims.fill("9.3", [1e-12])
    record = evidence.save_results("99_test", claims, scale="quick", seeds=[0, 1, 2], seconds=1)
    assert record["claims"][1]["seeds"] == [10, 11, 12, 13, 14]
    assert evidence.claim_problems(record) == []
    forged = json.loads(json.dumps(record, default=str))
    forged["claims"][1] = dict(evidence.recompute(dict(forged["claims"][1],
                                                       values=[0.1, 0.2, 0.15, 0.12])),
                               seeds=forged["claims"][1]["seeds"])
    forged["claims"][2] = dict(forged["claims"][2], values=[1e-12, 2e-12], n=2)
    assert evidence.claim_problems(forged) == [
        "claim 9.2 has n 4 and 4 values, but 5 seeds (its own): a sampled claim holds one value "
        "per seed",
        "claim 9.3 is exact but has n 2, 2 values: an exact claim holds one value and no seeds"]


def test_save_results_records_seeds_offset_claims_environment(book, tmp_path, monkeypatch):
    notebook = book
    monkeypatch.setenv("BOOK_SEED_OFFSET", "5")
    claims = evidence.Claims()
    claims.declare("9.1", "A beats B.", source="beyond", measure="m", direction="greater")
    with pytest.raises(ValueError, match="never filled"):
        evidence.save_results("99_test", claims, scale="quick", seeds=[5, 6, 7], seconds=1)
    claims.fill("9.1", [0.05, 0.07, 0.06], detail="d")
    record = evidence.save_results("99_test", claims, scale="quick", seeds=[5, 6, 7],
                                   seconds=3.21)
    saved = json.loads(record["path"].read_text())
    assert record["path"] == tmp_path / "out" / "99_test.json"
    assert saved["fingerprint"] == evidence.results_fingerprint(notebook, "quick")
    assert saved["library"] == evidence.library_reach(notebook) == {}  # "x = 1" uses none
    assert saved["seeds"] == [5, 6, 7] and saved["seed offset"] == 5
    assert saved["scale"] == "quick" and saved["seconds"] == 3.2
    assert saved["claims"][0]["verdict"] == "held"
    assert set(evidence.PINNED) <= set(saved["versions"])
    assert saved["cpu"] and saved["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    table = report.claims_markdown(saved).data
    assert "| 9.1 | A beats B. | > 0 | 3 | +0.060 |" in table and "| held |" in table
    with pytest.raises(ValueError, match="chapter must name a notebook"):
        evidence.save_results("98_missing", claims, scale="quick", seeds=[0], seconds=1)
    with pytest.raises(ValueError, match="claims must be a reweighting.evidence.Claims"):
        evidence.save_results("99_test", [make_claim()], scale="quick", seeds=[0], seconds=1)
    with pytest.raises(ValueError, match="scale must be 'quick' or 'full'"):
        evidence.save_results("99_test", claims, scale="huge", seeds=[0], seconds=1)


def test_seed_streams_are_independent_fixed_and_checked(monkeypatch):
    s = seeds.streams(3)
    assert s == seeds.streams(3) and len(set(s)) == 4 and s != seeds.streams(4)
    assert all(0 <= v < 2**32 for v in s) and s.data == s[0]
    for bad in (-1, 1.5, True, "3"):
        with pytest.raises(ValueError, match="seed must be a non-negative integer"):
            seeds.streams(bad)
    monkeypatch.setenv("BOOK_SEED_OFFSET", "x")
    with pytest.raises(ValueError, match="BOOK_SEED_OFFSET must be a non-negative integer"):
        seeds.offset()


def test_a_run_on_another_kind_of_device_is_its_own_run():
    """A GPU rerun once counted as the committed CPU run: the device class is a fingerprint part,
    so a record made on CUDA reads stale on a CPU machine, and a forged class is named."""
    notebook = evidence.ROOT / "chapters" / "01_smooth_accuracy.ipynb"
    parts = evidence.fingerprint_parts(notebook, "full", device="cpu")
    assert parts["device class"] == "cpu"
    assert evidence.fingerprint_parts(notebook, "full", device="cuda")["device class"] == "cuda"
    record = {"fingerprint parts": dict(parts, **{"device class": "cuda"}),
              "library": evidence.library_reach(notebook), "device class": "cuda"}
    record["fingerprint"] = evidence._digest(record["fingerprint parts"])
    reasons = evidence.stale_reasons(record, notebook, scale="full")
    assert any("made on cuda, this machine trains on cpu" in r for r in reasons), reasons
