"""Keep the Chinese edition's message catalogues current with the English book.

    python scripts/catalogues.py update   # after an English change or a rerun
    python scripts/catalogues.py check    # exit 1 if a message lacks a current translation

``update`` does three things:

1. extracts every message of the English pages (Sphinx's gettext builder, from the committed
   notebooks; nothing runs) and merges them into ``locales/zh_CN/LC_MESSAGES/<page>.po`` with
   ``sphinx-intl update``: a new paragraph arrives untranslated, a changed one fuzzy;
2. collects the phrases each chapter glues as Markdown (a verdict, "beats", a sentence built
   from an interval) into ``locales/zh_CN/glued/<page>.po``, which ``_ext/bilingual.py`` reads
   at build time;
3. fills every untranslated or fuzzy message that differs from a translated one only in its
   numbers (a rerun's new interval, a new count) from that translation with the new numbers
   (``bilingual.translate``), so that no number in the Chinese text is typed by hand.

What it cannot fill it lists: translate those messages in the ``.po`` files (any PO editor, or
a text editor: the ``msgstr`` under each ``msgid``), clear their ``#, fuzzy`` flag, and run
``make test`` (``tests/test_translations.py``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "_ext"))

import bilingual  # noqa: E402

LOCALES = ROOT / "locales"
PAGES = LOCALES / "zh_CN" / "LC_MESSAGES"
GLUED = bilingual.GLUED
RECORD = "application/papermill.record/"


def extract(out: Path) -> Path:
    """Extract the English pages' messages into ``out``; returns the folder of ``.pot`` files."""
    command = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(ROOT),
               "--builder", "custom", "--custom-builder", "gettext", "--path-output", str(out)]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True)
    return out / "_build" / "gettext"


def glued_phrases(notebook: Path) -> dict[str, list[str]]:
    """Each Markdown phrase ``notebook`` glues, with the keys it is glued under."""
    phrases: dict[str, list[str]] = {}
    for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
        for output in cell.get("outputs", []):
            record = output.get("metadata", {}).get("scrapbook")
            phrase = output.get("data", {}).get(RECORD + "text/markdown")
            if record and phrase is not None:
                phrases.setdefault("".join(phrase), []).append(record["name"])
    return phrases


def _read(path: Path):
    from babel.messages.pofile import read_po

    with open(path, "rb") as handle:
        return read_po(handle, locale="zh_CN")


def _write(catalogue, path: Path) -> None:
    from babel.messages.pofile import write_po

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        write_po(handle, catalogue, width=100, omit_header=False, sort_output=False,
                 ignore_obsolete=True)


def _memory(catalogue) -> dict[str, str]:
    """English -> Chinese from every translated message, current, fuzzy-previous or obsolete."""
    memory = {}
    for message in [*catalogue, *catalogue.obsolete.values()]:
        if message.id and message.string:
            if message.fuzzy and message.previous_id:
                previous = message.previous_id
                memory["".join(previous) if isinstance(previous, list) else previous] = \
                    message.string
            elif not message.fuzzy:
                memory[message.id] = message.string
    return memory


def fill_by_numbers(catalogue) -> tuple[int, list[str]]:
    """Fill untranslated/fuzzy messages that differ from translated ones only in numbers."""
    memory = _memory(catalogue)
    filled, missing = 0, []
    for message in catalogue:
        if not message.id or (message.string and not message.fuzzy):
            continue
        chinese = bilingual.translate(message.id, memory)
        if chinese is None and not any(c.isalpha() for c in message.id):
            chinese = message.id  # a number, an interval, a sign: the same in both editions
        if chinese is None:
            missing.append(message.id)
            continue
        message.string = chinese
        message.flags.discard("fuzzy")
        message.previous_id = []
        filled += 1
    return filled, missing


def update_glued() -> list[str]:
    """Write ``locales/zh_CN/glued/<page>.po`` from the chapters' glued phrases."""
    from babel.messages.catalog import Catalog

    missing = []
    for notebook in sorted((ROOT / "chapters").glob("*.ipynb")):
        path = GLUED / "chapters" / f"{notebook.stem}.po"
        old = _read(path) if path.exists() else Catalog(locale="zh_CN")
        memory = _memory(old)
        catalogue = Catalog(locale="zh_CN", project="Every modified loss is a reweighting",
                            fuzzy=False)
        for phrase, keys in glued_phrases(notebook).items():
            if not any(c.isalpha() for c in phrase):
                continue  # numbers only: pasted as they are
            chinese = bilingual.translate(phrase, memory) or ""
            catalogue.add(phrase, chinese, auto_comments=[f"glued as {', '.join(keys)}"])
            if not chinese:
                missing.append(f"{path.relative_to(ROOT)}: {phrase[:70]}")
        if _entries(catalogue) != _entries(old):  # unchanged: keep the file (and its date)
            _write(catalogue, path)
    return missing


def _entries(catalogue) -> list[tuple]:
    return [(m.id, m.string, tuple(m.auto_comments), m.fuzzy) for m in catalogue if m.id]


def update() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        print("extracting the English messages (Sphinx gettext builder) ...", flush=True)
        pot = extract(Path(tmp))
        intl = str(Path(sys.executable).with_name("sphinx-intl"))
        subprocess.run([intl, "update", "-p", str(pot), "-l", "zh_CN", "-d", str(LOCALES),
                        "-w", "100"], cwd=ROOT, check=True, capture_output=True, text=True)
    missing = []
    for path in sorted(PAGES.rglob("*.po")):
        catalogue = _read(path)
        filled, left = fill_by_numbers(catalogue)
        if filled:
            _write(catalogue, path)
            print(f"{path.relative_to(ROOT)}: {filled} messages filled with the new numbers")
        missing += [f"{path.relative_to(ROOT)}: {m[:70]}" for m in left]
    missing += update_glued()
    return _report(missing)


def untranslated() -> list[str]:
    """Every message of every catalogue that has no current translation."""
    missing = []
    for path in sorted([*PAGES.rglob("*.po"), *GLUED.rglob("*.po")]):
        for message in _read(path):
            if message.id and (not message.string or message.fuzzy):
                missing.append(f"{path.relative_to(ROOT)}: {message.id[:70]}")
    return missing


def _report(missing: list[str]) -> int:
    if missing:
        print(f"{len(missing)} messages need a translation (or a check, if fuzzy):")
        print("\n".join(f"  {m}" for m in missing))
        return 1
    print("every message has a current translation")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["update", "check"])
    args = parser.parse_args(argv)
    if shutil.which("sphinx-intl", path=str(Path(sys.executable).parent)) is None:
        raise SystemExit("sphinx-intl is missing: `pip install -r requirements.txt`")
    return update() if args.command == "update" else _report(untranslated())


if __name__ == "__main__":
    sys.exit(main())
