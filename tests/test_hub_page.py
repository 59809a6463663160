"""The trainer page in gym mode (`station hub`): the app factory given the hub's database and its
floor. Read through the API on plain data, then in a real headless Chromium against a hub on a
real broker: two stations live on one screen, following their state messages without a reload.
"""
from __future__ import annotations

import csv
import io
import json
import time

import pytest
from fastapi.testclient import TestClient

from device.config import WebSettings
from device.hub.floor import Floor
from device.hub.store import HubStore
from device.contract import topics
from device.station.store import RepStore
from support.browser import every_width, screenshot, text, wait_for
from support.hub import PREFIX, Publisher, running_hub, state_message, wait_until
from support.web import make_app
from test_hub_store import rep, session
from web.app import create_app
from web.page_server import PageServer

WEB = WebSettings(allowed_hosts=["testserver"])


@pytest.fixture
def gym(tmp_path):
    store = HubStore(f"sqlite:///{tmp_path / 'hub.db'}")
    store.ingest([session("wall-a", 1, True, "Alex"), session("wall-a", 2, True, "Jo"), session("deck-b", 1, True, "Alex")],
                 [rep("wall-a", 1, 1, ("rounded_back",)), rep("wall-a", 2, 2), rep("deck-b", 1, 1), rep("deck-b", 2, 1)])
    floor = Floor()
    floor.set_availability("wall-a", True)
    floor.set_state("wall-a", json.loads(state_message("wall-a", topics.IN_REP, reps=4, last_fault="rounded_back",
                                                       athlete="Jo")[1]))
    floor.set_availability("deck-b", False)
    floor.dropped("not_json")
    yield TestClient(create_app(store, WEB, floor=floor, page_cpu_share=None)), store
    store.close()


def test_the_floor_answers_every_station_and_the_drops(gym):
    api, _ = gym
    floor = api.get("/api/floor").json()
    assert [(s["station"], s["online"], s["state_label"]) for s in floor["stations"]] == [
        ("deck-b", False, "Offline"), ("wall-a", True, "In a rep")]
    wall = floor["stations"][1]
    assert (wall["reps_this_session"], wall["last_fault_label"], wall["drill"]) == (4, "rounded back", "hinge")
    assert (wall["athlete"], floor["stations"][0]["athlete"]) == ("Jo", None)  # who is up; deck-b named nobody
    assert floor["dropped"] == {"not_json": 1}
    page = api.get("/").text
    assert 'data-station="wall-a"' in page and 'data-station="deck-b"' in page and "not_json ×1" in page
    health = api.get("/api/health").json()
    assert health["status"] == "ok" and (health["db"]["sessions"], health["db"]["reps"]) == (3, 4)


def test_history_filters_by_station_and_follows_an_athlete_across_stations(gym):
    api, store = gym
    both = api.get("/api/sessions", params={"athlete": "Alex"}).json()
    assert sorted(s["station"] for s in both["items"]) == ["deck-b", "wall-a"]
    assert api.get("/api/sessions", params={"station": "deck-b"}).json()["total"] == 1
    page = api.get("/history", params={"station": "wall-a"}).text
    assert page.count('class="session-row"') == 2 and "deck-b</option>" in page
    page = api.get("/history", params={"athlete": "Alex"}).text
    assert page.count('class="session-row"') == 2 and '<span class="station">deck-b</span>' in page
    sid = both["items"][0]["id"]
    assert both["items"][0]["station"] in api.get(f"/sessions/{sid}").text


def test_exports_name_the_station_of_each_rep(gym):
    api, store = gym
    rows = list(csv.DictReader(io.StringIO(api.get("/api/reps/export", params={"since": 0, "until": 4e9}).text)))
    assert sorted(r["station"] for r in rows) == ["deck-b", "deck-b", "wall-a", "wall-a"]
    assert {r["athlete"] for r in rows if r["station"] == "deck-b"} == {"Alex"}
    data = api.get("/api/reps/export", params={"since": 0, "until": 4e9, "format": "json"}).json()
    assert len(data["reps"]) == 4 and {s["station"] for s in data["sessions"]} == {"wall-a", "deck-b"}
    labels = list(csv.DictReader(io.StringIO(api.get("/api/labels/export", params={"station": "wall-a"}).text)))
    assert len(labels) == 2


def test_the_hub_page_changes_nothing(gym):
    api, store = gym
    rep_id = store.list_sessions()[0]["id"]
    assert api.put(f"/api/sessions/{rep_id}/athlete", json={"athlete": "X"}).status_code in (403, 409)
    assert api.delete(f"/api/sessions/{rep_id}").status_code in (403, 409)
    assert store.count_sessions() == 3


def test_a_station_page_has_no_floor_and_no_station_filter(filled_db):
    with RepStore(filled_db, readonly=True) as store:
        api = TestClient(make_app(store))
        assert api.get("/api/floor").status_code == 409
        assert api.get("/api/sessions", params={"station": "wall-a"}).status_code == 400
        assert 'name="station"' not in api.get("/history").text


def test_two_stations_live_on_one_hub_page_in_a_browser(browser, broker, tmp_path):
    from selenium.webdriver.common.by import By

    with Publisher(broker, "wall-a") as a, Publisher(broker, "deck-b") as b:
        a.send([state_message("wall-a", topics.IN_VIEW, reps=2, athlete="Sam"), (f"{PREFIX}/wall-a/availability", b"online")])
        b.send([state_message("deck-b", topics.NOBODY, drill="romanian_deadlift"), (f"{PREFIX}/deck-b/availability", b"online")])
        with running_hub(broker, f"sqlite:///{tmp_path / 'hub.db'}") as hub:
            server = PageServer(create_app(hub.store, WEB.model_copy(update={"allowed_hosts": []}), floor=hub.floor))
            base = server.start()
            try:
                wait_until(lambda: len(hub.floor.snapshot().stations) == 2, what="both retained states")
                browser.get(f"{base}/")

                def cards() -> dict:
                    return {c.get_attribute("data-station"): c for c in browser.find_elements(By.CSS_SELECTOR, "article.station-card")}

                wait_for(lambda: set(cards()) == {"wall-a", "deck-b"}, "two station cards")
                assert text(browser, 'article[data-station="wall-a"] [data-field=state_label]') == "Athlete in view"
                assert text(browser, 'article[data-station="deck-b"] [data-field=drill]') == "Romanian deadlift"  # its title
                assert text(browser, 'article[data-station="wall-a"] [data-field=athlete]') == "Sam"  # who is up
                assert text(browser, 'article[data-station="deck-b"] [data-field=athlete]') == "nobody named"
                browser.execute_script("window.__sameDocument = true")

                # A rep at wall-a: its rep and its new state travel over the broker to the page.
                message = (f"{PREFIX}/wall-a/rep", json.dumps({"schema": 1, **rep("wall-a", 1, started=time.time() - 1014)}).encode())
                sent = time.monotonic()
                a.send([message, state_message("wall-a", topics.IN_REP, reps=3, last_fault="rounded_back", athlete="Jo")])
                wait_for(lambda: text(browser, 'article[data-station="wall-a"] [data-field=reps_this_session]') == "3",
                         "wall-a's rep count to reach 3")
                shown_after = time.monotonic() - sent
                assert text(browser, 'article[data-station="wall-a"] [data-field=last_fault_label]') == "rounded back"
                assert text(browser, 'article[data-station="wall-a"] [data-field=athlete]') == "Jo"  # the next one is up, live
                assert "state-in_rep" in cards()["wall-a"].get_attribute("class")
                wait_for(lambda: text(browser, 'article[data-station="wall-a"] [data-field=last_rep_clock]') != "–",
                         "the stored rep's time")
                # deck-b goes offline (its last will): the card says so, without a reload.
                b.send([(f"{PREFIX}/deck-b/availability", b"offline")])
                wait_for(lambda: "offline" in cards()["deck-b"].get_attribute("class"), "deck-b offline")
                assert text(browser, 'article[data-station="deck-b"] [data-field=state_label]') == "Offline"
                # What wall-a says it made against what the hub holds, on its card.
                wait_for(lambda: text(browser, 'article[data-station="wall-a"] [data-field=hub_gap]')
                         == "3 made today · 1 at the hub · 2 not at the hub yet", "wall-a's gap")
                # The hub loses the broker: the page says so, and calls no station offline for it.
                broker.stop()
                wait_for(lambda: text(browser, "#floor-hub-link").startswith("The hub has lost the broker"), "the banner")
                assert "as last heard" in text(browser, 'article[data-station="wall-a"] [data-field=state_label]')
                assert browser.execute_script("return window.__sameDocument") is True
                screenshot(browser, "hub-floor-two-stations")
                print(f"wall-a's rep shown on the hub page {shown_after:.2f} s after it was published")
                assert hub.store.rep_count() == 1
            finally:
                server.stop()


FORMULA = "=cmd|' /C calc'!A0"


def _formulas(text: str) -> list[tuple[str, str]]:
    """(column, cell) of every CSV cell a spreadsheet would run: one starting =, +, -, @, tab or CR
    that is not a plain number."""
    out = []
    for row in csv.DictReader(io.StringIO(text)):
        for column, cell in row.items():
            if cell and cell[0] in "=+-@\t\r":
                try:
                    float(cell)
                except ValueError:
                    out.append((column, cell))
    return out


def test_no_export_cell_is_a_formula_whatever_a_station_sent(tmp_path):
    """Every text cell of every CSV export is neutralised, whichever field it comes from: rows put
    straight into the hub's database (as a hub before the vocabulary check, or a hostile writer,
    would have left them) with a formula in each text field."""
    store = HubStore(f"sqlite:///{tmp_path / 'hub.db'}")
    hostile = dict(session("wall-a", 1, True, "@SUM(A1:A9)"), source="+cmd", profile="-dowel")
    bad_rep = dict(rep("wall-a", 1, 1), movement="=1+1", hip_shift_at_bottom=-0.3, faults=[dict(name=FORMULA, cue="=HYPERLINK(\"x\")", at=1.0,
                                                                      value=-3.5, threshold=None, margin=None, noise=None)])
    store.ingest([hostile], [bad_rep, rep("wall-a", 2, 1)])
    api = TestClient(create_app(store, WEB, floor=Floor(), page_cpu_share=None))
    try:
        reps_csv = api.get("/api/reps/export", params={"since": 0, "until": 4e9}).text
        (sid,) = [s["id"] for s in store.list_sessions()]
        session_csv = api.get(f"/api/sessions/{sid}/export").text
        labels = api.get("/api/labels/export").text
        assert FORMULA in reps_csv.replace("'=", "=")  # the fault is there, neutralised
        for text in (reps_csv, session_csv, labels):
            assert _formulas(text) == []
        shifts = [row["hip_shift_at_bottom"] for row in csv.DictReader(io.StringIO(reps_csv))]
        assert "-0.3" in shifts  # a number stays a number: a negative value is no formula
    finally:
        store.close()


def test_the_floor_says_which_side_is_down_and_what_the_hub_lacks(broker, tmp_path):
    """A station's state says what it made today and what waits in its outbox; the floor puts beside
    it what the hub holds, so a gap shows. When the hub itself loses the broker, the floor says so
    and no station is called offline for it; a station whose last will came is offline."""
    now = time.time()
    with running_hub(broker, f"sqlite:///{tmp_path / 'hub.db'}") as hub:
        api = TestClient(create_app(hub.store, WEB, floor=hub.floor, page_cpu_share=None))
        with Publisher(broker, "wall-a") as a:
            a.send([(f"{PREFIX}/wall-a/rep", json.dumps({"schema": 1, **rep("wall-a", n, 1, started=now - 1000 - n)})
                     .encode()) for n in range(1, 17)])
            says = json.loads(state_message("wall-a", topics.IN_VIEW, reps=18)[1])
            a.send([(f"{PREFIX}/wall-a/state", json.dumps({**says, "waiting": 2}).encode()),
                    (f"{PREFIX}/wall-a/availability", b"online")])
        wait_until(lambda: hub.store.rep_count() == 16 and hub.floor.snapshot().stations[0].state is not None,
                   what="16 reps and the state")
        floor = api.get("/api/floor").json()
        (wall,) = floor["stations"]
        assert floor["hub_link"]["broker"] == "connected"
        assert (wall["reps_today"], wall["reps_at_hub_today"], wall["reps_not_at_hub"], wall["waiting"]) == (18, 16, 2, 2)
        assert "2 not at the hub yet" in api.get("/").text
        broker.stop()  # the hub's side goes down, not the station's
        wait_until(lambda: api.get("/api/floor").json()["hub_link"]["broker"] == "lost", what="the hub to notice")
        floor = api.get("/api/floor").json()
        assert floor["stations"][0]["online"] is True and "Offline" not in floor["stations"][0]["state_label"]
        assert "hub lost the broker" in floor["stations"][0]["state_label"]
        assert "The hub has lost the broker" in api.get("/").text
        broker.start()
        wait_until(lambda: api.get("/api/floor").json()["hub_link"]["broker"] == "connected", what="the hub back")
        with Publisher(broker, "wall-a") as a:
            a.send([(f"{PREFIX}/wall-a/availability", b"offline")])  # the station's own last will
        wait_until(lambda: api.get("/api/floor").json()["stations"][0]["state_label"] == "Offline", what="wall-a offline")
        assert "The hub has lost the broker" not in api.get("/").text


def test_the_hub_s_health_says_so_while_every_write_fails(broker, tmp_path):
    """Reads work and every write fails (SQLite refuses writes on every connection, as on a
    read-only database): /api/health says error and why, not ok; once writes work it says ok again
    and the rep that waited is stored."""
    import sqlalchemy as sa

    from test_hub import rep_message

    def refuse_writes(dbapi_connection, _record) -> None:
        dbapi_connection.execute("PRAGMA query_only = 1")

    with running_hub(broker, f"sqlite:///{tmp_path / 'hub.db'}") as hub:
        api = TestClient(create_app(hub.store, WEB, floor=hub.floor, page_cpu_share=None))
        assert api.get("/api/health").json()["status"] == "ok"
        sa.event.listen(hub.store._engine, "connect", refuse_writes)
        hub.store._engine.dispose()
        with Publisher(broker, "wall-a") as station:
            station.send([rep_message("wall-a", 1)])
        wait_until(lambda: api.get("/api/health").json()["status"] == "error", what="the health to say so")
        health = api.get("/api/health").json()
        assert "readonly" in health["hub"]["write_error"] and health["db"]["ok"] is True  # reads still work
        sa.event.remove(hub.store._engine, "connect", refuse_writes)
        hub.store._engine.dispose()
        wait_until(lambda: hub.store.rep_count() == 1, timeout=40, what="the rep that waited")
        wait_until(lambda: api.get("/api/health").json()["status"] == "ok", what="ok again")


def test_the_hubs_settings_page_is_the_hubs_own(gym, browser, tmp_path):
    """The hub's Settings speak of the hub: its own sign-in and what it does, never a station's token,
    `station serve` or `station run`; a station's own settings page still does."""
    from selenium.webdriver.common.by import By

    api, store = gym
    page = api.get("/settings").text
    assert 'id="hub"' in page and "station serve" not in page and "station run" not in page
    assert "station's config" not in page and 'id="station"' not in page and 'id="cues"' not in page
    with RepStore(tmp_path / "station.db") as own:
        station_page = TestClient(make_app(own)).get("/settings").text
    assert 'id="station"' in station_page and 'id="hub"' not in station_page
    server = PageServer(create_app(store, WEB.model_copy(update={"allowed_hosts": []}), floor=Floor()))
    base = server.start()
    try:
        browser.get(f"{base}/settings")
        assert "hub" in text(browser, "#hub h2").lower()
        assert {a.text for a in browser.find_elements(By.CSS_SELECTOR, "#hub a")} == {"wall-a", "deck-b"}
        screenshot(browser, "hub-settings", full_page=True)
        # every page of the hub at a phone's and a desk screen's width, as artefacts
        sid = store.list_sessions()[0]["id"]
        pages = {"floor": "/", "history": "/history", "session": f"/sessions/{sid}", "settings": "/settings"}
        assert len(every_width(browser, base, pages, prefix="hub-page-")) == 2 * len(pages)
    finally:
        server.stop()
