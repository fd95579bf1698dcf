"""The book as a PDF (``make pdf``): what this book adds to jupyter-book's LaTeX build.

``scripts/build_book.py --pdf`` runs jupyter-book's LaTeX builder (with sphinx-jupyterbook-latex,
configured in ``_config.yml``: XeLaTeX, A4, parts from the toc's captions) and then ``latexmk``.
This extension adds what depends on the edition being built:

1. **A title page** with the book's title and the article's, in the edition's language (the
   default one has only the book's title and a build date).
2. **Chinese fonts in both editions** (xeCJK with Noto CJK, Debian's ``fonts-noto-cjk``): the
   Chinese edition needs them everywhere, the English one for the article's title, which it
   quotes in Chinese. In the English edition curly quotes, dashes and the ellipsis stay Latin
   characters: xeCJK would otherwise set them as full-width CJK punctuation ("Jianlin’ s").

It does nothing for the HTML builds.
"""

from __future__ import annotations

ARTICLE = "再谈类别不平衡问题：调节权重与魔改Loss的对比联系"
URL = r"\url{https://spaces.ac.cn/archives/7708}"

# What the title page says under the book's title, per edition.
SUBTITLE = {
    "en": (r"An executable companion to Su Jianlin's article\\[0.6em]"
           rf"{ARTICLE}\\[0.4em]"
           r"{\large (“Class imbalance revisited: how reweighting and modified losses are"
           r" related”, Scientific Spaces, 2020)}"),
    "zh": (rf"苏剑林《{ARTICLE}》\\[0.4em]"
           r"（科学空间，2020）的可执行配套读物"),
}

CJK_FONTS = r"""
\usepackage{xeCJK}
\setCJKmainfont{Noto Serif CJK SC}[BoldFont = Noto Serif CJK SC Bold]
\setCJKsansfont{Noto Sans CJK SC}[BoldFont = Noto Sans CJK SC Bold]
\setCJKmonofont{Noto Sans Mono CJK SC}
"""
# English edition: ‘ ’ “ ” – — … are Latin punctuation, not full-width CJK punctuation
LATIN_PUNCTUATION = r"""
\xeCJKDeclareCharClass{Default}{"2013, "2014, "2018, "2019, "201C, "201D, "2026}
"""

TITLE_PAGE = r"""
\begin{titlepage}
  \centering
  \vspace*{0.18\textheight}
  {\sffamily\bfseries\Huge %(title)s\par}
  \vspace{2.5em}
  {\Large %(subtitle)s\par}
  \vspace{1.2em}
  {\normalsize %(url)s\par}
  \vfill
  {\Large %(author)s\par}
  \vspace{0.8em}
  {\large \today\par}
  \vspace*{0.08\textheight}
\end{titlepage}
"""


def edition(config) -> str:
    """``"zh"`` for the Chinese edition's build, ``"en"`` otherwise."""
    return "zh" if (config.language or "").startswith("zh") else "en"


def _configure(app, config) -> None:
    language = edition(config)
    elements = dict(config.latex_elements or {})
    preamble = CJK_FONTS + (LATIN_PUNCTUATION if language == "en" else "")
    elements["preamble"] = preamble + elements.get("preamble", "")
    elements["maketitle"] = TITLE_PAGE % {
        "title": config.project, "subtitle": SUBTITLE[language], "url": URL,
        "author": config.author,
    }
    config.latex_elements = elements


def setup(app):
    # before sphinx-jupyterbook-latex, which appends its own lines to the preamble
    app.connect("config-inited", _configure, priority=400)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
