"""A flood of LAN clients against the trainer page of a real station replaying a real clip at its own
pace: the page process may run out of sockets, the live loop does not notice. Same reps, same alerts,
frame-to-signal within 2x of the unloaded run, and the page answers again once the flood is gone."""
from __future__ import annotations

import json
import resource
import socket
import time
import urllib.request

from support.pipeline import RecordedPoses, station_settings

from device.commands.page_process import PageProcess
from device.stats import percentile
from device.station.assembly import build_station

CLIP = "formfit_squat_side.mp4"  # 3 squatted reps, each raising squatting_the_hinge
FLOOD = 600  # connections: more than the page process may hold open in this test
PAGE_FILES = 256  # the page process's open-file limit here (a Pi's default is 1,024)


def slow_client(port: int) -> socket.socket:
    """A client that opens a live stream and never finishes its headers (or one that does and
    keeps the stream): both hold a socket in the page process."""
    sock = socket.socket()
    sock.settimeout(2.0)
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"GET /api/live/events HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    return sock


def health(url: str) -> int:
    with urllib.request.urlopen(url + "api/health", timeout=5) as answer:
        return json.loads(answer.read())["status"] and answer.status


def replay(settings, db, clips_dir, clip_poses, flood: int):
    """Replay the clip at its own pace through the live loop with the page in its own process;
    `flood` clients hold sockets on the page throughout. Returns the run's summary, the alerts, how
    many flood sockets got in, and whether the page answered after the flood."""
    alerts = []
    cfg = station_settings(settings, db, web={"host": "127.0.0.1", "port": 0})
    with build_station(cfg, str(clips_dir / CLIP), headless=False, fast=False, engine=RecordedPoses(clip_poses(CLIP)),
                       on_event=lambda e: alerts.append(e.event.fault.value) if hasattr(e, "event") else None) as rig:
        with PageProcess(cfg.model_dump(), rig.live, rig.station, max_open_files=PAGE_FILES) as page:
            assert health(page.url) == 200
            held = []
            for _ in range(flood):
                try:
                    held.append(slow_client(page.port))
                except OSError:
                    pass  # refused or timed out: the page is full, which is the point
            summary = rig.run()
            for sock in held:
                sock.close()
            deadline = time.monotonic() + 20
            answered = False
            while time.monotonic() < deadline and not answered:
                try:
                    answered = health(page.url) == 200
                except OSError:
                    time.sleep(0.5)
    return summary, alerts, len(held), answered


def test_a_connection_flood_on_the_page_does_not_reach_coaching(tmp_path, settings, clips_dir, clip_poses):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))  # the test's own side of the flood
    quiet, quiet_alerts, _, _ = replay(settings, tmp_path / "quiet.db", clips_dir, clip_poses, flood=0)
    loaded, loaded_alerts, got_in, answered = replay(settings, tmp_path / "loaded.db", clips_dir, clip_poses, FLOOD)
    assert got_in >= PAGE_FILES - 40, "the flood never filled the page"  # (the page's own files take a few)
    assert loaded.reps == quiet.reps == 3
    assert loaded_alerts == quiet_alerts and loaded_alerts.count("squatting_the_hinge") == 3
    assert answered, "the page did not come back after the flood"
    p95_quiet = percentile(quiet.signal_latency_ms, 95)
    p95_loaded = percentile(loaded.signal_latency_ms, 95)
    print(f"flood {got_in} sockets: reps {loaded.reps}/{quiet.reps}, alerts {len(loaded_alerts)}/{len(quiet_alerts)}, "
          f"dropped frames {loaded.dropped}/{quiet.dropped}, frame-to-signal p95 {p95_loaded:.1f}/{p95_quiet:.1f} ms")
    assert p95_loaded <= 2 * max(p95_quiet, 5.0)  # (5 ms: a floor under timer noise on an idle machine)
