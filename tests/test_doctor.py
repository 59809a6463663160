"""`station doctor` on this machine: real model files, real SQLite files, the real camera and GPIO
probes (this machine has neither, which must be reported with what to do), and the CLI's exit code."""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from device.config import load_settings
from device.commands.doctor import FAIL, OK, WARN, Check, Doctor, integrity_check, run_checks

TOKEN = "a-long-random-write-token-0123456789"


def station(*args, **kw):
    return subprocess.run([sys.executable, "-m", "device", *map(str, args)], capture_output=True, text=True, **kw)


def make_settings(tmp_path: Path, models_dir: Path | None = None, **overrides):
    base = {"data_dir": tmp_path / "data", "models.dir": models_dir or tmp_path / "no-models"}
    return load_settings(None, {**base, **overrides})


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def has_webcam() -> bool:
    return any(Path("/dev").glob("video*"))


def has_gpio() -> bool:
    from gpiozero import Device

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            Device._default_pin_factory().close()
        except Exception:
            return False
    return True


def rep_db(path: Path) -> Path:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE reps (id INTEGER PRIMARY KEY, fault TEXT)")
        conn.execute("CREATE INDEX reps_fault ON reps(fault)")
        conn.executemany("INSERT INTO reps (fault) VALUES (?)", [("knees_forward",), ("rounded_back",), ("chin_poke",)])
    conn.close()
    return path


# --- this machine -------------------------------------------------------------------------------


def test_missing_camera_and_gpio_fail_with_what_to_do(tmp_path, models_dir):
    if has_webcam():
        pytest.skip("this machine has a /dev/video* device; the no-camera case cannot be observed here")
    if has_gpio():
        pytest.skip("this machine has working GPIO; the no-GPIO case cannot be observed here")
    checks = by_name(run_checks(make_settings(tmp_path, models_dir), probe=True))
    camera, gpio = checks["camera"], checks["gpio"]
    assert camera.status == FAIL and "/dev/video0" in camera.detail
    assert "USB webcam" in camera.fix and "source.camera" in camera.fix
    assert gpio.status == FAIL and "lgpio" in gpio.detail
    assert 'signals.pin_factory = "mock"' in gpio.fix and "gpio group" in gpio.fix
    for name in ("disk", "database", "models", "runtime"):
        assert checks[name].status == OK, checks[name]
    assert "ran the detector once" in checks["runtime"].detail
    assert checks["clock"].status in (OK, WARN)  # warn where no NTP client has synchronised the kernel clock


def test_a_station_configured_for_this_machine_is_all_ok(tmp_path, models_dir, clips_dir):
    clip = next(clips_dir.glob("*.mp4"))
    settings = make_settings(tmp_path, models_dir, **{"source.camera": str(clip), "signals.pin_factory": "mock",
                                                      "web.token": TOKEN})
    checks = by_name(run_checks(settings, probe=True))
    assert all(c.status == OK for name, c in checks.items() if name != "clock"), checks
    assert "clip" in checks["camera"].detail and "mock" in checks["gpio"].detail


# --- models and runtime --------------------------------------------------------------------------


def test_models_ok_when_fetched_and_fail_when_missing_or_truncated(tmp_path, models_dir):
    ok = Doctor(make_settings(tmp_path, models_dir)).models()
    assert ok.status == OK and "sha256 verified" in ok.detail and "float16" in ok.detail

    missing = Doctor(make_settings(tmp_path, tmp_path / "empty")).models()
    assert missing.status == FAIL and "missing" in missing.detail and "station models fetch" in missing.fix

    broken = tmp_path / "broken"
    shutil.copytree(models_dir, broken)
    landmark = broken / "pose_landmark_full.tflite"
    landmark.write_bytes(landmark.read_bytes()[:100_000])
    truncated = Doctor(make_settings(tmp_path, broken)).models()
    assert truncated.status == FAIL and "truncated" in truncated.detail


def test_runtime_reports_the_interpreter_and_its_version(tmp_path, models_dir):
    check = Doctor(make_settings(tmp_path, models_dir), probe=False).runtime()
    assert check.status == OK and check.detail.split()[0] in ("ai_edge_litert", "tflite_runtime")
    assert "ran the detector" not in check.detail  # the quick form loads no model


# --- rep database ---------------------------------------------------------------------------------


def test_database_absent_is_ok_healthy_is_ok(tmp_path):
    settings = make_settings(tmp_path)
    assert Doctor(settings).database().status == OK
    settings.data_dir.mkdir(parents=True)
    rep_db(settings.store.db_path)
    check = Doctor(settings).database()
    assert check.status == OK and "passes PRAGMA integrity_check" in check.detail


def test_corrupt_index_is_detected_by_integrity_check(tmp_path):
    settings = make_settings(tmp_path)
    settings.data_dir.mkdir(parents=True)
    db = rep_db(settings.store.db_path)
    with sqlite3.connect(db) as conn:
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'reps'").fetchone()[0]
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    data = bytearray(db.read_bytes())  # change a row in the table's page behind its index's back
    at = data.index(b"rounded_back", (root - 1) * page_size, root * page_size)
    data[at : at + 12] = b"rounded_bacK"
    db.write_bytes(bytes(data))
    assert integrity_check(db) != ["ok"]
    check = Doctor(settings).database()
    assert check.status == FAIL and "missing from index" in check.detail and "backup" in check.fix


def test_a_file_that_is_not_sqlite_is_reported(tmp_path):
    settings = make_settings(tmp_path)
    settings.data_dir.mkdir(parents=True)
    settings.store.db_path.write_bytes(b"this is not a database" * 200)
    check = Doctor(settings).database()
    assert check.status == FAIL and "cannot be read as SQLite" in check.detail


def test_integrity_check_runs_while_the_station_is_writing(tmp_path):
    db = rep_db(tmp_path / "station.db")
    writer = sqlite3.connect(db)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO reps (fault) VALUES ('soft_lockout')")
    try:
        assert integrity_check(db) == ["ok"]
    finally:
        writer.commit()
        writer.close()


# --- disk, config, camera, GPIO --------------------------------------------------------------------


def test_disk_reports_free_space_and_fails_below_the_logging_floor(tmp_path):
    check = Doctor(make_settings(tmp_path)).disk()
    assert check.status in (OK, WARN) and "MB free" in check.detail
    free_mb = shutil.disk_usage(tmp_path).free // 2**20
    starved = Doctor(make_settings(tmp_path, **{"store.min_free_mb": free_mb * 10})).disk()
    assert starved.status == FAIL and "rep log pauses" in starved.detail and "journalctl --vacuum-size" in starved.fix


def test_config_problems_are_named(tmp_path):
    clash = Doctor(make_settings(tmp_path, **{"signals.buzzer_pin": 17, "web.token": TOKEN})).config()
    assert clash.status == FAIL and "GPIO17 is used twice" in clash.detail and "signals.buzzer_pin" in clash.detail

    no_token = Doctor(make_settings(tmp_path)).config()
    assert no_token.status == WARN and "web.token is not set" in no_token.detail

    short = Doctor(make_settings(tmp_path, **{"web.token": "abc"})).config()
    assert short.status == WARN and "only 3 characters" in short.detail

    config = tmp_path / "config.toml"
    config.write_text(f'[web]\ntoken = "{TOKEN}"\n')
    config.chmod(0o644)
    readable = Doctor(load_settings(config, {"data_dir": tmp_path}), config_path=config).config()
    assert readable.status == WARN and "any local user can read it" in readable.detail and "chmod 640" in readable.fix
    config.chmod(0o640)
    private = Doctor(load_settings(config, {"data_dir": tmp_path}), config_path=config).config()
    assert private.status == OK and f"loaded {config}" in private.detail


def test_camera_set_to_a_clip(tmp_path):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\x00" * 10)
    assert Doctor(make_settings(tmp_path, **{"source.camera": str(clip)})).camera().status == OK
    gone = Doctor(make_settings(tmp_path, **{"source.camera": str(tmp_path / "gone.mp4")})).camera()
    assert gone.status == FAIL and "not a readable file" in gone.detail


def test_webcam_setting_that_names_no_number(tmp_path):
    check = Doctor(make_settings(tmp_path, **{"source.camera": "webcam:front"})).camera()
    assert check.status == FAIL and "'webcam:0'" in check.fix


def test_explicit_picamera_without_picamera2(tmp_path):
    import importlib.util

    if importlib.util.find_spec("picamera2") is not None:
        pytest.skip("picamera2 is installed here")
    check = Doctor(make_settings(tmp_path, **{"source.camera": "picamera"})).camera()
    assert check.status == FAIL and "python3-picamera2" in check.fix and "--system-site-packages" in check.fix


def test_gpio_mock_or_disabled_is_ok_with_a_note(tmp_path):
    mock = Doctor(make_settings(tmp_path, **{"signals.pin_factory": "mock"})).gpio()
    assert mock.status == OK and "simulated" in mock.detail
    off = Doctor(make_settings(tmp_path, **{"signals.enabled": False})).gpio()
    assert off.status == OK and "disabled" in off.detail


def test_a_crashing_check_is_reported_and_the_rest_still_run(tmp_path, monkeypatch):
    def broken(self):
        raise RuntimeError("sensor exploded")

    monkeypatch.setattr(Doctor, "clock", broken)
    checks = by_name(run_checks(make_settings(tmp_path)))
    assert checks["clock"].status == FAIL and "sensor exploded" in checks["clock"].detail
    assert len(checks) == 10 and checks["disk"].status in (OK, WARN)


# --- the command ----------------------------------------------------------------------------------


def test_cli_exit_code_and_json_follow_the_checks(tmp_path, models_dir, clips_dir):
    out = tmp_path / "doctor.json"
    env = {**os.environ, "HINGE_DATA_DIR": str(tmp_path / "data")}
    failing = station("doctor", "--quick", "--json", out, env={**env, "HINGE_MODELS__DIR": str(tmp_path / "none")})
    assert failing.returncode == 1
    report = json.loads(out.read_text())
    assert report["ok"] is False and report["failed"] >= 1
    header = failing.stdout.splitlines()[0].split()
    assert header == ["check", "status", "detail"] and set(header) <= set(report["checks"][0])
    assert [r["check"] for r in report["checks"]] == ["config", "clock", "disk", "database", "models", "runtime", "camera", "gpio", "voice", "mqtt"]
    assert "fix:" in failing.stdout and "models: run `station models fetch`" in failing.stdout

    clip = next(clips_dir.glob("*.mp4"))
    passing = station("doctor", "--json", out, env={**env, "HINGE_MODELS__DIR": str(models_dir), "HINGE_WEB__TOKEN": TOKEN,
                                                    "HINGE_SOURCE__CAMERA": str(clip), "HINGE_SIGNALS__PIN_FACTORY": "mock"})
    assert passing.returncode == 0, passing.stdout + passing.stderr
    assert json.loads(out.read_text())["failed"] == 0


def test_the_voice_check_is_ok_when_off_and_says_what_is_missing_when_on(tmp_path, monkeypatch):
    from device.station import voice as voice_module

    settings = make_settings(tmp_path)
    assert Doctor(settings).voice().status == OK
    on = settings.model_copy(update={"voice": settings.voice.model_copy(update={"enabled": True})})
    real_which = voice_module.shutil.which
    monkeypatch.setattr(voice_module.shutil, "which", lambda name: None if name == "espeak-ng" else real_which(name))
    check = Doctor(on).voice()
    assert check.status == WARN and "espeak-ng is not installed" in check.detail and "voice.enabled" in check.fix


def test_the_mqtt_line_names_the_station_or_the_hub_it_checks(tmp_path):
    """A station publishes under its id; a hub's config has no station id and only reads."""
    station = make_settings(tmp_path, **{"mqtt.host": "127.0.0.1", "mqtt.station_id": "wall-1"})
    assert "publishing to 127.0.0.1:1883 as station wall-1" in Doctor(station).mqtt().detail
    hub = make_settings(tmp_path, **{"mqtt.host": "127.0.0.1", "hub.client_id": "gym-hub"})
    assert "reading from 127.0.0.1:1883 as the hub (gym-hub)" in Doctor(hub).mqtt().detail


def test_doctor_quick_tries_the_broker_and_never_calls_a_wrong_password_fine(tmp_path, capsys):
    """`station doctor --quick` (safe while the station runs) still connects once to the broker with
    the station's credentials: the right password is ok, a wrong one fails and says what to check."""
    import argparse

    from device.commands.doctor import command
    from support.broker import Mosquitto, mosquitto_or_skip

    mosquitto_or_skip()
    with Mosquitto(tmp_path / "mosquitto", users={"wall-1": "right-password"}) as broker:
        def quick(password: str) -> dict:
            settings = make_settings(tmp_path, **{"mqtt.host": broker.host, "mqtt.port": broker.port,
                                                  "mqtt.station_id": "wall-1", "mqtt.username": "wall-1",
                                                  "mqtt.password": password})
            out = tmp_path / f"{password}.json"
            command(argparse.Namespace(quick=True, config=None, json=out), settings)
            return next(r for r in json.loads(out.read_text())["checks"] if r["check"] == "mqtt")

        assert quick("right-password")["status"] == OK
        wrong = quick("wrong-password")
        assert wrong["status"] == FAIL and "refused" in wrong["detail"]
    assert "mqtt" in capsys.readouterr().out
