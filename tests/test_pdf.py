"""The book as PDFs (``make pdf``): built, then read back with poppler's tools.

The test builds both editions' PDFs from the working tree with ``scripts/build_book.py --pdf``
into its own temporary folder (or, with ``BOOK_PDF_DIR`` set, checks the PDFs already built
there: ``.ci/run`` builds them once with ``make pdf``). For each edition it checks that the PDF

- has every chapter's and back-matter page's title in its text (``pdftotext``), in the
  edition's language (the Chinese titles from the catalogues; none of them in the English one);
- has no ``??`` (LaTeX's unresolved reference or citation) and no TeX source in its text:
  no ``$$``, ``\\begin{``, ``\\frac`` or ``\\mathrm`` outside what the notebooks' code cells
  contain;
- has as many images (``pdfimages -list``, soft masks not counted) as the book has figures:
  every image output of the notebooks and every figure of the Markdown pages;
- embeds every font it uses (``pdffonts``), and sets Chinese text in a CJK font (the English
  edition quotes the article's Chinese title; the Chinese edition is mostly Chinese).

``build_book.py`` itself fails on a LaTeX error, an undefined reference or citation, or a
character missing from the fonts. Skipped when TeX Live or poppler-utils is missing (the README
says how to install them), unless ``CI`` or ``BOOK_PDF_TEST=required`` is set: then it fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "_ext"))
from bilingual import read_catalogue  # noqa: E402

EDITIONS = ("en", "zh")
TOOLS = ("xelatex", "latexmk", "pdftotext", "pdfimages", "pdffonts", "pdfinfo")
CJK = re.compile(r"[\u4e00-\u9fff]")
TEX_SOURCE = ("$$", "\\begin{", "\\frac", "\\mathrm")


def _required() -> bool:
    ci = os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no", "off"}
    return ci or os.environ.get("BOOK_PDF_TEST", "").strip() == "required"


def _pages() -> list[Path]:
    """The book's pages in _toc.yml order (the root page first)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    names = [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]
    return [next(ROOT.glob(f"{name}.*")) for name in names]


def _title(page: Path) -> str:
    """A page's first heading."""
    if page.suffix == ".ipynb":
        text = "\n".join("".join(c.source) for c in nbformat.read(page, as_version=4).cells
                         if c.cell_type == "markdown")
    else:
        text = page.read_text(encoding="utf-8")
    return re.search(r"^# (.+)$", text, re.M).group(1).strip()


def titles(edition: str) -> list[str]:
    """The chapters' and back-matter pages' titles (not the root page's) in ``edition``."""
    found = []
    for page in _pages()[1:]:
        title = _title(page)
        if edition == "zh":
            docname = page.relative_to(ROOT).with_suffix("").as_posix()
            catalogue = read_catalogue(ROOT / "locales" / "zh_CN" / "LC_MESSAGES"
                                       / f"{docname}.po")
            assert catalogue.get(title), f"{docname}: no Chinese title for {title!r}"
            title = catalogue[title]
        found.append(title)
    return found


def figures() -> int:
    """How many figures the book has: image outputs of the notebooks, figures of the pages."""
    count = 0
    for page in _pages():
        if page.suffix == ".ipynb":
            for cell in nbformat.read(page, as_version=4).cells:
                tags = cell.metadata.get("tags", [])
                if cell.cell_type == "code" and "remove-output" not in tags:
                    count += sum(any(k.startswith("image/") for k in output.get("data", {}))
                                 for output in cell.get("outputs", []))
        else:
            text = page.read_text(encoding="utf-8")
            count += len(re.findall(r"^```\{figure\}|!\[[^\]]*\]\(", text, re.M))
    return count


def code_text() -> str:
    """Every code cell's source, to tell TeX in code (a plot label) from TeX left unrendered."""
    return "\n".join("".join(c.source) for page in _pages() if page.suffix == ".ipynb"
                     for c in nbformat.read(page, as_version=4).cells if c.cell_type == "code")


def run(*command: str) -> str:
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="session")
def pdf_dir(tmp_path_factory) -> Path:
    """The folder with book-en.pdf and book-zh.pdf: BOOK_PDF_DIR, or built now."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        message = (f"PDF test cannot run: {', '.join(missing)} not installed (README, "
                   "'The PDF', has the apt-get line)")
        if _required():
            pytest.fail(message + " -- required here (CI or BOOK_PDF_TEST=required)")
        pytest.skip(message + " -- skipped locally; in CI this is a failure")
    if os.environ.get("BOOK_PDF_DIR"):
        return Path(os.environ["BOOK_PDF_DIR"]).resolve()
    out = tmp_path_factory.mktemp("book")
    command = [sys.executable, str(ROOT / "scripts" / "build_book.py"), "--pdf", "--out", str(out)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        pytest.fail(f"the PDFs do not build ({' '.join(command)}, exit {result.returncode}); "
                    f"`make pdf` fails alike:\n{(result.stdout + result.stderr)[-4000:]}",
                    pytrace=False)
    return out / "pdf"


@pytest.fixture(scope="session", params=EDITIONS)
def pdf(request, pdf_dir) -> tuple[str, Path]:
    path = pdf_dir / f"book-{request.param}.pdf"
    assert path.is_file(), f"no {path.name} in {pdf_dir}"
    return request.param, path


def test_has_every_title_and_no_unresolved_reference(pdf):
    edition, path = pdf
    text = " ".join(run("pdftotext", str(path), "-").split())
    folded = text.casefold()
    missing = [t for t in titles(edition) if " ".join(t.split()).casefold() not in folded]
    assert not missing, f"{path.name}: chapter titles missing from the text: {missing}"
    if edition == "en":  # the check tells the editions apart: no Chinese chapter title here
        assert not any(t.casefold() in folded for t in titles("zh"))
    assert "??" not in text, f"{path.name}: unresolved reference: ...{_around(text, '??')}..."
    code = code_text()
    raw = [tex for tex in TEX_SOURCE if tex in text and tex not in code]
    assert not raw, (f"{path.name}: TeX source in the text, not typeset: {raw} "
                     f"(...{_around(text, raw[0]) if raw else ''}...)")


def test_has_every_figure(pdf):
    edition, path = pdf
    rows = run("pdfimages", "-list", str(path)).splitlines()[2:]
    images = [row for row in rows if row.split()[2] == "image"]
    assert len(images) == figures(), (f"{path.name}: {len(images)} images, the book has "
                                      f"{figures()} figures")


def test_fonts_are_embedded_and_chinese_has_a_cjk_font(pdf):
    edition, path = pdf
    rows = run("pdffonts", str(path)).splitlines()[2:]
    not_embedded = [row for row in rows if row.split()[-5] != "yes"]
    assert not not_embedded, f"{path.name}: fonts not embedded:\n" + "\n".join(not_embedded)
    assert any("CJK" in row.split()[0] for row in rows), f"{path.name}: no CJK font"
    chinese = len(CJK.findall(run("pdftotext", str(path), "-")))
    assert chinese >= (10_000 if edition == "zh" else 20), (
        f"{path.name}: only {chinese} Chinese characters in the text")


def test_titles_are_read_in_each_language():
    """The checks above look for the right strings: Chinese titles in Chinese, and all distinct."""
    english, chinese = titles("en"), titles("zh")
    assert len(english) == len(set(english)) == len(chinese) == len(set(chinese)) >= 8
    assert all(CJK.search(t) for t in chinese) and not any(CJK.search(t) for t in english)
    assert figures() >= 10


def _around(text: str, needle: str, width: int = 80) -> str:
    i = text.find(needle)
    return text[max(0, i - width): i + width]


def test_table_columns_fit_their_words_in_either_language():
    """The PDF's table widths (``_ext/book_pdf.py``): no column narrower than its longest Latin
    word or short Chinese word (a verdict such as 成立 must not wrap), long Chinese text may wrap
    anywhere, and a table that fits the page is not stretched."""
    import book_pdf

    assert book_pdf.text_width("成立") > book_pdf.text_width("held") == 4
    assert book_pdf.unbreakable("无定论") == book_pdf.text_width("无定论") >= 6
    assert book_pdf.unbreakable("在长尾MNIST-1D上提高了平衡准确率") == len("MNIST-1D")
    long = "在 MNIST-1D-LT（不平衡比 10）上，逆频率权重比交叉熵提高了平衡准确率。" * 3
    rows = [["4.2a", long, "无定论"], ["4.2b", "短", "成立"]]
    widths = book_pdf.column_widths(rows, 3, *book_pdf.NORMAL)
    size, gap = book_pdf.NORMAL
    pt = [w / 10 - 2 * gap for w in widths]  # text width of each column, in points
    per_character = size * book_pdf.EM_PER_CHARACTER
    assert pt[0] >= 4 * per_character and pt[2] >= 6 * per_character  # "4.2a", 无定论 whole
    assert sum(widths) / 10 <= book_pdf.TEXT_WIDTH + 1  # the long Chinese cell wraps instead
    small = book_pdf.column_widths([["a", "bb"]], 2, *book_pdf.NORMAL)
    assert small == [round(10 * (n * per_character + 2 * gap)) for n in (1, 2)]
