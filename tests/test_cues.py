"""A coach's own cue words: kept in the station's SQLite settings, changed through the token-gated
API and the settings form, sent to the running station, refused when too long to say or for a
fault the drill does not judge, and a damaged saved value never stops a station."""
from __future__ import annotations

import sqlite3
import warnings

import pytest

from device.analysis.cues import MAX_CUE_CHARS, SETTING, CueWords, clean_cue
from device.analysis.vocabulary import Fault
from device.station.live import LiveState
from device.station.store import RepStore
from support.web import AUTH, RecordingControls, make_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def test_a_cue_is_short_plain_text_and_empty_means_the_drills_own():
    assert clean_cue("  chest   up\n") == "chest up"
    assert clean_cue("") == ""
    assert len(clean_cue("x" * MAX_CUE_CHARS)) == MAX_CUE_CHARS  # inside: says in about 3 s
    with pytest.raises(ValueError, match="at most"):
        clean_cue("x" * (MAX_CUE_CHARS + 1))  # outside: a lecture
    with pytest.raises(ValueError, match="control"):
        clean_cue("chest\x1b[2Jup")


def test_saved_cue_words_survive_a_round_trip_and_a_damaged_entry_is_left_out():
    words = CueWords({"dowel_hinge": {"rounded_back": "proud chest"}, "hinge": {"no_such_fault": "x"}, "deadlift": 7})
    assert words.to_saved() == {"dowel_hinge": {"rounded_back": "proud chest"}}
    assert CueWords(words.to_saved()).for_drill("dowel_hinge") == {Fault.ROUNDED_BACK: "proud chest"}
    assert CueWords("not a table").to_saved() == {}


@pytest.fixture
def running(tmp_path):
    live = LiveState()
    live.update(profile="dowel_hinge")
    controls = RecordingControls(live)
    with RepStore(tmp_path / "station.db") as store:
        with TestClient(make_app(store, live=live, controls=controls, page_cpu_share=None)) as api:
            yield api, store, controls, tmp_path / "station.db"


def saved(db) -> dict:
    import json

    row = sqlite3.connect(db).execute("SELECT value FROM station_settings WHERE key = ?", (SETTING,)).fetchone()
    return json.loads(row[0]) if row else {}


def test_cue_words_need_the_token_are_kept_in_sqlite_and_reach_the_running_station(running):
    api, _, controls, db = running
    body = {"cues": {"rounded_back": "proud chest", "head_not_neutral": ""}}
    assert api.put("/api/settings/cues/dowel_hinge", json=body).status_code == 401
    assert saved(db) == {} and controls.calls == []
    answer = api.put("/api/settings/cues/dowel_hinge", json=body, headers=AUTH)
    assert answer.status_code == 200, answer.text
    cues = {c["fault"]: c for c in answer.json()["cues"]}
    assert cues["rounded_back"]["cue"] == "proud chest" and cues["rounded_back"]["own"]
    assert not cues["head_not_neutral"]["own"] and cues["head_not_neutral"]["cue"] == cues["head_not_neutral"]["drill_cue"]
    assert saved(db) == {"dowel_hinge": {"rounded_back": "proud chest"}}  # on disk, not only in the station's RAM
    assert controls.calls == [("cues", ("dowel_hinge", {"rounded_back": "proud chest", "head_not_neutral": ""}))]
    assert api.get("/api/settings/cues/dowel_hinge").json() == answer.json()
    # leaving a fault out goes back to the drill's own cue
    back = api.put("/api/settings/cues/dowel_hinge", json={"cues": {}}, headers=AUTH).json()
    assert not any(c["own"] for c in back["cues"]) and saved(db) == {}


def test_a_cue_too_long_to_say_or_for_a_fault_the_drill_does_not_judge_changes_nothing(running):
    api, store, controls, db = running
    judged = {c["fault"] for c in api.get("/api/settings/cues/dowel_hinge").json()["cues"]}
    off = next(f.value for f in Fault if f.value not in judged)
    for body, code in (({"cues": {"rounded_back": "x" * (MAX_CUE_CHARS + 1)}}, 422),
                       ({"cues": {"made_up": "x"}}, 422),
                       ({"cues": {off: "hips back"}}, 400)):
        assert api.put("/api/settings/cues/dowel_hinge", json=body, headers=AUTH).status_code == code, body
    assert api.put("/api/settings/cues/no_such_drill", json={"cues": {}}, headers=AUTH).status_code == 404
    assert saved(db) == {} and controls.calls == []


def test_the_settings_form_sets_the_running_drills_cue_words(running):
    api, _, controls, db = running
    page = api.get("/settings", headers=AUTH).text
    assert 'id="cues"' in page and 'name="cue_rounded_back"' in page
    api.cookies.clear()
    login = api.post("/login", data={"token": AUTH["Authorization"].split()[-1], "next": "/settings"}, follow_redirects=False)
    assert login.status_code == 303
    done = api.post("/settings/cues", data={"drill": "dowel_hinge", "cue_rounded_back": "proud chest"}, follow_redirects=False)
    assert done.status_code == 303 and "saved=cues" in done.headers["location"]
    assert saved(db) == {"dowel_hinge": {"rounded_back": "proud chest"}}
    assert 'value="proud chest"' in api.get("/settings").text
