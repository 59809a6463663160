#!/usr/bin/env bash
# Set up and run the station's main job on a clip (or the camera when no clip is given).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
clip=${1:-../shared/clips/bichraix_deadlift_side_good016.mp4}
mkdir -p demo-output
exec .venv/bin/station replay "$clip" --annotate demo-output/annotated.mp4 --json demo-output/poses.jsonl
