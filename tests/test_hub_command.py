"""`station hub` and `station hub bench` as a user runs them: the real command in its own process
on a real broker (the benchmark starts Debian's mosquitto and `station hub` itself)."""
from __future__ import annotations

import json

import pytest

from device.commands.cli import main
from support.broker import mosquitto_or_skip


def test_the_hub_without_a_broker_says_what_to_set(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HINGE_DATA_DIR", str(tmp_path))
    assert main(["hub", "--port", "0"]) == 2
    assert "set [mqtt] host" in capsys.readouterr().err


@pytest.mark.bench
def test_hub_bench_measures_a_few_stations_end_to_end(tmp_path, capsys):
    mosquitto_or_skip()
    out = tmp_path / "hub.json"
    assert main(["hub", "bench", "--stations", "3", "--seconds", "3", "--every", "0.5", "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())["hub"]
    assert row["stations"] == row["connected"] == 3 and row["reps_published"] >= 12  # every CONNACK, every PUBACK
    assert row["reps_sent"] == row["reps_published"]  # a rep counts once the broker acknowledged it
    assert row["reps_stored"] == row["reps_published"] == row["reps_confirmed"]  # and the hub confirmed each
    assert row["not_stored"] == 0 and row["doubled"] == 0 and row["drained"] is True
    assert 0 < row["latency_p50_ms"] <= row["latency_p99_ms"] <= row["latency_max_ms"]
    assert 0 < row["confirm_p50_ms"] <= row["confirm_p99_ms"]
    assert row["hub_cpu_pct"] > 0 and row["stations_cpu_pct"] > 0  # the hub and the worker processes were measured
    captured = capsys.readouterr()
    assert "latency_p99_ms" in captured.out and "falls_behind_reps_per_s" in captured.out
    assert "3/3 stations connected" in captured.err or "all 3 connected" in captured.err  # progress as it runs
    # and through every phase that can take minutes: starting, draining, stopping
    for phase in ("starting a broker and a hub", "the hub is storing", "3 s over; waiting", "stopping the stations"):
        assert f"bench 3: {phase}" in captured.err, phase


def test_hub_bench_fails_when_a_station_is_not_let_in(tmp_path, monkeypatch):
    """Every connection must get its CONNACK: a station the broker refuses (here every station's
    password is wrong) fails the run instead of being counted as publishing."""
    import pytest

    from device.commands import bench_hub
    from device.errors import StationError

    mosquitto_or_skip()
    # The broker, the hub and the probe take this password; the stations, in their own processes,
    # keep the module's own, which the broker then refuses.
    monkeypatch.setattr(bench_hub, "PASSWORD", "not-the-stations-password")
    with pytest.raises(StationError, match="did not get their CONNACK"):
        bench_hub.bench_hub(2, 2, 0.5)


def test_a_hub_config_reads_the_broker_without_a_station_id(tmp_path):
    from device.config import load_settings
    from device.errors import ConfigError
    import pytest

    hub = load_settings(None, {"data_dir": tmp_path, "mqtt.host": "broker.lan", "hub.stations": ["wall-1"]})
    assert hub.mqtt.enabled and hub.mqtt.station_id is None and hub.hub.stations == ["wall-1"]
    from device.station.assembly import build_station

    bare = load_settings(None, {"data_dir": tmp_path, "mqtt.host": "broker.lan"})  # a hub set by HINGE_MQTT__HOST alone
    assert bare.mqtt.enabled and bare.mqtt.station_id is None
    with pytest.raises(ConfigError, match="station_id is required"):  # a station still needs one, before anything opens
        with build_station(bare, str(tmp_path / "clip.mp4")):
            pass


def test_a_hub_configured_by_the_environment_alone_reads_the_broker(tmp_path, monkeypatch):
    """`station hub` under systemd or docker with HINGE_MQTT__HOST and no config file: no station id
    is asked for (the hub has none), and the broker and prefix are the environment's."""
    from device.commands.hub import broker_from
    from device.config import load_settings

    monkeypatch.setenv("HINGE_MQTT__HOST", "broker.gym.lan")
    monkeypatch.setenv("HINGE_MQTT__TOPIC_PREFIX", "gym")
    monkeypatch.setenv("HINGE_DATA_DIR", str(tmp_path))
    broker, prefix = broker_from(load_settings(None))
    assert (broker.host, prefix) == ("broker.gym.lan", "gym")


def test_a_missing_clip_fails_before_the_models_load(tmp_path, clips_dir):
    """Inside: a missing clip is named although the models are missing too (the clip is checked
    first: nothing loads, no page address is printed). Outside: a clip that is there gets as far as
    the models, which are then what is missing."""
    import shutil

    import pytest

    from device.config import load_settings
    from device.errors import StationError
    from device.station.assembly import build_station

    settings = load_settings(None, {"data_dir": tmp_path, "models.dir": tmp_path / "no-models"})
    with pytest.raises(StationError, match="does not exist"):
        with build_station(settings, str(tmp_path / "missing.mp4")):
            pass
    shutil.copy(next(clips_dir.glob("*.mp4")), tmp_path / "there.mp4")
    with pytest.raises(StationError, match="model file"):
        with build_station(settings, str(tmp_path / "there.mp4")):
            pass
