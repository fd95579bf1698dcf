"""scripts/verify.py: a rerun of a chapter compared with its committed claims (no notebook runs)."""

import copy
import importlib.util
import json
from pathlib import Path

from reweighting import evidence

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("verify", ROOT / "scripts" / "verify.py")
verify = importlib.util.module_from_spec(spec)
spec.loader.exec_module(verify)


def record(shift: float = 0.0, drop: int = 0) -> dict:
    """A committed-looking record of three claims; ``shift`` moves the sampled values."""
    values = [0.010, 0.014, 0.012, 0.011, 0.015, 0.013, 0.012, 0.016][: 8 - drop]
    claims = [
        evidence.claim("9.1", "up", source="beyond", measure="m", direction="greater",
                       values=[v + shift for v in values]),
        evidence.claim("9.2", "same", source="beyond", measure="m", direction="equivalent",
                       delta=0.05, values=[v - 0.012 + shift for v in values]),
        evidence.claim("9.3", "exact", source="beyond", measure="m", direction="less",
                       threshold=1e-6, exact=True, values=[1e-12]),
    ]
    return {"claims": claims}


def test_a_faithful_rerun_passes():
    rows = verify.compare(record(), record())
    assert all(row["inside"] for row in rows)
    assert verify.problems(rows, outside_tolerance=0) == []
    assert "9.1" in verify.table(rows)


def test_a_forged_record_is_caught_by_the_rerun():
    """The auditor's attack: values shifted (here +0.08) and the interval recomputed. The
    fingerprint cannot see it; the rerun on the committed seeds does."""
    forged = record(shift=0.08)
    rows = verify.compare(forged, record())
    assert [row["id"] for row in rows if not row["inside"]] == ["9.1", "9.2"]
    found = verify.problems(rows, outside_tolerance=1)
    assert any("fall outside" in line for line in found)
    assert any("9.2" in line and "verdict" in line for line in found)  # held -> not held


def test_dropped_seeds_and_missing_claims_fail():
    rows = verify.compare(record(), record(drop=2))
    assert any("n 6 in the rerun, 8 committed" in line for line in verify.problems(rows, 9))
    partial = copy.deepcopy(record())
    partial["claims"] = partial["claims"][:1]
    assert any("missing" in line for line in verify.problems(
        verify.compare(record(), partial), 9))


def test_every_chapter_is_verified_in_turn():
    picked = {verify.chapter_of_commit(f"{k:040x}") for k in range(len(verify.CHAPTERS))}
    assert picked == set(verify.CHAPTERS)
    committed = json.loads((ROOT / "results" / f"{verify.CHAPTERS[0]}.json").read_text())
    assert "seed offset" in committed and "scale" in committed
