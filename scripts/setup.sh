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
# Headless Chromium for the HTML report tests (Debian's package); skipped when already present or not root.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
echo "purple is set up: .venv/bin/purple --help"
