"""Build the book's HTML, in English, in Chinese, or both (``make book``), strictly.

    python scripts/build_book.py              # both: _build/html/ and _build/html/zh/
    python scripts/build_book.py --edition en # the English book alone, at _build/html/
    python scripts/build_book.py --edition zh # the Chinese book alone, at _build/html/zh/
    python scripts/build_book.py --out DIR    # both, into DIR and DIR/zh (the browser test)
    python scripts/build_book.py --pdf        # the PDFs: _build/pdf/book-en.pdf, book-zh.pdf


Both editions come from the same notebooks and their committed outputs (nothing is executed).
The Chinese one is the same Sphinx build with ``language: zh_CN``: its prose comes from the
catalogues in ``locales/zh_CN`` (see ``scripts/catalogues.py`` and ``_ext/bilingual.py``).
Warnings are errors in both (``-W -n --keep-going``).

The PDF (``make pdf``) is jupyter-book's LaTeX build of the same sources (``_config.yml``'s
``latex`` section and ``_ext/book_pdf.py``) typeset by XeLaTeX through ``latexmk``; it needs TeX
Live and the Noto CJK fonts (the README's install line). A LaTeX error, an undefined reference
or citation, or a character missing from every font is an error here too (:func:`latex_problems`).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "_build"
STRICT = ["-W", "-n", "--keep-going"]  # warnings are errors; nitpicky references; report all
PDF = BUILD / "pdf"
sys.path.insert(0, str(ROOT / "_ext"))
from bilingual import ZH_TITLE  # noqa: E402  (the Chinese edition's title)

# What in a LaTeX log means the PDF is wrong: an error, a reference or citation LaTeX could not
# resolve (printed as ?? in the PDF), a character no font has (printed as nothing).
LATEX_PROBLEMS = re.compile(r"^! .*|^LaTeX Warning: (?:Reference|Citation|Hyper reference) .*"
                            r"undefined.*|^Missing character: .*", re.M)


def zh_config(path: Path) -> Path:
    """Write the Chinese edition's config: the book's ``_config.yml`` with ``language: zh_CN``."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    sphinx = config.setdefault("sphinx", {})
    # jupyter-book resolves local extensions from the config file's folder, which is now this one
    sphinx["local_extensions"] = {name: str((ROOT / where).resolve())
                                  for name, where in sphinx.get("local_extensions", {}).items()}
    sphinx.setdefault("config", {})["language"] = "zh_CN"  # _ext/bilingual.py: glue, search
    config["title"] = ZH_TITLE  # the HTML pages' and the PDF's title
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False),
                    encoding="utf-8")
    return path


def jupyter_book(*args: str, builder: str = "html") -> None:
    command = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(ROOT),
               "--builder", builder, *STRICT, *args]
    print("+", " ".join(command), flush=True)
    subprocess.run(command, cwd=ROOT, check=True)


def build_en(work: Path, html: Path) -> None:
    """The English book, built under ``work``, at ``html`` (an existing ``html/zh`` is kept)."""
    built = work / "_build" / "html"
    if built.resolve() == html.resolve():  # jupyter-book's own folder: clear it, keep zh
        _clear(html, keep="zh")
    jupyter_book("--path-output", str(work))
    _place(built, html, keep="zh")


def build_zh(work: Path, html: Path) -> None:
    """The Chinese book, built under ``work``, at ``html/zh``."""
    config = zh_config(work / "_config.yml")
    # a fresh output folder (the doctrees stay): Sphinx 7.4 does not overwrite a changed static
    # file that an earlier build copied there
    shutil.rmtree(work / "_build" / "html", ignore_errors=True)
    jupyter_book("--config", str(config), "--path-output", str(work))
    _place(work / "_build" / "html", html / "zh")


def _place(built: Path, target: Path, keep: str | None = None) -> None:
    """Replace ``target`` by a copy of ``built``, keeping ``target/keep`` if it exists."""
    if built.resolve() == target.resolve():
        return
    _clear(target, keep)
    shutil.copytree(built, target, dirs_exist_ok=True)


def _clear(folder: Path, keep: str | None = None) -> None:
    for old in folder.iterdir() if folder.exists() else []:
        if old.name != keep:
            shutil.rmtree(old) if old.is_dir() else old.unlink()


def build_pdf(edition: str, work: Path, out: Path) -> Path:
    """One edition's PDF, built under ``work``, at ``out/book-<edition>.pdf``."""
    for tool in ("latexmk", "xelatex"):
        if shutil.which(tool) is None:
            raise SystemExit(f"make pdf: `{tool}` is not installed; the README's 'The PDF' "
                             "section has the apt-get line for TeX Live and the fonts")
    start = time.perf_counter()
    config = zh_config(work / "_config.yml") if edition == "zh" else ROOT / "_config.yml"
    latex = work / "_build" / "latex"
    shutil.rmtree(latex, ignore_errors=True)  # no stale .aux from an earlier build
    jupyter_book("--config", str(config), "--path-output", str(work), builder="latex")
    command = ["latexmk", "-xelatex", "-interaction=nonstopmode", "-halt-on-error", "book.tex"]
    print("+", " ".join(command), f"(in {latex}, output in latexmk.log)", flush=True)
    with open(latex / "latexmk.log", "w", encoding="utf-8") as log:
        done = subprocess.run(command, cwd=latex, stdout=log, stderr=subprocess.STDOUT)
    problems = latex_problems((latex / "book.log").read_text(encoding="utf-8", errors="replace"))
    if done.returncode or problems:
        raise SystemExit(f"make pdf: the {edition} PDF failed (latexmk exit {done.returncode}); "
                         f"from {latex / 'book.log'}:\n  " + "\n  ".join(problems[:20]))
    out.mkdir(parents=True, exist_ok=True)
    pdf = out / f"book-{edition}.pdf"
    shutil.copyfile(latex / "book.pdf", pdf)
    print(f"{pdf}: built in {time.perf_counter() - start:.0f} s", flush=True)
    return pdf


def latex_problems(log: str) -> list[str]:
    """The lines of a LaTeX log that mean the PDF is wrong (see ``LATEX_PROBLEMS``)."""
    return [line.strip() for line in LATEX_PROBLEMS.findall(log)]


RED, RESET = "\033[1;31m", "\033[0m"


def warn_stale(results_dir: Path = ROOT / "results") -> int:
    """Say, in red, which chapters' committed results are stale; return how many are.

    The book renders the committed outputs whatever their state, so a build does not fail on
    stale results (``make test`` does); it says so here, chapter by chapter, and the
    reproducibility page says so too (``scripts/claims_page.py``)."""
    import claims_page

    stale = claims_page.stale_chapters(claims_page.load(results_dir))
    for chapter, reasons in stale.items():
        print(f"{RED}WARNING: the results of {chapter} are stale: {'; '.join(reasons[:3])}"
              f"{' ...' if len(reasons) > 3 else ''}{RESET}", file=sys.stderr, flush=True)
    return len(stale)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edition", choices=["en", "zh", "both"], default="both",
                        help="which edition to build (default: both)")
    parser.add_argument("--out", type=Path, default=None,
                        help="build under this folder instead of _build, the HTML at OUT/html")
    parser.add_argument("--pdf", action="store_true",
                        help="build the PDFs (at OUT/pdf) instead of the HTML")
    args = parser.parse_args(argv)
    build = (args.out or BUILD).resolve()
    if args.pdf:
        editions = ["en", "zh"] if args.edition == "both" else [args.edition]
        pdfs = [build_pdf(edition, build / f"latex-{edition}", build / "pdf")
                for edition in editions]
        print("The PDFs are", " and ".join(str(pdf) for pdf in pdfs))
        return 0
    warn_stale()
    html = build / "html"
    if args.edition in ("en", "both"):
        # the English build writes _build/html itself (jupyter-book's layout); elsewhere a copy
        build_en(ROOT if build == BUILD else build / "en", html)
    if args.edition in ("zh", "both"):
        build_zh(build / "zh", html)
    print(f"The book is at {html / 'index.html'}"
          + (f" and {html / 'zh' / 'index.html'}" if (html / "zh").exists() else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
