"""The book in two languages from one set of notebooks: the Sphinx side of the Chinese edition.

The English book is the source; the Chinese edition is the same build with ``language: zh_CN``,
whose prose Sphinx takes from the message catalogues in ``locales/zh_CN/LC_MESSAGES`` (gettext,
one ``.po`` per page). Code, outputs, figures and glued numbers are the same run's in both. This
extension (listed in ``_config.yml``) adds the three things Sphinx and MyST-NB do not do:

1. **Glue inside a translated message.** MyST-NB resolves ``{glue:text}`key``` and
   ``{glue:md}`key``` from the notebook being parsed, but Sphinx parses a translated message as a
   fresh MyST snippet that has no notebook, so every local key is "not found". The extension
   remembers each notebook's output renderer while the notebook is read and lends it to those
   snippets, so a translated paragraph glues exactly what the English one glues.
2. **Glued phrases in Chinese.** A chapter glues a few phrases as well as numbers (a verdict,
   "beats", a sentence built from an interval). In the Chinese build each glued Markdown phrase
   is looked up in ``locales/zh_CN/glued/<page>.po``; a phrase whose only difference from a
   translated one is its numbers is filled from that translation with this run's numbers
   (:func:`translate`), so no number in the Chinese text is typed by hand. A phrase with no
   Chinese form is a build warning (an error under ``-W``), never English in Chinese prose.
3. **Chinese search that finds the book's terms.** Sphinx splits Chinese text into words with
   jieba, whose dictionary lacks many of the field's words (交叉熵 comes out as 交叉 + 熵, so a
   search for 交叉熵 finds nothing). Every Chinese term of ``locales/glossary-zh.md`` is added to
   jieba's dictionary for the build (:func:`glossary_terms`).
4. **A link to the other edition** in every page's header: the English page
   ``chapters/x.html`` links to ``zh/chapters/x.html`` and back (``make book`` builds the Chinese
   edition into ``_build/html/zh``).

``scripts/catalogues.py`` keeps the catalogues current with the same :func:`translate`.
"""

from __future__ import annotations

import re
from functools import cache, lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GLUED = ROOT / "locales" / "zh_CN" / "glued"
ZH_TITLE = "所有魔改 loss 本质上都是调节权重"  # the book's title in the Chinese edition

# What a number looks like in prose: a sign, digits, decimal or thousands separators, a percent.
NUMBER = re.compile(r"[+\-−]?\d+(?:[.,]\d+)*%?")
# Markup whose digits are not prose numbers: roles, equations, code spans.
MARKUP = re.compile(r"\{[a-z:]+\}`[^`]*`|\$\$.*?\$\$|\$[^$]+\$|`[^`]+`", re.S)
SLOT = "\x00"


def _prose_numbers(text: str) -> tuple[str, list[str]]:
    """``text`` with every prose number replaced by a slot, and the numbers in order."""
    found: list[str] = []
    pieces, last = [], 0
    for markup in MARKUP.finditer(text):
        pieces.append(_slots(text[last:markup.start()], found))
        pieces.append(markup.group())
        last = markup.end()
    pieces.append(_slots(text[last:], found))
    return "".join(pieces), found


def _slots(prose: str, found: list[str]) -> str:
    def keep(match: re.Match) -> str:
        found.append(match.group())
        return SLOT
    return NUMBER.sub(keep, prose)


def _fill(source: str, translation: str, new_numbers: list[str]) -> str | None:
    """Translate a message that differs from ``source`` only in its numbers.

    Each number of ``translation`` is replaced by the new number at the place of the same old
    number in ``source`` (a translation may reorder them). None when a number cannot be placed
    without guessing: the same old number at two places that now differ (which of the two the
    translation wrote first is unknown), or a number the source lacks. Such a message is listed
    for a translator instead.
    """
    _, old_numbers = _prose_numbers(source)
    skeleton, numbers = _prose_numbers(translation)
    places: dict[str, set[str]] = {}
    for i, number in enumerate(old_numbers):
        places.setdefault(number, set()).add(new_numbers[i])
    filled = []
    for number in numbers:
        new = places.get(number)
        if new is None or len(new) != 1:
            return None
        filled.append(next(iter(new)))
    pieces = skeleton.split(SLOT)
    return "".join(p + n for p, n in zip(pieces, filled + [""]))


def translate(message: str, translations: dict[str, str]) -> str | None:
    """The translation of ``message``: its own, or a translated message's with the new numbers.

    Args:
        message (str): an English message (a paragraph, a table cell, a glued phrase).
        translations (dict): English -> Chinese, the translated messages of a catalogue.

    Returns:
        str | None: the Chinese text, or None when neither ``message`` nor a message that differs
        from it only in its numbers is translated.
    """
    if translations.get(message):
        return translations[message]
    skeleton, numbers = _prose_numbers(message)
    for source, target in _by_skeleton(tuple(translations.items())).get(skeleton, []):
        filled = _fill(source, target, numbers)
        if filled is not None:
            return filled
    return None


@lru_cache(maxsize=64)
def _by_skeleton(items: tuple) -> dict[str, list[tuple[str, str]]]:
    table: dict[str, list[tuple[str, str]]] = {}
    for source, target in items:
        if target:
            table.setdefault(_prose_numbers(source)[0], []).append((source, target))
    return table


def read_catalogue(path: Path) -> dict[str, str]:
    """English -> Chinese for the translated, current (not fuzzy) messages of a ``.po`` file."""
    from babel.messages.pofile import read_po

    if not path.exists():
        return {}
    with open(path, "rb") as handle:
        return {m.id: m.string for m in read_po(handle) if m.id and m.string and not m.fuzzy}


@cache
def _glued_translations(docname: str) -> dict[str, str]:
    return read_catalogue(GLUED / f"{docname}.po")


def translate_glued(docname: str, phrase: str) -> str | None:
    """The Chinese form of a phrase the page ``docname`` glues (None when it has none)."""
    if not re.search(r"[A-Za-z]", phrase):  # a number, a list of numbers: the same in Chinese
        return phrase
    return translate(phrase, _glued_translations(docname))


def glossary_terms(path: Path = ROOT / "locales" / "glossary-zh.md") -> list[str]:
    """The Chinese terms of the glossary's tables: every run of two or more Chinese characters
    in the 中文 column (the second), e.g. 交叉熵, 类别不平衡, 光滑准确率."""
    terms: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) >= 2 and cells[1] != "中文" \
                and not set(cells[1]) <= set("-: "):
            terms += re.findall(r"[\u4e00-\u9fff]{2,}", cells[1])
    return list(dict.fromkeys(terms))


# --- Sphinx -------------------------------------------------------------------------------------

_RENDERER = "bilingual_nb_renderer"


def _keep_notebook_renderers() -> None:
    """Remember the output renderer of the notebook being read, for its translated messages."""
    from myst_nb import sphinx_

    if getattr(sphinx_.load_renderer, "_bilingual", False):
        return
    load_renderer = sphinx_.load_renderer

    def load_and_keep(name):
        renderer_class = load_renderer(name)

        def make(mdit_renderer, logger):
            renderer = renderer_class(mdit_renderer, logger)
            document = mdit_renderer.md.options.get("document")
            if document is not None:
                document.settings.env.temp_data[_RENDERER] = renderer
            return renderer
        return make

    load_and_keep._bilingual = True
    sphinx_.load_renderer = load_and_keep


def _glue_in_translations() -> None:
    """Let glue roles inside a translated message find their notebook, and speak its language."""
    from docutils import nodes
    from myst_nb.core.variables import RetrievalError
    from myst_nb.ext.glue import roles

    if getattr(roles.retrieve_glue_data, "_bilingual", False):
        return
    retrieve = roles.retrieve_glue_data

    def retrieve_here(document: nodes.document, key: str):
        env = getattr(document.settings, "env", None)
        if "nb_renderer" not in document and env is not None and _RENDERER in env.temp_data:
            # a translated message's snippet: lend it the notebook's renderer for this lookup
            # only (a renderer left on the snippet would be pickled with the doctree)
            document["nb_renderer"] = env.temp_data[_RENDERER]
            try:
                result = retrieve(document, key)
            finally:
                del document["nb_renderer"]
        else:
            result = retrieve(document, key)
        if env is None or not (env.config.language or "").startswith("zh"):
            return result
        phrase = result.data.get("text/markdown")
        if phrase is None:
            return result
        catalogue = GLUED / f"{env.docname}.po"
        if catalogue.exists():  # an edit of the glued phrases' catalogue rebuilds the page
            env.note_dependency(str(catalogue))
        chinese = translate_glued(env.docname, phrase)
        if chinese is None:
            raise RetrievalError(
                f"the glued phrase {phrase!r} ({key!r}) has no Chinese form in "
                f"locales/zh_CN/glued/{env.docname}.po: run `python scripts/catalogues.py "
                "update` and translate it")
        result.data = {**result.data, "text/markdown": chinese}
        return result

    retrieve_here._bilingual = True
    roles.retrieve_glue_data = retrieve_here


def _edition_link(app, pagename, templatename, context, doctree) -> None:
    """Put the address of the same page in the other edition into the page's context."""
    up = "../" * pagename.count("/")
    if (app.config.language or "en").startswith("zh"):
        url, label, lang = f"{up}../{pagename}.html", "English", "en"
    else:
        url, label, lang = f"{up}zh/{pagename}.html", "中文", "zh-CN"
    context["edition_switch"] = {"url": url, "label": label, "lang": lang}


def _configure(app, config) -> None:
    """The Chinese edition's title, and the edition link in every page's header."""
    if (config.language or "").startswith("zh"):
        config.html_title = ZH_TITLE
        words = Path(app.doctreedir) / "search-words-zh.txt"  # jieba's user dictionary
        words.parent.mkdir(parents=True, exist_ok=True)
        words.write_text("".join(f"{term}\n" for term in glossary_terms()), encoding="utf-8")
        config.html_search_options = {**(config.html_search_options or {}), "dict": str(words)}
    templates = str(Path(__file__).parent / "templates")
    if templates not in config.templates_path:
        config.templates_path.append(templates)
    static = str(Path(__file__).parent / "static")
    if static not in config.html_static_path:
        config.html_static_path.append(static)
    options = dict(config.html_theme_options or {})
    end = list(options.get("article_header_end", ["article-header-buttons.html"]))
    if "edition-switch.html" not in end:
        options["article_header_end"] = ["edition-switch.html", *end]
    config.html_theme_options = options


def _translate_toc_captions(app, doctree) -> None:
    """The part captions ("Chapters", "Back matter") in the edition's language: sidebar, PDF.

    sphinx-external-toc adds the root page's toctrees after Sphinx has translated that page, so
    their captions stay English; the root page's catalogue has them (they are extracted)."""
    from docutils import nodes
    from sphinx import addnodes

    if not (app.config.language or "").startswith("zh") or app.env.docname != app.config.root_doc:
        return
    catalogue = read_catalogue(ROOT / "locales" / "zh_CN" / "LC_MESSAGES"
                               / f"{app.config.root_doc}.po")
    for toctree in doctree.findall(addnodes.toctree):
        caption = toctree.get("caption")
        if caption and catalogue.get(caption):
            toctree["caption"] = catalogue[caption]
    # sphinx-jupyterbook-latex has copied each caption to the toctree's wrapper (the PDF's parts)
    for wrapper in doctree.findall(nodes.compound):
        caption = wrapper.get("caption")
        if "toctree-wrapper" in wrapper["classes"] and caption and catalogue.get(caption):
            wrapper["caption"] = catalogue[caption]


def setup(app):
    _keep_notebook_renderers()
    _glue_in_translations()
    app.connect("config-inited", _configure)
    app.connect("html-page-context", _edition_link)
    app.connect("doctree-read", _translate_toc_captions)
    app.add_css_file("bilingual.css")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
