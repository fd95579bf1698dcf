"""Hygiene of the committed chapter notebooks, and freshness of the results they saved.

The book renders the outputs committed with each notebook, so those outputs must be complete,
clean and free of anything that belongs to one machine.
"""

import getpass
import json
import re
from pathlib import Path

import pytest
import yaml

from reweighting import evidence, report

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
MACHINE_PATH = re.compile(r"(/(home|root|work|tmp|Users|private|var/folders)/|[A-Za-z]:\\\\)")


def toc_files():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [c["file"] for part in toc["parts"] for c in part["chapters"]]


def outputs_text(cell):
    for output in cell.get("outputs", []):
        text = output.get("text", "")
        data = output.get("data", {})
        for key in ("text/plain", "text/markdown", "text/html", "text/latex"):
            value = data.get(key, "")
            text += "".join(value) if isinstance(value, list) else value
        yield output, "".join(text) if isinstance(text, list) else text


def test_every_chapter_is_in_the_table_of_contents():
    assert CHAPTERS, "no chapter notebooks found"
    listed = toc_files()
    for path in CHAPTERS:
        assert f"chapters/{path.stem}" in listed, f"{path.name} is missing from _toc.yml"
    for entry in listed:
        assert (ROOT / f"{entry}.ipynb").exists() or (ROOT / f"{entry}.md").exists(), entry


@pytest.fixture(params=CHAPTERS, ids=[p.stem for p in CHAPTERS])
def notebook(request):
    return request.param, json.loads(request.param.read_text(encoding="utf-8"))


def test_kernelspec_is_python3(notebook):
    _, nb = notebook
    assert nb["metadata"]["kernelspec"]["name"] == "python3"


def test_committed_outputs_present_in_order_without_errors(notebook):
    path, nb = notebook
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    counts = [c["execution_count"] for c in code]
    assert counts == list(range(1, len(code) + 1)), f"{path.name}: execution counts {counts}"
    assert sum(len(c["outputs"]) for c in code) > 0, f"{path.name} has no outputs"
    for i, cell in enumerate(code):
        for output in cell["outputs"]:
            assert output["output_type"] != "error", f"{path.name}: code cell {i} has an error"


def test_outputs_hold_no_machine_paths_user_names_or_warnings(notebook):
    path, nb = notebook
    user = getpass.getuser()
    for i, cell in enumerate(c for c in nb["cells"] if c["cell_type"] == "code"):
        for output, text in outputs_text(cell):
            assert not MACHINE_PATH.search(text), f"{path.name}: code cell {i} shows a path"
            if len(user) > 3:
                assert f"/{user}/" not in text and f"\\{user}\\" not in text
            if output.get("name") == "stderr":
                assert "warn" not in text.lower(), f"{path.name}: code cell {i} warns: {text}"


def test_machine_dependent_cells_are_not_compared_exactly(notebook):
    # nbval compares outputs exactly; training, timing and provenance cells must opt out
    path, nb = notebook
    for i, cell in enumerate(c for c in nb["cells"] if c["cell_type"] == "code"):
        source = "".join(cell["source"])
        machine_dependent = ("provenance(", "train_batched(", "save_results(", "SCALE")
        if cell["outputs"] and any(s in source for s in machine_dependent):
            assert "nbval-ignore-output" in cell["metadata"].get("tags", []), (
                f"{path.name}: code cell {i} depends on the machine but is compared exactly")


def saved_record(path):
    saved = ROOT / "results" / f"{path.stem}.json"
    assert saved.exists(), f"{path.name} has no saved results: run `make reproduce`"
    return json.loads(saved.read_text(encoding="utf-8"))


def test_saved_results_are_as_fresh_as_code_library_scale_seeds_and_versions(notebook):
    path, _ = notebook
    record = saved_record(path)
    # the committed results are the book's full run, whatever scale the tests run at
    reasons = evidence.stale_reasons(record, path, scale="full")
    assert not reasons, (
        f"results/{path.stem}.json is stale: " + "; ".join(reasons) + ". Re-execute it with "
        f"`python scripts/reproduce.py chapters/{path.name}` (in the environment of "
        "requirements.txt, with BOOK_SEED_OFFSET unset)")
    assert record["claims"], f"results/{path.stem}.json holds no claims"
    problems = evidence.claim_problems(record)  # a value dropped, or a claim over other seeds
    assert not problems, f"results/{path.stem}.json: " + "; ".join(problems)


def test_committed_results_are_the_books_full_run_on_the_default_seeds(notebook):
    path, _ = notebook
    record = saved_record(path)
    assert record["scale"] == "full", f"{path.name} was last run at scale {record['scale']}"
    seeds = record["seeds"]
    assert isinstance(seeds, list) and len(seeds) >= 20, (
        f"{path.name} records seeds {seeds!r}: a list of at least 20 seeds expected")
    assert record["seed offset"] == 0 and seeds == list(range(len(seeds))), (
        f"{path.name} was run with BOOK_SEED_OFFSET {record['seed offset']} (seeds {seeds[:3]}"
        "...): the committed book is the run on the default seeds 0, 1, 2, ...")


def test_every_saved_interval_and_verdict_is_what_its_values_give(notebook):
    # the page trusts low, high and verdict: recompute each from its stored values
    path, _ = notebook
    for c in saved_record(path)["claims"]:
        rebuilt = evidence.recompute(c)
        for key in ("n", "mean", "std", "low", "high", "verdict"):
            assert rebuilt[key] == c[key] or (
                key in ("mean", "std") and abs(rebuilt[key] - c[key]) < 1e-12), (
                f"{path.name}: claim {c['id']} stores {key} {c[key]!r}, its values give "
                f"{rebuilt[key]!r}")


TRAINING_CALLS = ("train_batched(", "train_one(")


def test_claims_are_declared_before_the_first_training_cell(notebook):
    # "declared before it runs": every declaration precedes every cell that trains
    path, nb = notebook
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    declaring = [i for i, source in enumerate(code) if ".declare(" in source]
    training = [i for i, source in enumerate(code) if any(t in source for t in TRAINING_CALLS)]
    assert declaring, f"{path.name} declares no claims (reweighting.evidence.Claims.declare)"
    assert not training or max(declaring) < min(training), (
        f"{path.name}: code cell {max(declaring)} declares a claim after code cell "
        f"{min(training)} trains; declare every claim before the first training cell")


CLAIM_CELL = ("save_results(", ".declare(", ".fill(", "claim(", "assert ")
FORBIDDEN_TAGS = {"raises-exception", "nbval-skip", "skip-execution"}


def test_cells_that_save_or_assert_claims_always_run(notebook):
    # a saved or asserted claim must run and fail loudly: never skipped, never expected to raise
    path, nb = notebook
    for i, cell in enumerate(c for c in nb["cells"] if c["cell_type"] == "code"):
        source = "".join(cell["source"])
        if any(marker in source for marker in CLAIM_CELL):
            tags = set(cell["metadata"].get("tags", [])) & FORBIDDEN_TAGS
            assert not tags, f"{path.name}: code cell {i} saves or asserts claims but is {tags}"


def test_the_notebook_shows_the_claims_it_saved(notebook):
    # the claims table the notebook printed is the one in results/<chapter>.json
    path, nb = notebook
    expected = report.claims_markdown(saved_record(path)).data
    shown = [text for cell in nb["cells"] if cell["cell_type"] == "code"
             and "save_results(" in "".join(cell["source"])
             for _, text in outputs_text(cell)]
    assert any(expected in text for text in shown), (
        f"{path.name} does not show the claims table of results/{path.stem}.json: re-execute it")


GLUE_ROLE = re.compile(r"\{glue:(text|md)\}`([A-Za-z0-9_]+)(?::([^`]*))?`")
# a number of another chapter: {glue:text}`02_smooth_f1.ipynb::key:.3f`
OTHER_GLUE = re.compile(r"\{glue:(?:text|md)\}`([A-Za-z0-9_]+)\.ipynb::([A-Za-z0-9_]+)")


def glued_values(nb) -> dict[str, dict]:
    """Every value the notebook glued (reweighting.report.glue), by name: its MIME bundle."""
    prefix = "application/papermill.record/"
    values = {}
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            if name:
                values[name] = {k[len(prefix):]: "".join(v) if isinstance(v, list) else v
                                for k, v in output.get("data", {}).items()}
    return values


def test_every_glued_number_the_prose_quotes_exists_and_formats(notebook):
    # the prose's numbers come from the run: each {glue:...} reference must have a value, and a
    # number quoted with a format spec must be a plain number (not e.g. "array(0.1)")
    from ast import literal_eval

    path, nb = notebook
    values = glued_values(nb)
    prose = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    for role, name, spec in GLUE_ROLE.findall(prose):
        assert name in values, f"{path.name}: the prose quotes {name!r}, which no cell glued"
        mime = "text/markdown" if role == "md" else "text/plain"
        assert mime in values[name], f"{path.name}: {name!r} has no {mime} value"
        if role == "text" and spec and spec[-1] in "eEfFgGn%d":
            try:
                value = literal_eval(values[name]["text/plain"])
            except (ValueError, SyntaxError):
                value = None
            assert isinstance(value, (int, float)), (
                f"{path.name}: {name!r} is quoted as a number but glued as "
                f"{values[name]['text/plain']!r}")


def test_numbers_quoted_from_other_chapters_exist_there(notebook):
    path, nb = notebook
    prose = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    # myst-nb finds no key for {glue:md} with a notebook path: quote words of another chapter
    # by a link to it, numbers with {glue:text}
    assert not re.search(r"\{glue:md\}`[^`]*\.ipynb::", prose), (
        f"{path.name} quotes another chapter with {{glue:md}}, which renders nothing")
    for other, name in OTHER_GLUE.findall(prose):
        source = ROOT / "chapters" / f"{other}.ipynb"
        assert source.exists(), f"{path.name} quotes {name!r} from {other}.ipynb, which is missing"
        values = glued_values(json.loads(source.read_text(encoding="utf-8")))
        assert name in values, f"{path.name} quotes {name!r}, which {other}.ipynb does not glue"
