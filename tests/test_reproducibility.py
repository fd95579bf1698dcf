"""The reproducibility page is generated from the chapters' saved results and kept current."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("claims_page", ROOT / "scripts" / "claims_page.py")
claims_page = importlib.util.module_from_spec(spec)
spec.loader.exec_module(claims_page)


def test_page_is_generated_from_the_current_results():
    page = (ROOT / "reproducibility.md").read_text(encoding="utf-8")
    assert page == claims_page.render(), (
        "reproducibility.md is older than results/: run `python scripts/claims_page.py`")


def test_every_chapter_has_results_on_the_page():
    page = claims_page.render()
    for notebook in sorted((ROOT / "chapters").glob("*.ipynb")):
        assert (ROOT / "results" / f"{notebook.stem}.json").exists(), notebook.name
        assert f"{{doc}}`chapters/{notebook.stem}`" in page, notebook.name


def test_render_lists_every_claim_and_marks_failures(tmp_path):
    import json

    record = {"chapter": "01_smooth_accuracy", "code_sha256": "x", "scale": "quick",
              "device": "cpu (x86_64, 2 threads)", "seeds": 3, "seconds": 12.0,
              "versions": {"torch": "2", "sympy": "1"},
              "claims": [{"id": "1.1", "claim": "A | B", "source": "article", "measure": "m",
                          "effect": 0.05, "spread": 0.01, "held": True, "detail": "d"},
                         {"id": "1.2", "claim": "C", "source": "beyond", "measure": "m",
                          "effect": -0.02, "spread": 0.0, "held": False, "detail": "d"}]}
    (tmp_path / "01_smooth_accuracy.json").write_text(json.dumps(record))
    page = claims_page.render(tmp_path)
    assert "| 1.1 | A \\| B | article | m | +0.050 ± 0.010 | yes | d |" in page
    assert "| 1.2 | C | beyond | m | -0.020 | **no** | d |" in page
    assert "| 2 | 1 | quick |" in page
