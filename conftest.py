"""pytest set-up shared by the unit tests and the notebook runs (``pytest --nbval chapters``)."""

import os
import tempfile

# Notebooks save their claims with reweighting.evidence.save_results. Under test they write to a
# temporary folder, so that running the tests never overwrites the committed results/.
os.environ.setdefault("BOOK_RESULTS_DIR", tempfile.mkdtemp(prefix="book-results-"))
# Under test the notebooks run at the small scale unless the caller asks for another; outside the
# tests the default is the book's own run, `full` (reweighting.train.book_scale).
os.environ.setdefault("BOOK_SCALE", "quick")
