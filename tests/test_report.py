"""Reporting helpers of lib.report and lib.metrics."""

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score

from lib import metrics, report


def test_mean_std_uses_sample_std():
    assert report.mean_std([0.7, 0.8, 0.9]) == "0.800 ± 0.100"
    assert report.mean_std(torch.tensor([0.5])) == "0.500 ± 0.000"
    with pytest.raises(ValueError, match="at least one"):
        report.mean_std([])


def test_mean_and_std_is_the_vectorised_spread_of_mean_std():
    values = np.array([[0.7, 0.8, 0.9], [0.1, 0.1, 0.4]])  # (losses, seeds)
    mean, std = report.mean_and_std(values, axis=1)
    assert isinstance(mean, np.ndarray) and isinstance(std, np.ndarray)
    np.testing.assert_allclose(mean, [0.8, 0.2])
    np.testing.assert_allclose(std, values.std(axis=1, ddof=1))
    np.testing.assert_allclose(std, [0.1, np.sqrt(0.03)])
    # the same numbers as the tables' mean_std, along any axis, from tensors too
    for row, m, s in zip(values, mean, std):
        assert report.mean_std(row) == f"{m:.3f} ± {s:.3f}"
    mean0, std0 = report.mean_and_std(torch.tensor(values.T, requires_grad=True), axis=0)
    np.testing.assert_allclose(mean0, mean)
    np.testing.assert_allclose(std0, std)
    mean_last, _ = report.mean_and_std(values, axis=-1)
    np.testing.assert_allclose(mean_last, mean)
    # one value along the axis: spread 0, not NaN
    mean1, std1 = report.mean_and_std(values[:, :1], axis=1)
    np.testing.assert_array_equal(std1, [0.0, 0.0])
    np.testing.assert_allclose(mean1, [0.7, 0.1])
    mean_scalar, std_scalar = report.mean_and_std([0.5, 0.7], axis=0)
    assert mean_scalar.shape == () and float(std_scalar) == pytest.approx(np.sqrt(0.02))
    with pytest.raises(ValueError, match=r"^axis must be a Python integer in \[-2, 2\), got 2"):
        report.mean_and_std(values, axis=2)
    with pytest.raises(ValueError, match="at least one number"):
        report.mean_and_std(np.zeros((2, 0)), axis=1)


def test_provenance_line_names_everything():
    line = report.provenance("quick", [0, 1, 2], 12.34, device="cpu")
    for part in ("device cpu", "scale quick", "seeds 3", "wall time 12.3 s", "torch", "sympy"):
        assert part in line


def test_per_model_applies_a_sklearn_metric_to_each_model():
    y = np.array([0, 1, 1, 0])
    pred = torch.tensor([[[0, 1, 1, 0], [1, 1, 1, 1]], [[0, 0, 0, 0], [1, 0, 0, 1]]])
    scores = metrics.per_model(accuracy_score, y, pred)
    assert scores.shape == (2, 2)
    np.testing.assert_allclose(scores, [[1.0, 0.5], [0.5, 0.0]])
    with pytest.raises(ValueError, match=r"y_pred must have shape \(\.\.\., 4\)"):
        metrics.per_model(accuracy_score, y, pred[..., :3])
    # tensors that require grad are read as they are, and the result is NumPy
    scores = metrics.per_model(lambda t, p: float(np.mean(p)), torch.tensor(y),
                               torch.ones(2, 4, requires_grad=True))
    np.testing.assert_array_equal(scores, [1.0, 1.0])


def test_markdown_table():
    table = report.markdown_table(["loss", "accuracy"], [["CE", "0.7 ± 0.1"]])
    assert table.data.splitlines() == ["| loss | accuracy |", "|---|---|", "| CE | 0.7 ± 0.1 |"]
    with pytest.raises(ValueError, match="every row must have 2 cells"):
        report.markdown_table(["a", "b"], [[1]])


def claim(**changes):
    base = dict(id="x", claim="CE beats -ACC", source="article", measure="accuracy gain",
                effect=0.1, spread=0.01, held=True, detail="0.7 vs 0.6")
    return {**base, **changes}




# --- verdicts from paired 95% t-intervals -----------------------------------------------------


def test_paired_interval_is_scipys_t_interval():
    from scipy import stats

    values = np.array([0.02, 0.05, -0.01, 0.04, 0.03])
    mean, low, high, n = report.paired_interval(values)
    expected = stats.t.interval(0.95, df=4, loc=values.mean(), scale=stats.sem(values))
    assert n == 5 and mean == pytest.approx(values.mean())
    assert (low, high) == pytest.approx(expected)


def test_paired_interval_edge_cases():
    assert report.paired_interval([0.3]) == (0.3, -np.inf, np.inf, 1)  # one seed: no spread
    assert report.paired_interval([0.2, 0.2, 0.2]) == (0.2, 0.2, 0.2, 3)  # zero spread
    with pytest.raises(ValueError, match="values must hold at least one finite number"):
        report.paired_interval([])
    with pytest.raises(ValueError, match="values must hold at least one finite number"):
        report.paired_interval([0.1, np.nan])
    with pytest.raises(ValueError, match=r"confidence must be a finite Python number in \(0, 1\)"):
        report.paired_interval([0.1, 0.2], confidence=1.0)


@pytest.mark.parametrize("low, high, direction, threshold, delta, expected", [
    (0.01, 0.05, "greater", 0.0, None, "held"),
    (-0.05, -0.01, "greater", 0.0, None, "not held"),
    (-0.01, 0.05, "greater", 0.0, None, "inconclusive"),
    (0.0, 0.0, "greater", 0.0, None, "not held"),  # zero spread at the threshold: not above it
    (-np.inf, np.inf, "greater", 0.0, None, "inconclusive"),  # one seed
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
    assert report.verdict(low, high, direction, threshold, delta) == expected


def test_verdict_rejects_bad_claims():
    with pytest.raises(ValueError, match="direction must be one of"):
        report.verdict(0, 1, "bigger")
    with pytest.raises(ValueError, match="delta must be given for direction 'equivalent'"):
        report.verdict(0, 1, "equivalent")
    with pytest.raises(ValueError, match="delta must be given for direction 'equivalent'"):
        report.verdict(0, 1, "greater", delta=0.1)
    with pytest.raises(ValueError, match=r"delta must be a finite Python number in \(0, inf\)"):
        report.verdict(0, 1, "equivalent", delta=0.0)
    with pytest.raises(ValueError, match="low must not exceed high"):
        report.verdict(1, 0, "greater")


def make_claim(values=(0.05, 0.07, 0.06), **overrides):
    settings = dict(source="article", measure="test accuracy, A minus B (paired)",
                    direction="greater", detail="A 0.8, B 0.74") | overrides
    return report.claim("9.1", "A beats B.", values=values, **settings)


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
    with pytest.raises(ValueError, match="source must be 'article' or 'beyond'"):
        make_claim(source="blog")
    with pytest.raises(ValueError, match="an exact claim has one value"):
        make_claim(exact=True)


def write_notebook(path, cells):
    import json

    path.write_text(json.dumps({"cells": cells}))


def test_fingerprint_covers_code_tags_library_and_scale(tmp_path):
    import shutil

    notebook = tmp_path / "99_test.ipynb"
    cells = [{"cell_type": "code", "metadata": {}, "source": ["x = 1\n", "print(x)"]},
             {"cell_type": "markdown", "metadata": {}, "source": "prose"}]
    write_notebook(notebook, cells)
    lib = tmp_path / "lib"
    shutil.copytree(report.LIB, lib, ignore=shutil.ignore_patterns("__pycache__"))
    base = report.results_fingerprint(notebook, "full", lib)
    assert base == report.results_fingerprint(notebook, "full", lib)  # deterministic
    cells[1]["source"] = "other prose"  # prose does not count
    write_notebook(notebook, cells)
    assert report.results_fingerprint(notebook, "full", lib) == base
    assert report.results_fingerprint(notebook, "quick", lib) != base  # the scale does
    cells[0]["metadata"]["tags"] = ["nbval-skip"]  # a tag does
    write_notebook(notebook, cells)
    assert report.results_fingerprint(notebook, "full", lib) != base
    cells[0]["metadata"]["tags"] = []
    write_notebook(notebook, cells)
    assert report.results_fingerprint(notebook, "full", lib) == base
    (lib / "losses.py").write_text((lib / "losses.py").read_text() + "\n# edited\n")
    assert report.results_fingerprint(notebook, "full", lib) != base  # the library does
    cells[0]["source"] = "x = 2"  # and the code does
    write_notebook(notebook, cells)
    assert report.results_fingerprint(notebook, "full", report.LIB) != base


def test_save_results_records_claims_environment_and_fingerprint(tmp_path, monkeypatch):
    import json

    (tmp_path / "chapters").mkdir()
    notebook = tmp_path / "chapters" / "99_test.ipynb"
    write_notebook(notebook, [{"cell_type": "code", "metadata": {}, "source": "x = 1"}])
    monkeypatch.setattr(report, "ROOT", tmp_path)
    monkeypatch.setenv("BOOK_RESULTS_DIR", str(tmp_path / "out"))
    record = report.save_results("99_test", [make_claim()], scale="quick", seeds=[0, 1],
                                 seconds=3.21)
    saved = json.loads(record["path"].read_text())
    assert record["path"] == tmp_path / "out" / "99_test.json"
    assert saved["fingerprint"] == report.results_fingerprint(notebook, "quick")
    assert saved["seeds"] == 2 and saved["scale"] == "quick" and saved["seconds"] == 3.2
    assert saved["claims"][0]["verdict"] == "held"
    assert {"torch", "sympy", "numpy", "scikit-learn", "mnist1d"} <= set(saved["versions"])
    assert saved["cpu"] and saved["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    table = report.claims_markdown(saved).data
    assert "| 9.1 | A beats B. | > 0 | 3 | +0.060 |" in table and "| held |" in table
    with pytest.raises(ValueError, match="chapter must name a notebook"):
        report.save_results("98_missing", [], scale="quick", seeds=[0], seconds=1)
    with pytest.raises(ValueError, match="each claim must be made by lib.report.claim"):
        report.save_results("99_test", [{"id": "x"}], scale="quick", seeds=[0], seconds=1)
    with pytest.raises(ValueError, match="claim ids must be distinct"):
        report.save_results("99_test", [make_claim(), make_claim()], scale="quick", seeds=[0],
                            seconds=1)
    with pytest.raises(ValueError, match="scale must be 'quick' or 'full'"):
        report.save_results("99_test", [], scale="huge", seeds=[0], seconds=1)


def test_glue_records_a_value_for_the_prose(capsys):
    from unittest import mock

    with mock.patch("IPython.display.display") as display:
        report.glue("ch9_gain", np.float64(0.0123))
        report.glue("ch9_verdict", "held")
    (bundle,), kwargs = display.call_args_list[0]
    assert bundle == {"application/papermill.record/text/plain": "0.0123"}
    assert kwargs["metadata"]["scrapbook"]["name"] == "ch9_gain" and kwargs["raw"] is True
    (bundle,), _ = display.call_args_list[1]
    assert bundle["application/papermill.record/text/markdown"] == "held"
