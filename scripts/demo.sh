#!/usr/bin/env bash
# Set up and run the station's main job: camera (Pi camera, else webcam) or the clip given, coaching
# alerts on the LED and buzzer (mock pins where there is no GPIO), the rep log in SQLite and the
# trainer page, whose URL it prints. Ctrl-C stops it; reps are kept in ~/.local/share/hinge-station.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source=${1:-}
if [ -z "$source" ]; then
  if ls /dev/video* >/dev/null 2>&1 || .venv/bin/python -c 'from device.capture import picamera_available as p; raise SystemExit(not p())' 2>/dev/null; then
    source=auto
  elif [ -f ../shared/clips/bichraix_deadlift_side_good016.mp4 ]; then
    source=../shared/clips/bichraix_deadlift_side_good016.mp4
    echo "no camera here: replaying $source as the camera"
  else
    echo "no camera found: give a clip, e.g. scripts/demo.sh path/to/side-view-deadlift.mp4" >&2
    exit 2
  fi
fi
# --demo-token: a write token kept beside the rep log, so the page's changes work in the demo
exec .venv/bin/station run --source "$source" --demo-token
