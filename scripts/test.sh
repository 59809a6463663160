#!/usr/bin/env bash
# Set up (scripts/setup.sh), lint (ruff) and type-check (mypy) the tree, then run the whole test
# suite. Extra arguments go to pytest. A lint or type error fails the run before any test starts.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
