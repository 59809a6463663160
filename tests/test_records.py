"""The records (device/contract/records.py) are defined once and every side keeps them whole: the
station's SQLite rep log, the MQTT payloads and the hub's database each hold every field, and a real
rep goes from a station's log over the contract into the hub's database and reads back the same.
Both stores answer the page through one interface, `RepReader`."""
from __future__ import annotations

import random
import sqlite3
import time

import pytest
import sqlalchemy as sa

from device.commands.sample_log import synthetic_rep
from device.contract import topics
from device.contract.records import (FAULT_FIELDS, REP_LISTS, REP_SCALARS, SESSION_FIELDS, FaultRecord, RepReader,
                                     RepRecord, SessionRecord, rep_fields)
from device.hub.store import HubStore
from device.station.broker_link import rep_message, session_message
from device.station.store import RepStore


def columns(db, table: str) -> set[str]:
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}


def test_the_station_log_the_hub_and_the_payloads_hold_every_field_of_the_records(tmp_path):
    RepStore(tmp_path / "station.db").close()
    with sqlite3.connect(tmp_path / "station.db") as db:
        station = {t: columns(db, t) for t in ("reps", "faults", "sessions")}
    with HubStore(f"sqlite:///{tmp_path / 'hub.db'}"):
        pass
    with sqlite3.connect(tmp_path / "hub.db") as db:
        hub = {t: columns(db, f"hub_{t}") for t in ("reps", "faults", "sessions")}
    for side in (station, hub):
        assert set(REP_SCALARS) | {"trace", "borderline"} <= side["reps"]
        assert set(FAULT_FIELDS) <= side["faults"]
        assert set(SESSION_FIELDS) <= side["sessions"]
    assert set(topics.RepPayload.model_fields) == set(RepRecord.model_fields) | {"schema_", "station", "rep_key", "session_key"}
    assert set(topics.SessionPayload.model_fields) == set(SessionRecord.model_fields) | {"schema_", "station", "session_key"}
    assert set(REP_SCALARS) | set(REP_LISTS) == set(RepRecord.model_fields)
    assert set(FaultRecord.model_fields) == set(FAULT_FIELDS)


def test_a_real_rep_reads_back_the_same_from_the_station_and_from_the_hub(tmp_path):
    rng = random.Random(23)
    with RepStore(tmp_path / "station.db", outbox=True) as station:
        started = time.time() - 600
        sid = station.start_session(started, "dowel_hinge", "picamera", "Alex")
        for i, kind in enumerate(("rounded", "clean", "squatted"), start=1):
            station.add_rep(sid, synthetic_rep(rng, i, 4.0 * i, kind), wall_offset=started)
        station.end_session(sid, started + 60)
        uuid = station.store_uuid
        sent_session = session_message("wall-a", uuid, station.get_session(sid) or {})
        sent = [rep_message("wall-a", uuid, r) for r in station.session_reps(sid)]
        mine = [rep_fields(r) for r in station.session_reps(sid)]
    # Over the wire as bytes, checked by the contract as the hub checks every message.
    received = [topics.decode("hinge", "hinge/wall-a/rep", m.to_json())[2] for m in sent]
    session = topics.decode("hinge", "hinge/wall-a/session", sent_session.to_json())[2]
    with HubStore(f"sqlite:///{tmp_path / 'hub.db'}") as hub:
        hub.ingest([session.model_dump()], [r.model_dump() for r in received])
        (row,) = hub.list_sessions()
        theirs = [rep_fields(r) for r in hub.session_reps(row["id"])]
        assert (row["profile"], row["athlete"], row["source"]) == ("dowel_hinge", "Alex", "picamera")
    assert any(f["faults"] for f in mine) and theirs == mine


@pytest.mark.parametrize("make", [lambda tmp: RepStore(tmp / "station.db"),
                                  lambda tmp: HubStore(f"sqlite:///{tmp / 'hub.db'}")], ids=["station", "hub"])
def test_both_stores_are_what_the_page_reads(make, tmp_path):
    store = make(tmp_path)
    try:
        reader: RepReader = store  # the type checker holds both to the Protocol; this holds them at run time
        members = [name for name in dir(RepReader) if not name.startswith("_")]
        assert members and all(hasattr(reader, name) for name in members)
        assert reader.count_sessions() == 0 and reader.rep_count() == 0 and reader.integrity_check() == "ok"
        assert reader.stations() == [] and reader.athlete_names() == []
    finally:
        store.close()


def test_the_hub_columns_follow_the_record_types(tmp_path):
    with HubStore(f"sqlite:///{tmp_path / 'hub.db'}") as hub:
        inspector = sa.inspect(hub._engine)
        kinds = {c["name"]: (type(c["type"]).__name__, c["nullable"]) for c in inspector.get_columns("hub_reps")}
    assert kinds["rep_index"][0] == "INTEGER" and kinds["lockout_reached"][0] == "BOOLEAN"
    assert kinds["hinge_ratio"] == ("DOUBLE", True) and kinds["started_at"] == ("DOUBLE", False)
