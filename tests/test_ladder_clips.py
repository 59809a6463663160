"""The drill ladder on reps the live loop logged from real clips: two athletes over three days,
mastery reached by one and not by the other, the suggestion accepted and kept."""
from __future__ import annotations

import warnings
from datetime import datetime

from device.analysis.ladder import judge, load_ladder, tally_sessions
from device.contract.records import SessionFilter
from device.station.store import RepStore
from support.ladder import DAY1, DRILL
from support.web import AUTH, make_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def test_real_clips_replayed_over_days_reach_the_rule_for_one_athlete_only(ladder_log, tmp_path):
    source, ladder_file = ladder_log
    db = tmp_path / "station.db"
    db.write_bytes(source.read_bytes())
    ladder = load_ladder(ladder_file)
    with RepStore(db) as store, TestClient(make_app(store, ladder=ladder, page_cpu_share=None)) as api:
        athletes = {a["name"]: a for a in api.get("/api/athletes").json()["items"]}
        assert set(athletes) == {"Ann", "Ben"}
        assert athletes["Ann"]["sessions"] == 4 and athletes["Ben"]["sessions"] == 4
        ann = api.get(f"/api/athletes/{athletes['Ann']['id']}").json()
        days = sorted({datetime.fromtimestamp(s["started_at"]).date() for s in ann["sessions"]})
        assert days[0] == DAY1.date() and len(days) == 3
        assert {s["drill"] for s in ann["sessions"]} == {DRILL}
        # mastered: she stands on the next step, and the trainer is asked to confirm it
        assert ann["current_step"] == "deadlift" and ann["ready_for"] == "deadlift"
        assert ann["suggestion"]["evidence"] == [s["session_id"] for s in ann["sessions"]]
        step = ann["steps"][0]["mastery"]
        assert step["met"] and step["clean_reps"] == 4 and step["clean_share"] == 1.0 and step["days"] == 3

        ben = api.get(f"/api/athletes/{athletes['Ben']['id']}").json()
        mastery = ben["steps"][0]["mastery"]
        assert ben["current_step"] == DRILL and ben["ready_for"] is None and not mastery["met"]
        assert mastery["clean_reps"] == 3 and mastery["reps"] == 4  # three clean clips, then the rounded one
        assert mastery["missing"] == ["1 more clean rep (has 3 of 4)", "clean share of 90% (has 75%)",
                                      "no rounded back rep in the latest session (had 1)"]
        assert ben["faults"][0]["name"] in ("rounded_back", "head_not_neutral") and ben["faults"][0]["cue"]

        # Ann's rule was met only on the third day: before it she had three clean reps over two days
        day3 = datetime.combine(days[2], datetime.min.time()).timestamp()
        before = store.list_sessions(SessionFilter(athlete_id=athletes["Ann"]["id"], until=day3))
        early = judge(DRILL, ladder.steps[0].mastery, tally_sessions(before, store.athlete_reps(athletes["Ann"]["id"])))
        assert len(before) == 3 and not early.met and early.missing == ("1 more clean rep (has 3 of 4)",)
        decision = {"drill": DRILL, "next_drill": "deadlift", "decision": "accepted"}
        assert api.post(f"/api/athletes/{athletes['Ann']['id']}/decisions", json=decision, headers=AUTH).status_code == 201
        after = api.get(f"/api/athletes/{athletes['Ann']['id']}").json()
        assert after["current_step"] == "deadlift" and after["ready_for"] is None
        assert after["decisions"][0]["evidence"] == ann["suggestion"]["evidence"]
