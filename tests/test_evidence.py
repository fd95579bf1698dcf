"""The book's evidence (lib.evidence): intervals, verdicts, declared claims, Holm, fingerprints."""

import json
import shutil

import numpy as np
import pytest
import torch

from lib import evidence, report, seeds


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
    with pytest.raises(ValueError, match=r"confidence must be a finite Python number in \(0, 1\)"):
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
    with pytest.raises(ValueError, match=r"delta must be a finite Python number in \(0, inf\)"):
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


def write_notebook(path, cells):
    path.write_text(json.dumps({"cells": cells}))


def test_fingerprint_covers_code_tags_library_scale_offset_and_versions(tmp_path, monkeypatch):
    notebook = tmp_path / "99_test.ipynb"
    cells = [{"cell_type": "code", "metadata": {}, "source": ["x = 1\n", "print(x)"]},
             {"cell_type": "markdown", "metadata": {}, "source": "prose"}]
    write_notebook(notebook, cells)
    lib = tmp_path / "lib"
    shutil.copytree(evidence.LIB, lib, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.delenv("BOOK_SEED_OFFSET", raising=False)
    base = evidence.results_fingerprint(notebook, "full", lib)
    assert base == evidence.results_fingerprint(notebook, "full", lib)  # deterministic
    cells[1]["source"] = "other prose"  # prose does not count
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


def test_lib_is_fingerprinted_by_its_code_not_its_docstrings_or_comments(tmp_path):
    notebook = tmp_path / "99_test.ipynb"
    write_notebook(notebook, [{"cell_type": "code", "metadata": {}, "source": "x = 1"}])
    lib = tmp_path / "lib"
    shutil.copytree(evidence.LIB, lib, ignore=shutil.ignore_patterns("__pycache__"))
    base = evidence.results_fingerprint(notebook, "full", lib)
    source = (lib / "losses.py").read_text()
    edited = source.replace('    """', '    """A typo fixed. ', 1) + "\n# a comment\n"
    (lib / "losses.py").write_text(edited)
    assert evidence.results_fingerprint(notebook, "full", lib) == base  # docs: still fresh
    (lib / "losses.py").write_text(edited.replace("def ", "def _renamed_", 1))
    assert evidence.results_fingerprint(notebook, "full", lib) != base  # code: stale
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


def test_stale_reasons_name_what_changed(book, monkeypatch):
    notebook = book
    monkeypatch.delenv("BOOK_SEED_OFFSET", raising=False)
    claims = evidence.Claims()
    claims.declare("9.1", "A beats B.", source="beyond", measure="m", direction="greater")
    claims.fill("9.1", [0.05, 0.07, 0.06])
    record = evidence.save_results("99_test", claims, scale="quick", seeds=[0, 1, 2],
                                   seconds=3.21)
    assert evidence.stale_reasons(record, notebook) == []
    monkeypatch.setenv("BOOK_SEED_OFFSET", "7")
    assert evidence.stale_reasons(record, notebook) == [
        "BOOK_SEED_OFFSET is 7, the results used 0"]
    monkeypatch.delenv("BOOK_SEED_OFFSET")
    old = json.loads(json.dumps(record, default=str))
    old["fingerprint parts"]["versions"]["torch"] = "1.0"
    reasons = evidence.stale_reasons(old, notebook)
    assert f"torch is {torch.__version__}, the results were made with 1.0" in reasons
    write_notebook(notebook, [{"cell_type": "code", "metadata": {}, "source": "x = 2"}])
    assert evidence.stale_reasons(record, notebook) == [
        "the code cells or tags of 99_test.ipynb changed"]


def test_save_results_records_seeds_offset_claims_environment(book, tmp_path, monkeypatch):
    notebook = book
    monkeypatch.setenv("BOOK_SEED_OFFSET", "5")
    claims = evidence.Claims()
    claims.declare("9.1", "A beats B.", source="beyond", measure="m", direction="greater")
    with pytest.raises(ValueError, match="never filled"):
        evidence.save_results("99_test", claims, scale="quick", seeds=[5, 6], seconds=1)
    claims.fill("9.1", [0.05, 0.07, 0.06], detail="d")
    record = evidence.save_results("99_test", claims, scale="quick", seeds=[5, 6], seconds=3.21)
    saved = json.loads(record["path"].read_text())
    assert record["path"] == tmp_path / "out" / "99_test.json"
    assert saved["fingerprint"] == evidence.results_fingerprint(notebook, "quick")
    assert saved["seeds"] == [5, 6] and saved["seed offset"] == 5
    assert saved["scale"] == "quick" and saved["seconds"] == 3.2
    assert saved["claims"][0]["verdict"] == "held"
    assert set(evidence.PINNED) <= set(saved["versions"])
    assert saved["cpu"] and saved["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    table = report.claims_markdown(saved).data
    assert "| 9.1 | A beats B. | > 0 | 3 | +0.060 |" in table and "| held |" in table
    with pytest.raises(ValueError, match="chapter must name a notebook"):
        evidence.save_results("98_missing", claims, scale="quick", seeds=[0], seconds=1)
    with pytest.raises(ValueError, match="claims must be a lib.evidence.Claims"):
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
