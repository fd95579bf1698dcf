#!/usr/bin/env bash
# Reproduce the whole book at full scale on a GPU host without network, with the host's own
# Python and PyTorch, then benchmark the trainer. Prepare .whl/ and .data/ first with
# scripts/gpu_prepare.sh on a machine with the book's environment, and copy them along.
#
#   bash scripts/gpu_run.sh OUT_DIR
#
# OUT_DIR receives reproduce.log, benchmark.log and book-run.tar.gz (the executed chapters,
# results/*.json and reproducibility.md); unpack the archive in the repository and run
# `make book` where jupyter-book is installed. Environment: PYTHON (default python3),
# BOOK_SCALE (default full), BENCHMARK_ARGS (arguments of benchmarks/trainer.py).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: bash scripts/gpu_run.sh OUT_DIR}
mkdir -p "$out"
python=${PYTHON:-python3}
site=$(mktemp -d)
ls .whl/*.whl >/dev/null 2>&1 || { echo "no wheels in .whl/: run scripts/gpu_prepare.sh" >&2; exit 2; }
"$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target "$site" .whl/*.whl
export PYTHONPATH="$site:$PWD" BOOK_DATA_DIR="$PWD/.data" BOOK_SCALE="${BOOK_SCALE:-full}"
"$python" -c "import torch; print('torch', torch.__version__, '| CUDA:', torch.cuda.is_available() and torch.cuda.get_device_name())"
start=$(date +%s)
"$python" scripts/reproduce.py 2>&1 | grep -v "Kernel is running over TCP" | tee "$out/reproduce.log"
seconds=$(( $(date +%s) - start ))
echo "whole book at scale $BOOK_SCALE: $seconds s wall time" | tee -a "$out/reproduce.log"
tar czf "$out/book-run.tar.gz" chapters/*.ipynb results/*.json reproducibility.md
# shellcheck disable=SC2086
"$python" benchmarks/trainer.py ${BENCHMARK_ARGS:---models 100 --plain-models 2 --samples 44000 --n-max 3200 --epochs 60} \
  2>&1 | tee "$out/benchmark.log"
