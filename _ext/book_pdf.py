"""The book as a PDF (``make pdf``): what this book adds to jupyter-book's LaTeX build.

``scripts/build_book.py --pdf`` runs jupyter-book's LaTeX builder (with sphinx-jupyterbook-latex,
configured in ``_config.yml``: XeLaTeX, A4, parts from the toc's captions) and then ``latexmk``.
This extension adds what depends on the edition being built:

1. **A title page** with the book's title and the article's, in the edition's language (the
   default one has only the book's title and a build date).
2. **Chinese fonts in both editions** (xeCJK with Noto CJK, Debian's ``fonts-noto-cjk``): the
   Chinese edition needs them everywhere, the English one for the article's title, which it
   quotes in Chinese. In the English edition curly quotes, dashes and the ellipsis stay Latin
   characters: xeCJK would otherwise set them as full-width CJK punctuation ("Jianlin’ s"). The
   Chinese edition loads ``ctex`` for Chinese headings (目录, 第 1 章, 参考文献) instead of the
   English book's ``fncychap``.
3. **Tables that fit the page** (:class:`PrintableTables`): every table becomes a ``longtable``,
   which breaks across pages (the reproducibility page's tables are longer than a page), with
   column widths from its own text (a column of long sentences gets more room than a column of
   verdicts, no word is wider than its column) and ragged-right cells; a table of more than
   six columns is set in a smaller font. Sphinx's default, ``tabulary``, cannot break across
   pages and justifies every cell.
4. **Figures that leave room for their caption**: no image is taller than 80% of the text
   height.
5. **No empty chapter** (:class:`NoEmptyChapter`): the bibliography is the book's last,
   unnumbered chapter, not also an empty numbered one.

It does nothing for the HTML builds.
"""

from __future__ import annotations

import unicodedata

from docutils import nodes
from sphinx import addnodes
from sphinx.transforms.post_transforms import SphinxPostTransform

ARTICLE = "再谈类别不平衡问题：调节权重与魔改Loss的对比联系"
URL = r"\url{https://spaces.ac.cn/archives/7708}"

# What the title page says under the book's title, per edition.
SUBTITLE = {
    "en": (r"An executable companion to Su Jianlin’s article\\[0.6em]"
           rf"{ARTICLE}\\[0.4em]"
           r"{\large “Class imbalance revisited:"
           r" how reweighting and modified losses are related”\\[0.3em]"
           r"Scientific Spaces, 2020}"),
    "zh": (rf"苏剑林《{ARTICLE}》\\[0.4em]"
           r"（科学空间，2020）的可执行配套读物"),
}

FONTS = r"""
\setCJKmainfont{Noto Serif CJK SC}[BoldFont = Noto Serif CJK SC Bold,
                                   ItalicFont = Noto Serif CJK SC]
\setCJKsansfont{Noto Sans CJK SC}[BoldFont = Noto Sans CJK SC Bold]
\setCJKmonofont{Noto Sans Mono CJK SC}
"""
PREAMBLE = {
    # xeCJK for the article's title; curly quotes, dashes and the ellipsis stay Latin characters
    "en": r"""
\usepackage{xeCJK}
""" + FONTS + r"""
\xeCJKDeclareCharClass{Default}{"2013, "2014, "2018, "2019, "201C, "201D, "2026}
""",
    # ctex (on xeCJK) for Chinese headings: 目录, 第 1 章, 第一部分, 参考文献, 图, 表
    "zh": r"""
\usepackage[heading=true, fontset=none]{ctex}
""" + FONTS + r"""
\AtBeginDocument{\renewcommand{\contentsname}{目录}\renewcommand{\bibname}{参考文献}}
""",
}

# Table columns (Sphinx's \X{width}{total}) ragged right, not justified; images at most 80% of
# the text height, so that a tall figure and its caption fit one page.
LAYOUT = r"""
\makeatletter
\newcolumntype{\X}[2]{>{\raggedright\arraybackslash}p{\dimexpr
  (\linewidth-\spx@arrayrulewidth)*#1/#2-\tw@\tabcolsep-\spx@arrayrulewidth\relax}}
\AtBeginDocument{\spx@image@maxheight=0.8\textheight}
\makeatother
\setlength{\headheight}{14pt}
"""
WIDE = 6  # a table with more columns than this is set smaller, with narrower gaps
TEXT_WIDTH = 496  # pt: jupyterBook.cls's 17.5 cm
LONGEST_CELL = 60  # characters: a column's width grows with its text up to this, then wraps
# (font size in pt, gap on each side of a cell in pt) for ordinary and for wide tables
NORMAL, SMALL = (10, 6), (7, 3)
EM_PER_CHARACTER = 0.5  # a generous average width of a character of text
WIDE_CHARACTER = 2.5  # Latin characters: the width of a Chinese one (:func:`text_width`)
SHORT_CHINESE = 4  # characters: a Chinese word this short is not wrapped in a table cell

TITLE_PAGE = r"""
\makeatletter
\begin{titlepage}
  \centering
  \vspace*{0.18\textheight}
  {\sffamily\bfseries\Huge \@title\par}
  \vspace{2.5em}
  {\Large %(subtitle)s\par}
  \vspace{1.2em}
  {\normalsize %(url)s\par}
  \vfill
  {\Large \@author\par}
  \vspace{0.8em}
  {\large \@date\par}
  \vspace*{0.08\textheight}
\end{titlepage}
\makeatother
"""
# the pages between the table of contents and chapter 1 (the intro) have no chapter to name
TABLE_OF_CONTENTS = r"\sphinxtableofcontents\markboth{}{}"


def edition(config) -> str:
    """``"zh"`` for the Chinese edition's build, ``"en"`` otherwise."""
    return "zh" if (config.language or "").startswith("zh") else "en"


def _configure(app, config) -> None:
    language = edition(config)
    elements = dict(config.latex_elements or {})
    elements["preamble"] = PREAMBLE[language] + LAYOUT + elements.get("preamble", "")
    elements["maketitle"] = TITLE_PAGE % {"subtitle": SUBTITLE[language], "url": URL}
    elements["tableofcontents"] = TABLE_OF_CONTENTS
    if language == "zh":
        elements["fncychap"] = ""  # ctex sets the chapter headings
    config.latex_elements = elements


class PrintableTables(SphinxPostTransform):
    """Every table a page-breaking ``longtable`` with column widths from its text (LaTeX only).

    The widths follow the browsers' automatic table layout (:func:`column_widths`): each column
    gets at least its longest word, so that no word sticks out of its cell, and the room left
    goes to the columns whose text is longer than that. A table of more than ``WIDE`` columns
    (the reproducibility page's claims) is set in a 7 pt font with 3 pt gaps."""

    default_priority = 200
    formats = ("latex",)

    def run(self, **kwargs) -> None:
        for table in list(self.document.findall(nodes.table)):
            tgroup = next(iter(table.findall(nodes.tgroup)), None)
            if tgroup is None:
                continue
            specs = [child for child in tgroup.children if isinstance(child, nodes.colspec)]
            wide = len(specs) > WIDE
            rows = [[entry.astext() for entry in row.children]
                    for row in tgroup.findall(nodes.row)]
            widths = column_widths(rows, len(specs), *(SMALL if wide else NORMAL))
            for spec, width in zip(specs, widths):
                spec["colwidth"] = width
            table["classes"] = [c for c in table["classes"] if c != "colwidths-auto"]
            table["classes"] += ["colwidths-given", "longtable"]
            if wide:
                size, gap = SMALL
                start = rf"\begingroup\fontsize{{{size}}}{{{size + 1.5}}}\selectfont" \
                        rf"\setlength{{\tabcolsep}}{{{gap}pt}}"
                table.parent.insert(table.parent.index(table),
                                    nodes.raw("", start, format="latex"))
                table.parent.insert(table.parent.index(table) + 1,
                                    nodes.raw("", r"\endgroup", format="latex"))


def column_widths(rows: list[list[str]], columns: int, size: float, gap: float) -> list[int]:
    """Relative widths of a table's columns (in tenths of a point) from the text of its rows.

    Each column needs at least its longest unbreakable piece of text (:func:`unbreakable`) and
    would like its longest cell (up to ``LONGEST_CELL`` characters); when not everything fits
    the text width, each column gets its least plus a share of the room left in proportion to
    what it would like beyond that. Widths count in characters of Latin text, a Chinese
    character as ``WIDE_CHARACTER`` of them (:func:`text_width`). Sphinx turns the widths into
    fractions of the line (minus the gaps)."""
    least, most = [1] * columns, [1] * columns
    for row in rows:
        for j, text in enumerate(row[:columns]):
            least[j] = max([least[j]] + [unbreakable(word) for word in text.split()])
            most[j] = max(most[j], min(text_width(" ".join(text.split())), LONGEST_CELL))
    most = [max(low, high) for low, high in zip(least, most)]
    room = (TEXT_WIDTH - 2 * gap * columns) / (size * EM_PER_CHARACTER)  # characters
    if sum(most) <= room or sum(most) == sum(least):
        chars = most
    elif sum(least) >= room:
        chars = least
    else:
        share = (room - sum(least)) / (sum(most) - sum(least))
        chars = [low + share * (high - low) for low, high in zip(least, most)]
    return [round(10 * (c * size * EM_PER_CHARACTER + 2 * gap)) for c in chars]


def _wide(character: str) -> bool:
    return unicodedata.east_asian_width(character) in "WF"


def text_width(text: str) -> float:
    """The width of ``text`` in characters of Latin text: a Chinese character (or a full-width
    sign) is set exactly one em wide, two of the generous Latin characters; it counts a little
    more (``WIDE_CHARACTER``) so that a short Chinese header in bold still fits its column."""
    return sum(WIDE_CHARACTER if _wide(character) else 1 for character in text)


def unbreakable(word: str) -> float:
    """The width (:func:`text_width`) of the longest piece of ``word`` that cannot wrap.

    A Latin word cannot wrap. Chinese text wraps between any two characters, so a long Chinese
    phrase needs only its longest Latin run (or one character); a short one
    (``SHORT_CHINESE`` characters at most, such as the verdicts 成立 and 无定论) stays whole."""
    if not any(_wide(character) for character in word) or len(word) <= SHORT_CHINESE:
        return text_width(word)
    runs = "".join(" " if _wide(character) else character for character in word).split()
    return max([WIDE_CHARACTER] + [len(run) for run in runs])


class NoEmptyChapter(SphinxPostTransform):
    """Leave out a page that sphinx-jupyterbook-latex has emptied (LaTeX only).

    It moves the bibliography to the end of the book, as an unnumbered chapter of its own, and
    leaves ``bibliography.md``'s chapter behind with nothing but its title: an empty page under
    "Chapter 8" in the table of contents."""

    default_priority = 750  # after sphinx-jupyterbook-latex's LatexRootDocPostTransforms (700)
    formats = ("latex",)

    def run(self, **kwargs) -> None:
        for start in list(self.document.findall(addnodes.start_of_file)):
            sections = [child for child in start.children if isinstance(child, nodes.section)]
            if len(sections) == 1 and len(start.children) == 1 and all(
                    isinstance(child, nodes.title) or not child.astext().strip()
                    for child in sections[0].children):
                start.parent.remove(start)


def setup(app):
    app.add_post_transform(PrintableTables)
    app.add_post_transform(NoEmptyChapter)
    # before sphinx-jupyterbook-latex, which appends its own lines to the preamble
    app.connect("config-inited", _configure, priority=400)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
