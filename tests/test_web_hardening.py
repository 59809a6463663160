"""A hostile client on the gym's network: every finding of the probe answers 4xx with a message and
changes nothing (host names, cross-site writes, form bodies, oversize and unencodable input)."""
from __future__ import annotations

import socket
import time
import warnings

import pytest

from device.station.store import RepStore
from support.web import AUTH, TOKEN, Station, make_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

JSON = {**AUTH, "content-type": "application/json"}


@pytest.fixture
def api(station: Station) -> TestClient:
    return TestClient(make_app(station.store, live=station.live, controls=station.controls, page_cpu_share=None),
                      raise_server_exceptions=False)


def athlete_of(station: Station) -> str:
    session = station.store.get_session(station.session_id)
    assert session is not None
    return session["athlete"]


@pytest.mark.parametrize("body", ['{"athlete": "\\ud800"}', '{"athlete": 1e999}', '{"athlete": NaN}'])
def test_unencodable_or_non_finite_json_is_a_422_not_a_500(api, station, body):
    before = athlete_of(station)
    answer = api.put(f"/api/sessions/{station.session_id}/athlete", content=body, headers=JSON)
    assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == ["body", "athlete"]
    assert athlete_of(station) == before


@pytest.mark.parametrize("note", ['"\\udfff"', "1e999"])
def test_a_correction_with_an_unencodable_note_is_a_422(api, station, note):
    rep_id = station.store.session_reps(station.session_id)[0]["id"]
    answer = api.post(f"/api/reps/{rep_id}/corrections", content=f'{{"kind": "not_a_rep", "note": {note}}}', headers=JSON)
    assert answer.status_code == 422


def test_an_export_past_the_calendar_is_a_400(api):
    answer = api.get("/api/reps/export?since=9999-12-31T23:59:59-12:00&until=9999-12-31T23:59:59-13:00")
    assert answer.status_code == 400 and "out of range" in answer.json()["detail"]


def test_a_chunked_body_over_64_kib_is_a_413(api, station):
    rep_id = station.store.session_reps(station.session_id)[0]["id"]

    def chunks():
        for _ in range(80):
            yield b"x" * 1024

    answer = api.post(f"/api/reps/{rep_id}/corrections", content=chunks(), headers=JSON)
    assert answer.status_code == 413 and "64 KiB" in answer.json()["detail"]


@pytest.mark.parametrize("headers,status", [
    ({"origin": "http://testserver:9000"}, 403),  # another port of the same address
    ({"origin": "http://evil.example"}, 403),
    ({"origin": "null"}, 403),
    ({"sec-fetch-site": "same-site"}, 403),  # another port, as a browser labels it
    ({"sec-fetch-site": "cross-site"}, 403),
    ({"origin": "http://testserver", "sec-fetch-site": "same-origin"}, 200),
    ({}, 200),  # curl, a script: the token alone
])
def test_writes_from_another_origin_are_refused(api, station, headers, status):
    answer = api.put(f"/api/sessions/{station.session_id}/athlete", json={"athlete": "Kim"}, headers={**AUTH, **headers})
    assert answer.status_code == status
    assert (athlete_of(station) == "Kim") is (status == 200)


def test_a_form_post_that_is_not_form_data_changes_nothing(api, station):
    api.post("/login", data={"token": TOKEN, "next": "/"}, follow_redirects=False)
    station.store.set_athlete(station.session_id, "Alex")
    for body, kind in (('{"athlete": ""}', "application/json"), ("", "text/plain")):
        answer = api.post(f"/sessions/{station.session_id}/athlete", content=body, headers={"content-type": kind})
        assert answer.status_code == 415
    assert api.post(f"/sessions/{station.session_id}/athlete").status_code == 422  # no athlete field at all
    assert athlete_of(station) == "Alex"
    ok = api.post(f"/sessions/{station.session_id}/athlete", data={"athlete": "Sam"}, follow_redirects=False)
    assert ok.status_code == 303 and athlete_of(station) == "Sam"


@pytest.mark.parametrize("host,status", [
    ("evil.example", 421), ("evil.example:8080", 421), ("192.168.1.20:8080", 200), ("[fe80::1]:8080", 200),
    ("localhost:8080", 200), ("testserver", 200),
])
def test_only_the_stations_own_names_are_answered(api, host, status):
    answer = api.get("/api/sessions", headers={"host": host})
    assert answer.status_code == status
    if status == 421:
        assert "web.allowed_hosts" in answer.json()["detail"]


def test_a_name_the_gym_gave_the_station_can_be_allowed(filled_db):
    from device.config import WebSettings
    from web.app import create_app

    with RepStore(filled_db) as store:
        app = create_app(store, WebSettings(allowed_hosts=["coach.gym.lan"]), page_cpu_share=None)
        client = TestClient(app)
        assert client.get("/api/sessions", headers={"host": "coach.gym.lan"}).status_code == 200
        assert client.get("/api/sessions", headers={"host": "other.gym.lan"}).status_code == 421


def test_an_export_streams_a_page_of_reps_at_a_time_resting_between_pages(tmp_path):
    """450 reps: three pages, a rest after each, and the same CSV as one whole answer."""
    import json

    from device.analysis.vocabulary import Rep
    from web.exports import EXPORT_PAGE, reps_csv, stream_reps
    from web.views import rep_out

    with RepStore(tmp_path / "s.db") as store:
        sid = store.start_session(1_700_000_000.0, "hinge", "picamera", "Jo")
        for i in range(1, 451):
            store.add_rep(sid, Rep(i, 5.0 * i, 5.0 * i + 1, 5.0 * i + 2.5, 1.0, 1.5, 90.0, 20.0, 60.0, 0.3, 4.5, True,
                                   "left"), wall_offset=1_700_000_000.0)
        since, until = 1_699_999_000.0, 1_700_100_000.0
        rests = []
        streamed = "".join(stream_reps(store, since, until, "csv", None, pause=rests.append))
        whole = reps_csv(store.reps_between(since, until), {sid: store.get_session(sid)})
        assert streamed == whole and len(rests) == -(-450 // EXPORT_PAGE) and all(r >= 0 for r in rests)
        as_json = json.loads("".join(stream_reps(store, since, until, "json", lambda r: rep_out(r).model_dump(),
                                                 pause=lambda s: None)))
        assert [r["rep_index"] for r in as_json["reps"]] == list(range(1, 451))
        assert [s["athlete"] for s in as_json["sessions"]] == ["Jo"] and as_json["since"] == since


def test_wrong_tokens_make_that_client_wait_and_are_logged(api, station, caplog):
    for _ in range(5):
        assert api.post("/login", data={"token": "not-the-token-at-all", "next": "/"}).status_code == 401
    waiting = api.put(f"/api/sessions/{station.session_id}/athlete", json={"athlete": "Kim"}, headers=AUTH)
    assert waiting.status_code == 429 and int(waiting.headers["retry-after"]) >= 29
    assert athlete_of(station) != "Kim"  # even the right token waits: guessing must stop
    assert sum("wrong token" in r.getMessage() and "testclient" in r.getMessage() for r in caplog.records) == 5


def test_the_sign_in_limit_is_per_client_and_grows():
    from web.auth import FailedSignIns

    now = [1000.0]
    limit = FailedSignIns(clock=lambda: now[0])
    for _ in range(5):
        limit.failed("10.0.0.9")
    assert limit.wait_s("10.0.0.9") == 30.0 and limit.wait_s("10.0.0.2") == 0.0
    now[0] += 31
    assert limit.wait_s("10.0.0.9") == 0.0
    for _ in range(5):
        limit.failed("10.0.0.9")
    assert limit.wait_s("10.0.0.9") == 60.0  # the second time, twice as long
    limit.succeeded("10.0.0.9")
    assert limit.wait_s("10.0.0.9") == 0.0


# --- one client cannot lock the others out (real sockets on a real server) ---------------------------

ONE, OTHER = "127.0.0.1", "127.0.0.2"  # two clients on the loopback network: the server sees two addresses


def connect(port: int, source: str) -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    return sock


def status_of(sock) -> int:
    head = b""
    while b"\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            return 0  # closed without an answer
        head += chunk
    return int(head.split(b" ", 2)[1])


def ask(port: int, source: str, path: str) -> int:
    sock = connect(port, source)
    try:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        return status_of(sock)
    finally:
        sock.close()


@pytest.fixture
def served(station: Station):
    from web.page_server import PageServer

    server = PageServer(make_app(station.store, token=None, live=station.live, controls=station.controls,
                                 page_cpu_share=None), header_timeout_s=2.0)  # shorter than the page's, for a quick test
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_one_client_s_live_streams_leave_room_for_everyone_else(served):
    """32 live views opened by one client: it gets its share, and another client's live view still opens."""
    held = []
    try:
        answers = []
        for _ in range(32):
            sock = connect(served.port, ONE)
            sock.sendall(b"GET /api/live/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answers.append(status_of(sock))
            held.append(sock)
        assert 0 < answers.count(200) < 32 and set(answers) == {200, 503}
        assert ask(served.port, OTHER, "/api/live/events") == 200
    finally:
        for sock in held:
            sock.close()


def test_256_slow_half_sent_requests_from_one_client_lock_no_one_else_out(served):
    """A slowloris: 256 connections from one client, each with a request head sent a line at a time
    and never finished, fed all along. Another client's page requests are answered meanwhile, and
    each of the slow ones is closed by the server once its head takes longer than the header timeout."""
    held = []
    for _ in range(256):
        try:
            sock = connect(served.port, ONE)
            sock.sendall(b"GET /history HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            held.append(sock)
        except OSError:
            pass  # refused outright
    try:
        started = time.monotonic()
        answered = []
        while time.monotonic() - started < 3 * served.header_timeout_s:
            for sock in list(held):
                try:
                    sock.sendall(b"X-Slow: 1\r\n")  # fed: never idle
                except OSError:
                    held.remove(sock)  # the server closed it
            answered.append(ask(served.port, OTHER, "/api/health"))
            time.sleep(0.3)
        assert set(answered) == {200}, answered
        assert [s for s in held if _still_open(s)] == [], "a half-sent request outlived the header timeout"
    finally:
        for sock in held:
            sock.close()


def _still_open(sock) -> bool:
    sock.settimeout(0.2)
    try:
        sock.sendall(b"X-Slow: 1\r\n")
        return sock.recv(1) != b""
    except socket.timeout:
        return True
    except OSError:
        return False


def test_a_body_that_stops_arriving_is_answered_408(served, monkeypatch):
    import web.guard

    monkeypatch.setattr(web.guard, "BODY_TIMEOUT_S", 1.0)
    sock = connect(served.port, OTHER)
    try:
        sock.sendall(b"POST /api/settings HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{\"profile\": ")
        assert status_of(sock) == 408
    finally:
        sock.close()
