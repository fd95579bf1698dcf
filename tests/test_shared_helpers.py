"""The small helpers the chapters share: seed children, one-vs-rest splits, words and readings."""

import numpy as np
import pytest
import torch

from reweighting import data, evidence, report, seeds


def test_child_is_the_spawned_child_whatever_the_number_spawned():
    stream = seeds.streams(7).test
    for k in range(5):
        for n in (k + 1, 9):
            spawned = np.random.SeedSequence(stream).spawn(n)[k]
            assert seeds.child(stream, k) == int(spawned.generate_state(1)[0])
    assert len({seeds.child(stream, k) for k in range(5)}) == 5
    with pytest.raises(ValueError, match="index"):
        seeds.child(stream, -1)


def test_one_vs_rest_split_is_disjoint_at_the_same_rate():
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (5000,), generator=gen)
    x = torch.arange(5000.0)[:, None]
    x_tr, y_tr, x_val, y_val = data.one_vs_rest_split(x, labels, 3, 0.05, 1000, 400, seed=1)
    assert len(y_tr) == 1000 and len(y_val) == 400
    assert int(y_tr.sum()) == 50 and int(y_val.sum()) == 20
    assert not set(x_tr[:, 0].tolist()) & set(x_val[:, 0].tolist())
    assert ((labels[x_tr[:, 0].long()] == 3).float() == y_tr).all()


def test_paired_text_and_words_read_the_interval_like_the_verdict():
    up = [0.10, 0.12, 0.09, 0.11]
    assert report.paired_text(up).startswith("+0.105 [")
    assert report.paired_text(up, signed=False, digits=2).startswith("0.10 [") or \
        report.paired_text(up, signed=False, digits=2).startswith("0.11 [")
    assert report.words(up, "up", "down", "?") == "up"
    assert report.words([-v for v in up], "up", "down", "?") == "down"
    assert report.words([0.1, -0.1, 0.05], "up", "down", "?") == "?"
    assert report.words(up, "up", "down", "?", threshold=0.2) == "down"
    small = [0.001, 0.002, 0.0015, 0.0012]
    assert report.words(small, "up", "down", "?", equivalent="same", margin=0.01) == "same"
    with pytest.raises(ValueError, match="equivalent"):
        report.words(small, "up", "down", "?", margin=0.01)


@pytest.mark.parametrize("values, direction, delta", [
    ([0.10, 0.12, 0.09, 0.11], "greater", None), ([-0.10, -0.12, -0.09], "greater", None),
    ([0.1, -0.1, 0.05], "less", None), ([0.001, 0.002, 0.0015], "equivalent", 0.01),
    ([0.05, 0.06, 0.055], "equivalent", 0.01)])
def test_words_of_a_claim_agree_with_its_verdict(values, direction, delta):
    c = evidence.claim("9.1", "a claim", source="beyond", measure="m", values=values,
                       direction=direction, delta=delta)
    word = report.words(c, "greater", "less", "unresolved", equivalent="equivalent")
    expected = {("greater", "held"): "greater", ("greater", "not held"): "less",
                ("less", "inconclusive"): "unresolved", ("equivalent", "held"): "equivalent",
                ("equivalent", "not held"): "greater"}
    assert expected[direction, c["verdict"]] == word


def test_readings_follow_the_verdict_and_are_checked_at_declaration():
    readings = {"held": "it rose", "not held": "it fell", "inconclusive": "unresolved"}
    claims = evidence.Claims()
    claims.declare("9.1", "up", source="beyond", measure="m", direction="greater",
                   readings=readings)
    claims.declare("9.2", "same", source="beyond", measure="m", direction="less",
                   threshold=1e-6, exact=True, readings={"held": "exact", "not held": "off"})
    assert claims.fill("9.1", [0.1, 0.2, 0.15])["reading"] == "it rose"
    assert claims.fill("9.2", [1e-3])["reading"] == "off"
    with pytest.raises(ValueError, match="readings"):
        evidence.Claims().declare("9.3", "x", source="beyond", measure="m", direction="greater",
                                  readings={"held": "only one"})
    flipped = evidence.claim("9.1", "up", source="beyond", measure="m", values=[-0.1, -0.2, -0.15],
                             direction="greater", readings=readings)
    assert flipped["reading"] == "it fell"
    assert evidence.recompute(flipped)["reading"] == "it fell"
