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


def test_render_lists_every_claim_with_source_test_set_interval_verdict_and_holm(tmp_path):
    import json

    from reweighting import evidence

    claims = [evidence.claim("1.1", "A | B", source="literature", cite="k2020", measure="m",
                             values=[0.04, 0.05, 0.06], direction="greater", detail="d"),
              evidence.claim("1.2", "C", source="beyond", measure="m", values=[-0.02, 0.01, 0.0],
                             direction="greater", detail="d", test_set="fixed: one split"),
              evidence.claim("1.3", "D", source="beyond", measure="m", values=[0.001, -0.001],
                             direction="equivalent", delta=0.005, detail="d"),
              evidence.claim("1.4", "E", source="article", measure="m", values=[2e-15],
                             direction="less", threshold=1e-9, exact=True, detail="d")]
    record = {"chapter": "01_smooth_accuracy", "fingerprint": "x", "scale": "full",
              "device": "cpu (x86_64, 2 threads)", "seeds": list(range(20)), "seed offset": 0,
              "seconds": 12.0, "versions": {"torch": "2", "sympy": "1"}, "cpu": "a CPU",
              "cpu_capability": "AVX2", "claims": claims}
    (tmp_path / "01_smooth_accuracy.json").write_text(json.dumps(record))
    before = tmp_path / "previous" / "verdicts.json"
    claims_page.snapshot("a reason", tmp_path, before)
    page = claims_page.render(tmp_path, before)
    assert ("| 1.1 | A \\| B | literature (k2020) | m |  | > 0 | 3 | +0.050 | [+0.025, +0.075] "
            "| held | held | d |" in page)  # 3 sampled claims: Holm keeps a strong verdict
    assert "| 1.2 | C | beyond | m | fixed: one split | > 0 | 3 | -0.003 |" in page
    assert "| 1.3 | D | beyond | m |  | within 0 ± 0.005 | 2 |" in page
    assert ("| 1.4 | E | article | m | exact | < 1e-09 | 1 | 2.0e-15 | exact | held | — | d |"
            in page)
    assert "| 4 | 2 | 0 | 2 | 2 | full |" in page and "| 20 |" in page
    assert "0 of the 4 claims that both runs tested changed their 95% verdict" in page
    assert "What changed between the runs: a reason" in page
    assert "_static/claims-forest-01_smooth_accuracy.png" in page
    assert "What an interval covers" in page
    assert "Under Holm's correction 0 of the 3 verdicts change" in page
    claims[0] = evidence.claim("1.1", "A | B", source="literature", cite="k2020", measure="m",
                               values=[-0.04, -0.05, -0.06], direction="greater", detail="d")
    (tmp_path / "01_smooth_accuracy.json").write_text(json.dumps(record))
    page = claims_page.render(tmp_path, before)
    assert "1 of the 4 claims that both runs tested changed" in page
    assert "| 1.1 | [+0.025, +0.075] | held | [-0.075, -0.025] | not held |" in page
    (path,) = claims_page.forest_plots([record], tmp_path)
    assert path == tmp_path / "claims-forest-01_smooth_accuracy.png"
    assert path.stat().st_size > 1000


def _reproduce_module():
    spec = importlib.util.spec_from_file_location("reproduce", ROOT / "scripts" / "reproduce.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_progress_bars_are_dropped_and_other_stderr_kept():
    import io

    import nbformat
    from tqdm import tqdm

    stream = io.StringIO()
    for _ in tqdm(range(40), desc="training 6 x 25", file=stream, leave=False, mininterval=0):
        pass
    bars = stream.getvalue()
    assert bars.count("\r") > 10  # a real tqdm run, refreshed many times
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("train()", outputs=[
        nbformat.v4.new_output("stream", name="stderr", text=bars),
        nbformat.v4.new_output("stream", name="stderr", text="UserWarning: something\n"),
        nbformat.v4.new_output("stream", name="stdout", text="accuracy 0.91\n")])])
    assert _reproduce_module().without_progress_bars(notebook) == 1
    assert [o.text for o in notebook.cells[0].outputs] == ["UserWarning: something\n",
                                                            "accuracy 0.91\n"]


def test_committed_chapters_carry_no_progress_bars():
    import nbformat

    reproduce = _reproduce_module()
    for path in sorted((ROOT / "chapters").glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        assert reproduce.without_progress_bars(notebook) == 0, (
            f"{path.name} holds tqdm progress bars: re-execute it with scripts/reproduce.py")


def test_cell_seconds_reads_and_removes_the_timing_of_every_code_cell():
    import nbformat

    reproduce = _reproduce_module()
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("text"),
        nbformat.v4.new_code_cell("x = 1\ny = 2"),
        nbformat.v4.new_code_cell(""),  # an empty code cell has no first line
        nbformat.v4.new_code_cell("never ran"),
    ])
    stamps = [("2026-11-30T10:00:00.000000Z", "2026-11-30T10:00:02.500000Z"),
              ("2026-11-30T10:00:03.000000Z", "2026-11-30T10:00:03.250000Z")]
    for cell, (start, end) in zip(notebook.cells[1:3], stamps):
        cell.metadata["execution"] = {"iopub.execute_input": start, "shell.execute_reply": end}
    assert reproduce.cell_seconds(notebook) == [(2.5, 1, "x = 1"), (0.25, 2, "")]
    assert not any("execution" in cell.metadata for cell in notebook.cells)


def test_an_edited_margin_is_named_on_the_page(tmp_path):
    """A claim re-declared between two runs (here its equivalence margin widened so that it
    holds) is named with what changed, not shown as a mere moved verdict."""
    import json

    from reweighting import evidence

    def record(delta):
        c = evidence.claim("1.3", "D", source="beyond", measure="m",
                           values=[0.004, 0.006, 0.005, 0.007], direction="equivalent",
                           delta=delta, detail="d")
        return {"chapter": "01_smooth_accuracy", "fingerprint": "x", "scale": "full",
                "device": "cpu", "seeds": list(range(4)), "seed offset": 0, "seconds": 1.0,
                "versions": {"torch": "2", "sympy": "1"}, "cpu": "a CPU",
                "cpu_capability": "AVX2", "claims": [c]}

    path = tmp_path / "01_smooth_accuracy.json"
    path.write_text(json.dumps(record(0.005)))
    before = tmp_path / "previous" / "verdicts.json"
    claims_page.snapshot("a reason", tmp_path, before)
    kept = json.loads(before.read_text())["chapters"]["01_smooth_accuracy"][0]
    assert kept["delta"] == 0.005 and kept["direction"] == "equivalent" and kept["n"] == 4
    path.write_text(json.dumps(record(0.05)))
    page = claims_page.render(tmp_path, before)
    assert "1 claims were declared differently" in page
    assert "| 1.3 | delta 0.005 → 0.05 |" in page


def test_the_page_and_the_build_say_when_results_are_stale(tmp_path, capsys):
    """A record whose stored scale was forged (or any stale part) is named at the top of the
    page, and `make book` prints it in red; nothing is said when all results are current."""
    import json
    import sys

    from reweighting import evidence

    notebook = ROOT / "chapters" / "01_smooth_accuracy.ipynb"
    parts = evidence.fingerprint_parts(notebook, "quick")
    c = evidence.claim("1.1", "A", source="beyond", measure="m", values=[0.1, 0.2],
                       direction="greater")
    record = {"chapter": "01_smooth_accuracy",
              "fingerprint": evidence.results_fingerprint(notebook, "quick"),
              "fingerprint parts": parts, "library": evidence.library_reach(notebook),
              "scale": "quick", "device": "cpu", "seeds": [0, 1], "seed offset": 0,
              "seconds": 1.0, "versions": parts["versions"], "cpu": "a CPU",
              "cpu_capability": "AVX2", "claims": [c]}
    (tmp_path / "01_smooth_accuracy.json").write_text(json.dumps(record))
    stale = claims_page.stale_chapters(claims_page.load(tmp_path))
    assert any("the scale is full, the results were made at scale quick" in r
               for r in stale["01_smooth_accuracy"])
    page = claims_page.render(tmp_path, tmp_path / "none.json")
    assert ":::{warning}" in page and "The results of 1 chapters are stale" in page
    sys.path.insert(0, str(ROOT / "scripts"))
    import build_book

    assert build_book.warn_stale(tmp_path) == 1
    assert ("\033[1;31mWARNING: the results of 01_smooth_accuracy are stale"
            in capsys.readouterr().err)


def test_the_scripts_run_as_scripts():
    """Each script imports what it needs when run as `python scripts/x.py` from a fresh
    interpreter (pytest's own sys.path hides a missing path)."""
    import subprocess
    import sys

    for script in ("reproduce.py", "verify.py", "claims_page.py", "build_book.py",
                   "catalogues.py"):
        done = subprocess.run([sys.executable, str(ROOT / "scripts" / script), "--help"],
                              cwd="/", capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{script}: {done.stderr[-500:]}"
