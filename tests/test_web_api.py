"""The trainer page's API and pages on a real SQLite rep log: what they show is what the log holds,
writes need the token, rejected writes change nothing, exports read back."""
from __future__ import annotations

import csv
import html
import io
import json
import sqlite3
import warnings
from collections import Counter
from datetime import datetime, timedelta

import pytest

from device.station.live import StationState
from device.station.store import RepStore
from web.auth import COOKIE
from web.exports import LABEL_COLUMNS
from support.web import ALL_FAULTS, AUTH, CLIP, TOKEN, Station, clip_session_id, make_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def client(app) -> TestClient:
    return TestClient(app, raise_server_exceptions=True)


def raw(db, sql, *params):
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute(sql, params).fetchall()


def snapshot_of_writes(db):
    """Everything a write could change."""
    return (
        [tuple(r) for r in raw(db, "SELECT * FROM corrections ORDER BY id")],
        [tuple(r) for r in raw(db, "SELECT id, athlete, profile FROM sessions ORDER BY id")],
        raw(db, "SELECT COUNT(*) FROM reps")[0][0], raw(db, "SELECT COUNT(*) FROM faults")[0][0],
    )


@pytest.fixture
def api(station: Station):
    return client(make_app(station.store, live=station.live, controls=station.controls))


# --- reading --------------------------------------------------------------------------------


def test_history_lists_sessions_newest_first_with_counts_from_the_log(api, filled_db):
    body = api.get("/api/sessions", params={"limit": 200}).json()
    rows = raw(filled_db, "SELECT id, started_at FROM sessions ORDER BY started_at DESC")
    assert body["total"] == len(rows) and [s["id"] for s in body["items"]] == [r["id"] for r in rows]
    for item in body["items"]:
        reps = raw(filled_db, "SELECT id FROM reps WHERE session_id = ?", item["id"])
        faulted = {r[0] for r in raw(filled_db, "SELECT DISTINCT r.id FROM reps r JOIN faults f ON f.rep_id = r.id WHERE r.session_id = ?", item["id"])}
        not_clean = faulted | {r[0] for r in raw(filled_db, "SELECT id FROM reps WHERE session_id = ? AND (judged = 0 OR "
                                                            "borderline != '[]' OR movement = 'squat')", item["id"])}
        counts = Counter(r[0] for r in raw(filled_db, "SELECT f.name FROM faults f JOIN reps r ON r.id = f.rep_id WHERE r.session_id = ?", item["id"]))
        assert item["reps"] == len(reps) and item["clean_reps"] == len(reps) - len(not_clean)
        assert item["fault_counts"] == dict(counts)
        assert item["clean_pct"] == (round(100 * item["clean_reps"] / item["reps"], 1) if reps else None)
    clip = next(i for i in body["items"] if i["source"] == f"file:{CLIP}")
    assert clip["clip"] == CLIP and clip["athlete"] == "Sam"
    assert [i["in_progress"] for i in body["items"]].count(True) == 1


def test_history_filters_by_date_and_drill_and_pages(api, filled_db):
    total = raw(filled_db, "SELECT COUNT(*) FROM sessions")[0][0]
    first, second = api.get("/api/sessions?limit=10").json(), api.get("/api/sessions?limit=10&offset=10").json()
    assert len(first["items"]) == 10 and not {i["id"] for i in first["items"]} & {i["id"] for i in second["items"]}
    for item in second["items"]:  # counts are per session on later pages too
        assert item["reps"] == raw(filled_db, "SELECT COUNT(*) FROM reps WHERE session_id = ?", item["id"])[0][0]
    drill = raw(filled_db, "SELECT profile, COUNT(*) FROM sessions GROUP BY profile ORDER BY 2 DESC")[0]
    only = api.get("/api/sessions", params={"profile": drill[0], "limit": 200}).json()
    assert only["total"] == drill[1] and {i["profile"] for i in only["items"]} == {drill[0]}
    week_ago = (datetime.now() - timedelta(days=7)).strftime("%Y-%m-%d")
    recent = api.get("/api/sessions", params={"since": week_ago, "limit": 200}).json()
    cutoff = datetime.strptime(week_ago, "%Y-%m-%d").timestamp()
    assert recent["total"] == raw(filled_db, "SELECT COUNT(*) FROM sessions WHERE started_at >= ?", cutoff)[0][0] < total
    page = api.get("/history", params={"date_from": week_ago, "drill": ""})
    assert page.status_code == 200 and page.text.count('class="session-row"') == min(recent["total"], 20)
    assert api.get("/history?page=2").text.count('class="session-row"') == min(total - 20, 20)


def test_session_detail_is_what_the_log_holds(api, filled_db):
    sid = clip_session_id(filled_db)
    detail = api.get(f"/api/sessions/{sid}").json()
    reps = raw(filled_db, "SELECT * FROM reps WHERE session_id = ? ORDER BY started_at", sid)
    assert [r["id"] for r in detail["reps"]] == [r["id"] for r in reps]
    for got, row in zip(detail["reps"], reps):
        faults = raw(filled_db, "SELECT name, cue, at FROM faults WHERE rep_id = ? ORDER BY at", row["id"])
        assert [(f["name"], f["cue"]) for f in got["faults"]] == [(f["name"], f["cue"]) for f in faults]
        assert all(0 <= f["t_rel_s"] <= got["duration_s"] + 1e-6 for f in got["faults"])
        assert got["trace"] == json.loads(row["trace"]) and got["peak_hip_flexion_deg"] == row["peak_hip_flexion_deg"]
    names = [f["name"] for r in detail["reps"] for f in r["faults"]]
    clean = sum(1 for r in detail["reps"] if not r["faults"] and not r["borderline"] and r["judged"] and r["movement"] != "squat")
    assert clean == sum(1 for r in detail["reps"] if r["verdict"] == "clean")
    verdict = detail["verdict"]
    assert verdict["reps"] == len(reps) and verdict["clean_reps"] == clean
    assert verdict["clean_pct"] == pytest.approx(100 * clean / len(reps), abs=0.05)
    assert Counter(names)[verdict["most_common_fault"]] == max(Counter(names).values())
    assert verdict["mean_lowering_s"] == pytest.approx(sum(r["lowering_s"] for r in reps) / len(reps))
    assert detail["corrected"] == verdict  # no corrections yet
    assert api.get("/api/sessions/999999").status_code == 404


def test_non_finite_measures_travel_as_null(api, filled_db):
    sid = clip_session_id(filled_db)
    [rep] = [r for r in api.get(f"/api/sessions/{sid}").json()["reps"] if r["knee_flexion_at_bottom_deg"] == 0.0]
    assert rep["hinge_ratio"] is None  # stored as inf: the knee did not bend at all
    rows = list(csv.DictReader(io.StringIO(api.get(f"/api/sessions/{sid}/export?format=csv").text)))
    assert next(r for r in rows if int(r["rep_id"]) == rep["id"])["hinge_ratio"] == ""
    page = api.get(f"/sessions/{sid}")
    assert page.status_code == 200 and "inf" not in page.text.lower().replace("info", "")


def test_session_exports_read_back(api, filled_db):
    sid = clip_session_id(filled_db)
    response = api.get(f"/api/sessions/{sid}/export", params={"format": "csv"})
    assert response.headers["content-type"].startswith("text/csv") and "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    reps = raw(filled_db, "SELECT id FROM reps WHERE session_id = ? ORDER BY started_at", sid)
    assert [int(r["rep_id"]) for r in rows] == [r[0] for r in reps]
    for row in rows:
        stored = sorted(r[0] for r in raw(filled_db, "SELECT name FROM faults WHERE rep_id = ?", int(row["rep_id"])))
        assert sorted(filter(None, row["faults"].split(";"))) == stored
    as_json = api.get(f"/api/sessions/{sid}/export?format=json").json()
    assert [r["id"] for r in as_json["reps"]] == [r[0] for r in reps] and as_json["session"]["id"] == sid


def test_reps_export_covers_exactly_the_date_range(api, filled_db):
    since, until = datetime.now() - timedelta(days=12), datetime.now() - timedelta(days=2)
    expected = [r[0] for r in raw(filled_db, "SELECT id FROM reps WHERE started_at >= ? AND started_at < ? ORDER BY started_at, id",
                                  since.timestamp(), until.timestamp())]
    assert expected, "the fixture should have reps in this range"
    params = {"since": since.isoformat(), "until": until.isoformat()}
    rows = list(csv.DictReader(io.StringIO(api.get("/api/reps/export", params=params).text)))
    assert [int(r["rep_id"]) for r in rows] == expected
    body = api.get("/api/reps/export", params={**params, "format": "json"}).json()
    assert [r["id"] for r in body["reps"]] == expected
    unix = api.get("/api/reps/export", params={"since": since.timestamp(), "until": until.timestamp()})
    assert [int(r["rep_id"]) for r in csv.DictReader(io.StringIO(unix.text))] == expected
    backwards = api.get("/api/reps/export", params={"since": params["until"], "until": params["since"]})
    assert backwards.status_code == 400 and "until must be after since" in backwards.json()["detail"]


# --- corrections and labels -------------------------------------------------------------------


def labels(api, **params):
    text = api.get("/api/labels/export", params=params).text
    return list(csv.DictReader(io.StringIO(text))), text.splitlines()[0]


def test_corrections_sit_beside_the_verdict_and_flow_into_the_labels(api, filled_db):
    sid = clip_session_id(filled_db)
    reps = api.get(f"/api/sessions/{sid}").json()["reps"]
    before, _ = labels(api, clips_only=True)
    [row] = [r for r in before if f"session {sid}," in r["source_labels"]]
    assert row["clip"] == CLIP and int(row["reps"]) == len(reps)
    assert set(row["faults"].split(";")) == {f["name"] for r in reps for f in r["faults"]}

    faulted = next(r for r in reps if r["faults"])
    clean = next(r for r in reps[1:] if not r["faults"])
    missed = next(f for f in ALL_FAULTS if f not in row["faults"].split(";"))
    made = [
        api.post(f"/api/reps/{reps[0]['id']}/corrections", json={"kind": "not_a_rep", "note": "walked in"}, headers=AUTH),
        *[api.post(f"/api/reps/{r['id']}/corrections", json={"kind": "false_alarm", "fault": f["name"]}, headers=AUTH)
          for r in reps for f in r["faults"]],
        api.post(f"/api/reps/{clean['id']}/corrections", json={"kind": "missed_fault", "fault": missed, "note": "bar drifted"}, headers=AUTH),
    ]
    assert all(r.status_code == 201 for r in made), [r.text for r in made]
    # the station's verdict is untouched
    assert [f["name"] for f in api.get(f"/api/reps/{faulted['id']}").json()["faults"]] == [f["name"] for f in faulted["faults"]]
    assert raw(filled_db, "SELECT COUNT(*) FROM faults WHERE rep_id = ?", faulted["id"])[0][0] == len(faulted["faults"])
    detail = api.get(f"/api/sessions/{sid}").json()
    assert detail["verdict"]["reps"] == len(reps) and detail["corrected"]["reps"] == len(reps) - 1
    assert detail["corrected"]["fault_counts"] == {missed: 1}

    after, header = labels(api, clips_only=True)
    [row] = [r for r in after if f"session {sid}," in r["source_labels"]]
    assert header.split(",") == list(LABEL_COLUMNS)
    assert int(row["reps"]) == len(reps) - 1 and row["faults"] == missed
    assert row["movement"] in ("hinge", "squat") and row["view"] == "side"
    assert "walked in" in row["notes"] and "bar drifted" in row["notes"] and "athlete Sam" in row["notes"]

    correction_id = made[0].json()["id"]
    assert api.delete(f"/api/corrections/{correction_id}", headers=AUTH).status_code == 204
    assert api.delete(f"/api/corrections/{correction_id}", headers=AUTH).status_code == 404
    assert api.get(f"/api/sessions/{sid}").json()["corrected"]["reps"] == len(reps)


def test_labels_use_the_format_station_evaluate_reads(api, clip_labels, clips_dir):
    with (clips_dir / "labels.csv").open() as fh:
        shared_header = fh.readline().strip().split(",")
    rows, header = labels(api)
    assert header.split(",") == shared_header
    assert CLIP in clip_labels  # the fixture's clip session names a real clip
    assert any(r["clip"] == CLIP for r in rows) and all(r["clip"] for r in rows)
    for row in rows:
        assert row["movement"] in ("hinge", "squat") and int(row["reps"]) >= 0
        assert set(filter(None, row["faults"].split(";"))) <= set(ALL_FAULTS)
        assert row["drill"] and f"drill {row['drill']}" in row["source_labels"]  # judged under the session's drill


# --- security ------------------------------------------------------------------------------------


def test_writes_need_the_configured_token(station, filled_db):
    rep_id = station.store.session_reps(station.session_id)[0]["id"]
    body = {"kind": "not_a_rep"}
    before = snapshot_of_writes(filled_db)
    no_token = client(make_app(station.store, token=None, live=station.live, controls=station.controls))
    refused = no_token.post(f"/api/reps/{rep_id}/corrections", json=body, headers=AUTH)
    assert refused.status_code == 403 and "web.token" in refused.json()["detail"]
    with_token = client(make_app(station.store, live=station.live, controls=station.controls))
    for headers in ({}, {"Authorization": "Bearer wrong-token-000"}, {"Authorization": TOKEN}):
        response = with_token.post(f"/api/reps/{rep_id}/corrections", json=body, headers=headers)
        assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    assert with_token.put("/api/settings", json={"buzzer_enabled": False}).status_code == 401
    assert with_token.delete("/api/sessions/1").status_code == 401
    assert snapshot_of_writes(filled_db) == before and station.controls.calls == []
    assert with_token.post(f"/api/reps/{rep_id}/corrections", json=body, headers=AUTH).status_code == 201
    assert with_token.get("/api/sessions").status_code == 200  # reading is open unless configured otherwise


def test_a_short_token_or_token_less_private_reading_is_a_config_error(station):
    from device.errors import ConfigError

    with pytest.raises(ConfigError, match="at least 8"):
        make_app(station.store, token="short")
    with pytest.raises(ConfigError, match="read_requires_token"):
        make_app(station.store, token=None, read_requires_token=True)


@pytest.mark.parametrize("path, body, status, message", [
    ("/api/reps/{rep}/corrections", {"kind": "rewrite_history"}, 422, "kind"),
    ("/api/reps/{rep}/corrections", {"kind": "false_alarm"}, 422, "needs the fault"),
    ("/api/reps/{rep}/corrections", {"kind": "not_a_rep", "fault": "rounded_back"}, 422, "takes no fault"),
    ("/api/reps/{rep}/corrections", {"kind": "missed_fault", "fault": "bent_elbows"}, 422, "fault"),
    ("/api/reps/{rep}/corrections", {"kind": "false_alarm", "fault": "too_fast"}, 400, "no too_fast fault"),
    ("/api/reps/{rep}/corrections", {"kind": "missed_fault", "fault": "{raised}"}, 400, "already has"),
    ("/api/reps/{rep}/corrections", {"kind": "not_a_rep", "note": "bad\u0000note"}, 422, "control"),
    ("/api/reps/{rep}/corrections", {"kind": "not_a_rep", "extra": 1}, 422, "extra"),
    ("/api/reps/99999999/corrections", {"kind": "not_a_rep"}, 404, "does not exist"),
    ("/api/reps/{rep}/corrections", {"kind": "not_a_rep", "note": "x" * 301}, 422, "300"),
    ("/api/sessions/{session}/athlete", {"athlete": "y" * 61}, 422, "60"),
    ("/api/sessions/{session}/athlete", {"athlete": "Sam\nDROP"}, 422, "control"),
    ("/api/sessions/99999999/athlete", {"athlete": "Sam"}, 404, "does not exist"),
    ("/api/settings", {"profile": "backflip"}, 400, "unknown drill profile"),
    ("/api/settings", {}, 422, "at least one"),
    ("/api/settings", {"buzzer_enabled": "loud"}, 422, "bool"),
])
def test_bad_input_is_a_clear_4xx_and_writes_nothing(api, filled_db, path, body, status, message):
    sid = clip_session_id(filled_db)
    rep = next(r for r in api.get(f"/api/sessions/{sid}").json()["reps"] if len(r["faults"]) == 1 and r["faults"][0]["name"] != "too_fast")
    path = path.format(rep=rep["id"], session=sid)
    body = json.loads(json.dumps(body).replace("{raised}", rep["faults"][0]["name"]))
    before = snapshot_of_writes(filled_db)
    method = api.put if path.endswith(("athlete", "settings")) else api.post
    response = method(path, json=body, headers=AUTH)
    assert response.status_code == status, response.text
    assert message in json.dumps(response.json()["detail"])
    assert snapshot_of_writes(filled_db) == before


def test_a_duplicate_correction_is_refused(api, filled_db):
    rep_id = raw(filled_db, "SELECT id FROM reps LIMIT 1")[0][0]
    assert api.post(f"/api/reps/{rep_id}/corrections", json={"kind": "not_a_rep"}, headers=AUTH).status_code == 201
    again = api.post(f"/api/reps/{rep_id}/corrections", json={"kind": "not_a_rep"}, headers=AUTH)
    assert again.status_code == 409 and "already has this correction" in again.json()["detail"]
    assert raw(filled_db, "SELECT COUNT(*) FROM corrections")[0][0] == 1


def test_private_reading_asks_for_the_token_once_per_phone(station, filled_db):
    app = make_app(station.store, read_requires_token=True, live=station.live, controls=station.controls)
    api = client(app)
    assert api.get("/api/sessions").status_code == 401
    assert api.get("/api/sessions", headers=AUTH).status_code == 200
    page = api.get("/history?page=2", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login?next=/history%3Fpage%3D2"
    wrong = api.post("/login", data={"token": "not-the-token", "next": "/history"}, follow_redirects=False)
    assert wrong.status_code == 401 and COOKIE not in wrong.cookies
    signed = api.post("/login", data={"token": TOKEN, "next": "/history?page=2"}, follow_redirects=False)
    assert signed.status_code == 303 and signed.headers["location"] == "/history?page=2&saved=signed_in"
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and TOKEN not in cookie
    assert api.get("/history").status_code == 200 and api.get("/api/sessions").status_code == 200  # the cookie
    offsite = api.post("/login", data={"token": TOKEN, "next": "//evil.example/x"}, follow_redirects=False)
    assert offsite.headers["location"].startswith("/?saved=")
    api.post("/logout")
    assert api.get("/api/sessions").status_code == 401


def test_a_read_only_rep_log_refuses_every_change(filled_db):
    before = snapshot_of_writes(filled_db)
    with RepStore(filled_db, readonly=True) as store:
        api = client(make_app(store))
        rep_id = raw(filled_db, "SELECT id FROM reps LIMIT 1")[0][0]
        for response in (api.post(f"/api/reps/{rep_id}/corrections", json={"kind": "not_a_rep"}, headers=AUTH),
                         api.put("/api/sessions/1/athlete", json={"athlete": "Jo"}, headers=AUTH),
                         api.delete("/api/sessions/1", headers=AUTH)):
            assert response.status_code == 409 and "read-only" in response.json()["detail"]
        settings = api.put("/api/settings", json={"buzzer_enabled": False}, headers=AUTH)
        assert settings.status_code == 409
        assert api.get("/").status_code == 200 and "No station running here" in api.get("/").text
        assert api.get("/api/live").status_code == 409
    assert snapshot_of_writes(filled_db) == before


def test_settings_drive_the_running_station(api, station, filled_db):
    got = api.get("/api/settings").json()
    assert got["station_running"] and got["profile"] == "dowel_hinge" and got["buzzer_enabled"] is True
    assert got["can_write"] is False and got["writes_enabled"] is True
    changed = api.put("/api/settings", json={"profile": "wall_tap_hinge", "buzzer_enabled": False, "athlete": " Jo "}, headers=AUTH)
    assert changed.status_code == 200, changed.text
    assert changed.json()["profile"] == "wall_tap_hinge" and changed.json()["buzzer_enabled"] is False
    assert changed.json()["athlete"] == "Jo" and changed.json()["can_write"] is True
    assert station.controls.calls == [("profile", "wall_tap_hinge"), ("buzzer", False), ("athlete", "Jo")]
    assert raw(filled_db, "SELECT athlete FROM sessions WHERE id = ?", station.session_id)[0][0] == "Jo"


def test_athlete_label_for_a_past_session(api, filled_db):
    sid = raw(filled_db, "SELECT id FROM sessions ORDER BY started_at LIMIT 1")[0][0]
    assert api.put(f"/api/sessions/{sid}/athlete", json={"athlete": "Alex R."}, headers=AUTH).json()["athlete"] == "Alex R."
    assert raw(filled_db, "SELECT athlete FROM sessions WHERE id = ?", sid)[0][0] == "Alex R."
    assert api.put(f"/api/sessions/{sid}/athlete", json={"athlete": "  "}, headers=AUTH).json()["athlete"] is None
    assert raw(filled_db, "SELECT athlete FROM sessions WHERE id = ?", sid)[0][0] is None


def test_exported_text_cannot_run_as_a_spreadsheet_formula(api, filled_db):
    sid = clip_session_id(filled_db)
    assert api.put(f"/api/sessions/{sid}/athlete", json={"athlete": "=HYPERLINK(\"x\")"}, headers=AUTH).status_code == 200
    rows = list(csv.DictReader(io.StringIO(api.get(f"/api/sessions/{sid}/export").text)))
    assert {r["athlete"] for r in rows} == {"'=HYPERLINK(\"x\")"}
    assert api.get(f"/api/sessions/{sid}").json()["session"]["athlete"] == "=HYPERLINK(\"x\")"  # stored as typed


def test_deleting_a_session_takes_its_reps_but_never_the_running_one(api, station, filled_db):
    old = raw(filled_db, "SELECT id FROM sessions ORDER BY started_at LIMIT 1")[0][0]
    assert api.delete(f"/api/sessions/{station.session_id}", headers=AUTH).status_code == 409
    assert api.delete(f"/api/sessions/{old}", headers=AUTH).status_code == 204
    assert raw(filled_db, "SELECT COUNT(*) FROM reps WHERE session_id = ?", old)[0][0] == 0
    assert api.get(f"/api/sessions/{old}").status_code == 404


def test_health_reports_the_log_the_live_loop_and_the_checks(station, filled_db):
    checks = [{"name": "camera", "ok": True, "detail": "picamera"}, {"name": "disk", "ok": False, "detail": "40 MB free"}]
    api = client(make_app(station.store, live=station.live, controls=station.controls, checks=lambda: checks))
    quick = api.get("/api/health").json()
    assert quick["status"] == "ok" and quick["checks"] is None
    assert quick["db"]["reps"] == raw(filled_db, "SELECT COUNT(*) FROM reps")[0][0] and quick["db"]["readonly"] is False
    assert quick["live"]["state"] == "tracking" and quick["live"]["fps"] == pytest.approx(14.8)
    deep = api.get("/api/health?deep=true").json()
    assert deep["db"]["integrity"] == "ok" and deep["checks"] == checks and deep["status"] == "degraded"
    station.live.update(state=StationState.ERROR, error="camera unplugged")
    assert api.get("/api/health").json()["status"] == "error"


def test_live_snapshot_carries_the_last_rep(api, station):
    live = api.get("/api/live").json()
    last = station.store.session_reps(station.session_id)[-1]
    assert live["session_reps"] == station.store.rep_count(station.session_id)
    assert live["last_rep"]["id"] == last["id"] and live["state_label"] == "Tracking"
    assert api.get("/api/live/preview.jpg").status_code == 404  # nothing encoded yet
    assert station.live.preview_wanted()  # ...but asking tells the loop to start
    station.live.set_preview(b"\xff\xd8fake-jpeg\xff\xd9")
    shot = api.get("/api/live/preview.jpg")
    assert shot.status_code == 200 and shot.headers["content-type"] == "image/jpeg" and shot.headers["cache-control"] == "no-store"


# --- pages ---------------------------------------------------------------------------------------


def test_pages_render_from_the_log_and_load_nothing_from_elsewhere(api, filled_db):
    import re

    sid = clip_session_id(filled_db)
    n_reps = raw(filled_db, "SELECT COUNT(*) FROM reps WHERE session_id = ?", sid)[0][0]
    n_faults = raw(filled_db, "SELECT COUNT(*) FROM faults f JOIN reps r ON r.id = f.rep_id WHERE r.session_id = ?", sid)[0][0]
    session = api.get(f"/sessions/{sid}").text
    assert session.count('<tr class="rep-row"') == n_reps and session.count('<svg class="chart"') == n_reps
    assert session.count('class="fault-mark"') == n_faults
    for path in ("/", "/history", f"/sessions/{sid}", "/settings", "/login", "/api/docs"):
        response = api.get(path)
        assert response.status_code == 200, path
        assert "default-src 'self'" in response.headers["content-security-policy"]
        external = re.findall(r'(?:src|href|action)="((?:https?:)?//[^"]*)"', response.text)
        assert external == [], f"{path} loads {external}"
        assert "<script>" not in response.text and " style=" not in response.text  # nothing inline: CSP allows none


def test_forms_work_without_javascript_and_reject_cleanly(station, filled_db):
    api = client(make_app(station.store, live=station.live, controls=station.controls))
    sid = clip_session_id(filled_db)
    rep = station.store.session_reps(sid)[1]
    anonymous = api.post(f"/reps/{rep['id']}/corrections", data={"kind": "not_a_rep"}, follow_redirects=False)
    assert anonymous.status_code == 401 and "Sign in" in anonymous.text
    api.post("/login", data={"token": TOKEN})
    done = api.post(f"/reps/{rep['id']}/corrections", data={"kind": "not_a_rep", "next": f"/sessions/{sid}"}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == f"/sessions/{sid}?saved=correction#rep-{rep['rep_index']}"
    assert [c["kind"] for c in station.store.get_rep(rep["id"])["corrections"]] == ["not_a_rep"]
    page = api.get(done.headers["location"])
    assert "Correction saved" in page.text and "not a rep (trainer)" in page.text
    before = snapshot_of_writes(filled_db)
    bad = api.post(f"/reps/{rep['id']}/corrections", data={"kind": "missed_fault", "fault": "not_a_fault"})
    assert bad.status_code == 400 and "<html" in bad.text, bad.text
    assert "Fault: Input should be" in bad.text
    assert api.post(f"/sessions/{sid}/delete", data={}).status_code == 400
    assert api.post("/settings", data={"buzzer": "loud"}).status_code == 400
    assert snapshot_of_writes(filled_db) == before
    assert api.post("/settings", data={"profile": "wall_tap_hinge", "buzzer": "off"}, follow_redirects=False).status_code == 303
    assert station.controls.calls == [("profile", "wall_tap_hinge"), ("buzzer", False)]


def test_an_oversized_body_is_refused_before_it_is_read(api, filled_db):
    rep_id = raw(filled_db, "SELECT id FROM reps LIMIT 1")[0][0]
    response = api.post(f"/api/reps/{rep_id}/corrections", content=b"{" + b" " * 100_000 + b"}", headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 413 and raw(filled_db, "SELECT COUNT(*) FROM corrections")[0][0] == 0


def test_a_rep_shows_each_faults_evidence_and_its_borderline_faults(tmp_path):
    """The API and the session page say why a fault buzzed (value, limit, margin, noise), show the
    faults that crossed their limit only within the noise, and what a side view cannot judge."""
    from fastapi.testclient import TestClient

    from device.analysis.vocabulary import Fault, FaultEvent, Rep
    from device.station.store import RepStore
    from support.web import make_app

    rep = Rep(index=1, start_time=1.0, bottom_time=2.0, end_time=3.5, lowering_s=1.0, rising_s=1.5,
              peak_hip_flexion_deg=95.0, knee_flexion_at_bottom_deg=30.0, trunk_angle_at_bottom_deg=60.0,
              hip_shift_at_bottom=0.3, hinge_ratio=3.2, lockout_reached=True, side="left",
              faults=[FaultEvent(Fault.HEAD_NOT_NEUTRAL, "long neck", 1.8, 44.9, 25.0, 1, margin=19.9, noise=6.5,
                                 quantity="head_offset_deg")],
              borderline=[FaultEvent(Fault.OVEREXTENDED_LOCKOUT, "stand tall", 3.2, 18.3, 15.0, 1, margin=3.3,
                                     noise=6.8, borderline=True, quantity="hip_flexion_deg")],
              trace=[(1.0 + i * 0.1, 10.0 + i, 5.0) for i in range(20)])
    with RepStore(tmp_path / "s.db") as store:
        sid = store.start_session(1000.0, "deadlift", "camera")
        store.add_rep(sid, rep, wall_offset=1000.0)
    with RepStore(tmp_path / "s.db") as store:
        client = TestClient(make_app(store))
        (out,) = client.get(f"/api/sessions/{sid}").json()["reps"]
        page = html.unescape(client.get(f"/sessions/{sid}").text)
    (fault,) = out["faults"]
    assert (fault["value"], fault["threshold"], fault["margin"], fault["noise"]) == (44.9, 25.0, 19.9, 6.5)
    (border,) = out["borderline"]
    assert (border["name"], border["value"], border["threshold"], border["margin"], border["noise"]) == \
        ("overextended_lockout", 18.3, 15.0, 3.3, 6.8)
    # in the coach's words, with the unit: what was seen, what the movement asks, how far past the noise
    assert "head 45° out of line with the back — a long neck stays within 25°" in page
    assert "20° past the limit; the reading's own noise is 6°" in page
    assert "borderline, not buzzed" in page and "leaning back 18° past straight at the finish" in page
    assert 'id="what-2d-cannot-see"' in page


def test_a_rep_not_judged_or_looking_like_a_squat_is_never_shown_as_clean(tmp_path):
    """One verdict per rep, on the page as in the log: a rep filmed off side-on says it was not
    judged, a squat-looking rep without a buzzed fault says it is not clean; only a judged hinge
    without a fault reads "clean"."""
    from device.analysis.vocabulary import Rep

    def rep(index: int, **changes) -> Rep:
        made = Rep(index=index, start_time=index * 10.0, bottom_time=index * 10.0 + 1.5, end_time=index * 10.0 + 3.0,
                   lowering_s=1.5, rising_s=1.5, peak_hip_flexion_deg=95.0, knee_flexion_at_bottom_deg=25.0,
                   trunk_angle_at_bottom_deg=70.0, hip_shift_at_bottom=0.3, hinge_ratio=3.8, lockout_reached=True,
                   side="left", trace=[(index * 10.0 + i * 0.1, 10.0 + i, 5.0 + i) for i in range(30)])
        for name, value in changes.items():
            setattr(made, name, value)
        return made

    with RepStore(tmp_path / "s.db") as store:
        sid = store.start_session(1000.0, "hinge", "camera")
        for made in (rep(1), rep(2, judged=False), rep(3, movement="squat", knee_flexion_at_bottom_deg=126.0)):
            store.add_rep(sid, made, wall_offset=1000.0)
        page = client(make_app(store))
        verdicts = [r["verdict"] for r in page.get(f"/api/sessions/{sid}").json()["reps"]]
        html = page.get(f"/sessions/{sid}").text
    assert verdicts == ["clean", "not judged", "borderline"]
    assert "Clean rep" not in html
    cards = html.split('<article class="card rep')[1:]
    assert len(cards) == 3
    assert 'class="clean"' in cards[0] and "not judged" not in cards[0]
    assert "not judged (camera not side-on)" in cards[1] and 'class="clean"' not in cards[1]
    assert "not clean" in cards[2] and 'class="clean"' not in cards[2]
    assert "Not judged: the load's path" in html  # load_away_from_body is off: the page says so, not "clean"
