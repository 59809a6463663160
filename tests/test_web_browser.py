"""The trainer page in a real headless Chromium (Debian's /usr/bin/chromium through its
chromedriver; nothing is downloaded) at phone size, against the page served on loopback as
`station run` serves it: a real rep log, a real LiveState driven from the test thread.

Screenshots land in test-output/screenshots/.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from device.station.live import StationState
from device.station.store import RepStore
from web.page_server import PageServer
from web.templating import times
from support.web import TOKEN, add_live_rep, clip_session_id, make_app
from support.browser import PHONE, every_width, screenshot, text, wait_for
from support.ladder import DRILL


@pytest.fixture
def served(station):
    server = PageServer(make_app(station.store, live=station.live, controls=station.controls))
    server.start()
    yield server.base_url
    server.stop()


def test_history_page_lists_the_sessions_of_the_log(browser, served, station):
    from selenium.webdriver.common.by import By

    browser.get(f"{served}/history")
    rows = browser.find_elements(By.CSS_SELECTOR, "li.session-row")
    total = station.store.count_sessions()
    assert len(rows) == min(total, 20)
    newest = station.store.list_sessions(limit=1)[0]
    assert rows[0].get_attribute("data-session-id") == str(newest["id"])
    assert f"{total} sessions" in text(browser, "#session-count")
    assert browser.execute_script("return document.documentElement.scrollWidth") <= PHONE["width"]  # no sideways scroll
    screenshot(browser, "history")
    browser.find_element(By.CSS_SELECTOR, "a[rel=next]").click()
    wait_for(lambda: "page=2" in browser.current_url, "the second page")
    assert len(browser.find_elements(By.CSS_SELECTOR, "li.session-row")) == min(total - 20, 20)


def test_session_page_renders_the_rep_table_and_a_chart_per_rep(browser, served, station, filled_db):
    from selenium.webdriver.common.by import By

    sid = clip_session_id(filled_db)
    reps = station.store.session_reps(sid)
    browser.get(f"{served}/sessions/{sid}")
    rows = browser.find_elements(By.CSS_SELECTOR, "#rep-table tr.rep-row")
    assert [r.get_attribute("data-rep-id") for r in rows] == [str(r["id"]) for r in reps]
    # at a glance: each rep's detail is folded, so the page is the table and one line per rep
    assert not browser.find_elements(By.CSS_SELECTOR, "details.rep-detail[open]")
    assert not any(browser.execute_script("return arguments[0].checkVisibility()", c)
                   for c in browser.find_elements(By.CSS_SELECTOR, "svg.chart"))
    screenshot(browser, "session-folded", full_page=True)
    # a folded rep is its summary line (wrapped at most once on a phone), not a chart card
    heights = [a.rect["height"] for a in browser.find_elements(By.CSS_SELECTOR, "article.rep")]
    assert len(heights) == len(reps) and max(heights) < 90, heights
    for summary in browser.find_elements(By.CSS_SELECTOR, "details.rep-detail > summary"):
        browser.execute_script("arguments[0].scrollIntoView()", summary)
        summary.click()  # the trainer taps a rep to see its chart and evidence
    charts = browser.find_elements(By.CSS_SELECTOR, "svg.chart")
    assert len(charts) == len(reps)
    for chart, rep in zip(charts, reps):
        box = chart.rect
        assert box["width"] > 300 and box["height"] > 100  # laid out full width on the phone, not collapsed
        hip = chart.find_element(By.CSS_SELECTOR, "polyline.hip")
        knee = chart.find_element(By.CSS_SELECTOR, "polyline.knee")
        assert browser.execute_script("return arguments[0].getTotalLength()", hip) > 100  # a drawn line
        assert browser.execute_script("return arguments[0].getBBox().height", knee) > 0
        marks = chart.find_elements(By.CSS_SELECTOR, "g.fault-mark")
        assert sorted(m.get_attribute("data-fault") for m in marks) == sorted(f["name"] for f in rep["faults"])
    first_fault = next(f for r in reps for f in r["faults"])
    table = text(browser, "#rep-table")
    assert "past" not in table and " against " not in table  # one line per fault, the detail folded below
    line = browser.find_element(By.CSS_SELECTOR, "#rep-table .fault-item .says").text
    assert " — " in line and any(unit in line for unit in "°×s%"), line  # a quantity with its unit and the limit
    assert first_fault["cue"] in text(browser, f"#rep-{next(r for r in reps if r['faults'])['rep_index']} .fault-list")
    assert browser.execute_script("return document.documentElement.scrollWidth") <= PHONE["width"]  # table fits
    screenshot(browser, "session")
    screenshot(browser, "session-full", full_page=True)


def test_live_page_follows_the_station_without_reloading(browser, served, station):
    from selenium.webdriver.common.by import By

    browser.get(f"{served}/")
    assert text(browser, "[data-live=state_label]") == "Tracking"
    before = int(text(browser, "[data-live=session_reps]"))
    assert before == station.store.rep_count(station.session_id)
    browser.execute_script("window.__sameDocument = true")
    wait_for(lambda: station.live.preview_wanted(), "the page to ask for preview frames")

    station.live.update(state=StationState.TURN_SIDEWAYS, cue="turn sideways")
    wait_for(lambda: text(browser, "[data-live=state_label]") == "Turn sideways", "the state to change")
    assert text(browser, "p.cue") == "turn sideways"

    rep_id = add_live_rep(station, "squatted")  # a rep lands: committed, then the live state bumps
    wait_for(lambda: text(browser, "[data-live=session_reps]") == str(before + 1), "the rep count to go up")
    rep = station.store.get_rep(rep_id)
    wait_for(lambda: f"Rep {rep['rep_index']}" in text(browser, "[data-live=last_rep_line]"), "the last rep to show")
    # in the session page's words (its table's "Hip÷knee" column, "3.3×"), never a bare "ratio"
    ratio = f"Hip÷knee {times(rep['hinge_ratio'])}"
    assert ratio in text(browser, "[data-live=last_rep_line]") and "ratio" not in text(browser, "[data-live=last_rep_line]")
    assert text(browser, "[data-live=last_fault_label]") == "squatting the hinge"
    assert text(browser, "[data-live=last_fault_cue]") == rep["faults"][0]["cue"]
    assert "live state-fault" == browser.find_element(By.ID, "live").get_attribute("class")
    link = browser.find_element(By.CSS_SELECTOR, "[data-live=last_rep_link]").get_attribute("href")
    assert link.endswith(f"/sessions/{station.session_id}#rep-{rep['rep_index']}")

    frame = np.full((240, 320, 3), 40, np.uint8)
    cv2.line(frame, (160, 40), (150, 130), (0, 160, 255), 4)  # a stand-in skeleton: the live loop draws the real one
    station.live.set_preview(cv2.imencode(".jpg", frame)[1].tobytes())
    wait_for(lambda: browser.execute_script("var i = document.getElementById('preview'); return !i.hidden && i.naturalWidth === 320"),
             "the preview frame to show")
    assert browser.execute_script("return window.__sameDocument") is True  # all of it without a reload
    screenshot(browser, "live")
    import httpx

    served_line = httpx.get(f"{served}/", timeout=10).text  # as the server renders it, before any script runs
    assert ratio in served_line and " ratio " not in served_line


def test_a_trainer_signs_in_and_corrects_a_rep_from_the_phone(browser, served, station, filled_db):
    from selenium.webdriver.common.by import By

    browser.get(f"{served}/settings")
    browser.find_element(By.CSS_SELECTOR, "#sign-in input[name=token]").send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "#sign-in button").click()
    wait_for(lambda: "saved=signed_in" in browser.current_url, "signing in")
    assert "Signed in" in text(browser, ".flash")
    screenshot(browser, "settings")

    sid = clip_session_id(filled_db)
    rep = next(r for r in station.store.session_reps(sid) if r["faults"])
    browser.get(f"{served}/sessions/{sid}#rep-{rep['rep_index']}")
    card = browser.find_element(By.ID, f"rep-{rep['rep_index']}")
    # a link to a rep opens that rep's fold (and only that one)
    wait_for(lambda: card.find_element(By.CSS_SELECTOR, "details.rep-detail").get_attribute("open") is not None, "the rep to open")
    assert len(browser.find_elements(By.CSS_SELECTOR, "details.rep-detail[open]")) == 1
    browser.execute_script("arguments[0].open = true", card.find_element(By.CSS_SELECTOR, "details.correct"))
    card.find_element(By.CSS_SELECTOR, "form:has(input[value=false_alarm]) button").click()
    wait_for(lambda: "saved=correction" in browser.current_url, "the correction to save")
    saved = station.store.get_rep(rep["id"])
    assert [(c["kind"], c["fault"]) for c in saved["corrections"]] == [("false_alarm", rep["faults"][0]["name"])]
    assert [f["name"] for f in saved["faults"]] == [f["name"] for f in rep["faults"]]  # the verdict stays
    card = browser.find_element(By.ID, f"rep-{rep['rep_index']}")
    wait_for(lambda: "false alarm (trainer)" in card.text, "the corrected rep to open again")
    browser.execute_script("arguments[0].scrollIntoView()", card)
    screenshot(browser, "session-corrected")


def test_a_trainer_turns_the_spoken_cues_off_and_on_from_the_phone(browser, served, station):
    """The settings page's voice switch, in Chromium: it reaches the station's controls and the page
    shows the new state. (Where no voice is set up, the switch is not shown.)"""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    station.live.update(voice_enabled=True)
    browser.get(f"{served}/settings")
    if browser.find_elements(By.CSS_SELECTOR, "#sign-in input[name=token]"):
        browser.find_element(By.CSS_SELECTOR, "#sign-in input[name=token]").send_keys(TOKEN)
        browser.find_element(By.CSS_SELECTOR, "#sign-in button").click()
        wait_for(lambda: "saved=signed_in" in browser.current_url, "signing in")
    for wanted, value in (("off", False), ("on", True)):
        Select(browser.find_element(By.CSS_SELECTOR, "select[name=voice]")).select_by_value(wanted)
        browser.find_element(By.CSS_SELECTOR, "form[action='/settings'] button").click()
        wait_for(lambda value=value: station.controls.calls and station.controls.calls[-1] == ("voice", value), f"voice {wanted}")
        wait_for(lambda: "saved=settings" in browser.current_url, f"voice {wanted} to save")
        chosen = Select(browser.find_element(By.CSS_SELECTOR, "select[name=voice]")).first_selected_option
        assert chosen.get_attribute("value") == wanted
    station.live.update(voice_enabled=None)
    browser.get(f"{served}/settings")
    assert not browser.find_elements(By.CSS_SELECTOR, "select[name=voice]")


def test_a_session_the_pipeline_logged_from_a_real_squat_renders_on_a_phone(browser, pipeline_db):
    from selenium.webdriver.common.by import By

    with RepStore(pipeline_db, readonly=True) as store:
        session = next(s for s in store.list_sessions() if s["source"] == "file:formfit_squat_side.mp4")
        reps = store.session_reps(session["id"])
        server = PageServer(make_app(store))
        base = server.start()
        try:
            browser.get(f"{base}/sessions/{session['id']}")
            wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "svg.chart"), "the rep charts")
            for fold in browser.find_elements(By.CSS_SELECTOR, "details.rep-detail"):
                browser.execute_script("arguments[0].open = true", fold)
            charts = browser.find_elements(By.CSS_SELECTOR, "svg.chart")
            assert len(charts) == len(reps) == 3
            for chart in charts:
                assert chart.find_elements(By.CSS_SELECTOR, "polyline, path")  # hip and knee lines drawn
            assert "squatting" in browser.page_source.lower()
            width = browser.execute_script("return document.documentElement.scrollWidth")
            assert width <= 390 + 1, "the page scrolls sideways on a phone"
            screenshot(browser, "session-real-squat", full_page=True)
        finally:
            server.stop()


def test_a_trainer_follows_an_athlete_up_the_ladder_on_a_phone(browser, ladder_log, tmp_path):
    """Reps the live loop logged from real clips for two athletes over three days: the athlete page
    shows the step, the charts and "ready for", and the trainer accepts the suggestion."""
    from selenium.webdriver.common.by import By

    from device.analysis.ladder import load_ladder

    source, ladder_file = ladder_log
    db = tmp_path / "station.db"
    db.write_bytes(source.read_bytes())
    with RepStore(db) as store:
        server = PageServer(make_app(store, ladder=load_ladder(ladder_file)))
        base = server.start()
        try:
            browser.get(f"{base}/settings")
            if browser.find_elements(By.CSS_SELECTOR, "#sign-in input[name=token]"):
                browser.find_element(By.CSS_SELECTOR, "#sign-in input[name=token]").send_keys(TOKEN)
                browser.find_element(By.CSS_SELECTOR, "#sign-in button").click()
                wait_for(lambda: "saved=signed_in" in browser.current_url, "signing in")
            browser.get(f"{base}/athletes")
            links = {a.text: a for a in browser.find_elements(By.CSS_SELECTOR, "#athletes a")}
            assert set(links) == {"Ann", "Ben"}
            links["Ann"].click()
            wait_for(lambda: browser.find_elements(By.ID, "ready-for"), "Ann's page")
            # titles, not ids; mastered, so she stands on the next step and the trainer is asked to confirm
            assert text(browser, "#ready-for") == "Ready for: Deadlift"
            assert text(browser, "#step h2") == "Current step: Deadlift"
            assert "Kettlebell deadlift is mastered" in text(browser, "#step")
            assert "kettlebell_deadlift" not in browser.find_element(By.TAG_NAME, "main").text
            evidence = browser.find_elements(By.CSS_SELECTOR, "#step a[href^='/sessions/']")
            assert len(evidence) == 4
            charts = browser.find_elements(By.CSS_SELECTOR, f"#drill-{DRILL} svg.chart.series")
            assert len(charts) == 3  # clean share per session, depth and tempo per rep
            for chart in charts:
                assert chart.rect["width"] > 300
                assert len(chart.find_elements(By.CSS_SELECTOR, "circle.point")) >= 4
            wide = browser.execute_script(
                "return [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > 391)"
                ".map(e => e.tagName + '#' + e.id + '.' + e.className + ' ' + e.getBoundingClientRect().right).slice(0, 8)")
            screenshot(browser, "athlete-ready", full_page=True)
            assert browser.execute_script("return document.documentElement.scrollWidth") <= PHONE["width"], wide

            browser.find_element(By.ID, "accept").click()
            wait_for(lambda: "saved=step_accepted" in browser.current_url, "the acceptance to save")
            assert text(browser, "#step h2") == "Current step: Deadlift"
            assert not browser.find_elements(By.ID, "ready-for")
            aid = next(a["id"] for a in store.list_athletes() if a["name"] == "Ann")
            assert [(d["drill"], d["next_drill"], d["decision"]) for d in store.step_decisions(aid)] == [
                (DRILL, "deadlift", "accepted")]

            browser.get(f"{base}/athletes")
            browser.find_element(By.LINK_TEXT, "Ben").click()
            wait_for(lambda: browser.find_elements(By.ID, "athlete-name"), "Ben's page")
            assert not browser.find_elements(By.ID, "ready-for")
            assert text(browser, "#step h2") == "Current step: Kettlebell deadlift"
            assert "no rounded back rep in the latest session" in text(browser, "#step")
            assert "rounded back" in text(browser, "#faults") or "head not neutral" in text(browser, "#faults")
            screenshot(browser, "athlete-not-yet")
        finally:
            server.stop()


def test_one_deadlift_session_reads_ahead_of_the_ladder_in_titles_on_a_phone(browser, tmp_path):
    """An athlete back from a disc injury does one deadlift session: the page keeps them on the first
    step, marks the deadlift "ahead of the ladder", names every drill by its title, and no page
    tells the trainer to edit a file."""
    import random

    from selenium.webdriver.common.by import By

    from device.commands.sample_log import synthetic_rep

    with RepStore(tmp_path / "station.db") as store:
        day = 1_780_000_000.0
        sid = store.start_session(day, "deadlift", "picamera", "Dee")
        rng, t = random.Random(5), 5.0
        for i in range(1, 9):
            rep = synthetic_rep(rng, i, t, "clean")
            store.add_rep(sid, rep, wall_offset=day)
            t = rep.end_time + 2.0
        store.end_session(sid, day + t + 10)
        aid = store.list_athletes()[0]["id"]
        server = PageServer(make_app(store))
        base = server.start()
        try:
            browser.get(f"{base}/athletes/{aid}")
            wait_for(lambda: browser.find_elements(By.ID, "athlete-name"), "Dee's page")
            assert text(browser, "#step h2") == "Current step: Wall-tap hinge"
            (ahead,) = browser.find_elements(By.CSS_SELECTOR, "#ladder li.ahead")
            assert ahead.text.startswith("Deadlift") and "ahead of the ladder" in ahead.text
            assert "ahead of the ladder" in text(browser, "#drill-deadlift h2")
            screenshot(browser, "athlete-ahead", full_page=True)
            browser.get(f"{base}/athletes")
            ladder = text(browser, "main")
            assert "Wall-tap hinge" in ladder and "wall_tap_hinge" not in ladder
            assert ".toml" not in ladder and "device/" not in ladder
            browser.get(f"{base}/sessions/{sid}")
            assert "Deadlift ·" in text(browser, ".session-meta")
        finally:
            server.stop()


def test_a_trainer_sets_a_drills_cue_words_from_the_phone(browser, served, station):
    """Settings, signed in: the running drill's cue words, each fault's field showing the drill's own
    cue in grey; the coach's words are kept in the station's SQLite settings and sent to it."""
    from selenium.webdriver.common.by import By

    browser.get(f"{served}/settings")
    if browser.find_elements(By.CSS_SELECTOR, "#sign-in input[name=token]"):
        browser.find_element(By.CSS_SELECTOR, "#sign-in input[name=token]").send_keys(TOKEN)
        browser.find_element(By.CSS_SELECTOR, "#sign-in button").click()
        wait_for(lambda: "saved=signed_in" in browser.current_url, "signing in")
    assert text(browser, "#cues h2") == "Cue words: Dowel hinge"
    field = browser.find_element(By.CSS_SELECTOR, "#cues input[name=cue_rounded_back]")
    assert field.get_attribute("placeholder") and not field.get_attribute("value")  # the drill's own, in grey
    field.send_keys("proud chest, long spine")
    browser.find_element(By.CSS_SELECTOR, "#cues button").click()
    wait_for(lambda: "saved=cues" in browser.current_url, "the cue words to save")
    assert "Cue words saved" in text(browser, ".flash")
    kept = browser.find_element(By.CSS_SELECTOR, "#cues input[name=cue_rounded_back]").get_attribute("value")
    assert kept == "proud chest, long spine"
    assert station.store.get_setting("cues") == {"dowel_hinge": {"rounded_back": "proud chest, long spine"}}
    assert station.controls.calls[-1][0] == "cues"
    screenshot(browser, "settings-cues", full_page=True)


def test_every_station_page_reads_on_a_phone_and_a_desk_screen(browser, served, station, filled_db):
    """Every page of a station's trainer page at 390 px and 1280 px, full length, kept as artefacts
    (test-output/screenshots/page-*-390.png, -1280.png): none scrolls sideways at either width."""
    sid = clip_session_id(filled_db)
    aid = station.store.list_athletes()[0]["id"]
    pages = {"live": "/", "history": "/history", "session": f"/sessions/{sid}", "athletes": "/athletes",
             "athlete": f"/athletes/{aid}", "settings": "/settings", "login": "/login", "api-docs": "/api/docs"}
    shots = every_width(browser, served, pages, prefix="page-")
    assert len(shots) == 2 * len(pages)
