#!/usr/bin/env bash
# One command to set up everything: a virtualenv in .venv with Purple and its test tools.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# torch first, pinned: this exact version is the CPU build on these machines; any other pulls GBs of CUDA.
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e '.[dev]'
echo "purple is set up: .venv/bin/purple --help"
