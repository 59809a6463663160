"""The hub's database on both engines it supports: a SQLite file and a real PostgreSQL cluster the
test starts itself (tests/support/postgres.py). The same statements must give the same answers:
once per key, sessions filled in whatever order their messages arrive, the page's reads.
"""
from __future__ import annotations

import itertools
import math
import time
import uuid

import pytest
import sqlalchemy as sa

from device.hub.store import SCHEMA_VERSION, HubStore, redact
from device.contract.records import SessionFilter, StorageError
from support.hub import PREFIX, Publisher, running_hub, wait_until

KEY = uuid.uuid4().hex
_numbers = itertools.count(1)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hub.db'}"
    server = request.getfixturevalue("postgres_url")
    name = f"hub_test_{next(_numbers)}"
    engine = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with engine.connect() as db:
        db.execute(sa.text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return server.rsplit("/", 1)[0] + f"/{name}"


def session(station: str, n: int, ended: bool = False, athlete=None, started=1_700_000_000.0) -> dict:
    return dict(station=station, session_key=f"{station}:{KEY}:{n}", started_at=started + n * 1000,
                ended_at=started + n * 1000 + 600 if ended else None, profile="dowel_hinge", athlete=athlete, source="picamera")


def rep(station: str, n: int, session_n: int = 1, faults=(), started=1_700_000_000.0) -> dict:
    t = started + session_n * 1000 + n * 10
    return dict(station=station, rep_key=f"{station}:{KEY}:{n}", session_key=f"{station}:{KEY}:{session_n}", rep_index=n,
                started_at=t, bottom_at=t + 2, ended_at=t + 4, movement="hinge", side="right", lowering_s=2.0,
                rising_s=1.5, peak_hip_flexion_deg=95.0, knee_flexion_at_bottom_deg=20.0, trunk_angle_at_bottom_deg=60.0,
                hip_shift_at_bottom=0.3, hinge_ratio=4.75, lockout_reached=True, trace=[[0.0, 1.0, 2.0], [0.1, None, 3.0]],
                borderline=[], faults=[dict(name=f, cue="hips back", at=t + 1, value=1.0, threshold=0.5, margin=0.5, noise=0.1,
                                                   quantity="knee_flexion_deg") for f in faults])


def test_a_rep_and_a_session_are_stored_once_however_often_they_arrive(database_url):
    with HubStore(database_url) as store:
        first = store.ingest([session("wall-a", 1)], [rep("wall-a", 1, faults=("squatting_the_hinge",)), rep("wall-a", 2)])
        again = store.ingest([session("wall-a", 1)], [rep("wall-a", 1, faults=("squatting_the_hinge",)), rep("wall-a", 2)])
        assert (first.sessions, len(first.new_reps)) == (1, 2)
        assert (again.sessions, again.new_reps) == (0, ())
        assert store.rep_count() == 2 and store.count_sessions() == 1
        (row,) = store.list_sessions()
        assert (row["reps"], row["clean_reps"], row["fault_counts"]) == (2, 1, {"squatting_the_hinge": 1})
        assert [len(r["faults"]) for r in store.session_reps(row["id"])] == [1, 0]


def test_a_rep_before_its_session_and_a_late_copy_of_the_start(database_url):
    """Messages of different topics may arrive in any order: the rep makes a placeholder session,
    the end message fills it in, and a late copy of the start message does not reopen it."""
    with HubStore(database_url) as store:
        store.ingest(reps_in=[rep("wall-a", 1)])
        (placeholder,) = store.list_sessions()
        assert placeholder["ended_at"] is None and placeholder["reps"] == 1
        store.ingest([session("wall-a", 1, ended=True, athlete="Sam")])
        store.ingest([session("wall-a", 1, ended=False, athlete=None)])  # the start message, delivered late
        (row,) = store.list_sessions()
        assert row["id"] == placeholder["id"]
        assert row["ended_at"] == session("wall-a", 1, ended=True)["ended_at"]
        assert (row["athlete"], row["profile"], row["source"]) == ("Sam", "dowel_hinge", "picamera")


def test_the_page_reads_filter_by_station_and_athlete_and_page_exports(database_url):
    with HubStore(database_url) as store:
        store.ingest([session("wall-a", 1, True, "Alex"), session("wall-a", 2, True, "Jo"), session("deck-b", 1, True, "Alex")],
                     [rep("wall-a", 1, 1), rep("wall-a", 2, 2), rep("deck-b", 1, 1), rep("deck-b", 2, 1)])
        assert store.stations() == ["deck-b", "wall-a"] and store.athlete_names() == ["Alex", "Jo"]
        alex = store.list_sessions(SessionFilter(athlete="Alex"))
        assert sorted(s["station"] for s in alex) == ["deck-b", "wall-a"]
        assert store.count_sessions(SessionFilter(station="deck-b")) == 1
        assert [s["reps"] for s in store.list_sessions(SessionFilter(station="deck-b"))] == [2]
        everything = store.reps_between(0, math.inf)
        assert len(everything) == 4
        # Paged as the export reads it: (started_at, id) order, no rep twice, none missed.
        paged, after = [], (-math.inf, -1)
        while page := store.reps_page(0, 4e9, after, 1):
            paged += page
            after = (page[-1]["started_at"], page[-1]["id"])
        assert [r["id"] for r in paged] == [r["id"] for r in everything]
        one = store.get_rep(paged[0]["id"])
        assert one["trace"] == [[0.0, 1.0, 2.0], [0.1, None, 3.0]] and one["lockout_reached"] is True
        assert store.integrity_check() == "ok" and store.schema_version == SCHEMA_VERSION


def test_a_bad_url_and_a_database_that_is_not_there_say_what_to_do(tmp_path):
    with pytest.raises(StorageError, match="not a database URL"):
        HubStore("not a url")
    with pytest.raises(StorageError, match="not supported"):
        HubStore("mysql://x@y/z")
    with pytest.raises(StorageError, match="hub database"):
        HubStore("postgresql+psycopg://nobody:secret@127.0.0.1:1/none")
    assert "secret" not in redact("postgresql+psycopg://nobody:secret@127.0.0.1:1/none")


def test_a_hub_on_postgresql_takes_a_real_broker_s_duplicates_once(broker, postgres_url):
    engine = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as db:
        db.execute(sa.text("CREATE DATABASE hub_broker"))
    engine.dispose()
    url = postgres_url.rsplit("/", 1)[0] + "/hub_broker"
    import json

    messages = [(f"{PREFIX}/wall-a/rep", json.dumps({"schema": 1, **rep("wall-a", n)}).encode()) for n in (1, 2, 3)]
    # Valid JSON and a valid payload, but PostgreSQL text cannot hold a NUL: refused alone, the rest stored.
    nul = (f"{PREFIX}/wall-a/session", json.dumps({"schema": 1, **session("wall-a", 9, athlete="Sam\u0000")}).encode())
    with running_hub(broker, url) as hub:
        with Publisher(broker, "wall-a") as station:
            station.send(messages[:2] + [nul] + messages[2:])
            station.send(messages)
        wait_until(lambda: hub.store.rep_count() >= 3 and hub.backlog == 0 and hub.drops, what="three reps in PostgreSQL")
        time.sleep(0.3)
        assert sorted(hub.store.rep_keys()) == sorted(f"wall-a:{KEY}:{n}" for n in (1, 2, 3))
        assert dict(hub.drops) == {"refused": 1} and hub.alive


def test_a_rep_not_judged_is_kept_so_and_is_no_clean_rep(database_url):
    """A rep filmed off side-on reaches the hub as not judged; the hub's counts never call it clean,
    and a rep from a station older than the field (no `judged`) stays judged."""
    unjudged, older = rep("wall-a", 1), rep("wall-a", 2)
    unjudged["judged"] = False
    older.pop("judged", None)
    with HubStore(database_url) as store:
        store.ingest([session("wall-a", 1)], [unjudged, older])
        kept = {r["rep_index"]: r["judged"] for r in store.session_reps(store.list_sessions()[0]["id"])}
        assert kept == {1: False, 2: True}
        assert [(s["reps"], s["clean_reps"]) for s in store.list_sessions()] == [(2, 1)]


def test_a_database_an_older_hub_made_is_upgraded_in_place_and_keeps_its_reps(database_url):
    """A hub upgraded over the schema-1 database it made: the new column is added, the reps held
    stay, and they read as judged (an older station judged every rep it sent)."""
    with HubStore(database_url) as store:
        store.ingest([session("wall-a", 1)], [rep("wall-a", 1, faults=("squatting_the_hinge",))])
    engine = sa.create_engine(database_url)
    with engine.begin() as db:  # what a schema-1 hub left: no `judged` column, version 1
        db.execute(sa.text("ALTER TABLE hub_reps DROP COLUMN judged"))
        db.execute(sa.text("ALTER TABLE hub_faults DROP COLUMN quantity"))  # schema 3's
        db.execute(sa.text("UPDATE hub_settings SET value = '1' WHERE key = 'schema_version'"))
    engine.dispose()
    with HubStore(database_url) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert [r["judged"] for r in store.session_reps(store.list_sessions()[0]["id"])] == [True]
        store.ingest([], [rep("wall-a", 2, faults=("squatting_the_hinge",))])
        assert store.list_sessions()[0]["reps"] == 2
        # what a fault measured: unknown on the old row, kept on the new one
        reps = store.session_reps(store.list_sessions()[0]["id"])
        assert [r["faults"][0]["quantity"] for r in reps] == [None, "knee_flexion_deg"]
