"""Presentation helpers of reweighting.report, and reweighting.metrics (the evidence:
tests/test_evidence.py)."""

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score

from reweighting import metrics, report


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
    with pytest.raises(ValueError, match=r"^axis must be an integer in \[-2, 2\), got 2"):
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
