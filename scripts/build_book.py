"""Build the book's HTML, in English, in Chinese, or both (``make book``), strictly.

    python scripts/build_book.py              # both: _build/html/ and _build/html/zh/
    python scripts/build_book.py --edition en # the English book alone, at _build/html/
    python scripts/build_book.py --edition zh # the Chinese book alone, at _build/html/zh/

Both editions come from the same notebooks and their committed outputs (nothing is executed).
The Chinese one is the same Sphinx build with ``language: zh_CN``: its prose comes from the
catalogues in ``locales/zh_CN`` (see ``scripts/catalogues.py`` and ``_ext/bilingual.py``).
Warnings are errors in both (``-W -n --keep-going``).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
HTML = ROOT / "_build" / "html"
ZH_WORK = ROOT / "_build" / "zh"  # the Chinese build's own config, doctrees and output
STRICT = ["-W", "-n", "--keep-going"]


def zh_config(path: Path = ZH_WORK / "_config.yml") -> Path:
    """Write the Chinese edition's config: the book's ``_config.yml`` with ``language: zh_CN``."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    sphinx = config.setdefault("sphinx", {})
    # jupyter-book resolves local extensions from the config file's folder, which is now this one
    sphinx["local_extensions"] = {name: str((ROOT / where).resolve())
                                  for name, where in sphinx.get("local_extensions", {}).items()}
    sphinx.setdefault("config", {})["language"] = "zh_CN"
    config["title"] = "所有魔改 loss 本质上都是调节权重"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False),
                    encoding="utf-8")
    return path


def jupyter_book(*args: str) -> None:
    command = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(ROOT),
               "--builder", "html", *STRICT, *args]
    print("+", " ".join(command), flush=True)
    subprocess.run(command, cwd=ROOT, check=True)


def build_en() -> None:
    """The English book at ``_build/html`` (keeping an already built ``zh`` folder)."""
    keep = HTML / "zh"
    saved = ZH_WORK / "html-kept"
    if keep.exists():
        shutil.rmtree(saved, ignore_errors=True)
        saved.parent.mkdir(parents=True, exist_ok=True)
        keep.rename(saved)
    shutil.rmtree(HTML, ignore_errors=True)
    try:
        jupyter_book()
    finally:
        if saved.exists():
            HTML.mkdir(parents=True, exist_ok=True)
            saved.rename(keep)


def build_zh() -> None:
    """The Chinese book at ``_build/html/zh``."""
    config = zh_config()
    jupyter_book("--config", str(config), "--path-output", str(ZH_WORK))
    target = HTML / "zh"
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ZH_WORK / "_build" / "html", target)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edition", choices=["en", "zh", "both"], default="both",
                        help="which edition to build (default: both)")
    args = parser.parse_args(argv)
    if args.edition in ("en", "both"):
        build_en()
    if args.edition in ("zh", "both"):
        build_zh()
    print(f"The book is at {HTML / 'index.html'}"
          + (f" and {HTML / 'zh' / 'index.html'}" if (HTML / "zh").exists() else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
