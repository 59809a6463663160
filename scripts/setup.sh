#!/usr/bin/env bash
# Create .venv with the station and its dev extras installed, fetch the models from PyPI and build
# the quantized landmark variants. Safe to run again: pip, fetch and quantize skip what is in place.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test,quantize]"
.venv/bin/station models fetch
.venv/bin/station models quantize
