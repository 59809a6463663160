"""The trainer page's API and pages over a rep log that the real pipeline wrote from real clips."""
from __future__ import annotations

import csv
import io
import re
import sqlite3
import warnings

import pytest

from device.analysis.scoring import evaluate_clip, read_labels
from device.analysis.profiles import load_profile
from device.station.store import RepStore
from support.web import make_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from support.pipeline import PIPELINE_CLIPS as CLIPS


@pytest.fixture
def api(pipeline_db):
    store = RepStore(pipeline_db, readonly=True)
    yield TestClient(make_app(store))
    store.close()


def rows(db, sql, *params):
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute(sql, params).fetchall()


def test_history_shows_each_replayed_clip_with_the_reps_evaluate_counts(api, pipeline_db, clips_dir, clip_poses):
    labels = {label.clip: label for label in read_labels(clips_dir / "labels.csv")}
    items = api.get("/api/sessions").json()["items"]
    by_source = {i["source"]: i for i in items}
    assert set(by_source) == {f"file:{c}" for c in CLIPS}
    for clip in CLIPS:
        evaluated = evaluate_clip(labels[clip], list(clip_poses(clip)), load_profile("hinge"))
        item = by_source[f"file:{clip}"]
        assert item["reps"] == len(evaluated.reps) == labels[clip].reps
        assert item["clean_reps"] == sum(r.clean for r in evaluated.reps)
        assert item["athlete"] == "Alex" and item["ended_at"] is not None


def test_session_detail_and_export_match_the_log(api, pipeline_db):
    for session in rows(pipeline_db, "SELECT id FROM sessions"):
        sid = session["id"]
        detail = api.get(f"/api/sessions/{sid}").json()
        stored = rows(pipeline_db, "SELECT * FROM reps WHERE session_id = ? ORDER BY started_at", sid)
        assert [r["id"] for r in detail["reps"]] == [r["id"] for r in stored]
        for got, row in zip(detail["reps"], stored):
            faults = rows(pipeline_db, "SELECT name FROM faults WHERE rep_id = ? ORDER BY at", row["id"])
            assert [f["name"] for f in got["faults"]] == [f["name"] for f in faults]
            assert len(got["trace"]) >= 5  # a real rep's hip/knee trace for the chart
        exported = list(csv.DictReader(io.StringIO(api.get(f"/api/sessions/{sid}/export?format=csv").text)))
        assert [int(r["rep_id"]) for r in exported] == [r["id"] for r in stored]


def test_session_page_has_a_table_row_and_a_chart_per_real_rep(api, pipeline_db):
    squat = rows(pipeline_db, "SELECT id FROM sessions WHERE source = ?", "file:formfit_squat_side.mp4")[0]["id"]
    html = api.get(f"/sessions/{squat}").text
    reps = rows(pipeline_db, "SELECT COUNT(*) AS n FROM reps WHERE session_id = ?", squat)[0]["n"]
    assert reps == 3
    assert len(re.findall(r"<svg[^>]*class=\"[^\"]*chart", html)) == reps
    assert html.count("push the hips back, keep the shins vertical") >= reps  # the squat's cue on every rep


def test_labels_export_of_real_sessions_reads_back_in_evaluate(api, clips_dir, clip_poses, tmp_path):
    """The trainer's export is a labels.csv that `station evaluate` reads; with no corrections it
    says what the station saw, so evaluating the same clips against it agrees rep for rep."""
    response = api.get("/api/labels/export", params={"clips_only": True})
    assert response.status_code == 200
    labels_path = tmp_path / "labels.csv"
    labels_path.write_text(response.text)
    for clip in CLIPS:
        (tmp_path / clip).symlink_to(clips_dir / clip)
    labels = {label.clip: label for label in read_labels(labels_path)}
    assert set(labels) == set(CLIPS)
    assert labels["formfit_squat_side.mp4"].movement == "squat" and labels["formfit_squat_side.mp4"].reps == 3
    assert labels["crossfit_bb_deadlift_side_female_annot.mp4"].faults == frozenset()
    for clip, label in labels.items():
        result = evaluate_clip(label, list(clip_poses(clip)), load_profile("hinge"))
        assert result.reps_exact and result.movement_right and result.faults == label.faults, clip
