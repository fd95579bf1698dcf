"""The library as a user installs it: a wheel, in a fresh environment, running the README's example.

README.md, "Use the library in your own training loop", tells a practitioner to install PyTorch
first, from the index they want, and then the package. This test does exactly that:

1. builds the wheel with ``python -m pip wheel . --no-deps -w <tmp>`` from a copy of the files
   the package is built from (``pyproject.toml``, ``README.md``, ``LICENSE``, ``lib/``), so that
   setuptools' ``build/`` folder never lands in the working tree;
2. creates a fresh virtual environment with ``python -m venv`` (no system site-packages), installs
   ``torch==<the version of this environment>`` into it (pip's configuration decides which build,
   as it does for the reader), then the wheel *with* its declared dependencies;
3. checks that pip left torch's version alone, that ``import reweighting.losses`` works there,
   and that the ``data`` extra's packages (MNIST-1D, scikit-learn, SciPy) were not installed;
4. runs the README's example (the ``python`` code block under that heading) in that environment
   and checks that it exits 0 and prints one balanced accuracy in [0, 1] per line.

It is skipped, with the reason, when ``python -m venv`` cannot create an environment (Debian's
``python3-venv`` missing) or when pip cannot reach a package index (the message names the indexes
pip looked in); with ``BOOK_WHEEL_TEST=required`` (``.ci/run`` sets it) both are failures. It
prints how long each step took.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
HEADING = "## Use the library in your own training loop"
BUILT_FROM = ("pyproject.toml", "README.md", "LICENSE", "lib")
EXTRA_ONLY = ("mnist1d", "sklearn", "scipy")  # the `data` extra's import names
# what pip prints when it cannot reach an index, or the index has no such distribution
UNREACHABLE = (
    "No matching distribution found",
    "Could not find a version that satisfies",
    "Failed to establish a new connection",
    "NewConnectionError",
    "Temporary failure in name resolution",
    "Network is unreachable",
    "Max retries exceeded",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ProxyError",
    "SSLError",
)


def _required() -> bool:
    return os.environ.get("BOOK_WHEEL_TEST", "").strip() == "required"


def _cannot_run(message: str) -> None:
    """Skip with ``message``, or fail with it under ``BOOK_WHEEL_TEST=required``."""
    if _required():
        pytest.fail(f"{message} (BOOK_WHEEL_TEST=required)")
    pytest.skip(message)


def _clean_env() -> dict[str, str]:
    """This process's environment without the variables that would leak its packages."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"}}
    env["OMP_NUM_THREADS"] = "1"  # the example's small MLPs, on cores other jobs share
    return env


def _run(args: list, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], cwd=cwd, env=_clean_env(), text=True,
                          capture_output=True, timeout=timeout, check=False)


def _indexes(output: str) -> str:
    """The indexes and links pip says it looked in, or its default index."""
    looked = [line.strip() for line in output.splitlines() if line.startswith("Looking in")]
    return "; ".join(looked) or "pip's default index, https://pypi.org/simple"


def _pip(python: Path, args: list, cwd: Path, what: str) -> str:
    """Run ``python -m pip ARGS``; skip (or fail) when no index is reachable, fail otherwise."""
    done = _run([python, "-m", "pip", *args], cwd)
    output = done.stdout + done.stderr
    if done.returncode != 0:
        if any(marker in output for marker in UNREACHABLE):
            _cannot_run(f"pip cannot reach an index to {what} (looked in: {_indexes(output)}): "
                        f"{output.strip().splitlines()[-1]}")
        pytest.fail(f"pip failed to {what} (exit {done.returncode}):\n{output[-4000:]}")
    return output


def readme_example() -> str:
    """The ``python`` code block under the README's heading :data:`HEADING`."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.find(f"\n{HEADING}\n")
    assert start >= 0, f"README.md has no section {HEADING!r}"
    section = re.split(r"\n## ", text[start + len(HEADING) + 1:], maxsplit=1)[0]
    block = re.search(r"^```python\n(.*?)^```", section, re.M | re.S)
    assert block, f"README.md's section {HEADING!r} has no ```python code block"
    return block.group(1)


def test_readme_example_is_found():
    """The example the wheel test runs exists and uses the installed package, not lib/."""
    code = readme_example()
    assert "import" in code and "reweighting" in code
    assert "sys.path" not in code and "lib/" not in code


@pytest.fixture
def scratch(tmp_path):
    """A temporary folder whose virtual environment (about 1 GB with torch) is removed after."""
    yield tmp_path
    t0 = time.perf_counter()
    shutil.rmtree(tmp_path / "venv", ignore_errors=True)
    print(f"removing the venv took {time.perf_counter() - t0:.1f} s")


def test_wheel_installs_beside_torch_and_runs_the_readme_example(scratch):
    """Wheel built, installed with its dependencies in a fresh venv; the README's example runs."""
    tmp_path = scratch
    times, t0 = {}, time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t0
        times[name] = time.perf_counter() - t0
        t0 = time.perf_counter()

    # 1. the wheel, built from a copy of what it is built from
    source = tmp_path / "source"
    source.mkdir()
    for name in BUILT_FROM:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(path, source / name)
    dist = tmp_path / "dist"
    _pip(Path(sys.executable), ["wheel", ".", "--no-deps", "-w", dist], source,
         "build the wheel (its build backend, setuptools)")
    wheels = list(dist.glob("reweighting-*.whl"))
    assert len(wheels) == 1, f"expected one reweighting wheel in {dist}, got {wheels}"
    lap("build the wheel")

    # 2. a fresh environment: torch first, at this environment's version, then the wheel
    venv = tmp_path / "venv"
    made = _run([sys.executable, "-m", "venv", venv], tmp_path)
    if made.returncode != 0:
        _cannot_run(f"`{sys.executable} -m venv` is unavailable (on Debian or Ubuntu: "
                    f"apt-get install python3-venv): {(made.stdout + made.stderr).strip()}")
    python = venv / "bin" / "python"
    lap("create the venv")
    torch_version = torch.__version__.split("+")[0]
    # --no-compile: byte-compiling torch's thousands of modules is most of an install's time
    _pip(python, ["install", "--no-compile", f"torch=={torch_version}"], tmp_path,
         f"install torch=={torch_version}")
    installed = _run([python, "-c", "import torch; print(torch.__version__)"], tmp_path)
    assert installed.returncode == 0, installed.stderr
    before = installed.stdout.strip()
    assert before.split("+")[0] == torch_version, f"pip installed torch {before}"
    lap(f"install torch {before}")
    _pip(python, ["install", "--no-compile", wheels[0]], tmp_path,
         f"install {wheels[0].name} with its dependencies")
    lap("install the wheel with its dependencies")

    # 3. torch untouched, the package imports, the extra's packages absent
    probe = _run([python, "-c", (
        "import importlib.util, torch, reweighting.losses, reweighting.heads\n"
        "print(torch.__version__)\n"
        "print(reweighting.losses.__file__)\n"
        f"print(*[m for m in {EXTRA_ONLY!r} if importlib.util.find_spec(m)])")], tmp_path)
    assert probe.returncode == 0, f"importing the installed package failed:\n{probe.stderr}"
    after, location, extras = (probe.stdout.splitlines() + [""])[:3]
    assert after == before, f"installing the wheel changed torch from {before} to {after}"
    assert Path(location).is_relative_to(venv), f"reweighting imported from {location}"
    assert not extras.split(), f"the `data` extra's packages were installed: {extras}"

    # 4. the README's example, in that environment, outside the repository
    script = tmp_path / "readme_example.py"
    script.write_text(readme_example(), encoding="utf-8")
    example = _run([python, script], tmp_path)
    assert example.returncode == 0, f"the README's example failed:\n{example.stderr[-4000:]}"
    lap("run the README's example")
    lines = example.stdout.strip().splitlines()
    numbers = [re.search(r"(-?\d+(?:\.\d+)?)\s*$", line) for line in lines]
    assert lines and all(numbers), f"every line should end in a number:\n{example.stdout}"
    values = [float(m.group(1)) for m in numbers]
    assert len(values) >= 4 and all(0 <= v <= 1 for v in values), (
        f"expected four or more balanced accuracies in [0, 1]:\n{example.stdout}")

    print(f"\nwheel test, torch {before}: "
          + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in times.items())
          + f"; {sum(times.values()):.1f} s in all\n{example.stdout}")
