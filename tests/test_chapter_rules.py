"""Rules every chapter follows: it defines only what it teaches, and its prose follows its verdicts.

- A function that two chapters need lives in the library: no two notebooks define a function of
  the same name or with the same body, and no notebook redefines a public library function.
- A sentence that says what a claim showed is chosen from the claim's verdict: every Markdown
  paragraph that names a sampled claim glues that claim's verdict or reading
  (``report.glue_claims``), and a claim's readings differ per verdict, so a rerun that moves a
  verdict changes the sentence.
"""

import ast
import copy
import importlib
import json
import re
from collections import defaultdict
from pathlib import Path

import pytest

from reweighting import evidence

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
LIBRARY_MODULES = ("losses", "validation", "solvers", "heads", "metrics", "data", "seeds",
                   "train", "evidence", "report")


def code_of(path: Path) -> str:
    nb = json.loads(path.read_text(encoding="utf-8"))
    cells = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    lines = [line for cell in cells for line in cell.splitlines()]
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in lines)


def definitions(path: Path) -> list[ast.FunctionDef]:
    return [node for node in ast.walk(ast.parse(code_of(path)))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]


def body_of(node: ast.FunctionDef) -> str:
    """The function's body without its name and docstring, for comparing bodies."""
    body = node.body[1:] if (node.body and isinstance(node.body[0], ast.Expr)
                             and isinstance(node.body[0].value, ast.Constant)
                             and isinstance(node.body[0].value.value, str)) else node.body
    return ast.dump(ast.Module(body=body, type_ignores=[]), annotate_fields=False)


def repeated(defs_by_chapter: dict[str, list[ast.FunctionDef]]) -> list[str]:
    """Names and bodies defined in more than one chapter, as messages."""
    by_name, by_body = defaultdict(set), defaultdict(set)
    for chapter, defs in defs_by_chapter.items():
        for node in defs:
            by_name[node.name].add(chapter)
            by_body[body_of(node)].add(f"{chapter}:{node.name}")
    problems = [f"function {name!r} is defined in {sorted(where)}"
                for name, where in by_name.items() if len(where) > 1]
    problems += [f"the same function body is defined as {sorted(where)}"
                 for where in by_body.values()
                 if len({w.split(':')[0] for w in where}) > 1]
    return problems


def test_no_two_chapters_define_the_same_function():
    problems = repeated({path.stem: definitions(path) for path in CHAPTERS})
    assert not problems, "move these into the library:\n" + "\n".join(problems)


def test_the_duplicate_check_fails_on_a_copied_helper():
    source = "def interval(values):\n    return sorted(values)\n"
    renamed = "def spread(values):\n    return sorted(values)\n"
    defs = {"a": definitions_of(source), "b": definitions_of(source),
            "c": definitions_of(renamed)}
    problems = repeated(defs)
    assert any("'interval'" in p for p in problems)
    assert any("c:spread" in p for p in problems)


def definitions_of(source: str) -> list[ast.FunctionDef]:
    return [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef)]


def test_no_chapter_redefines_a_library_function():
    public = {}
    for name in LIBRARY_MODULES:
        module = importlib.import_module(f"reweighting.{name}")
        for attribute in getattr(module, "__all__", []):
            public.setdefault(attribute, f"reweighting.{name}.{attribute}")
    problems = [f"{path.stem} defines {node.name!r}, which is {public[node.name]}"
                for path in CHAPTERS for node in definitions(path) if node.name in public]
    assert not problems, "\n".join(problems)


# --- conclusions follow verdicts ------------------------------------------------------------

CLAIM_NAME = re.compile(r"\b[Cc]laims?\s+((?:\d+\.\d+[a-z]?)(?:(?:\s*[,–-]\s*|\s+and\s+|\s+to\s+)"
                        r"(?:\d+\.\d+[a-z]?|[a-z]))*)")
CLAIM_ID = re.compile(r"\d+\.\d+[a-z]?")


def paragraphs(path: Path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            yield from (p for p in re.split(r"\n\s*\n", "".join(cell["source"])) if p.strip())


def named_claims(paragraph: str) -> set[str]:
    named = set()
    for match in CLAIM_NAME.finditer(paragraph):
        ids = CLAIM_ID.findall(match.group(1))
        named.update(ids)
        # "6.3a-b": the letters after the first id
        first = ids[0]
        for letter in re.findall(r"[–-]\s*([a-z])\b", match.group(1)):
            named.add(re.sub(r"[a-z]$", "", first) + letter)
    return named


def sampled_claims(path: Path) -> set[str]:
    record_path = ROOT / "results" / f"{path.stem}.json"
    if not record_path.exists():
        return set()
    record = json.loads(record_path.read_text(encoding="utf-8"))
    return {c["id"] for c in record["claims"] if not c["exact"]}


def unread(paragraph: str, sampled: set[str]) -> list[str]:
    """The sampled claims a paragraph names without gluing their verdict or reading."""
    missing = []
    for claim_id in sorted(named_claims(paragraph) & sampled):
        key = "_claim_" + claim_id.replace(".", "_") + "_"
        if not re.search(r"\{glue:(md|text)\}`[a-z0-9_]*" + re.escape(key)
                         + r"(verdict|reading)\b", paragraph):
            missing.append(claim_id)
    return missing


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_every_paragraph_that_names_a_claim_glues_its_verdict_or_reading(path):
    sampled = sampled_claims(path)
    problems = [f"claims {unread(p, sampled)} in: {p[:120]!r}..." for p in paragraphs(path)
                if unread(p, sampled)]
    assert not problems, (f"{path.name}: a paragraph names a sampled claim but says what it showed "
                          "without its glued verdict or reading:\n" + "\n".join(problems))


def test_the_paragraph_check_fails_on_typed_conclusions():
    typed = "Claim 6.5 held: the class-weighted refit raises F1."
    glued = "Claim 6.5 {glue:md}`ch6_claim_6_5_reading`."
    assert unread(typed, {"6.5"}) == ["6.5"]
    assert unread(glued, {"6.5"}) == []
    assert named_claims("Claims 6.3a–b and 6.4 are read below.") == {"6.3a", "6.3b", "6.4"}


def flipped(record: dict) -> dict:
    """A scratch copy of a record with every sampled claim's verdict moved to another one."""
    scratch = copy.deepcopy(record)
    order = {"held": "not held", "not held": "inconclusive", "inconclusive": "held"}
    for c in scratch["claims"]:
        if c.get("readings") and not c["exact"]:
            c["verdict"] = order[c["verdict"]]
            c["reading"] = c["readings"][c["verdict"]]
    return scratch


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_a_moved_verdict_changes_the_sentences_that_read_it(path):
    record_path = ROOT / "results" / f"{path.stem}.json"
    if not record_path.exists():
        pytest.skip(f"no results for {path.stem}")
    record = json.loads(record_path.read_text(encoding="utf-8"))
    read = [c for c in record["claims"] if c.get("readings")]
    for c in read:
        evidence.check_readings(c["readings"], c["exact"])
        texts = [c["readings"][v] for v in c["readings"]]
        assert len(set(texts)) == len(texts), f"claim {c['id']}: two verdicts read the same"
    scratch = flipped(record)
    for before, after in zip(record["claims"], scratch["claims"]):
        if before.get("readings") and not before["exact"]:
            assert before["reading"] != after["reading"], before["id"]


# --- claims are declared before anything that produces their values ---------------------------

FITTING = re.compile(r"train_batched\(|train_one\(|\brefit\(|fit_linear\(|torch\.optim\.|"
                     r"optimize\.minimize|LBFGS|\.fit\(")


def fits_before_declaration(path: Path) -> list[str]:
    """Code cells that fit or train anything before the cell that declares the claims."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    code = [(i, "".join(c["source"])) for i, c in enumerate(nb["cells"])
            if c["cell_type"] == "code"]
    declaring = [i for i, source in code if ".declare(" in source]
    if not declaring:
        return [f"{path.name} declares no claims"]
    return [f"cell {i}: {FITTING.search(source).group(0)}" for i, source in code
            if i < declaring[0] and FITTING.search(source)]


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_claims_are_declared_before_any_fit(path):
    """Exact claims too: a fit whose number fills a claim runs after the claim is declared
    (chapter 6's population fit and chapter 5's minimiser check once ran before)."""
    early = fits_before_declaration(path)
    assert not early, f"{path.name}: fits before the claims are declared: {early}"


def test_the_declaration_check_fails_on_an_early_fit(tmp_path):
    nb = {"cells": [{"cell_type": "code", "source": ["w = torch.optim.LBFGS([p])\n"]},
                    {"cell_type": "code", "source": ["CLAIMS.declare('1.1', ...)\n"]}]}
    path = tmp_path / "early.ipynb"
    path.write_text(json.dumps(nb))
    assert fits_before_declaration(path) == ["cell 0: torch.optim."]
