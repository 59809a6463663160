"""`station replay` end to end on a real clip, and clear failures for user mistakes."""
from __future__ import annotations

import json
import subprocess
import sys

import cv2
import pytest


def station(*args, **kw):
    return subprocess.run([sys.executable, "-m", "device", *map(str, args)], capture_output=True, text=True, **kw)


def test_replay_writes_landmarks_annotation_and_summary(tmp_path, clips_dir, models_dir):
    clip = clips_dir / "jeffchen_deadlift_side_good_1rep.mp4"
    out_json, out_video = tmp_path / "poses.jsonl", tmp_path / "annotated.mp4"
    proc = station("replay", clip, "--annotate", out_video, "--json", out_json, "--models-dir", models_dir, "--variant", "float16")
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in out_json.read_text().splitlines()]
    poses, summary = records[:-1], records[-1]
    source = cv2.VideoCapture(str(clip))
    frames = int(source.get(cv2.CAP_PROP_FRAME_COUNT))
    assert summary["kind"] == "summary" and summary["frames"] == frames == len(poses)
    assert all(r["kind"] == "pose" and len(r["landmarks"]) == 33 for r in poses)
    for column in ("fps", "person_found_pct", "detector_run_pct"):  # the printed table has the JSON's names
        assert column in proc.stdout.splitlines()[0]
    assert summary["person_found_pct"] > 90
    video = cv2.VideoCapture(str(out_video))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == frames
    assert (int(video.get(3)), int(video.get(4))) == (int(source.get(3)), int(source.get(4)))


def test_replay_of_unreadable_clip_is_a_clear_error(tmp_path, models_dir):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00" * 2048)
    proc = station("replay", bad, "--models-dir", models_dir)
    assert proc.returncode != 0
    assert "cannot read" in proc.stderr and "Traceback" not in proc.stderr


def test_bad_config_names_the_key(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text('[web]\nport = "eighty"\n[signals]\nbuzer_pin = 3\n')
    proc = station("--config", cfg, "models", "status")
    assert proc.returncode == 2
    assert "web.port" in proc.stderr and "signals.buzer_pin" in proc.stderr and "eighty" in proc.stderr


def test_unreadable_config_is_a_clear_error(tmp_path, monkeypatch):
    """The config holds the write token (mode 0640); a user outside its group gets a clear error,
    not a traceback. Simulated through os.access so the check runs even as root."""
    import os

    import pytest

    from device.config import load_settings
    from device.errors import ConfigError

    cfg = tmp_path / "config.toml"
    cfg.write_text("[web]\nport = 8080\n")
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(cfg) else real(p, mode))
    with pytest.raises(ConfigError, match="not readable"):
        load_settings(cfg)


def test_replay_annotating_into_a_missing_folder_says_so_and_creates_nothing(tmp_path, clips_dir, models_dir):
    out = tmp_path / "no" / "such" / "folder" / "annotated.mp4"
    proc = station("replay", clips_dir / "jeffchen_deadlift_side_good_1rep.mp4", "--annotate", out,
                   "--models-dir", models_dir, "--variant", "float16")
    assert proc.returncode != 0 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "no").exists()


def test_a_profile_or_ladder_that_is_not_utf8_is_a_clear_error_not_a_traceback(tmp_path, clips_dir, models_dir):
    """A coach's drill file saved in Latin-1 (café): the station names the file and says what to do."""
    from device.analysis.ladder import load_ladder
    from device.analysis.profiles import load_profile
    from device.errors import ConfigError

    drills = tmp_path / "drills"
    drills.mkdir()
    (drills / "cafe.toml").write_bytes('description = "caf\u00e9 hinge"\n'.encode("latin-1"))
    (drills / "ladder.toml").write_bytes('# caf\u00e9\n[mastery]\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match="cafe.toml.*UTF-8"):
        load_profile("cafe", drills)
    with pytest.raises(ConfigError, match="ladder.toml.*UTF-8"):
        load_ladder(profiles_dir=drills)
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'data_dir = "{tmp_path}"\n[models]\ndir = "{models_dir}"\n[analysis]\nprofiles_dir = "{drills}"\n')
    proc = station("--config", cfg, "run", "--source", clips_dir / "jeffchen_deadlift_side_good_1rep.mp4",
                   "--profile", "cafe", "--no-page", "--mock-pins", "--fast")
    assert proc.returncode == 2 and "cafe.toml" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]


def test_a_camera_retry_that_starts_longer_than_it_may_grow_is_refused(tmp_path):
    from device.config import load_settings
    from device.errors import ConfigError

    with pytest.raises(ConfigError, match="retry_max_s"):
        load_settings(None, {"data_dir": tmp_path, "source.retry_initial_s": 20.0, "source.retry_max_s": 10.0})
    ok = load_settings(None, {"data_dir": tmp_path, "source.retry_initial_s": 10.0, "source.retry_max_s": 10.0})
    assert ok.source.retry_initial_s == ok.source.retry_max_s == 10.0


def test_a_data_folder_that_cannot_be_made_ends_in_a_clear_error_not_a_traceback(tmp_path, clips_dir, models_dir):
    """The data folder under something that is not a folder (as a read-only parent refuses it): the
    headless logger coaches the clip, says plainly that reps could be kept nowhere (no promise of a
    pending file it cannot write), and exits 1."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the data folder's parent should be")
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'data_dir = "{blocker / "data"}"\n[models]\ndir = "{models_dir}"\n')
    proc = station("--config", cfg, "log", "--source", clips_dir / "jeffchen_deadlift_side_good_1rep.mp4", "--fast")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "Traceback" not in out, out[-3000:]
    assert "held in memory only" in out and "reps are kept in station-pending.jsonl" not in out
    assert "could not be written" in out
