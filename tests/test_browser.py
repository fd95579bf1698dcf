"""The book as a reader sees it: built, served on a loopback port, opened in headless Chromium.

The test builds the book from the current sources (with the flags of ``make book``) into its own
temporary folder, serves that ``_build/html`` on 127.0.0.1, starts Debian's Chromium with the
flags below and a fresh profile, and drives it with Playwright over the DevTools protocol (no
browser is downloaded). Every request that leaves the loopback address is blocked and counted as
a failure, so the pages are checked exactly as an offline reader gets them.

For every page of ``_toc.yml`` (read at collection time, so new chapters are covered at once):
HTTP 200, no console error or uncaught exception, no failed or >= 400 request, MathJax rendered
(every Sphinx math node holds an ``mjx-container``, no MathJax error, no raw ``$$``, ``\\begin{``,
``\\(``, ``\\[`` or TeX-in-dollars left in the text outside code listings; a page whose source
contains math must have math on it), no raw Markdown table or MyST role left as text, every
image loaded with a non-zero natural size, every internal link and ``#anchor`` resolves, the
tab icon loads, the title is "<first heading> — <book title>", and the previous/next buttons
point at the neighbours in the table of contents. A full-page screenshot of each page (in
several pictures when taller than 16000 px) is saved under the test's temporary folder.

Further tests: the next buttons walk the whole book; the pages render math and images when
opened from disk (file://, no server); search finds a word only one chapter has (chapter 3 when
it exists, else the last chapter); each notebook chapter's download button delivers its
``.ipynb``; the bibliography lists the references; and the checks themselves catch a
deliberately broken page.

Skipped only when no Chromium (or no Playwright) is found *and* neither ``CI`` nor
``BOOK_BROWSER_TEST=required`` is set; CI sets ``CI`` and ``.ci/run`` the other, so there it
fails instead. ``BOOK_BROWSER_TEST=off`` skips it locally (refused in CI). ``BOOK_CHROMIUM``
names another Chromium binary. See docs-notes-browser.md.
"""

from __future__ import annotations

import functools
import html
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
import yaml

try:
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
    from playwright.sync_api import sync_playwright
except ImportError:  # reported (skip or failure) by the `chromium` fixture
    sync_playwright = None
    PlaywrightTimeoutError = Exception

ROOT = Path(__file__).resolve().parent.parent

# The flags the browser is started with, exactly; a fresh --user-data-dir is added per session.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
SOURCE_SUFFIXES = (".md", ".ipynb", ".rst")
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
TIMEOUT_MS = 30_000
VIEWPORT = {"width": 1280, "height": 900}


# ---------------------------------------------------------------------------------------------
# What the book should contain: pages from _toc.yml, titles and math from their sources
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TocPage:
    docname: str  # "chapters/01_smooth_accuracy": the source path without suffix
    source: Path | None  # None when _toc.yml names a file that does not exist

    @property
    def html(self) -> str:
        return self.docname + ".html"

    @property
    def is_chapter(self) -> bool:
        return self.docname.startswith("chapters/")

    @property
    def slug(self) -> str:
        return self.docname.replace("/", "__")


def _docname(name: str) -> str:
    for suffix in SOURCE_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _source(root: Path, docname: str) -> Path | None:
    for suffix in SOURCE_SUFFIXES:
        if (path := root / (docname + suffix)).is_file():
            return path
    return None


def toc_pages(root: Path = ROOT) -> list[TocPage]:
    """The pages of ``_toc.yml`` in reading order (root first, then depth first)."""
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf8"))
    names = [toc["root"]]

    def walk(node):
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            if "file" in node:
                names.append(node["file"])
            if "glob" in node:
                names.extend(sorted({
                    p.relative_to(root).with_suffix("").as_posix()
                    for suffix in SOURCE_SUFFIXES for p in root.glob(node["glob"] + suffix)
                }))
            for key in ("parts", "chapters", "sections", "entries"):
                walk(node.get(key, []))

    walk(toc)
    docnames = list(dict.fromkeys(_docname(str(name)) for name in names))
    return [TocPage(name, _source(root, name)) for name in docnames]


def book_title(root: Path = ROOT) -> str:
    return yaml.safe_load((root / "_config.yml").read_text(encoding="utf8"))["title"]


def _markdown_of(source: Path) -> str:
    """The Markdown a page is written in (a notebook's markdown cells; LaTeX outputs as math)."""
    if source.suffix != ".ipynb":
        return source.read_text(encoding="utf8")
    notebook = nbformat.read(source, as_version=4)
    parts = []
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            parts.append(cell.source)
        for output in cell.get("outputs", []):
            latex = output.get("data", {}).get("text/latex")
            if latex:
                parts.append("$$" + "".join(latex).strip("$") + "$$")
    return "\n\n".join(parts)


_FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})(?P<info>[^\n]*)\n.*?^(?P=fence)[ \t]*$", re.M | re.S)
_MATH_IN_PROSE = re.compile(
    r"\$\$.+?\$\$"  # display math
    r"|(?<![\\$])\$(?=\S)[^$\n]+?(?<=\S)\$(?!\d)"  # inline $...$ (MyST dollarmath)
    r"|\\begin\{"  # amsmath environments
    r"|\{math\}",  # the math role or directive
    re.S,
)


def source_has_math(source: Path) -> bool:
    """Whether the page's source writes any math (code blocks and inline code do not count)."""
    text = _markdown_of(source)
    if re.search(r"^(`{3,}|~{3,})\s*\{math\}", text, re.M):
        return True
    text = _FENCE.sub("", text)
    text = re.sub(r"(?<!\})`[^`\n]+`", "", text)  # inline code, but not {math}`...` roles
    return bool(_MATH_IN_PROSE.search(text))


def first_heading(source: Path) -> str:
    """The page's first level-1 heading, as plain text (what Sphinx puts in <title>)."""
    text = _FENCE.sub("", _markdown_of(source))
    match = re.search(r"^#[ \t]+(.+?)[ \t#]*$", text, re.M)
    assert match, f"{source} has no level-1 heading"
    return " ".join(re.sub(r"[`*]", "", match.group(1)).split())


TOC = toc_pages()


# ---------------------------------------------------------------------------------------------
# The two editions: English at the root, Chinese under zh/ (scripts/build_book.py)
# ---------------------------------------------------------------------------------------------

sys.path.insert(0, str(ROOT / "_ext"))
import bilingual  # noqa: E402

EDITIONS = ("en", "zh")
PREFIX = {"en": "", "zh": "zh/"}


def zh_heading(page: TocPage) -> str:
    """The Chinese form of a page's first heading, from its catalogue."""
    english = first_heading(page.source)
    catalogue = bilingual.read_catalogue(
        ROOT / "locales" / "zh_CN" / "LC_MESSAGES" / f"{page.docname}.po")
    for source, target in catalogue.items():
        if " ".join(re.sub(r"[`*]", "", source).split()) == english:
            return " ".join(re.sub(r"[`*]", "", target).split())
    raise AssertionError(f"the catalogue of {page.docname} does not translate {english!r}")


def page_title(page: TocPage, edition: str) -> str:
    """What the browser tab says: "<first heading> — <book title>", in the edition's language."""
    if edition == "zh":
        return f"{zh_heading(page)} — {bilingual.ZH_TITLE}"
    return f"{first_heading(page.source)} — {book_title()}"


def other_edition(page: TocPage, edition: str) -> str:
    """The root-relative address of the same page in the other edition."""
    return page.html if edition == "zh" else "zh/" + page.html


# ---------------------------------------------------------------------------------------------
# Serving and reading the built HTML
# ---------------------------------------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


class StaticSite:
    """A folder served over HTTP on a free loopback port, in a background thread."""

    def __init__(self, folder: Path):
        self.folder = folder
        handler = functools.partial(_QuietHandler, directory=str(folder))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_port}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.links = LinkChecker()

    def url(self, path: str) -> str:
        return urllib.parse.urljoin(self.base, path)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class _IdCollector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name == "id" or (tag == "a" and name == "name"):
                self.ids.add(value or "")


class LinkChecker:
    """Fetches each link target once: its HTTP status and, for HTML, the ids it defines."""

    def __init__(self):
        self._cache: dict[str, tuple[int, set[str]]] = {}

    def target(self, url: str) -> tuple[int, set[str]]:
        if url not in self._cache:
            try:
                with urllib.request.urlopen(url, timeout=30) as response:
                    status, body = response.status, response.read()
                    is_html = "html" in response.headers.get("Content-Type", "")
            except urllib.error.HTTPError as error:
                status, body, is_html = error.code, b"", False
            ids: set[str] = set()
            if is_html:
                parser = _IdCollector()
                parser.feed(body.decode("utf8", errors="replace"))
                ids = parser.ids
            self._cache[url] = (status, ids)
        return self._cache[url]

    def problems(self, hrefs: list[str], base: str) -> tuple[int, list[str]]:
        """(number of internal links, what is broken among them)."""
        internal = sorted({h for h in hrefs if h.startswith(base)})
        broken = []
        for href in internal:
            url, _, fragment = href.partition("#")
            status, ids = self.target(url)
            if status != 200:
                broken.append(f"[link] {href} answers HTTP {status}")
            elif fragment and urllib.parse.unquote(fragment) not in ids and url.endswith(".html"):
                broken.append(f"[link] {href}: no element with id {fragment!r} on that page")
        return len(internal), broken


class _ProseParser(HTMLParser):
    """The prose of a page's <article>: no code, no math, no scripts, no header links, and no
    notebook cells (their outputs may be raw HTML, which Sphinx's search does not index)."""

    SKIP = {"script", "style", "pre", "code"}
    SKIP_CLASSES = {"math", "headerlink", "cell_input", "cell_output"}
    SKIP_LANGS: set[str] = set()  # e.g. {"en"}: skip elements marked lang="en"

    def __init__(self):
        super().__init__()
        self.in_article = 0
        self.skip: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        classes = (dict(attrs).get("class") or "").split()
        lang = (dict(attrs).get("lang") or "").split("-")[0].lower()
        if tag == "article" and "bd-article" in classes:
            self.in_article += 1
        elif (self.skip or tag in self.SKIP or self.SKIP_CLASSES & set(classes)
              or lang in self.SKIP_LANGS):
            if tag not in {"br", "img", "hr", "input", "meta", "link", "wbr", "source"}:
                self.skip.append(tag)

    def handle_endtag(self, tag):
        if self.skip and self.skip[-1] == tag:
            self.skip.pop()
        elif tag == "article" and self.in_article:
            self.in_article -= 1

    def handle_data(self, data):
        if self.in_article and not self.skip:
            self.text.append(data)


def prose_words(html_file: Path) -> Counter:
    """Lower-case words of 7+ letters in a built page's prose, with their counts."""
    parser = _ProseParser()
    parser.feed(html_file.read_text(encoding="utf8"))
    text = html.unescape(" ".join(parser.text))
    return Counter(w.lower() for w in re.findall(r"(?<![\w-])[A-Za-z]{7,}(?![\w-])", text))


def search_term(html_root: Path, pages: list[TocPage]) -> tuple[TocPage, str]:
    """Chapter 3 if it exists, else the last chapter, and a word of its prose no other page has.

    Among such words, the most frequent in the chapter (then the longest, then alphabetical), so
    the term is a topic of the chapter and the choice is deterministic.
    """
    chapters = [p for p in pages if p.is_chapter]
    assert chapters, "_toc.yml lists no chapter"
    third = [p for p in chapters if Path(p.docname).name.startswith("03")]
    chapter = (third or chapters)[-1]
    words = prose_words(html_root / chapter.html)
    elsewhere = Counter()
    for page in pages:
        if page != chapter:
            elsewhere.update(prose_words(html_root / page.html))
    assert words, f"{chapter.html} has no prose to search for"
    ranked = sorted(words, key=lambda w: (w in elsewhere, -words[w], -len(w), w))
    return chapter, ranked[0]


# ---------------------------------------------------------------------------------------------
# Checking one page in the browser
# ---------------------------------------------------------------------------------------------


class Watch:
    """Listens to a page: console errors, uncaught exceptions, failed requests, and requests
    that leave the loopback address (blocked: the book must work offline)."""

    def __init__(self, page):
        self.page = page
        self.problems: list[str] = []
        self.blocked: set[str] = set()
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"[console] uncaught {error}"))
        page.on("requestfailed", self._failed)
        page.on("response", self._response)
        page.route("**/*", self._route)

    def _console(self, message):
        if message.type == "error":
            where = message.location.get("url", "")
            self.problems.append(f"[console] error: {message.text} ({where})")

    def _failed(self, request):
        if request.url not in self.blocked:
            self.problems.append(f"[network] request failed: {request.url} ({request.failure})")

    def _response(self, response):
        if response.status >= 400:
            self.problems.append(f"[network] HTTP {response.status} for {response.url}")

    def _route(self, route):
        url = route.request.url
        parts = urllib.parse.urlsplit(url)
        if parts.scheme in {"data", "blob", "about", "file"} or parts.hostname in LOOPBACK_HOSTS:
            route.continue_()
        else:
            self.blocked.add(url)
            self.problems.append(f"[offline] the page requests {url} (needs a network)")
            route.abort()


@dataclass
class PageReport:
    url: str
    problems: list[str] = field(default_factory=list)
    math_nodes: int = 0
    equations: int = 0  # mjx-container elements: every rendered formula, inline or display
    display_equations: int = 0
    images: int = 0
    internal_links: int = 0
    screenshots: list[Path] = field(default_factory=list)


_MATH_STATE = """() => {
  const nodes = Array.from(document.querySelectorAll('.math'));  // every Sphinx math node
  const skip = 'pre, code, script, style, textarea, mjx-container, .highlight';
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT, {
    acceptNode: n => n.parentElement && n.parentElement.closest(skip)
      ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT});
  const text = [];
  while (walker.nextNode()) text.push(walker.currentNode.nodeValue);
  return {
    nodes: nodes.length,
    unrendered: nodes.filter(n => !n.querySelector('mjx-container'))
                     .map(n => n.textContent.trim().slice(0, 80)),
    containers: document.querySelectorAll('mjx-container').length,
    display: document.querySelectorAll('mjx-container[display="true"]').length,
    errors: Array.from(document.querySelectorAll('mjx-merror'))
                 .map(e => (e.getAttribute('data-mjx-error') || e.textContent).slice(0, 80)),
    // display equations drawn wider than the text column they sit in (cut or scrolled)
    wide: Array.from(document.querySelectorAll('mjx-container[display="true"]')).map(c => {
      const math = c.querySelector('mjx-math');
      const column = c.closest('article') || document.body;
      const style = getComputedStyle(column);
      const room = column.clientWidth - parseFloat(style.paddingLeft)
                   - parseFloat(style.paddingRight);
      const block = c.closest('div.math');
      const label = block && block.id ? block.id
        : (block && block.querySelector('.eqno') ? block.querySelector('.eqno').textContent
           : (c.textContent || '').slice(0, 40));
      return {label: label.trim(), width: math ? math.getBoundingClientRect().width : 0,
              room: room};
    }).filter(e => e.width > e.room + 1),
    text: text.join(''),
  };
}"""

_IMAGES = """async () => {
  const images = Array.from(document.images);
  images.forEach(img => { img.loading = 'eager'; });
  await Promise.all(images.map(img => img.complete ? null : new Promise(done => {
    img.addEventListener('load', done); img.addEventListener('error', done);
    setTimeout(done, 15000);
  })));
  return images.map(img => ({src: img.currentSrc || img.src, complete: img.complete,
                             width: img.naturalWidth, height: img.naturalHeight}));
}"""

_RAW_TEX = re.compile(r"\$\$|\\begin\{|\\\(|\\\[|\$[^$\n]*\\[A-Za-z]+[^$\n]*\$")
# Markup that should have been rendered but reached the reader as text: a Markdown table (its
# separator row; Sphinx's smart quotes turn --- into a dash) and a MyST role such as {cite}`x`.
_RAW_MARKUP = (
    ("raw Markdown table", re.compile(r"(?:\|[ \t]*:?[-\u2013\u2014]+:?[ \t]*){2,}\|")),
    ("raw MyST role", re.compile(r"\{[a-z]+(?::[a-z]+)*\}`[^`\n]+`")),
)


def _first(n: int, problems: list[str]) -> list[str]:
    """At most n problems of one kind, and a count of the rest."""
    rest = len(problems) - n
    return problems[:n] + ([f"    ... and {rest} more like these"] if rest > 0 else [])


def check_rendering(page, watch: Watch, report: PageReport, *, expect_math: bool):
    """Math and images of a loaded page: MathJax done, nothing left raw, every image loaded."""
    problems = report.problems
    # MathJax: wait for its first typesetting pass, then for its fonts
    if any("mathjax" in blocked.lower() for blocked in watch.blocked):
        problems.append("[math] MathJax is loaded from the network (blocked here)")
    elif page.locator("script[src*='mathjax']").count():
        try:
            page.wait_for_function(
                "() => window.MathJax && MathJax.startup && MathJax.startup.promise",
                timeout=TIMEOUT_MS)
            page.evaluate("() => MathJax.startup.promise.then(() => document.fonts.ready)"
                          ".then(() => true)")
        except PlaywrightTimeoutError:
            problems.append("[math] MathJax never started (script missing or blocked?)")
    elif expect_math:
        problems.append("[math] the source has math but the page loads no MathJax")
    try:
        page.wait_for_load_state("networkidle", timeout=10_000)
    except PlaywrightTimeoutError:
        problems.append("[network] the page never went quiet (requests still running)")

    math = page.evaluate(_MATH_STATE)
    report.math_nodes = math["nodes"]
    report.equations, report.display_equations = math["containers"], math["display"]
    if expect_math and not math["nodes"]:
        problems.append("[math] the source has math but the page has no math element")
    if expect_math and not math["containers"]:
        problems.append("[math] the source has math but MathJax rendered nothing")
    problems += _first(10, [f"[math] not rendered by MathJax: {tex!r}"
                            for tex in math["unrendered"]])
    problems += _first(10, [f"[math] MathJax error: {err!r}" for err in math["errors"]])
    problems += _first(10, [
        f"[math] display equation {eq['label']!r} is {eq['width']:.0f} px wide, wider than the "
        f"{eq['room']:.0f} px text column at {VIEWPORT['width']} px: split it"
        for eq in math["wide"]])
    text = math["text"]
    for kind, pattern, label in (("math", _RAW_TEX, "raw TeX"),
                                 *(("markup", rx, name) for name, rx in _RAW_MARKUP)):
        problems += _first(5, [
            f"[{kind}] {label} {m.group(0)!r} left in the text: "
            f"...{' '.join(text[max(0, m.start() - 40): m.end() + 40].split())}..."
            for m in pattern.finditer(text)])

    images = page.evaluate(_IMAGES)
    report.images = len(images)
    problems += _first(10, [
        f"[image] {image['src']} did not load ({image['width']}x{image['height']})"
        for image in images
        if not (image["complete"] and image["width"] > 0 and image["height"] > 0)])


def cjk_fonts() -> set[str]:
    """The font families installed here that cover Chinese (fontconfig's answer)."""
    listed = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True)
    return {name.strip() for line in listed.stdout.splitlines() for name in line.split(",")}


def cjk_font_problems(context, page) -> list[str]:
    """Which fonts Chromium drew the first Chinese paragraph with: one must cover Chinese."""
    session = context.new_cdp_session(page)
    try:
        session.send("DOM.enable")
        session.send("CSS.enable")
        root = session.send("DOM.getDocument", {"depth": -1})["root"]["nodeId"]
        nodes = session.send("DOM.querySelectorAll",
                             {"nodeId": root, "selector": "article.bd-article p"})["nodeIds"]
        for node in nodes:
            text = session.send("DOM.getOuterHTML", {"nodeId": node})["outerHTML"]
            if re.search(r"[\u4e00-\u9fff]", text):
                fonts = session.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
                used = {f["familyName"] for f in fonts if f["glyphCount"] > 0}
                if not used & cjk_fonts():
                    return [f"[font] the Chinese text is drawn with {sorted(used)}, none of "
                            f"which covers Chinese (installed: {sorted(cjk_fonts())})"]
                return []
        return ["[font] the page has no paragraph of Chinese text"]
    finally:
        session.detach()


SCREENSHOT_MAX_HEIGHT = 16_000  # Chromium draws at most 16384 px in one picture


def take_screenshots(page, path: Path) -> list[Path]:
    """The whole page: `path`, and `path`-2, -3, ... for pages too tall for one picture.

    Not full_page=True: Chromium's capture beyond the viewport draws this theme's sticky sidebar
    shifted once MathJax has run. The viewport is made as tall as the page instead (or as one
    tile of it), so the page lays itself out as a very tall window would show it.
    """
    height = page.evaluate("() => document.documentElement.scrollHeight")
    tile = max(VIEWPORT["height"], min(height, SCREENSHOT_MAX_HEIGHT))
    page.set_viewport_size({"width": VIEWPORT["width"], "height": tile})
    paths = []
    for index, top in enumerate(range(0, height, tile)):
        page.evaluate(f"() => window.scrollTo(0, {top})")  # the last tile may overlap
        paths.append(path if index == 0 else path.with_name(f"{path.stem}-{index + 1}.png"))
        page.screenshot(path=str(paths[-1]))
    return paths


def check_page(context, url: str, *, title: str, expect_math: bool, links: LinkChecker,
               base: str, prev_url: str | None, next_url: str | None,
               screenshot: Path | None = None, switch_url: str | None = None,
               cjk: bool = False) -> PageReport:
    """Open `url` as a reader would and report everything wrong with it.

    ``switch_url``: the page's link to the other edition must point there. ``cjk``: the page's
    Chinese text must be drawn with a font that has Chinese glyphs (not boxes or a fallback)."""
    report = PageReport(url)
    problems = report.problems
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    watch = Watch(page)
    try:
        response = page.goto(url, wait_until="load")
        if response is None or response.status != 200:
            problems.append(f"[http] {url} answers {response.status if response else 'nothing'}")

        check_rendering(page, watch, report, expect_math=expect_math)

        hrefs = page.eval_on_selector_all("a[href]", "els => els.map(a => a.href)")
        report.internal_links, broken = links.problems(hrefs, base)
        problems += _first(10, broken)

        # The tab icon. Routing (above) stops Chromium's own favicon request, so ask for it here:
        # a page that declares no icon makes every browser fetch /favicon.ico.
        icons = page.eval_on_selector_all("link[rel~='icon']", "els => els.map(l => l.href)")
        for icon in icons or [urllib.parse.urljoin(url, "/favicon.ico")]:
            if (status := links.target(icon)[0]) != 200:
                problems.append(f"[favicon] {icon} answers HTTP {status}")

        if (actual := page.title()) != title:
            problems.append(f"[title] {actual!r}, expected {title!r}")

        for selector, expected, name in (("a.left-prev", prev_url, "previous"),
                                         ("a.right-next", next_url, "next")):
            found = page.eval_on_selector_all(selector, "els => els.map(a => a.href)")
            if found != ([expected] if expected else []):
                problems.append(f"[nav] {name} button links to {found}, expected {expected}")

        if switch_url is not None:
            found = page.eval_on_selector_all("a.edition-switch", "els => els.map(a => a.href)")
            if found != [switch_url]:
                problems.append(f"[edition] the link to the other edition is {found}, "
                                f"expected {switch_url}")
        if cjk:
            problems += cjk_font_problems(context, page)

        if screenshot is not None:
            report.screenshots = take_screenshots(page, screenshot)
    finally:
        page.close()
    problems[:0] = watch.problems
    return report


# ---------------------------------------------------------------------------------------------
# Fixtures: the browser, the built book, the server
# ---------------------------------------------------------------------------------------------

STATS: dict = {"pages": {}, "search": None, "downloads": []}  # for the summary line
SOURCES_AS_BUILT: dict[str, bytes] = {}  # docname -> the source's bytes when the book was built


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in {"", "0", "false", "no", "off"}


def _browser_required() -> bool:
    return _truthy("CI") or os.environ.get("BOOK_BROWSER_TEST", "").strip() == "required"


def find_chromium() -> str | None:
    if os.environ.get("BOOK_CHROMIUM"):
        return shutil.which(os.environ["BOOK_CHROMIUM"])
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path
    return None


@pytest.fixture(scope="session")
def chromium() -> str:
    """The Chromium binary; a skip locally, a failure in CI, when there is none."""
    wanted = os.environ.get("BOOK_BROWSER_TEST", "").strip()
    if wanted == "off":
        if _browser_required():
            pytest.fail("BOOK_BROWSER_TEST=off is refused in CI (CI is set): the browser test "
                        "must run there")
        pytest.skip("browser test switched off by BOOK_BROWSER_TEST=off")
    missing = []
    if sync_playwright is None:
        missing.append("the Python package playwright (pip install -r requirements.txt)")
    path = find_chromium()
    if path is None:
        missing.append("Chromium (apt-get install -y chromium, or BOOK_CHROMIUM=/path/to/it)")
    if missing:
        message = "browser test cannot run: missing " + " and ".join(missing)
        if _browser_required():
            pytest.fail(message + " -- required here (CI or BOOK_BROWSER_TEST=required)")
        pytest.skip(message + " -- skipped locally; in CI this is a failure")
    return path


@pytest.fixture(scope="session")
def browser(chromium, tmp_path_factory):
    """Chromium started by hand with CHROMIUM_FLAGS and a fresh profile; Playwright attaches."""
    profile = tmp_path_factory.mktemp("chromium-profile")
    log = tmp_path_factory.mktemp("chromium-log") / "stderr.txt"
    command = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
               "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "about:blank"]
    with open(log, "wb") as stderr:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=stderr, start_new_session=True)
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 60
    while not (port_file.is_file() and port_file.read_text().strip()):
        if process.poll() is not None or time.monotonic() > deadline:
            _stop(process)
            pytest.fail(f"Chromium did not start ({' '.join(command)}):\n"
                        + log.read_text(errors="replace")[-3000:])
        time.sleep(0.05)
    port = port_file.read_text().split()[0]
    playwright = sync_playwright().start()
    try:
        connected = playwright.chromium.connect_over_cdp(f"http://127.0.0.1:{port}",
                                                         timeout=TIMEOUT_MS)
        yield connected
        connected.close()
    finally:
        playwright.stop()
        _stop(process)


def _stop(process: subprocess.Popen):
    """End the Chromium we started: its own process group (start_new_session), by id."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="session")
def context(browser):
    ctx = browser.new_context(accept_downloads=True, viewport=VIEWPORT)
    yield ctx
    ctx.close()


@pytest.fixture(scope="session")
def html_root(chromium, tmp_path_factory) -> Path:
    """The book built now from the working tree, as `make book` builds it, in a temp folder.

    With ``BOOK_HTML_DIR`` set (``.ci/run`` sets it after its own `make book`), the test checks
    that build instead, so that CI builds the book once.
    """
    if os.environ.get("BOOK_HTML_DIR"):
        root = Path(os.environ["BOOK_HTML_DIR"]).resolve()
        assert (root / "index.html").is_file(), f"BOOK_HTML_DIR has no index.html: {root}"
        SOURCES_AS_BUILT.update({p.docname: p.source.read_bytes() for p in TOC if p.source})
        STATS["build_seconds"] = 0.0
        return root
    out = tmp_path_factory.mktemp("book")
    command = [sys.executable, str(ROOT / "scripts" / "build_book.py"), "--out", str(out)]
    # the sources as built: a notebook edited while the test runs must not fail the download check
    SOURCES_AS_BUILT.update({p.docname: p.source.read_bytes() for p in TOC if p.source})
    started = time.monotonic()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1200)
    STATS["build_seconds"] = round(time.monotonic() - started, 1)
    if result.returncode != 0:
        log = result.stdout + result.stderr
        warnings = [line for line in log.splitlines() if re.search(r"WARNING|ERROR|Error", line)]
        pytest.fail(f"the book does not build ({' '.join(command)}, exit {result.returncode});"
                    " `make book` fails alike. Warnings and errors:\n" + "\n".join(warnings)
                    + f"\n--- end of the log ---\n{log[-3000:]}", pytrace=False)
    root = out / "html"
    for edition in EDITIONS:
        assert (root / PREFIX[edition] / "index.html").is_file(), f"no {edition} index.html"
    return root


@pytest.fixture(scope="session")
def site(html_root):
    served = StaticSite(html_root)
    yield served
    served.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module", autouse=True)
def summary(request, tmp_path_factory):
    """After the module: one line in pytest's output saying what was checked, and a JSON file."""
    yield
    pages = STATS["pages"]
    if not pages:
        return
    totals = {key: sum(p[key] for p in pages.values())
              for key in ("equations", "display_equations", "images", "internal_links")}
    report = tmp_path_factory.getbasetemp() / "browser-report.json"
    report.write_text(json.dumps({**STATS, "totals": totals}, indent=2, default=str))
    line = (f"browser test: {len(pages)} pages, {totals['equations']} rendered equations "
            f"({totals['display_equations']} display), {totals['images']} images, "
            f"{totals['internal_links']} internal links checked; search term "
            f"{STATS['search']!r}; {len(STATS['downloads'])} notebook download(s); "
            f"book built in {STATS.get('build_seconds')} s; report {report}")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # what capsys.disabled() does
            reporter.write_line("")
            reporter.write_line(line)


# ---------------------------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("edition", EDITIONS)
@pytest.mark.parametrize("index", range(len(TOC)), ids=[p.docname for p in TOC])
def test_page_reads_right_offline(index, edition, site, context, screenshots):
    page = TOC[index]
    assert page.source is not None, f"_toc.yml lists {page.docname}, which has no source file"
    at = PREFIX[edition]
    prev_url = site.url(at + TOC[index - 1].html) if index > 0 else None
    next_url = site.url(at + TOC[index + 1].html) if index + 1 < len(TOC) else None
    report = check_page(
        context, site.url(at + page.html), title=page_title(page, edition),
        expect_math=source_has_math(page.source), links=site.links, base=site.base,
        prev_url=prev_url, next_url=next_url,
        screenshot=screenshots / f"{edition}-{page.slug}.png",
        switch_url=site.url(other_edition(page, edition)), cjk=edition == "zh")
    STATS["pages"][at + page.docname] = {
        "equations": report.equations, "display_equations": report.display_equations,
        "math_nodes": report.math_nodes, "images": report.images,
        "internal_links": report.internal_links, "screenshots": report.screenshots}
    assert not report.problems, f"{page.html}:\n  " + "\n  ".join(report.problems)
    assert report.screenshots and all(p.stat().st_size > 0 for p in report.screenshots)


@pytest.mark.parametrize("edition", EDITIONS)
def test_next_buttons_walk_the_whole_book(edition, site, context):
    """From index.html (the address a reader opens) through every page and back one."""
    at = PREFIX[edition]
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    watch = Watch(page)
    try:
        page.goto(site.url(at + "index.html"))
        page.wait_for_url(site.url(at + TOC[0].html))
        for following in TOC[1:]:
            # let the page finish (fonts, icon): leaving earlier cancels requests, a false alarm
            page.wait_for_load_state("networkidle")
            assert page.locator("a.right-next").count() == 1, f"{page.url} has no next button"
            page.locator("a.right-next").click()
            page.wait_for_url(site.url(at + following.html))
        page.wait_for_load_state("networkidle")
        assert page.locator("a.right-next").count() == 0, "the last page has a next button"
        if len(TOC) > 1:
            page.locator("a.left-prev").click()
            page.wait_for_url(site.url(at + TOC[-2].html))
            page.wait_for_load_state("networkidle")
    finally:
        page.close()
    assert not watch.problems, "\n".join(watch.problems)


@pytest.mark.parametrize("edition", EDITIONS)
def test_pages_render_from_disk_without_a_server(edition, html_root, context):
    """Opened straight from the folder (file://, a USB stick): math and images still work."""
    failures = []
    for toc_page in TOC:
        report = PageReport((html_root / PREFIX[edition] / toc_page.html).as_uri())
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        watch = Watch(page)
        try:
            page.goto(report.url, wait_until="load")
            check_rendering(page, watch, report, expect_math=toc_page.source is not None
                            and source_has_math(toc_page.source))
        finally:
            page.close()
        if problems := watch.problems + report.problems:
            failures.append(f"{toc_page.html}:\n  " + "\n  ".join(problems))
    assert not failures, "\n".join(failures)


def run_search(page, site, start: str, term: str) -> list[str]:
    """Search ``term`` from the search button of the page ``start``; the results' addresses."""
    page.goto(site.url(start))
    page.wait_for_load_state("networkidle")  # leaving a page early cancels its requests
    page.locator("button.search-button__button:visible").first.click()
    field_ = page.locator("#pst-search-dialog input[name='q']")
    field_.fill(term)
    field_.press("Enter")
    page.wait_for_url(re.compile(r".*/search\.html\?q=.*"))
    page.wait_for_function(  # Sphinx's summary line, written when the search is done
        "() => document.querySelector('#search-results .search-summary')?.textContent")
    page.wait_for_function(
        "() => !document.querySelector('#search-results .search-summary')"
        ".textContent.includes('...')", timeout=TIMEOUT_MS)
    return page.eval_on_selector_all("#search-results ul.search li a",
                                     "els => els.map(a => a.href.split('?')[0].split('#')[0])")


def test_search_finds_a_chapter_word(html_root, site, context):
    """Search from the search button, as a reader would, for a word only that chapter has."""
    chapter, term = search_term(html_root, TOC)
    STATS["search"] = f"{term} ({chapter.docname})"
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    watch = Watch(page)
    try:
        results = run_search(page, site, TOC[0].html, term)
        assert site.url(chapter.html) in results, (
            f"searching {term!r} (a word of {chapter.html} only) found {results}")
        page.wait_for_load_state("networkidle")
        page.locator(f"#search-results ul.search li a[href^='{chapter.html}']").first.click()
        page.wait_for_url(re.compile(re.escape(site.url(chapter.html)) + r".*"))
        page.wait_for_load_state("networkidle")
    finally:
        page.close()
    assert not watch.problems, "\n".join(watch.problems)


def prose_text(html_file: Path) -> str:
    parser = _ProseParser()
    parser.feed(html_file.read_text(encoding="utf8"))
    return html.unescape(" ".join(parser.text))


@pytest.mark.parametrize("term", ["交叉熵", "类别不平衡"])
def test_chinese_search_finds_chinese_words(term, html_root, site, context):
    """Sphinx indexes Chinese words only with jieba installed: every Chinese page whose prose
    has the term must be among the results of searching it on the Chinese site."""
    having = [p for p in TOC if term in prose_text(html_root / "zh" / p.html)]
    assert having, f"no Chinese page says {term!r}: the test needs another term"
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    watch = Watch(page)
    try:
        results = run_search(page, site, "zh/" + TOC[0].html, term)
    finally:
        page.close()
    missing = [p.html for p in having if site.url("zh/" + p.html) not in results]
    assert not missing, f"searching {term!r} on the Chinese site misses {missing}: {results}"
    STATS.setdefault("zh_search", {})[term] = len(results)
    assert not watch.problems, "\n".join(watch.problems)


# A run of this many Latin-script words in a Chinese page's prose is an English sentence left
# untranslated (names of methods, such as "logit adjustment" or "focal loss", are shorter).
ENGLISH_RUN = re.compile(r"[A-Za-z][A-Za-z'’-]*(?:[ ,;:]+[A-Za-z][A-Za-z'’-]*){4,}")


def english_in_chinese(html_file: Path) -> list[str]:
    """English runs of five or more words in a Chinese page's prose (code, math, notebook
    outputs, the bibliography's entries and text marked ``lang="en"`` excluded: the library
    reference's docstrings, which stay English by design, see _ext/bilingual.py)."""
    parser = _ProseParser()
    parser.SKIP_CLASSES = _ProseParser.SKIP_CLASSES | {"citation", "bibliography"}
    parser.SKIP_LANGS = {"en"}
    parser.feed(html_file.read_text(encoding="utf8"))
    return [m.group(0) for m in ENGLISH_RUN.finditer(html.unescape(" ".join(parser.text)))]


@pytest.mark.parametrize("page_", TOC, ids=[p.docname for p in TOC])
def test_chinese_pages_read_as_chinese(page_, html_root):
    """No English sentence in a Chinese page's prose: an untranslated or stale message, or a
    glued English phrase, shows here (code, outputs, equations and references may be English)."""
    found = english_in_chinese(html_root / "zh" / page_.html)
    assert not found, (f"zh/{page_.html} shows English prose: {found[:5]} "
                       "(run `python scripts/catalogues.py update` and translate what it lists)")


def test_the_english_check_catches_english(tmp_path):
    page = tmp_path / "p.html"
    page.write_text('<article class="bd-article"><p>这是中文。This sentence was never translated.'
                    '</p><pre>code is fine here and here</pre><p>focal loss 与 logit adjustment'
                    '</p><dl lang="en"><dd><p>A docstring stays in English on purpose.</p></dd>'
                    '</dl></article>', encoding="utf8")
    assert english_in_chinese(page) == ["This sentence was never translated"]


LIBRARY = next((p for p in TOC if p.docname == "library"), None)  # library.md, autodoc
LIBRARY_FUNCTIONS = ("reweighting.losses.focal_loss",
                     "reweighting.losses.logit_adjusted_cross_entropy")
CJK = re.compile(r"[\u4e00-\u9fff]")


def _plain(text: str) -> str:
    """Text as a reader sees it, for comparing a docstring with its rendering: no reST roles or
    inline markup, straight quotes, single spaces."""
    text = re.sub(r":[a-z:]+:`~?([^`]*)`", r"\1", text).replace("``", "").replace("*", "")
    text = text.translate(str.maketrans("‘’“”", "''\"\""))
    return " ".join(text.split())


@pytest.mark.parametrize("edition", EDITIONS)
def test_library_reference_renders_the_docstrings(edition, site, context):
    """The library reference (library.md, generated by autodoc) in both editions: listed in the
    sidebar's table of contents, a section with its anchor for every module the page documents,
    the chapters' key functions with autodoc's anchors (``#reweighting.losses.focal_loss``) and
    their docstrings in English (marked ``lang="en"`` in the Chinese edition), and the page's own
    title in the edition's language."""
    import importlib
    import inspect

    assert LIBRARY is not None and LIBRARY.source is not None, "_toc.yml lists no library page"
    modules = re.findall(r"^\.\. automodule:: (\S+)", LIBRARY.source.read_text("utf8"), re.M)
    at = PREFIX[edition]
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    watch = Watch(page)
    try:
        page.goto(site.url(at + TOC[0].html))
        page.wait_for_load_state("networkidle")
        entries = page.eval_on_selector_all(
            "nav.bd-docs-nav a.reference.internal",
            "els => els.map(a => [a.href.split('#')[0], a.textContent.trim()])")
        page.goto(site.url(at + LIBRARY.html))
        page.wait_for_load_state("networkidle")
        heading = page.locator("article.bd-article h1").first.inner_text().strip("#¶ \n")
        ids = set(page.eval_on_selector_all("[id]", "els => els.map(e => e.id)"))
        rendered = {name: page.eval_on_selector(
            f"dt[id='{name}']", "dt => [dt.textContent, dt.parentElement.getAttribute('lang'), "
            "dt.parentElement.querySelector(':scope > dd > p').textContent]")
            for name in LIBRARY_FUNCTIONS if name in ids}
    finally:
        page.close()
    listed = [text for href, text in entries if href == site.url(at + LIBRARY.html)]
    assert listed == [heading], (f"the sidebar of {at}{TOC[0].html} lists the library page as "
                                 f"{listed}, its heading is {heading!r}")
    if edition == "zh":
        assert CJK.search(heading) and heading == zh_heading(LIBRARY), heading
    else:
        assert heading == first_heading(LIBRARY.source), heading
    missing = [f"module-{m}" for m in modules if f"module-{m}" not in ids]
    missing += [name for name in LIBRARY_FUNCTIONS if name not in rendered]
    assert not missing, f"{at}{LIBRARY.html} has no element with the ids {missing}"
    for name, (signature, lang, first) in rendered.items():
        module, function = name.rsplit(".", 1)
        code = getattr(importlib.import_module(module), function)
        parameter = next(iter(inspect.signature(code).parameters))  # "logits", then ":"
        assert re.search(rf"\b{function}\(\s*{parameter}\s*:", signature), (
            f"{name}: the signature reads {signature!r}")
        docstring = inspect.getdoc(code)
        assert _plain(first) == _plain(docstring.split("\n\n")[0]), (
            f"{name}: the page says {first!r}, the docstring {docstring[:80]!r}")
        assert lang == ("en" if edition == "zh" else None), f"{name}: lang={lang!r}"
    assert not watch.problems, "\n".join(watch.problems)


NOTEBOOK_CHAPTERS = [p for p in TOC if p.source is not None and p.source.suffix == ".ipynb"]


@pytest.mark.parametrize("page_", NOTEBOOK_CHAPTERS, ids=[p.docname for p in NOTEBOOK_CHAPTERS])
def test_download_button_gives_the_notebook(page_, site, context, tmp_path):
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    watch = Watch(page)
    try:
        page.goto(site.url(page_.html))
        page.wait_for_load_state("networkidle")
        button = page.get_by_role("button", name="Download this page")
        assert button.count() == 1, f"{page_.html} has no download button"
        button.click()
        link = page.locator("a.btn-download-source-button")
        assert link.count() == 1 and ".ipynb" in link.inner_text(), "no .ipynb download"
        with page.expect_download() as download_info:
            link.click()
        download = download_info.value
        saved = tmp_path / download.suggested_filename
        download.save_as(saved)
    finally:
        for other in context.pages:  # the download link opens a new tab
            other.close()
    assert saved.name == page_.source.name
    assert saved.read_bytes() == SOURCES_AS_BUILT[page_.docname], (
        f"the download is not {page_.source.relative_to(ROOT)}")
    nbformat.validate(nbformat.reads(saved.read_text(encoding="utf8"), as_version=4))
    STATS["downloads"].append(page_.source.name)
    assert not watch.problems, "\n".join(watch.problems)


def _bib_entries(root: Path = ROOT) -> int:
    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf8"))
    entry = re.compile(r"^\s*@(?!comment|string|preamble)\w+\s*\{", re.I | re.M)
    return sum(len(entry.findall((root / bib).read_text(encoding="utf8")))
               for bib in config.get("bibtex_bibfiles", []))


def test_bibliography_page_lists_the_references(site, context):
    """The book has a bibliography page in its table of contents, and it lists every entry of
    the .bib files when it says `:all:` (the chapters' citations link there: see the link
    checks)."""
    pages = [p for p in TOC if p.source is not None
             and re.search(r"^(`{3,}|~{3,})\s*\{bibliography\}", _markdown_of(p.source), re.M)]
    assert pages, "no page of _toc.yml holds a {bibliography} directive"
    for bib_page in pages:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        watch = Watch(page)
        try:
            page.goto(site.url(bib_page.html))
            page.wait_for_load_state("networkidle")
            listed = page.locator("[role='doc-biblioentry']").count()
        finally:
            page.close()
        assert listed > 0, f"{bib_page.html} lists no reference"
        if ":all:" in _markdown_of(bib_page.source):
            assert listed == _bib_entries(), (
                f"{bib_page.html} lists {listed} references, the .bib files have {_bib_entries()}")
        assert not watch.problems, "\n".join(watch.problems)


BROKEN_PAGE = r"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Not the title</title></head><body>
<p>Display math left as text: $$x^2$$, an environment \begin{align} a \end{align},
inline TeX $\alpha + 1$.</p>
<p>| a | b |
|—|—|
| 1 | 2 |</p>
<p>An unparsed role: {cite}`su2020reweighting`.</p>
<p><span class="math notranslate nohighlight">\(y\)</span></p>
<article style="width: 300px"><div class="math" id="equation-too-wide"><mjx-container
display="true"><mjx-math style="display: inline-block; width: 2000px">x</mjx-math>
</mjx-container></div></article>
<img src="missing.png" alt="missing"> <img src="https://example.invalid/remote.png" alt="remote">
<a href="nowhere.html">gone</a> <a href="#no-such-anchor">bad anchor</a>
<a href="ok.html#here">fine</a>
<script>console.error("boom");</script>
<script>notDefinedAnywhere();</script>
</body></html>"""


def test_the_checks_catch_a_broken_page(context, tmp_path):
    """check_page must fail on what it claims to check, or a green run would mean nothing."""
    (tmp_path / "broken.html").write_text(BROKEN_PAGE, encoding="utf8")
    (tmp_path / "ok.html").write_text('<html><body><p id="here">ok</p></body></html>')
    served = StaticSite(tmp_path)
    try:
        report = check_page(context, served.url("broken.html"), title="Right — Book",
                            expect_math=True, links=served.links, base=served.base,
                            prev_url=served.url("ok.html"), next_url=None)
    finally:
        served.close()
    found = "\n".join(report.problems)
    for expected in ("[console] error: boom", "[console] uncaught", "[network] HTTP 404",
                     "[offline] the page requests https://example.invalid/remote.png",
                     "[math] the source has math but the page loads no MathJax",
                     "[math] not rendered by MathJax: '\\\\(y\\\\)'", "[math] raw TeX '$$'",
                     "[math] raw TeX '\\\\begin{'", "[math] raw TeX '$\\\\alpha + 1$'",
                     "missing.png did not load", "remote.png did not load",
                     "nowhere.html answers HTTP 404", "no element with id 'no-such-anchor'",
                     "[title] 'Not the title', expected 'Right — Book'",
                     "[nav] previous button links to []", "[favicon] ",
                     "[markup] raw Markdown table '|—|—|'",
                     "[markup] raw MyST role '{cite}`su2020reweighting`'",
                     "[math] display equation 'equation-too-wide' is 2000 px wide"):
        assert expected in found, f"{expected!r} not reported; the report was:\n{found}"
    assert "ok.html#here" not in found


def test_source_math_detection():
    """The rule that decides which pages must show rendered math."""
    assert source_has_math(ROOT / "intro.md")
    assert not source_has_math(ROOT / "bibliography.md")
    assert not _MATH_IN_PROSE.search("costs $5 and $10")
