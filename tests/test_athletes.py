"""Athletes and the drill ladder on a real SQLite rep log: the migration keeps old labels, renaming
and deleting never touch a rep, mastery at the boundary of each default rule (inside and outside),
corrections counting, the trainer's answer kept, and the API around it token-gated."""
from __future__ import annotations

import csv
import io
import random
import sqlite3
import warnings
from datetime import datetime, timedelta
from pathlib import Path
from typing import Optional

import pytest

from device.analysis.ladder import LEG_LENGTH_PER_HEIGHT, load_ladder, leg_lengths_to_cm, progression, tally_sessions
from device.commands.sample_log import synthetic_rep
from device.errors import ConfigError
from device.contract.records import SessionFilter
from device.station.store import MIGRATIONS, RepStore
from device.station.live import LiveState
from support.web import AUTH, RecordingControls, make_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

LADDER = load_ladder()
RULE = LADDER.steps[0].mastery  # the default rule (wall-tap hinge has no override)
DAY1 = datetime(2026, 3, 2, 10, 0)  # station-local mornings, so "different days" never hangs on a time zone


class Clock:
    """The store's clock: set by the test, so decisions and corrections land when the test says."""

    def __init__(self, at: datetime):
        self.now = at.timestamp()

    def __call__(self) -> float:
        return self.now

    def set(self, at: datetime) -> None:
        self.now = at.timestamp()


@pytest.fixture
def clock() -> Clock:
    return Clock(DAY1)


@pytest.fixture
def store(tmp_path: Path, clock: Clock):
    with RepStore(tmp_path / "station.db", clock=clock) as s:
        yield s


def train(store: RepStore, athlete: str, day: datetime, clean: int, faulty: int = 0, style: str = "squatted",
          drill: str = "wall_tap_hinge", rng: Optional[random.Random] = None) -> int:
    """One session of `clean` clean reps then `faulty` reps of `style`, as the station writes them
    (the same reps for the same arguments: a fresh seeded generator unless one is handed in)."""
    rng = rng if rng is not None else random.Random(3)
    sid = store.start_session(day.timestamp(), drill, "picamera", athlete)
    t = 5.0
    for i, name in enumerate(["clean"] * clean + [style] * faulty, start=1):
        rep = synthetic_rep(rng, i, t, name)
        store.add_rep(sid, rep, wall_offset=day.timestamp())
        t = rep.end_time + 2.0
    store.end_session(sid, day.timestamp() + t + 10)
    return sid


def mastery(store: RepStore, athlete: str, drill: str = "wall_tap_hinge"):
    aid = next(a["id"] for a in store.list_athletes() if a["name"] == athlete)
    sessions = store.list_sessions(SessionFilter(athlete_id=aid), limit=1000)
    state = progression(LADDER, tally_sessions(sessions, store.athlete_reps(aid)), store.step_decisions(aid))
    return next(s.mastery for s in state.steps if s.step.drill == drill), state


# --- the store -----------------------------------------------------------------------------------


def test_labels_in_an_old_log_become_athletes_and_stay_on_their_sessions(tmp_path):
    db = tmp_path / "old.db"
    raw = sqlite3.connect(db)
    for script in MIGRATIONS[:2]:
        raw.executescript(script)
    raw.executemany("INSERT INTO sessions (started_at, profile, athlete) VALUES (?, 'hinge', ?)",
                    [(1000.0, "Sam"), (2000.0, "sam"), (3000.0, None), (4000.0, "Jo")])
    raw.execute("PRAGMA user_version = 2")
    raw.commit()
    raw.close()
    with RepStore(db) as store:
        assert store.schema_version == len(MIGRATIONS)
        athletes = {a["name"].lower(): a for a in store.list_athletes()}
        assert sorted(athletes) == ["jo", "sam"] and athletes["sam"]["sessions"] == 2
        sessions = {s["started_at"]: s for s in store.list_sessions(limit=10)}
        assert sessions[3000.0]["athlete_id"] is None  # anonymous stays anonymous
        assert sessions[1000.0]["athlete_id"] == sessions[2000.0]["athlete_id"] == athletes["sam"]["id"]
        assert sessions[2000.0]["athlete"] == "sam"  # the label as written is still readable


def test_renaming_or_deleting_an_athlete_never_touches_a_rep(store):
    sid = train(store, "Sam", DAY1, clean=3, faulty=1)
    other = train(store, "Jo", DAY1, clean=2)
    aid = store.get_session(sid)["athlete_id"]
    reps_before = store.rep_count()
    assert store.update_athlete(aid, name="Samira")
    assert store.get_session(sid)["athlete"] == "Samira"
    assert store.delete_athlete(aid)
    assert store.rep_count() == reps_before == 6
    assert store.get_session(sid)["athlete"] is None and store.get_session(sid)["athlete_id"] is None
    assert store.get_session(other)["athlete"] == "Jo"
    # an athlete's reps carry every field a session's reps do (the traces left empty)
    assert set(store.athlete_reps(store.get_session(other)["athlete_id"])[0]) == set(store.session_reps(other)[0])
    # a later label with the old name starts a fresh athlete, not the deleted one's history
    store.set_athlete(sid, "Sam")
    assert store.get_athlete(store.get_session(sid)["athlete_id"])["reps"] == 4


# --- mastery at the boundaries of each default rule ----------------------------------------------


def test_the_default_rule_reads_as_documented():
    assert (RULE.min_clean_reps, RULE.min_days, RULE.min_clean_share, RULE.recent_sessions) == (20, 2, 0.90, 4)
    assert RULE.none_in_last_session == ("rounded_back",)
    assert LADDER.drills[0] == "wall_tap_hinge" and LADDER.drills[-1] == "deadlift"


def test_clean_reps_boundary(store):
    train(store, "In", DAY1, clean=10)
    train(store, "In", DAY1 + timedelta(days=1), clean=10)
    train(store, "Out", DAY1, clean=10)
    train(store, "Out", DAY1 + timedelta(days=1), clean=9)
    inside, _ = mastery(store, "In")
    outside, _ = mastery(store, "Out")
    assert inside.met and inside.clean_reps == 20
    assert not outside.met and outside.missing == ("1 more clean rep (has 19 of 20)",)


def test_different_days_boundary(store):
    train(store, "In", DAY1 + timedelta(hours=13), clean=10)  # 23:00
    train(store, "In", DAY1 + timedelta(hours=14, minutes=30), clean=10)  # 00:30 the next day
    train(store, "Out", DAY1, clean=10)
    train(store, "Out", DAY1 + timedelta(hours=8), clean=10)  # same day, later
    assert mastery(store, "In")[0].met
    outside, _ = mastery(store, "Out")
    assert not outside.met and outside.days == 1 and outside.missing == ("sessions on 2 different days (has 1)",)


def test_clean_share_boundary(store):
    train(store, "In", DAY1, clean=14, faulty=2)
    train(store, "In", DAY1 + timedelta(days=1), clean=13, faulty=1)  # 27 of 30: exactly 90%
    train(store, "Out", DAY1, clean=14, faulty=2)
    train(store, "Out", DAY1 + timedelta(days=1), clean=13, faulty=2)  # 27 of 31: 87%
    inside, _ = mastery(store, "In")
    outside, _ = mastery(store, "Out")
    assert inside.met and inside.clean_share == pytest.approx(0.9)
    assert not outside.met and outside.missing == ("clean share of 90% (has 87%)",)


def test_only_the_recent_sessions_are_the_evidence(store):
    ids = [train(store, "In", DAY1, clean=0, faulty=10)]  # a bad start, five sessions ago
    ids += [train(store, "In", DAY1 + timedelta(days=d), clean=5) for d in (1, 2, 3, 4)]
    train(store, "Out", DAY1, clean=0, faulty=10)  # still inside its last four
    for d in (1, 2, 3):
        train(store, "Out", DAY1 + timedelta(days=d), clean=7)
    inside, _ = mastery(store, "In")
    assert inside.met and inside.evidence == tuple(ids[1:])
    outside, _ = mastery(store, "Out")
    assert not outside.met and outside.reps == 31 and outside.clean_reps == 21


def test_no_rounded_back_in_the_latest_session(store):
    train(store, "In", DAY1, clean=20, faulty=1, style="rounded")  # rounded, but not in the latest session
    train(store, "In", DAY1 + timedelta(days=1), clean=10)
    train(store, "Out", DAY1, clean=20)
    train(store, "Out", DAY1 + timedelta(days=1), clean=10, faulty=1, style="rounded")
    assert mastery(store, "In")[0].met
    outside, _ = mastery(store, "Out")
    assert not outside.met and outside.missing == ("no rounded back rep in the latest session (had 1)",)


def test_corrections_made_on_the_page_count(store):
    train(store, "Ann", DAY1, clean=10)
    last = train(store, "Ann", DAY1 + timedelta(days=1), clean=10, faulty=1, style="rounded")
    assert not mastery(store, "Ann")[0].met
    rounded = store.session_reps(last)[-1]
    for fault in {f["name"] for f in rounded["faults"]}:  # rounded back, and maybe the head with it
        store.add_correction(rounded["id"], "false_alarm", fault)
    assert mastery(store, "Ann")[0].met and mastery(store, "Ann")[0].clean_reps == 21
    store.add_correction(store.session_reps(last)[0]["id"], "missed_fault", "rounded_back")
    assert not mastery(store, "Ann")[0].met  # the trainer saw a rounded back the station missed
    first, second = store.session_reps(last)[:2]
    store.add_correction(first["id"], "not_a_rep")
    m, _ = mastery(store, "Ann")
    assert m.reps == 20 and m.met  # the rep with the missed fault no longer counts
    store.add_correction(second["id"], "not_a_rep")
    m, _ = mastery(store, "Ann")
    assert m.reps == 19 and not m.met and m.missing == ("1 more clean rep (has 19 of 20)",)


def test_a_dismissal_holds_until_a_newer_session_meets_the_rule(store, clock):
    train(store, "Ann", DAY1, clean=10)
    train(store, "Ann", DAY1 + timedelta(days=1), clean=10)
    _, state = mastery(store, "Ann")
    assert state.suggestion is not None and state.suggestion.next_drill == "dowel_hinge"
    assert state.current_drill == "dowel_hinge"  # mastered: on to the next step, the trainer asked to confirm
    aid = store.list_athletes()[0]["id"]
    clock.set(DAY1 + timedelta(days=1, hours=2))
    store.add_step_decision(aid, "wall_tap_hinge", "dowel_hinge", "dismissed", state.suggestion.evidence)
    _, state = mastery(store, "Ann")
    assert state.suggestion is None and state.current_drill == "wall_tap_hinge"  # the trainer holds them back
    train(store, "Ann", DAY1 + timedelta(days=2), clean=10)
    _, state = mastery(store, "Ann")
    assert state.suggestion is not None
    clock.set(DAY1 + timedelta(days=2, hours=2))
    store.add_step_decision(aid, "wall_tap_hinge", "dowel_hinge", "accepted", state.suggestion.evidence)
    _, state = mastery(store, "Ann")
    assert state.current_drill == "dowel_hinge" and state.suggestion is None
    assert [d["decided_at"] for d in store.step_decisions(aid)] == [
        (DAY1 + timedelta(days=1, hours=2)).timestamp(), (DAY1 + timedelta(days=2, hours=2)).timestamp()]


def test_a_ladder_naming_an_unknown_drill_or_rule_is_refused(tmp_path):
    bad = tmp_path / "ladder.toml"
    bad.write_text('[mastery]\nmin_clean_reps = 5\nmin_days = 1\nmin_clean_share = 0.9\nrecent_sessions = 2\n'
                   '[[step]]\ndrill = "kipping_hinge"\n')
    with pytest.raises(ConfigError, match="kipping_hinge"):
        load_ladder(bad)
    bad.write_text('[[step]]\ndrill = "deadlift"\n')
    with pytest.raises(ConfigError, match="min_clean_reps"):
        load_ladder(bad)


def test_hip_travel_in_centimetres_uses_winters_leg_length():
    assert LEG_LENGTH_PER_HEIGHT == pytest.approx(0.245 + 0.246)
    assert leg_lengths_to_cm(0.3, 180.0) == pytest.approx(0.3 * 0.491 * 180.0)
    assert leg_lengths_to_cm(0.3, None) is None


# --- the API -------------------------------------------------------------------------------------


@pytest.fixture
def api(store):
    with TestClient(make_app(store, page_cpu_share=None)) as c:
        yield c


def test_writes_need_the_token_and_a_taken_name_is_refused(api, store):
    assert api.post("/api/athletes", json={"name": "Kim"}).status_code == 401
    assert store.list_athletes() == []
    made = api.post("/api/athletes", json={"name": " Kim ", "height_cm": 172, "notes": "new"}, headers=AUTH)
    assert made.status_code == 201 and made.json()["name"] == "Kim"
    assert api.post("/api/athletes", json={"name": "kim"}, headers=AUTH).status_code == 409
    assert api.post("/api/athletes", json={"name": "Lee", "height_cm": 20}, headers=AUTH).status_code == 422
    aid = made.json()["id"]
    assert api.patch(f"/api/athletes/{aid}", json={"name": "Kimberly"}).status_code == 401
    assert api.delete(f"/api/athletes/{aid}").status_code == 401
    assert [a["name"] for a in api.get("/api/athletes").json()["items"]] == ["Kim"]


def test_an_athlete_followed_through_the_api(api, store):
    sid = train(store, "Ann", DAY1, clean=10)
    train(store, "Ann", DAY1 + timedelta(days=1), clean=10)
    anon = train(store, None, DAY1, clean=4)
    aid = store.get_session(sid)["athlete_id"]
    assert api.patch(f"/api/athletes/{aid}", json={"height_cm": 170}, headers=AUTH).status_code == 200
    progress = api.get(f"/api/athletes/{aid}").json()
    assert progress["current_step"] == "dowel_hinge" and progress["ready_for"] == "dowel_hinge"
    assert progress["suggestion"]["evidence"] == [s["session_id"] for s in progress["sessions"]]
    assert progress["hip_travel"]["unit"] == "cm" and len(progress["reps"]) == 20
    rep = progress["reps"][0]
    assert rep["hip_travel_cm"] == pytest.approx(rep["hip_travel"] * 0.491 * 170)
    wrong = {"drill": "dowel_hinge", "next_drill": "cable_pulled_hinge", "decision": "accepted"}
    assert api.post(f"/api/athletes/{aid}/decisions", json=wrong, headers=AUTH).status_code == 409
    right = {"drill": "wall_tap_hinge", "next_drill": "dowel_hinge", "decision": "accepted"}
    assert api.post(f"/api/athletes/{aid}/decisions", json=right).status_code == 401
    assert api.post(f"/api/athletes/{aid}/decisions", json=right, headers=AUTH).status_code == 201
    after = api.get(f"/api/athletes/{aid}").json()
    assert after["current_step"] == "dowel_hinge" and after["ready_for"] is None and len(after["decisions"]) == 1
    # assign the anonymous session afterwards, by name
    assert api.put(f"/api/sessions/{anon}/athlete", json={"athlete": "ann"}, headers=AUTH).status_code == 200
    assert store.get_session(anon)["athlete_id"] == aid
    exported = list(csv.DictReader(io.StringIO(api.get(f"/api/athletes/{aid}/export?format=csv").text)))
    assert len(exported) == 24 and {r["athlete"] for r in exported} == {"Ann"}
    assert api.get(f"/api/athletes/{aid}/export?format=json").json()["athlete"]["reps"] == 24
    # deleting asks nothing of the API but keeps every rep, anonymous; the labels export still works
    assert api.delete(f"/api/athletes/{aid}", headers=AUTH).status_code == 204
    assert store.rep_count() == 24 and api.get(f"/api/athletes/{aid}").status_code == 404
    labels = list(csv.DictReader(io.StringIO(api.get("/api/labels/export").text)))
    assert len(labels) == 3 and not any("Ann" in row["notes"] for row in labels)


def test_the_athlete_page_says_the_cue_the_coach_set_for_the_drill_the_fault_came_up_on(api, store):
    """The athlete's fault list says each fault's cue as the station says it on the drill the fault
    came up on last: the coach's own words once set on the page, the drill's own before that; another
    drill's words are not this one's."""
    sid = train(store, "Ann", DAY1, clean=2, faulty=3, style="rounded", drill="dowel_hinge")
    aid = store.get_session(sid)["athlete_id"]
    fault = store.session_reps(sid)[-1]["faults"][0]["name"]

    def shown() -> str:
        return next(f["cue"] for f in api.get(f"/api/athletes/{aid}").json()["faults"] if f["name"] == fault)

    drills_own = next(c for c in api.get("/api/settings/cues/dowel_hinge").json()["cues"] if c["fault"] == fault)
    assert shown() == drills_own["drill_cue"]
    assert api.put("/api/settings/cues/wall_tap_hinge", json={"cues": {fault: "tall like a wall"}},
                   headers=AUTH).status_code == 200
    assert shown() == drills_own["drill_cue"]  # said on another drill, not on this one
    assert api.put("/api/settings/cues/dowel_hinge", json={"cues": {fault: "proud chest, long spine"}},
                   headers=AUTH).status_code == 200
    assert shown() == "proud chest, long spine"
    page = api.get(f"/athletes/{aid}").text
    assert "proud chest, long spine" in page and drills_own["drill_cue"] not in page


def test_the_page_forms_ask_before_deleting(api, store):
    sid = train(store, "Ann", DAY1, clean=3)
    aid = store.get_session(sid)["athlete_id"]
    api.cookies.clear()
    assert api.post("/login", data={"token": AUTH["Authorization"].split()[1]}, follow_redirects=False).status_code == 303
    assert api.post(f"/athletes/{aid}/delete", data={}, follow_redirects=False).status_code == 400
    assert store.get_athlete(aid) is not None
    assert api.post(f"/athletes/{aid}/delete", data={"confirm": "yes"}, follow_redirects=False).status_code == 303
    assert store.get_athlete(aid) is None and store.rep_count() == 3


def test_renaming_or_deleting_who_is_up_reaches_the_station_before_their_session_starts(store):
    """Between sets no session runs, but the station holds who is up for the next one: a rename
    must reach it (or the next session brings the old name back as a new athlete), and so must a
    delete. Someone else being up is left alone."""
    live = LiveState()  # a station between sessions: no session id
    controls = RecordingControls(live)
    with TestClient(make_app(store, live=live, controls=controls, page_cpu_share=None)) as api:
        kim = api.post("/api/athletes", json={"name": "Kim"}, headers=AUTH).json()
        lee = api.post("/api/athletes", json={"name": "Lee"}, headers=AUTH).json()
        assert api.put(f"/api/athletes/{kim['id']}/up", headers=AUTH).status_code == 200
        assert live.snapshot()[1].athlete == "Kim"
        assert api.patch(f"/api/athletes/{lee['id']}", json={"name": "Leo"}, headers=AUTH).status_code == 200
        assert controls.calls[-1] == ("athlete", "Kim")  # not Lee's rename
        assert api.patch(f"/api/athletes/{kim['id']}", json={"name": "Kimberly"}, headers=AUTH).status_code == 200
        assert controls.calls[-1] == ("athlete", "Kimberly")
        assert api.delete(f"/api/athletes/{lee['id']}", headers=AUTH).status_code == 204
        assert controls.calls[-1] == ("athlete", "Kimberly")
        assert api.delete(f"/api/athletes/{kim['id']}", headers=AUTH).status_code == 204
        assert controls.calls[-1] == ("athlete", None) and live.snapshot()[1].athlete is None


def test_a_coachs_ladder_beside_their_own_profiles_wins(tmp_path):
    (tmp_path / "ladder.toml").write_text(
        '[mastery]\nmin_clean_reps = 12\nmin_days = 3\nmin_clean_share = 0.8\nrecent_sessions = 5\n'
        '[[step]]\ndrill = "dowel_hinge"\n[[step]]\ndrill = "wall_tap_hinge"\n')
    own = load_ladder(profiles_dir=tmp_path)
    assert own.drills == ["dowel_hinge", "wall_tap_hinge"] and own.steps[1].mastery.min_days == 3
    assert load_ladder(profiles_dir=tmp_path / "elsewhere").drills == LADDER.drills


def test_who_is_up_labels_the_running_session_and_tells_the_station(station):
    with TestClient(make_app(station.store, live=station.live, controls=station.controls, page_cpu_share=None)) as api:
        kim = api.post("/api/athletes", json={"name": "Kim"}, headers=AUTH).json()
        assert api.put(f"/api/athletes/{kim['id']}/up").status_code == 401
        assert api.put(f"/api/athletes/{kim['id']}/up", headers=AUTH).status_code == 200
        assert station.controls.calls[-1] == ("athlete", "Kim")
        assert station.store.get_session(station.session_id)["athlete_id"] == kim["id"]
        # renaming reaches the station too, so its next sessions carry the new name
        assert api.patch(f"/api/athletes/{kim['id']}", json={"name": "Kimberly"}, headers=AUTH).status_code == 200
        assert station.controls.calls[-1] == ("athlete", "Kimberly")
        assert api.delete(f"/api/athletes/{kim['id']}", headers=AUTH).status_code == 204
        assert station.controls.calls[-1] == ("athlete", None)
    with TestClient(make_app(station.store, page_cpu_share=None)) as api:  # `station serve`: no station to tell
        lee = api.post("/api/athletes", json={"name": "Lee"}, headers=AUTH).json()
        assert api.put(f"/api/athletes/{lee['id']}/up", headers=AUTH).status_code == 409


def test_an_athlete_followed_from_the_wall_tap_to_the_deadlift(store, clock):
    """Every step of the shipped ladder: train it to its rule, the next drill is suggested, the
    trainer accepts, and the athlete stands on the next step; at the deadlift nothing is suggested."""
    day = DAY1
    aid = None
    for step, following in zip(LADDER.steps, [*LADDER.drills[1:], None]):
        need = step.mastery.min_clean_reps
        train(store, "Ann", day, clean=need // 2, drill=step.drill)
        _, state = mastery(store, "Ann", step.drill)
        assert state.current_drill == step.drill and state.suggestion is None  # one day is not enough
        day += timedelta(days=1)
        train(store, "Ann", day, clean=need - need // 2, drill=step.drill)
        met, state = mastery(store, "Ann", step.drill)
        assert met.met
        if following is None:
            assert state.suggestion is None and step.drill == "deadlift"
            break
        assert (state.suggestion.drill, state.suggestion.next_drill) == (step.drill, following)
        aid = aid or store.list_athletes()[0]["id"]
        clock.set(day + timedelta(hours=1))
        store.add_step_decision(aid, step.drill, following, "accepted", state.suggestion.evidence)
        assert mastery(store, "Ann")[1].current_drill == following
        day += timedelta(days=1)
    assert [d["next_drill"] for d in store.step_decisions(aid)] == LADDER.drills[1:]


# --- where an athlete stands: the first step not passed ------------------------------------------


def test_one_session_of_a_later_drill_is_ahead_of_the_ladder_not_the_top_of_it(store):
    """An athlete back from an injury does one deadlift session: they stay on the first step, and
    the deadlift reads "ahead of the ladder"; the first step's own drill is not ahead."""
    train(store, "Ann", DAY1, clean=10, drill="deadlift")
    _, state = mastery(store, "Ann")
    assert state.current_drill == "wall_tap_hinge" and state.suggestion is None
    assert state.ahead("deadlift", LADDER) and not state.ahead("wall_tap_hinge", LADDER)
    assert not state.ahead("squat_of_some_other_gym", LADDER)  # off the ladder: neither ahead nor behind


def test_the_current_step_is_the_first_one_not_mastered(store):
    """Inside: the wall tap mastered (20 clean reps on two days) puts Ann on the dowel, whatever else
    she trained. Outside: one clean rep fewer and she is on the wall tap, the dowel ahead of it."""
    for name, last in (("In", 10), ("Out", 9)):
        train(store, name, DAY1, clean=10)
        train(store, name, DAY1 + timedelta(days=1), clean=last)
        train(store, name, DAY1 + timedelta(days=1, hours=1), clean=5, drill="dowel_hinge")
        train(store, name, DAY1 + timedelta(days=1, hours=2), clean=5, drill="sternum_loaded_hinge")
    _, inside = mastery(store, "In")
    _, outside = mastery(store, "Out")
    assert inside.current_drill == "dowel_hinge" and not inside.ahead("dowel_hinge", LADDER)
    assert inside.ahead("sternum_loaded_hinge", LADDER)
    assert outside.current_drill == "wall_tap_hinge" and outside.ahead("dowel_hinge", LADDER)


def test_a_step_the_trainer_moved_the_athlete_to_passes_every_step_before_it(store, clock):
    """The trainer knows the athlete: moved up to the cable-pulled hinge, they stand there without
    mastering the two steps before; without the move they stand on the first."""
    train(store, "Ann", DAY1, clean=3)
    aid = store.list_athletes()[0]["id"]
    assert mastery(store, "Ann")[1].current_drill == "wall_tap_hinge"
    store.add_step_decision(aid, "dowel_hinge", "cable_pulled_hinge", "accepted", ())
    _, state = mastery(store, "Ann")
    assert state.current_drill == "cable_pulled_hinge" and state.suggestion is None


def test_the_stations_default_drill_counts_as_the_first_step(store, tmp_path):
    """A new station runs the plain hinge: its sessions count toward the wall-tap step (`also`), so
    20 clean plain-hinge reps on two days master it. A ladder without `also` counts them for nothing."""
    assert "hinge" in LADDER.steps[0].drills and LADDER.index("hinge") == 0
    train(store, "Ann", DAY1, clean=10, drill="hinge")
    train(store, "Ann", DAY1 + timedelta(days=1), clean=10, drill="hinge")
    met, state = mastery(store, "Ann")
    assert met.met and state.current_drill == "dowel_hinge"
    bare = tmp_path / "ladder.toml"
    bare.write_text(LADDER_WITHOUT_ALSO)
    plain = load_ladder(bare)
    aid = store.list_athletes()[0]["id"]
    tallies = tally_sessions(store.list_sessions(SessionFilter(athlete_id=aid), limit=100), store.athlete_reps(aid))
    assert plain.index("hinge") is None
    assert progression(plain, tallies, []).current_drill == "wall_tap_hinge"


def test_drills_are_offered_in_coaching_order():
    """Each step's drill, then the drills that count as it (the station's default drill right after
    the first step), then those off the ladder by name; without a ladder, all by name."""
    from device.analysis.ladder import coaching_order

    first, second = LADDER.steps[0], LADDER.steps[1]
    offered = ["zz_own_drill", second.drill, *first.also, "aa_own_drill", first.drill]
    assert coaching_order(offered, LADDER) == [first.drill, *first.also, second.drill, "aa_own_drill", "zz_own_drill"]
    assert coaching_order(offered, None) == sorted(offered)


def test_a_ladder_whose_also_names_an_unknown_drill_or_a_step_twice_is_refused(tmp_path):
    path = tmp_path / "ladder.toml"
    path.write_text(LADDER_WITHOUT_ALSO.replace('drill = "wall_tap_hinge"', 'drill = "wall_tap_hinge"\nalso = ["no_such_drill"]'))
    with pytest.raises(ConfigError, match="no_such_drill"):
        load_ladder(path)
    path.write_text(LADDER_WITHOUT_ALSO.replace('drill = "wall_tap_hinge"', 'drill = "wall_tap_hinge"\nalso = ["dowel_hinge"]'))
    with pytest.raises(ConfigError, match="dowel_hinge appear"):
        load_ladder(path)


LADDER_WITHOUT_ALSO = """
[mastery]
min_clean_reps = 20
min_days = 2
min_clean_share = 0.9
recent_sessions = 4

[[step]]
drill = "wall_tap_hinge"

[[step]]
drill = "dowel_hinge"
"""
