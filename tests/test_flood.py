"""A flood of LAN clients against the trainer page of a real station replaying a real clip at its own
pace: the page process may run out of sockets, the live loop does not notice. Same reps, same alerts,
frame-to-signal within 2x of the unloaded run, and the page answers again once the flood is gone."""
from __future__ import annotations

import json
import resource
import shutil
import socket
import threading
import time
import urllib.parse
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


def replay(settings, db, clips_dir, clip_poses, flood: int, exporters: int = 0):
    """Replay the clip at its own pace through the live loop with the page in its own process;
    `flood` clients hold sockets on the page throughout. Returns the run's summary, the alerts, how
    many flood sockets got in, whether the page answered after the flood, and how many exports ran."""
    alerts = []
    cfg = station_settings(settings, db, web={"host": "127.0.0.1", "port": 0})
    with build_station(cfg, str(clips_dir / CLIP), headless=False, fast=False, engine=RecordedPoses(clip_poses(CLIP)),
                       on_event=lambda e: alerts.append(e.event.fault.value) if hasattr(e, "event") else None) as rig:
        with PageProcess(cfg.model_dump(), rig.live, rig.station, max_open_files=PAGE_FILES) as page:
            assert health(page.url) == 200
            stop = threading.Event()
            exports = [0]

            def export_again_and_again():
                query = urllib.parse.urlencode({"since": 0, "until": time.time() + 86400, "format": "json"})
                while not stop.is_set():
                    with urllib.request.urlopen(f"{page.url}api/reps/export?{query}", timeout=120) as answer:
                        while answer.read(1 << 16):
                            pass
                    exports[0] += 1

            workers = [threading.Thread(target=export_again_and_again, daemon=True) for _ in range(exporters)]
            for worker in workers:
                worker.start()
            held = []
            assert page.port is not None  # (started)
            for _ in range(flood):
                try:
                    held.append(slow_client(page.port))
                except OSError:
                    pass  # refused or timed out: the page is full, which is the point
            summary = rig.run()
            stop.set()
            for worker in workers:
                worker.join(120)
            for sock in held:
                sock.close()
            deadline = time.monotonic() + 20
            answered = False
            while time.monotonic() < deadline and not answered:
                try:
                    answered = health(page.url) == 200
                except OSError:
                    time.sleep(0.5)
    return summary, alerts, len(held), answered, exports[0]


def test_a_connection_flood_on_the_page_does_not_reach_coaching(tmp_path, settings, clips_dir, clip_poses):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))  # the test's own side of the flood
    quiet, quiet_alerts, _, _, _ = replay(settings, tmp_path / "quiet.db", clips_dir, clip_poses, flood=0)
    loaded, loaded_alerts, got_in, answered, _ = replay(settings, tmp_path / "loaded.db", clips_dir, clip_poses, FLOOD)
    assert got_in >= PAGE_FILES - 40, "the flood never filled the page"  # (the page's own files take a few)
    assert loaded.reps == quiet.reps == 3
    assert loaded_alerts == quiet_alerts and loaded_alerts.count("squatting_the_hinge") == 3
    assert answered, "the page did not come back after the flood"
    p95_quiet = percentile(quiet.signal_latency_ms, 95)
    p95_loaded = percentile(loaded.signal_latency_ms, 95)
    print(f"flood {got_in} sockets: reps {loaded.reps}/{quiet.reps}, alerts {len(loaded_alerts)}/{len(quiet_alerts)}, "
          f"dropped frames {loaded.dropped}/{quiet.dropped}, frame-to-signal p95 {p95_loaded:.1f}/{p95_quiet:.1f} ms")
    assert p95_loaded <= 2 * max(p95_quiet, 5.0)  # (5 ms: a floor under timer noise on an idle machine)


def test_four_clients_exporting_a_10000_rep_log_do_not_slow_coaching(tmp_path, settings, clips_dir, clip_poses):
    """The probe's export load: four clients repeating the whole log's JSON export while the station
    coaches. The page runs in its own lower-priority process and streams exports a page at a time."""
    from device.commands.sample_log import build_bench_db

    template = tmp_path / "template.db"
    build_bench_db(template)
    for name in ("quiet.db", "loaded.db"):
        shutil.copy(template, tmp_path / name)
    quiet, quiet_alerts, _, _, _ = replay(settings, tmp_path / "quiet.db", clips_dir, clip_poses, flood=0)
    loaded, loaded_alerts, _, answered, exports = replay(settings, tmp_path / "loaded.db", clips_dir, clip_poses, flood=0,
                                                         exporters=4)
    p95_quiet = percentile(quiet.signal_latency_ms, 95)
    p95_loaded = percentile(loaded.signal_latency_ms, 95)
    print(f"4 exporters ({exports} exports of 10,000 reps): reps {loaded.reps}/{quiet.reps}, alerts "
          f"{len(loaded_alerts)}/{len(quiet_alerts)}, dropped frames {loaded.dropped}/{quiet.dropped} of {loaded.frames}, "
          f"frame-to-signal p95 {p95_loaded:.1f}/{p95_quiet:.1f} ms")
    assert exports >= 4, "the exports never ran"
    assert loaded.reps == quiet.reps == 3 and loaded_alerts == quiet_alerts
    assert loaded.dropped <= quiet.dropped + 0.05 * loaded.frames
    assert p95_loaded <= 2 * max(p95_quiet, 5.0)
