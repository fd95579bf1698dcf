"""The Chinese edition's message catalogues (locales/zh_CN): complete, current and faithful.

Each catalogue holds the Chinese text of one page. A message that is untranslated or fuzzy (its
English changed since it was translated) fails, and so does a translation that drops or adds a
role ({glue:text}, {eq}, {cite}, {doc}, ...), an inline or display equation, or a code span
relative to its English source, and so does one whose numbers (digits outside roles, equations
and code) differ from its source's: the numbers, equations and references of both editions are
the same run's, and no number in the Chinese text is typed by hand.
"""

import re
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# one catalogue per page, and one per chapter for the phrases it glues (_ext/bilingual.py)
CATALOGUES = sorted([*(ROOT / "locales" / "zh_CN" / "LC_MESSAGES").rglob("*.po"),
                     *(ROOT / "locales" / "zh_CN" / "glued").rglob("*.po")])
ROLE = re.compile(r"\{[a-z:]+\}`[^`]*`")
MATH = re.compile(r"\$\$.*?\$\$|\$[^$]+\$", re.S)
CODE = re.compile(r"(?<![}`])`[^`{}]+`")
sys.path.insert(0, str(ROOT / "_ext"))
import bilingual  # noqa: E402  (the refill's own number and name patterns)


def markup(text: str) -> Counter:
    """The roles, equations and code spans of a message, as a multiset."""
    roles = ROLE.findall(text)
    rest = ROLE.sub(" ", text)
    return Counter(roles + MATH.findall(rest) + CODE.findall(MATH.sub(" ", rest)))


def numbers(text: str) -> Counter:
    """The numbers written in a message's prose (not inside roles, equations or code spans),
    signs and percent signs included, and its names with digits (F1, MNIST-1D, CIFAR-10-LT):
    the same pattern as the refill's (``bilingual.NUMBER``, ``bilingual.NAME``)."""
    return Counter(bilingual.prose_numbers(text) + bilingual.prose_names(text))


def messages(path):
    from babel.messages.pofile import read_po

    with open(path, "rb") as handle:
        return [m for m in read_po(handle) if m.id]


@pytest.fixture(params=CATALOGUES, ids=[str(p.relative_to(ROOT)) for p in CATALOGUES])
def catalogue(request):
    return request.param, messages(request.param)


def test_every_message_is_translated_and_current(catalogue):
    path, found = catalogue
    untranslated = [m.id[:60] for m in found if not m.string]
    fuzzy = [m.id[:60] for m in found if m.fuzzy]
    assert not untranslated, (
        f"{path.name}: {len(untranslated)} untranslated, e.g. {untranslated[:3]}")
    assert not fuzzy, f"{path.name}: {len(fuzzy)} fuzzy (the English changed), e.g. {fuzzy[:3]}"


@pytest.mark.parametrize("what", ["markup", "numbers"])
def test_translations_keep_their_sources_markup_and_numbers(what, catalogue):
    """The roles, equations and code spans (``markup``) and the prose numbers (``numbers``) of
    each translation are its English source's."""
    path, found = catalogue
    of = {"markup": markup, "numbers": numbers}[what]
    for m in found:
        if m.string:
            assert of(m.string) == of(m.id), (
                f"{path.name}: the translation of {m.id[:70]!r} changes its {what}: only in the "
                f"source {sorted((of(m.id) - of(m.string)).elements())}, only in the "
                f"translation {sorted((of(m.string) - of(m.id)).elements())}")


def stray_asterisks(text: str) -> int:
    """Asterisks Markdown leaves as text: emphasis it could not open or close. A closing `**`
    after punctuation must be followed by a space or punctuation, so `**要点。**正文` keeps its
    asterisks on the page where `**要点**。正文` is bold."""
    from markdown_it import MarkdownIt

    prose = CODE.sub(" ", MATH.sub(" ", ROLE.sub(" ", text)))
    rendered = MarkdownIt("commonmark").render(prose)
    return re.sub(r"<[^>]+>", "", rendered).count("*")


def test_translations_close_their_emphasis(catalogue):
    path, found = catalogue
    bad = [m.string[:70] for m in found
           if m.string and stray_asterisks(m.string) > stray_asterisks(m.id)]
    assert not bad, (f"{path.name}: emphasis Markdown cannot close stays raw `*` on the page; "
                     f"put the punctuation after the closing `**`: {bad[:3]}")


@pytest.fixture(scope="module")
def english_messages(tmp_path_factory):
    """Every message of the English pages now (Sphinx's gettext builder, about 10 s)."""
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    import catalogues as tool

    pot = tool.extract(tmp_path_factory.mktemp("gettext"))
    return {path.relative_to(pot).with_suffix("").as_posix(): messages(path)
            for path in pot.rglob("*.pot")}


def test_catalogues_translate_every_english_message(english_messages):
    """An English paragraph added or changed since the catalogues were updated shows in English
    on the Chinese page: `python scripts/catalogues.py update` lists what to translate."""
    stale = []
    for page, found in english_messages.items():
        path = ROOT / "locales" / "zh_CN" / "LC_MESSAGES" / f"{page}.po"
        have = ({m.id for m in messages(path) if m.string and not m.fuzzy}
                if path.exists() else set())
        stale += [f"{page}: {m.id[:60]!r}" for m in found
                  if m.id not in have and re.search(r"[A-Za-z]", m.id)]
    assert not stale, (f"{len(stale)} English messages have no current translation "
                       f"(run `python scripts/catalogues.py update`), e.g. {stale[:5]}")


def docstring_paragraphs(module_names) -> set[str]:
    """Every paragraph of the docstrings of these modules and their public members, as one line."""
    import importlib
    import inspect

    paragraphs = set()
    for name in module_names:
        module = importlib.import_module(name)
        objects = [module, *(getattr(module, member) for member in getattr(module, "__all__", []))]
        for obj in objects:
            for paragraph in (inspect.getdoc(obj) or "").split("\n\n"):
                paragraphs.add(" ".join(paragraph.split()))
    return paragraphs - {""}


def test_docstrings_stay_out_of_the_catalogues(english_messages):
    """The library reference (library.md) renders the library's docstrings with autodoc; they stay
    English in both editions (``_ext/bilingual.py`` marks them untranslatable), so the page's
    catalogue holds its own title, introduction and headings, and no paragraph of a docstring."""
    source = (ROOT / "library.md").read_text(encoding="utf-8")
    modules = re.findall(r"^\.\. automodule:: (\S+)", source, re.M)
    assert "reweighting.losses" in modules
    found = {" ".join(m.id.split()) for m in english_messages["library"]}
    assert "Library reference" in found
    leaked = sorted(found & docstring_paragraphs(modules))
    assert not leaked, f"{len(leaked)} docstring paragraphs were extracted, e.g. {leaked[:3]}"
    text = " ".join(source.split())
    elsewhere = sorted(m for m in found if m not in text)
    assert not elsewhere, f"messages that are not library.md's own text: {elsewhere[:3]}"


def test_every_glued_phrase_has_a_chinese_form():
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    import catalogues as tool

    missing = []
    for notebook in sorted((ROOT / "chapters").glob("*.ipynb")):
        docname = f"chapters/{notebook.stem}"
        missing += [f"{docname}: {phrase[:60]!r} ({', '.join(keys)})"
                    for phrase, keys in tool.glued_phrases(notebook).items()
                    if tool.bilingual.translate_glued(docname, phrase) is None]
    assert not missing, (f"{len(missing)} glued phrases have no Chinese form (run `python "
                         f"scripts/catalogues.py update` and translate them): {missing[:5]}")


def test_page_titles_read_the_same_wherever_they_appear():
    """A chapter's title has one Chinese form: in its own page, the reproducibility page's section
    headings, the intro, and the PDF's table of contents, which all take it from the catalogues."""
    pages = ROOT / "locales" / "zh_CN" / "LC_MESSAGES"
    titles = {}  # English title -> its page's Chinese title
    for path in sorted((pages / "chapters").glob("*.po")):
        found = messages(path)
        titles[found[0].id] = found[0].string  # a page's first message is its title
    assert len(titles) >= 6
    differ = [(path.name, m.id, m.string, titles[m.id]) for path in CATALOGUES
              for m in messages(path) if m.id in titles and m.string != titles[m.id]]
    assert not differ, "titles translated differently from their page's:\n" + "\n".join(
        f"  {name}: {english!r} -> {here!r}, its page says {there!r}"
        for name, english, here, there in differ)
