#!/usr/bin/env bash
# Prepare a full-scale run of the book on a GPU host that has no network and its own PyTorch
# (like the lent H200: Python 3.12, torch with CUDA, numpy, scipy, sympy, matplotlib,
# scikit-learn, tqdm; no Jupyter stack, no mnist1d). Run it here, in a clone with the book's
# environment (`make env`) and network access to the package registry:
#
#   bash scripts/gpu_prepare.sh [PYTHON_VERSION]      # default 3.12, the GPU host's Python
#
# It fills two git-ignored folders, about 90 MB in all, to copy next to the repository there:
#   .whl/   the wheels of scripts/gpu-wheels.txt, built for that Python on x86-64
#   .data/  the MNIST-1D training pools the full scale uses, generated here (generation is
#           single-threaded Python; carrying them saves the GPU host about a minute)
# Then, on the GPU host: bash scripts/gpu_run.sh OUT_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
pyver=${1:-3.12}
rm -rf .whl && mkdir -p .whl
# fail loudly: a wheel that cannot be fetched stops the script with pip's own message
if ! python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$pyver" \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
  --platform any -d .whl -r scripts/gpu-wheels.txt > .whl/download.log 2>&1; then
  cat .whl/download.log >&2
  echo "gpu_prepare.sh: could not download every wheel of scripts/gpu-wheels.txt (above)" >&2
  exit 1
fi
wanted=$(grep -cEv '^\s*(#|$)' scripts/gpu-wheels.txt)
got=$(ls .whl/*.whl | wc -l)
if [ "$got" -lt "$wanted" ]; then
  echo "gpu_prepare.sh: scripts/gpu-wheels.txt lists $wanted packages but only $got wheels arrived" >&2
  exit 1
fi
rm .whl/download.log
# the full-scale MNIST-1D training pools (num_samples, train_split): chapters 1, 2, 3, 4 and 5,
# then the benchmark's default and GPU sizes (scripts/gpu_run.sh). Each seed's own test sample
# (reweighting.data.mnist1d_sample from the seed's test stream) is generated on the GPU host itself, by
# the mnist1d wheel carried in .whl (about 2 s per 10,000 samples, about 1.6 million in all).
BOOK_DATA_DIR=.data .venv/bin/python -c "
from reweighting import data
for n, split in ((40000, 0.75), (150000, 0.5), (15000, 0.5), (60000, 0.8), (15000, 0.8),
                 (44000, 0.8)):
    data.load_mnist1d(num_samples=n, train_split=split)
"
echo "$(ls .whl/*.whl | wc -l) wheels in .whl, $(ls .data/*.npz | wc -l) data sets in .data:" \
  "$(du -shc .whl .data | tail -1 | cut -f1) to carry"
