#!/usr/bin/env bash
# The rendered-athlete bench end to end from a fresh clone: set up (with the [synth] extra), render a set
# (default: the full sweep) and report the station on it with --json. Arguments: [SET] [OUT_DIR].
# The full sweep renders ~32,000 frames and judges them at 30, 15 and 10 fps: about 45-60 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
set_name=${1:-full}
out=${2:-${XDG_CACHE_HOME:-$HOME/.cache}/hinge-station/synth/$set_name}
scripts/setup.sh
.venv/bin/station synth render --set "$set_name" --out "$out" --json "$out/render.json"
.venv/bin/station synth report "$out" --json "$out/report.json"
echo "report: $out/report.json"
