"""`station hub` and `station hub bench` as a user runs them: the real command in its own process
on a real broker (the benchmark starts Debian's mosquitto and `station hub` itself)."""
from __future__ import annotations

import json

from device.commands.cli import main
from support.broker import mosquitto_or_skip


def test_the_hub_without_a_broker_says_what_to_set(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HINGE_DATA_DIR", str(tmp_path))
    assert main(["hub", "--port", "0"]) == 2
    assert "set [mqtt] host" in capsys.readouterr().err


def test_hub_bench_measures_a_few_stations_end_to_end(tmp_path, capsys):
    mosquitto_or_skip()
    out = tmp_path / "hub.json"
    assert main(["hub", "bench", "--stations", "3", "--seconds", "3", "--every", "0.5", "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())["hub"]
    assert row["stations"] == 3 and row["reps_published"] >= 12
    assert row["reps_stored"] == row["reps_published"] and row["not_stored"] == 0 and row["doubled"] == 0
    assert row["drained"] is True
    assert 0 < row["latency_p50_ms"] <= row["latency_p99_ms"] <= row["latency_max_ms"]
    assert row["hub_cpu_pct"] > 0  # the hub process was measured, not this one
    printed = capsys.readouterr().out
    assert "latency_p99_ms" in printed and "falls_behind_reps_per_s" in printed


def test_a_hub_config_reads_the_broker_without_a_station_id(tmp_path):
    from device.config import load_settings
    from device.errors import ConfigError
    import pytest

    hub = load_settings(None, {"data_dir": tmp_path, "mqtt.host": "broker.lan", "hub.stations": ["wall-1"]})
    assert hub.mqtt.enabled and hub.mqtt.station_id is None and hub.hub.stations == ["wall-1"]
    with pytest.raises(ConfigError, match="station_id is required"):  # a station's config still needs one
        load_settings(None, {"data_dir": tmp_path, "mqtt.host": "broker.lan"})
