"""No name starting with ``_`` is used outside its module (the library's public API is public).

The check parses (``ast``) every ``.py`` file under ``lib/``, ``scripts/``, ``benchmarks/`` and
``_ext/`` and the code cells of ``chapters/*.ipynb``, and reports, by file and line:

- an attribute ``x._name`` (one leading underscore, not a dunder) where ``x``, or the root of a
  chain ``x.y._name``, is a name an import binds in that file: an imported module
  (``losses._foo``, ``reweighting.report._number``, ``torch._C``) or a name imported from
  another module (``Ensemble._forward_all`` after ``from reweighting.train import Ensemble``);
- ``from X import _name``, relative (``from .losses import _cross_entropy``) or absolute
  (``from reweighting.train import _in_order``).

A module's own private names (``_helper()``, ``self._x``, a local object's ``obj._x``) are
fine. The namedtuple API (``_fields``, ``_replace``, ...) is public despite its underscore.
A test file ``tests/test_<m>.py`` may reach into the internals of ``reweighting.<m>``, the module
it tests, and into nothing else but what ``TEST_INTERNALS`` lists.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STRICT_DIRS = ("lib", "scripts", "benchmarks", "_ext")
# public despite the underscore: the documented API of collections.namedtuple
NAMEDTUPLE_API = {"_fields", "_field_defaults", "_replace", "_asdict", "_make"}
# private names tests use beyond the module they test (reweighting.<m> for tests/test_<m>.py)
TEST_INTERNALS = {
    # the fake accelerator lets PyTorch's own bookkeeping through: it is not a computation
    ("tests/fake_device.py", "torch._has_compatible_shallow_copy_type"),
}


def is_private(name: str) -> bool:
    """One leading underscore and not a dunder: ``_x`` yes, ``__x__`` and ``x`` no."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def code_units(path: Path) -> list[tuple[str, str]]:
    """``(label, source)`` for a ``.py`` file, or one per code cell of a notebook, IPython
    magics and shell lines (starting with ``%`` or ``!``) blanked so that lines keep their
    numbers."""
    relative = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
    if path.suffix != ".ipynb":
        return [(relative, path.read_text(encoding="utf-8"))]
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    units = []
    for number, cell in enumerate(cells):
        if cell["cell_type"] == "code":
            source = "".join(cell["source"])
            lines = ["" if line.lstrip().startswith(("%", "!")) else line
                     for line in source.splitlines()]
            units.append((f"{relative} cell {number}", "\n".join(lines)))
    return units


def imported_names(trees: list[ast.AST]) -> dict[str, str]:
    """Every name an ``import`` or ``from ... import`` binds, anywhere in these trees, mapped
    to what it is: ``{"L": "reweighting.losses", "Ensemble": "reweighting.train.Ensemble"}``."""
    names = {}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names |= {alias.asname or alias.name.split(".")[0]:
                          alias.name if alias.asname else alias.name.split(".")[0]
                          for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                module = "." * node.level + (node.module or "")
                prefix = module if module.endswith(".") else module + "."
                names |= {alias.asname or alias.name: prefix + alias.name for alias in node.names}
    return names


def chain(node: ast.Attribute) -> tuple[str | None, str]:
    """The root name of ``a.b._c`` (``None`` if the root is not a name) and its dotted text."""
    parts = [node.attr]
    value = node.value
    while isinstance(value, ast.Attribute):
        parts.append(value.attr)
        value = value.value
    root = value.id if isinstance(value, ast.Name) else None
    return root, ".".join([root or "...", *reversed(parts)])


def violations(units: list[tuple[str, str]]) -> list[tuple[str, int, str, str]]:
    """``(label, line, what, origin)`` for each private name used outside its module in
    ``units``, the code of one module (one file, or all cells of one notebook: imports span
    cells); ``origin`` is the module the private name belongs to, as imported."""
    trees = [(label, ast.parse(source, filename=label)) for label, source in units]
    imported = imported_names([tree for _, tree in trees])
    found = []
    for label, tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                module = "." * node.level + (node.module or "")
                found += [(label, node.lineno, f"from {module} import {alias.name}", module)
                          for alias in node.names if is_private(alias.name)]
            elif (isinstance(node, ast.Attribute) and is_private(node.attr)
                  and node.attr not in NAMEDTUPLE_API):
                root, text = chain(node)
                if root in imported:
                    found.append((label, node.lineno, text, imported[root]))
    return found


def own_module_of_test(label: str, origin: str) -> bool:
    """Whether ``origin`` is (or is inside) ``reweighting.<m>``, for the test file ``label`` =
    ``tests/test_<m>.py``: a test may use the internals of the module it tests."""
    name = Path(label).stem
    if not name.startswith("test_"):
        return False
    module = f"reweighting.{name.removeprefix('test_')}"
    return origin == module or origin.startswith(module + ".")


def project_files(*dirs: str) -> list[Path]:
    return sorted(path for d in dirs for path in (ROOT / d).rglob("*.py")
                  if ".venv" not in path.parts and "_build" not in path.parts)


def notebooks() -> list[Path]:
    return sorted((ROOT / "chapters").glob("*.ipynb"))


def report(found) -> str:
    return "\n".join(f"{label}, line {line}: {what}" for label, line, what, _ in found)


@pytest.mark.parametrize("path", project_files(*STRICT_DIRS) + notebooks(),
                         ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_private_name_is_used_outside_its_module(path):
    found = violations(code_units(path))
    assert not found, "private names used outside their module:\n" + report(found)


def test_the_tests_use_private_names_only_of_the_module_they_test():
    found = [v for path in project_files("tests") for v in violations(code_units(path))
             if not own_module_of_test(v[0], v[3])]
    unlisted = [v for v in found if (v[0], v[2]) not in TEST_INTERNALS]
    assert not unlisted, ("private names a test uses of a module it does not test, not in "
                          "TEST_INTERNALS:\n" + report(unlisted))
    stale = TEST_INTERNALS - {(label, what) for label, _, what, _ in found}
    assert not stale, f"TEST_INTERNALS entries no test uses any more: {sorted(stale)}"


@pytest.mark.parametrize(
    ("label", "snippet", "allowed"),
    [
        ("tests/test_train.py", "from reweighting import train\ntrain._loss_over_models\n", True),
        ("tests/test_losses.py", "from reweighting import losses as L\nL._reduce\n", True),
        ("tests/test_evidence.py", "from reweighting.evidence import _digest\n", True),
        ("tests/test_train.py", "from reweighting import losses\nlosses._reduce\n", False),
        ("tests/test_data.py", "from reweighting import train\ntrain._in_order\n", False),
        ("tests/conftest.py", "from reweighting import train\ntrain._in_order\n", False),
    ],
)
def test_a_test_may_use_the_internals_of_the_module_it_tests_only(label, snippet, allowed):
    (found,) = violations([(label, snippet)])
    assert own_module_of_test(found[0], found[3]) is allowed


def test_the_files_scanned_include_every_library_module_and_chapter():
    scanned = {p.relative_to(ROOT).as_posix() for p in project_files(*STRICT_DIRS)}
    assert {"lib/reweighting/losses.py", "lib/reweighting/train.py", "scripts/claims_page.py",
            "benchmarks/trainer_options.py", "_ext/bilingual.py"} <= scanned
    assert len(notebooks()) >= 6


# --- the check itself catches what it exists for, and only that -----------------------------


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ("from reweighting import losses\nx = 1\nlosses._foo(x)\n", [(3, "losses._foo")]),
        ("from reweighting import losses as L\nL._mean_cross_entropy(1, 2)\n",
         [(2, "L._mean_cross_entropy")]),
        ("import reweighting.losses\nreweighting.losses._foo\n", [(2, "reweighting.losses._foo")]),
        ("import reweighting\nreweighting.report._number(0.5)\n",
         [(2, "reweighting.report._number")]),
        ("from . import losses as _losses\n_losses._mean_cross_entropy(1, 2)\n",
         [(2, "_losses._mean_cross_entropy")]),
        ("from reweighting.train import Ensemble\nEnsemble._forward_all\n",
         [(2, "Ensemble._forward_all")]),
        ("from reweighting.train import _in_order, mlp\n",
         [(1, "from reweighting.train import _in_order")]),
        ("from .losses import _cross_entropy\n", [(1, "from .losses import _cross_entropy")]),
        ("from ..x import _y as y\n", [(1, "from ..x import _y")]),
        ("import torch\ntorch._C\n", [(2, "torch._C")]),
        ("def f():\n    import scripts.claims_page as page\n    return page._private\n",
         [(3, "page._private")]),
    ],
)
def test_the_check_flags_private_names_from_other_modules(snippet, expected):
    found = violations([("scratch.py", snippet)])
    assert [(line, what) for _, line, what, _ in found] == expected


@pytest.mark.parametrize(
    "snippet",
    [
        "def _helper():\n    return 1\n_helper()\n",  # a module's own private function
        "class A:\n    def f(self):\n        return self._x\n",
        # a local alias of an imported name: beyond what a static check follows
        "from reweighting import train\nensemble = train.Ensemble\nensemble._x\n",
        "from reweighting import losses\nlosses.__name__, losses.__all__\n",  # dunders
        "from reweighting.seeds import Streams\nStreams._fields\n",  # the namedtuple API
        "from reweighting import losses\nlosses.over_models()\n",
        "import torch\nx = torch.zeros(1)\nx._version\n",  # x is a tensor, not an import
        "from __future__ import annotations\n",
    ],
)
def test_the_check_leaves_a_modules_own_names_and_public_names_alone(snippet):
    assert violations([("scratch.py", snippet)]) == []


def test_notebook_cells_share_their_imports_and_skip_magics(tmp_path):
    cells = [
        {"cell_type": "code", "source": ["%config InlineBackend.figure_format = \"retina\"\n",
                                         "from reweighting import losses, report\n"]},
        {"cell_type": "markdown", "source": ["`losses._foo` in prose is not code\n"]},
        {"cell_type": "code", "source": ["!ls\n", "x = 1\n", "report._number(x)"]},
    ]
    path = tmp_path / "scratch.ipynb"
    path.write_text(json.dumps({"cells": cells}), encoding="utf-8")
    found = violations(code_units(path))
    assert [(label.split()[-1], line, what, origin) for label, line, what, origin in found] == [
        ("2", 3, "report._number", "reweighting.report")]
