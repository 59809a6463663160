"""The demo's write token: made once for its data dir (0600), shown once beside the page URL, kept
for the next start; a token set in the config always wins. End to end, the demo's page takes
changes with it: drill switching, athletes."""
from __future__ import annotations

import json
import signal
import stat
import subprocess
import urllib.request
from urllib.error import HTTPError

import pytest

from device.commands.run import DEMO_TOKEN_FILE, demo_token
from device.config import load_settings
from device.errors import StationError
from test_station import env_for, station_cmd


def test_the_token_is_made_once_kept_and_shown_only_when_made(tmp_path):
    settings = load_settings(None, {"data_dir": tmp_path})
    first, note = demo_token(settings)
    token = first.web.token.get_secret_value()
    path = tmp_path / DEMO_TOKEN_FILE
    assert path.read_text().strip() == token and len(token) >= 16 and token in note
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again, note = demo_token(settings)
    assert again.web.token.get_secret_value() == token and token not in note and str(path) in note


def test_a_configured_token_wins_and_no_file_is_made(tmp_path):
    settings = load_settings(None, {"data_dir": tmp_path, "web.token": "installed-token-0123456789"})
    kept, note = demo_token(settings)
    assert kept.web.token.get_secret_value() == "installed-token-0123456789" and "config" in note
    assert not (tmp_path / DEMO_TOKEN_FILE).exists()


def test_a_spoiled_token_file_is_refused_with_what_to_do(tmp_path):
    (tmp_path / DEMO_TOKEN_FILE).write_text("short\n")
    with pytest.raises(StationError, match="delete it"):
        demo_token(load_settings(None, {"data_dir": tmp_path}))


def _call(method: str, url: str, body: dict, token: str = "") -> int:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    request = urllib.request.Request(url, json.dumps(body).encode(), headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except HTTPError as err:
        return err.code


def test_the_demo_page_takes_changes_with_the_token_it_printed(clips_dir, models_dir, tmp_path):
    clip = clips_dir / "jeffchen_deadlift_side_good_1rep.mp4"
    proc = subprocess.Popen(station_cmd("run", "--source", clip, "--mock-pins", "--demo-token", "--port", "0"),
                            env=env_for(tmp_path, models_dir), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = token = None
        for line in proc.stdout:
            if line.startswith("trainer page: "):
                url = line.split(": ", 1)[1].strip().rstrip("/")
            elif line.startswith("write token (shown this once"):
                token = line.rsplit(": ", 1)[1].strip()
                break
        assert url and token, "the demo did not print its page URL and token"
        assert (tmp_path / "data" / DEMO_TOKEN_FILE).read_text().strip() == token
        assert _call("POST", f"{url}/api/athletes", {"name": "Demo"}) == 401
        assert _call("POST", f"{url}/api/athletes", {"name": "Demo"}, token) == 201
        assert _call("PUT", f"{url}/api/settings", {"profile": "dowel_hinge"}, token) == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert proc.returncode == 0
