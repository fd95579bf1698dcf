# One-command entry points; each sets up the virtual environment first (see README.md).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
READY  := $(VENV)/.ready

.PHONY: env test lint unit notebooks book pdf reproduce lab clean catalogues verify

env: $(READY)

$(READY): requirements.txt pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $(READY)

## make test: lint, unit tests of lib/ and notebook hygiene, then nbval over every chapter
test: lint unit notebooks

lint: $(READY)
	$(BIN)/ruff check lib tests scripts benchmarks _ext

unit: $(READY)
	$(BIN)/python -m pytest -q tests

# the notebooks run at the test scale, whatever BOOK_SCALE the caller has set or the machine is
notebooks: $(READY)
	BOOK_SCALE=quick $(BIN)/python -m pytest -q --nbval --nbval-current-env chapters

## make book: the rendered HTML book from the notebooks' committed outputs, strictly (warnings are
## errors), in English at _build/html/ and in Chinese at _build/html/zh/ (scripts/build_book.py;
## EDITION=en or EDITION=zh builds one alone)
EDITION ?= both
book: $(READY)
	$(BIN)/python scripts/build_book.py --edition $(EDITION)

## make pdf: the book as PDFs from the same committed outputs, _build/pdf/book-en.pdf and
## book-zh.pdf (EDITION=en or zh builds one), through jupyter-book's LaTeX builder and XeLaTeX;
## needs TeX Live and the Noto CJK fonts (README, "The PDF")
pdf: $(READY)
	$(BIN)/python scripts/build_book.py --pdf --edition $(EDITION)

## make reproduce: re-execute every chapter in place (BOOK_SCALE, default full), rebuild the book
reproduce: $(READY)
	$(BIN)/python scripts/reproduce.py
	$(MAKE) book

## make verify: re-run one chapter at its committed scale in a scratch copy and compare every claim
## with results/ (scripts/verify.py; CHAPTER=03_logit_adjustment, default: the one this commit
## picks); SEED_OFFSET=N runs on fresh seeds instead, a replication that reports and never fails
CHAPTER ?=
SEED_OFFSET ?=
verify: $(READY)
	$(BIN)/python scripts/verify.py $(if $(CHAPTER),$(CHAPTER),--from-commit) \
		$(if $(SEED_OFFSET),--seed-offset $(SEED_OFFSET),)

## make catalogues: after an English change or a rerun, bring the Chinese catalogues up to date
## (scripts/catalogues.py update), then translate what it lists
catalogues: $(READY)
	$(BIN)/python scripts/catalogues.py update

## make wheel: the library alone, dist/reweighting-<version>-py3-none-any.whl, to install
## beside any PyTorch 2.11-2.13 (README, "Use the library in your own training loop"); needs
## only $(PYTHON) with pip, no .venv. setuptools' build/ folder is removed afterwards.
.PHONY: wheel
wheel:
	$(PYTHON) -m pip wheel . --no-deps -w dist
	rm -rf build

## make lab: open the notebooks in JupyterLab
lab: $(READY)
	$(BIN)/jupyter lab chapters

clean:
	rm -rf _build .pytest_cache

## make browser: only the browser test (tests/test_browser.py, also part of `make test`): builds the
## book, serves it on 127.0.0.1 and checks every page in headless Chromium (apt-get install chromium)
.PHONY: browser
browser: $(READY)
	$(BIN)/python -m pytest -q tests/test_browser.py
